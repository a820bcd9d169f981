// SPDX-License-Identifier: GPL-2.0

//! The entry points of the `cargo fuzz` targets in `fuzz/`: one function per
//! target, taking the fuzzer's bytes, driving one part of the shared code with
//! them and asserting what that code promises (not only that it does not
//! panic), mostly by comparing it with a small reference model written here.
//!
//! Host only: `lib.rs` includes this file for `cargo test` and with the
//! `fuzzing` feature, which the fuzz crate turns on; the kernel includes
//! `mod.rs` and never sees it. The test at the end replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions, so `cargo
//! test` keeps it as a regression test. `scripts/fuzz.sh` runs the targets;
//! `Documentation/dev-guide.rst` ("Fuzzing") lists what each one checks.
//!
//! Inputs are read with [`Bytes`]: past the end every read gives zeros, so any
//! input, even an empty one, is a valid test case.

use core::fmt::Write as _;
use std::collections::BTreeSet;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use crate::common::aer::{
    self, AerRequestError, AerStep, AerWait, ChannelState, Delivery, DriverOutcome, ErsResult,
    WaitEnd, AER_TIMEOUT_MS, AER_WAIT_SLICE_MS,
};
use crate::common::bdf::{
    parse_bus_addr, parse_exact, parse_full_bdf, parse_hide, parse_quirk, parse_slot,
    validate_hide, Bdf, BdfPattern, BusAddr, ErrorKind, ParseError, Quirk,
};
use crate::common::conf::{
    regs, BarResource, BarType, CapOffsets, ConfigIo, DeviceControl, DeviceInfo, HwError,
    PowerState, QuirkError, RomResource, SeizeError, VirtualConfig, WriteOutcome, MAX_QUIRKS,
};
use crate::common::msi::{self, IrqState};
use crate::common::pciif::{
    conf_read_result, enable_msi_result, enable_msix_result, err_from_pcibios, pcibios_from_err,
    pciif_error_from_pcibios, validate_msix_entries, AccessSize, AerOp, Command, OpError,
    PciifError, RawOp, Request, Response, AER_OP_SIZE, OFFSET_OP, OFFSET_OP_MSIX_ENTRIES,
    RAW_OP_SIZE, SHARED_INFO_SIZE, SH_INFO_MAX_VEC,
};
use crate::common::ratelimit::{self, RateLimit, Verdict};
use crate::common::roundtrip::{
    self, Channel, ERR_UNANSWERED, MAX_POSTS, OP_TIMEOUT_NS, POLL_SLICE_NS,
};
use crate::common::vbus::{
    self, DevKind, RootSet, VbusError, VirtualBus, ROOTS_MAX, VBUS_ROOT, VBUS_SLOTS,
};
use crate::common::xs::{
    self, IndexedKey, Opts, RdmPolicy, StackBuf, XenbusState, NUM_DEVS_MAX, ROOT_NUM_MAX,
};
use crate::common::yieldtrial;

/// Every target: its name in `fuzz/` (a binary of the fuzz crate, and the
/// directory of its corpus) and its entry point.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("pciif_request", pciif_request),
    ("conf_engine", conf_engine),
    ("bdf_grammar", bdf_grammar),
    ("xs_values", xs_values),
    ("policy", policy),
];

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

/// A cursor over the fuzzer's bytes. Reads past the end give zeros (and still
/// advance, so a loop `while !b.is_empty()` that reads ends).
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// Up to `n` bytes (fewer at the end).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }
}

/// Copies `src` to the start of `dst`; the rest of `dst` keeps its zeros.
fn fill(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
}

/// C `isspace()` in the "C" locale, written out again here (Rust's
/// `is_ascii_whitespace` lacks `\v`).
fn c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `s` without leading and trailing [`c_space`]: the offset of the rest, and the rest.
fn c_trim(s: &[u8]) -> (usize, &[u8]) {
    let start = s.iter().position(|&c| !c_space(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !c_space(c))
        .map_or(start, |p| p + 1);
    (start, &s[start..end])
}

/// What every parse error promises: its offset is inside the input, its
/// context is a piece of the input, and its message is printable ASCII.
fn check_error(input: &[u8], e: &ParseError<'_>) {
    assert!(
        e.offset <= input.len(),
        "error offset {} past the end of the {}-byte input: {e:?}",
        e.offset,
        input.len()
    );
    if !e.context.is_empty() {
        let (start, end) = (
            input.as_ptr() as usize,
            input.as_ptr() as usize + input.len(),
        );
        let c = e.context.as_ptr() as usize;
        assert!(
            c >= start && c + e.context.len() <= end,
            "error context is not a piece of the input: {e:?}"
        );
    }
    let msg = e.to_string();
    assert!(
        msg.bytes().all(|c| (0x20..0x7f).contains(&c)),
        "error message not printable ASCII: {msg:?}"
    );
}

// ---------------------------------------------------------------------------
// Target pciif_request: the wire protocol
// ---------------------------------------------------------------------------

/// Request decoding and validation, the responses and the frontend's
/// interpretation of them, MSI-X vectors and the AER op.
///
/// Input: MSI-X table size (2 bytes), a count (1), an output length (1), the
/// bytes of a `struct xen_pci_op` (548, zero-padded) and of a
/// `struct xen_pcie_aer_op` (20).
pub fn pciif_request(data: &[u8]) {
    let mut b = Bytes::new(data);
    let table_size = b.u16();
    let count = usize::from(b.u8());
    let out_len = usize::from(b.u8());
    let mut raw = [0u8; RAW_OP_SIZE];
    fill(&mut raw, b.take(RAW_OP_SIZE));
    let mut aer_raw = [0u8; AER_OP_SIZE];
    fill(&mut aer_raw, b.take(AER_OP_SIZE));

    let op = RawOp::from_bytes(&raw);
    assert_eq!(op.to_bytes(), raw, "RawOp byte image does not round trip");
    check_request_words(&op);
    check_decode(&op);
    check_msix_validation(&op, count, table_size);
    check_responses(&op);
    check_frontend_results(&op, count, out_len);
    check_msix_vectors(&op, count);
    check_msi_policy(table_size);
    check_aer_op(&aer_raw);
}

/// The request words rebuild the request in a page, with `err` the sentinel.
fn check_request_words(op: &RawOp) {
    let mut page = [0u8; SHARED_INFO_SIZE];
    let mut seen = BTreeSet::new();
    for (off, v) in op.request_words() {
        assert_eq!(off % 4, 0, "request word at {off} not aligned");
        assert!(off >= OFFSET_OP && off + 4 <= OFFSET_OP_MSIX_ENTRIES);
        assert!(seen.insert(off), "request word at {off} twice");
        page[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let mut bytes = [0u8; RAW_OP_SIZE];
    bytes.copy_from_slice(&page[OFFSET_OP..OFFSET_OP + RAW_OP_SIZE]);
    let want = RawOp {
        err: ERR_UNANSWERED,
        msix_entries: RawOp::default().msix_entries,
        ..*op
    };
    assert_eq!(RawOp::from_bytes(&bytes), want, "request words");
}

/// `Request::decode` as its documentation states it, in other words.
fn reference_decode(op: &RawOp) -> Result<Request, OpError> {
    let inval = OpError::Xen(PciifError::InvalidOffset);
    if op.domain > 0xffff || op.bus > 0xff || op.devfn > 0xff {
        return Err(OpError::Xen(PciifError::DevNotFound));
    }
    let addr = Bdf::from_devfn(op.domain as u16, op.bus as u8, op.devfn as u8);
    let conf = || -> Result<(u16, AccessSize), OpError> {
        let size = match op.size {
            1 => AccessSize::One,
            2 => AccessSize::Two,
            4 => AccessSize::Four,
            _ => return Err(inval),
        };
        let (off, n) = (i64::from(op.offset), i64::from(op.size));
        if off < 0 || off % n != 0 || off + n > 4096 {
            return Err(inval);
        }
        Ok((off as u16, size))
    };
    Ok(match op.cmd {
        0 => {
            let (offset, size) = conf()?;
            Request::ConfRead { addr, offset, size }
        }
        1 => {
            let (offset, size) = conf()?;
            Request::ConfWrite {
                addr,
                offset,
                size,
                value: op.value,
            }
        }
        2 => Request::EnableMsi { addr },
        3 => Request::DisableMsi { addr },
        4 => {
            if op.value == 0 || op.value > 128 {
                return Err(OpError::Errno(-22));
            }
            let nvec = op.value as usize;
            let mut entries = [0u16; SH_INFO_MAX_VEC];
            for (dst, src) in entries.iter_mut().zip(&op.msix_entries[..nvec]) {
                *dst = src.entry;
            }
            Request::EnableMsix {
                addr,
                nvec,
                entries,
            }
        }
        5 => Request::DisableMsix { addr },
        _ => return Err(OpError::Xen(PciifError::NotImplemented)),
    })
}

fn check_decode(op: &RawOp) {
    let got = Request::decode(op);
    assert_eq!(got, reference_decode(op), "Request::decode");
    match got {
        Ok(r) => check_reencode(op, &r),
        Err(e) => {
            let resp = Response::rejected(op, e);
            assert!(resp.err < 0, "rejection {e:?} answered as success");
            assert_eq!(resp.err, e.code());
            assert_eq!(resp.value, op.value, "a rejection must leave value alone");
            if let OpError::Xen(x) = e {
                assert_eq!(PciifError::from_code(resp.err), Some(x));
            }
        }
    }
}

/// A decoded request, encoded again by the frontend's constructors, has the
/// fields it was decoded from and decodes to itself.
fn check_reencode(op: &RawOp, r: &Request) {
    let a = r.addr();
    let (d, bus, devfn) = (
        u32::from(a.domain()),
        u32::from(a.bus()),
        u32::from(a.devfn()),
    );
    assert_eq!((d, bus, devfn), (op.domain, op.bus, op.devfn), "address");
    assert_eq!(r.command().raw(), op.cmd);
    assert!(!r.command().is_aer());
    let again = match *r {
        Request::ConfRead { offset, size, .. } | Request::ConfWrite { offset, size, .. } => {
            let n = size.bytes();
            assert_eq!(offset % n, 0, "accepted misaligned offset");
            assert!(
                u32::from(offset) + u32::from(n) <= 4096,
                "accepted offset past 4 KiB"
            );
            assert_eq!(i32::from(offset), op.offset);
            assert_eq!(i32::from(n), op.size);
            match *r {
                Request::ConfWrite { value, .. } => {
                    assert_eq!(value, op.value);
                    RawOp::conf_write(d, bus, devfn, offset.into(), n.into(), value)
                }
                _ => RawOp::conf_read(d, bus, devfn, offset.into(), n.into()),
            }
        }
        Request::EnableMsi { .. } => RawOp::enable_msi(d, bus, devfn),
        Request::DisableMsi { .. } => RawOp::disable_msi(d, bus, devfn),
        Request::DisableMsix { .. } => RawOp::disable_msix(d, bus, devfn),
        Request::EnableMsix { nvec, entries, .. } => {
            assert!((1..=SH_INFO_MAX_VEC).contains(&nvec), "nvec {nvec}");
            assert_eq!(nvec as u32, op.value);
            assert!(entries[nvec..].iter().all(|&e| e == 0), "entries past nvec");
            for (e, src) in entries[..nvec].iter().zip(op.msix_entries.iter()) {
                assert_eq!(*e, src.entry);
            }
            let again = RawOp::enable_msix(d, bus, devfn, &entries[..nvec]).expect("<= 128");
            assert_eq!(again.value, op.value);
            for (i, e) in again.msix_entries.iter().enumerate() {
                if i < nvec {
                    assert_eq!((e.vector, e.entry), (0xffff, entries[i]));
                } else {
                    assert_eq!((e.vector, e.entry), (0, 0));
                }
            }
            again
        }
    };
    assert_eq!(
        (again.cmd, again.domain, again.bus, again.devfn),
        (op.cmd, d, bus, devfn)
    );
    assert_eq!(Request::decode(&again), Ok(*r), "re-encoded request");
}

fn check_msix_validation(op: &RawOp, count: usize, table_size: u16) {
    let n = count % (SH_INFO_MAX_VEC + 1);
    let entries: Vec<u16> = op.msix_entries[..n].iter().map(|e| e.entry).collect();
    let mut seen = BTreeSet::new();
    let ok = entries.iter().all(|&e| e < table_size && seen.insert(e));
    let want = if ok { Ok(()) } else { Err(OpError::EINVAL) };
    assert_eq!(
        validate_msix_entries(&entries, table_size),
        want,
        "validate_msix_entries({entries:?}, {table_size})"
    );
}

/// The response constructors, and that the frontend reads each of them the
/// way it was meant: an error is never taken for success.
fn check_responses(op: &RawOp) {
    let v = op.value;
    let rsp = |err, value| Response { err, value };
    assert_eq!(Response::conf_read(Ok::<u32, PciifError>(v)), rsp(0, v));
    assert_eq!(conf_read_result(0, v), Ok(v));
    assert_eq!(Response::conf_write(v, Ok::<(), PciifError>(())), rsp(0, v));
    assert_eq!(Response::enable_msi(Ok::<u32, ()>(v)), rsp(0, v));
    assert_eq!(
        enable_msi_result(0, v),
        if v != 0 { Ok(v) } else { Err(-22) }
    );
    assert_eq!(Response::disabled(v), rsp(0, v));
    assert_eq!(
        Response::enable_msix(v, Ok::<(), PciifError>(())),
        rsp(0, 0)
    );

    let mut errors: Vec<OpError> = [
        PciifError::DevNotFound,
        PciifError::InvalidOffset,
        PciifError::AccessDenied,
        PciifError::NotImplemented,
        PciifError::OpFailed,
    ]
    .iter()
    .map(|&e| OpError::Xen(e))
    .collect();
    if op.err < 0 {
        errors.push(OpError::Errno(op.err));
    }
    for e in errors {
        let code = e.code();
        let r = Response::conf_read(Err::<u32, OpError>(e));
        assert_eq!(r, rsp(code, 0));
        let seen = conf_read_result(r.err, r.value);
        if code == -19 {
            // The documented C quirk: a raw -ENODEV reads as 0.
            assert_eq!(seen, Ok(0));
        } else {
            assert!(seen.is_err(), "frontend read error {e:?} as {seen:?}");
        }
        assert_eq!(Response::conf_write(v, Err::<(), OpError>(e)), rsp(code, v));
        let r = Response::enable_msi(Err::<u32, OpError>(e));
        assert_eq!(r, rsp(PciifError::OpFailed.code(), 0));
        assert_eq!(enable_msi_result(r.err, r.value), Err(-22));
        let r = Response::enable_msix(v, Err::<(), OpError>(e));
        assert_eq!(r, rsp(code, v));
        let answer = RawOp {
            err: r.err,
            value: r.value,
            ..*op
        };
        let mut pirqs = [0u32; SH_INFO_MAX_VEC];
        assert_eq!(enable_msix_result(&answer, 1, &mut pirqs), Err(code));
    }
}

fn check_frontend_results(op: &RawOp, count: usize, out_len: usize) {
    // conf_read_result, as pcifront_bus_read computes it.
    let want = match op.err {
        0 => Ok(op.value),
        -19 => Ok(0),
        -1 => Err(0x86),
        -2 | -5 => Err(0x87),
        -3 => Err(0x88),
        -4 => Err(0x81),
        e => Err(e),
    };
    let got = conf_read_result(op.err, op.value);
    assert_eq!(got, want, "conf_read_result({}, {:#x})", op.err, op.value);
    if let Err(c) = got {
        assert_ne!(c, 0, "an error code that reads as PCIBIOS_SUCCESSFUL");
    }

    // PCIBIOS codes both ways, and the engine's mapping of them.
    if (-4..=0).contains(&op.err) {
        assert_eq!(err_from_pcibios(pcibios_from_err(op.err)), op.err);
    }
    let pcibios = op.info as i32;
    match pciif_error_from_pcibios(pcibios) {
        Some(e) => assert_eq!(err_from_pcibios(pcibios), e.code()),
        None if pcibios == 0 => assert_eq!(err_from_pcibios(0), 0),
        None => assert_eq!(err_from_pcibios(pcibios), pcibios),
    }
    match HwError::from_pcibios(pcibios) {
        Ok(()) => assert_eq!(pcibios, 0),
        Err(h) => assert_eq!(
            h.to_pciif(),
            pciif_error_from_pcibios(pcibios).unwrap_or(PciifError::OpFailed),
            "engine and protocol map PCIBIOS {pcibios:#x} differently"
        ),
    }

    // enable_msi_result.
    let want = if op.err == 0 && op.value != 0 {
        Ok(op.value)
    } else {
        Err(-22)
    };
    assert_eq!(enable_msi_result(op.err, op.value), want);

    // enable_msix_result: touches pirqs[..nvec] only, and only once the
    // answer is a success and nvec fits.
    const UNTOUCHED: u32 = 0xdead_beef;
    let nvec = count;
    let mut pirqs = vec![UNTOUCHED; out_len];
    let got = enable_msix_result(op, nvec, &mut pirqs);
    let fits = nvec <= SH_INFO_MAX_VEC && nvec <= out_len;
    let vectors: Vec<u16> = op
        .msix_entries
        .iter()
        .take(nvec)
        .map(|e| e.vector)
        .collect();
    let want = if op.err != 0 {
        Err(op.err)
    } else if op.value != 0 {
        Err(op.value as i32)
    } else if !fits || vectors.contains(&0) {
        Err(-22)
    } else {
        Ok(())
    };
    assert_eq!(
        got, want,
        "enable_msix_result(nvec {nvec}, {out_len} pirqs)"
    );
    let filled = op.err == 0 && op.value == 0 && fits;
    for (i, &p) in pirqs.iter().enumerate() {
        if filled && i < nvec {
            assert_eq!(p, u32::from(vectors[i]));
        } else {
            assert_eq!(p, UNTOUCHED, "pirq {i} written");
        }
    }
}

/// The backend's vectors of a successful `enable_msix`, carried through the
/// page, give the frontend the pirqs the backend had.
fn check_msix_vectors(op: &RawOp, count: usize) {
    let pirqs: Vec<u32> = (0..count)
        .map(|i| {
            let high = if (op.info >> (i % 32)) & 1 != 0 {
                0x1_0000
            } else {
                0
            };
            u32::from(op.msix_entries[i % SH_INFO_MAX_VEC].vector) | high
        })
        .collect();
    let got = msi::msix_vectors(&pirqs);
    if pirqs.len() > SH_INFO_MAX_VEC {
        assert_eq!(got, Err(OpError::EINVAL));
        return;
    }
    if pirqs.iter().any(|&p| p == 0 || p > 0xffff) {
        assert_eq!(got, Err(OpError::Errno(-34)), "pirqs {pirqs:?}");
        return;
    }
    let vectors = got.expect("valid pirqs refused");
    for (i, &v) in vectors.iter().enumerate() {
        assert_eq!(u32::from(v), pirqs.get(i).copied().unwrap_or(0));
    }
    let n = pirqs.len();
    let indices: Vec<u16> = (0..n as u16).collect();
    let mut answer = RawOp::enable_msix(0, 0, 0, &indices).expect("<= 128");
    for (e, &v) in answer.msix_entries.iter_mut().zip(vectors.iter()) {
        e.vector = v;
    }
    let r = Response::enable_msix(answer.value, Ok::<(), OpError>(()));
    answer.err = r.err;
    answer.value = r.value;
    let mut got = vec![0u32; n];
    assert_eq!(enable_msix_result(&answer, n, &mut got), Ok(()));
    assert_eq!(got, pirqs, "pirqs through the page");
}

fn check_msi_policy(bits: u16) {
    let state = IrqState {
        msi: bits & 1 != 0,
        msix: bits & 2 != 0,
        memory: bits & 4 != 0,
    };
    let want = if state.msi {
        Err(-114)
    } else if state.msix {
        Err(-6)
    } else {
        Ok(())
    };
    assert_eq!(msi::check_enable_msi(state), want, "{state:?}");
    let want = if state.msix {
        Err(OpError::Errno(-114))
    } else if state.msi || !state.memory {
        Err(OpError::Errno(-6))
    } else {
        Ok(())
    };
    assert_eq!(msi::check_enable_msix(state), want, "{state:?}");
}

/// Both decoders of `struct xen_pcie_aer_op` and its constructors.
fn check_aer_op(raw: &[u8; AER_OP_SIZE]) {
    let a = AerOp::from_bytes(raw);
    assert_eq!(a.to_bytes(), *raw, "AerOp byte image does not round trip");
    let addr = Bdf::from_raw(a.domain, a.bus, a.devfn);

    let want = match (Command::try_from(a.cmd), addr) {
        (Ok(c), Some(addr)) if (6..=9).contains(&a.cmd) => Ok((c, addr)),
        (Ok(_), None) if (6..=9).contains(&a.cmd) => Err(PciifError::DevNotFound),
        _ => Err(PciifError::NotImplemented),
    };
    assert_eq!(a.decode(), want, "AerOp::decode of {a:?}");

    let step = match a.cmd {
        6 => match a.err {
            1 => Ok(AerStep::ErrorDetected(ChannelState::Normal)),
            2 => Ok(AerStep::ErrorDetected(ChannelState::Frozen)),
            3 => Ok(AerStep::ErrorDetected(ChannelState::PermFailure)),
            e => Err(AerRequestError::State(e)),
        },
        7 => Ok(AerStep::Resume),
        8 => Ok(AerStep::MmioEnabled),
        9 => Ok(AerStep::SlotReset),
        c => Err(AerRequestError::Command(c)),
    };
    let want = step.and_then(|s| Ok((s, addr.ok_or(AerRequestError::Address)?)));
    assert_eq!(aer::decode_request(&a), want, "decode_request of {a:?}");

    if let Ok((step, addr)) = want {
        assert_eq!(a.decode(), Ok((step.command(), addr)));
        let req = AerOp::request(step, addr);
        assert_eq!(aer::decode_request(&req), Ok((step, addr)));
        assert_eq!(AerOp::new(step.command(), a.err, addr), Some(a));
        if matches!(step, AerStep::ErrorDetected(_)) {
            assert_eq!(req, a);
        }
    }
    if let Ok(c) = Command::try_from(a.cmd) {
        if !c.is_aer() {
            assert_eq!(AerOp::new(c, a.err, Bdf::default()), None);
        }
    }
}

// ---------------------------------------------------------------------------
// Target conf_engine: the config-space engine against a model function
// ---------------------------------------------------------------------------

/// What the engine promises about one byte of configuration space, from the
/// field tables as its documentation describes them (rebuilt here
/// independently of `conf/fields.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// No field: read from the hardware, written only in permissive mode.
    Free,
    Vendor,
    Device,
    Command,
    ReadWrite,
    ReadOnly,
    Bist,
    IrqLine,
    /// BAR `n` (0..=5), or the ROM (6).
    Bar(usize),
    PmCaps,
    PmCtrl,
    VpdAddr,
    Msi,
    Msix,
    /// A quirk with this mask (in field coordinates).
    Quirk(u32),
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    class: Class,
    start: u16,
    size: u16,
}

const FREE: Cell = Cell {
    class: Class::Free,
    start: 0,
    size: 0,
};

const ROM: usize = 6;

#[derive(Clone)]
struct Layout {
    cells: Vec<Cell>,
}

impl Layout {
    fn new(bridge: bool, caps: &CapOffsets) -> Layout {
        let mut l = Layout {
            cells: vec![FREE; 4096],
        };
        use Class::*;
        for (start, size, class) in [
            (0x00, 2, Vendor),
            (0x02, 2, Device),
            (0x04, 2, Command),
            (0x0c, 1, ReadWrite),
            (0x0d, 1, ReadOnly),
            (0x0f, 1, Bist),
            (0x3c, 1, IrqLine),
            (0x3d, 1, ReadOnly),
        ] {
            l.set(start, size, class);
        }
        for (slot, off) in bar_offsets(bridge).iter().enumerate() {
            if let Some(off) = *off {
                l.set(off, 4, Bar(slot));
            }
        }
        let cap = |o: Option<u8>| o.map(u16::from);
        if let Some(p) = cap(caps.pm) {
            for (o, s, c) in [
                (0, 2, ReadOnly),
                (2, 2, PmCaps),
                (4, 2, PmCtrl),
                (6, 1, ReadOnly),
                (7, 1, ReadOnly),
            ] {
                l.set(p + o, s, c);
            }
        }
        if let Some(p) = cap(caps.vpd) {
            for (o, s, c) in [(0, 2, ReadOnly), (2, 2, VpdAddr), (4, 4, ReadOnly)] {
                l.set(p + o, s, c);
            }
        }
        if let Some(p) = cap(caps.msi) {
            l.set(p, 2, ReadOnly);
            l.set(p + 2, 2, Msi);
        }
        if let Some(p) = cap(caps.msix) {
            l.set(p, 2, ReadOnly);
            l.set(p + 2, 2, Msix);
        }
        l
    }

    fn set(&mut self, start: u16, size: u16, class: Class) {
        for a in start..start + size {
            self.cells[usize::from(a)] = Cell { class, start, size };
        }
    }

    fn cell(&self, at: u16) -> Cell {
        self.cells[usize::from(at)]
    }

    fn any_free(&self, off: u16, n: u16) -> bool {
        (off..off + n).any(|a| self.cell(a).class == Class::Free)
    }
}

/// Offsets of BARs 0..=5 and the ROM (slot 6) of a header type.
fn bar_offsets(bridge: bool) -> [Option<u16>; 7] {
    if bridge {
        [Some(0x10), Some(0x14), None, None, None, None, Some(0x38)]
    } else {
        [
            Some(0x10),
            Some(0x14),
            Some(0x18),
            Some(0x1c),
            Some(0x20),
            Some(0x24),
            Some(0x30),
        ]
    }
}

const HW_ERRORS: [HwError; 7] = [
    HwError::FuncNotSupported,
    HwError::BadVendorId,
    HwError::DeviceNotFound,
    HwError::BadRegisterNumber,
    HwError::SetFailed,
    HwError::BufferTooSmall,
    HwError::Other,
];

/// A function with a 4 KiB configuration space that checks every access the
/// engine makes against what the engine documents as allowed.
#[derive(Clone)]
struct Model {
    cfg: Vec<u8>,
    layout: Layout,
    /// Check writes (off while seizing).
    checking: bool,
    /// Per-device permissive mode, as the harness set it.
    permissive: bool,
    /// The global `permissive` parameter.
    global: bool,
    /// `allow_interrupt_control`, as the harness set it.
    allow: bool,
    caps: CapOffsets,
    /// The value each BAR showed at seize time, and whether it has a dom0
    /// resource (only then may it be written, and only with that value).
    bar_virt: [u32; 7],
    bar_res: [bool; 7],
    enabled: bool,
    busmaster: bool,
    enable_fails: bool,
    mwi_fails: bool,
    power_fails: bool,
    fail_read: Option<(u16, HwError)>,
    fail_write: Option<(u16, HwError)>,
    reads: usize,
    writes: usize,
    actions: usize,
}

/// splitmix64, to fill the model's configuration space from a seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hits(fail: Option<(u16, HwError)>, off: u16, n: u16) -> Option<HwError> {
    fail.filter(|&(at, _)| at >= off && at - off < n)
        .map(|(_, e)| e)
}

impl Model {
    fn new(seed: u64) -> Model {
        let mut s = seed;
        let mut cfg = vec![0u8; 4096];
        for chunk in cfg.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix(&mut s).to_le_bytes());
        }
        Model {
            cfg,
            layout: Layout::new(false, &CapOffsets::default()),
            checking: false,
            permissive: false,
            global: false,
            allow: false,
            caps: CapOffsets::default(),
            bar_virt: [0; 7],
            bar_res: [false; 7],
            enabled: false,
            busmaster: false,
            enable_fails: false,
            mwi_fails: false,
            power_fails: false,
            fail_read: None,
            fail_write: None,
            reads: 0,
            writes: 0,
            actions: 0,
        }
    }

    fn get(&self, off: u16, n: u16) -> u32 {
        (0..n).fold(0, |v, i| {
            v | u32::from(self.cfg[usize::from(off + i)]) << (8 * i)
        })
    }

    fn set(&mut self, off: u16, n: u16, value: u32) {
        for i in 0..n {
            self.cfg[usize::from(off + i)] = (value >> (8 * i)) as u8;
        }
    }

    fn set_cmd_bits(&mut self, bits: u16, on: bool) {
        let c = self.get(regs::COMMAND, 2) as u16;
        let c = if on { c | bits } else { c & !bits };
        self.set(regs::COMMAND, 2, u32::from(c));
    }

    fn check_access(off: u16, size: AccessSize) {
        let n = size.bytes();
        assert!(
            off % n == 0 && u32::from(off) + u32::from(n) <= 0x1000,
            "engine issued a bad hardware access {off:#x}/{n}"
        );
    }

    /// The rules for one hardware write of the engine (see [`Class`]).
    fn check_write(&self, off: u16, n: u16, new: u32) {
        let permissive = self.permissive || self.global;
        let first = self.layout.cell(off);
        if first.class == Class::Free {
            assert!(
                (off..off + n).all(|a| self.layout.cell(a).class == Class::Free),
                "one hardware write {off:#x}/{n} covers uncovered bytes and a field"
            );
            assert!(
                permissive,
                "non-permissive write {new:#x} reached uncovered bytes {off:#x}/{n}"
            );
            return;
        }
        assert!(
            first.start == off && first.size == n,
            "hardware write {off:#x}/{n} is not the whole field {:#x}/{}",
            first.start,
            first.size
        );
        let old = self.get(off, n);
        let changed = old ^ new;
        match first.class {
            Class::Free | Class::ReadWrite => {}
            Class::Vendor | Class::Device | Class::IrqLine | Class::ReadOnly | Class::PmCaps => {
                panic!(
                    "write {new:#x} reached the read-only field at {off:#x} ({:?})",
                    first.class
                )
            }
            Class::Command => {
                assert!(
                    permissive,
                    "non-permissive write {new:#x} reached the command register"
                );
                assert_eq!(
                    changed & !u32::from(regs::CMD_GUEST),
                    0,
                    "command write {old:#x} -> {new:#x} changes bits the guest does not own"
                );
            }
            Class::Bist => assert!(
                changed & !u32::from(regs::BIST_START) == 0 || new == u32::from(regs::BIST_START),
                "BIST write {old:#x} -> {new:#x} is not a self-test start"
            ),
            Class::Bar(s) => {
                assert!(
                    self.bar_res[s],
                    "BAR slot {s} without a dom0 resource written ({new:#x})"
                );
                assert_eq!(new, self.bar_virt[s], "BAR slot {s} moved (hardware write)");
            }
            Class::PmCtrl => assert_eq!(
                changed & !u32::from(regs::PM_CTRL_PME_STATUS | regs::PM_CTRL_DATA_SEL),
                0,
                "PMCSR write {old:#x} -> {new:#x} changes more than PME status and data select"
            ),
            Class::VpdAddr => assert_eq!(
                new & u32::from(regs::VPD_ADDR_F),
                0,
                "VPD address write {new:#x} starts a VPD write"
            ),
            Class::Msi | Class::Msix => {
                if !permissive {
                    let (allowed, enable, other) = if first.class == Class::Msi {
                        (
                            regs::MSI_FLAGS_ENABLE,
                            regs::MSI_FLAGS_ENABLE,
                            self.caps.msix.map(|o| (o, regs::MSIX_FLAGS_ENABLE)),
                        )
                    } else {
                        (
                            regs::MSIX_FLAGS_ENABLE | regs::MSIX_FLAGS_MASKALL,
                            regs::MSIX_FLAGS_ENABLE,
                            self.caps.msi.map(|o| (o, regs::MSI_FLAGS_ENABLE)),
                        )
                    };
                    assert!(
                        self.allow,
                        "MSI(-X) flags written without allow_interrupt_control"
                    );
                    assert_eq!(
                        changed & !u32::from(allowed),
                        0,
                        "MSI(-X) flags {old:#x} -> {new:#x} change bits the guest does not own"
                    );
                    if new & u32::from(enable) != 0 {
                        if let Some((o, bit)) = other {
                            assert_eq!(
                                self.get(u16::from(o) + regs::MSI_FLAGS, 2) & u32::from(bit),
                                0,
                                "MSI and MSI-X enabled at once"
                            );
                        }
                    }
                }
            }
            Class::Quirk(mask) => assert_eq!(
                changed & !mask,
                0,
                "quirk write {old:#x} -> {new:#x} changes bits outside its mask {mask:#x}"
            ),
        }
    }
}

impl ConfigIo for Model {
    fn read(&mut self, offset: u16, size: AccessSize) -> Result<u32, HwError> {
        Self::check_access(offset, size);
        self.reads += 1;
        if let Some(e) = hits(self.fail_read, offset, size.bytes()) {
            return Err(e);
        }
        Ok(self.get(offset, size.bytes()))
    }

    /// The model's function is never gone (its reads fail one offset at a time).
    fn check_connected(&self) -> Result<(), HwError> {
        Ok(())
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Result<(), HwError> {
        Self::check_access(offset, size);
        assert_eq!(
            value & !size.value_mask(),
            0,
            "write value wider than the access"
        );
        if self.checking {
            self.check_write(offset, size.bytes(), value);
        }
        if let Some(e) = hits(self.fail_write, offset, size.bytes()) {
            return Err(e);
        }
        self.writes += 1;
        self.set(offset, size.bytes(), value);
        Ok(())
    }
}

impl DeviceControl for Model {
    fn is_enabled(&self) -> bool {
        self.enabled
    }
    fn enable(&mut self) -> Result<(), HwError> {
        self.actions += 1;
        if self.enable_fails {
            return Err(HwError::Other);
        }
        self.enabled = true;
        self.set_cmd_bits(regs::CMD_MEMORY | regs::CMD_IO, true);
        Ok(())
    }
    fn disable(&mut self) {
        // pci_disable_device(): bus mastering off, decoding left alone.
        self.actions += 1;
        self.enabled = false;
        self.busmaster = false;
        self.set_cmd_bits(regs::CMD_MASTER, false);
    }
    fn is_busmaster(&self) -> bool {
        self.busmaster
    }
    fn set_master(&mut self, on: bool) {
        self.actions += 1;
        self.busmaster = on;
        self.set_cmd_bits(regs::CMD_MASTER, on);
    }
    fn set_mwi(&mut self) -> Result<(), HwError> {
        self.actions += 1;
        if self.mwi_fails {
            return Err(HwError::Other);
        }
        self.set_cmd_bits(regs::CMD_INVALIDATE, true);
        Ok(())
    }
    fn clear_mwi(&mut self) {
        self.actions += 1;
        self.set_cmd_bits(regs::CMD_INVALIDATE, false);
    }
    fn intx(&mut self, enable: bool) {
        assert!(
            !self.checking || self.allow,
            "INTx changed without allow_interrupt_control"
        );
        self.actions += 1;
        self.set_cmd_bits(regs::CMD_INTX_DISABLE, !enable);
    }
    fn set_power_state(&mut self, state: PowerState) -> Result<(), HwError> {
        self.actions += 1;
        if self.power_fails {
            return Err(HwError::Other);
        }
        if let Some(pm) = self.caps.pm {
            let off = u16::from(pm) + regs::PM_CTRL;
            let s = match state {
                PowerState::D0 => 0,
                PowerState::D1 => 1,
                PowerState::D2 => 2,
                PowerState::D3Hot => 3,
            };
            let v = self.get(off, 2) & !u32::from(regs::PM_CTRL_STATE_MASK);
            self.set(off, 2, v | s);
        }
        Ok(())
    }
    fn global_permissive(&self) -> bool {
        self.global
    }
}

/// `pci_find_capability()` over the model's bytes.
fn walk_caps(cfg: &[u8], header_type: u8) -> CapOffsets {
    let mut caps = CapOffsets::default();
    if header_type & 0x7f > 1 || cfg[6] & 0x10 == 0 {
        return caps;
    }
    let mut pos = usize::from(cfg[0x34]);
    for _ in 0..48 {
        pos &= !3;
        if !(0x40..0x100).contains(&pos) || cfg[pos] == 0xff {
            break;
        }
        let slot = match cfg[pos] {
            regs::CAP_ID_PM => Some(&mut caps.pm),
            regs::CAP_ID_VPD => Some(&mut caps.vpd),
            regs::CAP_ID_MSI => Some(&mut caps.msi),
            regs::CAP_ID_MSIX => Some(&mut caps.msix),
            _ => None,
        };
        if let Some(slot) = slot.filter(|s| s.is_none()) {
            *slot = Some(pos as u8);
        }
        pos = usize::from(cfg[pos + 1]);
    }
    caps
}

/// What `VirtualConfig::new` must refuse before touching the device.
fn seize_oracle(info: &DeviceInfo) -> Result<(), SeizeError> {
    let t = info.header_type & 0x7f;
    if t > 1 {
        return Err(SeizeError::UnsupportedHeaderType(t));
    }
    let c = &info.caps;
    let mut placed: Vec<(u16, u16)> = Vec::new();
    for (id, off, len) in [
        (regs::CAP_ID_VPD, c.vpd, 8),
        (regs::CAP_ID_PM, c.pm, 8),
        (regs::CAP_ID_MSI, c.msi, 4),
        (regs::CAP_ID_MSIX, c.msix, 4),
    ] {
        let Some(off) = off else { continue };
        let (s, e) = (u16::from(off), u16::from(off) + len);
        if s < 0x40 || s % 4 != 0 || e > 0x100 || placed.iter().any(|&(ps, pe)| ps < e && s < pe) {
            return Err(SeizeError::BadCapability(id));
        }
        placed.push((s, e));
    }
    Ok(())
}

/// What `add_quirk` must answer (checks in its documented order).
fn quirk_oracle(
    l: &Layout,
    quirks: usize,
    reg: u32,
    size: u32,
    mask: u32,
) -> Result<(), QuirkError> {
    let n = match size {
        1 | 2 | 4 => size,
        _ => return Err(QuirkError::BadSize),
    };
    if reg > 0xffff || reg + n > 0x1000 {
        return Err(QuirkError::BadOffset);
    }
    if reg % n != 0 {
        return Err(QuirkError::Unaligned);
    }
    if n < 4 && mask >> (8 * n) != 0 {
        return Err(QuirkError::BadMask);
    }
    if (reg..reg + n).any(|a| l.cells[a as usize].class != Class::Free) {
        return Err(QuirkError::Overlap);
    }
    if quirks >= MAX_QUIRKS {
        return Err(QuirkError::Full);
    }
    Ok(())
}

/// The sysfs listing of the fields is exactly the harness's layout.
fn check_listing(vc: &VirtualConfig, l: &Layout) {
    let mut covered = vec![false; 4096];
    for f in vc.fields() {
        assert!(
            [1, 2, 4].contains(&f.size) && f.offset % u16::from(f.size) == 0,
            "{f:?}"
        );
        for a in f.offset..f.offset + u16::from(f.size) {
            let a = usize::from(a);
            assert!(!covered[a], "listed fields overlap at {a:#x}");
            covered[a] = true;
            let c = l.cells[a];
            assert_eq!(
                (c.start, c.size),
                (f.offset, u16::from(f.size)),
                "listed {f:?} vs {c:?}"
            );
            match c.class {
                Class::Quirk(m) => assert!(f.quirk && f.mask == m, "listed {f:?} vs {c:?}"),
                _ => assert!(!f.quirk && f.mask == 0, "listed {f:?} vs {c:?}"),
            }
        }
    }
    for (a, c) in l.cells.iter().enumerate() {
        assert_eq!(
            covered[a],
            c.class != Class::Free,
            "byte {a:#x} listed vs {c:?}"
        );
    }
}

/// The harness's own state of the virtual function.
struct Harness {
    info: DeviceInfo,
    bridge: bool,
    permissive: bool,
    allow: bool,
    /// Bytes whose denied write was explained since the seize or the last release.
    explained: [bool; 4096],
    /// Denied writes since the seize.
    denied: u64,
    quirks: usize,
    /// Seize-time value of the command register as the guest reads it.
    cmd0: u16,
    /// BAR value at seize time, flag bits, and the sizing value once seen.
    virt: [u32; 7],
    flags: [u32; 7],
    sized: [Option<u32>; 7],
}

/// Config-space engine: seizes a model function described by the input and
/// plays a sequence of guest reads and writes, administrator settings,
/// hardware changes and injected failures against it.
pub fn conf_engine(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mut model = Model::new(b.u64());
    // Hardware set-up before seizing (a capability list, say).
    for _ in 0..b.u8() % 16 {
        let (off, v) = (b.u8(), b.u8());
        model.cfg[usize::from(off)] = v;
    }
    let hdr = b.u8();
    let header_type = if hdr & 0x40 != 0 { hdr } else { hdr & 0x81 };
    let flags = b.u8();
    let caps = if flags & 1 != 0 {
        let c = CapOffsets::discover(&mut model, header_type).expect("no failure armed");
        assert_eq!(c, walk_caps(&model.cfg, header_type), "capability walk");
        assert!(
            model.reads <= 2 + 48,
            "capability walk not bounded: {} reads",
            model.reads
        );
        model.reads = 0;
        c
    } else {
        let mut cap = || {
            let (v, o) = (b.u8(), b.u8());
            (v & 1 != 0).then(|| if v & 2 != 0 { o } else { 0x40 + (o % 0x30) * 4 })
        };
        CapOffsets {
            pm: cap(),
            vpd: cap(),
            msi: cap(),
            msix: cap(),
        }
    };
    let (vendor, device) = (b.u16(), b.u16());
    let irq = if flags & 2 != 0 {
        b.u32()
    } else {
        u32::from(b.u8())
    };
    let mut bar = || {
        let f = b.u8();
        BarResource {
            start: b.u64(),
            size: b.u64(),
            ty: match f & 3 {
                0 => BarType::Io,
                2 => BarType::Mem64,
                _ => BarType::Mem32,
            },
            prefetch: f & 4 != 0,
            present: f & 8 != 0,
        }
    };
    let bars = [bar(), bar(), bar(), bar(), bar(), bar()];
    let f = b.u8();
    let rom = RomResource {
        start: b.u64(),
        size: b.u64(),
        enabled: f & 1 != 0,
        present: f & 2 != 0,
    };
    let info = DeviceInfo {
        vendor,
        device,
        header_type,
        irq,
        bars,
        rom,
        caps,
        permissive: flags & 4 != 0,
        allow_interrupt_control: flags & 8 != 0,
    };

    // Seize.
    let before = model.cfg.clone();
    let expected = seize_oracle(&info);
    let mut vc = match (VirtualConfig::new(&mut model, &info), expected) {
        (Ok(vc), Ok(())) => vc,
        (Err(e), Err(w)) if e == w => return,
        (got, want) => panic!("seize of {info:?}: got {got:?}, expected {want:?}"),
    };
    let mut want = before;
    if let Some(pm) = caps.pm {
        // PME enable is cleared, nothing else touched.
        want[usize::from(pm) + 5] &= !((regs::PM_CTRL_PME_ENABLE >> 8) as u8);
    }
    assert!(model.cfg == want, "seize changed more than PME enable");

    let bridge = header_type & 0x7f == 1;
    model.layout = Layout::new(bridge, &caps);
    model.caps = caps;
    model.permissive = info.permissive;
    model.allow = info.allow_interrupt_control;
    let mut h = Harness {
        info,
        bridge,
        permissive: info.permissive,
        allow: info.allow_interrupt_control,
        explained: [false; 4096],
        denied: 0,
        quirks: 0,
        cmd0: 0,
        virt: [0; 7],
        flags: [0; 7],
        sized: [None; 7],
    };
    seized_bars(&mut h, &vc, &mut model);
    h.cmd0 = plain_read(&vc, &mut model, regs::COMMAND, AccessSize::Two) as u16;
    model.checking = true;
    check_listing(&vc, &model.layout);

    let mut ops = 0;
    while !b.is_empty() && ops < 256 {
        ops += 1;
        model.reads = 0;
        model.writes = 0;
        model.actions = 0;
        let op = b.u8() % 11;
        match op {
            0 => {
                let (off, size) = access(&mut b);
                guest_read(&h, &vc, &mut model, off, size);
            }
            1 => {
                let (off, size) = access(&mut b);
                let v = b.u32();
                guest_write(&mut h, &mut vc, &mut model, off, size, v);
                if off < regs::HEADER_SIZE {
                    check_bars(&mut h, &vc, &mut model);
                }
            }
            2 => {
                let on = b.bool();
                vc.set_permissive(on);
                h.permissive = on;
                model.permissive = on;
            }
            3 => model.global = b.bool(),
            4 => {
                let on = b.bool();
                vc.set_allow_interrupt_control(on);
                h.allow = on;
                model.allow = on;
            }
            5 => {
                let s = b.u8();
                let reg = if s & 0x80 != 0 {
                    b.u32()
                } else {
                    u32::from(b.u16() % 0x1000)
                };
                let size = u32::from(s & 7);
                let mask = b.u32();
                let mask = if s & 0x40 != 0 || size >= 4 {
                    mask
                } else {
                    mask & ((1u32 << (8 * size)) - 1)
                };
                let want = quirk_oracle(&model.layout, h.quirks, reg, size, mask);
                assert_eq!(
                    vc.add_quirk(reg, size, mask),
                    want,
                    "add_quirk({reg:#x}, {size}, {mask:#x})"
                );
                if want.is_ok() {
                    model
                        .layout
                        .set(reg as u16, size as u16, Class::Quirk(mask));
                    h.quirks += 1;
                    check_listing(&vc, &model.layout);
                }
            }
            6 => {
                vc.clear_quirks();
                for c in model.layout.cells.iter_mut() {
                    if matches!(c.class, Class::Quirk(_)) {
                        *c = FREE;
                    }
                }
                h.quirks = 0;
                check_listing(&vc, &model.layout);
            }
            7 => {
                vc.reset_on_release();
                h.allow = false;
                model.allow = false;
                h.explained = [false; 4096];
                let cmd = plain_read(&vc, &mut model, regs::COMMAND, AccessSize::Two) as u16;
                assert_eq!(
                    cmd & !regs::CMD_GUEST,
                    h.cmd0 & !regs::CMD_GUEST,
                    "virtual command register not restored on release"
                );
                for (s, off) in bar_offsets(h.bridge).iter().enumerate() {
                    if let Some(off) = *off {
                        let v = plain_read(&vc, &mut model, off, AccessSize::Four);
                        assert_eq!(v, h.virt[s], "BAR slot {s} still sizing after release");
                    }
                }
            }
            8 => {
                // The hardware changes behind the engine's back.
                let off = usize::from(b.u16() % 0x1000);
                model.cfg[off] = b.u8();
            }
            9 => {
                let k = b.u8();
                let fault = Some((b.u16() % 0x1000, HW_ERRORS[usize::from(k >> 2) % 7]));
                match k & 3 {
                    0 => (model.fail_read, model.fail_write) = (None, None),
                    1 => model.fail_read = fault,
                    2 => model.fail_write = fault,
                    _ => (model.fail_read, model.fail_write) = (fault, fault),
                }
            }
            _ => {
                let k = b.u8();
                model.enable_fails = k & 1 != 0;
                model.mwi_fails = k & 2 != 0;
                model.power_fails = k & 4 != 0;
            }
        }
        assert_eq!(vc.permissive(), h.permissive);
        assert_eq!(vc.allow_interrupt_control(), h.allow);
    }
    check_bars(&mut h, &vc, &mut model);
}

/// A guest access from 3 bytes: mostly aligned and inside the space (often
/// in the standard header), sometimes any offset at all.
fn access(b: &mut Bytes<'_>) -> (u16, AccessSize) {
    let s = b.u8();
    let o = b.u16();
    let size = match s & 3 {
        0 => AccessSize::One,
        1 => AccessSize::Two,
        _ => AccessSize::Four,
    };
    let off = if s & 0x80 != 0 {
        o
    } else {
        let o = if s & 0x40 != 0 { o % 0x100 } else { o % 0x1000 };
        o & !(size.bytes() - 1)
    };
    (off, size)
}

/// A read by the harness itself: no failure injected, not counted.
fn plain_read(vc: &VirtualConfig, model: &mut Model, off: u16, size: AccessSize) -> u32 {
    let (fail, reads) = (model.fail_read.take(), model.reads);
    let v = vc.read(model, off, size).expect("harness read");
    (model.fail_read, model.reads) = (fail, reads);
    v
}

/// Records the BARs as seized and checks them against the dom0 resources.
fn seized_bars(h: &mut Harness, vc: &VirtualConfig, model: &mut Model) {
    let offs = bar_offsets(h.bridge);
    let mut lower64: Option<BarResource> = None;
    for (s, off) in offs.iter().enumerate() {
        let Some(off) = *off else { continue };
        let v = plain_read(vc, model, off, AccessSize::Four);
        h.virt[s] = v;
        let (res, flags) = if s == ROM {
            let r = h.info.rom;
            if r.present {
                let want = (r.start as u32 & !0x7ff) | u32::from(r.enabled);
                assert_eq!(v, want, "ROM does not show its dom0 resource");
            }
            (r.present, regs::ROM_FLAG_BITS)
        } else if let Some(lower) = lower64.take() {
            if lower.present {
                assert_eq!(v, (lower.start >> 32) as u32, "upper half of BAR {}", s - 1);
            }
            (lower.present, 0)
        } else {
            let r = h.info.bars[s];
            if r.ty == BarType::Mem64 {
                lower64 = Some(r);
            }
            let (flags, low) = match r.ty {
                BarType::Io => (regs::BAR_IO_FLAG_BITS, regs::BAR_SPACE_IO),
                BarType::Mem32 => (regs::BAR_MEM_FLAG_BITS, 0),
                BarType::Mem64 => (regs::BAR_MEM_FLAG_BITS, regs::BAR_MEM_TYPE_64),
            };
            let low = if r.prefetch && r.ty != BarType::Io {
                low | regs::BAR_MEM_PREFETCH
            } else {
                low
            };
            if r.present {
                assert_eq!(
                    v,
                    (r.start as u32 & !flags) | low,
                    "BAR {s} does not show its resource"
                );
            }
            (r.present, flags)
        };
        if !res {
            assert_eq!(v, 0, "BAR slot {s} without a resource does not read 0");
        }
        model.bar_res[s] = res;
        h.flags[s] = flags;
    }
    model.bar_virt = h.virt;
}

/// A BAR shows its seize-time value or, while sized, its size mask, and its
/// flag bits never change: the guest can never move a BAR or toggle the ROM.
fn check_bars(h: &mut Harness, vc: &VirtualConfig, model: &mut Model) {
    for (s, off) in bar_offsets(h.bridge).iter().enumerate() {
        let Some(off) = *off else { continue };
        let v = plain_read(vc, model, off, AccessSize::Four);
        assert_eq!(
            (v ^ h.virt[s]) & h.flags[s],
            0,
            "BAR slot {s} flag bits changed: {v:#x}"
        );
        if v != h.virt[s] {
            match h.sized[s] {
                None => h.sized[s] = Some(v),
                Some(z) => assert_eq!(v, z, "BAR slot {s} shows a third value"),
            }
        }
    }
}

fn guest_read(h: &Harness, vc: &VirtualConfig, model: &mut Model, off: u16, size: AccessSize) {
    let n = size.bytes();
    let valid = off % n == 0 && u32::from(off) + u32::from(n) <= 0x1000;
    let r = vc.read(model, off, size);
    if !valid {
        assert_eq!(r, Err(PciifError::InvalidOffset), "bad read {off:#x}/{n}");
        assert_eq!(model.reads, 0, "a refused read reached the hardware");
        return;
    }
    // Bytes whose value the backend keeps: no hardware read for an access of those alone.
    let kept = (off..off + n).all(|at| {
        matches!(
            model.layout.cell(at).class,
            Class::Vendor | Class::Device | Class::IrqLine | Class::Bar(_)
        )
    });
    if kept {
        assert_eq!(model.reads, 0, "a read of kept bytes reached the hardware");
    } else {
        assert_eq!(model.reads, 1, "a guest read is one hardware read");
    }
    if let Some(e) = hits(model.fail_read, off, n).filter(|_| !kept) {
        assert_eq!(r, Err(e.to_pciif()), "failed hardware read {off:#x}/{n}");
        return;
    }
    let v = r.unwrap_or_else(|e| panic!("read {off:#x}/{n} failed: {e:?}"));
    assert_eq!(
        v & !size.value_mask(),
        0,
        "read {off:#x}/{n} returned {v:#x}"
    );
    let mut bar_now = None;
    for i in 0..n {
        let at = off + i;
        let got = (v >> (8 * i)) as u8;
        let hw = model.cfg[usize::from(at)];
        let c = model.layout.cell(at);
        let rel = usize::from(at - c.start);
        let want = match c.class {
            Class::Vendor => h.info.vendor.to_le_bytes()[rel],
            Class::Device => h.info.device.to_le_bytes()[rel],
            Class::IrqLine => u8::try_from(h.info.irq).unwrap_or(0xff),
            Class::Command => {
                let g = regs::CMD_GUEST.to_le_bytes()[rel];
                assert_eq!(
                    got & g,
                    hw & g,
                    "command byte {at:#x}: guest bits not from hardware"
                );
                continue;
            }
            Class::PmCaps => hw & (!regs::PM_CAP_PME_MASK).to_le_bytes()[rel],
            // The whole BAR as it shows now (checked by `check_bars`).
            Class::Bar(_) => {
                let now = *bar_now
                    .get_or_insert_with(|| plain_read(vc, model, c.start, AccessSize::Four));
                now.to_le_bytes()[rel]
            }
            _ => hw,
        };
        assert_eq!(got, want, "read {off:#x}/{n}: byte {at:#x} ({:?})", c.class);
    }
}

fn guest_write(
    h: &mut Harness,
    vc: &mut VirtualConfig,
    model: &mut Model,
    off: u16,
    size: AccessSize,
    v: u32,
) {
    let n = size.bytes();
    let valid = off % n == 0 && u32::from(off) + u32::from(n) <= 0x1000;
    // What the backend may serve on the interrupt, and the same access by the rules alone,
    // on copies of the function.
    let mut plain_model = model.clone();
    let plain = vc.write_plain(&mut plain_model, off, size, v, model.global);
    let (mut rules_model, mut rules_vc) = (model.clone(), vc.clone());
    let rules = rules_vc.write_by_rules(&mut rules_model, off, size, v);
    check_plain(
        h,
        &rules_model,
        off,
        size,
        valid,
        (plain, &plain_model),
        rules,
    );
    let r = vc.write(model, off, size, v);
    if !valid {
        assert_eq!(r, Err(PciifError::InvalidOffset), "bad write {off:#x}/{n}");
        assert_eq!(
            (model.reads, model.writes, model.actions),
            (0, 0, 0),
            "a refused write reached the device"
        );
        return;
    }
    let free = model.layout.any_free(off, n);
    let permissive = h.permissive || model.global;
    match r {
        Ok(WriteOutcome::Handled) => {
            assert!(
                !free || permissive,
                "uncovered bytes of {off:#x}/{n} neither written nor reported"
            );
            assert_eq!(
                vc.denied_writes(),
                h.denied,
                "a handled write counted as denied"
            );
            if free {
                for i in 0..n {
                    let at = off + i;
                    if model.layout.cell(at).class == Class::Free {
                        assert_eq!(
                            model.cfg[usize::from(at)],
                            (v >> (8 * i)) as u8,
                            "permissive write did not reach uncovered byte {at:#x}"
                        );
                    }
                }
            }
        }
        Ok(WriteOutcome::Dropped(d)) => {
            assert!(free && !permissive, "write {off:#x}/{n} reported dropped");
            let mut free_bytes = 0u8;
            for i in 0..n {
                if model.layout.cell(off + i).class == Class::Free {
                    free_bytes |= 1 << i;
                }
            }
            let new =
                (0..n).any(|i| free_bytes & (1 << i) != 0 && !h.explained[usize::from(off + i)]);
            assert_eq!(
                d.first, new,
                "denied write {off:#x}/{n} not to be explained exactly when a dropped byte was not"
            );
            // The glue explains it (its rate limit aside) and marks it.
            if d.first {
                vc.mark_explained(&d);
                for i in 0..n {
                    if free_bytes & (1 << i) != 0 {
                        h.explained[usize::from(off + i)] = true;
                    }
                }
            }
            h.denied += 1;
            assert_eq!(d.count, h.denied, "denied-write count");
            assert_eq!(vc.denied_writes(), h.denied, "denied-write count");
            assert_eq!((d.offset, d.size.bytes()), (off, n), "denied access");
            assert_eq!(d.value, v & size.value_mask(), "denied value");
            assert_eq!(d.uncovered, free_bytes, "dropped bytes of {off:#x}/{n}");
            // The quirks named cover exactly the dropped bytes, each an aligned register.
            let mut named = 0u8;
            for (reg, size, mask) in d.quirk_fields() {
                let b = size.bytes();
                assert!(
                    reg % b == 0 && reg >= off && reg + b <= off + n,
                    "quirk {reg:#x}/{b}"
                );
                assert_eq!(mask, size.value_mask(), "quirk mask");
                for i in reg - off..reg - off + b {
                    assert_eq!(named & (1 << i), 0, "byte named twice");
                    named |= 1 << i;
                }
            }
            assert_eq!(named, free_bytes, "quirks named for {off:#x}/{n}");
        }
        Err(_) => {}
    }
}

/// A plain write ([`VirtualConfig::write_plain`]) is one whose every byte is of a class that
/// drops writes, a read-write or quirk one, or (the device or the backend permissive) a byte no
/// field covers; it gives what the write by the rules gave (`r`, `model` after it), and neither
/// makes a kernel call. An access that is not valid is plain, and fails.
fn check_plain(
    h: &Harness,
    model: &Model,
    off: u16,
    size: AccessSize,
    valid: bool,
    (plain, plain_model): (Option<Result<(), PciifError>>, &Model),
    r: Result<WriteOutcome, PciifError>,
) {
    use Class::*;
    let n = size.bytes();
    let permissive = h.permissive || model.global;
    let expected = !valid
        || (0..n).all(|i| match model.layout.cell(off + i).class {
            Vendor | Device | ReadOnly | IrqLine | PmCaps | ReadWrite | Quirk(_) => true,
            Free => permissive,
            Command | Bist | Bar(_) | PmCtrl | VpdAddr | Msi | Msix => false,
        });
    assert_eq!(plain.is_some(), expected, "write {off:#x}/{n} plain or not");
    let Some(plain) = plain else {
        assert_eq!(
            (plain_model.reads, plain_model.writes, plain_model.actions),
            (0, 0, 0),
            "a write found not plain reached the device"
        );
        return;
    };
    assert_eq!(
        plain.map(|()| WriteOutcome::Handled),
        r,
        "plain write {off:#x}/{n}"
    );
    assert!(
        plain_model.cfg == model.cfg,
        "plain write {off:#x}/{n}: device"
    );
    assert_eq!(
        (
            plain_model.reads,
            plain_model.writes,
            plain_model.actions,
            model.actions
        ),
        (model.reads, model.writes, 0, 0),
        "plain write {off:#x}/{n}: accesses and kernel calls"
    );
}

// ---------------------------------------------------------------------------
// Target bdf_grammar: the administrator grammars of bdf.rs
// ---------------------------------------------------------------------------

/// A minimal function for the engine: reads 0, takes every write.
struct ZeroIo;

impl ConfigIo for ZeroIo {
    fn read(&mut self, _: u16, _: AccessSize) -> Result<u32, HwError> {
        Ok(0)
    }
    fn check_connected(&self) -> Result<(), HwError> {
        Ok(())
    }
    fn write(&mut self, _: u16, _: AccessSize, _: u32) -> Result<(), HwError> {
        Ok(())
    }
}

// A reference parser of the grammars, written from the module documentation
// of bdf.rs: it only says whether a value is accepted and as what.

/// The kernel's `isspace()`: C's and 0xa0.
fn kernel_space(c: u8) -> bool {
    c_space(c) || c == 0xa0
}

/// The bytes before the first NUL.
fn before_nul(s: &[u8]) -> &[u8] {
    &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
}

/// `s` without leading and trailing kernel blanks.
fn kernel_trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !kernel_space(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !kernel_space(c))
        .map_or(start, |p| p + 1);
    &s[start..end]
}

/// A number (`None`: more than 32 bits) or a `*`.
#[derive(Clone, Copy)]
enum RefTok {
    Num(Option<u32>),
    Star,
}

struct RefLex<'a> {
    s: &'a [u8],
    i: usize,
    /// `sscanf("%x")` spelling: blanks and `0x` before a number.
    scanf: bool,
}

impl RefLex<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn lit(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    fn num(&mut self) -> Option<Option<u32>> {
        if self.scanf {
            while self.peek().is_some_and(kernel_space) {
                self.i += 1;
            }
            if self.peek() == Some(b'0') && matches!(self.s.get(self.i + 1), Some(b'x' | b'X')) {
                self.i += 2;
            }
        }
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d) = self.peek().and_then(|c| char::from(c).to_digit(16)) {
            v = (v * 16 + u64::from(d)).min(1 << 32);
            self.i += 1;
        }
        (self.i > start).then(|| u32::try_from(v).ok())
    }

    fn tok(&mut self) -> Option<RefTok> {
        if self.lit(b'*').is_some() {
            return Some(RefTok::Star);
        }
        self.num().map(RefTok::Num)
    }
}

fn ref_field(t: RefTok, max: u32) -> Option<u32> {
    match t {
        RefTok::Num(Some(v)) if v <= max => Some(v),
        _ => None,
    }
}

/// `[DOMAIN ":"] BUS ":" ( SLOT "." ( FUNC | "*" ) | "*.*" )`, the whole of `s`.
fn ref_pattern(s: &[u8], domain_required: bool, wild: bool, scanf: bool) -> Option<BdfPattern> {
    let has_domain = domain_required || s.iter().filter(|&&c| c == b':').count() >= 2;
    let mut l = RefLex { s, i: 0, scanf };
    let domain = if has_domain {
        let t = l.tok()?;
        l.lit(b':')?;
        Some(t)
    } else {
        None
    };
    let bus = l.tok()?;
    l.lit(b':')?;
    let slot = l.tok()?;
    l.lit(b'.')?;
    let func = l.tok()?;
    if l.i != s.len() {
        return None;
    }
    let domain = match domain {
        Some(t) => ref_field(t, 0xffff)? as u16,
        None => 0,
    };
    let bus = ref_field(bus, 0xff)? as u8;
    match (slot, func) {
        (RefTok::Star, RefTok::Star) if wild => {
            Some(BdfPattern::AllSlots(BusAddr::new(domain, bus)))
        }
        (RefTok::Num(_), RefTok::Star) if wild => {
            let slot = ref_field(slot, 31)? as u8;
            Some(BdfPattern::AllFuncs(Bdf::new(domain, bus, slot, 0)?))
        }
        (RefTok::Num(_), RefTok::Num(_)) => {
            let (slot, func) = (ref_field(slot, 31)? as u8, ref_field(func, 7)? as u8);
            Some(BdfPattern::Exact(Bdf::new(domain, bus, slot, func)?))
        }
        _ => None,
    }
}

/// The sysfs slot grammar (`parse_slot`, and `parse_exact` without `wild`).
fn ref_slot(input: &[u8], wild: bool) -> Option<BdfPattern> {
    let s = kernel_trim(before_nul(input));
    if s.is_empty() {
        return None;
    }
    ref_pattern(s, false, wild, true)
}

/// The xenstore `D:B:S.F` (`parse_full_bdf`).
fn ref_full_bdf(input: &[u8]) -> Option<Bdf> {
    ref_pattern(c_trim(input).1, true, false, false)?.exact()
}

/// The xenstore `D:B` (`parse_bus_addr`).
fn ref_bus_addr(input: &[u8]) -> Option<BusAddr> {
    let s = c_trim(input).1;
    let mut l = RefLex {
        s,
        i: 0,
        scanf: false,
    };
    let d = l.num()?;
    l.lit(b':')?;
    let b = l.num()?;
    if l.i != s.len() {
        return None;
    }
    Some(BusAddr::new(
        ref_field(RefTok::Num(d), 0xffff)? as u16,
        ref_field(RefTok::Num(b), 0xff)? as u8,
    ))
}

/// `[D:]B:S.F "-" REG ":" SIZE ":" MASK` (`parse_quirk`).
fn ref_quirk(input: &[u8]) -> Option<Quirk> {
    let s = kernel_trim(before_nul(input));
    let dash = s.iter().position(|&c| c == b'-')?;
    let bdf = ref_pattern(&s[..dash], false, false, true)?.exact()?;
    let rest = &s[dash + 1..];
    let mut l = RefLex {
        s: rest,
        i: 0,
        scanf: true,
    };
    let reg = l.num()??;
    l.lit(b':')?;
    let size = l.num()??;
    l.lit(b':')?;
    let mask = l.num()??;
    if l.i != rest.len() {
        return None;
    }
    let size = AccessSize::from_bytes(size)?;
    let n = u32::from(size.bytes());
    if reg > 0xfff || reg + n > 0x1000 || reg % n != 0 || mask & !size.value_mask() != 0 {
        return None;
    }
    Some(Quirk {
        bdf,
        reg: reg as u16,
        size,
        mask,
    })
}

/// `( "(" pattern ")" blanks )+` after blanks (`validate_hide`): the groups.
fn ref_hide(input: &[u8]) -> Option<Vec<BdfPattern>> {
    let s = before_nul(input);
    let mut i = 0;
    let mut groups = Vec::new();
    loop {
        while s.get(i).is_some_and(|&c| kernel_space(c)) {
            i += 1;
        }
        if i == s.len() {
            return (!groups.is_empty()).then_some(groups);
        }
        if s[i] != b'(' {
            return None;
        }
        let close = i + 1 + s[i + 1..].iter().position(|&c| c == b')' || c == b'(')?;
        if s[close] != b')' {
            return None;
        }
        groups.push(ref_pattern(&s[i + 1..close], false, true, true)?);
        i = close + 1;
    }
}

/// The slot, exact-address, xenstore-address, quirk and `hide=` grammars on
/// the same bytes: each against the reference parser above, against the
/// others and against its own printed form.
pub fn bdf_grammar(data: &[u8]) {
    assert_eq!(
        parse_slot(data).ok(),
        ref_slot(data, true),
        "parse_slot({data:?})"
    );
    assert_eq!(
        parse_exact(data).ok(),
        ref_slot(data, false).and_then(|p| p.exact()),
        "parse_exact({data:?})"
    );
    assert_eq!(
        parse_full_bdf(data).ok(),
        ref_full_bdf(data),
        "parse_full_bdf({data:?})"
    );
    assert_eq!(
        parse_bus_addr(data).ok(),
        ref_bus_addr(data),
        "parse_bus_addr({data:?})"
    );
    assert_eq!(
        parse_quirk(data).ok(),
        ref_quirk(data),
        "parse_quirk({data:?})"
    );
    assert_eq!(
        validate_hide(data)
            .ok()
            .map(|_| parse_hide(data).filter_map(|r| r.ok()).collect()),
        ref_hide(data),
        "hide={data:?}"
    );

    let slot = parse_slot(data);
    match &slot {
        Ok(p) => check_pattern(p),
        Err(e) => check_error(data, e),
    }

    let exact = parse_exact(data);
    match (&slot, &exact) {
        (Ok(BdfPattern::Exact(x)), r) => assert_eq!(*r, Ok(*x), "parse_exact vs parse_slot"),
        (Ok(_), Err(e)) => assert!(matches!(e.kind, ErrorKind::Wildcard(_)), "{e:?}"),
        (Ok(p), Ok(x)) => panic!("parse_exact took the wildcard {p} as {x}"),
        (Err(_), r) => assert!(r.is_err(), "parse_exact took what parse_slot refuses"),
    }
    match &exact {
        Ok(x) => check_bdf(*x),
        Err(e) => check_error(data, e),
    }

    match parse_full_bdf(data) {
        Ok(x) => {
            assert_eq!(
                exact,
                Ok(x),
                "xenstore form accepted, sysfs form not the same"
            );
            check_bdf(x);
        }
        Err(e) => check_error(data, &e),
    }

    match parse_bus_addr(data) {
        Ok(a) => {
            let s = a.to_string();
            assert_eq!(s, format!("{:04x}:{:02x}", a.domain, a.bus));
            assert_eq!(parse_bus_addr(s.as_bytes()), Ok(a));
            let x = Bdf::new(a.domain, a.bus, 0x1f, 7).expect("valid");
            assert_eq!(parse_full_bdf(format!("{a}:1f.7").as_bytes()), Ok(x));
        }
        Err(e) => check_error(data, &e),
    }

    match parse_quirk(data) {
        Ok(q) => check_quirk(q),
        Err(e) => check_error(data, &e),
    }

    check_hide(data);
}

fn check_pattern(p: &BdfPattern) {
    let s = p.to_string();
    assert_eq!(parse_slot(s.as_bytes()), Ok(*p), "{p} does not re-parse");
    let all: Vec<Bdf> = p.iter().collect();
    assert_eq!(all.len(), p.expansion_len());
    assert_eq!(p.iter().len(), p.expansion_len());
    assert!(
        all.iter().all(|x| p.matches(x)),
        "{p} does not match its own functions"
    );
    assert!(
        all.windows(2).all(|w| w[0].devfn() < w[1].devfn()),
        "{p}: not in devfn order"
    );
    let first = all[0];
    assert!(all.iter().all(|x| x.bus_addr() == first.bus_addr()));
    let other_bus = Bdf::from_devfn(first.domain(), first.bus().wrapping_add(1), first.devfn());
    assert!(!p.matches(&other_bus));
    match *p {
        BdfPattern::Exact(x) => assert_eq!((p.exact(), all.as_slice()), (Some(x), &[x][..])),
        BdfPattern::AllFuncs(x) => {
            assert_eq!((p.exact(), x.func(), all.len()), (None, 0, 8));
            assert!(all.iter().all(|y| y.slot() == x.slot()));
        }
        BdfPattern::AllSlots(a) => {
            assert_eq!((p.exact(), all.len(), first.bus_addr()), (None, 256, a));
        }
    }
}

fn check_bdf(x: Bdf) {
    let s = x.to_string();
    let want = format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        x.domain(),
        x.bus(),
        x.slot(),
        x.func()
    );
    assert_eq!(s, want);
    assert_eq!(parse_full_bdf(s.as_bytes()), Ok(x));
    assert_eq!(parse_exact(s.as_bytes()), Ok(x));
    assert_eq!(parse_full_bdf(x.vdev().to_string().as_bytes()), Ok(x));
    assert_eq!(Bdf::new(x.domain(), x.bus(), x.slot(), x.func()), Some(x));
    assert_eq!(
        Bdf::from_raw(x.domain().into(), x.bus().into(), x.devfn().into()),
        Some(x)
    );
}

fn check_quirk(q: Quirk) {
    let n = q.size.bytes();
    assert!(
        q.reg % n == 0 && u32::from(q.reg) + u32::from(n) <= 0x1000,
        "quirk register {:#x}/{n}",
        q.reg
    );
    assert_eq!(q.mask & !q.size.value_mask(), 0, "quirk mask {:#x}", q.mask);
    assert_eq!(
        parse_quirk(q.to_string().as_bytes()),
        Ok(q),
        "{q} does not re-parse"
    );
    // The engine takes whatever the grammar accepts (the register may be taken).
    let mut vc = VirtualConfig::new(&mut ZeroIo, &DeviceInfo::default()).expect("plain device");
    match vc.add_quirk(q.reg.into(), n.into(), q.mask) {
        Ok(()) | Err(QuirkError::Overlap) => {}
        Err(e) => panic!("engine refuses the parsed quirk {q}: {e:?}"),
    }
}

fn check_hide(data: &[u8]) {
    let mut it = parse_hide(data);
    let items: Vec<_> = it.by_ref().collect();
    assert!(
        it.next().is_none() && it.next().is_none(),
        "parse_hide not fused"
    );
    let errors = items.iter().filter(|r| r.is_err()).count();
    assert!(errors <= 1, "parse_hide yielded {errors} errors");
    if errors == 1 {
        assert!(
            items.last().is_some_and(|r| r.is_err()),
            "parse_hide went on after an error"
        );
    }
    match validate_hide(data) {
        Ok(n) => {
            assert_eq!((errors, n), (0, items.len()));
            assert!(n >= 1);
        }
        Err(e) => {
            assert_eq!(errors, 1);
            assert_eq!(items.last(), Some(&Err(e)));
            check_error(data, &e);
        }
    }
    let pats: Vec<BdfPattern> = items.iter().filter_map(|r| r.ok()).collect();
    if pats.is_empty() {
        return;
    }
    let text: String = pats.iter().map(|p| format!("({p})")).collect();
    let again: Vec<Option<BdfPattern>> = parse_hide(text.as_bytes()).map(|r| r.ok()).collect();
    let want: Vec<Option<BdfPattern>> = pats.iter().map(|p| Some(*p)).collect();
    assert_eq!(again, want, "printed hide= value {text:?}");
    for p in &pats {
        check_pattern(p);
    }
}

// ---------------------------------------------------------------------------
// Target xs_values: xenstore values and keys
// ---------------------------------------------------------------------------

/// The xenstore value parsers on the input, and the key and value
/// formatters on a number from its first four bytes.
pub fn xs_values(data: &[u8]) {
    let n = Bytes::new(data).u32();
    check_u32(data);
    check_state(data);
    for max in [NUM_DEVS_MAX, ROOT_NUM_MAX, n] {
        check_count(data, max);
    }
    check_bdf_values(data);
    assert_eq!(xs::magic_ok(data), c_trim(data).1 == b"7", "magic_ok");
    check_opts(data);
    for k in [n, n >> 8, n >> 16, n >> 24] {
        check_keys(k);
    }
    check_writers(data);
}

/// Unsigned decimal, as `parse_u32` documents it: (kind, offset) on error.
fn u32_oracle(v: &[u8]) -> Result<u32, (ErrorKind, usize)> {
    let (base, s) = c_trim(v);
    if s.is_empty() {
        return Err((ErrorKind::Empty, base));
    }
    if !s[0].is_ascii_digit() {
        return Err((ErrorKind::ExpectedDecimal, base));
    }
    let p = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let digits = &s[..p];
    let sig = &digits[digits.iter().position(|&c| c != b'0').unwrap_or(p)..];
    if sig.len() > 10 || (sig.len() == 10 && sig > &b"4294967295"[..]) {
        return Err((ErrorKind::DecimalOverflow, base));
    }
    if p < s.len() {
        return Err((ErrorKind::TrailingJunk, base + p));
    }
    Ok(std::str::from_utf8(sig)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

fn kind_at<T>(r: &Result<T, ParseError<'_>>) -> Result<(), (ErrorKind, usize)> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err((e.kind, e.offset)),
    }
}

fn check_u32(v: &[u8]) {
    let got = xs::parse_u32(v);
    let want = u32_oracle(v);
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parse_u32({v:?})"),
        _ => assert_eq!(kind_at(&got), want.map(|_| ()), "parse_u32({v:?})"),
    }
    match got {
        Ok(n) => {
            assert_eq!(xs::u32_value(n).as_str(), n.to_string());
            assert_eq!(xs::parse_u32(xs::u32_value(n).as_bytes()), Ok(n));
        }
        Err(e) => {
            check_error(v, &e);
            if e.kind != ErrorKind::Empty {
                assert_eq!(e.context, c_trim(v).1);
            }
        }
    }
}

fn check_state(v: &[u8]) {
    let got = XenbusState::parse(v);
    match u32_oracle(v) {
        Ok(n) if n <= 8 => {
            let s = got.unwrap_or_else(|e| panic!("state {n} refused: {e:?}"));
            assert_eq!(s.raw(), n);
            assert_eq!(XenbusState::from_raw(n), Some(s));
            assert_eq!(XenbusState::try_from(n), Ok(s));
            assert_eq!(s.to_string(), n.to_string());
            assert!(!s.name().is_empty());
        }
        Ok(n) => {
            let e = got.expect_err("state above 8");
            assert_eq!(
                (e.kind, e.offset),
                (ErrorKind::UnknownState(n), c_trim(v).0)
            );
            assert_eq!(XenbusState::try_from(n), Err(n));
            check_error(v, &e);
        }
        Err(w) => {
            assert_eq!(kind_at(&got), Err(w), "XenbusState::parse({v:?})");
        }
    }
}

fn check_count(v: &[u8], max: u32) {
    let got = xs::parse_count(v, max);
    match u32_oracle(v) {
        Ok(n) if n <= max => assert_eq!(got, Ok(n)),
        Ok(n) => {
            let e = got.expect_err("count above max");
            assert_eq!(e.kind, ErrorKind::TooMany { value: n, max });
            check_error(v, &e);
        }
        Err(w) => assert_eq!(kind_at(&got), Err(w)),
    }
}

fn check_bdf_values(v: &[u8]) {
    let dev = xs::parse_dev(v);
    assert_eq!(dev, parse_full_bdf(v));
    assert_eq!(xs::parse_vdev(v), dev);
    if let Ok(x) = dev {
        let d = xs::dev_value(x);
        let want = format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            x.domain(),
            x.bus(),
            x.slot(),
            x.func()
        );
        assert_eq!(d.as_str(), want);
        assert_eq!(xs::parse_dev(d.as_bytes()), Ok(x));
        let vd = xs::vdev_value(x);
        let want = format!(
            "{:04x}:{:02x}:{:02x}.{:02x}",
            x.domain(),
            x.bus(),
            x.slot(),
            x.func()
        );
        assert_eq!(vd.as_str(), want);
        assert_eq!(xs::parse_vdev(vd.as_bytes()), Ok(x));
    }
    let root = xs::parse_root(v);
    assert_eq!(root, parse_bus_addr(v));
    if let Ok(a) = root {
        let r = xs::root_value(a);
        assert_eq!(r.as_str(), format!("{:04x}:{:02x}", a.domain, a.bus));
        assert_eq!(xs::parse_root(r.as_bytes()), Ok(a));
    }
}

/// `parse_opts` as documented; errors as (kind, offset, item).
fn opts_oracle(v: &[u8]) -> Result<Opts, (ErrorKind, usize, &[u8])> {
    let (base, s) = c_trim(v);
    let mut opts = Opts::default();
    let mut at = base;
    for item in s.split(|&c| c == b',') {
        let start = at;
        at += item.len() + 1;
        if item.is_empty() {
            continue;
        }
        let Some(eq) = item.iter().position(|&c| c == b'=') else {
            return Err((ErrorKind::MissingEquals, start + item.len(), item));
        };
        let (key, val) = (&item[..eq], &item[eq + 1..]);
        let bad = (ErrorKind::BadOptionValue, start + eq + 1, item);
        let dup = (ErrorKind::DuplicateOption, start, item);
        let flag = |slot: &mut Option<bool>| {
            if slot.is_some() {
                return Err(dup);
            }
            *slot = Some(match val {
                b"0" => false,
                b"1" => true,
                _ => return Err(bad),
            });
            Ok(())
        };
        match key {
            b"permissive" => flag(&mut opts.permissive)?,
            b"msitranslate" => flag(&mut opts.msitranslate)?,
            b"power_mgmt" => flag(&mut opts.power_mgmt)?,
            b"rdm_policy" => {
                if opts.rdm_policy.is_some() {
                    return Err(dup);
                }
                opts.rdm_policy = Some(match val {
                    b"strict" | b"0" => RdmPolicy::Strict,
                    b"relaxed" | b"1" => RdmPolicy::Relaxed,
                    b"invalid" | b"-1" => RdmPolicy::Invalid,
                    _ => return Err(bad),
                });
            }
            _ => {}
        }
    }
    Ok(opts)
}

fn check_opts(v: &[u8]) {
    let got = xs::parse_opts(v);
    let want = opts_oracle(v);
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parse_opts({v:?})"),
        (Err(e), Err((kind, offset, item))) => {
            assert_eq!(
                (e.kind, e.offset, e.context),
                (*kind, *offset, *item),
                "parse_opts({v:?})"
            );
            check_error(v, e);
        }
        _ => panic!("parse_opts({v:?}): got {got:?}, expected {want:?}"),
    }
}

fn check_keys(n: u32) {
    let kinds = [
        (IndexedKey::Dev, "dev-"),
        (IndexedKey::Vdev, "vdev-"),
        (IndexedKey::State, "state-"),
        (IndexedKey::Opts, "opts-"),
        (IndexedKey::Key, "key-"),
        (IndexedKey::Root, "root-"),
        (IndexedKey::Vdevfn, "vdevfn-"),
        (IndexedKey::Name, "name-"),
    ];
    for (kind, prefix) in kinds {
        assert_eq!(kind.prefix(), prefix);
        let k = xs::key(kind, n);
        let want = format!("{prefix}{n}");
        assert_eq!(k.as_str(), want);
        assert_eq!(k.len(), want.len());
        assert_eq!(k.as_bytes_with_nul(), format!("{want}\0").as_bytes());
        assert_eq!(k.as_cstr().map(|c| c.to_bytes()), Some(want.as_bytes()));
    }
    let named = [
        (xs::dev_key(n), IndexedKey::Dev),
        (xs::vdev_key(n), IndexedKey::Vdev),
        (xs::state_key(n), IndexedKey::State),
        (xs::opts_key(n), IndexedKey::Opts),
        (xs::key_key(n), IndexedKey::Key),
        (xs::root_key(n), IndexedKey::Root),
    ];
    for (k, kind) in named {
        assert_eq!(k, xs::key(kind, n));
    }
}

/// The caller-buffer writers never write past their buffer and fail exactly
/// when the text does not fit.
fn check_writers(v: &[u8]) {
    let text = match std::str::from_utf8(v) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&v[..e.valid_up_to()]).unwrap_or(""),
    };
    let cap = usize::from(v.first().copied().unwrap_or(0) % 64);
    let mut buf = [0xa5u8; 80];
    let r = xs::format_into(&mut buf[..cap], format_args!("{text}"));
    if text.len() <= cap {
        assert_eq!(r, Ok(text.len()));
        assert_eq!(&buf[..text.len()], text.as_bytes());
    } else {
        assert!(r.is_err(), "format_into of {} bytes into {cap}", text.len());
    }
    assert!(
        buf[cap..].iter().all(|&c| c == 0xa5),
        "format_into wrote past its slice"
    );

    let sb = StackBuf::<32>::format(format_args!("{text}"));
    if text.len() < 32 {
        let sb = sb.expect("fits");
        assert_eq!(sb.as_str(), text);
        assert_eq!(sb.as_bytes_with_nul(), format!("{text}\0").as_bytes());
        assert_eq!(sb.as_cstr().is_some(), !text.contains('\0'));
    } else {
        assert!(sb.is_err(), "StackBuf<32> took {} bytes", text.len());
    }
    let mut sb = StackBuf::<8>::new();
    let fits = text.len() < 8;
    assert_eq!(sb.write_str(text).is_ok(), fits);
    assert_eq!(sb.len(), if fits { text.len() } else { 0 });
}

// ---------------------------------------------------------------------------
// Target policy: vbus.rs, aer.rs, roundtrip.rs, ratelimit.rs
// ---------------------------------------------------------------------------

/// The first byte picks one of: virtual-bus slot allocation, passthrough
/// roots, the AER answers and outcomes, the backend's AER wait, the
/// frontend's round trip, the log rate limit.
pub fn policy(data: &[u8]) {
    let mut b = Bytes::new(data);
    match b.u8() % 6 {
        0 => vbus_ops(&mut b),
        1 => passthrough_roots(&mut b),
        2 => aer_answers(&mut b),
        3 => aer_wait(&mut b),
        4 => round_trip(&mut b),
        _ => rate_limit(&mut b),
    }
}

/// A host function from 2 bytes: a few domains and buses, any devfn.
fn host_bdf(b: &mut Bytes<'_>) -> Bdf {
    let x = b.u8();
    Bdf::from_devfn(u16::from(x >> 4 & 3), x & 0xf, b.u8())
}

struct Exported {
    guest: Bdf,
    host: Bdf,
    vf0: bool,
}

/// One virtual slot as the reference sees it: a host function in it, whether
/// it holds an SR-IOV VF at function 0, the functions taken.
#[derive(Clone, Copy, Default)]
struct RefSlot {
    host: Option<Bdf>,
    vf0: bool,
    funcs: u8,
}

fn ref_slots(exp: &[Exported]) -> [RefSlot; VBUS_SLOTS] {
    let mut slots = [RefSlot::default(); VBUS_SLOTS];
    for e in exp {
        let s = &mut slots[usize::from(e.guest.slot())];
        if let Some(h) = s.host {
            assert!(
                h.same_slot(e.host),
                "virtual slot {} mixes host slots",
                e.guest.slot()
            );
        }
        s.host = Some(e.host);
        s.vf0 |= e.vf0;
        s.funcs |= 1 << e.guest.func();
    }
    slots
}

/// `VirtualBus::add` as documented.
fn add_oracle(exp: &[Exported], host: Bdf, kind: DevKind) -> Result<Bdf, VbusError> {
    if kind == DevKind::Bridge {
        return Err(VbusError::Bridge);
    }
    if exp.iter().any(|e| e.host == host) {
        return Err(VbusError::Duplicate);
    }
    let vf0 = kind == DevKind::SriovVf && host.func() == 0;
    let at = |slot: usize| Bdf::new(0, 0, slot as u8, host.func()).expect("slot < 32");
    let slots = ref_slots(exp);
    if !vf0 {
        let join = slots.iter().position(|s| {
            !s.vf0 && s.host.is_some_and(|h| h.same_slot(host)) && s.funcs & (1 << host.func()) == 0
        });
        if let Some(slot) = join {
            return Ok(at(slot));
        }
    }
    slots
        .iter()
        .position(|s| s.host.is_none())
        .map(at)
        .ok_or(VbusError::Full)
}

fn vbus_ops(b: &mut Bytes<'_>) {
    let mut vb = VirtualBus::new();
    let mut exp: Vec<Exported> = Vec::new();
    let mut ops = 0;
    while !b.is_empty() && ops < 128 {
        ops += 1;
        let op = b.u8();
        match op % 3 {
            0 => {
                let kind = match (op >> 2) % 4 {
                    1 => DevKind::Bridge,
                    2 => DevKind::SriovVf,
                    _ => DevKind::Normal,
                };
                let host = host_bdf(b);
                let want = add_oracle(&exp, host, kind);
                assert_eq!(vb.add(host, kind), want, "add({host}, {kind:?})");
                if let Ok(guest) = want {
                    let vf0 = kind == DevKind::SriovVf && host.func() == 0;
                    exp.push(Exported { guest, host, vf0 });
                }
            }
            1 => {
                let bus = (op >> 2) & 1;
                let guest = Bdf::from_devfn(0, bus, b.u8());
                let at = exp.iter().position(|e| e.guest == guest);
                let want = at.map(|i| exp.remove(i).host);
                assert_eq!(vb.remove(guest), want, "remove({guest})");
            }
            _ => {
                let host = host_bdf(b);
                let at = exp.iter().position(|e| e.host == host);
                let want = at.map(|i| exp.remove(i).guest);
                assert_eq!(vb.remove_host(host), want, "remove_host({host})");
            }
        }
        let listed: Vec<(Bdf, Bdf)> = vb.iter().map(|e| (e.guest, e.host)).collect();
        let mut want: Vec<(Bdf, Bdf)> = exp.iter().map(|e| (e.guest, e.host)).collect();
        want.sort();
        assert_eq!(listed, want, "exports");
        assert_eq!((vb.len(), vb.is_empty()), (exp.len(), exp.is_empty()));
        assert_eq!(vb.root(), (!exp.is_empty()).then_some(VBUS_ROOT));
        let used = ref_slots(&exp).iter().filter(|s| s.host.is_some()).count();
        assert_eq!(vb.slots_used(), used);
        for &(g, h) in &listed {
            assert_eq!(vb.host_of(g), Some(h));
            assert_eq!((g.bus_addr(), g.func()), (VBUS_ROOT, h.func()));
        }
    }
    for e in vb.iter() {
        assert_eq!(vb.guest_of(e.host), Some(e.guest));
    }
}

fn passthrough_roots(b: &mut Bytes<'_>) {
    let mut roots = RootSet::new();
    for i in 0..b.u8() {
        assert_eq!(roots.insert(BusAddr::new(0xffff, i)), Ok(true));
    }
    let mut devices: Vec<(Bdf, Vec<Bdf>)> = Vec::new();
    for _ in 0..b.u8() % 16 {
        let d = host_bdf(b);
        let ups = (0..b.u8() % 4).map(|_| host_bdf(b)).collect();
        devices.push((d, ups));
    }
    let exported: Vec<Bdf> = devices.iter().map(|d| d.0).collect();
    let mut want: Vec<BusAddr> = roots.as_slice().to_vec();
    let mut added = 0usize;
    let mut result = Ok(());
    for (d, ups) in &devices {
        assert_eq!(
            vbus::any_exported(ups, &exported),
            ups.iter().any(|u| exported.contains(u))
        );
        let hidden = devices
            .iter()
            .filter(|(x, _)| x == d)
            .any(|(_, ups)| ups.iter().any(|u| exported.contains(u)));
        let r = d.bus_addr();
        if hidden || want.contains(&r) {
            continue;
        }
        if want.len() == ROOTS_MAX {
            result = Err(VbusError::RootsFull);
            break;
        }
        want.push(r);
        added += 1;
    }
    let chains: Vec<(Bdf, &[Bdf])> = devices.iter().map(|(d, u)| (*d, u.as_slice())).collect();
    let got = vbus::passthrough_roots_from_chains(&chains, &mut roots);
    assert_eq!(
        got,
        result.map(|()| added),
        "passthrough roots of {devices:?}"
    );
    assert_eq!(roots.as_slice(), &want[..]);
    assert_eq!(roots.len(), want.len());
    assert!(roots.iter().all(|&r| roots.contains(r)));
}

fn aer_step(x: u8) -> AerStep {
    match x % 6 {
        0 => AerStep::ErrorDetected(ChannelState::Normal),
        1 => AerStep::ErrorDetected(ChannelState::Frozen),
        2 => AerStep::ErrorDetected(ChannelState::PermFailure),
        3 => AerStep::MmioEnabled,
        4 => AerStep::SlotReset,
        _ => AerStep::Resume,
    }
}

/// A raw `pci_ers_result_t`: mostly a real one, sometimes any number.
fn raw_result(b: &mut Bytes<'_>) -> i32 {
    let x = b.u8();
    if x & 0x80 != 0 {
        b.u32() as i32
    } else {
        i32::from(x % 8)
    }
}

fn aer_answers(b: &mut Bytes<'_>) {
    let step = aer_step(b.u8());
    assert!(step.command().is_aer());
    assert!((1..=3).contains(&step.posted_err()));
    if let AerStep::ErrorDetected(s) = step {
        assert_eq!(step.posted_err(), s.raw() as i32);
        assert_eq!(ChannelState::from_raw(s.raw()), Some(s));
    }
    let default = match step {
        AerStep::ErrorDetected(_) => ErsResult::CanRecover,
        _ => ErsResult::Recovered,
    };
    assert_eq!(step.default_result(), default);

    let raw = raw_result(b);
    let vote = match raw {
        1 => ErsResult::None,
        2 => ErsResult::CanRecover,
        3 => ErsResult::NeedReset,
        4 => ErsResult::Disconnect,
        5 => ErsResult::Recovered,
        _ => ErsResult::None,
    };
    assert_eq!(aer::guest_vote(raw), vote, "guest_vote({raw})");
    if let Some(r) = ErsResult::from_raw(raw) {
        assert_eq!(r.raw(), raw);
    }

    // The frontend's answer.
    let driver_vote = ErsResult::from_raw(i32::from(b.u8() % 6) + 1).expect("1..=6");
    let outcome = match b.u8() % 6 {
        0 => DriverOutcome::NoDevice,
        1 => DriverOutcome::NoDriver,
        2 => DriverOutcome::NoErrorDetected,
        3 => DriverOutcome::NoHandler,
        4 => DriverOutcome::Voted(driver_vote),
        _ => DriverOutcome::Resumed,
    };
    let want = match (step, outcome) {
        (AerStep::Resume, _) => ErsResult::None,
        (_, DriverOutcome::Voted(v)) => v,
        (AerStep::MmioEnabled | AerStep::SlotReset, DriverOutcome::NoHandler) => {
            ErsResult::Recovered
        }
        _ => ErsResult::None,
    };
    assert_eq!(
        aer::frontend_answer(step, outcome),
        want,
        "frontend_answer({step:?}, {outcome:?})"
    );

    // The backend's outcome.
    let delivery = match b.u8() % 6 {
        0 => Delivery::NotExported,
        1 => Delivery::NotConnected,
        2 => Delivery::NoHandler,
        3 => Delivery::Busy,
        4 => Delivery::Answered(raw),
        _ => Delivery::NoAnswer,
    };
    let (result, mark) = documented_outcome(step, delivery);
    let got = aer::backend_outcome(step, delivery);
    assert_eq!(
        (got.result, got.mark_failed),
        (result, mark),
        "backend_outcome({step:?}, {delivery:?})"
    );
    assert_ne!(
        got.result,
        ErsResult::NoAerDriver,
        "a guest answer reached dom0 as NO_AER_DRIVER"
    );
}

/// A step of dom0's recovery as the AER outcome table tells them apart: the
/// documented rules do not depend on the channel state of `error_detected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    Detected,
    Mmio,
    SlotReset,
    Resume,
}

/// What became of a step's request as the AER outcome table tells them apart:
/// an answer by the number the guest wrote (`enum pci_ers_result`,
/// `include/linux/pci.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeliveryKind {
    NotExported,
    NotConnected,
    NoHandler,
    Busy,
    NoAnswer,
    /// 1, `PCI_ERS_RESULT_NONE`.
    AnswerNone,
    /// 2, `PCI_ERS_RESULT_CAN_RECOVER`.
    AnswerCanRecover,
    /// 3, `PCI_ERS_RESULT_NEED_RESET`.
    AnswerNeedReset,
    /// 4, `PCI_ERS_RESULT_DISCONNECT`.
    AnswerDisconnect,
    /// 5, `PCI_ERS_RESULT_RECOVERED`.
    AnswerRecovered,
    /// 6, `PCI_ERS_RESULT_NO_AER_DRIVER` (the PCI core's verdict, never a
    /// driver's vote).
    AnswerNoAerDriver,
    /// Any other number: no `pci_ers_result_t` at all.
    AnswerOther,
}

/// The documented outcome of every step for every delivery: the result dom0's
/// recovery gets, and whether the guest is marked failed (`aerState =
/// aerfail`). Written from the documentation and the C driver, not from
/// `aer::backend_outcome`; each row cites its rule:
///
/// - `[D]` the default result: `CAN_RECOVER` for `error_detected`,
///   `RECOVERED` for the other steps (status.rst, "PCIe AER", "A device not
///   exported to a guest"; C: the `result` each `xen_pcibk_*` handler of
///   `pci_stub.c` starts from, and the one `xen_pcibk_error_resume` passes).
/// - `[X]` a device no guest holds: `[D]`, not marked (status.rst, "A device
///   not exported to a guest"; admin-guide.rst, "not exported to a guest":
///   information; C: `!psdev->pdev`, `goto end`).
/// - `[C]` an exported device whose guest is not connected: `[D]`, marked at
///   every step (status.rst, "A guest without an AER handler, or not
///   connected"; admin-guide.rst, "is not connected": marked; C: `!sh_info`,
///   `kill_domain_by_device` in all four handlers).
/// - `[H]` a guest without `_XEN_PCIB_AERHANDLER`: `[D]`, marked at
///   `error_detected` and `resume`, only logged at `mmio_enabled` and
///   `slot_reset` (status.rst, same section; admin-guide.rst, "has no AER
///   handler"; aer.rs, `backend_outcome`; C: `kill_domain_by_device` in
///   `xen_pcibk_error_detected` and `xen_pcibk_error_resume`, "should have
///   been killed" in the other two).
/// - `[B]` an earlier request still unanswered: not posted, `[D]`, not marked
///   (aer.rs module documentation and `Delivery::Busy`; status.rst, "later
///   steps are not posted at all and get the default result"; admin-guide.rst,
///   "has not answered an earlier request": default result). Not in C, which
///   withdraws the request at its timeout.
/// - `[T]` posted, no answer: `[D]`, not marked (status.rst, "A guest that does
///   not answer gets the default result, as C, and is not marked";
///   admin-guide.rst, "no answer from guest": default result, not marked; C:
///   `common_process` returns its `result` argument at the timeout, which is
///   neither `NONE` nor `DISCONNECT`).
/// - `[V]` an answer to `error_detected`, `mmio_enabled` or `slot_reset` is
///   dom0's vote: 1..=5 as they are, anything else counts as `NONE` (status.rst,
///   "it is dom0's vote for the device" and "Where C differs: an answer that is
///   not a driver's vote (not 1..5) counts as NONE"; admin-guide.rst, "guest
///   answered <n>": "anything else counts as none"; aer.rs, `guest_vote`; C:
///   `aer_op->err` as it is).
/// - `[M]` an answer of `NONE` or `DISCONNECT`, or one that counts as `NONE`,
///   marks the guest; the others do not (status.rst, "A guest that answers
///   NONE or DISCONNECT is marked failed"; admin-guide.rst, "none or
///   disconnect marks the guest"; C: `result == PCI_ERS_RESULT_NONE || result
///   == PCI_ERS_RESULT_DISCONNECT`, `kill_domain_by_device`).
/// - `[R]` the answer to `resume` is ignored, whatever it is: `[D]`, not marked
///   (admin-guide.rst, "except at resume, whose answer is ignored"; aer.rs,
///   `backend_outcome`; C: `xen_pcibk_error_resume` drops what
///   `common_process` returns and kills nothing after it).
const AER_OUTCOMES: &[(StepKind, DeliveryKind, ErsResult, bool)] = {
    use DeliveryKind::*;
    use StepKind::*;
    const NONE: ErsResult = ErsResult::None;
    const CAN_RECOVER: ErsResult = ErsResult::CanRecover;
    const NEED_RESET: ErsResult = ErsResult::NeedReset;
    const DISCONNECT: ErsResult = ErsResult::Disconnect;
    const RECOVERED: ErsResult = ErsResult::Recovered;
    /// The guest is marked failed.
    const MARK: bool = true;
    /// It is not.
    const KEEP: bool = false;
    &[
        // error_detected: the default result is CAN_RECOVER.
        (Detected, NotExported, CAN_RECOVER, KEEP),  // [X]
        (Detected, NotConnected, CAN_RECOVER, MARK), // [C]
        (Detected, NoHandler, CAN_RECOVER, MARK),    // [H]
        (Detected, Busy, CAN_RECOVER, KEEP),         // [B]
        (Detected, NoAnswer, CAN_RECOVER, KEEP),     // [T]
        (Detected, AnswerNone, NONE, MARK),          // [V] [M]
        (Detected, AnswerCanRecover, CAN_RECOVER, KEEP), // [V] [M]
        (Detected, AnswerNeedReset, NEED_RESET, KEEP), // [V] [M]
        (Detected, AnswerDisconnect, DISCONNECT, MARK), // [V] [M]
        (Detected, AnswerRecovered, RECOVERED, KEEP), // [V] [M]
        (Detected, AnswerNoAerDriver, NONE, MARK),   // [V] [M]
        (Detected, AnswerOther, NONE, MARK),         // [V] [M]
        // mmio_enabled: the default result is RECOVERED.
        (Mmio, NotExported, RECOVERED, KEEP),        // [X]
        (Mmio, NotConnected, RECOVERED, MARK),       // [C]
        (Mmio, NoHandler, RECOVERED, KEEP),          // [H]
        (Mmio, Busy, RECOVERED, KEEP),               // [B]
        (Mmio, NoAnswer, RECOVERED, KEEP),           // [T]
        (Mmio, AnswerNone, NONE, MARK),              // [V] [M]
        (Mmio, AnswerCanRecover, CAN_RECOVER, KEEP), // [V] [M]
        (Mmio, AnswerNeedReset, NEED_RESET, KEEP),   // [V] [M]
        (Mmio, AnswerDisconnect, DISCONNECT, MARK),  // [V] [M]
        (Mmio, AnswerRecovered, RECOVERED, KEEP),    // [V] [M]
        (Mmio, AnswerNoAerDriver, NONE, MARK),       // [V] [M]
        (Mmio, AnswerOther, NONE, MARK),             // [V] [M]
        // slot_reset: the default result is RECOVERED.
        (SlotReset, NotExported, RECOVERED, KEEP),  // [X]
        (SlotReset, NotConnected, RECOVERED, MARK), // [C]
        (SlotReset, NoHandler, RECOVERED, KEEP),    // [H]
        (SlotReset, Busy, RECOVERED, KEEP),         // [B]
        (SlotReset, NoAnswer, RECOVERED, KEEP),     // [T]
        (SlotReset, AnswerNone, NONE, MARK),        // [V] [M]
        (SlotReset, AnswerCanRecover, CAN_RECOVER, KEEP), // [V] [M]
        (SlotReset, AnswerNeedReset, NEED_RESET, KEEP), // [V] [M]
        (SlotReset, AnswerDisconnect, DISCONNECT, MARK), // [V] [M]
        (SlotReset, AnswerRecovered, RECOVERED, KEEP), // [V] [M]
        (SlotReset, AnswerNoAerDriver, NONE, MARK), // [V] [M]
        (SlotReset, AnswerOther, NONE, MARK),       // [V] [M]
        // resume: the default result is RECOVERED.
        (Resume, NotExported, RECOVERED, KEEP),       // [X]
        (Resume, NotConnected, RECOVERED, MARK),      // [C]
        (Resume, NoHandler, RECOVERED, MARK),         // [H]
        (Resume, Busy, RECOVERED, KEEP),              // [B]
        (Resume, NoAnswer, RECOVERED, KEEP),          // [T]
        (Resume, AnswerNone, RECOVERED, KEEP),        // [R]
        (Resume, AnswerCanRecover, RECOVERED, KEEP),  // [R]
        (Resume, AnswerNeedReset, RECOVERED, KEEP),   // [R]
        (Resume, AnswerDisconnect, RECOVERED, KEEP),  // [R]
        (Resume, AnswerRecovered, RECOVERED, KEEP),   // [R]
        (Resume, AnswerNoAerDriver, RECOVERED, KEEP), // [R]
        (Resume, AnswerOther, RECOVERED, KEEP),       // [R]
    ]
};

fn step_kind(step: AerStep) -> StepKind {
    match step {
        AerStep::ErrorDetected(_) => StepKind::Detected,
        AerStep::MmioEnabled => StepKind::Mmio,
        AerStep::SlotReset => StepKind::SlotReset,
        AerStep::Resume => StepKind::Resume,
    }
}

fn delivery_kind(delivery: Delivery) -> DeliveryKind {
    match delivery {
        Delivery::NotExported => DeliveryKind::NotExported,
        Delivery::NotConnected => DeliveryKind::NotConnected,
        Delivery::NoHandler => DeliveryKind::NoHandler,
        Delivery::Busy => DeliveryKind::Busy,
        Delivery::NoAnswer => DeliveryKind::NoAnswer,
        Delivery::Answered(1) => DeliveryKind::AnswerNone,
        Delivery::Answered(2) => DeliveryKind::AnswerCanRecover,
        Delivery::Answered(3) => DeliveryKind::AnswerNeedReset,
        Delivery::Answered(4) => DeliveryKind::AnswerDisconnect,
        Delivery::Answered(5) => DeliveryKind::AnswerRecovered,
        Delivery::Answered(6) => DeliveryKind::AnswerNoAerDriver,
        Delivery::Answered(_) => DeliveryKind::AnswerOther,
    }
}

/// The row of [`AER_OUTCOMES`] for a step and a delivery: (result, marked).
fn documented_outcome(step: AerStep, delivery: Delivery) -> (ErsResult, bool) {
    let (s, d) = (step_kind(step), delivery_kind(delivery));
    let mut rows = AER_OUTCOMES.iter().filter(|r| r.0 == s && r.1 == d);
    let row = rows
        .next()
        .unwrap_or_else(|| panic!("no AER row for {s:?}, {d:?}"));
    assert!(rows.next().is_none(), "two AER rows for {s:?}, {d:?}");
    (row.2, row.3)
}

/// The backend's view of the page during an AER wait, scripted by the input.
struct AerPage<'a, 'b> {
    b: &'b mut Bytes<'a>,
    now: u64,
    start: Option<u64>,
    last_active: Option<Option<bool>>,
    last_sleep: Option<bool>,
}

impl AerWait for AerPage<'_, '_> {
    fn active(&mut self) -> Option<bool> {
        let r = if self.b.is_empty() {
            Some(true)
        } else {
            match self.b.u8() {
                0 => Some(false),
                1 => None,
                _ => Some(true),
            }
        };
        self.last_active = Some(r);
        r
    }

    fn sleep(&mut self, ms: u64) -> bool {
        let start = self.start.expect("sleep before the clock was read");
        let remaining = AER_TIMEOUT_MS - (self.now - start);
        assert!(
            (1..=AER_WAIT_SLICE_MS).contains(&ms) && ms <= remaining,
            "AER wait sleeps {ms} ms with {remaining} ms left"
        );
        let (advance, ok) = if self.b.is_empty() {
            (ms, true)
        } else {
            let x = self.b.u8();
            (u64::from(x) % (ms + 1), x != 0xff)
        };
        self.now += advance;
        self.last_sleep = Some(ok);
        ok
    }

    fn now_ms(&mut self) -> u64 {
        self.start.get_or_insert(self.now);
        self.now
    }
}

fn aer_wait(b: &mut Bytes<'_>) {
    let now = b.u64() >> 1;
    let mut page = AerPage {
        b,
        now,
        start: None,
        last_active: None,
        last_sleep: None,
    };
    let end = aer::wait_answer(&mut page);
    let elapsed = page.now - page.start.expect("clock read");
    assert!(
        elapsed <= AER_TIMEOUT_MS,
        "AER wait overslept: {elapsed} ms"
    );
    match end {
        WaitEnd::Answered => assert_eq!(page.last_active, Some(Some(false))),
        WaitEnd::Disconnected => assert_eq!(page.last_active, Some(None)),
        WaitEnd::TimedOut => assert!(elapsed >= AER_TIMEOUT_MS, "timed out after {elapsed} ms"),
        WaitEnd::Interrupted => assert_eq!(page.last_sleep, Some(false)),
    }
}

/// The frontend's page and event channel, with a backend scripted by the input.
struct Chan<'a, 'b> {
    b: &'b mut Bytes<'a>,
    now: u64,
    start: Option<u64>,
    active: bool,
    err: i32,
    posts: u32,
    wrote: Option<bool>,
    pending_cleared: bool,
    checked_after_clear: bool,
    last_active: Option<bool>,
    last_err: Option<i32>,
    /// Time spent in spin turns, how many there were, and the longest turn.
    spun: u64,
    turns: u64,
    longest_turn: u64,
    /// After the answer: whether its signal was looked for, the pauses of the wait for it, and
    /// the clears of the flag then.
    signal_phase: bool,
    signal_spun: u64,
    signal_cleared: u64,
    /// Whether the backend signalled its last answer, and whether the last look at the flag
    /// found it set.
    answer_signalled: bool,
    saw_pending: bool,
    yields: u32,
    longest_yield: u64,
    polls: u32,
    may_yield: bool,
    may_watch: bool,
    /// `_XEN_PCIF_watching`, and the posts that set it.
    watching: bool,
    watched: u32,
    /// Signals of a request left posted.
    notifies: u32,
    /// The first look at the bit, and when (and after how many polls) a request left posted
    /// was handed over.
    first_look: Option<bool>,
    earlier_at: Option<(u64, u32)>,
}

impl Channel for Chan<'_, '_> {
    fn write_request(&mut self) -> bool {
        assert!(
            !self.active,
            "request written while the previous one is posted"
        );
        let ok = self.b.is_empty() || self.b.u8() != 0xff;
        if ok {
            self.posts += 1;
            assert!(self.posts <= MAX_POSTS, "posted {} times", self.posts);
            self.err = ERR_UNANSWERED;
        }
        self.wrote = Some(ok);
        ok
    }

    fn set_active_and_notify(&mut self, watching: bool) {
        assert_eq!(
            self.wrote,
            Some(true),
            "active set without a request written"
        );
        assert!(!self.watching, "posted while still watching");
        self.active = true;
        self.watching = watching;
        self.watched += u32::from(watching);
    }

    fn stop_watching(&mut self) -> bool {
        assert!(self.watching, "stopped watching without watching");
        // The backend may answer just before the step that stops the watch (unsignalled, the
        // bit still set): the frontend must see it without polling.
        if self.active && !self.b.is_empty() && self.b.u8() % 4 == 0 {
            self.err = -i32::from(self.b.u8());
            self.active = false;
            self.answer_signalled = false;
        }
        self.watching = false;
        self.active
    }

    fn active(&mut self) -> bool {
        if self.active && !self.b.is_empty() {
            match self.b.u8() % 4 {
                0 => {
                    // The backend answers (0, a XEN_PCI_ERR_* or an errno), signalling it
                    // unless asked not to.
                    self.err = -i32::from(self.b.u8());
                    self.active = false;
                    self.answer_signalled = !self.watching;
                }
                1 => self.active = false, // cleared without an answer
                _ => {}
            }
        }
        if self.pending_cleared {
            self.checked_after_clear = true;
        }
        self.first_look.get_or_insert(self.active);
        self.last_active = Some(self.active);
        self.active
    }

    fn notify(&mut self) {
        assert!(
            self.active && self.posts == 0,
            "signalled again without a request left posted"
        );
        self.notifies += 1;
    }

    fn earlier_answered(&mut self) {
        assert!(
            !self.active && self.posts == 0 && self.earlier_at.is_none(),
            "an earlier answer handed over with the bit set, after a post, or twice"
        );
        self.earlier_at = Some((self.now, self.polls));
    }

    fn err(&mut self) -> i32 {
        self.last_err = Some(self.err);
        self.err
    }

    fn clear_pending(&mut self) {
        if self.signal_phase {
            assert!(self.saw_pending, "cleared a flag not seen set");
            self.signal_cleared += 1;
            return;
        }
        self.pending_cleared = true;
        self.checked_after_clear = false;
    }

    fn pending(&mut self) -> bool {
        // Only ever looked at after an answer, to take its signal.
        assert!(
            !self.active && self.err != ERR_UNANSWERED,
            "looked for an answer's signal without an answer"
        );
        self.signal_phase = true;
        // Set at any look if the answer was signalled (by a later one at the latest, when the
        // bytes run out), or by some earlier event.
        self.saw_pending = if self.b.is_empty() {
            self.answer_signalled
        } else {
            self.b.u8() % 2 == 0
        };
        self.saw_pending
    }

    fn poll(&mut self, ns: u64) {
        // A backend that sees the bit does not signal its answer: the poll would sleep through it.
        assert!(!self.watching, "polled while asking for no event");
        // Nor may an answer already there (an unsignalled one, say) be waited for.
        assert!(self.active, "polled for an answer already there");
        assert!(
            self.pending_cleared && self.checked_after_clear,
            "poll without clearing the event and checking again"
        );
        let start = self.start.expect("poll before the clock was read");
        let remaining = OP_TIMEOUT_NS - (self.now - start);
        assert!(
            (1..=POLL_SLICE_NS).contains(&ns) && ns <= remaining,
            "poll of {ns} ns with {remaining} ns left"
        );
        self.pending_cleared = false;
        self.polls += 1;
        let advance = if self.b.is_empty() {
            ns
        } else {
            u64::from(self.b.u8()) * ns / 255
        };
        self.now += advance;
    }

    fn relax(&mut self) {
        let turn = if self.b.is_empty() {
            1_000
        } else {
            u64::from(self.b.u8()) + 1
        };
        self.now += turn;
        if self.signal_phase {
            self.signal_spun += turn;
            return;
        }
        self.spun += turn;
        self.turns += 1;
        self.longest_turn = self.longest_turn.max(turn);
    }

    fn yield_cpu(&mut self) {
        assert!(self.active, "yield without a posted request");
        self.yields += 1;
        // Another vCPU may run for a while.
        let ran = if self.b.is_empty() {
            0
        } else {
            u64::from(self.b.u8()) << 8
        };
        self.now += ran;
        self.longest_yield = self.longest_yield.max(ran);
    }

    fn may_yield(&mut self) -> bool {
        self.may_yield
    }

    fn may_watch(&mut self) -> bool {
        self.may_watch
    }

    fn now_ns(&mut self) -> u64 {
        self.start.get_or_insert(self.now);
        self.now
    }
}

/// A channel with nothing posted yet and the clock at `now`, driven by `b`.
fn new_chan<'a, 'b>(
    b: &'b mut Bytes<'a>,
    now: u64,
    may_yield: bool,
    may_watch: bool,
) -> Chan<'a, 'b> {
    Chan {
        b,
        now,
        start: None,
        active: false,
        err: 0,
        posts: 0,
        wrote: None,
        pending_cleared: false,
        checked_after_clear: false,
        last_active: None,
        last_err: None,
        spun: 0,
        turns: 0,
        longest_turn: 0,
        signal_phase: false,
        signal_spun: 0,
        signal_cleared: 0,
        answer_signalled: false,
        saw_pending: false,
        yields: 0,
        longest_yield: 0,
        polls: 0,
        may_yield,
        may_watch,
        watching: false,
        watched: 0,
        notifies: 0,
        first_look: None,
        earlier_at: None,
    }
}

fn round_trip(b: &mut Bytes<'_>) {
    // A spin budget taught by a few round trips of any length (none: no spin).
    let mut spin = roundtrip::Spin::new();
    // Up to 510 of them: enough for a trial of the yield rule to end (33 round trips) and its
    // verdict to run out (256 more). Each yields as the rule says, unless the administrator's
    // switch is off for it.
    for _ in 0..u16::from(b.u8()) * 2 {
        let bits = b.u8();
        let yielded = spin.yields() && bits & 2 == 0;
        spin.note(b.u64() >> 40, bits & 1 != 0, yielded);
    }
    let now = b.u64() >> 1;
    let switches = b.u8();
    let (may_yield, may_watch) = (switches & 1 == 0, switches & 2 == 0);
    // An earlier round trip may have timed out with its request still posted (the backend may
    // answer it now): one whose backend never answers.
    let left_posted = switches & 4 != 0;
    if left_posted {
        let mut silent = Bytes::new(&[]);
        let mut c = new_chan(&mut silent, now, may_yield, may_watch);
        let out = roundtrip::round_trip(&mut c, &mut spin, &mut roundtrip::Counts::new());
        assert_eq!(out, roundtrip::Outcome::TimedOut);
        assert!(c.active);
    }
    let mut c = new_chan(b, now, may_yield, may_watch);
    c.active = left_posted;
    let budget = spin.budget_ns();
    let yields = spin.yields() && may_yield;
    let mut counts = roundtrip::Counts::new();
    let (before, wants) = (spin.rule().state(), spin.yields());
    let out = roundtrip::round_trip(&mut c, &mut spin, &mut counts);
    // The counts tell what happened: the yields, polls and posts made, and one outcome.
    assert_eq!(
        (counts.yields, counts.polls, counts.reposts),
        (
            u64::from(c.yields),
            u64::from(c.polls),
            u64::from(c.posts.saturating_sub(1))
        ),
        "{counts:?}"
    );
    let answered = out == roundtrip::Outcome::Answered;
    assert_eq!(
        (
            counts.answered,
            counts.timed_out,
            counts.unanswered,
            counts.busy
        ),
        (
            u64::from(answered),
            u64::from(out == roundtrip::Outcome::TimedOut),
            u64::from(out == roundtrip::Outcome::Unanswered),
            u64::from(out == roundtrip::Outcome::Busy)
        ),
        "{out:?}: {counts:?}"
    );
    // A request found posted at the first look (only ever one left by a timeout here) is
    // signalled again and waited for; a timed-out one is handed over once the bit is clear,
    // before any post.
    let found = c.first_look == Some(true);
    assert!(
        !found || left_posted,
        "found a request posted with none left"
    );
    assert_eq!(
        (counts.earlier_posted, u64::from(c.notifies)),
        (u64::from(found), u64::from(found))
    );
    assert_eq!(
        c.earlier_at.is_some(),
        left_posted && out != roundtrip::Outcome::Busy,
        "{out:?}"
    );
    // The signal's wait after an answer, at most its bound and the turn that crosses it, is
    // not the round trip's: it comes after the answer, which a spin that ends at the deadline
    // may already overrun.
    assert_eq!(
        (counts.signals_taken, c.signal_phase),
        (c.signal_cleared, answered),
        "the signal of an answer is looked for, and taken if it came: {counts:?}"
    );
    assert!(counts.signals_taken + counts.signals_late <= u64::from(answered));
    assert!(counts.signals_late <= counts.signals_waited);
    // A wait is a turn spun at least, and counts from its first clock read, after a turn.
    assert_eq!(counts.signals_waited, u64::from(c.signal_spun > 0));
    assert!(counts.signal_wait_ns <= c.signal_spun);
    if answered && c.answer_signalled {
        // A signalled answer's signal is taken, or waited for and counted late.
        assert_eq!(counts.signals_taken + counts.signals_late, 1, "{counts:?}");
    } else {
        // An unsignalled one's is not waited for (one set for another reason is taken).
        assert_eq!((counts.signals_late, c.signal_spun), (0, 0), "{counts:?}");
    }
    assert!(
        // A turn is 1000 ns at most (see `relax`): the wait's bound from its first clock read,
        // the turn before that read and the turn that crosses the bound.
        c.signal_spun <= spin.signal_wait_ns() + 2_000,
        "waited {} ns for a signal",
        c.signal_spun
    );
    let elapsed = c.now - c.start.expect("clock read") - c.signal_spun;
    if out == roundtrip::Outcome::Busy {
        // Still posted at the deadline: nothing written or posted.
        assert!(found && c.active, "busy without a request still posted");
        assert_eq!((c.posts, c.wrote), (0, None));
        assert!(elapsed >= OP_TIMEOUT_NS, "busy after {elapsed} ns");
        assert_eq!(spin.rule().state(), before);
        return;
    }
    // The round trip's own time and polls: from the handover, if any (it is where the time of
    // the request's own round trip starts).
    let (own_start, own_polls) = match c.earlier_at {
        Some((at, polls)) => (at, c.polls - polls),
        None => (c.start.expect("clock read"), c.polls),
    };
    assert_eq!(
        counts.answered_spinning,
        u64::from(answered && own_polls == 0)
    );
    // Each preempted spin in one bucket of its gap; at most one verdict, of an answered one.
    assert_eq!(counts.gaps.iter().sum::<u64>(), counts.preempted);
    assert!(counts.trials_yield + counts.trials_spin <= counts.answered);
    // The rule moved as its documentation says, by one answered round trip at most.
    let after = spin.rule().state();
    let trials = (2 * yieldtrial::TRIAL_TRIPS) as u64;
    let verdict = u64::from(yieldtrial::VERDICT_TRIPS);
    let (preempted, yielded) = (counts.preempted == 1, counts.yields > 0);
    let start = if preempted {
        ("trial", trials)
    } else {
        ("idle", 0)
    };
    let expected = match before {
        _ if !answered => before,
        ("idle", _) => start,
        ("trial", 1) if counts.trials_yield == 1 => ("yield", verdict),
        ("trial", 1) if counts.trials_spin == 1 => ("spin", verdict),
        // The switch kept the trial's post from yielding (a trial's posts yield as the rule
        // says, or not at all).
        ("trial", _) if wants && !yielded => ("idle", 0),
        ("trial", left) => ("trial", left - 1),
        ("yield" | "spin", 1) => start,
        (name, left) => (name, left - 1),
    };
    assert_eq!(after, expected, "{before:?} {counts:?}");
    assert!(counts.trials_yield + counts.trials_spin <= u64::from(after.1 == verdict));
    if budget == 0 {
        assert_eq!(c.spun, 0, "spun without a budget");
    }
    // Each post spins at most the budget, plus the turn that crosses it; none without one.
    assert!(
        c.spun <= u64::from(c.posts) * (budget + c.longest_turn),
        "spun {} ns, budget {budget} ns, {} posts",
        c.spun,
        c.posts
    );
    // Only a timeout leaves the request posted (the backend may be serving it).
    assert!(
        !c.active || out == roundtrip::Outcome::TimedOut,
        "round trip ended ({out:?}) with the request still posted"
    );
    // Every post that spins watches, if the switch allows; none other; none is left watching.
    assert!(!c.watching, "round trip ended ({out:?}) still watching");
    assert_eq!(
        c.watched,
        if budget > 0 && may_watch { c.posts } else { 0 },
        "{} watched posts of {}",
        c.watched,
        c.posts
    );
    assert_eq!(u64::from(c.watched), counts.watched);
    // A post yields once if the `Spin` said so and yielding is allowed, else not at all.
    assert_eq!(
        c.yields,
        if yields { c.posts } else { 0 },
        "{} yields of {} posts",
        c.yields,
        c.posts
    );
    // Polls stop at the deadline; a spin that ends there may overrun it by its last turn, a
    // yield by the time another vCPU ran.
    assert!(
        elapsed <= OP_TIMEOUT_NS + c.longest_turn + c.longest_yield,
        "{elapsed} ns"
    );
    // The spins' time within the round trip, and the answered round trip's within it and the
    // turn in which its spin saw the answer (counted to that turn's end, see `roundtrip`); a
    // look at the clock, each ending a turn of the spin's count, for each pause of the spins
    // and one more for each post at most (the look at which the budget ran out).
    assert!(
        counts.spin_ns <= elapsed,
        "spun {} of {elapsed} ns",
        counts.spin_ns
    );
    // The spins' time is that of their pauses, less at most the one after each spin's last
    // look (time passes here only in the fake's pauses, polls and yields).
    assert!(
        counts.spin_ns <= c.spun && c.spun <= counts.spin_ns + u64::from(c.posts) * c.longest_turn,
        "spin_ns {} of pauses {} ns ({} posts, longest {} ns)",
        counts.spin_ns,
        c.spun,
        c.posts,
        c.longest_turn
    );
    assert!(
        counts.answered_ns <= elapsed + c.longest_turn,
        "{} of {elapsed} ns",
        counts.answered_ns
    );
    if answered {
        // At most a turn away from the round trip's own time; exactly it when no spin paused
        // (the end is then a look at the clock).
        let own = c.now - c.signal_spun - own_start;
        assert!(
            own <= counts.answered_ns + c.longest_turn,
            "answered in {} of {own} ns",
            counts.answered_ns
        );
        if c.turns == 0 {
            assert_eq!(counts.answered_ns, own);
        }
    }
    assert!(
        counts.spin_turns <= c.turns + u64::from(c.posts),
        "{} looks, {} pauses",
        counts.spin_turns,
        c.turns
    );
    match out {
        roundtrip::Outcome::Answered => {
            assert_eq!(c.last_active, Some(false));
            assert!(
                c.last_err.is_some_and(|e| e != ERR_UNANSWERED),
                "answered without an answer"
            );
        }
        roundtrip::Outcome::TimedOut => {
            assert!(elapsed >= OP_TIMEOUT_NS, "timed out after {elapsed} ns")
        }
        roundtrip::Outcome::Unanswered => {
            assert_eq!(c.posts, MAX_POSTS);
            assert_eq!(c.last_err, Some(ERR_UNANSWERED));
        }
        roundtrip::Outcome::NotSent => assert_eq!(c.wrote, Some(false)),
        roundtrip::Outcome::Busy => unreachable!("returned above"),
    }
}

fn rate_limit(b: &mut Bytes<'_>) {
    let mut rl = RateLimit::new();
    let mut now = b.u64() >> 1;
    // Reference: the window start, lines printed in it, lines dropped since
    // the last one printed.
    let (mut start, mut printed, mut dropped): (Option<u64>, u32, u32) = (None, 0, 0);
    let mut ops = 0;
    while !b.is_empty() && ops < 1024 {
        ops += 1;
        let d = b.u16();
        now = if d & 0x8000 != 0 && d & 0x4000 != 0 {
            now.saturating_sub(u64::from(d & 0x3fff))
        } else {
            now.saturating_add(u64::from(d & 0x7fff))
        };
        if start.is_none_or(|s| now < s || now - s >= ratelimit::INTERVAL_MS) {
            start = Some(now);
            printed = 0;
        }
        let want = if printed < ratelimit::BURST {
            printed += 1;
            let n = dropped;
            dropped = 0;
            Verdict::Print { dropped: n }
        } else {
            dropped += 1;
            Verdict::Drop
        };
        assert_eq!(rl.check(now), want, "rate limit at {now} ms");
    }
}

#[cfg(test)]
mod tests {
    use super::{
        aer, delivery_kind, documented_outcome, step_kind, AerStep, ChannelState, Delivery,
        AER_OUTCOMES, TARGETS,
    };
    use std::collections::BTreeSet;
    use std::format;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::vec;
    use std::vec::Vec;

    fn corpus_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        files
    }

    /// Every file of `fuzz/corpus/<target>/` through its target: the corpus
    /// is a regression test of `cargo test` (and so of `make test`).
    #[test]
    fn fuzz_corpus_replays() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, run) in TARGETS {
            let files = corpus_files(&corpus.join(name));
            assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
            for f in &files {
                let data = fs::read(f).expect("corpus file");
                if std::panic::catch_unwind(|| run(&data)).is_err() {
                    panic!("{} fails its target {name}", f.display());
                }
            }
        }
        for e in fs::read_dir(&corpus).expect("fuzz/corpus") {
            let name = e.expect("directory entry").file_name();
            assert!(
                TARGETS.iter().any(|(n, _)| name == *n),
                "fuzz/corpus/{name:?} belongs to no target"
            );
        }
    }

    /// Every step (each channel state of `error_detected`) with every
    /// delivery, an answer of each kind by several numbers, against the table
    /// of the documented rules, which has one row for each.
    #[test]
    fn aer_backend_outcome_matches_the_documented_table() {
        let steps = [
            AerStep::ErrorDetected(ChannelState::Normal),
            AerStep::ErrorDetected(ChannelState::Frozen),
            AerStep::ErrorDetected(ChannelState::PermFailure),
            AerStep::MmioEnabled,
            AerStep::SlotReset,
            AerStep::Resume,
        ];
        let mut deliveries = vec![
            Delivery::NotExported,
            Delivery::NotConnected,
            Delivery::NoHandler,
            Delivery::Busy,
            Delivery::NoAnswer,
        ];
        deliveries.extend(
            [i32::MIN, -1, 0, 1, 2, 3, 4, 5, 6, 7, 0x100, i32::MAX].map(Delivery::Answered),
        );
        let mut used = BTreeSet::new();
        for step in steps {
            for delivery in deliveries.iter().copied() {
                let got = aer::backend_outcome(step, delivery);
                assert_eq!(
                    (got.result, got.mark_failed),
                    documented_outcome(step, delivery),
                    "backend_outcome({step:?}, {delivery:?})"
                );
                used.insert(format!(
                    "{:?} {:?}",
                    step_kind(step),
                    delivery_kind(delivery)
                ));
            }
        }
        assert_eq!(
            used.len(),
            AER_OUTCOMES.len(),
            "an AER row no input reaches"
        );
    }

    /// The targets take any input, even an empty one.
    #[test]
    fn fuzz_targets_take_short_inputs() {
        for (_, run) in TARGETS {
            for len in 0..64u8 {
                let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
                run(&data);
            }
        }
    }
}
