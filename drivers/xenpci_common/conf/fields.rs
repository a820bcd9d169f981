// SPDX-License-Identifier: GPL-2.0

//! Declarative field tables: which registers are virtualised and how.
//!
//! A [`Field`] covers `size` bytes at `offset` (absolute for the header
//! tables, relative to the capability for the capability tables). Its
//! [`Kind`] names the read and the write rule; the rules themselves live in
//! `engine.rs`. Every byte of configuration space that no field covers is read
//! from the hardware and, unless the device is permissive, write-protected.
//!
//! Invariants (checked by the tests): fields are naturally aligned, sizes are
//! 1, 2 or 4, no two fields of the tables that can be active together overlap,
//! and each capability table fits in its [`cap_extent`].

use super::regs::{
    BAR0, BIST, CACHE_LINE_SIZE, CAP_ID_MSI, CAP_ID_MSIX, CAP_ID_PM, CAP_ID_VPD, COMMAND,
    DEVICE_ID, INTERRUPT_LINE, INTERRUPT_PIN, LATENCY_TIMER, MSI_FLAGS, PM_CTRL, PM_DATA, PM_PMC,
    PM_PPB_EXT, ROM_TYPE0, ROM_TYPE1, VENDOR_ID, VPD_ADDR, VPD_DATA,
};
use super::AccessSize;

/// Which message-signalled interrupt capability a flags field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MsiType {
    /// MSI (capability 0x05).
    Msi,
    /// MSI-X (capability 0x11).
    Msix,
}

/// How reads and writes of one field are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Read: vendor ID from the seize-time device info. Write: dropped.
    VendorId,
    /// Read: device ID from the seize-time device info. Write: dropped.
    DeviceId,
    /// Read: the dom0 IRQ as an interrupt-line byte. Write: dropped.
    IrqLine,
    /// Read: hardware. Write: dropped.
    ReadOnly,
    /// Read: hardware. Write: hardware.
    ReadWrite,
    /// Read: hardware. Write: only the bits set in the mask reach the
    /// hardware (read-modify-write); used for quirk fields.
    Masked(u32),
    /// Command register: guest bits from hardware, the rest virtual; writes
    /// become enable/disable/master/MWI/INTx requests.
    Command,
    /// Base address register `n` (0..=5): virtual value or size mask.
    Bar(u8),
    /// Expansion ROM base address: like a BAR, the enable bit is fixed.
    Rom,
    /// BIST: hardware; a write only starts the self test.
    Bist,
    /// PM capabilities: hardware with the PME-support bits cleared; write
    /// dropped.
    PmCaps,
    /// PM control/status: power state through the kernel, PME status and data
    /// select to hardware, the rest dropped.
    PmCtrl,
    /// VPD address: written to hardware only when it starts a read.
    VpdAddr,
    /// MSI or MSI-X message control: interrupt-control rules.
    MsiFlags(MsiType),
}

/// One virtualised register (or part of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// Offset of the first byte (absolute, or relative to a capability).
    pub(crate) offset: u16,
    /// Width of the field.
    pub(crate) size: AccessSize,
    /// Read and write rule.
    pub(crate) kind: Kind,
}

impl Field {
    /// A field at `offset` of width `size` handled by `kind`.
    pub(crate) const fn new(offset: u16, size: AccessSize, kind: Kind) -> Self {
        Self { offset, size, kind }
    }

    /// One past the last byte, or `None` on overflow.
    pub(crate) fn end(&self) -> Option<u16> {
        self.offset.checked_add(self.size.bytes())
    }

    /// The same field moved by `base` (a capability offset).
    pub(crate) fn at(&self, base: u16) -> Option<Field> {
        Some(Field {
            offset: self.offset.checked_add(base)?,
            ..*self
        })
    }

    /// Whether the byte ranges of `self` and `[start, end)` intersect.
    pub(crate) fn overlaps(&self, start: u16, end: u16) -> bool {
        match self.end() {
            Some(f_end) => self.offset < end && start < f_end,
            None => false,
        }
    }
}

use AccessSize::{Four, One, Two};

/// Header fields common to type 0 and type 1.
pub(crate) static HEADER_COMMON: [Field; 8] = [
    Field::new(VENDOR_ID, Two, Kind::VendorId),
    Field::new(DEVICE_ID, Two, Kind::DeviceId),
    Field::new(COMMAND, Two, Kind::Command),
    Field::new(CACHE_LINE_SIZE, One, Kind::ReadWrite),
    Field::new(LATENCY_TIMER, One, Kind::ReadOnly),
    Field::new(BIST, One, Kind::Bist),
    Field::new(INTERRUPT_LINE, One, Kind::IrqLine),
    Field::new(INTERRUPT_PIN, One, Kind::ReadOnly),
];

/// Type-0 header: six BARs and the ROM at 0x30.
pub(crate) static HEADER_TYPE0: [Field; 7] = [
    Field::new(BAR0, Four, Kind::Bar(0)),
    Field::new(BAR0 + 4, Four, Kind::Bar(1)),
    Field::new(BAR0 + 8, Four, Kind::Bar(2)),
    Field::new(BAR0 + 12, Four, Kind::Bar(3)),
    Field::new(BAR0 + 16, Four, Kind::Bar(4)),
    Field::new(BAR0 + 20, Four, Kind::Bar(5)),
    Field::new(ROM_TYPE0, Four, Kind::Rom),
];

/// Type-1 (bridge) header: two BARs and the ROM at 0x38.
pub(crate) static HEADER_TYPE1: [Field; 3] = [
    Field::new(BAR0, Four, Kind::Bar(0)),
    Field::new(BAR0 + 4, Four, Kind::Bar(1)),
    Field::new(ROM_TYPE1, Four, Kind::Rom),
];

/// The capability ID/next-pointer pair, read-only; first entry of every
/// capability table.
const CAP_HEADER: Field = Field::new(0, Two, Kind::ReadOnly);

/// Power management capability.
pub(crate) static CAP_PM: [Field; 5] = [
    CAP_HEADER,
    Field::new(PM_PMC, Two, Kind::PmCaps),
    Field::new(PM_CTRL, Two, Kind::PmCtrl),
    Field::new(PM_PPB_EXT, One, Kind::ReadOnly),
    Field::new(PM_DATA, One, Kind::ReadOnly),
];

/// Vital product data capability.
pub(crate) static CAP_VPD: [Field; 3] = [
    CAP_HEADER,
    Field::new(VPD_ADDR, Two, Kind::VpdAddr),
    Field::new(VPD_DATA, Four, Kind::ReadOnly),
];

/// MSI capability: only the message control register is virtualised.
pub(crate) static CAP_MSI: [Field; 2] = [
    CAP_HEADER,
    Field::new(MSI_FLAGS, Two, Kind::MsiFlags(MsiType::Msi)),
];

/// MSI-X capability: only the message control register is virtualised.
pub(crate) static CAP_MSIX: [Field; 2] = [
    CAP_HEADER,
    Field::new(MSI_FLAGS, Two, Kind::MsiFlags(MsiType::Msix)),
];

/// The virtualised capabilities, in the order their fields are listed (the
/// order the C driver registers them, which is visible in sysfs `quirks`).
pub(crate) static CAP_TABLES: [(u8, &[Field]); 4] = [
    (CAP_ID_VPD, &CAP_VPD),
    (CAP_ID_PM, &CAP_PM),
    (CAP_ID_MSI, &CAP_MSI),
    (CAP_ID_MSIX, &CAP_MSIX),
];

/// Bytes from the capability offset that the table of `cap_id` covers, or 0
/// for a capability that is not virtualised.
pub(crate) fn cap_extent(cap_id: u8) -> u16 {
    CAP_TABLES
        .iter()
        .find(|(id, _)| *id == cap_id)
        .map_or(0, |(_, table)| {
            table.iter().filter_map(Field::end).max().unwrap_or(0)
        })
}
