# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the dom0 and domU test scripts (bash and busybox sh).

# Value of xenpci.NAME=VALUE on the kernel command line (the last one), or $2.
# Builtins only: it is called often, and a process costs about 0.1 s of CPU
# in a PV domain under TCG (see nap below).
read -r XENPCI_CMDLINE < /proc/cmdline
cmdline_arg() {
	local v=
	case " $XENPCI_CMDLINE " in
	*" xenpci.$1="*)
		v=" $XENPCI_CMDLINE "
		v=${v##*" xenpci.$1="}
		v=${v%%" "*} ;;
	esac
	echo "${v:-$2}"
}

uptime_s() { local u _; read -r u _ < /proc/uptime; echo "$u"; }

# nap SECS: sleeps without a fork. In a PV domain under TCG every fork and
# exec costs about 0.1 s of CPU (each page-table update is a hypercall), so a
# polling loop that runs sleep(1) keeps a vCPU busy that the guest and the
# backend need. The read waits on a FIFO this shell holds open for writing
# too and nobody writes to (its children inherit descriptor 9 and leave it
# alone; the FIFO's name is gone at once), so no data and no end of file ever
# come: it returns at its timeout. Opened when this file is sourced.
nap_open() {
	local f=/tmp/.xenpci-nap.$$
	NAP_FD=
	rm -f "$f"
	mkfifo "$f" 2>/dev/null && exec 9<>"$f" && NAP_FD=9
	rm -f "$f"
}
nap() {
	if [ -n "$NAP_FD" ]; then
		# Ends at the timeout (status 1 in busybox, above 128 in bash).
		read -r -t "$1" _ <&9
	else
		sleep "$1"
	fi
	return 0
}
nap_open

# Poll a command until it succeeds or after $1 * 10 polls, 0.1 s apart (at
# least $1 seconds).
wait_for() {
	local secs=$1 i=0
	shift
	while [ "$i" -lt $((secs * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		nap 0.1
		i=$((i + 1))
	done
	return 1
}

# ktap_test_result with the command's arguments passed on intact (the kselftest
# helper splits them on spaces and expands globs).
ktap_check() {
	local desc=$1
	shift
	if "$@"; then ktap_test_pass "$desc"; else ktap_test_fail "$desc"; fi
}

# The kernel log from here on: klog_mark writes a unique line into it, klog
# prints what came after the last mark. (Tests never clear the log with
# `dmesg -C`: the runner scans it for splats after every group.)
klog_mark() {
	KLOG_MARK="xenpci-klog-mark $(cut -d' ' -f1 /proc/uptime) $$"
	echo "$KLOG_MARK" > /dev/kmsg
}
klog() {
	if [ -n "${KLOG_MARK:-}" ]; then
		dmesg | sed -n "/$KLOG_MARK/,\$p"
	else
		dmesg
	fi
}

# The number of results the guest reports in phase $1 (1: device checks, 2:
# after the detach) of a passthrough group, from the flags dom0 gives it:
#   guest_plan PHASE FRONT IRQ PROTECT DETACH BENCH
# dom0 declares its plan from this before the guest starts; the guest's tests
# (domU/device.sh, domU/irq.sh) must report exactly this many.
guest_plan() {
	case $1 in
	1)
		# Frontend loads, device appears, 8 identity and header checks.
		n=10
		[ "$3" = 1 ] && n=$((n + 5))	# the other frontend refused; INTx and MSI, each with the unload
		[ "$4" = 1 ] && n=$((n + 3))	# protected writes and two read-backs
		[ "$2" = rust ] && n=$((n + 3))	# the frontend's statistics; its quiet answers; no upcall
		[ "$2" = rust ] && [ "$5" != 1 ] && [ "${6:-0}" = 0 ] && n=$((n + 1))	# unbind
		;;
	2)
		n=2
		[ "$2" = rust ] && n=$((n + 1))	# the frontend unloads
		;;
	*) n=0 ;;
	esac
	echo "$n"
}

# The number of results of the guest's checks of the lab devices
# (domU/devices.sh, domU_multi_tests), for dom0's plan (dom0/devices.sh):
#   multi_plan FRONT
# (with the Rust frontend, one more: its upcalls).
multi_plan() { if [ "$1" = rust ]; then echo 13; else echo 12; fi; }
# ... of its PCIe AER checks (domU_aer_tests, phase 2 of the virtual-bus groups)
guest_aer_plan() { echo 4; }
# ... and of its hot-attach checks (domU_hotplug_tests, phase 3) for $1 cycles.
guest_hotplug_plan() { echo $((2 * $1)); }
# ... and of its checks of the virtual bus's 33rd slot (domU_slots_tests).
guest_slots_plan() { echo 5; }
