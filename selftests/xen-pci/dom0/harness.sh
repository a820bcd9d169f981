# SPDX-License-Identifier: GPL-2.0
#
# The harness's own checks (scripts/harness-test.sh): groups that are broken on
# purpose, each in a way the runner must see. Never in the default plan.

# Prints only passing results, then exits 1: the verdict must fail the group.
# It leaves the C backend loaded, as a failed passthrough group may: the
# runner must unload it before the next group (harness-clean).
group_harness_exit1() {
	ktap_print_header
	ktap_set_plan 2
	ktap_check "harness: the C backend loads" modprobe xen-pciback
	ktap_test_pass "harness: another result that passes"
	exit 1
}

# Runs right after harness-exit1: the module that group left is gone.
no_backend_module() { ! grep -qE '^(xen_pciback|pciback) ' /proc/modules; }
group_harness_clean() {
	ktap_print_header
	ktap_set_plan 1
	ktap_check "harness: the failed group's backend module was unloaded" no_backend_module
	ktap_finished
}

# Outlives its deadline (groups.conf): dom0 must kill it and its children.
group_harness_sleep() {
	ktap_print_header
	ktap_set_plan 2
	ktap_test_pass "harness: a result before the sleep"
	sleep 100000 &
	# timeout(1) puts itself in a process group of its own.
	timeout 100000 sleep 100001 &
	sleep 100000
	ktap_test_pass "harness: never reached"
	ktap_finished
}

# Runs after the killed group: it must run, pass, and find no sleeper left.
no_sleeper() {
	! busybox pgrep -f "sleep 10000[0]" >/dev/null && ! busybox pgrep -f "sleep 10000[1]" >/dev/null
}
group_harness_after() {
	ktap_print_header
	ktap_set_plan 1
	ktap_check "harness: the killed group left no process behind" no_sleeper
	ktap_finished
}

# Passes, but leaves a WARNING in the kernel log: the runner's scan must fail it.
group_harness_warn() {
	ktap_print_header
	ktap_set_plan 1
	ktap_test_pass "harness: a result that passes"
	echo "WARNING: CPU: 0 PID: $$ at harness self-test (not a real warning)" > /dev/kmsg
	ktap_finished
}

# Reports fewer results than its plan.
group_harness_short() {
	ktap_print_header
	ktap_set_plan 3
	ktap_test_pass "harness: one of three"
	ktap_test_pass "harness: two of three"
	exit 0
}
