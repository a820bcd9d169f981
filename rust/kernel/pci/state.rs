// SPDX-License-Identifier: GPL-2.0

//! Saving and restoring the configuration state of PCI devices.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*,
    sync::aref::ARef, //
};
use core::ptr::NonNull;

impl Device<device::Bound> {
    /// Saves the configuration space of the device into the device (`pci_save_state()`).
    ///
    /// The PCI core keeps one saved state per device; [`Device::restore_state`] writes it back.
    /// The PCI core also saves and restores it itself, around resets and suspend, so use a
    /// [`SavedState`] to keep a copy of your own.
    pub fn save_state(&self) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_save_state(self.as_raw()) })
    }

    /// Writes the state saved in the device back to its configuration space
    /// (`pci_restore_state()`).
    ///
    /// Does nothing if no state is saved.
    pub fn restore_state(&self) {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        unsafe { bindings::pci_restore_state(self.as_raw()) };
    }
}

/// A copy of the saved configuration state of a PCI device (a `struct pci_saved_state`).
///
/// It belongs to the device it was captured from, which it keeps a reference to, and can only be
/// loaded back into that device. The copy is freed when the [`SavedState`] is dropped.
///
/// # Invariants
///
/// `state` is a valid `struct pci_saved_state`, allocated by `pci_store_saved_state()` from
/// `dev`, and owned by this object.
///
/// # Examples
///
/// ```
/// # use kernel::{device::Core, pci, prelude::*};
/// // Keeps the state the device had when the driver got it, to put it back later.
/// fn capture_golden(pdev: &pci::Device<Core<'_>>) -> Result<pci::SavedState> {
///     let golden = pci::SavedState::capture(pdev)?;
///     pdev.reset_function_locked()?;
///     Ok(golden)
/// }
/// ```
pub struct SavedState {
    dev: ARef<Device>,
    state: NonNull<bindings::pci_saved_state>,
}

// SAFETY: The state is a plain memory buffer that can be freed from any thread, and `Device` is
// `Send`.
unsafe impl Send for SavedState {}

// SAFETY: Through a shared reference the buffer is only read (by `pci_load_saved_state()`), and
// `Device` is `Sync`.
unsafe impl Sync for SavedState {}

impl SavedState {
    /// Saves the configuration space of `dev` and takes a copy of that state
    /// (`pci_save_state()` and `pci_store_saved_state()`).
    pub fn capture(dev: &Device<device::Bound>) -> Result<Self> {
        dev.save_state()?;

        // SAFETY: By its type invariant `dev.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        let state = unsafe { bindings::pci_store_saved_state(dev.as_raw()) };

        // The state was saved just above, so NULL means the allocation failed.
        let state = NonNull::new(state).ok_or(ENOMEM)?;

        // INVARIANT: `pci_store_saved_state()` allocated `state` from `dev` and handed it to us.
        Ok(Self {
            dev: dev.into(),
            state,
        })
    }

    /// Loads this state into `dev` as its saved state (`pci_load_saved_state()`), without
    /// writing it to the hardware; [`Device::restore_state`] does that.
    ///
    /// Fails with [`EINVAL`] if `dev` is not the device the state was captured from.
    pub fn load(&self, dev: &Device<device::Bound>) -> Result {
        if !core::ptr::eq(self.dev.as_raw(), dev.as_raw()) {
            return Err(EINVAL);
        }

        // SAFETY: By its type invariant `dev.as_raw` is always a valid pointer to a
        // `struct pci_dev`, and by the type invariant of `Self`, `self.state` is a valid
        // `struct pci_saved_state` of that device, which `pci_load_saved_state()` only reads.
        to_result(unsafe { bindings::pci_load_saved_state(dev.as_raw(), self.state.as_ptr()) })
    }

    /// Loads this state into `dev` and writes it to the configuration space
    /// ([`SavedState::load`] then [`Device::restore_state`]).
    pub fn restore(&self, dev: &Device<device::Bound>) -> Result {
        self.load(dev)?;
        dev.restore_state();

        Ok(())
    }
}

impl Drop for SavedState {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `self.state` was allocated by `pci_store_saved_state()`
        // with `kzalloc()` and is owned by `self`.
        unsafe { bindings::kfree(self.state.as_ptr().cast()) };
    }
}
