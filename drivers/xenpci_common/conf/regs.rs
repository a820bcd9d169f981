// SPDX-License-Identifier: GPL-2.0

//! Configuration-space register offsets and bit masks used by the engine.
//!
//! Values are those of the PCI Local Bus and PCI Power Management
//! specifications (also found in `include/uapi/linux/pci_regs.h`). Only what
//! the engine uses is listed, so that no constant is dead in the kernel build.

/// Size of the (extended) configuration space of one function.
pub(crate) const CONFIG_SPACE_SIZE: u16 = 0x1000;
/// End of the standard (non-extended) configuration space.
pub(crate) const STD_CONFIG_SPACE_SIZE: u16 = 0x100;
/// First byte after the type-0/type-1 header; capabilities live above.
pub(crate) const HEADER_SIZE: u16 = 0x40;

/// Vendor ID, 16 bits.
pub(crate) const VENDOR_ID: u16 = 0x00;
/// Device ID, 16 bits.
pub(crate) const DEVICE_ID: u16 = 0x02;
/// Command register, 16 bits.
pub(crate) const COMMAND: u16 = 0x04;
/// Status register, 16 bits.
pub(crate) const STATUS: u16 = 0x06;
/// Cache line size, 8 bits.
pub(crate) const CACHE_LINE_SIZE: u16 = 0x0c;
/// Latency timer, 8 bits.
pub(crate) const LATENCY_TIMER: u16 = 0x0d;
/// Built-in self test, 8 bits.
pub(crate) const BIST: u16 = 0x0f;
/// First base address register.
pub(crate) const BAR0: u16 = 0x10;
/// Expansion ROM base address of a type-0 header.
pub(crate) const ROM_TYPE0: u16 = 0x30;
/// Capability list pointer (type 0 and type 1).
pub(crate) const CAPABILITY_LIST: u16 = 0x34;
/// Expansion ROM base address of a type-1 (bridge) header.
pub(crate) const ROM_TYPE1: u16 = 0x38;
/// Interrupt line, 8 bits.
pub(crate) const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin, 8 bits.
pub(crate) const INTERRUPT_PIN: u16 = 0x3d;

/// Command: respond to I/O space accesses.
pub(crate) const CMD_IO: u16 = 0x0001;
/// Command: respond to memory space accesses.
pub(crate) const CMD_MEMORY: u16 = 0x0002;
/// Command: bus mastering.
pub(crate) const CMD_MASTER: u16 = 0x0004;
/// Command: special cycles.
pub(crate) const CMD_SPECIAL: u16 = 0x0008;
/// Command: memory write and invalidate.
pub(crate) const CMD_INVALIDATE: u16 = 0x0010;
/// Command: VGA palette snooping.
pub(crate) const CMD_VGA_PALETTE: u16 = 0x0020;
/// Command: address/data stepping.
pub(crate) const CMD_WAIT: u16 = 0x0080;
/// Command: fast back-to-back writes.
pub(crate) const CMD_FAST_BACK: u16 = 0x0200;
/// Command: INTx emulation disable.
pub(crate) const CMD_INTX_DISABLE: u16 = 0x0400;
/// Command bits whose hardware value the guest sees and (only in permissive
/// mode) may change; every other bit is virtual.
pub(crate) const CMD_GUEST: u16 =
    CMD_MASTER | CMD_SPECIAL | CMD_INVALIDATE | CMD_VGA_PALETTE | CMD_WAIT | CMD_FAST_BACK;

/// Status: the function has a capability list.
pub(crate) const STATUS_CAP_LIST: u16 = 0x0010;

/// BIST: start the self test.
pub(crate) const BIST_START: u8 = 0x40;

/// BAR: I/O space indicator.
pub(crate) const BAR_SPACE_IO: u32 = 0x1;
/// BAR: memory type "64-bit".
pub(crate) const BAR_MEM_TYPE_64: u32 = 0x4;
/// BAR: prefetchable memory.
pub(crate) const BAR_MEM_PREFETCH: u32 = 0x8;
/// BAR: low bits of an I/O BAR that are not address bits.
pub(crate) const BAR_IO_FLAG_BITS: u32 = 0x3;
/// BAR: low bits of a memory BAR that are not address bits.
pub(crate) const BAR_MEM_FLAG_BITS: u32 = 0xf;
/// ROM BAR: enable bit.
pub(crate) const ROM_ENABLE: u32 = 0x1;
/// ROM BAR: low bits that are not address bits.
pub(crate) const ROM_FLAG_BITS: u32 = 0x7ff;

/// Capability ID of power management.
pub(crate) const CAP_ID_PM: u8 = 0x01;
/// Capability ID of vital product data.
pub(crate) const CAP_ID_VPD: u8 = 0x03;
/// Capability ID of MSI.
pub(crate) const CAP_ID_MSI: u8 = 0x05;
/// Capability ID of MSI-X.
pub(crate) const CAP_ID_MSIX: u8 = 0x11;
/// Maximum number of capabilities walked (same bound as the PCI core).
pub(crate) const CAP_WALK_TTL: usize = 48;

/// PM: capabilities register (relative to the capability).
pub(crate) const PM_PMC: u16 = 2;
/// PM: control/status register.
pub(crate) const PM_CTRL: u16 = 4;
/// PM: PCI-to-PCI bridge support extensions.
pub(crate) const PM_PPB_EXT: u16 = 6;
/// PM: data register.
pub(crate) const PM_DATA: u16 = 7;
/// PMC: the "PME supported from Dx" bits.
pub(crate) const PM_CAP_PME_MASK: u16 = 0xf800;
/// PMCSR: power state field.
pub(crate) const PM_CTRL_STATE_MASK: u16 = 0x0003;
/// PMCSR: PME enable.
pub(crate) const PM_CTRL_PME_ENABLE: u16 = 0x0100;
/// PMCSR: data select.
pub(crate) const PM_CTRL_DATA_SEL: u16 = 0x1e00;
/// PMCSR: PME status (write one to clear).
pub(crate) const PM_CTRL_PME_STATUS: u16 = 0x8000;

/// VPD: address register (relative to the capability).
pub(crate) const VPD_ADDR: u16 = 2;
/// VPD: data register.
pub(crate) const VPD_DATA: u16 = 4;
/// VPD address: the F (flag) bit; writing 1 starts a VPD write.
pub(crate) const VPD_ADDR_F: u16 = 0x8000;

/// MSI and MSI-X: message control register (relative to the capability).
pub(crate) const MSI_FLAGS: u16 = 2;
/// MSI message control: enable.
pub(crate) const MSI_FLAGS_ENABLE: u16 = 0x0001;
/// MSI-X message control: function mask.
pub(crate) const MSIX_FLAGS_MASKALL: u16 = 0x4000;
/// MSI-X message control: enable.
pub(crate) const MSIX_FLAGS_ENABLE: u16 = 0x8000;
