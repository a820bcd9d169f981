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
//! The administrator grammars (slot, exact address, quirk, `hide=`) take the
//! spellings the C driver takes, since it reads them with the kernel's
//! `sscanf("%x")` and scripts written for it must keep working:
//!
//! * a number is hex digits in either case, any number of leading zeros,
//!   optionally after `0x` or `0X`;
//! * blanks (the kernel's `isspace()`: space, `\t`, `\n`, `\v`, `\f`, `\r`
//!   and 0xa0) may come before any number, and at the start and end of the
//!   value; never before a separator (`:`, `.`, `-`, `)`) or a `*`;
//! * no sign: `%x` refuses `-` and `+`;
//! * the value ends at the first NUL byte, as a C string does.
//!
//! Two spellings the C driver takes by accident are refused, each with a
//! clear error: `0x` with no digit after it (C reads it as 0, so `06:01.0x`
//! names function 0), and a number that does not fit in 32 bits (C keeps the
//! low 32 bits, so `100000006:01.0` names bus 6, and `ffffffff` is -1, which C
//! takes for a wildcard). Both name a device the writer did not mean.
//! Out-of-range fields are refused too (domain > 0xffff, bus > 0xff,
//! slot > 0x1f, function > 7) where C, outside `new_slot` and `hide=`, just
//! finds no device.
//!
//! The xenstore forms ([`parse_full_bdf`], [`parse_bus_addr`]), written by the
//! toolstack, take bare hex digits only.

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

/// The kernel's `isspace()`, which its `sscanf` skips: [`is_space`] and also
/// 0xa0 (no-break space in the kernel's Latin-1 `ctype` table).
const fn is_kernel_space(b: u8) -> bool {
    is_space(b) || b == 0xa0
}

/// Strips leading and trailing [`is_space`] bytes; returns the start offset
/// of the kept part and the part.
pub(crate) fn trim(s: &[u8]) -> (usize, &[u8]) {
    trim_by(s, is_space)
}

/// Strips leading and trailing bytes for which `space` holds; returns the
/// start offset of the kept part and the part.
fn trim_by(s: &[u8], space: fn(u8) -> bool) -> (usize, &[u8]) {
    let start = s.iter().position(|&b| !space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !space(b))
        .map_or(start, |p| p.saturating_add(1));
    (start, s.get(start..end).unwrap_or(&[]))
}

/// The bytes before the first NUL. The C driver reads sysfs writes and module
/// parameters as C strings, so whatever follows a NUL is never seen.
fn c_string(s: &[u8]) -> &[u8] {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    s.get(..end).unwrap_or(s)
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

/// How the numbers of a grammar are spelled (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spelling {
    /// Bare hex digits and nothing else: the xenstore values.
    Bare,
    /// What the kernel's `sscanf("%x")` takes: blanks before the number and
    /// a `0x`/`0X` prefix. The administrator grammars.
    Scanf,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    spelling: Spelling,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8], spelling: Spelling) -> Cursor<'a> {
        Cursor {
            s,
            pos: 0,
            spelling,
        }
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

    /// A hex number, spelled as `self.spelling` allows; returns its value
    /// (`None` when it does not fit in a `u32`) and where it starts (after
    /// any blanks, at the prefix if there is one).
    fn hex(&mut self, field: Field) -> Result<(Option<u32>, usize), RawErr> {
        let scanf = self.spelling == Spelling::Scanf;
        if scanf {
            while self.peek().is_some_and(is_kernel_space) {
                self.pos += 1;
            }
        }
        let start = self.pos;
        if scanf
            && self.peek() == Some(b'0')
            && matches!(self.s.get(self.pos.saturating_add(1)), Some(b'x' | b'X'))
        {
            self.pos += 2;
        }
        let digits = self.pos;
        let mut value = Some(0u32);
        while let Some(d) = self.peek().and_then(hex_digit) {
            // C keeps the low 32 bits of a longer number; we report it instead.
            value = value
                .and_then(|v| v.checked_mul(16))
                .and_then(|v| v.checked_add(d));
            self.pos += 1;
        }
        if self.pos == digits {
            // Also after a bare `0x`, which C reads as 0: a number whose digits
            // are missing is a mistake, not a way to write zero.
            return Err(RawErr::at(ErrorKind::ExpectedHex(field), digits));
        }
        Ok((value, start))
    }

    /// A number or a `*`. In C the `*` is a literal of the format, so unlike
    /// a number it must follow its separator directly, with no blank.
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

/// Parses a whole slice (no trailing whitespace) as `[D:]B:S.F`, with the
/// `S.*` and `*.*` wildcards when `wild` is set.
fn pattern(s: &[u8], dom: Domain, wild: bool, spelling: Spelling) -> Result<BdfPattern, RawErr> {
    // `B:S.F` has one colon, `D:B:S.F` two. With fewer than two colons the
    // first number is the bus; a stray third colon is reported as junk. (C
    // tries the form with a domain first, then the one without; no text can
    // match both, as a number never takes in a colon.)
    let has_domain = dom == Domain::Required || s.iter().filter(|&&b| b == b':').count() >= 2;
    let mut c = Cursor::new(s, spelling);
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
/// errors to absolute offsets with the trimmed text as context. With
/// [`Spelling::Scanf`] the input ends at its first NUL and the blanks trimmed
/// are the kernel's.
fn trimmed<'a, T>(
    input: &'a [u8],
    spelling: Spelling,
    f: impl FnOnce(&'a [u8]) -> Result<T, RawErr>,
) -> Result<T, ParseError<'a>> {
    let (base, s) = match spelling {
        Spelling::Bare => trim(input),
        Spelling::Scanf => trim_by(c_string(input), is_kernel_space),
    };
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
/// each number:  ws* [ "0x" | "0X" ] HEXDIGIT+
/// ```
///
/// the forms C's `str_to_slot` tries (see the module documentation for the
/// number spelling). Domain defaults to 0. Limits: domain <= 0xffff,
/// bus <= 0xff, slot <= 0x1f, func <= 7. Accepts e.g. `0000:06:01.0\n`,
/// `06:01.0`, `06:01.*`, `0000:06:*.*`, `0x0000:0x06: 0x1.0`.
pub(crate) fn parse_slot(input: &[u8]) -> Result<BdfPattern, SlotError<'_>> {
    trimmed(input, Spelling::Scanf, |s| {
        pattern(s, Domain::Optional, true, Spelling::Scanf)
    })
}

/// Like [`parse_slot`] but wildcards are refused ([`ErrorKind::Wildcard`]).
/// (The C driver answers `-ENODEV` for a wildcard written to `permissive`.)
pub(crate) fn parse_exact(input: &[u8]) -> Result<Bdf, SlotError<'_>> {
    trimmed(input, Spelling::Scanf, |s| {
        pattern(s, Domain::Optional, false, Spelling::Scanf).map(|p| match p {
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
    trimmed(input, Spelling::Bare, |s| {
        pattern(s, Domain::Required, false, Spelling::Bare).map(|p| match p {
            BdfPattern::Exact(b) => b,
            BdfPattern::AllFuncs(b) => b,
            BdfPattern::AllSlots(a) => Bdf::from_devfn(a.domain, a.bus, 0),
        })
    })
}

/// Parses `D:B` (xenstore `root-N`, written `"%04x:%02x"`), after trimming.
pub(crate) fn parse_bus_addr(input: &[u8]) -> Result<BusAddr, ParseError<'_>> {
    trimmed(input, Spelling::Bare, |s| {
        let mut c = Cursor::new(s, Spelling::Bare);
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
        while self.s.get(self.pos).is_some_and(|&b| is_kernel_space(b)) {
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
        match pattern(inner, Domain::Optional, true, Spelling::Scanf) {
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
/// each number:  ws* [ "0x" | "0X" ] HEXDIGIT+
/// ```
///
/// the forms C's `pcistub_init` tries, e.g. `(0000:06:01.0)(07:02.1)` or
/// `(0000:06:01.*) (07:*.*)`. Inside a group, whitespace may come only before
/// a number (not before `:`, `.`, `*` or `)`), as with `sscanf`. The value
/// ends at its first NUL. An empty or all-whitespace value is [`ErrorKind::Empty`];
/// note that the C driver silently ignores an unset or zero-length
/// parameter, so the caller should skip a zero-length value before parsing.
///
/// Use [`validate_hide`] first to reject a bad value before acting on any group.
pub(crate) fn parse_hide(input: &[u8]) -> HideIter<'_> {
    HideIter {
        s: c_string(input),
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
/// hex, each number spelled as in [`parse_slot`] (blanks before it, `0x`),
/// the forms C's `str_to_quirk` tries. REG <= 0xfff, SIZE in {1, 2, 4}, MASK
/// fits in SIZE bytes.
///
/// Stricter than C (documented choice): SIZE must be 1, 2 or 4, the register
/// must be naturally aligned and `REG + SIZE` must not pass the end of config
/// space (0x1000), because the config-space engine only ever sees aligned
/// accesses of those sizes inside it.
pub(crate) fn parse_quirk(input: &[u8]) -> Result<Quirk, ParseError<'_>> {
    trimmed(input, Spelling::Scanf, |s| {
        // A number never takes in a '-' (no sign), so the first one ends the address.
        let dash = s.iter().position(|&b| b == b'-');
        let bdf_part = s.get(..dash.unwrap_or(s.len())).unwrap_or(s);
        let bdf = match pattern(bdf_part, Domain::Optional, false, Spelling::Scanf)? {
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
        let mut c = Cursor::new(rest, Spelling::Scanf);
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
        // C reads a bare `0x` as 0; we refuse it (see `c_slot_spellings_we_refuse`).
        assert_eq!(
            kind(parse_slot(b"0000:06:01.0x")),
            ErrorKind::ExpectedHex(Field::Func)
        );
        assert_eq!(kind(parse_slot(b"0000:06:01.0y")), ErrorKind::TrailingJunk);
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
        assert_eq!(kind(parse_slot(b"0y06:01.0")), ErrorKind::Expected(b':'));
        assert_eq!(
            kind(parse_slot(b"-6:01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(
            kind(parse_slot(b"+6:01.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(
            kind(parse_slot(b"0000 :06:01.0")),
            ErrorKind::Expected(b':')
        );
        assert_eq!(kind(parse_slot(b"0:0:0:0.0")), ErrorKind::Expected(b'.'));
        assert_eq!(
            kind(parse_slot(b"g0:00.0")),
            ErrorKind::ExpectedHex(Field::Bus)
        );
        assert_eq!(kind(parse_slot(b"00:00.0\x01")), ErrorKind::TrailingJunk);
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

    // -----------------------------------------------------------------------
    // The C grammars, case by case.
    //
    // C reads all four with the kernel's `vsscanf` (lib/vsprintf.c), not
    // glibc's: `%x` skips blanks before the number, then a `0x`/`0X`, and has
    // no sign; a blank in the format matches any run of blanks, none
    // included; any other format character must match itself; `%n` records
    // how far the scan got, and the callers demand that this is the end of
    // the (NUL-terminated) string. The forms tried, in order:
    //   slot:  " %x:%x:%x.%x %n", " %x:%x:%x.* %n", " %x:%x:*.* %n",
    //          then without the domain " %x:%x.%x %n", " %x:%x.* %n", " %x:*.* %n"
    //   quirk: " %x:%x:%x.%x-%x:%x:%x %n", then " %x:%x.%x-%x:%x:%x %n"
    //   hide:  per group " (%x:%x:%x.%x) %n", " (%x:%x:%x.*) %n",
    //          " (%x:%x:*.*) %n", then the same three without the domain.
    // Each table says which form takes or refuses each case. "We refuse"
    // tables list what C takes by accident and we refuse on purpose.
    // -----------------------------------------------------------------------

    fn exact(d: u16, bus: u8, s: u8, f: u8) -> BdfPattern {
        BdfPattern::Exact(b(d, bus, s, f))
    }

    fn all_funcs(d: u16, bus: u8, s: u8) -> BdfPattern {
        BdfPattern::AllFuncs(b(d, bus, s, 0))
    }

    fn all_slots(d: u16, bus: u8) -> BdfPattern {
        BdfPattern::AllSlots(BusAddr::new(d, bus))
    }

    fn range(field: Field, value: Option<u32>, max: u32) -> ErrorKind {
        ErrorKind::OutOfRange { field, value, max }
    }

    fn quirk(bdf: Bdf, reg: u16, size: u32, mask: u32) -> Quirk {
        Quirk {
            bdf,
            reg,
            size: AccessSize::from_bytes(size).unwrap(),
            mask,
        }
    }

    /// `hide=` as the driver uses it: validated whole, then every group.
    fn hide_all(input: &[u8]) -> Result<Vec<BdfPattern>, ParseError<'_>> {
        let n = validate_hide(input)?;
        let v: Vec<BdfPattern> = parse_hide(input).map(|g| g.unwrap()).collect();
        assert_eq!(v.len(), n);
        Ok(v)
    }

    type Parser<T> = for<'a> fn(&'a [u8]) -> Result<T, ParseError<'a>>;

    fn check_accepted<T: PartialEq + core::fmt::Debug>(
        name: &str,
        parse: Parser<T>,
        cases: &[(&[u8], T)],
    ) {
        for (input, want) in cases {
            match parse(input) {
                Ok(got) => assert_eq!(&got, want, "{} \"{}\"", name, input.escape_ascii()),
                Err(e) => panic!("{} refused \"{}\": {}", name, input.escape_ascii(), e),
            }
        }
    }

    fn check_refused<T: core::fmt::Debug>(
        name: &str,
        parse: Parser<T>,
        cases: &[(&[u8], ErrorKind, usize)],
    ) {
        for &(input, want, offset) in cases {
            match parse(input) {
                Ok(got) => panic!("{} took \"{}\" as {:?}", name, input.escape_ascii(), got),
                Err(e) => assert_eq!(
                    (e.kind, e.offset),
                    (want, offset),
                    "{} \"{}\": {}",
                    name,
                    input.escape_ascii(),
                    e
                ),
            }
        }
    }

    #[test]
    fn c_slot_spellings_accepted() {
        let cases: &[(&[u8], BdfPattern)] = &[
            // " %x:%x:%x.%x %n": with the domain.
            (b"0000:06:01.0", exact(0, 6, 1, 0)),
            // The blank before %n takes echo's newline.
            (b"0000:06:01.0\n", exact(0, 6, 1, 0)),
            // " %x:%x.%x %n": without the domain, which is 0.
            (b"06:01.0", exact(0, 6, 1, 0)),
            (b"06:01.0\n", exact(0, 6, 1, 0)),
            // The blanks around the format: leading and trailing spaces and tabs.
            (b" \t06:01.0 \t\n", exact(0, 6, 1, 0)),
            (b"\t 0000:06:01.0\t \n", exact(0, 6, 1, 0)),
            // Every kernel isspace() byte counts, 0xa0 included.
            (b"\x0b\x0c\r\xa006:01.0\xa0\r", exact(0, 6, 1, 0)),
            // %x takes 0x or 0X on every field, with or without the domain.
            (b"0x0000:0x06:0x01.0x2", exact(0, 6, 1, 2)),
            (b"0X1:0X6:0X1f.0X7", exact(1, 6, 0x1f, 7)),
            (b"0x6:0x1.0x2", exact(0, 6, 1, 2)),
            (b"0x0:0x0.0x0", exact(0, 0, 0, 0)),
            (b"0x0000000006:01.0", exact(0, 6, 1, 0)),
            // Upper-case hex digits, with and without the prefix.
            (b"ABCD:EF:1F.7", exact(0xabcd, 0xef, 0x1f, 7)),
            (b"0XABCD:0xeF:0x1F.0X7", exact(0xabcd, 0xef, 0x1f, 7)),
            // Leading zeros, and the largest values.
            (b"00000000006:0001.00007", exact(0, 6, 1, 7)),
            (b"ffff:ff:1f.7", exact(0xffff, 0xff, 0x1f, 7)),
            // %x skips blanks before each number, so after ':' and '.' too.
            (b"0000: 06: 01. 0", exact(0, 6, 1, 0)),
            (b"06:\t0x01.\n7", exact(0, 6, 1, 7)),
            // " %x:%x:%x.* %n" and " %x:%x.* %n": every function of a slot.
            (b"0000:06:01.*", all_funcs(0, 6, 1)),
            (b"06:01.*\n", all_funcs(0, 6, 1)),
            (b" 0x1:0X6: 0x1f.* ", all_funcs(1, 6, 0x1f)),
            // " %x:%x:*.* %n" and " %x:*.* %n": every slot of a bus.
            (b"0001:06:*.*", all_slots(1, 6)),
            (b"06:*.*\n", all_slots(0, 6)),
            (b"\t0xff:*.*\t", all_slots(0, 0xff)),
            (b" 0x1: 0x6:*.*", all_slots(1, 6)),
            // C sees a C string: a NUL ends the value.
            (b"06:01.0\0junk", exact(0, 6, 1, 0)),
            (b"06:01.*\0", all_funcs(0, 6, 1)),
        ];
        check_accepted("slot", parse_slot, cases);
    }

    #[test]
    fn c_slot_spellings_refused() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // Empty, a bare newline, blanks, an empty C string: no form's
            // first %x finds a number.
            (b"", Empty, 0),
            (b"\n", Empty, 1),
            (b" \t \n", Empty, 4),
            (b"\0", Empty, 0),
            // Text after the address: %n is not at the end of the string.
            (b"00:02.0 junk", TrailingJunk, 7),
            // The last %x stops at 'j'.
            (b"00:02.0junk", TrailingJunk, 7),
            (b"0000:00:02.0 0", TrailingJunk, 12),
            (b"06:01.*8", TrailingJunk, 7),
            (b"06:*.*x", TrailingJunk, 6),
            (b"06:01.0\x01", TrailingJunk, 7),
            // A literal ':' or '.' of the format does not match a blank.
            (b"06 :01.0", Expected(b':'), 2),
            (b"0000 :06:01.0", Expected(b':'), 4),
            (b"06:01 .0", Expected(b'.'), 5),
            // Nor does the literal '*' of ".*" and "*.*".
            (b"06: *.*", ExpectedHex(Slot), 4),
            (b"06:01. *", ExpectedHex(Func), 7),
            (b"06:*. *", ExpectedHex(Func), 6),
            (b"06:* .*", Expected(b'.'), 4),
            // A missing field: a literal or a %x meets the end.
            (b"06", Expected(b':'), 2),
            (b"06:01", Expected(b'.'), 5),
            (b"06:01.", ExpectedHex(Func), 6),
            (b"06:01.\n", ExpectedHex(Func), 6),
            (b"0000:06:01", Expected(b'.'), 10),
            (b":01.0", ExpectedHex(Bus), 0),
            (b"06:.0", ExpectedHex(Slot), 3),
            (b"0000::01.0", ExpectedHex(Bus), 5),
            // %x has no sign and wants a hex digit.
            (b"-6:01.0", ExpectedHex(Bus), 0),
            (b"+6:01.0", ExpectedHex(Bus), 0),
            (b"06:-1.0", ExpectedHex(Slot), 3),
            (b"06:01.-0", ExpectedHex(Func), 6),
            (b"g0:00.0", ExpectedHex(Bus), 0),
            // "00x6": %x reads "00" and stops at the 'x'.
            (b"00x6:01.0", Expected(b':'), 2),
            // C reads "0x" as 0, then the blank does not match ':'.
            (b"0x 6:01.0", ExpectedHex(Bus), 2),
            // No form has a bus wildcard or "*.F".
            (b"*:*.*", Wildcard(Bus), 0),
            (b"*:00:*.*", Wildcard(Domain), 0),
            (b"0000:*:*.*", Wildcard(Bus), 5),
            (b"06:*.3", SlotWildcardNeedsFuncWildcard, 5),
            // Three colons: no form has them.
            (b"0:0:0:0.0", Expected(b'.'), 5),
            // Out of range: parsed, then refused by new_slot and hide=
            // (pcistub_device_id_add); remove_slot and the per-device
            // attributes find nothing (ENOENT, ENODEV).
            (b"10000:00:00.0", range(Domain, Some(0x10000), 0xffff), 0),
            (b"0000:100:00.0", range(Bus, Some(0x100), 0xff), 5),
            (b"0x100:00.0", range(Bus, Some(0x100), 0xff), 0),
            (b"00:20.0", range(Slot, Some(0x20), 0x1f), 3),
            (b"00:0x20.*", range(Slot, Some(0x20), 0x1f), 3),
            (b"00:00.8", range(Func, Some(8), 7), 6),
            (b"00:00. 0x8", range(Func, Some(8), 7), 7),
        ];
        check_refused("slot", parse_slot, cases);
    }

    #[test]
    fn c_slot_spellings_we_refuse() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // C reads a bare "0x" as 0 (function 0, domain 0, slot 0 here).
            (b"06:01.0x", ExpectedHex(Func), 8),
            (b"0x:06:01.0", ExpectedHex(Domain), 2),
            (b"06:0X.*", ExpectedHex(Slot), 5),
            // C keeps the low 32 bits: bus 6, domain 0.
            (b"100000006:01.0", range(Bus, None, 0xff), 0),
            (b"0x100000000:06:01.0", range(Domain, None, 0xffff), 0),
            // Past 64 bits C saturates, and the int is -1: every function.
            (b"06:01.fffffffffffffffffffff", range(Func, None, 7), 6),
            // ffffffff is -1 in C's int, which C takes for a wildcard.
            (b"00:ffffffff.0", range(Slot, Some(0xffff_ffff), 0x1f), 3),
            (b"00:01.ffffffff", range(Func, Some(0xffff_ffff), 7), 6),
        ];
        check_refused("slot", parse_slot, cases);
    }

    #[test]
    fn c_exact_spellings() {
        use ErrorKind::*;
        use Field::*;
        // str_to_slot, as for the slot grammar.
        let ok: &[(&[u8], Bdf)] = &[
            (b"0000:06:01.2\n", b(0, 6, 1, 2)),
            (b"06:01.2", b(0, 6, 1, 2)),
            (b" 0x06:0X01.0x2\t", b(0, 6, 1, 2)),
            (b"0x0001: 0x06: 0x1f. 0x7", b(1, 6, 0x1f, 7)),
            (b"06:01.2\0junk", b(0, 6, 1, 2)),
            (b"\xa0ABCD:EF:1F.7\n", b(0xabcd, 0xef, 0x1f, 7)),
        ];
        check_accepted("exact", parse_exact, ok);
        let refused: &[(&[u8], ErrorKind, usize)] = &[
            // A wildcard parses, then no device has slot or function -1:
            // C answers ENODEV.
            (b"06:01.*", Wildcard(Func), 6),
            (b"06:*.*", Wildcard(Slot), 3),
            (b"0000:06:01.*\n", Wildcard(Func), 11),
            // The rest as for the slot grammar.
            (b"", Empty, 0),
            (b"\n", Empty, 1),
            (b"06:01.0 junk", TrailingJunk, 7),
            (b"06:01.0junk", TrailingJunk, 7),
            (b"06:01 .0", Expected(b'.'), 5),
            (b"06:01", Expected(b'.'), 5),
            (b"-6:01.0", ExpectedHex(Bus), 0),
            (b"00:20.0", range(Slot, Some(0x20), 0x1f), 3),
        ];
        check_refused("exact", parse_exact, refused);
        let we_refuse: &[(&[u8], ErrorKind, usize)] = &[
            // C: function 0, and function -1 (no device).
            (b"06:01.0x", ExpectedHex(Func), 8),
            (b"00:01.ffffffff", range(Func, Some(0xffff_ffff), 7), 6),
            (b"00:01.100000002", range(Func, None, 7), 6),
        ];
        check_refused("exact", parse_exact, we_refuse);
    }

    #[test]
    fn c_quirk_spellings_accepted() {
        let cases: &[(&[u8], Quirk)] = &[
            // " %x:%x:%x.%x-%x:%x:%x %n": the reported case, 0x on REG and MASK.
            (
                b"0000:00:02.0-0x40:2:0xffff",
                quirk(b(0, 0, 2, 0), 0x40, 2, 0xffff),
            ),
            // " %x:%x.%x-%x:%x:%x %n": 0x on every field, trailing newline.
            (
                b"0x00:0x02.0x0-0x40:0x2:0xffff\n",
                quirk(b(0, 0, 2, 0), 0x40, 2, 0xffff),
            ),
            (
                b"0X1:0X0:0X19.0X0-0XE0:0X4:0XFFFFFFFF",
                quirk(b(1, 0, 0x19, 0), 0xe0, 4, 0xffff_ffff),
            ),
            // Leading and trailing blanks; upper-case hex.
            (
                b" \t00:19.0-e0:2:ff \t\n",
                quirk(b(0, 0, 0x19, 0), 0xe0, 2, 0xff),
            ),
            (b"00:19.0-E0:2:FF", quirk(b(0, 0, 0x19, 0), 0xe0, 2, 0xff)),
            // A blank before each number.
            (
                b"0000: 00: 19. 0- e0:\t2:\n0xff",
                quirk(b(0, 0, 0x19, 0), 0xe0, 2, 0xff),
            ),
            // Leading zeros; the largest register of its size.
            (
                b"00:19.0-0000ffc:00004:00ffffffff",
                quirk(b(0, 0, 0x19, 0), 0xffc, 4, 0xffff_ffff),
            ),
            (b"00:19.0-fff:1:ff", quirk(b(0, 0, 0x19, 0), 0xfff, 1, 0xff)),
            // A NUL ends the value.
            (
                b"00:19.0-e0:2:ff\0junk",
                quirk(b(0, 0, 0x19, 0), 0xe0, 2, 0xff),
            ),
        ];
        check_accepted("quirk", parse_quirk, cases);
    }

    #[test]
    fn c_quirk_spellings_refused() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // Nothing to convert.
            (b"", Empty, 0),
            (b"\n", Empty, 1),
            // A literal '-' or ':' does not match a blank.
            (b"00:19.0 -e0:2:ff", TrailingJunk, 7),
            (b"00:19.0-e0 :2:ff", Expected(b':'), 10),
            (b"00:19.0-e0:2 :ff", Expected(b':'), 12),
            // %n not at the end.
            (b"00:19.0-e0:2:ff junk", TrailingJunk, 15),
            (b"00:19.0-e0:2:ffjunk", TrailingJunk, 15),
            // A missing field.
            (b"00:19.0", Expected(b'-'), 7),
            (b"00:19.0-", ExpectedHex(Reg), 8),
            (b"00:19.0-e0:2", Expected(b':'), 12),
            (b"00:19.0-e0:2:", ExpectedHex(Mask), 13),
            (b"00:19-e0:2:ff", Expected(b'.'), 5),
            // No sign, no wildcard.
            (b"00:19.0--e0:2:ff", ExpectedHex(Reg), 8),
            (b"00:19.0-e0:2:-1", ExpectedHex(Mask), 13),
            (b"00:19.*-e0:2:ff", Wildcard(Func), 6),
            // pcistub_reg_add: REG above 0xfff, MASK wider than SIZE.
            (b"00:19.0-0x1000:1:0", range(Reg, Some(0x1000), 0xfff), 8),
            (
                b"00:19.0-e0:1:0x100",
                MaskTooWide {
                    mask: 0x100,
                    size: 1,
                },
                13,
            ),
            (
                b"00:19.0-e0:2:10000",
                MaskTooWide {
                    mask: 0x10000,
                    size: 2,
                },
                13,
            ),
            // An address out of range: C finds no device (ENODEV).
            (b"00:20.0-e0:2:ff", range(Slot, Some(0x20), 0x1f), 3),
        ];
        check_refused("quirk", parse_quirk, cases);
    }

    #[test]
    fn c_quirk_spellings_we_refuse() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // C reads a bare "0x" as 0.
            (b"00:19.0-e0:2:0x", ExpectedHex(Mask), 15),
            (b"00:19.0-0x:2:ff", ExpectedHex(Reg), 10),
            // C keeps the low 32 bits: mask 0, register 0x10.
            (b"00:19.0-e0:4:100000000", range(Mask, None, u32::MAX), 13),
            (b"00:19.0-100000010:4:0", range(Reg, None, 0xfff), 8),
            // The documented stricter rules: size 1, 2 or 4, naturally
            // aligned, inside config space.
            (b"00:19.0-e0:3:ff", BadSize(3), 11),
            (b"00:19.0-e0:0:0", BadSize(0), 11),
            (b"00:19.0-e1:2:ff", Misaligned { reg: 0xe1, size: 2 }, 8),
            (
                b"00:19.0-ffe:4:0",
                BeyondConfigSpace {
                    reg: 0xffe,
                    size: 4,
                },
                8,
            ),
        ];
        check_refused("quirk", parse_quirk, cases);
    }

    #[test]
    fn c_hide_spellings_accepted() {
        let cases: &[(&[u8], Vec<BdfPattern>)] = &[
            // " (%x:%x:%x.%x) %n".
            (b"(0000:06:01.0)", std::vec![exact(0, 6, 1, 0)]),
            // " (%x:%x.%x) %n" twice, nothing between the groups.
            (
                b"(06:01.0)(07:02.1)",
                std::vec![exact(0, 6, 1, 0), exact(0, 7, 2, 1)],
            ),
            // Blanks before, between and after the groups; the wildcard
            // forms " (%x:%x:%x.*) %n" and " (%x:*.*) %n".
            (
                b"  (0000:06:01.*) \n\t(07:*.*)\n",
                std::vec![all_funcs(0, 6, 1), all_slots(0, 7)],
            ),
            // " (%x:%x:*.*) %n" and " (%x:%x.*) %n".
            (
                b"(0001:06:*.*)(06:1f.*)",
                std::vec![all_slots(1, 6), all_funcs(0, 6, 0x1f)],
            ),
            // 0x or 0X on every field.
            (
                b"(0x0000:0x06:0x01.0x0)(0X7:0X2.0X1)",
                std::vec![exact(0, 6, 1, 0), exact(0, 7, 2, 1)],
            ),
            (b"(0x6:0X1.*)", std::vec![all_funcs(0, 6, 1)]),
            // Upper-case hex.
            (b"(ABCD:EF:1F.7)", std::vec![exact(0xabcd, 0xef, 0x1f, 7)]),
            // A blank before each number inside a group.
            (b"( 0000:\t06: 01.\n0)", std::vec![exact(0, 6, 1, 0)]),
            (b"( 06:*.*)", std::vec![all_slots(0, 6)]),
            // 0xa0 is a kernel blank.
            (b"\xa0(06:01.0)\xa0", std::vec![exact(0, 6, 1, 0)]),
            // A NUL ends the value.
            (b"(06:01.0)\0(zz)", std::vec![exact(0, 6, 1, 0)]),
        ];
        check_accepted("hide", hide_all, cases);
    }

    #[test]
    fn c_hide_spellings_refused() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // Blanks only (C parses any value that is not empty): the
            // format's '(' meets the end.
            (b" ", Empty, 1),
            (b"\n", Empty, 1),
            // No '(' at all.
            (b"0000:06:01.0", MissingOpen, 0),
            (b"\t06:01.0\n", MissingOpen, 1),
            // The format's ')' is never met.
            (b"(06:01.0", MissingClose, 8),
            (b"(06:01.0(07:00.0)", MissingClose, 8),
            // ... and does not match a blank.
            (b"(06:01.0 )", TrailingJunk, 8),
            // Text after a group: the next round finds no '('.
            (b"(06:01.0) junk", TrailingJunk, 10),
            (b"(06:01.0)junk", TrailingJunk, 9),
            (b"(06:01.0)x(07:00.0)", TrailingJunk, 9),
            // A literal ':', '.' or '*' does not match a blank.
            (b"(06 :01.0)", Expected(b':'), 3),
            (b"(06: *.*)", ExpectedHex(Slot), 5),
            (b"(06:01. *)", ExpectedHex(Func), 8),
            // A missing field, an empty group.
            (b"(06:01)", Expected(b'.'), 6),
            (b"(06:01.0)()", ExpectedHex(Bus), 10),
            // No sign; not hex ("0g": %x stops at 'g').
            (b"(-6:01.0)", ExpectedHex(Bus), 1),
            (b"(0000:0g:01.0)", Expected(b':'), 7),
            // No bus wildcard, no "*.F".
            (b"(*:*.*)", Wildcard(Bus), 1),
            (b"(06:*.3)", SlotWildcardNeedsFuncWildcard, 6),
            // Out of range: pcistub_device_id_add fails the load.
            (b"(10000:00:00.0)", range(Domain, Some(0x10000), 0xffff), 1),
            (b"(0000:100:00.0)", range(Bus, Some(0x100), 0xff), 6),
            (b"(06:20.0)", range(Slot, Some(0x20), 0x1f), 4),
            (b"(06:01.0)(06:01.8)", range(Func, Some(8), 7), 16),
        ];
        check_refused("hide", hide_all, cases);
    }

    #[test]
    fn c_hide_spellings_we_refuse() {
        use ErrorKind::*;
        use Field::*;
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            // C takes an empty value as "no devices"; the driver skips an
            // empty value before parsing it (`parse_hide_param`).
            (b"", Empty, 0),
            // C reads a bare "0x" as 0.
            (b"(06:01.0x)", ExpectedHex(Func), 9),
            // C keeps the low 32 bits: bus 6.
            (b"(100000006:01.0)", range(Bus, None, 0xff), 1),
            // ffffffff is -1 in C: every slot of bus 6.
            (b"(06:ffffffff.0)", range(Slot, Some(0xffff_ffff), 0x1f), 4),
        ];
        check_refused("hide", hide_all, cases);
    }

    // -----------------------------------------------------------------------
    // A model of what C does, for comparison on many generated inputs.
    // -----------------------------------------------------------------------

    /// What one call of the kernel's `sscanf` did: the numbers converted
    /// (before C narrows them to `int`), where `%n` was if it got that far,
    /// and whether a number was a bare `0x`.
    struct Scanned {
        vals: Vec<u64>,
        n: Option<usize>,
        bare_0x: bool,
    }

    /// The kernel's `vsscanf` as far as pciback's formats need it (blanks,
    /// literal characters, `%x`, `%n`), modelled from lib/vsprintf.c.
    /// `buf` is the C string, without its NUL.
    fn kscanf(buf: &[u8], fmt: &[u8]) -> Scanned {
        let c = |i: usize| buf.get(i).copied().unwrap_or(0);
        let blank = |b: u8| matches!(b, b'\t'..=b'\r' | b' ' | 0xa0);
        let mut out = Scanned {
            vals: Vec::new(),
            n: None,
            bare_0x: false,
        };
        let (mut i, mut j) = (0usize, 0usize);
        while j < fmt.len() {
            if blank(fmt[j]) {
                while fmt.get(j).copied().is_some_and(blank) {
                    j += 1;
                }
                while blank(c(i)) {
                    i += 1;
                }
                if j == fmt.len() {
                    break;
                }
            }
            if fmt[j] != b'%' {
                if fmt[j] != c(i) {
                    break;
                }
                i += 1;
                j += 1;
                continue;
            }
            match fmt[j + 1] {
                b'n' => out.n = Some(i),
                b'x' => {
                    if c(i) == 0 {
                        break;
                    }
                    while blank(c(i)) {
                        i += 1;
                    }
                    if !c(i).is_ascii_hexdigit() {
                        break;
                    }
                    // The base-16 prefix is skipped whatever follows it.
                    if c(i) == b'0' && (c(i + 1) | 0x20) == b'x' {
                        i += 2;
                        out.bare_0x |= !c(i).is_ascii_hexdigit();
                    }
                    let mut v = 0u64;
                    while let Some(d) = char::from(c(i)).to_digit(16) {
                        v = v
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .unwrap_or(u64::MAX);
                        i += 1;
                    }
                    out.vals.push(v);
                }
                _ => unreachable!(),
            }
            j += 2;
        }
        out
    }

    /// C's fields for an accepted value (`None`: a wildcard, -1 in C).
    #[derive(Debug)]
    struct CHit {
        vals: Vec<Option<u64>>,
        bare_0x: bool,
    }

    /// The C driver's `parsed` and the fields of the call that set it.
    struct CRun<'a> {
        buf: &'a [u8],
        parsed: usize,
        hit: Option<CHit>,
    }

    impl CRun<'_> {
        /// One `sscanf(buf, fmt, ...)`; a form without the domain gets 0,
        /// `wild` trailing fields are wildcards. Returns the conversions.
        fn run(&mut self, fmt: &str, domain: bool, wild: usize) -> usize {
            let s = kscanf(self.buf, fmt.as_bytes());
            if let Some(n) = s.n {
                self.parsed = n;
                let mut vals = Vec::new();
                if !domain {
                    vals.push(Some(0));
                }
                vals.extend(s.vals.iter().map(|&v| Some(v)));
                vals.extend(core::iter::repeat_n(None, wild));
                self.hit = Some(CHit {
                    vals,
                    bare_0x: s.bare_0x,
                });
            }
            s.vals.len()
        }

        /// `parsed && !buf[parsed]`.
        fn at_end(&self) -> bool {
            self.parsed != 0 && self.parsed == self.buf.len()
        }
    }

    /// C's `str_to_slot`.
    fn c_str_to_slot(buf: &[u8]) -> Option<CHit> {
        let mut r = CRun {
            buf,
            parsed: 0,
            hit: None,
        };
        match r.run(" %x:%x:%x.%x %n", true, 0) {
            3 => r.run(" %x:%x:%x.* %n", true, 1),
            2 => r.run(" %x:%x:*.* %n", true, 2),
            _ => 0,
        };
        if r.at_end() {
            return r.hit;
        }
        match r.run(" %x:%x.%x %n", false, 0) {
            2 => r.run(" %x:%x.* %n", false, 1),
            1 => r.run(" %x:*.* %n", false, 2),
            _ => 0,
        };
        if r.at_end() {
            return r.hit;
        }
        None
    }

    /// C's `str_to_quirk`.
    fn c_str_to_quirk(buf: &[u8]) -> Option<CHit> {
        let mut r = CRun {
            buf,
            parsed: 0,
            hit: None,
        };
        r.run(" %x:%x:%x.%x-%x:%x:%x %n", true, 0);
        if r.at_end() {
            return r.hit;
        }
        r.run(" %x:%x.%x-%x:%x:%x %n", false, 0);
        if r.at_end() {
            return r.hit;
        }
        None
    }

    /// The `hide=` loop of C's `pcistub_init`; `None` is a parse error.
    fn c_hide(buf: &[u8]) -> Option<Vec<CHit>> {
        let mut groups = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let mut r = CRun {
                buf: &buf[pos..],
                parsed: 0,
                hit: None,
            };
            match r.run(" (%x:%x:%x.%x) %n", true, 0) {
                3 => r.run(" (%x:%x:%x.*) %n", true, 1),
                2 => r.run(" (%x:%x:*.*) %n", true, 2),
                _ => 0,
            };
            if r.parsed == 0 {
                match r.run(" (%x:%x.%x) %n", false, 0) {
                    2 => r.run(" (%x:%x.*) %n", false, 1),
                    1 => r.run(" (%x:*.*) %n", false, 2),
                    _ => 0,
                };
            }
            if r.parsed == 0 {
                return None;
            }
            groups.push(r.hit.unwrap());
            pos += r.parsed;
        }
        Some(groups)
    }

    /// What our parser must make of a value C accepted: the same address,
    /// or a refusal when C's acceptance is one of the accidents we refuse
    /// (bare `0x`, more than 32 bits) or a field is out of range.
    fn want_pattern(hit: &CHit) -> Option<BdfPattern> {
        if hit.bare_0x {
            return None;
        }
        let v = |i: usize, max: u64| match hit.vals[i] {
            Some(x) if x <= max => Some(Some(x)),
            Some(_) => None,
            None => Some(None),
        };
        let (d, bus) = (v(0, 0xffff)??, v(1, 0xff)??);
        let (d, bus) = (d as u16, bus as u8);
        Some(match (v(2, 0x1f)?, v(3, 7)?) {
            (Some(s), Some(f)) => exact(d, bus, s as u8, f as u8),
            (Some(s), None) => all_funcs(d, bus, s as u8),
            (None, None) => all_slots(d, bus),
            (None, Some(_)) => unreachable!(),
        })
    }

    fn want_quirk(hit: &CHit) -> Option<Quirk> {
        let bdf = want_pattern(&CHit {
            vals: hit.vals[..4].to_vec(),
            bare_0x: hit.bare_0x,
        })?
        .exact()?;
        let (reg, size, mask) = (hit.vals[4]?, hit.vals[5]?, hit.vals[6]?);
        let mask = u32::try_from(mask).ok()?;
        if reg > 0xfff || !matches!(size, 1 | 2 | 4) || reg % size != 0 || reg + size > 0x1000 {
            return None;
        }
        if size < 4 && mask >> (size * 8) != 0 {
            return None;
        }
        Some(quirk(bdf, reg as u16, size as u32, mask))
    }

    #[test]
    fn parsers_match_the_c_model() {
        const NUMS: &[&[u8]] = &[
            b"0",
            b"00",
            b"6",
            b"06",
            b"1f",
            b"1F",
            b"7",
            b"8",
            b"20",
            b"e0",
            b"E1",
            b"ff",
            b"100",
            b"ffc",
            b"ffe",
            b"fff",
            b"1000",
            b"ffff",
            b"10000",
            b"ffffffff",
            b"100000006",
            b"fffffffffffffffffff",
            b"0x6",
            b"0X1f",
            b"0x0",
            b"0x",
            b"0X",
            b"00x1",
            b"0x0x1",
            b"2",
            b"4",
            b"3",
            b"1",
            b"g",
            b"-1",
            b"+1",
            b"",
        ];
        const REGS: &[&[u8]] = &[
            b"e0",
            b"0x40",
            b"0X40",
            b"ffc",
            b"fff",
            b"ffe",
            b"1000",
            b"e1",
            b"0",
            b"0x",
            b"100000010",
            b" 10",
        ];
        const SIZES: &[&[u8]] = &[b"1", b"2", b"4", b"0x2", b"04", b"3", b"0", b"0x"];
        const MASKS: &[&[u8]] = &[
            b"0",
            b"ff",
            b"0xff",
            b"FFFF",
            b"0xffff",
            b"ffffffff",
            b"100000000",
            b"1ff",
            b"0x",
            b"\tff",
        ];
        const BLANKS: &[&[u8]] = &[b" ", b"\t", b"\n", b"\xa0", b"\x0b", b"\r", b"  "];
        const NOISE: &[&[u8]] = &[
            b":", b".", b"*", b"(", b")", b"-", b"x", b"\0", b"\xff", b"junk", b" ",
        ];
        let mut rng = Lcg(7);
        let pick = |rng: &mut Lcg, set: &[&'static [u8]]| set[(rng.next() as usize) % set.len()];
        // (C and we accept, of which with blanks inside or a 0x prefix)
        let (mut slots, mut quirks, mut hides, mut fancy) = (0, 0, 0, 0);
        for _ in 0..100_000 {
            let mut toks: Vec<&[u8]> = Vec::new();
            // 0: slot, 1 and 3: quirk (more fields to get right), 2: hide.
            let shape = rng.next() % 4;
            let groups = if shape == 2 { 1 + rng.next() % 3 } else { 1 };
            for _ in 0..groups {
                if shape == 2 {
                    toks.push(b"(");
                }
                if rng.next() % 2 == 0 {
                    toks.push(pick(&mut rng, NUMS));
                    toks.push(b":");
                }
                toks.push(pick(&mut rng, NUMS));
                toks.push(b":");
                match rng.next() % 4 {
                    0 => toks.extend_from_slice(&[b"*", b".", b"*"]),
                    1 => toks.extend_from_slice(&[pick(&mut rng, NUMS), b".", b"*"]),
                    _ => {
                        toks.extend_from_slice(&[pick(&mut rng, NUMS), b".", pick(&mut rng, NUMS)])
                    }
                }
                if shape % 2 == 1 {
                    toks.push(b"-");
                    toks.push(pick(&mut rng, REGS));
                    toks.push(b":");
                    toks.push(pick(&mut rng, SIZES));
                    toks.push(b":");
                    toks.push(pick(&mut rng, MASKS));
                }
                if shape == 2 {
                    toks.push(b")");
                }
            }
            // Blanks anywhere, sometimes.
            let mut i = 0;
            while i <= toks.len() {
                if rng.next() % 12 == 0 {
                    toks.insert(i, pick(&mut rng, BLANKS));
                    i += 1;
                }
                i += 1;
            }
            if rng.next() % 3 == 0 {
                let at = (rng.next() as usize) % (toks.len() + 1);
                let t = pick(&mut rng, NOISE);
                match rng.next() % 3 {
                    0 => toks.insert(at, t),
                    1 if at < toks.len() => toks[at] = t,
                    _ if at < toks.len() => {
                        toks.remove(at);
                    }
                    _ => {}
                }
            }
            // A NUL and something after it, sometimes: C never sees that part.
            if rng.next() % 10 == 0 {
                toks.push(b"\0");
                toks.push(pick(&mut rng, NOISE));
            }
            let v: Vec<u8> = toks.concat();
            // What C sees (cut here, not with the parser's own helper).
            let cstr = v.split(|&b| b == 0).next().unwrap_or(&[]);
            let interesting = v.windows(2).any(|w| {
                (w[0] == b'0' && (w[1] | 0x20) == b'x')
                    || (w[0].is_ascii_hexdigit() || w[0] == b':' || w[0] == b'.')
                        && is_kernel_space(w[1])
            });
            let show = v.escape_ascii();

            let want = c_str_to_slot(cstr).and_then(|h| want_pattern(&h));
            let got = parse_slot(&v);
            assert_eq!(
                got.ok(),
                want,
                "slot \"{}\": C says {:?}",
                show,
                c_str_to_slot(cstr)
            );
            if let Err(e) = got {
                assert!(e.offset <= v.len());
            }
            if want.is_some() {
                slots += 1;
                fancy += usize::from(interesting);
            }
            let want_exact = want.and_then(|p| p.exact());
            assert_eq!(parse_exact(&v).ok(), want_exact, "exact \"{}\"", show);

            let want = c_str_to_quirk(cstr).and_then(|h| want_quirk(&h));
            let got = parse_quirk(&v);
            assert_eq!(
                got.ok(),
                want,
                "quirk \"{}\": C says {:?}",
                show,
                c_str_to_quirk(cstr)
            );
            if let Err(e) = got {
                assert!(e.offset <= v.len());
            }
            if want.is_some() {
                quirks += 1;
                fancy += usize::from(interesting);
            }

            // An empty value is C's "no devices"; we report it (see above).
            let want = match c_hide(cstr) {
                Some(g) if !g.is_empty() => g.iter().map(want_pattern).collect::<Option<Vec<_>>>(),
                _ => None,
            };
            let got = hide_all(&v);
            assert_eq!(
                got.as_ref().ok(),
                want.as_ref(),
                "hide \"{}\": C says {:?}",
                show,
                c_hide(cstr)
            );
            if let Err(e) = got {
                assert!(e.offset <= v.len());
            }
            if want.is_some() {
                hides += 1;
                fancy += usize::from(interesting);
            }
        }
        // The generator reaches accepted values, blanks and prefixes included
        // (about 2300, 150, 800 and 1200 of them).
        assert!(slots > 1000, "{}", slots);
        assert!(quirks > 50, "{}", quirks);
        assert!(hides > 300, "{}", hides);
        assert!(fancy > 500, "{}", fancy);
    }
}
