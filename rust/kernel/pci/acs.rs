// SPDX-License-Identifier: GPL-2.0

//! PCI Access Control Services (ACS): whether a function's requests can reach other devices
//! without going upstream to the root complex, and through the IOMMU there.
//!
//! A function whose peer-to-peer requests are not redirected upstream can read and write its
//! peers' memory whatever the IOMMU says: the IOMMU core puts such functions in one group
//! (`pci_device_group()` in `drivers/iommu/iommu.c`), and a driver that hands a device to
//! another domain checks the same before it does.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::bindings;

/// A set of ACS controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcsFlags(u16);

impl AcsFlags {
    /// Source Validation: the port checks the requester ID of upstream requests.
    // CAST: The control bits are in the low 16 bits (a 16-bit register).
    pub const SOURCE_VALIDATION: Self = Self(bindings::PCI_ACS_SV as u16);
    /// P2P Request Redirect: peer-to-peer requests are sent upstream.
    // CAST: As above.
    pub const REQUEST_REDIRECT: Self = Self(bindings::PCI_ACS_RR as u16);
    /// P2P Completion Redirect: peer-to-peer completions are sent upstream.
    // CAST: As above.
    pub const COMPLETION_REDIRECT: Self = Self(bindings::PCI_ACS_CR as u16);
    /// Upstream Forwarding: requests are forwarded upstream, not reflected back downstream.
    // CAST: As above.
    pub const UPSTREAM_FORWARDING: Self = Self(bindings::PCI_ACS_UF as u16);

    /// The controls that isolate a function from its peers: the ones the IOMMU core requires
    /// (`REQ_ACS_FLAGS` in `drivers/iommu/iommu.c`).
    pub const ISOLATION: Self = Self(
        Self::SOURCE_VALIDATION.0
            | Self::REQUEST_REDIRECT.0
            | Self::COMPLETION_REDIRECT.0
            | Self::UPSTREAM_FORWARDING.0,
    );

    /// Returns the raw value (`PCI_ACS_*` bits).
    #[inline]
    pub const fn as_raw(self) -> u16 {
        self.0
    }
}

impl core::ops::BitOr for AcsFlags {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl Device {
    /// Returns whether the device has the ACS controls `flags` enabled, or needs none of them
    /// (`pci_acs_enabled()`).
    ///
    /// Single-function endpoints need none (they have no peer to reach but through their
    /// port); root and downstream ports, and the functions of a multi-function device, need the
    /// capability with the controls enabled; conventional PCI devices and PCIe-to-PCI bridges
    /// never isolate anything. Device-specific quirks come first, as for the IOMMU core.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::pci::{self, AcsFlags};
    /// // Whether the other functions of a multi-function device can reach this one directly.
    /// fn shares_functions(pdev: &pci::Device) -> bool {
    ///     !pdev.acs_enabled(AcsFlags::ISOLATION)
    /// }
    /// ```
    #[inline(never)]
    pub fn acs_enabled(&self, flags: AcsFlags) -> bool {
        // Not exported to modules: this wrapper, built into the kernel, must stay out of line
        // for modules to use it.
        //
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the function reads its capability and, for some quirks, its
        // configuration space, which is valid at any time in process context.
        unsafe { bindings::pci_acs_enabled(self.as_raw(), flags.as_raw()) }
    }

    /// Returns whether the device and every bridge above it, up to the root bus, have the ACS
    /// controls `flags` enabled or need none of them (as `pci_acs_path_enabled()` to the root).
    ///
    /// When this holds for a bridge, the devices below it are isolated from the devices
    /// elsewhere in the hierarchy.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::pci::{self, AcsFlags};
    /// // The highest bridge above `pdev` whose path to the root is not isolated, if any: every
    /// // device below it may reach every other without the IOMMU.
    /// fn shared_below(pdev: &pci::Device) -> Option<kernel::sync::aref::ARef<pci::Device>> {
    ///     pdev.upstream_bridges()
    ///         .take_while(|bridge| !bridge.acs_path_enabled(AcsFlags::ISOLATION))
    ///         .last()
    /// }
    /// ```
    pub fn acs_path_enabled(&self, flags: AcsFlags) -> bool {
        // Walked here rather than with `pci_acs_path_enabled(self, NULL, ..)`, which steps to
        // `bus->self` until a root bus and would reach NULL from a virtual function on a
        // virtual bus (no bridge, yet not a root); the upstream bridges of a virtual function
        // are those of its physical function.
        self.acs_enabled(flags) && self.upstream_bridges().all(|b| b.acs_enabled(flags))
    }

    /// Returns whether a driver is bound to the device.
    ///
    /// A snapshot: without the device lock, a driver may bind or unbind right after.
    pub fn has_driver(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the helper only reads the driver pointer once (`READ_ONCE`).
        unsafe { bindings::pci_dev_has_driver(self.as_raw()) }
    }

    /// Returns whether `self` and `other` are DMA aliases of each other: on one bus, one
    /// issues DMA with the other's requester ID (a quirk of the device, recorded in its DMA
    /// alias mask when it was found or by its driver), or, on any bus, one does its DMA
    /// through the other (`pci_real_dma_dev()`, a device behind a VMD controller).
    ///
    /// The IOMMU core cannot tell such devices apart, whatever their ACS: it puts them in one
    /// group.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::pci;
    /// // The devices the IOMMU sees as `pdev` by their requester ID.
    /// fn aliases(pdev: &pci::Device) -> usize {
    ///     pci::Device::all().filter(|d| pdev.is_dma_alias_of(d)).count()
    /// }
    /// ```
    #[inline(never)]
    pub fn is_dma_alias_of(&self, other: &Device) -> bool {
        // Not exported to modules: this wrapper, built into the kernel, must stay out of line
        // for modules to use it.
        //
        // An alias mask holds device numbers of the device's own bus, and
        // `pci_devs_are_dma_aliases()` does not compare the buses: only the devices of one bus
        // are compared with it.
        if self.domain_nr() == other.domain_nr() && self.bus_number() == other.bus_number() {
            // SAFETY: By their type invariant `self.as_raw` and `other.as_raw` are always
            // valid pointers to a `struct pci_dev`; the function reads their DMA alias masks
            // and asks for their real DMA devices.
            return unsafe { bindings::pci_devs_are_dma_aliases(self.as_raw(), other.as_raw()) };
        }
        // SAFETY: As above; `pci_real_dma_dev()` returns the device itself or the one that does
        // its DMA, only compared here.
        unsafe {
            bindings::pci_real_dma_dev(self.as_raw()) == other.as_raw()
                || bindings::pci_real_dma_dev(other.as_raw()) == self.as_raw()
        }
    }
}
