// SPDX-License-Identifier: GPL-2.0

//! Xen PCI frontend (`pcifront`): makes PCI devices exported by a backend domain visible to this
//! PV guest's own drivers.
//!
//! The backend (`xen-pciback`, or the Rust `pciback`) exports one or more PCI root buses over a
//! xenbus device of type `pci`. This driver connects to it ([`xenbus`]), creates the root buses
//! with configuration space accessors that forward each access to the backend ([`bus`], [`ops`]),
//! and lets the PCI core enumerate the devices and bind their drivers.
//!
//! Not supported (unlike the C `xen-pcifront`): MSI/MSI-X through the backend and PCIe AER
//! notifications from it.

use kernel::{
    driver,
    prelude::*,
    xen::{
        self,
        xenbus::FrontendAdapter, //
    },
};

// Shared with pciback and the host tests; not every item is used here.
#[allow(dead_code)]
#[path = "../xenpci_common/mod.rs"]
mod common;

mod bus;
mod ops;
mod xenbus;

module! {
    type: PcifrontModule,
    name: "pcifront",
    authors: ["The xen-rust-pci authors"],
    description: "Xen PCI frontend (Rust)",
    license: "GPL",
    alias: ["xen:pci"],
}

#[pin_data]
struct PcifrontModule {
    #[pin]
    _driver: driver::Registration<FrontendAdapter<xenbus::PcifrontDriver>>,
}

impl kernel::InPlaceModule for PcifrontModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // Only PV guests reach their PCI devices through a backend; dom0 owns them.
            if !xen::is_pv_domain() || xen::is_initial_domain() || !xen::has_pv_devices() {
                return Err(ENODEV);
            }

            Ok(try_pin_init!(PcifrontModule {
                _driver <- driver::Registration::new(c"pcifront", module),
            }))
        })
    }
}
