// SPDX-License-Identifier: GPL-2.0

//! Per-device request statistics of the backend, read from debugfs: requests by command,
//! error answers by code, denied writes, a histogram of the time each request took to serve,
//! and one of the time it waited to be served. The glue records and locks; this module counts
//! and formats.
//!
//! The file reads, one line each (`N` a decimal count):
//!
//! ```text
//! requests conf_read=N conf_write=N enable_msi=N disable_msi=N enable_msix=N disable_msix=N other=N
//! errors dev_not_found=N invalid_offset=N access_denied=N not_implemented=N op_failed=N errno=N
//! denied_writes N
//! service_us <1=N <2=N <4=N ... <1048576=N >=1048576=N
//! service_us_p50 <B
//! service_us_p99 <B
//! wait_us <1=N <2=N <4=N ... <1048576=N >=1048576=N
//! wait_us_p50 <B
//! wait_us_p99 <B
//! on_interrupt N
//! on_interrupt_writes N
//! watched_answers N
//! ```
//!
//! `wait_us` is the time from the event that announced a request (or from the backend's own
//! re-queueing of a request flagged while the channel was masked) to the start of its service:
//! what handing the request from the event channel's interrupt to process context costs.
//! `on_interrupt` counts the requests served on the interrupt itself (see `fastpath`), with no
//! hand-over: they are in the other counts too, with a wait under 1 µs; `on_interrupt_writes`
//! the configuration writes among them. `watched_answers` counts the answers the frontend was
//! watching for when they were published (`_XEN_PCIF_watching`, see `pciif`), which the backend
//! did not signal.
//!
//! An error answer is counted under the name `pciif.h` gives its number (-1 to -5), whatever
//! the command: the guest cannot tell them apart either (an `enable_msix` refused with `-EIO`
//! reads as `op_failed`); any other negative answer (an errno of the MSI-X commands) counts as
//! `errno`. A percentile line names the bucket holding it (`<B`: under `B` µs; `>=1048576`; `-`
//! before the first request).

use core::fmt;

use super::pciif::Command;

/// The commands counted apart, in the order printed; anything else counts as `other`.
const COMMANDS: [Command; 6] = [
    Command::ConfRead,
    Command::ConfWrite,
    Command::EnableMsi,
    Command::DisableMsi,
    Command::EnableMsix,
    Command::DisableMsix,
];

/// The error answers -1 to -5 by their `pciif.h` names, then every other negative answer.
const ERRORS: [&str; 6] = [
    "dev_not_found",
    "invalid_offset",
    "access_denied",
    "not_implemented",
    "op_failed",
    "errno",
];

/// Histogram buckets: `[0, 1)` µs, then `[2^(k-1), 2^k)` µs for `k` in `1..BUCKETS - 1`, and
/// the last one from `2^(BUCKETS - 2)` µs (about a second) up.
pub(crate) const BUCKETS: usize = 22;

/// The statistics of one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Requests by command ([`COMMANDS`], then other).
    requests: [u64; COMMANDS.len() + 1],
    /// Error answers ([`ERRORS`]).
    errors: [u64; ERRORS.len()],
    /// Guest writes the configuration-space engine dropped (permissive off, no field).
    denied_writes: u64,
    /// Requests by service time.
    service: Histogram,
    /// Requests by the time they waited for service.
    wait: Histogram,
    /// Requests served on the event channel's interrupt.
    on_interrupt: u64,
    /// Of those, configuration writes.
    on_interrupt_writes: u64,
    /// Answers not signalled: the frontend was watching for them.
    watched_answers: u64,
}

impl Stats {
    /// No request yet.
    pub(crate) const fn new() -> Self {
        Self {
            requests: [0; COMMANDS.len() + 1],
            errors: [0; ERRORS.len()],
            denied_writes: 0,
            service: Histogram::new(),
            wait: Histogram::new(),
            on_interrupt: 0,
            on_interrupt_writes: 0,
            watched_answers: 0,
        }
    }

    /// Counts a request with raw command `cmd`, answered `err`, served in `ns` nanoseconds
    /// after waiting `wait_ns` nanoseconds for service.
    pub(crate) fn record(&mut self, cmd: u32, err: i32, ns: u64, wait_ns: u64) {
        let i = COMMANDS
            .iter()
            .position(|&c| c.raw() == cmd)
            .unwrap_or(COMMANDS.len());
        bump(&mut self.requests[i]);
        if err < 0 {
            // CAST: `-err` is in 1..=5 in the first arm.
            let e = if err >= -5 {
                (-err - 1) as usize
            } else {
                ERRORS.len() - 1
            };
            bump(&mut self.errors[e]);
        }
        self.service.record(ns);
        self.wait.record(wait_ns);
    }

    /// Notes that the request just recorded, with raw command `cmd`, was served on the
    /// interrupt.
    pub(crate) fn on_interrupt(&mut self, cmd: u32) {
        bump(&mut self.on_interrupt);
        if cmd == Command::ConfWrite.raw() {
            bump(&mut self.on_interrupt_writes);
        }
    }

    /// Counts an answer published while the frontend watched for it (not signalled).
    pub(crate) fn watched(&mut self) {
        bump(&mut self.watched_answers);
    }

    /// Counts a guest write the engine dropped.
    pub(crate) fn denied_write(&mut self) {
        bump(&mut self.denied_writes);
    }

    /// Requests counted, all commands.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.iter().fold(0, |a, &n| a.saturating_add(n))
    }
}

/// Counts of durations in power-of-two buckets of microseconds ([`BUCKETS`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Histogram([u64; BUCKETS]);

impl Histogram {
    /// Nothing counted.
    const fn new() -> Self {
        Self([0; BUCKETS])
    }

    /// Counts a duration of `ns` nanoseconds.
    fn record(&mut self, ns: u64) {
        bump(&mut self.0[bucket(ns)]);
    }

    /// The bucket holding the `per_mille`-th per mille (at most 1000) of the durations, if any.
    fn quantile(&self, per_mille: u64) -> Option<usize> {
        let total = self.0.iter().fold(0u64, |a, &n| a.saturating_add(n));
        if total == 0 {
            return None;
        }
        // The rank of the sample, 1-based: ceil(total * per_mille / 1000), at least 1, in 64
        // bits (no 128-bit division in the kernel): the two parts cannot overflow.
        let per_mille = per_mille.min(1000);
        let rank = ((total / 1000) * per_mille)
            .saturating_add(((total % 1000) * per_mille).div_ceil(1000))
            .max(1);
        let mut seen = 0u64;
        self.0.iter().position(|&n| {
            seen = seen.saturating_add(n);
            seen >= rank
        })
    }

    /// Writes the histogram's three lines, named `name`: the buckets, the median and the 99th
    /// percentile.
    fn write_lines(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        write!(f, "{name}")?;
        for (k, n) in self.0.iter().enumerate() {
            write!(f, " {}={n}", Label(k))?;
        }
        writeln!(f)?;
        for (p, per_mille) in [("p50", 500), ("p99", 990)] {
            match self.quantile(per_mille) {
                Some(k) => writeln!(f, "{name}_{p} {}", Label(k))?,
                None => writeln!(f, "{name}_{p} -")?,
            }
        }
        Ok(())
    }
}

/// Adds one, saturating.
fn bump(n: &mut u64) {
    *n = n.saturating_add(1);
}

/// The bucket of `us` microseconds in a histogram of `buckets` buckets whose bounds double
/// from `first_us` on: `k` for under `first_us << k` µs, the last one for the longer times.
/// The backend's times here and the frontend's preempted spins (`roundtrip`) use it.
pub(crate) fn pow2_bucket(us: u64, first_us: u64, buckets: usize) -> usize {
    // Under `first_us << k` exactly when the quotient is under `1 << k`.
    let q = us.checked_div(first_us).unwrap_or(u64::MAX);
    // CAST: at most 64.
    let k = (u64::BITS - q.leading_zeros()) as usize;
    k.min(buckets.saturating_sub(1))
}

/// The bucket of `ns` nanoseconds.
fn bucket(ns: u64) -> usize {
    pow2_bucket(ns / 1000, 1, BUCKETS)
}

/// A bucket's label: its upper bound, or the lower one for the last.
struct Label(usize);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CAST: bucket numbers are below `BUCKETS`.
        let k = self.0 as u32;
        if self.0 >= BUCKETS - 1 {
            write!(f, ">={}", 1u64 << (BUCKETS - 2))
        } else {
            write!(f, "<{}", 1u64.checked_shl(k).unwrap_or(0))
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "requests")?;
        for (c, n) in COMMANDS.iter().zip(self.requests.iter()) {
            write!(f, " {}={n}", c.name())?;
        }
        writeln!(f, " other={}", self.requests[COMMANDS.len()])?;
        write!(f, "errors")?;
        for (name, n) in ERRORS.iter().zip(self.errors.iter()) {
            write!(f, " {name}={n}")?;
        }
        writeln!(f)?;
        writeln!(f, "denied_writes {}", self.denied_writes)?;
        self.service.write_lines(f, "service_us")?;
        self.wait.write_lines(f, "wait_us")?;
        writeln!(f, "on_interrupt {}", self.on_interrupt)?;
        writeln!(f, "on_interrupt_writes {}", self.on_interrupt_writes)?;
        writeln!(f, "watched_answers {}", self.watched_answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;

    #[test]
    fn buckets_are_powers_of_two_microseconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(1_999), 1);
        assert_eq!(bucket(2_000), 2);
        assert_eq!(bucket(3_999), 2);
        assert_eq!(bucket(4_000), 3);
        assert_eq!(bucket((1 << 19) * 1000 - 1), 19);
        assert_eq!(bucket((1 << 20) * 1000 - 1), 20);
        assert_eq!(bucket((1 << 20) * 1000), 21);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn counts_by_command_and_error() {
        let mut s = Stats::new();
        s.record(0, 0, 500, 0);
        s.record(0, -2, 500, 0);
        s.record(1, -3, 1_500, 0);
        s.record(4, -22, 2_500, 0);
        s.record(4, -5, 2_500, 0);
        s.record(99, -4, 10, 0);
        s.record(6, -4, 10, 0);
        s.denied_write();
        s.denied_write();
        assert_eq!(s.requests, [2, 1, 0, 0, 2, 0, 2]);
        assert_eq!(s.errors, [0, 1, 1, 2, 1, 1]);
        assert_eq!(s.denied_writes, 2);
        assert_eq!(s.requests(), 7);
        assert_eq!(s.service.0.iter().sum::<u64>(), 7);
        assert_eq!(s.wait.0.iter().sum::<u64>(), 7);
        assert_eq!(&s.service.0[..3], &[4, 1, 2]);
    }

    #[test]
    fn the_text_lists_every_count() {
        let mut s = Stats::new();
        s.record(0, 0, 500, 40_000);
        s.record(1, -1, 3_000, 70_000);
        s.record(0, 0, 200, 0);
        s.on_interrupt(0);
        // The write above, served on the interrupt (a count of the text only).
        s.on_interrupt(1);
        s.denied_write();
        s.watched();
        let text = format!("{s}");
        let lines: std::vec::Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{text}");
        assert_eq!(
            lines[0],
            "requests conf_read=2 conf_write=1 enable_msi=0 disable_msi=0 enable_msix=0 \
             disable_msix=0 other=0"
        );
        assert_eq!(
            lines[1],
            "errors dev_not_found=1 invalid_offset=0 access_denied=0 not_implemented=0 \
             op_failed=0 errno=0"
        );
        assert_eq!(lines[2], "denied_writes 1");
        let mut want = String::from("service_us <1=2 <2=0 <4=1");
        for k in 3..BUCKETS - 1 {
            want += &format!(" <{}=0", 1u64 << k);
        }
        want += " >=1048576=0";
        assert_eq!(lines[3], want);
        assert_eq!(lines[4], "service_us_p50 <1");
        assert_eq!(lines[5], "service_us_p99 <4");
        // The waits, apart from the service times: 40 µs, 70 µs and none.
        let mut want = String::from("wait_us <1=1");
        for k in 1..BUCKETS - 1 {
            let n = u32::from(k == 6 || k == 7);
            want += &format!(" <{}={n}", 1u64 << k);
        }
        want += " >=1048576=0";
        assert_eq!(lines[6], want);
        assert_eq!(lines[7], "wait_us_p50 <64");
        assert_eq!(lines[8], "wait_us_p99 <128");
        assert_eq!(lines[9], "on_interrupt 2");
        assert_eq!(lines[10], "on_interrupt_writes 1");
        assert_eq!(lines[11], "watched_answers 1");
    }

    #[test]
    fn percentiles_name_the_bucket_holding_them() {
        let mut s = Stats::new();
        assert_eq!(s.service.quantile(500), None);
        assert!(format!("{s}").contains("service_us_p50 -\nservice_us_p99 -\n"));
        assert!(
            format!("{s}").ends_with("on_interrupt 0\non_interrupt_writes 0\nwatched_answers 0\n")
        );
        // 98 fast, 2 slow: p50 fast, p99 slow.
        for _ in 0..98 {
            s.record(0, 0, 100, 0);
        }
        s.record(0, 0, 50_000, 0);
        s.record(0, 0, u64::MAX, 0);
        assert_eq!(s.service.quantile(500), Some(0));
        assert_eq!(s.service.quantile(980), Some(0));
        assert_eq!(s.service.quantile(990), Some(bucket(50_000)));
        assert_eq!(s.service.quantile(1000), Some(BUCKETS - 1));
        // One sample: every percentile is it.
        let mut one = Stats::new();
        one.record(0, 0, 5_000, 0);
        assert_eq!(one.service.quantile(500), Some(3));
        assert_eq!(one.service.quantile(990), Some(3));
    }

    #[test]
    fn counts_saturate_and_clear() {
        let mut s = Stats::new();
        s.requests[0] = u64::MAX;
        s.record(0, 0, 0, 0);
        assert_eq!(s.requests[0], u64::MAX);
        assert_eq!(s.requests(), u64::MAX);
        s = Stats::new();
        assert_eq!(s, Stats::default());
    }
}
