// SPDX-License-Identifier: GPL-2.0

//! Xen PCI frontend (`pcifront`): makes PCI devices exported by a backend domain visible to this
//! PV guest's own drivers.
//!
//! The backend (`xen-pciback`, or the Rust `pciback`) exports one or more PCI root buses over a
//! xenbus device of type `pci`. This driver connects to it ([`xenbus`]), creates the root buses
//! with configuration space accessors that forward each access to the backend ([`bus`], [`ops`]),
//! and lets the PCI core enumerate the devices and bind their drivers.
//!
//! MSI and MSI-X are enabled through the backend ([`msi`]). The backend's PCIe AER requests
//! (dom0's error recovery of an exported device) are handed to the guest's driver of the device
//! ([`aer`]).

use kernel::{
    driver,
    prelude::*,
    xen::{
        self,
        pci::FrontendOpsRegistration,
        xenbus::FrontendAdapter, //
    },
};

// Shared with pciback and the host tests; not every item is used here.
#[allow(dead_code)]
#[path = "../xenpci_common/mod.rs"]
mod common;

mod aer;
mod bus;
mod msi;
mod ops;
mod stats;
mod xenbus;

module! {
    type: PcifrontModule,
    name: "pcifront",
    authors: ["The xen-rust-pci authors"],
    description: "Xen PCI frontend (Rust)",
    license: "GPL",
    alias: ["xen:pci"],
    params: {
        // Writable at run time; not in C, whose frontend never spins (see `common::roundtrip`).
        yield_when_preempted: AtomicBoolParam {
            default: AtomicBoolParam::new(true),
            description: "After a spin the hypervisor preempted, try yielding the CPU after each post and keep it for a while if it shortens the round trips (0: never yield)",
            permissions: 0o644,
        },
        // Writable at run time; an extension of the protocol that both ends agree on in
        // xenstore, and C backends do not offer (see `common::pciif::XEN_PCIF_WATCHING_BIT`).
        quiet_answers: AtomicBoolParam {
            default: AtomicBoolParam::new(true),
            description: "While a round trip spins for its answer, ask a backend that offers it (feature-quiet-answers) not to signal the answer, which the spin sees (0: every answer signalled)",
            permissions: 0o644,
        },
    },
}

/// The `quiet_answers` parameter, read at each post.
fn quiet_answers() -> bool {
    module_parameters::quiet_answers.value_ref().get()
}

/// The `yield_when_preempted` parameter, read at each post.
fn yield_when_preempted() -> bool {
    module_parameters::yield_when_preempted.value_ref().get()
}

#[pin_data]
struct PcifrontModule {
    /// Dropped first: the devices, and with them every user of the MSI hooks, go before the
    /// hooks do.
    #[pin]
    _driver: driver::Registration<FrontendAdapter<xenbus::PcifrontDriver>>,
    /// The MSI hooks.
    _msi: FrontendOpsRegistration<msi::Msi>,
    /// The statistics directory, removed after the driver (and every connection's file).
    _debugfs: stats::Debugfs,
}

impl kernel::InPlaceModule for PcifrontModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // Only PV guests reach their PCI devices through a backend; dom0 owns them.
            if !xen::is_pv_domain() || xen::is_initial_domain() || !xen::has_pv_devices() {
                return Err(ENODEV);
            }

            // Installed before the driver, so that the devices found at probe time can use
            // MSI. Only a PCI frontend holds them: the C `xen-pcifront`, which also holds the
            // driver name this one registers.
            let msi = FrontendOpsRegistration::new().inspect_err(|_| {
                pr_err!("another PCI frontend (xen-pcifront?) is loaded: unload it first\n");
            })?;

            // SAFETY: Called once, here, before the driver is registered.
            let debugfs = unsafe { stats::Debugfs::create() };

            Ok(try_pin_init!(PcifrontModule {
                _driver <- driver::Registration::new(c"pcifront", module),
                _msi: msi,
                _debugfs: debugfs,
            }))
        })
    }
}
