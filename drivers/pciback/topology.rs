// SPDX-License-Identifier: GPL-2.0

//! Where the devices exported to one guest appear: on a virtual bus `0000:00` (the default) or
//! at their host addresses (`passthrough=1`). The policy is `common::vbus`; this keeps the
//! exported devices next to it.

use kernel::{
    prelude::*,
    sync::Arc, //
};

use crate::{
    common::{
        bdf::{
            Bdf,
            BusAddr, //
        },
        vbus::{
            self,
            RootSet,
            VbusError,
            VirtualBus, //
        },
    },
    stub::Seized,
};

/// The placement policy of one guest.
#[allow(
    clippy::large_enum_variant,
    reason = "one per guest connection, made once and never moved"
)]
enum Layout {
    /// `passthrough=0`: virtual slots on `0000:00`.
    Virtual(VirtualBus),
    /// `passthrough=1`: host addresses.
    Passthrough,
}

/// One exported device.
pub(crate) struct Exported {
    /// Where the guest sees it.
    pub(crate) guest: Bdf,
    /// The seized device.
    pub(crate) dev: Arc<Seized>,
}

/// The devices exported to one guest, and the roots published for them.
pub(crate) struct Topology {
    layout: Layout,
    devs: KVec<Exported>,
    /// Roots already published as `root-N`, in order (never removed, as in C).
    roots: RootSet,
}

impl Topology {
    pub(crate) fn new(passthrough: bool) -> Self {
        Self {
            layout: if passthrough {
                Layout::Passthrough
            } else {
                Layout::Virtual(VirtualBus::new())
            },
            devs: KVec::new(),
            roots: RootSet::new(),
        }
    }

    /// Adds `dev`; returns its guest address.
    pub(crate) fn add(&mut self, dev: Arc<Seized>) -> Result<Bdf, AddError> {
        let host = dev.bdf();
        if self.devs.iter().any(|e| e.dev.bdf() == host) {
            return Err(AddError::Vbus(VbusError::Duplicate));
        }
        self.devs
            .reserve(1, GFP_KERNEL)
            .map_err(|_| AddError::NoMem)?;
        let guest = match &mut self.layout {
            Layout::Virtual(bus) => bus.add(host, dev.kind()).map_err(AddError::Vbus)?,
            Layout::Passthrough => vbus::passthrough_guest_of(host),
        };
        // Cannot fail: room reserved above.
        self.devs
            .push(Exported { guest, dev }, GFP_KERNEL)
            .map_err(|_| AddError::NoMem)?;
        Ok(guest)
    }

    /// Finds the device the guest addresses as `guest`.
    pub(crate) fn find(&self, guest: Bdf) -> Option<&Arc<Seized>> {
        self.devs.iter().find(|e| e.guest == guest).map(|e| &e.dev)
    }

    /// Where the guest sees `dev`, if it is exported here.
    pub(crate) fn guest_of(&self, dev: &Seized) -> Option<Bdf> {
        self.devs
            .iter()
            .find(|e| core::ptr::eq::<Seized>(&*e.dev, dev))
            .map(|e| e.guest)
    }

    /// Removes the device the guest addresses as `guest`.
    pub(crate) fn remove(&mut self, guest: Bdf) -> Option<Arc<Seized>> {
        let i = self.devs.iter().position(|e| e.guest == guest)?;
        let e = self.devs.remove(i).ok()?;
        if let Layout::Virtual(bus) = &mut self.layout {
            bus.remove(guest);
        }
        Some(e.dev)
    }

    /// Removes every device.
    pub(crate) fn drain(&mut self) -> KVec<Exported> {
        if let Layout::Virtual(bus) = &mut self.layout {
            *bus = VirtualBus::new();
        }
        core::mem::take(&mut self.devs)
    }

    /// Adds the roots the current devices need to the published set; returns the new ones.
    pub(crate) fn new_roots(&mut self) -> Result<KVec<(usize, BusAddr)>, VbusError> {
        let before = self.roots.len();
        match &self.layout {
            Layout::Virtual(bus) => {
                if let Some(root) = bus.root() {
                    self.roots.insert(root)?;
                }
            }
            Layout::Passthrough => {
                let devs = &self.devs;
                vbus::collect_passthrough_roots(
                    devs.iter().map(|e| e.dev.bdf()),
                    |d| {
                        let Some(e) = devs.iter().find(|e| e.dev.bdf() == d) else {
                            return false;
                        };
                        e.dev.pdev().upstream_bridges().any(|b| {
                            let Some(b) = Bdf::from_raw(
                                b.domain_nr(),
                                b.bus_number().into(),
                                b.devfn().into(),
                            ) else {
                                return false;
                            };
                            devs.iter().any(|x| x.dev.bdf() == b)
                        })
                    },
                    &mut self.roots,
                )?;
            }
        }
        let mut out = KVec::new();
        for (i, root) in self.roots.iter().enumerate().skip(before) {
            if out.push((i, *root), GFP_KERNEL).is_err() {
                break;
            }
        }
        Ok(out)
    }

    /// The number of published roots.
    pub(crate) fn root_count(&self) -> usize {
        self.roots.len()
    }
}

/// Why a device could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    /// The topology refused it.
    Vbus(VbusError),
    /// Out of memory.
    NoMem,
}
