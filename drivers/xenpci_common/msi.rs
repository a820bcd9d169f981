// SPDX-License-Identifier: GPL-2.0

//! Backend policy for the guest's MSI and MSI-X requests: when one may be granted, and how the
//! answer carries the physical IRQs (pirqs) back.
//!
//! A PV guest cannot program MSI itself: it asks the backend, which enables MSI or MSI-X on the
//! real device in its own domain and answers with the pirqs Xen bound to the vectors (allocated
//! in the guest's pirq space, because the device's domain owner is the guest). The checks are the
//! ones C `xen-pciback` makes since XSA-157, in the same order and with the same answers:
//!
//! - `enable_msi`: MSI on already → `-EALREADY`; MSI-X on → `-ENXIO`. The wire answer for any
//!   `enable_msi` failure is `XEN_PCI_ERR_op_failed` ([`super::pciif::Response::enable_msi`]).
//! - `enable_msix`: MSI-X on already → `-EALREADY`; then MSI on, or memory decoding off →
//!   `-ENXIO` (C `xen_pcibk_enable_msix()` tests `msix_enabled` first). These raw errnos are the
//!   wire answer (a wart of the protocol, kept for compatibility).
//!
//! Unlike C, a pirq that does not fit the 16-bit `vector` of an MSI-X entry is refused
//! (`-ERANGE`) instead of being truncated into another domain's pirq number.

use super::pciif::{
    OpError,
    SH_INFO_MAX_VEC, //
};

/// `EALREADY`.
const EALREADY: i32 = 114;
/// `ENXIO`.
const ENXIO: i32 = 6;
/// `ERANGE`.
const ERANGE: i32 = 34;

/// The interrupt state of the real device when a guest asks for MSI or MSI-X.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IrqState {
    /// MSI is enabled.
    pub(crate) msi: bool,
    /// MSI-X is enabled.
    pub(crate) msix: bool,
    /// Memory decoding (`PCI_COMMAND_MEMORY`) is on, in the physical function for a virtual
    /// function: the MSI-X table lives in a memory BAR.
    pub(crate) memory: bool,
}

/// May MSI be enabled? `Err` is the errno (negative) to log; the guest gets `op_failed`.
pub(crate) const fn check_enable_msi(state: IrqState) -> Result<(), i32> {
    if state.msi {
        Err(-EALREADY)
    } else if state.msix {
        Err(-ENXIO)
    } else {
        Ok(())
    }
}

/// May MSI-X be enabled? `Err` is the raw errno answered to the guest.
pub(crate) const fn check_enable_msix(state: IrqState) -> Result<(), OpError> {
    if state.msix {
        Err(OpError::Errno(-EALREADY))
    } else if state.msi || !state.memory {
        Err(OpError::Errno(-ENXIO))
    } else {
        Ok(())
    }
}

/// The `vector` fields of a successful `enable_msix` answer: each pirq as the 16 bits the wire
/// has room for. Fails with `-ERANGE` if one does not fit (or is 0, which no frontend accepts),
/// and with `-EINVAL` for more than 128.
pub(crate) fn msix_vectors(pirqs: &[u32]) -> Result<[u16; SH_INFO_MAX_VEC], OpError> {
    let mut out = [0u16; SH_INFO_MAX_VEC];
    if pirqs.len() > SH_INFO_MAX_VEC {
        return Err(OpError::EINVAL);
    }
    for (dst, &pirq) in out.iter_mut().zip(pirqs) {
        *dst = match u16::try_from(pirq) {
            Ok(v) if v != 0 => v,
            _ => return Err(OpError::Errno(-ERANGE)),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: IrqState = IrqState {
        msi: false,
        msix: false,
        memory: true,
    };

    #[test]
    fn msi_allowed_only_when_both_off() {
        assert_eq!(check_enable_msi(OFF), Ok(()));
        // Memory decoding does not matter for MSI.
        assert_eq!(
            check_enable_msi(IrqState {
                memory: false,
                ..OFF
            }),
            Ok(())
        );
        assert_eq!(
            check_enable_msi(IrqState { msi: true, ..OFF }),
            Err(-EALREADY)
        );
        assert_eq!(
            check_enable_msi(IrqState { msix: true, ..OFF }),
            Err(-ENXIO)
        );
        // Both on (cannot happen): MSI is checked first, as in C.
        let both = IrqState {
            msi: true,
            msix: true,
            ..OFF
        };
        assert_eq!(check_enable_msi(both), Err(-EALREADY));
    }

    #[test]
    fn msix_needs_memory_decoding_and_msi_off() {
        assert_eq!(check_enable_msix(OFF), Ok(()));
        let no_mem = IrqState {
            memory: false,
            ..OFF
        };
        assert_eq!(check_enable_msix(no_mem), Err(OpError::Errno(-ENXIO)));
        assert_eq!(
            check_enable_msix(IrqState { msi: true, ..OFF }),
            Err(OpError::Errno(-ENXIO))
        );
        assert_eq!(
            check_enable_msix(IrqState { msix: true, ..OFF }),
            Err(OpError::Errno(-EALREADY))
        );
        // MSI-X on is EALREADY whatever else holds: C tests it first.
        let msix_no_mem = IrqState {
            msix: true,
            memory: false,
            ..OFF
        };
        assert_eq!(
            check_enable_msix(msix_no_mem),
            Err(OpError::Errno(-EALREADY))
        );
        let all = IrqState {
            msi: true,
            msix: true,
            memory: false,
        };
        assert_eq!(check_enable_msix(all), Err(OpError::Errno(-EALREADY)));
    }

    #[test]
    fn msix_vectors_fit_in_16_bits() {
        let v = msix_vectors(&[1, 0x1234, 0xffff]).unwrap();
        assert_eq!(&v[..3], &[1, 0x1234, 0xffff]);
        assert!(v[3..].iter().all(|&x| x == 0));
        assert_eq!(msix_vectors(&[]), Ok([0; SH_INFO_MAX_VEC]));
        assert_eq!(msix_vectors(&[5, 0x1_0000]), Err(OpError::Errno(-ERANGE)));
        assert_eq!(msix_vectors(&[0]), Err(OpError::Errno(-ERANGE)));
        assert_eq!(msix_vectors(&[1; 129]), Err(OpError::EINVAL));
        assert!(msix_vectors(&[7; 128]).is_ok());
    }
}
