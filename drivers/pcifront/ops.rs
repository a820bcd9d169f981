// SPDX-License-Identifier: GPL-2.0

//! The operation channel: one shared page and one event channel, over which each configuration
//! space access is one request and one answer (`pciif.h`, "`do_pci_op`").
//!
//! The PCI core may call the accessors with its raw `pci_lock` held and interrupts disabled (user
//! space's accesses through sysfs, for one), so a round
//! trip never sleeps: it fills the request in the shared page, sets `_XEN_PCIF_active`, signals
//! the backend and then polls the event channel (a hypercall that blocks the vCPU, not a sleep)
//! until the backend clears the bit again, within a deadline. The event channel is masked for
//! the round trip, so that the answer's signal, taken off the channel after the answer, costs
//! no upcall into [`Events`]. The rules of that wait are pure code, tested on the host:
//! [`roundtrip`].

use kernel::{
    device::Core,
    irq::{
        self,
        IrqReturn, //
    },
    pci::PcibiosError,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Full,
            Relaxed, //
        },
        new_raw_spinlock_irq, Arc, RawSpinLockIrq,
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    xen::{
        evtchn::{
            self,
            EoiMode,
            Irq,
            LocalPort,
            Registration, //
        },
        grant::{
            GrantRef,
            SharedRing, //
        },
        sched,
        xenbus, //
    },
};

use crate::{
    aer::AerJob,
    common::{
        pciif::{
            self,
            LateEnable,
            RawOp, //
        },
        roundtrip::{
            self,
            Outcome, //
        },
    },
};

/// The event channel's handler.
///
/// The backend signals the channel after each answer the frontend was not watching for (all of
/// them, unless both ends offered `feature-quiet-answers`), and when it posts an AER request.
/// The answers are collected by polling in [`OpChannel::round_trip`], with the channel masked,
/// and their signals cleared then: the handler takes the signals that come later, and the AER
/// requests posted between round trips. It counts the event and kicks the AER job, which only
/// runs when a request is flagged.
pub(crate) struct Events {
    aer: Arc<AerJob>,
    /// Events taken, for the statistics file.
    count: Atomic<u64>,
}

impl evtchn::Handler for Events {
    fn handle(&self, _irq: &Irq) -> IrqReturn {
        self.count.fetch_add(1, Relaxed);
        self.aer.kick();
        IrqReturn::Handled
    }
}

/// What the lock of an [`OpChannel`] protects besides the request slot of the shared page.
struct SlotState {
    /// Whether a timed-out round trip was logged already (it is logged once per connection).
    timeout_logged: bool,
    /// How long a round trip spins before it polls, and whether it yields the CPU after its
    /// post (learnt from this connection's answers).
    spin: roundtrip::Spin,
    /// What the round trips did, for the statistics file.
    counts: roundtrip::Counts,
    /// Whether the backend offered `feature-quiet-answers` (read at connection; until then,
    /// and with a backend that does not offer it, no post sets `_XEN_PCIF_watching`).
    quiet_offered: bool,
}

/// The shared page and the event channel of a connection, and the lock that gives one
/// configuration space access at a time the request slot.
///
/// The other domain may write the page at any time: it is only accessed through
/// [`kernel::xen::grant::SharedMemory`]'s volatile and atomic accessors, and answers are copied
/// out before use.
///
/// Kept in an [`Arc`] shared by the connection's [`Channel`], the operations of its root buses,
/// its statistics file in debugfs and, while the [`Channel`] exists, its AER job.
#[pin_data]
pub(crate) struct OpChannel {
    /// Held (with interrupts disabled) for the whole of each round trip. A raw spinlock: the
    /// PCI core may call the configuration accessors with its raw `pci_lock` held (user space's
    /// accesses through sysfs, for one).
    #[pin]
    slot: RawSpinLockIrq<SlotState>,
    /// The event channel allocated for the backend, bound to [`Events`]. Declared before
    /// `ring`, so unbound (and closed) before the page's grant is revoked.
    #[pin]
    events: Registration<Events>,
    /// The page granted to the backend, starting with a `struct xen_pci_sharedinfo`.
    ring: SharedRing,
}

impl OpChannel {
    /// The shared page.
    pub(crate) fn ring(&self) -> &SharedRing {
        &self.ring
    }

    /// The event channel's IRQ, to signal the backend.
    pub(crate) fn irq(&self) -> &Irq {
        self.events.irq()
    }

    /// The statistics of the round trips: a snapshot, taken under the lock (so after the round
    /// trip in progress, if any).
    pub(crate) fn report(&self) -> roundtrip::Report {
        let slot = self.slot.lock();
        roundtrip::Report {
            counts: slot.counts,
            spin: slot.spin,
            quiet_offered: slot.quiet_offered,
            events: self.events.handler().count.load(Relaxed),
        }
    }

    /// Clears the counts of [`OpChannel::report`] (not what the spin learnt).
    pub(crate) fn clear_counts(&self) {
        self.slot.lock().counts = roundtrip::Counts::new();
        self.events.handler().count.store(0, Relaxed);
    }

    /// Notes whether the backend offered `feature-quiet-answers`: from the next round trip on,
    /// posts that spin set `_XEN_PCIF_watching` if it did (and `quiet_answers` allows).
    pub(crate) fn set_quiet_offered(&self, offered: bool) {
        self.slot.lock().quiet_offered = offered;
    }

    /// Allocates and grants the shared page to the other end of `dev`, with
    /// `_XEN_PCIB_AERHANDLER` set: this frontend takes the backend's AER requests (as C, which
    /// sets it whatever the guest's drivers).
    pub(crate) fn alloc_ring(dev: &xenbus::Device<Core<'_>>) -> Result<SharedRing> {
        let ring = SharedRing::new(dev, 1, GFP_KERNEL)?;
        ring.atomic_u32(pciif::OFFSET_FLAGS)?
            .fetch_or(pciif::XEN_PCIB_AERHANDLER, Full);
        Ok(ring)
    }

    /// Returns the grant reference of the shared page, to publish as `pci-op-ref`.
    pub(crate) fn grant_ref(ring: &SharedRing) -> Result<GrantRef> {
        ring.grant_refs().first().copied().ok_or(EINVAL)
    }

    /// Reads `size` bytes at `offset` of the configuration space of `domain:bus:devfn`.
    pub(crate) fn conf_read(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        offset: u16,
        size: u8,
    ) -> Result<u32, PcibiosError> {
        let mut op = RawOp::conf_read(domain, bus.into(), devfn.into(), offset.into(), size.into());
        self.round_trip(&mut op, 0);

        pciif::conf_read_result(op.err, op.value).map_err(pcibios_error)
    }

    /// Writes the low `size` bytes of `value` at `offset` of the configuration space of
    /// `domain:bus:devfn`.
    pub(crate) fn conf_write(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        offset: u16,
        size: u8,
        value: u32,
    ) -> Result<(), PcibiosError> {
        let mut op = RawOp::conf_write(
            domain,
            bus.into(),
            devfn.into(),
            offset.into(),
            size.into(),
            value,
        );
        self.round_trip(&mut op, 0);

        match pciif::pcibios_from_err(op.err) {
            pciif::PCIBIOS_SUCCESSFUL => Ok(()),
            code => Err(pcibios_error(code)),
        }
    }

    /// Asks the backend to enable MSI for `domain:bus:devfn`; returns the pirq it bound.
    pub(crate) fn enable_msi(&self, domain: u32, bus: u8, devfn: u8) -> Result<u32, i32> {
        let mut op = RawOp::enable_msi(domain, bus.into(), devfn.into());
        self.round_trip(&mut op, 0);

        pciif::enable_msi_result(op.err, op.value)
    }

    /// Asks the backend to enable MSI-X on the table entries `entries` of `domain:bus:devfn`;
    /// on success `pirqs[i]` is the pirq bound to `entries[i]`.
    pub(crate) fn enable_msix(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        entries: &[u16],
        pirqs: &mut [u32],
    ) -> Result<(), i32> {
        let mut op =
            RawOp::enable_msix(domain, bus.into(), devfn.into(), entries).map_err(|e| e.code())?;
        self.round_trip(&mut op, entries.len());

        pciif::enable_msix_result(&op, entries.len(), pirqs)
    }

    /// Asks the backend to disable MSI (`msix` false) or MSI-X (`msix` true) for
    /// `domain:bus:devfn`; returns the backend's `err`.
    pub(crate) fn disable_msi(&self, domain: u32, bus: u8, devfn: u8, msix: bool) -> i32 {
        let mut op = if msix {
            RawOp::disable_msix(domain, bus.into(), devfn.into())
        } else {
            RawOp::disable_msi(domain, bus.into(), devfn.into())
        };
        self.round_trip(&mut op, 0);
        op.err
    }

    /// Sends `op` to the backend, with its first `msix` MSI-X entries, and waits for the
    /// answer: sets `op.err` and `op.value`, and the `vector` of those entries, from it.
    ///
    /// Runs in atomic context. The rules of the wait are those of [`roundtrip`]: the request
    /// carries the sentinel `err`, a clear bit with the sentinel is not an answer, the answer
    /// is first watched for by spinning (at most twice this connection's recent round trip,
    /// [`roundtrip::SPIN_MAX_NS`] at most), then the poll is sliced, and a request the backend
    /// does not answer within [`roundtrip::OP_TIMEOUT_NS`] stays posted until it does: the
    /// operations meanwhile post nothing, each waiting for that answer within its own deadline
    /// and failing if it does not come (a backend gone for good costs every access its
    /// deadline, which is why the buses are removed before a fatal error closes the
    /// connection). Without an answer the operation
    /// fails with `XEN_PCI_ERR_dev_not_found`. After a spin that was
    /// preempted, posts may yield the CPU for a while ([`roundtrip::Spin`]; unless
    /// `yield_when_preempted` is off): the lock (and the PCI core's, which the caller may
    /// hold) is then held across the other vCPU's turn, as across a poll. The round trip is
    /// counted for the statistics file.
    fn round_trip(&self, op: &mut RawOp, msix: usize) {
        let lost = pciif::PciifError::DevNotFound.code();
        let words = op.request_words();
        (op.err, op.value) = (lost, 0);

        let mut slot = self.slot.lock();
        let Ok(flags) = self.ring.atomic_u32(pciif::OFFSET_FLAGS) else {
            return;
        };
        // Masked while the lock is held: the answers' signals are taken off the channel
        // (`roundtrip`), not handled, and make no upcall. Dropped before `slot` (on the early
        // returns too, declared after it). This takes the IRQ descriptor's lock inside the
        // slot's; no configuration access is made under a descriptor's lock in a PV guest
        // (its MSI chip masks nothing through config space), so the order has no reverse.
        let masked = self.events.irq().mask();
        let may_watch = slot.quiet_offered && crate::quiet_answers();
        // The poll below may consume the event of an AER request: look for one afterwards.
        let _kick = KickAer(&self.events.handler().aer);
        let mut page = Page {
            ring: &self.ring,
            flags,
            irq: self.events.irq(),
            words,
            msix: op.msix_entries.get(..msix).unwrap_or(&[]),
            start: None,
            may_watch,
            late: None,
        };

        let SlotState { spin, counts, .. } = &mut *slot;
        let outcome = roundtrip::round_trip(&mut page, spin, counts);
        let answered = outcome == Outcome::Answered;
        // A late enable handed over before this request was posted: undone after this answer
        // is read, unless this request is the matching disable (the guest's driver tearing
        // down the enable it was told failed).
        let undo = match page.late.take() {
            Some(late) if late.undo().request_words() == words => {
                report_late(
                    &late,
                    if answered {
                        "turned off by the guest's own disable"
                    } else {
                        "the guest's own disable of it got no answer either (detach and attach the device)"
                    },
                );
                None
            }
            Some(late) if !answered => {
                report_late(
                    &late,
                    "not turned off: the access after it got no answer (detach and attach the device)",
                );
                None
            }
            late => late,
        };
        match outcome {
            Outcome::Answered => {}
            Outcome::NotSent => return,
            Outcome::TimedOut | Outcome::Unanswered | Outcome::Busy => {
                if !slot.timeout_logged {
                    slot.timeout_logged = true;
                    pr_err!("the PCI backend does not answer: configuration accesses fail\n");
                }
                return;
            }
        }

        for (i, entry) in op.msix_entries.iter_mut().enumerate().take(msix) {
            entry.vector = pciif::msix_vector_offset(i)
                .and_then(|offset| self.ring.read::<u16>(offset).ok())
                .unwrap_or(0);
        }
        let err = self.ring.read::<i32>(pciif::OFFSET_OP_ERR);
        let value = self.ring.read::<u32>(pciif::OFFSET_OP_VALUE);
        if let Some(late) = undo {
            self.undo_late(&mut slot, flags, may_watch, &late);
        }
        drop(masked);
        drop(slot);

        (op.err, op.value) = match (err, value) {
            (Ok(err), Ok(value)) => (err, value),
            _ => (lost, 0),
        };
    }

    /// `late`, from the late answer to an `enable_msi` or `enable_msix` that timed out, says
    /// the backend enabled it after all, while the guest's driver, told it failed, went on
    /// without it (with INTx, say, which the device no longer raises): asks the backend to
    /// disable it again, in one more round trip on the lock the caller holds (which is then
    /// held for up to two round trips' deadlines). A timeout of that one is left posted as any
    /// other; its late answer is not reported.
    fn undo_late(
        &self,
        slot: &mut SlotState,
        flags: &Atomic<u32>,
        may_watch: bool,
        late: &LateEnable,
    ) {
        let mut page = Page {
            ring: &self.ring,
            flags,
            irq: self.events.irq(),
            words: late.undo().request_words(),
            msix: &[],
            start: None,
            may_watch,
            late: None,
        };
        let SlotState { spin, counts, .. } = slot;
        let what = match roundtrip::round_trip(&mut page, spin, counts) {
            Outcome::Answered => match self.ring.read::<i32>(pciif::OFFSET_OP_ERR) {
                Ok(0) => "turned off again",
                _ => "the backend refused to turn it off (detach and attach the device)",
            },
            Outcome::TimedOut => {
                "the disable got no answer within 2 s and stays posted (detach and attach the device)"
            }
            _ => "the disable could not be posted (detach and attach the device)",
        };
        report_late(late, what);
    }
}

/// Logs what became of a late successful enable (see [`OpChannel::undo_late`]).
fn report_late(late: &LateEnable, what: &str) {
    pr_warn!(
        "{} of {:04x}:{:02x}:{:02x}.{} timed out, then succeeded, and the guest's driver went on without it: {}\n",
        late.cmd.name(),
        late.domain,
        late.bus,
        late.devfn >> 3,
        late.devfn & 7,
        what
    );
}

/// The shared page and the event channel during one round trip (see [`roundtrip::Channel`]).
struct Page<'a> {
    ring: &'a SharedRing,
    flags: &'a Atomic<u32>,
    irq: &'a Irq,
    /// The request's fixed fields, `err` = the sentinel.
    words: [(usize, u32); pciif::REQUEST_WORDS],
    /// The MSI-X entries to send.
    msix: &'a [pciif::MsixEntry],
    /// The clock's zero for [`roundtrip::Channel::now_ns`]: its first read (each read is a trap
    /// where the hypervisor emulates the TSC).
    start: Option<Instant<Monotonic>>,
    /// Whether posts may set `_XEN_PCIF_watching`: the backend offered it and `quiet_answers`
    /// is on.
    may_watch: bool,
    /// The late answer [`roundtrip::Channel::earlier_answered`] handed over, if it tells an MSI
    /// or MSI-X enable the guest's driver went on without (see [`OpChannel::undo_late`]).
    late: Option<LateEnable>,
}

impl roundtrip::Channel for Page<'_> {
    fn write_request(&mut self) -> bool {
        // The offsets are inside the page and aligned (checked by the shared code's layout
        // assertions); a failure would only mean a request that is not sent.
        for &(offset, word) in &self.words {
            if self.ring.write(offset, word).is_err() {
                return false;
            }
        }
        for (i, entry) in self.msix.iter().enumerate() {
            let (Some(v), Some(e)) = (pciif::msix_vector_offset(i), pciif::msix_entry_offset(i))
            else {
                return false;
            };
            if self.ring.write(v, entry.vector).is_err() || self.ring.write(e, entry.entry).is_err()
            {
                return false;
            }
        }
        true
    }

    fn set_active_and_notify(&mut self, watching: bool) {
        // One atomic step; `Full` orders the request's stores before the flag is seen set (C's
        // `wmb()`).
        let watch = if watching {
            pciif::XEN_PCIF_WATCHING
        } else {
            0
        };
        self.flags.fetch_or(pciif::XEN_PCIF_ACTIVE | watch, Full);
        self.irq.notify();
    }

    fn stop_watching(&mut self) -> bool {
        // An atomic step on the word the backend clears `_XEN_PCIF_active` in: whichever comes
        // second sees the first (`roundtrip`'s module documentation).
        self.flags.fetch_and(!pciif::XEN_PCIF_WATCHING, Full) & pciif::XEN_PCIF_ACTIVE != 0
    }

    fn active(&mut self) -> bool {
        // `Acquire` orders the reads of the answer after the flag is seen clear.
        self.flags.load(Acquire) & pciif::XEN_PCIF_ACTIVE != 0
    }

    fn notify(&mut self) {
        self.irq.notify();
    }

    fn earlier_answered(&mut self) {
        // The request is the earlier one, as posted (only its answer's fields were written).
        let mut bytes = [0u8; pciif::RAW_OP_SIZE];
        let Some(header) = bytes.get_mut(..pciif::RAW_OP_HEADER_SIZE) else {
            return;
        };
        if self.ring.copy_to_slice(pciif::OFFSET_OP, header).is_err() {
            return;
        }
        self.late = RawOp::from_bytes(&bytes).late_enable();
    }

    fn err(&mut self) -> i32 {
        // Unreadable (cannot happen: in the page) counts as no answer.
        self.ring
            .read::<i32>(pciif::OFFSET_OP_ERR)
            .unwrap_or(roundtrip::ERR_UNANSWERED)
    }

    fn clear_pending(&mut self) {
        self.irq.clear_pending();
    }

    fn pending(&mut self) -> bool {
        self.irq.is_pending()
    }

    fn poll(&mut self, ns: u64) {
        self.irq
            .poll(Delta::from_nanos(i64::try_from(ns).unwrap_or(i64::MAX)));
    }

    fn relax(&mut self) {
        core::hint::spin_loop();
    }

    fn yield_cpu(&mut self) {
        sched::yield_vcpu();
    }

    fn may_yield(&mut self) -> bool {
        crate::yield_when_preempted()
    }

    fn may_watch(&mut self) -> bool {
        self.may_watch
    }

    fn now_ns(&mut self) -> u64 {
        match self.start {
            Some(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(0),
            None => {
                self.start = Some(Instant::now());
                0
            }
        }
    }
}

/// The [`PcibiosError`] of a failed access's PCIBIOS code.
///
/// A backend may answer with a raw errno, which the C frontend hands to the PCI core as it is;
/// the typed accessors cannot, so anything that is not a PCIBIOS error code becomes
/// [`PcibiosError::DeviceNotFound`].
fn pcibios_error(code: i32) -> PcibiosError {
    PcibiosError::from_raw(code).unwrap_or(PcibiosError::DeviceNotFound)
}

/// The [`OpChannel`] of a connection, served by the connection's AER job until dropped.
///
/// The job holds a reference to the channel while attached (and the channel's event handler one
/// to the job): dropping this detaches the job, which ends that cycle, and waits for a running
/// job; the channel itself goes with its last reference.
pub(crate) struct Channel(Arc<OpChannel>);

impl Channel {
    /// Sets up the connection's channel: `ring` (granted, zeroed) and the event channel `port`
    /// (allocated for the backend), which is bound here; `aer` serves the backend's AER requests
    /// on it until the returned [`Channel`] is dropped.
    pub(crate) fn new(ring: SharedRing, port: LocalPort, aer: Arc<AerJob>) -> Result<Self> {
        let events = Registration::new_local(
            port,
            EoiMode::Auto,
            irq::Flags::TRIGGER_NONE,
            c"pcifront",
            Ok(Events {
                aer,
                count: Atomic::new(0),
            }),
        );
        let chan = Arc::pin_init(
            try_pin_init!(OpChannel {
                slot <- new_raw_spinlock_irq!(
                    SlotState {
                        timeout_logged: false,
                        spin: roundtrip::Spin::new(),
                        counts: roundtrip::Counts::new(),
                        quiet_offered: false,
                    },
                    "pcifront_op_slot"
                ),
                ring,
                events <- events,
            }),
            GFP_KERNEL,
        )?;
        chan.events.handler().aer.attach(chan.clone());
        Ok(Self(chan))
    }

    /// The channel, for the operations of the root buses.
    pub(crate) fn get(&self) -> &Arc<OpChannel> {
        &self.0
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.0.events.handler().aer.detach();
    }
}

/// Kicks the AER job when dropped: at the end of a round trip, whichever way it ends (C
/// reschedules its AER work there too).
struct KickAer<'a>(&'a Arc<AerJob>);

impl Drop for KickAer<'_> {
    fn drop(&mut self) {
        self.0.kick();
    }
}
