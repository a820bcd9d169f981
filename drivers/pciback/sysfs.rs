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
//! A malformed address fails the write with `EINVAL` and a log line saying what is wrong and
//! where, and changes nothing.

use kernel::{
    driver::attribute::{
        AttributeOps,
        ShowBuffer, //
    },
    prelude::*,
};

use crate::{
    common::bdf::{self, BdfPattern},
    stub::SEIZED,
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
            pr_info!("new_slot: {} added to the seize list\n", format_args!("{pattern}"));
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
                pr_info!("remove_slot: {} removed from the seize list\n", format_args!("{pattern}"));
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

kernel::driver_attribute_groups! {
    pub(crate) static STUB_ATTRIBUTES = {
        c"new_slot" => NewSlot,
        c"remove_slot" => RemoveSlot,
        c"slots" => Slots,
    };
}
