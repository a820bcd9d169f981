// SPDX-License-Identifier: GPL-2.0

//! The xenbus bus: split-driver devices and their drivers.
//!
//! Each paravirtualised device has two halves, in two domains: the frontend, in the guest using
//! the device, and the backend, in the domain providing it. Each half is a [`Device`] on the
//! xenbus of its domain, with a directory in XenStore (its "node", holding among others its
//! [`XenbusState`]) and the path of the other half's directory (the "other end").
//!
//! The two halves negotiate through XenStore by moving through the [`XenbusState`]s: each side
//! publishes its own state with [`Device::switch_state`] and learns about the other's through
//! [`Driver::otherend_changed`].
//!
//! A driver implements [`Driver`] and registers with [`driver::Registration`], using
//! [`FrontendAdapter`] or [`BackendAdapter`] depending on the half it drives. A backend that sees
//! its frontend gone for good has its own device unregistered by returning
//! [`OtherendAction::Unregister`] from [`Driver::otherend_changed`].
//!
//! In this bus, the [`device::Core`] context is the one of the driver callbacks: [`Driver::probe`]
//! and [`Driver::unbind`] run with the device lock held; [`Driver::otherend_changed`] and
//! [`Driver::node_changed`] run in the `xenwatch` thread without it, one at a time, and only
//! between the return of a successful probe and the unbind (their watches are registered after
//! the one and unregistered before the other). The callbacks of a device therefore never run at
//! the same time, which is what [`Device::switch_state`] and [`Device::dev_fatal`], only
//! available to them, rely on. (The xenbus core switches states too: to Closed after the unbind,
//! and a frontend's to Closing at system shutdown.)
//!
//! C header: [`include/xen/xenbus.h`](srctree/include/xen/xenbus.h)

use crate::{
    bindings,
    device,
    device_id::{
        self,
        RawDeviceId, //
    },
    driver,
    error::{
        from_result,
        to_result, //
    },
    fmt,
    prelude::*,
    str::CString,
    types::Opaque,
    xen::DomId,
    ThisModule, //
};
use core::{
    marker::PhantomData,
    mem::offset_of,
    ptr::{
        addr_of_mut,
        NonNull, //
    },
};

/// The state of one half of a split device, as published in its `state` node.
///
/// The usual life of a connection: both halves start in [`Initialising`]; the backend moves to
/// [`InitWait`] when it is ready for the frontend's parameters; the frontend publishes them and
/// moves to [`Initialised`]; the backend connects to them and moves to [`Connected`], then the
/// frontend too. Either side then closes through [`Closing`] to [`Closed`]. [`Reconfiguring`]
/// and [`Reconfigured`] bracket changes to a connected device, such as PCI hot-plug.
///
/// [`Initialising`]: XenbusState::Initialising
/// [`InitWait`]: XenbusState::InitWait
/// [`Initialised`]: XenbusState::Initialised
/// [`Connected`]: XenbusState::Connected
/// [`Closing`]: XenbusState::Closing
/// [`Closed`]: XenbusState::Closed
/// [`Reconfiguring`]: XenbusState::Reconfiguring
/// [`Reconfigured`]: XenbusState::Reconfigured
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum XenbusState {
    /// The state could not be read, or the node is gone.
    Unknown = bindings::xenbus_state_XenbusStateUnknown,
    /// The device is being set up.
    Initialising = bindings::xenbus_state_XenbusStateInitialising,
    /// The backend waits for the frontend's parameters (set by backends only).
    InitWait = bindings::xenbus_state_XenbusStateInitWait,
    /// The device published its parameters and waits for the other end to connect.
    Initialised = bindings::xenbus_state_XenbusStateInitialised,
    /// The connection is established.
    Connected = bindings::xenbus_state_XenbusStateConnected,
    /// The device is being shut down.
    Closing = bindings::xenbus_state_XenbusStateClosing,
    /// The device is shut down.
    Closed = bindings::xenbus_state_XenbusStateClosed,
    /// A reconfiguration of the connected device is in progress.
    Reconfiguring = bindings::xenbus_state_XenbusStateReconfiguring,
    /// The reconfiguration is done.
    Reconfigured = bindings::xenbus_state_XenbusStateReconfigured,
}

impl XenbusState {
    /// Returns the state's name, as C's `xenbus_strstate()` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Initialising => "Initialising",
            Self::InitWait => "InitWait",
            Self::Initialised => "Initialised",
            Self::Connected => "Connected",
            Self::Closing => "Closing",
            Self::Closed => "Closed",
            Self::Reconfiguring => "Reconfiguring",
            Self::Reconfigured => "Reconfigured",
        }
    }

    /// Converts a raw state that the kernel itself stored; anything out of range is
    /// [`XenbusState::Unknown`].
    fn from_raw_lossy(raw: bindings::xenbus_state) -> Self {
        Self::try_from(raw).unwrap_or(Self::Unknown)
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = Error;

    /// Converts a raw `enum xenbus_state` value; fails with [`EINVAL`] when out of range.
    fn try_from(raw: u32) -> Result<Self> {
        Ok(match raw {
            bindings::xenbus_state_XenbusStateUnknown => Self::Unknown,
            bindings::xenbus_state_XenbusStateInitialising => Self::Initialising,
            bindings::xenbus_state_XenbusStateInitWait => Self::InitWait,
            bindings::xenbus_state_XenbusStateInitialised => Self::Initialised,
            bindings::xenbus_state_XenbusStateConnected => Self::Connected,
            bindings::xenbus_state_XenbusStateClosing => Self::Closing,
            bindings::xenbus_state_XenbusStateClosed => Self::Closed,
            bindings::xenbus_state_XenbusStateReconfiguring => Self::Reconfiguring,
            bindings::xenbus_state_XenbusStateReconfigured => Self::Reconfigured,
            _ => return Err(EINVAL),
        })
    }
}

impl From<XenbusState> for u32 {
    #[inline]
    fn from(state: XenbusState) -> Self {
        state as u32
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A xenbus device: one half of a split device.
///
/// # Invariants
///
/// A [`Device`] instance represents a valid `struct xenbus_device` created by the C portion of
/// the kernel.
#[repr(transparent)]
pub struct Device<Ctx: device::DeviceContext = device::Normal>(
    Opaque<bindings::xenbus_device>,
    PhantomData<Ctx>,
);

impl<Ctx: device::DeviceContext> Device<Ctx> {
    #[inline]
    pub(crate) fn as_raw(&self) -> *mut bindings::xenbus_device {
        self.0.get()
    }

    /// Returns the device's own XenStore directory, such as `device/pci/0` for a frontend or
    /// `backend/pci/1/0` for a backend.
    pub fn nodename(&self) -> &CStr {
        // SAFETY: By the type invariant `self.as_raw()` is valid; `nodename` is set when the
        // device is created, never changed, and freed with the device.
        unsafe { CStr::from_char_ptr((*self.as_raw()).nodename) }
    }

    /// Returns the device type, such as `pci` or `vbd`.
    pub fn devicetype(&self) -> &CStr {
        // SAFETY: By the type invariant `self.as_raw()` is valid; `devicetype` is set when the
        // device is created, never changed, and freed with the device.
        unsafe { CStr::from_char_ptr((*self.as_raw()).devicetype) }
    }

    /// Returns the domain of the other end, as last read by the xenbus core (before probe).
    pub fn otherend_id(&self) -> DomId {
        // SAFETY: By the type invariant `self.as_raw()` is valid. The field is only written by
        // the xenbus core when it (re)reads the other end's details; a volatile read gets one
        // consistent value.
        let id = unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).otherend_id) };
        DomId::try_from(id).unwrap_or(DomId::INVALID)
    }

    /// Returns this device's own state, as last switched to (locally cached, not read from the
    /// store).
    pub fn state(&self) -> XenbusState {
        // SAFETY: By the type invariant `self.as_raw()` is valid. The field is only written by
        // `xenbus_switch_state()`; a volatile read gets one consistent value.
        let raw = unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).state) };
        XenbusState::from_raw_lossy(raw)
    }
}

impl<'a> Device<device::Core<'a>> {
    /// Returns a copy of the XenStore directory of the other end.
    ///
    /// A copy, not a borrow: a frontend's other end is freed and read again when the domain is
    /// restored from a saved image or migrated (the xenbus core's `restore`), which a borrow
    /// kept past the callback would outlive.
    ///
    /// Fails with [`ENODEV`] if the xenbus core failed to re-read the other end's details after
    /// such a restore, with [`ENOMEM`] if out of memory.
    pub fn otherend(&self) -> Result<CString> {
        Ok(self
            .with_otherend(|otherend| CString::try_from(otherend))
            .ok_or(ENODEV)??)
    }

    /// Calls `f` with the XenStore directory of the other end, unless it is unknown.
    fn with_otherend<R>(&self, f: impl FnOnce(&CStr) -> R) -> Option<R> {
        // SAFETY: By the type invariant `self.as_raw()` is valid. In the `Core` context the
        // xenbus core does not replace or free `otherend`: a restore (frontends only) replaces
        // it after unregistering the other end's watch, which waits for `otherend_changed`, and
        // frontends do not watch their node (`Adapter::register`); the string stays valid
        // during this call, which `f` cannot keep it past.
        let otherend = unsafe { (*self.as_raw()).otherend };
        if otherend.is_null() {
            return None;
        }

        // SAFETY: `otherend` is a valid NUL-terminated string for this call (see above).
        Some(f(unsafe { CStr::from_char_ptr(otherend) }))
    }

    /// Publishes a new state for this device.
    ///
    /// Nothing is written if the device is already in `state`, or if its node vanished. A
    /// failure to write is reported in the store and moves the device to
    /// [`XenbusState::Closing`], as [`Device::dev_fatal`] does.
    ///
    /// The xenbus core does not serialise state switches (they read, compare and write the
    /// cached state): only the driver's callbacks switch, which never run at the same time for
    /// a device (see the module documentation).
    pub fn switch_state(&self, state: XenbusState) -> Result {
        // SAFETY: By the type invariant `self.as_raw()` is valid, and the device is bound; the
        // `Core` context serialises the switches.
        to_result(unsafe { bindings::xenbus_switch_state(self.as_raw(), state.into()) })
    }

    /// Reports `err` like [`Device::dev_error`], then moves the device to
    /// [`XenbusState::Closing`] so that both ends shut the connection down.
    ///
    /// It switches the state, so, like [`Device::switch_state`], only the driver's callbacks
    /// may call it.
    pub fn dev_fatal(&self, err: Error, args: fmt::Arguments<'_>) {
        // SAFETY: `self.as_raw()` is valid; the format string is a valid `"%pA"` consuming one
        // pointer to a `fmt::Arguments` that outlives the call.
        unsafe {
            bindings::xenbus_dev_fatal(
                self.as_raw(),
                err.to_errno(),
                c"%pA".as_char_ptr(),
                core::ptr::from_ref(&args).cast::<c_void>(),
            )
        };
    }

    /// Reads the other end's state from the store.
    ///
    /// Anything that is not a valid state, including a missing node, reads as
    /// [`XenbusState::Unknown`].
    pub fn read_otherend_state(&self) -> XenbusState {
        self.with_otherend(|otherend| {
            // SAFETY: `self.as_raw()` is valid and `otherend` is a valid NUL-terminated string.
            let raw = unsafe {
                bindings::xenbus_read_driver_state(self.as_raw(), otherend.as_char_ptr())
            };
            XenbusState::from_raw_lossy(raw)
        })
        .unwrap_or(XenbusState::Unknown)
    }
}

impl Device<device::Bound> {
    /// Reports `err` with a formatted message: logs it and writes it to the `error/<nodename>`
    /// node for the toolstack.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{device::Bound, xen::xenbus};
    ///
    /// fn report(dev: &xenbus::Device<Bound>, gref: u32) {
    ///     dev.dev_error(EINVAL, fmt!("mapping grant reference {gref}"));
    /// }
    /// ```
    pub fn dev_error(&self, err: Error, args: fmt::Arguments<'_>) {
        // SAFETY: `self.as_raw()` is valid; the format string is a valid `"%pA"` consuming one
        // pointer to a `fmt::Arguments` that outlives the call.
        unsafe {
            bindings::xenbus_dev_error(
                self.as_raw(),
                err.to_errno(),
                c"%pA".as_char_ptr(),
                core::ptr::from_ref(&args).cast::<c_void>(),
            )
        };
    }

    /// Returns `true` if the toolstack marks the device as online (its `online` node is `1`).
    ///
    /// Backends check this when the frontend closes: an offline device is about to go away,
    /// an online one may be reconnected.
    pub fn is_online(&self) -> bool {
        // SAFETY: By the type invariant `self.as_raw()` is valid.
        unsafe { bindings::xenbus_dev_is_online(self.as_raw()) != 0 }
    }
}

// SAFETY: `xenbus::Device` is a transparent wrapper of `struct xenbus_device`; `OFFSET` is the
// offset of its embedded `struct device`.
unsafe impl<Ctx: device::DeviceContext> device::AsBusDevice<Ctx> for Device<Ctx> {
    const OFFSET: usize = offset_of!(bindings::xenbus_device, dev);
}

// SAFETY: `Device` is a transparent wrapper of a type that doesn't depend on `Device`'s generic
// argument.
kernel::impl_device_context_deref!(unsafe { Device });
kernel::impl_device_context_into_aref!(Device);

// SAFETY: Instances of `Device` are always reference-counted.
unsafe impl crate::sync::aref::AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: The existence of a shared reference guarantees that the refcount is non-zero.
        unsafe { bindings::get_device(self.as_ref().as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // CAST: `Self` is a transparent wrapper of `bindings::xenbus_device`.
        let xdev: *mut bindings::xenbus_device = obj.cast().as_ptr();

        // SAFETY: By the type invariant of `Self`, `xdev` points to a valid
        // `struct xenbus_device`.
        let dev = unsafe { addr_of_mut!((*xdev).dev) };

        // SAFETY: The safety requirements guarantee that the refcount is non-zero.
        unsafe { bindings::put_device(dev) }
    }
}

impl<Ctx: device::DeviceContext> AsRef<device::Device<Ctx>> for Device<Ctx> {
    fn as_ref(&self) -> &device::Device<Ctx> {
        // SAFETY: By the type invariant of `Self`, `self.as_raw()` is a pointer to a valid
        // `struct xenbus_device`.
        let dev = unsafe { addr_of_mut!((*self.as_raw()).dev) };

        // SAFETY: `dev` points to a valid `struct device`.
        unsafe { device::Device::from_raw(dev) }
    }
}

// SAFETY: A `Device` is always reference-counted and can be released from any thread.
unsafe impl Send for Device {}

// SAFETY: `Device` can be shared among threads because all methods of `Device`
// (i.e. `Device<Normal>`) are thread safe.
unsafe impl Sync for Device {}

// SAFETY: The methods of `Device<Bound>` can be called from any thread; see
// `Device::switch_state` for the one the caller serialises.
unsafe impl Sync for Device<device::Bound> {}

/// A xenbus device ID: the device type a driver handles, such as `pci`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct DeviceId(bindings::xenbus_device_id);

impl DeviceId {
    /// Creates a device ID matching devices of type `devicetype`.
    ///
    /// The type must be shorter than 32 bytes; a longer one fails the build when the ID is
    /// created in a constant context, such as an ID table.
    pub const fn new(devicetype: &'static CStr) -> Self {
        let name = devicetype.to_bytes_with_nul();
        let mut id: bindings::xenbus_device_id = pin_init::zeroed();
        assert!(
            name.len() <= id.devicetype.len(),
            "xenbus device type too long"
        );

        let mut i = 0;
        while i < name.len() {
            id.devicetype[i] = name[i];
            i += 1;
        }

        Self(id)
    }

    /// Returns the device type.
    pub fn devicetype(&self) -> &CStr {
        // SAFETY: `devicetype` is NUL-terminated: `new` copies a NUL-terminated string of at
        // most its size into a zeroed array.
        unsafe { CStr::from_char_ptr(self.0.devicetype.as_ptr()) }
    }
}

// SAFETY: `DeviceId` is a `#[repr(transparent)]` wrapper of `xenbus_device_id` and does not add
// additional invariants, so it's safe to transmute to `RawType`.
unsafe impl RawDeviceId for DeviceId {
    type RawType = bindings::xenbus_device_id;
}

/// A xenbus ID table: the device types a driver handles, each with its driver-specific
/// information.
///
/// `struct xenbus_device_id` has no room for driver data, so the information lives next to the
/// zero-terminated C array and is found by the index of the matching entry.
///
/// Create one with [`xenbus_device_table!`](crate::xenbus_device_table).
#[repr(C)]
pub struct IdArray<U: 'static, const N: usize> {
    ids: device_id::IdArray<DeviceId, (), N>,
    info: [Option<&'static U>; N],
}

impl<U: 'static, const N: usize> IdArray<U, N> {
    /// Creates a table from the given IDs and their information.
    pub const fn new(entries: [(DeviceId, &'static U); N]) -> Self {
        let mut ids = [DeviceId(pin_init::zeroed()); N];
        let mut info = [None; N];

        let mut i = 0;
        while i < N {
            ids[i] = entries[i].0;
            info[i] = Some(entries[i].1);
            i += 1;
        }

        Self {
            ids: device_id::IdArray::new_without_index(ids),
            info,
        }
    }
}

/// The operations of a xenbus ID table, as seen through [`IdTable`].
pub trait RawIdTable<U>: Sync {
    /// Returns a pointer to the zero-terminated C array.
    fn as_ptr(&self) -> *const bindings::xenbus_device_id;

    /// Returns the information of the `index`-th entry.
    fn info(&self, index: usize) -> Option<&'static U>;
}

impl<U: Sync + 'static, const N: usize> RawIdTable<U> for IdArray<U, N> {
    fn as_ptr(&self) -> *const bindings::xenbus_device_id {
        device_id::IdTable::as_ptr(&self.ids)
    }

    fn info(&self, index: usize) -> Option<&'static U> {
        self.info.get(index).copied().flatten()
    }
}

/// The ID table type of xenbus drivers.
pub type IdTable<U> = &'static dyn RawIdTable<U>;

/// Declares a xenbus ID table.
///
/// xenbus IDs have no module alias support in modpost: drivers that must be loaded on demand
/// declare the alias in [`module!`](macros::module) by hand (`xen:<type>` for frontends,
/// `xen-backend:<type>` for backends).
///
/// # Examples
///
/// ```
/// use kernel::xen::xenbus;
///
/// kernel::xenbus_device_table!(XEN_PCI_IDS, (), [(xenbus::DeviceId::new(c"pci"), ())]);
/// ```
#[macro_export]
macro_rules! xenbus_device_table {
    ($table_name:ident, $id_info_type:ty, [$(($id:expr, $info:expr $(,)?)),* $(,)?]) => {
        static $table_name: $crate::xen::xenbus::IdArray<
            $id_info_type,
            { <[$crate::xen::xenbus::DeviceId]>::len(&[$($id,)*]) },
        > = $crate::xen::xenbus::IdArray::new([$(($id, &$info),)*]);
    };
}

/// What becomes of a device once [`Driver::otherend_changed`] has returned.
///
/// A C backend unregisters its own device with `device_unregister()` from its `otherend_changed`
/// callback once the frontend is gone for good: its node vanished (state
/// [`XenbusState::Unknown`]), or it closed while the toolstack marks the device offline (see
/// [`Device::is_online`]). A Rust driver returns [`OtherendAction::Unregister`] instead: the
/// device cannot be unregistered while the callback still borrows it and the driver's data, which
/// the unregistration drops.
///
/// C header: [`include/xen/xenbus.h`](srctree/include/xen/xenbus.h) (`otherend_changed` of
/// `struct xenbus_driver`), [`include/linux/device.h`](srctree/include/linux/device.h)
/// (`device_unregister()`)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum OtherendAction {
    /// Keep the device.
    Keep,
    /// Unregister the device, right after the callback returns and in the same thread.
    ///
    /// The driver is unbound as for any removal ([`Driver::unbind`], then the driver's data is
    /// dropped) and the device leaves the bus; its XenStore directory stays, for the toolstack to
    /// remove. [`Driver::otherend_changed`] is not called again for the device, and the xenbus
    /// core does not unregister it a second time if the toolstack removes the directory
    /// meanwhile.
    Unregister,
}

/// A xenbus driver.
///
/// # Examples
///
/// A skeleton frontend that connects once its backend is ready:
///
/// ```
/// use kernel::{
///     device::Core,
///     driver,
///     prelude::*,
///     xen::xenbus::{self, XenbusState},
/// };
///
/// struct Front;
///
/// struct FrontData<'bound> {
///     dev: &'bound xenbus::Device,
/// }
///
/// kernel::xenbus_device_table!(FRONT_IDS, (), [(xenbus::DeviceId::new(c"pci"), ())]);
///
/// impl xenbus::Driver for Front {
///     type IdInfo = ();
///     type Data<'bound> = FrontData<'bound>;
///     const ID_TABLE: xenbus::IdTable<()> = &FRONT_IDS;
///
///     fn probe<'bound>(
///         dev: &'bound xenbus::Device<Core<'_>>,
///         _info: &'bound (),
///     ) -> impl PinInit<FrontData<'bound>, Error> + 'bound {
///         // Grant the shared page, allocate the event channel, publish them...
///         dev.switch_state(XenbusState::Initialised)?;
///         Ok(FrontData { dev })
///     }
///
///     fn otherend_changed<'bound>(
///         dev: &'bound xenbus::Device<Core<'_>>,
///         _this: Pin<&FrontData<'bound>>,
///         state: XenbusState,
///     ) -> xenbus::OtherendAction {
///         match state {
///             XenbusState::Connected => {
///                 let _ = dev.switch_state(XenbusState::Connected);
///             }
///             XenbusState::Closing | XenbusState::Closed => {
///                 let _ = dev.switch_state(XenbusState::Closed);
///             }
///             _ => {}
///         }
///         xenbus::OtherendAction::Keep
///     }
/// }
///
/// // In the module, registered under the name the toolstack expects:
/// type Registration = driver::Registration<xenbus::FrontendAdapter<Front>>;
/// fn register(module: &'static ThisModule) -> impl PinInit<Registration, Error> {
///     Registration::new(c"pcifront", module)
/// }
/// ```
pub trait Driver {
    /// The information attached to each entry of [`Driver::ID_TABLE`].
    type IdInfo: 'static;

    /// The driver's private data for a bound device.
    type Data<'bound>: Send + 'bound;

    /// The device types the driver handles.
    const ID_TABLE: IdTable<Self::IdInfo>;

    /// Binds the driver to `dev`, whose type matched the entry with `id_info` in
    /// [`Driver::ID_TABLE`].
    ///
    /// The other end's details ([`Device::otherend`], [`Device::otherend_id`]) are known, but
    /// [`Driver::otherend_changed`] is only called once `probe` has returned successfully.
    fn probe<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        id_info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound;

    /// Called when the other end's state changed, with the new state.
    ///
    /// Runs in the `xenwatch` thread, from the successful return of [`Driver::probe`] until the
    /// device is unbound; calls for a device never overlap. Values of the other end's `state`
    /// node that are not a valid [`XenbusState`] are ignored; a missing node reads as
    /// [`XenbusState::Unknown`].
    ///
    /// Returns [`OtherendAction::Unregister`] to have the device unregistered, as backends do
    /// once the frontend is gone.
    fn otherend_changed<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
        state: XenbusState,
    ) -> OtherendAction;

    /// Whether the driver watches the device's own node: [`Driver::node_changed`] is called
    /// only if `true` (backends set it, to see what the toolstack writes there). Backends only:
    /// a frontend driver that sets it does not build (a restore from a saved image frees the
    /// other end's details while the node's watch could run).
    const WATCH_NODE: bool = false;

    /// Called when the device's own XenStore directory, or a node below it, changed, if
    /// [`Driver::WATCH_NODE`] is set. Implementing this callback is optional.
    ///
    /// Runs in the `xenwatch` thread, from the successful return of [`Driver::probe`] until the
    /// device is unbound, never at the same time as another callback of the device. Also called
    /// once right after the probe, whether or not anything changed.
    fn node_changed<'bound>(dev: &'bound Device<device::Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let _ = (dev, this);
    }

    /// Unbinds the driver from `dev`. Implementing this callback is optional.
    ///
    /// Called before the driver's data is dropped, and also when the xenbus core fails to
    /// complete a probe that [`Driver::probe`] accepted. Resources are best released in `Drop`;
    /// this is the place for teardown that needs the device in the [`device::Core`] context.
    ///
    /// After it returns, unless the driver is registered to survive rebinding, the xenbus core
    /// switches the device to [`XenbusState::Closed`].
    fn unbind<'bound>(dev: &'bound Device<device::Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let _ = (dev, this);
    }
}

mod private {
    pub trait Sealed {}
}

/// The half of a split device a xenbus driver drives; selects the registration function.
///
/// Implemented by [`Frontend`] and [`Backend`].
pub trait End: private::Sealed {
    /// `true` for frontend drivers, `false` for backend drivers.
    #[doc(hidden)]
    const FRONTEND: bool;
}

/// Marks frontend drivers, the guest side of a split device.
#[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
pub struct Frontend;

#[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
impl private::Sealed for Frontend {}

#[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
impl End for Frontend {
    const FRONTEND: bool = true;
}

/// Marks backend drivers, the providing side of a split device.
#[cfg(CONFIG_XEN_BACKEND)]
pub struct Backend;

#[cfg(CONFIG_XEN_BACKEND)]
impl private::Sealed for Backend {}

#[cfg(CONFIG_XEN_BACKEND)]
impl End for Backend {
    const FRONTEND: bool = false;
}

/// What the adapter keeps for a bound device: the driver's data and the watch of the device's
/// own node ([`Driver::WATCH_NODE`]).
///
/// # Invariants
///
/// `xdev` is the device this is the driver data of. If `T::WATCH_NODE`, `node_watch` is
/// registered from the end of the probe until `remove_callback()` unregisters it, with
/// `node_changed_callback()` as its callback and the device's `nodename` as its node.
#[doc(hidden)]
#[pin_data]
pub struct AdapterData<'bound, T: Driver> {
    #[pin]
    data: T::Data<'bound>,
    #[pin]
    node_watch: Opaque<bindings::xenbus_watch>,
    xdev: *mut bindings::xenbus_device,
}

impl<'bound, T: Driver> AdapterData<'bound, T> {
    /// The driver's data.
    fn data(self: Pin<&Self>) -> Pin<&T::Data<'bound>> {
        // SAFETY: `data` is structurally pinned (`#[pin]`): it is never moved out of `self`.
        unsafe { self.map_unchecked(|this| &this.data) }
    }
}

/// An adapter for the registration of xenbus drivers of the half `E`.
///
/// Use it through [`FrontendAdapter`] or [`BackendAdapter`] with [`driver::Registration`].
pub struct Adapter<T: Driver, E: End>(PhantomData<(T, E)>);

/// The adapter of frontend drivers.
#[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
pub type FrontendAdapter<T> = Adapter<T, Frontend>;

/// The adapter of backend drivers.
#[cfg(CONFIG_XEN_BACKEND)]
pub type BackendAdapter<T> = Adapter<T, Backend>;

// SAFETY:
// - `bindings::xenbus_driver` is a C type declared as `repr(C)`.
// - `AdapterData<T>` is the type of the driver's device private data.
// - `struct xenbus_driver` embeds a `struct device_driver`.
// - `DEVICE_DRIVER_OFFSET` is the correct byte offset to the embedded `struct device_driver`.
unsafe impl<T: Driver, E: End> driver::DriverLayout for Adapter<T, E> {
    type DriverType = bindings::xenbus_driver;
    type DriverData<'bound> = AdapterData<'bound, T>;
    const DEVICE_DRIVER_OFFSET: usize = offset_of!(bindings::xenbus_driver, driver);
}

// SAFETY: A call to `unregister` for a given instance of `DriverType` is guaranteed to be valid if
// a preceding call to `register` has been successful.
unsafe impl<T: Driver, E: End> driver::RegistrationOps for Adapter<T, E> {
    unsafe fn register(
        xdrv: &Opaque<Self::DriverType>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        const {
            assert!(
                !(E::FRONTEND && T::WATCH_NODE),
                "a xenbus frontend driver cannot watch its node"
            )
        };

        // SAFETY: It's safe to set the fields of `struct xenbus_driver` on initialization.
        unsafe {
            (*xdrv.get()).name = name.as_char_ptr();
            (*xdrv.get()).ids = T::ID_TABLE.as_ptr();
            (*xdrv.get()).probe = Some(Self::probe_callback);
            (*xdrv.get()).otherend_changed = Some(Self::otherend_changed_callback);
            (*xdrv.get()).remove = Some(Self::remove_callback);
        }

        let ret = if E::FRONTEND {
            // SAFETY: `xdrv` is guaranteed to be a valid `DriverType`.
            unsafe { Self::register_frontend(xdrv.get(), module, name) }
        } else {
            // SAFETY: `xdrv` is guaranteed to be a valid `DriverType`.
            unsafe { Self::register_backend(xdrv.get(), module, name) }
        };
        to_result(ret)
    }

    unsafe fn unregister(xdrv: &Opaque<Self::DriverType>) {
        // SAFETY: `xdrv` is guaranteed to be a valid, registered `DriverType`.
        unsafe { bindings::xenbus_unregister_driver(xdrv.get()) }
    }
}

impl<T: Driver, E: End> Adapter<T, E> {
    // The registration functions live in modules that may be loadable (the frontend bus is
    // tristate): they are only referenced from these generic functions, which are instantiated
    // in the driver's module.

    /// # Safety
    ///
    /// `xdrv` points to a valid `struct xenbus_driver` that stays pinned until unregistered.
    #[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
    unsafe fn register_frontend(
        xdrv: *mut bindings::xenbus_driver,
        module: &'static ThisModule,
        name: &'static CStr,
    ) -> c_int {
        // SAFETY: Guaranteed by the safety requirements of this function.
        unsafe { bindings::__xenbus_register_frontend(xdrv, module.as_ptr(), name.as_char_ptr()) }
    }

    /// # Safety
    ///
    /// `xdrv` points to a valid `struct xenbus_driver` that stays pinned until unregistered.
    #[cfg(not(CONFIG_XEN_XENBUS_FRONTEND))]
    unsafe fn register_frontend(
        _xdrv: *mut bindings::xenbus_driver,
        _module: &'static ThisModule,
        _name: &'static CStr,
    ) -> c_int {
        ENODEV.to_errno()
    }

    /// # Safety
    ///
    /// `xdrv` points to a valid `struct xenbus_driver` that stays pinned until unregistered.
    #[cfg(CONFIG_XEN_BACKEND)]
    unsafe fn register_backend(
        xdrv: *mut bindings::xenbus_driver,
        module: &'static ThisModule,
        name: &'static CStr,
    ) -> c_int {
        // SAFETY: Guaranteed by the safety requirements of this function.
        unsafe { bindings::__xenbus_register_backend(xdrv, module.as_ptr(), name.as_char_ptr()) }
    }

    /// # Safety
    ///
    /// `xdrv` points to a valid `struct xenbus_driver` that stays pinned until unregistered.
    #[cfg(not(CONFIG_XEN_BACKEND))]
    unsafe fn register_backend(
        _xdrv: *mut bindings::xenbus_driver,
        _module: &'static ThisModule,
        _name: &'static CStr,
    ) -> c_int {
        ENODEV.to_errno()
    }

    extern "C" fn probe_callback(
        xdev: *mut bindings::xenbus_device,
        id: *const bindings::xenbus_device_id,
    ) -> c_int {
        let raw = xdev;
        // SAFETY: The xenbus core only ever calls the probe callback with a valid pointer to a
        // `struct xenbus_device`.
        //
        // INVARIANT: `xdev` is valid for the duration of `probe_callback()`.
        let xdev = unsafe { &*xdev.cast::<Device<device::CoreInternal<'_>>>() };

        from_result(|| {
            // SAFETY: `id` is the entry of `drv->ids`, i.e. of the C array of `T::ID_TABLE`, that
            // matched the device.
            let info = unsafe { Self::id_info(id) }?;
            let data = T::probe(xdev, info);

            xdev.as_ref().set_drvdata(try_pin_init!(AdapterData::<T> {
                data <- data,
                node_watch: Opaque::zeroed(),
                xdev: raw,
            }))?;

            if T::WATCH_NODE {
                // SAFETY: The driver data was set just above, as an `AdapterData<T>`.
                let this = unsafe { xdev.as_ref().drvdata_borrow::<AdapterData<'_, T>>() };
                let watch = this.node_watch.get();
                // SAFETY: `watch` is a zeroed, not yet registered `xenbus_watch` in the driver
                // data, which stays pinned until after `remove_callback()`; `nodename` lives as
                // long as the device.
                let ret = unsafe {
                    (*watch).node = (*raw).nodename;
                    (*watch).will_handle = None;
                    (*watch).callback = Some(Self::node_changed_callback);
                    bindings::register_xenbus_watch(watch)
                };
                if let Err(e) = to_result(ret) {
                    // As if the xenbus core had failed the probe: the driver unbinds, and its
                    // data goes.
                    T::unbind(xdev, this.data());
                    // SAFETY: The driver data is an `AdapterData<T>`, set above; nothing
                    // borrows it any more.
                    drop(unsafe { xdev.as_ref().drvdata_obtain::<AdapterData<'_, T>>() });
                    return Err(e);
                }
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Only called by the XenStore core for a watch registered by `probe_callback()`, with
    /// valid NUL-terminated strings.
    unsafe extern "C" fn node_changed_callback(
        watch: *mut bindings::xenbus_watch,
        _path: *const c_char,
        _token: *const c_char,
    ) {
        let watch = Opaque::cast_from(watch).cast_mut();
        // SAFETY: By the type invariant of `AdapterData`, the only watches registered with this
        // callback are the `node_watch` of the pinned driver data of a bound device, registered
        // until `remove_callback()` unregisters it (which waits for this call to return).
        let this = unsafe { &*crate::container_of!(watch, AdapterData<'_, T>, node_watch) };
        // SAFETY: `this` stays pinned (see above).
        let this = unsafe { Pin::new_unchecked(this) };

        // SAFETY: By the type invariant `xdev` is the device, valid while bound.
        //
        // INVARIANT: This runs in the `xenwatch` thread, between the end of the probe and the
        // unbind, like `otherend_changed`: a `Core` context (see the module documentation).
        let xdev = unsafe { &*this.xdev.cast::<Device<device::CoreInternal<'_>>>() };

        T::node_changed(xdev, this.data());
    }

    /// Returns the information `T::ID_TABLE` holds for its entry `id`; fails with [`EINVAL`]
    /// for an entry without any (the terminator).
    ///
    /// # Safety
    ///
    /// `id` points into the C array of `T::ID_TABLE`.
    unsafe fn id_info(id: *const bindings::xenbus_device_id) -> Result<&'static T::IdInfo> {
        // SAFETY: Both pointers are in the same allocation, as required.
        let index = unsafe { id.offset_from(T::ID_TABLE.as_ptr()) };

        usize::try_from(index)
            .ok()
            .and_then(|index| T::ID_TABLE.info(index))
            .ok_or(EINVAL)
    }

    extern "C" fn otherend_changed_callback(
        xdev: *mut bindings::xenbus_device,
        state: bindings::xenbus_state,
    ) {
        // SAFETY: The xenbus core only ever calls this callback with a valid pointer to a
        // `struct xenbus_device` bound to this driver, as the handler of its other end's watch,
        // in the `xenwatch` thread.
        let action = unsafe { Self::otherend_changed(xdev, state) };

        if action == OtherendAction::Unregister {
            // As in C, this takes the device lock: an unbind through sysfs that holds it and
            // waits for this callback (in `unregister_xenbus_watch()`) would deadlock.
            //
            // Besides its driver, from this callback, only the xenbus core unregisters a xenbus
            // device: in `xenbus_dev_changed()`, when the toolstack removed its node (or reset a
            // frontend), a watch callback that runs in the `xenwatch` thread too, never at the
            // same time. The unbind unregisters the other end's watch and discards its pending
            // events, so this callback does not run again for the device, and
            // `xenbus_dev_changed()` no longer finds it on the bus afterwards.
            //
            // SAFETY: `xdev` is valid and still registered, and it is unregistered only once (see
            // above). No reference to the device or to the driver's data outlives
            // `Self::otherend_changed()`, so the unbind may drop them.
            unsafe { bindings::device_unregister(addr_of_mut!((*xdev).dev)) };
        }
    }

    /// Calls [`Driver::otherend_changed`] for `xdev` and returns what it asks for.
    ///
    /// # Safety
    ///
    /// `xdev` points to a valid `struct xenbus_device` bound to this driver, and the caller is
    /// the handler of its other end's watch.
    unsafe fn otherend_changed(
        xdev: *mut bindings::xenbus_device,
        state: bindings::xenbus_state,
    ) -> OtherendAction {
        // SAFETY: Guaranteed by the safety requirements of this function.
        //
        // INVARIANT: `xdev` is valid for the duration of `otherend_changed()`.
        let xdev = unsafe { &*xdev.cast::<Device<device::CoreInternal<'_>>>() };

        let Ok(state) = XenbusState::try_from(state) else {
            dev_dbg!(
                xdev.as_ref(),
                "ignoring invalid other end state {}\n",
                state
            );
            return OtherendAction::Keep;
        };

        // SAFETY: The xenbus core watches the other end only between a successful return of
        // `probe_callback()`, which stored a `Pin<KBox<AdapterData<T>>>` with
        // `Device::set_drvdata()`, and the call of `remove_callback()`; unregistering the watch
        // waits for this callback to return.
        let this = unsafe { xdev.as_ref().drvdata_borrow::<AdapterData<'_, T>>() };

        T::otherend_changed(xdev, this.data(), state)
    }

    extern "C" fn remove_callback(xdev: *mut bindings::xenbus_device) {
        // SAFETY: The xenbus core only ever calls the remove callback with a valid pointer to a
        // `struct xenbus_device`.
        //
        // INVARIANT: `xdev` is valid for the duration of `remove_callback()`.
        let xdev = unsafe { &*xdev.cast::<Device<device::CoreInternal<'_>>>() };

        // SAFETY: `remove_callback` is only ever called after a successful call to
        // `probe_callback`, hence it's guaranteed that `Device::set_drvdata()` has been called
        // and stored a `Pin<KBox<AdapterData<T>>>`.
        let this = unsafe { xdev.as_ref().drvdata_borrow::<AdapterData<'_, T>>() };

        if T::WATCH_NODE {
            // SAFETY: By the type invariant of `AdapterData` the watch is registered. This
            // waits for a running `node_changed_callback()` unless called from the `xenwatch`
            // thread, where none runs: the callbacks there run one at a time, and this one is
            // not `node_changed_callback()`, which never unregisters the device.
            unsafe { bindings::unregister_xenbus_watch(this.node_watch.get()) };
        }

        T::unbind(xdev, this.data());
    }
}

/// Declares a kernel module that exposes a single xenbus frontend driver, registered under the
/// module's name.
#[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
#[macro_export]
macro_rules! module_xenbus_frontend_driver {
    ($($f:tt)*) => {
        $crate::module_driver!(<T>, $crate::xen::xenbus::FrontendAdapter<T>, { $($f)* });
    };
}

/// Declares a kernel module that exposes a single xenbus backend driver, registered under the
/// module's name.
#[cfg(CONFIG_XEN_BACKEND)]
#[macro_export]
macro_rules! module_xenbus_backend_driver {
    ($($f:tt)*) => {
        $crate::module_driver!(<T>, $crate::xen::xenbus::BackendAdapter<T>, { $($f)* });
    };
}

#[cfg(CONFIG_RUST_XEN_KUNIT_TEST)]
#[macros::kunit_tests(rust_xen_xenbus)]
mod tests {
    use super::*;

    const ALL: [XenbusState; 9] = [
        XenbusState::Unknown,
        XenbusState::Initialising,
        XenbusState::InitWait,
        XenbusState::Initialised,
        XenbusState::Connected,
        XenbusState::Closing,
        XenbusState::Closed,
        XenbusState::Reconfiguring,
        XenbusState::Reconfigured,
    ];

    #[test]
    fn state_round_trip() {
        for (raw, state) in (0u32..).zip(ALL) {
            assert_eq!(u32::from(state), raw);
            assert_eq!(XenbusState::try_from(raw), Ok(state));
        }
        assert_eq!(XenbusState::try_from(9), Err(EINVAL));
        assert_eq!(XenbusState::try_from(u32::MAX), Err(EINVAL));
        assert_eq!(XenbusState::from_raw_lossy(42), XenbusState::Unknown);
    }

    #[test]
    fn state_names_match_c() {
        for state in ALL {
            // SAFETY: `xenbus_strstate()` returns a static string for any value.
            let c_name = unsafe { CStr::from_char_ptr(bindings::xenbus_strstate(state.into())) };
            assert_eq!(c_name.to_bytes(), state.name().as_bytes());
        }
    }

    #[test]
    fn device_id_and_table() {
        const PCI: DeviceId = DeviceId::new(c"pci");
        assert_eq!(PCI.devicetype(), c"pci");

        static TABLE: IdArray<u32, 2> =
            IdArray::new([(DeviceId::new(c"pci"), &1), (DeviceId::new(c"vbd"), &2)]);
        let table: IdTable<u32> = &TABLE;
        assert_eq!(table.info(0), Some(&1));
        assert_eq!(table.info(1), Some(&2));
        assert_eq!(table.info(2), None);

        // The C array is zero-terminated.
        // SAFETY: The table holds two entries and the terminator.
        let raw = unsafe { &*table.as_ptr().add(2) };
        assert_eq!(raw.devicetype[0], 0);
    }

    #[cfg(any(CONFIG_XEN_XENBUS_FRONTEND, CONFIG_XEN_BACKEND))]
    struct Dummy;

    #[cfg(any(CONFIG_XEN_XENBUS_FRONTEND, CONFIG_XEN_BACKEND))]
    crate::xenbus_device_table!(
        DUMMY_IDS,
        u8,
        [
            (DeviceId::new(c"dummy"), 7),
            (DeviceId::new(c"vdummy"), 8),
            (DeviceId::new(c"pci"), 9)
        ]
    );

    #[cfg(any(CONFIG_XEN_XENBUS_FRONTEND, CONFIG_XEN_BACKEND))]
    impl Driver for Dummy {
        type IdInfo = u8;
        type Data<'bound> = &'bound Device;
        const ID_TABLE: IdTable<u8> = &DUMMY_IDS;

        fn probe<'bound>(
            dev: &'bound Device<device::Core<'_>>,
            _id_info: &'bound u8,
        ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
            let _ = dev.otherend();
            Ok(&***dev)
        }

        fn otherend_changed<'bound>(
            dev: &'bound Device<device::Core<'_>>,
            _this: Pin<&Self::Data<'bound>>,
            state: XenbusState,
        ) -> OtherendAction {
            match state {
                XenbusState::Closing => {
                    let _ = dev.switch_state(XenbusState::Closed);
                    OtherendAction::Keep
                }
                XenbusState::Unknown => OtherendAction::Unregister,
                _ => OtherendAction::Keep,
            }
        }
    }

    #[cfg(any(CONFIG_XEN_XENBUS_FRONTEND, CONFIG_XEN_BACKEND))]
    type RegisterFn =
        unsafe fn(&Opaque<bindings::xenbus_driver>, &'static CStr, &'static ThisModule) -> Result;

    /// The entry of the driver's table that matched a device, as the xenbus core hands it to
    /// the probe callback, leads to that entry's information; the terminator to none.
    #[cfg(any(CONFIG_XEN_XENBUS_FRONTEND, CONFIG_XEN_BACKEND))]
    #[test]
    fn adapter_id_info() {
        fn check<E: End>() {
            let ids = <Dummy as Driver>::ID_TABLE.as_ptr();
            for (i, info) in [7u8, 8, 9].iter().enumerate() {
                // SAFETY: The table has three entries and a terminator.
                let entry = unsafe { ids.add(i) };
                // SAFETY: `entry` points into the table's C array.
                assert_eq!(unsafe { Adapter::<Dummy, E>::id_info(entry) }, Ok(info));
            }
            // SAFETY: As above; this is the terminator.
            let last = unsafe { Adapter::<Dummy, E>::id_info(ids.add(3)) };
            assert_eq!(last, Err(EINVAL));
        }

        #[cfg(CONFIG_XEN_XENBUS_FRONTEND)]
        {
            check::<Frontend>();
            // Builds the adapter's registration (not a check: `register` is not run here).
            let _ = core::hint::black_box(
                <FrontendAdapter<Dummy> as driver::RegistrationOps>::register as RegisterFn,
            );
        }
        #[cfg(CONFIG_XEN_BACKEND)]
        {
            check::<Backend>();
            // As above.
            let _ = core::hint::black_box(
                <BackendAdapter<Dummy> as driver::RegistrationOps>::register as RegisterFn,
            );
        }
    }
}
