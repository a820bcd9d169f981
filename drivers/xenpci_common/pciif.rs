// SPDX-License-Identifier: GPL-2.0

//! The `pciif.h` wire protocol: the layout of the one shared page, commands,
//! flag bits and error codes, and the validation of a request copied out of it.
//!
//! C header: `include/xen/interface/io/pciif.h`.

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
}
