// SPDX-License-Identifier: GPL-2.0

//! PCI device power states.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*, //
};

/// A PCI device power state (C's `pci_power_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    /// Fully on (`PCI_D0`).
    D0,
    /// Light sleep (`PCI_D1`).
    D1,
    /// Deeper sleep (`PCI_D2`).
    D2,
    /// Off, configuration space still accessible (`PCI_D3hot`).
    D3Hot,
    /// Powered off (`PCI_D3cold`).
    D3Cold,
}

impl PowerState {
    // `rust/helpers/pci.c` checks at build time that the C values are 0 to 4.

    /// Returns the C value of this state.
    const fn as_raw(self) -> bindings::pci_power_t {
        match self {
            Self::D0 => 0,
            Self::D1 => 1,
            Self::D2 => 2,
            Self::D3Hot => 3,
            Self::D3Cold => 4,
        }
    }

    /// Returns the state for the C value `state`, or [`None`] for `PCI_UNKNOWN`,
    /// `PCI_POWER_ERROR` and any other value.
    const fn from_raw(state: bindings::pci_power_t) -> Option<Self> {
        Some(match state {
            0 => Self::D0,
            1 => Self::D1,
            2 => Self::D2,
            3 => Self::D3Hot,
            4 => Self::D3Cold,
            _ => return None,
        })
    }
}

impl Device {
    /// Returns the power state the PCI core last put the device in, or [`None`] if it does not
    /// know it.
    #[inline]
    pub fn power_state(&self) -> Option<PowerState> {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        PowerState::from_raw(unsafe { (*self.as_raw()).current_state })
    }
}

impl Device<device::Bound> {
    /// Puts the device in the power state `state` (`pci_set_power_state()`).
    ///
    /// Like the C function, this succeeds without changing anything for some requests the device
    /// cannot honour (D1 or D2 without support for them, D3 on devices quirked to stay out of
    /// it); it fails if the transition itself fails. May sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{device::Bound, pci, prelude::*};
    /// fn wake_up(pdev: &pci::Device<Bound>) -> Result {
    ///     if pdev.power_state() != Some(pci::PowerState::D0) {
    ///         pdev.set_power_state(pci::PowerState::D0)?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn set_power_state(&self, state: PowerState) -> Result {
        // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
        // `struct pci_dev`.
        to_result(unsafe { bindings::pci_set_power_state(self.as_raw(), state.as_raw()) })
    }
}
