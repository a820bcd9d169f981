// SPDX-License-Identifier: GPL-2.0

//! Error codes of the PCI configuration space accessors.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use crate::{
    bindings,
    error::to_result,
    prelude::*, //
};

/// An error code of the PCI configuration space accessors (C's `PCIBIOS_*`).
///
/// The PCI core and the `struct pci_ops` of a host bridge report configuration space access
/// failures with these positive codes rather than with errno values. [`Error::from`] maps them to
/// the errno C's `pcibios_err_to_errno()` gives.
///
/// # Examples
///
/// ```
/// use kernel::pci::PcibiosError;
///
/// let err = PcibiosError::DeviceNotFound;
/// assert_eq!(PcibiosError::from_raw(err.to_raw()), Some(err));
/// assert_eq!(Error::from(err), ENODEV);
/// assert_eq!(PcibiosError::from_raw(0), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcibiosError {
    /// The function is not supported (`PCIBIOS_FUNC_NOT_SUPPORTED`).
    FuncNotSupported,
    /// Bad vendor ID (`PCIBIOS_BAD_VENDOR_ID`).
    BadVendorId,
    /// No device at this address (`PCIBIOS_DEVICE_NOT_FOUND`).
    DeviceNotFound,
    /// Invalid register offset or misaligned access (`PCIBIOS_BAD_REGISTER_NUMBER`).
    BadRegisterNumber,
    /// The write was refused or failed (`PCIBIOS_SET_FAILED`).
    SetFailed,
    /// Buffer too small (`PCIBIOS_BUFFER_TOO_SMALL`).
    BufferTooSmall,
}

impl PcibiosError {
    /// Returns the error for the C code `code`, or [`None`] if `code` is not one of the
    /// `PCIBIOS_*` error codes (`PCIBIOS_SUCCESSFUL` included).
    pub const fn from_raw(code: c_int) -> Option<Self> {
        // CAST: The `PCIBIOS_*` codes are small positive values, which fit in a `c_int`.
        Some(match code {
            c if c == bindings::PCIBIOS_FUNC_NOT_SUPPORTED as c_int => Self::FuncNotSupported,
            c if c == bindings::PCIBIOS_BAD_VENDOR_ID as c_int => Self::BadVendorId,
            c if c == bindings::PCIBIOS_DEVICE_NOT_FOUND as c_int => Self::DeviceNotFound,
            c if c == bindings::PCIBIOS_BAD_REGISTER_NUMBER as c_int => Self::BadRegisterNumber,
            c if c == bindings::PCIBIOS_SET_FAILED as c_int => Self::SetFailed,
            c if c == bindings::PCIBIOS_BUFFER_TOO_SMALL as c_int => Self::BufferTooSmall,
            _ => return None,
        })
    }

    /// Returns the C code of this error.
    pub const fn to_raw(self) -> c_int {
        let code = match self {
            Self::FuncNotSupported => bindings::PCIBIOS_FUNC_NOT_SUPPORTED,
            Self::BadVendorId => bindings::PCIBIOS_BAD_VENDOR_ID,
            Self::DeviceNotFound => bindings::PCIBIOS_DEVICE_NOT_FOUND,
            Self::BadRegisterNumber => bindings::PCIBIOS_BAD_REGISTER_NUMBER,
            Self::SetFailed => bindings::PCIBIOS_SET_FAILED,
            Self::BufferTooSmall => bindings::PCIBIOS_BUFFER_TOO_SMALL,
        };

        // CAST: The `PCIBIOS_*` codes are small positive values, which fit in a `c_int`.
        code as c_int
    }
}

impl From<PcibiosError> for Error {
    fn from(err: PcibiosError) -> Self {
        // SAFETY: `pcibios_err_to_errno` has no preconditions.
        let errno = unsafe { bindings::pcibios_err_to_errno(err.to_raw()) };

        Error::from_errno(errno)
    }
}

/// Converts the return value of a C configuration space accessor into a [`Result`].
///
/// `ret` is zero on success, a `PCIBIOS_*` code or a negative errno on failure; both kinds of
/// failure become the errno `pcibios_err_to_errno()` gives for them.
pub(super) fn to_pcibios_result(ret: c_int) -> Result {
    if ret == 0 {
        return Ok(());
    }

    // SAFETY: `pcibios_err_to_errno` has no preconditions.
    let errno = unsafe { bindings::pcibios_err_to_errno(ret) };

    // `pcibios_err_to_errno()` returns negative errnos as they are, maps the known `PCIBIOS_*`
    // codes and any other positive value to a negative errno: `errno` cannot be zero or positive
    // here, but do not turn a failure into a success should that ever change.
    to_result(errno).and(Err(EIO))
}

#[cfg(CONFIG_RUST_PCI_KUNIT_TEST)]
#[kunit_tests(rust_kernel_pci_pcibios)]
mod tests {
    use super::*;

    const ALL: [PcibiosError; 6] = [
        PcibiosError::FuncNotSupported,
        PcibiosError::BadVendorId,
        PcibiosError::DeviceNotFound,
        PcibiosError::BadRegisterNumber,
        PcibiosError::SetFailed,
        PcibiosError::BufferTooSmall,
    ];

    #[test]
    fn raw_codes_round_trip() {
        for err in ALL {
            assert!(err.to_raw() > 0);
            assert_eq!(PcibiosError::from_raw(err.to_raw()), Some(err));
        }
        assert_eq!(PcibiosError::from_raw(bindings::PCIBIOS_SUCCESSFUL as c_int), None);
        assert_eq!(PcibiosError::from_raw(-(ENODEV.to_errno())), None);
        assert_eq!(PcibiosError::from_raw(0x80), None);
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(Error::from(PcibiosError::FuncNotSupported), ENOENT);
        assert_eq!(Error::from(PcibiosError::BadVendorId), ENOTTY);
        assert_eq!(Error::from(PcibiosError::DeviceNotFound), ENODEV);
        assert_eq!(Error::from(PcibiosError::BadRegisterNumber), EFAULT);
        assert_eq!(Error::from(PcibiosError::SetFailed), EIO);
        assert_eq!(Error::from(PcibiosError::BufferTooSmall), ENOSPC);
    }

    #[test]
    fn accessor_results() {
        assert_eq!(to_pcibios_result(0), Ok(()));
        for err in ALL {
            assert_eq!(to_pcibios_result(err.to_raw()), Err(Error::from(err)));
        }
        // Negative errnos from host bridge drivers pass through.
        assert_eq!(to_pcibios_result(EBUSY.to_errno()), Err(EBUSY));
        // Unknown positive codes are failures.
        assert_eq!(to_pcibios_result(0x7f), Err(ERANGE));
    }
}
