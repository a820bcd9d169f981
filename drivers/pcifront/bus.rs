// SPDX-License-Identifier: GPL-2.0

//! The root buses the backend exports, whose configuration space accesses go over the
//! [`OpChannel`].

use kernel::{
    device,
    pci::{
        AccessWidth,
        PciOps,
        PcibiosError,
        RootBus, //
    },
    prelude::*,
    sync::Arc,
    types::ForLt,
};

use crate::{
    common::bdf::BusAddr,
    ops::OpChannel, //
};

/// The [`PciOps`] of one root bus: each access is one round trip on the connection's
/// [`OpChannel`], addressed to the root's PCI domain. `'bound` is the lifetime of the bound
/// xenbus device the channel belongs to.
pub(crate) struct RootOps<'bound> {
    domain: u32,
    chan: Arc<OpChannel<'bound>>,
}

/// The [`ForLt`](trait@ForLt) encoding of [`RootOps`], the type of operations of our buses.
pub(crate) type Ops = ForLt!(RootOps<'_>);

impl<'bound> RootOps<'bound> {
    /// The PCI domain of the root bus.
    pub(crate) fn domain(&self) -> u32 {
        self.domain
    }

    /// The channel of the connection that created the bus.
    pub(crate) fn chan(&self) -> &OpChannel<'bound> {
        &self.chan
    }
}

impl PciOps for RootOps<'_> {
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

/// The root buses of a connection, each with operations holding a reference to its channel.
///
/// # Invariants
///
/// `self` is never leaked (see [`Roots::new`]), so its buses are only ever dropped (by
/// [`Roots::clear`], or with `self`) before `'bound` ends.
pub(crate) struct Roots<'bound> {
    buses: KVec<Pin<KBox<RootBus<'bound, Ops>>>>,
    chan: Arc<OpChannel<'bound>>,
}

impl<'bound> Roots<'bound> {
    /// Creates the (empty) set of root buses of the connection whose channel is `chan`.
    ///
    /// # Safety
    ///
    /// The returned object must be dropped before `'bound` ends, not leaked: the PCI core
    /// reaches the channel through its buses until they are dropped.
    pub(crate) unsafe fn new(chan: Arc<OpChannel<'bound>>) -> Self {
        // INVARIANT: Guaranteed by the safety requirements of this function.
        Self {
            buses: KVec::new(),
            chan,
        }
    }

    /// Returns the bus `root` if it exists already.
    fn find(&self, root: BusAddr) -> Option<&RootBus<'bound, Ops>> {
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

        let ops = RootOps {
            domain: root.domain.into(),
            chan: self.chan.clone(),
        };
        self.buses.reserve(1, GFP_KERNEL)?;
        // SAFETY: The bus is never leaked: it is kept in `self.buses`, whence it is only dropped,
        // before `'bound` ends (type invariant of `Roots`).
        let bus =
            unsafe { RootBus::<Ops>::scan_with_lt(parent, root.domain.into(), root.bus, ops) }?;
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

impl Drop for Roots<'_> {
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
