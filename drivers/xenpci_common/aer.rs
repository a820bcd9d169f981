// SPDX-License-Identifier: GPL-2.0

//! PCIe AER forwarding: the backend asks the guest's drivers to take part in dom0's error
//! recovery of a device the guest holds, one step at a time, over the `aer_op` slot of the
//! shared page (`struct xen_pcie_aer_op`, `pciif.h`).
//!
//! The exchange, the reverse of a configuration request:
//!
//! 1. The frontend sets `_XEN_PCIB_AERHANDLER` in `flags` once, when it grants the page: it
//!    takes AER requests.
//! 2. The backend (in dom0's recovery, one step of it) writes `aer_op`: `cmd` =
//!    `XEN_PCI_OP_aer_*`, `err` = the channel state (meaningful for `aer_detected` only),
//!    `domain`/`bus`/`devfn` = the device as the guest sees it; sets `_XEN_PCIB_active` and
//!    signals the event channel.
//! 3. The frontend, in process context, calls the matching handler of the guest driver bound to
//!    that device, writes the driver's `pci_ers_result_t` into `aer_op.err`, clears
//!    `_XEN_PCIB_active` and signals.
//! 4. The backend reads `aer_op.err` once the bit is clear, or gives up after
//!    [`AER_TIMEOUT_MS`].
//!
//! This file holds the pure parts of both ends: the typed values (channel state, result,
//! step), the byte image of `aer_op`, the frontend's decoding of a request and the answer it
//! gives, the backend's wait ([`wait_answer`]) and what dom0's recovery gets from each outcome
//! ([`backend_outcome`]), after the C drivers' rules where they are sound.
//!
//! The backend posts a request only while `_XEN_PCIB_active` is clear: it never withdraws
//! one (C clears the bit at its timeout, and a late answer to the withdrawn request could then
//! be read as the answer to the next one). A guest that does not answer keeps the bit set, and
//! its later steps are not posted at all ([`Delivery::Busy`]): one unresponsive guest costs
//! dom0's recovery one timeout, not one per step.

use core::fmt;

use super::bdf::Bdf;
use super::pciif::{AerOp, Command, AER_OP_SIZE};

/// How long the backend waits for the guest's answer to one step, in milliseconds.
///
/// C waits 300 s. The wait holds dom0's recovery of the whole hierarchy below the root port (its
/// other devices, dom0's own included, wait for it), and the device lock of the device, which
/// keeps `pciback` from being unbound from it. A guest's answer takes its work item, the
/// driver's handler and that handler's configuration accesses (each a round trip bounded by 2 s
/// in the frontend): a guest that has not answered in 60 s is treated as one that does not
/// answer at all. The wait ends at once when the guest disconnects (C keeps waiting).
pub(crate) const AER_TIMEOUT_MS: u64 = 60_000;

/// The longest single sleep of the backend's wait, in milliseconds: the guest's event wakes
/// the wait, and a wake-up lost between a check and the sleep costs at most this.
pub(crate) const AER_WAIT_SLICE_MS: u64 = 100;

/// `pci_channel_state_t`: the state of the device's link to the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ChannelState {
    /// `pci_channel_io_normal`: I/O works.
    Normal = 1,
    /// `pci_channel_io_frozen`: I/O to the device is blocked.
    Frozen = 2,
    /// `pci_channel_io_perm_failure`: the device is dead.
    PermFailure = 3,
}

impl ChannelState {
    /// The value of a `pci_channel_state_t`, [`None`] for any other number.
    pub(crate) const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Normal),
            2 => Some(Self::Frozen),
            3 => Some(Self::PermFailure),
            _ => None,
        }
    }

    /// The C value.
    pub(crate) const fn raw(self) -> u32 {
        self as u32
    }
}

/// `pci_ers_result_t`: a driver's vote in a recovery step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum ErsResult {
    /// `PCI_ERS_RESULT_NONE`: no vote (no handler, or it cannot tell).
    None = 1,
    /// `PCI_ERS_RESULT_CAN_RECOVER`: recoverable without a reset.
    CanRecover = 2,
    /// `PCI_ERS_RESULT_NEED_RESET`: the slot must be reset.
    NeedReset = 3,
    /// `PCI_ERS_RESULT_DISCONNECT`: the device cannot be recovered.
    Disconnect = 4,
    /// `PCI_ERS_RESULT_RECOVERED`: the driver works again.
    Recovered = 5,
    /// `PCI_ERS_RESULT_NO_AER_DRIVER`: the PCI core's own verdict for a device whose driver has
    /// no handlers; never a driver's vote.
    NoAerDriver = 6,
}

impl ErsResult {
    /// The value of a `pci_ers_result_t`, [`None`] for any other number.
    pub(crate) const fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            1 => Some(Self::None),
            2 => Some(Self::CanRecover),
            3 => Some(Self::NeedReset),
            4 => Some(Self::Disconnect),
            5 => Some(Self::Recovered),
            6 => Some(Self::NoAerDriver),
            _ => None,
        }
    }

    /// The C value.
    pub(crate) const fn raw(self) -> i32 {
        self as i32
    }
}

/// One step of the PCI core's error recovery (a callback of `struct pci_error_handlers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AerStep {
    /// `error_detected`, with the channel state.
    ErrorDetected(ChannelState),
    /// `mmio_enabled`.
    MmioEnabled,
    /// `slot_reset`.
    SlotReset,
    /// `resume`.
    Resume,
}

impl AerStep {
    /// The `aer_op.cmd` of the step.
    pub(crate) const fn command(self) -> Command {
        match self {
            Self::ErrorDetected(_) => Command::AerDetected,
            Self::MmioEnabled => Command::AerMmio,
            Self::SlotReset => Command::AerSlotReset,
            Self::Resume => Command::AerResume,
        }
    }

    /// The `aer_op.err` the backend posts: the channel state for `error_detected`,
    /// `pci_channel_io_normal` for the others (as C).
    pub(crate) const fn posted_err(self) -> i32 {
        let state = match self {
            Self::ErrorDetected(state) => state,
            _ => ChannelState::Normal,
        };
        // CAST: 1..=3.
        state.raw() as i32
    }

    /// What the backend gives dom0's recovery for the step when the guest gives no vote: the
    /// results of C `xen-pciback` (`CAN_RECOVER` for `error_detected`, `RECOVERED` for the
    /// others). For `error_detected` and `mmio_enabled` the PCI core starts from exactly these,
    /// so they change nothing (the same as no vote).
    pub(crate) const fn default_result(self) -> ErsResult {
        match self {
            Self::ErrorDetected(_) => ErsResult::CanRecover,
            _ => ErsResult::Recovered,
        }
    }

    /// The C name of the callback, for logs.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::ErrorDetected(_) => "error_detected",
            Self::MmioEnabled => "mmio_enabled",
            Self::SlotReset => "slot_reset",
            Self::Resume => "resume",
        }
    }
}

impl fmt::Display for AerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// The aer_op slot
// ---------------------------------------------------------------------------

fn rd_u32(b: &[u8; AER_OP_SIZE], off: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = b.get(off..off + 4) {
        w.copy_from_slice(src);
    }
    u32::from_ne_bytes(w)
}

fn wr_u32(b: &mut [u8; AER_OP_SIZE], off: usize, v: u32) {
    if let Some(dst) = b.get_mut(off..off + 4) {
        dst.copy_from_slice(&v.to_ne_bytes());
    }
}

impl AerOp {
    /// Backend: the request for `step` about the device the guest sees at `guest`.
    pub(crate) fn request(step: AerStep, guest: Bdf) -> AerOp {
        AerOp {
            cmd: step.command().raw(),
            err: step.posted_err(),
            domain: u32::from(guest.domain()),
            bus: u32::from(guest.bus()),
            devfn: u32::from(guest.devfn()),
        }
    }

    /// Decodes the native-endian bytes of a `struct xen_pcie_aer_op` (copied out of the shared
    /// page at once, so that the other domain cannot change a field between check and use).
    pub(crate) fn from_bytes(b: &[u8; AER_OP_SIZE]) -> AerOp {
        AerOp {
            cmd: rd_u32(b, 0),
            // CAST: the bits of the C `int32_t`.
            err: rd_u32(b, 4) as i32,
            domain: rd_u32(b, 8),
            bus: rd_u32(b, 12),
            devfn: rd_u32(b, 16),
        }
    }

    /// Encodes as the native-endian bytes of a `struct xen_pcie_aer_op`.
    pub(crate) fn to_bytes(self) -> [u8; AER_OP_SIZE] {
        let mut b = [0u8; AER_OP_SIZE];
        wr_u32(&mut b, 0, self.cmd);
        // CAST: the bits of the C `int32_t`.
        wr_u32(&mut b, 4, self.err as u32);
        wr_u32(&mut b, 8, self.domain);
        wr_u32(&mut b, 12, self.bus);
        wr_u32(&mut b, 16, self.devfn);
        b
    }
}

/// Why the frontend cannot act on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AerRequestError {
    /// `cmd` is not one of the four AER commands.
    Command(u32),
    /// The address is wider than PCI allows.
    Address,
    /// `aer_detected` with a channel state that does not exist.
    State(i32),
}

impl fmt::Display for AerRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(c) => write!(f, "unknown AER command {c}"),
            Self::Address => f.write_str("bad device address"),
            Self::State(s) => write!(f, "unknown channel state {s}"),
        }
    }
}

/// Frontend: the step and the (guest) device a request names.
///
/// Unlike C, which hands any number to the driver as a channel state, an `aer_detected` with a
/// state other than 1..=3 is refused: the driver is not called.
pub(crate) fn decode_request(op: &AerOp) -> Result<(AerStep, Bdf), AerRequestError> {
    let step = match Command::try_from(op.cmd) {
        Ok(Command::AerDetected) => {
            let state = u32::try_from(op.err)
                .ok()
                .and_then(ChannelState::from_raw)
                .ok_or(AerRequestError::State(op.err))?;
            AerStep::ErrorDetected(state)
        }
        Ok(Command::AerMmio) => AerStep::MmioEnabled,
        Ok(Command::AerSlotReset) => AerStep::SlotReset,
        Ok(Command::AerResume) => AerStep::Resume,
        _ => return Err(AerRequestError::Command(op.cmd)),
    };
    let addr = Bdf::from_raw(op.domain, op.bus, op.devfn).ok_or(AerRequestError::Address)?;
    Ok((step, addr))
}

// ---------------------------------------------------------------------------
// Frontend: the answer
// ---------------------------------------------------------------------------

/// What the guest driver of the device did with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DriverOutcome {
    /// The request could not be handed to a driver: no device at the address, the device is
    /// not behind this connection, or the request itself is bad.
    NoDevice,
    /// No driver is bound to the device.
    NoDriver,
    /// The driver has no `error_detected` handler (C then calls none of its handlers).
    NoErrorDetected,
    /// The driver has `error_detected` but no handler for this step.
    NoHandler,
    /// The handler voted (`error_detected`, `mmio_enabled`, `slot_reset`).
    Voted(ErsResult),
    /// The `resume` handler ran (it returns nothing).
    Resumed,
    /// The step came out of the PCI core's order for the device ([`StepOrder`]): no handler was
    /// called.
    OutOfOrder,
}

/// How many devices of one connection may be in a recovery at once (see [`StepOrder`]).
pub(crate) const RECOVERING_MAX: usize = 32;

/// Where the relayed recovery of one device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Detected,
    MmioEnabled,
    SlotReset,
}

/// Frontend: the order of the steps the backend relays, per device.
///
/// The PCI core calls a driver's error handlers in one order (`error_detected`, then
/// `mmio_enabled` and `slot_reset` if it takes those steps, then `resume`; a recovery that
/// fails ends with an `error_detected` of a permanent failure instead, and the next error starts
/// again at `error_detected`), and
/// drivers rely on it: a lone `resume` would make a network driver set up interrupts it already
/// has. The backend is the frontend's peer, not the PCI core: a step it relays out of that
/// order is not passed to the driver. Steps of several devices may interleave (dom0's recovery
/// takes each step on every device below the port before the next step); at most
/// [`RECOVERING_MAX`] devices are tracked between their `error_detected` and the end of their
/// recovery, and an `error_detected` beyond them is refused (a permanent failure's needs no
/// place). A device removed in the middle of its recovery keeps its place until the connection
/// ends or its address is recovered again.
#[derive(Clone, Debug)]
pub(crate) struct StepOrder {
    devs: [Option<(Bdf, Phase)>; RECOVERING_MAX],
}

impl Default for StepOrder {
    fn default() -> Self {
        Self::new()
    }
}

impl StepOrder {
    /// No device in a recovery.
    pub(crate) const fn new() -> Self {
        Self {
            devs: [None; RECOVERING_MAX],
        }
    }

    /// Whether `step` of the device `addr` comes in order; if it does, it is noted.
    pub(crate) fn admit(&mut self, addr: Bdf, step: AerStep) -> bool {
        let at = self
            .devs
            .iter()
            .position(|d| matches!(d, Some((a, _)) if *a == addr));
        let phase = at
            .and_then(|i| self.devs.get(i).copied().flatten())
            .map(|(_, p)| p);
        let (slot, next) = match (step, at, phase) {
            // The end of a failed recovery (`pcie_do_recovery()` tells every driver the device
            // is lost, and calls nothing more): no later step is valid, the place is free.
            (AerStep::ErrorDetected(ChannelState::PermFailure), Some(i), _) => (i, None),
            (AerStep::ErrorDetected(ChannelState::PermFailure), None, _) => return true,
            // A new recovery of the device.
            (AerStep::ErrorDetected(_), Some(i), _) => (i, Some(Phase::Detected)),
            (AerStep::ErrorDetected(_), None, _) => {
                match self.devs.iter().position(Option::is_none) {
                    Some(i) => (i, Some(Phase::Detected)),
                    None => return false,
                }
            }
            (AerStep::MmioEnabled, Some(i), Some(Phase::Detected)) => (i, Some(Phase::MmioEnabled)),
            (AerStep::SlotReset, Some(i), Some(Phase::Detected | Phase::MmioEnabled)) => {
                (i, Some(Phase::SlotReset))
            }
            (AerStep::Resume, Some(i), Some(_)) => (i, None),
            _ => return false,
        };
        if let Some(d) = self.devs.get_mut(slot) {
            *d = next.map(|p| (addr, p));
        }
        true
    }
}

/// Frontend: the `aer_op.err` to answer, as C `pcifront`: `NONE` unless the driver has
/// `error_detected`; then its vote, `RECOVERED` for a missing `mmio_enabled` or `slot_reset`,
/// and `NONE` for `resume`.
pub(crate) fn frontend_answer(step: AerStep, outcome: DriverOutcome) -> ErsResult {
    match (step, outcome) {
        (AerStep::Resume, _) => ErsResult::None,
        (_, DriverOutcome::Voted(vote)) => vote,
        (AerStep::MmioEnabled | AerStep::SlotReset, DriverOutcome::NoHandler) => {
            ErsResult::Recovered
        }
        _ => ErsResult::None,
    }
}

// ---------------------------------------------------------------------------
// Backend: the wait and the outcome
// ---------------------------------------------------------------------------

/// The backend's view of the shared page during the wait.
pub(crate) trait AerWait {
    /// Whether `_XEN_PCIB_active` is still set; [`None`] once the guest disconnected (the page
    /// is gone).
    fn active(&mut self) -> Option<bool>;
    /// Sleeps for at most `ms` milliseconds, or until woken; `false` if a signal interrupted it.
    fn sleep(&mut self, ms: u64) -> bool;
    /// A monotonic clock, in milliseconds.
    fn now_ms(&mut self) -> u64;
}

/// How the wait for the guest's answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// The guest cleared `_XEN_PCIB_active`: read its answer.
    Answered,
    /// The guest disconnected meanwhile.
    Disconnected,
    /// No answer within [`AER_TIMEOUT_MS`] (the request stays posted).
    TimedOut,
    /// A signal ended the wait (the request stays posted).
    Interrupted,
}

/// Waits for the guest to clear `_XEN_PCIB_active`, in slices of at most
/// [`AER_WAIT_SLICE_MS`], for at most [`AER_TIMEOUT_MS`].
pub(crate) fn wait_answer(page: &mut impl AerWait) -> WaitEnd {
    let start = page.now_ms();
    loop {
        match page.active() {
            None => return WaitEnd::Disconnected,
            Some(false) => return WaitEnd::Answered,
            Some(true) => {}
        }
        let elapsed = page.now_ms().saturating_sub(start);
        if elapsed >= AER_TIMEOUT_MS {
            return WaitEnd::TimedOut;
        }
        if !page.sleep(AER_WAIT_SLICE_MS.min(AER_TIMEOUT_MS - elapsed)) {
            return WaitEnd::Interrupted;
        }
    }
}

/// What became of one step's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The device is not exported to a guest.
    NotExported,
    /// It is exported, but the guest is not connected (no shared page).
    NotConnected,
    /// The guest has not set `_XEN_PCIB_AERHANDLER`.
    NoHandler,
    /// An earlier request is still unanswered (`_XEN_PCIB_active` set): not posted.
    Busy,
    /// Posted, and the guest answered `aer_op.err` with this.
    Answered(i32),
    /// Posted, and no answer came (timeout, signal, or disconnection).
    NoAnswer,
}

/// What the backend does once a step's request is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The result for dom0's recovery.
    pub(crate) result: ErsResult,
    /// Mark the guest as failed (C `kill_domain_by_device`: `aerState` = `aerfail` in the
    /// backend's xenstore directory).
    pub(crate) mark_failed: bool,
}

/// Backend: the guest's answer as a vote for dom0. The five votes a driver may give are taken
/// as they are; anything else (`NO_AER_DRIVER`, which only the PCI core gives, or a number that
/// is no result at all) counts as `NONE`, where C hands it to dom0's PCI core unchecked.
pub(crate) fn guest_vote(raw: i32) -> ErsResult {
    match ErsResult::from_raw(raw) {
        Some(ErsResult::NoAerDriver) | None => ErsResult::None,
        Some(vote) => vote,
    }
}

/// Backend: the result of a step for dom0's recovery, and whether the guest is marked failed,
/// as C `xen-pciback` decides:
///
/// - a device no guest holds gets the default result;
/// - a guest that is not connected is marked failed, at every step;
/// - a guest without an AER handler is marked failed at `error_detected` and `resume`; at
///   `mmio_enabled` and `slot_reset` C only logs ("should have been killed");
/// - a guest that does not answer gets the default result and is not marked (C's timeout);
/// - an answer is the guest's vote ([`guest_vote`]); `NONE` or `DISCONNECT` mark it failed; the
///   answer to `resume` is ignored.
pub(crate) fn backend_outcome(step: AerStep, delivery: Delivery) -> Outcome {
    let default = step.default_result();
    let (result, mark_failed) = match delivery {
        Delivery::NotExported | Delivery::Busy | Delivery::NoAnswer => (default, false),
        Delivery::NotConnected => (default, true),
        Delivery::NoHandler => (
            default,
            matches!(step, AerStep::ErrorDetected(_) | AerStep::Resume),
        ),
        Delivery::Answered(_) if step == AerStep::Resume => (default, false),
        Delivery::Answered(raw) => {
            let vote = guest_vote(raw);
            (
                vote,
                matches!(vote, ErsResult::None | ErsResult::Disconnect),
            )
        }
    };
    Outcome {
        result,
        mark_failed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::pciif::{OFFSET_AER_OP, SHARED_INFO_SIZE};
    use super::*;

    fn dev(domain: u16, bus: u8, slot: u8, func: u8) -> Bdf {
        Bdf::new(domain, bus, slot, func).unwrap()
    }

    #[test]
    fn steps_pass_in_the_pci_cores_order_only() {
        let (a, b) = (dev(0, 0, 1, 0), dev(0, 0, 2, 0));
        let detected = AerStep::ErrorDetected(ChannelState::Normal);
        let mut order = StepOrder::new();
        // Nothing before `error_detected`.
        for step in [AerStep::MmioEnabled, AerStep::SlotReset, AerStep::Resume] {
            assert!(!order.admit(a, step), "{step:?} first");
        }
        // The whole recovery, two devices interleaved as dom0's recovery walks them.
        for step in [
            detected,
            AerStep::MmioEnabled,
            AerStep::SlotReset,
            AerStep::Resume,
        ] {
            assert!(order.admit(a, step), "{step:?} of a");
            assert!(order.admit(b, step), "{step:?} of b");
        }
        // Ended: nothing but a new `error_detected`.
        assert!(!order.admit(a, AerStep::Resume));
        assert!(!order.admit(a, AerStep::SlotReset));
        // No step back, none twice.
        assert!(order.admit(a, detected));
        assert!(order.admit(a, AerStep::SlotReset));
        assert!(!order.admit(a, AerStep::MmioEnabled));
        assert!(!order.admit(a, AerStep::SlotReset));
        // A failed recovery ends with a permanent failure, after which no step but a new
        // `error_detected` is valid; the next error starts again.
        assert!(order.admit(a, AerStep::ErrorDetected(ChannelState::Frozen)));
        assert!(order.admit(a, AerStep::MmioEnabled));
        assert!(order.admit(a, AerStep::ErrorDetected(ChannelState::PermFailure)));
        assert!(!order.admit(a, AerStep::SlotReset));
        assert!(!order.admit(a, AerStep::Resume));
        assert!(order.admit(a, AerStep::ErrorDetected(ChannelState::Frozen)));
        assert!(order.admit(a, AerStep::MmioEnabled));
        assert!(order.admit(a, AerStep::Resume));
        // `resume` straight after `error_detected` (every driver voted recovered).
        assert!(order.admit(b, detected));
        assert!(order.admit(b, AerStep::Resume));
        // Another device's recovery is not this one's.
        assert!(order.admit(a, detected));
        assert!(!order.admit(b, AerStep::MmioEnabled));
    }

    #[test]
    fn step_order_tracks_a_bounded_number_of_devices() {
        let detected = AerStep::ErrorDetected(ChannelState::Normal);
        let mut order = StepOrder::new();
        let devs: std::vec::Vec<Bdf> = (0..=RECOVERING_MAX as u8)
            .map(|b| dev(0, b, 0, 0))
            .collect();
        for &d in &devs[..RECOVERING_MAX] {
            assert!(order.admit(d, detected));
        }
        let last = devs[RECOVERING_MAX];
        assert!(!order.admit(last, detected), "one device too many");
        assert!(!order.admit(last, AerStep::Resume));
        // A permanent failure needs no place, and frees the failed device's.
        let lost = AerStep::ErrorDetected(ChannelState::PermFailure);
        assert!(order.admit(last, lost));
        assert!(order.admit(devs[1], lost));
        assert!(order.admit(last, detected));
        assert!(!order.admit(devs[1], detected), "full again");
        assert!(order.admit(last, AerStep::Resume));
        // A device in a recovery again takes its own slot; one that ends frees its slot.
        assert!(order.admit(devs[0], detected));
        assert!(order.admit(devs[0], AerStep::Resume));
        assert!(order.admit(last, detected));
        assert!(order.admit(last, AerStep::Resume));
    }

    #[test]
    fn values_match_linux() {
        // include/linux/pci.h
        assert_eq!(ChannelState::Normal.raw(), 1);
        assert_eq!(ChannelState::Frozen.raw(), 2);
        assert_eq!(ChannelState::PermFailure.raw(), 3);
        let all = [
            ErsResult::None,
            ErsResult::CanRecover,
            ErsResult::NeedReset,
            ErsResult::Disconnect,
            ErsResult::Recovered,
            ErsResult::NoAerDriver,
        ];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.raw(), i as i32 + 1);
            assert_eq!(ErsResult::from_raw(r.raw()), Some(*r));
        }
        for raw in [0, 7, -1, i32::MIN, i32::MAX] {
            assert_eq!(ErsResult::from_raw(raw), None);
        }
        for raw in [0, 4, u32::MAX] {
            assert_eq!(ChannelState::from_raw(raw), None);
        }
        for s in [
            ChannelState::Normal,
            ChannelState::Frozen,
            ChannelState::PermFailure,
        ] {
            assert_eq!(ChannelState::from_raw(s.raw()), Some(s));
        }
    }

    #[test]
    fn steps_and_commands() {
        // include/xen/interface/io/pciif.h: XEN_PCI_OP_aer_*
        let frozen = AerStep::ErrorDetected(ChannelState::Frozen);
        assert_eq!(frozen.command().raw(), 6);
        assert_eq!(AerStep::Resume.command().raw(), 7);
        assert_eq!(AerStep::MmioEnabled.command().raw(), 8);
        assert_eq!(AerStep::SlotReset.command().raw(), 9);
        assert_eq!(frozen.posted_err(), 2);
        assert_eq!(
            AerStep::ErrorDetected(ChannelState::PermFailure).posted_err(),
            3
        );
        for s in [AerStep::MmioEnabled, AerStep::SlotReset, AerStep::Resume] {
            assert_eq!(s.posted_err(), 1);
        }
        assert_eq!(frozen.default_result(), ErsResult::CanRecover);
        assert_eq!(AerStep::MmioEnabled.default_result(), ErsResult::Recovered);
        assert_eq!(AerStep::SlotReset.default_result(), ErsResult::Recovered);
        assert_eq!(std::format!("{}", AerStep::SlotReset), "slot_reset");
    }

    #[test]
    fn aer_op_bytes() {
        let op = AerOp::request(
            AerStep::ErrorDetected(ChannelState::Frozen),
            dev(1, 2, 3, 4),
        );
        assert_eq!(
            (op.cmd, op.err, op.domain, op.bus, op.devfn),
            (6, 2, 1, 2, (3 << 3) | 4)
        );
        let b = op.to_bytes();
        // The byte image is the C struct's: five native-endian 32-bit words in order.
        let words: std::vec::Vec<u32> = b
            .chunks(4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        assert_eq!(words, [6, 2, 1, 2, 0x1c]);
        assert_eq!(AerOp::from_bytes(&b), op);

        let mut neg = op;
        neg.err = -3;
        assert_eq!(AerOp::from_bytes(&neg.to_bytes()).err, -3);
        // The slot ends the 572-byte `struct xen_pci_sharedinfo`.
        assert_eq!(OFFSET_AER_OP + AER_OP_SIZE, SHARED_INFO_SIZE);
    }

    #[test]
    fn decode_requests() {
        let addr = dev(0, 0, 2, 0);
        for step in [
            AerStep::ErrorDetected(ChannelState::Normal),
            AerStep::ErrorDetected(ChannelState::Frozen),
            AerStep::ErrorDetected(ChannelState::PermFailure),
            AerStep::MmioEnabled,
            AerStep::SlotReset,
            AerStep::Resume,
        ] {
            assert_eq!(
                decode_request(&AerOp::request(step, addr)),
                Ok((step, addr))
            );
        }
        // The state only matters for aer_detected.
        let mut op = AerOp::request(AerStep::SlotReset, addr);
        op.err = 77;
        assert_eq!(decode_request(&op), Ok((AerStep::SlotReset, addr)));

        let mut op = AerOp::request(AerStep::ErrorDetected(ChannelState::Frozen), addr);
        for bad in [0, 4, -1] {
            op.err = bad;
            assert_eq!(decode_request(&op), Err(AerRequestError::State(bad)));
        }
        let mut op = AerOp::request(AerStep::Resume, addr);
        for cmd in [0, 1, 5, 10, u32::MAX] {
            op.cmd = cmd;
            assert_eq!(decode_request(&op), Err(AerRequestError::Command(cmd)));
        }
        let mut op = AerOp::request(AerStep::Resume, addr);
        op.devfn = 0x100;
        assert_eq!(decode_request(&op), Err(AerRequestError::Address));
        let mut op = AerOp::request(AerStep::Resume, addr);
        op.domain = 0x1_0000;
        assert_eq!(decode_request(&op), Err(AerRequestError::Address));
    }

    #[test]
    fn frontend_answers_as_c() {
        use DriverOutcome::*;
        let detected = AerStep::ErrorDetected(ChannelState::Frozen);
        let all = [
            detected,
            AerStep::MmioEnabled,
            AerStep::SlotReset,
            AerStep::Resume,
        ];
        for step in all {
            for o in [NoDevice, NoDriver, NoErrorDetected] {
                assert_eq!(frontend_answer(step, o), ErsResult::None, "{step:?} {o:?}");
            }
        }
        assert_eq!(
            frontend_answer(detected, Voted(ErsResult::NeedReset)),
            ErsResult::NeedReset
        );
        assert_eq!(
            frontend_answer(AerStep::SlotReset, Voted(ErsResult::Disconnect)),
            ErsResult::Disconnect
        );
        // Missing mmio_enabled / slot_reset: recovered; missing error_detected: no vote.
        assert_eq!(
            frontend_answer(AerStep::MmioEnabled, NoHandler),
            ErsResult::Recovered
        );
        assert_eq!(
            frontend_answer(AerStep::SlotReset, NoHandler),
            ErsResult::Recovered
        );
        assert_eq!(frontend_answer(detected, NoHandler), ErsResult::None);
        // resume: always NONE.
        assert_eq!(frontend_answer(AerStep::Resume, Resumed), ErsResult::None);
        assert_eq!(frontend_answer(AerStep::Resume, NoHandler), ErsResult::None);
    }

    #[test]
    fn guest_votes() {
        assert_eq!(guest_vote(2), ErsResult::CanRecover);
        assert_eq!(guest_vote(3), ErsResult::NeedReset);
        assert_eq!(guest_vote(4), ErsResult::Disconnect);
        assert_eq!(guest_vote(5), ErsResult::Recovered);
        assert_eq!(guest_vote(1), ErsResult::None);
        for raw in [6, 0, 7, -1, i32::MIN, i32::MAX] {
            assert_eq!(guest_vote(raw), ErsResult::None, "{raw}");
        }
    }

    #[test]
    fn backend_outcomes_as_c() {
        let detected = AerStep::ErrorDetected(ChannelState::Frozen);
        let out = |step, d| {
            let o = backend_outcome(step, d);
            (o.result, o.mark_failed)
        };
        let all = [
            detected,
            AerStep::MmioEnabled,
            AerStep::SlotReset,
            AerStep::Resume,
        ];
        for step in all {
            let d = step.default_result();
            assert_eq!(out(step, Delivery::NotExported), (d, false));
            assert_eq!(out(step, Delivery::NotConnected), (d, true));
            assert_eq!(out(step, Delivery::Busy), (d, false));
            assert_eq!(out(step, Delivery::NoAnswer), (d, false));
        }
        assert_eq!(
            out(detected, Delivery::NoHandler),
            (ErsResult::CanRecover, true)
        );
        assert_eq!(
            out(AerStep::Resume, Delivery::NoHandler),
            (ErsResult::Recovered, true)
        );
        assert_eq!(
            out(AerStep::MmioEnabled, Delivery::NoHandler),
            (ErsResult::Recovered, false)
        );
        assert_eq!(
            out(AerStep::SlotReset, Delivery::NoHandler),
            (ErsResult::Recovered, false)
        );

        assert_eq!(
            out(detected, Delivery::Answered(3)),
            (ErsResult::NeedReset, false)
        );
        assert_eq!(
            out(detected, Delivery::Answered(2)),
            (ErsResult::CanRecover, false)
        );
        assert_eq!(
            out(AerStep::SlotReset, Delivery::Answered(5)),
            (ErsResult::Recovered, false)
        );
        assert_eq!(
            out(detected, Delivery::Answered(1)),
            (ErsResult::None, true)
        );
        assert_eq!(
            out(AerStep::MmioEnabled, Delivery::Answered(4)),
            (ErsResult::Disconnect, true)
        );
        // Garbage from the guest never reaches dom0's PCI core.
        assert_eq!(
            out(AerStep::SlotReset, Delivery::Answered(99)),
            (ErsResult::None, true)
        );
        assert_eq!(
            out(detected, Delivery::Answered(6)),
            (ErsResult::None, true)
        );
        // The answer to resume is ignored.
        assert_eq!(
            out(AerStep::Resume, Delivery::Answered(4)),
            (ErsResult::Recovered, false)
        );
    }

    /// A guest for [`wait_answer`]: clears the bit at `answer_at` ms (if ever), disconnects at
    /// `gone_at` ms (if ever); a signal arrives at `signal_at` ms (if ever).
    struct Guest {
        now: u64,
        answer_at: Option<u64>,
        gone_at: Option<u64>,
        signal_at: Option<u64>,
        sleeps: u32,
        longest: u64,
    }

    impl Guest {
        fn new() -> Guest {
            Guest {
                now: 5,
                answer_at: None,
                gone_at: None,
                signal_at: None,
                sleeps: 0,
                longest: 0,
            }
        }
    }

    impl AerWait for Guest {
        fn active(&mut self) -> Option<bool> {
            if self.gone_at.is_some_and(|t| self.now >= t) {
                return None;
            }
            Some(!self.answer_at.is_some_and(|t| self.now >= t))
        }
        fn sleep(&mut self, ms: u64) -> bool {
            self.sleeps += 1;
            self.longest = self.longest.max(ms);
            // Woken early by the guest's event, or by a signal.
            let wake = [self.answer_at, self.gone_at, self.signal_at]
                .into_iter()
                .flatten()
                .filter(|&t| t > self.now)
                .min()
                .unwrap_or(u64::MAX);
            // At least 1 ms, so that a wait that sleeps for nothing still ends.
            self.now = (self.now + ms.max(1)).min(wake);
            !self.signal_at.is_some_and(|t| self.now >= t)
        }
        fn now_ms(&mut self) -> u64 {
            self.now
        }
    }

    #[test]
    fn wait_ends_with_the_answer() {
        let mut g = Guest::new();
        g.answer_at = Some(0);
        assert_eq!(wait_answer(&mut g), WaitEnd::Answered);
        assert_eq!(g.sleeps, 0);

        let mut g = Guest::new();
        g.answer_at = Some(1234);
        assert_eq!(wait_answer(&mut g), WaitEnd::Answered);
        assert_eq!(g.now, 1234);
        assert!(g.longest <= AER_WAIT_SLICE_MS);
    }

    #[test]
    fn wait_is_bounded() {
        let mut g = Guest::new();
        assert_eq!(wait_answer(&mut g), WaitEnd::TimedOut);
        assert_eq!(g.now, 5 + AER_TIMEOUT_MS);
        assert!(g.longest <= AER_WAIT_SLICE_MS);
        assert_eq!(u64::from(g.sleeps), AER_TIMEOUT_MS / AER_WAIT_SLICE_MS);

        // An answer after the deadline is not waited for.
        let mut g = Guest::new();
        g.answer_at = Some(5 + AER_TIMEOUT_MS + 1);
        assert_eq!(wait_answer(&mut g), WaitEnd::TimedOut);
    }

    #[test]
    fn wait_ends_when_the_guest_goes_or_a_signal_comes() {
        let mut g = Guest::new();
        g.gone_at = Some(700);
        assert_eq!(wait_answer(&mut g), WaitEnd::Disconnected);
        assert_eq!(g.now, 700);

        let mut g = Guest::new();
        g.signal_at = Some(300);
        assert_eq!(wait_answer(&mut g), WaitEnd::Interrupted);
        assert_eq!(g.now, 300);
    }
}
