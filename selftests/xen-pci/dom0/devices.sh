# SPDX-License-Identifier: GPL-2.0
#
# The devices boot (groups.conf): besides edu, QEMU gives dom0 a NIC with
# MSI-X and AER (e1000e) behind a PCIe root port, a multi-function device (two
# virtio functions in one slot), an NVMe controller behind another root
# port, and 29 conventional test devices (pci-testdev) behind a PCIe-to-PCI
# bridge, the first of them a lab device (scripts/run-xen.sh, LAB_DEVICES). dom0 has no driver for any of them
# (its PCIe port driver has the root ports). Each group gives one guest every
# lab device at once, through xl, and the guest (domU/devices.sh) checks the
# addresses it sees, publishes its view of their config spaces, and does real
# I/O with its own drivers. In the virtual-bus groups (the C pair's only in
# c-devices-aer, make reference), QEMU then injects PCIe errors into the NIC,
# and dom0's AER service recovers it with the guest's driver (aer_tests).
#
# The guest's view (every device's address, its 256-byte header and a checksum
# of its extended config space) is kept per topology: the C pair's (c-devices,
# c-devices-pt, which run first) is the reference the other pairings' views
# are compared with, byte for byte (Documentation/dev-guide.rst, "The lab devices").

# The lab devices, by ID, in the order the guest gets them (1b36:0005: the
# first of QEMU's pci-testdev, on the conventional bus behind the bridge).
LAB_IDS="1234:11e8 8086:10d3 1af4:1041 1af4:1044 1b36:0010 1b36:0005"
TESTDEV_ID=1b36:0005

lab_bdfs() {
	local id
	for id in $LAB_IDS; do
		lspci -D -n -d "$id" | awk 'NR == 1 { print $1 }'
	done
}

id_of() {
	local d=/sys/bus/pci/devices/$1 v i
	v=$(cat "$d/vendor") i=$(cat "$d/device")
	echo "${v#0x}:${i#0x}"
}

# What the guest must see, BDF/vvvv:dddd per device. Virtual bus: a new slot
# of bus 0 for each host slot, in the order given, each function keeping its
# number (functions of one slot share it). passthrough=1: the host addresses.
expected_view() {
	local mode=$1 b key next=0
	declare -A slot=()
	for b in $DEVS; do
		if [ "$mode" = pt ]; then
			echo "$b/$(id_of "$b")"
			continue
		fi
		key=${b%.*}
		if [ -z "${slot[$key]+x}" ]; then
			slot[$key]=$next
			next=$((next + 1))
		fi
		printf '0000:00:%02x.%s/%s\n' "${slot[$key]}" "${b##*.}" "$(id_of "$b")"
	done
}

expected_roots() {
	local b
	if [ "$1" = pt ]; then
		for b in $DEVS; do echo "${b%:*}"; done | sort -u
	else
		echo 0000:00
	fi
}

# The backend's root-N entries (passthrough=1) are the host's buses of the devices.
be_roots() {
	local did=$1 be n i got want
	be=/local/domain/0/backend/pci/$did/0
	n=$(timeout 10 xenstore-read "$be/root_num" 2>/dev/null)
	got=$(i=0; while [ "$i" -lt "${n:-0}" ]; do
		timeout 10 xenstore-read "$be/root-$i"; i=$((i + 1)); done | sort)
	want=$(expected_roots pt)
	[ -n "$got" ] && [ "$got" = "$want" ] && return 0
	echo "# root_num '$n', roots: $(echo $got); expected: $(echo $want)"
	return 1
}

# dom0's reading of the whole config space of host device $1, in hex.
hw_hex() { od -A n -t x1 -v "/sys/bus/pci/devices/$1/config" | tr -d ' \n'; }

# Waits for the guest's view of its devices (domU/devices.sh, publish_view),
# reads the hardware's config spaces, and lets the guest go on. Writes one
# line per device to $2: guest address, config size, the guest's bytes and
# the hardware's, in hex.
take_view() {
	local did=$1 out=$2 n i k gbdf size hex hw dir keys meta parts
	wait_secs 90 guest_count "$did" view/count || { echo "# the guest published no view"; return 1; }
	n=$(guest_count "$did" view/count)
	dir=$(xs_guest "$did")/view
	: > "$out"
	# Few processes (each costs about 0.1 s under TCG, while the guest
	# waits): one xenstore-read for every address and size (key by key if
	# that fails: a key is missing), one per device for its chunks (a
	# missing chunk leaves that device's view incomplete, which
	# view_complete reports).
	keys=()
	for ((i = 0; i < n; i++)); do keys+=("$dir/$i/bdf" "$dir/$i/size"); done
	if ! mapfile -t meta < <(timeout 30 xenstore-read "${keys[@]}" 2>/dev/null; echo "rc=$?") ||
		[ "${meta[-1]}" != rc=0 ]; then
		meta=()
		for k in "${keys[@]}"; do meta+=("$(timeout 10 xenstore-read "$k" 2>/dev/null)"); done
	fi
	for ((i = 0; i < n; i++)); do
		gbdf=${meta[2 * i]:-} size=${meta[2 * i + 1]:-0}
		[ -n "$gbdf" ] || { echo "# the guest's view/$i has no address"; continue; }
		[[ $size =~ ^[1-9][0-9]*$ ]] || { echo "# the guest's view/$i has no size"; continue; }
		keys=()
		for ((k = 0; k * 512 < size; k++)); do keys+=("$dir/$i/c$k"); done
		parts=()
		[ ${#keys[@]} -gt 0 ] && mapfile -t parts < <(timeout 30 xenstore-read "${keys[@]}" 2>/dev/null)
		hex=
		[ ${#parts[@]} -gt 0 ] && printf -v hex '%s' "${parts[@]}"
		[ -n "${HOST_OF[$gbdf]:-}" ] || { echo "# the guest has '$gbdf', which dom0 did not give it"; continue; }
		hw=$(hw_hex "${HOST_OF[$gbdf]}")
		echo "$gbdf $size $hex ${hw:0:$((size * 2))}" >> "$out"
	done
	timeout 10 xenstore-write "$(xs_guest "$did")/snapped" 1
	awk '{ printf "# view: %s size %s, %d bytes read by the guest\n", $1, $2, length($3) / 2 }' "$out"
	view_complete "$out" "$(echo $DEVS | wc -w)"
}

# Every device's view is complete, and the bytes every backend passes through
# unchanged (IDs, revision and class, header type, subsystem IDs) are the
# hardware's.
view_complete() {
	awk -v want="$2" '
	{
		if (length($3) != 2 * $2 || length($4) != 2 * $2) { print "# " $1 ": incomplete"; next }
		split("0 1 2 3 8 9 10 11 14 44 45 46 47", ids, " ")
		for (k in ids) {
			i = ids[k]
			if (substr($3, i * 2 + 1, 2) != substr($4, i * 2 + 1, 2)) {
				printf "# %s: offset 0x%02x reads %s, the hardware has %s\n", $1, i,
					substr($3, i * 2 + 1, 2), substr($4, i * 2 + 1, 2)
				bad[$1] = 1
			}
		}
		if (!($1 in bad)) ok++
	}
	END {
		if (ok + 0 != want) { print "# " ok + 0 " of " want " devices complete and with the hardware identity"; exit 1 }
	}' "$1"
}

# The view in $1 is the C pair's ($2), byte for byte, except where both pairs
# read the hardware's own value and the hardware changed between the two
# guests (status bits, registers the previous guest's drivers wrote that its
# release does not reset; never Command or the BARs). Other differences are
# listed per device and offset.
same_view() {
	local mine=$1 ref=$2
	[ -s "$ref" ] || { echo "# no view of the C pair in this boot ($ref): its group runs first"; return 1; }
	awk 'NR == FNR { size[$1] = $2; g[$1] = $3; h[$1] = $4; n++; next }
	{
		m++
		if (!($1 in g)) { print "# " $1 ": not in the C pair view"; bad = 1; next }
		if ($2 != size[$1]) { print "# " $1 ": config size " $2 ", C pair " size[$1]; bad = 1; next }
		shown = 0
		for (i = 0; i < $2; i++) {
			mg = substr($3, i * 2 + 1, 2); cg = substr(g[$1], i * 2 + 1, 2)
			if (mg == cg) continue
			mh = substr($4, i * 2 + 1, 2); ch = substr(h[$1], i * 2 + 1, 2)
			# Never in Command, the BARs and the ROM BAR: what a backend
			# left there is its own doing.
			fixed = (i == 4 || i == 5 || (i >= 16 && i < 40) || (i >= 48 && i < 52))
			if (mg == mh && cg == ch && !fixed) { hw++; continue }
			bad = 1
			if (shown++ < 16)
				printf "# %s: offset 0x%03x reads %s (hardware %s), the C pair read %s (hardware %s)\n",
					$1, i, mg, mh, cg, ch
		}
	}
	END {
		if (m != n) { print "# " m " devices, the C pair view has " n; bad = 1 }
		if (hw) print "# " hw " byte(s) differ where both pairs read the hardware value, which changed between them"
		exit bad
	}' "$ref" "$mine"
}

# What a group that ended early (a bail-out) leaves behind would fail the
# next ones: its guest, the devices made assignable, the backend.
devices_cleanup() {
	local b
	[ -n "${DEVICES_DONE:-}" ] && return
	echo "# the group ended early: cleaning up"
	# The backend's directory first: xl destroy would detach the devices one
	# by one (rust-slots' 33 functions take about 80 s).
	b=$(xl domid "$GUEST" 2>/dev/null) && timeout 10 xenstore-rm "/local/domain/0/backend/pci/$b" &&
		wait_for 30 be_gone "$b"
	timeout 120 xl destroy "$GUEST" >/dev/null 2>&1
	for b in $DEVS; do timeout 60 xl pci-assignable-remove -r "$b" >/dev/null 2>&1; done
	(rmmod pciback; rmmod xen-pciback) >/dev/null 2>&1
}

assignable_add_all() {
	local b
	for b in $DEVS; do timeout 60 xl pci-assignable-add "$b" || return 1; done
}
assignable_remove_all() {
	local b rc=0
	for b in $DEVS; do timeout 60 xl pci-assignable-remove -r "$b" || rc=1; done
	return $rc
}
all_bound_to_pciback() {
	local b
	for b in $DEVS; do
		[ "$(driver_of "$b")" = pciback ] || { echo "# $b is bound to '$(driver_of "$b")'"; return 1; }
	done
}

# ---- PCIe AER. dom0 asks the host on its console for an error in the NIC's
# root port (QEMU's monitor command pcie_aer_inject_error, sent by
# scripts/qemu-inject.py for a line "XENPCI-QEMU-AER SEQ QEMU_ID ERROR");
# dom0's AER service recovers the port and every device below it, the NIC
# included, and the backend forwards each step of the NIC's recovery to the
# guest's e1000e driver (Documentation/status.rst, "PCIe AER"). QEMU's e1000e
# cannot signal an error itself: the error reporting enables of its Device
# Control register are read-only zero in QEMU.
AER_QEMU_ID=rp2	# the NIC's root port's QEMU id (scripts/run-xen.sh, LAB_DEVICES)
# The requests' numbers, unique in the boot (the host serves each number once).
AER_SEQ_FILE=/run/xenpci-aer-seq

# dom0's AER counter $2 (TOTAL_ERR_COR, TOTAL_ERR_NONFATAL) of device $1.
aer_count() {
	awk -v k="$2" '$1 == k { print $2 }' "/sys/bus/pci/devices/$1/aer_dev_${3}" 2>/dev/null
}
aer_counted() { [ "$(aer_count "$1" "$2" "$3")" -gt "$4" ] 2>/dev/null; }
recovery_ended() { klog | grep -qE 'device recovery (successful|failed)'; }

# aer_inject correctable|nonfatal|fatal: asks for the error in the root port
# (twice, should the first request be lost on the console) and waits until
# dom0 counted it and, for an uncorrectable one, until its recovery ended
# (not with AER_NOWAIT=1). The kernel log from the request on is klog's.
aer_inject() {
	# Receiver error: correctable (QEMU knows it by its name).
	local kind=$1 key=TOTAL_ERR_COR file=correctable req="$AER_QEMU_ID RCVR" before try seq
	if [ "$kind" = nonfatal ]; then
		# Poisoned TLP: uncorrectable, non-fatal by QEMU's default severities.
		key=TOTAL_ERR_NONFATAL file=nonfatal req="$AER_QEMU_ID POISON_TLP"
	elif [ "$kind" = fatal ]; then
		# Surprise down: fatal by QEMU's default severities (a frozen channel).
		key=TOTAL_ERR_FATAL file=fatal req="$AER_QEMU_ID SDN"
	fi
	before=$(aer_count "$RP_BDF" "$key" "$file")
	[ -n "$before" ] || { echo "# $RP_BDF has no AER statistics: dom0 has no AER service for it"; return 1; }
	seq=$(( $(cat "$AER_SEQ_FILE" 2>/dev/null || echo 0) + 1 ))
	echo "$seq" > "$AER_SEQ_FILE"
	klog_mark
	for try in 1 2; do
		echo "XENPCI-QEMU-AER $seq $req"
		wait_secs $((try * 30)) aer_counted "$RP_BDF" "$key" "$file" "$before" && break
	done
	if ! aer_counted "$RP_BDF" "$key" "$file" "$before"; then
		echo "# dom0 counted no $kind error of $RP_BDF ($key $before)"
		klog | tail -n 20 | sed 's/^/# dom0: /'
		aer_diag
		return 1
	fi
	{ [ "$kind" = correctable ] || [ "${AER_NOWAIT:-0}" = 1 ]; } && return 0
	wait_secs 200 recovery_ended
	klog | grep -E 'AER|recovery|reset|pciback|Link|link|ready' | tail -n 24 | sed 's/^/# dom0: /'
	klog | grep -q 'device recovery successful' && return 0
	aer_diag
	return 1
}

# What dom0 knows of AER, for a failure: its port services, its boot log
# about AER, the error reporting enables of the NIC and its root port.
aer_diag() {
	local rp=$RP_BDF
	echo "# port services: $(ls /sys/bus/pci_express/devices 2>/dev/null | tr '\n' ' ')"
	dmesg | grep -iE 'aer|_osc|pcieport|pcie_ports' | head -n 20 | sed 's/^/# dom0: /'
	lspci -vvv -s "$rp" 2>/dev/null | grep -E 'LnkCap|LnkSta|SltCap|DevCtl|RootCap|RootCtl|RootCmd|RootSta|UESta|CESta|Kernel driver' |
		sed "s/^/# $rp: /"
	lspci -vvv -s "$NIC_BDF" 2>/dev/null | grep -E 'DevCtl|DevSta|UESta|CESta|UESvrt' | sed "s/^/# $NIC_BDF: /"
}

link_reset() { klog | grep -q 'Port link has been reset'; }
no_link_reset() { ! link_reset; }
# The backend's aerState, where C's marks a guest that failed the recovery.
aer_state() { timeout 10 xenstore-read "/local/domain/0/backend/pci/$1/0/aerState" 2>/dev/null; }
not_marked() {
	local v
	v=$(aer_state "$1") || return 0
	echo "# aerState is '$v'"
	return 1
}
marked_failed() { [ "$(aer_state "$1")" = aerfail ] || { echo "# aerState is '$(aer_state "$1")'"; return 1; }; }
ask_guest() {
	timeout 10 xenstore-write "$(xs_guest "$1")/aer" "$2" && wait_secs 60 xs_guest_is "$1" aer-done "$2"
}

# The checks of aer_tests that are more than one step.
cor_untouched() { aer_inject correctable && no_link_reset && not_marked "$1"; }
recovered_without_guest() { aer_inject nonfatal && no_link_reset; }
# The NIC's six BARs in the hardware, in hex.
hw_bars() { od -A n -t x4 -j 16 -N 24 "/sys/bus/pci/devices/$NIC_BDF/config" | tr -s ' ' | sed 's/^ //'; }
# A fatal error with no driver to vote for a reset: dom0 resets the link all
# the same (a frozen channel), without slot_reset. The backend must put the
# BARs back before resume.
bars_back_after_fatal() {
	local before after
	before=$(hw_bars)
	aer_inject fatal && link_reset || return 1
	after=$(hw_bars)
	echo "# the NIC's BARs before: $before; after: $after"
	[ "$before" = "$after" ] && [ -n "$(echo "$before" | tr -d '0 ')" ]
}

aer_plan() {
	local n=$((7 + 1 + $(guest_aer_plan)))
	[ "$1" = rust ] && n=$((n + 1))	# the fatal error
	echo "$n"
}

# With the guest of devices_test running, its e1000e bound with MSI-X on.
aer_tests() {
	local did=$1
	NIC_BDF=$(lspci -D -n -d 8086:10d3 | awk 'NR == 1 { print $1 }')
	RP_BDF=$(basename "$(dirname "$(readlink -f "/sys/bus/pci/devices/$NIC_BDF")")")
	echo "# AER: the NIC is $NIC_BDF, below the root port $RP_BDF (QEMU's $AER_QEMU_ID)"
	ktap_check "AER: a correctable error is counted by dom0, and touches no guest (no reset, no mark)" \
		cor_untouched "$did"
	ktap_check "AER: dom0 recovers the NIC from a non-fatal error" aer_inject nonfatal
	ktap_check "AER: the guest's e1000e voted for a reset, and dom0's root port reset the link" link_reset
	ktap_check "AER: the guest is not marked failed (no aerState)" not_marked "$did"
	ktap_check "AER: the guest checked its NIC after the recovery" ask_guest "$did" check
	# Without a driver, the guest can only answer 'no result': as C, the
	# guest is marked failed and dom0 recovers the device without it.
	ask_guest "$did" unbind
	ktap_check "AER: with no driver on the NIC in the guest, dom0 still recovers it, without a reset" \
		recovered_without_guest
	ktap_check "AER: ... and marks the guest failed (aerState = aerfail)" marked_failed "$did"
	# C xen-pciback does not restore a device its recovery reset.
	[ "$AER_BACK" = rust ] &&
		ktap_check "AER: a fatal error: dom0 resets the link, and the backend puts the NIC's BARs back" \
			bars_back_after_fatal
	guest_phase 2 "$did" 60 "guest reported its AER checks" "$(guest_aer_plan)"
}

# ---- A release during dom0's recovery (the Rust pair, virtual bus, last):
# the guest is paused while dom0's AER recovery of the NIC asks it for its
# vote, so the recovery holds the NIC's device lock (up to a minute), and the
# NIC is detached meanwhile by hand (the backend's state-N and state, then
# the frontend's state, as libxl and a frontend write them; xl pci-detach
# would wait for the paused guest). The backend must not hand the NIC on
# unreset: its release waits for the lock and resets once the unpaused guest
# answered. (The release used to try the reset without waiting and skip it,
# "reset deferred".)
released_by() { klog | grep -q "pciback $NIC_BDF: released by guest $1\$"; }
reset_by_release() {
	klog | grep -q "pciback $NIC_BDF: reset after guest $1\$" && released_by "$1" &&
		! klog | grep -q "pciback $NIC_BDF: reset deferred"
}
# Detaches the NIC by hand during the recovery; the first result.
detach_in_recovery() {
	local did=$1 i be fe
	be=/local/domain/0/backend/pci/$did/0
	i=$(be_index_of "$did" "$NIC_BDF") || { echo "# no dev-N names $NIC_BDF"; return 1; }
	fe=$(be_read "$did" frontend) || { echo "# the backend names no frontend"; return 1; }
	timeout 10 xl pause "$GUEST" || { echo "# xl pause failed"; return 1; }
	PAUSED=1
	AER_NOWAIT=1 aer_inject nonfatal || return 1
	# dom0 counted the error: its recovery's first step is under way.
	wait_secs 2 false
	if recovery_ended; then echo "# the recovery ended without the paused guest"; return 1; fi
	timeout 10 xenstore-write "$be/state-$i" 5 "$be/state" 7 &&
		timeout 10 xenstore-write "$fe/state" 7 || { echo "# cannot write the states"; return 1; }
	wait_secs 5 false
	klog | grep -E "pciback $NIC_BDF|recovery" | sed 's/^/# dom0: /'
	if released_by "$did"; then
		echo "# the backend released the NIC while the recovery held its device lock"
		return 1
	fi
	echo "# the NIC is not released yet: the release waits for the recovery's step"
}
release_in_recovery_tests() {
	local did=$1
	PAUSED=0
	ktap_check "AER: a NIC detached while dom0's recovery waits for the paused guest is not released meanwhile" \
		detach_in_recovery "$did"
	[ "$PAUSED" = 1 ] && timeout 10 xl unpause "$GUEST"
	ktap_check "AER: ... and is reset by its release once the step ended (the guest unpaused)" \
		wait_secs 120 reset_by_release "$did"
	klog | grep -E "pciback $NIC_BDF|recovery" | tail -n 8 | sed 's/^/# dom0: /'
	# The frontend's state as the guest has it (it never switched itself), so
	# that the backend is Connected again for xl destroy's detaches.
	timeout 10 xenstore-write "$(be_read "$did" frontend)/state" 4
	wait_secs 30 be_connected "$did" || echo "# the backend's state is '$(be_read "$did" state)'"
}
release_in_recovery() { [ "$1/$2/$3" = rust/rust/vbus ]; }

# AER is tested on the virtual bus; for the C pair only in make reference
# (C_AER=1, group c-devices-aer): a result about C, not about this project.
devices_aer() { [ "$3" = vbus ] && { [ "$1/$2" != c/c ] || [ "${C_AER:-0}" = 1 ]; }; }

# The number of results of devices_test: declared before the first one.
devices_plan() {
	local back=$1 front=$2 n=8
	n=$((n + 1 + $(multi_plan "$front")))		# the guest's results
	[ "$3" = pt ] && n=$((n + 1))		# the backend's roots
	[ "$back/$front" != c/c ] && n=$((n + 1))	# the view compared
	devices_aer "$back" "$front" "$3" && n=$((n + $(aer_plan "$back")))	# PCIe AER
	[ "$3" = vbus ] && [ "$back/$front" != c/c ] && n=$((n + $(hotplug_plan "$back")))	# hot attach
	release_in_recovery "$back" "$front" "$3" && n=$((n + 2))
	echo "$n"
}

# devices_test BACKEND FRONTEND vbus|pt
devices_test() {
	local back=$1 front=$2 mode=$3 did list b view
	ktap_print_header
	ktap_set_plan "$(devices_plan "$back" "$front" "$mode")"
	trap devices_cleanup EXIT
	rotate_guest_log
	DEVS=$(lab_bdfs)
	echo "# lab devices: $(echo $DEVS)"
	[ "$(echo $DEVS | wc -w)" = "$(echo $LAB_IDS | wc -w)" ] ||
		ktap_exit_fail_msg "the lab devices are not all there (IDs $LAB_IDS)"
	[ "$mode" = pt ] && BACKEND_ARGS=passthrough=1
	HIDE=0 ktap_test_result "$back backend loads" backend_load "$back"
	ktap_check "xl pci-assignable-add of every lab device" assignable_add_all
	list=$(expected_view "$mode")
	declare -gA HOST_OF=()
	set -- $DEVS
	for b in $list; do HOST_OF[${b%%/*}]=$1; shift; done
	# Two vCPUs: the guest's NVMe driver gives each an I/O queue with its
	# own MSI-X vector (domU_multi_tests checks both).
	{
		guest_cfg "xenpci.front=$front xenpci.multi=1 xenpci.aer=$(devices_aer "$back" "$front" "$mode" && echo "$back" || echo 0) xenpci.hotplug=$([ "$mode" = vbus ] && [ "$back/$front" != c/c ] && echo $HOTPLUG_CYCLES || echo 0) xenpci.expect=$(echo $list | tr ' ' '+') xenpci.roots=$(echo $(expected_roots "$mode") | tr ' ' '+')" 256 2
		echo "pci = [ $(for b in $DEVS; do printf "'%s', " "$b"; done) ]"
	} > /tmp/$GUEST.cfg
	ktap_check "xl create with every lab device in pci=[...]" timeout 120 xl create /tmp/$GUEST.cfg
	find_guest
	did=$GUEST_DID
	stream_guest_console
	[ "$mode" = pt ] &&
		ktap_check "the backend lists the devices' host buses as roots" wait_secs 30 be_roots "$did"
	view=/tmp/view-$mode-$back-$front
	ktap_check "dom0 got the guest's view of all $(echo $DEVS | wc -w) devices and read the hardware's" \
		take_view "$did" "$view"
	guest_phase1 "$did" 90 "guest reported its device checks" "$(multi_plan "$front")"
	[ "$back/$front" != c/c ] &&
		ktap_check "the guest's view is the C pair's, byte for byte" same_view "$view" "/tmp/view-$mode-c-c"
	devices_aer "$back" "$front" "$mode" && AER_BACK=$back aer_tests "$did"
	[ "$mode" = vbus ] && [ "$back/$front" != c/c ] && hotplug_tests "$did" "$back"
	release_in_recovery "$back" "$front" "$mode" && release_in_recovery_tests "$did"

	destroy_guest "$GUEST" "$(echo $DEVS | wc -w)"
	stop_guest_console
	ktap_test_result "guest destroyed" wait_for 20 guest_gone
	ktap_check "the devices are still with pciback" all_bound_to_pciback
	ktap_check "xl pci-assignable-remove of every lab device" assignable_remove_all
	ktap_test_result "$back backend unloads" wait_for 10 backend_unload "$back"
	DEVICES_DONE=1
	ktap_finished
}

# The C pair first in each topology: its view is the reference.
group_c_devices() { devices_test c c vbus; }
# make reference: the C pair's AER (what the Rust backend's is compared with).
group_c_devices_aer() { C_AER=1 devices_test c c vbus; }
group_rust_devices() { devices_test rust rust vbus; }
group_rustback_cfront_devices() { devices_test rust c vbus; }
group_cback_rustfront_devices() { devices_test c rust vbus; }
group_c_devices_pt() { devices_test c c pt; }
group_rust_devices_pt() { devices_test rust rust pt; }

# ---- Hot attach, in the virtual-bus groups but the C pair's, after AER: the
# NVMe drive is detached from the running guest (xl pci-detach) and attached
# again (xl pci-attach) HOTPLUG_CYCLES times, the guest doing direct I/O on it
# after each attach (domU_hotplug_tests, its phase 3).
HOTPLUG_CYCLES=10

xs_guest_is() { [ "$(timeout 10 xenstore-read "$(xs_guest "$1")/$2" 2>/dev/null)" = "$3" ]; }
# The guest's answer $2 (acked, gone) is for cycle $3, whatever it says.
xs_guest_answered() {
	local v
	v=$(timeout 10 xenstore-read "$(xs_guest "$1")/$2" 2>/dev/null)
	[ "${v%% *}" = "$3" ]
}
# ... and says the guest saw what it should.
guest_answer_ok() {
	wait_secs 60 xs_guest_answered "$1" "$2" "$3" || { echo "# the guest did not answer ($2)"; return 1; }
	xs_guest_is "$1" "$2" "$3 ok" || { echo "# the guest answered '$(guest_count "$1" "$2")' ($2)"; return 1; }
}

# The results of hotplug_tests $1 (the backend), with the guest's.
hotplug_plan() {
	local n=$((2 * HOTPLUG_CYCLES + 1 + $(guest_hotplug_plan "$HOTPLUG_CYCLES")))
	[ "$1" = rust ] && n=$((n + 1))		# do_flr at each detach
	echo "$n"
}

# One cycle: detach, wait for the guest to see the drive go; attach, announce
# it to the guest (even when the attach failed: the guest's cycle follows
# dom0's), wait for the guest's I/O. The guest's answers carry the cycle's
# number and its own verdict, which must be ok.
hotplug_detach() {
	timeout 60 xl pci-detach "$GUEST" "$NVME_BDF" || return 1
	guest_answer_ok "$1" gone "$2"
}
hotplug_attach() {
	local rc=0
	timeout 60 xl pci-attach "$GUEST" "$NVME_BDF" || rc=1
	timeout 10 xenstore-write "$(xs_guest "$1")/cycle" "$2" || return 1
	[ "$rc" = 0 ] || return 1
	guest_answer_ok "$1" acked "$2"
}

# The Rust backend: at each detach libxl reset the drive through do_flr while
# the guest still held it (it has FLR), before the backend released it.
doflr_each_detach() {
	local held
	held=$(klog | grep -c "pciback $NVME_BDF: do_flr: reset (guest $1 holds the device)$")
	echo "# $held resets through do_flr while guest $1 held the drive, $HOTPLUG_CYCLES detaches"
	[ "$held" = "$HOTPLUG_CYCLES" ]
}

# With the guest of devices_test running, its nvme driver bound; $2 the backend.
hotplug_tests() {
	local did=$1 back=$2 c failed=
	NVME_BDF=$(lspci -D -n -d 1b36:0010 | awk 'NR == 1 { print $1 }')
	klog_mark
	# After a failed cycle the others are failed without being tried (the
	# guest is told to stop), so that the group ends within its deadline.
	for ((c = 1; c <= HOTPLUG_CYCLES; c++)); do
		if [ -n "$failed" ]; then
			ktap_test_fail "detach $c: not tried after cycle $failed failed"
			ktap_test_fail "attach $c: not tried after cycle $failed failed"
			continue
		fi
		if hotplug_detach "$did" "$c"; then
			ktap_test_pass "detach $c: xl pci-detach of the NVMe drive, the guest saw it go"
		else
			ktap_test_fail "detach $c: xl pci-detach of the NVMe drive, the guest saw it go"
			failed=$c
		fi
		if [ -z "$failed" ] && hotplug_attach "$did" "$c"; then
			ktap_test_pass "attach $c: xl pci-attach of the NVMe drive, the guest's I/O done"
		else
			ktap_test_fail "attach $c: xl pci-attach of the NVMe drive, the guest's I/O done"
			failed=${failed:-$c}
		fi
		[ -n "$failed" ] && timeout 10 xenstore-write "$(xs_guest "$did")/cycle" stop
	done
	guest_phase 3 "$did" 60 "guest reported its hot-attach checks" "$(guest_hotplug_plan "$HOTPLUG_CYCLES")"
	if [ "$back" = rust ]; then
		ktap_check "each detach: libxl reset the NVMe drive through do_flr while the guest held it" \
			doflr_each_detach "$did"
	fi
}

# ---- The virtual bus's 33rd slot. The guest gets 32 slots (the lab devices
# and 27 more test devices); a 33rd is asked for with xl pci-attach. The
# backend must refuse that device alone, with its error in the store and the
# kernel log: the guest keeps its devices, the device stays with pciback,
# and it can be detached, and attached again once a slot is free
# (domU_slots_tests). C xen-pciback closes the whole backend instead.

be_read() { timeout 10 xenstore-read "/local/domain/0/backend/pci/$1/0/$2" 2>/dev/null; }
# The index N of the backend's dev-N for host device $2.
# (One xenstore-ls, not a read per dev-N: 33 of them, polled, took seconds.)
be_index_of() {
	local line n= i= k v
	while IFS= read -r line; do
		[[ $line =~ ^([a-z_]+)(-([0-9]+))?\ =\ \"(.*)\"$ ]] || continue
		k=${BASH_REMATCH[1]} v=${BASH_REMATCH[4]}
		case $k in
			num_devs) n=$v ;;
			dev) [ "$v" = "$2" ] && [ -z "$i" ] && i=${BASH_REMATCH[3]} ;;
		esac
	done < <(timeout 10 xenstore-ls "/local/domain/0/backend/pci/$1/0" 2>/dev/null)
	[ -n "$i" ] && [ -n "$n" ] && [ "$i" -lt "$n" ] || return 1
	echo "$i"
}
be_connected() { [ "$(be_read "$1" state)" = 4 ]; }
# The guest's answer to step $2, which must be ok.
guest_said() { case "$(guest_count "$1" done)" in "$2 "*) true ;; *) false ;; esac; }
guest_done() {
	wait_secs 90 guest_said "$1" "$2"
	xs_guest_is "$1" done "$2 ok" || { echo "# the guest answered '$(guest_count "$1" done)'"; return 1; }
}
ask_step() { timeout 10 xenstore-write "$(xs_guest "$1")/step" "$2" && guest_done "$1" "$2"; }

# The 33rd slot's device ($2) was refused alone.
refused_alone() {
	local did=$1 b=$2 i err
	wait_secs 60 be_connected "$did" || { echo "# the backend's state is '$(be_read "$did" state)'"; return 1; }
	i=$(be_index_of "$did" "$b") || { echo "# no dev-N names $b"; return 1; }
	[ "$(be_read "$did" "state-$i")" = 6 ] || { echo "# state-$i is '$(be_read "$did" "state-$i")'"; return 1; }
	if be_read "$did" "vdev-$i" >/dev/null; then echo "# vdev-$i is published"; return 1; fi
	err=$(timeout 10 xenstore-read "/local/domain/0/error/backend/pci/$did/0/error" 2>/dev/null)
	echo "# the backend's error in the store: '$err'"
	case "$err" in *"refusing $b"*"no more space on root virtual PCI bus"*) ;; *) return 1 ;; esac
	klog | grep "refusing $b" | sed 's/^/# dom0: /'
	klog | grep -q "refusing $b.*no more space on root virtual PCI bus"
}
# dev-N of $2 is gone from the backend (libxl removes it after the detach).
be_forgot() { ! be_index_of "$1" "$2" >/dev/null; }
detached() { timeout 60 xl pci-detach "$GUEST" "$2" && wait_secs 30 be_forgot "$1" "$2"; }
# The device $2 is exported again at the guest address $3 (vdev-N has two
# digits of function, as C writes it).
exported_at() {
	local i v
	i=$(be_index_of "$1" "$2") || return 1
	v=$(be_read "$1" "vdev-$i")
	echo "# $2 is vdev-$i = '$v'"
	[ "$v" = "${3%.*}.$(printf %02x "0x${3##*.}")" ]
}
reattached() {
	local i n
	klog_mark
	timeout 60 xl pci-attach "$GUEST" "$2" || { echo "# xl pci-attach exited $?"; return 1; }
	if ! wait_secs 60 exported_at "$1" "$2" "$3"; then
		exported_at "$1" "$2" "$3"
		echo "# backend state $(be_read "$1" state), num_devs $(be_read "$1" num_devs)"
		n=$(be_read "$1" num_devs)
		for ((i = 30; i < ${n:-0}; i++)); do
			echo "# dev-$i $(be_read "$1" "dev-$i") state-$i $(be_read "$1" "state-$i") vdev-$i $(be_read "$1" "vdev-$i")"
		done
		klog | grep -i pci | tail -n 20 | sed 's/^/# dom0: /'
		return 1
	fi
	ask_step "$1" "back $3"
}

slots_plan() { echo $((15 + $(guest_slots_plan))); }

# slots_test BACKEND FRONTEND
slots_test() {
	local back=$1 front=$2 did list b last last_guest t
	ktap_print_header
	ktap_set_plan "$(slots_plan)"
	trap devices_cleanup EXIT
	rotate_guest_log
	DEVS="$(lab_bdfs) $(lspci -D -n -d "$TESTDEV_ID" | awk 'NR >= 2 && NR <= 28 { print $1 }')"
	EXTRA=$(lspci -D -n -d "$TESTDEV_ID" | awk 'NR == 29 { print $1 }')
	last=$(lspci -D -n -d "$TESTDEV_ID" | awk 'NR == 28 { print $1 }')
	list=$(expected_view vbus)
	echo "# $(echo $DEVS | wc -w) functions in $(echo "$list" | cut -d. -f1 | sort -u | wc -l) slots; the 33rd: $EXTRA"
	[ "$(echo "$list" | cut -d. -f1 | sort -u | wc -l)" = 32 ] && [ -n "$EXTRA" ] ||
		ktap_exit_fail_msg "the lab has not 33 slots' worth of devices"
	last_guest=$(echo "$list" | awk -v n="$(echo $DEVS | wc -w)" 'NR == n { sub("/.*", ""); print }')
	HIDE=0 ktap_test_result "$back backend loads" backend_load "$back"
	DEVS="$DEVS $EXTRA"
	t=$SECONDS
	ktap_check "xl pci-assignable-add of 34 functions (33 slots)" assignable_add_all
	echo "# assignable-add took $((SECONDS - t)) s"
	{
		guest_cfg "xenpci.front=$front xenpci.slots=1 xenpci.expect=xs" 256
		echo "pci = [ $(for b in ${DEVS% *}; do printf "'%s', " "$b"; done) ]"
	} > /tmp/$GUEST.cfg
	t=$SECONDS
	ktap_check "xl create with 32 slots in pci=[...]" timeout 300 xl create /tmp/$GUEST.cfg
	echo "# xl create took $((SECONDS - t)) s"
	find_guest
	did=$GUEST_DID
	stream_guest_console
	timeout 10 xenstore-write "$(xs_guest "$did")/expect" "$(echo $list | tr ' ' '+')"
	ktap_check "the guest is up with its 32 slots" wait_secs 180 xs_guest_is "$did" ready 1
	klog_mark
	echo "# xl pci-attach of $EXTRA, a 33rd slot:"
	timeout 60 xl pci-attach "$GUEST" "$EXTRA"
	ATTACH_RC=$?
	echo "# xl pci-attach exited $ATTACH_RC (libxl does not wait for the backend's answer)"
	ktap_check "the backend refuses the 33rd slot alone: its error in the store and the log, state-N Closed, no vdev-N, still Connected" \
		eval '[ "$ATTACH_RC" = 0 ] && refused_alone "$did" "$EXTRA"'
	ktap_check "the refused device stays with pciback" eval '[ "$(driver_of "$EXTRA")" = pciback ]'
	ktap_check "the guest still has its 32 slots, every device answering" ask_step "$did" refused
	ktap_check "xl pci-detach of the refused device" detached "$did" "$EXTRA"
	ktap_check "xl pci-detach of the 32nd slot's device ($last as $last_guest), the guest saw it go" \
		eval 'detached "$did" "$last" && ask_step "$did" "gone $last_guest"'
	ktap_check "xl pci-attach of the refused device again: exported in the freed slot, the guest uses it" \
		reattached "$did" "$EXTRA" "$last_guest"
	guest_phase1 "$did" 60 "guest reported its slot checks" "$(guest_slots_plan)"
	# xl destroy would detach the 33 functions one by one (about 80 s here):
	# the backend's directory goes first, and the backend releases them all
	# (Xen takes its IOMMU assignments back when the domain dies).
	t=$SECONDS
	timeout 10 xenstore-rm "/local/domain/0/backend/pci/$did"
	wait_for 60 be_gone "$did" || echo "# the backend device of domain $did is still there"
	timeout 120 xl destroy $GUEST
	stop_guest_console
	ktap_test_result "guest destroyed" wait_secs 60 guest_gone
	echo "# the backend's release and xl destroy took $((SECONDS - t)) s"
	ktap_check "the devices are still with pciback" all_bound_to_pciback
	ktap_check "xl pci-assignable-remove of every device" assignable_remove_all
	ktap_test_result "$back backend unloads" wait_for 10 backend_unload "$back"
	DEVICES_DONE=1
	ktap_finished
}

group_rust_slots() { slots_test rust rust; }
