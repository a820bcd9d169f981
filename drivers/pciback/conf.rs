// SPDX-License-Identifier: GPL-2.0

//! The configuration-space engine (`common::conf`) over a real, bound PCI device: raw
//! accesses go to the PCI core's error-reporting accessors, the effects of guest writes to the
//! PCI core's enable, bus-master, MWI, INTx and power calls.

use kernel::{
    device::Bound,
    pci,
    prelude::*, //
};

use crate::intx::IntxState;

use crate::common::conf::{
    AccessSize,
    BarResource,
    BarType,
    CapOffsets,
    ConfigIo,
    DeviceControl,
    DeviceInfo,
    HwError,
    PowerState,
    RomResource, //
};

/// `IORESOURCE_*` flags of `include/linux/ioport.h` the engine cares about.
mod ioresource {
    pub(super) const IO: u64 = 0x0000_0100;
    pub(super) const MEM: u64 = 0x0000_0200;
    pub(super) const PREFETCH: u64 = 0x0000_2000;
    pub(super) const MEM_64: u64 = 0x0010_0000;
    pub(super) const DISABLED: u64 = 0x1000_0000;
    pub(super) const UNSET: u64 = 0x2000_0000;
    pub(super) const BUSY: u64 = 0x8000_0000;
    pub(super) const ROM_ENABLE: u64 = 0x1;
}

/// `PCI_ROM_RESOURCE` (`include/linux/pci.h`): the index of the expansion ROM among a device's resources.
const ROM_RESOURCE: u32 = 6;

/// Converts the error of a configuration accessor back to its `PCIBIOS_*` meaning (the PCI
/// core turned the code into an errno with `pcibios_err_to_errno()`).
fn hw_error(e: Error) -> HwError {
    if e == ENODEV {
        HwError::DeviceNotFound
    } else if e == EFAULT {
        HwError::BadRegisterNumber
    } else if e == ENOENT {
        HwError::FuncNotSupported
    } else if e == ENOTTY {
        HwError::BadVendorId
    } else if e == ENOSPC {
        HwError::BufferTooSmall
    } else {
        HwError::Other
    }
}

/// A bound device as the engine's [`ConfigIo`] and [`DeviceControl`].
///
/// Its writes and calls may change the Command register: the dom0 INTx handler's masking must
/// be paused ([`IntxState::pause`]) while one is in use on a device whose handler is registered.
pub(crate) struct Hw<'a> {
    pdev: &'a pci::Device<Bound>,
    /// Whether the guest enabled the device (one `pci_enable_device()` to balance).
    enabled_by_guest: &'a mut bool,
    /// The dom0 INTx handler, on while the guest has the device enabled.
    intx: &'a IntxState,
}

impl<'a> Hw<'a> {
    pub(crate) fn new(
        pdev: &'a pci::Device<Bound>,
        enabled_by_guest: &'a mut bool,
        intx: &'a IntxState,
    ) -> Self {
        Self {
            pdev,
            enabled_by_guest,
            intx,
        }
    }

    fn bar(&self, index: u32) -> Result<BarResource> {
        let flags = self.pdev.resource_flags(index)?;
        let start = self.pdev.resource_start(index)?;
        let size = self.pdev.resource_len(index)?;
        let ty = if flags & ioresource::IO != 0 {
            BarType::Io
        } else if flags & ioresource::MEM_64 != 0 {
            BarType::Mem64
        } else {
            BarType::Mem32
        };
        Ok(BarResource {
            start,
            size,
            ty,
            prefetch: flags & ioresource::PREFETCH != 0,
            present: flags != 0
                && flags & (ioresource::DISABLED | ioresource::UNSET | ioresource::BUSY) == 0
                && flags & (ioresource::IO | ioresource::MEM) != 0,
        })
    }

    /// What the engine needs to know about the device when it is seized.
    pub(crate) fn device_info(&mut self) -> Result<DeviceInfo, HwError> {
        let header_type = self.read(0x0e, AccessSize::One)? as u8;
        let mut bars = [BarResource::default(); 6];
        for (i, bar) in (0u32..).zip(bars.iter_mut()) {
            *bar = self.bar(i).map_err(|_| HwError::Other)?;
        }
        let rom_flags = self
            .pdev
            .resource_flags(ROM_RESOURCE)
            .map_err(|_| HwError::Other)?;
        let rom_bar = self.bar(ROM_RESOURCE).map_err(|_| HwError::Other)?;
        let rom = RomResource {
            start: rom_bar.start,
            size: rom_bar.size,
            enabled: rom_flags & ioresource::ROM_ENABLE != 0,
            present: rom_flags != 0
                && rom_flags & (ioresource::DISABLED | ioresource::UNSET | ioresource::BUSY) == 0,
        };
        let caps = CapOffsets::discover(self, header_type)?;
        Ok(DeviceInfo {
            vendor: self.pdev.vendor_id().as_raw(),
            device: self.pdev.device_id(),
            header_type,
            irq: self.pdev.irq(),
            bars,
            rom,
            caps,
            permissive: false,
            allow_interrupt_control: false,
        })
    }
}

/// One configuration read of `pdev`; callable from atomic context.
fn read_hw(pdev: &pci::Device<Bound>, offset: u16, size: AccessSize) -> Result<u32, HwError> {
    match size {
        AccessSize::One => pdev.read_config_u8(offset).map(u32::from),
        AccessSize::Two => pdev.read_config_u16(offset).map(u32::from),
        AccessSize::Four => pdev.read_config_u32(offset),
    }
    .map_err(hw_error)
}

/// One configuration write of the low `size` bytes of `value` to `pdev`; callable from atomic
/// context.
fn write_hw(
    pdev: &pci::Device<Bound>,
    offset: u16,
    size: AccessSize,
    value: u32,
) -> Result<(), HwError> {
    // CAST: only the low `size` bytes of `value` are meaningful.
    match size {
        AccessSize::One => pdev.write_config_u8(offset, value as u8),
        AccessSize::Two => pdev.write_config_u16(offset, value as u16),
        AccessSize::Four => pdev.write_config_u32(offset, value),
    }
    .map_err(hw_error)
}

/// What a read of `pdev` would fail with because it is gone, without the read.
fn check_connected(pdev: &pci::Device<Bound>) -> Result<(), HwError> {
    if pdev.is_disconnected() {
        Err(HwError::DeviceNotFound)
    } else {
        Ok(())
    }
}

impl ConfigIo for Hw<'_> {
    fn read(&mut self, offset: u16, size: AccessSize) -> Result<u32, HwError> {
        read_hw(self.pdev, offset, size)
    }

    fn check_connected(&self) -> Result<(), HwError> {
        check_connected(self.pdev)
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Result<(), HwError> {
        write_hw(self.pdev, offset, size, value)
    }
}

/// A bound device as the engine's [`ConfigIo`] alone, for atomic context (the event channel's
/// interrupt): raw configuration reads and writes, which take only the PCI core's raw
/// spinlock, and none of [`DeviceControl`]'s calls into the PCI core, which may sleep. The
/// engine's reads and plain writes (`VirtualConfig::write_plain`) need no more.
pub(crate) struct RawConfig<'a> {
    pdev: &'a pci::Device<Bound>,
}

impl<'a> RawConfig<'a> {
    pub(crate) fn new(pdev: &'a pci::Device<Bound>) -> Self {
        Self { pdev }
    }
}

impl ConfigIo for RawConfig<'_> {
    fn read(&mut self, offset: u16, size: AccessSize) -> Result<u32, HwError> {
        read_hw(self.pdev, offset, size)
    }

    fn check_connected(&self) -> Result<(), HwError> {
        check_connected(self.pdev)
    }

    fn write(&mut self, offset: u16, size: AccessSize, value: u32) -> Result<(), HwError> {
        write_hw(self.pdev, offset, size, value)
    }
}

impl DeviceControl for Hw<'_> {
    fn is_enabled(&self) -> bool {
        self.pdev.is_enabled()
    }

    fn enable(&mut self) -> Result<(), HwError> {
        if *self.enabled_by_guest {
            return Ok(());
        }
        // The caller paused the handler's masking (`IntxState::pause`), whose read-modify-write
        // of the Command register would race with the enable's.
        if self.pdev.enable_device().is_err() {
            return Err(HwError::Other);
        }
        *self.enabled_by_guest = true;
        // Acknowledging comes back with an enable, unless MSI or MSI-X is on (C's
        // `xen_pcibk_control_isr` leaves the handler alone then).
        if !(self.pdev.msi_enabled() || self.pdev.msix_enabled()) {
            self.intx.set_ack(true);
        }
        self.intx.guest_enabled(self.pdev);
        Ok(())
    }

    fn disable(&mut self) {
        if *self.enabled_by_guest {
            self.pdev.disable_device();
            *self.enabled_by_guest = false;
        }
        self.intx.guest_disabled();
    }

    fn is_busmaster(&self) -> bool {
        self.pdev.is_busmaster()
    }

    fn set_master(&mut self, on: bool) {
        if on {
            self.pdev.set_master();
        } else {
            self.pdev.clear_master();
        }
    }

    fn set_mwi(&mut self) -> Result<(), HwError> {
        self.pdev.set_mwi().map_err(|_| HwError::Other)
    }

    fn clear_mwi(&mut self) {
        self.pdev.clear_mwi();
    }

    fn intx(&mut self, enable: bool) {
        self.pdev.set_intx(enable);
    }

    fn set_power_state(&mut self, state: PowerState) -> Result<(), HwError> {
        let state = match state {
            PowerState::D0 => pci::PowerState::D0,
            PowerState::D1 => pci::PowerState::D1,
            PowerState::D2 => pci::PowerState::D2,
            PowerState::D3Hot => pci::PowerState::D3Hot,
        };
        self.pdev.set_power_state(state).map_err(|_| HwError::Other)
    }

    fn global_permissive(&self) -> bool {
        crate::permissive()
    }
}
