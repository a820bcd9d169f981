# SPDX-License-Identifier: GPL-2.0
#
# The Rust pciback built in, as distributions ship it (KCONFIG=builtin:
# scripts/xenpci-builtin.config), seizing at boot the devices that dom0's
# command line names with pciback.hide=. The boot's devices include QEMU's
# virtio pair at 00:05.0 and 00:05.1, for which that kernel has a built-in
# driver, virtio-pci, linked before pciback: pciback registers at fs_initcall
# (module! initcall: fs) so that it meets them first. The two boots differ
# only in dom0's command line (scripts/run-xen.sh, builtin_dom0_args):
#   builtin      pciback.hide=(0000:00:05.0)(0000:00:05.1)
#   builtin-bad  pciback.hide=(0000:00:05.0)(00:05.1     (no closing parenthesis)

VIRTIO_FNS="0000:00:05.0 0000:00:05.1"

# pciback is built in: no module file, a directory in /sys/module without
# initstate (which only loadable modules have), and its driver registered.
pciback_builtin() {
	[ ! -e "/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko" ] &&
		[ -d /sys/module/pciback ] && [ ! -e /sys/module/pciback/initstate ] &&
		[ -d /sys/bus/pci/drivers/pciback ] && [ -d /sys/bus/xen-backend/drivers/xen-pciback ]
}

# Each of the virtio functions is bound to driver $1.
virtio_bound_to() {
	local f drv ok=0
	for f in $VIRTIO_FNS; do
		drv=$(driver_of "$f")
		echo "# $f: driver '${drv:-none}'"
		[ "$drv" = "$1" ] || ok=1
	done
	return $ok
}

# dom0's kernel log has a line matching the extended regex $1.
boot_logged() { dmesg | grep -E 'pciback' | grep -qE -- "$1" || { echo "# no log line matching: $1"; return 1; }; }

group_builtin_hide() {
	ktap_print_header
	ktap_set_plan 5
	ktap_check "pciback is built in and both its drivers are registered" pciback_builtin
	ktap_check "hide= from the command line: $(cat /sys/module/pciback/parameters/hide)" \
		test "$(cat /sys/module/pciback/parameters/hide)" = "(0000:00:05.0)(0000:00:05.1)"
	ktap_check "both virtio functions were seized at boot, not bound by virtio-pci" virtio_bound_to pciback
	ktap_check "the seize was logged: 2 function(s) to seize from hide=" \
		boot_logged '2 function\(s\) to seize from hide='
	ktap_check "slots lists both functions" \
		test "$(grep -c '^0000:00:05\.[01]$' /sys/bus/pci/drivers/pciback/slots)" = 2
	ktap_finished
}

group_builtin_badhide() {
	ktap_print_header
	ktap_set_plan 4
	ktap_check "pciback is built in and both its drivers are registered" pciback_builtin
	ktap_check "the malformed hide= was logged with its reason" \
		boot_logged 'hide=: missing .\). at "\(00:05\.1"'
	ktap_check "and that nothing is seized at boot" boot_logged 'hide=: ignored: no device is seized at boot'
	ktap_check "both virtio functions went to virtio-pci" virtio_bound_to virtio-pci
	ktap_finished
}
