// SPDX-License-Identifier: GPL-2.0

//! XenStore access: reads, writes, transactions and watches.
//!
//! XenStore is a tree of nodes, each with a byte-string value, shared by all domains and served
//! by the `xenstored` daemon. Paths are given as a directory and a node name inside it, as in C;
//! an empty node name (`c""`) designates the directory itself.
//!
//! Every operation is available through the [`Store`] trait, implemented by [`Nil`] (a single
//! request outside any transaction, C's `XBT_NIL`) and by [`Transaction`]. Values are byte
//! strings: [`Store::read`] hands back the bytes, [`Store::read_u32`] parses the decimal integers
//! the PV protocols are made of.
//!
//! # Examples
//!
//! ```
//! use kernel::xen::xenstore::{self, Nil, Store as _};
//!
//! fn publish(dir: &CStr, gref: u32, port: u32) -> Result {
//!     // Both keys appear atomically; the whole transaction is retried on conflict.
//!     xenstore::transaction(|tx| {
//!         tx.write_fmt(dir, c"ring-ref", fmt!("{gref}"))?;
//!         tx.write_fmt(dir, c"event-channel", fmt!("{port}"))
//!     })?;
//!
//!     let state = Nil.read_u32(dir, c"state")?;
//!     pr_info!("state is {state}\n");
//!     Ok(())
//! }
//! ```
//!
//! C header: [`include/xen/xenbus.h`](srctree/include/xen/xenbus.h)

use crate::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    fmt,
    prelude::*,
    str::CString,
    sync::{
        Arc,
        ArcBorrow, //
    },
    types::Opaque, //
};
use core::{
    marker::PhantomPinned,
    ptr::NonNull, //
};

mod private {
    pub trait Sealed {}

    impl Sealed for super::Nil {}
    impl Sealed for super::Transaction {}
}

/// The XenStore operations, available outside a transaction through [`Nil`] and inside one
/// through [`Transaction`].
///
/// Paths are `dir/node`; an empty `node` designates `dir` itself.
pub trait Store: private::Sealed {
    /// Returns the C transaction handle the operations are issued in.
    #[doc(hidden)]
    fn raw_transaction(&self) -> bindings::xenbus_transaction;

    /// Reads the value of `dir/node`.
    ///
    /// Fails with [`ENOENT`] when the node does not exist.
    fn read(&self, dir: &CStr, node: &CStr) -> Result<KVec<u8>> {
        let mut len: c_uint = 0;

        // SAFETY: `dir` and `node` are valid NUL-terminated strings and `len` is valid for writes.
        let buf = from_err_ptr(unsafe {
            bindings::xenbus_read(
                self.raw_transaction(),
                dir.as_char_ptr(),
                node.as_char_ptr(),
                &mut len,
            )
        })?;

        // CAST: `c_uint` always fits in `usize` on the architectures Xen supports.
        let len = len as usize;

        // SAFETY: On success `xenbus_read()` returns a buffer from `kmalloc()` holding `len`
        // initialised bytes followed by a NUL byte, which is ours to free: it satisfies the
        // requirements of a `KVec<u8>` of capacity `len + 1` and length `len`.
        Ok(unsafe { KVec::from_raw_parts(buf.cast::<u8>(), len, len + 1) })
    }

    /// Reads the value of `dir/node` as a C string.
    ///
    /// Fails with [`EINVAL`] when the value contains a NUL byte.
    fn read_cstring(&self, dir: &CStr, node: &CStr) -> Result<CString> {
        let mut value = self.read(dir, node)?;
        if value.contains(&0) {
            return Err(EINVAL);
        }
        value.push(0, GFP_KERNEL)?;
        let value = CStr::from_bytes_with_nul(&value).map_err(|_| EINVAL)?;
        Ok(CString::try_from(value)?)
    }

    /// Reads `dir/node` and parses it as an unsigned decimal integer, as written by `"%u"`.
    ///
    /// Fails with [`ENOENT`] when the node does not exist, [`EINVAL`] when the value is not a
    /// decimal number and [`ERANGE`] when it does not fit in a `u32`.
    fn read_u32(&self, dir: &CStr, node: &CStr) -> Result<u32> {
        parse_u32(&self.read(dir, node)?)
    }

    /// Writes `value` to `dir/node`, creating the node and its missing parents.
    fn write(&self, dir: &CStr, node: &CStr, value: &CStr) -> Result {
        // SAFETY: All three strings are valid and NUL-terminated.
        to_result(unsafe {
            bindings::xenbus_write(
                self.raw_transaction(),
                dir.as_char_ptr(),
                node.as_char_ptr(),
                value.as_char_ptr(),
            )
        })
    }

    /// Writes the bytes `value` to `dir/node`.
    ///
    /// The kernel's XenStore client transfers values as C strings, so `value` must not contain a
    /// NUL byte ([`EINVAL`]).
    fn write_bytes(&self, dir: &CStr, node: &CStr, value: &[u8]) -> Result {
        if value.contains(&0) {
            return Err(EINVAL);
        }
        let mut buf = KVec::with_capacity(value.len() + 1, GFP_KERNEL)?;
        buf.extend_from_slice(value, GFP_KERNEL)?;
        buf.push(0, GFP_KERNEL)?;
        let value = CStr::from_bytes_with_nul(&buf).map_err(|_| EINVAL)?;
        self.write(dir, node, value)
    }

    /// Formats `args` and writes the result to `dir/node`, like C's `xenbus_printf()`.
    fn write_fmt(&self, dir: &CStr, node: &CStr, args: fmt::Arguments<'_>) -> Result {
        let value = CString::try_from_fmt(args)?;
        self.write(dir, node, &value)
    }

    /// Returns `true` if `dir/node` exists.
    fn exists(&self, dir: &CStr, node: &CStr) -> bool {
        // SAFETY: `dir` and `node` are valid NUL-terminated strings.
        unsafe {
            bindings::xenbus_exists(
                self.raw_transaction(),
                dir.as_char_ptr(),
                node.as_char_ptr(),
            ) != 0
        }
    }

    /// Lists the names of the children of `dir/node`.
    fn directory(&self, dir: &CStr, node: &CStr) -> Result<Directory> {
        let mut num: c_uint = 0;

        // SAFETY: `dir` and `node` are valid NUL-terminated strings and `num` is valid for writes.
        let entries = from_err_ptr(unsafe {
            bindings::xenbus_directory(
                self.raw_transaction(),
                dir.as_char_ptr(),
                node.as_char_ptr(),
                &mut num,
            )
        })?;

        // INVARIANT: On success `xenbus_directory()` returns one `kmalloc()` allocation holding
        // `num` pointers to NUL-terminated names stored in the same allocation.
        Ok(Directory {
            // The pointer is non-NULL: `from_err_ptr` let it through, and even an empty listing
            // is a (zero-sized) allocation.
            entries: NonNull::new(entries).ok_or(ENOMEM)?,
            // CAST: `c_uint` always fits in `usize` on the architectures Xen supports.
            len: num as usize,
        })
    }

    /// Removes `dir/node` and everything below it.
    ///
    /// Removing a node that does not exist fails with [`ENOENT`].
    fn remove(&self, dir: &CStr, node: &CStr) -> Result {
        // SAFETY: `dir` and `node` are valid NUL-terminated strings.
        to_result(unsafe {
            bindings::xenbus_rm(
                self.raw_transaction(),
                dir.as_char_ptr(),
                node.as_char_ptr(),
            )
        })
    }

    /// Creates `dir/node` with an empty value, unless it already exists.
    ///
    /// The kernel's XenStore client has no `XS_MKDIR` request: the node is created by writing an
    /// empty value when it is absent. Outside a transaction, a node created concurrently by
    /// someone else between the check and the write gets its value overwritten.
    fn mkdir(&self, dir: &CStr, node: &CStr) -> Result {
        if self.exists(dir, node) {
            return Ok(());
        }
        self.write(dir, node, c"")
    }
}

/// Issues each [`Store`] operation on its own, outside any transaction (C's `XBT_NIL`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Nil;

impl Store for Nil {
    #[inline]
    fn raw_transaction(&self) -> bindings::xenbus_transaction {
        bindings::xenbus_transaction { id: 0 }
    }
}

/// Parses a XenStore value holding an unsigned decimal integer, such as a grant reference, a
/// port or a `XenbusState`.
///
/// Only digits are accepted, as written by `"%u"` or `"%d"` for a non-negative value; no sign,
/// no blanks and no trailing bytes. Fails with [`EINVAL`] on malformed input and [`ERANGE`] on
/// overflow.
pub fn parse_u32(value: &[u8]) -> Result<u32> {
    if value.is_empty() {
        return Err(EINVAL);
    }
    value.iter().try_fold(0u32, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(EINVAL);
        }
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u32::from(b - b'0')))
            .ok_or(ERANGE)
    })
}

/// The names of the children of a XenStore node, as returned by [`Store::directory`].
///
/// # Invariants
///
/// `entries` is a `kmalloc()` allocation owned by this object, holding `len` pointers to
/// NUL-terminated strings that live in the same allocation.
pub struct Directory {
    entries: NonNull<*mut c_char>,
    len: usize,
}

// SAFETY: `Directory` owns its allocation, which can be freed from any thread.
unsafe impl Send for Directory {}

// SAFETY: `Directory` only gives out shared references to immutable data.
unsafe impl Sync for Directory {}

impl Directory {
    /// Returns the number of children.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if the node has no children.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the name of the `index`-th child.
    pub fn get(&self, index: usize) -> Option<&CStr> {
        if index >= self.len {
            return None;
        }

        // SAFETY: `index < self.len`, so by the type invariant the slot holds a pointer to a
        // NUL-terminated string that lives as long as `self`.
        Some(unsafe { CStr::from_char_ptr(*self.entries.as_ptr().add(index)) })
    }

    /// Returns an iterator over the names of the children.
    pub fn iter(&self) -> impl Iterator<Item = &CStr> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `entries` is a `kmalloc()` allocation owned by `self`.
        unsafe { bindings::kfree(self.entries.as_ptr().cast()) };
    }
}

/// A XenStore transaction.
///
/// Operations issued through a transaction (with the [`Store`] methods) see a consistent
/// snapshot of the store and are applied atomically when it is committed. Dropping a transaction
/// without committing it aborts it.
///
/// Prefer [`transaction`], which retries the whole transaction when the commit fails because of
/// a conflicting update.
///
/// # Invariants
///
/// `raw` is a transaction started with `xenbus_transaction_start()` and not ended yet.
pub struct Transaction {
    raw: bindings::xenbus_transaction,
}

impl Transaction {
    /// Starts a transaction.
    pub fn start() -> Result<Self> {
        let mut raw = bindings::xenbus_transaction { id: 0 };

        // SAFETY: `raw` is valid for writes.
        to_result(unsafe { bindings::xenbus_transaction_start(&mut raw) })?;

        // INVARIANT: The transaction was just started.
        Ok(Self { raw })
    }

    /// Commits the transaction.
    ///
    /// Fails with [`EAGAIN`] when a conflicting update happened since the transaction started:
    /// nothing was written, and the caller should start over.
    pub fn commit(self) -> Result {
        let this = core::mem::ManuallyDrop::new(self);

        // SAFETY: By the type invariant the transaction is started and not ended; `this` is not
        // dropped, so it is ended exactly once.
        to_result(unsafe { bindings::xenbus_transaction_end(this.raw, false) })
    }

    /// Aborts the transaction, discarding its writes.
    #[inline]
    pub fn abort(self) {
        drop(self);
    }
}

impl Store for Transaction {
    #[inline]
    fn raw_transaction(&self) -> bindings::xenbus_transaction {
        self.raw
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the transaction is started and not ended; it is ended
        // here, once, as `self` goes away.
        let _ = unsafe { bindings::xenbus_transaction_end(self.raw, true) };
    }
}

/// The number of times [`transaction`] tries its closure before giving up with [`EAGAIN`].
pub const TRANSACTION_ATTEMPTS: u32 = 32;

/// Runs `f` in a transaction and commits it, starting over when the store reports a conflict.
///
/// When `f` fails, the transaction is aborted and its error returned, except for [`EAGAIN`],
/// which also starts the transaction over. After [`TRANSACTION_ATTEMPTS`] conflicting attempts,
/// fails with [`EAGAIN`].
///
/// `f` may run several times, so it should have no effect besides its store operations.
pub fn transaction<R>(mut f: impl FnMut(&Transaction) -> Result<R>) -> Result<R> {
    for _ in 0..TRANSACTION_ATTEMPTS {
        let tx = Transaction::start()?;
        let ret = match f(&tx) {
            Ok(ret) => ret,
            Err(e) if e == EAGAIN => continue,
            Err(e) => return Err(e),
        };
        match tx.commit() {
            Ok(()) => return Ok(ret),
            Err(e) if e == EAGAIN => continue,
            Err(e) => return Err(e),
        }
    }
    Err(EAGAIN)
}

/// Callbacks of a [`Watch`].
pub trait WatchHandler: Sync {
    /// Called when the watched node, or a node below it, changed.
    ///
    /// `path` is the node that changed and `token` the watch's token. Called from the `xenwatch`
    /// thread, one event at a time for all watches of the system, in process context: it may
    /// sleep and access the store, but should not block for long.
    ///
    /// A newly registered watch fires once right away, whether or not anything changed.
    fn changed(&self, path: &CStr, token: &CStr);
}

/// A registered XenStore watch.
///
/// The handler is called whenever the watched node or any node below it changes (including its
/// creation and removal). The watch is unregistered when dropped, after any call of the handler
/// in progress on another thread has returned.
///
/// A watch may be dropped from its own handler (for example by a handler that finds its work
/// done): the watch is unregistered at once, and the handler's memory lives until that call
/// returns (each call holds a reference to it).
///
/// # Examples
///
/// ```
/// use kernel::{
///     str::CString,
///     xen::xenstore::{Watch, WatchHandler},
/// };
///
/// struct StateWatcher;
///
/// impl WatchHandler for StateWatcher {
///     fn changed(&self, path: &CStr, _token: &CStr) {
///         pr_info!("{path} changed\n");
///     }
/// }
///
/// fn watch_state(dir: &CStr) -> Result<Watch<StateWatcher>> {
///     let path = CString::try_from_fmt(fmt!("{dir}/state"))?;
///     Watch::new(path, Ok(StateWatcher), GFP_KERNEL)
/// }
/// ```
///
/// # Invariants
///
/// `inner.watch` is registered with `register_xenbus_watch()` until the [`Watch`] is dropped.
pub struct Watch<T: WatchHandler> {
    inner: Arc<WatchInner<T>>,
}

/// What a [`Watch`] shares with the calls of its handler in progress.
///
/// # Invariants
///
/// While registered, `watch.node` points to the string owned by `path` and `watch.callback` is
/// [`WatchInner::callback`]; the memory is that of an [`Arc`].
#[pin_data]
struct WatchInner<T: WatchHandler> {
    #[pin]
    watch: Opaque<bindings::xenbus_watch>,
    path: CString,
    #[pin]
    handler: T,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The C `xenbus_watch` is only touched by the XenStore core under its own locks; the
// handler is shared (`T: Sync`), and dropped by whichever thread drops the last reference
// (`T: Send`).
unsafe impl<T: WatchHandler + Send> Send for WatchInner<T> {}

// SAFETY: `&WatchInner<T>` only gives access to `&T` (`T: Sync`) and to immutable data.
unsafe impl<T: WatchHandler> Sync for WatchInner<T> {}

impl<T: WatchHandler + Send + 'static> Watch<T> {
    /// Watches the node `path` (an absolute path, or one relative to the domain's home,
    /// `/local/domain/<domid>`) and everything below it.
    ///
    /// For handlers that borrow data, such as a bound device, see [`Watch::new_with_lt`].
    pub fn new(
        path: CString,
        handler: impl PinInit<T, Error>,
        flags: crate::alloc::Flags,
    ) -> Result<Self> {
        // SAFETY: `T: 'static`, so the handler's data stays valid even if the watch is leaked
        // (its callback's code is its module's: a watch leaked past the module's unload is not
        // covered, as for `evtchn::Registration`).
        unsafe { Self::new_with_lt(path, handler, flags) }
    }
}

impl<T: WatchHandler + Send> Watch<T> {
    /// Watches the node `path` like [`Watch::new`], with a handler that may borrow data.
    ///
    /// # Safety
    ///
    /// Callers must not `mem::forget()` the returned [`Watch`] or otherwise prevent its [`Drop`]
    /// implementation from running: the handler would keep being called after the data it
    /// borrows is gone.
    pub unsafe fn new_with_lt(
        path: CString,
        handler: impl PinInit<T, Error>,
        flags: crate::alloc::Flags,
    ) -> Result<Self> {
        let inner = Arc::pin_init(
            try_pin_init!(WatchInner {
                watch: Opaque::zeroed(),
                path,
                handler <- handler,
                _pin: PhantomPinned,
            }),
            flags,
        )?;

        let watch = inner.watch.get();
        // SAFETY: `watch` is a zeroed, not yet registered `xenbus_watch` in `inner`, which we
        // own; the string of `path` lives as long as `inner`.
        unsafe {
            (*watch).node = inner.path.as_char_ptr();
            (*watch).will_handle = None;
            (*watch).callback = Some(WatchInner::<T>::callback);
        }

        // SAFETY: All fields are initialised, so events may be delivered right away; the
        // registration is undone in `drop`, while `Self` holds a reference to `inner`.
        to_result(unsafe { bindings::register_xenbus_watch(watch) })?;

        // INVARIANT: Registered above.
        Ok(Self { inner })
    }

    /// Returns the watched path.
    #[inline]
    pub fn path(&self) -> &CStr {
        &self.inner.path
    }

    /// Returns the handler.
    #[inline]
    pub fn handler(&self) -> &T {
        &self.inner.handler
    }
}

impl<T: WatchHandler> WatchInner<T> {
    /// # Safety
    ///
    /// Only called by the XenStore core, with `watch` embedded in a registered `WatchInner<T>`
    /// and valid NUL-terminated strings.
    unsafe extern "C" fn callback(
        watch: *mut bindings::xenbus_watch,
        path: *const c_char,
        token: *const c_char,
    ) {
        let watch = Opaque::cast_from(watch).cast_mut();
        // SAFETY: By the type invariants the only watches registered with this callback are the
        // `watch` field of a `WatchInner<T>`.
        let this = unsafe { crate::container_of!(watch, Self, watch) };

        // SAFETY: That `WatchInner<T>` is in an `Arc`, and while registered the `Watch` holds a
        // reference to it: the count is not zero. Unregistering waits for this call to return,
        // unless this very call drops the `Watch`; the reference taken here keeps the memory
        // until the handler returned.
        let this: Arc<Self> = unsafe { ArcBorrow::from_raw(this) }.into();

        // SAFETY: The XenStore core passes valid strings that outlive the call.
        let (path, token) = unsafe { (CStr::from_char_ptr(path), CStr::from_char_ptr(token)) };

        this.handler.changed(path, token);
    }
}

impl<T: WatchHandler> Drop for Watch<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the watch is registered. Unregistering drops its queued
        // events and waits for a running call of the handler to return, unless called from
        // that call (then the call holds its own reference to `inner`): afterwards the XenStore
        // core holds no pointer to `inner`.
        unsafe { bindings::unregister_xenbus_watch(self.inner.watch.get()) };
    }
}

#[cfg(CONFIG_RUST_XEN_KUNIT_TEST)]
#[macros::kunit_tests(rust_xen_xenstore)]
mod tests {
    use super::*;

    #[test]
    fn parse_u32_accepts_decimal() {
        assert_eq!(parse_u32(b"0"), Ok(0));
        assert_eq!(parse_u32(b"7"), Ok(7));
        assert_eq!(parse_u32(b"0042"), Ok(42));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
    }

    #[test]
    fn parse_u32_rejects_garbage() {
        assert_eq!(parse_u32(b""), Err(EINVAL));
        assert_eq!(parse_u32(b"-1"), Err(EINVAL));
        assert_eq!(parse_u32(b"+1"), Err(EINVAL));
        assert_eq!(parse_u32(b" 1"), Err(EINVAL));
        assert_eq!(parse_u32(b"1\n"), Err(EINVAL));
        assert_eq!(parse_u32(b"0x10"), Err(EINVAL));
        assert_eq!(parse_u32(b"4294967296"), Err(ERANGE));
        assert_eq!(parse_u32(b"99999999999999999999"), Err(ERANGE));
    }

    #[test]
    fn nil_is_xbt_nil() {
        assert_eq!(Nil.raw_transaction().id, 0);
    }

    use crate::{
        sync::{
            atomic::{
                Atomic,
                Relaxed, //
            },
            new_mutex,
            Arc,
            Mutex, //
        },
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// The events a watch delivered: all of them, and those for the node the test writes.
    struct Events {
        all: Atomic<u32>,
        node: Atomic<u32>,
    }

    impl Events {
        fn new() -> Result<Arc<Self>> {
            Ok(Arc::new(
                Events {
                    all: Atomic::new(0),
                    node: Atomic::new(0),
                },
                GFP_KERNEL,
            )?)
        }
    }

    /// Skips the calling test where no store can answer: KUnit runs during boot, before user
    /// space starts the initial domain's `xenstored`, and every request would wait for it.
    fn no_store() -> bool {
        let none = crate::xen::is_initial_domain() || !crate::xen::is_domain();
        if none {
            crate::xen::kunit_skip(c"no xenstored yet in the initial domain at boot");
        }
        none
    }

    struct Counter(Arc<Events>);

    impl WatchHandler for Counter {
        fn changed(&self, path: &CStr, _token: &CStr) {
            self.0.all.fetch_add(1, Relaxed);
            if path.to_bytes().ends_with(b"/xenpci-kunit/node") {
                self.0.node.fetch_add(1, Relaxed);
            }
        }
    }

    /// Waits up to two seconds for `count` to reach `n`.
    fn wait_count(count: &Atomic<u32>, n: u32) -> u32 {
        for _ in 0..200 {
            if count.load(Relaxed) >= n {
                break;
            }
            fsleep(Delta::from_millis(10));
        }
        count.load(Relaxed)
    }

    /// Registers a watch on a directory of this domain's home, writes a node below it and
    /// checks the handler saw it; once the watch is dropped, a write reaches no handler.
    ///
    /// Skipped in the initial domain: KUnit runs during boot, before user space starts its
    /// `xenstored`, and every request would wait for it.
    #[test]
    fn watch_sees_writes() -> Result {
        if no_store() {
            return Ok(());
        }
        const DIR: &CStr = c"data/xenpci-kunit";
        let _ = Nil.remove(DIR, c"");

        let events = Events::new()?;
        let watch = Watch::new(
            CString::try_from(DIR)?,
            Ok(Counter(events.clone())),
            GFP_KERNEL,
        )?;
        assert_eq!(watch.path(), DIR);

        // A new watch fires once by itself.
        assert!(wait_count(&events.all, 1) >= 1);
        assert_eq!(events.node.load(Relaxed), 0);

        Nil.write(DIR, c"node", c"1")?;
        assert_eq!(wait_count(&events.node, 1), 1);
        assert_eq!(Nil.read_u32(DIR, c"node"), Ok(1));

        drop(watch);
        let all = events.all.load(Relaxed);
        Nil.write(DIR, c"node", c"2")?;
        fsleep(Delta::from_millis(100));
        assert_eq!(events.all.load(Relaxed), all);

        Nil.remove(DIR, c"")?;
        assert!(!Nil.exists(DIR, c""));
        Ok(())
    }

    /// Where the handler of [`drops_itself`] finds its own watch.
    #[pin_data]
    struct Slot {
        #[pin]
        watch: Mutex<Option<Watch<SelfDropper>>>,
    }

    /// A handler that drops its own watch at the first event it finds it, then uses its own
    /// fields: the call's reference keeps them.
    struct SelfDropper {
        slot: Arc<Slot>,
        events: Arc<Events>,
    }

    impl WatchHandler for SelfDropper {
        fn changed(&self, _path: &CStr, _token: &CStr) {
            let watch = self.slot.watch.lock().take();
            let dropped = watch.is_some();
            drop(watch);
            // After the drop: `self` must still be there.
            self.events.all.fetch_add(1, Relaxed);
            if dropped {
                self.events.node.fetch_add(1, Relaxed);
            }
        }
    }

    /// A watch dropped by its own handler stops at once, and the call that dropped it ends
    /// normally.
    #[test]
    fn watch_drops_itself() -> Result {
        if no_store() {
            return Ok(());
        }
        const DIR: &CStr = c"data/xenpci-kunit-self";
        let _ = Nil.remove(DIR, c"");

        let events = Events::new()?;
        let slot = Arc::pin_init(
            pin_init!(Slot {
                watch <- new_mutex!(None),
            }),
            GFP_KERNEL,
        )?;
        let watch = Watch::new(
            CString::try_from(DIR)?,
            Ok(SelfDropper {
                slot: slot.clone(),
                events: events.clone(),
            }),
            GFP_KERNEL,
        )?;
        *slot.watch.lock() = Some(watch);

        // The first event after the watch is in its slot drops it.
        Nil.write(DIR, c"node", c"1")?;
        let dropped = wait_count(&events.node, 1);
        // Breaks the cycle (slot -> watch -> handler -> slot) should the handler not have.
        let left = slot.watch.lock().take();
        assert!(left.is_none());
        drop(left);
        assert_eq!(dropped, 1);

        let all = events.all.load(Relaxed);
        Nil.write(DIR, c"node", c"2")?;
        fsleep(Delta::from_millis(100));
        assert_eq!(events.all.load(Relaxed), all);

        Nil.remove(DIR, c"")?;
        Ok(())
    }
}
