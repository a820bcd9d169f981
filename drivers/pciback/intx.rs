// SPDX-License-Identifier: GPL-2.0

//! The dom0 handler of a seized device's INTx line.
//!
//! A guest given a device with a level-triggered INTx line binds the line as a pirq. Xen
//! delivers it to every domain bound to it and waits for all of them: if a dom0 driver shares
//! the line, dom0's own handlers see interrupts none of them raised, and after enough of them
//! the kernel disables the line ("nobody cared"), for the guest too. As C `xen-pciback`, we
//! register a handler on the line that claims the interrupts while the guest has the device
//! decoding (`on`) and acknowledging is wanted (`ack`: off while the guest uses MSI or MSI-X).
//!
//! Unlike C, the handler is registered once, when the device is seized, and only switched by the
//! guest; C requests and frees it as the guest enables and disables the device. The line is
//! therefore live in dom0 from seize time: a seized device asserting INTx with no guest using it
//! (it was reset at seize time, so it should not) would go unclaimed, as with no handler at all.
//!
//! As in C, every [`CHECK_EVERY`] interrupts claimed the handler asks Xen whether another domain
//! is bound to the line. When none is (the guest has not bound it, or has unbound it), nobody
//! else needs dom0 to claim the interrupts, and the handler stops (logged, shown by
//! `irq_handlers`); it comes back when the guest enables the device again (without MSI or
//! MSI-X on) or disables MSI or MSI-X, or when the administrator writes `irq_handler_state`.

use kernel::{
    irq::{
        self,
        IrqReturn, //
    },
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
    xen,
};

/// Every this many interrupts claimed, the handler asks Xen whether the line is still shared
/// with another domain (C's figure).
pub(crate) const CHECK_EVERY: u64 = 1000;

/// The switches and the count of the handler, shared with the configuration-space engine.
pub(crate) struct IntxState {
    /// The guest has the device decoding (C's `isr_on`).
    on: Atomic<bool>,
    /// Claim the interrupts (C's `ack_intr`): off while MSI or MSI-X is enabled.
    ack: Atomic<bool>,
    /// Interrupts claimed.
    handled: Atomic<u64>,
}

impl IntxState {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                on: Atomic::new(false),
                ack: Atomic::new(true),
                handled: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The guest enabled or disabled the device.
    pub(crate) fn set_on(&self, on: bool) {
        self.on.store(on, Relaxed);
    }

    /// `irq_handler_state`: toggles `on` and returns its new value; acknowledging is turned on
    /// with it.
    pub(crate) fn toggle(&self) -> bool {
        let mut old = self.on.load(Relaxed);
        while let Err(now) = self.on.cmpxchg(old, !old, Relaxed) {
            old = now;
        }
        if !old {
            self.ack.store(true, Relaxed);
        }
        !old
    }

    /// MSI or MSI-X was enabled (`false`) or disabled (`true`).
    pub(crate) fn set_ack(&self, ack: bool) {
        self.ack.store(ack, Relaxed);
    }

    /// The device went back to the host.
    pub(crate) fn reset(&self) {
        self.on.store(false, Relaxed);
        self.ack.store(true, Relaxed);
    }

    /// `(on, ack, handled)`, for `irq_handlers`.
    pub(crate) fn get(&self) -> (bool, bool, u64) {
        (
            self.on.load(Relaxed),
            self.ack.load(Relaxed),
            self.handled.load(Relaxed),
        )
    }
}

/// The handler registered on the line.
pub(crate) struct IntxAck {
    state: Arc<IntxState>,
    /// The device, for the log line.
    pdev: ARef<pci::Device>,
    irq: u32,
}

impl irq::Handler for IntxAck {
    fn handle(&self) -> IrqReturn {
        let state = &self.state;
        if !(state.on.load(Relaxed) && state.ack.load(Relaxed)) {
            return IrqReturn::None;
        }
        // The handler of one line does not run on two CPUs at once: the count is exact.
        let handled = state.handled.fetch_add(1, Relaxed) + 1;
        // SAFETY: This is the handler of `self.irq`, registered on it until after this returns.
        if handled % CHECK_EVERY == 0 && unsafe { xen::pci::line_shared(self.irq) } == Ok(false) {
            state.ack.store(false, Relaxed);
            dev_info!(
                self.pdev.as_ref(),
                "INTx line {} is not shared with another domain: no longer claiming it\n",
                self.irq
            );
        }
        IrqReturn::Handled
    }
}

/// The registration of [`IntxAck`], kept in the PCI driver's data while the device is bound.
pub(crate) type IntxRegistration<'bound> = Pin<KBox<irq::Registration<'bound, IntxAck>>>;

/// Registers the handler on the INTx line of `pdev` (which must be enabled, so that the line is
/// routed). `None` if the device has no INTx line, or the line cannot be shared (logged).
pub(crate) fn register<'bound>(
    pdev: &'bound kernel::pci::Device<kernel::device::Bound>,
    state: &Arc<IntxState>,
) -> Option<IntxRegistration<'bound>> {
    let request = pdev.intx_irq_request()?;
    let irq = request.irq();

    // SAFETY: The registration is boxed and kept in the driver's data, which the driver core
    // drops (never leaks) when the driver is unbound.
    let init = unsafe {
        irq::Registration::new(
            request,
            irq::Flags::SHARED,
            c"xen-pciback",
            Ok::<_, Error>(IntxAck {
                state: state.clone(),
                pdev: ARef::from(&**pdev),
                irq,
            }),
        )
    };
    match KBox::pin_init(init, GFP_KERNEL) {
        Ok(registration) => Some(registration),
        Err(e) => {
            dev_warn!(
                pdev.as_ref(),
                "no handler on INTx line {}: {:?} (a dom0 driver sharing it may disable it)\n",
                irq,
                e
            );
            None
        }
    }
}
