// SPDX-License-Identifier: GPL-2.0

//! PCIe AER: dom0's error recovery of a device exported to a guest, step by step, forwarded to
//! the guest's driver of the device (as C `xen-pciback`).
//!
//! The rules (what is forwarded, what dom0's recovery gets, when the guest is marked failed)
//! are the shared code's (`common::aer`); the exchange on the page is
//! [`Shared::forward_aer`](crate::xenbus::Shared::forward_aer).

use kernel::{
    device::{
        self,
        Core, //
    },
    pci,
    prelude::*, //
};

use crate::{
    common::aer::{
        self,
        AerStep,
        Delivery,
        ErsResult, //
    },
    stub::Seized,
};

/// One step of the recovery of the seized device `pdev`: forwards it to the guest the device is
/// exported to, marks the guest failed where C would kill it, and returns the result for dom0's
/// PCI core.
///
/// Runs in the PCI core's recovery, with the device lock of `pdev` held; may sleep for up to
/// [`aer::AER_TIMEOUT_MS`].
pub(crate) fn recover(
    pdev: &pci::Device<Core<'_>>,
    seized: &Seized,
    step: AerStep,
) -> pci::ErsResult {
    let dev: &device::Device = pdev.as_ref();
    let backend = seized.backend();
    let delivery = match &backend {
        Some(backend) => backend.forward_aer(seized, step),
        None => Delivery::NotExported,
    };
    let domain = backend.as_ref().map_or(0, |b| b.domid().as_raw());

    match delivery {
        Delivery::NotExported => dev_info!(
            dev,
            "AER {}: not exported to a guest\n",
            format_args!("{step}")
        ),
        Delivery::NotConnected => {
            dev_err!(
                dev,
                "AER {}: guest {} is not connected\n",
                format_args!("{step}"),
                domain
            )
        }
        Delivery::NoHandler => {
            dev_err!(
                dev,
                "AER {}: guest {} has no AER handler\n",
                format_args!("{step}"),
                domain
            )
        }
        Delivery::Busy => dev_err!(
            dev,
            "AER {}: guest {} has not answered an earlier request: not asked\n",
            format_args!("{step}"),
            domain
        ),
        Delivery::NoAnswer => dev_err!(
            dev,
            "AER {}: no answer from guest {} (it has {} s)\n",
            format_args!("{step}"),
            domain,
            aer::AER_TIMEOUT_MS / 1000
        ),
        Delivery::Answered(raw) => {
            dev_info!(
                dev,
                "AER {}: guest {} answered {}\n",
                format_args!("{step}"),
                domain,
                raw
            )
        }
    }

    let outcome = aer::backend_outcome(step, delivery);
    if outcome.mark_failed {
        if let Some(backend) = &backend {
            dev_err!(
                dev,
                "AER {}: guest {} failed the recovery\n",
                format_args!("{step}"),
                domain
            );
            if let Err(e) = backend.mark_aer_failed() {
                dev_err!(dev, "cannot write aerState: {:?}\n", e);
            }
        }
    }
    to_pci(outcome.result)
}

fn to_pci(result: ErsResult) -> pci::ErsResult {
    match result {
        ErsResult::None => pci::ErsResult::None,
        ErsResult::CanRecover => pci::ErsResult::CanRecover,
        ErsResult::NeedReset => pci::ErsResult::NeedReset,
        ErsResult::Disconnect => pci::ErsResult::Disconnect,
        ErsResult::Recovered => pci::ErsResult::Recovered,
        ErsResult::NoAerDriver => pci::ErsResult::NoAerDriver,
    }
}
