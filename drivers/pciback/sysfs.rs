// SPDX-License-Identifier: GPL-2.0

//! The attributes of the `pciback` PCI driver, in `/sys/bus/pci/drivers/pciback/`, with the
//! names, syntax and output of the C driver, which toolstacks (libxl's
//! `xl pci-assignable-add/-remove/-list`) rely on:
//!
//! - `new_slot` (write-only): adds `[DDDD:]BB:SS.F`, `[DDDD:]BB:SS.*` or `[DDDD:]BB:*.*` to the
//!   seize list, each function once. It does not bind: write the address to `bind` next (or
//!   `drivers_probe`) to seize a device that is not bound yet.
//! - `remove_slot` (write-only): removes every listed function the address or wildcard names;
//!   `ENOENT` if none. Devices already seized stay seized until unbound.
//! - `slots` (read-only): the seize list, one `DDDD:BB:SS.F` line per function.
//!
//! - `permissive` (read-write): writing the exact address of a seized device lets its guest
//!   write the registers no field covers; reading lists those devices. Unlike C, the grant ends
//!   when the guest releases the device (libxl writes it again for each guest configured with
//!   `permissive=1`), so a later guest does not inherit it.
//! - `allow_interrupt_control` (read-write): the same for the guest's control of the INTx
//!   disable bit and the MSI/MSI-X enable bits (for a stub domain serving an HVM guest); ends at
//!   release, as in C.
//! - `quirks` (read-write): writing `[DDDD:]BB:SS.F-REG:SIZE:MASK` (hex) adds a field that passes
//!   the guest's reads of `SIZE` bytes at `REG` to the hardware, and its writes of the bits in
//!   `MASK` (C stores the mask but applies none). A quirk overlapping an existing field is
//!   refused (`EEXIST`; C ignores it silently). Quirks are about the device, not the guest: they
//!   last until the device is unbound (C drops them at every release). Reading lists, for each
//!   seized device, `BB:SS.F`, its IDs, then every field as `offset:size:mask`, as C does.
//!
//! - `irq_handlers` (read-only) and `irq_handler_state` (write-only): the state of each seized
//!   device's dom0 INTx handler, `BDF:on|off:acking|not acking:COUNT`, and its switch (writing
//!   the exact address toggles it), as in C.
//!
//! - `do_flr` (write-only): writing the exact address of a seized device resets the function
//!   (the kernel's reset methods in order, with its device lock held), also while a guest holds
//!   it, as the device's own `reset` file would. Without a reset method that applies, it resets
//!   the device's bus when every function on it is `pciback`'s and no guest's; else `ENOTTY`.
//!   libxl uses it when present (upstream C has no such file).
//!
//! - `resets` (read-only): for each seized device, its reset methods in the kernel's order and
//!   the outcome of its resets at seize time, at the last release and at the last `do_flr`, and
//!   whether a failed reset keeps it from being exported:
//!   `BDF methods=flr,bus|none seize=O release=O do_flr=O assignable=yes|no` (see
//!   `common::reset`; not in C).
//!
//! - `allow_dma_peers` (read-write): writing the exact address of a seized device lets the
//!   backend export it although devices it can reach by DMA without the IOMMU (no ACS between
//!   them) are used by a dom0 driver or by another guest, which it refuses otherwise (see
//!   `isolation`); reading lists those devices. It lasts until the device is unbound (not in C,
//!   which checks nothing).
//!
//! A malformed address fails the write with `EINVAL` and a log line saying what is wrong and
//! where, and changes nothing. An address that is not a seized device fails with `ENODEV`.

use kernel::{
    driver::attribute::{
        AttributeOps,
        ShowBuffer, //
    },
    pci,
    prelude::*,
};

use core::marker::PhantomData;

use kernel::sync::Arc;

use crate::{
    common::{
        bdf::{self, BdfPattern},
        conf::VirtualConfig,
    },
    stub::{
        Seized,
        SEIZED, //
    },
};

/// Parses what was written to the attribute `name`, logging why it is refused.
fn parse_slot(name: &str, input: &[u8]) -> Result<BdfPattern> {
    bdf::parse_slot(input).map_err(|e| {
        pr_err!("{}: {}\n", name, format_args!("{e}"));
        EINVAL
    })
}

/// `new_slot`.
pub(crate) struct NewSlot;

#[vtable]
impl AttributeOps for NewSlot {
    fn store(input: &[u8]) -> Result {
        let pattern = parse_slot("new_slot", input)?;
        let added = SEIZED.lock().add(&pattern)?;
        if added > 0 {
            pr_info!(
                "new_slot: {} added to the seize list\n",
                format_args!("{pattern}")
            );
        }
        Ok(())
    }
}

/// `remove_slot`.
pub(crate) struct RemoveSlot;

#[vtable]
impl AttributeOps for RemoveSlot {
    fn store(input: &[u8]) -> Result {
        let pattern = parse_slot("remove_slot", input)?;
        match SEIZED.lock().remove(&pattern) {
            0 => Err(ENOENT),
            _ => {
                pr_info!(
                    "remove_slot: {} removed from the seize list\n",
                    format_args!("{pattern}")
                );
                Ok(())
            }
        }
    }
}

/// `slots`.
pub(crate) struct Slots;

#[vtable]
impl AttributeOps for Slots {
    fn show(out: &mut ShowBuffer<'_>) -> Result {
        for bdf in SEIZED.lock().ids() {
            // A full page ends the list, between two lines, as the C driver does.
            if out.emit(format_args!("{bdf}\n")).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Parses the exact address written to the attribute `name` and finds that seized device.
fn seized_device(name: &str, input: &[u8]) -> Result<Arc<Seized>> {
    let bdf = bdf::parse_exact(input).map_err(|e| {
        pr_err!("{}: {}\n", name, format_args!("{e}"));
        EINVAL
    })?;
    Seized::find(bdf).ok_or_else(|| {
        pr_err!(
            "{}: {} is not seized by pciback\n",
            name,
            format_args!("{bdf}")
        );
        ENODEV
    })
}

/// A grant to the guest of the device, ended when it releases the device: `permissive` or
/// `allow_interrupt_control`.
pub(crate) trait Grant: 'static {
    /// The attribute's name.
    const NAME: &'static str;
    /// What the grant allows, for the log.
    const ALLOWS: &'static str;
    /// Whether the device has the grant.
    fn granted(config: &VirtualConfig) -> bool;
    /// Grants it.
    fn grant(config: &mut VirtualConfig);
}

/// `permissive`.
pub(crate) struct Permissive;

impl Grant for Permissive {
    const NAME: &'static str = "permissive";
    const ALLOWS: &'static str =
        "permissive mode: the guest may write any register no field covers, which may be unsafe";
    fn granted(config: &VirtualConfig) -> bool {
        config.permissive()
    }
    fn grant(config: &mut VirtualConfig) {
        config.set_permissive(true);
    }
}

/// `allow_interrupt_control`.
pub(crate) struct AllowInterruptControl;

impl Grant for AllowInterruptControl {
    const NAME: &'static str = "allow_interrupt_control";
    const ALLOWS: &'static str = "the guest may control INTx, MSI and MSI-X enabling";
    fn granted(config: &VirtualConfig) -> bool {
        config.allow_interrupt_control()
    }
    fn grant(config: &mut VirtualConfig) {
        config.set_allow_interrupt_control(true);
    }
}

/// The attribute of a [`Grant`]: write an address to grant, read to list.
pub(crate) struct GrantAttribute<G>(PhantomData<G>);

#[vtable]
impl<G: Grant> AttributeOps for GrantAttribute<G> {
    fn store(input: &[u8]) -> Result {
        let dev = seized_device(G::NAME, input)?;
        dev.with_config(G::grant);
        dev_warn!(dev.pdev().as_ref(), "{}\n", G::ALLOWS);
        Ok(())
    }

    fn show(out: &mut ShowBuffer<'_>) -> Result {
        let mut full = false;
        Seized::for_each(|dev| {
            if !full && dev.with_config(|config| G::granted(config)) {
                full = out.emit(format_args!("{}\n", dev.bdf())).is_err();
            }
        });
        Ok(())
    }
}

/// `quirks`.
pub(crate) struct Quirks;

#[vtable]
impl AttributeOps for Quirks {
    fn store(input: &[u8]) -> Result {
        let quirk = bdf::parse_quirk(input).map_err(|e| {
            pr_err!("quirks: {}\n", format_args!("{e}"));
            EINVAL
        })?;
        let dev = Seized::find(quirk.bdf).ok_or_else(|| {
            pr_err!(
                "quirks: {} is not seized by pciback\n",
                format_args!("{}", quirk.bdf)
            );
            ENODEV
        })?;
        dev.with_config(|config| {
            config.add_quirk(quirk.reg.into(), quirk.size.bytes().into(), quirk.mask)
        })
        .map_err(|e| {
            pr_err!("quirks: {}: {:?}\n", format_args!("{quirk}"), e);
            Error::from_errno(e.to_errno())
        })?;
        pr_info!("quirks: {} added\n", format_args!("{quirk}"));
        Ok(())
    }

    fn show(out: &mut ShowBuffer<'_>) -> Result {
        let mut full = false;
        Seized::for_each(|dev| {
            if full {
                return;
            }
            let (bdf, pdev) = (dev.bdf(), dev.pdev());
            // One device at a time: a full page ends the list between two devices.
            full = out
                .emit(format_args!(
                    "{:02x}:{:02x}.{:01x}\n\t{:04x}:{:04x}:{:04x}:{:04x}\n",
                    bdf.bus(),
                    bdf.slot(),
                    bdf.func(),
                    pdev.vendor_id().as_raw(),
                    pdev.device_id(),
                    pdev.subsystem_vendor_id(),
                    pdev.subsystem_device_id()
                ))
                .is_err();
            dev.with_config(|config| {
                for f in config.fields() {
                    if full {
                        break;
                    }
                    full = out
                        .emit(format_args!(
                            "\t\t{:08x}:{:01x}:{:08x}\n",
                            f.offset, f.size, f.mask
                        ))
                        .is_err();
                }
            });
        });
        Ok(())
    }
}

/// `irq_handlers`: for each seized device, `BDF:on|off:acking|not acking:COUNT`, the state
/// of its dom0 INTx handler (see [`crate::intx`]), in C's format.
pub(crate) struct IrqHandlers;

#[vtable]
impl AttributeOps for IrqHandlers {
    fn show(out: &mut ShowBuffer<'_>) -> Result {
        let mut full = false;
        Seized::for_each(|dev| {
            if full {
                return;
            }
            let (on, ack, handled) = dev.intx().get();
            full = out
                .emit(format_args!(
                    "{}:{}:{}ing:{}\n",
                    dev.bdf(),
                    if on { "on" } else { "off" },
                    if ack { "ack" } else { "not ack" },
                    handled
                ))
                .is_err();
        });
        Ok(())
    }
}

/// `do_flr`: writing the exact address of a seized device resets it, with its device lock held
/// (libxl writes it before it gives a device to a guest, and at a detach before the backend
/// releases it; upstream C has no such file, and libxl then falls back to the device's own
/// `reset`).
pub(crate) struct DoFlr;

#[vtable]
impl AttributeOps for DoFlr {
    fn store(input: &[u8]) -> Result {
        let dev = seized_device("do_flr", input)?;
        dev.reset_for_toolstack()
    }
}

/// `allow_dma_peers`: write an address to let the device go to a guest whatever its DMA peers,
/// read to list (see the module documentation).
pub(crate) struct AllowDmaPeers;

#[vtable]
impl AttributeOps for AllowDmaPeers {
    fn store(input: &[u8]) -> Result {
        let dev = seized_device("allow_dma_peers", input)?;
        dev.allow_dma_peers();
        dev_warn!(
            dev.pdev().as_ref(),
            "may go to a guest while devices it reaches by DMA without the IOMMU are used by dom0 or another guest, which may be unsafe\n"
        );
        Ok(())
    }

    fn show(out: &mut ShowBuffer<'_>) -> Result {
        let mut full = false;
        Seized::for_each(|dev| {
            if !full && dev.dma_peers_allowed() {
                full = out.emit(format_args!("{}\n", dev.bdf())).is_err();
            }
        });
        Ok(())
    }
}

/// `resets`: one line per seized device (see the module documentation).
pub(crate) struct Resets;

/// The reset methods of a device, as its `reset_method` file lists them but comma-separated, or
/// `none`.
struct MethodList(pci::ResetMethods);

impl core::fmt::Display for MethodList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, m) in self.0.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { "," }, m.name())?;
        }
        Ok(())
    }
}

#[vtable]
impl AttributeOps for Resets {
    fn show(out: &mut ShowBuffer<'_>) -> Result {
        let mut full = false;
        Seized::for_each(|dev| {
            if !full {
                full = out
                    .emit(format_args!(
                        "{} methods={} {}\n",
                        dev.bdf(),
                        MethodList(dev.pdev().reset_methods()),
                        dev.resets()
                    ))
                    .is_err();
            }
        });
        Ok(())
    }
}

/// `irq_handler_state`: writing the exact address of a seized device toggles its INTx handler
/// on or off (acknowledging is turned on with it), as in C.
pub(crate) struct IrqHandlerState;

#[vtable]
impl AttributeOps for IrqHandlerState {
    fn store(input: &[u8]) -> Result {
        let dev = seized_device("irq_handler_state", input)?;
        let on = dev.intx().toggle();
        dev_info!(
            dev.pdev().as_ref(),
            "INTx handler turned {}\n",
            if on { "on" } else { "off" }
        );
        Ok(())
    }
}

kernel::driver_attribute_groups! {
    pub(crate) static STUB_ATTRIBUTES = {
        c"new_slot" => NewSlot,
        c"remove_slot" => RemoveSlot,
        c"slots" => Slots,
        c"permissive" => GrantAttribute<Permissive>,
        c"allow_interrupt_control" => GrantAttribute<AllowInterruptControl>,
        c"quirks" => Quirks,
        c"irq_handlers" => IrqHandlers,
        c"irq_handler_state" => IrqHandlerState,
        c"do_flr" => DoFlr,
        c"resets" => Resets,
        c"allow_dma_peers" => AllowDmaPeers,
    };
}
