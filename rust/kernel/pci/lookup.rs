// SPDX-License-Identifier: GPL-2.0

//! PCI device addresses, lookup by address, every device, and upstream bridges.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    prelude::*,
    sync::aref::ARef, //
};
use core::ptr::NonNull;

impl Device {
    /// Returns the number of the PCI domain (segment) of the device.
    ///
    /// Together with [`Device::bus_number`] and [`Device::devfn`] this is the device's address,
    /// the `DDDD:BB:SS.F` of its name.
    #[inline]
    pub fn domain_nr(&self) -> u32 {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`, whose `bus` is valid for as long as the device is.
        let domain = unsafe { bindings::pci_dev_domain_nr(self.as_raw()) };

        // CAST: Domain numbers are never negative: they are either firmware segment numbers
        // (16 bits) or allocated from zero upwards.
        domain as u32
    }

    /// Returns the number of the bus the device is on.
    #[inline]
    pub fn bus_number(&self) -> u8 {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`, and a device holds a reference to its `bus`.
        unsafe { (*(*self.as_raw()).bus).number }
    }

    /// Returns the device and function number of the device, encoded as in C's `PCI_DEVFN()`.
    #[inline]
    pub fn devfn(&self) -> u8 {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        let devfn = unsafe { (*self.as_raw()).devfn };

        // CAST: A devfn is an 8-bit value (5 bits of slot, 3 bits of function); the C field is
        // wider only for convenience.
        devfn as u8
    }

    /// Returns the slot (device) number of the device, from 0 to 31.
    #[inline]
    pub fn slot(&self) -> u8 {
        self.devfn() >> 3
    }

    /// Returns the function number of the device, from 0 to 7.
    #[inline]
    pub fn func(&self) -> u8 {
        self.devfn() & 0x7
    }

    /// Finds the device at the address `domain:bus:devfn`.
    ///
    /// Returns [`None`] if there is no such device. The returned reference keeps the
    /// `struct pci_dev` alive, it does not keep the device present or bound to any driver: the
    /// device may be removed, and its driver may change, while the reference is held.
    ///
    /// Must not be called from interrupt context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{pci, prelude::*};
    /// // Look up 0000:00:1f.3.
    /// fn find() -> Option<u16> {
    ///     let pdev = pci::Device::get_by_slot(0, 0, (0x1f << 3) | 3)?;
    ///     Some(pdev.device_id())
    /// }
    /// ```
    pub fn get_by_slot(domain: u32, bus: u8, devfn: u8) -> Option<ARef<Self>> {
        let domain = c_int::try_from(domain).ok()?;

        // SAFETY: `pci_get_domain_bus_and_slot` accepts any address. It returns NULL or a
        // `struct pci_dev` with its reference count incremented.
        let pdev =
            unsafe { bindings::pci_get_domain_bus_and_slot(domain, bus.into(), devfn.into()) };
        let pdev = NonNull::new(pdev)?;

        // SAFETY: `pdev` points to a valid `struct pci_dev` whose reference we own and hand over;
        // `Device` is a transparent wrapper of `struct pci_dev`.
        Some(unsafe { ARef::from_raw(pdev.cast()) })
    }

    /// Returns an iterator over every PCI device of the system (`for_each_pci_dev()`).
    ///
    /// Each device comes with a reference of its own; devices added or removed while the
    /// iteration runs may or may not be seen. Must not be called from interrupt context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::pci;
    /// // The devices below `bridge`.
    /// fn below(bridge: &pci::Device) -> usize {
    ///     pci::Device::all()
    ///         .filter(|d| d.upstream_bridges().any(|b| core::ptr::eq::<pci::Device>(&*b, bridge)))
    ///         .count()
    /// }
    /// ```
    pub fn all() -> AllDevices {
        AllDevices {
            last: None,
            done: false,
        }
    }

    /// Returns the bridge upstream of the device, or [`None`] if the device is on a root bus.
    ///
    /// For a virtual function, the upstream bridge is the one of its physical function.
    pub fn upstream_bridge(&self) -> Option<ARef<Self>> {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        let bridge = unsafe { bindings::pci_upstream_bridge(self.as_raw()) };
        let bridge = NonNull::new(bridge)?;

        // SAFETY: `bridge` is the `self` of the bus the device (or its physical function) is on:
        // that bus, which the device holds a reference to, holds a reference to its bridge, so
        // `bridge` is valid while `self` is. `Device` is a transparent wrapper of
        // `struct pci_dev`.
        let bridge = unsafe { bridge.cast::<Self>().as_ref() };

        Some(bridge.into())
    }

    /// Returns an iterator over the bridges upstream of the device, nearest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{pci, prelude::*};
    /// // Whether any bridge between `pdev` and its root bus is a virtual function.
    /// fn behind_virtfn(pdev: &pci::Device) -> bool {
    ///     pdev.upstream_bridges().any(|bridge| bridge.is_virtfn())
    /// }
    /// ```
    pub fn upstream_bridges(&self) -> UpstreamBridges {
        UpstreamBridges {
            next: self.upstream_bridge(),
        }
    }
}

/// An iterator over the bridges upstream of a PCI device, nearest first.
///
/// Created by [`Device::upstream_bridges`].
pub struct UpstreamBridges {
    next: Option<ARef<Device>>,
}

impl Iterator for UpstreamBridges {
    type Item = ARef<Device>;

    fn next(&mut self) -> Option<Self::Item> {
        let bridge = self.next.take()?;
        self.next = bridge.upstream_bridge();

        Some(bridge)
    }
}

/// An iterator over every PCI device of the system.
///
/// Created by [`Device::all`].
pub struct AllDevices {
    /// The device returned last, whose reference the next step hands to `pci_get_device()`.
    last: Option<ARef<Device>>,
    done: bool,
}

impl Iterator for AllDevices {
    type Item = ARef<Device>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let from = self
            .last
            .take()
            .map_or(core::ptr::null_mut(), |d| ARef::into_raw(d).as_ptr());

        // SAFETY: `from` is NULL or a valid `struct pci_dev` (`Device` is a transparent wrapper)
        // whose reference we own and hand over: `pci_get_device()` drops it, and returns NULL
        // or the next device with its reference count incremented.
        let next = unsafe {
            // CAST: `PCI_ANY_ID` is `~0`, all bits set in the `unsigned int` parameters.
            bindings::pci_get_device(!0, !0, from.cast())
        };
        let Some(next) = NonNull::new(next) else {
            self.done = true;
            return None;
        };

        // SAFETY: `next` points to a valid `struct pci_dev` whose reference we own.
        let dev: ARef<Device> = unsafe { ARef::from_raw(next.cast()) };
        self.last = Some(dev.clone());
        Some(dev)
    }
}
