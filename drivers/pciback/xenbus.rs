// SPDX-License-Identifier: GPL-2.0

//! The xenbus backend `xen-pciback` (device type `pci`): exports seized devices to a PV guest
//! and serves its configuration-space requests.
//!
//! # States
//!
//! probe: InitWait, then (the watch of its own node, `node_changed`) setup: claim and place every `dev-i`, publish `vdev-i`,
//! `state-i`, the roots; Initialised. Frontend Initialised: map its page, bind its event
//! channel; Connected. Frontend Reconfiguring: attach (`state-i` 1) or detach (`state-i` 5)
//! devices; Reconfigured. Frontend Closing or Closed: disconnect. Frontend Closed while the
//! device is offline (`online` missing or 0), or frontend gone (Unknown): unregister the device,
//! as C does. Unbind (unregistration included): release every device.
//!
//! # Lifetimes and locking
//!
//! Everything the event-channel handler and the work item touch is in [`Shared`], kept in an
//! [`Arc`] (the work item needs `'static`). The connection ([`Conn`]: the mapped page and the
//! event channel, each holding a reference to the xenbus device) lives in `Shared::conn`, is
//! created in [`attach`] and dropped in [`disconnect`], which `unbind` always calls: it never
//! outlives the binding. [`disconnect`] then waits for the work item (as C flushes it): a run
//! that started before finds no connection and does nothing, and none is queued or running once
//! it returns, so none runs after `unbind` or after the module is unloaded.
//!
//! Lock order: `Shared::aer`, then `Shared::conn`, then `Shared::topo`, then a device's own
//! locks (see `stub`); `Shared::topo`, then `Shared::fast`, then the device's `fast` and
//! `stats` (never a sleeping lock under `Shared::fast`); [`IRQ_BUDGET`] alone; `Shared::aer_sleep` is taken with `aer` held and
//! nothing else. One request is served at a time per guest: the channel is bound with late EOI
//! and stays masked until the request is answered and acknowledged, and `Shared::queued` says
//! who serves it.
//!
//! # Requests on the interrupt
//!
//! A configuration read, or a plain configuration write (one that changes nothing of the
//! engine and needs only configuration accesses, see `stub`), of the device the guest's last
//! request served by the work item was for is answered by the event channel's handler itself, within the budget of interrupt time
//! of all guests ([`IRQ_BUDGET`], `common::fastpath`), unless `fast_path` is 0 or
//! `verbose_request` is 1; the handler takes only [`IRQ_BUDGET`], `Shared::fast` and the
//! device's `fast` and `stats`, spinlocks taken with interrupts off everywhere. The device is
//! remembered in `Shared::fast` by the work item (under `topo`) and forgotten whenever the
//! topology is locked elsewhere ([`Shared::lock_topo`]); the remembered reference is never the
//! last one, so the interrupt never drops a device. Every other request, and an access the
//! device cannot serve there (its engine is in use, see `stub`), goes to the work item.
//!
//! # AER
//!
//! [`Shared::forward_aer`] posts one step of dom0's error recovery of an exported device in the
//! `aer_op` slot of the page and waits for the guest's answer (see `common::aer`). It runs in
//! the stub's error handler, with the device lock of the PCI device held, and holds `aer` for
//! the whole exchange (one slot per page: two devices of one guest may be recovered at once,
//! each by its own root port's AER service, and the second waits for the first's exchange to
//! end), `conn` only for each look at the page: the work item keeps serving the guest's
//! configuration requests meanwhile (the guest driver's handler makes some). The event-channel handler wakes it when the guest clears `_XEN_PCIB_active`, and
//! [`disconnect`] when the page goes; the wait also re-checks in slices.

use kernel::{
    device::{
        Bound,
        Core, //
    },
    irq::{
        self,
        IrqReturn, //
    },
    new_condvar, new_mutex, new_work,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            AtomicFlag,
            Full,
            Relaxed,
            Release, //
        },
        new_spinlock_irq,
        Arc,
        CondVar,
        Mutex,
        MutexGuard,
        SpinLockIrq, //
    },
    time::{
        delay::fsleep,
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        Work,
        WorkItem, //
    },
    xen::{
        evtchn::{
            self,
            Eoi,
            Irq,
            Port,
            Registration, //
        },
        grant::{
            GrantRef,
            MappedRing, //
        },
        xenbus::{
            self,
            OtherendAction,
            XenbusState, //
        },
        xenstore::{
            Nil,
            Store as _, //
        },
        DomId,
    },
};

use core::marker::PhantomData;

use crate::{
    common::{
        aer::{
            self,
            AerStep,
            AerWait,
            Delivery,
            WaitEnd, //
        },
        bdf::Bdf,
        fastpath::Budget,
        pciif::{
            AerOp,
            OFFSET_AER_OP,
            OFFSET_AER_OP_ERR,
            OFFSET_FLAGS,
            XEN_PCIB_ACTIVE,
            XEN_PCIB_AERHANDLER,
            XEN_PCI_MAGIC, //
        },
        ratelimit::{
            RateLimit,
            Verdict, //
        },
        vbus::VbusError,
        xs,
    },
    isolation, ops,
    stub::{
        ClaimError,
        Seized, //
    },
    topology::{
        AddError,
        Topology, //
    },
};

/// The backend driver.
pub(crate) struct Backend;

kernel::xenbus_device_table!(PCI_IDS, (), [(xenbus::DeviceId::new(c"pci"), ())]);

/// The frontend's page and event channel, while connected.
struct Conn {
    evtchn: Pin<KBox<Registration<Kick>>>,
}

/// The event-channel handler.
struct Kick {
    page: Arc<MappedRing>,
    shared: Arc<Shared>,
    /// Whether the frontend offered `feature-quiet-answers`: only then does
    /// `_XEN_PCIF_watching` spare an answer its event.
    quiet: bool,
}

impl evtchn::Handler for Kick {
    fn handle(&self, irq: &Irq) -> IrqReturn {
        // The guest's answer to an AER request: wake the waiter.
        let aer_answer = self.shared.aer_waiting.load(Acquire) && !aer_active(&self.page);
        if aer_answer {
            self.shared.aer_done.notify_all();
        }
        let mut handled = aer_answer;
        if ops::op_pending(&self.page) && !self.shared.queued.xchg(true, Full) {
            // One request per event on the interrupt; anything else, and a request flagged
            // after it was answered, goes to the work item.
            let start_ns = evtchn::system_time_ns();
            if let Some(signal) = self
                .shared
                .serve_on_interrupt(&self.page, start_ns, self.quiet)
            {
                handled = true;
                if signal == ops::Signal::Needed {
                    irq.notify();
                }
                self.shared.queued.store(false, Release);
                let again = ops::op_pending(&self.page) && !self.shared.queued.xchg(true, Full);
                if !again {
                    irq.lateeoi(Eoi::Handled);
                }
                charge_interrupt_time(start_ns);
                if !again {
                    return IrqReturn::Handled;
                }
            }
            self.shared.kicked();
            // Acknowledged by the work item once the request is answered.
            if workqueue::system_percpu()
                .enqueue(self.shared.clone())
                .is_ok()
            {
                return IrqReturn::Handled;
            }
            self.shared.queued.store(false, Relaxed);
        }
        // Nothing else to do: an event for nothing counts towards throttling a guest that
        // kicks for nothing.
        irq.lateeoi(if handled { Eoi::Handled } else { Eoi::Spurious });
        IrqReturn::Handled
    }
}

/// Whether `_XEN_PCIB_active` is set: an AER request is posted and not answered yet.
fn aer_active(page: &kernel::xen::grant::SharedMemory) -> bool {
    page.atomic_u32(OFFSET_FLAGS)
        .is_ok_and(|flags| flags.load(Acquire) & XEN_PCIB_ACTIVE != 0)
}

/// The per-guest state shared with the event channel and the work item.
#[pin_data]
pub(crate) struct Shared {
    /// The guest.
    domid: DomId,
    /// Our own (the backend device's) directory.
    nodename: CString,
    /// The frontend's directory.
    frontend: CString,
    /// The exported devices.
    #[pin]
    topo: Mutex<Topology>,
    /// The connection, while connected.
    #[pin]
    conn: Mutex<Option<Conn>>,
    /// The device the guest's last request served by the work item was for, and where the
    /// guest sees it: what the event channel's interrupt needs to serve a configuration read
    /// or plain write itself ([`Shared::serve_on_interrupt`]). Cleared whenever the topology is locked to
    /// change it ([`Shared::lock_topo`]), so it is always one of the exported devices.
    #[pin]
    fast: SpinLockIrq<Option<(Bdf, Arc<Seized>)>>,
    /// The work item is queued or running, or the interrupt is serving a request: whoever
    /// sets it serves the pending request.
    queued: AtomicFlag,
    /// When the work item was last queued, in nanoseconds since `created` (statistics: how
    /// long a request waits for service).
    kicked_ns: Atomic<i64>,
    #[pin]
    work: Work<Shared>,
    /// Held for the whole of an AER request: one `aer_op` slot.
    #[pin]
    aer: Mutex<()>,
    /// Signalled when the guest answers an AER request, or disconnects.
    #[pin]
    aer_done: CondVar,
    /// The lock `aer_done` is waited on with (not `aer`, which the whole exchange holds).
    #[pin]
    aer_sleep: Mutex<()>,
    /// An AER request is posted and its answer awaited.
    aer_waiting: AtomicFlag,
    /// The rate limit of this guest's `verbose_request` lines, and its clock's start.
    #[pin]
    verbose: Mutex<RateLimit>,
    created: Instant<Monotonic>,
}

kernel::impl_has_work! {
    impl HasWork<Self> for Shared { self.work }
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in `PcibackModule::init` before the drivers are registered, so
    // before any event channel is bound.
    pub(crate) unsafe(uninit) static IRQ_BUDGET: SpinLockIrq<Budget> = Budget::new();
}

/// Charges the interrupt time of a request served on the interrupt, from `start_ns` (Xen
/// system time) to now, to [`IRQ_BUDGET`].
fn charge_interrupt_time(start_ns: u64) {
    let ns = evtchn::system_time_ns().saturating_sub(start_ns);
    IRQ_BUDGET.lock().charge(ns);
}

impl Shared {
    /// Nanoseconds since `created`.
    fn now_ns(&self) -> i64 {
        self.created.elapsed().as_nanos()
    }

    /// Locks the topology to change or read it anywhere but in the work item, and forgets the
    /// device the interrupt serves requests of: it comes back with the next request the work
    /// item serves (`remember`).
    fn lock_topo(&self) -> MutexGuard<'_, Topology> {
        let topo = self.topo.lock();
        let last = self.fast.lock().take();
        // Not the last reference: the topology holds the device as long as `last` does (it was
        // remembered from the topology, and is forgotten before any change of it).
        drop(last);
        topo
    }

    /// Remembers `dev`, the device at `guest` in the topology `_topo` (locked by the caller),
    /// for the requests on the interrupt.
    fn remember(&self, _topo: &Topology, guest: Bdf, dev: &Arc<Seized>) {
        let mut fast = self.fast.lock();
        if fast
            .as_ref()
            .is_some_and(|(g, d)| *g == guest && Arc::ptr_eq(d, dev))
        {
            return;
        }
        let old = fast.replace((guest, dev.clone()));
        drop(fast);
        // As in `lock_topo`: the topology holds it too.
        drop(old);
    }

    /// Serves the pending request on the event channel's interrupt, whose handler started at
    /// `start_ns` (Xen system time), if it is a configuration read or plain write of the
    /// device remembered last and the interrupt-time budget of all guests allows
    /// (`common::fastpath`); returns whether the answer must be signalled if it did (`quiet`:
    /// whether the frontend offered `feature-quiet-answers`). The caller charges the time.
    fn serve_on_interrupt(
        &self,
        page: &kernel::xen::grant::SharedMemory,
        start_ns: u64,
        quiet: bool,
    ) -> Option<ops::Signal> {
        // A logged request is served in process context.
        if !crate::fast_path() || crate::verbose_request() {
            return None;
        }
        if !IRQ_BUDGET.lock().admit(start_ns) {
            return None;
        }
        let fast = self.fast.lock();
        let (guest, dev) = fast.as_ref()?;
        ops::serve_on_interrupt(page, *guest, dev, quiet)
    }

    /// Notes that the work item is being queued, just before queueing it.
    fn kicked(&self) {
        self.kicked_ns.store(self.now_ns(), Release);
    }
}

impl WorkItem for Shared {
    type Pointer = Arc<Shared>;

    fn run(this: Arc<Shared>) {
        // How long the request waited for this run: the hand-over from the event channel's
        // interrupt (or from the previous run) to process context.
        let wait_ns = u64::try_from(this.now_ns() - this.kicked_ns.load(Acquire)).unwrap_or(0);
        let conn = this.conn.lock();
        let Some(conn) = conn.as_ref() else {
            // Disconnected meanwhile; the channel is gone.
            this.queued.store(false, Relaxed);
            return;
        };
        let kick = conn.evtchn.handler();
        let page = &kick.page;
        let irq = conn.evtchn.irq();
        let topo = this.topo.lock();
        let served = ops::serve_one(page, &topo, wait_ns, kick.quiet);
        // The device of the request, for the next requests on the interrupt.
        let guest = served.as_ref().and_then(ops::Served::guest);
        if let Some((guest, dev)) = guest.and_then(|g| Some((g, topo.find(g)?))) {
            this.remember(&topo, guest, dev);
        }
        drop(topo);
        if let Some(served) = &served {
            if served.signal() == ops::Signal::Needed {
                irq.notify();
            }
            if crate::verbose_request() {
                let now_ms = u64::try_from(this.created.elapsed().as_millis()).unwrap_or(u64::MAX);
                if let Verdict::Print { dropped } = this.verbose.lock().check(now_ms) {
                    served.log(this.domid.as_raw(), dropped);
                }
            }
        }
        let served = served.is_some();
        this.queued.store(false, Release);

        // A request flagged while the channel was masked sends no new event: run again, from
        // the queue rather than in a loop, so that a guest that keeps flagging requests cannot
        // hold this worker. The channel stays masked; the next run acknowledges it.
        if ops::op_pending(page) && !this.queued.xchg(true, Full) {
            this.kicked();
            match workqueue::system_percpu().enqueue(this.clone()) {
                Ok(()) => return,
                Err(_) => this.queued.store(false, Relaxed),
            }
        }
        irq.lateeoi(if served { Eoi::Handled } else { Eoi::Spurious });
    }
}

/// Driver data of a bound backend device.
#[pin_data]
pub(crate) struct BackendData<'bound> {
    shared: Arc<Shared>,
    _dev: PhantomData<&'bound ()>,
}

fn cstr_key(buf: &xs::KeyBuf) -> Result<&CStr> {
    buf.as_cstr().ok_or(EINVAL)
}

/// Reads `node` of our own directory as a number.
fn read_own_u32(dev: &xenbus::Device<Bound>, node: &CStr) -> Result<u32> {
    Nil.read_u32(dev.nodename(), node)
}

/// Reads `num_devs`, bounded (the loops over it make a xenstore read per index).
fn read_num_devs(dev: &xenbus::Device<Bound>) -> Result<u32> {
    let value = Nil.read(dev.nodename(), xs::NUM_DEVS)?;
    xs::parse_count(&value, xs::NUM_DEVS_MAX).map_err(|_| EINVAL)
}

/// What became of a `dev-i` the toolstack asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exported {
    /// Placed, with `vdev-i` published.
    Yes,
    /// Refused alone (see [`export_index`]): the other devices are unaffected.
    Refused,
}

/// Claims the device named by `dev-i`, places it, and publishes `vdev-i` and `state-i`.
///
/// A device the topology has no place for (the 33rd slot of the virtual bus, a bridge there),
/// one whose DMA peers are not isolated from it ([`isolated`]), or one whose bus is still being
/// reset after a few seconds, is refused alone: its error is written to the store with
/// `dev_error`, its `state-i` set to Closed (no `vdev-i`), and the connection goes on with the
/// other devices. C calls `xenbus_dev_fatal` instead, which closes the whole backend: the guest
/// loses every device, and `xl pci-detach` then waits in vain for a Connected backend. A device
/// that cannot be parsed or claimed is still fatal, as in C. On failure or refusal nothing stays
/// claimed or placed.
fn export_index(dev: &xenbus::Device<Core<'_>>, shared: &Arc<Shared>, i: u32) -> Result<Exported> {
    let node = dev.nodename();
    let value = Nil
        .read(node, cstr_key(&xs::dev_key(i))?)
        .inspect_err(|e| dev.dev_fatal(*e, fmt!("reading dev-{i}")))?;
    let host = xs::parse_dev(&value).map_err(|e| {
        dev.dev_fatal(EINVAL, fmt!("parsing dev-{i}: {}", format_args!("{e}")));
        EINVAL
    })?;

    // A secondary bus reset of the device's bus (a sibling's release, a `do_flr`) usually ends
    // within a second: wait for it a little (on the `xenwatch` thread, which every backend
    // shares), then refuse the device alone rather than fail the whole connection.
    let mut tries = 0;
    let claimed = loop {
        match Seized::claim(host, shared) {
            Err(ClaimError::Resetting) if tries < 50 => {
                tries += 1;
                fsleep(Delta::from_millis(100));
            }
            r => break r,
        }
    };
    let seized = match claimed {
        Ok(seized) => seized,
        Err(e @ ClaimError::Resetting) => {
            refuse_alone(
                dev,
                i,
                e.to_error(),
                fmt!("refusing {} (dev-{i}): {e}", format_args!("{host}")),
            )?;
            return Ok(Exported::Refused);
        }
        Err(e) => {
            dev.dev_fatal(
                e.to_error(),
                fmt!("{} is not assignable: {e}", format_args!("{host}")),
            );
            return Err(e.to_error());
        }
    };

    // Checked once claimed: a peer claimed by another guest from now on sees this one.
    match isolated(dev, shared, &seized, host, i) {
        Ok(true) => {}
        Ok(false) => {
            seized.unclaim();
            return Ok(Exported::Refused);
        }
        Err(e) => {
            seized.unclaim();
            return Err(e);
        }
    }

    let added = shared.lock_topo().add(seized.clone());
    let guest = match added {
        Ok(guest) => guest,
        Err(AddError::Vbus(e)) => {
            seized.unclaim();
            let err = if e == VbusError::Full { ENOMEM } else { EINVAL };
            refuse_alone(
                dev,
                i,
                err,
                fmt!(
                    "refusing {} (dev-{i}): {}",
                    format_args!("{host}"),
                    format_args!("{e}")
                ),
            )?;
            return Ok(Exported::Refused);
        }
        Err(AddError::NoMem) => {
            seized.unclaim();
            dev.dev_fatal(ENOMEM, fmt!("cannot export {}", format_args!("{host}")));
            return Err(ENOMEM);
        }
    };

    let published = xs::vdev_value(guest)
        .as_cstr()
        .ok_or(EINVAL)
        .and_then(|v| Nil.write(node, cstr_key(&xs::vdev_key(i))?, v))
        .and_then(|()| {
            Nil.write_fmt(
                node,
                cstr_key(&xs::state_key(i))?,
                fmt!("{}", u32::from(XenbusState::Initialised)),
            )
        });
    if let Err(e) = published {
        // Placed, so the guest may have used it already (requests are served by address, and
        // its slot can be guessed): released as at a detach, reset and restored.
        let removed = shared.lock_topo().remove(guest);
        if let Some(s) = removed {
            s.release();
        }
        dev.dev_fatal(e, fmt!("publishing vdev-{i}"));
        return Err(e);
    }

    dev_info!(
        dev.as_ref(),
        "exported {} to domain {} as {}\n",
        format_args!("{host}"),
        shared.domid,
        format_args!("{guest}")
    );
    Ok(Exported::Yes)
}

/// Checks that the devices `host` can reach by DMA without the IOMMU let it go to the guest
/// (see [`crate::isolation`]); if not, and the administrator did not allow it
/// (`allow_dma_peers`), refuses it alone, as [`export_index`] refuses a device the topology has
/// no place for: its error in the store, `state-i` Closed. Returns whether it may be exported.
///
/// `dma_isolation=0` makes every refusal a warning.
fn isolated(
    dev: &xenbus::Device<Core<'_>>,
    shared: &Shared,
    seized: &Seized,
    host: Bdf,
    i: u32,
) -> Result<bool> {
    let conflicts = isolation::conflicts(seized.pdev(), shared.domid);
    if conflicts.is_empty() {
        return Ok(true);
    }
    let pdev = seized.pdev().as_ref();
    let allowed = if seized.dma_peers_allowed() {
        Some("allow_dma_peers")
    } else if !crate::dma_isolation() {
        Some("dma_isolation=0")
    } else {
        None
    };
    if let Some(why) = allowed {
        dev_warn!(
            pdev,
            "exported to domain {} although it reaches by DMA, without the IOMMU: {} ({})\n",
            shared.domid,
            format_args!("{conflicts}"),
            why
        );
        return Ok(true);
    }
    dev_err!(
        pdev,
        "not exported to domain {}: it reaches by DMA, without the IOMMU (no ACS between them): {}; to export it anyway, write its address to allow_dma_peers\n",
        shared.domid,
        format_args!("{conflicts}")
    );
    refuse_alone(
        dev,
        i,
        EBUSY,
        fmt!(
            "refusing {} (dev-{i}): not isolated from {} (no ACS)",
            format_args!("{host}"),
            format_args!("{conflicts}")
        ),
    )?;
    Ok(false)
}

/// Refuses `dev-i` alone: writes `why` to the store (`dev_error`, with `err`) and sets `state-i`
/// Closed, without a `vdev-i`; the connection goes on with the other devices.
fn refuse_alone(
    dev: &xenbus::Device<Core<'_>>,
    i: u32,
    err: Error,
    why: core::fmt::Arguments<'_>,
) -> Result {
    dev.dev_error(err, why);
    Nil.write_fmt(
        dev.nodename(),
        cstr_key(&xs::state_key(i))?,
        fmt!("{}", u32::from(XenbusState::Closed)),
    )
    .inspect_err(|e| dev.dev_fatal(*e, fmt!("writing state-{i}")))
}

/// Publishes the roots not published yet, and `root_num`.
fn publish_roots(dev: &xenbus::Device<Core<'_>>, shared: &Shared) -> Result {
    let node = dev.nodename();
    let (new, count) = {
        let mut topo = shared.lock_topo();
        let new = topo.new_roots().map_err(|e| {
            dev.dev_fatal(
                ENOSPC,
                fmt!("publishing the roots: {}", format_args!("{e}")),
            );
            ENOSPC
        })?;
        (new, topo.root_count())
    };
    for (i, root) in new.iter() {
        let i = u32::try_from(*i)?;
        let value = xs::root_value(*root);
        let r = Nil.write(
            node,
            cstr_key(&xs::root_key(i))?,
            value.as_cstr().ok_or(EINVAL)?,
        );
        if let Err(e) = r {
            dev.dev_fatal(e, fmt!("writing root-{i}"));
            return Err(e);
        }
    }
    Nil.write_fmt(node, xs::ROOT_NUM, fmt!("{count}"))
        .inspect_err(|e| dev.dev_fatal(*e, fmt!("writing root_num")))
}

/// Exports every `dev-i`, then moves to Initialised (and attaches if the frontend is ready).
fn setup(dev: &xenbus::Device<Core<'_>>, shared: &Arc<Shared>) {
    let num = match read_num_devs(dev) {
        Ok(n) => n,
        Err(e) => {
            dev.dev_fatal(e, fmt!("reading num_devs"));
            return;
        }
    };
    for i in 0..num {
        // A refused device does not stop the others.
        if export_index(dev, shared, i).is_err() {
            return;
        }
    }
    if publish_roots(dev, shared).is_err() {
        return;
    }
    // Offered to a frontend that offers it too (see `pciif::XEN_PCIF_WATCHING_BIT`). Optional:
    // without the key the frontend asks for nothing, and every answer is signalled.
    if let Err(e) = Nil.write(dev.nodename(), xs::FEATURE_QUIET_ANSWERS, c"1") {
        dev_warn!(
            dev.as_ref(),
            "cannot write feature-quiet-answers ({:?}): every answer is signalled\n",
            e
        );
    }
    if dev.switch_state(XenbusState::Initialised).is_err() {
        return;
    }
    attach(dev, shared);
}

/// Connects to the frontend's page and event channel once both ends are Initialised.
fn attach(dev: &xenbus::Device<Core<'_>>, shared: &Arc<Shared>) {
    if dev.state() != XenbusState::Initialised {
        return;
    }
    let fe = &*shared.frontend;
    if Nil.read_u32(fe, xs::STATE).ok() != Some(u32::from(XenbusState::Initialised)) {
        return;
    }
    match try_attach(dev, shared, fe) {
        Ok(()) => {
            let _ = dev.switch_state(XenbusState::Connected);
        }
        // One error in the store: a second `dev_fatal` would overwrite the first's words.
        Err(AttachError::Reported) => {}
        Err(AttachError::Failed(e)) => dev.dev_fatal(e, fmt!("connecting to the frontend")),
    }
}

/// Why [`try_attach`] failed.
enum AttachError {
    /// Already reported with `dev_fatal`.
    Reported,
    /// To be reported by the caller.
    Failed(Error),
}

impl From<Error> for AttachError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

impl From<kernel::alloc::AllocError> for AttachError {
    fn from(e: kernel::alloc::AllocError) -> Self {
        Self::Failed(e.into())
    }
}

fn try_attach(
    dev: &xenbus::Device<Core<'_>>,
    shared: &Arc<Shared>,
    fe: &CStr,
) -> Result<(), AttachError> {
    let gref = Nil.read_u32(fe, xs::PCI_OP_REF)?;
    let port = Nil.read_u32(fe, xs::EVENT_CHANNEL)?;
    let magic = Nil.read(fe, xs::MAGIC)?;
    // Optional: a frontend without it (every C one) has every answer signalled.
    let quiet = Nil
        .read(fe, xs::FEATURE_QUIET_ANSWERS)
        .is_ok_and(|v| xs::feature_on(&v));
    if !xs::magic_ok(&magic) {
        dev.dev_fatal(
            EFAULT,
            fmt!(
                "version mismatch ({} vs {})",
                kernel::str::BStr::from_bytes(&magic),
                XEN_PCI_MAGIC
            ),
        );
        return Err(AttachError::Reported);
    }

    // Held while binding: a work item queued by an early event waits for the connection.
    let mut conn = shared.conn.lock();
    if conn.is_some() {
        return Ok(());
    }

    // The page and the channel hold a reference to the device, not to its binding: the
    // connection is dropped by `disconnect()`, which `Backend::unbind` always calls, so the
    // guest's page and channel are given back when the device is unbound at the latest.
    let page = Arc::new(
        MappedRing::new(dev, &[GrantRef::from_raw(gref)])?,
        GFP_KERNEL,
    )?;
    let kick = Kick {
        page,
        shared: shared.clone(),
        quiet,
    };
    let evtchn = KBox::pin_init(
        Registration::new_interdomain(
            dev,
            Port::from_raw(port),
            irq::Flags::TRIGGER_NONE,
            c"xen-pciback",
            Ok::<_, Error>(kick),
        ),
        GFP_KERNEL,
    )?;
    *conn = Some(Conn { evtchn });
    dev_info!(
        dev.as_ref(),
        "connected to domain {} (grant {}, port {})\n",
        shared.domid,
        gref,
        port
    );
    Ok(())
}

/// Unbinds the event channel, unmaps the page, and waits for the work item.
///
/// On return the work item is neither queued nor running, and nothing queues it again until the
/// next [`attach`]: `unbind` calls this, so no item runs after the device is unbound, or after
/// the module is unloaded (its function is module code). Called without any of `Shared`'s
/// locks held (the work item takes them).
fn disconnect(shared: &Shared) {
    let conn = shared.conn.lock().take();
    // Unbinding waits for a running handler, and nothing else queues the work item without the
    // connection: only a run that saw it (before it was taken) can have queued one.
    drop(conn);
    // An AER request waiting for this guest gives up.
    shared.aer_done.notify_all();
    // That run, or the one it queued, finds no connection and stops.
    shared.work.flush();
}

/// Gives every device back.
fn release_all(shared: &Shared) {
    let devs = shared.lock_topo().drain();
    for e in devs.iter() {
        e.dev.release();
    }
}

/// The toolstack attached (`state-i` 1) or detached (`state-i` 5) devices of a running guest.
fn reconfigure(dev: &xenbus::Device<Core<'_>>, shared: &Arc<Shared>) {
    if read_own_u32(dev, xs::STATE).ok() != Some(u32::from(XenbusState::Reconfiguring)) {
        return;
    }
    if update_devices(dev, shared).is_ok() {
        let _ = dev.switch_state(XenbusState::Reconfigured);
    }
}

/// Exports the devices whose `state-i` is Initialising and releases those whose `state-i` is
/// Closing. Errors are reported with `dev_fatal`.
fn update_devices(dev: &xenbus::Device<Core<'_>>, shared: &Arc<Shared>) -> Result {
    let num = match read_num_devs(dev) {
        Ok(n) => n,
        Err(e) => {
            dev.dev_fatal(e, fmt!("reading num_devs"));
            return Err(e);
        }
    };
    let node = dev.nodename();
    for i in 0..num {
        let state_key = xs::state_key(i);
        let key = cstr_key(&state_key)?;
        let Ok(state) = Nil.read_u32(node, key) else {
            continue;
        };
        if state == u32::from(XenbusState::Initialising) {
            if export_index(dev, shared, i)? == Exported::Yes {
                publish_roots(dev, shared)?;
            }
        } else if state == u32::from(XenbusState::Closing) {
            let vdev_key = xs::vdev_key(i);
            let key = cstr_key(&vdev_key)?;
            let value = match Nil.read(node, key) {
                Ok(value) => value,
                // Never exported: a device refused by `export_index` is detached.
                Err(e) if e == ENOENT => {
                    dev_info!(dev.as_ref(), "dev-{i} detached (it was never exported)\n");
                    continue;
                }
                Err(e) => {
                    dev.dev_fatal(e, fmt!("reading vdev-{i}"));
                    return Err(e);
                }
            };
            let Ok(guest) = xs::parse_vdev(&value) else {
                dev.dev_fatal(EINVAL, fmt!("parsing vdev-{i}"));
                return Err(EINVAL);
            };
            // The device at `vdev-i` must still be `dev-i`'s: a `state-i` left at Closing by a
            // detach the toolstack gave up on (libxl removes the keys only once the backend is
            // Connected again) is seen again at the next reconfiguration, when another device
            // may have taken the address (a freed slot of the virtual bus). Without `dev-i`, as
            // C, by `vdev-i` alone.
            let host = match Nil.read(node, cstr_key(&xs::dev_key(i))?) {
                Ok(v) => Some(xs::parse_dev(&v).map_err(|_| {
                    dev.dev_fatal(EINVAL, fmt!("parsing dev-{i}"));
                    EINVAL
                })?),
                Err(e) if e == ENOENT => None,
                Err(e) => {
                    dev.dev_fatal(e, fmt!("reading dev-{i}"));
                    return Err(e);
                }
            };
            let removed = {
                let mut topo = shared.lock_topo();
                match (topo.find(guest).map(|s| s.bdf()), host) {
                    (Some(placed), Some(host)) if placed != host => {
                        dev_info!(
                            dev.as_ref(),
                            "dev-{i} ({}) is not at {} any more ({} is): not detached\n",
                            format_args!("{host}"),
                            format_args!("{guest}"),
                            format_args!("{placed}")
                        );
                        None
                    }
                    _ => topo.remove(guest),
                }
            };
            if let Some(s) = removed {
                dev_info!(
                    dev.as_ref(),
                    "detaching {} ({})\n",
                    format_args!("{guest}"),
                    format_args!("{}", s.bdf())
                );
                s.release();
            }
        }
    }
    Ok(())
}

impl Shared {
    /// The guest.
    pub(crate) fn domid(&self) -> DomId {
        self.domid
    }

    /// Asks the guest's driver of the exported device `dev` to take part in the recovery step
    /// `step`, and waits for its answer (see the module documentation).
    ///
    /// Sleeps for up to [`aer::AER_TIMEOUT_MS`]. Must not be called with any lock of `self`
    /// held.
    pub(crate) fn forward_aer(&self, dev: &Seized, step: AerStep) -> Delivery {
        let Some(guest) = self.lock_topo().guest_of(dev) else {
            return Delivery::NotExported;
        };
        let _slot = self.aer.lock();
        {
            let conn = self.conn.lock();
            let Some(conn) = conn.as_ref() else {
                return Delivery::NotConnected;
            };
            let page = &conn.evtchn.handler().page;
            let Ok(flags) = page.atomic_u32(OFFSET_FLAGS) else {
                return Delivery::NotConnected;
            };
            let current = flags.load(Acquire);
            if current & XEN_PCIB_AERHANDLER == 0 {
                return Delivery::NoHandler;
            }
            if current & XEN_PCIB_ACTIVE != 0 {
                return Delivery::Busy;
            }
            let request = AerOp::request(step, guest).to_bytes();
            if page.copy_from_slice(OFFSET_AER_OP, &request).is_err() {
                return Delivery::NotConnected;
            }
            self.aer_waiting.store(true, Relaxed);
            // One atomic step, whatever the guest writes meanwhile; `Full` orders the request's
            // stores before the bit (C's `wmb()`).
            flags.fetch_or(XEN_PCIB_ACTIVE, Full);
            conn.evtchn.irq().notify();
        }

        let end = aer::wait_answer(&mut AerWaiter {
            shared: self,
            start: Instant::<Monotonic>::now(),
        });
        self.aer_waiting.store(false, Relaxed);
        if end != WaitEnd::Answered {
            return Delivery::NoAnswer;
        }
        let conn = self.conn.lock();
        match conn
            .as_ref()
            .map(|c| c.evtchn.handler().page.read::<i32>(OFFSET_AER_OP_ERR))
        {
            Some(Ok(raw)) => Delivery::Answered(raw),
            _ => Delivery::NoAnswer,
        }
    }

    /// Marks the guest as failed in its AER recovery: `aerState` = `aerfail` in our directory,
    /// as C `kill_domain_by_device` does (C writes it at a path fixed to backend domain 0, the
    /// same for a backend in dom0). No toolstack reads it today.
    pub(crate) fn mark_aer_failed(&self) -> Result {
        Nil.write(&self.nodename, xs::AER_STATE, xs::AER_STATE_FAILED)
    }
}

/// The page during [`Shared::forward_aer`]'s wait.
struct AerWaiter<'a> {
    shared: &'a Shared,
    start: Instant<Monotonic>,
}

impl AerWait for AerWaiter<'_> {
    fn active(&mut self) -> Option<bool> {
        let conn = self.shared.conn.lock();
        conn.as_ref().map(|c| aer_active(&c.evtchn.handler().page))
    }

    fn sleep(&mut self, ms: u64) -> bool {
        let jiffies = msecs_to_jiffies(u32::try_from(ms).unwrap_or(u32::MAX));
        // A wake-up between the caller's look at the page and this sleep is lost, and costs
        // one slice: `wait_answer` sleeps in slices.
        let mut guard = self.shared.aer_sleep.lock();
        !matches!(
            self.shared
                .aer_done
                .wait_interruptible_timeout(&mut guard, jiffies),
            kernel::sync::CondVarTimeoutResult::Signal { .. }
        )
    }

    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl xenbus::Driver for Backend {
    type IdInfo = ();
    type Data<'bound> = BackendData<'bound>;
    const ID_TABLE: xenbus::IdTable<()> = &PCI_IDS;

    fn probe<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        _id_info: &'bound (),
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let frontend = dev.otherend()?;
            let nodename = CString::try_from_fmt(fmt!("{}", dev.nodename()))?;
            let shared = Arc::pin_init(
                try_pin_init!(Shared {
                    domid: dev.otherend_id(),
                    nodename,
                    frontend,
                    topo <- new_mutex!(Topology::new(crate::passthrough())),
                    conn <- new_mutex!(None),
                    fast <- new_spinlock_irq!(None),
                    queued: AtomicFlag::new(false),
                    kicked_ns: Atomic::new(0),
                    work <- new_work!("pciback::op"),
                    aer <- new_mutex!(()),
                    aer_done <- new_condvar!("pciback::aer_done"),
                    aer_sleep <- new_mutex!(()),
                    aer_waiting: AtomicFlag::new(false),
                    verbose <- new_mutex!(RateLimit::new()),
                    created: Instant::now(),
                }),
                GFP_KERNEL,
            )?;
            dev.switch_state(XenbusState::InitWait)?;

            Ok(try_pin_init!(BackendData {
                shared,
                _dev: PhantomData,
            }))
        })
    }

    // The toolstack writes the devices to export (`dev-i`, `num_devs`) and, for a running
    // guest, their changes (`state-i`) in the backend's own directory.
    const WATCH_NODE: bool = true;

    fn node_changed<'bound>(dev: &'bound xenbus::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        match dev.state() {
            XenbusState::InitWait => setup(dev, &this.shared),
            // Devices added before the frontend connected.
            XenbusState::Initialised => {
                // Failures are reported in the store by `dev_fatal`.
                let _ = update_devices(dev, &this.shared);
            }
            _ => {}
        }
    }

    fn otherend_changed<'bound>(
        dev: &'bound xenbus::Device<Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
        state: XenbusState,
    ) -> OtherendAction {
        let shared = &this.shared;
        match state {
            XenbusState::Initialised => attach(dev, shared),
            XenbusState::Connected => {
                if matches!(
                    dev.state(),
                    XenbusState::Connected | XenbusState::Reconfigured
                ) {
                    let _ = dev.switch_state(XenbusState::Connected);
                }
            }
            XenbusState::Reconfiguring => reconfigure(dev, shared),
            XenbusState::Closing => {
                disconnect(shared);
                let _ = dev.switch_state(XenbusState::Closing);
            }
            XenbusState::Closed => {
                disconnect(shared);
                let _ = dev.switch_state(XenbusState::Closed);
                // An online device may get a new frontend; an offline one is going away.
                if !dev.is_online() {
                    dev_info!(
                        dev.as_ref(),
                        "frontend closed and device offline: unregistering\n"
                    );
                    return OtherendAction::Unregister;
                }
            }
            XenbusState::Unknown => {
                // The frontend's node is gone (its domain was destroyed): so is the device. The
                // unbind releases the exported devices.
                dev_info!(dev.as_ref(), "frontend gone: unregistering\n");
                return OtherendAction::Unregister;
            }
            _ => {}
        }
        OtherendAction::Keep
    }

    fn unbind<'bound>(dev: &'bound xenbus::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        disconnect(&this.shared);
        release_all(&this.shared);
        // Not left for a backend bound to the node later (a C one offers nothing); the node may
        // be gone already.
        let _ = Nil.remove(dev.nodename(), xs::FEATURE_QUIET_ANSWERS);
    }
}
