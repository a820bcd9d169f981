// SPDX-License-Identifier: GPL-2.0

//! Frontend: whether a post should yield the CPU, decided by trying both.
//!
//! After posting a request the frontend spins for the answer. When the hypervisor preempts the
//! spin, the CPUs may be short: the backend's vCPU, which the post woke, may be waiting for
//! one, and yielding the CPU right after the post lets it run at once. But a preemption seen
//! from inside a guest does not say why it happened. Two guests spinning on a two-CPU host
//! want each other's CPUs; a guest alone beside a dom0 with a CPU to spare (or whose vCPU lost
//! its host thread's CPU, under nested virtualisation) only pays for a trip through the
//! hypervisor's scheduler. In a lab of this kind the two cases saw the same preemptions,
//! while the yield made one guest's reads 6-8 % slower and two guests' 60 % faster.
//!
//! So [`YieldRule`] measures. A preempted spin starts a **trial**: the next [`TRIAL_TRIPS`]
//! answered round trips yield after their post and as many do not, one half after the other
//! (the order alternates from trial to trial, so that a trend within a trial favours neither).
//! The half whose median round trip is shorter wins: posts yield, or do not, for the next
//! [`VERDICT_TRIPS`] answered round trips; a tie does not yield. After that the rule is idle
//! again (no yield) until a preempted spin starts the next trial (the verdict's last round trip
//! can be that spin). A round trip that did not do what the trial asked (the administrator's
//! switch kept it from yielding) drops the trial: the rule is idle again. A verdict's round
//! trips count whatever the switch.

/// How many answered round trips each half of a trial has.
pub(crate) const TRIAL_TRIPS: usize = 16;

/// For how many answered round trips a trial's verdict holds.
pub(crate) const VERDICT_TRIPS: u32 = 256;

/// The round-trip times of one half of a trial, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Half {
    ns: [u64; TRIAL_TRIPS],
    len: usize,
}

impl Half {
    const fn new() -> Half {
        Half {
            ns: [0; TRIAL_TRIPS],
            len: 0,
        }
    }

    fn full(&self) -> bool {
        self.len == TRIAL_TRIPS
    }

    fn push(&mut self, ns: u64) {
        if let Some(slot) = self.ns.get_mut(self.len) {
            *slot = ns;
            self.len += 1;
        }
    }

    /// The median of a full half (the upper one of the two middle times): the time with at
    /// most half the others below it and more than half at or below it. Found by counting, at
    /// most 16 times 32 comparisons, rather than by `core`'s sort, whose panic on an inconsistent order
    /// objtool does not know as a dead end.
    fn median(&self) -> u64 {
        let k = TRIAL_TRIPS / 2;
        let below = |t: u64| self.ns.iter().filter(|&&u| u < t).count();
        let at_or_below = |t: u64| self.ns.iter().filter(|&&u| u <= t).count();
        self.ns
            .iter()
            .copied()
            .find(|&t| below(t) <= k && at_or_below(t) > k)
            .unwrap_or(0)
    }
}

/// What a round trip told the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A trial ended: posts yield for a while.
    Yield,
    /// A trial ended: posts do not yield for a while.
    Spin,
}

/// Where the rule stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No trial and no verdict: posts do not yield.
    Idle,
    /// A trial under way.
    Trial,
    /// A trial's verdict.
    Decided {
        /// Whether posts yield.
        yields: bool,
        /// For how many more answered round trips.
        left: u32,
    },
}

/// Whether the posts of a channel yield the CPU (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct YieldRule {
    state: State,
    /// The round trips of the trial under way that yielded, and those that did not.
    yielding: Half,
    spinning: Half,
    /// Whether the yielding half of the trial under way (or of the next one) runs first.
    yield_first: bool,
}

impl Default for YieldRule {
    fn default() -> YieldRule {
        YieldRule::new()
    }
}

impl YieldRule {
    /// No preemption seen: no yield.
    pub(crate) const fn new() -> YieldRule {
        YieldRule {
            state: State::Idle,
            yielding: Half::new(),
            spinning: Half::new(),
            yield_first: true,
        }
    }

    /// Whether the next round trip of the trial under way yields.
    fn trial_yields(&self) -> bool {
        if self.yield_first {
            !self.yielding.full()
        } else {
            self.spinning.full()
        }
    }

    /// Whether the next post yields.
    pub(crate) fn yields(&self) -> bool {
        match self.state {
            State::Idle => false,
            State::Trial => self.trial_yields(),
            State::Decided { yields, .. } => yields,
        }
    }

    /// Whether a trial is under way (its round trips' times decide it).
    pub(crate) fn in_trial(&self) -> bool {
        self.state == State::Trial
    }

    /// The state's name and how many more answered round trips it lasts (0 when idle), for
    /// the statistics file.
    pub(crate) fn state(&self) -> (&'static str, u64) {
        match self.state {
            State::Idle => ("idle", 0),
            State::Trial => (
                "trial",
                (2 * TRIAL_TRIPS - self.yielding.len - self.spinning.len) as u64,
            ),
            State::Decided { yields, left } => {
                (if yields { "yield" } else { "spin" }, u64::from(left))
            }
        }
    }

    /// Counts an answered round trip of `ns` nanoseconds, whether its spin was `preempted` and
    /// whether its post(s) `yielded`; returns the verdict when it ends a trial.
    pub(crate) fn note(&mut self, ns: u64, preempted: bool, yielded: bool) -> Option<Verdict> {
        match self.state {
            State::Idle => {
                self.start_trial_if(preempted);
                None
            }
            State::Trial => {
                if yielded != self.trial_yields() {
                    // The administrator's switch kept this round trip from yielding: the trial
                    // is dropped. The next preempted spin starts another (which is dropped the
                    // same way while the switch is off): this one's start and what it measured
                    // may be long past by the time the switch is on again.
                    self.state = State::Idle;
                    self.yielding = Half::new();
                    self.spinning = Half::new();
                    return None;
                }
                if yielded {
                    self.yielding.push(ns);
                } else {
                    self.spinning.push(ns);
                }
                if !(self.yielding.full() && self.spinning.full()) {
                    return None;
                }
                let yields = self.yielding.median() < self.spinning.median();
                self.state = State::Decided {
                    yields,
                    left: VERDICT_TRIPS,
                };
                self.yield_first = !self.yield_first;
                Some(if yields {
                    Verdict::Yield
                } else {
                    Verdict::Spin
                })
            }
            State::Decided { yields, left } => {
                let left = left.saturating_sub(1);
                if left > 0 {
                    self.state = State::Decided { yields, left };
                } else {
                    // The verdict's last round trip is also the first one after it: a preempted
                    // spin there starts the next trial.
                    self.state = State::Idle;
                    self.start_trial_if(preempted);
                }
                None
            }
        }
    }

    /// Starts a trial, with empty halves, if the spin was `preempted`.
    fn start_trial_if(&mut self, preempted: bool) {
        if preempted {
            self.state = State::Trial;
            self.yielding = Half::new();
            self.spinning = Half::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the answered round trips of a trial that `rule` is in: `yielding` ns for those
    /// that yield, `spinning` for the others; returns the verdict and checks the halves' order.
    fn run_trial(rule: &mut YieldRule, yielding: u64, spinning: u64) -> Verdict {
        let first = rule.yields();
        for i in 0..2 * TRIAL_TRIPS {
            let y = rule.yields();
            assert_eq!(y, first == (i < TRIAL_TRIPS), "trip {i}");
            let v = rule.note(if y { yielding } else { spinning }, false, y);
            assert_eq!(v.is_some(), i == 2 * TRIAL_TRIPS - 1, "trip {i}");
            if let Some(v) = v {
                return v;
            }
        }
        unreachable!()
    }

    #[test]
    fn the_median_is_the_upper_middle_time() {
        // Against a sort, over orders and repeats (a counting median can trip on repeats).
        let mut seed = 1u64;
        for round in 0..2000 {
            let mut half = Half::new();
            for _ in 0..TRIAL_TRIPS {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Few distinct values in some rounds, many in others.
                half.push((seed >> 33) % if round % 2 == 0 { 4 } else { 1_000_000 });
            }
            let mut sorted = half.ns;
            sorted.sort_unstable();
            assert_eq!(half.median(), sorted[TRIAL_TRIPS / 2], "{:?}", half.ns);
        }
        let mut half = Half::new();
        for _ in 0..TRIAL_TRIPS {
            half.push(7);
        }
        assert_eq!(half.median(), 7);
    }

    #[test]
    fn no_preemption_no_trial_no_yield() {
        let mut rule = YieldRule::new();
        for _ in 0..1000 {
            assert!(!rule.yields());
            assert_eq!(rule.note(300_000, false, false), None);
        }
        assert_eq!(rule.state(), ("idle", 0));
    }

    #[test]
    fn a_preemption_starts_a_trial_and_the_faster_half_wins() {
        let mut rule = YieldRule::new();
        rule.note(300_000, true, false);
        assert_eq!(rule.state(), ("trial", 2 * TRIAL_TRIPS as u64));
        // Yielding is faster (two guests sharing the CPUs): posts yield.
        assert_eq!(run_trial(&mut rule, 500_000, 1_000_000), Verdict::Yield);
        assert_eq!(rule.state(), ("yield", u64::from(VERDICT_TRIPS)));
        for i in 0..VERDICT_TRIPS - 1 {
            assert!(rule.yields(), "trip {i}");
            // Preemptions meanwhile change nothing.
            assert_eq!(rule.note(500_000, true, true), None);
            assert_eq!(rule.state(), ("yield", u64::from(VERDICT_TRIPS - 1 - i)));
        }
        // The verdict runs out: idle, no yield, until the next preemption.
        assert!(rule.yields());
        assert_eq!(rule.note(500_000, false, true), None);
        assert_eq!(rule.state(), ("idle", 0));
        assert!(!rule.yields());
        rule.note(300_000, false, false);
        assert!(!rule.yields());
        rule.note(300_000, true, false);
        // The second trial starts with the other half, and spinning wins (a guest alone).
        assert!(!rule.yields());
        assert_eq!(run_trial(&mut rule, 460_000, 400_000), Verdict::Spin);
        assert_eq!(rule.state(), ("spin", u64::from(VERDICT_TRIPS)));
        for _ in 0..VERDICT_TRIPS {
            assert!(!rule.yields());
            rule.note(400_000, true, false);
        }
        // A preempted spin on the verdict's last round trip starts the third trial at once,
        // and it yields first again.
        assert_eq!(rule.state(), ("trial", 2 * TRIAL_TRIPS as u64));
        assert!(rule.yields());
    }

    #[test]
    fn the_medians_decide_not_one_long_wait() {
        let mut rule = YieldRule::new();
        rule.note(0, true, false);
        // The yielding half is faster but for a few stalls of 20 ms: they do not decide.
        let mut i = 0;
        let v = loop {
            let y = rule.yields();
            let ns = match (y, i % 4) {
                (true, 0) => 20_000_000,
                (true, _) => 400_000,
                (false, _) => 450_000,
            };
            i += 1;
            if let Some(v) = rule.note(ns, false, y) {
                break v;
            }
        };
        assert_eq!(v, Verdict::Yield);
        // A tie does not yield.
        rule = YieldRule::new();
        rule.note(0, true, false);
        assert_eq!(run_trial(&mut rule, 400_000, 400_000), Verdict::Spin);
    }

    #[test]
    fn a_round_trip_against_the_trial_drops_it() {
        let mut rule = YieldRule::new();
        rule.note(0, true, false);
        assert!(rule.yields());
        // The switch is off: the post does not yield, and the trial is dropped.
        assert_eq!(rule.note(1, true, false), None);
        assert_eq!(rule.state(), ("idle", 0));
        for _ in 0..1000 {
            assert!(!rule.yields());
            assert_eq!(rule.note(1, false, false), None);
        }
        assert_eq!(rule.state(), ("idle", 0));
        // Switched on again, the next preempted spin starts a trial (yielding first still: the
        // order alternates by verdict).
        rule.note(0, true, false);
        assert!(rule.yields());
        assert_eq!(run_trial(&mut rule, 500_000, 600_000), Verdict::Yield);
        // Let the verdict run out; the next trial spins first.
        for _ in 0..VERDICT_TRIPS {
            rule.note(1, false, true);
        }
        rule.note(1, true, false);
        assert_eq!(rule.state(), ("trial", 2 * TRIAL_TRIPS as u64));
        // That half runs, fast, then the switch goes off for the yielding half.
        for _ in 0..TRIAL_TRIPS {
            assert!(!rule.yields());
            rule.note(1, false, false);
        }
        assert!(rule.yields());
        rule.note(600_000, false, false);
        assert_eq!(rule.state(), ("idle", 0));
        // The next trial measures afresh: had the fast round trips above counted, spinning
        // would win it.
        rule.note(1, true, false);
        assert!(!rule.yields());
        assert_eq!(run_trial(&mut rule, 500_000, 600_000), Verdict::Yield);
    }
}
