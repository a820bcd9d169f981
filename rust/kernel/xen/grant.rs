// SPDX-License-Identifier: GPL-2.0

//! Memory shared between domains with grant references.
//!
//! A domain shares one of its pages by granting the other domain access to it; the other
//! domain maps the page by its grant reference. In a split driver the frontend allocates and
//! grants the shared pages ([`SharedRing`]) and publishes the references in XenStore; the
//! backend reads them and maps the pages ([`MappedRing`]).
//!
//! # Accessing shared memory
//!
//! The other domain reads and writes the shared pages at any time, and is not trusted. No Rust
//! reference into them is ever formed: both ring types give access through [`SharedMemory`],
//! whose accessors copy data in and out with volatile accesses (each byte is read exactly once,
//! so a value cannot change between its validation and its use) or operate on atomics, like
//! `READ_ONCE()`, `WRITE_ONCE()` and the atomic bit operations C drivers use. Protocol data
//! read from the other domain must be validated after it was copied.
//!
//! C headers: [`include/xen/grant_table.h`](srctree/include/xen/grant_table.h),
//! [`include/xen/xenbus.h`](srctree/include/xen/xenbus.h)

use crate::{
    alloc::Flags,
    bindings,
    device::Core,
    error::to_result,
    fmt,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Atomic, //
    },
    xen::xenbus, //
};
use core::ptr::NonNull;

/// The size of a Xen page, the unit of granted memory.
pub const PAGE_SIZE: usize = bindings::XEN_PAGE_SIZE;

/// The largest number of pages of a [`SharedRing`] or a [`MappedRing`].
// CAST: A small constant.
pub const MAX_RING_PAGES: usize = bindings::XENBUS_MAX_RING_GRANTS as usize;

/// A grant reference: the name under which a domain grants access to one of its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct GrantRef(bindings::grant_ref_t);

impl GrantRef {
    /// The invalid grant reference (`INVALID_GRANT_REF`).
    pub const INVALID: Self = Self(bindings::INVALID_GRANT_REF);

    /// Creates a grant reference from its raw value, for instance one read from XenStore.
    #[inline]
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// Returns the raw value, for instance to publish it in XenStore.
    #[inline]
    pub const fn as_raw(self) -> u32 {
        self.0
    }
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Memory shared with another domain, accessed without ever forming a Rust reference to it.
///
/// All accessors check that the accessed range is inside the memory, and that it is aligned for
/// the accessed type; they fail with [`EINVAL`] otherwise. Offsets are in bytes.
///
/// # Invariants
///
/// `ptr` is aligned to [`PAGE_SIZE`] and valid for reads and writes of `len` bytes for the
/// lifetime of the object; the bytes may be written by another domain at any time.
pub struct SharedMemory {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMemory {
    /// # Safety
    ///
    /// `ptr` must be aligned to [`PAGE_SIZE`] and valid for reads and writes of `len` bytes for
    /// the lifetime of the returned object.
    unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        // INVARIANT: Guaranteed by the safety requirements of this function.
        Self { ptr, len }
    }

    /// Returns the size of the memory, in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if the memory is empty (it never is).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns a raw pointer to the start of the memory.
    ///
    /// Using it requires `unsafe` code, which must neither form references to the memory nor
    /// read the same data twice expecting the same value: the other domain can change it at any
    /// time. It is valid for as long as `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Returns a pointer to `size` bytes at `offset`, aligned to `align`.
    fn range(&self, offset: usize, size: usize, align: usize) -> Result<*mut u8> {
        let end = offset.checked_add(size).ok_or(EINVAL)?;
        if end > self.len || offset % align != 0 {
            return Err(EINVAL);
        }

        // SAFETY: `offset + size <= self.len`, so the result is inside the allocation described
        // by the type invariant.
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Reads a `T` at `offset`, in one pass: later changes by the other domain do not affect
    /// the returned copy.
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        let ptr = self
            .range(offset, size_of::<T>(), align_of::<T>())?
            .cast::<T>();

        // SAFETY: `ptr` is in bounds and aligned (checked by `range`) and valid for reads by the
        // type invariant; any bit pattern is a valid `T` (`T: FromBytes`).
        Ok(unsafe { ptr.read_volatile() })
    }

    /// Writes `value` at `offset`.
    ///
    /// `T: IntoBytes` has no padding, so no uninitialised kernel memory reaches the other domain.
    pub fn write<T: IntoBytes>(&self, offset: usize, value: T) -> Result {
        let ptr = self
            .range(offset, size_of::<T>(), align_of::<T>())?
            .cast::<T>();

        // SAFETY: `ptr` is in bounds and aligned (checked by `range`) and valid for writes by
        // the type invariant.
        unsafe { ptr.write_volatile(value) };
        Ok(())
    }

    /// Copies `dst.len()` bytes at `offset` into `dst`, reading each byte once.
    pub fn copy_to_slice(&self, offset: usize, dst: &mut [u8]) -> Result {
        let src = self.range(offset, dst.len(), 1)?;
        for (i, byte) in dst.iter_mut().enumerate() {
            // SAFETY: `src + i` is in bounds (checked by `range`) and valid for reads by the
            // type invariant.
            *byte = unsafe { src.add(i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` to `offset`.
    pub fn copy_from_slice(&self, offset: usize, src: &[u8]) -> Result {
        let dst = self.range(offset, src.len(), 1)?;
        for (i, byte) in src.iter().enumerate() {
            // SAFETY: `dst + i` is in bounds (checked by `range`) and valid for writes by the
            // type invariant.
            unsafe { dst.add(i).write_volatile(*byte) };
        }
        Ok(())
    }

    /// Returns the 32-bit word at `offset` as an atomic, for flags and indices that both
    /// domains update with atomic operations.
    pub fn atomic_u32(&self, offset: usize) -> Result<&Atomic<u32>> {
        let ptr = self
            .range(offset, size_of::<u32>(), align_of::<u32>())?
            .cast::<u32>();

        // SAFETY: `ptr` is in bounds and aligned and valid for `&self` (type invariant). The
        // other domain's accesses are outside the Rust memory model; the protocols using this
        // word access it atomically on both sides.
        Ok(unsafe { Atomic::from_ptr(ptr) })
    }
}

// SAFETY: `SharedMemory` is a handle to memory that may be accessed from any thread; it only
// uses volatile and atomic accesses through `&self`.
unsafe impl Send for SharedMemory {}

// SAFETY: See above.
unsafe impl Sync for SharedMemory {}

/// Pages allocated by this domain and granted to the other end of a xenbus device.
///
/// This is the frontend side of a shared ring: the pages are zeroed, granted read-write to the
/// other end's domain, and published by their [`SharedRing::grant_refs`] in XenStore. When the
/// ring is dropped, the grants are revoked and the pages freed (or, if the other domain still
/// maps them, handed over to the grant table code, which frees them once unmapped).
///
/// The memory is accessed through [`SharedMemory`], which `SharedRing` dereferences to.
///
/// # Examples
///
/// ```
/// use kernel::{
///     device::Core,
///     xen::{grant::SharedRing, xenbus, xenstore::{Nil, Store as _}},
/// };
///
/// const FLAGS: usize = 0;
///
/// fn share(dev: &xenbus::Device<Core<'_>>) -> Result<SharedRing> {
///     let ring = SharedRing::new(dev, 1, GFP_KERNEL)?;
///     // Set bit 1 of the flags word that starts the shared page.
///     // One atomic step: a `cmpxchg()` loop could be kept failing by the other domain.
///     ring.atomic_u32(FLAGS)?.fetch_or(2, kernel::sync::atomic::Full);
///     Nil.write_fmt(dev.nodename(), c"pci-op-ref", fmt!("{}", ring.grant_refs()[0]))?;
///     Ok(ring)
/// }
/// ```
///
/// # Invariants
///
/// `mem` describes `nr_pages` pages set up with `xenbus_setup_ring()`, granted under the
/// references `grefs[..nr_pages]`.
pub struct SharedRing {
    mem: SharedMemory,
    nr_pages: usize,
    grefs: [GrantRef; MAX_RING_PAGES],
}

impl SharedRing {
    /// Allocates `nr_pages` zeroed pages (with the allocation `flags`) and grants them to the
    /// other end of `dev`.
    ///
    /// Fails with [`EINVAL`] if `nr_pages` is 0 or more than [`MAX_RING_PAGES`]. A failure to
    /// grant is also reported with [`xenbus::Device::dev_fatal`], which switches the device's
    /// state: hence the `Core` context, the driver's callbacks, and whatever `flags` say, a
    /// failure may sleep.
    pub fn new(dev: &xenbus::Device<Core<'_>>, nr_pages: usize, flags: Flags) -> Result<Self> {
        if nr_pages == 0 || nr_pages > MAX_RING_PAGES {
            return Err(EINVAL);
        }

        let mut vaddr: *mut c_void = core::ptr::null_mut();
        let mut grefs = [GrantRef::INVALID; MAX_RING_PAGES];

        // SAFETY:
        // - `dev.as_raw()` is a valid, bound xenbus device.
        // - `vaddr` is valid for writes and `grefs` for writes of `nr_pages` grant references
        //   (`GrantRef` is a transparent `grant_ref_t`).
        to_result(unsafe {
            bindings::xenbus_setup_ring(
                dev.as_raw(),
                flags.as_raw(),
                &mut vaddr,
                // CAST: `nr_pages <= MAX_RING_PAGES`, which fits in a `c_uint`.
                nr_pages as c_uint,
                grefs.as_mut_ptr().cast(),
            )
        })?;

        let ptr = NonNull::new(vaddr.cast::<u8>()).ok_or(ENOMEM)?;

        // INVARIANT: `xenbus_setup_ring()` succeeded for `nr_pages` pages granted as `grefs`.
        Ok(Self {
            // SAFETY: `ptr` comes from `alloc_pages_exact()` (page-aligned) for `nr_pages`
            // Xen pages, which stay allocated until `drop` tears the ring down.
            mem: unsafe { SharedMemory::new(ptr, nr_pages * PAGE_SIZE) },
            nr_pages,
            grefs,
        })
    }

    /// Returns the grant references of the pages, in order, to publish to the other end.
    #[inline]
    pub fn grant_refs(&self) -> &[GrantRef] {
        &self.grefs[..self.nr_pages]
    }
}

impl core::ops::Deref for SharedRing {
    type Target = SharedMemory;

    #[inline]
    fn deref(&self) -> &SharedMemory {
        &self.mem
    }
}

impl Drop for SharedRing {
    fn drop(&mut self) {
        let mut vaddr = self.mem.as_ptr().cast::<c_void>();

        // SAFETY: By the type invariant the ring was set up with `xenbus_setup_ring()` for
        // `nr_pages` pages granted as `grefs`; it is torn down once, here.
        unsafe {
            bindings::xenbus_teardown_ring(
                &mut vaddr,
                // CAST: `nr_pages <= MAX_RING_PAGES`, which fits in a `c_uint`.
                self.nr_pages as c_uint,
                self.grefs.as_mut_ptr().cast(),
            )
        };
    }
}

/// Pages of the other end of a xenbus device, mapped into this domain by their grant
/// references.
///
/// This is the backend side of a shared ring. The pages are unmapped when the ring is dropped.
/// The ring holds a reference to the device (unmapping reports failures in the device's
/// XenStore directory), not to its binding: the driver drops it at unbind at the latest, to give
/// the mapping back, but dropping it later is sound.
///
/// The memory is accessed through [`SharedMemory`], which `MappedRing` dereferences to.
///
/// # Examples
///
/// ```
/// use kernel::{
///     device::Core,
///     xen::{grant::{GrantRef, MappedRing}, xenbus, xenstore::{Nil, Store as _}},
/// };
///
/// fn map(dev: &xenbus::Device<Core<'_>>, frontend: &CStr) -> Result<MappedRing> {
///     let gref = GrantRef::from_raw(Nil.read_u32(frontend, c"pci-op-ref")?);
///     let ring = MappedRing::new(dev, &[gref])?;
///     // Copy the request out once, then validate the copy.
///     let cmd: u32 = ring.read(4)?;
///     pr_info!("command {cmd}\n");
///     Ok(ring)
/// }
/// ```
///
/// # Invariants
///
/// `mem` describes pages mapped with `xenbus_map_ring_valloc()` for `dev`.
pub struct MappedRing {
    mem: SharedMemory,
    dev: ARef<xenbus::Device>,
}

impl MappedRing {
    /// Maps the pages granted by the other end of `dev` under `grefs`.
    ///
    /// Fails with [`EINVAL`] if `grefs` is empty or longer than [`MAX_RING_PAGES`]. Mapping
    /// failures are also reported with [`xenbus::Device::dev_fatal`], which switches the
    /// device's state: hence the `Core` context, the driver's callbacks.
    pub fn new(dev: &xenbus::Device<Core<'_>>, grefs: &[GrantRef]) -> Result<Self> {
        if grefs.is_empty() || grefs.len() > MAX_RING_PAGES {
            return Err(EINVAL);
        }

        // The C function takes a mutable array; give it a copy.
        let mut refs = [GrantRef::INVALID; MAX_RING_PAGES];
        refs[..grefs.len()].copy_from_slice(grefs);
        let mut vaddr: *mut c_void = core::ptr::null_mut();

        // SAFETY:
        // - `dev.as_raw()` is a valid, bound xenbus device.
        // - `refs` holds `grefs.len()` grant references (`GrantRef` is a transparent
        //   `grant_ref_t`) and `vaddr` is valid for writes.
        to_result(unsafe {
            bindings::xenbus_map_ring_valloc(
                dev.as_raw(),
                refs.as_mut_ptr().cast(),
                // CAST: `grefs.len() <= MAX_RING_PAGES`, which fits in a `c_uint`.
                grefs.len() as c_uint,
                &mut vaddr,
            )
        })?;

        let Some(ptr) = NonNull::new(vaddr.cast::<u8>()) else {
            return Err(ENOMEM);
        };

        // INVARIANT: The pages were just mapped for `dev`.
        Ok(Self {
            // SAFETY: `ptr` is the page-aligned start of a mapping of `grefs.len()` Xen pages,
            // which stays until `drop` unmaps it.
            mem: unsafe { SharedMemory::new(ptr, grefs.len() * PAGE_SIZE) },
            dev: dev.into(),
        })
    }
}

impl core::ops::Deref for MappedRing {
    type Target = SharedMemory;

    #[inline]
    fn deref(&self) -> &SharedMemory {
        &self.mem
    }
}

impl Drop for MappedRing {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the pages were mapped with `xenbus_map_ring_valloc()`
        // for `self.dev`, a valid xenbus device (bound or not: the C function only unmaps the
        // pages and, on a failure, writes to the device's error node); they are unmapped once,
        // here.
        let ret = unsafe {
            bindings::xenbus_unmap_ring_vfree(self.dev.as_raw(), self.mem.as_ptr().cast())
        };
        if ret != 0 {
            dev_warn!(
                self.dev.as_ref(),
                "failed to unmap the shared ring: {}\n",
                ret
            );
        }
    }
}

#[cfg(CONFIG_RUST_XEN_KUNIT_TEST)]
#[macros::kunit_tests(rust_xen_grant)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 64]);

    #[test]
    fn shared_memory_bounds_and_alignment() -> Result {
        let mut page = KBox::new(Page([0; 64]), GFP_KERNEL)?;
        let ptr = NonNull::new(page.0.as_mut_ptr()).ok_or(EINVAL)?;

        // SAFETY: `page` is page-aligned, outlives `mem` and is not accessed otherwise while
        // `mem` exists.
        let mem = unsafe { SharedMemory::new(ptr, 64) };

        mem.write::<u32>(4, 0x1234_5678)?;
        assert_eq!(mem.read::<u32>(4), Ok(0x1234_5678));
        assert_eq!(mem.read::<u16>(4), Ok(0x5678));
        assert_eq!(mem.read::<u32>(60), Ok(0));
        assert_eq!(mem.read::<u32>(61), Err(EINVAL));
        assert_eq!(mem.read::<u32>(64), Err(EINVAL));
        assert_eq!(mem.read::<u32>(usize::MAX - 1), Err(EINVAL));
        assert_eq!(mem.write::<u64>(60, 0), Err(EINVAL));

        let mut buf = [0u8; 4];
        mem.copy_to_slice(4, &mut buf)?;
        assert_eq!(buf, 0x1234_5678u32.to_ne_bytes());
        assert_eq!(mem.copy_to_slice(62, &mut buf), Err(EINVAL));
        mem.copy_from_slice(60, &[1, 2, 3, 4])?;
        assert_eq!(mem.read::<[u8; 4]>(60), Ok([1, 2, 3, 4]));

        let flags = mem.atomic_u32(0)?;
        assert_eq!(flags.cmpxchg(0, 3, crate::sync::atomic::Full), Ok(0));
        assert_eq!(mem.read::<u32>(0), Ok(3));
        assert_eq!(flags.fetch_or(4, crate::sync::atomic::Full), 3);
        assert_eq!(flags.fetch_and(!1, crate::sync::atomic::Full), 7);
        assert_eq!(mem.read::<u32>(0), Ok(6));
        assert!(mem.atomic_u32(2).is_err());

        // `mem`'s borrow of the page ends with its last use, above.
        assert_eq!(page.0[0], 6);
        Ok(())
    }

    #[test]
    fn grant_ref() {
        assert_eq!(GrantRef::INVALID.as_raw(), u32::MAX);
        assert_eq!(GrantRef::from_raw(8).as_raw(), 8);
    }
}
