// SPDX-License-Identifier: GPL-2.0

//! PCI function reset.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device::{
        self,
        DeviceContext, //
    },
    error::to_result,
    prelude::*, //
};

/// A function reset method of the PCI core, as the device's `reset_method` file names it.
///
/// The discriminants are the indices of the PCI core's method table (`pci_reset_fn_methods[]`
/// in `drivers/pci/pci.c`), which `struct pci_dev`'s `reset_methods[]` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ResetMethod {
    /// A quirk of the device (`device_specific`).
    DeviceSpecific = 1,
    /// The firmware's `_RST` method (`acpi`).
    Acpi = 2,
    /// PCIe function level reset (`flr`).
    Flr = 3,
    /// Advanced-features function level reset (`af_flr`).
    AfFlr = 4,
    /// D3hot and back to D0 (`pm`).
    Pm = 5,
    /// A hotplug slot reset or a secondary bus reset of a function alone on its bus (`bus`).
    Bus = 6,
    /// A CXL bus reset (`cxl_bus`).
    CxlBus = 7,
}

// The table has an empty first entry and the seven methods above: a new method must be named
// here before this builds.
const _: () = assert!(bindings::PCI_NUM_RESET_METHODS == 8);

impl ResetMethod {
    /// The method of the index `m` of `reset_methods[]`; [`None`] for 0, the end of the list.
    fn from_index(m: u8) -> Option<Self> {
        Some(match m {
            1 => Self::DeviceSpecific,
            2 => Self::Acpi,
            3 => Self::Flr,
            4 => Self::AfFlr,
            5 => Self::Pm,
            6 => Self::Bus,
            7 => Self::CxlBus,
            _ => return None,
        })
    }

    /// The name the PCI core gives the method (in the device's `reset_method` file).
    pub fn name(self) -> &'static str {
        match self {
            Self::DeviceSpecific => "device_specific",
            Self::Acpi => "acpi",
            Self::Flr => "flr",
            Self::AfFlr => "af_flr",
            Self::Pm => "pm",
            Self::Bus => "bus",
            Self::CxlBus => "cxl_bus",
        }
    }
}

/// The reset methods of a device, in the order the PCI core tries them.
///
/// Created by [`Device::reset_methods`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetMethods {
    methods: [u8; bindings::PCI_NUM_RESET_METHODS as usize],
}

impl ResetMethods {
    /// Returns an iterator over the methods, in order.
    pub fn iter(&self) -> impl Iterator<Item = ResetMethod> + '_ {
        self.methods
            .iter()
            .map_while(|&m| ResetMethod::from_index(m))
    }

    /// Whether the device has no reset method at all.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The first method, the one a function reset runs unless it declines (`ENOTTY`) at the time.
    pub fn first(&self) -> Option<ResetMethod> {
        self.iter().next()
    }
}

impl<Ctx: DeviceContext> Device<Ctx> {
    /// Returns the function reset methods of the device, in the order the PCI core tries them
    /// (the device's `reset_method` file; `pdev->reset_methods[]`).
    ///
    /// A snapshot: an administrator may change the list through that file at any time.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{pci, prelude::*};
    /// // Whether the device can be reset alone, with a function level reset.
    /// fn has_flr(pdev: &pci::Device) -> bool {
    ///     pdev.reset_methods()
    ///         .iter()
    ///         .any(|m| m == pci::ResetMethod::Flr)
    /// }
    /// ```
    pub fn reset_methods(&self) -> ResetMethods {
        let mut methods = [0u8; bindings::PCI_NUM_RESET_METHODS as usize];
        for (i, m) in methods.iter_mut().enumerate() {
            // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
            // `struct pci_dev`, whose `reset_methods` has `PCI_NUM_RESET_METHODS` entries. The
            // `reset_method` sysfs file rewrites them without a lock the reader could take:
            // each byte is read once, volatile, and a torn list still holds valid indices (a
            // value out of the table ends the list in `ResetMethods::iter`).
            *m = unsafe { (&raw const (*self.as_raw()).reset_methods[i]).read_volatile() };
        }
        ResetMethods { methods }
    }

    /// Returns `true` if [`Device::reset_bus`] would reset the device's hotplug slot or its bus
    /// (`pci_probe_reset_slot()`, `pci_probe_reset_bus()`, the choice `pci_reset_bus()` makes):
    /// the bus has a bridge above it and no device on it forbids a bus reset. Nothing is reset.
    /// May sleep.
    ///
    /// A [`Device::reset_bus`] that fails with [`ENOTTY`] after this said `true` ran and
    /// failed (the first function below the bridge, or the link, did not come back), unless the
    /// bus changed in between: a device that forbids bus resets added to it, or the slot's
    /// hotplug driver gone.
    pub fn can_reset_bus(&self) -> bool {
        let pdev = self.as_raw();
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; its `slot` is read once, without a lock, as `pci_reset_bus()` and
        // VFIO read it.
        let slot = unsafe { (&raw const (*pdev).slot).read_volatile() };
        // SAFETY: `slot` is NULL ("no slot", which the function takes) or a slot that is only
        // freed when the hotplug driver of the bridge above goes; the function only checks
        // whether a reset is possible, as `pci_reset_bus()` does.
        let slot_ok = unsafe { bindings::pci_probe_reset_slot(slot) } == 0;
        // SAFETY: `pdev` is valid (above); its `bus` is never NULL and holds a reference for as
        // long as the device exists; the function only checks, walking the bus's devices
        // without `pci_bus_sem`, as `pci_reset_bus()` does.
        slot_ok || unsafe { bindings::pci_probe_reset_bus((*pdev).bus) } == 0
    }

    /// Resets the secondary bus below the device's parent bridge, or its hotplug slot
    /// (`pci_reset_bus()`): every function on that bus (and below it) is reset at once, each
    /// one's configuration space saved before and restored after.
    ///
    /// Meant for a function that has no reset method of its own because it shares its bus (a
    /// function of a multi-function device). The caller must own every function the reset
    /// reaches: their drivers are only told through their `reset_prepare` and `reset_done`
    /// handlers.
    ///
    /// Takes the device lock of the bridge and of every function on the bus without waiting,
    /// and fails with [`EAGAIN`] when one is held (so it must not be called with any of them
    /// held, a bus callback of these devices included); fails with [`ENOTTY`] if the bus cannot
    /// be reset (a root bus, a device that forbids bus resets: see [`Device::can_reset_bus`]),
    /// and also when the reset ran but a function did not come back after it (the link below a
    /// PCIe port did not train again). May sleep for a long time (the reset of a hotplug slot
    /// waits for the slot's controller).
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Bound, pci, prelude::*};
    /// // The function cannot be reset alone: reset the whole bus instead (the caller owns every
    /// // function on it).
    /// fn reset(pdev: &pci::Device<Bound>) -> Result {
    ///     if pdev.reset_methods().is_empty() {
    ///         pdev.reset_bus()
    ///     } else {
    ///         pdev.reset_function()
    ///     }
    /// }
    /// ```
    pub fn reset_bus(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the function checks on its own whether the bus may be reset.
        to_result(unsafe { bindings::pci_reset_bus(self.as_raw()) })
    }
}

impl<'a> Device<device::Core<'a>> {
    /// Resets the function from a bus callback (`pci_reset_function_locked()`).
    ///
    /// This is the variant of [`Device::reset_function`] for `probe` and `unbind`, where the
    /// driver core already holds the device lock. Like it, it saves the configuration space
    /// first, disables the device, resets it with the first method that works (function level
    /// reset, power management reset, bus reset, ...) and restores the configuration space.
    ///
    /// Fails with [`ENOTTY`] if the device has no reset method, or with the error of the reset.
    /// May sleep for a long time (a function level reset waits for the device).
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Core, pci, prelude::*};
    /// // Returns a seized device to a known state before handing it out.
    /// fn seize(pdev: &pci::Device<Core<'_>>) -> Result {
    ///     pdev.reset_function_locked().inspect_err(|e| {
    ///         dev_err!(pdev, "cannot reset: {:?}\n", e);
    ///     })
    /// }
    /// ```
    pub fn reset_function_locked(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`, and the `Core` context guarantees the device lock is held.
        to_result(unsafe { bindings::pci_reset_function_locked(self.as_raw()) })
    }
}

impl Device<device::Bound> {
    /// Resets the function (`pci_reset_function()`).
    ///
    /// Takes the device lock (and the one of the upstream bridge), saves the configuration
    /// space, disables the device, resets it with the first method that works and restores the
    /// configuration space. Fails with [`ENOTTY`] if the device has no reset method, or with the
    /// error of the reset. May sleep for a long time.
    ///
    /// Must not be called from a bus callback of this device or of its upstream bridge (`probe`,
    /// `unbind`, ...), where the device core holds the lock this takes: use
    /// [`Device::reset_function_locked`] there. The type system cannot stop this, as a
    /// [`Device<Core>`](device::Core) dereferences to a [`Device<Bound>`](device::Bound), and
    /// lockdep does not report it (the device lock is not validated by lockdep).
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Bound, pci, prelude::*};
    /// // Called from a work item when the device comes back from a guest.
    /// fn release(pdev: &pci::Device<Bound>, golden: &pci::SavedState) -> Result {
    ///     pdev.reset_function()?;
    ///     golden.restore(pdev)
    /// }
    /// ```
    pub fn reset_function(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_reset_function(self.as_raw()) })
    }

    /// Resets the function like [`Device::reset_function`], unless its device lock (or the one
    /// of its upstream bridge) is already held (`pci_try_reset_function()`).
    ///
    /// Fails with [`EAGAIN`] when a lock is held: it never waits for the device lock, so it can
    /// be called with locks held that a bus callback of this device may take (for example by a
    /// driver that serves the device to another party and releases it under its own lock).
    pub fn try_reset_function(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_try_reset_function(self.as_raw()) })
    }
}

impl<Ctx: DeviceContext> Device<Ctx> {
    /// Waits for the device lock (`device_lock()`) and holds it until the returned guard is
    /// dropped, so that a function reset can run the way a bus callback runs it.
    ///
    /// While the guard lives, no driver can be bound to or unbound from the device: a driver
    /// that knows, under the guard, that it is bound, stays bound until the guard is dropped.
    ///
    /// Waits for as long as someone else holds the lock (the PCI core's error recovery holds it
    /// for each step of its recovery of the device). Calling it from a bus callback of this
    /// device (`probe`, `unbind`, an error handler), where the driver core holds the lock
    /// already, or with a lock held that such a callback takes, deadlocks, and lockdep does not
    /// report it (the device lock is not validated by lockdep).
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{pci, prelude::*};
    /// // A device comes back from a guest: it must not be handed on before the reset ran, so
    /// // the reset waits for whoever holds the device lock.
    /// fn reset_for_next_user(pdev: &pci::Device) -> Result {
    ///     let lock = pdev.lock_for_reset();
    ///     lock.reset_function()
    /// }
    /// ```
    pub fn lock_for_reset(&self) -> ResetLock<'_> {
        let dev: &device::Device<Ctx> = self.as_ref();
        // SAFETY: By its type invariant `dev.as_raw()` is a valid `struct device`;
        // `device_lock()` is `mutex_lock(&dev->mutex)`, which may sleep here (this function
        // may sleep).
        unsafe { bindings::mutex_lock(&raw mut (*dev.as_raw()).mutex) };
        // INVARIANT: The device lock was taken above, and is released only by `Drop`.
        ResetLock {
            dev: self.as_raw(),
            _dev: core::marker::PhantomData,
        }
    }
}

/// The device lock of a PCI device, held until dropped (see [`Device::lock_for_reset`]).
///
/// # Invariants
///
/// `dev` is a valid `struct pci_dev` for `'a`, whose device lock this task holds until the
/// guard is dropped.
pub struct ResetLock<'a> {
    dev: *mut bindings::pci_dev,
    _dev: core::marker::PhantomData<&'a Device>,
}

impl ResetLock<'_> {
    /// Resets the function with the device lock held (`pci_reset_function_locked()`).
    ///
    /// Saves the configuration space, disables the device, resets it with the first method
    /// that works (function level reset, power management reset, bus reset, ...) and restores
    /// the configuration space. Fails with [`ENOTTY`] if the device has no reset method, or
    /// with the error of the reset. May sleep for a long time.
    pub fn reset_function(&self) -> Result {
        // SAFETY: By the type invariants `self.dev` is a valid `struct pci_dev` whose device
        // lock is held.
        to_result(unsafe { bindings::pci_reset_function_locked(self.dev) })
    }
}

impl Drop for ResetLock<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `self.dev` is valid and its device lock was taken by
        // this task in `Device::lock_for_reset`.
        unsafe { bindings::mutex_unlock(&raw mut (*self.dev).dev.mutex) };
    }
}
