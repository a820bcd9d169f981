// SPDX-License-Identifier: GPL-2.0

//! Serving the frontend's requests from the shared page.
//!
//! The page belongs to the guest, which may change it at any time: the request is copied out
//! once, as a whole, before anything looks at it (XSA-155), and validated on the copy with the
//! shared decoder. Only `err` and `value` (and, for `enable_msix`, the entries' `vector`) are
//! written back. A request is served either in process context ([`serve_one`]) or, if it is a
//! configuration read or a plain configuration write of the device the guest used last, on
//! the event channel's interrupt ([`serve_on_interrupt`]); a request the interrupt declines is
//! copied again by the work item, and only the copy that serves it counts.
//!
//! An answer is signalled to the frontend unless the frontend was watching for it when the
//! answer's clear of `_XEN_PCIF_active` happened (`_XEN_PCIF_watching`, this project's
//! extension: [`pciif::answer_needs_event`]); each function says which in its result.

use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Full, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    xen::grant::SharedMemory, //
};

use crate::{
    common::{
        bdf::Bdf,
        fastpath::{
            self,
            FastOp, //
        },
        msi,
        pciif::{
            self,
            msix_vector_offset,
            Command,
            OpError,
            PciifError,
            RawOp,
            Request,
            Response,
            OFFSET_FLAGS,
            OFFSET_OP,
            OFFSET_OP_ERR,
            OFFSET_OP_VALUE,
            RAW_OP_HEADER_SIZE,
            RAW_OP_SIZE,
            SH_INFO_MAX_VEC,
            XEN_PCIF_ACTIVE, //
        },
    },
    stub::Seized,
    topology::Topology,
};

/// Returns `true` if the frontend flagged a request as pending.
pub(crate) fn op_pending(page: &SharedMemory) -> bool {
    page.atomic_u32(OFFSET_FLAGS)
        .is_ok_and(|flags| flags.load(kernel::sync::atomic::Relaxed) & XEN_PCIF_ACTIVE != 0)
}

/// An answer: `err` and `value`, and for a successful `enable_msix` the pirqs to put in the
/// first `nvec` entries.
struct Reply {
    response: Response,
    msix: Option<([u16; SH_INFO_MAX_VEC], usize)>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            response,
            msix: None,
        }
    }
}

/// Enables MSI-X for the guest: the answer with the pirqs, or the error.
fn enable_msix(dev: &Seized, entries: &[u16]) -> Result<[u16; SH_INFO_MAX_VEC], OpError> {
    let mut pirqs = [0u32; SH_INFO_MAX_VEC];
    let pirqs = pirqs.get_mut(..entries.len()).ok_or(OpError::EINVAL)?;
    dev.enable_msix(entries, pirqs)?;
    msi::msix_vectors(pirqs).inspect_err(|_| {
        // A pirq the wire cannot carry: the guest gets nothing it cannot use.
        let _ = dev.disable_msi(true);
    })
}

/// Answers `op` with the exported devices of `topo`, and counts it in the statistics of the
/// device it is for (a request for no device of the guest's is not counted), with the
/// `wait_ns` nanoseconds it waited for service.
fn answer(op: &RawOp, topo: &Topology, wait_ns: u64) -> Reply {
    let dev = match device(op, topo) {
        Ok(dev) => dev,
        Err(e) => return Response::rejected(op, e).into(),
    };
    let start = Instant::<Monotonic>::now();
    let reply = dispatch(op, dev);
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    dev.record(op.cmd, reply.response.err, ns, wait_ns);
    reply
}

/// Answers `op` for `dev`.
fn dispatch(op: &RawOp, dev: &Seized) -> Reply {
    let request = match Request::decode(op) {
        Ok(request) => request,
        Err(e) => return Response::rejected(op, e).into(),
    };

    match request {
        Request::ConfRead { offset, size, .. } => {
            Response::conf_read(dev.conf_read(offset, size)).into()
        }
        Request::ConfWrite {
            offset,
            size,
            value,
            ..
        } => Response::conf_write(value, dev.conf_write(offset, size, value)).into(),
        Request::EnableMsi { .. } => {
            let r = dev.enable_msi();
            if let Err(e) = r {
                dev_dbg!(
                    dev.pdev().as_ref(),
                    "enable_msi refused: {}\n",
                    format_args!("{e}")
                );
            }
            Response::enable_msi(r).into()
        }
        Request::EnableMsix { nvec, entries, .. } => {
            let entries = entries.get(..nvec).unwrap_or(&[]);
            match enable_msix(dev, entries) {
                Ok(pirqs) => Reply {
                    response: Response::enable_msix(op.value, Ok::<(), OpError>(())),
                    msix: Some((pirqs, nvec)),
                },
                Err(e) => {
                    dev_dbg!(
                        dev.pdev().as_ref(),
                        "enable_msix refused: {}\n",
                        format_args!("{e}")
                    );
                    Response::enable_msix(op.value, Err(e)).into()
                }
            }
        }
        // The INTx pirq C puts in `value` is left 0: Linux frontends ignore it, and finding it
        // safely would need the dom0 IRQ's pirq binding, which only exists once dom0 enabled INTx.
        Request::DisableMsi { .. } | Request::DisableMsix { .. } => {
            let msix = matches!(request, Request::DisableMsix { .. });
            match dev.disable_msi(msix) {
                Ok(()) => Response::disabled(0).into(),
                Err(e) => Response::rejected(op, e).into(),
            }
        }
    }
}

/// The exported device `op` is addressed to.
fn device<'a>(op: &RawOp, topo: &'a Topology) -> Result<&'a Seized, PciifError> {
    // The device is looked up before the command is decoded, so that a request for a device
    // the guest does not have fails like in C (`dev_not_found` before `not_implemented`).
    let addr = op.guest_addr()?;
    topo.find(addr).map(|d| &**d).ok_or(PciifError::DevNotFound)
}

/// A request served: whether the frontend must be signalled, and for the `verbose_request`
/// log the copy of the request and the answer.
pub(crate) struct Served {
    op: RawOp,
    response: Response,
    signal: Signal,
}

/// Whether an answer must be signalled to the frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The frontend waits for the event (every C frontend, and a Rust one that polls).
    Needed,
    /// The frontend was watching `_XEN_PCIF_active` when it was cleared.
    Watched,
}

/// Writes `response` into the page and clears `_XEN_PCIF_active` after it, in one atomic step
/// whatever the guest writes meanwhile (the other bits belong to AER and to the frontend's
/// watch): the fully ordered operation publishes the writes first. Returns whether the answer
/// must be signalled, from the flags that step found if the frontend offered
/// `feature-quiet-answers` (`quiet`), else always.
fn publish(page: &SharedMemory, flags: &Atomic<u32>, response: &Response, quiet: bool) -> Signal {
    // Offsets inside the one mapped page: cannot fail.
    let _ = page.write(OFFSET_OP_ERR, response.err);
    let _ = page.write(OFFSET_OP_VALUE, response.value);
    let old = flags.fetch_and(!XEN_PCIF_ACTIVE, Full);
    if !quiet || pciif::answer_needs_event(old) {
        Signal::Needed
    } else {
        Signal::Watched
    }
}

impl Served {
    /// Whether the answer must be signalled.
    pub(crate) fn signal(&self) -> Signal {
        self.signal
    }

    /// The guest address the request was for, if it names one.
    pub(crate) fn guest(&self) -> Option<Bdf> {
        self.op.guest_addr().ok()
    }

    /// Logs the request and its answer, one line (the caller rate-limits).
    pub(crate) fn log(&self, domid: u16, dropped: u32) {
        let op = &self.op;
        let cmd = Command::try_from(op.cmd).map_or("unknown", Command::name);
        if dropped > 0 {
            pr_info!(
                "verbose_request: guest {}: {} lines dropped (rate limit)\n",
                domid,
                dropped
            );
        }
        pr_info!(
            "guest {} {:04x}:{:02x}:{:02x}.{:x} {} (cmd {}) offset {:#x} size {} value {:#x}: err {} value {:#x}\n",
            domid,
            op.domain,
            op.bus,
            (op.devfn >> 3) & 0x1f,
            op.devfn & 7,
            cmd,
            op.cmd,
            op.offset,
            op.size,
            op.value,
            self.response.err,
            self.response.value
        );
    }
}

/// Serves the pending request, if any, and returns it with its answer; `wait_ns` is how long
/// it waited since it was announced (statistics), `quiet` whether the frontend offered
/// `feature-quiet-answers`.
pub(crate) fn serve_one(
    page: &SharedMemory,
    topo: &Topology,
    wait_ns: u64,
    quiet: bool,
) -> Option<Served> {
    let flags = page.atomic_u32(OFFSET_FLAGS).ok()?;
    if flags.load(kernel::sync::atomic::Acquire) & XEN_PCIF_ACTIVE == 0 {
        return None;
    }

    let mut bytes = [0u8; RAW_OP_SIZE];
    page.copy_to_slice(OFFSET_OP, &mut bytes).ok()?;
    let op = RawOp::from_bytes(&bytes);
    let Reply { response, msix } = answer(&op, topo, wait_ns);

    // Offsets inside the one mapped page: cannot fail.
    if let Some((pirqs, nvec)) = msix {
        for (i, &pirq) in pirqs.iter().enumerate().take(nvec) {
            if let Some(offset) = msix_vector_offset(i) {
                let _ = page.write(offset, pirq);
            }
        }
    }
    let signal = publish(page, flags, &response, quiet);
    if signal == Signal::Watched {
        // A request for no device of the guest's is counted nowhere, as in `answer`.
        if let Ok(dev) = device(&op, topo) {
            dev.record_watched();
        }
    }
    Some(Served {
        op,
        response,
        signal,
    })
}

/// Serves the pending request on the event channel's interrupt if it is a configuration read,
/// or a plain configuration write, of `dev`, exported to the guest at `guest`, and the
/// device's engine is available there ([`Seized::conf_read_on_interrupt`],
/// [`Seized::conf_write_on_interrupt`]); returns whether the answer must be signalled if it
/// did (`quiet` as for [`serve_one`]), `None` if not. Takes no sleeping lock; the caller
/// signals the guest.
pub(crate) fn serve_on_interrupt(
    page: &SharedMemory,
    guest: Bdf,
    dev: &Seized,
    quiet: bool,
) -> Option<Signal> {
    let flags = page.atomic_u32(OFFSET_FLAGS).ok()?;
    if flags.load(kernel::sync::atomic::Acquire) & XEN_PCIF_ACTIVE == 0 {
        return None;
    }

    // The fields a configuration request uses, once (the MSI-X entries stay zero).
    let mut bytes = [0u8; RAW_OP_SIZE];
    let header = bytes.get_mut(..RAW_OP_HEADER_SIZE)?;
    page.copy_to_slice(OFFSET_OP, header).ok()?;
    let op = RawOp::from_bytes(&bytes);
    let fast = fastpath::fast_op(&op)?;
    if op.guest_addr().ok() != Some(guest) {
        return None;
    }
    let start = Instant::<Monotonic>::now();
    let response = match fast {
        FastOp::Read { offset, size } => {
            Response::conf_read(dev.conf_read_on_interrupt(offset, size)?)
        }
        FastOp::Write {
            offset,
            size,
            value,
        } => Response::conf_write(value, dev.conf_write_on_interrupt(offset, size, value)?),
    };
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    dev.record_on_interrupt(op.cmd, response.err, ns);

    let signal = publish(page, flags, &response, quiet);
    if signal == Signal::Watched {
        dev.record_watched();
    }
    Some(signal)
}
