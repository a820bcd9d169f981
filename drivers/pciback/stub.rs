// SPDX-License-Identifier: GPL-2.0

//! The `pciback` PCI driver: seizes devices so that no host driver touches them, and keeps, for
//! each seized device, the state the xenbus backend needs to export it (its configuration-space
//! engine, its "golden" saved state, the guest that claimed it).
//!
//! # Lifetimes and locking
//!
//! Each seized device is a [`Seized`] in an [`Arc`], listed in the global [`SEIZED`] registry
//! from `probe` to `unbind`. The xenbus backend finds devices there by host address and keeps
//! an [`Arc`] to the ones it exports.
//!
//! [`Seized::inner`] says whether the PCI driver is still bound (`bound`). Whoever holds that
//! lock while `bound` is `true` may use the device as a [`pci::Device<Bound>`]: `unbind` clears
//! `bound` under the same lock before it returns, so the device stays bound while the lock is
//! held. Lock order: the device lock, [`SEIZED`], then a device's `inner`, then its `fast`,
//! then its `stats` (taken alone by the debugfs file). `fast` and `stats` are the only locks
//! of a device that the event channel's interrupt takes (spinlocks taken with interrupts off
//! everywhere). `unbind` takes
//! `inner` with the device lock held, so nothing may wait for the device lock while holding
//! `inner`: the release from a guest takes the device lock first
//! ([`pci::Device::lock_for_reset`]), waiting for whoever holds it, then `inner`.
//!
//! Requests on the interrupt: [`Seized::lock_inner`] withdraws the copy of the engine in
//! `fast` each time it takes `inner`, and a guest request republishes it when it is done with
//! `inner` (`with_bound`): a published copy is the engine as it is, for a device bound and
//! claimed. [`Seized::conf_read_on_interrupt`] reads, and [`Seized::conf_write_on_interrupt`]
//! makes a plain write (which changes nothing of the engine), with the copy under `fast`;
//! whoever wants to change the engine, the binding or the claim waits for such an access when
//! withdrawing it.
//!
//! The claim of an exported device holds the guest's backend state ([`Shared`]), which holds
//! the device in its topology: the cycle ends when the claim is dropped, which every way out of
//! an export does (`release`, `unclaim`, `unbind`).
//!
//! # AER
//!
//! The PCI core's error recovery calls this driver's [`pci::ErrorHandler`] for a seized device
//! (with its device lock held); for a device exported to a guest each step is forwarded to the
//! guest ([`crate::aer`]). No lock of this module is held while the guest is waited for.

use kernel::{
    debugfs::{
        self,
        Dir, //
    },
    device::{
        self,
        Bound,
        Core, //
    },
    device_id::IdArray,
    driver, new_mutex, pci,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{
            AtomicFlag,
            Relaxed, //
        },
        new_spinlock_irq,
        Arc,
        Mutex,
        MutexGuard,
        SpinLockIrq, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
    uaccess::UserSliceReader,
    xen::{
        self,
        pci::{
            DomainOwner,
            MsixPreparation, //
        },
        DomId, //
    },
};

use crate::{
    common::{
        aer::{
            AerStep,
            ChannelState, //
        },
        bdf::{
            Bdf,
            BdfPattern, //
        },
        conf::{
            regs,
            HwError,
            VirtualConfig,
            WriteOutcome, //
        },
        msi,
        pciif::{
            AccessSize,
            OpError,
            PciifError, //
        },
        ratelimit::{
            RateLimit,
            Verdict, //
        },
        reset::{
            self as resets,
            Blocker,
            Outcome,
            Record,
            Sibling,
            When, //
        },
        stats::Stats,
        vbus::DevKind,
    },
    conf::{
        Hw,
        RawConfig, //
    },
    intx::{
        self,
        IntxRegistration,
        IntxState, //
    },
    xenbus::Shared,
};

/// The seize list and the seized devices.
pub(crate) struct Registry {
    /// The addresses of the devices this driver may bind, the `slots` attribute: from `hide=`,
    /// `new_slot` and `driver_override`. One entry per function (wildcards are expanded when
    /// added, as toolstacks read `slots` line by line), no duplicates, in the order added.
    ids: KVec<Bdf>,
    /// The devices bound to this driver.
    devices: KVec<Arc<Seized>>,
    /// `pciback` in debugfs, which holds a statistics file per seized device (see
    /// [`StubData`]); set at module load.
    debugfs: Option<Dir>,
}

impl Registry {
    pub(crate) const fn new() -> Self {
        Self {
            ids: KVec::new(),
            devices: KVec::new(),
            debugfs: None,
        }
    }

    /// Creates the `pciback` directory in debugfs (nothing if debugfs is off).
    pub(crate) fn create_debugfs(&mut self) {
        self.debugfs = Some(Dir::new(c"pciback"));
    }

    fn wants(&self, bdf: &Bdf) -> bool {
        self.ids.contains(bdf)
    }

    /// Adds the functions of `pattern` to the seize list, skipping those already in it, and
    /// returns how many were added. Either all are added or, if memory runs out, none.
    pub(crate) fn add(&mut self, pattern: &BdfPattern) -> Result<usize> {
        self.ids.reserve(pattern.expansion_len(), GFP_KERNEL)?;
        let mut added = 0;
        for bdf in pattern {
            if !self.ids.contains(&bdf) {
                // Cannot fail: room for the whole pattern was reserved above.
                self.ids.push_within_capacity(bdf).map_err(|_| ENOMEM)?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Removes every function of `pattern` from the seize list and returns how many there were.
    /// Bound devices stay bound.
    pub(crate) fn remove(&mut self, pattern: &BdfPattern) -> usize {
        let before = self.ids.len();
        self.ids.retain(|bdf| !pattern.matches(bdf));
        before - self.ids.len()
    }

    /// Whether the device at `bdf` is bound to this driver.
    pub(crate) fn is_seized(&self, bdf: &Bdf) -> bool {
        self.devices.iter().any(|d| d.bdf == *bdf)
    }

    /// The seize list.
    pub(crate) fn ids(&self) -> &[Bdf] {
        &self.ids
    }
}

/// Frees the vectors of [`SEIZED`] when dropped: the module keeps one, dropped after both
/// drivers are unregistered (nothing uses the registry any more). The static itself is never
/// dropped.
pub(crate) struct FreeRegistry;

impl Drop for FreeRegistry {
    fn drop(&mut self) {
        let mut registry = SEIZED.lock();
        // Assigning drops the old vectors; the new ones own no memory.
        registry.ids = KVec::new();
        registry.devices = KVec::new();
        registry.debugfs = None;
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in `PcibackModule::init` before anything else uses it.
    pub(crate) unsafe(uninit) static SEIZED: Mutex<Registry> = Registry::new();
}

/// A device exported to a guest: the claim that keeps other backends away.
struct Claim {
    domain: DomId,
    /// The guest's backend state, where AER requests for the device go.
    backend: Arc<Shared>,
    /// The device's entry in the domain-owner registry, removed when dropped.
    _owner: DomainOwner,
}

/// The mutable state of a seized device.
struct Inner {
    /// The PCI driver is bound to the device (see the module documentation).
    bound: bool,
    /// The configuration-space engine, created at seize time.
    config: VirtualConfig,
    /// The configuration state at seize time, put back when a guest releases the device.
    golden: Option<pci::SavedState>,
    /// The guest enabled the device through its Command register (balanced on release).
    enabled_by_guest: bool,
    /// dom0's error recovery found the channel frozen: the PCI core resets the device whatever
    /// the votes, and calls `slot_reset` only if one of them asked for a reset.
    frozen_recovery: bool,
    /// The guest the device is exported to.
    claim: Option<Claim>,
    /// The rate limit of this device's denied-write explanations (`Denied::explain`).
    explain_limit: RateLimit,
    /// The device's resets (the `resets` attribute); a failed one keeps it from being claimed.
    resets: Record,
    /// A secondary bus reset of the device's bus is running ([`Seized::reset_bus`]): the device
    /// is not claimed meanwhile.
    bus_resetting: bool,
    /// A release found no function reset and resets the bus next, once its locks are dropped
    /// ([`Seized::release`]): the device is not claimed meanwhile, as while the reset runs.
    bus_reset_pending: bool,
}

/// A device seized by the `pciback` PCI driver.
#[pin_data]
pub(crate) struct Seized {
    bdf: Bdf,
    pdev: ARef<pci::Device>,
    /// The switches of the dom0 INTx handler (see [`crate::intx`]).
    intx: Arc<IntxState>,
    /// Taken through [`Seized::lock_inner`] only.
    #[pin]
    inner: Mutex<Inner>,
    /// A copy of the engine for the requests served on the event channel's interrupt: present
    /// only while the device is bound and claimed and the copy equals `inner.config` (see
    /// [`Seized::with_published`]).
    #[pin]
    fast: SpinLockIrq<Option<VirtualConfig>>,
    /// When the device was seized: the clock of the rate limits.
    created: Instant<Monotonic>,
    /// The request statistics (debugfs), apart from `inner`: counting never waits for a slow
    /// operation of the device.
    #[pin]
    stats: SpinLockIrq<Stats>,
    /// The administrator lets the device go to a guest although devices it can reach by DMA
    /// without the IOMMU are used elsewhere (`allow_dma_peers`, see [`crate::isolation`]);
    /// until the device is unbound.
    allow_dma_peers: AtomicFlag,
}

/// Why a device could not be claimed for a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// No device at this address is bound to `pciback`.
    NotSeized,
    /// The device is exported to another guest (or to this one already).
    Busy,
    /// The domain-owner registry refused the device (out of memory, or an entry registered
    /// while a stale one was being taken over).
    Owner(Error),
    /// A secondary bus reset of the device's bus is running.
    Resetting,
    /// The device's last reset failed: it is refused until a reset succeeds (see
    /// [`Record::note`]).
    ResetFailed,
}

impl ClaimError {
    pub(crate) fn to_error(self) -> Error {
        match self {
            Self::NotSeized => ENODEV,
            Self::Busy | Self::Resetting => EBUSY,
            Self::Owner(e) => e,
            Self::ResetFailed => EIO,
        }
    }
}

impl kernel::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            Self::NotSeized => f.write_str("not bound to pciback"),
            Self::Busy => f.write_str("already exported"),
            Self::Owner(e) => write!(f, "the domain-owner registry refused it ({e:?})"),
            Self::Resetting => f.write_str("a bus reset is in progress"),
            Self::ResetFailed => f.write_str(
                "its last reset failed (see the resets attribute); reset it with do_flr, or unbind and bind it",
            ),
        }
    }
}

/// What a function reset (`pci_reset_function_locked()`) returned, as a [`Outcome`].
///
/// The PCI core runs the first of the device's methods that does not decline (`ENOTTY`) at the
/// time, and does not say which: the method named is the first of the list, the one that runs
/// unless it declines (a bus reset declines when the function is no longer alone on its bus).
fn function_outcome(methods: &pci::ResetMethods, r: &Result) -> Outcome {
    let method = methods.first().map_or("?", |m| m.name());
    match r {
        Ok(()) => Outcome::Done { method, errno: 0 },
        Err(e) if *e == ENOTTY => Outcome::NoMethod(None),
        Err(e) => Outcome::Done {
            method,
            errno: e.to_errno(),
        },
    }
}

/// Whether the function reset `r` found no method that applies, the case where
/// [`Seized::reset_bus`] is tried: the device has none, or only ones that decline at the time
/// (the kernel's `bus` method, listed for function 0 of a multi-function device because it was
/// probed before the other functions were found, declines once they are).
fn wants_bus_reset(r: &Result) -> bool {
    matches!(r, Err(e) if *e == ENOTTY)
}

impl Seized {
    /// The host address.
    pub(crate) fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// The switches and count of the dom0 INTx handler.
    pub(crate) fn intx(&self) -> &IntxState {
        &self.intx
    }

    /// The PCI device (not necessarily bound: use it only for what needs no driver).
    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// The device's kind for the topology.
    pub(crate) fn kind(&self) -> DevKind {
        if self.pdev.is_bridge() {
            DevKind::Bridge
        } else if self.pdev.is_virtfn() {
            DevKind::SriovVf
        } else {
            DevKind::Normal
        }
    }

    /// Finds the seized device at `bdf` and claims it for the guest of `backend`.
    ///
    /// Fails if no device at `bdf` is bound to `pciback`, or if it is already claimed.
    pub(crate) fn claim(bdf: Bdf, backend: &Arc<Shared>) -> Result<Arc<Self>, ClaimError> {
        let domain = backend.domid();
        let this = SEIZED
            .lock()
            .devices
            .iter()
            .find(|d| d.bdf == bdf)
            .cloned()
            .ok_or(ClaimError::NotSeized)?;

        let mut inner = this.lock_inner();
        if !inner.bound {
            return Err(ClaimError::NotSeized);
        }
        if inner.claim.is_some() {
            return Err(ClaimError::Busy);
        }
        if inner.bus_resetting || inner.bus_reset_pending {
            return Err(ClaimError::Resetting);
        }
        if let Some((when, outcome)) = inner.resets.refused() {
            dev_err!(
                this.pdev().as_ref(),
                "refused to guest {}: the reset at {} failed ({}); reset it with do_flr, or unbind and bind it\n",
                domain,
                format_args!("{when}"),
                format_args!("{outcome}")
            );
            return Err(ClaimError::ResetFailed);
        }
        // The device is bound to this driver and claimed by no guest (checked above, under
        // `inner`), and only PCI backends register owners, for devices they export: an entry
        // found now is stale (left by a backend that no longer holds the device, C
        // `xen-pciback` for one). Take it over, as C does, rather than refuse the device until
        // the next boot.
        let (owner, stale) =
            DomainOwner::take_over(this.pdev.clone(), domain).map_err(ClaimError::Owner)?;
        if let Some(stale) = stale {
            dev_warn!(
                this.pdev().as_ref(),
                "taking over the stale domain-owner entry of domain {} for domain {}\n",
                stale,
                domain
            );
        }
        inner.claim = Some(Claim {
            domain,
            backend: backend.clone(),
            _owner: owner,
        });
        drop(inner);

        Ok(this)
    }

    /// Puts the seize-time configuration state back after dom0's error recovery reset the
    /// device: the PCI core's recovery resets without restoring anything (it leaves that to
    /// the drivers' `slot_reset`), which leaves the BARs and Command cleared. The guest's driver,
    /// told next that the slot was reset, can only write the registers the engine lets it,
    /// and the BARs are virtual: it could not map the device again. (C `xen-pciback` does not
    /// restore: the guest's driver then fails, e.g. `e1000e` gets no MSI-X, `ENXIO`, with the
    /// memory space off.)
    ///
    /// Called at `slot_reset`, and at `resume` (`at_resume`) where it restores only if the
    /// channel was frozen and `slot_reset` did not run: the PCI core resets a frozen channel
    /// even when every vote was to recover without a reset.
    pub(crate) fn restore_after_error_reset(&self, pdev: &pci::Device<Bound>, at_resume: bool) {
        let mut inner = self.lock_inner();
        if at_resume && !inner.frozen_recovery {
            return;
        }
        inner.frozen_recovery = false;
        if let Some(golden) = &inner.golden {
            // The restore writes the Command register: the INTx handler's masking waits.
            let _paused = self.intx.pause();
            if let Err(e) = golden.restore(pdev) {
                dev_warn!(
                    pdev.as_ref(),
                    "cannot restore the configuration state after the reset: {:?}\n",
                    e
                );
            }
        }
    }

    /// Notes the channel state of dom0's error recovery at its first step (see
    /// [`Seized::restore_after_error_reset`]).
    pub(crate) fn note_error_detected(&self, frozen: bool) {
        self.lock_inner().frozen_recovery = frozen;
    }

    /// Whether the administrator lets the device go to a guest whatever its DMA peers
    /// (`allow_dma_peers`).
    pub(crate) fn dma_peers_allowed(&self) -> bool {
        self.allow_dma_peers.load(Relaxed)
    }

    /// Lets the device go to a guest whatever its DMA peers, until it is unbound.
    pub(crate) fn allow_dma_peers(&self) {
        self.allow_dma_peers.store(true, Relaxed);
    }

    /// The backend of the guest the device is exported to, if any.
    pub(crate) fn backend(&self) -> Option<Arc<Shared>> {
        self.lock_inner().claim.as_ref().map(|c| c.backend.clone())
    }

    /// Finds the seized device at `bdf` (bound to `pciback`).
    pub(crate) fn find(bdf: Bdf) -> Option<Arc<Self>> {
        let this = SEIZED
            .lock()
            .devices
            .iter()
            .find(|d| d.bdf == bdf)
            .cloned()?;
        let bound = this.lock_inner().bound;
        bound.then_some(this)
    }

    /// Calls `f` for every seized device, in seize order.
    pub(crate) fn for_each(mut f: impl FnMut(&Self)) {
        for dev in SEIZED.lock().devices.iter() {
            f(dev);
        }
    }

    /// Runs `f` with the device's configuration-space engine.
    pub(crate) fn with_config<R>(&self, f: impl FnOnce(&mut VirtualConfig) -> R) -> R {
        f(&mut self.lock_inner().config)
    }

    /// Gives up a claim taken by [`Seized::claim`] for a device the guest never saw: nothing
    /// to reset.
    pub(crate) fn unclaim(&self) {
        let claim = self.lock_inner().claim.take();
        drop(claim);
    }

    /// Returns the device to the host after a guest used it: resets it, restores its seize-time
    /// state, disables what the guest enabled, resets the engine's virtual state, and drops the
    /// claim (and the domain-owner entry).
    ///
    /// The reset waits for the device lock, as C's does: whoever holds it (the PCI core's error
    /// recovery holds it for each step, up to a minute while a guest is asked) delays the
    /// release; the device is never handed on unreset. Failures are logged and do not stop the
    /// release; a failed reset leaves the device refused to guests until a reset succeeds
    /// ([`Record::note`]). Without a reset method that applies, the bus is reset if it can be
    /// ([`Seized::reset_bus`], after every lock is dropped). If the PCI driver was unbound
    /// meanwhile, `unbind` has reset the device.
    pub(crate) fn release(&self) {
        // The device lock before `inner`, the order of `unbind` (the driver core takes the
        // device lock around it): the device cannot be unbound while the lock is held.
        let lock = self.pdev.lock_for_reset();
        let mut guard = self.lock_inner();
        let inner = &mut *guard;
        let Some(claim) = inner.claim.take() else {
            return;
        };
        // The reset, the restore and the disable write the Command register: the INTx
        // handler's masking waits until the device is back as seized.
        let paused = self.intx.pause();
        let mut bus_reset = false;

        if inner.bound {
            let dev: &device::Device = self.pdev.as_ref();
            // SAFETY: `inner.bound` is `true` and `inner` is locked: the device stays bound to
            // this driver until the lock is dropped at the end of this function (see the module
            // documentation).
            let bound = unsafe { dev.as_bound() };
            let Ok(pdev) = <&pci::Device<Bound>>::try_from(bound) else {
                return;
            };

            // First, while the domain owner is still registered: Xen unmaps the guest's pirqs.
            disable_guest_interrupts(pdev);
            let methods = pdev.reset_methods();
            let r = lock.reset_function();
            match r {
                Ok(()) => dev_info!(dev, "reset after guest {}\n", claim.domain),
                Err(e) if e == ENOTTY => dev_info!(dev, "no reset method\n"),
                Err(e) => dev_err!(
                    dev,
                    "reset after guest {} failed: {:?}: refused for assignment until a reset succeeds\n",
                    claim.domain,
                    e
                ),
            }
            inner
                .resets
                .note(When::Release, function_outcome(&methods, &r));
            bus_reset = wants_bus_reset(&r);
            // Until the bus reset below has run: another backend (this release may run at an
            // unbind of this one, outside `xenwatch`) must not claim the device unreset.
            inner.bus_reset_pending = bus_reset;
            if let Some(golden) = &inner.golden {
                if let Err(e) = golden.restore(pdev) {
                    dev_warn!(dev, "cannot restore the seize-time state: {:?}\n", e);
                }
            }
            if inner.enabled_by_guest {
                pdev.disable_device();
                inner.enabled_by_guest = false;
            }
            // Not a bridge's, as C: it would stop forwarding the DMA of the devices behind it.
            if !pdev.is_bridge() {
                pdev.clear_master();
            }
            inner.config.reset_on_release();
            // Granted per assignment (libxl writes it again for a guest configured with
            // `permissive=1`): the next guest does not inherit it, unlike with C.
            inner.config.set_permissive(false);
            self.intx.reset();
            dev_info!(dev, "released by guest {}\n", claim.domain);
        }
        drop(paused);
        drop(guard);
        drop(lock);
        drop(claim);
        // With no lock of the device held: the bus reset takes the device locks itself.
        if bus_reset {
            self.reset_bus(When::Release);
            self.lock_inner().bus_reset_pending = false;
        }
    }

    /// `do_flr`: resets the device with its device lock held (`pci_reset_function_locked`: the
    /// configuration space is saved and restored around it; no bridge or config-access lock,
    /// as C pciback's own resets).
    ///
    /// A device a guest holds is reset too, and the outcome's log line names the guest: libxl
    /// writes `do_flr` at `xl pci-detach` before it takes the device out of the guest's IOMMU
    /// context and before it asks the backend to release it, and relies on that reset to stop
    /// the device's DMA (a refusal left an NVMe drive faulting in the IOMMU). The release
    /// resets the device again. Fails with `ENODEV` if the driver was unbound meanwhile,
    /// `ENOTTY` if the device has no reset method that applies and its bus cannot be reset
    /// ([`Seized::reset_bus`]), `EBUSY` if the bus reset could not run now, `EIO` if it ran and
    /// a function did not come back ([`resets::doflr_errno`]), or with the reset's error. The outcome is logged and noted in
    /// `resets` (a failure refuses the device, a success accepts it again).
    pub(crate) fn reset_for_toolstack(&self) -> Result {
        // The device lock first, then `inner`, as `release` and `unbind`: a claim or a release
        // waits for the reset to end.
        let lock = self.pdev.lock_for_reset();
        let mut inner = self.lock_inner();
        let dev: &device::Device = self.pdev.as_ref();
        if !inner.bound {
            return Err(ENODEV);
        }
        let held = HeldBy(inner.claim.as_ref().map(|c| c.domain));
        let methods = self.pdev.reset_methods();
        let paused = self.intx.pause();
        let r = lock.reset_function();
        drop(paused);
        match r {
            Ok(()) => dev_info!(dev, "do_flr: reset{}\n", held),
            Err(e) if e == ENOTTY => dev_info!(dev, "do_flr: no reset method{}\n", held),
            Err(e) => dev_err!(
                dev,
                "do_flr: reset failed: {:?}{}: refused for assignment until a reset succeeds\n",
                e,
                held
            ),
        }
        inner
            .resets
            .note(When::DoFlr, function_outcome(&methods, &r));
        if !wants_bus_reset(&r) {
            return r;
        }
        drop(inner);
        drop(lock);
        match resets::doflr_errno(self.reset_bus(When::DoFlr)) {
            0 => Ok(()),
            errno => Err(Error::from_errno(errno)),
        }
    }

    /// The device's resets, for the `resets` attribute.
    pub(crate) fn resets(&self) -> Record {
        self.lock_inner().resets
    }

    /// Resets the bus the device is on with every function on it (`pci_reset_bus()`), for a
    /// device whose function reset found no method that applies (a function of a
    /// multi-function device behind a bridge), if every function on that bus is a non-bridge
    /// bound to `pciback` and held by no guest ([`resets::bus_reset_blocker`]); otherwise logs
    /// why not (unless the device is on a root bus or a virtual function, where no bus reset
    /// applies).
    ///
    /// The outcome is noted at `when` on every function reset, and on this device either way.
    /// While the reset runs, the functions are marked (`bus_resetting`) and not claimed. No
    /// lock of this module is held across the reset itself: a hotplug slot's reset waits for
    /// its controller, whose event handler may unbind devices (which takes [`SEIZED`]). The
    /// reset takes the device locks of the bus without waiting: a function being unbound or
    /// probed meanwhile makes it fail with `EAGAIN`, and it is tried again, at most 5 times,
    /// 100 ms apart. Must be called with no lock of this module or of a device held.
    fn reset_bus(&self, when: When) -> Outcome {
        /// Why the reset was not done after all.
        enum Skip {
            Blocked(Blocker),
            /// Another reset of the bus is running.
            Running,
        }
        let dev: &device::Device = self.pdev.as_ref();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let found = self.bus_functions(&SEIZED.lock());
            let (bus, seized) = match found {
                Ok(found) => found,
                Err(b) => {
                    if !matches!(b, Blocker::RootBus | Blocker::VirtFn) {
                        dev_info!(dev, "no secondary bus reset: {}\n", format_args!("{b}"));
                    }
                    break Outcome::NoMethod(Some(b));
                }
            };
            if let Some(b) = resets::bus_reset_blocker(&bus) {
                dev_info!(dev, "no secondary bus reset: {}\n", format_args!("{b}"));
                break Outcome::NoMethod(Some(b));
            }
            // Marked one by one, each checked again under its own lock, which a claim takes.
            let mut marked = 0;
            let mut late = None;
            for s in seized.iter() {
                let mut inner = s.lock_inner();
                if let Some(c) = &inner.claim {
                    late = Some(Skip::Blocked(Blocker::Held(s.bdf, c.domain.as_raw())));
                } else if !inner.bound {
                    late = Some(Skip::Blocked(Blocker::NotSeized(s.bdf)));
                } else if inner.bus_resetting {
                    // Another reset of this bus runs (a release of another function): it
                    // resets this device too, and notes it.
                    late = Some(Skip::Running);
                } else {
                    inner.bus_resetting = true;
                    // Ended below, where the mark is cleared: the reset's restore writes the
                    // Command register.
                    s.intx.begin_pause();
                    marked += 1;
                    continue;
                }
                break;
            }
            let r = match late {
                Some(b) => Err(b),
                // Probed first, so that an `ENOTTY` of the reset itself is a failure.
                None if !self.pdev.can_reset_bus() => Err(Skip::Blocked(Blocker::NotResettable)),
                None => Ok(self.pdev.reset_bus()),
            };
            let retry = matches!(r, Ok(Err(e)) if e == EAGAIN) && attempt < 5;
            let outcome = match r {
                Err(Skip::Blocked(b)) => Outcome::NoMethod(Some(b)),
                Err(Skip::Running) => Outcome::NotYet,
                // `EAGAIN` (the bus stayed locked through every attempt) resets nothing: no
                // failure. Any other error, `ENOTTY` included, is one.
                Ok(res) => resets::bus_reset_outcome(res.map_or_else(|e| e.to_errno(), |()| 0)),
            };
            for s in seized.iter().take(marked) {
                let mut inner = s.lock_inner();
                inner.bus_resetting = false;
                s.intx.end_pause();
                if !retry && matches!(outcome, Outcome::Done { .. }) {
                    inner.resets.note(when, outcome);
                }
            }
            match r {
                Err(Skip::Running) => {
                    dev_info!(dev, "no secondary bus reset: another one is running\n");
                    return outcome;
                }
                Err(Skip::Blocked(b)) => {
                    dev_info!(dev, "no secondary bus reset: {}\n", format_args!("{b}"))
                }
                Ok(Ok(())) => dev_info!(
                    dev,
                    "secondary bus reset: {} function(s) reset\n",
                    seized.len()
                ),
                Ok(Err(e)) if retry => {
                    dev_info!(dev, "secondary bus reset: {:?}, trying again\n", e);
                    fsleep(Delta::from_millis(100));
                    continue;
                }
                Ok(Err(e)) if e == EAGAIN => {
                    dev_info!(dev, "no secondary bus reset: the bus stayed busy\n")
                }
                Ok(Err(e)) if e == ENOTTY => dev_err!(
                    dev,
                    "secondary bus reset failed: a function did not come back (ENOTTY): its {} function(s) refused for assignment until a reset succeeds\n",
                    seized.len()
                ),
                Ok(Err(e)) => dev_err!(
                    dev,
                    "secondary bus reset failed: {:?}: its {} function(s) refused for assignment until a reset succeeds\n",
                    e,
                    seized.len()
                ),
            }
            break outcome;
        };
        if matches!(outcome, Outcome::NoMethod(_)) {
            self.lock_inner().resets.note(when, outcome);
        }
        outcome
    }

    /// The functions on the device's bus, as [`resets::bus_reset_blocker`] wants them, and those
    /// `pciback` holds, or why a bus reset does not apply (a root bus, a virtual function, no
    /// memory: reported as the device itself not seized).
    fn bus_functions(
        &self,
        registry: &Registry,
    ) -> Result<(KVec<Sibling>, KVec<Arc<Seized>>), Blocker> {
        if self.pdev.is_virtfn() {
            return Err(Blocker::VirtFn);
        }
        if self.pdev.upstream_bridge().is_none() {
            return Err(Blocker::RootBus);
        }
        let mut bus = KVec::new();
        let mut seized = KVec::new();
        let nomem = Blocker::NotSeized(self.bdf);
        let (domain, number) = (self.pdev.domain_nr(), self.pdev.bus_number());
        // One walk of the PCI devices (in the order the PCI core found them), not one lookup per
        // device number.
        for pdev in pci::Device::all() {
            if pdev.domain_nr() != domain || pdev.bus_number() != number {
                continue;
            }
            let bdf = Bdf::from_devfn(self.bdf.domain(), self.bdf.bus(), pdev.devfn());
            let ours = registry.devices.iter().find(|d| d.bdf == bdf);
            let (bound, held_by) = ours.map_or((false, None), |d| {
                let inner = d.lock_inner();
                (inner.bound, inner.claim.as_ref().map(|c| c.domain.as_raw()))
            });
            bus.push(
                Sibling {
                    bdf,
                    bridge: pdev.is_bridge(),
                    seized: bound,
                    held_by,
                },
                GFP_KERNEL,
            )
            .map_err(|_| nomem)?;
            if let Some(d) = ours {
                seized.push(d.clone(), GFP_KERNEL).map_err(|_| nomem)?;
            }
        }
        Ok((bus, seized))
    }

    /// Locks the device's state, and withdraws the engine's copy for the interrupt: whoever
    /// holds the lock may change the engine, the binding or the claim, so the copy comes back
    /// only through [`Seized::publish`], once a request left them consistent.
    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        let inner = self.inner.lock();
        *self.fast.lock() = None;
        inner
    }

    /// Publishes the engine's copy for the interrupt, if the device is bound and
    /// claimed; `inner` is the locked state (see [`Seized::lock_inner`]).
    fn publish(&self, inner: &Inner) {
        if inner.bound && inner.claim.is_some() {
            *self.fast.lock() = Some(inner.config.clone());
        }
    }

    /// Runs `f` with the engine's copy and the bound device, on the event channel's
    /// interrupt, if the copy is published; `None` otherwise (or from `f`): the request is then
    /// served in process context. Takes no sleeping lock; `f` must not sleep either.
    fn with_published<R>(
        &self,
        f: impl FnOnce(&VirtualConfig, &pci::Device<Bound>) -> Option<R>,
    ) -> Option<R> {
        let fast = self.fast.lock();
        let config = fast.as_ref()?;
        // SAFETY: The copy is published only with `inner` locked while `inner.bound` is `true`
        // (`publish`), and withdrawn by whoever locks `inner` next (`lock_inner`), before it
        // can clear `bound`: a present copy means the device is bound, and `fast` is held for
        // the whole use of `dev`, so that `unbind` (which clears `bound` under `inner`, through
        // `lock_inner`) waits for it.
        let dev = unsafe { self.pdev.as_ref().as_bound() };
        let pdev = <&pci::Device<Bound>>::try_from(dev).ok()?;
        f(config, pdev)
    }

    /// Serves a guest's configuration read on the event channel's interrupt (see
    /// [`Seized::with_published`]): the answer, or `None` to serve it in process context.
    pub(crate) fn conf_read_on_interrupt(
        &self,
        offset: u16,
        size: AccessSize,
    ) -> Option<Result<u32, PciifError>> {
        self.with_published(|config, pdev| {
            Some(config.read(&mut RawConfig::new(pdev), offset, size))
        })
    }

    /// Serves a guest's configuration write on the event channel's interrupt if it is plain
    /// (`VirtualConfig::write_plain`: it changes nothing of the engine, so the copy stays the
    /// engine as it is, and makes only configuration accesses): the answer, or `None` to serve
    /// it in process context (see [`Seized::with_published`]).
    pub(crate) fn conf_write_on_interrupt(
        &self,
        offset: u16,
        size: AccessSize,
        value: u32,
    ) -> Option<Result<(), PciifError>> {
        self.with_published(|config, pdev| {
            config.write_plain(
                &mut RawConfig::new(pdev),
                offset,
                size,
                value,
                crate::permissive(),
            )
        })
    }

    /// Runs `f` with the bound device and its state, for a device claimed by a guest, or fails
    /// with `DevNotFound` if the PCI driver was unbound or the claim dropped meanwhile; then
    /// publishes the engine's copy for the interrupt.
    fn with_bound<R, E: From<PciifError>>(
        &self,
        f: impl FnOnce(&pci::Device<Bound>, &mut Inner) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut guard = self.lock_inner();
        let inner = &mut *guard;
        if !inner.bound || inner.claim.is_none() {
            return Err(PciifError::DevNotFound.into());
        }
        // The request may write the Command register (an enable, bus mastering, MSI's INTx
        // bit): the INTx handler's masking waits.
        let _paused = self.intx.pause();

        // SAFETY: `inner.bound` is `true` and `inner` is locked for the whole use of `dev`
        // (see the module documentation).
        let dev = unsafe { self.pdev.as_ref().as_bound() };
        let pdev = <&pci::Device<Bound>>::try_from(dev).map_err(|_| PciifError::DevNotFound)?;
        let r = f(pdev, inner);
        // The request is done with the state: requests may be served on the interrupt again.
        self.publish(inner);
        r
    }

    /// Runs `f` with the engine and the bound device (see [`Seized::with_bound`]).
    fn with_engine<R>(
        &self,
        f: impl FnOnce(&mut VirtualConfig, &mut Hw<'_>) -> Result<R, PciifError>,
    ) -> Result<R, PciifError> {
        self.with_bound(|pdev, inner| {
            let mut hw = Hw::new(pdev, &mut inner.enabled_by_guest, &self.intx);
            f(&mut inner.config, &mut hw)
        })
    }

    /// The guest asks for MSI: enables it on the device (Xen allocates its pirq in the guest's
    /// space, the device's domain owner) and returns that pirq.
    ///
    /// The error is the errno to log; the guest is only told `op_failed`, as by C.
    pub(crate) fn enable_msi(&self) -> Result<u32, OpError> {
        self.with_bound(|pdev, _| {
            msi::check_enable_msi(irq_state(pdev)).map_err(OpError::Errno)?;
            pdev.enable_msi()
                .map_err(|e| OpError::Errno(e.to_errno()))?;
            self.intx.set_ack(false);
            match xen::pci::msi_pirq(pdev, 0) {
                Some(pirq) => Ok(pirq),
                None => {
                    guest_msi_off(pdev);
                    Err(OpError::Errno(EIO.to_errno()))
                }
            }
        })
    }

    /// The guest asks for MSI-X on the table entries `entries`: enables exactly those and
    /// returns the pirq of each in `pirqs` (as long as `entries`).
    pub(crate) fn enable_msix(&self, entries: &[u16], pirqs: &mut [u32]) -> Result<(), OpError> {
        self.with_bound(|pdev, _| {
            msi::check_enable_msix(irq_state(pdev))?;

            let mut table = KVec::with_capacity(entries.len(), GFP_KERNEL)
                .map_err(|_| OpError::Errno(ENOMEM.to_errno()))?;
            for &entry in entries {
                table
                    .push(pci::MsixEntry::new(entry), GFP_KERNEL)
                    .map_err(|_| OpError::Errno(ENOMEM.to_errno()))?;
            }
            pdev.enable_msix_exact(&mut table)
                .map_err(|e| OpError::Errno(e.to_errno()))?;
            self.intx.set_ack(false);

            for (pirq, entry) in pirqs.iter_mut().zip(table.iter()) {
                match xen::pci::msi_pirq(pdev, entry.entry().into()) {
                    Some(p) => *pirq = p,
                    None => {
                        guest_msix_off(pdev);
                        return Err(OpError::Errno(EIO.to_errno()));
                    }
                }
            }
            Ok(())
        })
    }

    /// The guest turns MSI (`msix` false) or MSI-X (`msix` true) off.
    pub(crate) fn disable_msi(&self, msix: bool) -> Result<(), PciifError> {
        self.with_bound(|pdev, _| {
            if msix && pdev.msix_enabled() {
                guest_msix_off(pdev);
            } else if !msix && pdev.msi_enabled() {
                guest_msi_off(pdev);
            }
            self.intx.set_ack(true);
            Ok(())
        })
    }

    /// A guest read of its configuration space.
    pub(crate) fn conf_read(&self, offset: u16, size: AccessSize) -> Result<u32, PciifError> {
        self.with_engine(|config, hw| config.read(hw, offset, size))
    }

    /// A guest write to its configuration space.
    pub(crate) fn conf_write(
        &self,
        offset: u16,
        size: AccessSize,
        value: u32,
    ) -> Result<(), PciifError> {
        let explained = self.with_bound(|pdev, inner| -> Result<_, PciifError> {
            let mut hw = Hw::new(pdev, &mut inner.enabled_by_guest, &self.intx);
            let WriteOutcome::Dropped(denied) = inner.config.write(&mut hw, offset, size, value)?
            else {
                return Ok(None);
            };
            self.stats.lock().denied_write();
            if !denied.first {
                return Ok(None);
            }
            let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
            let Verdict::Print { dropped } = inner.explain_limit.check(now_ms) else {
                // Not marked: the next such write is explained once the limit allows.
                return Ok(None);
            };
            inner.config.mark_explained(&denied);
            // `with_bound` only runs for a device exported to a guest.
            let guest = inner.claim.as_ref().map_or(0, |c| c.domain.as_raw());
            Ok(Some((denied, guest, dropped)))
        })?;
        // Logged without the device's lock.
        if let Some((denied, guest, dropped)) = explained {
            dev_warn!(
                self.pdev.as_ref(),
                "{}\n",
                format_args!("{}", denied.explain(self.bdf, guest, dropped))
            );
        }
        Ok(())
    }

    /// Counts a request answered `err` after `ns` nanoseconds of service and `wait_ns` of
    /// waiting for it (debugfs statistics).
    pub(crate) fn record(&self, cmd: u32, err: i32, ns: u64, wait_ns: u64) {
        self.stats.lock().record(cmd, err, ns, wait_ns);
    }

    /// Counts a request served on the event channel's interrupt, answered `err` after `ns`
    /// nanoseconds: it waited for no hand-over.
    pub(crate) fn record_on_interrupt(&self, cmd: u32, err: i32, ns: u64) {
        let mut stats = self.stats.lock();
        stats.record(cmd, err, ns, 0);
        stats.on_interrupt(cmd);
    }

    /// Counts an answer the frontend was watching for, which was not signalled.
    pub(crate) fn record_watched(&self) {
        self.stats.lock().watched();
    }
}

/// What the MSI policy needs to know about the device.
fn irq_state(pdev: &pci::Device<Bound>) -> msi::IrqState {
    // The MSI-X table is reached through a memory BAR: decoding must be on, in the physical
    // function for a virtual function. The physical function belongs to another driver, so for
    // it the PCI core's enable count stands in for its `Memory Space` bit.
    let memory = if pdev.is_virtfn() {
        pdev.physfn().is_enabled()
    } else {
        pdev.read_config_u16(regs::COMMAND)
            .is_ok_and(|cmd| cmd & regs::CMD_MEMORY != 0)
    };
    msi::IrqState {
        msi: pdev.msi_enabled(),
        msix: pdev.msix_enabled(),
        memory,
    }
}

/// Turns off the MSI a guest enabled.
fn guest_msi_off(pdev: &pci::Device<Bound>) {
    // SAFETY: Only guests enable MSI on a device bound to this driver
    // (`Seized::enable_msi`), through Xen: this driver allocates no IRQ vectors and requests
    // no handler on MSI vectors (its own handler is on the INTx line, `IntxRegistration`).
    unsafe { pdev.disable_msi() };
}

/// Turns off the MSI-X a guest enabled.
fn guest_msix_off(pdev: &pci::Device<Bound>) {
    // SAFETY: As for `guest_msi_off`: only guests enable MSI-X here (`Seized::enable_msix`),
    // and no handler of this kernel is on its vectors.
    unsafe { pdev.disable_msix() };
}

/// Turns off the MSI or MSI-X a guest enabled.
fn disable_guest_interrupts(pdev: &pci::Device<Bound>) {
    if pdev.msix_enabled() {
        guest_msix_off(pdev);
    }
    if pdev.msi_enabled() {
        guest_msi_off(pdev);
    }
}

/// The PCI driver that holds seized devices.
pub(crate) struct Stub;

/// Per-device data of the PCI driver: the device's entry in the registry.
pub(crate) struct StubData<'bound> {
    seized: Arc<Seized>,
    /// Xen's protection of the device's MSI-X table, from the seize until the driver is
    /// unbound (after `unbind`), for a device with MSI-X.
    _msix: Option<MsixPreparation<'bound>>,
    /// The dom0 handler of the device's INTx line, freed when the driver is unbound (after
    /// `unbind`).
    _intx: Option<IntxRegistration<'bound>>,
    /// The device's statistics, `/sys/kernel/debug/pciback/<DDDD:BB:SS.F>`: reading prints
    /// them, writing anything clears them (see `common::stats`). None only if memory ran out
    /// (with debugfs off, or when debugfs fails, the file is an empty handle).
    _stats: Option<Pin<KBox<debugfs::File<Arc<Seized>>>>>,
}

/// Matches every device; `probe` decides. Built without a module device table on purpose: no
/// `pci:*` alias, so the module is never autoloaded.
static ANY_DEVICE: IdArray<pci::DeviceId, (), 1> =
    IdArray::new_without_index([pci::DeviceId::from_class(0, 0)]);

fn hw_err(e: HwError) -> Error {
    match e {
        HwError::DeviceNotFound => ENODEV,
        HwError::BadRegisterNumber => EINVAL,
        _ => EIO,
    }
}

impl Stub {
    /// Seizes `pdev` if it is in the seize list or its `driver_override` names this driver.
    ///
    /// Runs as the initialiser of the driver data, after the PCI core allocated room for it, so
    /// that nothing can fail after the device is listed in [`SEIZED`].
    ///
    /// On success the device is left enabled for [`Stub::finish_probe`].
    fn try_probe(pdev: &pci::Device<Core<'_>>) -> Result<Arc<Seized>> {
        let dev: &device::Device = pdev.as_ref();
        let bdf = Bdf::from_raw(
            pdev.domain_nr(),
            pdev.bus_number().into(),
            pdev.devfn().into(),
        )
        .ok_or(ENODEV)?;
        let overridden = pdev.driver_override() == pci::DriverOverride::Matches;
        if !overridden && !SEIZED.lock().wants(&bdf) {
            return Err(ENODEV);
        }

        // Enabled while it is set up, as by C: enabling routes the INTx line, so that the IRQ
        // the engine records (and the guest reads as its Interrupt Line, to bind as a pirq) is
        // the routed one, and Xen knows the line's trigger mode. Before any enable the IRQ is
        // only what the firmware left in the register. The command register is the engine's
        // from before the enable (which turns decoding on), as C builds its virtual one first.
        let command = pdev.read_config_u16(regs::COMMAND);
        let routed = pdev.enable_device();
        if let Err(e) = &routed {
            dev_warn!(
                dev,
                "cannot enable the device to route its interrupt: {:?}\n",
                e
            );
        }
        let result = Self::set_up(pdev, bdf, overridden, command.as_ref().ok().copied());
        if result.is_err() {
            if routed.is_ok() {
                pdev.disable_device();
            }
            // Disabling (or an enable that failed after turning decoding on) leaves decoding
            // as the enable set it: the device goes back to its next driver decoding as it
            // did. Only what the enable sets is put back; the rest (bus mastering, which the
            // disable turned off) stays as the PCI core knows it.
            if let Ok(command) = command {
                let set_by_enable = regs::CMD_IO | regs::CMD_MEMORY | regs::CMD_INTX_DISABLE;
                let restored = pdev.read_config_u16(regs::COMMAND).and_then(|now| {
                    pdev.write_config_u16(
                        regs::COMMAND,
                        (now & !set_by_enable) | (command & set_by_enable),
                    )
                });
                if let Err(e) = restored {
                    dev_warn!(dev, "cannot restore the Command register: {:?}\n", e);
                }
            }
        }
        result
    }

    /// Asks Xen to protect the device's MSI-X table before any guest can map its BARs, while the
    /// device is still enabled from [`Stub::try_probe`] (Xen reads the table's location through
    /// the memory decoding). A failure is reported, not fatal, as by C: Xen then refuses or
    /// kills a guest that enables MSI-X on the device: its guest drivers must do without.
    fn prepare_msix<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
    ) -> Option<MsixPreparation<'bound>> {
        MsixPreparation::prepare(pdev)
            .inspect_err(|e| dev_err!(pdev.as_ref(), "MSI-X preparation failed: {:?}\n", e))
            .ok()
            .flatten()
    }

    /// The end of a successful seize: registers the dom0 INTx handler while the line is routed
    /// (not for bridges, as C), then disables the device [`Stub::try_probe`] enabled.
    fn finish_probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        seized: &Seized,
    ) -> Option<IntxRegistration<'bound>> {
        let registration = if pdev.is_bridge() {
            None
        } else {
            intx::register(pdev, &seized.intx)
        };
        if pdev.is_enabled() {
            let _paused = seized.intx.pause();
            pdev.disable_device();
        }
        registration
    }

    /// The seize proper, with the device enabled (see [`Stub::try_probe`]).
    fn set_up(
        pdev: &pci::Device<Core<'_>>,
        bdf: Bdf,
        overridden: bool,
        command: Option<u16>,
    ) -> Result<Arc<Seized>> {
        let dev: &device::Device = pdev.as_ref();

        // The state to put back whenever a guest gives the device up.
        let golden = pci::SavedState::capture(pdev)
            .inspect_err(|e| dev_warn!(dev, "cannot save the configuration state: {:?}\n", e))
            .ok();
        let methods = pdev.reset_methods();
        let reset = pdev.reset_function_locked();
        match reset {
            Ok(()) => {}
            // Not fatal: many devices (QEMU's included) have no reset method. Reported, not
            // ignored. No bus reset here: the device core holds this device's lock, which the
            // bus reset takes; `do_flr` (which libxl writes before an assignment) does it.
            Err(e) if e == ENOTTY => dev_info!(dev, "no reset at seize time: {:?}\n", e),
            // Seized, but not exported until a reset succeeds.
            Err(e) => dev_err!(
                dev,
                "reset at seize time failed: {:?}: refused for assignment until a reset succeeds\n",
                e
            ),
        }
        let mut record = Record::new();
        record.note(When::Seize, function_outcome(&methods, &reset));
        if let Some(golden) = &golden {
            if let Err(e) = golden.restore(pdev) {
                dev_warn!(dev, "cannot restore the configuration state: {:?}\n", e);
            }
        }

        let intx = IntxState::new()?;
        let mut enabled = false;
        let mut hw = crate::conf::Hw::new(pdev, &mut enabled, &intx);
        let info = hw.device_info().map_err(hw_err)?;
        let mut config = VirtualConfig::new(&mut hw, &info).map_err(|e| {
            dev_err!(dev, "cannot virtualise the configuration space: {:?}\n", e);
            ENODEV
        })?;
        if let Some(command) = command {
            config.set_seized_command(command);
        }

        let pdev_ref: ARef<pci::Device> = (&***pdev).into();
        let seized = Arc::pin_init(
            try_pin_init!(Seized {
                bdf,
                pdev: pdev_ref,
                intx,
                inner <- new_mutex!(Inner {
                    bound: true,
                    config,
                    golden,
                    enabled_by_guest: false,
                    frozen_recovery: false,
                    claim: None,
                    explain_limit: RateLimit::new(),
                    resets: record,
                    bus_resetting: false,
                    bus_reset_pending: false,
                }),
                fast <- new_spinlock_irq!(None),
                created: Instant::now(),
                stats <- new_spinlock_irq!(Stats::new()),
                allow_dma_peers: AtomicFlag::new(false),
            }),
            GFP_KERNEL,
        )?;
        {
            let mut registry = SEIZED.lock();
            registry.devices.reserve(1, GFP_KERNEL)?;
            if overridden {
                // As for C: a device given through `driver_override` is listed in `slots`.
                registry.add(&BdfPattern::Exact(bdf))?;
            }
            // Cannot fail: room was reserved above.
            registry
                .devices
                .push_within_capacity(seized.clone())
                .map_err(|_| ENOMEM)?;
        }
        pdev.set_dev_assigned();
        dev_info!(
            dev,
            "seized{}\n",
            if overridden { " (driver_override)" } else { "" }
        );

        Ok(seized)
    }
}

impl pci::Driver for Stub {
    type IdInfo = ();
    type Data<'bound> = StubData<'bound>;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &ANY_DEVICE;
    const ATTRIBUTE_GROUPS: Option<&'static driver::attribute::Groups> =
        Some(&crate::sysfs::STUB_ATTRIBUTES);
    const ERROR_HANDLERS: Option<pci::ErrorHandlers<Self>> = Some(pci::ErrorHandlers::TABLE);

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        // Evaluated when the driver data is initialised, after its allocation: a failed
        // allocation leaves the device untouched and unlisted.
        try_init!(StubData {
            seized: Self::try_probe(pdev)?,
            _msix: Self::prepare_msix(pdev),
            _intx: Self::finish_probe(pdev, seized),
            _stats: stats_file(seized),
        }? Error)
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let dev: &device::Device = pdev.as_ref();
        let seized = &this.seized;
        SEIZED
            .lock()
            .devices
            .retain(|d| !core::ptr::eq::<Seized>(&**d, &**seized));

        let mut inner = seized.lock_inner();
        // The reset, the restore and the disable write the Command register: the INTx
        // handler's masking waits until the device is back as seized.
        let paused = seized.intx.pause();
        // Before the claim (and the domain owner) goes: Xen unmaps the guest's pirqs.
        disable_guest_interrupts(pdev);
        if let Some(claim) = inner.claim.take() {
            // The guest may still access the device's I/O resources: its backend loses the
            // device now, the toolstack has to take the mappings away.
            dev_warn!(
                dev,
                "unbound while exported to guest {}: the guest may still reach its I/O resources\n",
                claim.domain
            );
            drop(claim);
        }
        if let Err(e) = pdev.reset_function_locked() {
            dev_info!(dev, "no reset at release: {:?}\n", e);
        }
        if let Some(golden) = inner.golden.take() {
            if let Err(e) = golden.restore(pdev) {
                dev_warn!(dev, "cannot restore the configuration state: {:?}\n", e);
            }
        }
        if inner.enabled_by_guest {
            pdev.disable_device();
            inner.enabled_by_guest = false;
        }
        // As at release: a guest may set bus mastering without decoding, which the reset's
        // restore of the command register keeps when no state was saved at seize time (not a
        // bridge's).
        if !pdev.is_bridge() {
            pdev.clear_master();
        }
        inner.bound = false;
        drop(paused);
        drop(inner);

        pdev.clear_dev_assigned();
        dev_info!(dev, "released {}\n", format_args!("{}", seized.bdf));
    }
}

/// The PCI core's error recovery of a seized device: each step goes to the guest the device is
/// exported to (see [`crate::aer`]).
#[vtable]
impl pci::ErrorHandler for Stub {
    fn error_detected<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&StubData<'bound>>,
        state: pci::ChannelState,
    ) -> pci::ErsResult {
        let state = match state {
            pci::ChannelState::Normal => ChannelState::Normal,
            pci::ChannelState::Frozen => ChannelState::Frozen,
            pci::ChannelState::PermFailure => ChannelState::PermFailure,
        };
        this.seized
            .note_error_detected(matches!(state, ChannelState::Frozen));
        crate::aer::recover(pdev, &this.seized, AerStep::ErrorDetected(state))
    }

    fn mmio_enabled<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&StubData<'bound>>,
    ) -> pci::ErsResult {
        crate::aer::recover(pdev, &this.seized, AerStep::MmioEnabled)
    }

    fn slot_reset<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&StubData<'bound>>,
    ) -> pci::ErsResult {
        this.seized.restore_after_error_reset(pdev, false);
        crate::aer::recover(pdev, &this.seized, AerStep::SlotReset)
    }

    fn resume<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&StubData<'bound>>) {
        this.seized.restore_after_error_reset(pdev, true);
        crate::aer::recover(pdev, &this.seized, AerStep::Resume);
    }
}

/// The statistics file of a seized device (see [`StubData`]).
fn stats_file(seized: &Arc<Seized>) -> Option<Pin<KBox<debugfs::File<Arc<Seized>>>>> {
    let dir = SEIZED.lock().debugfs.clone()?;
    let name = CString::try_from_fmt(format_args!("{}", seized.bdf)).ok()?;
    let file: Result<Pin<KBox<debugfs::File<Arc<Seized>>>>> = KBox::pin_init(
        dir.read_write_callback_file(&name, seized.clone(), &print_stats, &clear_stats),
        GFP_KERNEL,
    );
    file.ok()
}

/// Reading a statistics file: one snapshot, taken under the lock.
fn print_stats(seized: &Arc<Seized>, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
    let stats = seized.stats.lock().clone();
    write!(f, "{stats}")
}

/// Writing a statistics file, whatever is written: clears every count.
fn clear_stats(seized: &Arc<Seized>, _input: &mut UserSliceReader) -> Result {
    *seized.stats.lock() = Stats::new();
    Ok(())
}

/// The guest holding a device when `do_flr` reset it, as the end of a log line: empty, or
/// " (guest D holds the device)".
struct HeldBy(Option<DomId>);

impl kernel::fmt::Display for HeldBy {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self.0 {
            Some(d) => write!(f, " (guest {} holds the device)", d.as_raw()),
            None => Ok(()),
        }
    }
}
