# SPDX-License-Identifier: GPL-2.0
#
# Guest checks of a passed-through device: the frontend finds it at the
# expected address and its identity and config header match what dom0 sees.

MODDIR=/lib/modules/$(uname -r)
GBDF=$(cmdline_arg guest_bdf 0000:00:00.0)
GDEV=/sys/bus/pci/devices/$GBDF

# The 16-bit little-endian value at offset $1 of the device's config space.
cfg16() { od -A n -t x2 -j "$1" -N 2 "$GDEV/config" | tr -d ' '; }

FRONT=$(cmdline_arg front c)

# Unbinding the Rust frontend from its xenbus device removes the buses (and the
# device) before the shared page and the event channel go; the module reference
# xenbus held for the binding is dropped, so the module then unloads.
# Only used while the toolstack leaves the connection alone (see
# domU_detach_tests).
rust_pcifront_unbind() {
	echo pci-0 > /sys/bus/xen/drivers/pcifront/unbind || return 1
	wait_for 30 test ! -e "$GDEV" &&
		no_pcifront_irq &&
		wait_for 10 rmmod pcifront
}

rust_pcifront_unload() {
	no_pcifront_irq && wait_for 10 rmmod pcifront
}

# The frontend's event channel (the IRQ named pcifront) was unbound with its
# device, which is gone: nothing of the connection outlives the binding.
# Checked before the module goes (the IRQ's name is the module's string).
no_pcifront_irq() {
	cat /proc/interrupts > /tmp/interrupts || { echo "# cannot read /proc/interrupts"; return 1; }
	grep -qw pcifront /tmp/interrupts || return 0
	echo "# an IRQ of the frontend is still bound:"
	grep -w pcifront /tmp/interrupts | sed 's/^/# /'
	return 1
}

# The bus scan timed the same way for both frontends, as an administrator's
# modprobe sees it: from just before the insmod of the frontend to its return,
# both marked in the kernel log (bench_scan reads the marks). The insmod
# returns once xenbus sees the frontend connected, which it looks for every
# 100 ms (wait_for_devices); either frontend connects after adding the
# devices it found. The marks are at loglevel 6 (info), which the test guests
# do not print on their console: no console output in the window.
mark() { { echo "<6>xenpci: $*" > /dev/kmsg; } 2>/dev/null; return 0; }

load_frontend() {
	local rc
	mark "loading the $FRONT frontend"
	case $FRONT in
		c) insmod "$MODDIR/xen-pcifront.ko" ;;
		rust) insmod "$MODDIR/pcifront.ko" ;;
		*) false ;;
	esac
	rc=$?
	mark "loaded the $FRONT frontend"
	return $rc
}

# The other frontend (the C one for the Rust one, and the reverse) refuses to
# load while this one holds the device and the MSI hooks, and leaves the hooks
# alone (the MSI checks follow). The C one used to take the hooks, fail to
# register its driver (the name is taken) and leave them pointing into its
# freed module.
twin_refused() {
	local twin=pcifront mod=pcifront
	[ "$FRONT" = rust ] && twin=xen-pcifront mod=xen_pcifront
	if insmod "$MODDIR/$twin.ko" 2>/dev/null; then
		echo "# $twin loaded beside the $FRONT frontend"
		rmmod "$twin"
		return 1
	fi
	dmesg | grep -E 'PCI frontend|already registered' | tail -n 2 | sed 's/^/# /'
	dmesg | grep -q 'another PCI frontend' || { echo "# $twin said nothing of the other frontend"; return 1; }
	! grep -q "^$mod " /proc/modules
}

same() {
	[ -n "$2" ] || { echo "# nothing to compare with"; return 1; }
	[ "$1" = "$2" ] || { echo "# got '$1', want '$2'"; return 1; }
}

# One second of repeated reads of the ID dword: every read returns dom0's
# vendor and device IDs (a read that failed would return 0xffffffff).
cfgbench_clean() {
	want=$(printf '0x%x' $(( ($(cmdline_arg device 0) << 16) | $(cmdline_arg vendor 0) )))
	out=$(cfgbench "$GDEV/config" 1 0) || return 1
	echo "# $out"
	case "$out" in *" value=$want "*" mismatches=0 "*) return 0 ;; esac
	echo "# want value=$want and no mismatch"
	return 1
}

# The bytes of the 64-byte header that every backend passes through unchanged
# (IDs, revision and class, header type, BAR0, subsystem IDs, capability
# pointer, interrupt pin) are dom0's (xenpci.hdr= carries dom0's header).
HDR_SAME="0 1 2 3 8 9 10 11 14 16 17 18 19 44 45 46 47 52 61"
header_matches() {
	got=$(od -A n -t x1 -N 64 -v "$GDEV/config" | tr -d '\n')
	want=$(cmdline_arg hdr)
	[ ${#want} = 128 ] || { echo "# no xenpci.hdr= from dom0"; return 1; }
	bad=0
	set -- $got
	i=0
	for b in "$@"; do
		case " $HDR_SAME " in
		*" $i "*)
			w=${want:$((i * 2)):2}
			[ "$b" = "$w" ] || { echo "# offset $i: guest reads $b, dom0 $w"; bad=1; }
			;;
		esac
		i=$((i + 1))
	done
	[ "$i" = 64 ] || { echo "# read $i bytes of the header"; return 1; }
	[ "$bad" = 0 ]
}

# The Rust frontend's statistics of its connection (debugfs; stats.rs in the
# driver) count its round trips, and a write clears them: cleared (fewer
# than 16 just after), then a read of the 64-byte header through sysfs (16
# round trips at least: busybox's od reads through stdio, so the kernel
# reads the whole 256-byte config space), all answered, and no round trip
# without an answer.
FRONT_STATS=/sys/kernel/debug/pcifront/pci-0
front_stat() { sed -n "s/^$1 //p" "$FRONT_STATS"; }
front_stats_count() {
	local a b
	[ -r "$FRONT_STATS" ] || { echo "# no $FRONT_STATS"; return 1; }
	echo 0 > "$FRONT_STATS" || return 1
	a=$(front_stat answered)
	od -A n -t x4 -N 64 "$GDEV/config" > /dev/null || return 1
	b=$(front_stat answered)
	sed 's/^/# /' "$FRONT_STATS"
	[ "$a" -lt 16 ] && [ $((b - a)) -ge 16 ] &&
		[ "$(front_stat timed_out)" = 0 ] && [ "$(front_stat unanswered)" = 0 ]
}

# And whether the two ends agreed on quiet answers (feature-quiet-answers,
# which the Rust backend offers and the C one does not; xenpci.back= says
# which backend this is): 16 reads more, with the counts cleared first. With
# the Rust backend most posts watched for their answers and most answers came
# without an event (events: what the channel's handler took), so fewer than
# half of the round trips had one; with the C backend no post watched, every
# answer is signalled, and each answer's signal was either taken off the
# channel by its round trip or counted late (signals_taken + signals_late =
# answered), most of them taken. (Not that the frontend masks the channel
# meanwhile, so that a taken signal makes no upcall: KUnit's
# rust_xen_evtchn.masked_channel checks that Irq::mask masks,
# answers_make_no_upcall below that the frontend's mask saves the upcall.)
quiet_as_offered() {
	local back offered
	back=$(cmdline_arg back '')
	echo 0 > "$FRONT_STATS" || return 1
	od -A n -t x4 -N 64 "$GDEV/config" > /dev/null || return 1
	offered=$(front_stat quiet_answers_offered)
	echo "# backend $back: quiet_answers_offered=$offered answered=$(front_stat answered) watched=$(front_stat watched) events=$(front_stat events) signals_taken=$(front_stat signals_taken) signals_late=$(front_stat signals_late) answered_spinning=$(front_stat answered_spinning)"
	case $back in
	rust)
		[ "$offered" = 1 ] && [ "$(front_stat answered)" -ge 16 ] &&
			[ $(($(front_stat watched) * 2)) -ge "$(front_stat answered)" ] &&
			[ $(($(front_stat events) * 2)) -lt "$(front_stat answered)" ]
		;;
	c)
		[ "$offered" = 0 ] && [ "$(front_stat watched)" = 0 ] &&
			[ $(($(front_stat signals_taken) + $(front_stat signals_late))) = "$(front_stat answered)" ] &&
			[ $(($(front_stat signals_taken) * 2)) -ge "$(front_stat answered)" ]
		;;
	*) echo "# no xenpci.back="; false ;;
	esac
}

# Xen's upcalls into this guest and the IRQs they handled, since boot:
# "UPCALLS IRQS". A PV guest counts its upcalls (HYP) in /proc/stat's
# interrupt total but has no row for them in /proc/interrupts: the total less
# every row there is the upcalls; the numbered rows are the IRQs. (Xen's IPIs
# count in both an IRQ's row and an arch row, RES, CAL or IWI, both shown.)
upcalls_and_irqs() {
	awk 'FNR == NR { if ($1 == "intr") t = $2; next }
		{ a = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) a += $i; all += a
		  if ($1 ~ /^[0-9]+:$/) s += a }
		END { if (t == "") exit 1; printf "%d %d\n", t - all, s }' /proc/stat /proc/interrupts
}

# The frontend masks its event channel for each round trip and takes the
# answer's signal off it (roundtrip.rs): an answer, signalled or not, makes
# no upcall. One second of reads: the upcalls that found no IRQ to handle
# (a timer tick's handles the timer's) and those that ran the frontend's own
# handler (events: a signal that came after its round trip) stay under a
# quarter of the round trips. Behind the C backend, which signals every
# answer, an unmasked channel makes one per round trip, which finds the
# pending flag the frontend has already cleared or, if it runs first (on
# another vCPU), runs the handler (behind the Rust backend, whose answers to
# a spinning round trip come unsignalled, the check would pass without the
# mask).
# Reads $1 (default the device's config space), on CPU $2 if given.
answers_make_no_upcall() {
	local config=${1:-$GDEV/config} cpu=${2:-} before after answered events upcalls irqs
	echo 0 > "$FRONT_STATS" || return 1
	before=$(upcalls_and_irqs) || { echo "# no interrupt total in /proc/stat"; return 1; }
	${cpu:+taskset -c "$cpu"} cfgbench "$config" 1 0 > /dev/null || return 1
	after=$(upcalls_and_irqs) || return 1
	answered=$(front_stat answered)
	events=$(front_stat events)
	set -- $before $after
	upcalls=$(($3 - $1))
	irqs=$(($4 - $2))
	echo "# $answered round trips, $upcalls upcalls, $irqs IRQs handled: $((upcalls - irqs)) upcalls with no IRQ, $events of the frontend's handler"
	[ "$answered" -ge 200 ] && [ $(((upcalls - irqs + events) * 4)) -lt "$answered" ]
}

# What the guest sees, for people reading the log (and for `make run`).
show_guest_view() {
	echo "# guest view of its PCI devices:"
	for d in /sys/bus/pci/devices/*; do
		echo "#   ${d##*/} vendor=$(cat $d/vendor) device=$(cat $d/device) class=$(cat $d/class) irq=$(cat $d/irq) driver=$(basename "$(readlink $d/driver 2>/dev/null)" 2>/dev/null)"
		echo "#   ${d##*/} BAR0 $(head -n 1 $d/resource)"
	done
	dmesg | grep 'pcifront' | sed 's/^/#   /'
	echo "#   config space of $GBDF:"
	od -A x -t x4 -N 64 "$GDEV/config" | sed 's/^/#     /'
}

# Writes that the backend must keep from the hardware (dom0 checks it):
# 0xffff to the vendor ID, a non-sizing value to BAR0, the Command register
# without Memory Space. Busybox printf takes octal escapes.
# The Interrupt Line (0x3c) is a read-write register in the hardware that every
# backend virtualises: a write the backend let through would change it there.
protected_writes() {
	printf '\132' | dd of="$GDEV/config" bs=1 seek=60 count=1 conv=notrunc 2>/dev/null || return 1
	printf '\377\377' | dd of="$GDEV/config" bs=2 seek=0 count=1 conv=notrunc 2>/dev/null || return 1
	printf '\000\120\064\022' | dd of="$GDEV/config" bs=4 seek=4 count=1 conv=notrunc 2>/dev/null || return 1
	cmd=$(( 0x$(cfg16 4) & ~2 ))
	printf "\\$(printf %03o $((cmd & 0xff)))\\$(printf %03o $((cmd >> 8)))" |
		dd of="$GDEV/config" bs=2 seek=2 count=1 conv=notrunc 2>/dev/null || return 1
	# xenpci.plainhw=1 (permissive granted): a second of writes of 0x60's value
	# back to it, which the backend lets through and may serve on its interrupt
	# (dom0 counts those).
	if [ "$(cmdline_arg plainhw 0)" = 1 ]; then
		out=$(cfgbench "$GDEV/config" 1 0x60 4 write)
		echo "# $out"
		case $out in *" mismatches=0 "*) ;; *) return 1 ;; esac
	fi
	# xenpci.explain=1: registers no field covers (edu has nothing there), which
	# the backend drops and explains: 0x60 (4 bytes), 0x62 (2 bytes, within
	# 0x60's: not explained again), 0x64 (4 bytes). dom0 reads the explanations.
	[ "$(cmdline_arg explain 0)" = 1 ] || return 0
	printf '\001\002\003\004' | dd of="$GDEV/config" bs=4 seek=24 count=1 conv=notrunc 2>/dev/null &&
		printf '\005\006' | dd of="$GDEV/config" bs=2 seek=49 count=1 conv=notrunc 2>/dev/null &&
		printf '\007\010\011\012' | dd of="$GDEV/config" bs=4 seek=25 count=1 conv=notrunc 2>/dev/null
}

domU_device_tests() {
	# Either frontend takes the guest's one PCI device as it loads and cannot
	# be unloaded while bound (xenbus holds a module reference), and the
	# backend does not reconnect to a frontend that closed: only the frontend
	# under test is loaded.
	ktap_test_result "$FRONT frontend loads" load_frontend
	ktap_test_result "device appears at $GBDF" wait_for 30 test -e "$GDEV/config"
	if [ ! -e "$GDEV/config" ]; then
		ls /sys/bus/pci/devices/ | sed 's/^/# present: /'
		dmesg | grep -i pci | tail -20 | sed 's/^/# /'
		return
	fi
	show_guest_view
	ktap_test_result "vendor ID matches dom0" same "$(cat $GDEV/vendor)" "$(cmdline_arg vendor)"
	ktap_test_result "device ID matches dom0" same "$(cat $GDEV/device)" "$(cmdline_arg device)"
	ktap_test_result "class matches dom0" same "$(cat $GDEV/class)" "$(cmdline_arg class)"
	ktap_test_result "config header vendor field matches" same "0x$(cfg16 0)" "$(cmdline_arg vendor)"
	ktap_test_result "config header device field matches" same "0x$(cfg16 2)" "$(cmdline_arg device)"
	ktap_test_result "config header matches dom0's where it is passed through" header_matches
	ktap_test_result "BAR0 address matches dom0" \
		same "$(head -n 1 $GDEV/resource | cut -d' ' -f1)" "$(cmdline_arg bar0)"
	ktap_test_result "repeated config reads are stable" cfgbench_clean
	if [ "$FRONT" = rust ]; then
		ktap_test_result "the frontend's statistics count its round trips and clear" front_stats_count
		ktap_test_result "the frontend watched for its answers as the backend offered, and the signalled ones' signals were taken" \
			quiet_as_offered
		ktap_test_result "answers make the guest no upcall (its event channel masked for the round trip)" \
			answers_make_no_upcall
	fi
	# Before the guest's writes to BAR0 and Command below, and while the
	# frontend still has the device.
	if [ "$(cmdline_arg irq 0)" = 1 ]; then
		ktap_test_result "the other frontend refuses to load beside this one" twin_refused
		domU_irq_tests
	fi
	if [ "$(cmdline_arg protect 0)" = 1 ]; then
		irqline=$(od -A n -t u1 -j 60 -N 1 "$GDEV/config" | tr -d ' ')
		ktap_test_result "guest writes Interrupt Line, vendor ID, BAR0 and Command$([ "$(cmdline_arg explain 0)" = 1 ] && echo ", and 0x60 to 0x67") (dom0 checks the hardware)" protected_writes
		ktap_test_result "vendor ID still reads as dom0's after the write" same "0x$(cfg16 0)" "$(cmdline_arg vendor)"
		ktap_test_result "Interrupt Line still reads $irqline after the write of 90" \
			same "$(od -A n -t u1 -j 60 -N 1 "$GDEV/config" | tr -d ' ')" "$irqline"
	fi
	if [ "$FRONT" = rust ] && [ "$(cmdline_arg detach 0)" != 1 ] && [ "$(cmdline_arg bench 0)" = 0 ]; then
		ktap_test_result "rust pcifront unbinds (device gone) and unloads" rust_pcifront_unbind
	fi
}

# After the last device is detached, libxl tears the whole connection down and
# the guest's xenbus device goes with its xenstore node. The test waits for that
# instead of unbinding: a sysfs unbind racing that removal can deadlock in
# xenbus itself, whatever the driver (Documentation/status.rst, Known problems).
domU_detach_tests() {
	ktap_test_result "device removed after xl pci-detach" wait_for 60 test ! -e "$GDEV"
	ktap_test_result "xenbus device removed by the toolstack after the last detach" \
		wait_for 60 test ! -e /sys/bus/xen/devices/pci-0
	if [ "$FRONT" = rust ]; then
		ktap_check "rust pcifront unloads, its event channel unbound" rust_pcifront_unload
	fi
}
