// SPDX-License-Identifier: GPL-2.0

//! The hypervisor's scheduler, as the calling vCPU may use it.
//!
//! A split driver that waits for its peer's answer in atomic context (a configuration access,
//! say) busy-waits on the shared page. Its vCPU then holds a physical CPU that the peer's vCPU,
//! woken by the request, may need to answer it: [`yield_vcpu`] offers it for a turn.
//! [`evtchn::Irq::poll`](super::evtchn::Irq::poll) blocks until the peer's event instead.
//!
//! C header: [`include/xen/interface/sched.h`](srctree/include/xen/interface/sched.h)

use crate::{
    bindings,
    ffi::c_int, //
};

/// Asks the hypervisor to run another runnable vCPU on the calling vCPU's physical CPU, if it
/// has one to run; the calling vCPU stays runnable. Does nothing outside Xen.
///
/// This is a hypercall, not a sleep: it may be used in atomic context, with interrupts disabled,
/// as one turn of a busy wait for another domain.
#[inline]
pub fn yield_vcpu() {
    if !super::is_domain() {
        return;
    }
    // The operation's number is a small constant of the hypercall interface.
    const YIELD: c_int = bindings::SCHEDOP_yield as c_int;
    // SAFETY: We run on Xen (checked above), whose hypercall entry the kernel sets up in early
    // boot. `SCHEDOP_yield` takes no argument (a null one is what the interface expects) and is
    // only a hint to the scheduler; its result carries nothing.
    unsafe { bindings::HYPERVISOR_sched_op(YIELD, core::ptr::null_mut()) };
}
