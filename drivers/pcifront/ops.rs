// SPDX-License-Identifier: GPL-2.0

//! The operation channel: one shared page and one event channel, over which each configuration
//! space access is one request and one answer (`pciif.h`, "`do_pci_op`").
//!
//! The PCI core calls the accessors with its `pci_lock` held and interrupts disabled, so a round
//! trip never sleeps: it fills the request in the shared page, sets `_XEN_PCIF_active`, signals
//! the backend and then polls the event channel (a hypercall that blocks the vCPU, not a sleep)
//! until the backend clears the bit again, within [`OP_TIMEOUT`].

use kernel::{
    device::Bound,
    irq::{
        self,
        IrqReturn, //
    },
    new_spinlock_irq,
    pci::PcibiosError,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Full,
            Relaxed, //
        },
        SpinLockIrq,
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    xen::{
        evtchn::{
            self,
            EoiMode,
            Irq,
            LocalPort,
            Registration, //
        },
        grant::{
            GrantRef,
            SharedRing, //
        },
        xenbus,
    },
};

use crate::common::pciif::{
    self,
    RawOp, //
};

/// How long a round trip may take before the backend is declared unresponsive (as the C driver).
const OP_TIMEOUT: Delta = Delta::from_secs(2);

/// The event channel's handler.
///
/// The backend signals the channel after each answer, and would signal AER requests on it; the
/// answers are collected by polling in [`OpChannel::round_trip`], and AER is not supported (the
/// frontend does not set `_XEN_PCIB_AERHANDLER`, so the backend never sends AER requests). The
/// handler has nothing to do.
pub(crate) struct Events;

impl evtchn::Handler for Events {
    fn handle(&self, _irq: &Irq) -> IrqReturn {
        IrqReturn::Handled
    }
}

/// What the lock of an [`OpChannel`] protects besides the request slot of the shared page.
struct SlotState {
    /// Whether a timed-out round trip was logged already (it is logged once per connection).
    timeout_logged: bool,
}

/// The shared page and the event channel of a connection, and the lock that gives one
/// configuration space access at a time the request slot.
///
/// The other domain may write the page at any time: it is only accessed through
/// [`kernel::xen::grant::SharedMemory`]'s volatile and atomic accessors, and answers are copied
/// out before use.
#[pin_data]
pub(crate) struct OpChannel<'a> {
    /// Held (with interrupts disabled) for the whole of each round trip.
    #[pin]
    slot: SpinLockIrq<SlotState>,
    /// The event channel allocated for the backend, bound to [`Events`]. Declared before
    /// `ring`, so unbound (and closed) before the page's grant is revoked.
    #[pin]
    events: Registration<'a, Events>,
    /// The page granted to the backend, starting with a `struct xen_pci_sharedinfo`.
    ring: SharedRing,
}

impl<'a> OpChannel<'a> {
    /// Sets up the channel: `ring` (granted, zeroed) and the event channel `port` (allocated for
    /// the backend), which is bound here.
    pub(crate) fn new(ring: SharedRing, port: LocalPort<'a>) -> impl PinInit<Self, Error> + 'a {
        // SAFETY: The registration is a field of the `OpChannel`, which is pinned, dropped in
        // place and never leaked (it lives in the device's driver data).
        let events = unsafe {
            Registration::new_local(
                port,
                EoiMode::Auto,
                irq::Flags::TRIGGER_NONE,
                c"pcifront",
                Ok(Events),
            )
        };

        try_pin_init!(Self {
            slot <- new_spinlock_irq!(SlotState { timeout_logged: false }, "pcifront_op_slot"),
            ring,
            events <- events,
        })
    }

    /// Allocates and grants the shared page to the other end of `dev`.
    ///
    /// The flags word starts zeroed: `_XEN_PCIB_AERHANDLER` stays clear, as AER is not supported.
    pub(crate) fn alloc_ring(dev: &xenbus::Device<Bound>) -> Result<SharedRing> {
        SharedRing::new(dev, 1, GFP_KERNEL)
    }

    /// Returns the grant reference of the shared page, to publish as `pci-op-ref`.
    pub(crate) fn grant_ref(ring: &SharedRing) -> Result<GrantRef> {
        ring.grant_refs().first().copied().ok_or(EINVAL)
    }

    /// Reads `size` bytes at `offset` of the configuration space of `domain:bus:devfn`.
    pub(crate) fn conf_read(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        offset: u16,
        size: u8,
    ) -> Result<u32, PcibiosError> {
        let mut op = RawOp::conf_read(domain, bus.into(), devfn.into(), offset.into(), size.into());
        self.round_trip(&mut op, 0);

        pciif::conf_read_result(op.err, op.value).map_err(pcibios_error)
    }

    /// Writes the low `size` bytes of `value` at `offset` of the configuration space of
    /// `domain:bus:devfn`.
    pub(crate) fn conf_write(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        offset: u16,
        size: u8,
        value: u32,
    ) -> Result<(), PcibiosError> {
        let mut op = RawOp::conf_write(
            domain,
            bus.into(),
            devfn.into(),
            offset.into(),
            size.into(),
            value,
        );
        self.round_trip(&mut op, 0);

        match pciif::pcibios_from_err(op.err) {
            pciif::PCIBIOS_SUCCESSFUL => Ok(()),
            code => Err(pcibios_error(code)),
        }
    }

    /// Asks the backend to enable MSI for `domain:bus:devfn`; returns the pirq it bound.
    pub(crate) fn enable_msi(&self, domain: u32, bus: u8, devfn: u8) -> Result<u32, i32> {
        let mut op = RawOp::enable_msi(domain, bus.into(), devfn.into());
        self.round_trip(&mut op, 0);

        pciif::enable_msi_result(op.err, op.value)
    }

    /// Asks the backend to enable MSI-X on the table entries `entries` of `domain:bus:devfn`;
    /// on success `pirqs[i]` is the pirq bound to `entries[i]`.
    pub(crate) fn enable_msix(
        &self,
        domain: u32,
        bus: u8,
        devfn: u8,
        entries: &[u16],
        pirqs: &mut [u32],
    ) -> Result<(), i32> {
        let mut op = RawOp::enable_msix(domain, bus.into(), devfn.into(), entries)
            .map_err(|e| e.code())?;
        self.round_trip(&mut op, entries.len());

        pciif::enable_msix_result(&op, entries.len(), pirqs)
    }

    /// Asks the backend to disable MSI (`msix` false) or MSI-X (`msix` true) for
    /// `domain:bus:devfn`; returns the backend's `err`.
    pub(crate) fn disable_msi(&self, domain: u32, bus: u8, devfn: u8, msix: bool) -> i32 {
        let mut op = if msix {
            RawOp::disable_msix(domain, bus.into(), devfn.into())
        } else {
            RawOp::disable_msi(domain, bus.into(), devfn.into())
        };
        self.round_trip(&mut op, 0);
        op.err
    }

    /// Sends `op` to the backend, with its first `msix` MSI-X entries, and waits for the
    /// answer: sets `op.err` and `op.value`, and the `vector` of those entries, from it.
    ///
    /// Runs in atomic context. A backend that does not answer within [`OP_TIMEOUT`] gets the
    /// request withdrawn (the active bit cleared), and the operation fails with
    /// `XEN_PCI_ERR_dev_not_found`.
    fn round_trip(&self, op: &mut RawOp, msix: usize) {
        // `err` goes out as in `op` (0 for a fresh request), so that a stale answer is never taken
        // for this one's; until an answer comes, the operation has failed.
        let words = op.request_words();
        let lost = pciif::PciifError::DevNotFound.code();
        (op.err, op.value) = (lost, 0);

        let mut slot = self.slot.lock();
        let irq = self.events.irq();

        let Ok(flags) = self.ring.atomic_u32(pciif::OFFSET_FLAGS) else {
            return;
        };

        // The offsets are inside the page and aligned (checked by the shared code's layout
        // assertions); a failure would only mean a request that is not sent.
        for (offset, word) in words {
            if self.ring.write(offset, word).is_err() {
                return;
            }
        }
        for (i, entry) in op.msix_entries.iter().enumerate().take(msix) {
            let (Some(v), Some(e)) = (pciif::msix_vector_offset(i), pciif::msix_entry_offset(i))
            else {
                return;
            };
            if self.ring.write(v, entry.vector).is_err() || self.ring.write(e, entry.entry).is_err()
            {
                return;
            }
        }

        // `Full` orders the request's stores before the flag is seen set (C's `wmb()`).
        set_bits(flags, pciif::XEN_PCIF_ACTIVE);
        irq.notify();

        let start = Instant::<Monotonic>::now();
        loop {
            // `Acquire` orders the reads of the answer after the flag is seen clear.
            if flags.load(Acquire) & pciif::XEN_PCIF_ACTIVE == 0 {
                break;
            }

            let elapsed = start.elapsed();
            if elapsed >= OP_TIMEOUT {
                clear_bits(flags, pciif::XEN_PCIF_ACTIVE);
                if !slot.timeout_logged {
                    slot.timeout_logged = true;
                    pr_err!("the PCI backend does not answer: configuration accesses fail\n");
                }
                return;
            }

            // Clear first, check again, then wait: an answer that comes in between leaves the
            // channel pending, and the poll returns at once.
            irq.clear_pending();
            if flags.load(Acquire) & pciif::XEN_PCIF_ACTIVE == 0 {
                break;
            }
            irq.poll(OP_TIMEOUT - elapsed);
        }

        for (i, entry) in op.msix_entries.iter_mut().enumerate().take(msix) {
            entry.vector = pciif::msix_vector_offset(i)
                .and_then(|offset| self.ring.read::<u16>(offset).ok())
                .unwrap_or(0);
        }
        let err = self.ring.read::<i32>(pciif::OFFSET_OP_ERR);
        let value = self.ring.read::<u32>(pciif::OFFSET_OP_VALUE);
        drop(slot);

        (op.err, op.value) = match (err, value) {
            (Ok(err), Ok(value)) => (err, value),
            _ => (lost, 0),
        };
    }
}

/// Atomically sets `bits` in the shared flags word, with full ordering.
fn set_bits(flags: &Atomic<u32>, bits: u32) {
    let mut old = flags.load(Relaxed);
    while let Err(cur) = flags.cmpxchg(old, old | bits, Full) {
        old = cur;
    }
}

/// Atomically clears `bits` in the shared flags word, with full ordering.
fn clear_bits(flags: &Atomic<u32>, bits: u32) {
    let mut old = flags.load(Relaxed);
    while let Err(cur) = flags.cmpxchg(old, old & !bits, Full) {
        old = cur;
    }
}

/// The [`PcibiosError`] of a failed access's PCIBIOS code.
///
/// A backend may answer with a raw errno, which the C frontend hands to the PCI core as it is;
/// the typed accessors cannot, so anything that is not a PCIBIOS error code becomes
/// [`PcibiosError::DeviceNotFound`].
fn pcibios_error(code: i32) -> PcibiosError {
    PcibiosError::from_raw(code).unwrap_or(PcibiosError::DeviceNotFound)
}
