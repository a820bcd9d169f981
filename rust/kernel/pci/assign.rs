// SPDX-License-Identifier: GPL-2.0

//! Handing PCI devices to other parties: the assigned flag and `driver_override`.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device, //
};

/// How the `driver_override` of a device relates to the driver it is bound to.
///
/// Returned by [`Device::driver_override`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverOverride {
    /// No override is set: drivers are matched by their ID tables.
    NotSet,
    /// The override names the driver the device is bound to (or that is probing it).
    Matches,
    /// The override names another driver.
    Other,
}

impl Device {
    /// Returns whether the device is marked as assigned to a guest
    /// (`PCI_DEV_FLAGS_ASSIGNED`, see [`Device::set_dev_assigned`]).
    #[inline]
    pub fn is_dev_assigned(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_is_dev_assigned(self.as_raw()) }
    }
}

impl Device<device::Bound> {
    /// Marks the device as assigned to a guest (`pci_set_dev_assigned()`).
    ///
    /// The PCI core then leaves the device alone where touching it would disturb the guest, e.g.
    /// it refuses to disable SR-IOV on a physical function whose virtual functions are assigned.
    /// Clear the mark with [`Device::clear_dev_assigned`] once the device is back.
    ///
    /// The flags word is updated without atomicity: the driver the device is bound to must not
    /// change flags of the device concurrently.
    #[inline]
    pub fn set_dev_assigned(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_set_dev_assigned(self.as_raw()) };
    }

    /// Clears the mark set by [`Device::set_dev_assigned`] (`pci_clear_dev_assigned()`).
    #[inline]
    pub fn clear_dev_assigned(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_clear_dev_assigned(self.as_raw()) };
    }

    /// Returns how the device's `driver_override` relates to the driver it is bound to.
    ///
    /// A driver that matches every device and then decides in `probe` which ones to take can
    /// use this to also take the devices an administrator directed to it through
    /// `driver_override`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Core, pci, prelude::*};
    /// fn wanted(pdev: &pci::Device<Core<'_>>, in_list: bool) -> Result {
    ///     if in_list || pdev.driver_override() == pci::DriverOverride::Matches {
    ///         Ok(())
    ///     } else {
    ///         Err(ENODEV)
    ///     }
    /// }
    /// ```
    pub fn driver_override(&self) -> DriverOverride {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the `Bound` context guarantees the device has a driver (set by the
        // driver core before `probe` and until after `remove`), which the helper needs.
        let ret = unsafe { bindings::pci_dev_match_driver_override(self.as_raw()) };

        match ret {
            r if r > 0 => DriverOverride::Matches,
            0 => DriverOverride::Other,
            _ => DriverOverride::NotSet,
        }
    }
}
