// SPDX-License-Identifier: GPL-2.0

//! The root buses the backend exports, whose configuration space accesses go over the
//! [`OpChannel`].

use kernel::{
    device,
    pci::{
        AccessWidth,
        DevfnSet,
        PciOps,
        PcibiosError,
        RootBus, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
    types::ForLt,
};

use crate::{
    common::{
        bdf::BusAddr,
        xs, //
    },
    ops::OpChannel, //
};

/// The [`PciOps`] of one root bus: each access is one round trip on the connection's
/// [`OpChannel`], addressed to the root's PCI domain.
pub(crate) struct RootOps {
    domain: u32,
    chan: Arc<OpChannel>,
    /// The accesses made so far (wrapping), for the log line of each scan.
    accesses: Atomic<u32>,
}

/// The [`ForLt`](trait@ForLt) encoding of [`RootOps`], the type of operations of our buses.
pub(crate) type Ops = ForLt!(RootOps);

impl RootOps {
    /// The PCI domain of the root bus.
    pub(crate) fn domain(&self) -> u32 {
        self.domain
    }

    /// The channel of the connection that created the bus.
    pub(crate) fn chan(&self) -> &OpChannel {
        &self.chan
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
        self.accesses.fetch_add(1, Relaxed);
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
        self.accesses.fetch_add(1, Relaxed);
        self.chan()
            .conf_write(self.domain, bus, devfn, offset, width.bytes(), value)
    }
}

/// The most root buses one connection creates: `root_num`'s bound ([`xs::ROOT_NUM_MAX`]).
// CAST: 256 fits.
const ROOTS_MAX: usize = xs::ROOT_NUM_MAX as usize;

/// The root buses of a connection, each with operations holding a reference to its channel.
pub(crate) struct Roots {
    buses: KVec<Pin<KBox<RootBus<'static, Ops>>>>,
    chan: Arc<OpChannel>,
}

impl Roots {
    /// Creates the (empty) set of root buses of the connection whose channel is `chan`.
    pub(crate) fn new(chan: Arc<OpChannel>) -> Self {
        Self {
            buses: KVec::new(),
            chan,
        }
    }

    /// Returns the bus `root` if it exists already.
    fn find(&self, root: BusAddr) -> Option<&RootBus<'static, Ops>> {
        self.buses
            .iter()
            .map(|b| b.as_ref().get_ref())
            .find(|b| b.domain() == u32::from(root.domain) && b.number() == root.bus)
    }

    /// Creates the root bus `root` below `parent` and adds the devices it has at the
    /// device/function numbers `devfns` (and behind the bridges among them); if it exists
    /// already, adds the devices that are new at those numbers.
    pub(crate) fn scan(
        &mut self,
        parent: &device::Device,
        root: BusAddr,
        devfns: &DevfnSet,
    ) -> Result<Scan> {
        if let Some(bus) = self.find(root) {
            return Ok(Scan::Rescanned(bus.rescan_devfns(devfns)));
        }
        // `root_num` is bounded at each read, but each reconfiguration may list new roots: a
        // backend cycling through them would otherwise grow the guest's buses without end.
        if self.buses.len() >= ROOTS_MAX {
            return Err(ENOSPC);
        }

        let ops = RootOps {
            domain: root.domain.into(),
            chan: self.chan.clone(),
            accesses: Atomic::new(0),
        };
        self.buses.reserve(1, GFP_KERNEL)?;
        let bus = RootBus::<Ops>::scan_devfns(parent, root.domain.into(), root.bus, ops, devfns)?;
        self.buses.push(bus, GFP_KERNEL)?;

        Ok(Scan::Created)
    }

    /// Removes the device `devfn` of the bus `bus` (a root bus, or a bus behind a bridge on
    /// one), unbinding its driver. Only devices below this connection's root buses: [`ENODEV`]
    /// for any other.
    pub(crate) fn remove_device(&self, bus: BusAddr, devfn: u8) -> Result {
        for root in self
            .buses
            .iter()
            .map(|b| b.as_ref().get_ref())
            .filter(|b| b.domain() == u32::from(bus.domain))
        {
            match root.remove_device_below(bus.bus, devfn) {
                Err(e) if e == ENODEV => {}
                result => return result,
            }
        }
        Err(ENODEV)
    }

    /// Returns the number of configuration space accesses made so far on all the root buses
    /// (wrapping): the difference of two calls counts the round trips in between.
    pub(crate) fn accesses(&self) -> u32 {
        self.buses
            .iter()
            .fold(0u32, |n, b| n.wrapping_add(b.ops().accesses.load(Relaxed)))
    }

    /// The total time of the connection's answered round trips so far, in nanoseconds (see
    /// [`OpChannel::report`]): the difference of two calls is the time of those in between.
    pub(crate) fn answered_ns(&self) -> u64 {
        self.chan.report().counts.answered_ns
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
