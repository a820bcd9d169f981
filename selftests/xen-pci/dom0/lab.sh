# SPDX-License-Identifier: GPL-2.0
#
# Group "lab": checks of the test machine itself, not of the drivers. Vector
# register state must survive context switches in dom0 (dom0 programs crashed
# in glibc's AVX2 code under Xen 4.17 on QEMU TCG with some CPU models).

vecstate_ok() { ./vecstate 10 4 | sed 's/^/# /'; [ "${PIPESTATUS[0]}" = 0 ]; }

group_lab() {
	ktap_print_header
	ktap_set_plan 1
	ktap_test_result "vector registers survive context switches in dom0 ($(grep -m1 -o 'model name.*' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))" vecstate_ok
	ktap_finished
}
