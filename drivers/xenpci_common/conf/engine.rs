// SPDX-License-Identifier: GPL-2.0

//! The read and write rules: merging fields into guest accesses and the
//! per-kind handlers.
//!
//! A guest read starts from one hardware read of the access (none if every
//! byte of it is in a field that takes no bit from the hardware) and overlays,
//! byte by byte, every overlapping field's virtual bits. A guest write hands every
//! overlapping field its current value with the guest's bytes merged in; the
//! bytes no field covers reach the hardware only in permissive mode.
//!
//! All offsets and sizes are checked here again although the protocol layer
//! already validated them: a bad one is an error, never a panic.

use super::fields::{Field, Kind, MsiType};
use super::regs::{
    BAR_IO_FLAG_BITS, BAR_MEM_FLAG_BITS, BAR_MEM_PREFETCH, BAR_MEM_TYPE_64, BAR_SPACE_IO,
    BIST_START, CMD_GUEST, CMD_INTX_DISABLE, CMD_INVALIDATE, CMD_IO, CMD_MASTER, CMD_MEMORY,
    COMMAND, CONFIG_SPACE_SIZE, MSIX_FLAGS_ENABLE, MSIX_FLAGS_MASKALL, MSI_FLAGS, MSI_FLAGS_ENABLE,
    PM_CAP_PME_MASK, PM_CTRL_DATA_SEL, PM_CTRL_PME_STATUS, ROM_ENABLE, ROM_FLAG_BITS, VPD_ADDR_F,
};
use super::{
    AccessSize, BarResource, BarState, BarType, ConfigIo, Denied, DeviceControl, PciifError,
    PowerState, RomResource, VirtualConfig, WriteOutcome, ROM_SLOT,
};

/// Most fields one access can overlap: fields never overlap each other and
/// each overlapping one covers at least one of the at most four bytes.
const MAX_HITS: usize = 4;

/// Checks an access and returns one past its last byte.
fn access_end(offset: u16, size: AccessSize) -> Result<u16, PciifError> {
    if offset % size.bytes() != 0 {
        return Err(PciifError::InvalidOffset);
    }
    offset
        .checked_add(size.bytes())
        .filter(|&end| end <= CONFIG_SPACE_SIZE)
        .ok_or(PciifError::InvalidOffset)
}

/// `value`, whose byte 0 sits at offset `from`, re-expressed so that byte 0
/// sits at offset `to`. Bytes moved outside 0..4 are lost.
fn relocate(value: u32, from: u16, to: u16) -> u32 {
    let shift = |d: u16| u32::from(d).saturating_mul(8);
    if from >= to {
        value.checked_shl(shift(from - to)).unwrap_or(0)
    } else {
        value.checked_shr(shift(to - from)).unwrap_or(0)
    }
}

/// Bytes of `[base, base_end)` that `[start, end)` also covers, as a bit mask
/// relative to `base`.
fn overlap_mask(base: u16, base_end: u16, start: u16, end: u16) -> u32 {
    let lo = base.max(start);
    let hi = base_end.min(end);
    if lo >= hi {
        return 0;
    }
    let bytes = match hi - lo {
        1 => 0xff,
        2 => 0xffff,
        3 => 0x00ff_ffff,
        _ => 0xffff_ffff,
    };
    relocate(bytes, lo, base)
}

/// The bytes a bit mask of an access touches: bit `i` for byte `i`.
fn bytes_of(mask: u32) -> u32 {
    (0..4)
        .filter(|i| (mask >> (8 * i)) & 0xff != 0)
        .fold(0, |acc, i| acc | (1 << i))
}

/// Virtual state of a BAR that is not the upper half of a 64-bit BAR.
pub(super) fn bar_state(res: &BarResource) -> BarState {
    let (flag_bits, low) = match res.ty {
        BarType::Io => (BAR_IO_FLAG_BITS, BAR_SPACE_IO),
        BarType::Mem32 => (BAR_MEM_FLAG_BITS, 0),
        BarType::Mem64 => (BAR_MEM_FLAG_BITS, BAR_MEM_TYPE_64),
    };
    let low = if res.prefetch && res.ty != BarType::Io {
        low | BAR_MEM_PREFETCH
    } else {
        low
    };
    if !res.present {
        return BarState {
            flag_bits,
            ..BarState::default()
        };
    }
    BarState {
        val: (res.start as u32 & !flag_bits) | low,
        len: (res.size.wrapping_neg() as u32 & !flag_bits) | low,
        flag_bits,
        sizing: false,
        restorable: true,
    }
}

/// Virtual state of the upper half of the 64-bit BAR `lower`.
pub(super) fn bar_upper_state(lower: &BarResource) -> BarState {
    if !lower.present {
        return BarState::default();
    }
    BarState {
        val: (lower.start >> 32) as u32,
        len: (lower.size.wrapping_neg() >> 32) as u32,
        flag_bits: 0,
        sizing: false,
        restorable: true,
    }
}

/// Virtual state of the expansion ROM BAR.
pub(super) fn rom_state(res: &RomResource) -> BarState {
    if !res.present {
        return BarState {
            flag_bits: ROM_FLAG_BITS,
            ..BarState::default()
        };
    }
    let low = if res.enabled { ROM_ENABLE } else { 0 };
    BarState {
        val: (res.start as u32 & !ROM_FLAG_BITS) | low,
        len: (res.size.wrapping_neg() as u32 & !ROM_FLAG_BITS) | low,
        flag_bits: ROM_FLAG_BITS,
        sizing: false,
        restorable: true,
    }
}

/// Whether a field of this kind drops every write without looking at it.
fn drops_writes(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::VendorId | Kind::DeviceId | Kind::IrqLine | Kind::ReadOnly | Kind::PmCaps
    )
}

/// Whether a write to a field of this kind is plain: it changes nothing of the engine's state
/// and needs nothing but configuration reads and writes of the field itself (see
/// [`VirtualConfig::write_plain`]). A field that drops writes, a read-write one, a quirk.
fn plain_write(kind: Kind) -> bool {
    drops_writes(kind) || matches!(kind, Kind::ReadWrite | Kind::Masked(_))
}

impl VirtualConfig {
    /// The fields overlapping `[start, end)`.
    fn hits(&self, start: u16, end: u16) -> Result<[Option<Field>; MAX_HITS], PciifError> {
        let mut out = [None; MAX_HITS];
        let hits = self.active_fields().filter(|f| f.overlaps(start, end));
        for (n, f) in hits.enumerate() {
            // More hits would mean overlapping fields: refuse, do not guess.
            *out.get_mut(n).ok_or(PciifError::OpFailed)? = Some(f);
        }
        Ok(out)
    }

    /// The field's value as `(virtual, hardware_bits)`: the guest sees the
    /// hardware value in `hardware_bits` and `virtual` elsewhere. Both are in
    /// field coordinates and limited to the field's width.
    fn field_bits(&self, f: &Field) -> (u32, u32) {
        let all = f.size.value_mask();
        let bar = |slot: usize| self.bars.get(slot).map_or(0, |b| b.shown());
        let (virt, hw) = match f.kind {
            Kind::VendorId => (u32::from(self.vendor), 0),
            Kind::DeviceId => (u32::from(self.device), 0),
            Kind::IrqLine => (u32::from(self.irq_line), 0),
            Kind::Command => (u32::from(self.cmd), u32::from(CMD_GUEST)),
            Kind::Bar(n) => (bar(usize::from(n)), 0),
            Kind::Rom => (bar(ROM_SLOT), 0),
            Kind::PmCaps => (0, all & !u32::from(PM_CAP_PME_MASK)),
            Kind::ReadOnly
            | Kind::ReadWrite
            | Kind::Masked(_)
            | Kind::Bist
            | Kind::PmCtrl
            | Kind::VpdAddr
            | Kind::MsiFlags(_) => (0, all),
        };
        (virt & all, hw & all)
    }

    /// Guest read of `size` bytes at `offset`.
    ///
    /// One hardware read of the same bytes, merged with the fields it overlaps, or none if
    /// every byte of it is in a field whose value the backend keeps (the IDs, the BARs and the
    /// ROM, the Interrupt Line): the hardware's value would be thrown away. Such a read still
    /// fails on a device the PCI core knows is gone, as the hardware read would.
    ///
    /// On error the guest gets the error and a value of 0 (the protocol layer
    /// fills that in).
    pub(crate) fn read<I: ConfigIo>(
        &self,
        io: &mut I,
        offset: u16,
        size: AccessSize,
    ) -> Result<u32, PciifError> {
        let end = access_end(offset, size)?;
        let hits = self.hits(offset, end)?;
        // The bits of the value the hardware gives: those of bytes no field covers, and the
        // hardware bits of the fields.
        let mut from_hw = size.value_mask();
        for f in hits.iter().flatten() {
            let f_end = f.end().ok_or(PciifError::OpFailed)?;
            let (_, hw_bits) = self.field_bits(f);
            let bytes = overlap_mask(offset, end, f.offset, f_end);
            from_hw = (from_hw & !bytes) | (relocate(hw_bits, f.offset, offset) & bytes);
        }
        let hw = if from_hw == 0 {
            io.check_connected()?;
            0
        } else {
            io.read(offset, size)? & size.value_mask()
        };
        let mut value = hw;
        for f in hits.iter().flatten() {
            let f_end = f.end().ok_or(PciifError::OpFailed)?;
            let (virt, hw_bits) = self.field_bits(f);
            let virt = relocate(virt, f.offset, offset);
            let hw_bits = relocate(hw_bits, f.offset, offset);
            let bytes = overlap_mask(offset, end, f.offset, f_end);
            let field_value = (hw & hw_bits) | (virt & !hw_bits);
            value = (value & !bytes) | (field_value & bytes);
        }
        Ok(value)
    }

    /// The value of the field `f` as the guest sees it (`cur`) and with the bytes of a guest
    /// write of `value` to `[offset, end)` merged in, limited to the field's width.
    fn merged<I: ConfigIo>(
        &self,
        io: &mut I,
        f: &Field,
        offset: u16,
        end: u16,
        value: u32,
    ) -> Result<(u32, u32), PciifError> {
        let f_end = f.end().ok_or(PciifError::OpFailed)?;
        let (virt, hw_bits) = self.field_bits(f);
        let cur = if hw_bits == 0 {
            virt
        } else {
            (io.read(f.offset, f.size)? & hw_bits) | (virt & !hw_bits)
        };
        let guest_bytes = overlap_mask(f.offset, f_end, offset, end);
        let merged = (cur & !guest_bytes) | (relocate(value, offset, f.offset) & guest_bytes);
        Ok((cur, merged & f.size.value_mask()))
    }

    /// Guest write of `size` bytes of `value` at `offset`, if it is plain: every field it
    /// overlaps drops writes, is read-write or is a quirk, and the bytes no field covers (if
    /// any) are written because the device or the backend (`global_permissive`) is
    /// permissive. Such a write changes nothing of the engine's state (it takes `&self`) and
    /// needs only `io`'s configuration accesses, none of [`DeviceControl`]'s calls into the PCI
    /// core, so it may be served where nothing may sleep (the event channel's interrupt).
    ///
    /// `None` if the write is not plain, before any access: [`VirtualConfig::write`] serves it.
    /// Otherwise the result of [`VirtualConfig::write_by_rules`], with the same accesses: an
    /// access that is not valid fails, touching nothing.
    pub(crate) fn write_plain<I: ConfigIo>(
        &self,
        io: &mut I,
        offset: u16,
        size: AccessSize,
        value: u32,
        global_permissive: bool,
    ) -> Option<Result<(), PciifError>> {
        let end = match access_end(offset, size) {
            Ok(end) => end,
            Err(e) => return Some(Err(e)),
        };
        let hits = match self.hits(offset, end) {
            Ok(hits) => hits,
            Err(e) => return Some(Err(e)),
        };
        // Everything is decided before the first access.
        let mut covered = 0u32;
        for f in hits.iter().flatten() {
            let Some(f_end) = f.end() else {
                return Some(Err(PciifError::OpFailed));
            };
            if !plain_write(f.kind) {
                return None;
            }
            covered |= overlap_mask(offset, end, f.offset, f_end);
        }
        let uncovered = size.value_mask() & !covered;
        if uncovered != 0 && !(self.permissive || global_permissive) {
            // Denied: counted, and explained to the administrator, by `write`.
            return None;
        }

        let value = value & size.value_mask();
        let write = |io: &mut I| -> Result<(), PciifError> {
            for f in hits.iter().flatten() {
                if drops_writes(f.kind) {
                    continue;
                }
                let (cur, new) = self.merged(io, f, offset, end, value)?;
                write_plain_field(io, f, cur, new)?;
            }
            if uncovered != 0 {
                write_bytes(io, offset, size, value, uncovered)?;
            }
            Ok(())
        };
        Some(write(io))
    }

    /// Guest write of `size` bytes of `value` at `offset`.
    ///
    /// Fields are handled in listing order and the first failing one ends the
    /// write (earlier fields stay written). A plain write is served by
    /// [`VirtualConfig::write_plain`], any other by
    /// [`VirtualConfig::write_by_rules`].
    pub(crate) fn write<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        offset: u16,
        size: AccessSize,
        value: u32,
    ) -> Result<WriteOutcome, PciifError> {
        let permissive = dev.global_permissive();
        if let Some(r) = self.write_plain(dev, offset, size, value, permissive) {
            return r.map(|()| WriteOutcome::Handled);
        }
        self.write_by_rules(dev, offset, size, value)
    }

    /// Guest write of `size` bytes of `value` at `offset` by the rule of every
    /// field it overlaps, plain or not: [`VirtualConfig::write`] for a write
    /// that is not plain. For a plain one it gives what
    /// [`VirtualConfig::write_plain`] gives (the host tests and the fuzz
    /// target compare them).
    pub(crate) fn write_by_rules<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        offset: u16,
        size: AccessSize,
        value: u32,
    ) -> Result<WriteOutcome, PciifError> {
        let end = access_end(offset, size)?;
        let value = value & size.value_mask();
        let mut covered = 0u32;
        for f in self.hits(offset, end)?.into_iter().flatten() {
            let f_end = f.end().ok_or(PciifError::OpFailed)?;
            covered |= overlap_mask(offset, end, f.offset, f_end);
            if drops_writes(f.kind) {
                continue;
            }
            let (cur, new) = self.merged(dev, &f, offset, end, value)?;
            self.write_field(dev, &f, cur, new)?;
        }

        let uncovered = size.value_mask() & !covered;
        if uncovered == 0 {
            return Ok(WriteOutcome::Handled);
        }
        if self.permissive || dev.global_permissive() {
            write_bytes(dev, offset, size, value, uncovered)?;
            return Ok(WriteOutcome::Handled);
        }
        self.denied = self.denied.saturating_add(1);
        // CAST: `bytes_of` sets at most bits 0 to 3.
        let dropped = bytes_of(uncovered) as u8;
        let first = [1u8, 2, 4, 8]
            .into_iter()
            .zip(0u16..)
            .any(|(bit, i)| dropped & bit != 0 && !self.is_explained(offset.wrapping_add(i)));
        Ok(WriteOutcome::Dropped(Denied {
            offset,
            size,
            value,
            uncovered: dropped,
            first,
            count: self.denied,
        }))
    }

    /// Applies the write rule of `f`. `cur` is the field's value as the guest
    /// saw it; for every kind whose read is pure hardware it is the hardware
    /// value just read. `new` is `cur` with the guest's bytes merged in.
    fn write_field<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        f: &Field,
        cur: u32,
        new: u32,
    ) -> Result<(), PciifError> {
        match f.kind {
            Kind::VendorId | Kind::DeviceId | Kind::IrqLine | Kind::ReadOnly | Kind::PmCaps => {
                Ok(())
            }
            Kind::ReadWrite | Kind::Masked(_) => write_plain_field(dev, f, cur, new),
            Kind::Command => self.write_command(dev, new as u16),
            Kind::Bar(n) => self.write_bar(dev, usize::from(n), f.offset, new),
            Kind::Rom => self.write_bar(dev, ROM_SLOT, f.offset, new),
            Kind::Bist => {
                let (cur, new) = (cur as u8, new as u8);
                if (cur & !BIST_START) == (new & !BIST_START) || new == BIST_START {
                    dev.write(f.offset, f.size, u32::from(new))?;
                }
                Ok(())
            }
            Kind::PmCtrl => write_pm_ctrl(dev, f.offset, cur as u16, new as u16),
            Kind::VpdAddr => {
                if new as u16 & VPD_ADDR_F != 0 {
                    return Err(PciifError::AccessDenied);
                }
                Ok(dev.write(f.offset, f.size, new)?)
            }
            Kind::MsiFlags(ty) => self.write_msi_flags(dev, ty, f.offset, cur as u16, new as u16),
        }
    }

    /// Command register write.
    ///
    /// Memory/I-O decoding and bus mastering are requested from the PCI core
    /// (which never turns decoding off); the guest's value is kept as the
    /// virtual register. Only in permissive mode does the hardware get the
    /// guest's value, and then only its `CMD_GUEST` bits (XSA-120).
    fn write_command<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        value: u16,
    ) -> Result<(), PciifError> {
        let mut value = value;
        let decode = value & (CMD_IO | CMD_MEMORY) != 0;
        if !dev.is_enabled() && decode {
            dev.enable().map_err(|_| PciifError::OpFailed)?;
        } else if dev.is_enabled() && !decode {
            dev.disable();
        }

        let master = value & CMD_MASTER != 0;
        if master != dev.is_busmaster() {
            dev.set_master(master);
        }

        let old = self.cmd;
        if old & CMD_INVALIDATE == 0 && value & CMD_INVALIDATE != 0 {
            if dev.set_mwi().is_err() {
                value &= !CMD_INVALIDATE;
            }
        } else if old & CMD_INVALIDATE != 0 && value & CMD_INVALIDATE == 0 {
            dev.clear_mwi();
        }

        if self.allow_interrupt_control && (old ^ value) & CMD_INTX_DISABLE != 0 {
            dev.intx(value & CMD_INTX_DISABLE == 0);
        }

        self.cmd = value;

        if !(self.permissive || dev.global_permissive()) {
            return Ok(());
        }
        let hw = dev.read(COMMAND, AccessSize::Two)? as u16;
        let new = (value & CMD_GUEST) | (hw & !CMD_GUEST);
        if new != hw {
            dev.write(COMMAND, AccessSize::Two, u32::from(new))?;
        }
        Ok(())
    }

    /// BAR or ROM write: all ones (outside the flag bits) starts sizing;
    /// anything else ends it and is dropped, except that writing back exactly
    /// the virtual value re-programs a hardware register that lost it (after a
    /// reset). The guest can never move a BAR or toggle the ROM enable bit.
    fn write_bar<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        slot: usize,
        offset: u16,
        value: u32,
    ) -> Result<(), PciifError> {
        let bar = self.bars.get_mut(slot).ok_or(PciifError::OpFailed)?;
        if value | bar.flag_bits == u32::MAX {
            bar.sizing = true;
            return Ok(());
        }
        bar.sizing = false;
        if value == bar.val && bar.restorable {
            let val = bar.val;
            if dev.read(offset, AccessSize::Four)? != val {
                dev.write(offset, AccessSize::Four, val)?;
            }
        }
        Ok(())
    }

    /// MSI or MSI-X message control write.
    fn write_msi_flags<D: DeviceControl>(
        &mut self,
        dev: &mut D,
        ty: MsiType,
        offset: u16,
        old: u16,
        new: u16,
    ) -> Result<(), PciifError> {
        if self.permissive || dev.global_permissive() {
            return Ok(dev.write(offset, AccessSize::Two, u32::from(new))?);
        }
        if new == old {
            return Ok(());
        }
        let (enable, allowed, other) = match ty {
            MsiType::Msi => (
                MSI_FLAGS_ENABLE,
                MSI_FLAGS_ENABLE,
                self.caps.msix.map(|o| (o, MSIX_FLAGS_ENABLE)),
            ),
            MsiType::Msix => (
                MSIX_FLAGS_ENABLE,
                MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL,
                self.caps.msi.map(|o| (o, MSI_FLAGS_ENABLE)),
            ),
        };
        if !self.allow_interrupt_control || (new ^ old) & !allowed != 0 {
            return Err(PciifError::AccessDenied);
        }
        if new & enable != 0 {
            // Refuse while the other message-signalled type is on in the
            // hardware; INTx may still be on (Linux enables MSI first).
            if let Some((cap, bit)) = other {
                let flags = dev.read(u16::from(cap) + MSI_FLAGS, AccessSize::Two)?;
                if flags as u16 & bit != 0 {
                    return Err(PciifError::AccessDenied);
                }
            }
        }
        Ok(dev.write(offset, AccessSize::Two, u32::from(new))?)
    }
}

/// Applies the write rule of a read-write or quirk field `f` (whose `cur` and `new` are as in
/// [`VirtualConfig::write_field`]); any other field drops the write.
fn write_plain_field<I: ConfigIo>(
    io: &mut I,
    f: &Field,
    cur: u32,
    new: u32,
) -> Result<(), PciifError> {
    match f.kind {
        Kind::ReadWrite => Ok(io.write(f.offset, f.size, new)?),
        Kind::Masked(mask) if mask != 0 => {
            Ok(io.write(f.offset, f.size, (cur & !mask) | (new & mask))?)
        }
        _ => Ok(()),
    }
}

/// PM control/status write: PME status and data select go to the hardware,
/// the power state goes through the PCI core, everything else (PME enable in
/// particular: PMEs are shared with dom0) is dropped.
fn write_pm_ctrl<D: DeviceControl>(
    dev: &mut D,
    offset: u16,
    old: u16,
    new: u16,
) -> Result<(), PciifError> {
    const GUEST_BITS: u16 = PM_CTRL_PME_STATUS | PM_CTRL_DATA_SEL;
    if old & GUEST_BITS != new & GUEST_BITS {
        let value = (old & !GUEST_BITS) | (new & GUEST_BITS);
        dev.write(offset, AccessSize::Two, u32::from(value))?;
    }
    dev.set_power_state(PowerState::from_pmcsr(new))
        .map_err(|_| PciifError::AccessDenied)
}

/// Writes the bytes of `value` (an access of `size` at `offset`) selected by
/// `bytes` to the hardware, using the widest naturally aligned accesses.
fn write_bytes<I: ConfigIo>(
    io: &mut I,
    offset: u16,
    size: AccessSize,
    value: u32,
    bytes: u32,
) -> Result<(), PciifError> {
    if bytes == size.value_mask() {
        return Ok(io.write(offset, size, value)?);
    }
    let byte = |i: u16| relocate(bytes, 0, i) & 0xff != 0;
    let n = size.bytes();
    let mut i = 0u16;
    while i < n {
        if !byte(i) {
            i += 1;
            continue;
        }
        let at = offset.checked_add(i).ok_or(PciifError::InvalidOffset)?;
        let part = relocate(value, offset, at);
        if at % 2 == 0 && i + 1 < n && byte(i + 1) {
            io.write(at, AccessSize::Two, part & 0xffff)?;
            i += 2;
        } else {
            io.write(at, AccessSize::One, part & 0xff)?;
            i += 1;
        }
    }
    Ok(())
}
