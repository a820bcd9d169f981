// SPDX-License-Identifier: GPL-2.0

//! Xen PCI passthrough support.
//!
//! - In the initial domain, the registry of the domains PCI devices are assigned to
//!   ([`DomainOwner`], [`domain_owner`]), which the MSI code consults to set up interrupts
//!   for the right domain, and Xen's protection of the MSI-X tables of devices a backend
//!   holds ([`MsixPreparation`]), and whether another domain is bound to a device's interrupt
//!   line ([`line_shared`]).
//! - In a PV guest, the hooks through which the architecture code asks the PCI frontend driver
//!   to enable and disable MSI and MSI-X ([`FrontendOps`], [`FrontendOpsRegistration`]): a PV
//!   guest cannot program MSI itself, the backend does it on its behalf.
//!
//! C headers: [`include/xen/pci.h`](srctree/include/xen/pci.h),
//! [`arch/x86/include/asm/xen/pci.h`](srctree/arch/x86/include/asm/xen/pci.h)

use crate::{
    bindings,
    pci,
    prelude::*, //
};

#[cfg(CONFIG_XEN_DOM0)]
use crate::{
    error::to_result,
    sync::aref::ARef,
    xen::DomId, //
};

/// Returns the C `struct pci_dev` of `dev`.
#[cfg(CONFIG_XEN_DOM0)]
fn raw_pci_dev(dev: &pci::Device) -> *mut bindings::pci_dev {
    // CAST: `pci::Device` is a transparent wrapper of `struct pci_dev`.
    core::ptr::from_ref(dev)
        .cast::<bindings::pci_dev>()
        .cast_mut()
}

/// Returns the domain `dev` is assigned to, if it is registered in the domain-owner registry.
#[cfg(CONFIG_XEN_DOM0)]
pub fn domain_owner(dev: &pci::Device) -> Option<DomId> {
    // SAFETY: `raw_pci_dev(dev)` is a valid `struct pci_dev`.
    let domain = unsafe { bindings::xen_find_device_domain_owner(raw_pci_dev(dev)) };
    DomId::try_from(domain).ok()
}

/// The registration of the domain a PCI device is assigned to, removed when dropped.
///
/// A PCI backend registers the guest a device is exported to, so that the MSI setup done on
/// the guest's behalf maps the interrupts to that guest.
///
/// # Examples
///
/// ```
/// use kernel::{pci, sync::aref::ARef, xen::{pci::DomainOwner, DomId}};
///
/// fn export(dev: ARef<pci::Device>, guest: DomId) -> Result<DomainOwner> {
///     DomainOwner::register(dev, guest)
/// }
/// ```
///
/// # Invariants
///
/// `dev` is registered in the domain-owner registry by this object.
#[cfg(CONFIG_XEN_DOM0)]
pub struct DomainOwner {
    dev: ARef<pci::Device>,
    domain: DomId,
}

#[cfg(CONFIG_XEN_DOM0)]
impl DomainOwner {
    /// Registers `dev` as assigned to `domain`.
    ///
    /// Fails with [`EEXIST`] if the device is already registered.
    pub fn register(dev: ARef<pci::Device>, domain: DomId) -> Result<Self> {
        // SAFETY: `raw_pci_dev(&dev)` is a valid `struct pci_dev`, kept alive by `dev` for as
        // long as it stays registered.
        let ret = unsafe {
            bindings::xen_register_device_domain_owner(raw_pci_dev(&dev), domain.as_raw())
        };
        match ret {
            0 => Ok(Self { dev, domain }),
            ret if ret == EEXIST.to_errno() => Err(EEXIST),
            // The C function reports an allocation failure as -ENODEV.
            _ => Err(ENOMEM),
        }
    }

    /// Registers `dev` as assigned to `domain`, replacing an entry already there, and returns
    /// the domain of the replaced entry.
    ///
    /// For a PCI backend that holds the device exclusively (bound to its driver and exported to
    /// no other guest): an entry it finds then can only be stale, left by a backend that no
    /// longer holds the device, and, like the C backend, it takes the entry over rather than
    /// refuse the device for good. Whoever made the replaced entry no longer has it; if a
    /// `DomainOwner` of it still exists, dropping it removes the entry made here.
    ///
    /// Fails with [`EEXIST`] if another entry is registered between the replacement's two steps.
    pub fn take_over(dev: ARef<pci::Device>, domain: DomId) -> Result<(Self, Option<DomId>)> {
        match Self::register(dev.clone(), domain) {
            Ok(this) => return Ok((this, None)),
            Err(e) if e != EEXIST => return Err(e),
            Err(_) => {}
        }
        let previous = domain_owner(&dev);
        // SAFETY: `raw_pci_dev(&dev)` is a valid `struct pci_dev`; removing an entry only frees
        // the registry's own record of it.
        let _ = unsafe { bindings::xen_unregister_device_domain_owner(raw_pci_dev(&dev)) };
        Self::register(dev, domain).map(|this| (this, previous))
    }

    /// Returns the registered domain.
    #[inline]
    pub fn domain(&self) -> DomId {
        self.domain
    }

    /// Returns the device.
    #[inline]
    pub fn device(&self) -> &pci::Device {
        &self.dev
    }
}

#[cfg(CONFIG_XEN_DOM0)]
impl Drop for DomainOwner {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device is registered by `self`, and alive.
        let _ = unsafe { bindings::xen_unregister_device_domain_owner(raw_pci_dev(&self.dev)) };
    }
}

/// Xen's protection of the MSI-X table and pending-bit array of a device a PCI backend holds,
/// lifted when dropped.
///
/// Before a backend lets a guest map a device's BARs, the initial domain tells Xen where the
/// device's MSI-X table and pending-bit array are (`PHYSDEVOP_prepare_msix`): Xen then makes
/// those pages read-only for every domain, so that only Xen programs the vectors. Without it,
/// Xen sees the first MSI-X setup done on a guest's behalf as an insecure use of MSI-X and
/// crashes the guest. Dropping the preparation (`PHYSDEVOP_release_msix`) tells Xen that the
/// device's memory layout may change again, as when the backend lets the device go.
///
/// A preparation borrows the bound device, like the other resources a driver holds for its
/// binding: it cannot outlive the binding, so a driver that is unbound and bound again cannot
/// have an old preparation release the new one.
///
/// Xen reads the table's location from the BARs and needs the device's memory decoding
/// enabled: prepare a device while it is enabled.
///
/// # Examples
///
/// ```
/// use kernel::{device::Bound, pci, xen::pci::MsixPreparation};
///
/// fn seize(pdev: &pci::Device<Bound>) -> Option<MsixPreparation<'_>> {
///     // Xen needs the device's memory decoding on.
///     pdev.enable_device().ok()?;
///     let prepared = MsixPreparation::prepare(pdev).ok().flatten();
///     pdev.disable_device();
///     prepared
/// }
/// ```
///
/// # Invariants
///
/// Xen accepted `PHYSDEVOP_prepare_msix` for `dev`, and it has not been released since.
#[cfg(CONFIG_XEN_DOM0)]
pub struct MsixPreparation<'a> {
    dev: &'a pci::Device<crate::device::Bound>,
}

#[cfg(CONFIG_XEN_DOM0)]
impl<'a> MsixPreparation<'a> {
    /// Asks Xen to protect the MSI-X table of `dev`.
    ///
    /// Returns [`None`] when there is nothing to protect: the device has no MSI-X capability,
    /// this is not Xen's initial domain, or Xen does not know the operation (Xen before 4.3,
    /// where nothing needs it). Fails with the error Xen returned otherwise: [`ENXIO`] when
    /// the device's memory decoding is off, [`EBUSY`] when its MSI-X is in use or the device
    /// is prepared already.
    pub fn prepare(dev: &'a pci::Device<crate::device::Bound>) -> Result<Option<Self>> {
        // Only the initial domain may issue the operation; elsewhere (outside Xen in
        // particular) there is no hypervisor to call.
        if !super::is_initial_domain() {
            return Ok(None);
        }
        // SAFETY: `raw_pci_dev(dev)` is a valid `struct pci_dev`; `msix_cap` is set once when
        // the device is added to its bus.
        if unsafe { (*raw_pci_dev(dev)).msix_cap } == 0 {
            return Ok(None);
        }
        match physdev_msix(dev, bindings::PHYSDEVOP_prepare_msix) {
            Ok(()) => Ok(Some(Self { dev })),
            Err(e) if e == ENOSYS => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Returns the device.
    #[inline]
    pub fn device(&self) -> &pci::Device<crate::device::Bound> {
        self.dev
    }
}

#[cfg(CONFIG_XEN_DOM0)]
impl Drop for MsixPreparation<'_> {
    fn drop(&mut self) {
        // By the type invariant Xen holds a preparation of the device, which this ends.
        if let Err(e) = physdev_msix(self.dev, bindings::PHYSDEVOP_release_msix) {
            // Xen refuses only while MSI-X is still in use (the device stays protected).
            dev_warn!(self.dev.as_ref(), "MSI-X release failed: {:?}\n", e);
        }
    }
}

/// Issues the MSI-X physdev operation `cmd` (`PHYSDEVOP_prepare_msix` or
/// `PHYSDEVOP_release_msix`) for `dev`.
#[cfg(CONFIG_XEN_DOM0)]
fn physdev_msix(dev: &pci::Device, cmd: u32) -> Result {
    let devfn = dev.devfn();
    let mut arg = bindings::physdev_pci_device {
        // Xen's segments are 16 bits wide, as are Linux's PCI domains under Xen.
        seg: u16::try_from(dev.domain_nr()).map_err(|_| ENODEV)?,
        bus: dev.bus_number(),
        devfn,
    };
    // `cmd` is one of the two operations above, both small constants.
    let cmd = i32::try_from(cmd).map_err(|_| EINVAL)?;
    // SAFETY: Only called for a `MsixPreparation`, which exists only in Xen's initial domain,
    // where the hypercall page is set up and both operations are allowed. `arg` is a valid
    // `struct physdev_pci_device`, the argument of both operations, which Xen only reads
    // during the call.
    let ret = unsafe { bindings::HYPERVISOR_physdev_op(cmd, core::ptr::from_mut(&mut arg).cast()) };
    to_result(ret)
}

/// Returns the physical IRQ (pirq) Xen bound to the MSI or MSI-X vector `index` of `dev`: for
/// MSI the vector number (0 for a single vector), for MSI-X the table entry.
///
/// In a PV domain every MSI and MSI-X vector is a pirq bound to a Linux IRQ, allocated in the
/// space of the device's domain owner (see [`DomainOwner`]): this is the number a PCI backend
/// hands to the guest it enabled MSI for. Returns [`None`] in other kinds of domains, if
/// neither MSI nor MSI-X is enabled on `dev`, if `index` names no vector of it, or if the
/// vector is no pirq (a device behind a VMD bridge, whose interrupts VMD multiplexes onto its
/// own).
///
/// # Examples
///
/// ```
/// use kernel::{device::Bound, pci, xen::pci::msi_pirq};
///
/// fn enable_for_guest(pdev: &pci::Device<Bound>) -> Result<u32> {
///     pdev.enable_msi()?;
///     msi_pirq(pdev, 0).ok_or(EIO)
/// }
/// ```
#[cfg(CONFIG_XEN_DOM0)]
pub fn msi_pirq(dev: &pci::Device<crate::device::Bound>, index: u32) -> Option<u32> {
    if !super::is_pv_domain() || !(dev.msi_enabled() || dev.msix_enabled()) {
        return None;
    }

    // SAFETY: `raw_pci_dev(dev)` is a valid `struct pci_dev`. With MSI or MSI-X enabled,
    // `pci_irq_vector()` looks `index` up among the device's MSI descriptors and returns its
    // IRQ, or a negative errno.
    let irq = unsafe { bindings::pci_irq_vector(raw_pci_dev(dev), index) };
    let irq = u32::try_from(irq).ok().filter(|&irq| irq != 0)?;

    // SAFETY: `irq` is an IRQ of `dev` (see above), which stays allocated while MSI or MSI-X
    // is enabled. `xen_pirq_from_irq()` accepts any IRQ: it answers 0 unless the IRQ is bound
    // to a pirq (the Xen MSI code binds every MSI vector of a PV domain's devices to one, but
    // not those of a device behind a VMD bridge).
    let pirq = unsafe { bindings::xen_pirq_from_irq(irq) };
    u32::try_from(pirq).ok().filter(|&pirq| pirq != 0)
}

/// Returns whether Xen delivers the physical IRQ bound to the Linux IRQ `irq` to other domains
/// too (whether another domain has bound it).
///
/// A PCI backend claims, in the initial domain, the INTx interrupts of a device it gave to a
/// guest while both domains are bound to the line; when the guest is the only other one and has
/// not bound it, the backend can stop claiming them. Xen may fail to tell: the answer is then
/// `true`, the safe side. Fails with [`EINVAL`] if `irq` is no pirq (an event channel, or an IRQ
/// of another domain kind's interrupt controller). Takes a hypercall: callable in any context,
/// the handler of `irq` included.
///
/// # Safety
///
/// `irq` must not be freed during the call: the caller has a handler registered on it (as in the
/// handler itself). Xen's per-IRQ information, which this reads, is freed with the IRQ without
/// waiting for readers.
pub unsafe fn line_shared(irq: u32) -> Result<bool> {
    let irq = c_int::try_from(irq).map_err(|_| EINVAL)?;
    // SAFETY: `xen_test_irq_shared()` accepts any IRQ number: it answers `-EINVAL` unless the IRQ
    // belongs to Xen's pirq chip, whose chip data is the `irq_info` it then reads, and which the
    // caller keeps from being freed (safety requirements of this function).
    match unsafe { bindings::xen_test_irq_shared(irq) } {
        0 => Ok(true),
        1 => Ok(false),
        e => Err(Error::from_errno(e)),
    }
}

/// The MSI and MSI-X hooks of a PCI frontend driver.
///
/// When a driver in a PV guest enables MSI or MSI-X on a device, the architecture code calls
/// these hooks: the frontend forwards the request to its backend, which sets the interrupts up
/// and returns the physical IRQs (pirqs) bound to them, which the architecture code then binds
/// to Linux IRQs. They are called in process context, with the device's MSI descriptors locked.
///
/// # Examples
///
/// ```
/// use kernel::{pci, xen::pci::FrontendOps};
///
/// struct Msi;
///
/// impl FrontendOps for Msi {
///     fn enable_msi(_dev: &pci::Device) -> Result<u32> {
///         // Send XEN_PCI_OP_enable_msi to the backend, return the pirq it answers.
///         Err(ENODEV)
///     }
///
///     fn disable_msi(_dev: &pci::Device) {}
///
///     fn enable_msix(_dev: &pci::Device, entries: &[u16], pirqs: &mut [u32]) -> Result {
///         // Send XEN_PCI_OP_enable_msix for `entries`, copy the answered pirqs.
///         let _ = (entries, pirqs);
///         Err(ENODEV)
///     }
///
///     fn disable_msix(_dev: &pci::Device) {}
/// }
/// ```
#[cfg(CONFIG_PCI_XEN)]
pub trait FrontendOps: Send + Sync + 'static {
    /// Enables MSI (a single vector) for `dev`; returns the pirq bound to it.
    fn enable_msi(dev: &pci::Device) -> Result<u32>;

    /// Disables MSI for `dev`.
    fn disable_msi(dev: &pci::Device);

    /// Enables MSI-X for `dev`, for the MSI-X table entries `entries`; on success `pirqs[i]` is
    /// the pirq bound to `entries[i]` (both slices have the same length).
    fn enable_msix(dev: &pci::Device, entries: &[u16], pirqs: &mut [u32]) -> Result;

    /// Disables MSI-X for `dev`.
    fn disable_msix(dev: &pci::Device);
}

/// The largest number of MSI-X vectors handed to [`FrontendOps::enable_msix`], the capacity of
/// the PCI frontend protocol (`SH_INFO_MAX_VEC`).
#[cfg(CONFIG_PCI_XEN)]
// CAST: A small constant.
pub const MAX_MSIX_VECTORS: usize = bindings::SH_INFO_MAX_VEC as usize;

#[cfg(CONFIG_PCI_XEN)]
struct Adapter<T: FrontendOps>(core::marker::PhantomData<T>);

#[cfg(CONFIG_PCI_XEN)]
impl<T: FrontendOps> Adapter<T> {
    const VTABLE: bindings::xen_pci_frontend_ops = bindings::xen_pci_frontend_ops {
        enable_msi: Some(Self::enable_msi),
        disable_msi: Some(Self::disable_msi),
        enable_msix: Some(Self::enable_msix),
        disable_msix: Some(Self::disable_msix),
    };

    const VTABLE_REF: &'static bindings::xen_pci_frontend_ops = &Self::VTABLE;

    fn vtable_ptr() -> *mut bindings::xen_pci_frontend_ops {
        // CAST: The C side never writes through the pointer.
        core::ptr::from_ref(Self::VTABLE_REF).cast_mut()
    }

    /// # Safety
    ///
    /// `dev` must be a valid `struct pci_dev` for the duration of the returned borrow.
    unsafe fn device<'a>(dev: *mut bindings::pci_dev) -> &'a pci::Device {
        // SAFETY: `pci::Device` is a transparent wrapper of `struct pci_dev`; validity is
        // guaranteed by the safety requirements of this function.
        unsafe { &*dev.cast::<pci::Device>() }
    }

    /// # Safety
    ///
    /// Only called by the architecture code through `xen_pci_frontend`, with a valid device and
    /// an array of at least one vector.
    unsafe extern "C" fn enable_msi(dev: *mut bindings::pci_dev, vectors: *mut c_int) -> c_int {
        // SAFETY: The architecture code passes a valid device.
        let pdev = unsafe { Self::device(dev) };

        match T::enable_msi(pdev).and_then(|pirq| c_int::try_from(pirq).map_err(|_| ERANGE)) {
            Ok(pirq) => {
                // SAFETY: The architecture code passes an array of at least one vector.
                unsafe { vectors.write(pirq) };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Only called by the architecture code through `xen_pci_frontend`, with a valid device.
    unsafe extern "C" fn disable_msi(dev: *mut bindings::pci_dev) {
        // SAFETY: The architecture code passes a valid device.
        T::disable_msi(unsafe { Self::device(dev) });
    }

    /// # Safety
    ///
    /// Only called by the architecture code through `xen_pci_frontend`, with a valid device, its
    /// MSI descriptors locked and an array of `nvec` vectors.
    unsafe extern "C" fn enable_msix(
        dev: *mut bindings::pci_dev,
        vectors: *mut c_int,
        nvec: c_int,
    ) -> c_int {
        // SAFETY: The architecture code passes a valid device.
        let pdev = unsafe { Self::device(dev) };

        let nvec = match usize::try_from(nvec) {
            Ok(nvec) if nvec > 0 && nvec <= MAX_MSIX_VECTORS => nvec,
            _ => return EINVAL.to_errno(),
        };

        // The table entries of the descriptors being set up, in order.
        let mut entries = [0u16; MAX_MSIX_VECTORS];
        let mut count = 0;

        // SAFETY: `dev` is valid; its MSI descriptors are locked by the caller, as
        // `msi_domain_first_desc()` and `msi_next_desc()` require.
        let mut desc = unsafe {
            bindings::msi_domain_first_desc(
                &raw mut (*dev).dev,
                bindings::msi_domain_ids_MSI_DEFAULT_DOMAIN,
                bindings::msi_desc_filter_MSI_DESC_NOTASSOCIATED,
            )
        };
        while !desc.is_null() {
            if count == nvec {
                return EINVAL.to_errno();
            }
            // SAFETY: `desc` is a valid descriptor of `dev`, stable while they are locked.
            entries[count] = unsafe { (*desc).msi_index };
            count += 1;

            // SAFETY: As above.
            desc = unsafe {
                bindings::msi_next_desc(
                    &raw mut (*dev).dev,
                    bindings::msi_domain_ids_MSI_DEFAULT_DOMAIN,
                    bindings::msi_desc_filter_MSI_DESC_NOTASSOCIATED,
                )
            };
        }
        if count != nvec {
            return EINVAL.to_errno();
        }

        let mut pirqs = [0u32; MAX_MSIX_VECTORS];
        if let Err(e) = T::enable_msix(pdev, &entries[..nvec], &mut pirqs[..nvec]) {
            return e.to_errno();
        }

        for (i, &pirq) in pirqs[..nvec].iter().enumerate() {
            let Ok(pirq) = c_int::try_from(pirq) else {
                return ERANGE.to_errno();
            };
            // SAFETY: The architecture code passes an array of `nvec` vectors, and `i < nvec`.
            unsafe { vectors.add(i).write(pirq) };
        }
        0
    }

    /// # Safety
    ///
    /// Only called by the architecture code through `xen_pci_frontend`, with a valid device.
    unsafe extern "C" fn disable_msix(dev: *mut bindings::pci_dev) {
        // SAFETY: The architecture code passes a valid device.
        T::disable_msix(unsafe { Self::device(dev) });
    }
}

/// The registration of a PCI frontend's MSI hooks, undone when dropped.
///
/// There is one set of hooks for the whole system: registering while another is in place fails
/// with [`EBUSY`].
///
/// The architecture code calls the hooks without taking a reference to the module that
/// provides them: a frontend drops the registration only once no device of its bus can enable
/// or disable MSI any more, i.e. after removing its PCI buses.
///
/// # Invariants
///
/// `ops` is the hooks table of `T`, installed in `xen_pci_frontend` by this object.
#[cfg(CONFIG_PCI_XEN)]
pub struct FrontendOpsRegistration<T: FrontendOps> {
    ops: *mut bindings::xen_pci_frontend_ops,
    _t: core::marker::PhantomData<T>,
}

// SAFETY: The registration only holds the address of an immutable table, usable from any thread.
#[cfg(CONFIG_PCI_XEN)]
unsafe impl<T: FrontendOps> Send for FrontendOpsRegistration<T> {}

// SAFETY: `&FrontendOpsRegistration` gives access to nothing.
#[cfg(CONFIG_PCI_XEN)]
unsafe impl<T: FrontendOps> Sync for FrontendOpsRegistration<T> {}

#[cfg(CONFIG_PCI_XEN)]
impl<T: FrontendOps> FrontendOpsRegistration<T> {
    /// Installs the hooks of `T`.
    pub fn new() -> Result<Self> {
        // SAFETY: `xen_pci_frontend` is a valid global pointer, only ever updated atomically by
        // this registration (and read by the architecture code).
        let global =
            unsafe { crate::sync::atomic::Atomic::from_ptr(&raw mut bindings::xen_pci_frontend) };
        // The address of the (promoted) table is taken once: `drop` must compare with the very
        // pointer installed here.
        let ops = Adapter::<T>::vtable_ptr();
        global
            .cmpxchg(core::ptr::null_mut(), ops, crate::sync::atomic::Full)
            .map_err(|_| EBUSY)?;

        // INVARIANT: `ops` was just installed.
        Ok(Self {
            ops,
            _t: core::marker::PhantomData,
        })
    }
}

#[cfg(CONFIG_PCI_XEN)]
impl<T: FrontendOps> Drop for FrontendOpsRegistration<T> {
    fn drop(&mut self) {
        // SAFETY: As in `new`.
        let global =
            unsafe { crate::sync::atomic::Atomic::from_ptr(&raw mut bindings::xen_pci_frontend) };
        // By the type invariant `self.ops` is installed; nobody else replaces it (the C
        // `xen-pcifront` takes the hooks only when nobody holds them).
        let _ = global.cmpxchg(self.ops, core::ptr::null_mut(), crate::sync::atomic::Full);
    }
}

#[cfg(all(CONFIG_RUST_XEN_KUNIT_TEST, CONFIG_PCI_XEN))]
#[macros::kunit_tests(rust_xen_pci)]
mod tests {
    use super::*;

    use crate::sync::atomic::{
        Atomic,
        Relaxed, //
    };

    /// What `Answers::enable_msi` answers: a pirq, or an error when 0.
    static PIRQ: Atomic<u32> = Atomic::new(0);
    /// The calls of the hooks that return nothing, and of `enable_msix`.
    static DISABLE_MSI: Atomic<u32> = Atomic::new(0);
    static DISABLE_MSIX: Atomic<u32> = Atomic::new(0);
    static ENABLE_MSIX: Atomic<u32> = Atomic::new(0);

    /// Hooks that never look at the device.
    struct Answers;

    impl FrontendOps for Answers {
        fn enable_msi(_dev: &pci::Device) -> Result<u32> {
            match PIRQ.load(Relaxed) {
                0 => Err(ENODEV),
                pirq => Ok(pirq),
            }
        }

        fn disable_msi(_dev: &pci::Device) {
            DISABLE_MSI.fetch_add(1, Relaxed);
        }

        fn enable_msix(_dev: &pci::Device, _entries: &[u16], _pirqs: &mut [u32]) -> Result {
            ENABLE_MSIX.fetch_add(1, Relaxed);
            Err(ENODEV)
        }

        fn disable_msix(_dev: &pci::Device) {
            DISABLE_MSIX.fetch_add(1, Relaxed);
        }
    }

    /// The C hooks of `Answers` translate its answers as the architecture code expects: the
    /// pirq in the vector array and 0, or a negative errno and the array untouched; bad MSI-X
    /// vector counts are refused before the frontend is asked.
    #[test]
    fn frontend_ops_translate() -> Result {
        let vtable = &Adapter::<Answers>::VTABLE;
        let (enable_msi, disable_msi, enable_msix, disable_msix) = (
            vtable.enable_msi.ok_or(EINVAL)?,
            vtable.disable_msi.ok_or(EINVAL)?,
            vtable.enable_msix.ok_or(EINVAL)?,
            vtable.disable_msix.ok_or(EINVAL)?,
        );
        // Zeroed memory standing for the device: the hooks of `Answers` never look at it, and
        // the MSI-X hook refuses the counts used here before looking at its descriptors.
        let dev =
            KBox::<bindings::pci_dev>::new_uninit(GFP_KERNEL | crate::alloc::flags::__GFP_ZERO)?;
        // SAFETY: The memory is zeroed, a valid value of a C structure of integers and pointers.
        let dev = KBox::into_raw(unsafe { dev.assume_init() });
        let mut vectors: [c_int; 2] = [-1; 2];

        PIRQ.store(77, Relaxed);
        // SAFETY: `dev` is valid memory the hooks do not look at; `vectors` has two elements.
        assert_eq!(unsafe { enable_msi(dev, vectors.as_mut_ptr()) }, 0);
        assert_eq!(vectors, [77, -1]);

        // A pirq that does not fit in a C `int`.
        PIRQ.store(u32::MAX, Relaxed);
        vectors = [-1; 2];
        // SAFETY: As above.
        let ret = unsafe { enable_msi(dev, vectors.as_mut_ptr()) };
        assert_eq!(ret, ERANGE.to_errno());
        assert_eq!(vectors, [-1, -1]);

        PIRQ.store(0, Relaxed);
        // SAFETY: As above.
        let ret = unsafe { enable_msi(dev, vectors.as_mut_ptr()) };
        assert_eq!(ret, ENODEV.to_errno());
        assert_eq!(vectors, [-1, -1]);

        let before = ENABLE_MSIX.load(Relaxed);
        // CAST: A small constant.
        for nvec in [0, -1, MAX_MSIX_VECTORS as c_int + 1] {
            // SAFETY: As above; the count is refused before the array or the device is used.
            let ret = unsafe { enable_msix(dev, vectors.as_mut_ptr(), nvec) };
            assert_eq!(ret, EINVAL.to_errno());
        }
        assert_eq!(ENABLE_MSIX.load(Relaxed), before);
        assert_eq!(vectors, [-1, -1]);

        let (msi, msix) = (DISABLE_MSI.load(Relaxed), DISABLE_MSIX.load(Relaxed));
        // SAFETY: As above.
        unsafe { disable_msi(dev) };
        assert_eq!(DISABLE_MSI.load(Relaxed), msi + 1);
        // SAFETY: As above.
        unsafe { disable_msix(dev) };
        assert_eq!(DISABLE_MSIX.load(Relaxed), msix + 1);

        // SAFETY: `dev` came from `KBox::into_raw` above and is no longer used.
        drop(unsafe { KBox::from_raw(dev) });
        Ok(())
    }

    /// Registering installs the hooks in `xen_pci_frontend`, a second registration is refused
    /// while they are in place, and dropping removes them.
    #[test]
    fn frontend_ops_registration() -> Result {
        // SAFETY: `xen_pci_frontend` is a valid global pointer; see `FrontendOpsRegistration`.
        let global =
            unsafe { crate::sync::atomic::Atomic::from_ptr(&raw mut bindings::xen_pci_frontend) };
        if !global.load(Relaxed).is_null() {
            crate::xen::kunit_skip(c"a PCI frontend's hooks are installed");
            return Ok(());
        }

        let reg = FrontendOpsRegistration::<Answers>::new()?;
        assert!(!reg.ops.is_null());
        assert_eq!(global.load(Relaxed), reg.ops);
        assert_eq!(FrontendOpsRegistration::<Answers>::new().err(), Some(EBUSY));
        assert_eq!(global.load(Relaxed), reg.ops);
        drop(reg);
        assert!(global.load(Relaxed).is_null());

        // And again, once they are gone.
        let reg = FrontendOpsRegistration::<Answers>::new()?;
        assert_eq!(global.load(Relaxed), reg.ops);
        drop(reg);
        assert!(global.load(Relaxed).is_null());
        Ok(())
    }
}

#[cfg(all(CONFIG_RUST_XEN_KUNIT_TEST, CONFIG_XEN_DOM0))]
#[macros::kunit_tests(rust_xen_pci_owner)]
mod owner_tests {
    use super::*;

    /// The first PCI device on bus 0 of segment 0, if any (none in a PV guest at boot).
    fn some_device() -> Option<ARef<pci::Device>> {
        (0..=u8::MAX).find_map(|devfn| pci::Device::get_by_slot(0, 0, devfn))
    }

    #[test]
    fn a_stale_entry_is_taken_over() -> Result {
        let Some(dev) = some_device() else {
            return Ok(());
        };
        if domain_owner(&dev).is_some() {
            // Registered for real (a backend exports it): leave it alone.
            return Ok(());
        }

        let guest = DomId::new(0x7001);
        let stale = DomId::new(0x7002);

        // A stale entry: registered by someone who is gone without removing it.
        // SAFETY: `raw_pci_dev(&dev)` is a valid `struct pci_dev`; the entry is removed below.
        let ret = unsafe {
            bindings::xen_register_device_domain_owner(raw_pci_dev(&dev), stale.as_raw())
        };
        assert_eq!(ret, 0);
        assert_eq!(domain_owner(&dev), Some(stale));
        assert!(matches!(DomainOwner::register(dev.clone(), guest), Err(e) if e == EEXIST));

        let (owner, previous) = DomainOwner::take_over(dev.clone(), guest)?;
        assert_eq!(previous, Some(stale));
        assert_eq!(owner.domain(), guest);
        assert_eq!(domain_owner(&dev), Some(guest));
        drop(owner);
        assert_eq!(domain_owner(&dev), None);

        // Nothing to take over: a plain registration.
        let (owner, previous) = DomainOwner::take_over(dev.clone(), guest)?;
        assert_eq!(previous, None);
        assert_eq!(domain_owner(&dev), Some(guest));
        drop(owner);
        assert_eq!(domain_owner(&dev), None);
        Ok(())
    }
}
