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
//! therefore live in dom0 from seize time. A seized device asserting INTx while no guest has it
//! enabled (a guest turned decoding off with an interrupt pending, or a device without a reset
//! method was released with one) raises an interrupt nobody handles, again and again for a
//! level-triggered line, until the kernel disables the line ("nobody cared"), for a dom0 driver
//! sharing it too. While no guest has the device enabled the handler therefore masks such an
//! interrupt at the device, when the device can (PCI 2.3 INTx masking, as VFIO does): it sets
//! the Interrupt Disable bit of the Command register when the device's Interrupt Status bit says
//! the interrupt is its own, and claims the interrupt. It never unmasks: the guest's next enable
//! does ([`IntxState::guest_enabled`], under the lock the handler masks under), and a reset at
//! release restores the Command register as it was seized. A device that cannot be masked gets
//! `IRQ_NONE`, as before. The guest's enable, not `on`, decides: `irq_handler_state` switches
//! only the claiming, as in C.
//!
//! The mask is a read-modify-write of the Command register, and x86's configuration accesses
//! take no lock that would keep another read-modify-write of it (the PCI core's enable, bus
//! master, INTx and MSI calls, a reset's restore) from interleaving with it and losing a bit.
//! Whatever writes the register for a guest or at a reset, and may sleep, therefore first
//! pauses the masking ([`IntxState::pause`]; the handler answers `IRQ_NONE` meanwhile, as it did
//! before it masked): every request of the guest served in process context, the resets and
//! restores of a release, of `do_flr`, of a bus reset, of the unbind and after dom0's error
//! recovery, and the disable that ends a seize. The requests served on the event channel's
//! interrupt write no Command register. Writers outside this driver (sysfs `reset`, `enable` and
//! `config` in dom0) are not paused.
//!
//! As in C, every [`CHECK_EVERY`] interrupts claimed the handler asks Xen whether another domain
//! is bound to the line. When none is (the guest has not bound it, or has unbound it), nobody
//! else needs dom0 to claim the interrupts, and the handler stops (logged, shown by
//! `irq_handlers`); it comes back when the guest enables the device again (without MSI or
//! MSI-X on) or disables MSI or MSI-X, or when the administrator writes `irq_handler_state`.

use kernel::{
    device::Bound,
    irq::{
        self,
        IrqReturn, //
    },
    pci,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        new_spinlock_irq,
        Arc,
        SpinLockIrq, //
    },
    xen,
};

use crate::common::conf::regs;

/// Every this many interrupts claimed, the handler asks Xen whether the line is still shared
/// with another domain (C's figure).
pub(crate) const CHECK_EVERY: u64 = 1000;

/// Whether a guest has the device enabled, and whether the handler masked its INTx meanwhile.
struct Mask {
    /// The guest enabled the device (through its Command register) and has not disabled it.
    guest_on: bool,
    /// The handler set the Interrupt Disable bit since the guest last enabled the device.
    masked: bool,
    /// Pauses in force ([`IntxState::pause`]): while not zero the handler leaves the Command
    /// register alone.
    paused: u32,
}

/// The switches and the count of the handler, shared with the configuration-space engine.
#[pin_data]
pub(crate) struct IntxState {
    /// Claim the interrupts: the guest has the device decoding, or the administrator said so
    /// (C's `isr_on`).
    on: Atomic<bool>,
    /// Claim the interrupts (C's `ack_intr`): off while MSI or MSI-X is enabled.
    ack: Atomic<bool>,
    /// Interrupts claimed.
    handled: Atomic<u64>,
    /// Taken by the handler (hard interrupt), by the guest's enable and disable and by pauses.
    #[pin]
    mask: SpinLockIrq<Mask>,
    /// A mask was logged (once per seize).
    mask_logged: Atomic<bool>,
}

impl IntxState {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                on: Atomic::new(false),
                ack: Atomic::new(true),
                handled: Atomic::new(0),
                mask <- new_spinlock_irq!(Mask {
                    guest_on: false,
                    masked: false,
                    paused: 0,
                }),
                mask_logged: Atomic::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// Pauses the masking until the returned guard is dropped: the handler does not touch the
    /// Command register meanwhile (it answers `IRQ_NONE` to an interrupt it would have masked).
    /// For a writer of the register that may sleep, so cannot take the handler's lock.
    pub(crate) fn pause(&self) -> Paused<'_> {
        self.begin_pause();
        Paused(self)
    }

    /// [`IntxState::pause`] for a pause that does not end in the same scope (a bus reset marks
    /// its functions one by one): each call must be balanced by [`IntxState::end_pause`].
    pub(crate) fn begin_pause(&self) {
        let mut mask = self.mask.lock();
        mask.paused = mask.paused.saturating_add(1);
    }

    /// Ends a pause [`IntxState::begin_pause`] began.
    pub(crate) fn end_pause(&self) {
        let mut mask = self.mask.lock();
        // An unbalanced end would let the handler mask during another writer's pause.
        if mask.paused == 0 {
            kernel::pr_warn_once!("an INTx masking pause ended twice\n");
        }
        mask.paused = mask.paused.saturating_sub(1);
    }

    /// The guest enabled the device: its interrupts are claimed from now on, and a mask the
    /// handler set while it was off is cleared (`pci_enable_device()` clears the bit too; this
    /// covers a device that enable did not touch, already enabled), unless MSI or MSI-X is on,
    /// whose enable set the bit on purpose.
    pub(crate) fn guest_enabled(&self, pdev: &pci::Device<Bound>) {
        {
            let mut mask = self.mask.lock();
            mask.guest_on = true;
            if core::mem::take(&mut mask.masked) && !(pdev.msi_enabled() || pdev.msix_enabled()) {
                pdev.set_intx(true);
            }
        }
        self.on.store(true, Relaxed);
    }

    /// The guest disabled the device, or it went back to the host: nobody claims its
    /// interrupts, the handler masks them.
    pub(crate) fn guest_disabled(&self) {
        self.on.store(false, Relaxed);
        self.mask.lock().guest_on = false;
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
        self.guest_disabled();
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

/// A pause of the handler's masking ([`IntxState::pause`]), ended when dropped.
pub(crate) struct Paused<'a>(&'a IntxState);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.end_pause();
    }
}

/// The handler registered on the line.
pub(crate) struct IntxAck<'bound> {
    state: Arc<IntxState>,
    /// The device, bound while the handler is registered.
    pdev: &'bound pci::Device<Bound>,
    irq: u32,
    /// The device supports INTx masking (`pci_intx_mask_supported()`).
    can_mask: bool,
}

impl irq::Handler for IntxAck<'_> {
    fn handle(&self) -> IrqReturn {
        let state = &self.state;
        if !(state.on.load(Relaxed) && state.ack.load(Relaxed)) {
            return self.mask_if_asserting();
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

impl IntxAck<'_> {
    /// Not claiming: if no guest has the device enabled, an interrupt the device raises is
    /// nobody's. If the device says it is its own, masks it at the device and claims it.
    fn mask_if_asserting(&self) -> IrqReturn {
        if !self.can_mask {
            return IrqReturn::None;
        }
        let state = &self.state;
        let mut mask = state.mask.lock();
        if mask.guest_on || mask.paused != 0 {
            return IrqReturn::None;
        }
        // Masked already (by this handler, or by whoever else sets the bit): the device cannot
        // have raised this interrupt, whatever its Interrupt Status bit says. Read rather than
        // taken from `masked`: a reset or a restore of the Command register clears the bit.
        let disabled = self
            .pdev
            .read_config_u16(regs::COMMAND)
            .map_or(true, |cmd| cmd & regs::CMD_INTX_DISABLE != 0);
        if disabled || !self.pdev.check_and_mask_intx() {
            return IrqReturn::None;
        }
        mask.masked = true;
        drop(mask);
        if !state.mask_logged.load(Relaxed) {
            state.mask_logged.store(true, Relaxed);
            dev_info!(
                self.pdev.as_ref(),
                "INTx line {}: the device asserts INTx while no guest has it enabled: masked until a guest enables it (logged once)\n",
                self.irq
            );
        }
        IrqReturn::Handled
    }
}

/// The registration of [`IntxAck`], kept in the PCI driver's data while the device is bound.
pub(crate) type IntxRegistration<'bound> = Pin<KBox<irq::Registration<'bound, IntxAck<'bound>>>>;

/// Registers the handler on the INTx line of `pdev` (which must be enabled, so that the line is
/// routed). `None` if the device has no INTx line, or the line cannot be shared (logged).
pub(crate) fn register<'bound>(
    pdev: &'bound pci::Device<Bound>,
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
                pdev,
                irq,
                can_mask: pdev.intx_mask_supported(),
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
