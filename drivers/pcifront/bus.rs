// SPDX-License-Identifier: GPL-2.0

//! The root buses the backend exports, whose configuration space accesses go over the
//! [`OpChannel`].

use core::ptr::NonNull;

use kernel::{
    device,
    pci::{
        AccessWidth,
        PciOps,
        PcibiosError,
        RootBus, //
    },
    prelude::*,
};

use crate::{
    common::bdf::BusAddr,
    ops::OpChannel, //
};

/// The [`PciOps`] of one root bus: each access is one round trip on the connection's
/// [`OpChannel`], addressed to the root's PCI domain.
///
/// # Invariants
///
/// `chan` points to the [`OpChannel`] of the connection that created the bus; it outlives the
/// [`RootBus`] owning this object (see [`Roots`]).
pub(crate) struct RootOps {
    domain: u32,
    chan: NonNull<OpChannel<'static>>,
}

// SAFETY: `RootOps` only gives shared access to an `OpChannel`, whose round trips are serialised
// by its IRQ-safe spinlock and may be made from any thread.
unsafe impl Send for RootOps {}

// SAFETY: See above.
unsafe impl Sync for RootOps {}

impl RootOps {
    /// The PCI domain of the root bus.
    pub(crate) fn domain(&self) -> u32 {
        self.domain
    }

    /// The channel of the connection that created the bus.
    pub(crate) fn chan(&self) -> &OpChannel<'static> {
        // SAFETY: By the type invariant `chan` outlives the `RootBus` owning `self`, so it is
        // valid while `self` is borrowed. The lifetime is only a name for it: the channel does
        // not outlive its device, and neither does anything borrowed from `self`.
        unsafe { self.chan.as_ref() }
    }
}

impl PciOps for RootOps {
    fn read(
        &self,
        bus: u8,
        devfn: u8,
        offset: u16,
        width: AccessWidth,
    ) -> Result<u32, PcibiosError> {
        self.chan()
            .conf_read(self.domain, bus, devfn, offset, width.bytes())
    }

    fn write(
        &self,
        bus: u8,
        devfn: u8,
        offset: u16,
        width: AccessWidth,
        value: u32,
    ) -> Result<(), PcibiosError> {
        self.chan()
            .conf_write(self.domain, bus, devfn, offset, width.bytes(), value)
    }
}

/// The root buses of a connection.
///
/// # Invariants
///
/// Every bus in `buses` has [`RootOps`] pointing to `chan`, which outlives `self`: the owner
/// (the driver data) drops it before the channel, and [`RootBus`]'s drop revokes the
/// operations, waiting for running accesses, before the [`RootOps`] go.
pub(crate) struct Roots {
    buses: KVec<Pin<KBox<RootBus<RootOps>>>>,
    chan: NonNull<OpChannel<'static>>,
}

// SAFETY: `Roots` owns root buses, which are `Send`, and a pointer only handed to `RootOps`.
unsafe impl Send for Roots {}

impl Roots {
    /// Creates the (empty) set of root buses of the connection whose channel is `chan`.
    ///
    /// # Safety
    ///
    /// `chan` must outlive the returned object.
    pub(crate) unsafe fn new(chan: &OpChannel<'_>) -> Self {
        // INVARIANT: Guaranteed by the safety requirements of this function.
        Self {
            buses: KVec::new(),
            chan: NonNull::from(chan).cast(),
        }
    }

    /// Returns the bus `root` if it exists already.
    fn find(&self, root: BusAddr) -> Option<&RootBus<RootOps>> {
        self.buses
            .iter()
            .map(|b| b.as_ref().get_ref())
            .find(|b| b.domain() == u32::from(root.domain) && b.number() == root.bus)
    }

    /// Creates the root bus `root` below `parent` and adds the devices it has; if it exists
    /// already, adds the devices that are new on it.
    pub(crate) fn scan(&mut self, parent: &device::Device, root: BusAddr) -> Result<Scan> {
        if let Some(bus) = self.find(root) {
            return Ok(Scan::Rescanned(bus.rescan()));
        }

        // INVARIANT: The bus is stored in `self.buses`, so it goes before `chan` (type invariant
        // of `Self`).
        let ops = RootOps {
            domain: root.domain.into(),
            chan: self.chan,
        };
        self.buses.reserve(1, GFP_KERNEL)?;
        let bus = RootBus::scan(parent, root.domain.into(), root.bus, ops)?;
        self.buses.push(bus, GFP_KERNEL)?;

        Ok(Scan::Created)
    }

    /// Removes the device `devfn` of the root bus `root`, unbinding its driver.
    pub(crate) fn remove_device(&self, root: BusAddr, devfn: u8) -> Result {
        self.find(root).ok_or(ENODEV)?.remove_device(devfn)
    }

    /// Returns the number of root buses.
    pub(crate) fn len(&self) -> usize {
        self.buses.len()
    }

    /// Removes every root bus, and with them their devices.
    pub(crate) fn clear(&mut self) {
        // Newest first, the reverse of the order of creation.
        while let Some(bus) = self.buses.pop() {
            drop(bus);
        }
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What [`Roots::scan`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The root bus was created, with the devices found on it.
    Created,
    /// The root bus existed; this many new devices were found on it.
    Rescanned(usize),
}
