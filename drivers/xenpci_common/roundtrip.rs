// SPDX-License-Identifier: GPL-2.0

//! Frontend: one request and its answer on the shared page, as a state machine over a small
//! [`Channel`] trait, so that the waiting rules are tested on the host.
//!
//! The frontend writes the request, sets `_XEN_PCIF_active` and signals the backend, which
//! answers by writing `err` (and `value`) and clearing the bit. The rules:
//!
//! - **Every request is posted with `err` = [`ERR_UNANSWERED`]**, which no backend answers
//!   with: every backend, C or Rust, writes `err` before it clears the bit. A clear bit with the
//!   sentinel still in `err` is not an answer: it is a backend that cleared the bit without
//!   answering. The request is posted again (at most [`MAX_POSTS`] times in all, within the
//!   same deadline); after that the operation has no answer.
//! - **The wait is polled in slices** of at most [`POLL_SLICE_NS`], re-checking the bit after
//!   each: the event that wakes the poll can be consumed by the port's handler on another vCPU
//!   before this one polls (one that was running when the glue masked the channel), and the
//!   poll then only returns at its timeout (with interrupts off).
//! - **A request is never withdrawn.** After [`OP_TIMEOUT_NS`] the operation has timed out,
//!   but the request stays posted (the bit set) until the backend clears it: the backend may
//!   still be serving it, and would then read the next request's fields half written, or take
//!   its bit as its own and clear it with the timed-out request's answer. (The C frontend
//!   clears the bit at its timeout.) A round trip that finds the bit still set signals the
//!   backend again, in case the event was lost, and waits for the bit to clear as for an answer,
//!   within its own deadline; if it is still set then, nothing was posted ([`Outcome::Busy`]).
//!   A slow answer thus delays the accesses after it, as it would have without the timeout,
//!   rather than failing them. The first round trip to find the bit clear after a timeout,
//!   at once or after that wait, hands the late answer to [`Channel::earlier_answered`] (which
//!   may tell what it did: an MSI enable the guest went on without, say) before it posts its
//!   own request, in the time left; its own time, which the spin budget learns, starts then.
//! - **Before the first poll, the bit is watched by spinning** for at most the [`Spin`] budget:
//!   twice the recent typical round trip (a moving average of answered ones), at most
//!   [`SPIN_MAX_NS`]. Blocking in the poll costs a trip through the hypervisor's scheduler
//!   each way, which the usual answer, back within the budget, does without. The C frontend
//!   polls with a deadline in the past, which returns at once (Xen blocks the vCPU and wakes it
//!   again, a trip through its scheduler that lets another vCPU run): it spins with a
//!   hypercall per turn for the whole wait.
//! - **A preempted spin starts a trial of yielding.** The spin runs with interrupts off, so a
//!   gap of at least an eighth of the typical round trip ([`PREEMPTED_GAP_MIN_NS`] at least)
//!   between two of its looks at the clock is the hypervisor running something else on this
//!   physical CPU: the CPUs may be short (more vCPUs ready to run than CPUs, two guests
//!   spinning on a two-CPU host say), and the backend's vCPU, which each post wakes, may have
//!   to wait for one. A yield of the CPU right after the post ([`Channel::yield_cpu`]) lets it
//!   run here; with a CPU to spare it only moves this vCPU off its CPU while the backend's is
//!   woken on another. The preemption does not tell the two apart, so the round trips that
//!   follow try both and keep the faster ([`YieldRule`], which says when a post yields; a
//!   round trip without an answer teaches it nothing). Without a preemption the post does not
//!   yield. [`Channel::may_yield`] (the administrator's switch) can turn the yield off.
//! - **A spin asks the backend not to signal the answer.** The post sets `_XEN_PCIF_watching`
//!   with `_XEN_PCIF_active` when it is going to spin (and [`Channel::may_watch`], the
//!   administrator's switch, allows it), and the spin clears it before the first poll: an
//!   answer the spin sees costs neither the backend's notification nor this domain's upcall. The
//!   clear is an atomic step on the flags word, as is the backend's clear of `_XEN_PCIF_active`,
//!   so one of the two sees the other: either the answer is seen without polling, or the backend
//!   signals it ([`super::pciif::answer_needs_event`]). The glue allows it only with a backend
//!   that offered it in xenstore (`feature-quiet-answers`, which the C one does not write);
//!   every other answer is signalled.
//! - **No clock read between the answer the spin saw and the caller.** A clock read may be a
//!   trap into the hypervisor (Xen emulates a PV guest's TSC on a host whose TSC it does not
//!   trust; about 25 µs under QEMU's TCG). A round trip reads the clock at its start, after
//!   each post (overlapping the backend's work) and at each look of its spin; an answer the
//!   spin saw is counted to the end of the turn that saw it (its last look plus the turn that
//!   ended there), about what a read there would give, so the spin budget learns what it
//!   learnt with one. A round trip whose spin did not see the answer (no spin, a budget run
//!   out, a poll) reads the clock at its end, and so does every round trip of a trial of the
//!   yield rule, which compares round trips' times: a preemption in the last turn would escape
//!   the estimate.
//! - **An answer's signal is taken off the channel before the handler sees it.** The glue
//!   masks the event channel for the whole round trip (the poll still waits for its pending
//!   flag); an answer the backend signals would otherwise cost this domain an upcall into the
//!   channel's handler as soon as the channel is unmasked, which under Xen is a trip through
//!   the hypervisor each way (about as long as the round trip's own wait, under QEMU's TCG).
//!   After an answer the channel's pending flag is cleared if the signal came; for an answer
//!   the backend signals (every answer to a post that did not set `_XEN_PCIF_watching`) and
//!   the spin saw before its signal, the signal is first waited for, by spinning for at most
//!   [`Spin::signal_wait_ns`] (the backend sends it right after clearing the bit), which reads
//!   the clock only once the first look found no signal, and counts from that first read. A signal
//!   later than that, or an AER request's, reaches the handler when the channel is unmasked
//!   (the glue looks for an AER request after each round trip in any case). The C frontend
//!   clears the flag after each poll, with the channel unmasked: the upcall still comes, and
//!   finds nothing to do.
//! - **What each round trip did is counted** ([`Counts`]): how it ended, whether it was
//!   answered before any poll, its polls, yields and time, the spin's turns (each ending at a
//!   look at the clock) and their time; the kernel shows them in debugfs.

use super::stats::pow2_bucket;
use super::yieldtrial::{Verdict, YieldRule};

/// The `err` a frontend posts with every request. Backends answer 0, a `XEN_PCI_ERR_*` code
/// (-1 to -5) or a negative errno (at least -4095): never this.
pub(crate) const ERR_UNANSWERED: i32 = i32::MIN;

/// How long a round trip may take, in nanoseconds (as C `pcifront`).
pub(crate) const OP_TIMEOUT_NS: u64 = 2_000_000_000;

/// The longest single wait for the backend's event, in nanoseconds.
pub(crate) const POLL_SLICE_NS: u64 = 1_000_000;

/// The longest spin before the first poll, in nanoseconds.
pub(crate) const SPIN_MAX_NS: u64 = 2_000_000;

/// The longest wait for an answer's signal after the answer, in nanoseconds ([`take_signal`]):
/// the backend sends it right after clearing the bit, however long the answer took.
pub(crate) const SIGNAL_WAIT_MAX_NS: u64 = 50_000;

/// The shortest gap in a spin that counts as a preemption, in nanoseconds: longer than the
/// hypervisor's own interrupt handling takes, on hardware where a round trip is a few
/// microseconds.
pub(crate) const PREEMPTED_GAP_MIN_NS: u64 = 10_000;

/// The spin budget of a channel: a moving average of its answered round trips, and whether its
/// posts yield the CPU ([`YieldRule`]); and whether a request of its that timed out was left
/// posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spin {
    /// The average, in nanoseconds (the first answered round trip sets it; each later one
    /// weighs 1/8).
    avg_ns: u64,
    /// Whether a round trip was answered yet.
    learnt: bool,
    /// Whether posts yield.
    rule: YieldRule,
    /// A request timed out (and may still be posted): the next round trip hands its answer over
    /// ([`Channel::earlier_answered`]) once the bit is clear.
    left_posted: bool,
}

impl Spin {
    /// No round trip seen: no spin (the first one polls, and sets the average), no yield.
    pub(crate) const fn new() -> Spin {
        Spin {
            avg_ns: 0,
            learnt: false,
            rule: YieldRule::new(),
            left_posted: false,
        }
    }

    /// How long to spin before the first poll, in nanoseconds.
    pub(crate) fn budget_ns(&self) -> u64 {
        self.avg_ns.saturating_mul(2).min(SPIN_MAX_NS)
    }

    /// The gap between two looks at the clock in the spin that shows it was preempted: an
    /// eighth of the typical round trip, [`PREEMPTED_GAP_MIN_NS`] at least.
    pub(crate) fn preempted_gap_ns(&self) -> u64 {
        (self.avg_ns / 8).max(PREEMPTED_GAP_MIN_NS)
    }

    /// How long an answer's signal is waited for after the answer, in nanoseconds (see
    /// [`take_signal`]): as long as the shortest gap that counts as a preemption, so that the
    /// wait is short against the round trip, and long against the backend's one notification;
    /// [`SIGNAL_WAIT_MAX_NS`] at most.
    pub(crate) fn signal_wait_ns(&self) -> u64 {
        self.preempted_gap_ns().min(SIGNAL_WAIT_MAX_NS)
    }

    /// Whether the next post yields the CPU.
    pub(crate) fn yields(&self) -> bool {
        self.rule.yields()
    }

    /// Whether the yield rule is in a trial, whose round trips must be timed in full.
    pub(crate) fn in_trial(&self) -> bool {
        self.rule.in_trial()
    }

    /// The yield rule's state, for the statistics file.
    pub(crate) fn rule(&self) -> &YieldRule {
        &self.rule
    }

    /// Counts an answered round trip of `ns` nanoseconds (a longer one counts as
    /// [`SPIN_MAX_NS`]: one slow answer, an MSI-X enable say, does not make the next spins long)
    /// whether its spin was `preempted` and whether it `yielded`; returns the yield rule's
    /// verdict if it reached one. The first one is the average: a new connection's first round
    /// trips (the bus scan's) spin, and tell a preemption, as the later ones do, not by a
    /// fraction of the round trip while the average grows from zero.
    pub(crate) fn note(&mut self, ns: u64, preempted: bool, yielded: bool) -> Option<Verdict> {
        let capped = ns.min(SPIN_MAX_NS);
        self.avg_ns = if self.learnt {
            self.avg_ns - self.avg_ns / 8 + capped / 8
        } else {
            capped
        };
        self.learnt = true;
        self.rule.note(ns, preempted, yielded)
    }
}

/// What a channel's round trips did since it was set up or since the counts were last cleared:
/// its statistics file (debugfs), which tells how often the frontend waits in each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Round trips answered.
    pub(crate) answered: u64,
    /// Of those, how many were answered before any poll (seen in the spin, or at the look just
    /// before the first poll; a connection's first round trip does not spin).
    pub(crate) answered_spinning: u64,
    /// Answered round trips whose spin was preempted (see [`Spin`]); shown as
    /// `preempted_spins`.
    pub(crate) preempted: u64,
    /// Polls of the event channel.
    pub(crate) polls: u64,
    /// Yields of the CPU after a post.
    pub(crate) yields: u64,
    /// Requests posted again after a clear without an answer.
    pub(crate) reposts: u64,
    /// Posts that set `_XEN_PCIF_watching` (asked for no event while they spin).
    pub(crate) watched: u64,
    /// Round trips that timed out ([`Outcome::TimedOut`]).
    pub(crate) timed_out: u64,
    /// Round trips that found an earlier request still posted, and waited for it.
    pub(crate) earlier_posted: u64,
    /// Of those, how many posted nothing, the earlier request being still posted at their
    /// deadline ([`Outcome::Busy`]).
    pub(crate) busy: u64,
    /// Round trips whose posts were all cleared without an answer ([`Outcome::Unanswered`]).
    pub(crate) unanswered: u64,
    /// The total time of the answered round trips, in nanoseconds.
    pub(crate) answered_ns: u64,
    /// The longest answered round trip, in nanoseconds.
    pub(crate) longest_ns: u64,
    /// The preempted spins by their longest gap ([`gap_bucket`]): how long the hypervisor ran
    /// something else.
    pub(crate) gaps: [u64; GAP_BUCKETS],
    /// Trials of the yield rule ([`YieldRule`]) that yielding won.
    pub(crate) trials_yield: u64,
    /// Trials that spinning without a yield won.
    pub(crate) trials_spin: u64,
    /// Turns of the spins, from one look at the clock to the next, and their time in
    /// nanoseconds: their ratio is what one turn of the spin costs (a clock read is a trap into
    /// the hypervisor where it emulates the guest's TSC).
    pub(crate) spin_turns: u64,
    pub(crate) spin_ns: u64,
    /// Answers' signals cleared before the handler saw them ([`take_signal`]).
    pub(crate) signals_taken: u64,
    /// Answers the backend signals whose signal had not come within the wait for it: the
    /// handler takes them (or the next round trip).
    pub(crate) signals_late: u64,
    /// Answers whose signal was waited for (the backend signals them, and the first look
    /// found no signal).
    pub(crate) signals_waited: u64,
    /// The time of those waits, in nanoseconds (not in the round trips' time), each from its
    /// first clock read (a signal found before it counts 0: the turn before is not counted).
    pub(crate) signal_wait_ns: u64,
}

/// How many buckets [`Counts::gaps`] has: under 32 µs, under 64, ... under 2048, and 2048 µs or
/// more.
pub(crate) const GAP_BUCKETS: usize = 8;

/// The bucket of a gap of `ns` nanoseconds in [`Counts::gaps`]: `k` for under `32 << k` µs,
/// the last for the longer ones.
pub(crate) fn gap_bucket(ns: u64) -> usize {
    pow2_bucket(ns / 1_000, 32, GAP_BUCKETS)
}

impl Counts {
    /// No round trip counted.
    pub(crate) const fn new() -> Counts {
        Counts {
            answered: 0,
            answered_spinning: 0,
            preempted: 0,
            polls: 0,
            yields: 0,
            reposts: 0,
            watched: 0,
            timed_out: 0,
            earlier_posted: 0,
            busy: 0,
            unanswered: 0,
            answered_ns: 0,
            longest_ns: 0,
            gaps: [0; GAP_BUCKETS],
            trials_yield: 0,
            trials_spin: 0,
            spin_turns: 0,
            spin_ns: 0,
            signals_taken: 0,
            signals_late: 0,
            signals_waited: 0,
            signal_wait_ns: 0,
        }
    }
}

/// A channel's statistics as its file shows them: the [`Counts`], the [`Spin`] budget now, and
/// what the glue counts itself, one `name value` line each (times in microseconds).
pub(crate) struct Report {
    /// The counts.
    pub(crate) counts: Counts,
    /// The channel's spin budget and yield rule.
    pub(crate) spin: Spin,
    /// Whether the backend offered to leave watched answers unsignalled
    /// (`feature-quiet-answers`).
    pub(crate) quiet_offered: bool,
    /// The events the channel's handler took (answers signalled, and AER requests).
    pub(crate) events: u64,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = &self.counts;
        let mean_us = c.answered_ns.checked_div(c.answered).unwrap_or(0) / 1_000;
        writeln!(f, "answered {}", c.answered)?;
        writeln!(f, "answered_spinning {}", c.answered_spinning)?;
        writeln!(f, "preempted_spins {}", c.preempted)?;
        writeln!(f, "polls {}", c.polls)?;
        writeln!(f, "yields {}", c.yields)?;
        writeln!(f, "reposts {}", c.reposts)?;
        writeln!(f, "watched {}", c.watched)?;
        writeln!(f, "quiet_answers_offered {}", u8::from(self.quiet_offered))?;
        writeln!(f, "events {}", self.events)?;
        writeln!(f, "timed_out {}", c.timed_out)?;
        writeln!(f, "earlier_posted {}", c.earlier_posted)?;
        writeln!(f, "busy {}", c.busy)?;
        writeln!(f, "unanswered {}", c.unanswered)?;
        writeln!(f, "mean_us {mean_us}")?;
        writeln!(f, "longest_us {}", c.longest_ns / 1_000)?;
        // One token: the upper bound of each bucket in µs (`inf` for the last) and its count.
        write!(f, "preempted_gaps_us ")?;
        for (k, n) in c.gaps.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            if k + 1 < GAP_BUCKETS {
                write!(f, "{sep}{}:{n}", 32u64 << k)?;
            } else {
                write!(f, "{sep}inf:{n}")?;
            }
        }
        writeln!(f)?;
        writeln!(f, "trials_yield {}", c.trials_yield)?;
        writeln!(f, "trials_spin {}", c.trials_spin)?;
        writeln!(f, "spin_turns {}", c.spin_turns)?;
        writeln!(f, "spin_us {}", c.spin_ns / 1_000)?;
        writeln!(f, "signals_taken {}", c.signals_taken)?;
        writeln!(f, "signals_late {}", c.signals_late)?;
        writeln!(f, "signals_waited {}", c.signals_waited)?;
        writeln!(f, "signal_wait_us {}", c.signal_wait_ns / 1_000)?;
        writeln!(f, "spin_budget_us {}", self.spin.budget_ns() / 1_000)?;
        let (rule, left) = self.spin.rule().state();
        writeln!(f, "yield_rule {rule}")?;
        writeln!(f, "yield_rule_left {left}")
    }
}

/// How many times one request is posted at most (once, and once again after a clear without an
/// answer).
pub(crate) const MAX_POSTS: u32 = 2;

/// The shared page and event channel, as the round trip sees them.
pub(crate) trait Channel {
    /// Writes the whole request into the page, `err` = [`ERR_UNANSWERED`] included. `false` if
    /// it could not be written (nothing was posted).
    fn write_request(&mut self) -> bool;
    /// Sets `_XEN_PCIF_active` (ordered after the request's stores), and `_XEN_PCIF_watching`
    /// in the same atomic step if `watching`, and signals the backend.
    fn set_active_and_notify(&mut self, watching: bool);
    /// Clears `_XEN_PCIF_watching` in one atomic step on the flags word, ordered before the
    /// loads of `_XEN_PCIF_active` after it: from then on the backend signals its answer.
    /// Returns whether `_XEN_PCIF_active` was still set in that step: the answer, still to
    /// come, is then signalled.
    fn stop_watching(&mut self) -> bool;
    /// Whether `_XEN_PCIF_active` is set (a load that orders the answer's reads after it).
    fn active(&mut self) -> bool;
    /// Signals the backend again, for a request still posted.
    fn notify(&mut self);
    /// The bit is clear after a round trip that timed out: the backend answered that request
    /// (or cleared the bit without an answer), and its answer is on the page, what it did
    /// unreported to that round trip's caller.
    fn earlier_answered(&mut self);
    /// The `err` field of the page.
    fn err(&mut self) -> i32;
    /// Clears the event channel's pending flag.
    fn clear_pending(&mut self);
    /// Whether the event channel's pending flag is set (an event came since it was cleared).
    fn pending(&mut self) -> bool;
    /// Waits for the event channel for at most `ns` nanoseconds; may return early.
    fn poll(&mut self, ns: u64);
    /// One turn of a busy wait (the CPU's pause hint).
    fn relax(&mut self);
    /// Lets another runnable vCPU (the backend's, which the notification woke) have the
    /// physical CPU, if any; the caller stays runnable.
    fn yield_cpu(&mut self);
    /// Whether posts may yield at all (the administrator's switch; the rule of [`Spin`]
    /// decides when).
    fn may_yield(&mut self) -> bool;
    /// Whether a post that spins may set `_XEN_PCIF_watching` (the administrator's switch).
    fn may_watch(&mut self) -> bool;
    /// A monotonic clock, in nanoseconds.
    fn now_ns(&mut self) -> u64;
}

/// How a round trip ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The backend answered: read `err` and `value` (and the MSI-X entries) from the page.
    Answered,
    /// No answer within [`OP_TIMEOUT_NS`]; the request may still be posted.
    TimedOut,
    /// An earlier request that timed out was still posted at the deadline: nothing was posted.
    Busy,
    /// The bit was cleared without an answer each of the [`MAX_POSTS`] times.
    Unanswered,
    /// The request could not be written.
    NotSent,
}

/// Posts the request of `chan` and waits for its answer (see the module documentation); an
/// answered round trip teaches `spin` its time, whether its spin was preempted and whether it
/// yielded. `counts` counts the round trip and its waits.
pub(crate) fn round_trip(chan: &mut impl Channel, spin: &mut Spin, counts: &mut Counts) -> Outcome {
    let start = chan.now_ns();
    // The round trip's own time: from `start`, or from the end of the wait below (its deadline
    // counts from `start` all the same). The spin budget learns round trips, not the waits
    // for earlier requests.
    let mut from = start;
    // Only this side sets the bit: an earlier request that timed out, which the backend has
    // not finished with (or a backend that set it, which then gets the same).
    if chan.active() {
        counts.earlier_posted += 1;
        chan.notify();
        if !poll_while_active(chan, start, counts) {
            counts.busy += 1;
            return Outcome::Busy;
        }
        from = chan.now_ns();
    }
    // The earlier request's answer, come during the wait or since the last round trip.
    if core::mem::take(&mut spin.left_posted) {
        chan.earlier_answered();
    }
    let mut wait = Wait {
        longest_gap: 0,
        seen_at: None,
        signalled: true,
    };
    let polls = counts.polls;
    let yields = counts.yields;
    let outcome = post_and_wait(chan, start, spin, &mut wait, counts);
    match outcome {
        Outcome::Answered => {
            // An answer the spin saw is counted to the end of the turn that saw it (see
            // `Spun::seen_by`), not read: one clock read less between the answer and the caller,
            // a trap into the hypervisor where it emulates the TSC. But a trial of the yield rule
            // compares round trips' times, and a preemption in that last turn would go
            // unmeasured: its round trips read the clock.
            let end = match wait.seen_at {
                Some(at) if !spin.in_trial() => at,
                _ => chan.now_ns(),
            };
            let ns = end.saturating_sub(from);
            let longest_gap = wait.longest_gap;
            let preempted = longest_gap >= spin.preempted_gap_ns();
            match spin.note(ns, preempted, counts.yields != yields) {
                Some(Verdict::Yield) => counts.trials_yield += 1,
                Some(Verdict::Spin) => counts.trials_spin += 1,
                None => {}
            }
            counts.answered += 1;
            counts.answered_spinning += u64::from(counts.polls == polls);
            if preempted {
                counts.preempted += 1;
                counts.gaps[gap_bucket(longest_gap)] += 1;
            }
            counts.answered_ns = counts.answered_ns.saturating_add(ns);
            counts.longest_ns = counts.longest_ns.max(ns);
            // After the round trip's time: what the backend took, not this wait.
            take_signal(chan, spin, wait.signalled, counts);
        }
        Outcome::TimedOut => {
            counts.timed_out += 1;
            spin.left_posted = true;
        }
        Outcome::Unanswered => counts.unanswered += 1,
        Outcome::Busy | Outcome::NotSent => {}
    }
    outcome
}

/// Takes the signal of an answer off `chan` (see the module documentation): clears the pending
/// flag if it is set, after waiting for it if the backend signals this answer (`signalled`)
/// and it has not come yet: a look, then looks each followed by a clock read, until the
/// signal or [`Spin::signal_wait_ns`] after the first read (no clock read before the first
/// look). Counts what it did.
fn take_signal(chan: &mut impl Channel, spin: &Spin, signalled: bool, counts: &mut Counts) {
    let mut pending = chan.pending();
    if !pending && signalled {
        counts.signals_waited += 1;
        let most = spin.signal_wait_ns();
        // Counted from the wait's first clock read, not from the round trip's end: an answer
        // the spin saw is counted to the end of the turn that saw it, an estimate (see
        // `Spun::seen_by`) a whole preemption away from the clock if a turn near it was
        // preempted.
        let mut from = None;
        let mut now = 0;
        loop {
            chan.relax();
            pending = chan.pending();
            if pending {
                break;
            }
            now = chan.now_ns();
            if now.saturating_sub(*from.get_or_insert(now)) >= most {
                break;
            }
        }
        // A signal found before any clock read counts nothing (its turn).
        let waited = from.map_or(0, |from| now.saturating_sub(from));
        counts.signal_wait_ns = counts.signal_wait_ns.saturating_add(waited);
    }
    if pending {
        chan.clear_pending();
        counts.signals_taken += 1;
    } else if signalled {
        counts.signals_late += 1;
    }
}

/// Polls `chan` in slices until its bit is clear (`true`) or [`OP_TIMEOUT_NS`] after `start`
/// have passed with the bit still set (`false`). Counts the polls.
fn poll_while_active(chan: &mut impl Channel, start: u64, counts: &mut Counts) -> bool {
    loop {
        if !chan.active() {
            return true;
        }
        let elapsed = chan.now_ns().saturating_sub(start);
        if elapsed >= OP_TIMEOUT_NS {
            return false;
        }
        // Clear first, check again, then wait: an answer that comes in between leaves the
        // channel pending, and the poll returns at once.
        chan.clear_pending();
        if !chan.active() {
            return true;
        }
        chan.poll(POLL_SLICE_NS.min(OP_TIMEOUT_NS - elapsed));
        counts.polls += 1;
    }
}

/// What the waits of a round trip saw.
struct Wait {
    /// The longest time between two looks at the clock in a spin (a long one is a preemption).
    longest_gap: u64,
    /// When the last post's spin saw its bit clear, as [`Spun::seen_by`] (None if the bit was
    /// still set when the spin ended, or clear before its first look at the clock).
    seen_at: Option<u64>,
    /// Whether the last post did not set `_XEN_PCIF_watching`: its answer is signalled.
    signalled: bool,
}

/// How a spin ended.
struct Spun {
    /// The longest time between two of its looks at the clock.
    longest_gap: u64,
    /// If it saw the bit clear after at least one look at the clock: its last look plus the
    /// turn that ended there (from the look before, or from the spin's start), as an estimate
    /// of the end of the turn in which it saw the bit clear. The clock is not read again for
    /// it; the time counts about as if it were (a read takes most of a turn when it traps), so
    /// the round trips' average, and the spin budget it sets, stay what they were with a read
    /// at the end. A preemption in that last turn is not in it.
    seen_by: Option<u64>,
}

/// Spins until `chan`'s bit is clear or `ns` nanoseconds after `from` have passed. Counts its
/// turns, each ending at a look at the clock (the first one starting at `from`), and their
/// time, in `counts`.
fn spin_while_active(chan: &mut impl Channel, from: u64, ns: u64, counts: &mut Counts) -> Spun {
    let mut longest_gap = 0;
    // The last look at the clock, and the time of the turn that ended there (None before the
    // first look).
    let mut last = from;
    let mut last_turn = None;
    while chan.active() {
        let now = chan.now_ns();
        let turn = now.saturating_sub(last);
        counts.spin_turns += 1;
        longest_gap = longest_gap.max(turn);
        last = now;
        last_turn = Some(turn);
        if now.saturating_sub(from) >= ns {
            break;
        }
        chan.relax();
    }
    counts.spin_ns = counts.spin_ns.saturating_add(last.saturating_sub(from));
    // Unless the budget ran out with the bit still set.
    let seen_by = if last.saturating_sub(from) < ns {
        last_turn.map(|turn| last.saturating_add(turn))
    } else {
        None
    };
    Spun {
        longest_gap,
        seen_by,
    }
}

fn post_and_wait(
    chan: &mut impl Channel,
    start: u64,
    spin: &Spin,
    wait: &mut Wait,
    counts: &mut Counts,
) -> Outcome {
    let spin_ns = spin.budget_ns();
    for post in 0..MAX_POSTS {
        if !chan.write_request() {
            return Outcome::NotSent;
        }
        // Watched only by a post that spins (its spin may still be cut to nothing by the
        // deadline; the bit is cleared after it all the same).
        let watching = spin_ns > 0 && chan.may_watch();
        chan.set_active_and_notify(watching);
        wait.signalled = !watching;
        counts.reposts += u64::from(post > 0);
        counts.watched += u64::from(watching);
        if spin.yields() && chan.may_yield() {
            chan.yield_cpu();
            counts.yields += 1;
        }
        // Within the deadline: the loop below gives up once it has passed. The
        // spin counts from after the post (and yield): this read costs the round trip nothing,
        // the backend is at work meanwhile.
        let posted = chan.now_ns();
        let left = OP_TIMEOUT_NS.saturating_sub(posted.saturating_sub(start));
        wait.seen_at = None;
        if spin_ns.min(left) > 0 {
            let spun = spin_while_active(chan, posted, spin_ns.min(left), counts);
            wait.longest_gap = wait.longest_gap.max(spun.longest_gap);
            wait.seen_at = spun.seen_by;
        }
        if watching && chan.stop_watching() {
            // Before any poll, and whether or not the spin saw the answer: the bit is only
            // ever set during a spin. An answer after it is signalled.
            wait.signalled = true;
        }

        if !poll_while_active(chan, start, counts) {
            // Left posted (see the module documentation).
            return Outcome::TimedOut;
        }

        if chan.err() != ERR_UNANSWERED {
            return Outcome::Answered;
        }
        if chan.now_ns().saturating_sub(start) >= OP_TIMEOUT_NS {
            return Outcome::TimedOut;
        }
    }
    Outcome::Unanswered
}

#[cfg(test)]
mod tests {
    use super::super::yieldtrial::{TRIAL_TRIPS, VERDICT_TRIPS};
    use super::*;

    /// What the fake backend does with a posted request.
    #[derive(Clone, Copy)]
    enum Backend {
        /// Answers `err` after `delay` ns; the poll does not wake up for it (the event went to
        /// another vCPU), it only returns at its timeout.
        AnswerUnnoticed { delay: u64, err: i32 },
        /// Clears the bit without answering for the first `stale` posts (a backend that clears
        /// without answering), then answers at once.
        StaleClears { stale: u32, err: i32 },
        /// Clears the bit of the first post without answering at `at` ns, then is silent.
        ClearsOnceAt(u64),
        /// Never answers.
        Silent,
        /// Answers its first request `err_first` after `first` ns, and the later ones `err`
        /// after `delay` ns (a backend stalled once).
        LateFirst {
            first: u64,
            err_first: i32,
            delay: u64,
            err: i32,
        },
        /// Answers `err` after `delay` ns and signals the answer unless `_XEN_PCIF_watching`
        /// is set when it clears the bit (as the Rust backend); a poll wakes at the signal.
        Signals { delay: u64, err: i32 },
    }

    struct Fake {
        backend: Backend,
        now: u64,
        active: bool,
        err: i32,
        posted_at: u64,
        posts: u32,
        polls: u32,
        longest_poll: u64,
        turns: u64,
        /// The turn of the spin after which the hypervisor runs another vCPU (counted from 1;
        /// 0: never), and for how long.
        preempt_at: u64,
        preempt_ns: u64,
        yields: u32,
        /// How long another vCPU runs in each yield.
        yield_ns: u64,
        /// When the backend answers if the post yielded, instead of its usual delay (the
        /// yield let its vCPU run).
        delay_if_yielded: Option<u64>,
        /// Whether every yield came right after a post.
        yield_after_post: bool,
        just_posted: bool,
        /// What `may_yield` answers.
        may_yield: bool,
        /// What `may_watch` answers.
        may_watch: bool,
        /// `_XEN_PCIF_watching`.
        watching: bool,
        /// The events the backend signalled, and whether the channel is pending.
        events: u32,
        pending: bool,
        /// How long after clearing the bit a [`Backend::Signals`] signal sets the flag, and
        /// when the one sent will.
        signal_lag: u64,
        signal_due: Option<u64>,
        /// Clears of the flag after an answer, and the turns of the wait for its signal.
        signals_cleared: u32,
        signal_turns: u64,
        /// Time that passes right after the step that stops the watch.
        after_stop_ns: u64,
        /// Reads of the clock.
        clock_reads: u64,
        /// Signals of a request still posted.
        notifies: u32,
        /// Late answers to earlier requests handed over.
        earlier: u32,
    }

    impl Fake {
        fn new(backend: Backend) -> Fake {
            Fake {
                backend,
                now: 1_000,
                active: false,
                // A stale answer of an earlier request.
                err: -5,
                posted_at: 0,
                posts: 0,
                polls: 0,
                longest_poll: 0,
                turns: 0,
                preempt_at: 0,
                preempt_ns: 0,
                yields: 0,
                yield_ns: 0,
                delay_if_yielded: None,
                yield_after_post: true,
                just_posted: false,
                may_yield: true,
                may_watch: true,
                watching: false,
                events: 0,
                pending: false,
                signal_lag: 0,
                signal_due: None,
                signals_cleared: 0,
                signal_turns: 0,
                after_stop_ns: 0,
                clock_reads: 0,
                notifies: 0,
                earlier: 0,
            }
        }

        /// The backend, at the current time.
        fn step(&mut self) {
            if !self.active {
                return;
            }
            match self.backend {
                Backend::AnswerUnnoticed { delay, err } => {
                    let delay = match self.delay_if_yielded {
                        Some(d) if self.yields > 0 => d,
                        _ => delay,
                    };
                    if self.now >= self.posted_at + delay {
                        self.err = err;
                        self.active = false;
                    }
                }
                Backend::StaleClears { stale, err } => {
                    if self.posts > stale {
                        self.err = err;
                    }
                    self.active = false;
                }
                Backend::ClearsOnceAt(at) => {
                    if self.posts == 1 && self.now >= at {
                        self.active = false;
                    }
                }
                Backend::Silent => {}
                Backend::LateFirst {
                    first,
                    err_first,
                    delay,
                    err,
                } => {
                    let (delay, err) = if self.posts == 1 {
                        (first, err_first)
                    } else {
                        (delay, err)
                    };
                    if self.now >= self.posted_at + delay {
                        self.err = err;
                        self.active = false;
                    }
                }
                Backend::Signals { delay, err } => {
                    if self.now >= self.posted_at + delay {
                        self.err = err;
                        self.active = false;
                        if !self.watching {
                            self.events += 1;
                            self.signal_due = Some(self.posted_at + delay + self.signal_lag);
                            self.deliver();
                        }
                    }
                }
            }
        }
    }

    impl Fake {
        /// Sets the flag if the signal sent is due.
        fn deliver(&mut self) {
            if self.signal_due.is_some_and(|at| self.now >= at) {
                self.signal_due = None;
                self.pending = true;
            }
        }
    }

    impl Channel for Fake {
        fn write_request(&mut self) -> bool {
            self.err = ERR_UNANSWERED;
            true
        }
        fn set_active_and_notify(&mut self, watching: bool) {
            self.watching = watching;
            self.active = true;
            self.posts += 1;
            self.posted_at = self.now;
            self.just_posted = true;
        }
        fn active(&mut self) -> bool {
            self.just_posted = false;
            self.step();
            self.active
        }
        fn stop_watching(&mut self) -> bool {
            // The atomic step comes a nanosecond after the spin's last look: an answer due then
            // is published while the bit is still set, unsignalled.
            self.now += 1;
            self.step();
            self.watching = false;
            let active = self.active;
            self.now += self.after_stop_ns;
            active
        }
        fn notify(&mut self) {
            assert!(self.active, "signalled again without a request posted");
            self.notifies += 1;
        }
        fn earlier_answered(&mut self) {
            assert!(!self.active, "handed an answer still to come");
            self.earlier += 1;
        }
        fn err(&mut self) -> i32 {
            self.err
        }
        fn clear_pending(&mut self) {
            self.signals_cleared += u32::from(!self.active && self.pending);
            self.pending = false;
        }
        fn pending(&mut self) -> bool {
            self.deliver();
            self.pending
        }
        fn poll(&mut self, ns: u64) {
            assert!(!self.watching, "polled while asking for no event");
            self.polls += 1;
            self.longest_poll = self.longest_poll.max(ns);
            // Only a signalled answer wakes the poll early; otherwise the worst case, never
            // woken early.
            if let Backend::Signals { delay, .. } = self.backend {
                let at = self.posted_at + delay;
                if !self.pending && self.active && at < self.now + ns {
                    self.now = self.now.max(at);
                    self.step();
                }
                if let Some(due) = self.signal_due.filter(|&due| due < self.now + ns) {
                    self.now = self.now.max(due);
                    self.deliver();
                }
                if self.pending {
                    return;
                }
            }
            self.now += ns;
        }
        fn relax(&mut self) {
            self.now += TURN_NS;
            if !self.active && self.err != ERR_UNANSWERED {
                // After the answer: the wait for its signal.
                self.signal_turns += 1;
                return;
            }
            self.turns += 1;
            if self.turns == self.preempt_at {
                self.now += self.preempt_ns;
            }
        }
        fn yield_cpu(&mut self) {
            self.yields += 1;
            self.yield_after_post &= self.just_posted;
            self.just_posted = false;
            self.now += self.yield_ns;
        }
        fn may_yield(&mut self) -> bool {
            self.may_yield
        }
        fn may_watch(&mut self) -> bool {
            self.may_watch
        }
        fn now_ns(&mut self) -> u64 {
            self.clock_reads += 1;
            self.now
        }
    }

    /// What one turn of the spin costs the fake.
    const TURN_NS: u64 = 100;

    fn round_trip(f: &mut Fake) -> Outcome {
        super::round_trip(f, &mut Spin::new(), &mut Counts::new())
    }

    /// A spin budget that learnt round trips of `ns`.
    fn learnt(ns: u64) -> Spin {
        let mut spin = Spin::new();
        for _ in 0..64 {
            spin.note(ns, false, false);
        }
        spin
    }

    #[test]
    fn the_first_round_trip_polls_and_teaches_the_spin() {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: 300_000,
            err: 0,
        });
        let mut spin = Spin::new();
        assert_eq!(spin.budget_ns(), 0);
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut Counts::new()),
            Outcome::Answered
        );
        assert_eq!(f.turns, 0);
        assert!(f.polls >= 1);
        assert!(spin.budget_ns() > 0);
    }

    #[test]
    fn an_answer_within_the_budget_is_taken_without_a_poll() {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: 300_000,
            err: -3,
        });
        let mut spin = learnt(400_000);
        assert!(spin.budget_ns() > 600_000, "{}", spin.budget_ns());
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::Answered
        );
        assert_eq!(f.err, -3);
        assert_eq!(f.polls, 0);
        // Seen at the next turn.
        let waited = f.now - 1_000;
        assert!(waited <= 300_000 + TURN_NS, "waited {waited}");
        // A look at the clock after each check of the bit but the last (which saw the answer),
        // each ending a turn, the first from the post.
        assert_eq!(counts.spin_turns, f.turns);
        assert_eq!(counts.spin_ns, (f.turns - 1) * TURN_NS);
        // The clock is read at the start, after the post and at each look, no more (each read
        // may be a trap): the round trip counts to the end of the turn that saw the answer.
        assert_eq!(f.clock_reads, 2 + f.turns);
        assert_eq!(counts.answered_ns, f.turns * TURN_NS);
    }

    /// A round trip of `spin` against [`Backend::Signals`] answering after `delay`, with the
    /// watching switch at `may_watch`; the fake and the counts.
    fn signalled(spin: &mut Spin, delay: u64, may_watch: bool) -> (Fake, Counts) {
        let mut f = Fake::new(Backend::Signals { delay, err: 0 });
        f.may_watch = may_watch;
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, spin, &mut counts),
            Outcome::Answered
        );
        assert!(!f.watching, "the round trip ended still watching");
        (f, counts)
    }

    #[test]
    fn an_answer_seen_spinning_is_not_signalled() {
        let (f, counts) = signalled(&mut learnt(400_000), 300_000, true);
        assert_eq!((f.events, f.polls, counts.watched), (0, 0, 1));
        // Nor is its signal waited for.
        assert_eq!(
            (f.signal_turns, counts.signals_taken, counts.signals_late),
            (0, 0, 0)
        );
    }

    /// A round trip of a spin that learnt 400 µs round trips against [`Backend::Signals`]
    /// answering after 300 µs, its post not watched, its signal `lag` after the bit clears.
    fn signalled_late(lag: u64) -> (Fake, Spin, Counts) {
        let mut f = Fake::new(Backend::Signals {
            delay: 300_000,
            err: 0,
        });
        f.may_watch = false;
        f.signal_lag = lag;
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::Answered
        );
        (f, spin, counts)
    }

    #[test]
    fn the_signal_of_an_answer_seen_spinning_is_waited_for_and_taken() {
        let (f, spin, counts) = signalled_late(10_000);
        assert!(spin.signal_wait_ns() > 10_000 + TURN_NS);
        assert_eq!((f.polls, f.events, f.signals_cleared), (0, 1, 1));
        assert!(!f.pending && f.signal_due.is_none(), "left pending");
        assert_eq!((counts.signals_taken, counts.signals_late), (1, 0));
        // Taken at the first look after it came (the spin saw the answer up to a turn late).
        assert!(
            (1..=10_000 / TURN_NS + 1).contains(&f.signal_turns),
            "{} turns",
            f.signal_turns
        );
        // The clock read after each look of the wait that found no signal, not before the
        // first.
        assert_eq!(f.clock_reads, 2 + f.turns + f.signal_turns - 1);
        // The wait is not the round trip's: the spin learns the backend's time.
        assert!(
            counts.answered_ns <= 300_000 + TURN_NS,
            "{}",
            counts.answered_ns
        );
    }

    #[test]
    fn a_signal_there_at_the_first_look_costs_no_clock_read() {
        let (f, _, counts) = signalled_late(0);
        assert_eq!((f.polls, f.signals_cleared, f.signal_turns), (0, 1, 0));
        assert_eq!((counts.signals_taken, counts.signal_wait_ns), (1, 0));
        // As for an unsignalled answer the spin saw: the start, after the post, each look.
        assert_eq!(f.clock_reads, 2 + f.turns);
    }

    #[test]
    fn an_answer_just_after_the_watch_stopped_is_signalled_and_its_signal_taken() {
        // Budget 200 µs; the answer comes 1 µs after the watch stopped (as the backend clears
        // the bit after the frontend's atomic step), seen at the first look after it, before
        // its signal: the backend signals it, so it is waited for.
        let mut spin = learnt(100_000);
        let budget = spin.budget_ns();
        let mut f = Fake::new(Backend::Signals {
            delay: budget + 1_000,
            err: 0,
        });
        f.after_stop_ns = 2_000;
        f.signal_lag = 5_000;
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::Answered
        );
        assert_eq!((f.polls, f.events, counts.watched), (0, 1, 1));
        assert_eq!((counts.signals_taken, counts.signals_late), (1, 0));
        assert!(!f.pending && f.signal_due.is_none(), "left pending");
    }

    #[test]
    fn the_wait_for_a_signal_is_bounded_after_a_preempted_last_turn() {
        // The spin's turn before its last look is preempted for 60 µs, and the answer (at
        // 300 µs) is seen in the turn after that look, which the round trip counts as long as
        // the one before: to an estimated end 60 µs ahead of the clock. The signal comes 200 µs
        // after the answer, later than the wait.
        let mut f = Fake::new(Backend::Signals {
            delay: 300_000,
            err: 0,
        });
        f.may_watch = false;
        f.signal_lag = 200_000;
        f.preempt_at = 2_399;
        f.preempt_ns = 60_000;
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::Answered
        );
        assert_eq!(
            (counts.preempted, counts.signals_late),
            (1, 1),
            "{counts:?}"
        );
        assert!(counts.answered_ns >= 350_000, "{counts:?}");
        // Bounded from the first clock read, not from the estimate.
        assert_waited_out(&f, &spin, &counts);
    }

    /// A wait for a signal that did not come ended at the first clock read past its bound,
    /// counted from its first read (after its first turn).
    fn assert_waited_out(f: &Fake, spin: &Spin, counts: &Counts) {
        let (waited, most) = (f.signal_turns * TURN_NS, spin.signal_wait_ns());
        assert!(
            waited > most && waited <= most + 2 * TURN_NS,
            "waited {waited} ns for at most {most}"
        );
        assert!(
            (most..=most + TURN_NS).contains(&counts.signal_wait_ns),
            "{}",
            counts.signal_wait_ns
        );
        assert_eq!(counts.signals_waited, 1);
    }

    #[test]
    fn a_signal_later_than_the_wait_is_left_to_the_handler() {
        let (f, spin, counts) = signalled_late(200_000);
        assert!(spin.signal_wait_ns() < 200_000);
        assert_eq!((f.polls, f.signals_cleared), (0, 0));
        assert!(f.signal_due.is_some(), "the signal is still to come");
        assert_eq!((counts.signals_taken, counts.signals_late), (0, 1));
        assert_waited_out(&f, &spin, &counts);
    }

    #[test]
    fn the_signal_that_woke_the_poll_is_taken_at_once() {
        let (f, counts) = signalled(&mut learnt(100_000), 700_000, true);
        assert_eq!((f.events, f.polls, f.signals_cleared), (1, 1, 1));
        assert!(!f.pending);
        assert_eq!(
            (f.signal_turns, counts.signals_taken, counts.signals_late),
            (0, 1, 0)
        );
    }

    #[test]
    fn an_answer_after_the_spin_is_signalled_and_wakes_the_poll() {
        // Budget 200 us, answer at 700 us: the spin stops watching, so the backend signals the
        // answer and the poll returns then, not at the end of its 1 ms slice.
        let (f, counts) = signalled(&mut learnt(100_000), 700_000, true);
        assert_eq!((f.events, f.polls, counts.watched), (1, 1, 1));
        let waited = f.now - 1_000;
        assert_eq!(waited, 700_000);
    }

    #[test]
    fn an_answer_between_the_spin_and_its_end_is_seen_without_an_event_or_a_poll() {
        // Budget 200 us: the spin's last look is at 200 us (its turns are 100 ns), the answer
        // comes a nanosecond later, in the atomic step that stops the watch, with the bit still
        // set: the backend does not signal it, and the look after the step sees it.
        let mut spin = learnt(100_000);
        let budget = spin.budget_ns();
        let (f, counts) = signalled(&mut spin, budget + 1, true);
        assert_eq!((f.events, f.polls, counts.watched), (0, 0, 1));
        assert_eq!(counts.answered_spinning, 1);
    }

    #[test]
    fn without_a_spin_or_with_the_switch_off_no_post_watches() {
        // The first round trip does not spin: the post does not watch, the answer is signalled.
        let (f, counts) = signalled(&mut Spin::new(), 300_000, true);
        assert_eq!((f.events, counts.watched), (1, 0));
        let (f, counts) = signalled(&mut learnt(400_000), 300_000, false);
        assert_eq!((f.events, f.polls, counts.watched), (1, 0, 0));
    }

    #[test]
    fn a_late_answer_is_polled_for_after_the_budget() {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: 5_000_000,
            err: 0,
        });
        let mut spin = learnt(100_000);
        let budget = spin.budget_ns();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut Counts::new()),
            Outcome::Answered
        );
        // Spun for the budget (to the turn), then polled.
        assert!(f.turns * TURN_NS >= budget);
        assert!(f.turns * TURN_NS < budget + TURN_NS);
        assert!(f.polls >= 1);
        assert!(f.longest_poll <= POLL_SLICE_NS);
    }

    #[test]
    fn the_spin_is_bounded_whatever_the_round_trips() {
        let spin = learnt(u64::MAX);
        assert_eq!(spin.budget_ns(), SPIN_MAX_NS);
        let mut f = Fake::new(Backend::Silent);
        let mut spin = spin;
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut Counts::new()),
            Outcome::TimedOut
        );
        assert!(f.turns * TURN_NS < SPIN_MAX_NS + TURN_NS);
        let waited = f.now - 1_000;
        assert!(waited >= OP_TIMEOUT_NS && waited <= OP_TIMEOUT_NS + POLL_SLICE_NS);
        // A timed-out round trip teaches nothing.
        assert_eq!(spin.budget_ns(), SPIN_MAX_NS);
    }

    #[test]
    fn a_spin_stops_at_the_deadline() {
        // The first post is cleared without an answer 1.5 ms before the deadline, seen at the
        // end of the poll slice 1 ms before it: the second post's spin (budget 2 ms) ends at
        // the deadline, and the request stays posted.
        let mut f = Fake::new(Backend::ClearsOnceAt(1_000 + OP_TIMEOUT_NS - 1_500_000));
        let mut spin = learnt(SPIN_MAX_NS);
        assert_eq!(spin.budget_ns(), SPIN_MAX_NS);
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut Counts::new()),
            Outcome::TimedOut
        );
        assert_eq!(f.posts, 2);
        assert!(f.active);
        let waited = f.now - 1_000;
        assert!(
            waited >= OP_TIMEOUT_NS && waited <= OP_TIMEOUT_NS + TURN_NS,
            "waited {waited}"
        );
    }

    /// A round trip of `spin` whose answer comes after `delay` ns, its spin preempted for
    /// `preempt_ns` after its `preempt_at`th turn (0: not preempted), and another vCPU running
    /// for 100 us in each yield (longer than the gap of a preemption: the yield's time is not
    /// one); the fake, to look at.
    fn trip(spin: &mut Spin, delay: u64, preempt_at: u64, preempt_ns: u64) -> Fake {
        let mut f = Fake::new(Backend::AnswerUnnoticed { delay, err: 0 });
        f.preempt_at = preempt_at;
        f.preempt_ns = preempt_ns;
        f.yield_ns = 100_000;
        assert_eq!(
            super::round_trip(&mut f, spin, &mut Counts::new()),
            Outcome::Answered
        );
        f
    }

    #[test]
    fn a_trial_reads_the_clock_at_the_end_of_its_round_trips() {
        // Preempted for 100 us in the turn in which the answer comes: counted to the end of
        // that turn as estimated from the turn before, the round trip would miss the
        // preemption. Outside a trial it does (its estimate sets only the budget); in a trial,
        // whose halves compare round trips' times, the clock is read.
        for trial in [false, true] {
            let mut spin = learnt(400_000);
            if trial {
                spin.note(400_000, true, false);
                assert_eq!(spin.rule().state().0, "trial");
            }
            let mut f = Fake::new(Backend::AnswerUnnoticed {
                delay: 300_000,
                err: 0,
            });
            // The answer is due during the 3000th pause (300 us at 100 ns each).
            f.preempt_at = 3_000;
            f.preempt_ns = 100_000;
            f.yield_ns = 0;
            let mut counts = Counts::new();
            let reads = 2 + if trial { 1 } else { 0 };
            let was_trial = spin.in_trial();
            assert_eq!(
                super::round_trip(&mut f, &mut spin, &mut counts),
                Outcome::Answered
            );
            assert_eq!(was_trial, trial);
            let elapsed = f.now - 1_000;
            assert_eq!(f.clock_reads, reads + f.turns, "trial {trial}");
            if trial {
                assert_eq!(counts.answered_ns, elapsed);
            } else {
                assert!(
                    counts.answered_ns < elapsed - 90_000,
                    "{}",
                    counts.answered_ns
                );
            }
        }
    }

    #[test]
    fn an_unpreempted_spin_never_yields() {
        let mut spin = learnt(400_000);
        for _ in 0..2 * VERDICT_TRIPS {
            let f = trip(&mut spin, 300_000, 0, 0);
            assert_eq!(f.yields, 0);
        }
        assert!(!spin.yields());
    }

    #[test]
    fn a_preempted_spin_starts_a_trial_whose_first_posts_yield_once_each() {
        let mut spin = learnt(400_000);
        // Preempted for 100 us, an eighth of the 400 us round trip being 50.
        let f = trip(&mut spin, 300_000, 10, 100_000);
        assert_eq!(
            f.yields, 0,
            "the trip that finds the preemption does not yield"
        );
        assert!(spin.yields());
        let f = trip(&mut spin, 300_000, 0, 0);
        assert_eq!((f.posts, f.yields), (1, 1));
        assert!(f.yield_after_post);
        // Both posts of a request posted twice.
        let mut f = Fake::new(Backend::StaleClears { stale: 1, err: 0 });
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut Counts::new()),
            Outcome::Answered
        );
        assert_eq!((f.posts, f.yields), (2, 2));
        assert!(f.yield_after_post);
    }

    #[test]
    fn gaps_are_counted_by_their_length_in_powers_of_two() {
        assert_eq!(gap_bucket(0), 0);
        assert_eq!(gap_bucket(31_999), 0);
        assert_eq!(gap_bucket(32_000), 1);
        assert_eq!(gap_bucket(100_000), 2);
        assert_eq!(gap_bucket(2_047_999), GAP_BUCKETS - 2);
        assert_eq!(gap_bucket(2_048_000), GAP_BUCKETS - 1);
        assert_eq!(gap_bucket(u64::MAX), GAP_BUCKETS - 1);
        // A preempted spin counts its longest gap, once; a spin that was not, nothing.
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        // (when the answer comes, the turn of the preemption, its length): a gap is measured
        // at the next look, so only one that ends before the answer counts.
        let trips = [
            (300_000, 10, 100_000),
            (300_000, 0, 0),
            (5_000_000, 3, 3_000_000),
            (300_000, 5, 40_000),
        ];
        for (delay, preempt_at, preempt_ns) in trips {
            let mut f = Fake::new(Backend::AnswerUnnoticed { delay, err: 0 });
            f.preempt_at = preempt_at;
            f.preempt_ns = preempt_ns;
            assert_eq!(
                super::round_trip(&mut f, &mut spin, &mut counts),
                Outcome::Answered
            );
        }
        // 100 us + a turn: under 128; 3 ms: the last; 40 us: under an eighth of the round
        // trip (600 us by then), not a preemption.
        assert_eq!(counts.gaps, [0, 0, 1, 0, 0, 0, 0, 1]);
        assert_eq!(counts.preempted, 2);
    }

    /// A round trip with the administrator's switch off: the backend answers 300 us after the
    /// post; the spin is preempted for 100 us after its 10th turn if `preempted`.
    fn switched_off_trip(spin: &mut Spin, counts: &mut Counts, preempted: bool) -> Fake {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: 300_000,
            err: 0,
        });
        f.may_yield = false;
        if preempted {
            f.preempt_at = 10;
            f.preempt_ns = 100_000;
        }
        assert_eq!(super::round_trip(&mut f, spin, counts), Outcome::Answered);
        f
    }

    #[test]
    fn the_switch_off_means_no_yield_whatever_the_spins() {
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        for i in 0..2 * VERDICT_TRIPS {
            assert_eq!(
                switched_off_trip(&mut spin, &mut counts, true).yields,
                0,
                "trip {i}"
            );
        }
        // Each trial was dropped at its first round trip (the trial yields first).
        let n = u64::from(2 * VERDICT_TRIPS);
        assert_eq!((counts.preempted, counts.yields), (n, 0));
        assert_eq!((counts.trials_yield, counts.trials_spin), (0, 0));
    }

    /// An answered round trip of a trial: the backend answers 300 us after the post, and another
    /// vCPU runs for 400 us in a yield (where the yield does not help: a CPU to spare); or it
    /// answers 600 us after the post, 200 us if the post yielded, and a yield takes 100 us
    /// (where it does: the backend's vCPU waits for this CPU).
    fn trial_trip(spin: &mut Spin, counts: &mut Counts, yield_helps: bool) -> Fake {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: if yield_helps { 600_000 } else { 300_000 },
            err: 0,
        });
        f.yield_ns = if yield_helps { 100_000 } else { 400_000 };
        f.delay_if_yielded = yield_helps.then_some(200_000);
        assert_eq!(super::round_trip(&mut f, spin, counts), Outcome::Answered);
        f
    }

    #[test]
    fn a_trial_keeps_the_yield_where_it_shortens_the_round_trip_and_drops_it_where_not() {
        for yield_helps in [true, false] {
            let mut spin = learnt(400_000);
            let mut counts = Counts::new();
            trip(&mut spin, 300_000, 10, 100_000);
            let mut yielded = 0;
            for _ in 0..2 * TRIAL_TRIPS {
                yielded += trial_trip(&mut spin, &mut counts, yield_helps).yields;
            }
            // Half the trial's posts yielded, once each; one verdict.
            assert_eq!(yielded, TRIAL_TRIPS as u32);
            assert_eq!(
                (counts.trials_yield, counts.trials_spin),
                if yield_helps { (1, 0) } else { (0, 1) }
            );
            // The verdict holds, preemptions or not, and then the posts stop yielding.
            for i in 0..VERDICT_TRIPS {
                let f = trip(&mut spin, 300_000, if i % 2 == 0 { 10 } else { 0 }, 100_000);
                assert_eq!(f.yields, u32::from(yield_helps), "{yield_helps} trip {i}");
            }
            assert!(!spin.yields());
            assert_eq!(trip(&mut spin, 300_000, 0, 0).yields, 0);
            // A preemption starts the next trial.
            trip(&mut spin, 300_000, 10, 100_000);
            assert_eq!(spin.rule().state(), ("trial", 2 * TRIAL_TRIPS as u64));
        }
    }

    #[test]
    fn the_switch_off_drops_a_trial_but_not_a_verdict() {
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        trip(&mut spin, 300_000, 10, 100_000);
        // Part of the trial runs, then the switch goes off: no yield, and the trial is dropped.
        for _ in 0..TRIAL_TRIPS / 2 {
            assert_eq!(trial_trip(&mut spin, &mut counts, true).yields, 1);
        }
        assert_eq!(spin.rule().state(), ("trial", 3 * TRIAL_TRIPS as u64 / 2));
        assert_eq!(switched_off_trip(&mut spin, &mut counts, false).yields, 0);
        assert_eq!(spin.rule().state(), ("idle", 0));
        // Switched on again, the next preempted spin starts a whole trial, which decides.
        trip(&mut spin, 300_000, 10, 100_000);
        let mut yielded = 0;
        for _ in 0..2 * TRIAL_TRIPS {
            yielded += trial_trip(&mut spin, &mut counts, true).yields;
        }
        assert_eq!(yielded, TRIAL_TRIPS as u32);
        assert_eq!((counts.trials_yield, counts.trials_spin), (1, 0));
        // The verdict's round trips count with the switch off too (it is a time, not a number
        // of yields): it runs out as it would.
        for i in 0..VERDICT_TRIPS {
            let left = u64::from(VERDICT_TRIPS - i);
            assert_eq!(spin.rule().state(), ("yield", left));
            assert_eq!(switched_off_trip(&mut spin, &mut counts, false).yields, 0);
        }
        assert_eq!(spin.rule().state(), ("idle", 0));
    }

    #[test]
    fn a_short_gap_is_not_a_preemption() {
        let mut spin = learnt(400_000);
        // 40 us: under an eighth of the round trip.
        trip(&mut spin, 300_000, 10, 40_000);
        assert!(!spin.yields());
        // 9 us on a 20 us round trip: an eighth of it, but under the least gap.
        let mut spin = learnt(20_000);
        trip(&mut spin, 15_000, 10, 9_000);
        assert!(!spin.yields());
        trip(&mut spin, 15_000, 10, PREEMPTED_GAP_MIN_NS);
        assert!(spin.yields());
        // Nor is the time the poll blocks (the spin's budget is over at 250 us here).
        let mut spin = learnt(125_000);
        let f = trip(&mut spin, 5_000_000, 0, 0);
        assert!(f.polls > 1);
        assert!(!spin.yields());
    }

    #[test]
    fn the_first_answer_sets_the_budget_and_later_ones_move_it() {
        let mut spin = Spin::new();
        spin.note(300_000, false, false);
        assert_eq!(spin.budget_ns(), 600_000);
        assert_eq!(spin.preempted_gap_ns(), 300_000 / 8);
        spin.note(300_000, false, false);
        assert_eq!(spin.budget_ns(), 600_000);
        // An eighth of the way towards a faster one.
        spin.note(100_000, false, false);
        assert_eq!(spin.budget_ns(), 2 * (300_000 - 300_000 / 8 + 100_000 / 8));
        // A first answer slower than the cap counts as the cap.
        let mut spin = Spin::new();
        spin.note(1_000_000_000, false, false);
        assert_eq!(spin.budget_ns(), SPIN_MAX_NS);
    }

    #[test]
    fn one_slow_answer_does_not_make_the_spins_long() {
        let mut spin = learnt(50_000);
        spin.note(1_000_000_000, false, false);
        assert!(
            spin.budget_ns() <= 2 * 50_000 + 2 * SPIN_MAX_NS / 8,
            "{}",
            spin.budget_ns()
        );
    }

    #[test]
    fn a_missed_wakeup_costs_one_slice_not_the_deadline() {
        let mut f = Fake::new(Backend::AnswerUnnoticed {
            delay: 5_000_000,
            err: 0,
        });
        assert_eq!(round_trip(&mut f), Outcome::Answered);
        assert_eq!(f.err, 0);
        let waited = f.now - 1_000;
        assert!(
            waited >= 5_000_000 && waited <= 5_000_000 + POLL_SLICE_NS,
            "waited {waited}"
        );
        assert!(f.longest_poll <= POLL_SLICE_NS);
        assert_eq!(f.posts, 1);
    }

    #[test]
    fn a_clear_without_an_answer_is_not_an_answer() {
        let mut f = Fake::new(Backend::StaleClears { stale: 1, err: -2 });
        assert_eq!(round_trip(&mut f), Outcome::Answered);
        // The real answer, not the sentinel nor the answer of an earlier request still on the
        // page (`Fake::new`'s -5).
        assert_eq!(f.err, -2);
        assert_eq!(f.posts, 2);
    }

    #[test]
    fn a_backend_that_only_clears_gets_no_answer_taken() {
        let mut f = Fake::new(Backend::StaleClears {
            stale: u32::MAX,
            err: 0,
        });
        assert_eq!(round_trip(&mut f), Outcome::Unanswered);
        assert_eq!(f.posts, MAX_POSTS);
        assert_eq!(f.err, ERR_UNANSWERED);
    }

    #[test]
    fn a_silent_backend_times_out_and_the_request_stays_posted() {
        let mut f = Fake::new(Backend::Silent);
        assert_eq!(round_trip(&mut f), Outcome::TimedOut);
        assert!(f.active);
        assert_eq!(f.posts, 1);
        assert_eq!(f.notifies, 0);
        let waited = f.now - 1_000;
        assert!(waited >= OP_TIMEOUT_NS && waited <= OP_TIMEOUT_NS + POLL_SLICE_NS);
        assert!(f.longest_poll <= POLL_SLICE_NS);
        assert!(f.polls >= (OP_TIMEOUT_NS / POLL_SLICE_NS) as u32);
    }

    #[test]
    fn a_request_left_posted_is_waited_for_and_its_late_answer_handed_over() {
        // The first request times out, the backend still at work on it; its answer comes
        // 0.5 s later, during the next round trip's wait.
        let mut f = Fake::new(Backend::LateFirst {
            first: OP_TIMEOUT_NS + 500_000_000,
            err_first: -3,
            delay: 10_000,
            err: 0,
        });
        let mut spin = learnt(20_000);
        let mut counts = Counts::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::TimedOut
        );
        assert!(f.active);
        let budget = spin.budget_ns();
        // The next one signals the backend again, waits, hands the late answer over, then posts
        // its own request in the time left and takes its own answer, not the late one.
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::Answered
        );
        assert_eq!((f.notifies, f.earlier, f.posts), (1, 1, 2));
        assert_eq!((f.err, f.active), (0, false));
        assert_eq!(
            (counts.timed_out, counts.earlier_posted, counts.busy),
            (1, 1, 0)
        );
        // Its own time is the answer's, not the wait's (0.5 s): the spin budget learnt a round
        // trip shorter than its average, not one of the cap.
        assert!(counts.answered_ns < 1_000_000, "{}", counts.answered_ns);
        assert!(spin.budget_ns() < budget);
    }

    #[test]
    fn a_request_left_posted_and_never_answered_leaves_nothing_posted_after_it() {
        let mut f = Fake::new(Backend::Silent);
        let mut counts = Counts::new();
        let mut spin = Spin::new();
        assert_eq!(
            super::round_trip(&mut f, &mut spin, &mut counts),
            Outcome::TimedOut
        );
        let at = f.now;
        for n in 1..=2 {
            assert_eq!(
                super::round_trip(&mut f, &mut spin, &mut counts),
                Outcome::Busy
            );
            // Nothing written over the request, the backend signalled again, the deadline
            // waited out in slices.
            assert_eq!((f.posts, f.notifies, f.earlier), (1, n, 0));
            assert!(f.active);
        }
        let waited = f.now - at;
        assert!(waited >= 2 * OP_TIMEOUT_NS && waited <= 2 * (OP_TIMEOUT_NS + POLL_SLICE_NS));
        assert!(f.longest_poll <= POLL_SLICE_NS);
        assert_eq!(
            (counts.timed_out, counts.earlier_posted, counts.busy),
            (1, 2, 2)
        );
    }

    #[test]
    fn the_counts_tell_how_each_round_trip_ended_and_waited() {
        let mut spin = learnt(400_000);
        let mut counts = Counts::new();
        let run = |backend, preempt_at, spin: &mut Spin, counts: &mut Counts| {
            let mut f = Fake::new(backend);
            f.preempt_at = preempt_at;
            f.preempt_ns = 100_000;
            super::round_trip(&mut f, spin, counts)
        };
        let quick = Backend::AnswerUnnoticed {
            delay: 300_000,
            err: 0,
        };
        // Answered in the spin, then after polls, then in a preempted spin.
        run(quick, 0, &mut spin, &mut counts);
        assert_eq!(
            (counts.answered, counts.answered_spinning, counts.polls),
            (1, 1, 0)
        );
        let late = Backend::AnswerUnnoticed {
            delay: 5_000_000,
            err: 0,
        };
        run(late, 0, &mut spin, &mut counts);
        assert_eq!((counts.answered, counts.answered_spinning), (2, 1));
        assert!(counts.polls >= 4, "{counts:?}");
        let polls = counts.polls;
        run(quick, 10, &mut spin, &mut counts);
        assert_eq!((counts.preempted, counts.yields), (1, 0));
        // The next post yields.
        run(quick, 0, &mut spin, &mut counts);
        assert_eq!((counts.answered, counts.answered_spinning), (4, 3));
        assert_eq!(
            (counts.preempted, counts.yields, counts.polls),
            (1, 1, polls)
        );
        // A stale clear, then an answer: posted again (and yielding after both posts).
        run(
            Backend::StaleClears { stale: 1, err: 0 },
            0,
            &mut spin,
            &mut counts,
        );
        assert_eq!((counts.answered, counts.reposts, counts.yields), (5, 1, 3));
        // No answer: neither counts as answered nor teaches the times.
        let (total, longest) = (counts.answered_ns, counts.longest_ns);
        run(Backend::Silent, 0, &mut spin, &mut counts);
        let only_clears = Backend::StaleClears {
            stale: u32::MAX,
            err: 0,
        };
        run(only_clears, 0, &mut spin, &mut counts);
        assert_eq!(
            (counts.answered, counts.timed_out, counts.unanswered),
            (5, 1, 1)
        );
        assert_eq!((counts.answered_ns, counts.longest_ns), (total, longest));
        // The late answer was the longest.
        assert!(
            (5_000_000..=5_000_000 + POLL_SLICE_NS).contains(&longest),
            "{longest}"
        );
    }

    #[test]
    fn the_report_has_a_line_per_count_in_microseconds() {
        let mut counts = Counts::new();
        counts.answered = 4;
        counts.answered_spinning = 3;
        counts.preempted = 2;
        counts.polls = 9;
        counts.yields = 7;
        counts.reposts = 1;
        counts.watched = 8;
        counts.timed_out = 5;
        counts.earlier_posted = 13;
        counts.busy = 12;
        counts.unanswered = 6;
        counts.answered_ns = 4_000_000;
        counts.longest_ns = 2_500_000;
        counts.gaps = [1, 0, 2, 0, 0, 0, 0, 3];
        counts.trials_yield = 2;
        counts.trials_spin = 1;
        counts.spin_turns = 11;
        counts.spin_ns = 2_345_678;
        counts.signals_taken = 14;
        counts.signals_late = 15;
        counts.signals_waited = 17;
        counts.signal_wait_ns = 16_789;
        let mut spin = learnt(300_000);
        spin.note(300_000, true, false);
        let text = std::format!(
            "{}",
            Report {
                counts,
                spin,
                quiet_offered: true,
                events: 3
            }
        );
        assert_eq!(
            text,
            "answered 4\nanswered_spinning 3\npreempted_spins 2\npolls 9\nyields 7\n\
             reposts 1\nwatched 8\nquiet_answers_offered 1\nevents 3\ntimed_out 5\nearlier_posted 13\nbusy 12\nunanswered 6\nmean_us 1000\nlongest_us 2500\n\
             preempted_gaps_us 32:1,64:0,128:2,256:0,512:0,1024:0,2048:0,inf:3\n\
             trials_yield 2\ntrials_spin 1\nspin_turns 11\nspin_us 2345\nsignals_taken 14\nsignals_late 15\nsignals_waited 17\nsignal_wait_us 16\nspin_budget_us 600\n\
             yield_rule trial\nyield_rule_left 32\n"
        );
        // Nothing answered: a mean of 0, not a division by zero.
        let text = std::format!(
            "{}",
            Report {
                counts: Counts::new(),
                spin: Spin::new(),
                quiet_offered: false,
                events: 0
            }
        );
        assert!(text.contains("mean_us 0\n"), "{text}");
    }

    #[test]
    fn no_backend_answer_is_the_sentinel() {
        // C and Rust backends answer 0, XEN_PCI_ERR_* or a negative errno.
        for err in [0, -1, -2, -3, -4, -5, -4095] {
            assert_ne!(err, ERR_UNANSWERED);
        }
    }
}
