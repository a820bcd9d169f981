// SPDX-License-Identifier: GPL-2.0

//! PCIe AER: the backend relays the steps of dom0's error recovery of a device to this guest
//! (`aer_op` on the shared page, `_XEN_PCIB_active`), and the guest's driver of the device
//! answers, as with C `pcifront`.
//!
//! The event channel's handler (and every configuration round trip, whose poll may consume the
//! event) kicks [`AerJob`] when the backend has flagged a request; the job runs in process
//! context on the system workqueue, one request at a time: it finds the device, checks it is
//! behind this connection's root buses, calls the bound driver's handler with the device lock
//! held ([`pci::Device::with_error_handlers`]), writes the answer into `aer_op.err`, clears
//! `_XEN_PCIB_active` and signals the backend. The rules of the answer are the shared code's
//! (`common::aer`).
//!
//! # Lifetime
//!
//! The job holds a reference to its [`OpChannel`] from [`AerJob::attach`], once the channel is
//! set up, to [`AerJob::detach`], when the connection's [`Channel`](crate::ops::Channel) is
//! dropped (at unbind, or when probing fails). Nothing queues the job without it; `detach` then
//! flushes the job: a run that took the reference has finished when it returns, and none is
//! queued any more, so none runs after the connection (or the module) is gone. The reference
//! and the channel's own (to the job, through its event handler) form a cycle only while
//! attached.

use core::fmt;

use kernel::{
    new_work,
    pci::{
        self,
        RootBus, //
    },
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            AtomicFlag,
            Full,
            Relaxed,
            Release, //
        },
        new_mutex,
        new_raw_spinlock_irq,
        Arc,
        Mutex,
        RawSpinLockIrq, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        Work,
        WorkItem, //
    },
};

use crate::{
    bus::Ops,
    common::{
        aer::{
            self,
            AerStep,
            ChannelState,
            DriverOutcome,
            ErsResult,
            StepOrder, //
        },
        bdf::Bdf,
        pciif::{
            AerOp,
            AER_OP_SIZE,
            OFFSET_AER_OP,
            OFFSET_AER_OP_ERR,
            OFFSET_FLAGS,
            XEN_PCIB_ACTIVE, //
        },
        ratelimit::{
            RateLimit,
            Verdict, //
        },
    },
    ops::OpChannel,
};

/// The work item that serves the backend's AER requests of one connection.
#[pin_data]
pub(crate) struct AerJob {
    /// The channel, between [`AerJob::attach`] and [`AerJob::detach`]. A raw spinlock:
    /// [`AerJob::kick`] runs in the event handler and when a round trip ends, under the
    /// channel's raw lock.
    #[pin]
    chan: RawSpinLockIrq<Option<Arc<OpChannel>>>,
    /// The work item is queued or running.
    queued: AtomicFlag,
    /// Locked by the job alone (one run at a time).
    #[pin]
    state: Mutex<AerState>,
    #[pin]
    work: Work<AerJob>,
}

kernel::impl_has_work! {
    impl HasWork<Self> for AerJob { self.work }
}

impl AerJob {
    /// Creates the job of a channel not set up yet.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(AerJob {
                chan <- new_raw_spinlock_irq!(None, "pcifront_aer_chan"),
                queued: AtomicFlag::new(false),
                state <- new_mutex!(AerState {
                    order: StepOrder::new(),
                    refusals: RateLimit::new(),
                    created: Instant::now(),
                }),
                work <- new_work!("pcifront::aer"),
            }),
            GFP_KERNEL,
        )
    }

    /// Lets the job serve `chan`, until [`AerJob::detach`].
    pub(crate) fn attach(&self, chan: Arc<OpChannel>) {
        let old = self.chan.lock().replace(chan);
        // Dropped without the raw lock held.
        drop(old);
    }

    /// Stops the job for good: it serves nothing more once this returns. Must not be called
    /// from the job itself (it waits for it).
    pub(crate) fn detach(&self) {
        // Nothing queues the job after this (see `kick`)...
        let chan = self.chan.lock().take();
        // ...and a run that took the channel before has finished when this returns.
        self.work.flush();
        drop(chan);
    }

    /// Queues the job if the backend has flagged a request and the job is not queued or running.
    ///
    /// May be called in any context, with interrupts disabled included.
    pub(crate) fn kick(self: &Arc<Self>) {
        // Held while queueing, so that `detach` cannot miss a job queued now.
        let chan = self.chan.lock();
        let Some(chan_ref) = chan.as_ref() else {
            return;
        };
        if !aer_requested(chan_ref) || self.queued.xchg(true, Full) {
            return;
        }
        if workqueue::system_percpu().enqueue(self.clone()).is_err() {
            self.queued.store(false, Relaxed);
        }
    }
}

impl WorkItem for AerJob {
    type Pointer = Arc<AerJob>;

    fn run(this: Arc<AerJob>) {
        // Not the last reference: `detach` drops the job's own after this run (it flushes the
        // job), and the connection holds one until then.
        let chan = this.chan.lock().clone();
        if let Some(chan) = chan {
            serve(&chan, &mut this.state.lock());
        }
        this.queued.store(false, Release);
        // A request flagged while this ran found the job queued and did not queue it again.
        this.kick();
    }
}

/// What the job keeps between its runs.
struct AerState {
    /// Where each device's relayed recovery is: only steps in the PCI core's order reach its
    /// driver.
    order: StepOrder,
    /// The lines about requests refused or withdrawn: a backend's error, which a broken or
    /// hostile backend may repeat as fast as the guest answers.
    refusals: RateLimit,
    /// The clock of `refusals`.
    created: Instant<Monotonic>,
}

impl AerState {
    /// Whether the rate limit lets a line through, and how many it dropped before it.
    fn allow(&mut self) -> Option<u32> {
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        match self.refusals.check(now_ms) {
            Verdict::Print { dropped } => Some(dropped),
            Verdict::Drop => None,
        }
    }

    /// Logs a request refused (at `KERN_ERR`) unless the rate limit drops the line.
    fn refused(&mut self, args: fmt::Arguments<'_>) {
        match self.allow() {
            Some(0) => pr_err!("{}\n", args),
            Some(n) => pr_err!("{} ({} AER line(s) dropped before: rate limit)\n", args, n),
            None => {}
        }
    }

    /// Logs a request the backend withdrew (at `KERN_WARNING`: the C backend does at its
    /// timeout) unless the rate limit drops the line.
    fn withdrawn(&mut self) {
        match self.allow() {
            Some(0) => pr_warn!("AER request withdrawn by the backend before the answer\n"),
            Some(n) => pr_warn!(
                "AER request withdrawn by the backend before the answer ({} AER line(s) dropped before: rate limit)\n",
                n
            ),
            None => {}
        }
    }
}

/// Whether the backend has flagged an AER request.
fn aer_requested(chan: &OpChannel) -> bool {
    chan.ring()
        .atomic_u32(OFFSET_FLAGS)
        .is_ok_and(|flags| flags.load(Acquire) & XEN_PCIB_ACTIVE != 0)
}

/// Copies the request out of the page.
fn read_request(chan: &OpChannel) -> Option<[u8; AER_OP_SIZE]> {
    let mut bytes = [0u8; AER_OP_SIZE];
    chan.ring().copy_to_slice(OFFSET_AER_OP, &mut bytes).ok()?;
    Some(bytes)
}

/// Serves the flagged request, if any.
fn serve(chan: &OpChannel, state: &mut AerState) {
    let ring = chan.ring();
    let Ok(flags) = ring.atomic_u32(OFFSET_FLAGS) else {
        return;
    };
    if flags.load(Acquire) & XEN_PCIB_ACTIVE == 0 {
        return;
    }
    // Copied out once: the backend's page may change while the driver runs.
    let Some(request) = read_request(chan) else {
        return;
    };
    let op = AerOp::from_bytes(&request);
    let answer = match aer::decode_request(&op) {
        Ok((step, addr)) => aer::frontend_answer(step, call_driver(chan, state, step, addr)),
        Err(e) => {
            state.refused(format_args!("AER request refused: {e}"));
            ErsResult::None
        }
    };

    // A backend that gave up on the request (C clears the bit at its timeout) may have posted
    // another one meanwhile: answering it with this answer, or clearing its bit, would be wrong.
    // The next run serves it.
    if flags.load(Acquire) & XEN_PCIB_ACTIVE == 0 || read_request(chan) != Some(request) {
        state.withdrawn();
        return;
    }
    // Offsets inside the page: cannot fail.
    let _ = ring.write(OFFSET_AER_OP_ERR, answer.raw());
    // One atomic step; `Full` publishes the answer first (C's `wmb()`).
    flags.fetch_and(!XEN_PCIB_ACTIVE, Full);
    chan.irq().notify();
}

/// Calls the handler for `step` of the driver bound to the guest device `addr`, if it is behind
/// this connection and the step comes in order (`state.order`).
fn call_driver(chan: &OpChannel, state: &mut AerState, step: AerStep, addr: Bdf) -> DriverOutcome {
    let Some(pdev) = pci::Device::get_by_slot(addr.domain().into(), addr.bus(), addr.devfn())
    else {
        state.refused(format_args!("AER {step}: no device {addr}"));
        return DriverOutcome::NoDevice;
    };
    // Only devices of this connection: the backend has no business with the others.
    let ours = RootBus::<Ops>::with_device_ops(&pdev, |ops| {
        core::ptr::eq(
            core::ptr::from_ref(ops.chan()).cast::<()>(),
            core::ptr::from_ref(chan).cast::<()>(),
        )
    })
    .unwrap_or(false);
    if !ours {
        state.refused(format_args!(
            "AER {step}: {addr} is not behind this frontend"
        ));
        return DriverOutcome::NoDevice;
    }
    // Checked once the device is known to be this connection's: an address the backend made
    // up takes no place in `order`.
    if !state.order.admit(addr, step) {
        state.refused(format_args!(
            "AER {step}: {addr}: out of the recovery's order (the backend's error), not passed on"
        ));
        return DriverOutcome::OutOfOrder;
    }

    let outcome = pdev.with_error_handlers(|handlers| {
        let Some(handlers) = handlers else {
            return DriverOutcome::NoDriver;
        };
        if !handlers.has_error_detected() {
            return DriverOutcome::NoErrorDetected;
        }
        let vote = match step {
            AerStep::ErrorDetected(cs) => handlers.error_detected(match cs {
                ChannelState::Normal => pci::ChannelState::Normal,
                ChannelState::Frozen => pci::ChannelState::Frozen,
                ChannelState::PermFailure => pci::ChannelState::PermFailure,
            }),
            AerStep::MmioEnabled => handlers.mmio_enabled(),
            AerStep::SlotReset => handlers.slot_reset(),
            AerStep::Resume => {
                return if handlers.resume() {
                    DriverOutcome::Resumed
                } else {
                    DriverOutcome::NoHandler
                };
            }
        };
        vote.map_or(DriverOutcome::NoHandler, |v| {
            DriverOutcome::Voted(from_pci(v))
        })
    });
    let dev: &kernel::device::Device = (*pdev).as_ref();
    dev_info!(
        dev,
        "AER {} from the backend: {:?}\n",
        format_args!("{step}"),
        outcome
    );
    outcome
}

fn from_pci(result: pci::ErsResult) -> ErsResult {
    match result {
        pci::ErsResult::None => ErsResult::None,
        pci::ErsResult::CanRecover => ErsResult::CanRecover,
        pci::ErsResult::NeedReset => ErsResult::NeedReset,
        pci::ErsResult::Disconnect => ErsResult::Disconnect,
        pci::ErsResult::Recovered => ErsResult::Recovered,
        pci::ErsResult::NoAerDriver => ErsResult::NoAerDriver,
    }
}
