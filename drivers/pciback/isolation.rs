// SPDX-License-Identifier: GPL-2.0

//! Isolation before export: the DMA peers of a seized device, and what holds each of them.
//!
//! The peers are found as the kernel's IOMMU core builds its groups (`pci_device_group()`,
//! which dom0 under Xen does not run: Xen drives the IOMMU):
//!
//! - below the highest bridge above the device whose path to the root bus lacks ACS
//!   isolation ([`pci::AcsFlags::ISOLATION`]), every device may reach every other: all of
//!   them are peers (a conventional PCI bus behind a PCIe-to-PCI bridge is such a case), and
//!   so are the devices below the other functions of that bridge's slot when neither has ACS
//!   (a multi-function root port without it);
//! - otherwise, when the device and another function of its slot both lack ACS (a
//!   multi-function device without it), that function is a peer.
//!
//! What holds each peer, and whether that stops the export, is the shared code's rule
//! (`common::isolation`). The check runs in the backend's XenStore watch (`export_index`),
//! once the device is claimed (a peer's export checked later sees this guest hold it); all
//! backends' watches run on the one `xenwatch` thread, so two guests' exports are not checked
//! at once. A peer bound to a dom0 driver after the check is not noticed.
//!
//! A DMA alias of the device ([`pci::Device::is_dma_alias_of`]: a function that issues DMA
//! with another's requester ID, by a quirk) is a peer too, whatever the ACS. Only the
//! device's own aliases are, not those of its peers (the IOMMU core merges those groups too).

use kernel::{
    pci::{
        self,
        AcsFlags, //
    },
    xen::DomId,
};

use crate::{
    common::{
        bdf::Bdf,
        isolation::{
            Conflicts,
            Holder, //
        },
    },
    stub::Seized,
};

/// Finds the DMA peers of `pdev` and returns those that keep it from going to `guest`.
pub(crate) fn conflicts(pdev: &pci::Device, guest: DomId) -> Conflicts {
    let mut conflicts = Conflicts::new(guest.into());
    for_each_peer(pdev, |peer| {
        if let Some(bdf) = bdf_of(peer) {
            conflicts.add(bdf, holder(peer, bdf));
        }
    });
    conflicts
}

/// Calls `f` once for every DMA peer of `pdev` (see the module documentation).
fn for_each_peer(pdev: &pci::Device, mut f: impl FnMut(&pci::Device)) {
    let top = pdev
        .upstream_bridges()
        .take_while(|bridge| !bridge.acs_path_enabled(AcsFlags::ISOLATION))
        .last();
    let alone = pdev.acs_enabled(AcsFlags::ISOLATION);
    // Below `top`, or below another function of its slot when neither has ACS (a
    // multi-function root port without it).
    let shares = |b: &pci::Device| {
        top.as_ref().is_some_and(|top| {
            is(b, top)
                || (same_slot(b, top)
                    && !top.acs_enabled(AcsFlags::ISOLATION)
                    && !b.acs_enabled(AcsFlags::ISOLATION))
        })
    };
    for dev in pci::Device::all() {
        if is(&dev, pdev) {
            continue;
        }
        let peer = if top.is_some() {
            shares(&dev) || dev.upstream_bridges().any(|b| shares(&b))
        } else {
            // No bridge above without ACS: the other functions of the slot, when neither has
            // ACS (a multi-function device without it).
            !alone && same_slot(&dev, pdev) && !dev.acs_enabled(AcsFlags::ISOLATION)
        };
        if peer || pdev.is_dma_alias_of(&dev) {
            f(&dev);
        }
    }
}

/// Whether `a` and `b` are functions of one slot.
fn same_slot(a: &pci::Device, b: &pci::Device) -> bool {
    a.domain_nr() == b.domain_nr() && a.bus_number() == b.bus_number() && a.slot() == b.slot()
}

/// Whether `a` and `b` are the same device.
fn is(a: &pci::Device, b: &pci::Device) -> bool {
    core::ptr::eq(a, b)
}

/// The address of `pdev`.
fn bdf_of(pdev: &pci::Device) -> Option<Bdf> {
    Bdf::from_raw(
        pdev.domain_nr(),
        pdev.bus_number().into(),
        pdev.devfn().into(),
    )
}

/// What holds the peer `peer` at `bdf`.
fn holder(peer: &pci::Device, bdf: Bdf) -> Holder {
    if peer.is_bridge() {
        return Holder::Bridge;
    }
    if let Some(seized) = Seized::find(bdf) {
        return match seized.backend() {
            Some(backend) => Holder::Guest(backend.domid().into()),
            None => Holder::Pciback,
        };
    }
    if peer.has_driver() {
        Holder::Dom0Driver
    } else {
        Holder::Nothing
    }
}
