// SPDX-License-Identifier: GPL-2.0

//! PCI function reset.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*, //
};

impl<'a> Device<device::Core<'a>> {
    /// Resets the function from a bus callback (`pci_reset_function_locked()`).
    ///
    /// This is the variant of [`Device::reset_function`] for `probe` and `unbind`, where the
    /// driver core already holds the device lock. Like it, it saves the configuration space
    /// first, disables the device, resets it with the first method that works (function level
    /// reset, power management reset, bus reset, ...) and restores the configuration space.
    ///
    /// Fails with [`ENOTTY`] if the device has no reset method, or with the error of the reset.
    /// May sleep for a long time (a function level reset waits for the device).
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Core, pci, prelude::*};
    /// // Returns a seized device to a known state before handing it out.
    /// fn seize(pdev: &pci::Device<Core<'_>>) -> Result {
    ///     pdev.reset_function_locked().inspect_err(|e| {
    ///         dev_err!(pdev, "cannot reset: {:?}\n", e);
    ///     })
    /// }
    /// ```
    pub fn reset_function_locked(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`, and the `Core` context guarantees the device lock is held.
        to_result(unsafe { bindings::pci_reset_function_locked(self.as_raw()) })
    }
}

impl Device<device::Bound> {
    /// Resets the function (`pci_reset_function()`).
    ///
    /// Takes the device lock (and the one of the upstream bridge), saves the configuration
    /// space, disables the device, resets it with the first method that works and restores the
    /// configuration space. Fails with [`ENOTTY`] if the device has no reset method, or with the
    /// error of the reset. May sleep for a long time.
    ///
    /// Must not be called from a bus callback of this device or of its upstream bridge (`probe`,
    /// `unbind`, ...), where the device core holds the lock this takes: use
    /// [`Device::reset_function_locked`] there. The type system cannot stop this, as a
    /// [`Device<Core>`](device::Core) dereferences to a [`Device<Bound>`](device::Bound); lockdep
    /// reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Bound, pci, prelude::*};
    /// // Called from a work item when the device comes back from a guest.
    /// fn release(pdev: &pci::Device<Bound>, golden: &pci::SavedState) -> Result {
    ///     pdev.reset_function()?;
    ///     golden.restore(pdev)
    /// }
    /// ```
    pub fn reset_function(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_reset_function(self.as_raw()) })
    }
}
