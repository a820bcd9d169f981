// SPDX-License-Identifier: GPL-2.0

//! What the PCI core knows about a device: header type, interrupt, enable, MSI and connection
//! state.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::bindings;

/// The layout of a device's configuration header (the `Header Type` register, without the
/// multi-function bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    /// A device that is not a bridge (type 0 header).
    Normal,
    /// A PCI-to-PCI bridge (type 1 header).
    Bridge,
    /// A CardBus bridge (type 2 header).
    CardBus,
}

impl HeaderType {
    /// Returns the header type for the C value `hdr_type`, or [`None`] for a value the PCI core
    /// does not know.
    pub const fn from_raw(hdr_type: u8) -> Option<Self> {
        // CAST: The `PCI_HEADER_TYPE_*` values are 0, 1 and 2.
        match hdr_type {
            t if t == bindings::PCI_HEADER_TYPE_NORMAL as u8 => Some(Self::Normal),
            t if t == bindings::PCI_HEADER_TYPE_BRIDGE as u8 => Some(Self::Bridge),
            t if t == bindings::PCI_HEADER_TYPE_CARDBUS as u8 => Some(Self::CardBus),
            _ => None,
        }
    }
}

impl Device {
    /// Returns the type of the device's configuration header.
    ///
    /// The PCI core does not add devices whose header type it does not know, so [`None`] is only
    /// possible for devices it is still setting up.
    #[inline]
    pub fn header_type(&self) -> Option<HeaderType> {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        HeaderType::from_raw(unsafe { (*self.as_raw()).hdr_type })
    }

    /// Returns the `IORESOURCE_*` flags of the resource `index` (a BAR, or the expansion ROM at
    /// `PCI_ROM_RESOURCE`), as the PCI core set them; 0 for a resource the device does not have.
    ///
    /// Fails with [`EINVAL`] if `index` is not below `PCI_NUM_RESOURCES`.
    pub fn resource_flags(&self, index: u32) -> crate::error::Result<u64> {
        if index >= bindings::PCI_NUM_RESOURCES {
            return Err(crate::error::code::EINVAL);
        }
        // CAST: `index < PCI_NUM_RESOURCES`, a small constant.
        let index = index as usize;

        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`, whose `resource` array has `PCI_NUM_RESOURCES` entries; `index` is in
        // bounds (checked above). The flags are a plain integer the PCI core writes while it
        // assigns resources; a racing reassignment yields an old or a new value, never UB for
        // an integer read.
        let flags = unsafe { (*self.as_raw()).resource[index].flags };

        // CAST: `unsigned long` is at most 64 bits.
        Ok(flags as u64)
    }

    /// Returns whether the device is a PCI-to-PCI or CardBus bridge (C's `pci_is_bridge()`).
    #[inline]
    pub fn is_bridge(&self) -> bool {
        matches!(
            self.header_type(),
            Some(HeaderType::Bridge | HeaderType::CardBus)
        )
    }

    /// Returns the IRQ number the device interrupts on: its INTx line, or the first vector once
    /// MSI is enabled. Zero means no interrupt.
    ///
    /// This is the number the PCI core stored when the device was set up or its interrupt mode
    /// last changed; use it, rather than the `Interrupt Line` register, to request the interrupt.
    #[inline]
    pub fn irq(&self) -> u32 {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { (*self.as_raw()).irq }
    }

    /// Returns whether the device is an SR-IOV virtual function.
    #[inline]
    pub fn is_virtfn(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_dev_is_virtfn(self.as_raw()) }
    }

    /// Returns the SR-IOV physical function of a virtual function, or the device itself.
    ///
    /// Some state of a virtual function lives in its physical function, such as memory
    /// decoding (a virtual function's own `Memory Space` bit is always clear).
    #[inline]
    pub fn physfn(&self) -> &Device {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        let pf = unsafe { bindings::pci_physfn(self.as_raw()) };

        // SAFETY: `pci_physfn()` returns `self` or its physical function, which a virtual
        // function holds a reference to for its whole life, so it outlives the borrow of `self`.
        // `Device` is a transparent wrapper of `struct pci_dev`.
        unsafe { &*pf.cast::<Device>() }
    }

    /// Returns whether bus mastering has been enabled through the PCI core.
    #[inline]
    pub fn is_busmaster(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_dev_is_busmaster(self.as_raw()) }
    }

    /// Returns whether the device has been enabled (with `pci_enable_device()` or a variant) more
    /// often than disabled.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_is_enabled(self.as_raw()) != 0 }
    }

    /// Returns whether the PCI core knows the device is gone (surprise removal, or a permanent
    /// failure of error recovery): its configuration accessors then fail without an access.
    ///
    /// A snapshot: the state may change right after.
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_dev_is_disconnected(self.as_raw()) }
    }

    /// Returns whether MSI is enabled on the device.
    #[inline]
    pub fn msi_enabled(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_dev_has_msi_enabled(self.as_raw()) }
    }

    /// Returns whether MSI-X is enabled on the device.
    #[inline]
    pub fn msix_enabled(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_dev_has_msix_enabled(self.as_raw()) }
    }
}
