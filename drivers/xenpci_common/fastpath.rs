// SPDX-License-Identifier: GPL-2.0

//! Which requests the backend may serve on the event channel's interrupt, and how much of the
//! interrupt's time one guest may take.
//!
//! The backend serves a guest's request in process context (a work item), where everything may
//! sleep. A configuration read, and a plain configuration write (one that changes nothing of
//! the engine's state and needs only configuration accesses: `conf::VirtualConfig::write_plain`,
//! the Interrupt Line for one), need nothing that sleeps (the engine is pure and the PCI core's
//! configuration accessors take a raw spinlock), so the backend may answer them in the
//! interrupt handler that announced them, saving the hand-over to the work item. Everything
//! else (the other writes, which may enable the device or change its power state, MSI and
//! MSI-X) stays in process context: [`fast_op`] admits any configuration access that decodes,
//! and the engine says whether a write is plain.
//!
//! Guests control how often their requests come, so the time they may take in interrupt
//! context is bounded: one [`Budget`] for the backend's guests together lets requests be
//! served there for about [`BUDGET_NS`] in each window of [`WINDOW_NS`] (each served request
//! is charged from the start of the handler to its end, and one admitted just under the
//! budget may end past it); the rest of the window, they go to the work item like any other
//! request, where the scheduler shares the CPUs fairly.

use super::pciif::{AccessSize, RawOp, Request};

/// The window of the interrupt-time budget, in nanoseconds.
pub(crate) const WINDOW_NS: u64 = 10_000_000;
/// Interrupt time the guests' requests may take in each window, in nanoseconds (a fifth of
/// one CPU).
pub(crate) const BUDGET_NS: u64 = 2_000_000;

/// A request the interrupt may serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FastOp {
    /// A configuration read.
    Read { offset: u16, size: AccessSize },
    /// A configuration write, served on the interrupt only if it is plain.
    Write {
        offset: u16,
        size: AccessSize,
        value: u32,
    },
}

/// The request `op`, if it may be served on the interrupt: a configuration read or write that
/// decodes. Anything else, a malformed request included, is left to the work item, which
/// answers it with the same rules as ever.
pub(crate) fn fast_op(op: &RawOp) -> Option<FastOp> {
    match Request::decode(op).ok()? {
        Request::ConfRead { offset, size, .. } => Some(FastOp::Read { offset, size }),
        Request::ConfWrite {
            offset,
            size,
            value,
            ..
        } => Some(FastOp::Write {
            offset,
            size,
            value,
        }),
        _ => None,
    }
}

/// An interrupt-time budget (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Start of the current window; `None` before the first request.
    start_ns: Option<u64>,
    /// Interrupt time used in the current window.
    used_ns: u64,
}

impl Budget {
    pub(crate) const fn new() -> Budget {
        Budget {
            start_ns: None,
            used_ns: 0,
        }
    }

    /// Whether a request announced at `now_ns` (a monotonic clock) may be served on the
    /// interrupt.
    pub(crate) fn admit(&mut self, now_ns: u64) -> bool {
        let new_window = match self.start_ns {
            None => true,
            // A time before the window's start (another CPU's clock, read before the budget
            // was locked) is inside the window: the budget is not renewed for it.
            Some(start) => now_ns.checked_sub(start).is_some_and(|d| d >= WINDOW_NS),
        };
        if new_window {
            self.start_ns = Some(now_ns);
            self.used_ns = 0;
        }
        self.used_ns < BUDGET_NS
    }

    /// Charges `ns` nanoseconds of interrupt time spent serving an admitted request.
    pub(crate) fn charge(&mut self, ns: u64) {
        self.used_ns = self.used_ns.saturating_add(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::super::pciif::{Command, RawOp};
    use super::*;

    fn read(offset: i32, size: i32) -> RawOp {
        RawOp::conf_read(0, 0, 0, offset, size)
    }

    fn with_cmd(cmd: u32) -> RawOp {
        RawOp { cmd, ..read(0, 4) }
    }

    #[test]
    fn only_well_formed_config_accesses_are_fast() {
        let r = |offset, size| Some(FastOp::Read { offset, size });
        assert_eq!(fast_op(&read(0, 4)), r(0, AccessSize::Four));
        assert_eq!(fast_op(&read(0x3c, 1)), r(0x3c, AccessSize::One));
        assert_eq!(fast_op(&read(0x3e, 2)), r(0x3e, AccessSize::Two));
        assert_eq!(
            fast_op(&RawOp::conf_write(0, 0, 0, 0x3c, 1, 5)),
            Some(FastOp::Write {
                offset: 0x3c,
                size: AccessSize::One,
                value: 5
            })
        );
        // MSI and MSI-X, unknown commands go to the work item.
        assert_eq!(fast_op(&RawOp::enable_msi(0, 0, 0)), None);
        assert_eq!(fast_op(&RawOp::disable_msix(0, 0, 0)), None);
        assert_eq!(fast_op(&with_cmd(Command::AerDetected.raw())), None);
        assert_eq!(fast_op(&with_cmd(99)), None);
        // Malformed accesses too: the work item answers them with their error.
        assert_eq!(fast_op(&read(0, 3)), None);
        assert_eq!(fast_op(&read(1, 4)), None);
        assert_eq!(fast_op(&read(4096, 4)), None);
        assert_eq!(fast_op(&read(-4, 4)), None);
        assert_eq!(fast_op(&RawOp::conf_write(0, 0, 0, 0x3d, 2, 5)), None);
        assert_eq!(fast_op(&RawOp::conf_write(0, 0, 0, 0x3c, 3, 5)), None);
    }

    #[test]
    fn the_budget_is_spent_then_renewed_with_the_window() {
        let mut b = Budget::new();
        let t = 5_000_000_000;
        let mut now = t;
        let mut served = 0;
        while b.admit(now) {
            b.charge(300_000);
            now += 1_000;
            served += 1;
        }
        // 2 ms of 0.3 ms services: the seventh crosses the budget, the eighth is refused.
        assert_eq!(served, 7);
        assert!(!b.admit(t + WINDOW_NS - 1));
        assert!(b.admit(t + WINDOW_NS));
    }

    #[test]
    fn an_earlier_time_does_not_renew_the_budget() {
        let mut b = Budget::new();
        assert!(b.admit(1_000_000_000));
        b.charge(u64::MAX);
        assert!(!b.admit(1_000_000_001));
        // A CPU whose clock read came before the window's start.
        assert!(!b.admit(999_999_999));
        assert!(!b.admit(0));
        assert!(b.admit(1_000_000_000 + WINDOW_NS));
    }

    #[test]
    fn an_idle_guest_gets_the_whole_budget() {
        let mut b = Budget::new();
        assert!(b.admit(0));
        b.charge(BUDGET_NS - 1);
        assert!(b.admit(1));
        b.charge(1);
        assert!(!b.admit(2));
    }
}
