// SPDX-License-Identifier: GPL-2.0

//! Configuration-space virtualisation engine of `pciback`.
//!
//! This decides what a PV guest reads from the configuration space of a
//! passed-through function and which of its writes reach the hardware. It is
//! wire-compatible with the C `xen-pciback` (`conf_space*.c`), with these
//! deliberate differences:
//!
//! - the MASK of a quirk field is applied to writes (the C driver ignores it);
//! - a quirk that overlaps an existing field is refused with an error (the C
//!   driver silently ignores an exact duplicate, leaks it, and accepts partial
//!   overlaps); quirks are kept across guest release (the C driver drops them);
//! - per-device permissive mode can be switched off again;
//! - in permissive mode the bytes of a write not covered by any field reach
//!   the hardware even when other bytes of the same access are covered (the C
//!   driver drops them);
//! - the virtual command register returns to its seize-time value on release;
//! - writing a BAR's virtual value back re-programs the hardware only for a
//!   BAR that has a dom0 resource (C also writes 0 into unassigned BARs), and
//!   the upper half of a 64-bit BAR without a resource reads 0;
//! - BAR flag bits are derived from the BAR type (I/O, 32/64-bit memory,
//!   prefetch) and the ROM shows only its enable bit, not dom0-internal
//!   resource flags such as `IORESOURCE_ROM_SHADOW`;
//! - a write whose bytes are only partly covered by fields reports (and, in
//!   permissive mode, writes) the uncovered bytes;
//! - an IRQ above 255 is reported as interrupt line 0xff instead of being
//!   truncated;
//! - a failing hardware read is reported to the guest instead of being
//!   masked by the next field, and kernel `-errno` failures are reported as
//!   `XEN_PCI_ERR_op_failed` instead of being passed through raw.
//!
//! The engine does no I/O of its own: configuration accesses go through
//! [`ConfigIo`] and kernel-side effects through [`DeviceControl`], which the
//! kernel glue implements over a `struct pci_dev` and the tests over a fake.
//! It keeps no reference to the device and allocates nothing.

mod engine;
mod fields;
pub(crate) mod regs;
#[cfg(test)]
mod tests;

use core::fmt;

use self::fields::{Field, Kind, CAP_TABLES};
use super::bdf::{Bdf, Quirk};
use super::pciif::PciifError;

/// Width of a configuration-space access or field: the protocol's own type.
pub(crate) use super::pciif::AccessSize;

/// A failed configuration access or kernel request (`PCIBIOS_*` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HwError {
    /// `PCIBIOS_FUNC_NOT_SUPPORTED`.
    FuncNotSupported,
    /// `PCIBIOS_BAD_VENDOR_ID`.
    BadVendorId,
    /// `PCIBIOS_DEVICE_NOT_FOUND` (for example a disconnected device).
    DeviceNotFound,
    /// `PCIBIOS_BAD_REGISTER_NUMBER`.
    BadRegisterNumber,
    /// `PCIBIOS_SET_FAILED`.
    SetFailed,
    /// `PCIBIOS_BUFFER_TOO_SMALL`.
    BufferTooSmall,
    /// Any other failure, including a kernel `-errno`.
    Other,
}

impl HwError {
    /// Interprets the return value of `pci_{read,write}_config_*`: 0 is
    /// success, anything else an error.
    pub(crate) const fn from_pcibios(code: i32) -> Result<(), HwError> {
        Err(match code {
            0 => return Ok(()),
            0x81 => Self::FuncNotSupported,
            0x83 => Self::BadVendorId,
            0x86 => Self::DeviceNotFound,
            0x87 => Self::BadRegisterNumber,
            0x88 => Self::SetFailed,
            0x89 => Self::BufferTooSmall,
            _ => Self::Other,
        })
    }

    /// The error the guest sees (same mapping as the C driver, except that
    /// codes C passes through raw become `OpFailed`).
    pub(crate) const fn to_pciif(self) -> PciifError {
        match self {
            Self::DeviceNotFound => PciifError::DevNotFound,
            Self::BadRegisterNumber => PciifError::InvalidOffset,
            Self::FuncNotSupported => PciifError::NotImplemented,
            Self::SetFailed => PciifError::AccessDenied,
            Self::BadVendorId | Self::BufferTooSmall | Self::Other => PciifError::OpFailed,
        }
    }
}

impl From<HwError> for PciifError {
    fn from(e: HwError) -> Self {
        e.to_pciif()
    }
}

/// Raw configuration-space access to the real function.
///
/// `offset` is naturally aligned for `size` and `offset + size <= 0x1000`
/// whenever the engine calls it. Values are zero-extended.
pub(crate) trait ConfigIo {
    /// `pci_read_config_{byte,word,dword}`.
    fn read(&mut self, offset: u16, size: AccessSize) -> Result<u32, HwError>;
    /// `pci_write_config_{byte,word,dword}`; only the low `size` bytes of
    /// `value` are meaningful.
    fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Result<(), HwError>;
    /// What a read would fail with because the PCI core knows the device is gone
    /// (`pci_dev_is_disconnected()`: `HwError::DeviceNotFound`), without an access.
    /// The engine asks it instead of reading when no bit of the hardware's value
    /// would reach the guest.
    fn check_connected(&self) -> Result<(), HwError>;
}

/// Device power state requested through the PM control register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PowerState {
    /// D0.
    D0,
    /// D1.
    D1,
    /// D2.
    D2,
    /// D3hot.
    D3Hot,
}

impl PowerState {
    /// The state encoded in the low two bits of PMCSR.
    pub(crate) const fn from_pmcsr(value: u16) -> Self {
        match value & regs::PM_CTRL_STATE_MASK {
            0 => Self::D0,
            1 => Self::D1,
            2 => Self::D2,
            _ => Self::D3Hot,
        }
    }
}

/// Kernel-side effects of guest writes, implemented by the glue with the PCI
/// core (and by the tests with a recorder). The same object provides the raw
/// configuration access.
pub(crate) trait DeviceControl: ConfigIo {
    /// `pci_is_enabled()`.
    fn is_enabled(&self) -> bool;
    /// `pci_enable_device()`; on success the glue also arms the dom0 INTx
    /// handler (C: `enable_intx = 1`).
    fn enable(&mut self) -> Result<(), HwError>;
    /// `pci_disable_device()`, and disarm the INTx handler (C:
    /// `enable_intx = 0`). This must not clear memory or I/O decoding.
    fn disable(&mut self);
    /// `dev->is_busmaster`.
    fn is_busmaster(&self) -> bool;
    /// `pci_set_master()` (`true`) or `pci_clear_master()` (`false`).
    fn set_master(&mut self, on: bool);
    /// `pci_set_mwi()`.
    fn set_mwi(&mut self) -> Result<(), HwError>;
    /// `pci_clear_mwi()`.
    fn clear_mwi(&mut self);
    /// `pci_intx(dev, enable)`.
    fn intx(&mut self, enable: bool);
    /// `pci_set_power_state()`.
    fn set_power_state(&mut self, state: PowerState) -> Result<(), HwError>;
    /// The global `permissive` module parameter.
    fn global_permissive(&self) -> bool;
}

/// Memory or I/O type of a BAR resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum BarType {
    /// I/O space.
    Io,
    /// 32-bit memory (also used for the legacy "below 1 MiB" type).
    #[default]
    Mem32,
    /// 64-bit memory; the next BAR is its upper half.
    Mem64,
}

/// The dom0 resource behind one BAR, as the kernel assigned it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BarResource {
    /// Bus address of the first byte (port number for I/O).
    pub(crate) start: u64,
    /// Length in bytes.
    pub(crate) size: u64,
    /// Type of the BAR.
    pub(crate) ty: BarType,
    /// Prefetchable memory.
    pub(crate) prefetch: bool,
    /// The resource has flags and is neither disabled, unset nor busy
    /// (`IORESOURCE_DISABLED | IORESOURCE_UNSET | IORESOURCE_BUSY`); a BAR
    /// that is not present reads as 0 and sizes as 0.
    pub(crate) present: bool,
}

/// The dom0 resource behind the expansion ROM BAR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RomResource {
    /// Bus address of the first byte.
    pub(crate) start: u64,
    /// Length in bytes.
    pub(crate) size: u64,
    /// `IORESOURCE_ROM_ENABLE` was set; shown as the (fixed) enable bit.
    pub(crate) enabled: bool,
    /// As [`BarResource::present`].
    pub(crate) present: bool,
}

/// Offsets of the capabilities the engine virtualises, as found by
/// `pci_find_capability()` (first match in the list), or `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapOffsets {
    /// Power management.
    pub(crate) pm: Option<u8>,
    /// Vital product data.
    pub(crate) vpd: Option<u8>,
    /// MSI.
    pub(crate) msi: Option<u8>,
    /// MSI-X.
    pub(crate) msix: Option<u8>,
}

impl CapOffsets {
    /// Offset of the capability `id`, if it is one the engine virtualises and
    /// the device has it.
    pub(crate) fn get(&self, id: u8) -> Option<u8> {
        match id {
            regs::CAP_ID_PM => self.pm,
            regs::CAP_ID_VPD => self.vpd,
            regs::CAP_ID_MSI => self.msi,
            regs::CAP_ID_MSIX => self.msix,
            _ => None,
        }
    }

    /// The slot for capability `id`, if it is one the engine virtualises.
    fn slot_mut(&mut self, id: u8) -> Option<&mut Option<u8>> {
        match id {
            regs::CAP_ID_PM => Some(&mut self.pm),
            regs::CAP_ID_VPD => Some(&mut self.vpd),
            regs::CAP_ID_MSI => Some(&mut self.msi),
            regs::CAP_ID_MSIX => Some(&mut self.msix),
            _ => None,
        }
    }

    /// Records `off` for `id` unless `id` was already seen (first match wins,
    /// like `pci_find_capability()`).
    fn record(&mut self, id: u8, off: u8) {
        if let Some(slot) = self.slot_mut(id) {
            if slot.is_none() {
                *slot = Some(off);
            }
        }
    }

    /// Builds the offsets from a list of `(capability id, offset)` pairs in
    /// list order, keeping the first occurrence of each ID.
    pub(crate) fn from_list(list: &[(u8, u8)]) -> Self {
        let mut caps = Self::default();
        for &(id, off) in list {
            caps.record(id, off);
        }
        caps
    }

    /// Walks the standard capability list through `io` the way
    /// `pci_find_capability()` does (bounded, so a looping list ends).
    /// Header types other than 0 and 1 have no list here.
    pub(crate) fn discover<I: ConfigIo>(io: &mut I, header_type: u8) -> Result<Self, HwError> {
        let mut caps = Self::default();
        if header_type & 0x7f > 1 {
            return Ok(caps);
        }
        let status = io.read(regs::STATUS, AccessSize::Two)?;
        if status & u32::from(regs::STATUS_CAP_LIST) == 0 {
            return Ok(caps);
        }
        let mut pos = io.read(regs::CAPABILITY_LIST, AccessSize::One)? as u16;
        for _ in 0..regs::CAP_WALK_TTL {
            pos &= !3;
            if !(regs::HEADER_SIZE..regs::STD_CONFIG_SPACE_SIZE).contains(&pos) {
                break;
            }
            let ent = io.read(pos, AccessSize::Two)?;
            let id = (ent & 0xff) as u8;
            if id == 0xff {
                break;
            }
            // `pos` < 0x100 was checked above.
            caps.record(id, pos as u8);
            pos = ((ent >> 8) & 0xff) as u16;
        }
        Ok(caps)
    }
}

/// What the glue knows about the device at seize time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeviceInfo {
    /// `dev->vendor` (SR-IOV VFs read 0xffff in hardware).
    pub(crate) vendor: u16,
    /// `dev->device`.
    pub(crate) device: u16,
    /// `dev->hdr_type`; bit 7 (multi-function) is ignored. Only 0 and 1 are
    /// supported.
    pub(crate) header_type: u8,
    /// `dev->irq`, the dom0 IRQ the PV guest uses as a pirq. Reported as the
    /// interrupt-line byte; a value above 255 cannot be represented and is
    /// reported as 0xff ("unknown / not connected") rather than truncated.
    pub(crate) irq: u32,
    /// `dev->resource[0..6]`; for a bridge only the first two are used.
    pub(crate) bars: [BarResource; 6],
    /// `dev->resource[PCI_ROM_RESOURCE]`.
    pub(crate) rom: RomResource,
    /// Capability offsets.
    pub(crate) caps: CapOffsets,
    /// Per-device permissive mode at seize time.
    pub(crate) permissive: bool,
    /// `allow_interrupt_control` at seize time.
    pub(crate) allow_interrupt_control: bool,
}

/// Why a device cannot be given a virtual configuration space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeizeError {
    /// Header type other than 0 (normal) or 1 (bridge).
    UnsupportedHeaderType(u8),
    /// A capability offset is inside the header, misaligned, runs past the
    /// standard configuration space, or overlaps another virtualised
    /// capability.
    BadCapability(u8),
    /// A hardware access failed.
    Hw(HwError),
}

impl From<HwError> for SeizeError {
    fn from(e: HwError) -> Self {
        Self::Hw(e)
    }
}

/// Why a quirk field was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuirkError {
    /// REG above 0xfff or the field runs past the configuration space.
    BadOffset,
    /// SIZE other than 1, 2 or 4.
    BadSize,
    /// REG not a multiple of SIZE.
    Unaligned,
    /// MASK has bits above SIZE.
    BadMask,
    /// The field overlaps a field that already exists (header, capability or
    /// another quirk).
    Overlap,
    /// No room for another quirk on this device.
    Full,
}

impl QuirkError {
    /// Kernel error number for the sysfs store: `-EINVAL`, `-EEXIST` or
    /// `-ENOSPC`.
    pub(crate) const fn to_errno(self) -> i32 {
        match self {
            Self::BadOffset | Self::BadSize | Self::Unaligned | Self::BadMask => -22,
            Self::Overlap => -17,
            Self::Full => -28,
        }
    }
}

/// One active field as listed by the sysfs `quirks` attribute
/// (`"\t\t%08x:%01x:%08x\n"` = offset, size, mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldInfo {
    /// Absolute offset.
    pub(crate) offset: u16,
    /// Size in bytes (1, 2 or 4).
    pub(crate) size: u8,
    /// Writable-bits mask of a quirk field, 0 for built-in fields.
    pub(crate) mask: u32,
    /// The field was added as a quirk.
    pub(crate) quirk: bool,
}

/// Result of a guest write that did not fail.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Every byte was handled by a field rule or, in permissive mode, written
    /// to the hardware. (A field rule may itself drop the bytes.)
    Handled,
    /// Some bytes matched no field and were dropped because the device is not
    /// permissive (the bytes a field covers were handled).
    Dropped(Denied),
}

/// A guest write whose bytes, or some of them, matched no field and were
/// dropped because the device is not permissive: what the glue explains to
/// the administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Denied {
    /// Offset of the access.
    pub(crate) offset: u16,
    /// Size of the access.
    pub(crate) size: AccessSize,
    /// The guest's value, masked to `size`.
    pub(crate) value: u32,
    /// The dropped bytes: bit `i` is byte `offset + i`.
    pub(crate) uncovered: u8,
    /// A dropped byte has not been explained since the device was seized or
    /// last released ([`VirtualConfig::mark_explained`]): the glue explains
    /// this write (if its rate limit lets it) and only such writes.
    pub(crate) first: bool,
    /// Denied writes to the device so far, this one included.
    pub(crate) count: u64,
}

impl Denied {
    /// The quirk fields (offset, size, mask) that would let exactly the
    /// dropped bytes through, as `permissive` would: one if they form a
    /// naturally aligned register of 1, 2 or 4 bytes, else one per byte.
    pub(crate) fn quirk_fields(&self) -> impl Iterator<Item = (u16, AccessSize, u32)> {
        let mut out = [None; 4];
        // An access is naturally aligned, so a region of 1, 2 or 4 of its bytes is an aligned
        // register exactly when its first byte's index in the access is a multiple of its size.
        if let Some(&Some((lo, size))) = ALIGNED_REGION.get(usize::from(self.uncovered)) {
            out[0] = Some((self.offset.wrapping_add(lo), size, size.value_mask()));
        } else {
            for ((slot, bit), i) in out.iter_mut().zip([1u8, 2, 4, 8]).zip(0u16..) {
                if self.uncovered & bit != 0 {
                    *slot = Some((self.offset.wrapping_add(i), AccessSize::One, 0xff));
                }
            }
        }
        out.into_iter().flatten()
    }
}

/// For each set of an access's bytes (bit `i`: byte `i`), the aligned register they form, as
/// the index of its first byte and its size, if they form one.
const ALIGNED_REGION: [Option<(u16, AccessSize)>; 16] = {
    use AccessSize::{Four, One, Two};
    let mut t = [None; 16];
    t[0b0001] = Some((0, One));
    t[0b0010] = Some((1, One));
    t[0b0100] = Some((2, One));
    t[0b1000] = Some((3, One));
    t[0b0011] = Some((0, Two));
    t[0b1100] = Some((2, Two));
    t[0b1111] = Some((0, Four));
    t
};

/// The explanation of a denied write, for the log (see [`Denied::explain`]).
pub(crate) struct Explanation<'a> {
    denied: &'a Denied,
    bdf: Bdf,
    guest: u16,
    dropped: u32,
}

impl Denied {
    /// The log line that explains this write of guest `guest` to device `bdf`: what was
    /// written, that `permissive` is off, the device's count of denied writes, how many
    /// explanations the rate limit left out before this one (`dropped`), and the `quirks`
    /// lines that let exactly the dropped bytes through.
    pub(crate) fn explain(&self, bdf: Bdf, guest: u16, dropped: u32) -> Explanation<'_> {
        Explanation {
            denied: self,
            bdf,
            guest,
            dropped,
        }
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.denied;
        write!(
            f,
            "guest {} wrote {:#x} ({} bytes at {:#x}); the bytes no field covers were dropped \
             (permissive is off; denied write {} of this device",
            self.guest,
            d.value,
            d.size.bytes(),
            d.offset,
            d.count
        )?;
        if self.dropped > 0 {
            write!(
                f,
                "; {} explanations before this one not logged",
                self.dropped
            )?;
        }
        write!(f, "); to let them through:")?;
        let mut sep = "";
        for (reg, size, mask) in d.quirk_fields() {
            let quirk = Quirk {
                bdf: self.bdf,
                reg,
                size,
                mask,
            };
            write!(
                f,
                "{sep} echo {quirk} > /sys/bus/pci/drivers/pciback/quirks"
            )?;
            sep = ";";
        }
        Ok(())
    }
}

/// Configuration-space bytes, for the per-byte record of explained denied
/// writes.
const CONFIG_BYTES: usize = regs::CONFIG_SPACE_SIZE as usize;

/// Maximum number of quirk fields per device.
pub(crate) const MAX_QUIRKS: usize = 32;

/// Number of BAR state slots: six BARs and the ROM.
const BAR_SLOTS: usize = 7;
/// Slot of the ROM in [`VirtualConfig::bars`].
const ROM_SLOT: usize = 6;

/// Virtual state of one BAR or the ROM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BarState {
    /// Value shown to the guest.
    val: u32,
    /// Value shown while the guest is sizing (size mask plus flag bits).
    len: u32,
    /// Low bits that a sizing write may leave clear (flag bits).
    flag_bits: u32,
    /// The guest wrote all ones: the next read returns `len`.
    sizing: bool,
    /// Backed by a dom0 resource: writing `val` back may re-program the
    /// hardware. A BAR without a resource is never written.
    restorable: bool,
}

impl BarState {
    /// What a guest read returns now.
    fn shown(&self) -> u32 {
        if self.sizing {
            self.len
        } else {
            self.val
        }
    }
}

/// Header layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderType {
    /// Type 0, a normal function.
    Normal,
    /// Type 1, a PCI-to-PCI bridge.
    Bridge,
}

/// The virtual configuration space of one seized function.
#[derive(Clone, Debug)]
pub(crate) struct VirtualConfig {
    header: HeaderType,
    vendor: u16,
    device: u16,
    irq_line: u8,
    caps: CapOffsets,
    /// Virtual command register (the non-guest bits are what the guest sees).
    cmd: u16,
    /// Command register value at seize time, restored on release.
    seized_cmd: u16,
    bars: [BarState; BAR_SLOTS],
    quirks: [Option<Field>; MAX_QUIRKS],
    permissive: bool,
    allow_interrupt_control: bool,
    /// Bytes whose denied write was explained (a bit per byte), since the
    /// device was seized or last released.
    explained: [u64; CONFIG_BYTES / 64],
    /// Denied writes since the device was seized.
    denied: u64,
}

impl VirtualConfig {
    /// Builds the virtual configuration space at seize time.
    ///
    /// Reads the command register (its value becomes the virtual one) and
    /// clears PME enable in the PM control register. The C driver does this
    /// before `pci_enable_device()`; a glue that enables the device first
    /// (to route its INTx line) gives the value from before the enable with
    /// [`Self::set_seized_command`].
    pub(crate) fn new<I: ConfigIo>(io: &mut I, info: &DeviceInfo) -> Result<Self, SeizeError> {
        let header = match info.header_type & 0x7f {
            0 => HeaderType::Normal,
            1 => HeaderType::Bridge,
            t => return Err(SeizeError::UnsupportedHeaderType(t)),
        };
        Self::check_caps(&info.caps)?;

        let nbars = match header {
            HeaderType::Normal => 6,
            HeaderType::Bridge => 2,
        };
        let mut bars = [BarState::default(); BAR_SLOTS];
        // The slot after a 64-bit BAR is its upper half, whatever the glue
        // passed for it (the kernel leaves that resource empty).
        let mut lower64: Option<&BarResource> = None;
        for (slot, res) in bars.iter_mut().zip(info.bars.iter()).take(nbars) {
            *slot = match lower64.take() {
                Some(lower) => engine::bar_upper_state(lower),
                None => {
                    if res.ty == BarType::Mem64 {
                        lower64 = Some(res);
                    }
                    engine::bar_state(res)
                }
            };
        }
        bars[ROM_SLOT] = engine::rom_state(&info.rom);

        let cmd = io.read(regs::COMMAND, AccessSize::Two)? as u16;

        if let Some(pm) = info.caps.pm {
            let off = u16::from(pm) + regs::PM_CTRL;
            let pmcsr = io.read(off, AccessSize::Two)? as u16;
            if pmcsr & regs::PM_CTRL_PME_ENABLE != 0 {
                io.write(
                    off,
                    AccessSize::Two,
                    u32::from(pmcsr & !regs::PM_CTRL_PME_ENABLE),
                )?;
            }
        }

        Ok(Self {
            header,
            vendor: info.vendor,
            device: info.device,
            irq_line: u8::try_from(info.irq).unwrap_or(0xff),
            caps: info.caps,
            cmd,
            seized_cmd: cmd,
            bars,
            quirks: [None; MAX_QUIRKS],
            permissive: info.permissive,
            allow_interrupt_control: info.allow_interrupt_control,
            explained: [0; CONFIG_BYTES / 64],
            denied: 0,
        })
    }

    /// Takes `cmd` as the command register at seize time: the virtual value
    /// now, and the one [`Self::reset_on_release`] puts back. The bits the
    /// guest sees from the hardware ([`regs::CMD_GUEST`]) are read from the
    /// device whatever `cmd` says.
    pub(crate) fn set_seized_command(&mut self, cmd: u16) {
        self.cmd = cmd;
        self.seized_cmd = cmd;
    }

    /// Checks that every virtualised capability lies in 0x40..0x100, is
    /// dword aligned, and that no two of them overlap.
    fn check_caps(caps: &CapOffsets) -> Result<(), SeizeError> {
        let mut placed: [(u16, u16); 4] = [(0, 0); 4];
        for (n, (id, _)) in CAP_TABLES.iter().enumerate() {
            let Some(off) = caps.get(*id) else { continue };
            let start = u16::from(off);
            let end = start + fields::cap_extent(*id);
            if start < regs::HEADER_SIZE || start % 4 != 0 || end > regs::STD_CONFIG_SPACE_SIZE {
                return Err(SeizeError::BadCapability(*id));
            }
            if placed.iter().any(|&(s, e)| s < end && start < e) {
                return Err(SeizeError::BadCapability(*id));
            }
            if let Some(p) = placed.get_mut(n) {
                *p = (start, end);
            }
        }
        Ok(())
    }

    /// Header layout of the device.
    pub(crate) fn header_type(&self) -> HeaderType {
        self.header
    }

    /// Capability offsets the engine virtualises.
    pub(crate) fn caps(&self) -> CapOffsets {
        self.caps
    }

    /// Per-device permissive mode.
    pub(crate) fn permissive(&self) -> bool {
        self.permissive
    }

    /// Switches per-device permissive mode on or off (sysfs `permissive`).
    pub(crate) fn set_permissive(&mut self, on: bool) {
        self.permissive = on;
    }

    /// Whether the guest may control INTx, MSI and MSI-X enables.
    pub(crate) fn allow_interrupt_control(&self) -> bool {
        self.allow_interrupt_control
    }

    /// Sets `allow_interrupt_control` (sysfs attribute of the same name).
    pub(crate) fn set_allow_interrupt_control(&mut self, on: bool) {
        self.allow_interrupt_control = on;
    }

    /// Returns the virtual state to what it was at seize time, when the device
    /// is released by a guest: BAR sizing ends, the virtual command register
    /// is restored, `allow_interrupt_control` is cleared (as in C) and every
    /// register's denied-write explanation is re-armed (the count goes on).
    /// Permissive mode and quirk fields are administrator settings and are
    /// kept; the glue can call
    /// [`Self::clear_quirks`] and [`Self::set_permissive`] to drop them.
    pub(crate) fn reset_on_release(&mut self) {
        for bar in self.bars.iter_mut() {
            bar.sizing = false;
        }
        self.cmd = self.seized_cmd;
        self.allow_interrupt_control = false;
        self.explained = [0; CONFIG_BYTES / 64];
    }

    /// Records that `d` was explained: its dropped bytes are not explained
    /// again until the device is released.
    pub(crate) fn mark_explained(&mut self, d: &Denied) {
        for (bit, i) in [1u8, 2, 4, 8].into_iter().zip(0u16..) {
            if d.uncovered & bit == 0 {
                continue;
            }
            let at = usize::from(d.offset.wrapping_add(i));
            if let Some(w) = self.explained.get_mut(at / 64) {
                *w |= 1 << (at % 64);
            }
        }
    }

    /// Whether a denied write of byte `at` was explained.
    pub(super) fn is_explained(&self, at: u16) -> bool {
        let at = usize::from(at);
        self.explained
            .get(at / 64)
            .is_some_and(|w| w & (1 << (at % 64)) != 0)
    }

    /// Guest writes denied since the device was seized (see [`Denied`]).
    pub(crate) fn denied_writes(&self) -> u64 {
        self.denied
    }

    /// Every active field in listing order (header, type-specific header,
    /// capabilities VPD, PM, MSI, MSI-X, then quirks in insertion order).
    fn active_fields(&self) -> impl Iterator<Item = Field> + '_ {
        let typed: &'static [Field] = match self.header {
            HeaderType::Normal => &fields::HEADER_TYPE0,
            HeaderType::Bridge => &fields::HEADER_TYPE1,
        };
        let caps = self.caps;
        fields::HEADER_COMMON
            .iter()
            .copied()
            .chain(typed.iter().copied())
            .chain(CAP_TABLES.iter().flat_map(move |&(id, table)| {
                let base = caps.get(id).map(u16::from);
                table.iter().filter_map(move |f| base.and_then(|b| f.at(b)))
            }))
            .chain(self.quirks.iter().flatten().copied())
    }

    /// Every active field, for the sysfs `quirks` listing.
    pub(crate) fn fields(&self) -> impl Iterator<Item = FieldInfo> + '_ {
        self.active_fields().map(|f| {
            let (mask, quirk) = match f.kind {
                Kind::Masked(m) => (m, true),
                _ => (0, false),
            };
            FieldInfo {
                offset: f.offset,
                size: f.size.bytes() as u8,
                mask,
                quirk,
            }
        })
    }

    /// Adds a quirk field (sysfs `quirks` store `REG:SIZE:MASK`): reads and
    /// writes of `size` bytes at `reg` pass through to the hardware, and a
    /// write changes only the bits set in `mask`.
    pub(crate) fn add_quirk(&mut self, reg: u32, size: u32, mask: u32) -> Result<(), QuirkError> {
        let size = AccessSize::from_bytes(size).ok_or(QuirkError::BadSize)?;
        let offset = u16::try_from(reg).map_err(|_| QuirkError::BadOffset)?;
        let end = offset
            .checked_add(size.bytes())
            .filter(|&e| e <= regs::CONFIG_SPACE_SIZE)
            .ok_or(QuirkError::BadOffset)?;
        if offset % size.bytes() != 0 {
            return Err(QuirkError::Unaligned);
        }
        if mask & !size.value_mask() != 0 {
            return Err(QuirkError::BadMask);
        }
        if self.active_fields().any(|f| f.overlaps(offset, end)) {
            return Err(QuirkError::Overlap);
        }
        let slot = self
            .quirks
            .iter_mut()
            .find(|q| q.is_none())
            .ok_or(QuirkError::Full)?;
        *slot = Some(Field::new(offset, size, Kind::Masked(mask)));
        Ok(())
    }

    /// Removes every quirk field.
    pub(crate) fn clear_quirks(&mut self) {
        self.quirks = [None; MAX_QUIRKS];
    }
}
