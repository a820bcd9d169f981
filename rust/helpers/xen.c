// SPDX-License-Identifier: GPL-2.0

#if IS_ENABLED(CONFIG_RUST_XEN_ABSTRACTIONS)

#include <linux/preempt.h>
#include <xen/platform_pci.h>
#include <xen/xen.h>

__rust_helper bool rust_helper_xen_domain(void)
{
	return xen_domain();
}

__rust_helper bool rust_helper_xen_pv_domain(void)
{
	return xen_pv_domain();
}

__rust_helper bool rust_helper_xen_hvm_domain(void)
{
	return xen_hvm_domain();
}

__rust_helper bool rust_helper_xen_initial_domain(void)
{
	return xen_initial_domain();
}

#ifndef CONFIG_X86
/* On x86 this is an exported function; elsewhere it is static inline. */
__rust_helper bool rust_helper_xen_has_pv_devices(void)
{
	return xen_has_pv_devices();
}
#endif

#ifdef CONFIG_X86
#include <asm/pvclock.h>
#include <asm/xen/hypercall.h>
#include <xen/xen-ops.h>

/* On x86 this is static inline; elsewhere it is an exported function. */
__rust_helper int rust_helper_HYPERVISOR_event_channel_op(int cmd, void *arg)
{
	return HYPERVISOR_event_channel_op(cmd, arg);
}

/* On x86 this is static inline; elsewhere it is an exported function. */
__rust_helper int rust_helper_HYPERVISOR_physdev_op(int cmd, void *arg)
{
	return HYPERVISOR_physdev_op(cmd, arg);
}

/* On x86 this is static inline; elsewhere it is an exported function. */
__rust_helper int rust_helper_HYPERVISOR_sched_op(int cmd, void *arg)
{
	return HYPERVISOR_sched_op(cmd, arg);
}

/*
 * Xen system time of the calling vCPU, in nanoseconds since the hypervisor
 * booted: the time base of SCHEDOP_poll timeouts. The per-vCPU time info is
 * read with preemption off so that it cannot change under our feet.
 */
__rust_helper u64 rust_helper_xen_system_time_ns(void)
{
	u64 now;

	preempt_disable_notrace();
	now = pvclock_clocksource_read(&__this_cpu_read(xen_vcpu)->time);
	preempt_enable_notrace();

	return now;
}
#endif

#endif /* CONFIG_RUST_XEN_ABSTRACTIONS */
