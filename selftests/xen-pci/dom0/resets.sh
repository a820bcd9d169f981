# SPDX-License-Identifier: GPL-2.0
#
# Resets (the devices boot): QEMU's edu as the two functions of one slot behind
# a PCIe root port of its own (scripts/run-xen.sh, LAB_DEVICES, rp3). edu has
# no reset method of its own, and the kernel's bus method declines for a
# function that is not alone on its bus: only pciback's own secondary bus
# reset resets them, when both are pciback's and held by no guest. Checked
# with the resets attribute, do_flr and dom0's log, with paused guests whose
# backend nodes are written by hand (rust-claim's claim_guest): no frontend.

RS_ID=1234:11e8

# The edu functions behind the root port: function 1 of an edu, and its function 0.
rs_pair() {
	local f1
	f1=$(lspci -D -n -d "$RS_ID" | awk '$1 ~ /\.1$/ { print $1; exit }')
	[ -n "$f1" ] && echo "${f1%.1}.0 $f1"
}

# Field $2 (methods, seize, release, do_flr, assignable) of device $1's resets line.
rs_field() {
	sed -n "s/^$1 .* $2=\([^ ]*\).*/\1/p" "$PCIBACK_SYSFS/resets"
}
# Device $1's field $2 reads $3.
rs_is() {
	local got
	got=$(rs_field "$1" "$2")
	[ "$got" = "$3" ] && return 0
	echo "# $1: $2=$got, want $3 ($(grep "^$1 " "$PCIBACK_SYSFS/resets"))"
	return 1
}
# do_flr of device $1 answers "no reset method" (ENOTTY).
rs_doflr_enotty() {
	local out
	if out=$( (echo "$1" > "$PCIBACK_SYSFS/do_flr") 2>&1); then
		echo "# do_flr of $1 succeeded"
		return 1
	fi
	case "$out" in *"Inappropriate ioctl"*) return 0 ;; esac
	echo "# do_flr of $1: $out"
	return 1
}
# Both functions' config headers (64 bytes each), as dom0 reads them.
rs_headers() {
	local b
	for b in $E0 $E1; do od -A n -t x4 -N 64 "/sys/bus/pci/devices/$b/config"; done | tr -s ' \n' ' '
}
# The MSI message address register of device $1 (edu has MSI, not enabled
# here), which the kernel restores after a reset only when MSI is on: a value
# written there by hand reads 0 after a reset reached the function.
rs_msi_addr() {
	local cap
	cap=$(lspci -s "$1" -v | sed -n 's/.*Capabilities: \[\([0-9a-f]*\)\] MSI:.*/\1/p')
	[ -n "$cap" ] || { echo "# $1 has no MSI capability"; return 1; }
	if [ $# = 2 ]; then
		setpci -s "$1" "$(printf %x $((0x$cap + 4)))".l="$2"
	else
		setpci -s "$1" "$(printf %x $((0x$cap + 4)))".l
	fi
}
rs_msi_marked() { [ "$(rs_msi_addr "$E0")" = fee01000 ] && [ "$(rs_msi_addr "$E1")" = fee01000 ]; }
rs_msi_cleared() {
	local a0 a1
	a0=$(rs_msi_addr "$E0") a1=$(rs_msi_addr "$E1")
	[ "$a0" = 00000000 ] && [ "$a1" = 00000000 ] && return 0
	echo "# MSI address: $E0 $a0, $E1 $a1 (written: fee01000)"
	return 1
}
# The secondary bus reset ran exactly once since the last mark.
rs_one_sbr() {
	local n
	n=$(klog | grep -c "pciback [0-9a-f:.]*: secondary bus reset: 2 function(s) reset$")
	[ "$n" = 1 ] && return 0
	echo "# $n secondary bus resets of 2 functions logged, want 1:"
	klog | grep "pciback.*reset" | sed 's/^/# dom0: /'
	return 1
}

rs_cleanup() {
	local n
	for n in rsA rsB rsC; do
		xl domid "$n" >/dev/null 2>&1 && destroy_guest "$n" 2
	done
	for n in $E0 $E1; do iso_unbind "$n" >/dev/null 2>&1; done
	rmmod pciback 2>/dev/null
	return 0
}

group_rust_resets() {
	local pair before didB
	ktap_print_header
	ktap_set_plan 26
	trap rs_cleanup EXIT
	pair=$(rs_pair) || ktap_exit_fail_msg "no two-function edu behind a root port"
	E0=${pair% *} E1=${pair#* }
	echo "# function 0: $E0, function 1: $E1"
	ktap_test_result "rust backend loads" insmod "/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko"
	ktap_test_result "$E1 bound to pciback, $E0 to no driver" eval 'iso_bind "$E1" pciback && iso_unbind "$E0"'
	ktap_check "resets says $E1 has no reset method and is assignable" \
		eval 'rs_is "$E1" seize none && rs_is "$E1" assignable yes'

	# A function not seized stands in the way.
	klog_mark
	ktap_check "do_flr of $E1 finds no method (ENOTTY): $E0 is not pciback's" rs_doflr_enotty "$E1"
	ktap_check "resets says why: do_flr=none:not-seized-$E0" rs_is "$E1" do_flr "none:not-seized-$E0"
	ktap_check "dom0's log says why" \
		iso_logged "pciback $E1: no secondary bus reset: $E0 on the bus is not seized by pciback$"

	# Both pciback's, no guest: the bus is reset, each function's state restored.
	ktap_test_result "$E0 bound to pciback" iso_bind "$E0" pciback
	before=$(rs_headers)
	ktap_check "dom0 writes fee01000 to both functions' MSI address register" \
		eval 'rs_msi_addr "$E0" fee01000 && rs_msi_addr "$E1" fee01000 && rs_msi_marked'
	klog_mark
	ktap_check "do_flr of $E0 succeeds" eval 'echo "$E0" > "$PCIBACK_SYSFS/do_flr"'
	ktap_check "resets says both were reset by it: do_flr=sbr:ok" \
		eval 'rs_is "$E0" do_flr sbr:ok && rs_is "$E1" do_flr sbr:ok'
	ktap_check "dom0's log has one secondary bus reset of the 2 functions" rs_one_sbr
	ktap_check "the reset reached both functions: their MSI address reads 0" rs_msi_cleared
	ktap_check "both config headers read as before the reset (restored)" \
		eval '[ "$(rs_headers)" = "$before" ] || { echo "# before: $before"; echo "# after:  $(rs_headers)"; false; }'

	# A sibling held by a guest stands in the way; its release resets the bus.
	ISO_DEVS=$E0
	ktap_check "guest A gets $E0 ($E1 is pciback's, for no guest)" \
		eval 'iso_guest rsA && iso_exported rsA 0'
	klog_mark
	ktap_check "do_flr of $E1 finds no method: $E0 is held by A" rs_doflr_enotty "$E1"
	ktap_check "resets says why: do_flr=none:held-$E0-guest-<A>" \
		eval 'rs_is "$E1" do_flr "none:held-$E0-guest-$(claim_did rsA)"'
	klog_mark
	ktap_check "A goes: $E0 is released" claim_drop rsA
	ktap_check "the release reset the bus: release=sbr:ok on both" \
		eval 'wait_for 10 rs_is "$E0" release sbr:ok && rs_is "$E0" release sbr:ok && rs_is "$E1" release sbr:ok'
	ktap_check "dom0's log has one secondary bus reset of the 2 functions" rs_one_sbr

	# One guest with both: the first release finds its sibling held, the last resets.
	ISO_DEVS="$E0 $E1"
	ktap_check "guest B gets both functions" \
		eval 'iso_guest rsB && iso_exported rsB 0 && iso_exported rsB 1'
	didB=$(claim_did rsB)
	klog_mark
	ktap_check "B goes: both are released" claim_drop rsB
	ktap_check "the first release found its sibling held by B, the last reset the bus once" \
		eval 'wait_for 10 rs_one_sbr && rs_one_sbr &&
			iso_logged "pciback ($E0|$E1): no secondary bus reset: ($E0|$E1) on the bus is held by guest $didB$"'
	ktap_check "resets says both were reset at the release, both assignable" \
		eval 'rs_is "$E0" release sbr:ok && rs_is "$E1" release sbr:ok && rs_is "$E0" assignable yes && rs_is "$E1" assignable yes'
	ktap_check "both config headers read as at the seize" \
		eval '[ "$(rs_headers)" = "$before" ] || { echo "# before: $before"; echo "# after:  $(rs_headers)"; false; }'
	ISO_DEVS=$E1
	ktap_check "the next guest, C, gets $E1" eval 'iso_guest rsC && iso_exported rsC 0 && claim_drop rsC'
	ktap_check "rust backend unloads, the functions free again" \
		eval 'rmmod pciback && iso_unbind "$E0" && iso_unbind "$E1"'
	trap - EXIT
	ktap_finished
}
