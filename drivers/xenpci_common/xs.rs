// SPDX-License-Identifier: GPL-2.0

//! Xenstore keys and values of the PCI backend and frontend directories.
//!
//! Backend directory `/local/domain/<be>/backend/pci/<fe>/0`: `num_devs`,
//! `dev-N` (host BDF), `state-N`, `opts-N`, `key-N`, `vdevfn-N`, `name-N`
//! (toolstack), `vdev-N`, `root_num`, `root-N` (backend). Frontend directory
//! `/local/domain/<fe>/device/pci/0`: `pci-op-ref`, `event-channel`, `magic`.
//!
//! Values are passed in as the bytes of the node, without any terminator.
//! Surrounding ASCII whitespace is accepted; anything else unexpected is an
//! error (a guest cannot write the backend's nodes, but toolstacks can be
//! buggy, and the frontend's nodes are written by the guest).

use core::ffi::CStr;
use core::fmt;

use super::bdf::{self, Bdf, BusAddr, ErrorKind, ParseError};

/// Backend node: number of `dev-N` entries.
pub(crate) const NUM_DEVS: &CStr = c"num_devs";
/// Backend node: number of `root-N` entries.
pub(crate) const ROOT_NUM: &CStr = c"root_num";
/// Frontend node: grant reference of the shared page.
pub(crate) const PCI_OP_REF: &CStr = c"pci-op-ref";
/// Frontend node: event channel port.
pub(crate) const EVENT_CHANNEL: &CStr = c"event-channel";
/// Frontend node: protocol version, must be [`super::pciif::XEN_PCI_MAGIC`].
pub(crate) const MAGIC: &CStr = c"magic";
/// Backend and frontend node: `1` if this end takes part in `_XEN_PCIF_watching` (see
/// [`super::pciif::XEN_PCIF_WATCHING_BIT`]); a frontend sets the bit only if the backend wrote
/// it, a backend honours the bit only if the frontend wrote it. Not in C, whose drivers neither
/// write nor read it.
pub(crate) const FEATURE_QUIET_ANSWERS: &CStr = c"feature-quiet-answers";
/// Whether a value of [`FEATURE_QUIET_ANSWERS`] says yes (`1`, as every boolean `feature-*`
/// key; anything else, or no key, is no).
pub(crate) fn feature_on(value: &[u8]) -> bool {
    bdf::trim(value).1 == b"1"
}
/// Standard node: xenbus state.
pub(crate) const STATE: &CStr = c"state";
/// Backend node the backend writes when the guest failed a PCIe AER recovery step (C
/// `kill_domain_by_device`); the value is [`AER_STATE_FAILED`]. No current toolstack reads it.
pub(crate) const AER_STATE: &CStr = c"aerState";
/// Value of [`AER_STATE`].
pub(crate) const AER_STATE_FAILED: &CStr = c"aerfail";

/// A xenbus device state (`enum xenbus_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub(crate) enum XenbusState {
    /// `XenbusStateUnknown`.
    Unknown = 0,
    /// `XenbusStateInitialising`.
    Initialising = 1,
    /// `XenbusStateInitWait`.
    InitWait = 2,
    /// `XenbusStateInitialised`.
    Initialised = 3,
    /// `XenbusStateConnected`.
    Connected = 4,
    /// `XenbusStateClosing`.
    Closing = 5,
    /// `XenbusStateClosed`.
    Closed = 6,
    /// `XenbusStateReconfiguring`.
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    Reconfigured = 8,
}

impl XenbusState {
    /// The numeric value.
    pub(crate) const fn raw(self) -> u32 {
        self as u32
    }

    /// The state numbered `v`, if 0..=8.
    pub(crate) const fn from_raw(v: u32) -> Option<XenbusState> {
        Some(match v {
            0 => XenbusState::Unknown,
            1 => XenbusState::Initialising,
            2 => XenbusState::InitWait,
            3 => XenbusState::Initialised,
            4 => XenbusState::Connected,
            5 => XenbusState::Closing,
            6 => XenbusState::Closed,
            7 => XenbusState::Reconfiguring,
            8 => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// Parses a state node (`state`, `state-N`): a decimal number 0..=8.
    pub(crate) fn parse(value: &[u8]) -> Result<XenbusState, ParseError<'_>> {
        let (base, s) = bdf::trim(value);
        let v = parse_u32(value)?;
        XenbusState::from_raw(v).ok_or(ParseError {
            kind: ErrorKind::UnknownState(v),
            offset: base,
            context: s,
        })
    }

    /// The name used in log messages, e.g. `"InitWait"`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            XenbusState::Unknown => "Unknown",
            XenbusState::Initialising => "Initialising",
            XenbusState::InitWait => "InitWait",
            XenbusState::Initialised => "Initialised",
            XenbusState::Connected => "Connected",
            XenbusState::Closing => "Closing",
            XenbusState::Closed => "Closed",
            XenbusState::Reconfiguring => "Reconfiguring",
            XenbusState::Reconfigured => "Reconfigured",
        }
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = u32;

    fn try_from(v: u32) -> Result<XenbusState, u32> {
        XenbusState::from_raw(v).ok_or(v)
    }
}

/// The decimal number, as stored in xenstore.
impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw())
    }
}

/// Parses an unsigned decimal `u32` (`num_devs`, `root_num`, `pci-op-ref`,
/// `event-channel`, `state-N`): digits only, no sign, surrounding whitespace
/// allowed.
pub(crate) fn parse_u32(value: &[u8]) -> Result<u32, ParseError<'_>> {
    let (base, s) = bdf::trim(value);
    let err = |kind, pos: usize| ParseError {
        kind,
        offset: base.saturating_add(pos),
        context: s,
    };
    if s.is_empty() {
        return Err(ParseError {
            kind: ErrorKind::Empty,
            offset: base,
            context: s,
        });
    }
    let mut v: u32 = 0;
    for (i, &c) in s.iter().enumerate() {
        if !c.is_ascii_digit() {
            return Err(err(
                if i == 0 {
                    ErrorKind::ExpectedDecimal
                } else {
                    ErrorKind::TrailingJunk
                },
                i,
            ));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(c - b'0')))
            .ok_or_else(|| err(ErrorKind::DecimalOverflow, 0))?;
    }
    Ok(v)
}

/// The most roots a backend publishes (`root_num`): the capacity of the Rust
/// backend's root set. Each root is a distinct PCI bus of the guest.
pub(crate) const ROOT_NUM_MAX: u32 = super::vbus::ROOTS_MAX as u32;

/// The most devices a backend device can export (`num_devs`): each is a
/// distinct function (one of 256 device/function numbers) on one of at most
/// [`ROOT_NUM_MAX`] roots. On the virtual bus, the one root holds at most 256.
///
/// Neither `pciif.h` nor the C drivers bound the count (C's `pcifront` loops
/// over `num_devs` as read); a frontend that did would let a backend (a
/// driver domain) keep the `xenwatch` thread busy for billions of xenstore
/// reads.
pub(crate) const NUM_DEVS_MAX: u32 = ROOT_NUM_MAX * 256;

/// Parses a count node (`num_devs`, `root_num`) as [`parse_u32`], refusing a
/// value above `max` ([`NUM_DEVS_MAX`], [`ROOT_NUM_MAX`]) before anything
/// loops over it.
pub(crate) fn parse_count(value: &[u8], max: u32) -> Result<u32, ParseError<'_>> {
    let n = parse_u32(value)?;
    if n > max {
        let (base, s) = bdf::trim(value);
        return Err(ParseError {
            kind: ErrorKind::TooMany { value: n, max },
            offset: base,
            context: s,
        });
    }
    Ok(n)
}

/// Parses a `dev-N` value: the host BDF, `D:B:S.F` in hex, domain required
/// (libxl writes `"%04x:%02x:%02x.%01x"`).
pub(crate) fn parse_dev(value: &[u8]) -> Result<Bdf, ParseError<'_>> {
    bdf::parse_full_bdf(value)
}

/// Parses a `vdev-N` value: the guest BDF (`"%04x:%02x:%02x.%02x"`).
pub(crate) fn parse_vdev(value: &[u8]) -> Result<Bdf, ParseError<'_>> {
    bdf::parse_full_bdf(value)
}

/// Parses a `root-N` value: `D:B` in hex (`"%04x:%02x"`).
pub(crate) fn parse_root(value: &[u8]) -> Result<BusAddr, ParseError<'_>> {
    bdf::parse_bus_addr(value)
}

/// Checks the frontend's `magic` node against [`super::pciif::XEN_PCI_MAGIC`]
/// (exact match after trimming whitespace).
pub(crate) fn magic_ok(value: &[u8]) -> bool {
    bdf::trim(value).1 == super::pciif::XEN_PCI_MAGIC.as_bytes()
}

/// `rdm_policy` of `opts-N` (reserved device memory; only meaningful to the
/// toolstack and the hypervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RdmPolicy {
    /// `strict` (libxl) or `0` (krata).
    Strict,
    /// `relaxed` or `1`.
    Relaxed,
    /// `invalid` or `-1`.
    Invalid,
}

/// The options of an `opts-N` node. `None` when the key is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Opts {
    /// `permissive=0|1`.
    pub(crate) permissive: Option<bool>,
    /// `msitranslate=0|1`.
    pub(crate) msitranslate: Option<bool>,
    /// `power_mgmt=0|1`.
    pub(crate) power_mgmt: Option<bool>,
    /// `rdm_policy=strict|relaxed|invalid` (or `0|1|-1`).
    pub(crate) rdm_policy: Option<RdmPolicy>,
}

/// Parses an `opts-N` value: comma-separated `key=value` items, e.g.
/// `msitranslate=0,power_mgmt=0,permissive=1,rdm_policy=strict`.
///
/// Unknown keys are ignored and empty items (`a=1,,b=2`, trailing comma)
/// skipped. An item without `=`, a known key given twice, or a known key with
/// a value other than those listed in [`Opts`] is an error. The whole value
/// is trimmed; items are not.
pub(crate) fn parse_opts(value: &[u8]) -> Result<Opts, ParseError<'_>> {
    let (base, s) = bdf::trim(value);
    let mut opts = Opts::default();
    let mut pos = 0usize;
    for item in s.split(|&b| b == b',') {
        let at = base.saturating_add(pos);
        pos = pos.saturating_add(item.len()).saturating_add(1);
        if item.is_empty() {
            continue;
        }
        let err = |kind, off: usize| ParseError {
            kind,
            offset: at.saturating_add(off),
            context: item,
        };
        let Some(eq) = item.iter().position(|&b| b == b'=') else {
            return Err(err(ErrorKind::MissingEquals, item.len()));
        };
        let key = item.get(..eq).unwrap_or(&[]);
        let val = item.get(eq.saturating_add(1)..).unwrap_or(&[]);
        let voff = eq.saturating_add(1);
        let boolean = |slot: &mut Option<bool>| -> Result<(), ParseError<'_>> {
            if slot.is_some() {
                return Err(err(ErrorKind::DuplicateOption, 0));
            }
            *slot = Some(match val {
                b"0" => false,
                b"1" => true,
                _ => return Err(err(ErrorKind::BadOptionValue, voff)),
            });
            Ok(())
        };
        match key {
            b"permissive" => boolean(&mut opts.permissive)?,
            b"msitranslate" => boolean(&mut opts.msitranslate)?,
            b"power_mgmt" => boolean(&mut opts.power_mgmt)?,
            b"rdm_policy" => {
                if opts.rdm_policy.is_some() {
                    return Err(err(ErrorKind::DuplicateOption, 0));
                }
                opts.rdm_policy = Some(match val {
                    b"strict" | b"0" => RdmPolicy::Strict,
                    b"relaxed" | b"1" => RdmPolicy::Relaxed,
                    b"invalid" | b"-1" => RdmPolicy::Invalid,
                    _ => return Err(err(ErrorKind::BadOptionValue, voff)),
                });
            }
            _ => {}
        }
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// Formatting into caller buffers
// ---------------------------------------------------------------------------

/// A `core::fmt::Write` sink over a caller's byte slice. Writing past the end
/// fails with `fmt::Error` (nothing beyond the slice is touched).
#[derive(Debug)]
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer that fills `buf` from its start.
    pub(crate) fn new(buf: &'a mut [u8]) -> SliceWriter<'a> {
        SliceWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats `args` into `buf`; returns the length written, or `fmt::Error`
/// when it does not fit. No terminator is added.
///
/// E.g. `format_into(&mut buf, format_args!("{}", bdf.vdev()))` for `vdev-N`.
pub(crate) fn format_into(buf: &mut [u8], args: fmt::Arguments<'_>) -> Result<usize, fmt::Error> {
    let mut w = SliceWriter::new(buf);
    fmt::write(&mut w, args)?;
    Ok(w.len())
}

/// A small owned text buffer, always NUL-terminated, holding at most `N - 1`
/// bytes of text. Used for key names and short values.
#[derive(Clone, Copy)]
pub(crate) struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// Buffer for key names (`dev-4294967295` is the longest, 14 bytes).
pub(crate) type KeyBuf = StackBuf<32>;
/// Buffer for short values (BDFs, numbers, states).
pub(crate) type ValueBuf = StackBuf<32>;

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        StackBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// Formats `args` into a new buffer, or `fmt::Error` if longer than `N - 1`.
    pub(crate) fn format(args: fmt::Arguments<'_>) -> Result<Self, fmt::Error> {
        let mut b = Self::new();
        fmt::write(&mut b, args)?;
        Ok(b)
    }

    /// The text bytes (without the NUL).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The text bytes followed by the NUL.
    pub(crate) fn as_bytes_with_nul(&self) -> &[u8] {
        self.buf.get(..=self.len).unwrap_or(&[])
    }

    /// The text (always valid UTF-8: only `&str` is ever written).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text as a C string; `None` only if a NUL was written into it.
    pub(crate) fn as_cstr(&self) -> Option<&CStr> {
        CStr::from_bytes_with_nul(self.as_bytes_with_nul()).ok()
    }

    /// Length of the text.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        // Keep one byte for the terminating NUL.
        if end >= N {
            return Err(fmt::Error);
        }
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        if let Some(nul) = self.buf.get_mut(end) {
            *nul = 0;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Display for StackBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<const N: usize> PartialEq for StackBuf<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for StackBuf<N> {}

/// The per-device (`-N` suffixed) nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IndexedKey {
    /// `dev-N`: host BDF (toolstack).
    Dev,
    /// `vdev-N`: guest BDF (backend).
    Vdev,
    /// `state-N`: per-device xenbus state.
    State,
    /// `opts-N`: options (toolstack).
    Opts,
    /// `key-N`: BDF as given to the toolstack.
    Key,
    /// `root-N`: root bus (backend).
    Root,
    /// `vdevfn-N`: requested guest devfn (QEMU only).
    Vdevfn,
    /// `name-N`: device name (toolstack).
    Name,
}

impl IndexedKey {
    /// The prefix before the index, e.g. `"dev-"`.
    pub(crate) const fn prefix(self) -> &'static str {
        match self {
            IndexedKey::Dev => "dev-",
            IndexedKey::Vdev => "vdev-",
            IndexedKey::State => "state-",
            IndexedKey::Opts => "opts-",
            IndexedKey::Key => "key-",
            IndexedKey::Root => "root-",
            IndexedKey::Vdevfn => "vdevfn-",
            IndexedKey::Name => "name-",
        }
    }
}

/// Builds the node name `<prefix><n>`, e.g. `dev-3`. Cannot fail: the
/// longest name (`vdevfn-4294967295`) fits in a [`KeyBuf`].
pub(crate) fn key(kind: IndexedKey, n: u32) -> KeyBuf {
    let mut k = KeyBuf::new();
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    let prefix = kind.prefix().as_bytes();
    let tail = digits.get(i..).unwrap_or(&[]);
    let total = prefix.len() + tail.len();
    if let Some(dst) = k.buf.get_mut(..prefix.len()) {
        dst.copy_from_slice(prefix);
    }
    if let Some(dst) = k.buf.get_mut(prefix.len()..total) {
        dst.copy_from_slice(tail);
    }
    k.len = total;
    k
}

/// `dev-N`.
pub(crate) fn dev_key(n: u32) -> KeyBuf {
    key(IndexedKey::Dev, n)
}

/// `vdev-N`.
pub(crate) fn vdev_key(n: u32) -> KeyBuf {
    key(IndexedKey::Vdev, n)
}

/// `state-N`.
pub(crate) fn state_key(n: u32) -> KeyBuf {
    key(IndexedKey::State, n)
}

/// `opts-N`.
pub(crate) fn opts_key(n: u32) -> KeyBuf {
    key(IndexedKey::Opts, n)
}

/// `key-N`.
pub(crate) fn key_key(n: u32) -> KeyBuf {
    key(IndexedKey::Key, n)
}

/// `root-N`.
pub(crate) fn root_key(n: u32) -> KeyBuf {
    key(IndexedKey::Root, n)
}

/// The `vdev-N` value for a guest address (`"%04x:%02x:%02x.%02x"`).
pub(crate) fn vdev_value(guest: Bdf) -> ValueBuf {
    // 13 bytes always fit.
    ValueBuf::format(format_args!("{}", guest.vdev())).unwrap_or_default()
}

/// The `dev-N` value for a host address (`"%04x:%02x:%02x.%x"`).
pub(crate) fn dev_value(host: Bdf) -> ValueBuf {
    ValueBuf::format(format_args!("{}", host)).unwrap_or_default()
}

/// The `root-N` value (`"%04x:%02x"`).
pub(crate) fn root_value(root: BusAddr) -> ValueBuf {
    ValueBuf::format(format_args!("{}", root)).unwrap_or_default()
}

/// A decimal value (`num_devs`, `root_num`, `state-N`, `pci-op-ref`, ...).
pub(crate) fn u32_value(v: u32) -> ValueBuf {
    ValueBuf::format(format_args!("{}", v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::bdf::Field;
    use super::*;
    use std::string::ToString;

    fn bdf(d: u16, b: u8, s: u8, f: u8) -> Bdf {
        Bdf::new(d, b, s, f).unwrap()
    }

    #[test]
    fn state_parse_and_display() {
        for v in 0..=8u32 {
            let s = XenbusState::from_raw(v).unwrap();
            assert_eq!(s.raw(), v);
            assert_eq!(s.to_string(), v.to_string());
            assert_eq!(XenbusState::parse(v.to_string().as_bytes()), Ok(s));
        }
        assert_eq!(XenbusState::parse(b" 4\n"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"004"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::Reconfigured.name(), "Reconfigured");
        assert_eq!(XenbusState::try_from(2), Ok(XenbusState::InitWait));
        assert_eq!(XenbusState::try_from(9), Err(9));
        let e = XenbusState::parse(b" 9").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::UnknownState(9), 1));
        assert_eq!(XenbusState::parse(b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            XenbusState::parse(b"-1").unwrap_err().kind,
            ErrorKind::ExpectedDecimal
        );
        assert_eq!(
            XenbusState::parse(b"4\0").unwrap_err().kind,
            ErrorKind::TrailingJunk
        );
        assert_eq!(
            XenbusState::parse(b"Connected").unwrap_err().kind,
            ErrorKind::ExpectedDecimal
        );
    }

    #[test]
    fn counts_are_bounded() {
        assert_eq!(NUM_DEVS_MAX, 65536);
        assert_eq!(ROOT_NUM_MAX, 256);
        assert_eq!(parse_count(b"0", NUM_DEVS_MAX), Ok(0));
        assert_eq!(parse_count(b" 65536\n", NUM_DEVS_MAX), Ok(65536));
        assert_eq!(parse_count(b"256", ROOT_NUM_MAX), Ok(256));
        let e = parse_count(b"4000000000", NUM_DEVS_MAX).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::TooMany {
                value: 4_000_000_000,
                max: 65536
            }
        );
        assert_eq!(
            std::format!("{}", e.kind),
            "4000000000 is more than the protocol allows (65536)"
        );
        assert!(parse_count(b"65537", NUM_DEVS_MAX).is_err());
        assert!(parse_count(b"257", ROOT_NUM_MAX).is_err());
        // Everything `parse_u32` refuses is still refused.
        assert!(parse_count(b"-1", NUM_DEVS_MAX).is_err());
        assert!(parse_count(b"99999999999", NUM_DEVS_MAX).is_err());
        assert!(parse_count(b"", NUM_DEVS_MAX).is_err());
    }

    #[test]
    fn u32_parse() {
        assert_eq!(parse_u32(b"0"), Ok(0));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32(b"\t17\n"), Ok(17));
        assert_eq!(
            parse_u32(b"4294967296").unwrap_err().kind,
            ErrorKind::DecimalOverflow
        );
        assert_eq!(
            parse_u32(b"99999999999999999999").unwrap_err().kind,
            ErrorKind::DecimalOverflow
        );
        assert_eq!(
            parse_u32(b"+1").unwrap_err().kind,
            ErrorKind::ExpectedDecimal
        );
        assert_eq!(
            parse_u32(b"0x10").unwrap_err().kind,
            ErrorKind::TrailingJunk
        );
        let e = parse_u32(b" 12 3").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::TrailingJunk, 3));
        assert_eq!(e.context, b"12 3");
        assert_eq!(parse_u32(b"   ").unwrap_err().kind, ErrorKind::Empty);
    }

    #[test]
    fn dev_vdev_root_values() {
        assert_eq!(parse_dev(b"0000:06:01.0"), Ok(bdf(0, 6, 1, 0)));
        assert_eq!(parse_dev(b"1:6:1.7"), Ok(bdf(1, 6, 1, 7)));
        assert_eq!(parse_vdev(b"0000:00:1f.07"), Ok(bdf(0, 0, 0x1f, 7)));
        assert_eq!(
            parse_vdev(b"0000:00:00.08").unwrap_err().kind,
            ErrorKind::OutOfRange {
                field: Field::Func,
                value: Some(8),
                max: 7
            }
        );
        assert_eq!(
            parse_dev(b"06:01.0").unwrap_err().kind,
            ErrorKind::Expected(b':')
        );
        assert_eq!(
            parse_dev(b"0000:06:01.0 x").unwrap_err().kind,
            ErrorKind::TrailingJunk
        );
        assert_eq!(parse_dev(b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(parse_root(b"0000:00"), Ok(BusAddr::new(0, 0)));
        assert_eq!(parse_root(b"0001:ff"), Ok(BusAddr::new(1, 0xff)));
        assert!(parse_root(b"0000:00.0").is_err());
        assert!(parse_root(b"10000:00").is_err());
    }

    #[test]
    fn values_round_trip_through_formatters() {
        let g = bdf(0, 0, 0x1f, 7);
        assert_eq!(vdev_value(g).as_str(), "0000:00:1f.07");
        assert_eq!(parse_vdev(vdev_value(g).as_bytes()), Ok(g));
        let h = bdf(0xabcd, 0x12, 3, 4);
        assert_eq!(dev_value(h).as_str(), "abcd:12:03.4");
        assert_eq!(parse_dev(dev_value(h).as_bytes()), Ok(h));
        assert_eq!(root_value(BusAddr::new(0, 0)).as_str(), "0000:00");
        assert_eq!(u32_value(u32::MAX).as_str(), "4294967295");
        assert_eq!(parse_u32(u32_value(1234).as_bytes()), Ok(1234));
        assert_eq!(vdev_value(g).as_bytes_with_nul(), b"0000:00:1f.07\0");
    }

    #[test]
    fn magic() {
        assert!(magic_ok(b"7"));
        assert!(magic_ok(b"7\n"));
        assert!(!magic_ok(b"6"));
        assert!(!magic_ok(b"77"));
        assert!(!magic_ok(b""));
    }

    #[test]
    fn a_feature_is_on_only_at_one() {
        assert!(feature_on(b"1"));
        assert!(feature_on(b"1\n"));
        for no in [&b"0"[..], b"", b"11", b"yes", b"2"] {
            assert!(!feature_on(no), "{no:?}");
        }
    }

    #[test]
    fn opts_libxl_and_krata() {
        let o = parse_opts(b"msitranslate=0,power_mgmt=1,permissive=1,rdm_policy=strict").unwrap();
        assert_eq!(
            o,
            Opts {
                permissive: Some(true),
                msitranslate: Some(false),
                power_mgmt: Some(true),
                rdm_policy: Some(RdmPolicy::Strict)
            }
        );
        let o = parse_opts(b"permissive=0,rdm_policy=1,msitranslate=1").unwrap();
        assert_eq!(o.permissive, Some(false));
        assert_eq!(o.rdm_policy, Some(RdmPolicy::Relaxed));
        assert_eq!(o.power_mgmt, None);
        assert_eq!(
            parse_opts(b"rdm_policy=-1").unwrap().rdm_policy,
            Some(RdmPolicy::Invalid)
        );
        assert_eq!(
            parse_opts(b"rdm_policy=invalid").unwrap().rdm_policy,
            Some(RdmPolicy::Invalid)
        );
        assert_eq!(
            parse_opts(b"msitranslate=0,power_mgmt=0")
                .unwrap()
                .permissive,
            None
        );
        assert_eq!(parse_opts(b""), Ok(Opts::default()));
        assert_eq!(
            parse_opts(b"future=x,permissive=1,").unwrap().permissive,
            Some(true)
        );
        assert_eq!(
            parse_opts(b",,permissive=1").unwrap().permissive,
            Some(true)
        );
        assert_eq!(parse_opts(b"unknown=").unwrap(), Opts::default());
    }

    #[test]
    fn opts_errors() {
        let e = parse_opts(b"msitranslate=0,permissive").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingEquals, 25));
        assert_eq!(e.context, b"permissive");
        let e = parse_opts(b"permissive=2").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::BadOptionValue, 11));
        assert_eq!(
            parse_opts(b"permissive=").unwrap_err().kind,
            ErrorKind::BadOptionValue
        );
        assert_eq!(
            parse_opts(b"permissive=true").unwrap_err().kind,
            ErrorKind::BadOptionValue
        );
        assert_eq!(
            parse_opts(b"permissive= 1").unwrap_err().kind,
            ErrorKind::BadOptionValue
        );
        let e = parse_opts(b"permissive=1,permissive=1").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::DuplicateOption, 13));
        assert_eq!(
            parse_opts(b"rdm_policy=loose").unwrap_err().kind,
            ErrorKind::BadOptionValue
        );
        assert_eq!(
            parse_opts(b"rdm_policy=strict,rdm_policy=strict")
                .unwrap_err()
                .kind,
            ErrorKind::DuplicateOption
        );
        assert_eq!(
            parse_opts(b"power_mgmt=0,power_mgmt=0").unwrap_err().kind,
            ErrorKind::DuplicateOption
        );
    }

    #[test]
    fn value_parsers_never_panic() {
        const ALPHABET: &[u8] = b"0123456789=,pxermisv_t- \n\0\xff";
        let mut seed: u64 = 3;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..10_000 {
            let len = next() % 20;
            let v: std::vec::Vec<u8> = (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect();
            if let Ok(n) = parse_u32(&v) {
                assert_eq!(parse_u32(u32_value(n).as_bytes()), Ok(n));
            }
            if let Ok(s) = XenbusState::parse(&v) {
                assert!(s.raw() <= 8);
            }
            if let Err(e) = parse_opts(&v) {
                assert!(e.offset <= v.len());
                let _ = e.to_string();
            }
            let _ = parse_dev(&v);
            let _ = parse_root(&v);
            let _ = magic_ok(&v);
        }
    }

    #[test]
    fn key_names() {
        assert_eq!(dev_key(0).as_str(), "dev-0");
        assert_eq!(vdev_key(31).as_str(), "vdev-31");
        assert_eq!(state_key(10).as_str(), "state-10");
        assert_eq!(opts_key(7).as_str(), "opts-7");
        assert_eq!(key_key(1).as_str(), "key-1");
        assert_eq!(root_key(255).as_str(), "root-255");
        assert_eq!(
            key(IndexedKey::Vdevfn, u32::MAX).as_str(),
            "vdevfn-4294967295"
        );
        assert_eq!(key(IndexedKey::Name, 9).as_str(), "name-9");
        assert_eq!(dev_key(12).as_bytes_with_nul(), b"dev-12\0");
        assert_eq!(dev_key(12).as_cstr(), Some(c"dev-12"));
        for n in [0u32, 1, 9, 10, 99, 100, 65535, 1_000_000_000, u32::MAX] {
            let k = state_key(n);
            assert_eq!(k.as_str(), std::format!("state-{}", n));
            assert_eq!(k.to_string(), std::format!("state-{}", n));
        }
        assert_eq!(NUM_DEVS.to_str(), Ok("num_devs"));
        assert_eq!(ROOT_NUM.to_bytes(), b"root_num");
        assert_eq!(PCI_OP_REF.to_bytes(), b"pci-op-ref");
        assert_eq!(EVENT_CHANNEL.to_bytes(), b"event-channel");
        assert_eq!(MAGIC.to_bytes(), b"magic");
        assert_eq!(STATE.to_bytes(), b"state");
    }

    #[test]
    fn stack_buf_overflow_is_an_error() {
        use core::fmt::Write;
        let mut b = StackBuf::<4>::new();
        assert!(b.write_str("abc").is_ok());
        assert_eq!(b.as_bytes_with_nul(), b"abc\0");
        assert!(b.write_str("d").is_err());
        assert_eq!(b.as_str(), "abc");
        assert_eq!(b.len(), 3);
        assert!(StackBuf::<4>::format(format_args!("{}", 12345)).is_err());
        assert!(StackBuf::<8>::new().is_empty());
    }

    #[test]
    fn slice_writer() {
        let mut buf = [0u8; 13];
        let n = format_into(&mut buf, format_args!("{}", bdf(0, 0, 1, 2).vdev())).unwrap();
        assert_eq!(&buf[..n], b"0000:00:01.02");
        let mut small = [0xaau8; 12];
        assert!(format_into(&mut small, format_args!("{}", bdf(0, 0, 1, 2).vdev())).is_err());
        let mut empty: [u8; 0] = [];
        assert_eq!(format_into(&mut empty, format_args!("")), Ok(0));
        assert!(format_into(&mut empty, format_args!("x")).is_err());
        let mut buf = [0u8; 8];
        let mut w = SliceWriter::new(&mut buf);
        assert!(w.is_empty());
        core::fmt::Write::write_str(&mut w, "ab").unwrap();
        assert_eq!(w.as_bytes(), b"ab");
        assert_eq!(w.len(), 2);
    }
}
