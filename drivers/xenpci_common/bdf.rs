// SPDX-License-Identifier: GPL-2.0

//! PCI addresses (domain:bus:slot.function) and the administrator grammars that
//! name them: the sysfs slot syntax of `new_slot`, `remove_slot`, `permissive`,
//! `irq_handler_state` and `allow_interrupt_control`, the `hide=` module
//! parameter, and the `quirks` attribute.
//!
//! All parsers take raw bytes (module parameters and sysfs writes arrive as
//! bytes), never allocate and never panic: every problem is reported as a
//! [`ParseError`] naming what is wrong, the byte offset where it was found and
//! the piece of text it was found in.
//!
//! # Number syntax
//!
//! Every field is a bare hexadecimal number, digits case-insensitive, any
//! number of leading zeros. Unlike the C driver (which uses `sscanf("%x")`)
//! we do **not** accept a `0x` prefix, a sign, or whitespace between fields.
//! Every toolstack we know of writes the canonical forms (`0000:06:01.0` from
//! libxl, `06:01.0` from administrators following the Xen wiki), which are
//! accepted. Being strict means a typo is reported instead of silently
//! selecting some other device.

use core::fmt;

use super::pciif::AccessSize;

/// Highest PCI slot (device) number.
pub(crate) const SLOT_MAX: u8 = 0x1f;
/// Highest PCI function number.
pub(crate) const FUNC_MAX: u8 = 7;
/// Highest register offset a quirk may name (the end of extended config space).
pub(crate) const QUIRK_REG_MAX: u16 = 0xfff;
/// Size of the PCI (express) configuration space in bytes.
pub(crate) const CONFIG_SPACE_SIZE: u32 = 0x1000;

/// A PCI function address: segment (domain), bus, and devfn (slot << 3 | func).
///
/// Any value of this type is a valid address: the constructors check slot and
/// function ranges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Bdf {
    domain: u16,
    bus: u8,
    devfn: u8,
}

/// Builds a devfn from slot and function, or `None` when either is out of range.
pub(crate) const fn devfn(slot: u8, func: u8) -> Option<u8> {
    if slot > SLOT_MAX || func > FUNC_MAX {
        None
    } else {
        Some((slot << 3) | func)
    }
}

impl Bdf {
    /// Builds an address from its four parts; `None` if `slot > 0x1f` or `func > 7`.
    pub(crate) const fn new(domain: u16, bus: u8, slot: u8, func: u8) -> Option<Bdf> {
        match devfn(slot, func) {
            Some(devfn) => Some(Bdf { domain, bus, devfn }),
            None => None,
        }
    }

    /// Builds an address from an encoded devfn (every `u8` is a valid devfn).
    pub(crate) const fn from_devfn(domain: u16, bus: u8, devfn: u8) -> Bdf {
        Bdf { domain, bus, devfn }
    }

    /// Builds an address from the 32-bit fields of the wire protocol; `None`
    /// when domain > 0xffff, bus > 0xff or devfn > 0xff.
    pub(crate) fn from_raw(domain: u32, bus: u32, devfn: u32) -> Option<Bdf> {
        Some(Bdf {
            domain: u16::try_from(domain).ok()?,
            bus: u8::try_from(bus).ok()?,
            devfn: u8::try_from(devfn).ok()?,
        })
    }

    /// PCI segment.
    pub(crate) const fn domain(self) -> u16 {
        self.domain
    }

    /// Bus number.
    pub(crate) const fn bus(self) -> u8 {
        self.bus
    }

    /// Encoded slot and function.
    pub(crate) const fn devfn(self) -> u8 {
        self.devfn
    }

    /// Slot (device) number, 0..=0x1f.
    pub(crate) const fn slot(self) -> u8 {
        self.devfn >> 3
    }

    /// Function number, 0..=7.
    pub(crate) const fn func(self) -> u8 {
        self.devfn & 7
    }

    /// The bus this function sits on.
    pub(crate) const fn bus_addr(self) -> BusAddr {
        BusAddr {
            domain: self.domain,
            bus: self.bus,
        }
    }

    /// True when `other` is on the same domain, bus and slot (any function).
    pub(crate) const fn same_slot(self, other: Bdf) -> bool {
        self.domain == other.domain && self.bus == other.bus && self.slot() == other.slot()
    }

    /// Formatter for the xenstore `vdev-N` value, `"%04x:%02x:%02x.%02x"`: the
    /// PV protocol prints the function with two digits.
    pub(crate) const fn vdev(self) -> VdevDisplay {
        VdevDisplay(self)
    }
}

/// `"%04x:%02x:%02x.%x"`: the `slots` attribute, `dev-N` and `pci_name()` form.
impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain,
            self.bus,
            self.slot(),
            self.func()
        )
    }
}

/// Displays a [`Bdf`] as the xenstore `vdev-N` value (`"%04x:%02x:%02x.%02x"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VdevDisplay(Bdf);

impl fmt::Display for VdevDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:02x}",
            b.domain,
            b.bus,
            b.slot(),
            b.func()
        )
    }
}

/// A PCI root bus: segment and bus number, as published in xenstore `root-N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BusAddr {
    /// PCI segment.
    pub(crate) domain: u16,
    /// Bus number.
    pub(crate) bus: u8,
}

impl BusAddr {
    /// Builds a bus address.
    pub(crate) const fn new(domain: u16, bus: u8) -> BusAddr {
        BusAddr { domain, bus }
    }
}

/// `"%04x:%02x"`, the `root-N` form.
impl fmt::Display for BusAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}", self.domain, self.bus)
    }
}

/// A set of PCI functions named by the administrator: one function, all
/// functions of a slot, or all slots of a bus. There is no bus wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BdfPattern {
    /// `D:B:S.F`: exactly one function.
    Exact(Bdf),
    /// `D:B:S.*`: the 8 functions of a slot (`func()` of the inner value is 0).
    AllFuncs(Bdf),
    /// `D:B:*.*`: the 256 functions of a bus.
    AllSlots(BusAddr),
}

impl BdfPattern {
    /// True when `bdf` is in the set.
    pub(crate) fn matches(&self, bdf: &Bdf) -> bool {
        match *self {
            BdfPattern::Exact(b) => b == *bdf,
            BdfPattern::AllFuncs(b) => b.same_slot(*bdf),
            BdfPattern::AllSlots(a) => a == bdf.bus_addr(),
        }
    }

    /// The single function named, or `None` for a wildcard.
    pub(crate) fn exact(&self) -> Option<Bdf> {
        match *self {
            BdfPattern::Exact(b) => Some(b),
            _ => None,
        }
    }

    /// Number of functions in the set: 1, 8 or 256.
    pub(crate) fn expansion_len(&self) -> usize {
        match self {
            BdfPattern::Exact(_) => 1,
            BdfPattern::AllFuncs(_) => 8,
            BdfPattern::AllSlots(_) => 256,
        }
    }

    /// Iterates over every function in the set, in devfn order.
    pub(crate) fn iter(&self) -> PatternIter {
        let (addr, first) = match *self {
            BdfPattern::Exact(b) => (b.bus_addr(), b.devfn()),
            BdfPattern::AllFuncs(b) => (b.bus_addr(), b.slot() << 3),
            BdfPattern::AllSlots(a) => (a, 0),
        };
        PatternIter {
            addr,
            next: u16::from(first),
            end: u16::from(first) + self.expansion_len() as u16,
        }
    }
}

impl IntoIterator for BdfPattern {
    type Item = Bdf;
    type IntoIter = PatternIter;

    fn into_iter(self) -> PatternIter {
        self.iter()
    }
}

impl IntoIterator for &BdfPattern {
    type Item = Bdf;
    type IntoIter = PatternIter;

    fn into_iter(self) -> PatternIter {
        self.iter()
    }
}

/// `D:B:S.F`, `D:B:S.*` or `D:B:*.*` with the domain always printed.
impl fmt::Display for BdfPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BdfPattern::Exact(b) => write!(f, "{}", b),
            BdfPattern::AllFuncs(b) => {
                write!(f, "{:04x}:{:02x}:{:02x}.*", b.domain(), b.bus(), b.slot())
            }
            BdfPattern::AllSlots(a) => write!(f, "{}:*.*", a),
        }
    }
}

/// Iterator over the functions of a [`BdfPattern`].
#[derive(Clone, Debug)]
pub(crate) struct PatternIter {
    addr: BusAddr,
    next: u16,
    end: u16,
}

impl Iterator for PatternIter {
    type Item = Bdf;

    fn next(&mut self) -> Option<Bdf> {
        if self.next >= self.end {
            return None;
        }
        let devfn = u8::try_from(self.next).ok()?;
        self.next += 1;
        Some(Bdf::from_devfn(self.addr.domain, self.addr.bus, devfn))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.end.saturating_sub(self.next));
        (n, Some(n))
    }
}

impl ExactSizeIterator for PatternIter {}
impl core::iter::FusedIterator for PatternIter {}

/// A `quirks` entry: pass register `reg` (`size` bytes) of one function
/// straight to the hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quirk {
    /// The function.
    pub(crate) bdf: Bdf,
    /// Register offset, `<= 0xfff`, aligned to `size`, `reg + size <= 0x1000`.
    pub(crate) reg: u16,
    /// Register width.
    pub(crate) size: AccessSize,
    /// Mask; fits in `size` bytes. (The C driver stores but never applies it.)
    pub(crate) mask: u32,
}

/// `DDDD:BB:SS.F-REG:SIZE:MASK`, all hex, the form `parse_quirk` accepts.
impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:x}:{:x}:{:x}",
            self.bdf,
            self.reg,
            self.size.bytes(),
            self.mask
        )
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Which part of a value an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// PCI segment.
    Domain,
    /// Bus number.
    Bus,
    /// Slot (device) number.
    Slot,
    /// Function number.
    Func,
    /// Quirk register offset.
    Reg,
    /// Quirk register size.
    Size,
    /// Quirk mask.
    Mask,
}

impl Field {
    /// Lower-case name used in messages.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Field::Domain => "domain",
            Field::Bus => "bus",
            Field::Slot => "slot",
            Field::Func => "function",
            Field::Reg => "register",
            Field::Size => "size",
            Field::Mask => "mask",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a parsed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// A hexadecimal number was expected for this field.
    ExpectedHex(Field),
    /// A decimal number was expected.
    ExpectedDecimal,
    /// This separator character was expected.
    Expected(u8),
    /// A number is larger than the field allows. `value` is `None` when it
    /// does not even fit in 32 bits.
    OutOfRange {
        /// The field.
        field: Field,
        /// The value found, if representable.
        value: Option<u32>,
        /// The largest allowed value.
        max: u32,
    },
    /// A decimal number does not fit in 32 bits.
    DecimalOverflow,
    /// A count is larger than the protocol allows.
    TooMany {
        /// The count found.
        value: u32,
        /// The largest allowed count.
        max: u32,
    },
    /// `*` given for a field that cannot be a wildcard here.
    Wildcard(Field),
    /// `S.F` with a slot wildcard but a concrete function (`D:B:*.3`).
    SlotWildcardNeedsFuncWildcard,
    /// `hide=`: the value does not start with `(`.
    MissingOpen,
    /// `hide=`: a group is not closed by `)`.
    MissingClose,
    /// Text after a complete value.
    TrailingJunk,
    /// Quirk size other than 1, 2 or 4.
    BadSize(u32),
    /// Quirk mask has bits beyond `size` bytes.
    MaskTooWide {
        /// The mask.
        mask: u32,
        /// The size in bytes.
        size: u16,
    },
    /// Quirk register plus size runs past the end of config space.
    BeyondConfigSpace {
        /// Register offset.
        reg: u16,
        /// Size in bytes.
        size: u16,
    },
    /// Quirk register not naturally aligned to its size.
    Misaligned {
        /// Register offset.
        reg: u16,
        /// Size in bytes.
        size: u16,
    },
    /// A xenbus state number outside 0..=8.
    UnknownState(u32),
    /// `opts-N`: an item without `=`.
    MissingEquals,
    /// `opts-N`: a known option with a value we do not understand.
    BadOptionValue,
    /// `opts-N`: a known option given twice.
    DuplicateOption,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Empty => f.write_str("empty value"),
            ErrorKind::ExpectedHex(field) => write!(f, "expected a hex number for {}", field),
            ErrorKind::ExpectedDecimal => f.write_str("expected a decimal number"),
            ErrorKind::Expected(c) => write!(f, "expected '{}'", char::from(c)),
            ErrorKind::OutOfRange {
                field,
                value: Some(v),
                max,
            } => write!(f, "{} {:#x} out of range (max {:#x})", field, v, max),
            ErrorKind::OutOfRange {
                field,
                value: None,
                max,
            } => write!(f, "{} out of range (max {:#x})", field, max),
            ErrorKind::DecimalOverflow => f.write_str("number too large"),
            ErrorKind::TooMany { value, max } => {
                write!(f, "{} is more than the protocol allows ({})", value, max)
            }
            ErrorKind::Wildcard(field) => write!(f, "wildcard not allowed for {}", field),
            ErrorKind::SlotWildcardNeedsFuncWildcard => {
                f.write_str("slot wildcard needs a function wildcard ('*.*')")
            }
            ErrorKind::MissingOpen => f.write_str("expected '('"),
            ErrorKind::MissingClose => f.write_str("missing ')'"),
            ErrorKind::TrailingJunk => f.write_str("unexpected trailing text"),
            ErrorKind::BadSize(v) => write!(f, "size {:#x} invalid (must be 1, 2 or 4)", v),
            ErrorKind::MaskTooWide { mask, size } => {
                write!(f, "mask {:#x} does not fit in {} byte(s)", mask, size)
            }
            ErrorKind::BeyondConfigSpace { reg, size } => write!(
                f,
                "register {:#x} size {} runs past the end of config space",
                reg, size
            ),
            ErrorKind::Misaligned { reg, size } => {
                write!(f, "register {:#x} not aligned to its size {}", reg, size)
            }
            ErrorKind::UnknownState(v) => write!(f, "unknown xenbus state {}", v),
            ErrorKind::MissingEquals => f.write_str("option without '='"),
            ErrorKind::BadOptionValue => f.write_str("invalid option value"),
            ErrorKind::DuplicateOption => f.write_str("option given twice"),
        }
    }
}

/// A parse failure: what, where (byte offset into the whole input), and the
/// piece of input it was found in (for `hide=` the whole `( ... )` group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParseError<'a> {
    /// What is wrong.
    pub(crate) kind: ErrorKind,
    /// Byte offset of the problem in the input given to the parser.
    pub(crate) offset: usize,
    /// The enclosing piece of input (may be empty).
    pub(crate) context: &'a [u8],
}

/// Longest context printed by `Display`; longer text is cut and ends in `...`.
const CONTEXT_PRINT_MAX: usize = 64;

/// Writes `bytes` as printable ASCII, escaping everything else as `\xNN`.
pub(crate) fn write_escaped(f: &mut dyn fmt::Write, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        match b {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            0x20..=0x7e => f.write_char(char::from(b))?,
            _ => write!(f, "\\x{:02x}", b)?,
        }
    }
    Ok(())
}

/// `<kind> at "<context>" (byte <offset>)`, e.g.
/// `bus 0x100 out of range (max 0xff) at "(0000:100:00.0)" (byte 6)`.
impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if self.context.is_empty() {
            return write!(f, " (byte {})", self.offset);
        }
        f.write_str(" at \"")?;
        match self.context.get(..CONTEXT_PRINT_MAX) {
            Some(head) if self.context.len() > CONTEXT_PRINT_MAX => {
                write_escaped(f, head)?;
                f.write_str("...")?;
            }
            _ => write_escaped(f, self.context)?,
        }
        write!(f, "\" (byte {})", self.offset)
    }
}

/// Error of the sysfs slot grammar.
pub(crate) type SlotError<'a> = ParseError<'a>;
/// Error of the `hide=` grammar.
pub(crate) type HideError<'a> = ParseError<'a>;

// ---------------------------------------------------------------------------
// Lexing helpers (also used by `xs.rs`)
// ---------------------------------------------------------------------------

/// C `isspace()` for ASCII: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub(crate) const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Strips leading and trailing [`is_space`] bytes; returns the start offset
/// of the kept part and the part.
pub(crate) fn trim(s: &[u8]) -> (usize, &[u8]) {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |p| p.saturating_add(1));
    (start, s.get(start..end).unwrap_or(&[]))
}

fn hex_digit(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a') + 10),
        b'A'..=b'F' => Some(u32::from(b - b'A') + 10),
        _ => None,
    }
}

/// A problem at a position relative to the slice being lexed.
#[derive(Clone, Copy, Debug)]
struct RawErr {
    kind: ErrorKind,
    pos: usize,
}

impl RawErr {
    fn at(kind: ErrorKind, pos: usize) -> RawErr {
        RawErr { kind, pos }
    }

    /// Converts to a public error: `base` is the offset of the lexed slice in
    /// the input, `context` the text to show.
    fn into_error(self, base: usize, context: &[u8]) -> ParseError<'_> {
        ParseError {
            kind: self.kind,
            offset: base.saturating_add(self.pos),
            context,
        }
    }
}

/// A number or `*` read from the input.
#[derive(Clone, Copy, Debug)]
enum Tok {
    /// Hex number (`None` if it overflowed 32 bits) and where it started.
    Num(Option<u32>, usize),
    /// `*` and where it was.
    Star(usize),
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Cursor<'a> {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn expect(&mut self, c: u8) -> Result<(), RawErr> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(RawErr::at(ErrorKind::Expected(c), self.pos))
        }
    }

    fn end(&self) -> Result<(), RawErr> {
        if self.at_end() {
            Ok(())
        } else {
            Err(RawErr::at(ErrorKind::TrailingJunk, self.pos))
        }
    }

    /// Hex digits; value `None` when it does not fit in a `u32`.
    fn hex(&mut self, field: Field) -> Result<(Option<u32>, usize), RawErr> {
        let start = self.pos;
        let mut value = Some(0u32);
        while let Some(d) = self.peek().and_then(hex_digit) {
            value = value
                .and_then(|v| v.checked_mul(16))
                .and_then(|v| v.checked_add(d));
            self.pos += 1;
        }
        if self.pos == start {
            return Err(RawErr::at(ErrorKind::ExpectedHex(field), start));
        }
        Ok((value, start))
    }

    fn hex_or_star(&mut self, field: Field) -> Result<Tok, RawErr> {
        if self.peek() == Some(b'*') {
            let at = self.pos;
            self.pos += 1;
            return Ok(Tok::Star(at));
        }
        let (v, at) = self.hex(field)?;
        Ok(Tok::Num(v, at))
    }
}

/// Checks a number against `max`.
fn in_range(field: Field, value: Option<u32>, max: u32, pos: usize) -> Result<u32, RawErr> {
    match value {
        Some(v) if v <= max => Ok(v),
        _ => Err(RawErr::at(ErrorKind::OutOfRange { field, value, max }, pos)),
    }
}

/// A number field that must not be `*`.
fn number(field: Field, tok: Tok, max: u32) -> Result<u32, RawErr> {
    match tok {
        Tok::Star(at) => Err(RawErr::at(ErrorKind::Wildcard(field), at)),
        Tok::Num(v, at) => in_range(field, v, max, at),
    }
}

/// Whether the domain is optional in a BDF grammar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Domain {
    Optional,
    Required,
}

/// Parses a whole slice (no surrounding whitespace) as `[D:]B:S.F`, with the
/// `S.*` and `*.*` wildcards when `wild` is set.
fn pattern(s: &[u8], dom: Domain, wild: bool) -> Result<BdfPattern, RawErr> {
    // `B:S.F` has one colon, `D:B:S.F` two. With fewer than two colons the
    // first number is the bus; a stray third colon is reported as junk.
    let has_domain = dom == Domain::Required || s.iter().filter(|&&b| b == b':').count() >= 2;
    let mut c = Cursor::new(s);
    let domain = if has_domain {
        let t = c.hex_or_star(Field::Domain)?;
        c.expect(b':')?;
        Some(t)
    } else {
        None
    };
    let bus = c.hex_or_star(Field::Bus)?;
    c.expect(b':')?;
    let slot = c.hex_or_star(Field::Slot)?;
    c.expect(b'.')?;
    let func = c.hex_or_star(Field::Func)?;
    c.end()?;

    let domain = match domain {
        Some(t) => number(Field::Domain, t, 0xffff)?,
        None => 0,
    };
    let bus = number(Field::Bus, bus, 0xff)?;
    let (domain, bus) = (domain as u16, bus as u8);
    match (slot, func) {
        (Tok::Star(at), _) if !wild => Err(RawErr::at(ErrorKind::Wildcard(Field::Slot), at)),
        (_, Tok::Star(at)) if !wild => Err(RawErr::at(ErrorKind::Wildcard(Field::Func), at)),
        (Tok::Star(_), Tok::Star(_)) => Ok(BdfPattern::AllSlots(BusAddr::new(domain, bus))),
        (Tok::Star(_), Tok::Num(_, at)) => {
            Err(RawErr::at(ErrorKind::SlotWildcardNeedsFuncWildcard, at))
        }
        (Tok::Num(sv, sat), f) => {
            let slot = in_range(Field::Slot, sv, u32::from(SLOT_MAX), sat)? as u8;
            match f {
                Tok::Star(_) => Ok(BdfPattern::AllFuncs(Bdf::from_devfn(
                    domain,
                    bus,
                    slot << 3,
                ))),
                Tok::Num(fv, fat) => {
                    let func = in_range(Field::Func, fv, u32::from(FUNC_MAX), fat)? as u8;
                    Ok(BdfPattern::Exact(Bdf::from_devfn(
                        domain,
                        bus,
                        (slot << 3) | func,
                    )))
                }
            }
        }
    }
}

/// Trims, rejects empty input, and runs `f` on the trimmed part, mapping its
/// errors to absolute offsets with the trimmed text as context.
fn trimmed<'a, T>(
    input: &'a [u8],
    f: impl FnOnce(&'a [u8]) -> Result<T, RawErr>,
) -> Result<T, ParseError<'a>> {
    let (base, s) = trim(input);
    if s.is_empty() {
        return Err(ParseError {
            kind: ErrorKind::Empty,
            offset: base,
            context: &[],
        });
    }
    f(s).map_err(|e| e.into_error(base, s))
}

// ---------------------------------------------------------------------------
// Public parsers
// ---------------------------------------------------------------------------

/// Parses the sysfs slot grammar (`new_slot`, `remove_slot`, `permissive`,
/// `irq_handler_state`, `allow_interrupt_control`):
///
/// ```text
/// ws* [DOMAIN ":"] BUS ":" ( SLOT "." ( FUNC | "*" ) | "*.*" ) ws*
/// ```
///
/// Domain defaults to 0. Limits: domain <= 0xffff, bus <= 0xff,
/// slot <= 0x1f, func <= 7. Accepts e.g. `0000:06:01.0\n`, `06:01.0`,
/// `06:01.*`, `0000:06:*.*`.
pub(crate) fn parse_slot(input: &[u8]) -> Result<BdfPattern, SlotError<'_>> {
    trimmed(input, |s| pattern(s, Domain::Optional, true))
}

/// Like [`parse_slot`] but wildcards are refused ([`ErrorKind::Wildcard`]).
/// (The C driver answers `-ENODEV` for a wildcard written to `permissive`.)
pub(crate) fn parse_exact(input: &[u8]) -> Result<Bdf, SlotError<'_>> {
    trimmed(input, |s| {
        pattern(s, Domain::Optional, false).map(|p| match p {
            BdfPattern::Exact(b) => b,
            // Not reachable: `wild == false` only produces `Exact`.
            BdfPattern::AllFuncs(b) => b,
            BdfPattern::AllSlots(a) => Bdf::from_devfn(a.domain, a.bus, 0),
        })
    })
}

/// Parses `D:B:S.F` with the domain required and no wildcards (xenstore
/// `dev-N`/`vdev-N`, which C reads with `"%x:%x:%x.%x"`), after trimming
/// surrounding whitespace.
pub(crate) fn parse_full_bdf(input: &[u8]) -> Result<Bdf, ParseError<'_>> {
    trimmed(input, |s| {
        pattern(s, Domain::Required, false).map(|p| match p {
            BdfPattern::Exact(b) => b,
            BdfPattern::AllFuncs(b) => b,
            BdfPattern::AllSlots(a) => Bdf::from_devfn(a.domain, a.bus, 0),
        })
    })
}

/// Parses `D:B` (xenstore `root-N`, written `"%04x:%02x"`), after trimming.
pub(crate) fn parse_bus_addr(input: &[u8]) -> Result<BusAddr, ParseError<'_>> {
    trimmed(input, |s| {
        let mut c = Cursor::new(s);
        let (d, dat) = c.hex(Field::Domain)?;
        c.expect(b':')?;
        let (b, bat) = c.hex(Field::Bus)?;
        c.end()?;
        let domain = in_range(Field::Domain, d, 0xffff, dat)? as u16;
        let bus = in_range(Field::Bus, b, 0xff, bat)? as u8;
        Ok(BusAddr::new(domain, bus))
    })
}

/// Iterator over the groups of a `hide=` value; see [`parse_hide`].
///
/// Yields `Ok` for each group, then stops; on the first error it yields that
/// error once and then stops.
#[derive(Clone, Debug)]
pub(crate) struct HideIter<'a> {
    s: &'a [u8],
    pos: usize,
    groups: usize,
    done: bool,
}

impl<'a> HideIter<'a> {
    fn fail(&mut self, kind: ErrorKind, offset: usize, context: &'a [u8]) -> ParseError<'a> {
        self.done = true;
        ParseError {
            kind,
            offset,
            context,
        }
    }
}

impl<'a> Iterator for HideIter<'a> {
    type Item = Result<BdfPattern, HideError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.s.get(self.pos).is_some_and(|&b| is_space(b)) {
            self.pos += 1;
        }
        let start = self.pos;
        let rest = self.s.get(start..).unwrap_or(&[]);
        match rest.first() {
            None => {
                self.done = true;
                if self.groups == 0 {
                    return Some(Err(self.fail(ErrorKind::Empty, start, &[])));
                }
                return None;
            }
            Some(b'(') => {}
            Some(_) => {
                let kind = if self.groups == 0 {
                    ErrorKind::MissingOpen
                } else {
                    ErrorKind::TrailingJunk
                };
                return Some(Err(self.fail(kind, start, rest)));
            }
        }
        // Find the closing parenthesis; another '(' or the end means it is missing.
        let close = rest
            .iter()
            .skip(1)
            .position(|&b| b == b')' || b == b'(')
            .map(|p| p + 1);
        let close = match close {
            Some(p) if rest.get(p) == Some(&b')') => p,
            other => {
                let stop = other.unwrap_or(rest.len());
                let ctx = rest.get(..stop).unwrap_or(rest);
                return Some(Err(self.fail(
                    ErrorKind::MissingClose,
                    start.saturating_add(stop),
                    ctx,
                )));
            }
        };
        let group = rest.get(..=close).unwrap_or(rest);
        let inner = rest.get(1..close).unwrap_or(&[]);
        match pattern(inner, Domain::Optional, true) {
            Ok(p) => {
                self.pos = start.saturating_add(close).saturating_add(1);
                self.groups += 1;
                Some(Ok(p))
            }
            Err(e) => {
                let e = e.into_error(start.saturating_add(1), group);
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for HideIter<'_> {}

/// Parses the `hide=` module parameter:
///
/// ```text
/// ws* ( "(" [DOMAIN ":"] BUS ":" ( SLOT "." ( FUNC | "*" ) | "*.*" ) ")" ws* )+
/// ```
///
/// e.g. `(0000:06:01.0)(07:02.1)` or `(0000:06:01.*) (07:*.*)`. No whitespace
/// inside a group. An empty or all-whitespace value is [`ErrorKind::Empty`];
/// note that the C driver silently ignores an unset or zero-length
/// parameter, so the caller should skip a zero-length value before parsing.
///
/// Use [`validate_hide`] first to reject a bad value before acting on any group.
pub(crate) fn parse_hide(input: &[u8]) -> HideIter<'_> {
    HideIter {
        s: input,
        pos: 0,
        groups: 0,
        done: false,
    }
}

/// Checks a whole `hide=` value; returns the number of groups.
pub(crate) fn validate_hide(input: &[u8]) -> Result<usize, HideError<'_>> {
    let mut n = 0usize;
    for g in parse_hide(input) {
        g?;
        n = n.saturating_add(1);
    }
    Ok(n)
}

/// Parses a `quirks` write: `ws* [D:]B:S.F "-" REG ":" SIZE ":" MASK ws*`, all
/// hex. REG <= 0xfff, SIZE in {1, 2, 4}, MASK fits in SIZE bytes.
///
/// Stricter than C (documented choice): the register must be naturally
/// aligned and `REG + SIZE` must not pass the end of config space (0x1000),
/// because the config-space engine only ever sees aligned accesses inside it.
pub(crate) fn parse_quirk(input: &[u8]) -> Result<Quirk, ParseError<'_>> {
    trimmed(input, |s| {
        let dash = s.iter().position(|&b| b == b'-');
        let bdf_part = s.get(..dash.unwrap_or(s.len())).unwrap_or(s);
        let bdf = match pattern(bdf_part, Domain::Optional, false)? {
            BdfPattern::Exact(b) => b,
            BdfPattern::AllFuncs(b) => b,
            BdfPattern::AllSlots(a) => Bdf::from_devfn(a.domain, a.bus, 0),
        };
        let dash = match dash {
            Some(d) => d,
            None => return Err(RawErr::at(ErrorKind::Expected(b'-'), s.len())),
        };
        let base = dash + 1;
        let rest = s.get(base..).unwrap_or(&[]);
        let shift = |e: RawErr| RawErr::at(e.kind, e.pos.saturating_add(base));
        let mut c = Cursor::new(rest);
        let (reg, reg_at) = c.hex(Field::Reg).map_err(shift)?;
        c.expect(b':').map_err(shift)?;
        let (size, size_at) = c.hex(Field::Size).map_err(shift)?;
        c.expect(b':').map_err(shift)?;
        let (mask, mask_at) = c.hex(Field::Mask).map_err(shift)?;
        c.end().map_err(shift)?;

        let reg = in_range(Field::Reg, reg, u32::from(QUIRK_REG_MAX), base + reg_at)? as u16;
        let size = match size.and_then(AccessSize::from_bytes) {
            Some(sz) => sz,
            None => {
                let kind = match size {
                    Some(v) => ErrorKind::BadSize(v),
                    None => ErrorKind::OutOfRange {
                        field: Field::Size,
                        value: None,
                        max: 4,
                    },
                };
                return Err(RawErr::at(kind, base + size_at));
            }
        };
        let mask = in_range(Field::Mask, mask, u32::MAX, base + mask_at)?;
        let nbytes = size.bytes();
        if mask & !size.value_mask() != 0 {
            return Err(RawErr::at(
                ErrorKind::MaskTooWide { mask, size: nbytes },
                base + mask_at,
            ));
        }
        if u32::from(reg) + u32::from(nbytes) > CONFIG_SPACE_SIZE {
            return Err(RawErr::at(
                ErrorKind::BeyondConfigSpace { reg, size: nbytes },
                base + reg_at,
            ));
        }
        if reg % nbytes != 0 {
            return Err(RawErr::at(
                ErrorKind::Misaligned { reg, size: nbytes },
                base + reg_at,
            ));
        }
        Ok(Quirk {
            bdf,
            reg,
            size,
            mask,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn b(d: u16, bus: u8, s: u8, f: u8) -> Bdf {
        Bdf::new(d, bus, s, f).unwrap()
    }

    fn kind<T: core::fmt::Debug>(r: Result<T, ParseError<'_>>) -> ErrorKind {
        r.unwrap_err().kind
    }

    #[test]
    fn bdf_constructors_and_accessors() {
        let x = b(0x1234, 0x56, 0x1f, 7);
        assert_eq!(x.domain(), 0x1234);
        assert_eq!(x.bus(), 0x56);
        assert_eq!(x.slot(), 0x1f);
        assert_eq!(x.func(), 7);
        assert_eq!(x.devfn(), 0xff);
        assert_eq!(Bdf::new(0, 0, 0x20, 0), None);
        assert_eq!(Bdf::new(0, 0, 0, 8), None);
        assert_eq!(devfn(3, 2), Some(0x1a));
        assert_eq!(Bdf::from_devfn(1, 2, 0x1a), b(1, 2, 3, 2));
        assert_eq!(
            Bdf::from_raw(0xffff, 0xff, 0xff),
            Some(b(0xffff, 0xff, 0x1f, 7))
        );
        assert_eq!(Bdf::from_raw(0x10000, 0, 0), None);
        assert_eq!(Bdf::from_raw(0, 0x100, 0), None);
        assert_eq!(Bdf::from_raw(0, 0, 0x100), None);
        assert_eq!(Bdf::from_raw(0, 0, u32::MAX), None);
    }

    #[test]
    fn bdf_display_forms() {
        let x = b(0, 6, 1, 3);
        assert_eq!(x.to_string(), "0000:06:01.3");
        assert_eq!(x.vdev().to_string(), "0000:06:01.03");
        assert_eq!(b(0xabcd, 0xef, 0x1f, 7).to_string(), "abcd:ef:1f.7");
        assert_eq!(b(0xabcd, 0xef, 0x1f, 7).vdev().to_string(), "abcd:ef:1f.07");
        assert_eq!(BusAddr::new(0, 0).to_string(), "0000:00");
        assert_eq!(BusAddr::new(0x12, 0x3).to_string(), "0012:03");
    }

    #[test]
    fn slot_accepts_libxl_and_short_forms() {
        assert_eq!(
            parse_slot(b"0000:06:01.0"),
            Ok(BdfPattern::Exact(b(0, 6, 1, 0)))
        );
        assert_eq!(parse_slot(b"06:01.0"), Ok(BdfPattern::Exact(b(0, 6, 1, 0))));
        assert_eq!(
            parse_slot(b"0000:06:01.0\n"),
            Ok(BdfPattern::Exact(b(0, 6, 1, 0)))
        );
        assert_eq!(
            parse_slot(b" \t06:1f.7 \n"),
            Ok(BdfPattern::Exact(b(0, 6, 0x1f, 7)))
        );
        assert_eq!(
            parse_slot(b"ABCD:eF:1F.7"),
            Ok(BdfPattern::Exact(b(0xabcd, 0xef, 0x1f, 7)))
        );
        assert_eq!(parse_slot(b"0:0:0.0"), Ok(BdfPattern::Exact(b(0, 0, 0, 0))));
        assert_eq!(
            parse_slot(b"00000000006:01.0"),
            Ok(BdfPattern::Exact(b(0, 6, 1, 0)))
        );
    }

    #[test]
    fn slot_wildcards() {
        assert_eq!(
            parse_slot(b"0000:06:01.*"),
            Ok(BdfPattern::AllFuncs(b(0, 6, 1, 0)))
        );
        assert_eq!(
            parse_slot(b"06:01.*"),
            Ok(BdfPattern::AllFuncs(b(0, 6, 1, 0)))
        );
        assert_eq!(
            parse_slot(b"0001:06:*.*"),
            Ok(BdfPattern::AllSlots(BusAddr::new(1, 6)))
        );
        assert_eq!(
            parse_slot(b"06:*.*\n"),
            Ok(BdfPattern::AllSlots(BusAddr::new(0, 6)))
        );
        assert_eq!(kind(parse_slot(b"*:*.*")), ErrorKind::Wildcard(Field::Bus));
        assert_eq!(
            kind(parse_slot(b"0000:*:*.*")),
            ErrorKind::Wildcard(Field::Bus)
        );
        assert_eq!(
            kind(parse_slot(b"*:00:*.*")),
            ErrorKind::Wildcard(Field::Domain)
        );
        let e = parse_slot(b"06:*.3").unwrap_err();
        assert_eq!(e.kind, ErrorKind::SlotWildcardNeedsFuncWildcard);
        assert_eq!(e.offset, 5);
    }

    #[test]
    fn slot_range_limits() {
        assert!(parse_slot(b"ffff:ff:1f.7").is_ok());
        let e = parse_slot(b"10000:00:00.0").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::OutOfRange {
                field: Field::Domain,
                value: Some(0x10000),
                max: 0xffff
            }
        );
        assert_eq!(e.offset, 0);
        let e = parse_slot(b"0000:100:00.0").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::OutOfRange {
                field: Field::Bus,
                value: Some(0x100),
                max: 0xff
            }
        );
        assert_eq!(e.offset, 5);
        let e = parse_slot(b"  00:20.0").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::OutOfRange {
                field: Field::Slot,
                value: Some(0x20),
                max: 0x1f
            }
        );
        assert_eq!(e.offset, 5);
        assert_eq!(e.context, b"00:20.0");
        assert_eq!(
            kind(parse_slot(b"00:00.8")),
            ErrorKind::OutOfRange {
                field: Field::Func,
                value: Some(8),
                max: 7
            }
        );
        assert_eq!(kind(parse_slot(b"00:00.*8")), ErrorKind::TrailingJunk);
        assert_eq!(
            kind(parse_slot(b"123456789:00:00.0")),
            ErrorKind::OutOfRange {
                field: Field::Domain,
                value: None,
                max: 0xffff
            }
        );
        assert_eq!(
            kind(parse_slot(b"00:ffffffff.0")),
            ErrorKind::OutOfRange {
                field: Field::Slot,
                value: Some(0xffff_ffff),
                max: 0x1f
            }
        );
    }

    #[test]
    fn slot_malformed() {
        assert_eq!(kind(parse_slot(b"")), ErrorKind::Empty);
        assert_eq!(kind(parse_slot(b" \n\t")), ErrorKind::Empty);
        assert_eq!(kind(parse_slot(b"0000:06:01.0x")), ErrorKind::TrailingJunk);
        assert_eq!(
            kind(parse_slot(b"0000:06:01.0 junk")),
            ErrorKind::TrailingJunk
        );
        assert_eq!(kind(parse_slot(b"0000:06:01")), ErrorKind::Expected(b'.'));
        assert_eq!(kind(parse_slot(b"06")), ErrorKind::Expected(b':'));
        assert_eq!(
            kind(parse_slot(b"06:01.")),
            ErrorKind::ExpectedHex(Field::Func)
        );
        assert_eq!(
            kind(parse_slot(b":06:01.0")),
            ErrorKind::ExpectedHex(Field::Domain)
        );
        assert_eq!(
            kind(parse_slot(b":01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(kind(parse_slot(b"0x06:01.0")), ErrorKind::Expected(b':'));
        assert_eq!(
            kind(parse_slot(b"-6:01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(
            kind(parse_slot(b"+6:01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(
            kind(parse_slot(b"0000: 06:01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(kind(parse_slot(b"0:0:0:0.0")), ErrorKind::Expected(b'.'));
        assert_eq!(
            kind(parse_slot(b"g0:00.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(kind(parse_slot(b"00:00.0\0")), ErrorKind::TrailingJunk);
    }

    #[test]
    fn exact_refuses_wildcards() {
        assert_eq!(parse_exact(b"0000:06:01.2\n"), Ok(b(0, 6, 1, 2)));
        assert_eq!(
            kind(parse_exact(b"06:01.*")),
            ErrorKind::Wildcard(Field::Func)
        );
        assert_eq!(
            kind(parse_exact(b"06:*.*")),
            ErrorKind::Wildcard(Field::Slot)
        );
    }

    #[test]
    fn full_bdf_requires_domain() {
        assert_eq!(parse_full_bdf(b"0000:06:01.00"), Ok(b(0, 6, 1, 0)));
        assert_eq!(parse_full_bdf(b"0:6:1.7"), Ok(b(0, 6, 1, 7)));
        let e = parse_full_bdf(b"06:01.0").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Expected(b':'));
        assert_eq!(e.offset, 5);
        assert_eq!(
            kind(parse_full_bdf(b"0000:06:01.*")),
            ErrorKind::Wildcard(Field::Func)
        );
    }

    #[test]
    fn bus_addr_parse() {
        assert_eq!(parse_bus_addr(b"0000:00"), Ok(BusAddr::new(0, 0)));
        assert_eq!(parse_bus_addr(b" ffff:ff "), Ok(BusAddr::new(0xffff, 0xff)));
        assert_eq!(
            kind(parse_bus_addr(b"0000:100")),
            ErrorKind::OutOfRange {
                field: Field::Bus,
                value: Some(0x100),
                max: 0xff
            }
        );
        assert_eq!(kind(parse_bus_addr(b"0000")), ErrorKind::Expected(b':'));
        assert_eq!(kind(parse_bus_addr(b"0000:00:00")), ErrorKind::TrailingJunk);
        assert_eq!(kind(parse_bus_addr(b"")), ErrorKind::Empty);
    }

    #[test]
    fn pattern_matching_and_expansion() {
        let exact = BdfPattern::Exact(b(0, 6, 1, 2));
        assert!(exact.matches(&b(0, 6, 1, 2)));
        assert!(!exact.matches(&b(0, 6, 1, 3)));
        assert_eq!(exact.iter().collect::<Vec<_>>(), [b(0, 6, 1, 2)]);
        assert_eq!(exact.exact(), Some(b(0, 6, 1, 2)));

        let funcs = BdfPattern::AllFuncs(b(1, 6, 0x1f, 0));
        assert!(funcs.matches(&b(1, 6, 0x1f, 7)));
        assert!(!funcs.matches(&b(0, 6, 0x1f, 7)));
        assert!(!funcs.matches(&b(1, 6, 0x1e, 0)));
        let v: Vec<_> = funcs.iter().collect();
        assert_eq!(v.len(), 8);
        assert_eq!(funcs.iter().len(), 8);
        assert_eq!(v[0], b(1, 6, 0x1f, 0));
        assert_eq!(v[7], b(1, 6, 0x1f, 7));
        assert_eq!(funcs.exact(), None);

        let slots = BdfPattern::AllSlots(BusAddr::new(0, 0xff));
        let v: Vec<_> = slots.iter().collect();
        assert_eq!(v.len(), 256);
        assert_eq!(slots.expansion_len(), 256);
        assert_eq!(v[0], b(0, 0xff, 0, 0));
        assert_eq!(v[255], b(0, 0xff, 0x1f, 7));
        assert!(v.iter().all(|x| slots.matches(x)));
        assert!(!slots.matches(&b(0, 0xfe, 0, 0)));
        // Every expanded function is distinct.
        let mut d = v.clone();
        d.dedup();
        assert_eq!(d.len(), 256);
        assert_eq!(funcs.into_iter().count(), 8);
    }

    #[test]
    fn pattern_display_round_trips() {
        for s in ["0000:06:01.3", "0001:06:01.*", "abcd:ef:*.*"] {
            let p = parse_slot(s.as_bytes()).unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn hide_single_and_multiple() {
        let v: Vec<_> = parse_hide(b"(0000:06:01.0)(07:02.1)").collect();
        assert_eq!(
            v,
            [
                Ok(BdfPattern::Exact(b(0, 6, 1, 0))),
                Ok(BdfPattern::Exact(b(0, 7, 2, 1)))
            ]
        );
        let v: Vec<_> = parse_hide(b"  (0000:06:01.*) \n(07:*.*)\n").collect();
        assert_eq!(
            v,
            [
                Ok(BdfPattern::AllFuncs(b(0, 6, 1, 0))),
                Ok(BdfPattern::AllSlots(BusAddr::new(0, 7)))
            ]
        );
        assert_eq!(validate_hide(b"(0000:06:01.0)(07:02.1) "), Ok(2));
        assert_eq!(validate_hide(b"(1:2:3.4)"), Ok(1));
    }

    #[test]
    fn hide_errors() {
        let e = validate_hide(b"(0000:100:00.0)").unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::OutOfRange {
                field: Field::Bus,
                value: Some(0x100),
                max: 0xff
            }
        );
        assert_eq!(e.offset, 6);
        assert_eq!(e.context, b"(0000:100:00.0)");
        assert_eq!(
            e.to_string(),
            "bus 0x100 out of range (max 0xff) at \"(0000:100:00.0)\" (byte 6)"
        );

        assert_eq!(kind(validate_hide(b"")), ErrorKind::Empty);
        assert_eq!(kind(validate_hide(b"   ")), ErrorKind::Empty);
        let e = validate_hide(b"0000:06:01.0").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingOpen, 0));
        let e = validate_hide(b"(0000:06:01.0").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingClose, 13));
        assert_eq!(e.context, b"(0000:06:01.0");
        let e = validate_hide(b"(06:01.0(07:00.0)").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::MissingClose, 8));
        let e = validate_hide(b"(06:01.0) junk").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::TrailingJunk, 10));
        assert_eq!(e.context, b"junk");
        let e = validate_hide(b"(06:01.0)x(07:00.0)").unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingJunk);
        let e = validate_hide(b"(06:01.0 )").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::TrailingJunk, 8));
        let e = validate_hide(b"(06:01.0)()").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::ExpectedHex(Field::Bus), 10));
        assert_eq!(e.context, b"()");
        assert_eq!(
            kind(validate_hide(b"(*:*.*)")),
            ErrorKind::Wildcard(Field::Bus)
        );
        assert_eq!(
            kind(validate_hide(b"(06:01.0)(06:01.8)")),
            ErrorKind::OutOfRange {
                field: Field::Func,
                value: Some(8),
                max: 7
            }
        );
    }

    #[test]
    fn hide_iterator_stops_after_error() {
        let mut it = parse_hide(b"(06:01.0)(zz)(07:00.0)");
        assert_eq!(it.next(), Some(Ok(BdfPattern::Exact(b(0, 6, 1, 0)))));
        assert!(matches!(it.next(), Some(Err(_))));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        let mut it = parse_hide(b"(06:01.0)");
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next(), None);
    }

    #[test]
    fn error_display_escapes_and_truncates() {
        let e = parse_slot(b"06:01.0\x01\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected trailing text at \"06:01.0\\x01\\\"\" (byte 7)"
        );
        assert_eq!(
            parse_slot(b" ").unwrap_err().to_string(),
            "empty value (byte 1)"
        );
        let mut long = String::from("(");
        for _ in 0..100 {
            long.push('a');
        }
        let e = validate_hide(long.as_bytes()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("missing ')' at \"(aaaa"), "{}", msg);
        assert!(msg.ends_with("...\" (byte 101)"), "{}", msg);
        let e = parse_quirk(b"00:00.0-10:3:0").unwrap_err();
        assert_eq!(
            format!("{}", e),
            "size 0x3 invalid (must be 1, 2 or 4) at \"00:00.0-10:3:0\" (byte 11)"
        );
    }

    #[test]
    fn quirk_parse_ok() {
        let q = parse_quirk(b"0000:00:19.0-e0:2:ff\n").unwrap();
        assert_eq!(q.bdf, b(0, 0, 0x19, 0));
        assert_eq!(q.reg, 0xe0);
        assert_eq!(q.size, AccessSize::Two);
        assert_eq!(q.mask, 0xff);
        assert_eq!(q.to_string(), "0000:00:19.0-e0:2:ff");
        let q = parse_quirk(b"00:19.0-E0:2:FF").unwrap();
        assert_eq!(q.reg, 0xe0);
        let q = parse_quirk(b"00:19.0-ffc:4:ffffffff").unwrap();
        assert_eq!(
            (q.reg, q.size, q.mask),
            (0xffc, AccessSize::Four, 0xffff_ffff)
        );
        let q = parse_quirk(b"00:19.0-fff:1:ff").unwrap();
        assert_eq!((q.reg, q.size), (0xfff, AccessSize::One));
    }

    #[test]
    fn quirk_parse_errors() {
        assert_eq!(
            kind(parse_quirk(b"00:19.0-1000:1:0")),
            ErrorKind::OutOfRange {
                field: Field::Reg,
                value: Some(0x1000),
                max: 0xfff
            }
        );
        assert_eq!(kind(parse_quirk(b"00:19.0-10:0:0")), ErrorKind::BadSize(0));
        assert_eq!(kind(parse_quirk(b"00:19.0-10:8:0")), ErrorKind::BadSize(8));
        assert_eq!(
            kind(parse_quirk(b"00:19.0-10:1:100")),
            ErrorKind::MaskTooWide {
                mask: 0x100,
                size: 1
            }
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-10:2:10000")),
            ErrorKind::MaskTooWide {
                mask: 0x10000,
                size: 2
            }
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-10:4:100000000")),
            ErrorKind::OutOfRange {
                field: Field::Mask,
                value: None,
                max: u32::MAX
            }
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-ffe:4:0")),
            ErrorKind::BeyondConfigSpace {
                reg: 0xffe,
                size: 4
            }
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-11:2:0")),
            ErrorKind::Misaligned { reg: 0x11, size: 2 }
        );
        assert_eq!(kind(parse_quirk(b"00:19.0")), ErrorKind::Expected(b'-'));
        assert_eq!(
            kind(parse_quirk(b"00:19.*-10:1:0")),
            ErrorKind::Wildcard(Field::Func)
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-10:1")),
            ErrorKind::Expected(b':')
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-10:1:0 x")),
            ErrorKind::TrailingJunk
        );
        assert_eq!(
            kind(parse_quirk(b"00:19.0-:1:0")),
            ErrorKind::ExpectedHex(Field::Reg)
        );
        assert_eq!(kind(parse_quirk(b"")), ErrorKind::Empty);
        let e = parse_quirk(b" 00:19.0-10:1:1ff").unwrap_err();
        assert_eq!(e.offset, 14);
    }

    /// Small deterministic generator for input sweeps (no external crates).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    #[test]
    fn parsers_never_panic_and_round_trip() {
        // Inputs follow the grammar's shape, then get a random mutation half
        // of the time, so that both valid and subtly invalid values occur.
        const NUMS: &[&[u8]] = &[
            b"0", b"06", b"1f", b"20", b"7", b"8", b"ff", b"100", b"0000", b"ffff", b"10000", b"A",
            b"*", b"1", b"2", b"4",
        ];
        const NOISE: &[&[u8]] = &[
            b":", b".", b"*", b"(", b")", b"-", b" ", b"\n", b"x", b"\0", b"\xff", b"",
        ];
        let mut rng = Lcg(1);
        let (mut ok_slots, mut ok_hides, mut ok_quirks) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut toks: Vec<&[u8]> = Vec::new();
            let num = |rng: &mut Lcg| NUMS[(rng.next() as usize) % NUMS.len()];
            let hide = rng.next() % 4 == 0;
            if hide {
                toks.push(b"(");
            }
            if rng.next() % 2 == 0 {
                toks.push(num(&mut rng));
                toks.push(b":");
            }
            toks.push(num(&mut rng));
            toks.push(b":");
            toks.push(num(&mut rng));
            toks.push(b".");
            toks.push(num(&mut rng));
            if hide {
                toks.push(b")");
            } else if rng.next() % 4 == 0 {
                toks.push(b"-");
                toks.push(num(&mut rng));
                toks.push(b":");
                toks.push(num(&mut rng));
                toks.push(b":");
                toks.push(num(&mut rng));
            }
            if rng.next() % 2 == 0 {
                let at = (rng.next() as usize) % (toks.len() + 1);
                let t = NOISE[(rng.next() as usize) % NOISE.len()];
                match rng.next() % 3 {
                    0 => toks.insert(at, t),
                    1 if at < toks.len() => toks[at] = t,
                    _ if at < toks.len() => {
                        toks.remove(at);
                    }
                    _ => {}
                }
            }
            let v: Vec<u8> = toks.concat();
            if let Ok(p) = parse_slot(&v) {
                ok_slots += 1;
                assert_eq!(parse_slot(p.to_string().as_bytes()), Ok(p));
                assert_eq!(p.iter().count(), p.expansion_len());
                assert!(p.iter().all(|x| p.matches(&x)));
            }
            if let Ok(x) = parse_exact(&v) {
                assert_eq!(parse_full_bdf(x.to_string().as_bytes()), Ok(x));
            }
            let groups = parse_hide(&v).filter(|r| r.is_ok()).count();
            match validate_hide(&v) {
                Ok(n) => {
                    ok_hides += 1;
                    assert_eq!(n, groups);
                }
                Err(e) => {
                    assert!(e.offset <= v.len());
                    let _ = e.to_string();
                }
            }
            match parse_quirk(&v) {
                Ok(q) => {
                    ok_quirks += 1;
                    assert_eq!(parse_quirk(q.to_string().as_bytes()), Ok(q));
                }
                Err(e) => {
                    assert!(e.offset <= v.len());
                    let _ = e.to_string();
                }
            }
            let _ = parse_full_bdf(&v);
            let _ = parse_bus_addr(&v);
        }
        // The generator does produce valid inputs, so the round trip is exercised.
        assert!(ok_slots > 100, "{}", ok_slots);
        assert!(ok_hides > 100, "{}", ok_hides);
        assert!(ok_quirks > 10, "{}", ok_quirks);
    }

    #[test]
    fn exact_pattern_at_last_devfn_and_domain_default() {
        let p = parse_slot(b"ff:1f.7").unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), [b(0, 0xff, 0x1f, 7)]);
        assert_eq!(p.iter().size_hint(), (1, Some(1)));
        let p = parse_slot(b"\x0b\x0cff:1f.*\r").unwrap();
        assert_eq!(p.iter().last(), Some(b(0, 0xff, 0x1f, 7)));
        assert_eq!(
            kind(parse_quirk(b"10000:00:00.0-0:1:0")),
            ErrorKind::OutOfRange {
                field: Field::Domain,
                value: Some(0x10000),
                max: 0xffff
            }
        );
        assert_eq!(parse_quirk(b"1:0:0.0-0:1:0").unwrap().bdf, b(1, 0, 0, 0));
    }

    #[test]
    fn trim_and_space() {
        assert_eq!(trim(b"  ab \n"), (2, &b"ab"[..]));
        assert_eq!(trim(b""), (0, &b""[..]));
        assert_eq!(trim(b"   "), (3, &b""[..]));
        assert!(is_space(0x0b));
        assert!(!is_space(0));
    }
}
