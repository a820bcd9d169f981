// SPDX-License-Identifier: GPL-2.0

//! Event channels: interrupts between domains.
//!
//! An event channel connects a port in one domain to a port in another; signalling one end
//! raises an interrupt at the other. In a split driver the frontend allocates an unbound port
//! for its backend's domain ([`LocalPort`]), binds it to an interrupt handler
//! ([`Registration::new_local`]) and publishes the port number in XenStore; the backend binds
//! to that remote port ([`Registration::new_interdomain`]).
//!
//! # Late EOI
//!
//! The other domain can signal as often as it likes. A channel bound in [`EoiMode::Late`] stays
//! masked after each event until the driver acknowledges it with [`Irq::lateeoi`], saying
//! whether the event led to any work ([`Eoi::Handled`]) or not ([`Eoi::Spurious`]); Xen's
//! event code throttles channels that keep signalling for nothing (XSA-332). Backends always
//! bind that way. Acknowledge once per delivered event: from the handler when it found nothing
//! to do, otherwise after the deferred work is done.
//!
//! C header: [`include/xen/events.h`](srctree/include/xen/events.h)

use crate::{
    bindings,
    device::{
        Bound,
        Core, //
    },
    error::to_result,
    fmt,
    irq::{
        Flags,
        IrqReturn, //
    },
    prelude::*,
    sync::aref::ARef,
    xen::xenbus, //
};
use core::{
    marker::PhantomPinned,
    mem::ManuallyDrop, //
};

/// An event channel port number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Port(bindings::evtchn_port_t);

impl Port {
    /// Creates a port from its raw number, for instance one read from XenStore.
    #[inline]
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// Returns the raw port number, for instance to publish it in XenStore.
    #[inline]
    pub const fn as_raw(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An unbound local port, allocated for the other end of a xenbus device to bind to.
///
/// The port is closed when dropped, unless it was handed to [`Registration::new_local`]. It holds
/// a reference to the device (closing the port reports failures in the device's XenStore
/// directory), not to its binding: the driver drops it at unbind at the latest, to give the port
/// back, but dropping it later is sound.
///
/// # Invariants
///
/// `port` was allocated with `xenbus_alloc_evtchn()` for `dev` and is owned by this object.
pub struct LocalPort {
    port: Port,
    dev: ARef<xenbus::Device>,
}

impl LocalPort {
    /// Allocates a port that the other end of `dev` may bind to.
    ///
    /// A failure is also reported with [`xenbus::Device::dev_fatal`], which switches the
    /// device's state: hence the `Core` context, the driver's callbacks.
    pub fn alloc(dev: &xenbus::Device<Core<'_>>) -> Result<Self> {
        let mut port: bindings::evtchn_port_t = 0;

        // SAFETY: `dev.as_raw()` is a valid, bound xenbus device and `port` is valid for writes.
        to_result(unsafe { bindings::xenbus_alloc_evtchn(dev.as_raw(), &mut port) })?;

        // INVARIANT: The port was just allocated for `dev`.
        Ok(Self {
            port: Port(port),
            dev: dev.into(),
        })
    }

    /// Returns the port number, to publish to the other end.
    #[inline]
    pub fn port(&self) -> Port {
        self.port
    }
}

impl Drop for LocalPort {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the port is allocated and owned by `self`; `self.dev` is
        // a valid xenbus device (bound or not: the C function only closes the port and, on a
        // failure, writes to the device's error node).
        let _ = unsafe { bindings::xenbus_free_evtchn(self.dev.as_raw(), self.port.0) };
    }
}

/// An owner of a port of this domain that is not bound to an IRQ yet, which it can hand over
/// to a [`Registration`].
///
/// # Safety
///
/// [`OwnedPort::into_port`] returns a port of this domain, not bound to an IRQ, whose ownership
/// (the duty to close it) passes to the caller.
unsafe trait OwnedPort {
    /// Gives up the port without closing it.
    fn into_port(self) -> Port;
}

// SAFETY: By the type invariant a `LocalPort` owns an allocated, unbound port; `ManuallyDrop`
// keeps it from being closed here.
unsafe impl OwnedPort for LocalPort {
    fn into_port(self) -> Port {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this.dev` is valid and read once: `this` is neither used nor dropped after
        // this, so the device reference is dropped exactly once, here.
        drop(unsafe { core::ptr::read(&this.dev) });
        this.port
    }
}

/// How events of a channel are acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EoiMode {
    /// Each event is acknowledged when the handler returns.
    Auto,
    /// The channel stays masked after each event until [`Irq::lateeoi`] is called.
    Late,
}

/// What became of an event acknowledged with [`Irq::lateeoi`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eoi {
    /// The event led to work.
    Handled,
    /// The event was spurious: nothing was pending. Counts towards throttling the channel.
    Spurious,
}

impl Eoi {
    fn flags(self) -> c_uint {
        match self {
            Self::Handled => 0,
            Self::Spurious => bindings::XEN_EOI_FLAG_SPURIOUS,
        }
    }
}

/// The interrupt an event channel is bound to.
///
/// Only available by reference, while the binding exists: from [`Registration::irq`] or as the
/// argument of [`Handler::handle`].
///
/// # Invariants
///
/// The value is an IRQ bound to an event channel for at least the lifetime of the reference
/// through which the object is reached.
#[repr(transparent)]
pub struct Irq(u32);

impl Irq {
    // CAST: Linux IRQ numbers fit in an `int`; the event channel code takes both forms.
    #[inline]
    fn as_c_int(&self) -> c_int {
        self.0 as c_int
    }

    /// Returns the Linux IRQ number.
    #[inline]
    pub fn number(&self) -> u32 {
        self.0
    }

    /// Signals the other end of the channel.
    pub fn notify(&self) {
        // SAFETY: By the type invariant the IRQ is bound to an event channel.
        unsafe { bindings::notify_remote_via_irq(self.as_c_int()) };
    }

    /// Acknowledges the last event of a channel bound in [`EoiMode::Late`], unmasking it.
    ///
    /// Calling it for a channel bound in [`EoiMode::Auto`] has no effect.
    pub fn lateeoi(&self, eoi: Eoi) {
        // SAFETY: By the type invariant the IRQ is bound to an event channel.
        unsafe { bindings::xen_irq_lateeoi(self.0, eoi.flags()) };
    }

    /// Clears the channel's pending flag, before polling for it.
    pub fn clear_pending(&self) {
        // SAFETY: By the type invariant the IRQ is bound to an event channel.
        unsafe { bindings::xen_clear_irq_pending(self.as_c_int()) };
    }

    /// Returns `true` if an event is pending on the channel.
    pub fn is_pending(&self) -> bool {
        // SAFETY: By the type invariant the IRQ is bound to an event channel.
        unsafe { bindings::xen_test_irq_pending(self.as_c_int()) }
    }

    /// Blocks the calling vCPU until an event is pending on the channel or `timeout` has
    /// elapsed, whichever comes first; returns at once if an event is already pending.
    ///
    /// This is a hypercall, not a sleep: it may be used in atomic context, with interrupts
    /// disabled, to wait for the other end's answer. It may also return early; callers loop on
    /// their own completion condition, with [`Irq::clear_pending`] before each wait.
    ///
    /// The timeout is turned into the absolute Xen system time (nanoseconds since the
    /// hypervisor booted) that `SCHEDOP_poll` expects.
    #[cfg(CONFIG_X86)]
    pub fn poll(&self, timeout: crate::time::Delta) {
        let timeout = u64::try_from(timeout.as_nanos()).unwrap_or(0);
        // A deadline of 0 would mean "no timeout".
        let deadline = system_time_ns().saturating_add(timeout).max(1);

        // SAFETY: By the type invariant the IRQ is bound to an event channel.
        unsafe { bindings::xen_poll_irq_timeout(self.as_c_int(), deadline) };
    }

    /// Masks the channel until the returned guard is dropped.
    ///
    /// While masked, an event only sets the channel's pending flag, which [`Irq::poll`] waits
    /// for and [`Irq::is_pending`] sees; it makes no upcall, and the handler does not run. An
    /// event still pending when the channel is unmasked is delivered then: clear it first
    /// ([`Irq::clear_pending`]) if it was consumed meanwhile. A handler already running on
    /// another CPU when the mask is taken is not waited for; an event that reaches it
    /// meanwhile is replayed, once, at the unmask. Masks nest with the IRQ's other disables
    /// (`disable_irq()`, suspend): the channel is unmasked when the last is undone.
    ///
    /// The event channel chips mask the port at once (they implement `irq_disable`), so the
    /// mask holds from the return of this call. It may be taken in atomic context, with
    /// interrupts disabled: the chips have no bus lock, only raw spinlocks.
    pub fn mask(&self) -> Masked<'_> {
        // SAFETY: By the type invariant the IRQ is bound to an event channel, and stays bound
        // while the guard, which borrows `self`, exists; the guard's drop balances the call.
        unsafe { bindings::disable_irq_nosync(self.0) };
        Masked(self)
    }
}

/// An event channel masked by [`Irq::mask`], unmasked when this guard is dropped.
///
/// Forgetting the guard leaves the channel masked: its handler never runs again.
#[must_use = "the channel is unmasked at once if the guard is not kept"]
pub struct Masked<'a>(&'a Irq);

impl Drop for Masked<'_> {
    fn drop(&mut self) {
        // SAFETY: The IRQ is bound (the guard borrows the `Irq`, whose invariant guarantees it
        // for the borrow), and was disabled by the `Irq::mask` that made this guard, once.
        unsafe { bindings::enable_irq(self.0 .0) };
    }
}

/// Returns the Xen system time of the calling vCPU: nanoseconds since the hypervisor booted.
///
/// This is the time base of hypercall timeouts, unrelated to the kernel's clocks.
#[cfg(CONFIG_X86)]
pub fn system_time_ns() -> u64 {
    // SAFETY: Reads the time info Xen maintains for the calling vCPU, with preemption disabled.
    unsafe { bindings::xen_system_time_ns() }
}

/// Callbacks of an event channel [`Registration`].
pub trait Handler: Sync {
    /// Called in hard interrupt context for each event on the channel.
    ///
    /// `irq` is the channel's interrupt, valid for the duration of the call, for instance to
    /// acknowledge a spurious event of a channel bound in [`EoiMode::Late`] right away.
    fn handle(&self, irq: &Irq) -> IrqReturn;
}

/// An event channel bound to an interrupt handler.
///
/// The channel is unbound, and closed, when the registration is dropped; dropping waits for a
/// running handler to return, and must happen in process context.
///
/// The handler is `'static` and a channel bound for a xenbus device holds a reference to the
/// device (not to its binding): a registration that outlives the binding, or is leaked, keeps
/// the data it uses alive, but not the code of its callback, which is its module's: a
/// registration leaked past the module's unload would call into freed text at the next event.
/// Drivers drop it at unbind at the latest, to give the channel back (a registration tied to
/// the binding as `devres` ties an IRQ's is not done yet).
///
/// # Examples
///
/// A backend deferring each request to process context:
///
/// ```
/// use kernel::{
///     device::Bound,
///     irq::{self, IrqReturn},
///     sync::atomic::{AtomicFlag, Relaxed},
///     xen::{
///         evtchn::{self, Eoi, Irq, Port, Registration},
///         xenbus,
///     },
/// };
///
/// struct Kick {
///     pending: AtomicFlag,
/// }
///
/// impl evtchn::Handler for Kick {
///     fn handle(&self, irq: &Irq) -> IrqReturn {
///         if self.pending.xchg(true, Relaxed) {
///             // Already queued: nothing new to do.
///             irq.lateeoi(Eoi::Spurious);
///         }
///         // Otherwise the deferred work processes the request, then calls
///         // `Registration::irq().lateeoi(Eoi::Handled)` and `notify()`.
///         IrqReturn::Handled
///     }
/// }
///
/// fn bind(dev: &xenbus::Device<Bound>, remote: Port) -> Result<Pin<KBox<Registration<Kick>>>> {
///     let reg = Registration::new_interdomain(
///         dev,
///         remote,
///         irq::Flags::TRIGGER_NONE,
///         c"xen-pcibk",
///         Ok(Kick { pending: AtomicFlag::new(false) }),
///     );
///     KBox::pin_init(reg, GFP_KERNEL)
/// }
/// ```
///
/// # Invariants
///
/// `irq` is bound to an event channel with one of the `bind_*_to_irqhandler*()` functions, with
/// a pointer to `self` as cookie and a handler expecting one.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Handler + 'static> {
    irq: Irq,

    #[pin]
    handler: T,

    /// The channel's handler holds a pointer to `self`.
    #[pin]
    _pin: PhantomPinned,

    /// The xenbus device an interdomain channel was bound for: the event code keeps a pointer
    /// to it until the channel is unbound (it counts the device's channels).
    _dev: Option<ARef<xenbus::Device>>,
}

impl<T: Handler + 'static> Registration<T> {
    /// Binds the local port `port` (allocated for the other end) to the handler.
    ///
    /// The port is consumed: from now on it is closed with the binding. If binding fails, the
    /// port is not closed again, as the C code may or may not have closed it already; in the
    /// unlikely case that it had not, it stays allocated (but unused) until the domain dies.
    pub fn new_local<'a>(
        port: LocalPort,
        mode: EoiMode,
        flags: Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        Self::new_owned(port, mode, flags, name, handler)
    }

    /// Binds the port owned by `port` to the handler; the port is consumed as in
    /// [`Registration::new_local`].
    fn new_owned<'a, P: OwnedPort + 'a>(
        port: P,
        mode: EoiMode,
        flags: Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(&this in Self {
            irq: Irq(0),
            handler <- handler,
            _pin: PhantomPinned,
            _dev: None,
            _: {
                let port = port.into_port();
                let bind = match mode {
                    EoiMode::Auto => bindings::bind_evtchn_to_irqhandler,
                    EoiMode::Late => bindings::bind_evtchn_to_irqhandler_lateeoi,
                };

                // The callback may run at once: the handler is initialised, and the callback only
                // accesses it. `Self` is pinned, so its memory is not reused before `drop` unbinds
                // the channel (a leaked registration stays bound, its handler borrowing nothing;
                // its callback's code is the module's, see the type's documentation).
                //
                // SAFETY: `port` is an unbound port of this domain that we own (`OwnedPort`); the
                // cookie `this` stays valid until `drop` unbinds the channel (see above).
                let irq = to_result_irq(unsafe {
                    bind(
                        port.0,
                        Some(handle_callback::<T>),
                        flags.into_inner(),
                        name.as_char_ptr(),
                        this.as_ptr().cast::<c_void>(),
                    )
                })?;

                // INVARIANT: `irq` is bound with `this` as cookie.
                //
                // SAFETY: `this` is valid for writes; the callback does not access `irq`.
                unsafe { (&raw mut (*this.as_ptr()).irq).write(Irq(irq)) };
            },
        })
    }

    /// Binds the port `remote` of the other end of `dev` to the handler, in [`EoiMode::Late`].
    pub fn new_interdomain<'a>(
        dev: &'a xenbus::Device<Bound>,
        remote: Port,
        flags: Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(&this in Self {
            irq: Irq(0),
            handler <- handler,
            _pin: PhantomPinned,
            _dev: Some(dev.into()),
            _: {
                // The callback may run at once: the handler is initialised, and the callback only
                // accesses it. `Self` is pinned, so its memory is not reused before `drop` unbinds
                // the channel (a leaked registration stays bound, its handler borrowing nothing;
                // its callback's code is the module's, see the type's documentation).
                //
                // SAFETY: `dev.as_raw()` is a valid, bound xenbus device, which the event code
                // keeps a pointer to until the channel is unbound and `self._dev` keeps alive; the
                // cookie `this` stays valid until `drop` unbinds the channel (see above).
                let irq = to_result_irq(unsafe {
                    bindings::bind_interdomain_evtchn_to_irqhandler_lateeoi(
                        dev.as_raw(),
                        remote.0,
                        Some(handle_callback::<T>),
                        flags.into_inner(),
                        name.as_char_ptr(),
                        this.as_ptr().cast::<c_void>(),
                    )
                })?;

                // INVARIANT: `irq` is bound with `this` as cookie.
                //
                // SAFETY: `this` is valid for writes; the callback does not access `irq`.
                unsafe { (&raw mut (*this.as_ptr()).irq).write(Irq(irq)) };
            },
        })
    }

    /// Returns the handler.
    #[inline]
    pub fn handler(&self) -> &T {
        &self.handler
    }

    /// Returns the channel's interrupt, to signal the other end or acknowledge events.
    #[inline]
    pub fn irq(&self) -> &Irq {
        &self.irq
    }
}

/// Converts the return value of a `bind_*()` function: an IRQ number or a negative error code.
fn to_result_irq(ret: c_int) -> Result<u32> {
    to_result(ret.min(0))?;
    // CAST: `ret` is non-negative here.
    Ok(ret as u32)
}

#[pinned_drop]
impl<T: Handler + 'static> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        let irq = self.irq.0;

        // SAFETY: By the type invariant `irq` is bound with a pointer to `self` as cookie.
        // Unbinding frees the handler, waiting for a running one to return, and closes the
        // channel; no reference to `self` remains afterwards.
        unsafe {
            bindings::unbind_from_irqhandler(
                irq,
                core::ptr::from_mut::<Self>(self.get_unchecked_mut()).cast::<c_void>(),
            )
        };
    }
}

/// # Safety
///
/// Only used as the handler of channels bound by [`Registration`], with a pointer to the
/// registration as cookie.
unsafe extern "C" fn handle_callback<T: Handler + 'static>(
    irq: c_int,
    ptr: *mut c_void,
) -> bindings::irqreturn_t {
    let this = ptr.cast_const().cast::<Registration<T>>();

    // SAFETY: `ptr` points to the `Registration<T>` that bound the channel, alive until it
    // unbinds it. Only the initialised `handler` field is accessed: `irq` may still be being
    // written by the constructor.
    let handler = unsafe { &(*this).handler };

    // INVARIANT: `irq` is bound for the duration of the handler.
    // CAST: IRQ numbers are non-negative.
    let irq = Irq(irq as u32);

    bindings::irqreturn_t(handler.handle(&irq) as c_uint)
}

#[cfg(CONFIG_RUST_XEN_KUNIT_TEST)]
#[macros::kunit_tests(rust_xen_evtchn)]
mod tests {
    use super::*;

    #[test]
    fn eoi_flags() {
        assert_eq!(Eoi::Handled.flags(), 0);
        assert_eq!(Eoi::Spurious.flags(), 1);
    }

    #[test]
    fn bind_result() {
        assert_eq!(to_result_irq(17), Ok(17));
        assert_eq!(to_result_irq(0), Ok(0));
        assert_eq!(to_result_irq(-12), Err(ENOMEM));
    }

    #[test]
    fn port() {
        assert_eq!(Port::from_raw(5).as_raw(), 5);
    }

    use crate::{
        sync::{
            atomic::{
                Atomic,
                Relaxed, //
            },
            Arc, //
        },
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// A port of this domain, closed when dropped: a stand-in for [`LocalPort`], which needs a
    /// xenbus device, for a channel between two ports of the same domain.
    struct TestPort(Port);

    impl TestPort {
        /// Allocates a port that this domain itself may bind to.
        fn alloc_unbound() -> Result<Self> {
            let mut op = bindings::evtchn_alloc_unbound {
                dom: crate::xen::DomId::SELF.as_raw(),
                remote_dom: crate::xen::DomId::SELF.as_raw(),
                port: 0,
            };
            // SAFETY: `op` is a valid argument of `EVTCHNOP_alloc_unbound`, valid for writes.
            to_result(unsafe {
                bindings::HYPERVISOR_event_channel_op(
                    bindings::EVTCHNOP_alloc_unbound as c_int,
                    (&raw mut op).cast(),
                )
            })?;
            Ok(Self(Port(op.port)))
        }

        /// Allocates a port of this domain connected to `remote`, an unbound port allocated by
        /// [`TestPort::alloc_unbound`].
        fn connect(remote: Port) -> Result<Self> {
            let mut op = bindings::evtchn_bind_interdomain {
                remote_dom: crate::xen::DomId::SELF.as_raw(),
                remote_port: remote.0,
                local_port: 0,
            };
            // SAFETY: `op` is a valid argument of `EVTCHNOP_bind_interdomain`, valid for writes.
            to_result(unsafe {
                bindings::HYPERVISOR_event_channel_op(
                    bindings::EVTCHNOP_bind_interdomain as c_int,
                    (&raw mut op).cast(),
                )
            })?;
            Ok(Self(Port(op.local_port)))
        }
    }

    impl Drop for TestPort {
        fn drop(&mut self) {
            let mut op = bindings::evtchn_close { port: self.0 .0 };
            // SAFETY: `op` is a valid argument of `EVTCHNOP_close`; the port is ours.
            let _ = unsafe {
                bindings::HYPERVISOR_event_channel_op(
                    bindings::EVTCHNOP_close as c_int,
                    (&raw mut op).cast(),
                )
            };
        }
    }

    // SAFETY: A `TestPort` owns a port of this domain that no IRQ is bound to; `ManuallyDrop`
    // keeps it from being closed here.
    unsafe impl OwnedPort for TestPort {
        fn into_port(self) -> Port {
            ManuallyDrop::new(self).0
        }
    }

    /// What the handler of one end saw.
    struct Seen {
        events: Atomic<u32>,
        irq: Atomic<u32>,
    }

    struct Counter {
        seen: Arc<Seen>,
        mode: EoiMode,
    }

    impl Handler for Counter {
        fn handle(&self, irq: &Irq) -> IrqReturn {
            self.seen.irq.store(irq.number(), Relaxed);
            self.seen.events.fetch_add(1, Relaxed);
            if self.mode == EoiMode::Late {
                irq.lateeoi(Eoi::Handled);
            }
            IrqReturn::Handled
        }
    }

    fn counter(mode: EoiMode) -> Result<(Arc<Seen>, Counter)> {
        let seen = Arc::new(
            Seen {
                events: Atomic::new(0),
                irq: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        Ok((seen.clone(), Counter { seen, mode }))
    }

    /// Waits up to a second for `seen` to count `events` events.
    fn wait_events(seen: &Seen, events: u32) -> u32 {
        for _ in 0..100 {
            if seen.events.load(Relaxed) >= events {
                break;
            }
            fsleep(Delta::from_millis(10));
        }
        seen.events.load(Relaxed)
    }

    /// One end of [`loopback`]: what its handler saw, and its binding.
    type End = (Arc<Seen>, Pin<KBox<Registration<Counter>>>);

    /// Two ports of this domain connected to each other, `a` (in `mode_a`) and `b` (in
    /// [`EoiMode::Auto`]), each bound to a [`Counter`] under the given name.
    fn loopback(
        mode_a: EoiMode,
        name_a: &'static CStr,
        name_b: &'static CStr,
    ) -> Result<(End, End)> {
        let (seen_a, handler_a) = counter(mode_a)?;
        let (seen_b, handler_b) = counter(EoiMode::Auto)?;
        let port_a = TestPort::alloc_unbound()?;
        let raw_a = port_a.0;
        let a = KBox::pin_init(
            Registration::new_owned(port_a, mode_a, Flags::TRIGGER_NONE, name_a, Ok(handler_a)),
            GFP_KERNEL,
        )?;
        let port_b = TestPort::connect(raw_a)?;
        let b = KBox::pin_init(
            Registration::new_owned(
                port_b,
                EoiMode::Auto,
                Flags::TRIGGER_NONE,
                name_b,
                Ok(handler_b),
            ),
            GFP_KERNEL,
        )?;
        Ok(((seen_a, a), (seen_b, b)))
    }

    /// Two ports of this domain connected to each other, each bound to a handler through
    /// `Registration` (one in each EOI mode): a notify at one end runs the handler of the other,
    /// once per notify (the late-EOI end acknowledges each event, which unmasks the channel).
    #[test]
    fn loopback_channel() -> Result {
        let ((seen_a, a), (seen_b, b)) =
            loopback(EoiMode::Late, c"rust_xen_evtchn_a", c"rust_xen_evtchn_b")?;
        assert_ne!(a.irq().number(), b.irq().number());

        // Nothing was signalled yet: `a` has no event. Xen sets the connecting port `b` pending
        // once when it connects (notifications sent to the unbound port could be lost), so `b`
        // may have one.
        fsleep(Delta::from_millis(20));
        assert_eq!(seen_a.events.load(Relaxed), 0);
        let b0 = seen_b.events.load(Relaxed);
        assert!(b0 <= 1);

        b.irq().notify();
        assert_eq!(wait_events(&seen_a, 1), 1);
        assert_eq!(seen_a.irq.load(Relaxed), a.irq().number());
        // A second event reaches the late-EOI end only if the first one was acknowledged.
        b.irq().notify();
        assert_eq!(wait_events(&seen_a, 2), 2);
        assert_eq!(seen_b.events.load(Relaxed), b0);

        a.irq().notify();
        assert_eq!(wait_events(&seen_b, b0 + 1), b0 + 1);
        assert_eq!(seen_b.irq.load(Relaxed), b.irq().number());
        assert_eq!(seen_a.events.load(Relaxed), 2);

        // An event channel is no physical IRQ: Xen is not asked about it.
        #[cfg(all(CONFIG_PCI, CONFIG_X86, any(CONFIG_XEN_DOM0, CONFIG_PCI_XEN)))]
        {
            // SAFETY: `a` keeps its IRQ bound until it is dropped, below.
            let shared = unsafe { crate::xen::pci::line_shared(a.irq().number()) };
            assert_eq!(shared, Err(EINVAL));
        }
        // Nor is it bound to a pirq: there is none to read (0), and no `BUG()`.
        // SAFETY: `xen_pirq_from_irq()` accepts any IRQ number; `a` keeps its IRQ bound until it
        // is dropped, below.
        assert_eq!(unsafe { bindings::xen_pirq_from_irq(a.irq().number()) }, 0);

        // Unbinding closes both ports.
        drop(b);
        drop(a);
        Ok(())
    }

    /// A masked channel takes events without running its handler: they stay pending (seen by
    /// `is_pending`), a pending event cleared before the unmask is never handled, one left
    /// pending is handled at the unmask, and masks nest.
    #[test]
    fn masked_channel() -> Result {
        let ((seen_a, a), (_, b)) =
            loopback(EoiMode::Auto, c"rust_xen_evtchn_ma", c"rust_xen_evtchn_mb")?;
        fsleep(Delta::from_millis(20));
        assert_eq!(seen_a.events.load(Relaxed), 0);

        // Taken off the channel while masked: never handled.
        let masked = a.irq().mask();
        b.irq().notify();
        fsleep(Delta::from_millis(20));
        assert_eq!(seen_a.events.load(Relaxed), 0);
        assert!(a.irq().is_pending());
        // The poll sees a masked port's event: it returns at once, not at its timeout. Five
        // polls with interrupts disabled, as a frontend polls: another event (a timer tick)
        // could end one of them, not five (its flag stays set, and the one-shot timer is not
        // armed again meanwhile).
        #[cfg(CONFIG_X86)]
        {
            let off = KBox::pin_init(
                crate::new_raw_spinlock_irq!((), "rust_xen_evtchn_poll"),
                GFP_KERNEL,
            )?;
            let guard = off.lock();
            let start = crate::time::Instant::<crate::time::Monotonic>::now();
            for _ in 0..5 {
                a.irq().poll(Delta::from_millis(100));
            }
            let took = start.elapsed();
            drop(guard);
            assert!(took < Delta::from_millis(100));
            assert_eq!(seen_a.events.load(Relaxed), 0);
        }
        a.irq().clear_pending();
        assert!(!a.irq().is_pending());
        drop(masked);
        fsleep(Delta::from_millis(20));
        assert_eq!(seen_a.events.load(Relaxed), 0);

        // Left pending: handled once unmasked, by the outer of two masks.
        let outer = a.irq().mask();
        let inner = a.irq().mask();
        b.irq().notify();
        drop(inner);
        fsleep(Delta::from_millis(20));
        assert_eq!(seen_a.events.load(Relaxed), 0);
        assert!(a.irq().is_pending());
        drop(outer);
        assert_eq!(wait_events(&seen_a, 1), 1);

        // Unmasked again: events are handled as they come.
        b.irq().notify();
        assert_eq!(wait_events(&seen_a, 2), 2);

        drop(b);
        drop(a);
        Ok(())
    }

    // `Registration::new_local` and `new_interdomain` need a xenbus device; they are built (not
    // run) by the drivers.
}
