// SPDX-License-Identifier: GPL-2.0

//! PCI error recovery (PCI-ERS, AER): the callbacks of `struct pci_error_handlers`.
//!
//! When a bus error hits a device, the PCI core (the AER or DPC service, or a platform's
//! error handling) walks the drivers of the devices below the failed link through the steps
//! of a recovery: `error_detected`, then `mmio_enabled` or a reset and `slot_reset`, then
//! `resume`. Each step's callback runs with the device lock held, for a bound driver only.
//!
//! A driver takes part by implementing [`ErrorHandler`] and pointing
//! [`Driver::ERROR_HANDLERS`](super::Driver::ERROR_HANDLERS) at its table; a driver without one
//! has no `err_handler`, and the PCI core does not recover devices bound to it.
//!
//! [`Device::with_error_handlers`] calls the handlers of whichever driver is bound to a device,
//! as the PCI core does; this is for code that relays a recovery the PCI core of another domain
//! runs (a paravirtualised PCI frontend).
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::{
    Device,
    Driver, //
};
use crate::{
    bindings,
    container_of,
    device,
    error::VTABLE_DEFAULT_ERROR,
    prelude::*, //
};
use core::marker::PhantomData;

/// The state of the link between the CPU and a device (`pci_channel_state_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ChannelState {
    /// I/O to the device works (`pci_channel_io_normal`).
    Normal = bindings::pci_channel_io_normal,
    /// I/O to the device is blocked (`pci_channel_io_frozen`).
    Frozen = bindings::pci_channel_io_frozen,
    /// The device is dead (`pci_channel_io_perm_failure`).
    PermFailure = bindings::pci_channel_io_perm_failure,
}

impl ChannelState {
    /// Converts a C `pci_channel_state_t`; [`None`] for a value that is no channel state.
    pub fn from_raw(raw: bindings::pci_channel_state_t) -> Option<Self> {
        match raw {
            bindings::pci_channel_io_normal => Some(Self::Normal),
            bindings::pci_channel_io_frozen => Some(Self::Frozen),
            bindings::pci_channel_io_perm_failure => Some(Self::PermFailure),
            _ => None,
        }
    }

    /// Returns the C `pci_channel_state_t`.
    pub fn as_raw(self) -> bindings::pci_channel_state_t {
        self as bindings::pci_channel_state_t
    }
}

/// A driver's vote in a step of the recovery (`pci_ers_result_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErsResult {
    /// No vote: not supported, or nothing to say (`PCI_ERS_RESULT_NONE`).
    None = bindings::pci_ers_result_PCI_ERS_RESULT_NONE,
    /// The driver can recover without a reset (`PCI_ERS_RESULT_CAN_RECOVER`).
    CanRecover = bindings::pci_ers_result_PCI_ERS_RESULT_CAN_RECOVER,
    /// The driver wants the slot reset (`PCI_ERS_RESULT_NEED_RESET`).
    NeedReset = bindings::pci_ers_result_PCI_ERS_RESULT_NEED_RESET,
    /// The device cannot be recovered (`PCI_ERS_RESULT_DISCONNECT`).
    Disconnect = bindings::pci_ers_result_PCI_ERS_RESULT_DISCONNECT,
    /// The driver works again (`PCI_ERS_RESULT_RECOVERED`).
    Recovered = bindings::pci_ers_result_PCI_ERS_RESULT_RECOVERED,
    /// The PCI core's verdict for a driver without handlers (`PCI_ERS_RESULT_NO_AER_DRIVER`).
    NoAerDriver = bindings::pci_ers_result_PCI_ERS_RESULT_NO_AER_DRIVER,
}

impl ErsResult {
    /// Converts a C `pci_ers_result_t`; [`None`](Option::None) for a value that is no result.
    pub fn from_raw(raw: bindings::pci_ers_result_t) -> Option<Self> {
        Some(match raw {
            bindings::pci_ers_result_PCI_ERS_RESULT_NONE => Self::None,
            bindings::pci_ers_result_PCI_ERS_RESULT_CAN_RECOVER => Self::CanRecover,
            bindings::pci_ers_result_PCI_ERS_RESULT_NEED_RESET => Self::NeedReset,
            bindings::pci_ers_result_PCI_ERS_RESULT_DISCONNECT => Self::Disconnect,
            bindings::pci_ers_result_PCI_ERS_RESULT_RECOVERED => Self::Recovered,
            bindings::pci_ers_result_PCI_ERS_RESULT_NO_AER_DRIVER => Self::NoAerDriver,
            _ => return Option::None,
        })
    }

    /// Returns the C `pci_ers_result_t`.
    pub fn as_raw(self) -> bindings::pci_ers_result_t {
        self as bindings::pci_ers_result_t
    }
}

/// The error recovery callbacks of a PCI [`Driver`] (`struct pci_error_handlers`).
///
/// Each callback runs with the device lock held, while the driver is bound to the device, so it
/// gets the device in the [`Core`](device::Core) context and the driver's data, as
/// [`Driver::unbind`] does. `error_detected` is required; the others are optional (the PCI core
/// skips a missing one).
///
/// The table is handed to the PCI core through
/// [`Driver::ERROR_HANDLERS`](super::Driver::ERROR_HANDLERS).
///
/// # Examples
///
/// ```
/// # use kernel::{bindings, device::Core, pci, prelude::*};
/// struct MyDriver;
///
/// kernel::pci_device_table!(
///     PCI_TABLE,
///     <MyDriver as pci::Driver>::IdInfo,
///     [(pci::DeviceId::from_id(pci::Vendor::REDHAT, bindings::PCI_ANY_ID as u32), ())]
/// );
///
/// impl pci::Driver for MyDriver {
///     type IdInfo = ();
///     type Data<'bound> = Self;
///     const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;
///     const ERROR_HANDLERS: Option<pci::ErrorHandlers<Self>> = Some(pci::ErrorHandlers::TABLE);
///
///     fn probe<'bound>(
///         _pdev: &'bound pci::Device<Core<'_>>,
///         _id_info: Option<&'bound Self::IdInfo>,
///     ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
///         Ok(MyDriver)
///     }
/// }
///
/// #[vtable]
/// impl pci::ErrorHandler for MyDriver {
///     fn error_detected<'bound>(
///         pdev: &'bound pci::Device<Core<'_>>,
///         _this: Pin<&Self::Data<'bound>>,
///         state: pci::ChannelState,
///     ) -> pci::ErsResult {
///         dev_warn!(pdev, "bus error, channel {:?}\n", state);
///         match state {
///             pci::ChannelState::PermFailure => pci::ErsResult::Disconnect,
///             _ => pci::ErsResult::NeedReset,
///         }
///     }
///
///     fn slot_reset<'bound>(
///         _pdev: &'bound pci::Device<Core<'_>>,
///         _this: Pin<&Self::Data<'bound>>,
///     ) -> pci::ErsResult {
///         pci::ErsResult::Recovered
///     }
/// }
/// ```
#[vtable]
pub trait ErrorHandler: Driver {
    /// A bus error was detected on the device (`error_detected`); `state` says whether I/O to
    /// it still works. Returns the driver's vote: [`ErsResult::CanRecover`],
    /// [`ErsResult::NeedReset`] or [`ErsResult::Disconnect`].
    fn error_detected<'bound>(
        dev: &'bound Device<device::Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
        state: ChannelState,
    ) -> ErsResult;

    /// MMIO works again, DMA not yet (`mmio_enabled`).
    fn mmio_enabled<'bound>(
        _dev: &'bound Device<device::Core<'_>>,
        _this: Pin<&Self::Data<'bound>>,
    ) -> ErsResult {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The slot was reset (`slot_reset`).
    fn slot_reset<'bound>(
        _dev: &'bound Device<device::Core<'_>>,
        _this: Pin<&Self::Data<'bound>>,
    ) -> ErsResult {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The recovery is over: the driver may resume normal operation (`resume`).
    fn resume<'bound>(_dev: &'bound Device<device::Core<'_>>, _this: Pin<&Self::Data<'bound>>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The `struct pci_error_handlers` of the driver `T`, built from its [`ErrorHandler`]
/// implementation: [`ErrorHandlers::TABLE`].
///
/// The type names the driver, so that [`Driver::ERROR_HANDLERS`](super::Driver::ERROR_HANDLERS)
/// only takes the table of the driver itself: the callbacks borrow the driver data as `T`'s.
///
/// # Invariants
///
/// The callbacks in the table are those of [`ErrorHandlers::TABLE`] for `T`: they expect the
/// driver data of `T`.
#[repr(transparent)]
pub struct ErrorHandlers<T: ?Sized>(bindings::pci_error_handlers, PhantomData<*const T>);

impl<T: ?Sized> Clone for ErrorHandlers<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for ErrorHandlers<T> {}

impl<T: ErrorHandler> ErrorHandlers<T> {
    /// The table of `T`'s callbacks; a callback `T` does not implement is left NULL.
    // INVARIANT: The callbacks are those of `T`.
    pub const TABLE: Self = Self(
        bindings::pci_error_handlers {
            error_detected: Some(Self::error_detected_callback),
            mmio_enabled: if T::HAS_MMIO_ENABLED {
                Some(Self::mmio_enabled_callback)
            } else {
                None
            },
            slot_reset: if T::HAS_SLOT_RESET {
                Some(Self::slot_reset_callback)
            } else {
                None
            },
            reset_prepare: None,
            reset_done: None,
            resume: if T::HAS_RESUME {
                Some(Self::resume_callback)
            } else {
                None
            },
            cor_error_detected: None,
        },
        PhantomData,
    );

    // SAFETY (for the four callbacks below): The PCI core only calls the error handlers of the
    // driver bound to a device, with a valid `struct pci_dev` and the device lock held (see
    // `drivers/pci/pcie/err.c`), and only calls those of `T` with `T`'s table (type
    // invariant), so with devices bound to `T`: `T`'s probe succeeded and set the driver data
    // (`Adapter::probe_callback`), which is only taken after `remove`, which the held device
    // lock keeps from running.

    /// # Safety
    ///
    /// Only called by the PCI core, as the error handler of a device bound to `T` (see above).
    unsafe extern "C" fn error_detected_callback(
        pdev: *mut bindings::pci_dev,
        state: bindings::pci_channel_state_t,
    ) -> bindings::pci_ers_result_t {
        let Some(state) = ChannelState::from_raw(state) else {
            // No such state exists in the PCI core: no vote.
            return ErsResult::None.as_raw();
        };
        // SAFETY: See above: `pdev` is valid and its device lock held for the whole callback.
        //
        // INVARIANT: `pdev` is valid for the duration of the callback.
        let pdev = unsafe { &*pdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: See above: the driver data of `T` is set and stays for the whole callback.
        let data = unsafe { pdev.as_ref().drvdata_borrow::<T::Data<'_>>() };
        T::error_detected(pdev, data, state).as_raw()
    }

    /// # Safety
    ///
    /// Only called by the PCI core, as the error handler of a device bound to `T` (see above).
    unsafe extern "C" fn mmio_enabled_callback(
        pdev: *mut bindings::pci_dev,
    ) -> bindings::pci_ers_result_t {
        // SAFETY: As for `error_detected_callback`.
        //
        // INVARIANT: `pdev` is valid for the duration of the callback.
        let pdev = unsafe { &*pdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: As for `error_detected_callback`.
        let data = unsafe { pdev.as_ref().drvdata_borrow::<T::Data<'_>>() };
        T::mmio_enabled(pdev, data).as_raw()
    }

    /// # Safety
    ///
    /// Only called by the PCI core, as the error handler of a device bound to `T` (see above).
    unsafe extern "C" fn slot_reset_callback(
        pdev: *mut bindings::pci_dev,
    ) -> bindings::pci_ers_result_t {
        // SAFETY: As for `error_detected_callback`.
        //
        // INVARIANT: `pdev` is valid for the duration of the callback.
        let pdev = unsafe { &*pdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: As for `error_detected_callback`.
        let data = unsafe { pdev.as_ref().drvdata_borrow::<T::Data<'_>>() };
        T::slot_reset(pdev, data).as_raw()
    }

    /// # Safety
    ///
    /// Only called by the PCI core, as the error handler of a device bound to `T` (see above).
    unsafe extern "C" fn resume_callback(pdev: *mut bindings::pci_dev) {
        // SAFETY: As for `error_detected_callback`.
        //
        // INVARIANT: `pdev` is valid for the duration of the callback.
        let pdev = unsafe { &*pdev.cast::<Device<device::CoreInternal<'_>>>() };
        // SAFETY: As for `error_detected_callback`.
        let data = unsafe { pdev.as_ref().drvdata_borrow::<T::Data<'_>>() };
        T::resume(pdev, data);
    }
}

impl<T: ?Sized> ErrorHandlers<T> {
    /// Returns the C table, for `struct pci_driver`'s `err_handler` (which must then only be
    /// used for the driver `T`).
    pub(crate) const fn into_raw(self) -> bindings::pci_error_handlers {
        self.0
    }
}

/// The device lock of a device, held until dropped (`device_lock()`).
struct DeviceLock<'a>(&'a device::Device);

impl<'a> DeviceLock<'a> {
    fn lock(dev: &'a device::Device) -> Self {
        // SAFETY: `dev.as_raw()` is a valid `struct device`; `device_lock()` is
        // `mutex_lock(&dev->mutex)`, which this may sleep in.
        unsafe { bindings::mutex_lock(&raw mut (*dev.as_raw()).mutex) };
        Self(dev)
    }
}

impl Drop for DeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: Locked by `DeviceLock::lock` in this task.
        unsafe { bindings::mutex_unlock(&raw mut (*self.0.as_raw()).mutex) };
    }
}

/// The error handlers of the driver bound to a device, while [`Device::with_error_handlers`]
/// holds the device lock.
///
/// The driver may be written in C or Rust. Each method calls the callback, or returns
/// [`None`](Option::None) (`false` for [`BoundErrorHandlers::resume`]) if the driver has none
/// for that step. A value the callback returns that is no [`ErsResult`] counts as
/// [`ErsResult::None`].
///
/// # Invariants
///
/// `dev` is bound to a PCI driver whose `err_handler` is `handlers`, and its device lock is held
/// for `'a`.
pub struct BoundErrorHandlers<'a> {
    dev: &'a Device,
    handlers: Option<&'a bindings::pci_error_handlers>,
}

impl BoundErrorHandlers<'_> {
    /// Whether the driver has an `error_detected` callback (the one the PCI core requires for
    /// a recovery).
    pub fn has_error_detected(&self) -> bool {
        self.handlers.is_some_and(|h| h.error_detected.is_some())
    }

    /// Calls `error_detected`.
    pub fn error_detected(&self, state: ChannelState) -> Option<ErsResult> {
        let f = self.handlers?.error_detected?;
        // SAFETY: By the type invariant the driver is bound and the device lock held, as the
        // callback expects.
        let raw = unsafe { f(self.dev.as_raw(), state.as_raw()) };
        Some(ErsResult::from_raw(raw).unwrap_or(ErsResult::None))
    }

    /// Calls `mmio_enabled`.
    pub fn mmio_enabled(&self) -> Option<ErsResult> {
        let f = self.handlers?.mmio_enabled?;
        // SAFETY: As for `error_detected`.
        let raw = unsafe { f(self.dev.as_raw()) };
        Some(ErsResult::from_raw(raw).unwrap_or(ErsResult::None))
    }

    /// Calls `slot_reset`.
    pub fn slot_reset(&self) -> Option<ErsResult> {
        let f = self.handlers?.slot_reset?;
        // SAFETY: As for `error_detected`.
        let raw = unsafe { f(self.dev.as_raw()) };
        Some(ErsResult::from_raw(raw).unwrap_or(ErsResult::None))
    }

    /// Calls `resume`; `false` if the driver has none.
    pub fn resume(&self) -> bool {
        let Some(f) = self.handlers.and_then(|h| h.resume) else {
            return false;
        };
        // SAFETY: As for `error_detected`.
        unsafe { f(self.dev.as_raw()) };
        true
    }
}

impl Device {
    /// Calls `f` with the error handlers of the driver bound to the device, with the device lock
    /// held, or with [`None`](Option::None) if no driver is bound.
    ///
    /// This is how the PCI core calls them in a recovery: the lock keeps the driver bound (and
    /// its module loaded) for the whole of `f`, and whoever unbinds it meanwhile waits. `f` must
    /// not take the device lock of this device itself, nor wait for anything that does (an
    /// unbind or removal of the device).
    ///
    /// Unlike the PCI core, this neither records the channel state in the device nor sends
    /// uevents: it only relays the calls. Drivers expect the calls in the order of a recovery
    /// (`error_detected` first, then `mmio_enabled` or `slot_reset`, then `resume`), and may
    /// misbehave, though not unsoundly, when called out of it: the caller keeps the order.
    /// May sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// # use kernel::{pci, prelude::*};
    /// // Relays `error_detected` for a frozen link to the driver of 0000:00:02.0.
    /// fn relay() -> Option<pci::ErsResult> {
    ///     let pdev = pci::Device::get_by_slot(0, 0, 2 << 3)?;
    ///     pdev.with_error_handlers(|handlers| {
    ///         handlers?.error_detected(pci::ChannelState::Frozen)
    ///     })
    /// }
    /// ```
    pub fn with_error_handlers<R>(
        &self,
        f: impl FnOnce(Option<&BoundErrorHandlers<'_>>) -> R,
    ) -> R {
        let dev: &device::Device = self.as_ref();
        let _lock = DeviceLock::lock(dev);

        // SAFETY: `dev.as_raw()` is a valid `struct device`; its `driver` only changes under the
        // device lock, which is held.
        let driver = unsafe { (*dev.as_raw()).driver };
        if driver.is_null() {
            return f(Option::None);
        }

        // SAFETY: A device on the PCI bus is only bound to PCI drivers, whose `struct
        // device_driver` is the `driver` field of a `struct pci_driver` (`to_pci_driver()`).
        let pdrv = unsafe { container_of!(driver, bindings::pci_driver, driver) };
        // SAFETY: `pdrv` is a registered `struct pci_driver`, bound to the device: it (and its
        // module) stays while the device lock is held. `err_handler` is NULL or points to a
        // table that lives as long as the driver.
        let handlers = unsafe { (*pdrv).err_handler.as_ref() };

        // INVARIANT: The driver is bound, `handlers` is its table and the device lock is held
        // until `_lock` is dropped, after `f` returns.
        let bound = BoundErrorHandlers {
            dev: self,
            handlers,
        };
        f(Some(&bound))
    }
}

// The values of the wire protocol (`xen_pcie_aer_op`), which the drivers' shared code spells
// out as numbers.
const _: () = {
    assert!(ChannelState::Normal as u32 == 1);
    assert!(ChannelState::Frozen as u32 == 2);
    assert!(ChannelState::PermFailure as u32 == 3);
    assert!(ErsResult::None as u32 == 1);
    assert!(ErsResult::NoAerDriver as u32 == 6);
};
