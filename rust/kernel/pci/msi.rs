// SPDX-License-Identifier: GPL-2.0

//! Explicit MSI and MSI-X enabling, with caller-chosen MSI-X table entries, and the INTx line
//! for a handler of its own.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*, //
};

/// An MSI-X table entry to enable, and the IRQ number the PCI core gave it (`struct msix_entry`).
///
/// # Examples
///
/// ```
/// use kernel::pci::MsixEntry;
///
/// let entry = MsixEntry::new(3);
/// assert_eq!(entry.entry(), 3);
/// assert_eq!(entry.vector(), 0);
/// ```
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct MsixEntry(bindings::msix_entry);

impl MsixEntry {
    /// Returns an entry asking for the MSI-X table entry `entry`.
    pub const fn new(entry: u16) -> Self {
        Self(bindings::msix_entry { vector: 0, entry })
    }

    /// Returns the index of the MSI-X table entry.
    pub const fn entry(&self) -> u16 {
        self.0.entry
    }

    /// Returns the IRQ number of the entry, or zero before [`Device::enable_msix_exact`]
    /// succeeded.
    pub const fn vector(&self) -> u32 {
        self.0.vector
    }
}

/// Explicit MSI and MSI-X enabling.
///
/// These are for drivers that must decide which MSI-X table entries to use, or enable interrupts
/// on behalf of another party, such as a backend that enables MSI-X as a guest asks. Ordinary
/// drivers use [`Device::alloc_irq_vectors`], whose vectors are freed automatically; the two
/// interfaces must not be mixed on a device: disabling through these functions would free
/// vectors still owned by an [`IrqVectorRegistration`](super::IrqVectorRegistration).
///
/// The IRQ numbers these return are Linux IRQ numbers of the running kernel. In a Xen dom0 they
/// are dom0 IRQs bound to physical IRQs (pirqs), not anything a guest can use directly: translate
/// them before handing them on.
///
/// All of them may sleep, and the driver the device is bound to must serialise them for a given
/// device.
///
/// # Examples
///
/// ```
/// # use kernel::{device::Bound, pci, prelude::*};
/// // Enables the MSI-X table entries a guest asked for; their IRQ numbers are then in `entries`.
/// fn enable_for_guest(pdev: &pci::Device<Bound>, entries: &mut [pci::MsixEntry]) -> Result {
///     if pdev.msi_enabled() || pdev.msix_enabled() {
///         return Err(EBUSY);
///     }
///     pdev.enable_msix_exact(entries)?;
///     for entry in entries.iter() {
///         pr_debug!("entry {} -> irq {}\n", entry.entry(), entry.vector());
///     }
///     Ok(())
/// }
/// ```
impl Device<device::Bound> {
    /// Enables MSI with a single vector (`pci_enable_msi()`) and returns its IRQ number, which
    /// is also the new [`Device::irq`].
    ///
    /// Fails if MSI or MSI-X is already enabled or the device cannot use MSI.
    pub fn enable_msi(&self) -> Result<u32> {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_enable_msi(self.as_raw()) })?;

        Ok(self.irq())
    }

    /// Disables MSI if it is enabled (`pci_disable_msi()`); [`Device::irq`] is the INTx IRQ
    /// again.
    ///
    /// # Safety
    ///
    /// The MSI vector is freed: no IRQ handler may be requested on it, and no
    /// [`IrqVectorRegistration`](super::IrqVectorRegistration) may own it, as when MSI was
    /// enabled by [`Device::enable_msi`] and only ever used through Xen or another party that
    /// takes no handler of this kernel.
    pub unsafe fn disable_msi(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the caller guarantees that nothing uses the vector this frees.
        unsafe { bindings::pci_disable_msi(self.as_raw()) };
    }

    /// Enables MSI-X with exactly the table entries in `entries` and fills in their IRQ numbers
    /// (`pci_enable_msix_range()` with as many vectors as entries, C's
    /// `pci_enable_msix_exact()`).
    ///
    /// Fails with [`EINVAL`] if `entries` is empty or names a table entry twice, and with the
    /// PCI core's error if MSI or MSI-X is already enabled, not enough vectors are available or,
    /// where the platform checks it, an entry is beyond the device's table. Nothing is enabled on
    /// failure.
    pub fn enable_msix_exact(&self, entries: &mut [MsixEntry]) -> Result {
        if entries.is_empty() {
            return Err(EINVAL);
        }
        let nvec = c_int::try_from(entries.len())?;

        // SAFETY:
        // - By its type invariant `self.as_raw` is always a valid pointer to a `struct pci_dev`.
        // - `MsixEntry` is a transparent wrapper of `struct msix_entry`, so `entries` is a valid
        //   array of `nvec` of them, which the PCI core reads and writes only during the call.
        let ret = unsafe {
            bindings::pci_enable_msix_range(self.as_raw(), entries.as_mut_ptr().cast(), nvec, nvec)
        };

        to_result(ret)
    }

    /// Returns a request for the device's legacy INTx line ([`Device::irq`]), for a handler
    /// registered on the line itself rather than on vectors from [`Device::alloc_irq_vectors`]:
    /// for instance a backend's handler for a line the device may share with others while a
    /// guest drives the device. Register it with [`irq::Flags::SHARED`](crate::irq::Flags).
    ///
    /// The IRQ is the one the PCI core routed when the device was enabled; before that it is only
    /// what the firmware left in the `Interrupt Line` register. Returns [`None`] if the device
    /// has no INTx IRQ, or if MSI or MSI-X is enabled (then [`Device::irq`] is not the line).
    pub fn intx_irq_request(&self) -> Option<crate::irq::IrqRequest<'_>> {
        let irq = self.irq();
        if irq == 0 || self.msi_enabled() || self.msix_enabled() {
            return None;
        }

        // SAFETY: With MSI and MSI-X off, `irq` is the device's INTx IRQ, an interrupt source of
        // the device.
        Some(unsafe { crate::irq::IrqRequest::new(self.as_ref(), irq) })
    }

    /// Disables MSI-X if it is enabled (`pci_disable_msix()`).
    ///
    /// # Safety
    ///
    /// The MSI-X vectors are freed: no IRQ handler may be requested on any of them, and no
    /// [`IrqVectorRegistration`](super::IrqVectorRegistration) may own them, as when MSI-X was
    /// enabled by [`Device::enable_msix_exact`] and only ever used through Xen or another party
    /// that takes no handler of this kernel.
    pub unsafe fn disable_msix(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`; the caller guarantees that nothing uses the vectors this frees.
        unsafe { bindings::pci_disable_msix(self.as_raw()) };
    }
}
