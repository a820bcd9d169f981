// SPDX-License-Identifier: GPL-2.0

//! Enabling PCI devices: I/O and memory decoding, bus mastering, write-invalidate, INTx and
//! its masking.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*, //
};

/// Device enabling for the driver the device is bound to.
///
/// These mirror the C functions of the same name. `enable_device` and `disable_device` are
/// reference counted by the PCI core: every successful [`Device::enable_device`] must be balanced
/// by one [`Device::disable_device`], the device is disabled on the last one.
///
/// Unlike [`Device::enable_device_mem`] and the [`Device<Core>`](device::Core) variant of
/// [`Device::set_master`], these can be called outside of bus callbacks, e.g. by a driver that
/// enables and disables a device as the party it forwards the device to asks; the driver has to
/// serialise them for a given device itself. They may sleep.
///
/// # Examples
///
/// ```
/// # use kernel::{device::Bound, pci, prelude::*};
/// // Follows the Memory Space and Bus Master bits a guest writes to the Command register.
/// fn follow_command(pdev: &pci::Device<Bound>, decode: bool, master: bool) -> Result {
///     if decode && !pdev.is_enabled() {
///         pdev.enable_device()?;
///     } else if !decode && pdev.is_enabled() {
///         pdev.disable_device();
///     }
///
///     if master && !pdev.is_busmaster() {
///         pdev.set_master();
///     } else if !master && pdev.is_busmaster() {
///         pdev.clear_master();
///     }
///
///     Ok(())
/// }
/// ```
impl Device<device::Bound> {
    /// Enables the I/O and memory resources of the device and wakes it up if needed
    /// (`pci_enable_device()`).
    pub fn enable_device(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_enable_device(self.as_raw()) })
    }

    /// Drops one enable reference of the device, and disables it on the last one
    /// (`pci_disable_device()`).
    ///
    /// Disabling also turns bus mastering off.
    pub fn disable_device(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_disable_device(self.as_raw()) };
    }

    /// Enables bus mastering for the device (`pci_set_master()`).
    #[inline]
    pub fn set_master(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_set_master(self.as_raw()) };
    }

    /// Disables bus mastering for the device (`pci_clear_master()`).
    #[inline]
    pub fn clear_master(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_clear_master(self.as_raw()) };
    }

    /// Enables Memory-Write-Invalidate transactions (`pci_set_mwi()`).
    ///
    /// Fails if the device or the platform cannot use them.
    pub fn set_mwi(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_set_mwi(self.as_raw()) })
    }

    /// Disables Memory-Write-Invalidate transactions (`pci_clear_mwi()`).
    pub fn clear_mwi(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_clear_mwi(self.as_raw()) };
    }

    /// Enables or disables the INTx interrupt of the device: clears or sets the Interrupt
    /// Disable bit of its Command register (`pci_intx()`).
    pub fn set_intx(&self, enable: bool) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_intx(self.as_raw(), enable.into()) };
    }

    /// Returns whether the device's INTx can be masked with the Interrupt Disable bit of its
    /// Command register (`pci_intx_mask_supported()`): no quirk marked the bit broken.
    pub fn intx_mask_supported(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_intx_mask_supported(self.as_raw()) }
    }

    /// Masks the device's INTx if the device is asserting it, and returns whether it was
    /// (`pci_check_and_mask_intx()`): sets the Interrupt Disable bit of the Command register
    /// when the Interrupt Status bit of the Status register is set.
    ///
    /// It takes the PCI core's raw configuration lock, so it may be called from a hard
    /// interrupt handler, as a handler on a shared INTx line does to find out whether the
    /// interrupt is its device's and silence it. The read and the write are one step only for
    /// the accesses that take that lock too (user space's, and all of them where the
    /// architecture does not select `PCI_LOCKLESS_CONFIG`, which x86 does): the caller has to
    /// keep its own writes of the Command register from racing with it. The Interrupt Status
    /// bit is set whether or not the line is masked: on a device already masked this still
    /// returns `true` while its interrupt is pending. It is only meaningful when
    /// [`Device::intx_mask_supported`] (devices before PCI 2.3 have no Interrupt Status bit,
    /// and this returns `false`).
    pub fn check_and_mask_intx(&self) -> bool {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_check_and_mask_intx(self.as_raw()) }
    }
}
