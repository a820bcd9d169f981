// SPDX-License-Identifier: GPL-2.0

//! MSI and MSI-X for the devices of the exported buses.
//!
//! A PV guest cannot program MSI itself. When one of its drivers enables MSI or MSI-X on a
//! device of our buses, the x86 Xen code calls these hooks; they ask the backend, which enables
//! the interrupts on the real device and answers with the pirqs Xen bound to them, which the
//! x86 code then binds to Linux IRQs. Each request is one round trip on the connection's
//! [`OpChannel`](crate::ops::OpChannel), found through the device's root bus.
//!
//! The answers are checked as by the C frontend: an error, or a pirq of 0, fails the enable
//! with `-EINVAL` (MSI) or the backend's error (MSI-X), and the driver falls back to INTx.

use kernel::{
    pci::{
        self,
        RootBus, //
    },
    prelude::*,
    xen::pci::FrontendOps,
};

use crate::bus::Ops;

/// The hooks, registered by the module for the whole system.
pub(crate) struct Msi;

/// Runs `f` with the channel of `dev`'s connection and its address there, or fails with
/// [`ENODEV`] if `dev` is not on one of our buses (or its bus is going away).
fn with_channel<R>(
    dev: &pci::Device,
    f: impl FnOnce(&crate::ops::OpChannel, u32, u8, u8) -> R,
) -> Result<R> {
    RootBus::<Ops>::with_device_ops(dev, |ops| {
        f(ops.chan(), ops.domain(), dev.bus_number(), dev.devfn())
    })
    .ok_or(ENODEV)
}

/// The kernel error of a failed request: the backend's errno, or [`EINVAL`] for a code that is
/// not one (as the C frontend turns MSI failures into `-EINVAL`).
fn error(code: i32) -> Error {
    if (-4095..0).contains(&code) {
        Error::from_errno(code)
    } else {
        EINVAL
    }
}

impl FrontendOps for Msi {
    fn enable_msi(dev: &pci::Device) -> Result<u32> {
        with_channel(dev, |chan, domain, bus, devfn| {
            chan.enable_msi(domain, bus, devfn)
        })?
        .map_err(|e| {
            dev_err!(dev.as_ref(), "the backend did not enable MSI ({})\n", e);
            error(e)
        })
    }

    fn disable_msi(dev: &pci::Device) {
        disable(dev, false);
    }

    fn enable_msix(dev: &pci::Device, entries: &[u16], pirqs: &mut [u32]) -> Result {
        with_channel(dev, |chan, domain, bus, devfn| {
            chan.enable_msix(domain, bus, devfn, entries, pirqs)
        })?
        .map_err(|e| {
            dev_err!(
                dev.as_ref(),
                "the backend did not enable {} MSI-X vector(s) ({})\n",
                entries.len(),
                e
            );
            error(e)
        })
    }

    fn disable_msix(dev: &pci::Device) {
        disable(dev, true);
    }
}

/// Disables MSI or MSI-X; failures are only logged (the device is going away, or the backend
/// is).
fn disable(dev: &pci::Device, msix: bool) {
    let what = if msix { "MSI-X" } else { "MSI" };
    match with_channel(dev, |chan, domain, bus, devfn| {
        chan.disable_msi(domain, bus, devfn, msix)
    }) {
        Ok(0) => {}
        Ok(err) => dev_warn!(
            dev.as_ref(),
            "the backend did not disable {} ({})\n",
            what,
            err
        ),
        Err(_) => dev_warn!(
            dev.as_ref(),
            "cannot reach the backend to disable {}\n",
            what
        ),
    }
}
