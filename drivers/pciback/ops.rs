// SPDX-License-Identifier: GPL-2.0

//! Serving the frontend's requests from the shared page.
//!
//! The page belongs to the guest, which may change it at any time: the request is copied out
//! once, as a whole, before anything looks at it (XSA-155), and validated on the copy with the
//! shared decoder. Only `err` and `value` are written back.

use kernel::{
    sync::atomic::Full,
    xen::grant::SharedMemory, //
};

use crate::{
    common::pciif::{
        PciifError,
        RawOp,
        Request,
        Response,
        OFFSET_FLAGS,
        OFFSET_OP,
        OFFSET_OP_ERR,
        OFFSET_OP_VALUE,
        RAW_OP_SIZE,
        XEN_PCIF_ACTIVE, //
    },
    topology::Topology,
};

/// Returns `true` if the frontend flagged a request as pending.
pub(crate) fn op_pending(page: &SharedMemory) -> bool {
    page.atomic_u32(OFFSET_FLAGS)
        .is_ok_and(|flags| flags.load(kernel::sync::atomic::Relaxed) & XEN_PCIF_ACTIVE != 0)
}

/// Answers `op` with the exported devices of `topo`.
fn answer(op: &RawOp, topo: &Topology) -> Response {
    // The device is looked up before the command is decoded, so that a request for a device
    // the guest does not have fails like in C (`dev_not_found` before `not_implemented`).
    let dev = match op.guest_addr() {
        Ok(addr) => topo.find(addr),
        Err(e) => return Response::rejected(op, e),
    };
    let Some(dev) = dev else {
        return Response::rejected(op, PciifError::DevNotFound);
    };
    let request = match Request::decode(op) {
        Ok(request) => request,
        Err(e) => return Response::rejected(op, e),
    };

    match request {
        Request::ConfRead { offset, size, .. } => Response::conf_read(dev.conf_read(offset, size)),
        Request::ConfWrite {
            offset,
            size,
            value,
            ..
        } => Response::conf_write(value, dev.conf_write(offset, size, value)),
        // Not in this pass: MSI and MSI-X need the explicit MSI abstractions and the pirq
        // plumbing. The guest falls back to INTx.
        Request::EnableMsi { .. }
        | Request::DisableMsi { .. }
        | Request::EnableMsix { .. }
        | Request::DisableMsix { .. } => Response::rejected(op, PciifError::NotImplemented),
    }
}

/// Serves the pending request, if any. Returns `true` if there was one.
pub(crate) fn serve_one(page: &SharedMemory, topo: &Topology) -> bool {
    let Ok(flags) = page.atomic_u32(OFFSET_FLAGS) else {
        return false;
    };
    if flags.load(kernel::sync::atomic::Acquire) & XEN_PCIF_ACTIVE == 0 {
        return false;
    }

    let mut bytes = [0u8; RAW_OP_SIZE];
    if page.copy_to_slice(OFFSET_OP, &mut bytes).is_err() {
        return false;
    }
    let op = RawOp::from_bytes(&bytes);
    let response = answer(&op, topo);

    // Offsets inside the one mapped page: cannot fail.
    let _ = page.write(OFFSET_OP_ERR, response.err);
    let _ = page.write(OFFSET_OP_VALUE, response.value);

    // Clear `_XEN_PCIF_active` atomically (the other bits belong to AER), after the answer:
    // the fully ordered exchange publishes the writes above first.
    let mut old = flags.load(kernel::sync::atomic::Relaxed);
    loop {
        match flags.cmpxchg(old, old & !XEN_PCIF_ACTIVE, Full) {
            Ok(_) => break,
            Err(now) => old = now,
        }
    }
    true
}
