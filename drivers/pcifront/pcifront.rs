// SPDX-License-Identifier: GPL-2.0

//! Xen PCI frontend (`pcifront`): makes PCI devices exported by a backend
//! domain visible to this PV guest's own drivers.

use kernel::prelude::*;

module! {
    type: Pcifront,
    name: "pcifront",
    authors: ["The xen-rust-pci authors"],
    description: "Xen PCI frontend (Rust)",
    license: "GPL",
}

struct Pcifront;

impl kernel::Module for Pcifront {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("loaded\n");
        Ok(Pcifront)
    }
}

impl Drop for Pcifront {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
