# SPDX-License-Identifier: GPL-2.0
#
# Guest checks of the lab devices (the devices boot, dom0/devices.sh): one
# guest gets every lab device at once, checks the addresses it sees, publishes
# its view of their config spaces for dom0 to compare between the pairings,
# and does real I/O with its own drivers: the NVMe drive with direct I/O
# through its MSI-X queue vectors; the NIC's driver binds and enables MSI-X
# (the guest has no IP stack to bring the interface up with).
#
# From dom0, on the command line:
#   xenpci.multi=1     run these checks instead of domU/device.sh's
#   xenpci.expect=     the addresses and IDs the guest must see, exactly:
#                      BDF/vvvv:dddd+BDF/vvvv:dddd+...
#   xenpci.roots=      its root buses: 0000:00+0000:01

# BDF/vvvv:dddd of every PCI device the guest has, sorted.
guest_devices() {
	for d in /sys/bus/pci/devices/*; do
		[ -e "$d/config" ] || continue
		v=$(cat "$d/vendor") i=$(cat "$d/device")
		echo "${d##*/}/${v#0x}:${i#0x}"
	done | sort
}

# The guest's address of the device with ID $1 (vvvv:dddd).
guest_bdf_of() {
	guest_devices | sed -n "s#^\([^/]*\)/$1\$#\1#p" | head -n 1
}

# The addresses and IDs the guest must see: xenpci.expect=, or with
# xenpci.expect=xs, dom0's data/xenpci/expect (a list too long for the
# command line).
expected_list() {
	v=$(cmdline_arg expect)
	if [ "$v" = xs ]; then
		wait_for 60 xenstore-read "$XS/expect" >/dev/null
		v=$(xenstore-read "$XS/expect" 2>/dev/null)
	fi
	echo "$v" | tr '+' '\n' | sort
}

# Every expected device appears, and no other.
devices_as_expected() {
	want=$(expected_list)
	[ -n "$want" ] || { echo "# no xenpci.expect= from dom0"; return 1; }
	for e in $want; do
		wait_for 60 test -e "/sys/bus/pci/devices/${e%%/*}/config" ||
			echo "# ${e%%/*} did not appear"
	done
	got=$(guest_devices)
	[ "$got" = "$want" ] && return 0
	echo "$got" | sed 's/^/# guest sees: /'
	echo "$want" | sed 's/^/# expected:  /'
	return 1
}

# The two functions of QEMU's multi-function virtio device (1af4:1041 at
# function 0, 1af4:1044 at function 1) share one slot and keep their numbers.
functions_share_slot() {
	a=$(guest_bdf_of 1af4:1041) b=$(guest_bdf_of 1af4:1044)
	echo "# function 0 at '$a', function 1 at '$b'"
	[ -n "$a" ] && [ -n "$b" ] && [ "${a%.*}" = "${b%.*}" ] &&
		[ "${a##*.}" = 0 ] && [ "${b##*.}" = 1 ]
}

# The guest's root buses are the ones dom0 expects.
roots_as_expected() {
	want=$(cmdline_arg roots | tr '+' '\n' | sort)
	got=$(for b in /sys/class/pci_bus/*; do
		[ -e "$b/device" ] || continue
		# A root bus's device is its host bridge, not a PCI device.
		[ -e "$b/device/config" ] && continue
		echo "${b##*/}"
	done | sort)
	[ -n "$want" ] && [ "$got" = "$want" ] && return 0
	echo "# root buses: $(echo $got), expected: $(echo $want)"
	return 1
}

xs_is() { [ "$(xenstore-read "$XS/$1" 2>/dev/null)" = "$2" ]; }

# The guest's view of each device, before any guest driver touches it: its
# address, config size and whole config space in hex, under data/xenpci/view/
# (N/bdf, N/size, N/cK: 512 bytes per chunk, as xenstored limits a guest's
# values to 2048 bytes; and count), for dom0 to compare
# between the pairings. dom0 then reads the hardware's config spaces and
# writes data/xenpci/snapped: the guest waits for it before its drivers change
# anything.
publish_view() {
	n=0
	for d in /sys/bus/pci/devices/*; do
		[ -e "$d/config" ] || continue
		size=$(stat -c %s "$d/config")
		# One od and one xenstore-write per device: each process costs
		# about 0.1 s under TCG.
		hex=$(od -A n -t x1 -v -N "$size" "$d/config" | tr -d ' \n')
		set -- "$XS/view/$n/bdf" "${d##*/}" "$XS/view/$n/size" "$size"
		k=0
		while [ $((k * 512)) -lt "$size" ]; do
			set -- "$@" "$XS/view/$n/c$k" "${hex:$((k * 1024)):1024}"
			k=$((k + 1))
		done
		xenstore-write "$@" || return 1
		echo "# view: ${d##*/} size $size"
		n=$((n + 1))
	done
	xenstore-write "$XS/view/count" "$n" && [ "$n" -gt 0 ] || return 1
	wait_for 120 xs_is snapped 1 || { echo "# dom0 did not read the hardware"; return 1; }
}

# MSI-X is enabled on device $1, with $2 vectors or more.
msix_on() {
	d=/sys/bus/pci/devices/$1
	n=$(ls "$d/msi_irqs" 2>/dev/null | wc -l)
	echo "# $1: $n MSI vector(s), mode $(cat "$d"/msi_irqs/* 2>/dev/null | sort -u | tr '\n' ' ')"
	[ "$n" -ge "$2" ] && [ "$(cat "$d"/msi_irqs/* | sort -u)" = msix ]
}

bound_to() {
	[ "$(basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)")" = "$2" ] && return 0
	echo "# $1 is bound to '$(basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)")', not $2"
	return 1
}

# Interrupts counted on the guest's IRQ named $1 (/proc/interrupts).
irq_named() {
	awk -v n="$1" '$NF == n { for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k } END { print s + 0 }' \
		/proc/interrupts
}

nvme_load() { insmod "$MODDIR/nvme-core.ko" && insmod "$MODDIR/nvme.ko"; }

# 4 MiB written and read back with direct I/O, a new pattern each time; on
# CPU $1 if given.
nvme_io() {
	seed=$(od -A n -t u8 -N 8 /dev/urandom | tr -d ' ')
	out=$(${1:+taskset -c "$1"} dio /dev/nvme0n1 4 "$seed")
	rc=$?
	echo "# dio: $out"
	[ "$rc" = 0 ]
}

# The I/O queues' vectors as "IRQ/NAME", nvme0q1 on (nvme0q0 is the admin
# queue's).
nvme_io_queues() {
	awk '$NF ~ /^nvme0q[1-9][0-9]*$/ { sub(":", "", $1); print $1 "/" $NF }' /proc/interrupts
}

# Every I/O queue's vector is an MSI-X vector of the drive, and direct I/O
# on each CPU in turn (taskset) raised the count of one of them, each of them
# at least once: one I/O queue per CPU, and no vector that never fires. (Which
# queue serves which CPU is the block layer's: a PV guest's MSI-X vectors
# get no managed affinity, with either frontend.)
nvme_queues_counted() {
	local queues x q cpu before after moved grew=" " bad=0 ncpu
	ncpu=$(nproc)
	queues=$(nvme_io_queues)
	grep -E 'nvme0q' /proc/interrupts | sed 's/^/# /'
	[ "$(echo $queues | wc -w)" = "$ncpu" ] ||
		{ echo "# $(echo $queues | wc -w) I/O queue(s) for $ncpu CPU(s)"; return 1; }
	for x in $queues; do
		echo "# ${x#*/}: IRQ ${x%/*}, affinity $(cat "/proc/irq/${x%/*}/smp_affinity_list" 2>/dev/null)"
		[ -e "/sys/bus/pci/devices/$NVME/msi_irqs/${x%/*}" ] ||
			{ echo "# ${x#*/} is IRQ ${x%/*}, not an MSI-X vector of $NVME"; bad=1; }
	done
	cpu=0
	while [ "$cpu" -lt "$ncpu" ]; do
		before=$(for x in $queues; do echo "${x#*/}=$(irq_named "${x#*/}")"; done)
		nvme_io "$cpu" || { echo "# direct I/O on CPU $cpu failed"; bad=1; }
		moved=
		for x in $before; do
			q=${x%=*}
			after=$(irq_named "$q")
			[ "$after" -gt "${x#*=}" ] && moved="$moved $q"
		done
		echo "# direct I/O on CPU $cpu raised:${moved:- nothing}"
		[ -n "$moved" ] || bad=1
		grew="$grew$moved "
		cpu=$((cpu + 1))
	done
	for x in $queues; do
		case $grew in *" ${x#*/} "*) ;; *) echo "# ${x#*/} counted none of it"; bad=1 ;; esac
	done
	[ "$bad" = 0 ]
}

# The drive is bound with MSI-X on, a vector for its admin queue and one for
# each CPU's I/O queue: the guest's CPUs (dom0 gives the devices' guest two
# vCPUs; nvme sizes its queues by the possible CPUs, which are these while the
# guest's xl config sets no maxvcpus).
nvme_bound() { bound_to "$NVME" nvme && msix_on "$NVME" $(($(nproc) + 1)); }
nic_bound() { insmod "$MODDIR/e1000e.ko" && wait_for 30 bound_to "$NIC" e1000e; }

# The frontend's scan, for people reading the log (Documentation/benchmark.rst,
# "Bus scan"): the Rust frontend's summary lines, the C frontend's first lines
# and the last resource it claimed, with their times.
show_scan() {
	dmesg | grep -E 'pcifront .*(Installing PCI frontend|Creating PCI Frontend Bus|scanned [0-9]+ root)' |
		sed 's/^/# scan: /'
	dmesg | grep -E 'pcifront .*claiming resource' | tail -n 1 | sed 's/^/# scan: last: /'
}

domU_multi_tests() {
	ktap_check "$FRONT frontend loads" load_frontend
	ktap_check "the guest sees exactly the expected devices" devices_as_expected
	show_scan
	ktap_check "the two functions of one slot share it and keep their numbers" functions_share_slot
	ktap_check "the guest's root buses are the expected ones" roots_as_expected
	ktap_check "the guest published its view of the devices" publish_view
	NVME=$(guest_bdf_of 1b36:0010) NIC=$(guest_bdf_of 8086:10d3)
	echo "# NVMe at ${NVME:-nowhere}, NIC at ${NIC:-nowhere}"
	ktap_check "nvme driver loads" nvme_load
	wait_for 30 nvme_bound
	ktap_check "nvme binds the NVMe controller with MSI-X on, a vector for each of the $(nproc) CPU(s)' I/O queues" nvme_bound
	ktap_check "the namespace appears" wait_for 30 test -b /dev/nvme0n1
	ktap_check "a pattern written with direct I/O reads back the same" nvme_io
	ktap_check "the NVMe I/O queues' MSI-X vectors count direct I/O on each CPU" nvme_queues_counted
	ktap_check "e1000e loads and binds the NIC" nic_bound
	ktap_check "the NIC has MSI-X on" msix_on "$NIC" 1
	# The frontend's masked event channel with the round trips on a CPU other
	# than the one the channel is bound to (with one CPU, that one): the
	# signals taken there make no upcall either (cback-rustfront-devices:
	# every answer signalled).
	if [ "$FRONT" = rust ]; then
		ktap_check "answers make the guest no upcall, the round trips on a CPU other than its event channel's" \
			answers_elsewhere_make_no_upcall
	fi
}

# answers_make_no_upcall with the reads of the NVMe drive's config space on
# the first CPU that is not the frontend's event channel's.
answers_elsewhere_make_no_upcall() {
	local irq bound cpu=0
	irq=$(awk '$NF == "pcifront" { sub(":", "", $1); print $1 }' /proc/interrupts)
	bound=$(cat "/proc/irq/$irq/effective_affinity_list" 2>/dev/null)
	case $bound in
	"" | *[!0-9]*) echo "# IRQ ${irq:-none} (pcifront) is not bound to one CPU: '$bound'"; return 1 ;;
	esac
	[ "$bound" = 0 ] && [ "$(nproc)" -gt 1 ] && cpu=1
	echo "# pcifront's event channel: IRQ $irq, bound to CPU $bound; reads on CPU $cpu"
	[ "$(nproc)" = 1 ] || [ "$cpu" != "$bound" ] || return 1
	answers_make_no_upcall "/sys/bus/pci/devices/$NVME/config" "$cpu"
}

# ---- PCIe AER (xenpci.aer=rust or c, the backend; phase 2): dom0 injects errors into the NIC and
# asks the guest, through data/xenpci/aer, to check the NIC after a recovery
# ("check") and to unbind its driver ("unbind"); the guest answers in
# data/xenpci/aer-done. e1000e's handlers disable the device and its MSI-X
# (error_detected, which votes for a reset), enable the device again
# (slot_reset) and MSI-X (resume): a step that did not reach the driver
# leaves the NIC disabled or without MSI-X.

asked() { xs_is aer "$1"; }
msi_any() {
	n=$(ls "/sys/bus/pci/devices/$1/msi_irqs" 2>/dev/null | wc -l)
	echo "# $1: $n MSI vector(s), mode $(cat "/sys/bus/pci/devices/$1"/msi_irqs/* 2>/dev/null | sort -u | tr '\n' ' ')"
	[ "$n" -ge 1 ]
}
nic_enabled() { [ "$(cat "/sys/bus/pci/devices/$NIC/enable")" = 1 ]; }
nic_unbind() {
	echo "$NIC" > /sys/bus/pci/drivers/e1000e/unbind &&
		[ ! -e "/sys/bus/pci/devices/$NIC/driver" ]
}

domU_aer_tests() {
	NIC=$(guest_bdf_of 8086:10d3)
	wait_for 600 asked check || echo "# dom0 did not ask for the check after its recovery"
	ktap_check "AER: after the recovery, e1000e still drives the NIC" bound_to "$NIC" e1000e
	ktap_check "AER: slot_reset reached e1000e: the NIC is enabled again" nic_enabled
	if [ "$(cmdline_arg aer)" = rust ]; then
		ktap_check "AER: resume reached e1000e: the NIC has MSI-X on again" msix_on "$NIC" 1
	else
		# The C backend does not restore the NIC after dom0's reset: its
		# memory space is off, and MSI-X cannot be enabled (ENXIO).
		ktap_check "AER: resume reached e1000e: the NIC has interrupts again (MSI with the C backend)" \
			msi_any "$NIC"
	fi
	xenstore-write "$XS/aer-done" check
	wait_for 120 asked unbind || echo "# dom0 did not ask for the unbind"
	ktap_check "AER: e1000e unbinds from the NIC" nic_unbind
	xenstore-write "$XS/aer-done" unbind
}

# ---- Hot attach (xenpci.hotplug=N, phase 3 of the virtual-bus groups but the
# C pair's): dom0 detaches the NVMe drive (xl pci-detach) and attaches it
# again (xl pci-attach) N times. Each cycle, the guest answers in
# data/xenpci/gone once the drive went; dom0 writes data/xenpci/cycle after
# the attach, and the guest answers in data/xenpci/acked after its I/O.

nvme_ctrl() { ls "/sys/bus/pci/devices/$1/nvme" 2>/dev/null | head -n 1; }
nvme_has_ctrl() { [ -n "$(nvme_ctrl "$NVME")" ]; }
nvme_present() { [ -n "$(guest_bdf_of 1b36:0010)" ]; }
nvme_absent() { [ -z "$(guest_bdf_of 1b36:0010)" ]; }

# The attached drive appears, its driver binds, and a pattern written with
# direct I/O to its namespace reads back the same.
attached_io() {
	wait_for 60 nvme_present || { echo "# no NVMe device after the attach"; return 1; }
	NVME=$(guest_bdf_of 1b36:0010)
	wait_for 30 nvme_bound || { nvme_bound; return 1; }
	wait_for 30 nvme_has_ctrl || { echo "# no controller on $NVME"; return 1; }
	ns=/dev/$(nvme_ctrl "$NVME")n1
	wait_for 30 test -b "$ns" || { echo "# no $ns"; return 1; }
	seed=$(od -A n -t u8 -N 8 /dev/urandom | tr -d ' ')
	out=$(dio "$ns" 1 "$seed")
	rc=$?
	echo "# $NVME $ns: $out"
	[ "$rc" = 0 ]
}

stopped() { [ "$(xenstore-read "$XS/cycle" 2>/dev/null)" = stop ]; }
# dom0's announcement of attach $1: "$1" (whether or not the attach worked)
# or "stop" (dom0 gave up after a failed cycle).
announced() { [ "$(xenstore-read "$XS/cycle" 2>/dev/null)" = "$1" ] || stopped; }
gone_or_stopped() { nvme_absent || stopped; }

domU_hotplug_tests() {
	cycles=$(cmdline_arg hotplug 0)
	c=1
	while [ "$c" -le "$cycles" ]; do
		wait_for 120 gone_or_stopped
		if stopped; then
			ktap_test_fail "detach $c: not tried, dom0 stopped after a failed cycle"
			ktap_test_fail "attach $c: not tried, dom0 stopped after a failed cycle"
			c=$((c + 1))
			continue
		fi
		# Each answer carries the cycle's number and what the guest saw.
		if nvme_absent; then r=ok; else r=fail; fi
		ktap_check "detach $c: the NVMe drive is removed" test "$r" = ok
		xenstore-write "$XS/gone" "$c $r"
		wait_for 120 announced "$c" || echo "# dom0 did not announce attach $c"
		if stopped; then
			ktap_test_fail "attach $c: not tried, dom0 stopped after a failed cycle"
			c=$((c + 1))
			continue
		fi
		if attached_io; then r=ok; else r=fail; fi
		ktap_check "attach $c: the NVMe drive appears, binds and does direct I/O" test "$r" = ok
		xenstore-write "$XS/acked" "$c $r"
		c=$((c + 1))
	done
}

# ---- The virtual bus's 33rd slot (xenpci.slots=1, group_rust_slots): the
# guest starts with 32 slots; dom0 asks for a 33rd with xl pci-attach, which
# the backend refuses alone, then detaches the refused device and a device of
# the guest, and attaches the refused one again, into the freed slot. dom0
# writes each step to data/xenpci/step ("refused", "gone BDF", "back BDF");
# the guest answers in data/xenpci/done ("STEP ok" or "STEP fail").

# Every device's config space answers a read through the frontend (its
# vendor ID, read from the device, is the one sysfs cached at the scan).
configs_readable() {
	for d in /sys/bus/pci/devices/*; do
		[ -e "$d/config" ] || continue
		v=$(od -A n -t x2 -N 2 "$d/config" | tr -d ' ')
		[ "0x$v" = "$(cat "$d/vendor")" ] || { echo "# ${d##*/}: vendor ID reads '$v'"; return 1; }
	done
}
step_is() { [ "$(xenstore-read "$XS/step" 2>/dev/null)" = "$1" ]; }
# Waits for step $1, runs the rest as its check, answers.
slots_step() {
	step=$1 desc=$2
	shift 2
	if ! wait_for 300 step_is "$step"; then
		ktap_test_fail "$desc (dom0 never asked)"
		return
	fi
	if "$@"; then r=ok; else r=fail; fi
	ktap_check "$desc" test "$r" = ok
	xenstore-write "$XS/done" "$step $r"
}
absent() { [ ! -e "/sys/bus/pci/devices/$1" ]; }
back_as_testdev() {
	wait_for 60 test -e "/sys/bus/pci/devices/$1/config" || { echo "# $1 did not appear"; return 1; }
	[ "$(cat "/sys/bus/pci/devices/$1/vendor"):$(cat "/sys/bus/pci/devices/$1/device")" = 0x1b36:0x0005 ] &&
		devices_as_expected && configs_readable
}

all_as_before() { devices_as_expected && configs_readable; }
gone_asked() { case "$(xenstore-read "$XS/step" 2>/dev/null)" in "gone "*) true ;; *) false ;; esac; }

domU_slots_tests() {
	ktap_check "$FRONT frontend loads" load_frontend
	ktap_check "the guest sees its 32 slots, exactly the expected devices" devices_as_expected
	show_scan
	xenstore-write "$XS/ready" 1
	slots_step refused "the refused 33rd slot left the guest's 32 alone, and every device answers" \
		all_as_before
	if ! wait_for 300 gone_asked; then
		ktap_test_fail "the detached device leaves its slot (dom0 never asked)"
		ktap_test_fail "the refused device, attached again, takes the freed slot and answers (not tried)"
		return
	fi
	step=$(xenstore-read "$XS/step" 2>/dev/null)
	slot=${step#gone }
	echo "# dom0 asks: '$step'"
	slots_step "gone $slot" "the detached device leaves its slot" wait_for 60 absent "$slot"
	slots_step "back $slot" "the refused device, attached again, takes the freed slot and answers" \
		back_as_testdev "$slot"
	show_scan
}
