// SPDX-License-Identifier: GPL-2.0

//! A log rate limit, as the kernel's `printk_ratelimit()` has it: at most
//! [`BURST`] lines in each [`INTERVAL_MS`] window; the first line of a new
//! window says how many were dropped in the windows before.

/// Lines allowed per window.
pub(crate) const BURST: u32 = 10;
/// The window, in milliseconds.
pub(crate) const INTERVAL_MS: u64 = 5_000;

/// What to do with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Print it; `dropped` lines were dropped since the last one printed.
    Print { dropped: u32 },
    /// Drop it.
    Drop,
}

/// The state of one limit.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// Start of the current window; `None` before the first line.
    start_ms: Option<u64>,
    printed: u32,
    dropped: u32,
}

impl RateLimit {
    pub(crate) const fn new() -> RateLimit {
        RateLimit {
            start_ms: None,
            printed: 0,
            dropped: 0,
        }
    }

    /// Decides for a line at `now_ms` (a monotonic clock).
    pub(crate) fn check(&mut self, now_ms: u64) -> Verdict {
        let new_window = match self.start_ms {
            None => true,
            // A clock that went backwards starts a window too.
            Some(start) => now_ms < start || now_ms - start >= INTERVAL_MS,
        };
        if new_window {
            self.start_ms = Some(now_ms);
            self.printed = 0;
        }
        if self.printed < BURST {
            self.printed += 1;
            let dropped = self.dropped;
            self.dropped = 0;
            Verdict::Print { dropped }
        } else {
            self.dropped = self.dropped.saturating_add(1);
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_drop_then_new_window() {
        let mut r = RateLimit::new();
        for i in 0..BURST {
            assert_eq!(r.check(1000 + u64::from(i)), Verdict::Print { dropped: 0 });
        }
        assert_eq!(r.check(1100), Verdict::Drop);
        assert_eq!(r.check(1000 + INTERVAL_MS - 1), Verdict::Drop);
        // The next window: the first line carries the count.
        assert_eq!(r.check(1000 + INTERVAL_MS), Verdict::Print { dropped: 2 });
        assert_eq!(
            r.check(1000 + INTERVAL_MS + 1),
            Verdict::Print { dropped: 0 }
        );
    }

    #[test]
    fn clock_going_back_starts_a_window() {
        let mut r = RateLimit::new();
        for _ in 0..BURST {
            r.check(50_000);
        }
        assert_eq!(r.check(50_001), Verdict::Drop);
        assert_eq!(r.check(10), Verdict::Print { dropped: 1 });
    }

    #[test]
    fn dropped_count_saturates() {
        let mut r = RateLimit::new();
        r.dropped = u32::MAX;
        r.printed = BURST;
        r.start_ms = Some(0);
        assert_eq!(r.check(1), Verdict::Drop);
        assert_eq!(r.check(INTERVAL_MS), Verdict::Print { dropped: u32::MAX });
    }
}
