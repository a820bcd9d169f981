// SPDX-License-Identifier: GPL-2.0

//! Host tests of the configuration-space engine against a fake function with
//! a 4 KiB configuration space that records every hardware access and every
//! kernel request.

use std::format;
use std::vec;
use std::vec::Vec;

use super::fields::{
    cap_extent, Field, Kind, CAP_MSI, CAP_MSIX, CAP_PM, CAP_TABLES, CAP_VPD, HEADER_COMMON,
    HEADER_TYPE0, HEADER_TYPE1,
};
use super::regs::*;
use super::*;

use AccessSize::{Four, One, Two};

/// A kernel request recorded by the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Enable,
    Disable,
    Master(bool),
    SetMwi,
    ClearMwi,
    Intx(bool),
    Power(PowerState),
}

/// A fake function.
#[derive(Clone)]
struct Fake {
    cfg: Vec<u8>,
    writes: Vec<(u16, AccessSize, u32)>,
    reads: usize,
    actions: Vec<Action>,
    enabled: bool,
    busmaster: bool,
    enable_fails: bool,
    mwi_fails: bool,
    power_fails: bool,
    global_permissive: bool,
    fail_read: Option<(u16, HwError)>,
    fail_write: Option<(u16, HwError)>,
    /// The PCI core knows the function is gone: every read fails.
    gone: bool,
}

impl Fake {
    fn new() -> Self {
        Self {
            cfg: vec![0; 4096],
            writes: Vec::new(),
            reads: 0,
            actions: Vec::new(),
            enabled: false,
            busmaster: false,
            enable_fails: false,
            mwi_fails: false,
            power_fails: false,
            global_permissive: false,
            fail_read: None,
            fail_write: None,
            gone: false,
        }
    }

    fn get(&self, off: u16, size: AccessSize) -> u32 {
        let off = usize::from(off);
        (0..usize::from(size.bytes()))
            .fold(0u32, |v, i| v | u32::from(self.cfg[off + i]) << (8 * i))
    }

    fn set(&mut self, off: u16, size: AccessSize, value: u32) {
        let off = usize::from(off);
        for i in 0..usize::from(size.bytes()) {
            self.cfg[off + i] = (value >> (8 * i)) as u8;
        }
    }

    fn check(off: u16, size: AccessSize) {
        assert_eq!(
            off % size.bytes(),
            0,
            "engine issued misaligned access {off:#x}"
        );
        assert!(
            off + size.bytes() <= 0x1000,
            "engine issued access past 4 KiB"
        );
    }

    fn hits(fail: Option<(u16, HwError)>, off: u16, size: AccessSize) -> Option<HwError> {
        fail.filter(|(o, _)| *o >= off && *o < off + size.bytes())
            .map(|(_, e)| e)
    }

    fn clear_logs(&mut self) {
        self.writes.clear();
        self.actions.clear();
        self.reads = 0;
    }

    fn cmd(&self) -> u16 {
        self.get(COMMAND, Two) as u16
    }

    fn set_cmd_bits(&mut self, bits: u16, on: bool) {
        let c = self.cmd();
        let c = if on { c | bits } else { c & !bits };
        self.set(COMMAND, Two, u32::from(c));
    }
}

impl ConfigIo for Fake {
    fn read(&mut self, offset: u16, size: AccessSize) -> Result<u32, HwError> {
        Self::check(offset, size);
        self.reads += 1;
        self.check_connected()?;
        if let Some(e) = Self::hits(self.fail_read, offset, size) {
            return Err(e);
        }
        Ok(self.get(offset, size))
    }

    fn check_connected(&self) -> Result<(), HwError> {
        if self.gone {
            Err(HwError::DeviceNotFound)
        } else {
            Ok(())
        }
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Result<(), HwError> {
        Self::check(offset, size);
        assert_eq!(value & !size.value_mask(), 0, "value wider than the access");
        if let Some(e) = Self::hits(self.fail_write, offset, size) {
            return Err(e);
        }
        self.writes.push((offset, size, value));
        self.set(offset, size, value);
        Ok(())
    }
}

impl DeviceControl for Fake {
    fn is_enabled(&self) -> bool {
        self.enabled
    }
    fn enable(&mut self) -> Result<(), HwError> {
        self.actions.push(Action::Enable);
        if self.enable_fails {
            return Err(HwError::Other);
        }
        self.enabled = true;
        self.set_cmd_bits(CMD_MEMORY | CMD_IO, true);
        Ok(())
    }
    fn disable(&mut self) {
        // Like pci_disable_device(): clears bus mastering, never decoding.
        self.actions.push(Action::Disable);
        self.enabled = false;
        self.busmaster = false;
        self.set_cmd_bits(CMD_MASTER, false);
    }
    fn is_busmaster(&self) -> bool {
        self.busmaster
    }
    fn set_master(&mut self, on: bool) {
        self.actions.push(Action::Master(on));
        self.busmaster = on;
        self.set_cmd_bits(CMD_MASTER, on);
    }
    fn set_mwi(&mut self) -> Result<(), HwError> {
        self.actions.push(Action::SetMwi);
        if self.mwi_fails {
            return Err(HwError::Other);
        }
        self.set_cmd_bits(CMD_INVALIDATE, true);
        Ok(())
    }
    fn clear_mwi(&mut self) {
        self.actions.push(Action::ClearMwi);
        self.set_cmd_bits(CMD_INVALIDATE, false);
    }
    fn intx(&mut self, enable: bool) {
        self.actions.push(Action::Intx(enable));
        self.set_cmd_bits(CMD_INTX_DISABLE, !enable);
    }
    fn set_power_state(&mut self, state: PowerState) -> Result<(), HwError> {
        self.actions.push(Action::Power(state));
        if self.power_fails {
            return Err(HwError::Other);
        }
        let pm = u16::from(PM) + PM_CTRL;
        let v = self.get(pm, Two) & !u32::from(PM_CTRL_STATE_MASK);
        let s = match state {
            PowerState::D0 => 0,
            PowerState::D1 => 1,
            PowerState::D2 => 2,
            PowerState::D3Hot => 3,
        };
        self.set(pm, Two, v | s);
        Ok(())
    }
    fn global_permissive(&self) -> bool {
        self.global_permissive
    }
}

// The standard test device.
const PM: u8 = 0x40;
const MSI: u8 = 0x50;
const MSIX: u8 = 0x70;
const VPD: u8 = 0x80;
const PCIE: u8 = 0x90;
const HW_CMD: u16 = CMD_MEMORY | CMD_MASTER | CMD_SPECIAL | CMD_PARITY;
const CMD_PARITY: u16 = 0x0040;
const CMD_SERR: u16 = 0x0100;

const BAR0_START: u64 = 0xfe00_0000;
const BAR1_START: u64 = 0xe000;
const BAR2_START: u64 = 0x3_8000_0000;
const ROM_START: u64 = 0xfe10_0000;

fn std_info() -> DeviceInfo {
    let mut bars = [BarResource::default(); 6];
    bars[0] = BarResource {
        start: BAR0_START,
        size: 0x1_0000,
        ty: BarType::Mem32,
        prefetch: false,
        present: true,
    };
    bars[1] = BarResource {
        start: BAR1_START,
        size: 0x20,
        ty: BarType::Io,
        prefetch: false,
        present: true,
    };
    bars[2] = BarResource {
        start: BAR2_START,
        size: 0x2000_0000,
        ty: BarType::Mem64,
        prefetch: true,
        present: true,
    };
    // bars[3] is the upper half (left empty, as the kernel does);
    // bars[4] is absent; bars[5] is a resource dom0 did not assign.
    bars[5] = BarResource {
        start: 0xdead_0000,
        size: 0x1000,
        ty: BarType::Mem32,
        prefetch: false,
        present: false,
    };
    DeviceInfo {
        vendor: 0x8086,
        device: 0x10ca,
        header_type: 0x80, // multi-function type 0
        irq: 28,
        bars,
        rom: RomResource {
            start: ROM_START,
            size: 0x1_0000,
            enabled: false,
            present: true,
        },
        caps: CapOffsets {
            pm: Some(PM),
            vpd: Some(VPD),
            msi: Some(MSI),
            msix: Some(MSIX),
        },
        permissive: false,
        allow_interrupt_control: false,
    }
}

fn std_fake() -> Fake {
    let mut f = Fake::new();
    f.set(VENDOR_ID, Two, 0xffff); // a VF: the hardware has no vendor ID
    f.set(DEVICE_ID, Two, 0xffff);
    f.set(COMMAND, Two, u32::from(HW_CMD));
    f.set(STATUS, Two, u32::from(STATUS_CAP_LIST) | 0x0200);
    f.set(0x08, Four, 0x0200_0001); // class/revision
    f.set(CACHE_LINE_SIZE, One, 0x10);
    f.set(LATENCY_TIMER, One, 0x20);
    f.set(0x0e, One, 0x80);
    f.set(BIST, One, 0x80);
    f.set(BAR0, Four, BAR0_START as u32);
    f.set(BAR0 + 4, Four, BAR1_START as u32 | 1);
    f.set(BAR0 + 8, Four, BAR2_START as u32 | 0xc);
    f.set(BAR0 + 12, Four, (BAR2_START >> 32) as u32);
    f.set(BAR0 + 20, Four, 0x1234_5000);
    f.set(0x2c, Four, 0x0001_8086); // subsystem
    f.set(ROM_TYPE0, Four, ROM_START as u32);
    f.set(CAPABILITY_LIST, One, u32::from(PM));
    f.set(INTERRUPT_LINE, One, 0x0b);
    f.set(INTERRUPT_PIN, One, 0x01);
    f.set(0x3e, Two, 0x0a05);
    // PM: PMC with PME support from every state, PMCSR with PME enabled.
    f.set(
        u16::from(PM),
        Two,
        u32::from(MSI) << 8 | u32::from(CAP_ID_PM),
    );
    f.set(u16::from(PM) + PM_PMC, Two, 0xfe03);
    f.set(u16::from(PM) + PM_CTRL, Two, 0x0108);
    f.set(u16::from(PM) + PM_PPB_EXT, One, 0x00);
    f.set(u16::from(PM) + PM_DATA, One, 0x55);
    // MSI, 64-bit, multiple message capable.
    f.set(
        u16::from(MSI),
        Two,
        u32::from(MSIX) << 8 | u32::from(CAP_ID_MSI),
    );
    f.set(u16::from(MSI) + MSI_FLAGS, Two, 0x0086);
    f.set(u16::from(MSI) + 4, Four, 0xfee0_0000);
    // MSI-X with 64 entries.
    f.set(
        u16::from(MSIX),
        Two,
        u32::from(VPD) << 8 | u32::from(CAP_ID_MSIX),
    );
    f.set(u16::from(MSIX) + MSI_FLAGS, Two, 0x003f);
    f.set(u16::from(MSIX) + 4, Four, 0x0000_2000);
    // VPD.
    f.set(
        u16::from(VPD),
        Two,
        u32::from(PCIE) << 8 | u32::from(CAP_ID_VPD),
    );
    f.set(u16::from(VPD) + VPD_ADDR, Two, 0x0000);
    f.set(u16::from(VPD) + VPD_DATA, Four, 0x1122_3344);
    // PCI Express, not virtualised.
    f.set(u16::from(PCIE), Two, 0x10);
    f.set(u16::from(PCIE) + 8, Two, 0x2810); // DEVCTL
                                             // An extended capability.
    f.set(0x100, Four, 0x1401_0001);
    f
}

fn seize_with(f: &mut Fake, info: &DeviceInfo) -> VirtualConfig {
    let vc = VirtualConfig::new(f, info).expect("seize");
    f.clear_logs();
    vc
}

fn std_dev() -> (Fake, VirtualConfig) {
    let mut f = std_fake();
    let vc = seize_with(&mut f, &std_info());
    (f, vc)
}

fn rd(vc: &VirtualConfig, f: &mut Fake, off: u16, size: AccessSize) -> u32 {
    vc.read(f, off, size).expect("read")
}

fn wro(vc: &mut VirtualConfig, f: &mut Fake, off: u16, size: AccessSize, v: u32) -> WriteOutcome {
    vc.write(f, off, size, v).expect("write")
}

/// For a dropped write, whether it is to be explained; `None` if handled.
fn first_of(out: WriteOutcome) -> Option<bool> {
    match out {
        WriteOutcome::Handled => None,
        WriteOutcome::Dropped(d) => Some(d.first),
    }
}

/// A write the glue explains when it is to be: whether it was explained.
fn explained(vc: &mut VirtualConfig, f: &mut Fake, off: u16, size: AccessSize, v: u32) -> bool {
    match wro(vc, f, off, size, v) {
        WriteOutcome::Dropped(d) if d.first => {
            vc.mark_explained(&d);
            true
        }
        _ => false,
    }
}

fn wr(vc: &mut VirtualConfig, f: &mut Fake, off: u16, size: AccessSize, v: u32) {
    let _ = wro(vc, f, off, size, v);
}

/// All fields of a table list, made absolute.
fn all_overlap_free(list: &[Field]) {
    for (i, a) in list.iter().enumerate() {
        for b in list.iter().skip(i + 1) {
            let b_end = b.end().unwrap();
            assert!(!a.overlaps(b.offset, b_end), "{a:?} overlaps {b:?}");
        }
    }
}

fn absolute(base: u8, table: &[Field]) -> Vec<Field> {
    table
        .iter()
        .map(|f| f.at(u16::from(base)).unwrap())
        .collect()
}

// ---------------------------------------------------------------- tables

#[test]
fn tables_are_aligned_and_sized() {
    let tables: [&[Field]; 7] = [
        &HEADER_COMMON,
        &HEADER_TYPE0,
        &HEADER_TYPE1,
        &CAP_PM,
        &CAP_VPD,
        &CAP_MSI,
        &CAP_MSIX,
    ];
    for t in tables {
        for f in t {
            assert_eq!(f.offset % f.size.bytes(), 0, "{f:?} misaligned");
            assert!(f.end().is_some());
        }
    }
}

#[test]
fn type0_header_tables_do_not_overlap() {
    let all: Vec<Field> = HEADER_COMMON
        .iter()
        .chain(HEADER_TYPE0.iter())
        .copied()
        .collect();
    all_overlap_free(&all);
    assert!(all.iter().all(|f| f.end().unwrap() <= HEADER_SIZE));
}

#[test]
fn type1_header_tables_do_not_overlap() {
    let all: Vec<Field> = HEADER_COMMON
        .iter()
        .chain(HEADER_TYPE1.iter())
        .copied()
        .collect();
    all_overlap_free(&all);
    assert!(all.iter().all(|f| f.end().unwrap() <= HEADER_SIZE));
}

#[test]
fn capability_tables_start_with_read_only_header_and_do_not_overlap() {
    for (id, table) in CAP_TABLES.iter() {
        assert_eq!(table[0], Field::new(0, Two, Kind::ReadOnly), "cap {id:#x}");
        all_overlap_free(table);
        assert!(table.iter().all(|f| f.end().unwrap() <= cap_extent(*id)));
    }
    assert_eq!(cap_extent(CAP_ID_PM), 8);
    assert_eq!(cap_extent(CAP_ID_VPD), 8);
    assert_eq!(cap_extent(CAP_ID_MSI), 4);
    assert_eq!(cap_extent(CAP_ID_MSIX), 4);
    assert_eq!(cap_extent(0x10), 0);
}

#[test]
fn tightly_packed_capabilities_do_not_overlap() {
    // Each capability right after the previous one's extent.
    let mut off = 0x40u8;
    let mut all = Vec::new();
    for (id, table) in CAP_TABLES.iter() {
        all.extend(absolute(off, table));
        off += cap_extent(*id) as u8;
    }
    all.extend(HEADER_COMMON.iter().chain(HEADER_TYPE0.iter()).copied());
    all_overlap_free(&all);
}

#[test]
fn active_fields_of_a_device_do_not_overlap() {
    let (_, mut vc) = std_dev();
    vc.add_quirk(0xa0, 4, 0xffff_ffff).unwrap();
    vc.add_quirk(0x100, 2, 0xff).unwrap();
    let all: Vec<Field> = vc.active_fields().collect();
    all_overlap_free(&all);
    assert_eq!(all.len(), 8 + 7 + 3 + 5 + 2 + 2 + 2);
}

// ---------------------------------------------------------------- seize

#[test]
fn seize_clears_pme_enable_and_keeps_other_bits() {
    let mut f = std_fake();
    VirtualConfig::new(&mut f, &std_info()).unwrap();
    assert_eq!(f.get(u16::from(PM) + PM_CTRL, Two), 0x0008);
    assert_eq!(f.writes, vec![(u16::from(PM) + PM_CTRL, Two, 0x0008)]);
}

#[test]
fn seize_does_not_write_when_pme_already_disabled() {
    let mut f = std_fake();
    f.set(u16::from(PM) + PM_CTRL, Two, 0x0008);
    VirtualConfig::new(&mut f, &std_info()).unwrap();
    assert!(f.writes.is_empty());
}

#[test]
fn seize_rejects_unsupported_header_types() {
    let mut f = std_fake();
    let mut info = std_info();
    info.header_type = 0x02;
    assert_eq!(
        VirtualConfig::new(&mut f, &info).err(),
        Some(SeizeError::UnsupportedHeaderType(2))
    );
    info.header_type = 0x81;
    assert_eq!(
        VirtualConfig::new(&mut f, &info).unwrap().header_type(),
        HeaderType::Bridge
    );
}

#[test]
fn seize_rejects_bad_capability_offsets() {
    let cases = [
        CapOffsets {
            pm: Some(0x3c),
            ..CapOffsets::default()
        },
        CapOffsets {
            msi: Some(0x42),
            ..CapOffsets::default()
        },
        CapOffsets {
            vpd: Some(0xfc),
            ..CapOffsets::default()
        },
        CapOffsets {
            pm: Some(0x40),
            msi: Some(0x44),
            ..CapOffsets::default()
        },
        CapOffsets {
            msi: Some(0x60),
            msix: Some(0x60),
            ..CapOffsets::default()
        },
    ];
    for caps in cases {
        let mut f = std_fake();
        let info = DeviceInfo { caps, ..std_info() };
        assert!(
            matches!(
                VirtualConfig::new(&mut f, &info),
                Err(SeizeError::BadCapability(_))
            ),
            "{caps:?}"
        );
    }
    // Packed back to back is fine.
    let mut f = std_fake();
    let caps = CapOffsets {
        pm: Some(0x40),
        msi: Some(0x48),
        msix: Some(0x4c),
        vpd: Some(0xf8),
    };
    assert!(VirtualConfig::new(&mut f, &DeviceInfo { caps, ..std_info() }).is_ok());
}

#[test]
fn seize_hardware_failure_is_reported() {
    let mut f = std_fake();
    f.fail_read = Some((COMMAND, HwError::DeviceNotFound));
    assert_eq!(
        VirtualConfig::new(&mut f, &std_info()).err(),
        Some(SeizeError::Hw(HwError::DeviceNotFound))
    );
}

#[test]
fn discover_walks_the_capability_list() {
    let mut f = std_fake();
    let caps = CapOffsets::discover(&mut f, 0).unwrap();
    assert_eq!(caps, std_info().caps);
    // No capability list bit: nothing.
    f.set(STATUS, Two, 0);
    assert_eq!(
        CapOffsets::discover(&mut f, 0).unwrap(),
        CapOffsets::default()
    );
    // Cardbus: not walked.
    let mut f = std_fake();
    assert_eq!(
        CapOffsets::discover(&mut f, 2).unwrap(),
        CapOffsets::default()
    );
}

#[test]
fn discover_terminates_on_a_looping_list_and_keeps_first_match() {
    let mut f = std_fake();
    // PM at 0x40 -> MSI at 0x50 -> a second PM at 0x60 -> back to 0x40.
    f.set(0x50, Two, 0x6000 | u32::from(CAP_ID_MSI));
    f.set(0x60, Two, 0x4300 | u32::from(CAP_ID_PM)); // low bits of next are ignored
    let caps = CapOffsets::discover(&mut f, 0).unwrap();
    assert_eq!(
        caps,
        CapOffsets {
            pm: Some(0x40),
            msi: Some(0x50),
            ..CapOffsets::default()
        }
    );
    assert!(f.reads < 60, "walk is bounded: {} reads", f.reads);
}

#[test]
fn cap_offsets_from_list_keeps_first_occurrence() {
    let caps = CapOffsets::from_list(&[(0x10, 0x40), (0x05, 0x50), (0x05, 0x60), (0x01, 0x70)]);
    assert_eq!(
        caps,
        CapOffsets {
            pm: Some(0x70),
            msi: Some(0x50),
            ..CapOffsets::default()
        }
    );
}

// ---------------------------------------------------------------- vendor/device

#[test]
fn vendor_and_device_are_emulated_for_every_size_and_offset() {
    let (mut f, vc) = std_dev();
    assert_eq!(rd(&vc, &mut f, 0, Four), 0x10ca_8086);
    assert_eq!(rd(&vc, &mut f, 0, Two), 0x8086);
    assert_eq!(rd(&vc, &mut f, 2, Two), 0x10ca);
    let bytes: Vec<u32> = (0..4).map(|o| rd(&vc, &mut f, o, One)).collect();
    assert_eq!(bytes, vec![0x86, 0x80, 0xca, 0x10]);
}

#[test]
fn vendor_and_device_writes_are_dropped() {
    let (mut f, mut vc) = std_dev();
    for (off, size) in [(0, Four), (0, Two), (2, Two), (1, One), (3, One)] {
        assert_eq!(
            wro(&mut vc, &mut f, off, size, 0x1234_5678),
            WriteOutcome::Handled
        );
    }
    assert!(f.writes.is_empty());
    assert_eq!(rd(&vc, &mut f, 0, Four), 0x10ca_8086);
}

// ---------------------------------------------------------------- multi-field reads

#[test]
fn dword_read_merges_several_fields() {
    let (mut f, vc) = std_dev();
    // 0x0c: cache line (hw), latency (hw), header type (no field), BIST (hw).
    assert_eq!(rd(&vc, &mut f, 0x0c, Four), 0x8080_2010);
    // 0x3c: line (emulated 28), pin (hw), min_gnt/max_lat (no field).
    assert_eq!(rd(&vc, &mut f, 0x3c, Four), 0x0a05_011c);
    // Unvirtualised registers read straight through.
    assert_eq!(rd(&vc, &mut f, 0x08, Four), 0x0200_0001);
    assert_eq!(rd(&vc, &mut f, 0x2c, Four), 0x0001_8086);
}

#[test]
fn read_does_a_single_hardware_access() {
    let (mut f, vc) = std_dev();
    // The IDs, the six BARs and the ROM: every byte is the backend's.
    let kept = |off: u16| off == VENDOR_ID || (BAR0..=BAR0 + 20).contains(&off) || off == ROM_TYPE0;
    for off in (0..0x100).step_by(4) {
        f.reads = 0;
        rd(&vc, &mut f, off, Four);
        let want = if kept(off) { 0 } else { 1 };
        assert_eq!(f.reads, want, "offset {off:#x}");
    }
}

#[test]
fn reads_of_kept_bytes_alone_do_not_reach_the_device() {
    let (mut f, vc) = std_dev();
    f.cfg[0..4].copy_from_slice(&[0xff; 4]);
    f.cfg[0x3c] = 0xff;
    for (off, size) in [
        (VENDOR_ID, Two),
        (DEVICE_ID, Two),
        (DEVICE_ID + 1, One),
        (INTERRUPT_LINE, One),
        (BAR0 + 2, Two),
    ] {
        f.reads = 0;
        rd(&vc, &mut f, off, size);
        assert_eq!(f.reads, 0, "{off:#x}/{size:?}");
    }
    // What the device says is not what the guest sees: the kept values.
    assert_eq!(rd(&vc, &mut f, VENDOR_ID, Four), 0x10ca_8086);
    assert_eq!(rd(&vc, &mut f, INTERRUPT_LINE, One), 28);
    // A byte of the device's own in the access: one read of all of it.
    f.reads = 0;
    assert_eq!(rd(&vc, &mut f, INTERRUPT_LINE, Two) & 0xff, 28);
    assert_eq!(f.reads, 1);
}

#[test]
fn byte_reads_of_the_command_register() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_INTX_DISABLE | CMD_MEMORY),
    );
    let word = rd(&vc, &mut f, COMMAND, Two);
    assert_eq!(rd(&vc, &mut f, 0x04, One), word & 0xff);
    assert_eq!(rd(&vc, &mut f, 0x05, One), word >> 8);
    assert_eq!(rd(&vc, &mut f, 0x05, One), 0x04);
}

#[test]
fn dword_read_at_command_includes_hardware_status() {
    let (mut f, vc) = std_dev();
    let v = rd(&vc, &mut f, COMMAND, Four);
    assert_eq!(v >> 16, 0x0210);
    assert_eq!(v & 0xffff, u32::from(HW_CMD));
}

// ---------------------------------------------------------------- command

#[test]
fn command_read_shows_guest_bits_from_hardware_and_the_rest_virtual() {
    let (mut f, vc) = std_dev();
    // Hardware changes behind the guest's back: guest bits follow, others do not.
    f.set(COMMAND, Two, u32::from(CMD_WAIT | CMD_IO | CMD_SERR));
    let v = rd(&vc, &mut f, COMMAND, Two) as u16;
    assert_eq!(v, CMD_WAIT | (HW_CMD & !CMD_GUEST));
}

#[test]
fn the_command_register_from_before_the_glues_enable() {
    // Seized with decoding on (the glue's enable), taken as it was before it.
    let (mut f, mut vc) = std_dev();
    vc.set_seized_command(HW_CMD & !(CMD_MEMORY | CMD_IO));
    let shown = |vc: &VirtualConfig, f: &mut Fake| rd(vc, f, COMMAND, Two) as u16;
    assert_eq!(shown(&vc, &mut f) & (CMD_MEMORY | CMD_IO), 0);
    assert_eq!(shown(&vc, &mut f) & CMD_GUEST, HW_CMD & CMD_GUEST);
    // The guest's first enable is one, and a release puts the value back.
    wr(&mut vc, &mut f, COMMAND, Two, u32::from(CMD_MEMORY));
    assert_eq!(f.actions, vec![Action::Enable]);
    vc.reset_on_release();
    assert_eq!(shown(&vc, &mut f) & (CMD_MEMORY | CMD_IO), 0);
}

#[test]
fn command_memory_on_requests_enable_once() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, COMMAND, Two, u32::from(CMD_MEMORY));
    assert_eq!(f.actions, vec![Action::Enable]);
    f.actions.clear();
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_MEMORY | CMD_IO),
    );
    assert!(f.actions.is_empty(), "already enabled: {:?}", f.actions);
}

#[test]
fn command_io_on_requests_enable() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, COMMAND, Two, u32::from(CMD_IO));
    assert_eq!(f.actions, vec![Action::Enable]);
    assert!(
        f.writes.is_empty(),
        "non-permissive: no direct hardware write"
    );
}

#[test]
fn command_decode_off_requests_disable_but_hardware_keeps_decoding() {
    let (mut f, mut vc) = std_dev();
    f.enabled = true;
    wr(&mut vc, &mut f, COMMAND, Two, 0);
    assert_eq!(f.actions, vec![Action::Disable]);
    assert_ne!(f.cmd() & CMD_MEMORY, 0, "XSA-120: memory decoding stays on");
    assert_eq!(
        rd(&vc, &mut f, COMMAND, Two) as u16 & CMD_MEMORY,
        0,
        "guest sees it off"
    );
}

#[test]
fn command_enable_failure_is_reported_and_state_kept() {
    let (mut f, mut vc) = std_dev();
    f.enable_fails = true;
    let before = rd(&vc, &mut f, COMMAND, Two);
    assert_eq!(
        vc.write(&mut f, COMMAND, Two, u32::from(CMD_MEMORY | CMD_SERR)),
        Err(PciifError::OpFailed)
    );
    assert_eq!(rd(&vc, &mut f, COMMAND, Two), before);
}

#[test]
fn command_master_set_and_clear() {
    let (mut f, mut vc) = std_dev();
    f.enabled = true;
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_MEMORY | CMD_MASTER),
    );
    assert_eq!(f.actions, vec![Action::Master(true)]);
    f.actions.clear();
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_MEMORY | CMD_MASTER),
    );
    assert!(f.actions.is_empty());
    wr(&mut vc, &mut f, COMMAND, Two, u32::from(CMD_MEMORY));
    assert_eq!(f.actions, vec![Action::Master(false)]);
    assert_eq!(f.cmd() & CMD_MASTER, 0);
}

#[test]
fn command_mwi_set_clear_and_failure() {
    let (mut f, mut vc) = std_dev();
    f.enabled = true;
    let base = u32::from(CMD_MEMORY);
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        base | u32::from(CMD_INVALIDATE),
    );
    assert_eq!(f.actions, vec![Action::SetMwi]);
    f.actions.clear();
    wr(&mut vc, &mut f, COMMAND, Two, base);
    assert_eq!(f.actions, vec![Action::ClearMwi]);
    f.actions.clear();
    f.mwi_fails = true;
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        base | u32::from(CMD_INVALIDATE),
    );
    assert_eq!(f.actions, vec![Action::SetMwi]);
    assert_eq!(
        vc.cmd & CMD_INVALIDATE,
        0,
        "failed MWI is not recorded as on"
    );
    f.actions.clear();
    wr(&mut vc, &mut f, COMMAND, Two, base);
    assert!(f.actions.is_empty(), "nothing to clear");
}

#[test]
fn command_intx_needs_allow_interrupt_control() {
    let (mut f, mut vc) = std_dev();
    f.enabled = true;
    let keep = u32::from(CMD_MEMORY);
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        keep | u32::from(CMD_INTX_DISABLE),
    );
    assert!(f.actions.is_empty());
    assert_eq!(f.cmd() & CMD_INTX_DISABLE, 0, "hardware untouched");
    // Virtual bit is still recorded.
    assert_ne!(rd(&vc, &mut f, COMMAND, Two) as u16 & CMD_INTX_DISABLE, 0);

    vc.set_allow_interrupt_control(true);
    wr(&mut vc, &mut f, COMMAND, Two, keep);
    assert_eq!(f.actions, vec![Action::Intx(true)]);
    f.actions.clear();
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        keep | u32::from(CMD_INTX_DISABLE),
    );
    assert_eq!(f.actions, vec![Action::Intx(false)]);
    assert_ne!(f.cmd() & CMD_INTX_DISABLE, 0);
}

#[test]
fn command_byte_write_to_high_half_only_touches_intx() {
    let (mut f, mut vc) = std_dev();
    f.enabled = true;
    f.busmaster = true;
    vc.set_allow_interrupt_control(true);
    wr(&mut vc, &mut f, 0x05, One, u32::from(CMD_INTX_DISABLE >> 8));
    assert_eq!(f.actions, vec![Action::Intx(false)]);
    assert_eq!(
        rd(&vc, &mut f, COMMAND, Two) as u16,
        HW_CMD | CMD_INTX_DISABLE
    );
}

#[test]
fn command_non_permissive_never_writes_hardware_directly() {
    let (mut f, mut vc) = std_dev();
    for v in [0u32, 0xffff, 0x0400, 0x0007, 0x02bc] {
        wr(&mut vc, &mut f, COMMAND, Two, v);
    }
    assert!(f.writes.is_empty(), "{:?}", f.writes);
}

#[test]
fn command_permissive_writes_only_guest_bits() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    f.enabled = true;
    f.busmaster = true;
    // Guest clears everything: memory decoding must stay, guest bits follow.
    wr(&mut vc, &mut f, COMMAND, Two, 0);
    assert_eq!(f.cmd(), CMD_MEMORY | CMD_PARITY, "only guest bits cleared");
    // Guest sets everything: virtual bits do not reach the hardware.
    wr(&mut vc, &mut f, COMMAND, Two, 0xffff);
    assert_eq!(f.cmd() & !CMD_GUEST, CMD_MEMORY | CMD_IO | CMD_PARITY);
    assert_eq!(f.cmd() & CMD_GUEST, CMD_GUEST);
    assert_eq!(f.cmd() & (CMD_SERR | CMD_INTX_DISABLE), 0);
}

#[test]
fn command_global_permissive_also_applies() {
    let (mut f, mut vc) = std_dev();
    f.global_permissive = true;
    f.enabled = true;
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_MEMORY | CMD_FAST_BACK),
    );
    assert_ne!(f.cmd() & CMD_FAST_BACK, 0);
    f.global_permissive = false;
    f.writes.clear();
    wr(&mut vc, &mut f, COMMAND, Two, u32::from(CMD_MEMORY));
    assert!(f.writes.is_empty());
}

// ---------------------------------------------------------------- BARs

#[test]
fn bar_values_come_from_the_dom0_resources() {
    let (mut f, vc) = std_dev();
    f.set(BAR0, Four, 0); // hardware content is irrelevant
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    assert_eq!(rd(&vc, &mut f, BAR0 + 4, Four), 0xe001);
    assert_eq!(rd(&vc, &mut f, BAR0 + 8, Four), 0x8000_000c);
    assert_eq!(rd(&vc, &mut f, BAR0 + 12, Four), 0x3);
    assert_eq!(rd(&vc, &mut f, BAR0 + 16, Four), 0);
    assert_eq!(
        rd(&vc, &mut f, BAR0 + 20, Four),
        0,
        "unassigned resource reads 0"
    );
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xfe10_0000);
    assert_eq!(rd(&vc, &mut f, BAR0 + 8, One), 0x0c);
    assert_eq!(rd(&vc, &mut f, BAR0 + 10, Two), 0x8000);
}

#[test]
fn bar_sizing_mem32() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BAR0, Four, 0xffff_ffff);
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xffff_0000);
    assert_eq!(
        rd(&vc, &mut f, BAR0, Four),
        0xffff_0000,
        "sizing persists until a write"
    );
    wr(&mut vc, &mut f, BAR0, Four, 0xfe00_0000);
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    assert!(f.writes.is_empty());
    // Flag bits may be left clear by the guest.
    wr(&mut vc, &mut f, BAR0, Four, 0xffff_fff0);
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xffff_0000);
}

#[test]
fn bar_sizing_io() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BAR0 + 4, Four, 0xffff_fffc);
    assert_eq!(rd(&vc, &mut f, BAR0 + 4, Four), 0xffff_ffe1);
    // 0xfffffff0 is not all ones under the I/O mask: not sizing.
    wr(&mut vc, &mut f, BAR0 + 4, Four, 0xffff_fff0);
    assert_eq!(rd(&vc, &mut f, BAR0 + 4, Four), 0xe001);
}

#[test]
fn bar_sizing_mem64_both_halves() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BAR0 + 8, Four, 0xffff_ffff);
    wr(&mut vc, &mut f, BAR0 + 12, Four, 0xffff_ffff);
    assert_eq!(rd(&vc, &mut f, BAR0 + 8, Four), 0xe000_000c);
    assert_eq!(rd(&vc, &mut f, BAR0 + 12, Four), 0xffff_ffff);
    // The upper half has no flag bits: 0xfffffff0 does not size it.
    wr(&mut vc, &mut f, BAR0 + 12, Four, 0xffff_fff0);
    assert_eq!(rd(&vc, &mut f, BAR0 + 12, Four), 0x3);
    assert_eq!(
        rd(&vc, &mut f, BAR0 + 8, Four),
        0xe000_000c,
        "halves are independent"
    );
    wr(&mut vc, &mut f, BAR0 + 8, Four, 0x8000_000c);
    assert_eq!(rd(&vc, &mut f, BAR0 + 8, Four), 0x8000_000c);
    assert!(f.writes.is_empty());
}

#[test]
fn bar_large_mem64_size_spills_into_upper_half() {
    let mut f = std_fake();
    let mut info = std_info();
    info.bars[2].size = 0x4_0000_0000; // 16 GiB
    info.bars[2].start = 0x40_0000_0000;
    let mut vc = seize_with(&mut f, &info);
    wr(&mut vc, &mut f, BAR0 + 8, Four, 0xffff_ffff);
    wr(&mut vc, &mut f, BAR0 + 12, Four, 0xffff_ffff);
    assert_eq!(rd(&vc, &mut f, BAR0 + 8, Four), 0x0000_000c);
    assert_eq!(rd(&vc, &mut f, BAR0 + 12, Four), 0xffff_fffc);
}

#[test]
fn bar_other_writes_are_dropped_and_cannot_move_the_bar() {
    let (mut f, mut vc) = std_dev();
    for v in [0x1000_0000, 0, 0xfe00_0001, 0x7fff_ffff] {
        wr(&mut vc, &mut f, BAR0, Four, v);
        assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    }
    // Sub-dword writes of ones are not sizing writes either.
    wr(&mut vc, &mut f, BAR0, Two, 0xffff);
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    assert!(f.writes.is_empty());
    assert_eq!(f.get(BAR0, Four), BAR0_START as u32);
}

#[test]
fn bar_writing_back_the_original_value_restores_hardware() {
    let (mut f, mut vc) = std_dev();
    // A reset cleared the BARs.
    f.set(BAR0, Four, 0);
    f.set(BAR0 + 8, Four, 0);
    f.set(BAR0 + 12, Four, 0);
    wr(&mut vc, &mut f, BAR0, Four, 0xfe00_0000);
    wr(&mut vc, &mut f, BAR0 + 8, Four, 0x8000_000c);
    wr(&mut vc, &mut f, BAR0 + 12, Four, 0x3);
    assert_eq!(
        f.writes,
        vec![
            (BAR0, Four, 0xfe00_0000),
            (BAR0 + 8, Four, 0x8000_000c),
            (BAR0 + 12, Four, 3)
        ]
    );
    // Already right: no write.
    f.writes.clear();
    wr(&mut vc, &mut f, BAR0, Four, 0xfe00_0000);
    assert!(f.writes.is_empty());
}

#[test]
fn bar_restore_by_halves_when_written_in_bytes() {
    let (mut f, mut vc) = std_dev();
    f.set(BAR0 + 4, Four, 0);
    // A byte write that leaves the virtual value unchanged counts as a write
    // of that value (C behaviour): it restores too.
    wr(&mut vc, &mut f, BAR0 + 4, One, 0x01);
    assert_eq!(f.get(BAR0 + 4, Four), 0xe001);
}

#[test]
fn bar_without_resource_is_never_written() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BAR0 + 20, Four, 0);
    wr(&mut vc, &mut f, BAR0 + 16, Four, 0);
    assert!(f.writes.is_empty());
    assert_eq!(f.get(BAR0 + 20, Four), 0x1234_5000);
    wr(&mut vc, &mut f, BAR0 + 20, Four, 0xffff_ffff);
    assert_eq!(rd(&vc, &mut f, BAR0 + 20, Four), 0, "absent BAR sizes as 0");
}

#[test]
fn rom_sizing_enable_bit_and_restore() {
    let (mut f, mut vc) = std_dev();
    // Linux sizes the ROM with ~ENABLE.
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xffff_fffe);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xffff_0000);
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xffff_f800);
    assert_eq!(
        rd(&vc, &mut f, ROM_TYPE0, Four),
        0xffff_0000,
        "0x7ff are flag bits"
    );
    // Enabling the ROM is dropped.
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xfe10_0001);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xfe10_0000);
    assert!(f.writes.is_empty());
    assert_eq!(f.get(ROM_TYPE0, Four), ROM_START as u32);
    // Restore after reset.
    f.set(ROM_TYPE0, Four, 0);
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xfe10_0000);
    assert_eq!(f.get(ROM_TYPE0, Four), 0xfe10_0000);
}

#[test]
fn rom_enabled_at_seize_stays_enabled() {
    let mut f = std_fake();
    let mut info = std_info();
    info.rom.enabled = true;
    let mut vc = seize_with(&mut f, &info);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xfe10_0001);
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xfe10_0000);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xfe10_0001);
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xffff_fffe);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xffff_0001);
}

#[test]
fn release_ends_sizing() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BAR0, Four, 0xffff_ffff);
    wr(&mut vc, &mut f, ROM_TYPE0, Four, 0xffff_ffff);
    vc.reset_on_release();
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE0, Four), 0xfe10_0000);
}

#[test]
fn bridge_has_two_bars_and_rom_at_0x38() {
    let mut f = std_fake();
    f.set(0x18, Four, 0x0003_0201); // bus numbers
    f.set(ROM_TYPE1, Four, 0xfe20_0000);
    let mut info = std_info();
    info.header_type = 1;
    info.rom.start = 0xfe20_0000;
    let mut vc = seize_with(&mut f, &info);
    assert_eq!(rd(&vc, &mut f, BAR0, Four), 0xfe00_0000);
    assert_eq!(rd(&vc, &mut f, BAR0 + 4, Four), 0xe001);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE1, Four), 0xfe20_0000);
    // 0x10..0x18 are BARs; 0x18.. and 0x30 are bridge registers: hardware, no writes.
    assert_eq!(rd(&vc, &mut f, 0x18, Four), 0x0003_0201);
    assert_eq!(rd(&vc, &mut f, 0x30, Four), ROM_START as u32);
    let out = wro(&mut vc, &mut f, 0x18, Four, 0x00ff_0000);
    assert_eq!(first_of(out), Some(true));
    wr(&mut vc, &mut f, ROM_TYPE1, Four, 0xffff_ffff);
    assert_eq!(rd(&vc, &mut f, ROM_TYPE1, Four), 0xffff_0000);
    assert!(f.writes.is_empty());
    assert!(vc.fields().all(|fi| fi.offset != 0x30 && fi.offset != 0x18));
}

// ---------------------------------------------------------------- other header fields

#[test]
fn irq_line_is_emulated_and_read_only() {
    let (mut f, mut vc) = std_dev();
    assert_eq!(rd(&vc, &mut f, INTERRUPT_LINE, One), 28);
    wr(&mut vc, &mut f, INTERRUPT_LINE, One, 5);
    assert_eq!(rd(&vc, &mut f, INTERRUPT_LINE, One), 28);
    wr(&mut vc, &mut f, INTERRUPT_PIN, One, 4);
    assert_eq!(rd(&vc, &mut f, INTERRUPT_PIN, One), 1);
    assert!(f.writes.is_empty());
}

#[test]
fn irq_above_255_is_reported_as_unknown() {
    for (irq, line) in [
        (0u32, 0u32),
        (255, 255),
        (256, 0xff),
        (0x11c, 0xff),
        (u32::MAX, 0xff),
    ] {
        let mut f = std_fake();
        let vc = seize_with(&mut f, &DeviceInfo { irq, ..std_info() });
        assert_eq!(rd(&vc, &mut f, INTERRUPT_LINE, One), line, "irq {irq}");
    }
}

#[test]
fn cache_line_is_written_through_and_latency_is_read_only() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, CACHE_LINE_SIZE, One, 0x08);
    wr(&mut vc, &mut f, LATENCY_TIMER, One, 0x40);
    assert_eq!(f.writes, vec![(CACHE_LINE_SIZE, One, 0x08)]);
    assert_eq!(rd(&vc, &mut f, CACHE_LINE_SIZE, Two), 0x2008);
}

#[test]
fn bist_only_start_is_accepted() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, BIST, One, 0x01); // changes the completion code: dropped
    assert!(f.writes.is_empty());
    wr(&mut vc, &mut f, BIST, One, u32::from(BIST_START));
    assert_eq!(f.writes, vec![(BIST, One, 0x40)]);
    f.writes.clear();
    f.set(BIST, One, 0x80);
    wr(&mut vc, &mut f, BIST, One, 0xc0); // START with the capable bit unchanged
    assert_eq!(f.writes, vec![(BIST, One, 0xc0)]);
}

#[test]
fn header_sweep_non_permissive_writes_reach_only_writable_registers() {
    let (mut f, mut vc) = std_dev();
    for size in [One, Two, Four] {
        for off in (0..0x40u16).step_by(usize::from(size.bytes())) {
            for v in [0u32, 0xffff_ffff, 0x5a5a_5a5a] {
                let _ = vc.write(&mut f, off, size, v);
            }
        }
    }
    for (off, _, _) in &f.writes {
        assert!(
            *off == CACHE_LINE_SIZE || *off == BIST,
            "unexpected hardware write {:?}",
            f.writes
        );
    }
    assert_ne!(f.cmd() & CMD_MEMORY, 0);
    assert_eq!(f.get(BAR0, Four), BAR0_START as u32);
}

// ---------------------------------------------------------------- unhandled registers

#[test]
fn unhandled_write_is_dropped_and_explained_once_per_byte() {
    let (mut f, mut vc) = std_dev();
    assert!(explained(&mut vc, &mut f, STATUS, Two, 0xffff));
    // Other bytes: explained too; bytes explained before: not.
    assert!(explained(&mut vc, &mut f, 0xa0, Four, 1));
    assert!(!explained(&mut vc, &mut f, 0xa2, Two, 1));
    assert!(!explained(&mut vc, &mut f, 0xa3, One, 1));
    assert!(explained(&mut vc, &mut f, 0xffc, Four, 1));
    // One byte of a dword explained, then the whole dword: its other bytes are new.
    assert!(explained(&mut vc, &mut f, 0xb0, One, 1));
    assert!(explained(&mut vc, &mut f, 0xb0, Four, 1));
    assert!(!explained(&mut vc, &mut f, 0xb0, Four, 1));
    assert!(f.writes.is_empty());
    assert_eq!(vc.denied_writes(), 8);
    // A write the glue did not explain (its rate limit) stays to be explained.
    assert_eq!(first_of(wro(&mut vc, &mut f, 0xc0, Four, 1)), Some(true));
    assert_eq!(first_of(wro(&mut vc, &mut f, 0xc0, Four, 1)), Some(true));
    // A release re-arms every explanation; the count goes on.
    vc.reset_on_release();
    assert!(explained(&mut vc, &mut f, 0xa0, Four, 1));
    assert_eq!(vc.denied_writes(), 11);
    // Handled writes are not counted.
    wr(&mut vc, &mut f, INTERRUPT_LINE, One, 1);
    assert_eq!(vc.denied_writes(), 11);
}

#[test]
fn denied_write_says_what_was_dropped() {
    let (mut f, mut vc) = std_dev();
    // Command (a field) and status (none): only the status bytes are dropped.
    let WriteOutcome::Dropped(d) = wro(&mut vc, &mut f, COMMAND, Four, 0x1234_0000 | 6) else {
        panic!("not dropped");
    };
    assert_eq!((d.offset, d.size, d.value), (COMMAND, Four, 0x1234_0006));
    assert_eq!(d.uncovered, 0b1100);
    assert_eq!(d.count, 1);
}

/// The quirk fields of a denied write of `size` at `offset` whose bytes `uncovered` were dropped.
fn quirks_for(offset: u16, size: AccessSize, uncovered: u8) -> Vec<(u16, AccessSize, u32)> {
    Denied {
        offset,
        size,
        value: 0,
        uncovered,
        first: true,
        count: 1,
    }
    .quirk_fields()
    .collect()
}

#[test]
fn denied_write_names_the_quirks_that_let_it_through() {
    // The dropped bytes form an aligned register: one quirk of that register.
    assert_eq!(
        quirks_for(0xa0, Four, 0b1111),
        vec![(0xa0, Four, 0xffff_ffff)]
    );
    assert_eq!(quirks_for(0x04, Four, 0b1100), vec![(0x06, Two, 0xffff)]);
    assert_eq!(quirks_for(0x0c, Four, 0b0100), vec![(0x0e, One, 0xff)]);
    assert_eq!(quirks_for(0x3e, Two, 0b11), vec![(0x3e, Two, 0xffff)]);
    assert_eq!(quirks_for(0x41, One, 0b1), vec![(0x41, One, 0xff)]);
    // Not one aligned register (bytes 1-2, three bytes, bytes 0 and 2): one quirk per byte.
    assert_eq!(
        quirks_for(0x40, Four, 0b0110),
        vec![(0x41, One, 0xff), (0x42, One, 0xff)]
    );
    assert_eq!(
        quirks_for(0x40, Four, 0b0111),
        vec![(0x40, One, 0xff), (0x41, One, 0xff), (0x42, One, 0xff)]
    );
    assert_eq!(
        quirks_for(0x40, Four, 0b0101),
        vec![(0x40, One, 0xff), (0x42, One, 0xff)]
    );
    assert_eq!(quirks_for(0x40, Four, 0), vec![]);
}

#[test]
fn the_explanation_says_what_was_written_and_how_to_let_it_through() {
    let bdf = super::super::bdf::Bdf::from_raw(0, 0, 2 << 3).expect("bdf");
    let d = Denied {
        offset: 0x60,
        size: Four,
        value: 0x0403_0201,
        uncovered: 0b1111,
        first: true,
        count: 1,
    };
    assert_eq!(
        format!("{}", d.explain(bdf, 3, 0)),
        "guest 3 wrote 0x4030201 (4 bytes at 0x60); the bytes no field covers were dropped \
         (permissive is off; denied write 1 of this device); to let them through: echo \
         0000:00:02.0-60:4:ffffffff > /sys/bus/pci/drivers/pciback/quirks"
    );
    // Bytes that are not one aligned register, after explanations the rate limit left out.
    let d = Denied {
        offset: 0xa0,
        size: Four,
        value: 0x1234,
        uncovered: 0b0110,
        first: true,
        count: 7,
    };
    let line = format!("{}", d.explain(bdf, 12, 4));
    assert_eq!(
        line,
        "guest 12 wrote 0x1234 (4 bytes at 0xa0); the bytes no field covers were dropped \
         (permissive is off; denied write 7 of this device; 4 explanations before this one not \
         logged); to let them through: echo 0000:00:02.0-a1:1:ff > \
         /sys/bus/pci/drivers/pciback/quirks; echo 0000:00:02.0-a2:1:ff > \
         /sys/bus/pci/drivers/pciback/quirks"
    );
    // Every line named is one `quirks` takes, and the device accepts.
    let (_, mut vc) = std_dev();
    for part in line.split("echo ").skip(1) {
        let text = part.split(" >").next().expect("quirk");
        let q = super::super::bdf::parse_quirk(text.as_bytes()).expect("parses");
        assert_eq!(q.bdf, bdf);
        vc.add_quirk(u32::from(q.reg), u32::from(q.size.bytes()), q.mask)
            .expect("accepted");
    }
}

#[test]
fn a_quirk_named_by_a_denied_write_lets_it_through() {
    let (mut f, mut vc) = std_dev();
    let WriteOutcome::Dropped(d) = wro(&mut vc, &mut f, COMMAND, Four, 0x1234_0000 | 6) else {
        panic!("not dropped");
    };
    for (reg, size, mask) in d.quirk_fields() {
        vc.add_quirk(u32::from(reg), u32::from(size.bytes()), mask)
            .expect("quirk");
    }
    f.writes.clear();
    assert_eq!(
        wro(&mut vc, &mut f, COMMAND, Four, 0x1234_0000 | 6),
        WriteOutcome::Handled
    );
    assert_eq!(vc.denied_writes(), 1);
    assert!(f.writes.contains(&(STATUS, Two, 0x1234)), "{:?}", f.writes);
}

#[test]
fn unhandled_write_goes_to_hardware_when_permissive() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    assert_eq!(
        wro(&mut vc, &mut f, u16::from(PCIE) + 8, Two, 0x2910),
        WriteOutcome::Handled
    );
    assert_eq!(f.writes, vec![(u16::from(PCIE) + 8, Two, 0x2910)]);
    // Extended space too.
    wr(&mut vc, &mut f, 0x104, Four, 0xdead_beef);
    assert_eq!(f.get(0x104, Four), 0xdead_beef);
}

#[test]
fn permissive_can_be_switched_off_again() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    assert!(vc.permissive());
    wr(&mut vc, &mut f, 0xa0, Four, 1);
    vc.set_permissive(false);
    assert_eq!(first_of(wro(&mut vc, &mut f, 0xa0, Four, 2)), Some(true));
    assert_eq!(f.get(0xa0, Four), 1);
}

#[test]
fn global_permissive_makes_unhandled_registers_writable() {
    let (mut f, mut vc) = std_dev();
    f.global_permissive = true;
    assert_eq!(
        wro(&mut vc, &mut f, 0xa0, Two, 0x1234),
        WriteOutcome::Handled
    );
    assert_eq!(f.get(0xa0, Two), 0x1234);
}

#[test]
fn permissive_partial_coverage_writes_only_the_uncovered_bytes() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    f.enabled = true;
    // Command (field) + status (no field): status goes out as one word write.
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Four,
        0xf900_0000 | u32::from(HW_CMD),
    );
    assert_eq!(f.writes, vec![(STATUS, Two, 0xf900)]);
    f.writes.clear();
    // 0x0c: cache line (field), latency (RO field), header type (none), BIST (field).
    wr(&mut vc, &mut f, 0x0c, Four, 0x0000_7f08);
    assert_eq!(
        f.writes,
        vec![(CACHE_LINE_SIZE, One, 0x08), (0x0e, One, 0x00)]
    );
    f.writes.clear();
    // 0x3c: line and pin are fields; min_gnt/max_lat are not.
    wr(&mut vc, &mut f, INTERRUPT_LINE, Four, 0x1122_3344);
    assert_eq!(f.writes, vec![(0x3e, Two, 0x1122)]);
}

#[test]
fn partial_coverage_without_permissive_is_dropped_and_warned() {
    let (mut f, mut vc) = std_dev();
    assert_eq!(
        first_of(wro(&mut vc, &mut f, COMMAND, Four, u32::from(HW_CMD))),
        Some(true)
    );
    assert!(f.writes.is_empty());
}

// ---------------------------------------------------------------- power management

#[test]
fn pm_capabilities_hide_pme_support() {
    let (mut f, vc) = std_dev();
    assert_eq!(rd(&vc, &mut f, u16::from(PM) + PM_PMC, Two), 0x0603);
    assert_eq!(rd(&vc, &mut f, u16::from(PM), Four), 0x0603_5001);
    assert_eq!(rd(&vc, &mut f, u16::from(PM) + 3, One), 0x06);
}

#[test]
fn pm_state_change_goes_through_the_pci_core() {
    let (mut f, mut vc) = std_dev();
    let ctrl = u16::from(PM) + PM_CTRL;
    wr(&mut vc, &mut f, ctrl, Two, 0x0003);
    assert_eq!(f.actions, vec![Action::Power(PowerState::D3Hot)]);
    assert!(f.writes.is_empty(), "state is not written directly");
    f.actions.clear();
    wr(&mut vc, &mut f, ctrl, Two, 0x0000);
    assert_eq!(f.actions, vec![Action::Power(PowerState::D0)]);
    f.actions.clear();
    wr(&mut vc, &mut f, ctrl, One, 0x01);
    assert_eq!(f.actions, vec![Action::Power(PowerState::D1)]);
}

#[test]
fn pm_guest_cannot_enable_pme_but_can_clear_status_and_select_data() {
    let (mut f, mut vc) = std_dev();
    let ctrl = u16::from(PM) + PM_CTRL;
    wr(&mut vc, &mut f, ctrl, Two, u32::from(PM_CTRL_PME_ENABLE));
    assert!(f.writes.is_empty());
    assert_eq!(f.get(ctrl, Two) & u32::from(PM_CTRL_PME_ENABLE), 0);
    wr(
        &mut vc,
        &mut f,
        ctrl,
        Two,
        u32::from(PM_CTRL_PME_STATUS | 0x0600 | PM_CTRL_PME_ENABLE),
    );
    assert_eq!(f.writes, vec![(ctrl, Two, 0x8608)]);
    // Writing the high byte alone keeps the low byte from hardware.
    f.writes.clear();
    wr(&mut vc, &mut f, ctrl + 1, One, 0x02);
    assert_eq!(f.writes, vec![(ctrl, Two, 0x0208)]);
}

#[test]
fn pm_power_state_failure_is_access_denied() {
    let (mut f, mut vc) = std_dev();
    f.power_fails = true;
    assert_eq!(
        vc.write(&mut f, u16::from(PM) + PM_CTRL, Two, 3),
        Err(PciifError::AccessDenied)
    );
}

#[test]
fn pm_extension_and_data_registers_are_read_only() {
    let (mut f, mut vc) = std_dev();
    assert_eq!(
        wro(&mut vc, &mut f, u16::from(PM) + PM_PPB_EXT, Two, 0xffff),
        WriteOutcome::Handled
    );
    assert!(f.writes.is_empty());
    assert_eq!(rd(&vc, &mut f, u16::from(PM) + PM_DATA, One), 0x55);
}

// ---------------------------------------------------------------- VPD

#[test]
fn vpd_reads_allowed_writes_refused() {
    let (mut f, mut vc) = std_dev();
    let addr = u16::from(VPD) + VPD_ADDR;
    wr(&mut vc, &mut f, addr, Two, 0x0010);
    assert_eq!(f.writes, vec![(addr, Two, 0x0010)]);
    f.writes.clear();
    assert_eq!(
        vc.write(&mut f, addr, Two, 0x8010),
        Err(PciifError::AccessDenied)
    );
    assert_eq!(
        vc.write(&mut f, addr + 1, One, 0x80),
        Err(PciifError::AccessDenied)
    );
    wr(&mut vc, &mut f, u16::from(VPD) + VPD_DATA, Four, 0);
    assert!(f.writes.is_empty());
    assert_eq!(
        rd(&vc, &mut f, u16::from(VPD) + VPD_DATA, Four),
        0x1122_3344
    );
}

// ---------------------------------------------------------------- MSI / MSI-X

fn msi_flags() -> u16 {
    u16::from(MSI) + MSI_FLAGS
}

fn msix_flags() -> u16 {
    u16::from(MSIX) + MSI_FLAGS
}

#[test]
fn msi_unchanged_write_is_accepted_without_hardware_write() {
    let (mut f, mut vc) = std_dev();
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0086);
    wr(&mut vc, &mut f, msix_flags(), Two, 0x003f);
    assert!(f.writes.is_empty());
}

#[test]
fn msi_enable_needs_allow_interrupt_control() {
    let (mut f, mut vc) = std_dev();
    assert_eq!(
        vc.write(&mut f, msi_flags(), Two, 0x0087),
        Err(PciifError::AccessDenied)
    );
    assert_eq!(
        vc.write(&mut f, msix_flags(), Two, 0x803f),
        Err(PciifError::AccessDenied)
    );
    vc.set_allow_interrupt_control(true);
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0087);
    assert_eq!(f.writes, vec![(msi_flags(), Two, 0x0087)]);
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0086);
    assert_eq!(f.get(msi_flags(), Two), 0x0086);
}

#[test]
fn msi_only_the_enable_bit_may_change() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    // Multiple message enable (bits 4..6) is not guest controlled.
    assert_eq!(
        vc.write(&mut f, msi_flags(), Two, 0x00b7),
        Err(PciifError::AccessDenied)
    );
    assert!(f.writes.is_empty());
}

#[test]
fn msi_enable_refused_while_msix_is_on() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    f.set(msix_flags(), Two, 0x803f);
    assert_eq!(
        vc.write(&mut f, msi_flags(), Two, 0x0087),
        Err(PciifError::AccessDenied)
    );
    // Disabling is always fine.
    wr(&mut vc, &mut f, msix_flags(), Two, 0x003f);
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0087);
    assert_eq!(f.get(msi_flags(), Two), 0x0087);
}

#[test]
fn msix_enable_and_maskall_rules() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    wr(&mut vc, &mut f, msix_flags(), Two, 0xc03f);
    assert_eq!(f.get(msix_flags(), Two), 0xc03f);
    wr(&mut vc, &mut f, msix_flags(), Two, 0x803f);
    // The table size is read-only.
    assert_eq!(
        vc.write(&mut f, msix_flags(), Two, 0x807f),
        Err(PciifError::AccessDenied)
    );
    // MSI cannot be turned on now.
    assert_eq!(
        vc.write(&mut f, msi_flags(), Two, 0x0087),
        Err(PciifError::AccessDenied)
    );
    // Re-enabling with MSI-X already on is the same type: allowed.
    wr(&mut vc, &mut f, msix_flags(), Two, 0xc03f);
    // MSI-X cannot be turned on while MSI is.
    wr(&mut vc, &mut f, msix_flags(), Two, 0x003f);
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0087);
    assert_eq!(
        vc.write(&mut f, msix_flags(), Two, 0x803f),
        Err(PciifError::AccessDenied)
    );
}

#[test]
fn msi_enable_allowed_while_intx_is_on() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    assert_eq!(f.cmd() & CMD_INTX_DISABLE, 0, "INTx on");
    wr(&mut vc, &mut f, msi_flags(), Two, 0x0087);
    assert_eq!(f.get(msi_flags(), Two), 0x0087);
}

#[test]
fn msi_permissive_writes_raw() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    wr(&mut vc, &mut f, msi_flags(), Two, 0x00b7);
    assert_eq!(f.writes, vec![(msi_flags(), Two, 0x00b7)]);
}

#[test]
fn msi_hardware_read_failure_is_reported() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    f.fail_read = Some((msix_flags(), HwError::DeviceNotFound));
    assert_eq!(
        vc.write(&mut f, msi_flags(), Two, 0x0087),
        Err(PciifError::DevNotFound)
    );
}

#[test]
fn capability_headers_are_read_only_even_when_permissive() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    for cap in [PM, MSI, MSIX, VPD] {
        wr(&mut vc, &mut f, u16::from(cap), Two, 0);
        wr(&mut vc, &mut f, u16::from(cap) + 1, One, 0);
    }
    assert!(f.writes.is_empty(), "{:?}", f.writes);
    assert_eq!(rd(&vc, &mut f, u16::from(MSI), Two), 0x7005);
}

#[test]
fn msi_address_and_msix_table_offset_are_not_writable() {
    let (mut f, mut vc) = std_dev();
    vc.set_allow_interrupt_control(true);
    assert_eq!(
        first_of(wro(&mut vc, &mut f, u16::from(MSI) + 4, Four, 0)),
        Some(true)
    );
    wr(&mut vc, &mut f, u16::from(MSIX) + 4, Four, 0);
    assert!(f.writes.is_empty());
}

// ---------------------------------------------------------------- quirks

#[test]
fn quirk_passes_reads_and_masked_writes() {
    let (mut f, mut vc) = std_dev();
    f.set(0xe0, Two, 0xabcd);
    vc.add_quirk(0xe0, 2, 0x00ff).unwrap();
    assert_eq!(rd(&vc, &mut f, 0xe0, Two), 0xabcd);
    assert_eq!(
        wro(&mut vc, &mut f, 0xe0, Two, 0x1234),
        WriteOutcome::Handled
    );
    assert_eq!(f.get(0xe0, Two), 0xab34, "only the mask bits change");
    // A byte write to the masked-out byte changes nothing but is still written
    // as a full field (read-modify-write).
    wr(&mut vc, &mut f, 0xe1, One, 0xff);
    assert_eq!(f.get(0xe0, Two), 0xab34);
}

#[test]
fn quirk_full_mask_writes_straight_through() {
    let (mut f, mut vc) = std_dev();
    vc.add_quirk(0xa0, 4, 0xffff_ffff).unwrap();
    wr(&mut vc, &mut f, 0xa0, Four, 0x1234_5678);
    assert_eq!(f.writes, vec![(0xa0, Four, 0x1234_5678)]);
    // A 1-byte write into a 4-byte quirk writes back the other bytes.
    f.writes.clear();
    wr(&mut vc, &mut f, 0xa2, One, 0xff);
    assert_eq!(f.writes, vec![(0xa0, Four, 0x12ff_5678)]);
}

#[test]
fn quirk_with_zero_mask_is_read_only() {
    let (mut f, mut vc) = std_dev();
    vc.add_quirk(0xa0, 1, 0).unwrap();
    assert_eq!(wro(&mut vc, &mut f, 0xa0, One, 0xff), WriteOutcome::Handled);
    assert!(f.writes.is_empty());
}

#[test]
fn quirk_validation() {
    let (_, mut vc) = std_dev();
    assert_eq!(vc.add_quirk(0x1000, 1, 0), Err(QuirkError::BadOffset));
    assert_eq!(vc.add_quirk(0xffff_ffff, 1, 0), Err(QuirkError::BadOffset));
    assert_eq!(vc.add_quirk(0xffe, 4, 0), Err(QuirkError::BadOffset));
    assert_eq!(vc.add_quirk(0xa0, 3, 0), Err(QuirkError::BadSize));
    assert_eq!(vc.add_quirk(0xa0, 0, 0), Err(QuirkError::BadSize));
    assert_eq!(vc.add_quirk(0xa1, 2, 0), Err(QuirkError::Unaligned));
    assert_eq!(vc.add_quirk(0xa0, 1, 0x100), Err(QuirkError::BadMask));
    assert_eq!(vc.add_quirk(0xa0, 2, 0x1_0000), Err(QuirkError::BadMask));
    assert!(vc.add_quirk(0xfff, 1, 0xff).is_ok());
    assert!(vc.add_quirk(0xff8, 4, 0xffff_ffff).is_ok());
    assert_eq!(vc.add_quirk(0xffc, 4, 0), Err(QuirkError::Overlap));
    assert_eq!(QuirkError::BadMask.to_errno(), -22);
    assert_eq!(QuirkError::Overlap.to_errno(), -17);
    assert_eq!(QuirkError::Full.to_errno(), -28);
}

#[test]
fn quirk_overlaps_and_duplicates_are_refused() {
    let (_, mut vc) = std_dev();
    vc.add_quirk(0xa0, 2, 0xffff).unwrap();
    assert_eq!(vc.add_quirk(0xa0, 2, 0xffff), Err(QuirkError::Overlap));
    assert_eq!(vc.add_quirk(0xa0, 4, 0), Err(QuirkError::Overlap));
    assert_eq!(vc.add_quirk(0xa1, 1, 0), Err(QuirkError::Overlap));
    assert!(vc.add_quirk(0xa2, 2, 0).is_ok());
    // Existing header and capability fields.
    assert_eq!(
        vc.add_quirk(COMMAND.into(), 2, 0xffff),
        Err(QuirkError::Overlap)
    );
    assert_eq!(vc.add_quirk(0x05, 1, 0xff), Err(QuirkError::Overlap));
    assert_eq!(vc.add_quirk(0x10, 4, 0), Err(QuirkError::Overlap));
    assert_eq!(
        vc.add_quirk(u32::from(MSI) + 2, 2, 0),
        Err(QuirkError::Overlap)
    );
    assert_eq!(vc.add_quirk(u32::from(PM), 4, 0), Err(QuirkError::Overlap));
    // Status has no field: a quirk may cover it.
    assert!(vc.add_quirk(STATUS.into(), 2, 0x0100).is_ok());
    assert_eq!(vc.fields().filter(|f| f.quirk).count(), 3);
}

#[test]
fn quirk_table_full() {
    let (_, mut vc) = std_dev();
    for i in 0..MAX_QUIRKS as u32 {
        vc.add_quirk(0x200 + 4 * i, 4, 0).unwrap();
    }
    assert_eq!(vc.add_quirk(0x400, 4, 0), Err(QuirkError::Full));
    vc.clear_quirks();
    assert!(vc.add_quirk(0x400, 4, 0).is_ok());
}

#[test]
fn quirk_listing_survives_release() {
    let (_, mut vc) = std_dev();
    vc.add_quirk(0xe0, 2, 0xff).unwrap();
    vc.reset_on_release();
    let list: Vec<FieldInfo> = vc.fields().collect();
    // Header first, quirks last, in the C listing order.
    assert_eq!(
        list[0],
        FieldInfo {
            offset: 0,
            size: 2,
            mask: 0,
            quirk: false
        }
    );
    assert_eq!(
        *list.last().unwrap(),
        FieldInfo {
            offset: 0xe0,
            size: 2,
            mask: 0xff,
            quirk: true
        }
    );
    let offs: Vec<u16> = list.iter().map(|f| f.offset).collect();
    assert_eq!(
        offs,
        vec![
            0x00, 0x02, 0x04, 0x0c, 0x0d, 0x0f, 0x3c, 0x3d, // common
            0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30, // type 0
            0x80, 0x82, 0x84, // VPD
            0x40, 0x42, 0x44, 0x46, 0x47, // PM
            0x50, 0x52, // MSI
            0x70, 0x72, // MSI-X
            0xe0, // quirk
        ]
    );
}

#[test]
fn quirk_in_extended_space_does_not_need_permissive() {
    let (mut f, mut vc) = std_dev();
    vc.add_quirk(0x104, 4, 0x0000_ffff).unwrap();
    wr(&mut vc, &mut f, 0x104, Four, 0xffff_ffff);
    assert_eq!(f.get(0x104, Four), 0x0000_ffff);
    assert_eq!(rd(&vc, &mut f, 0x104, Four), 0x0000_ffff);
}

// ---------------------------------------------------------------- release

#[test]
fn release_restores_seized_state_but_keeps_admin_settings() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    vc.set_allow_interrupt_control(true);
    f.enabled = true;
    wr(
        &mut vc,
        &mut f,
        COMMAND,
        Two,
        u32::from(CMD_IO | CMD_SERR | CMD_INTX_DISABLE),
    );
    f.set(COMMAND, Two, u32::from(HW_CMD));
    vc.reset_on_release();
    assert_eq!(rd(&vc, &mut f, COMMAND, Two) as u16, HW_CMD);
    assert!(!vc.allow_interrupt_control());
    assert!(vc.permissive());
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_offsets_and_sizes() {
    let (mut f, mut vc) = std_dev();
    assert_eq!(rd(&vc, &mut f, 0xfff, One), 0);
    assert_eq!(rd(&vc, &mut f, 0xffc, Four), 0);
    assert_eq!(rd(&vc, &mut f, 0xffe, Two), 0);
    for (off, size) in [
        (0xfff, Two),
        (0xfff, Four),
        (0xffd, Four),
        (0x1000, One),
        (0x1000, Four),
        (0xfffe, Two),
        (0xffff, One),
        (0xfffc, Four),
        (0x03, Two),
        (0x02, Four),
    ] {
        assert_eq!(
            vc.read(&mut f, off, size),
            Err(PciifError::InvalidOffset),
            "{off:#x}"
        );
        assert_eq!(
            vc.write(&mut f, off, size, !0),
            Err(PciifError::InvalidOffset),
            "{off:#x}"
        );
    }
    assert_eq!(f.reads, 3, "invalid accesses never reach the hardware");
    assert!(f.writes.is_empty());
}

#[test]
fn write_value_is_truncated_to_the_access_size() {
    let (mut f, mut vc) = std_dev();
    vc.set_permissive(true);
    wr(&mut vc, &mut f, 0xa1, One, 0xffff_ff12);
    assert_eq!(f.writes, vec![(0xa1, One, 0x12)]);
    assert_eq!(f.get(0xa0, Four), 0x0000_1200);
}

#[test]
fn sweep_of_the_whole_space_never_panics() {
    let (mut f, mut vc) = std_dev();
    vc.add_quirk(0x200, 4, 0x0f0f_0f0f).unwrap();
    let mut x = 0x1234_5678u32;
    for flags in 0..4 {
        vc.set_permissive(flags & 1 != 0);
        vc.set_allow_interrupt_control(flags & 2 != 0);
        for off in 0..0x1000u16 {
            for size in [One, Two, Four] {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let r = vc.read(&mut f, off, size);
                let w = vc.write(&mut f, off, size, x);
                if off % size.bytes() != 0 {
                    assert_eq!(r, Err(PciifError::InvalidOffset));
                    assert_eq!(w, Err(PciifError::InvalidOffset));
                } else if let Ok(v) = r {
                    assert_eq!(v & !size.value_mask(), 0);
                }
            }
        }
    }
    // Whatever the guest did, BARs never moved and decoding never went off.
    assert_eq!(rd(&vc, &mut f, BAR0, Four) & !0xf, BAR0_START as u32);
    assert_eq!(f.get(BAR0, Four), BAR0_START as u32);
    assert_ne!(f.cmd() & CMD_MEMORY, 0);
}

// ---------------------------------------------------------------- errors

#[test]
fn hardware_errors_map_like_the_c_driver() {
    let cases = [
        (0x86, HwError::DeviceNotFound, PciifError::DevNotFound),
        (0x87, HwError::BadRegisterNumber, PciifError::InvalidOffset),
        (0x81, HwError::FuncNotSupported, PciifError::NotImplemented),
        (0x88, HwError::SetFailed, PciifError::AccessDenied),
        (0x83, HwError::BadVendorId, PciifError::OpFailed),
        (0x89, HwError::BufferTooSmall, PciifError::OpFailed),
        (-5, HwError::Other, PciifError::OpFailed),
    ];
    for (code, hw, pciif) in cases {
        assert_eq!(HwError::from_pcibios(code), Err(hw));
        assert_eq!(hw.to_pciif(), pciif);
        let (mut f, vc) = std_dev();
        f.fail_read = Some((0x0a, hw));
        assert_eq!(vc.read(&mut f, 0x08, Four), Err(pciif));
    }
    assert_eq!(HwError::from_pcibios(0), Ok(()));
}

#[test]
fn emulated_read_still_reports_a_dead_device() {
    let (mut f, vc) = std_dev();
    f.gone = true;
    for (off, size) in [
        (VENDOR_ID, Two),
        (VENDOR_ID, Four),
        (INTERRUPT_LINE, One),
        (BAR0, Four),
        (COMMAND, Two),
        (0x08, Four),
    ] {
        assert_eq!(
            vc.read(&mut f, off, size),
            Err(PciifError::DevNotFound),
            "{off:#x}/{size:?}"
        );
    }
}

#[test]
fn hardware_write_errors_are_reported() {
    let (mut f, mut vc) = std_dev();
    f.fail_write = Some((CACHE_LINE_SIZE, HwError::SetFailed));
    assert_eq!(
        vc.write(&mut f, CACHE_LINE_SIZE, One, 8),
        Err(PciifError::AccessDenied)
    );
    vc.set_permissive(true);
    f.fail_write = Some((0xa0, HwError::DeviceNotFound));
    assert_eq!(
        vc.write(&mut f, 0xa0, Four, 8),
        Err(PciifError::DevNotFound)
    );
}

#[test]
fn access_size_helpers() {
    assert_eq!(AccessSize::from_bytes(1), Some(One));
    assert_eq!(AccessSize::from_bytes(2), Some(Two));
    assert_eq!(AccessSize::from_bytes(4), Some(Four));
    assert_eq!(AccessSize::from_bytes(3), None);
    assert_eq!(AccessSize::from_bytes(8), None);
    assert_eq!(Two.value_mask(), 0xffff);
    assert_eq!(PowerState::from_pmcsr(0xfffe), PowerState::D2);
}

/// The bytes of the standard device (with a quirk at 0xa0) whose writes are not plain: the
/// command register, BIST, the BARs and the ROM, PM control, the VPD address, MSI and MSI-X
/// message control.
fn not_plain(at: u16) -> bool {
    let within = |start: u16, len: u16| at >= start && at < start + len;
    within(COMMAND, 2)
        || within(BIST, 1)
        || within(BAR0, 24)
        || within(ROM_TYPE0, 4)
        || within(u16::from(PM) + PM_CTRL, 2)
        || within(u16::from(VPD) + VPD_ADDR, 2)
        || within(u16::from(MSI) + MSI_FLAGS, 2)
        || within(u16::from(MSIX) + MSI_FLAGS, 2)
}

#[test]
fn plain_writes_are_the_rules_without_state_or_kernel_call() {
    let mut admitted = 0;
    let settings = [(false, false), (true, false), (false, true)];
    // Each setting also with a failing read, then a failing write, of the quirk's register.
    let failures = [
        (None, None),
        (Some((0xa1, HwError::DeviceNotFound)), None),
        (None, Some((0xa2, HwError::SetFailed))),
    ];
    for (permissive, global) in settings {
        for (fail_read, fail_write) in failures {
            let (mut f, mut vc) = std_dev();
            vc.add_quirk(0xa0, 4, 0x0000_ff00).unwrap();
            vc.set_permissive(permissive);
            f.global_permissive = global;
            (f.fail_read, f.fail_write) = (fail_read, fail_write);
            let state = format!("{vc:?}");
            for off in 0..0x104u16 {
                for size in [One, Two, Four] {
                    if off % size.bytes() != 0 {
                        continue;
                    }
                    let v = 0xa5c3_5a3c_u32.rotate_left(u32::from(off));
                    let mut plain_dev = f.clone();
                    let plain = vc.write_plain(&mut plain_dev, off, size, v, global);
                    // The same access by the rules, on copies.
                    let (mut rules_dev, mut rules_vc) = (f.clone(), vc.clone());
                    let rules = rules_vc.write_by_rules(&mut rules_dev, off, size, v);
                    let Some(plain) = plain else {
                        assert_eq!(plain_dev.reads + plain_dev.writes.len(), 0, "{off:#x}");
                        continue;
                    };
                    admitted += 1;
                    let at = format!("{off:#x}/{size:?} {fail_read:?} {fail_write:?}");
                    let bytes = off..off + size.bytes();
                    assert!(!bytes.clone().any(not_plain), "{at} admitted");
                    assert_eq!(plain.map(|()| WriteOutcome::Handled), rules, "{at}");
                    assert_eq!(plain_dev.cfg, rules_dev.cfg, "{at}");
                    assert_eq!(plain_dev.writes, rules_dev.writes, "{at}");
                    assert_eq!(plain_dev.reads, rules_dev.reads, "{at}");
                    assert_eq!(rules_dev.actions, [], "{at}: a kernel call");
                    assert_eq!(format!("{rules_vc:?}"), state, "{at}: state");
                }
            }
        }
    }
    // Not vacuous: the header's plain registers, in every mode; the rest once permissive.
    assert!(admitted > 900, "{admitted} plain writes");
}

#[test]
fn plain_writes_are_the_ones_the_interrupt_may_serve() {
    let (mut f, mut vc) = std_dev();
    vc.add_quirk(0xa0, 4, 0x0000_ff00).unwrap();
    let mut plain = |vc: &VirtualConfig, off: u16, size: AccessSize, global: bool| {
        vc.write_plain(&mut f, off, size, 0, global).is_some()
    };
    // Dropped, read-write, quirk fields.
    for (off, size) in [
        (INTERRUPT_LINE, One),
        (CACHE_LINE_SIZE, One),
        (VENDOR_ID, Four),
        (INTERRUPT_PIN, One),
        (u16::from(PM) + PM_PMC, Two),
        (0xa0, Four),
    ] {
        assert!(plain(&vc, off, size, false), "{off:#x}/{size:?}");
    }
    // The rules with effects.
    for (off, size) in [
        (COMMAND, Two),
        (BIST, One),
        (BAR0, Four),
        (ROM_TYPE0, Four),
        (u16::from(PM) + PM_CTRL, Two),
        (u16::from(VPD) + VPD_ADDR, Two),
        (u16::from(MSI) + MSI_FLAGS, Two),
        (u16::from(MSIX) + MSI_FLAGS, Two),
    ] {
        assert!(!plain(&vc, off, size, false), "{off:#x}/{size:?}");
        assert!(!plain(&vc, off, size, true), "{off:#x}/{size:?} permissive");
    }
    // A byte no field covers: denied (and counted) unless permissive.
    assert!(!plain(&vc, STATUS, Two, false));
    assert!(plain(&vc, STATUS, Two, true));
    // The Interrupt Line with Min_Gnt and Max_Lat, which no field covers.
    assert!(!plain(&vc, INTERRUPT_LINE, Four, false));
    assert!(plain(&vc, INTERRUPT_LINE, Four, true));
    vc.set_permissive(true);
    assert!(plain(&vc, STATUS, Two, false));
    assert!(plain(&vc, 0x3e, Two, false));
    // An access that is not valid fails here, touching nothing.
    assert_eq!(
        vc.write_plain(&mut Fake::new(), 0x3d, Two, 0, false),
        Some(Err(PciifError::InvalidOffset))
    );
}
