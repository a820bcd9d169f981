// SPDX-License-Identifier: GPL-2.0

//! PCI root buses whose configuration space accesses are implemented in Rust.
//!
//! A driver that provides PCI devices without a hardware host bridge, such as a paravirtualised
//! frontend that forwards configuration space accesses to a backend, implements [`PciOps`] and
//! creates a [`RootBus`] with it. The PCI core then enumerates the devices on the bus, binds
//! drivers to them and sends all their configuration space accesses to the [`PciOps`].
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use super::{
    Device,
    PcibiosError, //
};
use crate::{
    bindings,
    device,
    prelude::*,
    revocable::Revocable,
    sync::atomic::{
        Acquire,
        Atomic,
        Release, //
    },
    types::{
        ForLt,
        ForeignOwnable,
        Opaque, //
    }, //
};
use core::{
    any::TypeId,
    marker::PhantomPinned,
    ptr::{
        self,
        NonNull, //
    },
};

/// The size of the largest (PCI Express extended) configuration space.
const CONFIG_SPACE_MAX: usize = 4096;

/// The width of a configuration space access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessWidth {
    /// One byte.
    Byte,
    /// Two bytes.
    Word,
    /// Four bytes.
    Dword,
}

impl AccessWidth {
    /// Returns the number of bytes accessed.
    pub const fn bytes(self) -> u8 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
        }
    }

    /// Returns the width of an access of `size` bytes, or [`None`] if there is no such access.
    const fn from_size(size: c_int) -> Option<Self> {
        match size {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            _ => None,
        }
    }
}

/// A set of device/function numbers (`devfn`, encoded as by C's `PCI_DEVFN()`) of one bus: those
/// a [`RootBus`] probes.
///
/// # Examples
///
/// ```
/// use kernel::pci::DevfnSet;
///
/// // Slot 2, functions 0 and 1, and slot 4, function 0.
/// let set: DevfnSet = [0x10, 0x11, 0x20].into_iter().collect();
/// assert_eq!(set.len(), 3);
/// assert!(set.contains(0x11) && !set.contains(0x12));
/// assert_eq!(set.iter().max(), Some(0x20));
/// assert_eq!(DevfnSet::all().len(), 256);
/// assert!(DevfnSet::empty().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevfnSet([u64; 4]);

impl DevfnSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self([0; 4])
    }

    /// Every device/function number.
    pub const fn all() -> Self {
        Self([u64::MAX; 4])
    }

    /// Adds `devfn` to the set.
    pub fn insert(&mut self, devfn: u8) {
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    /// Returns whether `devfn` is in the set.
    pub fn contains(&self, devfn: u8) -> bool {
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Returns the number of device/function numbers in the set.
    pub fn len(&self) -> usize {
        // CAST: at most 256.
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// Returns the device/function numbers in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|devfn| self.contains(*devfn))
    }
}

impl FromIterator<u8> for DevfnSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut set = Self::empty();
        for devfn in iter {
            set.insert(devfn);
        }
        set
    }
}

/// The configuration space accesses of the devices on a [`RootBus`] (C's `struct pci_ops`).
///
/// Each call addresses the function `devfn` (encoded as by C's `PCI_DEVFN()`) on the bus numbered
/// `bus`: the root bus, or a bus behind a bridge on it. `offset` is below 4096 and the access
/// does not cross that limit; the PCI core checks that it is naturally aligned.
///
/// # Context
///
/// The methods run in atomic context: the PCI core may call them with a raw spinlock held and
/// interrupts disabled, from any CPU, and concurrently unless the implementation serialises them
/// itself. They must not sleep: no mutexes, no waiting for a work item, no `GFP_KERNEL`
/// allocations, and no `spinlock_t` either (the PCI core holds its raw `pci_lock` around user
/// space's accesses, and around all of them without `CONFIG_PCI_LOCKLESS_CONFIG`: a `spinlock_t`
/// nests invalidly in it, and sleeps with `PREEMPT_RT`): use raw spinlocks
/// ([`RawSpinLockIrq`](kernel::sync::RawSpinLockIrq)) and busy-waiting.
///
/// # Examples
///
/// A bus with one function, 00.0, whose configuration space is a fixed table:
///
/// ```
/// use kernel::pci::{AccessWidth, PciOps, PcibiosError};
///
/// struct OneFunction {
///     config: [u8; 64],
/// }
///
/// impl PciOps for OneFunction {
///     fn read(
///         &self,
///         bus: u8,
///         devfn: u8,
///         offset: u16,
///         width: AccessWidth,
///     ) -> Result<u32, PcibiosError> {
///         if bus != 0 || devfn != 0 {
///             return Err(PcibiosError::DeviceNotFound);
///         }
///         let start = usize::from(offset);
///         let mut value = 0;
///         for i in (0..usize::from(width.bytes())).rev() {
///             let byte = self.config.get(start + i).copied().unwrap_or(0);
///             value = (value << 8) | u32::from(byte);
///         }
///         Ok(value)
///     }
///
///     fn write(
///         &self,
///         _bus: u8,
///         _devfn: u8,
///         _offset: u16,
///         _width: AccessWidth,
///         _value: u32,
///     ) -> Result<(), PcibiosError> {
///         Err(PcibiosError::SetFailed)
///     }
/// }
/// ```
pub trait PciOps: Send + Sync {
    /// Reads `width` bytes at `offset` of the configuration space of function `devfn` on bus
    /// `bus`, returned in the low bits.
    ///
    /// For an address without a device, return [`PcibiosError::DeviceNotFound`] or all ones (as
    /// hardware does): the PCI core probes every address when it scans a bus.
    fn read(
        &self,
        bus: u8,
        devfn: u8,
        offset: u16,
        width: AccessWidth,
    ) -> Result<u32, PcibiosError>;

    /// Writes the low `width` bytes of `value` at `offset` of the configuration space of function
    /// `devfn` on bus `bus`.
    fn write(
        &self,
        bus: u8,
        devfn: u8,
        offset: u16,
        width: AccessWidth,
        value: u32,
    ) -> Result<(), PcibiosError>;
}

/// The arguments of a configuration space access, checked and converted from C's.
fn decode_access(
    devfn: c_uint,
    offset: c_int,
    size: c_int,
) -> Result<(u8, u16, AccessWidth), PcibiosError> {
    let devfn = u8::try_from(devfn).map_err(|_| PcibiosError::DeviceNotFound)?;
    let width = AccessWidth::from_size(size).ok_or(PcibiosError::BadRegisterNumber)?;
    let offset = u16::try_from(offset)
        .ok()
        .filter(|o| usize::from(*o) + usize::from(width.bytes()) <= CONFIG_SPACE_MAX)
        .ok_or(PcibiosError::BadRegisterNumber)?;

    Ok((devfn, offset, width))
}

/// [`PciOps::read`] of a `T` behind an untyped pointer.
type ReadFn = unsafe fn(*const (), u8, u8, u16, AccessWidth) -> Result<u32, PcibiosError>;

/// [`PciOps::write`] of a `T` behind an untyped pointer.
type WriteFn = unsafe fn(*const (), u8, u8, u16, AccessWidth, u32) -> Result<(), PcibiosError>;

/// The [`PciOps`] of a [`RootBus`], with its type erased so that the code the PCI core calls does
/// not depend on it.
///
/// # Invariants
///
/// `data` points to an `F::Of<'a>` (for the `'a` of its [`RootBus`]), `read` is
/// `read_ops::<F>`, `write` is `write_ops::<F>` and `type_id` is `TypeId::of::<F>()`.
#[derive(Clone, Copy)]
struct ErasedOps {
    data: *const (),
    read: ReadFn,
    write: WriteFn,
    type_id: TypeId,
}

// SAFETY: `ErasedOps` only gives access to an `F::Of<'_>: PciOps`, which is `Send`.
unsafe impl Send for ErasedOps {}

// SAFETY: `ErasedOps` only gives access to an `F::Of<'_>: PciOps`, which is `Sync`.
unsafe impl Sync for ErasedOps {}

impl ErasedOps {
    fn new<F: ForLt + 'static>(ops: *const F::Of<'_>) -> Self
    where
        for<'x> F::Of<'x>: PciOps,
    {
        // INVARIANT: `data` is `ops`, `read`, `write` and `type_id` are those of `F`.
        Self {
            data: ops.cast(),
            read: read_ops::<F>,
            write: write_ops::<F>,
            type_id: TypeId::of::<F>(),
        }
    }
}

/// # Safety
///
/// `data` must point to an `F::Of<'a>`, for some `'a`, that is valid for the duration of the call.
unsafe fn read_ops<F: ForLt>(
    data: *const (),
    bus: u8,
    devfn: u8,
    offset: u16,
    width: AccessWidth,
) -> Result<u32, PcibiosError>
where
    for<'x> F::Of<'x>: PciOps,
{
    // SAFETY: By the safety requirements, `data` points to a valid `F::Of<'a>`. It is borrowed
    // for this call only, under a lifetime that ends with it: shorter than `'a`, and since the
    // ops are implemented for every lifetime and only get a shared reference, nothing they keep
    // can outlive the call (the argument of `auxiliary::Device::registration_data_with`).
    let ops = unsafe { &*data.cast::<F::Of<'_>>() };

    ops.read(bus, devfn, offset, width)
}

/// # Safety
///
/// `data` must point to an `F::Of<'a>`, for some `'a`, that is valid for the duration of the call.
unsafe fn write_ops<F: ForLt>(
    data: *const (),
    bus: u8,
    devfn: u8,
    offset: u16,
    width: AccessWidth,
    value: u32,
) -> Result<(), PcibiosError>
where
    for<'x> F::Of<'x>: PciOps,
{
    // SAFETY: As in `read_ops`.
    let ops = unsafe { &*data.cast::<F::Of<'_>>() };

    ops.write(bus, devfn, offset, width, value)
}

/// The `sysdata` of a [`RootBus`] and of the buses behind it.
///
/// The PCI core may use a bus after its [`RootBus`] is gone: a `struct pci_dev` of a removed
/// device keeps its bus alive, and configuration space accesses through it still reach
/// [`PCI_OPS`]. So this outlives the [`RootBus`]: the host bridge owns it and frees it when it is
/// released, after every bus and device of the hierarchy. The [`PciOps`] it leads to are revoked
/// when the [`RootBus`] is dropped; accesses after that fail with
/// [`PcibiosError::DeviceNotFound`].
///
/// While a [`RootBus`] is created with a [`DevfnSet`] to probe, the PCI core's own scan of the
/// root bus (function 0 of every slot) finds nothing outside the set: accesses to the other
/// device/function numbers of the root bus fail with [`PcibiosError::DeviceNotFound`] without
/// reaching the [`PciOps`] (`probe` holds the set, and every number otherwise).
///
/// # Invariants
///
/// - `sd` is at offset 0, as x86's PCI code casts `bus->sysdata` to `struct pci_sysdata *`.
/// - While `ops` is not revoked, it points to the [`PciOps`] of a live [`RootBus`].
/// - `probe` is a [`DevfnSet`] other than [`DevfnSet::all`] only while the [`RootBus`] is being
///   created, before any device of the root bus is added.
#[repr(C)]
#[pin_data]
struct SysData {
    sd: Opaque<bindings::pci_sysdata>,
    /// The bus number window of the root bus, which the host bridge keeps a pointer to.
    busn: Opaque<bindings::resource>,
    #[pin]
    ops: Revocable<ErasedOps>,
    /// The number of the root bus (the buses behind bridges share this `SysData`).
    root: u8,
    /// The words of the [`DevfnSet`] of the root bus that accesses may reach.
    probe: [Atomic<u64>; 4],
}

const _: () = assert!(core::mem::offset_of!(SysData, sd) == 0);

// SAFETY: `sd` and `busn` are only used by the PCI core, through raw pointers, and `ops` is `Send`.
unsafe impl Send for SysData {}

// SAFETY: `sd` and `busn` are only used by the PCI core, through raw pointers, and `ops` is `Sync`.
unsafe impl Sync for SysData {}

impl SysData {
    fn new(domain: c_int, root: u8, ops: ErasedOps, probe: DevfnSet) -> impl PinInit<Self, Error> {
        // SAFETY: `pci_first_online_node` has no preconditions.
        let node = unsafe { bindings::pci_first_online_node() };

        // INVARIANT: `#[repr(C)]` puts `sd` first; `ops` points to the ops of a `RootBus` that
        // revokes them before it goes.
        try_pin_init!(Self {
            sd: Opaque::new(bindings::pci_sysdata {
                domain,
                node,
                ..Default::default()
            }),
            busn: Opaque::new(bindings::resource {
                start: 0,
                end: 0xff,
                // CAST: `IORESOURCE_BUS` is a flag of the `unsigned long` `flags`.
                flags: bindings::IORESOURCE_BUS as c_ulong,
                ..Default::default()
            }),
            ops <- Revocable::new(ops),
            root,
            probe: probe.0.map(Atomic::new),
        })
    }

    /// Returns whether an access to `devfn` on the bus numbered `bus` may reach the ops.
    fn may_access(&self, bus: u8, devfn: u8) -> bool {
        if bus != self.root {
            return true;
        }
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        self.probe
            .get(word)
            .is_some_and(|w| w.load(Acquire) & (1 << bit) != 0)
    }

    /// Lets every access reach the ops, from now on.
    fn allow_all(&self) {
        for w in &self.probe {
            w.store(u64::MAX, Release);
        }
    }

    /// Returns the [`SysData`] of `bus`.
    ///
    /// # Safety
    ///
    /// `bus` must be a valid bus in the hierarchy of a [`RootBus`], and the returned reference
    /// must not outlive it.
    unsafe fn of_bus<'a>(bus: *mut bindings::pci_bus) -> &'a Self {
        // SAFETY: By the safety requirements, `bus` is valid, and its `sysdata` is a `SysData`
        // (buses behind a bridge inherit the `sysdata` of their parent) that lives at least as
        // long as the bus.
        unsafe { &*(*bus).sysdata.cast::<Self>() }
    }
}

/// The `release_fn` of the host bridge of a [`RootBus`]: frees its [`SysData`].
///
/// # Safety
///
/// Must only be called by the PCI core, as the `release_fn` installed by [`BusRef::create`].
unsafe extern "C" fn release_sysdata(bridge: *mut bindings::pci_host_bridge) {
    // SAFETY: The PCI core calls `release_fn` with the host bridge being released.
    let data = unsafe { (*bridge).release_data };

    // SAFETY: `release_data` is the `SysData` that `BusRef::create` handed over with
    // `into_foreign`. The host bridge is released after all the buses and devices below it, so
    // nothing uses the `SysData` any more.
    drop(unsafe { <Pin<KBox<SysData>>>::from_foreign(data) });
}

/// The `read` of [`PCI_OPS`].
///
/// # Safety
///
/// Must only be called by the PCI core, for a bus whose `ops` is [`PCI_OPS`].
unsafe extern "C" fn config_read(
    bus: *mut bindings::pci_bus,
    devfn: c_uint,
    offset: c_int,
    size: c_int,
    val: *mut u32,
) -> c_int {
    // SAFETY: Only the buses of a `RootBus` hierarchy use `PCI_OPS`, and the PCI core passes a
    // valid one, which it keeps alive during the call.
    let sysdata = unsafe { SysData::of_bus(bus) };
    // SAFETY: As above, `bus` is valid.
    let busnr = unsafe { (*bus).number };

    let value = decode_access(devfn, offset, size).and_then(|(devfn, offset, width)| {
        if !sysdata.may_access(busnr, devfn) {
            return Err(PcibiosError::DeviceNotFound);
        }
        let ops = sysdata
            .ops
            .try_access()
            .ok_or(PcibiosError::DeviceNotFound)?;

        // SAFETY: By the type invariants of `SysData` and `ErasedOps`, as `ops` is not revoked,
        // `ops.data` points to the `F::Of<'a>` of a live `RootBus<'a, F>`, and `ops.read` is
        // `read_ops::<F>`. Revocation waits for the guard to be dropped, so the ops outlive the
        // call.
        unsafe { (ops.read)(ops.data, busnr, devfn, offset, width) }
    });

    match value {
        Ok(value) => {
            // SAFETY: The PCI core passes a `val` valid for writes.
            unsafe { val.write(value) };

            // CAST: `PCIBIOS_SUCCESSFUL` is zero.
            bindings::PCIBIOS_SUCCESSFUL as c_int
        }
        Err(err) => err.to_raw(),
    }
}

/// The `write` of [`PCI_OPS`].
///
/// # Safety
///
/// Must only be called by the PCI core, for a bus whose `ops` is [`PCI_OPS`].
unsafe extern "C" fn config_write(
    bus: *mut bindings::pci_bus,
    devfn: c_uint,
    offset: c_int,
    size: c_int,
    val: u32,
) -> c_int {
    // SAFETY: Only the buses of a `RootBus` hierarchy use `PCI_OPS`, and the PCI core passes a
    // valid one, which it keeps alive during the call.
    let sysdata = unsafe { SysData::of_bus(bus) };
    // SAFETY: As above, `bus` is valid.
    let busnr = unsafe { (*bus).number };

    let ret = decode_access(devfn, offset, size).and_then(|(devfn, offset, width)| {
        if !sysdata.may_access(busnr, devfn) {
            return Err(PcibiosError::DeviceNotFound);
        }
        let ops = sysdata
            .ops
            .try_access()
            .ok_or(PcibiosError::DeviceNotFound)?;

        // SAFETY: By the type invariants of `SysData` and `ErasedOps`, as `ops` is not revoked,
        // `ops.data` points to the `F::Of<'a>` of a live `RootBus<'a, F>`, and `ops.write` is
        // `write_ops::<F>`. Revocation waits for the guard to be dropped, so the ops outlive the
        // call.
        unsafe { (ops.write)(ops.data, busnr, devfn, offset, width, val) }
    });

    match ret {
        // CAST: `PCIBIOS_SUCCESSFUL` is zero.
        Ok(()) => bindings::PCIBIOS_SUCCESSFUL as c_int,
        Err(err) => err.to_raw(),
    }
}

/// The `struct pci_ops` of every [`RootBus`].
///
/// It is not generic: it is part of the kernel image, so buses that outlive the module of their
/// [`RootBus`] (see [`SysData`]) never call into freed code.
static PCI_OPS: bindings::pci_ops = bindings::pci_ops {
    add_bus: None,
    remove_bus: None,
    map_bus: None,
    read: Some(config_read),
    write: Some(config_write),
};

/// Claims the resources of a device as they are, as the firmware or the other side of a
/// paravirtualised bus set them up; used as a `pci_walk_bus()` callback.
///
/// # Safety
///
/// Must only be called by `pci_walk_bus()`, with the PCI rescan/remove lock held.
unsafe extern "C" fn claim_resources(pdev: *mut bindings::pci_dev, _data: *mut c_void) -> c_int {
    for index in 0..bindings::PCI_NUM_RESOURCES {
        // CAST: `PCI_NUM_RESOURCES` is small: the index fits in any integer type.
        let (i, c_index) = (index as usize, index as c_int);

        // SAFETY: `pci_walk_bus()` passes a valid device; indexing checks that `i` is within its
        // resource array.
        let res = unsafe { &raw const (*pdev).resource[i] };

        // SAFETY: `res` points to a resource of the device, which the rescan/remove lock keeps
        // from changing.
        let unclaimed =
            unsafe { (*res).parent.is_null() && (*res).start != 0 && (*res).flags != 0 };
        if !unclaimed {
            continue;
        }

        // SAFETY: `pdev` is valid and `c_index` is a valid resource index.
        if unsafe { bindings::pci_claim_resource(pdev, c_index) } != 0 {
            // SAFETY: `pdev` is a valid `struct pci_dev` for the duration of the callback, and
            // `Device` is a transparent wrapper of it.
            let dev = unsafe { &*pdev.cast::<Device>() };

            dev_err!(
                dev,
                "cannot claim resource {}: the device cannot use it\n",
                index
            );
        }
    }

    0
}

/// The PCI rescan/remove lock (`pci_lock_rescan_remove()`), held while this lives.
struct RescanRemoveGuard(());

impl RescanRemoveGuard {
    fn lock() -> Self {
        // SAFETY: `pci_lock_rescan_remove()` can be called from any sleepable context; the lock is
        // released when the guard is dropped.
        unsafe { bindings::pci_lock_rescan_remove() };

        Self(())
    }
}

impl Drop for RescanRemoveGuard {
    fn drop(&mut self) {
        // SAFETY: The lock was taken in `RescanRemoveGuard::lock()`.
        unsafe { bindings::pci_unlock_rescan_remove() };
    }
}

/// Probes the device/function numbers `devfns` of `bus` for devices not known yet.
///
/// Returns the number of devices found.
///
/// # Safety
///
/// `bus` must be a valid bus, and the caller must hold the rescan/remove lock.
unsafe fn probe_bus_locked(bus: NonNull<bindings::pci_bus>, devfns: &DevfnSet) -> usize {
    let bus = bus.as_ptr();
    let mut found = 0;

    // `pci_scan_root_bus()` and the scans of the PCI core only look at the other functions of a
    // slot when function 0 is present; a paravirtualised bus may have any function alone.
    for devfn in devfns.iter() {
        // SAFETY: `bus` is valid. `pci_get_slot()` returns NULL or a device with its reference
        // count incremented.
        let pdev = unsafe { bindings::pci_get_slot(bus, devfn.into()) };
        if !pdev.is_null() {
            // SAFETY: We own the reference `pci_get_slot()` took.
            unsafe { bindings::pci_dev_put(pdev) };
            continue;
        }

        // SAFETY: `bus` is valid and the rescan/remove lock is held.
        if !unsafe { bindings::pci_scan_single_device(bus, devfn.into()) }.is_null() {
            found += 1;
        }
    }

    found
}

/// Claims the resources of the devices of `bus` not added yet, as they are set up, and adds
/// them to the system, which binds drivers to them.
///
/// # Safety
///
/// `bus` must be a valid bus, and the caller must hold the rescan/remove lock.
unsafe fn add_devices_locked(bus: NonNull<bindings::pci_bus>) {
    let bus = bus.as_ptr();

    // SAFETY: `bus` is valid, `claim_resources` is a valid callback, the lock is held.
    unsafe { bindings::pci_walk_bus(bus, Some(claim_resources), ptr::null_mut()) };

    // SAFETY: `bus` is valid and the rescan/remove lock is held.
    unsafe { bindings::pci_bus_add_devices(bus) };
}

/// Probes the device/function numbers `devfns` of `bus` for devices not known yet, claims their
/// resources and adds them to the system, which binds drivers to them.
///
/// Returns the number of devices found.
///
/// # Safety
///
/// `bus` must be a valid bus, and the caller must hold the rescan/remove lock.
unsafe fn scan_bus_locked(bus: NonNull<bindings::pci_bus>, devfns: &DevfnSet) -> usize {
    // SAFETY: By the safety requirements, `bus` is valid and the lock is held.
    let found = unsafe { probe_bus_locked(bus, devfns) };

    // SAFETY: As above.
    unsafe { add_devices_locked(bus) };

    found
}

/// Stops and removes the device `devfn` of `bus`.
///
/// # Safety
///
/// `bus` is a valid bus, and the caller holds the rescan/remove lock.
unsafe fn remove_slot_locked(bus: *mut bindings::pci_bus, devfn: u8) -> Result {
    // SAFETY: By the safety requirements, `bus` is a valid bus. `pci_get_slot()` returns NULL or
    // a device with its reference count incremented.
    let pdev = unsafe { bindings::pci_get_slot(bus, devfn.into()) };
    if pdev.is_null() {
        return Err(ENODEV);
    }

    // SAFETY: `pdev` is a valid device, and the rescan/remove lock is held.
    unsafe { bindings::pci_stop_and_remove_bus_device(pdev) };

    // SAFETY: We own the reference `pci_get_slot()` took.
    unsafe { bindings::pci_dev_put(pdev) };

    Ok(())
}

/// The C objects of a [`RootBus`].
///
/// # Invariants
///
/// - `bus` is a root bus created by `pci_scan_root_bus()` with [`PCI_OPS`] and `sysdata`, and not
///   removed yet.
/// - `bridge` is the host bridge of `bus`; we own its initial reference, which keeps `sysdata`
///   alive.
/// - `sysdata` is the `sysdata` of `bus`, owned by `bridge`.
struct BusRef {
    bus: NonNull<bindings::pci_bus>,
    bridge: NonNull<bindings::pci_host_bridge>,
    sysdata: NonNull<SysData>,
    domain: u32,
    number: u8,
}

impl BusRef {
    /// Creates the root bus `domain:number` below `parent`, probes `devfns` on it (and every
    /// number of the buses behind the bridges found) and adds the devices found.
    ///
    /// # Safety
    ///
    /// `ops` must stay valid until its [`SysData`] is revoked.
    unsafe fn create(
        parent: &device::Device,
        domain: u32,
        number: u8,
        ops: ErasedOps,
        devfns: &DevfnSet,
    ) -> Result<Self> {
        let c_domain = c_int::try_from(domain)?;
        let sysdata = KBox::pin_init(SysData::new(c_domain, number, ops, *devfns), GFP_KERNEL)?
            .into_foreign();
        let sysdata_ptr = sysdata.cast::<SysData>();

        let resources = Opaque::<bindings::list_head>::uninit();
        let head = resources.get();

        // SAFETY: `head` is valid for writes and stays in place until it is no longer used, at
        // the end of this function.
        unsafe { bindings::INIT_LIST_HEAD(head) };

        // SAFETY:
        // - `head` is an initialised list.
        // - `ioport_resource` and `iomem_resource` are never freed, and `busn` lives as long as
        //   the `SysData`, which lives as long as the host bridge whose windows point to them.
        unsafe {
            bindings::pci_add_resource(head, &raw mut bindings::ioport_resource);
            bindings::pci_add_resource(head, &raw mut bindings::iomem_resource);
            bindings::pci_add_resource(head, (*sysdata_ptr).busn.get());
        }

        let guard = RescanRemoveGuard::lock();

        // SAFETY: `pci_find_bus()` accepts any domain and bus number.
        let exists = !unsafe { bindings::pci_find_bus(c_domain, number.into()) }.is_null();

        let bus = if exists {
            ptr::null_mut()
        } else {
            // SAFETY: `parent` is a valid device (the host bridge takes a reference to it);
            // `PCI_OPS` is static and never written through `bus->ops`; `sysdata` lives until
            // the host bridge is released (or is freed below if there is none); `head` is an
            // initialised list of resources that outlive the host bridge; the rescan/remove
            // lock is held.
            unsafe {
                bindings::pci_scan_root_bus(
                    parent.as_raw(),
                    number.into(),
                    ptr::from_ref(&PCI_OPS).cast_mut(),
                    sysdata,
                    head,
                )
            }
        };

        let Some(bus) = NonNull::new(bus) else {
            drop(guard);

            // SAFETY: `head` is valid; whatever entries are left on it are ours.
            unsafe { bindings::pci_free_resource_list(head) };

            // SAFETY: `sysdata` comes from `into_foreign` above, and the PCI core did not keep it:
            // creating the root bus failed.
            drop(unsafe { <Pin<KBox<SysData>>>::from_foreign(sysdata) });

            return Err(if exists { EEXIST } else { ENOMEM });
        };

        // SAFETY: `bus` is a valid root bus. Its host bridge, which `pci_find_host_bridge()`
        // returns, is never NULL: the root bus was registered as a child of it.
        let bridge =
            unsafe { NonNull::new_unchecked(bindings::pci_find_host_bridge(bus.as_ptr())) };

        // SAFETY: `bridge` is valid, and we hold its initial reference, so it cannot have been
        // released yet. `release_sysdata` frees `sysdata` as its `release_fn` must.
        unsafe {
            bindings::pci_set_host_bridge_release(bridge.as_ptr(), Some(release_sysdata), sysdata)
        };

        // SAFETY: `bus` is valid and the rescan/remove lock is held.
        unsafe { probe_bus_locked(bus, devfns) };

        // INVARIANT: The scan is over, before any device is added (and drivers bound, which
        // access their devices only, all in `devfns`).
        //
        // SAFETY: `sysdata_ptr` is owned by the host bridge, which is not released while we hold
        // its initial reference.
        unsafe { (*sysdata_ptr).allow_all() };

        // SAFETY: `bus` is valid and the rescan/remove lock is held.
        unsafe { add_devices_locked(bus) };
        drop(guard);

        // INVARIANT: `bus` was created above with `PCI_OPS` and `sysdata`, `bridge` is its host
        // bridge whose initial reference `pci_scan_root_bus()` left to us, and `bridge` now owns
        // `sysdata`.
        Ok(Self {
            bus,
            bridge,
            // SAFETY: `sysdata` comes from `into_foreign` of a `KBox`, so it is not NULL.
            sysdata: unsafe { NonNull::new_unchecked(sysdata_ptr) },
            domain,
            number,
        })
    }
}

/// A PCI root bus whose configuration space accesses go to a [`PciOps`].
///
/// Creating it ([`RootBus::scan`]) creates the root bus and its host bridge, scans every device
/// and function number for devices, claims their resources as they are set up (nothing is
/// reassigned) and adds them to the system, which binds drivers to them. Dropping it stops and
/// removes them all, and the bus. The accesses the PCI core makes to the devices in the meantime
/// go to the [`PciOps`].
///
/// `F` is the [`ForLt`](trait@ForLt) encoding of the type of the operations, `F::Of<'a>`: they
/// may borrow what lives for `'a` (the connection of a paravirtualised frontend, say), which the
/// bus cannot outlive. Use [`ForLt!(T)`](macro@ForLt) for operations that borrow nothing.
///
/// The root bus is x86-specific: its `sysdata` begins with a `struct pci_sysdata`.
///
/// Creating, rescanning, removing a device and dropping take the PCI rescan/remove lock and may
/// sleep: they must not be done with that lock held, nor from a bus callback of a device on the
/// bus (dropping waits for the drivers of those devices to unbind).
///
/// # Invariants
///
/// `bus` is the [`BusRef`] of a root bus whose [`SysData`] leads to `ops`.
///
/// # Examples
///
/// A frontend driver creates one root bus per root its backend exports:
///
/// ```
/// use kernel::{
///     device,
///     pci::{AccessWidth, PciOps, PcibiosError, RootBus},
///     prelude::*,
///     types::ForLt, //
/// };
///
/// /// Forwards accesses to a backend, over a channel that allows busy-waiting.
/// struct Forwarder {
///     domain: u32,
/// }
///
/// impl PciOps for Forwarder {
///     fn read(&self, bus: u8, devfn: u8, offset: u16, width: AccessWidth)
///         -> Result<u32, PcibiosError> {
///         // Send `(self.domain, bus, devfn, offset, width)` to the backend, spin for its answer.
/// #       let _ = (self.domain, bus, devfn, offset, width);
/// #       Err(PcibiosError::DeviceNotFound)
///     }
///
///     fn write(&self, bus: u8, devfn: u8, offset: u16, width: AccessWidth, value: u32)
///         -> Result<(), PcibiosError> {
/// #       let _ = (bus, devfn, offset, width, value);
/// #       Err(PcibiosError::DeviceNotFound)
///     }
/// }
///
/// fn connect(dev: &device::Device<device::Bound>, domain: u32, bus: u8)
///     -> Result<Pin<KBox<RootBus<'static, ForLt!(Forwarder)>>>> {
///     let root = RootBus::<ForLt!(Forwarder)>::scan(dev, domain, bus, Forwarder { domain })?;
///
///     // Later, once the backend reports new devices:
///     let found = root.rescan();
///     dev_info!(dev, "{} new device(s) on {:04x}:{:02x}\n", found, root.domain(), bus);
///
///     Ok(root)
/// }
/// ```
#[pin_data(PinnedDrop)]
pub struct RootBus<'a, F: ForLt + 'static> {
    #[pin]
    ops: F::Of<'a>,
    bus: BusRef,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The PCI core functions `RootBus` calls can be called from any thread, and the ops are
// `Send`.
unsafe impl<F: ForLt> Send for RootBus<'_, F> where for<'x> F::Of<'x>: Send {}

// SAFETY: The methods taking `&self` take the rescan/remove lock around their use of the bus, and
// the ops are `Sync`.
unsafe impl<F: ForLt> Sync for RootBus<'_, F> where for<'x> F::Of<'x>: Sync {}

impl<'a, F: ForLt> RootBus<'a, F>
where
    for<'x> F::Of<'x>: PciOps,
{
    /// Creates the root bus `domain:bus` below `parent`, with its configuration space accesses
    /// going to `ops`, and adds the devices found on it.
    ///
    /// `ops` is an `F::Of<'a>` or an initialiser of one. Fails with [`EEXIST`] if the bus exists
    /// already.
    ///
    /// # Safety
    ///
    /// The returned bus must be dropped before `'a` ends: not leaked with [`core::mem::forget`]
    /// or a reference cycle, since the PCI core reaches the ops, which may borrow for `'a`, until
    /// then. If the ops borrow nothing, use the safe [`RootBus::scan`].
    pub unsafe fn scan_with_lt<E>(
        parent: &device::Device,
        domain: u32,
        bus: u8,
        ops: impl PinInit<F::Of<'a>, E>,
    ) -> Result<Pin<KBox<Self>>>
    where
        Error: From<E>,
    {
        // SAFETY: The safety requirements are those of `scan_devfns_with_lt`.
        unsafe { Self::scan_devfns_with_lt(parent, domain, bus, ops, &DevfnSet::all()) }
    }

    /// Creates the root bus `domain:bus` below `parent`, with its configuration space accesses
    /// going to `ops`, and adds the devices found at the device/function numbers `devfns` of
    /// the root bus, and those behind the bridges among them.
    ///
    /// Only the numbers in `devfns` of the root bus are probed: the PCI core's scan of the other
    /// slots finds nothing without reaching `ops`, and each number in the set is probed even
    /// without a function 0 in its slot. The buses behind bridges are scanned as the PCI core
    /// does. With [`DevfnSet::all`], this is [`RootBus::scan_with_lt`].
    ///
    /// For a paravirtualised frontend whose backend lists the functions it exports: each probe
    /// is a round trip to the backend.
    ///
    /// # Safety
    ///
    /// As for [`RootBus::scan_with_lt`]. If the ops borrow nothing, use the safe
    /// [`RootBus::scan_devfns`].
    pub unsafe fn scan_devfns_with_lt<E>(
        parent: &device::Device,
        domain: u32,
        bus: u8,
        ops: impl PinInit<F::Of<'a>, E>,
        devfns: &DevfnSet,
    ) -> Result<Pin<KBox<Self>>>
    where
        Error: From<E>,
    {
        KBox::pin_init::<Error>(
            try_pin_init!(&this in Self {
                ops <- ops,
                bus: {
                    // SAFETY: `this` points to the `Self` being initialised; this only takes the
                    // address of its field `ops`, which is initialised above.
                    let ops = unsafe { &raw const (*this.as_ptr()).ops };

                    // SAFETY: `ops` is pinned and is only dropped after `Self` is dropped, whose
                    // `PinnedDrop` revokes the `SysData`; or, should initialisation fail later,
                    // after `BusRef::create` failed and freed the `SysData`. `Self` is dropped
                    // before `'a` ends (safety requirements of this function).
                    unsafe {
                        BusRef::create(parent, domain, bus, ErasedOps::new::<F>(ops), devfns)
                    }?
                },
                _pin: PhantomPinned,
            }),
            GFP_KERNEL,
        )
    }

    /// Creates the root bus `domain:bus` below `parent` with operations that borrow nothing, as
    /// [`RootBus::scan_with_lt`] does.
    pub fn scan<E>(
        parent: &device::Device,
        domain: u32,
        bus: u8,
        ops: impl PinInit<F::Of<'a>, E>,
    ) -> Result<Pin<KBox<Self>>>
    where
        F::Of<'a>: 'static,
        Error: From<E>,
    {
        // SAFETY: `F::Of<'a>: 'static`: the ops borrow nothing, so a leaked bus leaves the PCI
        // core with valid ops forever.
        unsafe { Self::scan_with_lt(parent, domain, bus, ops) }
    }

    /// Creates the root bus `domain:bus` below `parent` with operations that borrow nothing,
    /// probing only the device/function numbers `devfns` of the root bus, as
    /// [`RootBus::scan_devfns_with_lt`] does.
    ///
    /// # Examples
    ///
    /// A frontend whose backend lists the functions it exports probes only those:
    ///
    /// ```
    /// use kernel::{
    ///     device,
    ///     pci::{AccessWidth, DevfnSet, PciOps, PcibiosError, RootBus},
    ///     prelude::*,
    ///     types::ForLt, //
    /// };
    ///
    /// /// Forwards accesses to a backend, which lists the functions it exports.
    /// struct Forwarder;
    ///
    /// impl PciOps for Forwarder {
    ///     // Each access is a round trip to the backend.
    /// #   fn read(&self, _: u8, _: u8, _: u16, _: AccessWidth) -> Result<u32, PcibiosError> {
    /// #       Err(PcibiosError::DeviceNotFound)
    /// #   }
    /// #   fn write(&self, _: u8, _: u8, _: u16, _: AccessWidth, _: u32)
    /// #       -> Result<(), PcibiosError> {
    /// #       Err(PcibiosError::DeviceNotFound)
    /// #   }
    /// }
    ///
    /// fn connect(dev: &device::Device<device::Bound>, listed: &[u8])
    ///     -> Result<Pin<KBox<RootBus<'static, ForLt!(Forwarder)>>>> {
    ///     let devfns: DevfnSet = listed.iter().copied().collect();
    ///     let root = RootBus::<ForLt!(Forwarder)>::scan_devfns(dev, 0, 0, Forwarder, &devfns)?;
    ///
    ///     // Later, once the backend lists a new function, 03.0:
    ///     let found = root.rescan_devfns(&[0x18].into_iter().collect());
    ///     dev_info!(dev, "{} new device(s)\n", found);
    ///
    ///     Ok(root)
    /// }
    /// ```
    pub fn scan_devfns<E>(
        parent: &device::Device,
        domain: u32,
        bus: u8,
        ops: impl PinInit<F::Of<'a>, E>,
        devfns: &DevfnSet,
    ) -> Result<Pin<KBox<Self>>>
    where
        F::Of<'a>: 'static,
        Error: From<E>,
    {
        // SAFETY: `F::Of<'a>: 'static`: the ops borrow nothing, so a leaked bus leaves the PCI
        // core with valid ops forever.
        unsafe { Self::scan_devfns_with_lt(parent, domain, bus, ops, devfns) }
    }

    /// Calls `f` with the [`PciOps`] of the root bus `dev` is on (directly, or behind bridges),
    /// if that is a [`RootBus`] of operations `F` still in place.
    ///
    /// This is for hooks that the kernel only gives a device, such as the MSI hooks of a
    /// paravirtualised frontend, to reach the state behind its bus. Returns [`None`] if `dev` is
    /// on another kind of bus, on a [`RootBus`] with another type of operations, or on one being
    /// removed.
    ///
    /// `f` runs in an RCU read-side critical section: it must not sleep (the same rule as for
    /// the [`PciOps`] methods). It gets the operations under lifetimes of its own, which end
    /// with the call: one for what the operations borrow, another for the reference to them, so
    /// that it can neither return anything borrowed from them nor store a reference to them
    /// in what they borrow (a `Mutex<Option<&'x T>>` the operations point to, say).
    pub fn with_device_ops<R>(
        dev: &Device,
        f: impl for<'x, 'y> FnOnce(&'y F::Of<'x>) -> R,
    ) -> Option<R> {
        // SAFETY: By its type invariant `dev.as_raw()` is a valid `struct pci_dev`, whose `bus`
        // is set when it is created and valid as long as the device.
        let bus = unsafe { (*dev.as_raw()).bus };
        if bus.is_null() {
            return None;
        }

        // SAFETY: `bus` is valid (see above).
        let bus_ops = unsafe { (*bus).ops };
        if !ptr::eq(bus_ops.cast_const(), &PCI_OPS) {
            return None;
        }

        // SAFETY: Only the buses of a `RootBus` hierarchy use `PCI_OPS`; `dev` keeps its bus, and
        // with it the host bridge owning the `SysData`, alive for the borrow.
        let sysdata = unsafe { SysData::of_bus(bus) };
        let ops = sysdata.ops.try_access()?;
        if ops.type_id != TypeId::of::<F>() {
            return None;
        }

        // `f` gets the ops under lifetimes it cannot name or extend (a higher-ranked closure),
        // shorter than `'a`, the reference's apart from the ops' own: nothing it returns can
        // borrow them, and it cannot store a reference to them in what they borrow, whatever the
        // variance of `F::Of`.
        //
        // SAFETY: By the type invariants of `SysData` and `ErasedOps`, as `ops` is not revoked,
        // `ops.data` points to the `F::Of<'a>` of a live `RootBus<'a, F>` (of this `F`: see
        // `type_id`); revocation waits for the guard, so the ops outlive the call.
        let t = unsafe { &*ops.data.cast::<F::Of<'_>>() };
        Some(f(t))
    }
}

impl<'a, F: ForLt> RootBus<'a, F> {
    /// Scans every device and function number of the root bus again, and adds the devices that
    /// were not there yet.
    ///
    /// Returns the number of devices found.
    pub fn rescan(&self) -> usize {
        self.rescan_devfns(&DevfnSet::all())
    }

    /// Probes the device/function numbers `devfns` of the root bus that have no device yet, and
    /// adds the devices found (hot attach, when the other side lists new functions).
    ///
    /// Buses behind the bridges found are not scanned, as with [`RootBus::rescan`]. Returns the
    /// number of devices found.
    ///
    /// See [`RootBus::scan_devfns`] for an example.
    pub fn rescan_devfns(&self, devfns: &DevfnSet) -> usize {
        let _guard = RescanRemoveGuard::lock();

        // SAFETY: By the type invariants, `self.bus.bus` is a valid bus; the lock is held.
        unsafe { scan_bus_locked(self.bus.bus, devfns) }
    }

    /// Stops and removes the device `devfn` of the root bus (unbinding its driver first).
    ///
    /// Fails with [`ENODEV`] if there is no such device.
    pub fn remove_device(&self, devfn: u8) -> Result {
        let _guard = RescanRemoveGuard::lock();

        // SAFETY: By the type invariants, `self.bus.bus` is a valid bus; the lock is held.
        unsafe { remove_slot_locked(self.bus.bus.as_ptr(), devfn) }
    }

    /// Stops and removes the device `bus:devfn` (unbinding its driver first) of the root bus, or
    /// of a bus behind a bridge on it: a device behind an exported bridge is on the bridge's
    /// secondary bus.
    ///
    /// Fails with [`ENODEV`] if there is no such device below this root bus, whatever other
    /// buses hold.
    pub fn remove_device_below(&self, bus: u8, devfn: u8) -> Result {
        let _guard = RescanRemoveGuard::lock();
        let root = self.bus.bus.as_ptr();
        let domain = c_int::try_from(self.bus.domain).map_err(|_| ENODEV)?;

        // SAFETY: `pci_find_bus()` has no requirement; it returns NULL or a bus, which the
        // rescan/remove lock (held) keeps from being removed.
        let found = unsafe { bindings::pci_find_bus(domain, bus.into()) };
        // Below this root bus: its parents lead to it.
        let mut up = found;
        while !up.is_null() && up != root {
            // SAFETY: `up` is `found` or one of its parents: valid buses, kept by the lock.
            up = unsafe { (*up).parent };
        }
        if found.is_null() || up.is_null() {
            return Err(ENODEV);
        }

        // SAFETY: `found` is a valid bus; the lock is held.
        unsafe { remove_slot_locked(found, devfn) }
    }

    /// Returns the [`PciOps`] of the root bus.
    pub fn ops(&self) -> &F::Of<'a> {
        &self.ops
    }

    /// Returns the PCI domain (segment) number of the root bus.
    pub fn domain(&self) -> u32 {
        self.bus.domain
    }

    /// Returns the bus number of the root bus.
    pub fn number(&self) -> u8 {
        self.bus.number
    }
}

#[pinned_drop]
impl<F: ForLt> PinnedDrop for RootBus<'_, F> {
    fn drop(self: Pin<&mut Self>) {
        let bus = &self.bus;

        {
            let _guard = RescanRemoveGuard::lock();

            // SAFETY: By the type invariants, `bus.bus` is a root bus that is not removed yet; the
            // lock is held. Removing it unbinds the drivers of its devices, which may still access
            // them through `ops`, so `ops` is only revoked afterwards.
            unsafe {
                bindings::pci_stop_root_bus(bus.bus.as_ptr());
                bindings::pci_remove_root_bus(bus.bus.as_ptr());
            }
        }

        // SAFETY: By the type invariants, the `SysData` lives until `bus.bridge` is released,
        // which our reference prevents.
        let sysdata = unsafe { bus.sysdata.as_ref() };

        // Removed devices may still be referenced, and accessed: from now on they find no ops.
        sysdata.ops.revoke();

        // SAFETY: By the type invariants, we own the initial reference of `bus.bridge`. Its
        // release, now or once the last device of the bus is gone, frees the `SysData`.
        unsafe { bindings::pci_free_host_bridge(bus.bridge.as_ptr()) };
    }
}

#[cfg(CONFIG_RUST_PCI_KUNIT_TEST)]
#[kunit_tests(rust_kernel_pci_host)]
mod tests {
    use super::*;
    use crate::{
        faux,
        sync::atomic::{
            Atomic,
            Relaxed, //
        }, //
    };

    #[test]
    fn access_decoding() {
        assert_eq!(
            decode_access(0x0a, 0x10, 4),
            Ok((0x0a, 0x10, AccessWidth::Dword))
        );
        assert_eq!(
            decode_access(0xff, 0xffe, 2),
            Ok((0xff, 0xffe, AccessWidth::Word))
        );
        assert_eq!(
            decode_access(0, 0xfff, 1),
            Ok((0, 0xfff, AccessWidth::Byte))
        );
        assert_eq!(
            decode_access(0x100, 0, 4),
            Err(PcibiosError::DeviceNotFound)
        );
        assert_eq!(decode_access(0, 0, 3), Err(PcibiosError::BadRegisterNumber));
        assert_eq!(
            decode_access(0, -4, 4),
            Err(PcibiosError::BadRegisterNumber)
        );
        assert_eq!(
            decode_access(0, 0xffe, 4),
            Err(PcibiosError::BadRegisterNumber)
        );
        assert_eq!(
            decode_access(0, 0x1000, 1),
            Err(PcibiosError::BadRegisterNumber)
        );
    }

    /// A domain no firmware uses.
    const DOMAIN: u32 = 0xfffe;

    /// Slot 1, function 2: without a function 0, which only the full scan finds.
    const DEVFN: u8 = (1 << 3) | 2;

    /// Vendor 0x1b36, device 0x7fff, revision 1, class 0xff0000 (unassigned), header type 0,
    /// no BARs, no capabilities, no interrupt.
    const CONFIG: [u8; 16] = [
        0x36, 0x1b, 0xff, 0x7f, 0, 0, 0, 0, 0x01, 0, 0, 0xff, 0, 0, 0, 0,
    ];

    /// A read of [`CONFIG`] at `DEVFN` on bus 0.
    fn config_read(
        bus: u8,
        devfn: u8,
        offset: u16,
        width: AccessWidth,
    ) -> Result<u32, PcibiosError> {
        if bus != 0 || devfn != DEVFN {
            return Err(PcibiosError::DeviceNotFound);
        }

        Ok(bytes_read(&CONFIG, offset, width))
    }

    /// One function at [`DEVFN`] of bus 0, counting the reads, and those of the other numbers
    /// of bus 0 apart.
    struct OneFunction {
        reads: Atomic<u32>,
        stray: Atomic<u32>,
    }

    impl PciOps for OneFunction {
        fn read(
            &self,
            bus: u8,
            devfn: u8,
            offset: u16,
            width: AccessWidth,
        ) -> Result<u32, PcibiosError> {
            self.reads.fetch_add(1, Relaxed);
            if bus == 0 && devfn != DEVFN {
                self.stray.fetch_add(1, Relaxed);
            }
            config_read(bus, devfn, offset, width)
        }

        fn write(
            &self,
            bus: u8,
            devfn: u8,
            _offset: u16,
            _width: AccessWidth,
            _value: u32,
        ) -> Result<(), PcibiosError> {
            // Read-only registers: BAR sizing finds no BARs.
            if bus != 0 || devfn != DEVFN {
                return Err(PcibiosError::DeviceNotFound);
            }

            Ok(())
        }
    }

    /// Skips the case in a Xen initial domain, whose PCI notifier (`drivers/xen/pci.c`) reports
    /// every device added or removed to Xen: Xen 4.17 refuses the add on the cases' made-up
    /// segments, then takes a fatal page fault in `vpci_remove_device()` on the remove. The
    /// cases run in guests, which have no such notifier. Whether it skipped.
    fn skipped_in_initial_domain() -> bool {
        #[cfg(CONFIG_XEN_DOM0)]
        if crate::xen::is_initial_domain() {
            crate::xen::kunit_skip(c"not in a Xen initial domain (its PCI notifier crashes Xen)");
            return true;
        }
        false
    }

    #[test]
    fn root_bus_lifecycle() -> Result {
        if skipped_in_initial_domain() {
            return Ok(());
        }

        let parent = faux::Registration::new(c"rust_pci_host_kunit", None)?;
        let parent: &device::Device<device::Bound> = parent.as_ref().as_ref();

        let root = RootBus::<ForLt!(OneFunction)>::scan(
            parent,
            DOMAIN,
            0,
            OneFunction {
                reads: Atomic::new(0),
                stray: Atomic::new(0),
            },
        )?;
        assert!(root.ops().reads.load(Relaxed) > 0);
        assert_eq!(root.domain(), DOMAIN);
        assert_eq!(root.number(), 0);

        // The same bus cannot be created twice.
        let again = RootBus::<ForLt!(OneFunction)>::scan(
            parent,
            DOMAIN,
            0,
            OneFunction {
                reads: Atomic::new(0),
                stray: Atomic::new(0),
            },
        );
        assert_eq!(again.err(), Some(EEXIST));

        let pdev = Device::get_by_slot(DOMAIN, 0, DEVFN).ok_or(ENODEV)?;
        assert_eq!(pdev.domain_nr(), DOMAIN);
        assert_eq!(pdev.bus_number(), 0);
        assert_eq!((pdev.devfn(), pdev.slot(), pdev.func()), (DEVFN, 1, 2));
        assert_eq!(pdev.device_id(), 0x7fff);
        assert_eq!(pdev.revision_id(), 1);
        assert_eq!(pdev.header_type(), Some(crate::pci::HeaderType::Normal));
        assert!(!pdev.is_bridge());
        assert!(pdev.upstream_bridge().is_none());
        assert!(!pdev.is_enabled());
        assert!(!pdev.msi_enabled() && !pdev.msix_enabled());
        assert!(Device::get_by_slot(DOMAIN, 0, 0).is_none());

        // Nothing new, then the device goes and comes back.
        assert_eq!(root.rescan(), 0);
        root.remove_device(DEVFN)?;
        assert_eq!(root.remove_device(DEVFN), Err(ENODEV));
        assert!(Device::get_by_slot(DOMAIN, 0, DEVFN).is_none());
        assert_eq!(root.rescan(), 1);

        // `pdev` is the removed device, still on the bus: it reaches the ops while the bus lives,
        // and nothing once it is gone.
        let mut vendor = 0u16;
        // SAFETY: `pdev` is a valid `struct pci_dev` and `vendor` is valid for writes.
        let ret = unsafe { bindings::pci_read_config_word(pdev.as_raw(), 0, &mut vendor) };
        assert_eq!((ret, vendor), (0, 0x1b36));

        drop(root);
        assert!(Device::get_by_slot(DOMAIN, 0, DEVFN).is_none());

        // SAFETY: `pdev` is a valid `struct pci_dev` and `vendor` is valid for writes.
        let ret = unsafe { bindings::pci_read_config_word(pdev.as_raw(), 0, &mut vendor) };
        assert_eq!(ret, PcibiosError::DeviceNotFound.to_raw());

        // The last reference to the bus goes: its host bridge frees the `SysData`.
        drop(pdev);

        Ok(())
    }

    /// The read-only layouts of the removal cases.
    enum Layout {
        /// One function at [`DEVFN`] of the bus its number says, none elsewhere.
        OnBus(u8),
        /// [`BRIDGE`] on bus 0, and the function of [`CONFIG`] at [`CHILD_DEVFN`] behind it, on
        /// bus 1.
        BehindBridge,
    }

    impl PciOps for Layout {
        fn read(
            &self,
            bus: u8,
            devfn: u8,
            offset: u16,
            width: AccessWidth,
        ) -> Result<u32, PcibiosError> {
            match (self, bus, devfn) {
                (Layout::OnBus(on), _, _) if *on == bus => config_read(0, devfn, offset, width),
                (Layout::BehindBridge, 0, 0) => Ok(bytes_read(&BRIDGE, offset, width)),
                (Layout::BehindBridge, 1, CHILD_DEVFN) => Ok(bytes_read(&CONFIG, offset, width)),
                _ => Err(PcibiosError::DeviceNotFound),
            }
        }

        fn write(
            &self,
            _bus: u8,
            _devfn: u8,
            _offset: u16,
            _width: AccessWidth,
            _value: u32,
        ) -> Result<(), PcibiosError> {
            Ok(())
        }
    }

    #[test]
    fn root_bus_remove_below() -> Result {
        if skipped_in_initial_domain() {
            return Ok(());
        }

        /// Another domain than the other cases'.
        const DOMAIN4: u32 = 0xfffb;

        let parent = faux::Registration::new(c"rust_pci_host_kunit4", None)?;
        let parent: &device::Device<device::Bound> = parent.as_ref().as_ref();
        let a = RootBus::<ForLt!(Layout)>::scan(parent, DOMAIN4, 0, Layout::OnBus(0))?;
        let b = RootBus::<ForLt!(Layout)>::scan(parent, DOMAIN4, 1, Layout::OnBus(1))?;
        assert!(Device::get_by_slot(DOMAIN4, 0, DEVFN).is_some());
        assert!(Device::get_by_slot(DOMAIN4, 1, DEVFN).is_some());

        // Another root bus's device, or a bus that does not exist: not below `a`.
        assert_eq!(a.remove_device_below(1, DEVFN), Err(ENODEV));
        assert!(Device::get_by_slot(DOMAIN4, 1, DEVFN).is_some());
        assert_eq!(a.remove_device_below(7, DEVFN), Err(ENODEV));

        // Each root bus's own.
        b.remove_device_below(1, DEVFN)?;
        assert!(Device::get_by_slot(DOMAIN4, 1, DEVFN).is_none());
        a.remove_device_below(0, DEVFN)?;
        assert!(Device::get_by_slot(DOMAIN4, 0, DEVFN).is_none());
        assert_eq!(a.remove_device_below(0, DEVFN), Err(ENODEV));

        drop(b);
        drop(a);
        Ok(())
    }

    /// A PCI-to-PCI bridge at devfn 0 of bus 0 (vendor 0x1b36, device 0x7ffe, class 0x060400,
    /// header type 1), its secondary and subordinate bus 1, no windows.
    const BRIDGE: [u8; 0x1c] = [
        0x36, 0x1b, 0xfe, 0x7f, 0, 0, 0, 0, 0x01, 0, 0x04, 0x06, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 1, 1, 0,
    ];

    /// Slot 1, function 0: what the PCI core's scan of a bus behind a bridge finds (it looks at
    /// the other functions of a slot only if function 0 is there).
    const CHILD_DEVFN: u8 = 1 << 3;

    /// A read of `width` at `offset` in `config`, zeros past its end.
    fn bytes_read(config: &[u8], offset: u16, width: AccessWidth) -> u32 {
        let start = usize::from(offset);
        let mut value = 0;
        for i in (0..usize::from(width.bytes())).rev() {
            let byte = config.get(start + i).copied().unwrap_or(0);
            value = (value << 8) | u32::from(byte);
        }
        value
    }

    #[test]
    fn root_bus_remove_behind_a_bridge() -> Result {
        if skipped_in_initial_domain() {
            return Ok(());
        }

        /// Another domain than the other cases'.
        const DOMAIN5: u32 = 0xfffa;

        let parent = faux::Registration::new(c"rust_pci_host_kunit5", None)?;
        let parent: &device::Device<device::Bound> = parent.as_ref().as_ref();
        let root = RootBus::<ForLt!(Layout)>::scan(parent, DOMAIN5, 0, Layout::BehindBridge)?;
        let bridge = Device::get_by_slot(DOMAIN5, 0, 0).ok_or(ENODEV)?;
        assert!(bridge.is_bridge());
        assert!(Device::get_by_slot(DOMAIN5, 1, CHILD_DEVFN).is_some());

        // Not on the root bus: only the lookup below it finds it, and leaves the bridge.
        assert_eq!(root.remove_device(CHILD_DEVFN), Err(ENODEV));
        root.remove_device_below(1, CHILD_DEVFN)?;
        assert!(Device::get_by_slot(DOMAIN5, 1, CHILD_DEVFN).is_none());
        assert!(Device::get_by_slot(DOMAIN5, 0, 0).is_some());
        assert_eq!(root.remove_device_below(1, CHILD_DEVFN), Err(ENODEV));

        drop(bridge);
        drop(root);
        Ok(())
    }

    #[test]
    fn root_bus_devfns() -> Result {
        if skipped_in_initial_domain() {
            return Ok(());
        }

        /// Another domain than the other cases'.
        const DOMAIN3: u32 = 0xfffc;

        let parent = faux::Registration::new(c"rust_pci_host_kunit3", None)?;
        let parent: &device::Device<device::Bound> = parent.as_ref().as_ref();
        let listed: DevfnSet = [DEVFN].into_iter().collect();

        let root = RootBus::<ForLt!(OneFunction)>::scan_devfns(
            parent,
            DOMAIN3,
            0,
            OneFunction {
                reads: Atomic::new(0),
                stray: Atomic::new(0),
            },
            &listed,
        )?;
        let (reads, stray) = (&root.ops().reads, &root.ops().stray);

        // Found alone in its slot, and no other number of the root bus was probed: far fewer
        // reads than the 256 probes of a full scan.
        let pdev = Device::get_by_slot(DOMAIN3, 0, DEVFN).ok_or(ENODEV)?;
        assert_eq!(stray.load(Relaxed), 0);
        assert!(reads.load(Relaxed) > 0 && reads.load(Relaxed) < 128);

        // Once the bus is created, every access reaches the ops.
        let mut value = 0u32;
        // SAFETY: `pdev` is a valid `struct pci_dev`, whose `bus` is valid as long as it is;
        // `value` is valid for writes.
        let ret =
            unsafe { bindings::pci_bus_read_config_dword((*pdev.as_raw()).bus, 0, 0, &mut value) };
        assert_eq!(ret, PcibiosError::DeviceNotFound.to_raw());
        assert_eq!(stray.load(Relaxed), 1);
        drop(pdev);

        // Hot attach probes what is listed only: nothing, then the device back.
        root.remove_device(DEVFN)?;
        assert_eq!(root.rescan_devfns(&DevfnSet::empty()), 0);
        assert_eq!(root.rescan_devfns(&listed), 1);
        assert_eq!(root.rescan_devfns(&listed), 0);
        assert_eq!(stray.load(Relaxed), 1);
        assert!(Device::get_by_slot(DOMAIN3, 0, DEVFN).is_some());

        drop(root);
        assert!(Device::get_by_slot(DOMAIN3, 0, DEVFN).is_none());

        Ok(())
    }

    /// Operations that borrow: those of a [`OneFunction`] that lives elsewhere.
    struct Borrowing<'a>(&'a OneFunction);

    impl PciOps for Borrowing<'_> {
        fn read(
            &self,
            bus: u8,
            devfn: u8,
            offset: u16,
            width: AccessWidth,
        ) -> Result<u32, PcibiosError> {
            self.0.read(bus, devfn, offset, width)
        }

        fn write(
            &self,
            bus: u8,
            devfn: u8,
            offset: u16,
            width: AccessWidth,
            value: u32,
        ) -> Result<(), PcibiosError> {
            self.0.write(bus, devfn, offset, width, value)
        }
    }

    #[test]
    fn root_bus_borrowing() -> Result {
        if skipped_in_initial_domain() {
            return Ok(());
        }

        /// Another domain than `root_bus_lifecycle`'s, whose removed device may still be there.
        const DOMAIN2: u32 = 0xfffd;

        /// What the ops borrow. A static: a failed assertion ends the test's thread without
        /// dropping anything, so the bus would outlive a function on the stack.
        static FUNCTION: OneFunction = OneFunction {
            reads: Atomic::new(0),
            stray: Atomic::new(0),
        };

        let parent = faux::Registration::new(c"rust_pci_host_kunit2", None)?;
        let parent: &device::Device<device::Bound> = parent.as_ref().as_ref();
        let reads = &FUNCTION.reads;

        let root =
            RootBus::<ForLt!(Borrowing<'_>)>::scan(parent, DOMAIN2, 0, Borrowing(&FUNCTION))?;
        let scanned = reads.load(Relaxed);
        assert!(scanned > 0);

        // The device's hooks reach the ops of its bus, of the type asked for only.
        let pdev = Device::get_by_slot(DOMAIN2, 0, DEVFN).ok_or(ENODEV)?;
        let seen = RootBus::<ForLt!(Borrowing<'_>)>::with_device_ops(&pdev, |ops| {
            core::ptr::eq(ops.0, &FUNCTION)
        });
        assert_eq!(seen, Some(true));
        assert!(RootBus::<ForLt!(OneFunction)>::with_device_ops(&pdev, |_| ()).is_none());

        // An access through the device reaches the borrowed counter.
        let mut vendor = 0u16;
        // SAFETY: `pdev` is a valid `struct pci_dev` and `vendor` is valid for writes.
        let ret = unsafe { bindings::pci_read_config_word(pdev.as_raw(), 0, &mut vendor) };
        assert_eq!((ret, vendor), (0, 0x1b36));
        assert!(reads.load(Relaxed) > scanned);

        // Once the bus is gone its device finds no ops.
        drop(root);
        assert!(RootBus::<ForLt!(Borrowing<'_>)>::with_device_ops(&pdev, |_| ()).is_none());
        drop(pdev);

        Ok(())
    }
}
