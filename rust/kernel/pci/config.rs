// SPDX-License-Identifier: GPL-2.0

//! PCI configuration space accessors that report failures.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::{
    pcibios::to_pcibios_result,
    Device,
    PcibiosError, //
};
use crate::{
    bindings,
    device,
    prelude::*, //
};

/// The size of the largest (PCI Express extended) configuration space.
const CONFIG_SPACE_MAX: usize = 4096;

/// Converts `offset` for an access of `size` bytes to the C offset argument.
///
/// Offsets past the end of the largest configuration space fail like a bad register number
/// reported by the PCI core. Alignment is checked by the PCI core.
fn config_offset(offset: u16, size: usize) -> Result<c_int> {
    if usize::from(offset) + size > CONFIG_SPACE_MAX {
        return Err(PcibiosError::BadRegisterNumber.into());
    }

    Ok(c_int::from(offset))
}

macro_rules! impl_config_accessors {
    ($ty:ty, $read:ident, $write:ident, $c_read:ident, $c_write:ident) => {
        #[doc = concat!("Reads the `", stringify!($ty), "` at `offset` of the configuration space.")]
        ///
        /// Unlike [`Device::config_space`], this reports failures: the `PCIBIOS_*` code or errno
        /// of the PCI core or of the host bridge becomes an [`Error`] (see [`PcibiosError`]);
        /// `offset` must be naturally aligned and within the first 4096 bytes. Can be called from
        /// atomic context.
        pub fn $read(&self, offset: u16) -> Result<$ty> {
            let offset = config_offset(offset, core::mem::size_of::<$ty>())?;
            let mut val: $ty = 0;

            // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
            // `struct pci_dev`, and `val` is valid for writes of its type.
            let ret = unsafe { bindings::$c_read(self.as_raw(), offset, &mut val) };
            to_pcibios_result(ret)?;

            Ok(val)
        }

        #[doc = concat!("Writes the `", stringify!($ty), "` `value` at `offset` of the configuration space.")]
        ///
        /// Reports failures like the corresponding read accessor. Can be called from atomic
        /// context.
        pub fn $write(&self, offset: u16, value: $ty) -> Result {
            let offset = config_offset(offset, core::mem::size_of::<$ty>())?;

            // SAFETY: By its type invariant `self.as_raw` is always a valid pointer to a
            // `struct pci_dev`.
            let ret = unsafe { bindings::$c_write(self.as_raw(), offset, value) };

            to_pcibios_result(ret)
        }
    };
}

/// Configuration space accessors that report failures.
///
/// They are for a driver that must tell failures apart, such as one forwarding accesses on behalf
/// of another party; [`Device::config_space`] is the interface for ordinary drivers.
///
/// # Examples
///
/// ```
/// # use kernel::{bindings, device::Bound, pci, prelude::*};
/// // Sets the Memory Space Enable bit of the Command register.
/// fn enable_memory_decoding(pdev: &pci::Device<Bound>) -> Result {
///     // CAST: `PCI_COMMAND` is a register offset and `PCI_COMMAND_MEMORY` a 16-bit flag.
///     let cmd = pdev.read_config_u16(bindings::PCI_COMMAND as u16)?;
///     pdev.write_config_u16(
///         bindings::PCI_COMMAND as u16,
///         cmd | bindings::PCI_COMMAND_MEMORY as u16,
///     )
/// }
/// ```
impl Device<device::Bound> {
    impl_config_accessors!(
        u8,
        read_config_u8,
        write_config_u8,
        pci_read_config_byte,
        pci_write_config_byte
    );
    impl_config_accessors!(
        u16,
        read_config_u16,
        write_config_u16,
        pci_read_config_word,
        pci_write_config_word
    );
    impl_config_accessors!(
        u32,
        read_config_u32,
        write_config_u32,
        pci_read_config_dword,
        pci_write_config_dword
    );
}
