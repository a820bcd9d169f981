// SPDX-License-Identifier: GPL-2.0

//! Driver attributes: files in a driver's sysfs directory, `/sys/bus/<bus>/drivers/<name>/`.
//!
//! A driver attribute belongs to a driver, not to one of its devices: it is how administrators
//! configure the driver as a whole, for example which devices it should take. Attributes are
//! declared statically with [`kernel::driver_attribute_groups!`] and handed to the bus driver
//! registration (for PCI, [`pci::Driver::ATTRIBUTE_GROUPS`]), which creates them together with
//! the driver's directory, before user space is told the driver exists, and removes them before
//! the driver goes away.
//!
//! C header: [`include/linux/device/driver.h`](srctree/include/linux/device/driver.h)
//!
//! [`pci::Driver::ATTRIBUTE_GROUPS`]: kernel::pci::Driver::ATTRIBUTE_GROUPS

use crate::{
    bindings,
    ffi::c_char,
    page::PAGE_SIZE,
    prelude::*,
    types::Opaque, //
};
use core::{
    fmt::{
        self,
        Write, //
    },
    marker::PhantomData, //
};

/// What a driver attribute does when it is read or written.
///
/// Implement [`AttributeOps::show`] for a readable attribute, [`AttributeOps::store`] for a
/// writable one, or both; the file mode follows (`0444`, `0200` or `0644`). Both run in process
/// context and may sleep; sysfs serialises neither against the other nor against the driver's
/// own callbacks.
#[vtable]
pub trait AttributeOps: 'static {
    /// Writes the attribute's value to `out`.
    fn show(_out: &mut ShowBuffer<'_>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Parses and applies `input`, what user space wrote (usually ending with a newline).
    ///
    /// On success the whole write is consumed; an error fails the write with its code.
    fn store(_input: &[u8]) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The text of an attribute being read: at most one page, less the byte sysfs keeps for the
/// terminating NUL.
///
/// [`ShowBuffer::emit`] writes whole items: an item that does not fit leaves the buffer as it
/// was, so a list shown one line at a time is cut between lines, never inside one.
pub struct ShowBuffer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> ShowBuffer<'a> {
    /// Creates an empty buffer writing to `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends `args` if all of it fits, and fails with [`fmt::Error`] leaving the buffer
    /// unchanged otherwise.
    pub fn emit(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        let start = self.len;
        let res = self.write_fmt(args);
        if res.is_err() {
            self.len = start;
        }
        res
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The number of bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Write for ShowBuffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A driver attribute (`struct driver_attribute`) named `name` whose operations are `T`.
///
/// Only [`kernel::driver_attribute_groups!`] creates these: sysfs needs them for as long as the
/// driver is registered, so they live in statics.
#[repr(transparent)]
pub struct Attribute<T: AttributeOps> {
    raw: Opaque<bindings::driver_attribute>,
    _ops: PhantomData<T>,
}

// SAFETY: The attribute is never changed after its constant initialisation; sysfs only reads it,
// and its callbacks are plain functions.
unsafe impl<T: AttributeOps> Sync for Attribute<T> {}

// `Attribute::as_attribute` relies on it.
const _: () = assert!(core::mem::offset_of!(bindings::driver_attribute, attr) == 0);

impl<T: AttributeOps> Attribute<T> {
    /// Creates the attribute.
    ///
    /// Fails to build if `T` implements neither [`AttributeOps::show`] nor
    /// [`AttributeOps::store`].
    #[doc(hidden)]
    pub const fn new(name: &'static CStr) -> Self {
        let mode: bindings::umode_t = match (T::HAS_SHOW, T::HAS_STORE) {
            (true, true) => 0o644,
            (true, false) => 0o444,
            (false, true) => 0o200,
            (false, false) => panic!("a driver attribute needs `show`, `store` or both"),
        };
        // SAFETY: All zeroes is a valid `struct attribute`: a null name, mode 0 and, with
        // `CONFIG_DEBUG_LOCK_ALLOC`, no lockdep key (sysfs uses the static attribute's own
        // address as its key).
        let mut attr: bindings::attribute = unsafe { core::mem::zeroed() };
        attr.name = crate::str::as_char_ptr_in_const_context(name);
        attr.mode = mode;

        Self {
            raw: Opaque::new(bindings::driver_attribute {
                attr,
                show: if T::HAS_SHOW {
                    Some(Self::show_callback)
                } else {
                    None
                },
                store: if T::HAS_STORE {
                    Some(Self::store_callback)
                } else {
                    None
                },
            }),
            _ops: PhantomData,
        }
    }

    /// The `struct attribute` of the attribute, as attribute groups list it.
    #[doc(hidden)]
    pub const fn as_attribute(&'static self) -> *const bindings::attribute {
        // `attr` is the first field of `struct driver_attribute` (asserted above).
        self.raw.get().cast_const().cast()
    }

    /// The `show` callback of `struct driver_attribute`.
    ///
    /// # Safety
    ///
    /// `buf` must be valid for writes of `PAGE_SIZE` bytes for the duration of the call.
    unsafe extern "C" fn show_callback(
        _driver: *mut bindings::device_driver,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: By the safety requirements of this function, which sysfs meets
        // (`sysfs_kf_seq_show()` hands out a page of its own), `buf` is valid for writes of
        // `PAGE_SIZE` bytes and nothing else accesses it during the call.
        let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
        // sysfs keeps the last byte of the page for the terminating NUL.
        let mut out = ShowBuffer::new(&mut page[..PAGE_SIZE - 1]);
        match T::show(&mut out) {
            // Less than `PAGE_SIZE`, so it fits.
            Ok(()) => out.len() as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// The `store` callback of `struct driver_attribute`.
    ///
    /// # Safety
    ///
    /// `buf` must be valid for reads of `count` bytes for the duration of the call.
    unsafe extern "C" fn store_callback(
        _driver: *mut bindings::device_driver,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: By the safety requirements of this function, which sysfs meets
        // (`sysfs_kf_write()` passes its copy of what user space wrote, at most a page), `buf`
        // is valid for reads of `count` bytes.
        let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
        match T::store(input) {
            // At most `PAGE_SIZE`, so it fits.
            Ok(()) => count as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

/// A null-terminated array of `N - 1` pointers in a static (attributes or attribute groups).
#[doc(hidden)]
#[repr(transparent)]
pub struct PtrList<T, const N: usize>([*const T; N]);

// SAFETY: The list is never changed after its constant initialisation, and it only points to
// statics that are `Sync` themselves.
unsafe impl<T, const N: usize> Sync for PtrList<T, N> {}

impl<T, const N: usize> PtrList<T, N> {
    /// Creates the list from `items`, whose last element must be null.
    ///
    /// # Safety
    ///
    /// Every non-null element must point to a `T` in a static that lives as long as the list,
    /// and the last element must be null.
    #[doc(hidden)]
    pub const unsafe fn new(items: [*const T; N]) -> Self {
        Self(items)
    }

    /// The first element.
    #[doc(hidden)]
    pub const fn as_ptr(&'static self) -> *const *const T {
        self.0.as_ptr()
    }
}

/// An attribute group without a name: its attributes go straight into the driver's directory.
#[doc(hidden)]
#[repr(transparent)]
pub struct Group(bindings::attribute_group);

// SAFETY: The group is never changed after its constant initialisation; it only points to
// statics that are `Sync` themselves.
unsafe impl Sync for Group {}

impl Group {
    /// Creates a group of the attributes in `attrs`.
    ///
    /// # Safety
    ///
    /// `attrs` must be a null-terminated list of pointers to [`Attribute`]s (as returned by
    /// [`Attribute::as_attribute`]), in a static.
    #[doc(hidden)]
    pub const unsafe fn new(attrs: *const *const bindings::attribute) -> Self {
        // SAFETY: All zeroes is a valid `struct attribute_group`: no name, no visibility
        // callbacks (every attribute is visible with its own mode), no attributes.
        let mut group: bindings::attribute_group = unsafe { core::mem::zeroed() };
        group.__bindgen_anon_2 = bindings::attribute_group__bindgen_ty_2 { attrs_const: attrs };
        Self(group)
    }

    /// The `struct attribute_group`.
    #[doc(hidden)]
    pub const fn as_raw(&'static self) -> *const bindings::attribute_group {
        &self.0
    }
}

/// The attribute groups of a driver, declared with [`kernel::driver_attribute_groups!`]: a
/// null-terminated list of `struct attribute_group` pointers, as `struct device_driver::groups`
/// expects.
///
/// # Invariants
///
/// `self.0` points to a null-terminated list of valid attribute groups in statics.
pub struct Groups(*const *const bindings::attribute_group);

// SAFETY: By the type invariant, `Groups` points to immutable statics that are `Sync`.
unsafe impl Sync for Groups {}

impl Groups {
    /// Creates the groups from their list.
    ///
    /// # Safety
    ///
    /// `list` must be a null-terminated list of pointers to valid [`Group`]s, all in statics.
    #[doc(hidden)]
    pub const unsafe fn new(list: *const *const bindings::attribute_group) -> Self {
        // INVARIANT: By the safety requirements of this function.
        Self(list)
    }

    /// The list, for `struct device_driver::groups`.
    pub fn as_raw(&'static self) -> *mut *const bindings::attribute_group {
        self.0.cast_mut()
    }
}

/// Declares the sysfs attributes of a driver, in a static of type [`Groups`] that the driver
/// hands to its bus registration (for PCI, [`kernel::pci::Driver::ATTRIBUTE_GROUPS`]).
///
/// Each attribute is a file name and a type implementing [`AttributeOps`].
///
/// # Examples
///
/// ```
/// use kernel::driver::attribute::{AttributeOps, ShowBuffer};
/// use kernel::prelude::*;
/// use kernel::sync::atomic::{Atomic, Relaxed};
///
/// static LIMIT: Atomic<u32> = Atomic::new(8);
///
/// struct Limit;
///
/// #[vtable]
/// impl AttributeOps for Limit {
///     fn show(out: &mut ShowBuffer<'_>) -> Result {
///         out.emit(format_args!("{}\n", LIMIT.load(Relaxed))).map_err(|_| EOVERFLOW)
///     }
///
///     fn store(input: &[u8]) -> Result {
///         let s = core::str::from_utf8(input).map_err(|_| EINVAL)?;
///         LIMIT.store(s.trim().parse().map_err(|_| EINVAL)?, Relaxed);
///         Ok(())
///     }
/// }
///
/// kernel::driver_attribute_groups! {
///     static MY_DRIVER_ATTRIBUTES = {
///         c"limit" => Limit,
///     };
/// }
/// ```
#[macro_export]
macro_rules! driver_attribute_groups {
    ($vis:vis static $name:ident = { $($file:literal => $ops:ty),+ $(,)? };) => {
        $vis static $name: $crate::driver::attribute::Groups = {
            const COUNT: usize = [$(stringify!($ops)),+].len();
            static ATTRS: $crate::driver::attribute::PtrList<
                $crate::bindings::attribute,
                { COUNT + 1 },
            > =
                // SAFETY: Every element points to an attribute in a static, and the list ends
                // with null.
                unsafe {
                $crate::driver::attribute::PtrList::new([
                    $({
                        static ATTR: $crate::driver::attribute::Attribute<$ops> =
                            $crate::driver::attribute::Attribute::new($file);
                        ATTR.as_attribute()
                    },)+
                    ::core::ptr::null(),
                ])
            };
            static GROUP: $crate::driver::attribute::Group =
                // SAFETY: `ATTRS` is a null-terminated list of attributes in a static.
                unsafe { $crate::driver::attribute::Group::new(ATTRS.as_ptr()) };
            static LIST: $crate::driver::attribute::PtrList<$crate::bindings::attribute_group, 2> =
                // SAFETY: `GROUP` is a group in a static, and the list ends with null.
                unsafe {
                    $crate::driver::attribute::PtrList::new([GROUP.as_raw(), ::core::ptr::null()])
                };
            // SAFETY: `LIST` is a null-terminated list of one group, in a static.
            unsafe { $crate::driver::attribute::Groups::new(LIST.as_ptr()) }
        };
    };
}

#[cfg(CONFIG_RUST_DRIVER_ATTRIBUTE_KUNIT_TEST)]
#[macros::kunit_tests(rust_driver_attribute)]
mod tests {
    use super::*;
    use core::ptr;

    struct ReadOnly;
    #[vtable]
    impl AttributeOps for ReadOnly {
        fn show(out: &mut ShowBuffer<'_>) -> Result {
            out.emit(format_args!("ro\n")).map_err(|_| EOVERFLOW)
        }
    }

    struct WriteOnly;
    #[vtable]
    impl AttributeOps for WriteOnly {
        fn store(input: &[u8]) -> Result {
            if input == b"ok\n" {
                Ok(())
            } else {
                Err(EINVAL)
            }
        }
    }

    struct ReadWrite;
    #[vtable]
    impl AttributeOps for ReadWrite {
        fn show(_out: &mut ShowBuffer<'_>) -> Result {
            Ok(())
        }
        fn store(_input: &[u8]) -> Result {
            Ok(())
        }
    }

    crate::driver_attribute_groups! {
        static TEST_GROUPS = {
            c"ro" => ReadOnly,
            c"wo" => WriteOnly,
            c"rw" => ReadWrite,
        };
    }

    /// The `i`-th attribute of the only group of `TEST_GROUPS`.
    fn attribute(i: usize) -> *const bindings::driver_attribute {
        // SAFETY: `TEST_GROUPS` is a list of one valid group of three attributes, in statics.
        unsafe {
            let group = *TEST_GROUPS.as_raw();
            let attrs = (*group).__bindgen_anon_2.attrs_const;
            (*attrs.add(i)).cast()
        }
    }

    #[test]
    fn modes_names_and_terminators() {
        let expected: [(&CStr, bindings::umode_t); 3] =
            [(c"ro", 0o444), (c"wo", 0o200), (c"rw", 0o644)];
        for (i, (name, mode)) in expected.iter().enumerate() {
            let attr = attribute(i);
            // SAFETY: `attr` points to one of the three attributes, in a static.
            let (got_name, got_mode, show, store) = unsafe {
                (
                    CStr::from_char_ptr((*attr).attr.name),
                    (*attr).attr.mode,
                    (*attr).show.is_some(),
                    (*attr).store.is_some(),
                )
            };
            assert_eq!(got_name, *name);
            assert_eq!(got_mode, *mode);
            assert_eq!(show, mode & 0o444 != 0);
            assert_eq!(store, mode & 0o200 != 0);
        }
        assert!(attribute(3).is_null());
        // SAFETY: `TEST_GROUPS` is a null-terminated list with one group.
        assert!(unsafe { *TEST_GROUPS.as_raw().add(1) }.is_null());
    }

    #[test]
    fn callbacks_run_the_operations() {
        let mut page = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL).unwrap();
        // SAFETY: `page` is valid for writes of `PAGE_SIZE` bytes.
        let n = unsafe {
            Attribute::<ReadOnly>::show_callback(ptr::null_mut(), page.as_mut_ptr().cast())
        };
        assert_eq!(n, 3);
        assert_eq!(&page[..3], b"ro\n");

        let ok = b"ok\n";
        // SAFETY: `ok` is valid for reads of its length.
        let n = unsafe {
            Attribute::<WriteOnly>::store_callback(ptr::null_mut(), ok.as_ptr().cast(), ok.len())
        };
        assert_eq!(n, 3);
        let bad = b"nope";
        // SAFETY: `bad` is valid for reads of its length.
        let n = unsafe {
            Attribute::<WriteOnly>::store_callback(ptr::null_mut(), bad.as_ptr().cast(), bad.len())
        };
        assert_eq!(n, EINVAL.to_errno() as isize);
    }

    #[test]
    fn show_buffer_emits_whole_items() {
        let mut buf = [0u8; 8];
        let mut out = ShowBuffer::new(&mut buf);
        assert!(out.is_empty());
        assert!(out.emit(format_args!("{}:{}\n", 1, 2)).is_ok());
        assert_eq!(out.as_bytes(), b"1:2\n");
        // Five more bytes do not fit in the four left: nothing of them is kept.
        assert!(out.emit(format_args!("{}{}\n", "ab", "cd")).is_err());
        assert_eq!(out.as_bytes(), b"1:2\n");
        assert!(out.emit(format_args!("abc\n")).is_ok());
        assert_eq!(out.len(), 8);
        assert!(out.emit(format_args!("x")).is_err());
    }
}
