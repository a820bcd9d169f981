// SPDX-License-Identifier: GPL-2.0

//! Xen PCI backend (`pciback`): seizes PCI devices so that no host driver
//! touches them, for export to PV guests.
//!
//! The PCI driver is called `pciback`, like the C `xen-pciback`'s, so that
//! toolstacks find `/sys/bus/pci/drivers/pciback/` where they expect it. It
//! matches every device but accepts only those in its seize list (the `hide=`
//! parameter), and it has no device table, so it is never autoloaded for every
//! PCI device of the machine.

use kernel::{
    device::Core,
    device_id::IdArray,
    driver,
    pci,
    prelude::*, //
};

// Shared with pcifront and the host tests; not every item is used here.
#[allow(dead_code)]
#[path = "../xenpci_common/mod.rs"]
mod common;

use common::bdf::{self, Bdf, BdfPattern};

module! {
    type: PcibackModule,
    name: "pciback",
    authors: ["The xen-rust-pci authors"],
    description: "Xen PCI-device backend (Rust)",
    license: "GPL",
    params: {
        hide: StringParam {
            default: StringParam::EMPTY,
            description: "Devices to seize at load: (DDDD:BB:SS.F) groups, SS.* and *.* wildcards",
        },
    },
}

/// The devices this driver may bind: from `hide=` now, from `new_slot` later.
struct SeizeList {
    ids: KVec<BdfPattern>,
}

impl SeizeList {
    fn contains(&self, bdf: &Bdf) -> bool {
        self.ids.iter().any(|p| p.matches(bdf))
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in `PcibackModule::init` before anything else uses it.
    unsafe(uninit) static SEIZE: Mutex<SeizeList> = SeizeList { ids: KVec::new() };
}

/// Parses the whole `hide=` value before anything is changed: one bad group
/// fails the load with `EINVAL` and a log line naming it.
fn parse_hide_param(value: &[u8]) -> Result<KVec<BdfPattern>> {
    let mut ids = KVec::new();
    if value.is_empty() {
        return Ok(ids);
    }
    if let Err(e) = bdf::validate_hide(value) {
        pr_err!("hide=: {}\n", format_args!("{e}"));
        return Err(EINVAL);
    }
    for pattern in bdf::parse_hide(value) {
        // Validated above: every group parses.
        let pattern = pattern.map_err(|_| EINVAL)?;
        ids.push(pattern, GFP_KERNEL)?;
    }
    Ok(ids)
}

/// The PCI driver that holds seized devices.
struct Stub;

/// Per-device data of a seized device.
struct Seized {
    bdf: Bdf,
}

/// Matches every device; `probe` decides. Built without a module device table
/// on purpose: no `pci:*` alias, so the module is never autoloaded.
static ANY_DEVICE: IdArray<pci::DeviceId, (), 1> =
    IdArray::new_without_index([pci::DeviceId::from_class(0, 0)]);

impl Stub {
    fn try_probe(pdev: &pci::Device<Core<'_>>) -> Result<Seized> {
        let dev: &kernel::device::Device = pdev.as_ref();
        let bdf = bdf::parse_exact(dev.name().to_bytes()).map_err(|_| ENODEV)?;
        if !SEIZE.lock().contains(&bdf) {
            return Err(ENODEV);
        }
        dev_info!(dev, "seized\n");
        Ok(Seized { bdf })
    }
}

impl pci::Driver for Stub {
    type IdInfo = ();
    type Data<'bound> = Seized;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &ANY_DEVICE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        Self::try_probe(pdev)
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        dev_info!(pdev.as_ref(), "released {}\n", format_args!("{}", this.bdf));
    }
}

#[pin_data]
struct PcibackModule {
    #[pin]
    _stub: driver::Registration<pci::Adapter<Stub>>,
}

impl kernel::InPlaceModule for PcibackModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            let ids = parse_hide_param(module_parameters::hide.value_ref().as_bytes())?;
            let n = ids.len();
            // SAFETY: Called once, before the driver is registered, so before any
            // other use of `SEIZE`.
            unsafe { SEIZE.init() };
            SEIZE.lock().ids = ids;
            if n > 0 {
                pr_info!("{} device pattern(s) to seize from hide=\n", n);
            }
            Ok(try_pin_init!(PcibackModule {
                _stub <- driver::Registration::new(c"pciback", module),
            }))
        })
    }
}
