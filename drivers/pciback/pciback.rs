// SPDX-License-Identifier: GPL-2.0

//! Xen PCI backend (`pciback`): seizes PCI devices so that no host driver touches them, and
//! exports them to PV guests.
//!
//! Two drivers in one module, under the names toolstacks expect:
//!
//! - the PCI driver `pciback` ([`stub`]), so that `/sys/bus/pci/drivers/pciback/` is where
//!   `xl` looks. It matches every device but accepts only those in its seize list (the `hide=`
//!   parameter), and it has no device table, so it is never autoloaded for every PCI device of
//!   the machine;
//! - the xenbus backend `xen-pciback` for devices of type `pci` ([`xenbus`]), which exports
//!   seized devices to the guest of each backend device and serves its configuration-space
//!   requests ([`ops`]) through the shared engine ([`conf`]), on a virtual bus or at the host
//!   addresses ([`topology`]).

use kernel::{
    driver,
    pci,
    prelude::*, //
};

// Shared with pcifront and the host tests; not every item is used here.
#[allow(dead_code)]
#[path = "../xenpci_common/mod.rs"]
mod common;

mod aer;
mod conf;
mod intx;
mod isolation;
mod ops;
mod stub;
mod sysfs;
mod topology;
mod xenbus;

use common::bdf::{self, BdfPattern};
use stub::SEIZED;

module! {
    type: PcibackModule,
    name: "pciback",
    authors: ["The xen-rust-pci authors"],
    description: "Xen PCI-device backend (Rust)",
    license: "GPL",
    alias: ["xen-backend:pci"],
    params: {
        hide: StringParam {
            default: StringParam::EMPTY,
            description: "Devices to seize at load: (DDDD:BB:SS.F) groups, SS.* and *.* wildcards",
            permissions: 0o444,
        },
        passthrough: bool {
            default: false,
            description: "Guests see the real PCI addresses (default: a virtual bus 0000:00)",
            permissions: 0o444,
        },
        // Writable at run time, as in C: the next request of any guest uses the new value.
        permissive: AtomicBoolParam {
            default: AtomicBoolParam::new(false),
            description: "Let guests write configuration-space fields the engine does not handle",
            permissions: 0o644,
        },
        // Writable at run time; not in C, which checks nothing (see `isolation`).
        dma_isolation: AtomicBoolParam {
            default: AtomicBoolParam::new(true),
            description: "Refuse to export a device whose DMA peers (no ACS) are used by dom0 or another guest (0: only warn)",
            permissions: 0o644,
        },
        // Writable at run time; not in C, which serves every request in a work item.
        fast_path: AtomicBoolParam {
            default: AtomicBoolParam::new(true),
            description: "Serve guests' configuration reads and plain writes on the event channel's interrupt (0: always in a work item)",
            permissions: 0o644,
        },
        // Writable at run time (Linux 7.3's C xen-pciback has no such parameter).
        verbose_request: AtomicBoolParam {
            default: AtomicBoolParam::new(false),
            description: "Log every guest request and its answer (rate-limited)",
            permissions: 0o644,
        },
    },
    // Built in, seize the `hide=` devices before the built-in device drivers bind them (C's
    // `fs_initcall`): those of directories linked before this one (`drivers/virtio/`, ...)
    // would otherwise be first.
    initcall: fs,
}

/// Whether guests see host addresses (`passthrough=1`), read when a backend device is probed.
fn passthrough() -> bool {
    module_parameters::passthrough.value()
}

/// The `verbose_request` parameter, read at each request.
fn verbose_request() -> bool {
    module_parameters::verbose_request.value_ref().get()
}

/// The `fast_path` parameter, read at each event.
fn fast_path() -> bool {
    module_parameters::fast_path.value_ref().get()
}

/// The `dma_isolation` parameter, read at each export.
fn dma_isolation() -> bool {
    module_parameters::dma_isolation.value_ref().get()
}

/// The global `permissive` parameter.
fn permissive() -> bool {
    module_parameters::permissive.value_ref().get()
}

/// Parses the whole `hide=` value before anything is changed: one bad group fails the load
/// with `EINVAL` and a log line naming it.
fn parse_hide_param(value: &[u8]) -> Result<KVec<BdfPattern>> {
    let mut patterns = KVec::new();
    if value.is_empty() {
        return Ok(patterns);
    }
    if let Err(e) = bdf::validate_hide(value) {
        pr_err!("hide=: {}\n", format_args!("{e}"));
        return Err(EINVAL);
    }
    for pattern in bdf::parse_hide(value) {
        // Validated above: every group parses.
        let pattern = pattern.map_err(|_| EINVAL)?;
        patterns.push(pattern, GFP_KERNEL)?;
    }
    Ok(patterns)
}

/// Says which `hide=` devices are present but were not seized when the driver was registered.
///
/// A host driver loaded before `pciback` keeps the devices it bound: the PCI core never hands a
/// bound device to another driver. The C driver stays silent then, and administrators find out
/// when the guest does not get its device; say it, and how to hand the device over.
fn report_unseized(patterns: &[BdfPattern]) {
    for bdf in patterns.iter().flatten() {
        let Some(_pdev) = pci::Device::get_by_slot(bdf.domain().into(), bdf.bus(), bdf.devfn())
        else {
            continue;
        };
        if !SEIZED.lock().is_seized(&bdf) {
            pr_warn!(
                "hide=: {} not seized: it is bound to another driver (or its probe failed, see \
                 above); unbind it, then write {} to /sys/bus/pci/drivers/pciback/bind\n",
                format_args!("{bdf}"),
                format_args!("{bdf}")
            );
        }
    }
}

/// The module. Fields are dropped in declaration order (whatever order `init` initialises
/// them in): the backend first, which gives every exported device back (reset, restored), then
/// the PCI driver, which unbinds the seized devices, then the registry's memory.
#[pin_data]
struct PcibackModule {
    // Registered after the PCI driver (backends find the devices it seized), unregistered
    // before it.
    #[pin]
    _backend: driver::Registration<kernel::xen::xenbus::BackendAdapter<xenbus::Backend>>,
    #[pin]
    _stub: driver::Registration<pci::Adapter<stub::Stub>>,
    _registry: stub::FreeRegistry,
}

impl kernel::InPlaceModule for PcibackModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // Only Xen's initial domain owns the devices it exports (as C).
            if !kernel::xen::is_initial_domain() {
                return Err(ENODEV);
            }
            let patterns = match parse_hide_param(module_parameters::hide.value_ref().as_bytes()) {
                Ok(patterns) => patterns,
                // Built in, a load that fails leaves the machine without the driver until the
                // next boot: register it all the same, with nothing to seize (devices can still
                // be seized through `new_slot` and `bind`). The reason was logged.
                Err(e) if e == EINVAL && !cfg!(MODULE) => {
                    pr_err!("hide=: ignored: no device is seized at boot\n");
                    KVec::new()
                }
                Err(e) => return Err(e),
            };
            // SAFETY: Called once, before the drivers are registered, so before any other use
            // of `SEIZED`.
            unsafe { SEIZED.init() };
            // SAFETY: Called once, before the drivers are registered, so before any event
            // channel is bound and its handler uses `IRQ_BUDGET`.
            unsafe { xenbus::IRQ_BUDGET.init() };
            // Frees what the registry holds if the load fails from here on, or at unload.
            let registry = stub::FreeRegistry;
            SEIZED.lock().create_debugfs();
            let mut n = 0;
            for pattern in &patterns {
                n += SEIZED.lock().add(pattern)?;
            }
            if n > 0 {
                pr_info!("{} function(s) to seize from hide=\n", n);
            }
            // Initialised in this order; on a failure the fields already initialised are
            // dropped (the registry's memory with them).
            Ok(try_pin_init!(PcibackModule {
                _registry: registry,
                _stub <- driver::Registration::new(c"pciback", module),
                _backend <- driver::Registration::new(c"xen-pciback", module),
            })
            .pin_chain(move |_| {
                report_unseized(&patterns);
                Ok(())
            }))
        })
    }
}
