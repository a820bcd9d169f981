# SPDX-License-Identifier: GPL-2.0
#
# Isolation before export (the devices boot): the lab's multi-function device
# (QEMU's virtio-net and virtio-rng as functions 0 and 1 of one slot, neither
# with ACS) has functions that reach each other by DMA without the IOMMU. The
# Rust backend exports a function only if the other one is with no dom0 driver
# and no other guest, unless the administrator allows it (allow_dma_peers).
# Checked on the xenstore protocol alone, with paused guests whose backend
# nodes are written by hand (rust-claim's claim_guest): no frontend runs.

ISO_F0_ID=1af4:1041
ISO_F1_ID=1af4:1044
# QEMU's pci-testdev, on the conventional bus behind the PCIe-to-PCI bridge
# (the first is a lab device: the 2nd and 3rd are used here).
ISO_TESTDEV_ID=1b36:0005
PCIBACK_SYSFS=/sys/bus/pci/drivers/pciback

iso_bdf() { lspci -D -n -d "$1" | awk -v n="${2:-1}" 'NR == n { print $1 }'; }

# A paused guest $1 given the devices of ISO_DEVS (rust-claim's claim_guest).
# shellcheck disable=SC2086
iso_guest() { claim_guest "$1" $ISO_DEVS; }

# Guest $1's backend went Initialised, with its device $2 exported (state-$2
# Initialised, a vdev-$2) or refused alone (state-$2 Closed, no vdev-$2).
iso_exported() {
	wait_for 20 be_state_is "$1" 3 && be_node_is "$1" "state-$2" 3 &&
		[ -n "$(be_node "$1" "vdev-$2")" ]
}
iso_refused() {
	wait_for 20 be_state_is "$1" 3 && be_node_is "$1" "state-$2" 6 || return 1
	[ -z "$(be_node "$1" "vdev-$2")" ] || { echo "# vdev-$2 is published"; return 1; }
}

iso_bind() {
	local bdf=$1 drv=$2
	[ -e "/sys/bus/pci/devices/$bdf/driver" ] &&
		echo "$bdf" > "/sys/bus/pci/devices/$bdf/driver/unbind"
	echo "$drv" > "/sys/bus/pci/devices/$bdf/driver_override" &&
		echo "$bdf" > /sys/bus/pci/drivers_probe 2>/dev/null
	[ "$(driver_of "$bdf")" = "$drv" ] || { echo "# $bdf is bound to '$(driver_of "$bdf")'"; return 1; }
}
iso_unbind() {
	[ -e "/sys/bus/pci/devices/$1/driver" ] &&
		echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"
	echo > "/sys/bus/pci/devices/$1/driver_override"
	[ -z "$(driver_of "$1")" ]
}
iso_logged() { klog | grep -E -- "$1" | sed 's/^/# dom0: /'; klog | grep -qE -- "$1"; }
iso_allowed_listed() { grep -qx "$1" "$PCIBACK_SYSFS/allow_dma_peers"; }
iso_allowed_none() { [ -z "$(cat "$PCIBACK_SYSFS/allow_dma_peers")" ]; }
iso_allow_bad() { ! echo "$1" > "$PCIBACK_SYSFS/allow_dma_peers" 2>/dev/null; }

iso_cleanup() {
	local n
	for n in isoA isoB isoC isoD isoE isoF isoG; do
		xl domid "$n" >/dev/null 2>&1 && destroy_guest "$n" 2
	done
	echo 1 > /sys/module/pciback/parameters/dma_isolation 2>/dev/null
	for n in $F0 $F1 $T2 $T3; do iso_unbind "$n" >/dev/null 2>&1; done
	rmmod pciback 2>/dev/null
	rmmod pci-stub 2>/dev/null
	return 0
}

group_rust_isolation() {
	ktap_print_header
	ktap_set_plan 31
	trap iso_cleanup EXIT
	F0=$(iso_bdf $ISO_F0_ID) F1=$(iso_bdf $ISO_F1_ID)
	T2=$(iso_bdf $ISO_TESTDEV_ID 2) T3=$(iso_bdf $ISO_TESTDEV_ID 3)
	[ -n "$F0" ] && [ -n "$F1" ] || ktap_exit_fail_msg "no multi-function lab device"
	[ -n "$T2" ] && [ -n "$T3" ] || ktap_exit_fail_msg "no test devices behind the bridge"
	echo "# function 0: $F0, function 1: $F1; behind the bridge: $T2, $T3"
	ktap_test_result "rust backend loads" insmod "/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko"
	ktap_test_result "pci-stub loads" modprobe pci-stub
	ktap_test_result "$F1 bound to pciback" iso_bind "$F1" pciback
	ktap_test_result "$F0 bound to pci-stub, a dom0 driver" iso_bind "$F0" pci-stub

	klog_mark
	ISO_DEVS=$F1
	ktap_test_result "guest A asks for $F1" iso_guest isoA
	ktap_check "A's backend refuses it alone (state-0 Closed, no vdev-0), still Initialised" iso_refused isoA 0
	ktap_check "A's backend says why in the store: $F0, used by a dom0 driver" \
		be_error isoA "$F0 (used by a dom0 driver)"
	ktap_check "dom0's log names the peer and the way out" \
		iso_logged "pciback $F1: not exported to domain [0-9]+: .*$F0 \\(used by a dom0 driver\\).*allow_dma_peers"
	ktap_test_result "A goes" claim_drop isoA

	ktap_check "allow_dma_peers lists nothing" iso_allowed_none
	ktap_check "allow_dma_peers refuses $F0, which pciback does not hold" iso_allow_bad "$F0"
	ktap_check "allow_dma_peers takes $F1" eval 'echo "$F1" > "$PCIBACK_SYSFS/allow_dma_peers"'
	ktap_check "allow_dma_peers lists $F1" iso_allowed_listed "$F1"
	klog_mark
	ktap_test_result "guest B asks for $F1" iso_guest isoB
	ktap_check "B's backend exports it (allowed)" iso_exported isoB 0
	ktap_check "dom0's log warns it is not isolated" \
		iso_logged "pciback $F1: exported to domain [0-9]+ although .*$F0"
	ktap_test_result "B goes" claim_drop isoB

	# The override ends with the binding; the sibling goes to pciback and a guest.
	ktap_check "$F1 bound to pciback again, the override gone" \
		eval 'iso_bind "$F1" pciback && iso_allowed_none'
	ktap_check "$F0 bound to pciback" iso_bind "$F0" pciback
	ISO_DEVS=$F0
	ktap_check "guest C gets $F0 ($F1 is with pciback, for no guest)" \
		eval 'iso_guest isoC && iso_exported isoC 0'
	ISO_DEVS=$F1
	ktap_check "guest D is refused $F1: $F0 is assigned to C" \
		eval 'iso_guest isoD && iso_refused isoD 0 && be_error isoD "$F0 (assigned to domain $(claim_did isoC))"'
	ktap_check "C and D go" eval 'claim_drop isoD && claim_drop isoC'
	ISO_DEVS="$F0 $F1"
	ktap_check "guest E gets both functions" \
		eval 'iso_guest isoE && iso_exported isoE 0 && iso_exported isoE 1'
	ktap_test_result "E goes" claim_drop isoE

	# Below a PCIe-to-PCI bridge (no ACS there): every device on the bus is a peer.
	ktap_check "$T2 bound to pci-stub, $T3 to pciback" \
		eval 'iso_bind "$T2" pci-stub && iso_bind "$T3" pciback'
	ISO_DEVS=$T3
	ktap_check "guest F is refused $T3: $T2 on its bus is used by a dom0 driver" \
		eval 'iso_guest isoF && iso_refused isoF 0 && be_error isoF "$T2 (used by a dom0 driver)"'
	ktap_test_result "F goes" claim_drop isoF
	klog_mark
	ktap_check "with dma_isolation=0, guest G gets $T3" \
		eval 'echo 0 > /sys/module/pciback/parameters/dma_isolation && iso_guest isoG && iso_exported isoG 0'
	ktap_check "dom0's log warns it is not isolated (dma_isolation=0)" \
		iso_logged "pciback $T3: exported to domain [0-9]+ although .*$T2.*dma_isolation=0"
	ktap_check "G goes, dma_isolation=1 again" \
		eval 'claim_drop isoG && echo 1 > /sys/module/pciback/parameters/dma_isolation'
	ktap_check "rust backend unloads, the functions free again" \
		eval 'rmmod pciback && iso_unbind "$F0" && iso_unbind "$F1" && iso_unbind "$T2" && iso_unbind "$T3" && rmmod pci-stub'
	trap - EXIT
	ktap_finished
}
