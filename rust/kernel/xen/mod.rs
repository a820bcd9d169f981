// SPDX-License-Identifier: GPL-2.0

//! Xen support for paravirtualised device drivers.
//!
//! A split driver talks to its peer in another domain through four mechanisms, each with its
//! own module:
//!
//! - [`xenstore`]: the hierarchical configuration store, where both ends publish their state
//!   and their parameters, with transactions and watches;
//! - [`xenbus`]: the bus on which frontend (guest side) and backend (driver domain side)
//!   devices appear, and the driver model around it;
//! - [`grant`]: memory pages granted by one domain and mapped by the other;
//! - [`evtchn`]: event channels, the interrupts between the two ends.
//!
//! `sched` (x86) asks the hypervisor's scheduler for the calling vCPU: a split driver that
//! busy-waits for its peer may give its physical CPU to the peer's vCPU.
//!
//! This module also answers the questions module initialisation usually starts with: are we
//! running on Xen, in which kind of domain, and may we use paravirtualised devices.
//!
//! C headers: [`include/xen/xen.h`](srctree/include/xen/xen.h),
//! [`include/xen/platform_pci.h`](srctree/include/xen/platform_pci.h)

use crate::{
    bindings,
    fmt,
    prelude::*, //
};

pub mod evtchn;
pub mod grant;
#[cfg(all(CONFIG_PCI, CONFIG_X86, any(CONFIG_XEN_DOM0, CONFIG_PCI_XEN)))]
pub mod pci;
#[cfg(CONFIG_X86)]
pub mod sched;
pub mod xenbus;
pub mod xenstore;

/// Returns `true` when the kernel runs as a Xen guest of any kind, including the initial domain.
#[inline]
pub fn is_domain() -> bool {
    // SAFETY: `xen_domain()` only reads a variable set once during early boot.
    unsafe { bindings::xen_domain() }
}

/// Returns `true` when the kernel runs as a paravirtualised (PV) Xen guest.
#[inline]
pub fn is_pv_domain() -> bool {
    // SAFETY: `xen_pv_domain()` only tests a CPU feature bit set during early boot.
    unsafe { bindings::xen_pv_domain() }
}

/// Returns `true` when the kernel runs as a hardware-virtualised (HVM or PVH) Xen guest.
#[inline]
pub fn is_hvm_domain() -> bool {
    // SAFETY: `xen_hvm_domain()` only reads a variable set once during early boot.
    unsafe { bindings::xen_hvm_domain() }
}

/// Returns `true` when the kernel runs in the initial domain (dom0), which owns the hardware.
#[inline]
pub fn is_initial_domain() -> bool {
    // SAFETY: `xen_initial_domain()` only reads variables set once during early boot.
    unsafe { bindings::xen_initial_domain() }
}

/// Returns `true` when paravirtualised devices may be used.
///
/// An HVM guest whose emulated devices were not unplugged must keep using them, and must not
/// bind PV frontends to the same devices. Frontend drivers check this before registering.
#[inline]
pub fn has_pv_devices() -> bool {
    // SAFETY: `xen_has_pv_devices()` has no preconditions.
    unsafe { bindings::xen_has_pv_devices() }
}

/// A Xen domain identifier.
///
/// Domain 0 is the initial domain. Values from [`DomId::FIRST_RESERVED`] up are not domains but
/// special identifiers understood by some hypercalls, such as [`DomId::SELF`].
///
/// # Examples
///
/// ```
/// use kernel::xen::DomId;
///
/// let dom = DomId::try_from(7u32)?;
/// assert_eq!(dom.as_raw(), 7);
/// assert!(!dom.is_reserved());
/// assert!(DomId::SELF.is_reserved());
/// assert!(DomId::try_from(0x1_0000u32).is_err());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct DomId(u16);

const _: () = assert!(bindings::DOMID_FIRST_RESERVED == 0x7ff0);
const _: () = assert!(bindings::DOMID_SELF == 0x7ff0);
const _: () = assert!(bindings::DOMID_INVALID == 0x7ff4);

impl DomId {
    /// The initial domain, dom0.
    pub const INITIAL: Self = Self(0);

    /// The first reserved identifier; identifiers from here on do not name a domain.
    pub const FIRST_RESERVED: Self = Self(0x7ff0);

    /// The calling domain, as understood by hypercalls (`DOMID_SELF`).
    pub const SELF: Self = Self(0x7ff0);

    /// An invalid domain (`DOMID_INVALID`).
    pub const INVALID: Self = Self(0x7ff4);

    /// Creates a domain identifier from its raw value.
    #[inline]
    pub const fn new(raw: u16) -> Self {
        Self(raw)
    }

    /// Returns the raw value.
    #[inline]
    pub const fn as_raw(self) -> u16 {
        self.0
    }

    /// Returns `true` for special values that do not name a domain.
    #[inline]
    pub const fn is_reserved(self) -> bool {
        self.0 >= Self::FIRST_RESERVED.0
    }
}

impl From<DomId> for u16 {
    #[inline]
    fn from(dom: DomId) -> Self {
        dom.0
    }
}

impl TryFrom<u32> for DomId {
    type Error = Error;

    /// Converts a value read from the store or from a C structure; fails with [`ERANGE`] when it
    /// does not fit in a `domid_t`.
    #[inline]
    fn try_from(raw: u32) -> Result<Self> {
        u16::try_from(raw).map(Self).map_err(|_| ERANGE)
    }
}

impl TryFrom<c_int> for DomId {
    type Error = Error;

    /// Converts a C `int` holding a domain identifier; fails with [`ERANGE`] when it does not fit
    /// in a `domid_t`.
    #[inline]
    fn try_from(raw: c_int) -> Result<Self> {
        u16::try_from(raw).map(Self).map_err(|_| ERANGE)
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Marks the running KUnit test case as skipped, with `reason` as its status comment, as C's
/// `kunit_mark_skipped()` does; the case should then return without asserting anything.
///
/// For cases that cannot run in some kind of domain. Does nothing outside a KUnit test.
#[cfg(any(CONFIG_RUST_XEN_KUNIT_TEST, CONFIG_RUST_PCI_KUNIT_TEST))]
pub(crate) fn kunit_skip(reason: &CStr) {
    // SAFETY: `kunit_get_current_test()` has no preconditions.
    let test = unsafe { bindings::kunit_get_current_test() };
    if test.is_null() {
        return;
    }

    // SAFETY: `test` is the test case running on this thread, valid for the duration of the
    // call. The status and its comment are written by the test's own thread, as
    // `kunit_mark_skipped()` does; the comment stays NUL-terminated.
    unsafe {
        let comment = &mut (*test).status_comment;
        let len = reason.to_bytes().len().min(comment.len() - 1);
        for (dst, &src) in comment.iter_mut().zip(&reason.to_bytes()[..len]) {
            // CAST: A byte of the string, as the C `char` it is.
            *dst = src as c_char;
        }
        comment[len] = 0;
        (&raw mut (*test).status).write_volatile(bindings::kunit_status_KUNIT_SKIPPED);
    }
}

#[cfg(CONFIG_RUST_XEN_KUNIT_TEST)]
#[macros::kunit_tests(rust_xen_domid)]
mod tests {
    use super::*;

    #[test]
    fn domid_conversions() {
        assert_eq!(DomId::try_from(0u32), Ok(DomId::INITIAL));
        assert_eq!(DomId::try_from(0xffffu32).map(DomId::as_raw), Ok(0xffff));
        assert_eq!(DomId::try_from(0x1_0000u32), Err(ERANGE));
        assert_eq!(DomId::try_from(-1 as c_int), Err(ERANGE));
        assert_eq!(u16::from(DomId::new(42)), 42);
    }

    #[test]
    fn domid_reserved() {
        assert!(!DomId::INITIAL.is_reserved());
        assert!(!DomId::new(0x7fef).is_reserved());
        assert!(DomId::SELF.is_reserved());
        assert!(DomId::INVALID.is_reserved());
    }
}
