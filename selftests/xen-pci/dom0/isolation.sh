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
PCIBACK_SYSFS=/sys/bus/pci/drivers/pciback

iso_bdf() { lspci -D -n -d "$1" | awk 'NR == 1 { print $1 }'; }

# A paused guest $1 given the devices $2... (dev-0, dev-1, ...).
iso_guest() {
	local name=$1 did be fe i=0 b
	shift
	printf 'name = "%s"\ntype = "pv"\nkernel = "/xenpci/vmlinuz-domU"\nmemory = 64\n' "$name" > "/tmp/$name.cfg"
	timeout 60 xl create -p "/tmp/$name.cfg" >/dev/null || return 1
	did=$(xl domid "$name") || return 1
	be=/local/domain/0/backend/pci/$did/0
	fe=/local/domain/$did/device/pci/0
	xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 || return 1
	set --
	for b in $ISO_DEVS; do
		set -- "$@" "$be/dev-$i" "$b" "$be/state-$i" 1
		i=$((i + 1))
	done
	xenstore-write "$be/frontend" "$fe" "$be/frontend-id" "$did" "$be/online" 1 "$be/state" 1 \
		"$be/domain" "$name" "$@" "$be/num_devs" "$i" || return 1
	xenstore-chmod -r "$be" n0 "r$did" && xenstore-chmod -r "$fe" "n$did" r0
}

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
	for n in isoA isoB isoC isoD isoE; do
		xl domid "$n" >/dev/null 2>&1 && timeout 30 xl destroy "$n"
	done
	for n in $F0 $F1; do iso_unbind "$n" >/dev/null 2>&1; done
	rmmod pciback 2>/dev/null
	rmmod pci-stub 2>/dev/null
	return 0
}

group_rust_isolation() {
	ktap_print_header
	ktap_set_plan 25
	trap iso_cleanup EXIT
	F0=$(iso_bdf $ISO_F0_ID) F1=$(iso_bdf $ISO_F1_ID)
	[ -n "$F0" ] && [ -n "$F1" ] || ktap_exit_fail_msg "no multi-function lab device"
	echo "# function 0: $F0, function 1: $F1"
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
	ktap_check "rust backend unloads, both functions free again" \
		eval 'rmmod pciback && iso_unbind "$F0" && iso_unbind "$F1" && rmmod pci-stub'
	trap - EXIT
	ktap_finished
}
