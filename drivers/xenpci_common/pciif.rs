// SPDX-License-Identifier: GPL-2.0

//! The `pciif.h` wire protocol: the layout of the one shared page, commands,
//! flag bits and error codes, and the validation of a request copied out of it.
//!
//! C header: `include/xen/interface/io/pciif.h`.
//!
//! The shared page belongs to both domains at once. The drivers never form a
//! Rust reference into it: they access single fields at the `OFFSET_*`
//! constants below with volatile or atomic accesses, or copy the whole
//! [`RawOp`] out as bytes ([`RawOp::from_bytes`]) and only then validate it
//! ([`Request::decode`]), so that the other domain cannot change a value
//! between check and use.
//!
//! All fields are in the native byte order of the (x86) machine.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::bdf::Bdf;
use super::roundtrip::ERR_UNANSWERED;

/// Protocol version string written to and checked in xenstore `magic`.
pub(crate) const XEN_PCI_MAGIC: &str = "7";

/// Bit number in `flags`: the frontend has a request pending (`_XEN_PCIF_active`).
pub(crate) const XEN_PCIF_ACTIVE_BIT: u32 = 0;
/// Mask of [`XEN_PCIF_ACTIVE_BIT`].
pub(crate) const XEN_PCIF_ACTIVE: u32 = 1 << XEN_PCIF_ACTIVE_BIT;
/// Bit number in `flags`: the frontend has a PV AER handler (`_XEN_PCIB_AERHANDLER`).
pub(crate) const XEN_PCIB_AERHANDLER_BIT: u32 = 1;
/// Mask of [`XEN_PCIB_AERHANDLER_BIT`].
pub(crate) const XEN_PCIB_AERHANDLER: u32 = 1 << XEN_PCIB_AERHANDLER_BIT;
/// Bit number in `flags`: the backend has an AER request pending (`_XEN_PCIB_active`).
pub(crate) const XEN_PCIB_ACTIVE_BIT: u32 = 2;
/// Mask of [`XEN_PCIB_ACTIVE_BIT`].
pub(crate) const XEN_PCIB_ACTIVE: u32 = 1 << XEN_PCIB_ACTIVE_BIT;
/// Bit number in `flags`: the frontend is watching `_XEN_PCIF_active` for the answer to its
/// request, so the answer needs no event. This project's extension, not in Xen's `pciif.h`: the
/// frontend sets it with `_XEN_PCIF_active` and clears it before it waits for the event; a
/// backend that clears `_XEN_PCIF_active` while it is set may skip the notification (the
/// answer-side counterpart of `ring.h`'s `rsp_event`). Used only when both ends wrote
/// `feature-quiet-answers` = `1` in xenstore ([`super::xs::FEATURE_QUIET_ANSWERS`]): the
/// frontend sets the bit only if the backend offers it, the backend honours it only if the
/// frontend offers it. The C drivers offer neither, and neither set nor read the bit.
pub(crate) const XEN_PCIF_WATCHING_BIT: u32 = 3;
/// Mask of [`XEN_PCIF_WATCHING_BIT`].
pub(crate) const XEN_PCIF_WATCHING: u32 = 1 << XEN_PCIF_WATCHING_BIT;

/// Whether the backend must signal the answer it just published by clearing
/// `_XEN_PCIF_active`, given the flags that clearing found (`old`, from the same atomic step:
/// a frontend that stops watching does so with an atomic step on the same word, so one of the
/// two sees the other).
pub(crate) const fn answer_needs_event(old: u32) -> bool {
    old & XEN_PCIF_WATCHING == 0
}

/// Number of MSI-X entries in a request (`SH_INFO_MAX_VEC`).
pub(crate) const SH_INFO_MAX_VEC: usize = 128;

/// `err` value of a successful operation (`XEN_PCI_ERR_success`).
pub(crate) const XEN_PCI_ERR_SUCCESS: i32 = 0;

/// Linux `EINVAL`; the backend answers `-EINVAL` (raw, not a `XEN_PCI_ERR_*`)
/// to `enable_msix` with a bad vector count, as the C backend does.
pub(crate) const EINVAL: i32 = 22;
/// Linux `ENODEV`; the C frontend treats a raw `-ENODEV` from a config read
/// as "no device, value 0".
pub(crate) const ENODEV: i32 = 19;

/// Size of the PCI (express) configuration space.
pub(crate) const CONFIG_SPACE_SIZE: u32 = 4096;

/// Error codes carried in `xen_pci_op.err` (`XEN_PCI_ERR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum PciifError {
    /// `XEN_PCI_ERR_dev_not_found`: no such device exported to this guest.
    DevNotFound = -1,
    /// `XEN_PCI_ERR_invalid_offset`: bad offset or size.
    InvalidOffset = -2,
    /// `XEN_PCI_ERR_access_denied`: the field may not be accessed.
    AccessDenied = -3,
    /// `XEN_PCI_ERR_not_implemented`: unknown or unsupported command.
    NotImplemented = -4,
    /// `XEN_PCI_ERR_op_failed`: the device or the host failed the access.
    OpFailed = -5,
}

impl PciifError {
    /// The value written into the `err` field of the shared page.
    pub(crate) const fn code(self) -> i32 {
        self as i32
    }

    /// The error with this `err` value, if it is one of `XEN_PCI_ERR_*`.
    pub(crate) const fn from_code(code: i32) -> Option<PciifError> {
        match code {
            -1 => Some(PciifError::DevNotFound),
            -2 => Some(PciifError::InvalidOffset),
            -3 => Some(PciifError::AccessDenied),
            -4 => Some(PciifError::NotImplemented),
            -5 => Some(PciifError::OpFailed),
            _ => None,
        }
    }
}

impl fmt::Display for PciifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PciifError::DevNotFound => "device not found",
            PciifError::InvalidOffset => "invalid offset",
            PciifError::AccessDenied => "access denied",
            PciifError::NotImplemented => "not implemented",
            PciifError::OpFailed => "operation failed",
        };
        f.write_str(s)
    }
}

/// Anything the backend can put into `err`: a protocol code, or (for
/// `enable_msix` only, as the C backend does) a raw negative Linux errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpError {
    /// A `XEN_PCI_ERR_*` code.
    Xen(PciifError),
    /// A negative errno, e.g. `-EINVAL` (-22). Collides with `XEN_PCI_ERR_*`
    /// for -1..-5: that is a wart of the protocol.
    Errno(i32),
}

impl OpError {
    /// `-EINVAL`.
    pub(crate) const EINVAL: OpError = OpError::Errno(-EINVAL);

    /// The value written into `err`.
    pub(crate) const fn code(self) -> i32 {
        match self {
            OpError::Xen(e) => e.code(),
            OpError::Errno(e) => e,
        }
    }
}

impl From<PciifError> for OpError {
    fn from(e: PciifError) -> OpError {
        OpError::Xen(e)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Xen(e) => write!(f, "{} ({})", e, e.code()),
            OpError::Errno(e) => write!(f, "errno {}", e),
        }
    }
}

/// Commands of `xen_pci_op.cmd` (0..=5, frontend to backend) and of
/// `xen_pcie_aer_op.cmd` (6..=9, backend to frontend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Command {
    /// `XEN_PCI_OP_conf_read`.
    ConfRead = 0,
    /// `XEN_PCI_OP_conf_write`.
    ConfWrite = 1,
    /// `XEN_PCI_OP_enable_msi`.
    EnableMsi = 2,
    /// `XEN_PCI_OP_disable_msi`.
    DisableMsi = 3,
    /// `XEN_PCI_OP_enable_msix`.
    EnableMsix = 4,
    /// `XEN_PCI_OP_disable_msix`.
    DisableMsix = 5,
    /// `XEN_PCI_OP_aer_detected`.
    AerDetected = 6,
    /// `XEN_PCI_OP_aer_resume`.
    AerResume = 7,
    /// `XEN_PCI_OP_aer_mmio`.
    AerMmio = 8,
    /// `XEN_PCI_OP_aer_slotreset`.
    AerSlotReset = 9,
}

impl Command {
    /// The wire value.
    pub(crate) const fn raw(self) -> u32 {
        self as u32
    }

    /// The name `pciif.h` gives it, without `XEN_PCI_OP_` (for logs and statistics).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Command::ConfRead => "conf_read",
            Command::ConfWrite => "conf_write",
            Command::EnableMsi => "enable_msi",
            Command::DisableMsi => "disable_msi",
            Command::EnableMsix => "enable_msix",
            Command::DisableMsix => "disable_msix",
            Command::AerDetected => "aer_detected",
            Command::AerResume => "aer_resume",
            Command::AerMmio => "aer_mmio",
            Command::AerSlotReset => "aer_slotreset",
        }
    }

    /// True for the four AER commands (only valid in `aer_op`).
    pub(crate) const fn is_aer(self) -> bool {
        matches!(
            self,
            Command::AerDetected | Command::AerResume | Command::AerMmio | Command::AerSlotReset
        )
    }
}

/// Unknown command numbers are `NotImplemented`, as in the C backend.
impl TryFrom<u32> for Command {
    type Error = PciifError;

    fn try_from(v: u32) -> Result<Command, PciifError> {
        Ok(match v {
            0 => Command::ConfRead,
            1 => Command::ConfWrite,
            2 => Command::EnableMsi,
            3 => Command::DisableMsi,
            4 => Command::EnableMsix,
            5 => Command::DisableMsix,
            6 => Command::AerDetected,
            7 => Command::AerResume,
            8 => Command::AerMmio,
            9 => Command::AerSlotReset,
            _ => return Err(PciifError::NotImplemented),
        })
    }
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

/// `struct xen_msix_entry`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct MsixEntry {
    /// OUT: pirq (the C frontend sends 0xffff).
    pub(crate) vector: u16,
    /// IN: MSI-X table index.
    pub(crate) entry: u16,
}

/// `struct xen_pci_op`: one request and its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct RawOp {
    /// IN: `XEN_PCI_OP_*`.
    pub(crate) cmd: u32,
    /// OUT: `XEN_PCI_ERR_*` or a negative errno.
    pub(crate) err: i32,
    /// IN: PCI segment as the guest sees it.
    pub(crate) domain: u32,
    /// IN: bus.
    pub(crate) bus: u32,
    /// IN: devfn.
    pub(crate) devfn: u32,
    /// IN: config space offset.
    pub(crate) offset: i32,
    /// IN: access size, 1, 2 or 4.
    pub(crate) size: i32,
    /// IN/OUT: value written or read; MSI-X vector count; pirq.
    pub(crate) value: u32,
    /// IN: extra information (unused by Linux).
    pub(crate) info: u32,
    /// IN/OUT: MSI-X table indices and returned pirqs.
    pub(crate) msix_entries: [MsixEntry; SH_INFO_MAX_VEC],
}

impl Default for RawOp {
    fn default() -> RawOp {
        RawOp {
            cmd: 0,
            err: 0,
            domain: 0,
            bus: 0,
            devfn: 0,
            offset: 0,
            size: 0,
            value: 0,
            info: 0,
            msix_entries: [MsixEntry::default(); SH_INFO_MAX_VEC],
        }
    }
}

/// `struct xen_pcie_aer_op`: an AER notification from the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct AerOp {
    /// `XEN_PCI_OP_aer_*`.
    pub(crate) cmd: u32,
    /// IN: `pci_channel_state_t` (for `aer_detected`); OUT: `pci_ers_result_t`.
    pub(crate) err: i32,
    /// PCI segment as the guest sees it.
    pub(crate) domain: u32,
    /// Bus.
    pub(crate) bus: u32,
    /// Devfn.
    pub(crate) devfn: u32,
}

/// `struct xen_pci_sharedinfo`, at the start of the shared page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct SharedInfo {
    /// `XEN_PCIF_*` / `XEN_PCIB_*` bits.
    pub(crate) flags: u32,
    /// The request slot.
    pub(crate) op: RawOp,
    /// The AER notification slot.
    pub(crate) aer_op: AerOp,
}

/// Size of [`RawOp`] (`sizeof(struct xen_pci_op)`).
pub(crate) const RAW_OP_SIZE: usize = 548;
/// Size of the fields of [`RawOp`] before its MSI-X entries (`cmd` to `info`): all a
/// configuration request uses.
pub(crate) const RAW_OP_HEADER_SIZE: usize = 36;
/// Size of [`AerOp`].
pub(crate) const AER_OP_SIZE: usize = 20;
/// Size of [`SharedInfo`].
pub(crate) const SHARED_INFO_SIZE: usize = 572;

/// Offset of `flags` in the shared page.
pub(crate) const OFFSET_FLAGS: usize = offset_of!(SharedInfo, flags);
/// Offset of `op` in the shared page.
pub(crate) const OFFSET_OP: usize = offset_of!(SharedInfo, op);
/// Offset of `aer_op` in the shared page.
pub(crate) const OFFSET_AER_OP: usize = offset_of!(SharedInfo, aer_op);

/// Offset of `cmd` in [`RawOp`].
pub(crate) const OP_OFFSET_CMD: usize = offset_of!(RawOp, cmd);
/// Offset of `err` in [`RawOp`].
pub(crate) const OP_OFFSET_ERR: usize = offset_of!(RawOp, err);
/// Offset of `domain` in [`RawOp`].
pub(crate) const OP_OFFSET_DOMAIN: usize = offset_of!(RawOp, domain);
/// Offset of `bus` in [`RawOp`].
pub(crate) const OP_OFFSET_BUS: usize = offset_of!(RawOp, bus);
/// Offset of `devfn` in [`RawOp`].
pub(crate) const OP_OFFSET_DEVFN: usize = offset_of!(RawOp, devfn);
/// Offset of `offset` in [`RawOp`].
pub(crate) const OP_OFFSET_OFFSET: usize = offset_of!(RawOp, offset);
/// Offset of `size` in [`RawOp`].
pub(crate) const OP_OFFSET_SIZE: usize = offset_of!(RawOp, size);
/// Offset of `value` in [`RawOp`].
pub(crate) const OP_OFFSET_VALUE: usize = offset_of!(RawOp, value);
/// Offset of `info` in [`RawOp`].
pub(crate) const OP_OFFSET_INFO: usize = offset_of!(RawOp, info);
/// Offset of `msix_entries` in [`RawOp`].
pub(crate) const OP_OFFSET_MSIX_ENTRIES: usize = offset_of!(RawOp, msix_entries);
/// Offset of `vector` in [`MsixEntry`].
pub(crate) const MSIX_OFFSET_VECTOR: usize = offset_of!(MsixEntry, vector);
/// Offset of `entry` in [`MsixEntry`].
pub(crate) const MSIX_OFFSET_ENTRY: usize = offset_of!(MsixEntry, entry);

/// Offset of `cmd` in [`AerOp`].
pub(crate) const AER_OFFSET_CMD: usize = offset_of!(AerOp, cmd);
/// Offset of `err` in [`AerOp`].
pub(crate) const AER_OFFSET_ERR: usize = offset_of!(AerOp, err);
/// Offset of `domain` in [`AerOp`].
pub(crate) const AER_OFFSET_DOMAIN: usize = offset_of!(AerOp, domain);
/// Offset of `bus` in [`AerOp`].
pub(crate) const AER_OFFSET_BUS: usize = offset_of!(AerOp, bus);
/// Offset of `devfn` in [`AerOp`].
pub(crate) const AER_OFFSET_DEVFN: usize = offset_of!(AerOp, devfn);

/// Number of 32-bit words before `op.msix_entries` ([`RawOp::request_words`]).
pub(crate) const REQUEST_WORDS: usize = OP_OFFSET_MSIX_ENTRIES / size_of::<u32>();
/// Page offset of `op.err` (written by the backend).
pub(crate) const OFFSET_OP_ERR: usize = OFFSET_OP + OP_OFFSET_ERR;
/// Page offset of `op.value` (written by the backend).
pub(crate) const OFFSET_OP_VALUE: usize = OFFSET_OP + OP_OFFSET_VALUE;
/// Page offset of `op.msix_entries[0]`.
pub(crate) const OFFSET_OP_MSIX_ENTRIES: usize = OFFSET_OP + OP_OFFSET_MSIX_ENTRIES;
/// Page offset of `aer_op.cmd`.
pub(crate) const OFFSET_AER_OP_CMD: usize = OFFSET_AER_OP + AER_OFFSET_CMD;
/// Page offset of `aer_op.err` (written by the frontend).
pub(crate) const OFFSET_AER_OP_ERR: usize = OFFSET_AER_OP + AER_OFFSET_ERR;

const _: () = assert!(size_of::<MsixEntry>() == 4);
const _: () = assert!(size_of::<RawOp>() == RAW_OP_SIZE);
const _: () = assert!(core::mem::offset_of!(RawOp, msix_entries) == RAW_OP_HEADER_SIZE);
const _: () = assert!(size_of::<AerOp>() == AER_OP_SIZE);
const _: () = assert!(size_of::<SharedInfo>() == SHARED_INFO_SIZE);
const _: () = assert!(OFFSET_FLAGS == 0);
const _: () = assert!(OFFSET_OP == 4);
const _: () = assert!(OFFSET_AER_OP == 552);
const _: () = assert!(OP_OFFSET_CMD == 0);
const _: () = assert!(OP_OFFSET_ERR == 4);
const _: () = assert!(OP_OFFSET_DOMAIN == 8);
const _: () = assert!(OP_OFFSET_BUS == 12);
const _: () = assert!(OP_OFFSET_DEVFN == 16);
const _: () = assert!(OP_OFFSET_OFFSET == 20);
const _: () = assert!(OP_OFFSET_SIZE == 24);
const _: () = assert!(OP_OFFSET_VALUE == 28);
const _: () = assert!(OP_OFFSET_INFO == 32);
const _: () = assert!(OP_OFFSET_MSIX_ENTRIES == 36);
const _: () = assert!(MSIX_OFFSET_VECTOR == 0);
const _: () = assert!(MSIX_OFFSET_ENTRY == 2);
const _: () = assert!(AER_OFFSET_CMD == 0);
const _: () = assert!(AER_OFFSET_ERR == 4);
const _: () = assert!(AER_OFFSET_DOMAIN == 8);
const _: () = assert!(AER_OFFSET_BUS == 12);
const _: () = assert!(AER_OFFSET_DEVFN == 16);
const _: () = assert!(OFFSET_OP_ERR == 8);
const _: () = assert!(OFFSET_OP_VALUE == 32);
const _: () = assert!(OFFSET_OP_MSIX_ENTRIES == 40);
const _: () = assert!(OFFSET_AER_OP_ERR == 556);
const _: () = assert!(core::mem::align_of::<SharedInfo>() == 4);

/// Page offset of `op.msix_entries[i].vector`, or `None` for `i >= 128`.
pub(crate) const fn msix_vector_offset(i: usize) -> Option<usize> {
    if i >= SH_INFO_MAX_VEC {
        None
    } else {
        Some(OFFSET_OP_MSIX_ENTRIES + i * size_of::<MsixEntry>() + MSIX_OFFSET_VECTOR)
    }
}

/// Page offset of `op.msix_entries[i].entry`, or `None` for `i >= 128`.
pub(crate) const fn msix_entry_offset(i: usize) -> Option<usize> {
    if i >= SH_INFO_MAX_VEC {
        None
    } else {
        Some(OFFSET_OP_MSIX_ENTRIES + i * size_of::<MsixEntry>() + MSIX_OFFSET_ENTRY)
    }
}

const fn rd_u32(b: &[u8; RAW_OP_SIZE], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

const fn rd_u16(b: &[u8; RAW_OP_SIZE], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn wr(b: &mut [u8; RAW_OP_SIZE], off: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Frontend: an MSI or MSI-X enable the backend carried out after its request had timed out
/// ([`RawOp::late_enable`]), and the device it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LateEnable {
    /// `EnableMsi` or `EnableMsix`.
    pub(crate) cmd: Command,
    pub(crate) domain: u32,
    pub(crate) bus: u32,
    pub(crate) devfn: u32,
}

impl LateEnable {
    /// The request that turns it off again: the `disable_msi` or `disable_msix` of the same
    /// device.
    pub(crate) fn undo(&self) -> RawOp {
        match self.cmd {
            Command::EnableMsix => RawOp::disable_msix(self.domain, self.bus, self.devfn),
            _ => RawOp::disable_msi(self.domain, self.bus, self.devfn),
        }
    }
}

impl RawOp {
    /// Decodes the native-endian bytes of a `struct xen_pci_op` (e.g. copied
    /// out of the shared page with a volatile copy).
    pub(crate) const fn from_bytes(b: &[u8; RAW_OP_SIZE]) -> RawOp {
        let mut msix_entries = [MsixEntry {
            vector: 0,
            entry: 0,
        }; SH_INFO_MAX_VEC];
        let mut i = 0;
        while i < SH_INFO_MAX_VEC {
            let off = OP_OFFSET_MSIX_ENTRIES + i * 4;
            msix_entries[i] = MsixEntry {
                vector: rd_u16(b, off + MSIX_OFFSET_VECTOR),
                entry: rd_u16(b, off + MSIX_OFFSET_ENTRY),
            };
            i += 1;
        }
        RawOp {
            cmd: rd_u32(b, OP_OFFSET_CMD),
            err: rd_u32(b, OP_OFFSET_ERR) as i32,
            domain: rd_u32(b, OP_OFFSET_DOMAIN),
            bus: rd_u32(b, OP_OFFSET_BUS),
            devfn: rd_u32(b, OP_OFFSET_DEVFN),
            offset: rd_u32(b, OP_OFFSET_OFFSET) as i32,
            size: rd_u32(b, OP_OFFSET_SIZE) as i32,
            value: rd_u32(b, OP_OFFSET_VALUE),
            info: rd_u32(b, OP_OFFSET_INFO),
            msix_entries,
        }
    }

    /// Encodes as the native-endian bytes of a `struct xen_pci_op`.
    pub(crate) fn to_bytes(self) -> [u8; RAW_OP_SIZE] {
        let mut b = [0u8; RAW_OP_SIZE];
        wr(&mut b, OP_OFFSET_CMD, &self.cmd.to_ne_bytes());
        wr(&mut b, OP_OFFSET_ERR, &self.err.to_ne_bytes());
        wr(&mut b, OP_OFFSET_DOMAIN, &self.domain.to_ne_bytes());
        wr(&mut b, OP_OFFSET_BUS, &self.bus.to_ne_bytes());
        wr(&mut b, OP_OFFSET_DEVFN, &self.devfn.to_ne_bytes());
        wr(&mut b, OP_OFFSET_OFFSET, &self.offset.to_ne_bytes());
        wr(&mut b, OP_OFFSET_SIZE, &self.size.to_ne_bytes());
        wr(&mut b, OP_OFFSET_VALUE, &self.value.to_ne_bytes());
        wr(&mut b, OP_OFFSET_INFO, &self.info.to_ne_bytes());
        for (i, e) in self.msix_entries.iter().enumerate() {
            let off = OP_OFFSET_MSIX_ENTRIES + i * size_of::<MsixEntry>();
            wr(&mut b, off + MSIX_OFFSET_VECTOR, &e.vector.to_ne_bytes());
            wr(&mut b, off + MSIX_OFFSET_ENTRY, &e.entry.to_ne_bytes());
        }
        b
    }

    /// The guest-view address named by the request; `DevNotFound` when a
    /// field is wider than PCI allows (domain > 0xffff, bus or devfn > 0xff).
    ///
    /// The backend should look the device up with this *before* calling
    /// [`Request::decode`] to answer exactly like C, which reports a missing
    /// device before an unknown command.
    pub(crate) fn guest_addr(&self) -> Result<Bdf, PciifError> {
        Bdf::from_raw(self.domain, self.bus, self.devfn).ok_or(PciifError::DevNotFound)
    }

    /// Frontend: for the late answer to a request that timed out (see `roundtrip`), the enable
    /// it carried out, if it was an `enable_msi` or `enable_msix` the backend answered with
    /// success: the guest's driver went on without MSI, which the backend has on.
    pub(crate) fn late_enable(&self) -> Option<LateEnable> {
        match Command::try_from(self.cmd) {
            Ok(cmd @ (Command::EnableMsi | Command::EnableMsix)) if self.err == 0 => {
                Some(LateEnable {
                    cmd,
                    domain: self.domain,
                    bus: self.bus,
                    devfn: self.devfn,
                })
            }
            _ => None,
        }
    }

    fn addressed(cmd: Command, domain: u32, bus: u32, devfn: u32) -> RawOp {
        RawOp {
            cmd: cmd.raw(),
            domain,
            bus,
            devfn,
            ..RawOp::default()
        }
    }

    /// Frontend: a `conf_read` request (fields as `pcifront_bus_read` fills them).
    pub(crate) fn conf_read(domain: u32, bus: u32, devfn: u32, offset: i32, size: i32) -> RawOp {
        RawOp {
            offset,
            size,
            ..RawOp::addressed(Command::ConfRead, domain, bus, devfn)
        }
    }

    /// Frontend: a `conf_write` request.
    pub(crate) fn conf_write(
        domain: u32,
        bus: u32,
        devfn: u32,
        offset: i32,
        size: i32,
        value: u32,
    ) -> RawOp {
        RawOp {
            offset,
            size,
            value,
            ..RawOp::addressed(Command::ConfWrite, domain, bus, devfn)
        }
    }

    /// Frontend: an `enable_msi` request.
    pub(crate) fn enable_msi(domain: u32, bus: u32, devfn: u32) -> RawOp {
        RawOp::addressed(Command::EnableMsi, domain, bus, devfn)
    }

    /// Frontend: a `disable_msi` request.
    pub(crate) fn disable_msi(domain: u32, bus: u32, devfn: u32) -> RawOp {
        RawOp::addressed(Command::DisableMsi, domain, bus, devfn)
    }

    /// Frontend: an `enable_msix` request for the MSI-X table indices in
    /// `entries` (`value` = count, each `vector` = 0xffff as C sends).
    /// More than 128 entries is `-EINVAL`, as in the C frontend.
    pub(crate) fn enable_msix(
        domain: u32,
        bus: u32,
        devfn: u32,
        entries: &[u16],
    ) -> Result<RawOp, OpError> {
        if entries.len() > SH_INFO_MAX_VEC {
            return Err(OpError::EINVAL);
        }
        let mut op = RawOp::addressed(Command::EnableMsix, domain, bus, devfn);
        op.value = entries.len() as u32;
        for (slot, &idx) in op.msix_entries.iter_mut().zip(entries) {
            *slot = MsixEntry {
                vector: 0xffff,
                entry: idx,
            };
        }
        Ok(op)
    }

    /// Frontend: a `disable_msix` request.
    pub(crate) fn disable_msix(domain: u32, bus: u32, devfn: u32) -> RawOp {
        RawOp::addressed(Command::DisableMsix, domain, bus, devfn)
    }

    /// Frontend: the fixed fields of the request (`cmd` to `info`) as
    /// `(page offset, native value)` pairs, in field order, for a frontend
    /// that stores them one 32-bit word at a time into the shared page.
    ///
    /// `err` goes out as [`ERR_UNANSWERED`], whatever `self.err` is: every
    /// backend overwrites it, so a cleared `_XEN_PCIF_active` with the
    /// sentinel still there is not an answer (see [`super::roundtrip`]). The
    /// MSI-X entries are not included: only `enable_msix` uses them.
    pub(crate) fn request_words(&self) -> [(usize, u32); REQUEST_WORDS] {
        [
            (OFFSET_OP + OP_OFFSET_CMD, self.cmd),
            (OFFSET_OP + OP_OFFSET_ERR, ERR_UNANSWERED as u32),
            (OFFSET_OP + OP_OFFSET_DOMAIN, self.domain),
            (OFFSET_OP + OP_OFFSET_BUS, self.bus),
            (OFFSET_OP + OP_OFFSET_DEVFN, self.devfn),
            (OFFSET_OP + OP_OFFSET_OFFSET, self.offset as u32),
            (OFFSET_OP + OP_OFFSET_SIZE, self.size as u32),
            (OFFSET_OP + OP_OFFSET_VALUE, self.value),
            (OFFSET_OP + OP_OFFSET_INFO, self.info),
        ]
    }
}

// ---------------------------------------------------------------------------
// Backend: request validation
// ---------------------------------------------------------------------------

/// A config space access width (also the width of config-space fields, see
/// `conf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AccessSize {
    /// One byte.
    One,
    /// Two bytes.
    Two,
    /// Four bytes.
    Four,
}

impl AccessSize {
    /// Width in bytes.
    pub(crate) const fn bytes(self) -> u16 {
        match self {
            AccessSize::One => 1,
            AccessSize::Two => 2,
            AccessSize::Four => 4,
        }
    }

    /// Mask of the value bits: 0xff, 0xffff or 0xffffffff.
    pub(crate) const fn value_mask(self) -> u32 {
        match self {
            AccessSize::One => 0xff,
            AccessSize::Two => 0xffff,
            AccessSize::Four => 0xffff_ffff,
        }
    }

    /// The size of `n` bytes, if 1, 2 or 4.
    pub(crate) const fn from_bytes(n: u32) -> Option<AccessSize> {
        match n {
            1 => Some(AccessSize::One),
            2 => Some(AccessSize::Two),
            4 => Some(AccessSize::Four),
            _ => None,
        }
    }

    /// The size of the wire `size` field, if 1, 2 or 4.
    pub(crate) const fn from_raw(n: i32) -> Option<AccessSize> {
        match n {
            1 => Some(AccessSize::One),
            2 => Some(AccessSize::Two),
            4 => Some(AccessSize::Four),
            _ => None,
        }
    }
}

/// A validated request from the frontend. `addr` is the guest's view.
///
/// About 270 bytes because of the MSI-X indices; without `alloc` there is no
/// box to put them in, and one request lives at a time, so that is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Read `size` bytes at `offset` (naturally aligned, within 4 KiB).
    ConfRead {
        /// Guest address.
        addr: Bdf,
        /// Register offset, `offset + size <= 4096`, aligned to `size`.
        offset: u16,
        /// Width.
        size: AccessSize,
    },
    /// Write `value` (`size` bytes) at `offset`.
    ConfWrite {
        /// Guest address.
        addr: Bdf,
        /// Register offset, `offset + size <= 4096`, aligned to `size`.
        offset: u16,
        /// Width.
        size: AccessSize,
        /// The raw 32-bit value from the request; only the low `size`
        /// bytes are meaningful (the C backend truncates when writing).
        value: u32,
    },
    /// Enable MSI (single vector).
    EnableMsi {
        /// Guest address.
        addr: Bdf,
    },
    /// Disable MSI.
    DisableMsi {
        /// Guest address.
        addr: Bdf,
    },
    /// Enable MSI-X with `nvec` vectors.
    EnableMsix {
        /// Guest address.
        addr: Bdf,
        /// Number of vectors, 1..=128.
        nvec: usize,
        /// MSI-X table indices; only `entries[..nvec]` is meaningful, the
        /// rest is zero.
        entries: [u16; SH_INFO_MAX_VEC],
    },
    /// Disable MSI-X.
    DisableMsix {
        /// Guest address.
        addr: Bdf,
    },
}

impl Request {
    /// Validates a request that has already been copied out of shared memory.
    ///
    /// Checks, in this order:
    /// 1. address: domain > 0xffff, bus > 0xff or devfn > 0xff → `DevNotFound`;
    /// 2. command: unknown, or an AER command (6..=9) → `NotImplemented`;
    /// 3. config accesses: size not 1/2/4, offset negative, not aligned to
    ///    size, or `offset + size > 4096` → `InvalidOffset`;
    /// 4. `enable_msix`: vector count (`value`) 0 or > 128 → `-EINVAL` raw
    ///    (C returns `-EINVAL` for > 128; for 0 the PCI core would also give
    ///    `-EINVAL`, so both give the same answer here).
    ///
    /// C's bounds on the offset are left to the PCI accessors; rejecting here
    /// is stricter and equivalent for every real device.
    pub(crate) fn decode(op: &RawOp) -> Result<Request, OpError> {
        let addr = op.guest_addr()?;
        let cmd = Command::try_from(op.cmd)?;
        Ok(match cmd {
            Command::ConfRead => {
                let (offset, size) = conf_access(op)?;
                Request::ConfRead { addr, offset, size }
            }
            Command::ConfWrite => {
                let (offset, size) = conf_access(op)?;
                Request::ConfWrite {
                    addr,
                    offset,
                    size,
                    value: op.value,
                }
            }
            Command::EnableMsi => Request::EnableMsi { addr },
            Command::DisableMsi => Request::DisableMsi { addr },
            Command::EnableMsix => {
                let nvec = usize::try_from(op.value).map_err(|_| OpError::EINVAL)?;
                if nvec == 0 || nvec > SH_INFO_MAX_VEC {
                    return Err(OpError::EINVAL);
                }
                let mut entries = [0u16; SH_INFO_MAX_VEC];
                for (dst, src) in entries.iter_mut().zip(op.msix_entries.iter()).take(nvec) {
                    *dst = src.entry;
                }
                Request::EnableMsix {
                    addr,
                    nvec,
                    entries,
                }
            }
            Command::DisableMsix => Request::DisableMsix { addr },
            Command::AerDetected
            | Command::AerResume
            | Command::AerMmio
            | Command::AerSlotReset => return Err(PciifError::NotImplemented.into()),
        })
    }

    /// The guest address of the request.
    pub(crate) fn addr(&self) -> Bdf {
        match *self {
            Request::ConfRead { addr, .. }
            | Request::ConfWrite { addr, .. }
            | Request::EnableMsi { addr }
            | Request::DisableMsi { addr }
            | Request::EnableMsix { addr, .. }
            | Request::DisableMsix { addr } => addr,
        }
    }

    /// The command of the request.
    pub(crate) fn command(&self) -> Command {
        match self {
            Request::ConfRead { .. } => Command::ConfRead,
            Request::ConfWrite { .. } => Command::ConfWrite,
            Request::EnableMsi { .. } => Command::EnableMsi,
            Request::DisableMsi { .. } => Command::DisableMsi,
            Request::EnableMsix { .. } => Command::EnableMsix,
            Request::DisableMsix { .. } => Command::DisableMsix,
        }
    }
}

fn conf_access(op: &RawOp) -> Result<(u16, AccessSize), PciifError> {
    let size = AccessSize::from_raw(op.size).ok_or(PciifError::InvalidOffset)?;
    let offset = u32::try_from(op.offset).map_err(|_| PciifError::InvalidOffset)?;
    let n = u32::from(size.bytes());
    if offset % n != 0 {
        return Err(PciifError::InvalidOffset);
    }
    match offset.checked_add(n) {
        Some(end) if end <= CONFIG_SPACE_SIZE => {}
        _ => return Err(PciifError::InvalidOffset),
    }
    let offset = u16::try_from(offset).map_err(|_| PciifError::InvalidOffset)?;
    Ok((offset, size))
}

/// Extra, device-aware check of MSI-X table indices (defence in depth; the
/// PCI core checks the same and answers `-EINVAL`): every index must be below
/// `table_size` and no index may repeat.
pub(crate) fn validate_msix_entries(entries: &[u16], table_size: u16) -> Result<(), OpError> {
    for (i, &e) in entries.iter().enumerate() {
        if e >= table_size {
            return Err(OpError::EINVAL);
        }
        if entries.get(..i).is_some_and(|before| before.contains(&e)) {
            return Err(OpError::EINVAL);
        }
    }
    Ok(())
}

/// What the backend writes back: only `err` and `value` (plus, for a
/// successful `enable_msix`, the `vector` of the first `nvec` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// For `op.err`.
    pub(crate) err: i32,
    /// For `op.value`.
    pub(crate) value: u32,
}

impl Response {
    /// Refused before dispatch (bad request, unknown device or command):
    /// the error, and `value` left as the guest sent it (C leaves it alone).
    pub(crate) fn rejected(op: &RawOp, e: impl Into<OpError>) -> Response {
        Response {
            err: e.into().code(),
            value: op.value,
        }
    }

    /// `conf_read`: the value, or 0 with the error (C: "as if the device
    /// didn't respond").
    pub(crate) fn conf_read(r: Result<u32, impl Into<OpError>>) -> Response {
        match r {
            Ok(value) => Response { err: 0, value },
            Err(e) => Response {
                err: e.into().code(),
                value: 0,
            },
        }
    }

    /// `conf_write`: `value` is echoed unchanged.
    pub(crate) fn conf_write(request_value: u32, r: Result<(), impl Into<OpError>>) -> Response {
        Response {
            err: r.map_or_else(|e| e.into().code(), |()| 0),
            value: request_value,
        }
    }

    /// `enable_msi`: the guest pirq, or, for any failure, `op_failed` with 0
    /// (the C backend hides the reason from the guest).
    pub(crate) fn enable_msi<E>(r: Result<u32, E>) -> Response {
        match r {
            Ok(pirq) => Response {
                err: 0,
                value: pirq,
            },
            Err(_) => Response {
                err: PciifError::OpFailed.code(),
                value: 0,
            },
        }
    }

    /// `disable_msi` / `disable_msix`: always success, `value` = INTx pirq or 0.
    pub(crate) fn disabled(intx_pirq: u32) -> Response {
        Response {
            err: 0,
            value: intx_pirq,
        }
    }

    /// `enable_msix`: success is `err = value = 0` (the pirqs go into the
    /// entries); failure is the error in `err` with the request's `value`
    /// echoed (C writes the errno into `value` too when the PCI core fails;
    /// Linux frontends only look at `value` when `err` is 0).
    pub(crate) fn enable_msix(request_value: u32, r: Result<(), impl Into<OpError>>) -> Response {
        match r {
            Ok(()) => Response { err: 0, value: 0 },
            Err(e) => Response {
                err: e.into().code(),
                value: request_value,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// PCIBIOS codes
// ---------------------------------------------------------------------------

/// `PCIBIOS_SUCCESSFUL`.
pub(crate) const PCIBIOS_SUCCESSFUL: i32 = 0x00;
/// `PCIBIOS_FUNC_NOT_SUPPORTED`.
pub(crate) const PCIBIOS_FUNC_NOT_SUPPORTED: i32 = 0x81;
/// `PCIBIOS_BAD_VENDOR_ID`.
pub(crate) const PCIBIOS_BAD_VENDOR_ID: i32 = 0x83;
/// `PCIBIOS_DEVICE_NOT_FOUND`.
pub(crate) const PCIBIOS_DEVICE_NOT_FOUND: i32 = 0x86;
/// `PCIBIOS_BAD_REGISTER_NUMBER`.
pub(crate) const PCIBIOS_BAD_REGISTER_NUMBER: i32 = 0x87;
/// `PCIBIOS_SET_FAILED`.
pub(crate) const PCIBIOS_SET_FAILED: i32 = 0x88;
/// `PCIBIOS_BUFFER_TOO_SMALL`.
pub(crate) const PCIBIOS_BUFFER_TOO_SMALL: i32 = 0x89;

/// Frontend: maps a returned `err` to the PCIBIOS code the `pci_ops`
/// accessor returns, as the C frontend does. Values that are not
/// `XEN_PCI_ERR_*` (raw errnos) are returned unchanged.
pub(crate) const fn pcibios_from_err(err: i32) -> i32 {
    match PciifError::from_code(err) {
        None if err == XEN_PCI_ERR_SUCCESS => PCIBIOS_SUCCESSFUL,
        None => err,
        Some(PciifError::DevNotFound) => PCIBIOS_DEVICE_NOT_FOUND,
        Some(PciifError::InvalidOffset) | Some(PciifError::OpFailed) => PCIBIOS_BAD_REGISTER_NUMBER,
        Some(PciifError::NotImplemented) => PCIBIOS_FUNC_NOT_SUPPORTED,
        Some(PciifError::AccessDenied) => PCIBIOS_SET_FAILED,
    }
}

/// Backend: maps the return value of a config accessor (a PCIBIOS code, or
/// a negative errno from a field handler) to `err`, as the C backend does:
/// known PCIBIOS codes become `XEN_PCI_ERR_*`, everything else passes through.
pub(crate) const fn err_from_pcibios(code: i32) -> i32 {
    match code {
        PCIBIOS_SUCCESSFUL => XEN_PCI_ERR_SUCCESS,
        PCIBIOS_DEVICE_NOT_FOUND => PciifError::DevNotFound.code(),
        PCIBIOS_BAD_REGISTER_NUMBER => PciifError::InvalidOffset.code(),
        PCIBIOS_FUNC_NOT_SUPPORTED => PciifError::NotImplemented.code(),
        PCIBIOS_SET_FAILED => PciifError::AccessDenied.code(),
        other => other,
    }
}

/// Typed form of [`err_from_pcibios`] for the known PCIBIOS error codes.
pub(crate) const fn pciif_error_from_pcibios(code: i32) -> Option<PciifError> {
    match code {
        PCIBIOS_DEVICE_NOT_FOUND => Some(PciifError::DevNotFound),
        PCIBIOS_BAD_REGISTER_NUMBER => Some(PciifError::InvalidOffset),
        PCIBIOS_FUNC_NOT_SUPPORTED => Some(PciifError::NotImplemented),
        PCIBIOS_SET_FAILED => Some(PciifError::AccessDenied),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Frontend: interpreting answers
// ---------------------------------------------------------------------------

/// Frontend: result of a `conf_read` round trip as `pcifront_bus_read`
/// computes it: `Ok(value)` or `Err(pcibios code)`. A raw `-ENODEV` reads as
/// 0 (a C quirk kept for compatibility; C backends never send it).
pub(crate) fn conf_read_result(err: i32, value: u32) -> Result<u32, i32> {
    match err {
        XEN_PCI_ERR_SUCCESS => Ok(value),
        e if e == -ENODEV => Ok(0),
        e => Err(pcibios_from_err(e)),
    }
}

/// Frontend: `enable_msi` answer → the pirq, or `-EINVAL` for an error or a
/// zero pirq (as the C frontend).
pub(crate) fn enable_msi_result(err: i32, value: u32) -> Result<u32, i32> {
    if err != 0 || value == 0 {
        Err(-EINVAL)
    } else {
        Ok(value)
    }
}

/// Frontend: `enable_msix` answer. On success fills `pirqs[..nvec]` from the
/// returned entries. Errors, as the C frontend: a nonzero `err` is returned
/// as is; a nonzero `value` is returned as the error; a zero vector gives
/// `-EINVAL`; `nvec` > 128 or larger than `pirqs` gives `-EINVAL`.
pub(crate) fn enable_msix_result(op: &RawOp, nvec: usize, pirqs: &mut [u32]) -> Result<(), i32> {
    if op.err != 0 {
        return Err(op.err);
    }
    if op.value != 0 {
        return Err(op.value as i32);
    }
    let (Some(out), Some(entries)) = (pirqs.get_mut(..nvec), op.msix_entries.get(..nvec)) else {
        return Err(-EINVAL);
    };
    let mut result = Ok(());
    for (dst, e) in out.iter_mut().zip(entries) {
        if e.vector == 0 {
            result = Err(-EINVAL);
        }
        *dst = u32::from(e.vector);
    }
    result
}

// ---------------------------------------------------------------------------
// AER
// ---------------------------------------------------------------------------

/// `PCI_ERS_RESULT_NONE`.
pub(crate) const PCI_ERS_RESULT_NONE: i32 = 1;
/// `PCI_ERS_RESULT_CAN_RECOVER`.
pub(crate) const PCI_ERS_RESULT_CAN_RECOVER: i32 = 2;
/// `PCI_ERS_RESULT_NEED_RESET`.
pub(crate) const PCI_ERS_RESULT_NEED_RESET: i32 = 3;
/// `PCI_ERS_RESULT_DISCONNECT`.
pub(crate) const PCI_ERS_RESULT_DISCONNECT: i32 = 4;
/// `PCI_ERS_RESULT_RECOVERED`.
pub(crate) const PCI_ERS_RESULT_RECOVERED: i32 = 5;
/// `PCI_ERS_RESULT_NO_AER_DRIVER`.
pub(crate) const PCI_ERS_RESULT_NO_AER_DRIVER: i32 = 6;

impl AerOp {
    /// Backend: an AER notification `cmd` (must be an AER command, else
    /// `None`) about guest address `addr`; `err` carries the channel state.
    pub(crate) fn new(cmd: Command, err: i32, addr: Bdf) -> Option<AerOp> {
        if !cmd.is_aer() {
            return None;
        }
        Some(AerOp {
            cmd: cmd.raw(),
            err,
            domain: u32::from(addr.domain()),
            bus: u32::from(addr.bus()),
            devfn: u32::from(addr.devfn()),
        })
    }

    /// Frontend: validates a notification: `NotImplemented` unless the
    /// command is one of the four AER commands, `DevNotFound` for an address
    /// wider than PCI allows.
    pub(crate) fn decode(&self) -> Result<(Command, Bdf), PciifError> {
        let cmd = Command::try_from(self.cmd)?;
        if !cmd.is_aer() {
            return Err(PciifError::NotImplemented);
        }
        let addr =
            Bdf::from_raw(self.domain, self.bus, self.devfn).ok_or(PciifError::DevNotFound)?;
        Ok((cmd, addr))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_late_answer_tells_a_successful_msi_enable() {
        let mut op = RawOp::enable_msi(0, 0, 8);
        op.err = 0;
        assert_eq!(op.late_enable().map(|l| l.cmd), Some(Command::EnableMsi));
        op.cmd = Command::EnableMsix.raw();
        assert_eq!(op.late_enable().map(|l| l.cmd), Some(Command::EnableMsix));
        // Refused, the sentinel (no answer), or another command: nothing carried out to tell.
        op.err = PciifError::OpFailed.code();
        assert_eq!(op.late_enable(), None);
        op.err = super::super::roundtrip::ERR_UNANSWERED;
        assert_eq!(op.late_enable(), None);
        for cmd in [
            Command::ConfRead,
            Command::ConfWrite,
            Command::DisableMsi,
            Command::DisableMsix,
        ] {
            op.cmd = cmd.raw();
            op.err = 0;
            assert_eq!(op.late_enable(), None);
        }
        op.cmd = 99;
        assert_eq!(op.late_enable(), None);
    }

    #[test]
    fn a_late_successful_enable_is_undone_by_the_matching_disable() {
        let mut op = RawOp::enable_msi(1, 6, 0x0a);
        op.err = 0;
        let undo = op.late_enable().unwrap().undo();
        assert_eq!(
            undo.request_words(),
            RawOp::disable_msi(1, 6, 0x0a).request_words()
        );
        let mut op = RawOp::enable_msix(1, 6, 0x0a, &[0, 3]).unwrap();
        op.err = 0;
        let undo = op.late_enable().unwrap().undo();
        assert_eq!(
            undo.request_words(),
            RawOp::disable_msix(1, 6, 0x0a).request_words()
        );
        assert_ne!(
            undo.request_words(),
            RawOp::disable_msix(1, 6, 0x0b).request_words()
        );
    }

    use super::*;
    use std::string::ToString;

    fn dev(d: u16, b: u8, s: u8, f: u8) -> Bdf {
        Bdf::new(d, b, s, f).unwrap()
    }

    fn read(offset: i32, size: i32) -> RawOp {
        RawOp::conf_read(0, 0, 8, offset, size)
    }

    #[test]
    fn request_words_cover_the_fixed_fields() {
        let op = RawOp::conf_write(0x1234, 0x56, 0x78, 0x3c, 2, 0xdead_beef);
        let mut page = [0u8; SHARED_INFO_SIZE];
        let words = op.request_words();
        assert_eq!(words.len(), 9);
        for (off, v) in words {
            assert_eq!(off % 4, 0);
            assert!(off >= OFFSET_OP && off + 4 <= OFFSET_OP_MSIX_ENTRIES);
            page[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let mut b = [0u8; RAW_OP_SIZE];
        b.copy_from_slice(&page[OFFSET_OP..OFFSET_OP + RAW_OP_SIZE]);
        // Everything as in `op`, but `err`: the sentinel no backend answers.
        assert_eq!(
            RawOp::from_bytes(&b),
            RawOp {
                err: ERR_UNANSWERED,
                ..op
            }
        );
        // Negative fields go out as their two's complement bits; `err` is
        // always the sentinel, whatever the request holds (a stale answer).
        let op = RawOp {
            err: -5,
            offset: -1,
            ..RawOp::conf_read(0, 0, 0, 0, 4)
        };
        let words = op.request_words();
        assert_eq!(words[1], (OFFSET_OP_ERR, 0x8000_0000));
        assert_eq!(words[5].1, u32::MAX);
        assert_eq!(words[7].0, OFFSET_OP_VALUE);
    }

    #[test]
    fn constants_match_header() {
        assert_eq!(XEN_PCI_MAGIC, "7");
        assert_eq!(
            (XEN_PCIF_ACTIVE, XEN_PCIB_AERHANDLER, XEN_PCIB_ACTIVE),
            (1, 2, 4)
        );
        // The extension's bit is none of the header's.
        assert_eq!(XEN_PCIF_WATCHING, 8);
        assert!(answer_needs_event(
            XEN_PCIF_ACTIVE | XEN_PCIB_AERHANDLER | XEN_PCIB_ACTIVE
        ));
        assert!(!answer_needs_event(XEN_PCIF_ACTIVE | XEN_PCIF_WATCHING));
        assert_eq!(SH_INFO_MAX_VEC, 128);
        for (i, c) in [
            Command::ConfRead,
            Command::ConfWrite,
            Command::EnableMsi,
            Command::DisableMsi,
            Command::EnableMsix,
            Command::DisableMsix,
            Command::AerDetected,
            Command::AerResume,
            Command::AerMmio,
            Command::AerSlotReset,
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(c.raw(), i as u32);
            assert_eq!(Command::try_from(i as u32), Ok(*c));
        }
        assert_eq!(Command::try_from(10), Err(PciifError::NotImplemented));
        assert_eq!(Command::try_from(u32::MAX), Err(PciifError::NotImplemented));
        for e in [
            PciifError::DevNotFound,
            PciifError::InvalidOffset,
            PciifError::AccessDenied,
            PciifError::NotImplemented,
            PciifError::OpFailed,
        ] {
            assert_eq!(PciifError::from_code(e.code()), Some(e));
        }
        assert_eq!(PciifError::from_code(0), None);
        assert_eq!(PciifError::from_code(-6), None);
    }

    #[test]
    fn layout_sizes_and_offsets() {
        assert_eq!(size_of::<RawOp>(), 548);
        assert_eq!(size_of::<SharedInfo>(), 572);
        assert_eq!(size_of::<AerOp>(), 20);
        assert_eq!(OFFSET_OP, 4);
        assert_eq!(OFFSET_AER_OP, 552);
        assert_eq!(OFFSET_OP_VALUE, 32);
        assert_eq!(msix_vector_offset(0), Some(40));
        assert_eq!(msix_entry_offset(0), Some(42));
        assert_eq!(msix_vector_offset(127), Some(40 + 127 * 4));
        assert_eq!(msix_entry_offset(127), Some(4 + 548 - 2));
        assert_eq!(msix_vector_offset(128), None);
        assert_eq!(msix_entry_offset(usize::MAX), None);
    }

    #[test]
    fn bytes_round_trip_and_layout() {
        let mut op = RawOp::conf_write(1, 2, 3, 0x40, 4, 0xdead_beef);
        op.err = -5;
        op.info = 0x1234_5678;
        op.msix_entries[0] = MsixEntry {
            vector: 0x1122,
            entry: 0x3344,
        };
        op.msix_entries[127] = MsixEntry {
            vector: 0xaabb,
            entry: 0xccdd,
        };
        let b = op.to_bytes();
        assert_eq!(RawOp::from_bytes(&b), op);
        assert_eq!(b[OP_OFFSET_CMD..OP_OFFSET_CMD + 4], 1u32.to_ne_bytes());
        assert_eq!(b[OP_OFFSET_ERR..OP_OFFSET_ERR + 4], (-5i32).to_ne_bytes());
        assert_eq!(
            b[OP_OFFSET_VALUE..OP_OFFSET_VALUE + 4],
            0xdead_beefu32.to_ne_bytes()
        );
        assert_eq!(b[36..38], 0x1122u16.to_ne_bytes());
        assert_eq!(b[38..40], 0x3344u16.to_ne_bytes());
        assert_eq!(b[546..548], 0xccddu16.to_ne_bytes());
        assert_eq!(RawOp::from_bytes(&[0; RAW_OP_SIZE]), RawOp::default());
    }

    #[test]
    fn decode_conf_read_ok() {
        let r = Request::decode(&RawOp::conf_read(0, 0, 0x0a, 0x10, 4)).unwrap();
        assert_eq!(
            r,
            Request::ConfRead {
                addr: dev(0, 0, 1, 2),
                offset: 0x10,
                size: AccessSize::Four
            }
        );
        assert_eq!(r.addr(), dev(0, 0, 1, 2));
        assert_eq!(r.command(), Command::ConfRead);
        assert!(Request::decode(&read(0xfff, 1)).is_ok());
        assert!(Request::decode(&read(0xffe, 2)).is_ok());
        assert!(Request::decode(&read(0xffc, 4)).is_ok());
        assert!(Request::decode(&read(0, 1)).is_ok());
        assert!(Request::decode(&RawOp::conf_read(0xffff, 0xff, 0xff, 0, 1)).is_ok());
    }

    #[test]
    fn decode_conf_bad_size_and_offset() {
        let inval = Err(OpError::Xen(PciifError::InvalidOffset));
        for size in [0, 3, 5, 8, -1, i32::MIN, i32::MAX] {
            assert_eq!(Request::decode(&read(0, size)), inval, "size {}", size);
        }
        assert_eq!(Request::decode(&read(-4, 4)), inval);
        assert_eq!(Request::decode(&read(-1, 1)), inval);
        assert_eq!(Request::decode(&read(i32::MIN, 4)), inval);
        assert_eq!(Request::decode(&read(1, 2)), inval);
        assert_eq!(Request::decode(&read(2, 4)), inval);
        assert_eq!(Request::decode(&read(0x1000, 1)), inval);
        assert_eq!(Request::decode(&read(0x1000, 4)), inval);
        assert_eq!(Request::decode(&read(i32::MAX, 1)), inval);
        assert_eq!(Request::decode(&read(0x7fff_fffc, 4)), inval);
        let w = RawOp::conf_write(0, 0, 0, 3, 2, 0);
        assert_eq!(Request::decode(&w), inval);
    }

    #[test]
    fn decode_conf_write_keeps_value() {
        let r = Request::decode(&RawOp::conf_write(0, 0, 0, 0x4, 2, 0xffff_0007)).unwrap();
        assert_eq!(
            r,
            Request::ConfWrite {
                addr: dev(0, 0, 0, 0),
                offset: 4,
                size: AccessSize::Two,
                value: 0xffff_0007
            }
        );
    }

    #[test]
    fn decode_address_range() {
        let nf = Err(OpError::Xen(PciifError::DevNotFound));
        assert_eq!(Request::decode(&RawOp::conf_read(0x10000, 0, 0, 0, 4)), nf);
        assert_eq!(Request::decode(&RawOp::conf_read(0, 0x100, 0, 0, 4)), nf);
        assert_eq!(Request::decode(&RawOp::conf_read(0, 0, 0x100, 0, 4)), nf);
        assert_eq!(Request::decode(&RawOp::enable_msi(u32::MAX, 0, 0)), nf);
        // Address is checked before the command and the parameters.
        let mut op = RawOp::conf_read(0, 0x100, 0, 3, 3);
        op.cmd = 77;
        assert_eq!(Request::decode(&op), nf);
        assert_eq!(op.guest_addr(), Err(PciifError::DevNotFound));
        assert_eq!(
            RawOp::enable_msi(0, 1, 2).guest_addr(),
            Ok(Bdf::from_devfn(0, 1, 2))
        );
    }

    #[test]
    fn decode_unknown_and_aer_commands() {
        let ni = Err(OpError::Xen(PciifError::NotImplemented));
        for cmd in [6, 7, 8, 9, 10, 0x8000_0000, u32::MAX] {
            let mut op = read(0, 4);
            op.cmd = cmd;
            assert_eq!(Request::decode(&op), ni, "cmd {}", cmd);
        }
        // The command is checked before config parameters.
        let mut op = read(-1, 3);
        op.cmd = 42;
        assert_eq!(Request::decode(&op), ni);
    }

    #[test]
    fn decode_msi_commands_ignore_offset() {
        let mut op = RawOp::enable_msi(0, 0, 0x10);
        op.offset = -1;
        op.size = 77;
        assert_eq!(
            Request::decode(&op),
            Ok(Request::EnableMsi {
                addr: dev(0, 0, 2, 0)
            })
        );
        assert_eq!(
            Request::decode(&RawOp::disable_msi(0, 0, 0x10)),
            Ok(Request::DisableMsi {
                addr: dev(0, 0, 2, 0)
            })
        );
        assert_eq!(
            Request::decode(&RawOp::disable_msix(0, 0, 0x10)),
            Ok(Request::DisableMsix {
                addr: dev(0, 0, 2, 0)
            })
        );
    }

    #[test]
    fn decode_enable_msix() {
        let op = RawOp::enable_msix(0, 0, 0, &[3, 1, 2]).unwrap();
        assert_eq!(op.value, 3);
        assert_eq!(
            op.msix_entries[0],
            MsixEntry {
                vector: 0xffff,
                entry: 3
            }
        );
        assert_eq!(op.msix_entries[3], MsixEntry::default());
        match Request::decode(&op).unwrap() {
            Request::EnableMsix {
                addr,
                nvec,
                entries,
            } => {
                assert_eq!(addr, dev(0, 0, 0, 0));
                assert_eq!(nvec, 3);
                assert_eq!(&entries[..4], &[3, 1, 2, 0]);
            }
            other => panic!("{:?}", other),
        }
        // Entries beyond nvec are not copied.
        let mut op = RawOp::enable_msix(0, 0, 0, &[5]).unwrap();
        op.msix_entries[1].entry = 9;
        match Request::decode(&op).unwrap() {
            Request::EnableMsix { entries, .. } => assert_eq!(entries[1], 0),
            other => panic!("{:?}", other),
        }
        let all: std::vec::Vec<u16> = (0..128).collect();
        let op = RawOp::enable_msix(0, 0, 0, &all).unwrap();
        match Request::decode(&op).unwrap() {
            Request::EnableMsix { nvec, entries, .. } => {
                assert_eq!(nvec, 128);
                assert_eq!(entries[127], 127);
            }
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn decode_enable_msix_bad_count() {
        for nvec in [0u32, 129, 0x8000_0000, u32::MAX] {
            let mut op = RawOp::enable_msix(0, 0, 0, &[]).unwrap();
            op.value = nvec;
            let e = Request::decode(&op).unwrap_err();
            assert_eq!(e, OpError::Errno(-22), "nvec {}", nvec);
            assert_eq!(e.code(), -22);
            assert_eq!(
                Response::rejected(&op, e),
                Response {
                    err: -22,
                    value: nvec
                }
            );
        }
        let too_many = [0u16; 129];
        assert_eq!(RawOp::enable_msix(0, 0, 0, &too_many), Err(OpError::EINVAL));
    }

    #[test]
    fn msix_entry_validation() {
        assert_eq!(validate_msix_entries(&[0, 1, 2], 3), Ok(()));
        assert_eq!(validate_msix_entries(&[], 0), Ok(()));
        assert_eq!(validate_msix_entries(&[3], 3), Err(OpError::EINVAL));
        assert_eq!(validate_msix_entries(&[1, 2, 1], 8), Err(OpError::EINVAL));
        assert_eq!(
            validate_msix_entries(&[0xffff], 0xffff),
            Err(OpError::EINVAL)
        );
    }

    #[test]
    fn responses() {
        let op = RawOp::conf_write(0, 0, 0, 4, 2, 0x55);
        assert_eq!(
            Response::rejected(&op, PciifError::DevNotFound),
            Response {
                err: -1,
                value: 0x55
            }
        );
        assert_eq!(
            Response::conf_read(Ok::<u32, PciifError>(0x1234)),
            Response {
                err: 0,
                value: 0x1234
            }
        );
        assert_eq!(
            Response::conf_read(Err::<u32, _>(PciifError::AccessDenied)),
            Response { err: -3, value: 0 }
        );
        assert_eq!(
            Response::conf_write(0x55, Ok::<(), PciifError>(())),
            Response {
                err: 0,
                value: 0x55
            }
        );
        assert_eq!(
            Response::conf_write(0x55, Err::<(), _>(PciifError::OpFailed)),
            Response {
                err: -5,
                value: 0x55
            }
        );
        assert_eq!(
            Response::enable_msi(Ok::<u32, ()>(77)),
            Response { err: 0, value: 77 }
        );
        assert_eq!(
            Response::enable_msi(Err::<u32, _>(OpError::Errno(-114))),
            Response { err: -5, value: 0 }
        );
        assert_eq!(Response::disabled(16), Response { err: 0, value: 16 });
        assert_eq!(
            Response::enable_msix(4, Ok::<(), OpError>(())),
            Response { err: 0, value: 0 }
        );
        assert_eq!(
            Response::enable_msix(4, Err::<(), _>(OpError::Errno(-6))),
            Response { err: -6, value: 4 }
        );
    }

    #[test]
    fn pcibios_mappings() {
        assert_eq!(PCIBIOS_DEVICE_NOT_FOUND, 0x86);
        assert_eq!(pcibios_from_err(0), PCIBIOS_SUCCESSFUL);
        assert_eq!(pcibios_from_err(-1), 0x86);
        assert_eq!(pcibios_from_err(-2), 0x87);
        assert_eq!(pcibios_from_err(-3), 0x88);
        assert_eq!(pcibios_from_err(-4), 0x81);
        assert_eq!(pcibios_from_err(-5), 0x87);
        assert_eq!(pcibios_from_err(-22), -22);
        assert_eq!(pcibios_from_err(7), 7);

        assert_eq!(err_from_pcibios(0), 0);
        assert_eq!(err_from_pcibios(0x86), -1);
        assert_eq!(err_from_pcibios(0x87), -2);
        assert_eq!(err_from_pcibios(0x81), -4);
        assert_eq!(err_from_pcibios(0x88), -3);
        // Not mapped by C: passes through.
        assert_eq!(err_from_pcibios(PCIBIOS_BAD_VENDOR_ID), 0x83);
        assert_eq!(err_from_pcibios(PCIBIOS_BUFFER_TOO_SMALL), 0x89);
        assert_eq!(err_from_pcibios(-22), -22);
        assert_eq!(
            pciif_error_from_pcibios(0x88),
            Some(PciifError::AccessDenied)
        );
        assert_eq!(pciif_error_from_pcibios(0), None);
    }

    #[test]
    fn frontend_results() {
        assert_eq!(conf_read_result(0, 0xabcd), Ok(0xabcd));
        assert_eq!(conf_read_result(-19, 0xabcd), Ok(0));
        assert_eq!(conf_read_result(-1, 5), Err(0x86));
        assert_eq!(conf_read_result(-5, 5), Err(0x87));
        assert_eq!(enable_msi_result(0, 33), Ok(33));
        assert_eq!(enable_msi_result(0, 0), Err(-22));
        assert_eq!(enable_msi_result(-5, 33), Err(-22));

        let mut op = RawOp::enable_msix(0, 0, 0, &[0, 1]).unwrap();
        op.value = 0;
        op.msix_entries[0].vector = 40;
        op.msix_entries[1].vector = 41;
        let mut pirqs = [0u32; 4];
        assert_eq!(enable_msix_result(&op, 2, &mut pirqs), Ok(()));
        assert_eq!(pirqs[..2], [40, 41]);
        op.msix_entries[1].vector = 0;
        assert_eq!(enable_msix_result(&op, 2, &mut pirqs), Err(-22));
        assert_eq!(enable_msix_result(&op, 5, &mut pirqs), Err(-22));
        assert_eq!(enable_msix_result(&op, 129, &mut [0u32; 200]), Err(-22));
        op.value = (-28i32) as u32;
        assert_eq!(enable_msix_result(&op, 2, &mut pirqs), Err(-28));
        op.err = -22;
        assert_eq!(enable_msix_result(&op, 2, &mut pirqs), Err(-22));
    }

    #[test]
    fn aer_op_round_trip() {
        let a = AerOp::new(Command::AerDetected, 2, dev(0, 0, 3, 1)).unwrap();
        assert_eq!((a.cmd, a.err, a.domain, a.bus, a.devfn), (6, 2, 0, 0, 0x19));
        assert_eq!(a.decode(), Ok((Command::AerDetected, dev(0, 0, 3, 1))));
        assert_eq!(AerOp::new(Command::ConfRead, 0, dev(0, 0, 0, 0)), None);
        let mut bad = a;
        bad.cmd = 1;
        assert_eq!(bad.decode(), Err(PciifError::NotImplemented));
        bad.cmd = 11;
        assert_eq!(bad.decode(), Err(PciifError::NotImplemented));
        let mut bad = a;
        bad.bus = 0x100;
        assert_eq!(bad.decode(), Err(PciifError::DevNotFound));
    }

    #[test]
    fn error_display() {
        assert_eq!(PciifError::InvalidOffset.to_string(), "invalid offset");
        assert_eq!(
            OpError::from(PciifError::OpFailed).to_string(),
            "operation failed (-5)"
        );
        assert_eq!(OpError::EINVAL.to_string(), "errno -22");
    }

    #[test]
    fn decode_random_pages_never_panics() {
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let mut accepted = 0;
        for _ in 0..5_000 {
            let mut bytes = [0u8; RAW_OP_SIZE];
            for b in bytes.iter_mut() {
                *b = next() as u8;
            }
            let mut op = RawOp::from_bytes(&bytes);
            // Bias towards plausible values so every branch is reached.
            if next() % 2 == 0 {
                op.cmd %= 11;
                op.domain %= 0x1_0001;
                op.bus %= 0x101;
                op.devfn %= 0x101;
                op.offset = (next() % 0x1100) as i32 - 0x80;
                op.size = (next() % 6) as i32;
                op.value %= 131;
            }
            match Request::decode(&op) {
                Ok(Request::ConfRead { offset, size, .. })
                | Ok(Request::ConfWrite { offset, size, .. }) => {
                    accepted += 1;
                    let n = size.bytes();
                    assert_eq!(offset % n, 0);
                    assert!(u32::from(offset) + u32::from(n) <= 4096);
                }
                Ok(Request::EnableMsix { nvec, entries, .. }) => {
                    accepted += 1;
                    assert!((1..=128).contains(&nvec));
                    assert!(entries[nvec..].iter().all(|&e| e == 0));
                }
                Ok(r) => {
                    accepted += 1;
                    assert_eq!(Some(r.addr()), Bdf::from_raw(op.domain, op.bus, op.devfn));
                }
                Err(e) => {
                    let r = Response::rejected(&op, e);
                    assert!(r.err < 0);
                    assert_eq!(r.value, op.value);
                }
            }
        }
        assert!(accepted > 100, "{}", accepted);
    }

    #[test]
    fn shared_info_default_is_zero() {
        let s = SharedInfo::default();
        assert_eq!(s.flags, 0);
        assert_eq!(s.op, RawOp::default());
        assert_eq!(s.aer_op, AerOp::default());
    }
}
