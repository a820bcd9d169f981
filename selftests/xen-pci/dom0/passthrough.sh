# SPDX-License-Identifier: GPL-2.0
#
# Passthrough groups: a PV guest gets the device under test from a backend
# (C xen-pciback or Rust pciback) and checks it with a frontend (C
# xen-pcifront or Rust pcifront), by one of two routes:
#   xl      xl pci-assignable-add + xl create with pci=[...], then xl pci-detach
#   manual  the device bound through sysfs, the guest created paused and the
#           xenstore nodes written as libxl writes them (tests the protocol
#           alone, needs no IOMMU)
# The guest reports KTAP lines twice: on its console and under its xenstore
# data/xenpci/ directory. The xenstore copy is used; the console is the fallback
# (and a missing console stream is reported, not failed).

GUEST=domU
GUEST_LOG=/var/log/xen/console/guest-$GUEST.log

xs_guest() { echo "/local/domain/$1/data/xenpci"; }

# The Rust backend seizes the device at load (hide=); the rust-sysfs group
# covers new_slot, bind and xl pci-assignable-add.
# BACKEND_ARGS adds module parameters (passthrough=1).
backend_load() {
	case $1 in
		c) modprobe xen-pciback ${BACKEND_ARGS:-} ;;
		rust)
			[ -e "/sys/bus/pci/devices/$BDF/driver" ] &&
				echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
			if [ "${HIDE:-1}" = 0 ]; then
				# Left to xl pci-assignable-add (new_slot, bind).
				insmod "/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko" ${BACKEND_ARGS:-}
			else
				insmod "/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko" \
					"hide=($BDF)" ${BACKEND_ARGS:-} &&
					bound_to_pciback
			fi ;;
	esac
}

backend_unload() {
	case $1 in
		c) rmmod xen-pciback ;;
		rust) rmmod pciback ;;
	esac
}

# Expected values the guest compares against, from dom0's view of the device
# (hdr: its 64-byte config header in hex).
guest_expect() {
	local d=/sys/bus/pci/devices/$BDF
	printf 'xenpci.vendor=%s xenpci.device=%s xenpci.class=%s xenpci.bar0=%s xenpci.hdr=%s' \
		"$(cat $d/vendor)" "$(cat $d/device)" "$(cat $d/class)" \
		"$(head -n 1 $d/resource | cut -d' ' -f1)" \
		"$(od -A n -t x1 -N 64 -v "$d/config" | tr -d ' \n')"
}

# The guest's console log is kept for the runner's scan (run-dom0.sh): each
# guest starts with a fresh file, the last one's moved aside.
rotate_guest_log() {
	[ -f "$GUEST_LOG" ] && mv -f "$GUEST_LOG" "$GUEST_LOG.$(date +%s%N)"
	return 0
}

# The guests' tsc_mode (xl.cfg) if dom0's command line has
# xenpci.guest_tsc=MODE (run-xen.sh's GUEST_TSC), else Xen's default. Under
# TCG the emulated CPU has no invariant TSC, so by default Xen emulates every
# rdtsc of a PV guest (a trap per clock read); "native" lets the guest read
# the TSC itself, as Xen's default does on a host with an invariant TSC.
GUEST_TSC=$(cmdline_arg guest_tsc)

# The xl config of the test guest: $1 is added to its kernel command line, $2
# is its memory in MiB (default 192), $3 its vCPUs (default 1).
guest_cfg() {
	cat <<CFG
name = "$GUEST"
type = "pv"
kernel = "/xenpci/vmlinuz-domU"
ramdisk = "/xenpci/domU.cpio"
extra = "console=hvc0 loglevel=6 kunit.enable=0 $1"
memory = ${2:-192}
vcpus = ${3:-1}
on_poweroff = "destroy"
on_crash = "destroy"
CFG
	[ -z "$GUEST_TSC" ] || echo "tsc_mode = \"$GUEST_TSC\""
}

write_guest_cfg() {
	local front=$1 detach=$2
	guest_cfg "xenpci.front=$front xenpci.back=${back:-} xenpci.detach=$detach xenpci.guest_bdf=${GUEST_BDF:-0000:00:00.0} xenpci.protect=${PROTECT:-0} xenpci.plainhw=${PLAINHW:-0} xenpci.explain=${EXPLAIN:-0} xenpci.irq=${IRQ:-0} $(guest_expect)" \
		> /tmp/$GUEST.cfg
}

# What libxl_pci.c does for a PV guest, done by hand (MODE=manual).
manual_create() {
	local did be fe
	if [ "$(driver_of "$BDF")" != pciback ]; then
		[ -e "/sys/bus/pci/devices/$BDF/driver" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
		echo "$BDF" > /sys/bus/pci/drivers/pciback/new_slot
		echo "$BDF" > /sys/bus/pci/drivers/pciback/bind
	fi
	# The guest's access to the BARs and the interrupt line.
	while read -r start end flags; do
		s=$((start)); e=$((end)); f=$((flags))
		[ $s -eq 0 ] && continue
		if [ $((f & 0x100)) -ne 0 ]; then
			echo "ioports = [ '$(printf %x $s)-$(printf %x $e)' ]" >> /tmp/$GUEST.cfg
		elif [ $((f & 0x200)) -ne 0 ]; then
			echo "iomem = [ '$(printf %x $((s >> 12))),$(printf %x $(((e - s + 1 + 4095) >> 12)))' ]" >> /tmp/$GUEST.cfg
		fi
	done < "/sys/bus/pci/devices/$BDF/resource"
	irq=$(cat "/sys/bus/pci/devices/$BDF/irq")
	[ "$irq" != 0 ] && echo "irqs = [ $irq ]" >> /tmp/$GUEST.cfg
	timeout 60 xl create -p /tmp/$GUEST.cfg || return 1
	did=$(xl domid $GUEST)
	be=/local/domain/0/backend/pci/$did/0
	fe=/local/domain/$did/device/pci/0
	xenstore-write "$be/frontend" "$fe" "$be/frontend-id" "$did" "$be/online" "${ONLINE:-1}" "$be/state" 1 \
		"$be/domain" "$GUEST" "$be/key-0" "$BDF" "$be/dev-0" "$BDF" \
		"$be/opts-0" "msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict" \
		"$be/state-0" 1 "$be/num_devs" 1 || return 1
	xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 || return 1
	xenstore-chmod -r "$be" n0 "r$did" || return 1
	xenstore-chmod -r "$fe" "n$did" r0 || return 1
	xl unpause $GUEST
}

# The hardware's config dword at offset $1, as dom0 reads it.
hw_dword() { od -A n -t x4 -j "$1" -N 4 "/sys/bus/pci/devices/$BDF/config" | tr -d ' '; }
# Interrupt Line (a read-write register in the hardware), Command, BAR0.
hw_snapshot() { echo "$(hw_dword 60) $(hw_dword 4) $(hw_dword 16)"; }
same_hw() {
	[ -n "$1" ] || { echo "# no reading of the hardware"; return 1; }
	[ "$1" = "$2" ] || { echo "# hardware has '$2', had '$1'"; return 1; }
}
# The Memory Space bit of the hardware's Command register did not change.
same_mem_bit() {
	[ $((0x$1 & 2)) = $((0x$2 & 2)) ] || { echo "# command was 0x$1, is 0x$2"; return 1; }
}

# Guest writes to protected fields (PROTECT=1, see domU/device.sh) must not reach
# the hardware: the Interrupt Line, BAR0 with a non-sizing value, Command
# without Memory Space. Each is a register the hardware would change on a
# write. (The guest's write to the read-only vendor ID is checked in the
# guest, by reading it back.)
protected_checks() {
	local before=$1 after
	after=$(hw_snapshot)
	echo "# hardware before the guest: $before; after: $after"
	set -- $before $after
	ktap_check "guest write to the Interrupt Line did not reach the hardware" same_hw "$1" "$4"
	ktap_check "guest write to the command register left Memory Space alone" same_mem_bit "$2" "$5"
	ktap_check "guest write to BAR0 did not reach the hardware" same_hw "$3" "$6"
	[ "${PLAINHW:-0}" = 1 ] &&
		ktap_check "the guest's permissive writes to 0x60 were served on the event channel's interrupt" \
			plain_writes_on_interrupt
}

# PLAINHW=1 (the Rust backend, permissive granted): the guest wrote 0x60, a
# register of edu no field covers, for a second (domU/device.sh
# protected_writes): permissive, each write is plain and reaches the device,
# and more than 100 of them (about 1000 a second here) were served on the
# event channel's interrupt (its other writes, a handful, could not make
# that many).
plain_writes_on_interrupt() {
	local w
	w=$(sed -n 's/^on_interrupt_writes \([0-9]*\)$/\1/p' "/sys/kernel/debug/pciback/$BDF") || return 1
	echo "# on_interrupt_writes $w"
	[ "${w:-0}" -gt 100 ]
}

# IRQ=1: the guest tested interrupts (domU/irq.sh). What dom0 knows of the
# device's interrupts, for reading the log: its IRQ, dom0's handlers on that
# line (the C backend's fake handler for shared lines, "xen-pciback[BDF]") and
# its MSI state.
# Interrupts dom0 has received on the device's line (/proc/interrupts keeps
# counting across the handler's free and request: a base is taken before the
# guest starts).
irq_count() {
	local irq
	irq=$(cat "/sys/bus/pci/devices/$BDF/irq")
	awk -v i="$irq:" '$1 == i { for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k } END { print s + 0 }' \
		/proc/interrupts
}
# The Rust pciback's dom0 INTx handler claimed the guest's INTx interrupts
# (irq_handlers: BDF:on|off:acking|not acking:COUNT, counted since the seize):
# every one dom0 received on the line since the guest started, and at least
# one. Not always the 5 the guest raised: dom0 was seen to receive 4 of them
# (Xen's delivery to dom0, not the handler: /proc/interrupts counted 4 too).
intx_claimed() {
	local line n got
	line=$(grep "^$BDF:" "$DRV/irq_handlers")
	got=$(( $(irq_count) - ${INTX_BASE:-0} ))
	echo "# irq_handlers: $line; dom0 received $got on the line since the guest started"
	n=${line##*:}
	[ "${n:-0}" -ge 1 ] && [ "${n:-0}" = "$got" ]
}
irq_report() {
	local irq
	irq=$(cat "/sys/bus/pci/devices/$BDF/irq")
	echo "# dom0: $BDF irq $irq, msi_bus $(cat "/sys/bus/pci/devices/$BDF/msi_bus" 2>/dev/null)"
	grep -E "^ *$irq:|pciback" /proc/interrupts | sed 's/^/#   /'
	lspci -vv -s "$BDF" 2>/dev/null | grep -E 'Interrupt:|MSI:' | sed 's/^/#   /'
}

# Print the guest's KTAP result lines $2..$3 from xenstore; a line missing
# there becomes a failure of its own (the lines after it still count).
guest_results() {
	local did=$1 from=$2 to=$3 i line dir keys=() lines=()
	dir=$(xs_guest "$did")
	for ((i = from; i <= to; i++)); do keys+=("$dir/tap/$i"); done
	[ ${#keys[@]} -gt 0 ] || return 0
	# One xenstore-read for them all (a process costs about 0.1 s under
	# TCG); it fails as a whole when a key is missing: then key by key.
	if mapfile -t lines < <(timeout 30 xenstore-read "${keys[@]}" 2>/dev/null; echo "rc=$?") &&
		[ "${lines[-1]}" = rc=0 ] && [ ${#lines[@]} = $((${#keys[@]} + 1)) ]; then
		printf '%s\n' "${lines[@]:0:${#keys[@]}}"
		return 0
	fi
	for ((i = from; i <= to; i++)); do
		if line=$(timeout 10 xenstore-read "$dir/tap/$i" 2>/dev/null); then
			echo "$line"
		else
			echo "not ok $i guest result $i is missing from xenstore"
		fi
	done
}

# Arguments of ktap_test_result are split on spaces: tests with arguments that
# contain spaces are functions.
guest_gone() { ! xl domid "$GUEST" >/dev/null 2>&1; }

# xl destroy of guest $1, which holds $2 PCI devices (default 1), and how long
# it took. libxl detaches each device from the running guest first, waiting up
# to 10 s twice for the backend (libxl__wait_for_backend) while the guest's
# drivers let go, then resets and deassigns it: 60 s and 30 s per device bound
# that on a slow machine. The caller checks that the guest is gone.
destroy_guest() {
	local t=$SECONDS n=${2:-1} rc
	timeout $((60 + 30 * n)) xl destroy "$1"; rc=$?
	echo "# xl destroy $1 ($n device(s)) took $((SECONDS - t)) s"
	return $rc
}

guest_count() { timeout 10 xenstore-read "$(xs_guest "$1")/$2" 2>/dev/null; }

# The backend device of guest $1 after its frontend closed: still there and
# Closed (its node is online: a new frontend may come), or gone (offline).
be_dev() { echo "/sys/bus/xen-backend/devices/pci-$1-0"; }
be_kept() {
	wait_for 20 be_state_is "$GUEST" 6 || return 1
	[ -e "$(be_dev "$1")" ] || { echo "# $(be_dev "$1") is gone"; return 1; }
}

# Re-emit guest result lines as results of this group: exactly $1 of them
# (the guest's plan), the ones it did not report as failures.
emit_guest_lines() {
	local want=$1 line desc n=0
	while IFS= read -r line; do
		case "$line" in
			"ok "* | "not ok "*) [ "$n" -lt "$want" ] || continue; n=$((n + 1)) ;;
		esac
		case "$line" in
			"ok "*"# SKIP"*) desc=${line#ok }; desc=${desc#* }; ktap_test_skip "guest: ${desc%%# SKIP*}" ;;
			"ok "*) desc=${line#ok }; desc=${desc#* }; ktap_test_pass "guest: $desc" ;;
			"not ok "*) desc=${line#not ok }; desc=${desc#* }; ktap_test_fail "guest: $desc" ;;
			"#"*) echo "$line" ;;
		esac
	done
	while [ "$n" -lt "$want" ]; do
		n=$((n + 1))
		ktap_test_fail "guest: result $n of $want was never reported"
	done
}

# The guest reported exactly $2 results for the phase (PHASE_N of collect_phase).
guest_reported() {
	[ "$PHASE_N" = "$1" ] || { echo "# the guest reported $PHASE_N results, its plan is $1"; return 1; }
}

# The guest's lines for phase $2 (1: device checks, 2: after detach or AER,
# 3: hot attach), from
# xenstore, or from the console log when xenstore has none. Sets PHASE_N to
# the number of lines the guest reported for the phase.
collect_phase() {
	local did=$1 phase=$2 n first=1 start=XENPCI-DOMU-START
	PHASE_N=0
	n=$(guest_count "$did" "phase$phase")
	# Fault injection for the harness's own test: xenpci.break=gap deletes
	# the guest's third result before dom0 reads them.
	[ "$(cmdline_arg break)" = gap ] && [ "$phase" = 1 ] &&
		timeout 10 xenstore-rm "$(xs_guest "$did")/tap/3"
	if [ "$phase" -gt 1 ]; then
		first=$(( $(guest_count "$did" "phase$((phase - 1))") + 1 ))
		start=XENPCI-DOMU-PHASE$((phase - 1))
	fi
	if [ -n "$n" ]; then
		grep -q "XENPCI-DOMU-PHASE$phase" "$GUEST_LOG" 2>/dev/null ||
			echo "# note: the guest console stream lacks phase $phase (lab flake); results taken from xenstore"
		PHASE_N=$((n - first + 1))
		guest_results "$did" "$first" "$n"
	elif grep -q "XENPCI-DOMU-PHASE$phase" "$GUEST_LOG" 2>/dev/null; then
		echo "# note: the guest's xenstore results are missing; results taken from its console"
		sed -n "/$start/,/XENPCI-DOMU-PHASE$phase/p" "$GUEST_LOG" |
			tr -d '\r' | grep -E '^(not )?ok [0-9]+ ' > /tmp/console-lines
		PHASE_N=$(wc -l < /tmp/console-lines)
		cat /tmp/console-lines
	else
		# The phase did not end: show how far the guest got (as comments,
		# so they are not counted) and what xenstore holds for the link.
		guest_results "$did" "$first" $((first + 30)) | sed 's/^/# unfinished phase: /'
		xenstore_link "$did" | sed 's/^/# /'
		return 1
	fi
}

# The states of the PCI connection of guest $1, for diagnosis.
xenstore_link() {
	local be=/local/domain/0/backend/pci/$1/0 fe=/local/domain/$1/device/pci/0 k
	for k in "$be/state" "$be/num_devs" "$be/state-0" "$fe/state"; do
		echo "$k = $(timeout 10 xenstore-read "$k" 2>&1)"
	done
}

# Poll a command until it succeeds or $1 seconds of wall time pass (wait_for
# counts polls, and each poll of xl or xenstore-read takes a while under TCG).
wait_secs() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		nap 0.5
	done
}

# Sets GUEST_DID to the guest's domain ID; ends the group (its results fall
# short of its plan) if there is no guest.
find_guest() {
	GUEST_DID=$(xl domid $GUEST 2>/dev/null)
	if [ -z "$GUEST_DID" ]; then
		ktap_exit_fail_msg "no guest"
	fi
}

# Streams the guest's console into dom0's, once per guest (prefixed "(domU) ").
stream_guest_console() {
	[ "${STREAMING:-}" = "$GUEST_LOG" ] && return
	tail -F "$GUEST_LOG" 2>/dev/null | sed -u 's/^/(domU) /' &
	STREAMING=$GUEST_LOG
}
stop_guest_console() {
	busybox pkill -f "tail -F $GUEST_LOG" 2>/dev/null
	STREAMING=
}

# guest_phase PHASE DID SECS DESC WANT: streams the guest's console, waits up
# to SECS s for its results of PHASE and emits them after a result described
# as DESC: that the guest reported exactly WANT results (its plan). Always
# 1 + WANT results.
guest_phase() {
	local phase=$1 did=$2 secs=$3 desc=$4 want=$5
	stream_guest_console
	wait_secs "$secs" guest_count "$did" "phase$phase" ||
		wait_for 5 grep -q "XENPCI-DOMU-PHASE$phase" "$GUEST_LOG"
	collect_phase "$did" "$phase" > /tmp/lines || echo "# the guest reported nothing for phase $phase"
	ktap_check "$desc" guest_reported "$want"
	emit_guest_lines "$want" < /tmp/lines
}
guest_phase1() { guest_phase 1 "$@"; }

# Per-assignment grants (GRANTS=1): the Rust pciback ends them when the guest
# releases the device (C keeps permissive for the next guest).
grant_both() {
	echo "$BDF" > "$DRV/permissive" && echo "$BDF" > "$DRV/allow_interrupt_control" &&
		[ "$(cat "$DRV/permissive")" = "$BDF" ] && [ "$(cat "$DRV/allow_interrupt_control")" = "$BDF" ]
}
grants_gone() { [ -z "$(cat "$DRV/permissive" "$DRV/allow_interrupt_control")" ]; }

# VERBOSE=1 (the Rust backend): verbose_request logs each request of the
# guest with its answer, at most 10 lines in 5 s (the guest's cfgbench makes
# thousands), and says how many it dropped.
verbose_lines() { dmesg | grep -c "pciback: guest $1 [0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-7] "; }
verbose_logged() {
	dmesg | grep -q "pciback: guest $1 0000:00:00.0 conf_read (cmd 0) offset 0x0 size [124] value 0x0: err 0 value 0x" ||
		{ echo "# no conf_read line of guest $1:"; dmesg | grep "pciback: guest" | tail -n 3 | sed 's/^/#   /'; return 1; }
}
# (The guest's cfgbench alone makes thousands of requests in a second: without
# the limit the count is far above the bound.)
verbose_limited() {
	local n secs=$((SECONDS - VERBOSE_START))
	n=$(verbose_lines "$1")
	echo "# $n request lines of guest $1 in $secs s; $(dmesg | grep -c "pciback: verbose_request: guest $1: [0-9]* lines dropped") 'dropped' lines"
	[ "$n" -ge 10 ] && [ "$n" -le $((10 * (secs / 5 + 2))) ]
}

# EXPLAIN=1 (the Rust backend, not permissive; with PROTECT=1): the guest
# wrote 0x04030201 to 0x60, 0x0605 to 0x62 and 0x0a090807 to 0x64, registers of
# edu no field covers (domU/device.sh). A write dropping bytes not explained
# before is explained (0x60, 0x64; not 0x62, within 0x60's bytes): what was written, the device's count of denied writes (0x64's
# is two more than 0x60's: 0x62 counts, unexplained), and the quirks line that
# lets it through.
explained() { klog | grep "pciback $BDF: guest [0-9]* wrote $1 ($2 bytes at $3); the bytes no field covers were dropped (permissive is off; denied write [0-9]* of this device); to let them through: echo $BDF-$4 > /sys/bus/pci/drivers/pciback/quirks$"; }
denied_count() { sed -n 's/.*; denied write \([0-9]*\) of this device.*/\1/p'; }
denied_explained() {
	local l60 l64 n c60 c64
	n=$(klog | grep -c "pciback $BDF: guest [0-9]* wrote .* bytes at 0x6[0-7]);")
	l60=$(explained 0x4030201 4 0x60 60:4:ffffffff)
	l64=$(explained 0xa090807 4 0x64 64:4:ffffffff)
	c60=$(echo "$l60" | denied_count) c64=$(echo "$l64" | denied_count)
	if [ "$n" = 2 ] && [ -n "$l60" ] && [ -n "$l64" ] && [ "$c64" = $((c60 + 2)) ]; then
		return 0
	fi
	echo "# $n explanations of writes to 0x60-0x67 (want 2: 0x60 and 0x64), counts '$c60' and '$c64':"
	klog | grep "pciback $BDF: guest [0-9]* wrote" | tail -n 5 | sed 's/^/#   /'
	return 1
}
explained_quirk_accepted() {
	local q
	q=$(explained 0x4030201 4 0x60 60:4:ffffffff | sed -n 's/.*echo \([^ ]*\) > .*/\1/p')
	[ -n "$q" ] || { echo "# no quirks line"; return 1; }
	echo "$q" > /sys/bus/pci/drivers/pciback/quirks || { echo "# quirks refused '$q'"; return 1; }
	grep -qx "$(printf '\t\t00000060:4:ffffffff')" /sys/bus/pci/drivers/pciback/quirks ||
		{ echo "# '$q' not listed:"; sed 's/^/#   /' /sys/bus/pci/drivers/pciback/quirks; return 1; }
}

# EXPLAIN=1 too: the device's statistics in debugfs (common/stats.rs) while
# the guest runs: some conf_reads, as many service times and as many waits as
# requests (one snapshot), at least the 3 denied writes above, a p99 of each,
# some requests served on the event channel's interrupt (on_interrupt: at
# most the conf_reads and conf_writes, more than none once the guest has read
# its device again and again); once the guest is gone a write clears them.
STATS_DIR=/sys/kernel/debug/pciback
stats_sum() { sed -n "s/^$1 //p" | tr ' ' '\n' | sed 's/.*=//' | awk '{ t += $1 } END { print t + 0 }'; }
stats_counted() {
	local f=$STATS_DIR/$BDF s reads writes req svc waits denied irq
	s=$(cat "$f" 2>&1) || { echo "# cannot read $f: $s"; ls "$STATS_DIR" 2>&1 | sed 's/^/#   /'; return 1; }
	echo "$s" | sed 's/^/#   /'
	reads=$(echo "$s" | sed -n 's/^requests conf_read=\([0-9]*\) .*/\1/p')
	writes=$(echo "$s" | sed -n 's/^requests .*conf_write=\([0-9]*\) .*/\1/p')
	req=$(echo "$s" | stats_sum requests)
	svc=$(echo "$s" | stats_sum service_us)
	waits=$(echo "$s" | stats_sum wait_us)
	denied=$(echo "$s" | sed -n 's/^denied_writes \([0-9]*\)$/\1/p')
	irq=$(echo "$s" | sed -n 's/^on_interrupt \([0-9]*\)$/\1/p')
	[ "${irq:-0}" -gt 0 ] && [ "$irq" -le "$((${reads:-0} + ${writes:-0}))" ] &&
		[ "${reads:-0}" -gt 0 ] && [ "$req" = "$svc" ] && [ "$req" = "$waits" ] && [ "${denied:-0}" -ge 3 ] &&
		echo "$s" | grep -q '^service_us_p99 [<>]' && echo "$s" | grep -q '^wait_us_p99 [<>]'
}
# And whether the backend signalled the answers as each frontend asked: the
# Rust frontend's spins watch for their answers (its quiet_answers, on by
# default), and the backend leaves those it publishes while they watch
# unsignalled (watched_answers, more than none); the C frontend never asks
# (the bit is this project's extension): every answer to it signalled, none
# counted.
watched_as_asked() {
	local n
	n=$(sed -n 's/^watched_answers \([0-9]*\)$/\1/p' "$STATS_DIR/$BDF") || return 1
	echo "# watched_answers $n ($1 frontend)"
	case $1 in
	rust) [ "${n:-0}" -gt 0 ] ;;
	*) [ "$n" = 0 ] ;;
	esac
}
stats_cleared() {
	local f=$STATS_DIR/$BDF s
	echo 0 > "$f" || { echo "# the write to $f failed"; return 1; }
	s=$(cat "$f") || return 1
	if echo "$s" | grep -qx 'requests conf_read=0 conf_write=0 enable_msi=0 disable_msi=0 enable_msix=0 disable_msix=0 other=0' &&
		echo "$s" | grep -qx 'denied_writes 0' && echo "$s" | grep -qx 'service_us_p50 -' &&
		echo "$s" | grep -qx 'on_interrupt 0' && echo "$s" | grep -qx 'on_interrupt_writes 0' &&
		echo "$s" | grep -qx 'watched_answers 0' &&
		echo "$s" | grep -qx 'wait_us_p50 -' &&
		[ "$(echo "$s" | stats_sum service_us)" = 0 ] && [ "$(echo "$s" | stats_sum wait_us)" = 0 ]; then
		return 0
	fi
	echo "$s" | sed 's/^/#   /'
	return 1
}

# DOFLR=1 (the Rust backend, xl route): libxl resets a device through pciback's
# do_flr before it gives it to a guest and, at a detach, before it asks the
# backend to release it (upstream C has no do_flr: libxl falls back to the
# device's own reset file). do_flr resets a device a guest holds, as that file
# would; its outcome's line then names the guest.
doflr_used() {
	klog | grep -q "pciback $BDF: do_flr: \(reset\|no reset method\)$" && return 0
	echo "# no do_flr line for $BDF in dom0's log:"; klog | grep -i "pciback\|reset" | tail -n 5 | sed 's/^/#   /'
	return 1
}
# By hand while guest $1 holds the device: the answer of the reset itself
# (none, or ENOTTY without a reset method), never EBUSY.
doflr_held() {
	local out want=reset
	klog_mark
	if ! out=$( (echo "$BDF" > "$DRV/do_flr") 2>&1); then
		case "$out" in *"Inappropriate ioctl"*) want="no reset method" ;;
		*) echo "# do_flr: $out"; return 1 ;; esac
	fi
	klog | grep -q "pciback $BDF: do_flr: $want (guest $1 holds the device)$" ||
		{ echo "# log:"; klog | grep "pciback $BDF" | tail -n 4 | sed 's/^/#   /'; return 1; }
}
# At the detach libxl wrote do_flr before the backend released the device, and
# it was served (reset, or no reset method) while guest $1 held the device; the
# release resets the device again.
doflr_at_detach() {
	klog | grep -q "pciback $BDF: do_flr: \(reset\|no reset method\) (guest $1 holds the device)$" ||
		{ echo "# no do_flr served while guest $1 held the device:"
		  klog | grep "pciback $BDF" | tail -n 4 | sed 's/^/#   /'; return 1; }
	klog | grep -q "pciback $BDF: \(no reset method\|reset after guest $1\)$" &&
		klog | grep -q "pciback $BDF: released by guest $1$" ||
		{ echo "# no reset at the release:"; klog | grep "pciback $BDF" | tail -n 4 | sed 's/^/#   /'; return 1; }
}

# The number of results of passthrough_test $1 $2 $3, from the same flags,
# declared before the first one.
passthrough_plan() {
	local back=$1 front=$2 route=$3 detach=0 n=1 g1 g2
	[ "$route" = xl ] && detach=1
	g1=$(guest_plan 1 "$front" "${IRQ:-0}" "${PROTECT:-0}" "$detach" 0)
	g2=$(guest_plan 2 "$front")
	if [ "$route" = xl ]; then
		n=$((n + 2 + ${GRANTS:-0} + 1))	# assignable-add, create, assignable-remove
		[ "${VERBOSE:-0}" = 1 ] && n=$((n + 2))	# verbose_request, and its rate limit
		[ "${DOFLR:-0}" = 1 ] && n=$((n + 4))	# do_flr at create, while held, at detach; resets
	else
		n=$((n + 1))			# created by hand
	fi
	n=$((n + 1 + g1))			# the guest's phase 1
	[ "${IRQ:-0}" = 1 ] && [ "$back" = rust ] && n=$((n + 1))
	[ "${PROTECT:-0}" = 1 ] && n=$((n + 3 + ${PLAINHW:-0}))
	[ "${EXPLAIN:-0}" = 1 ] && n=$((n + 5))	# denied writes explained, their quirks line, the stats, the watched answers, cleared
	[ -n "${CLOSE_CHECK:-}" ] && n=$((n + 2))
	[ "$detach" = 1 ] && n=$((n + 3 + g2))	# detach, its report, still owned
	n=$((n + 1 + ${GRANTS:-0} + 1))		# destroyed, grants gone, unload
	echo "$n"
}

passthrough_test() {
	local back=$1 front=$2 route=$3 detach=0 did lines
	[ "$route" = xl ] && detach=1
	ktap_print_header
	ktap_set_plan "$(passthrough_plan "$back" "$front" "$route")"
	rotate_guest_log

	ktap_test_result "$back backend loads" backend_load "$back"
	write_guest_cfg "$front" "$detach"
	if [ "$route" = xl ]; then
		ktap_test_result "xl pci-assignable-add $BDF" timeout 60 xl pci-assignable-add "$BDF"
		[ "${GRANTS:-0}" = 1 ] &&
			ktap_test_result "permissive and allow_interrupt_control granted for the guest" grant_both
		echo "pci = [ '$BDF' ]" >> /tmp/$GUEST.cfg
		# Seized by now, so the line is the routed one.
		INTX_BASE=$(irq_count)
		klog_mark
		VERBOSE_START=$SECONDS
		[ "${VERBOSE:-0}" = 1 ] && echo 1 > /sys/module/pciback/parameters/verbose_request
		ktap_test_result "xl create with pci=[...]" timeout 120 xl create /tmp/$GUEST.cfg
		[ "${DOFLR:-0}" = 1 ] &&
			ktap_test_result "libxl reset the device through do_flr before giving it to the guest" doflr_used
	else
		INTX_BASE=$(irq_count)
		klog_mark
		ktap_test_result "guest created with the xenstore nodes written by hand" manual_create
	fi
	[ "${PROTECT:-0}" = 1 ] && hw_before=$(hw_snapshot)
	find_guest
	did=$GUEST_DID
	# Phase 1: the guest checks the device it was given.
	guest_phase1 "$did" 300 "guest reported its device checks" \
		"$(guest_plan 1 "$front" "${IRQ:-0}" "${PROTECT:-0}" "$detach" 0)"
	if [ "${IRQ:-0}" = 1 ]; then
		irq_report
		[ "$back" = rust ] &&
			ktap_test_result "dom0's INTx handler claimed the guest's INTx interrupts" intx_claimed
	fi
	[ "${PROTECT:-0}" = 1 ] && protected_checks "$hw_before"
	if [ "${EXPLAIN:-0}" = 1 ]; then
		ktap_test_result "each register's first denied write is explained once, with its quirks line and the device's count" \
			denied_explained
		ktap_test_result "the quirks line of a denied write's explanation is accepted by quirks" \
			explained_quirk_accepted
		ktap_test_result "the device's debugfs statistics count the guest's requests, their service times and waits and its denied writes" \
			stats_counted
		ktap_test_result "the backend signalled the answers as the $front frontend asked (watched_answers)" \
			watched_as_asked "$front"
	fi
	if [ "${VERBOSE:-0}" = 1 ] && [ "$route" = xl ]; then
		ktap_test_result "verbose_request logs the guest's requests with their answers" verbose_logged "$did"
		ktap_test_result "verbose_request is rate-limited and counts what it dropped" verbose_limited "$did"
		echo 0 > /sys/module/pciback/parameters/verbose_request
	fi
	[ "${DOFLR:-0}" = 1 ] && [ "$route" = xl ] &&
		ktap_test_result "do_flr of the device the guest holds resets it and names the guest" doflr_held "$did"
	# CLOSE_CHECK: the guest closed its frontend in phase 1; what did the backend do?
	case ${CLOSE_CHECK:-} in
		kept) ktap_test_result "frontend closed, device online: backend keeps its device" be_kept "$did" ;;
		gone) ktap_test_result "frontend closed, device offline: backend unregistered its device" \
			wait_for 20 be_gone "$did" ;;
	esac

	if [ "$detach" = 1 ]; then
		klog_mark
		ktap_test_result "xl pci-detach $BDF" timeout 60 xl pci-detach $GUEST "$BDF"
		# Longer than the guest's own deadlines in phase 2 (about 130 s), so
		# a failing step is reported rather than lost.
		wait_secs 180 guest_count "$did" phase2 || wait_for 5 grep -q XENPCI-DOMU-PHASE2 "$GUEST_LOG"
		collect_phase "$did" 2 > /tmp/lines || echo "# the guest reported nothing for phase 2"
		ktap_test_result "guest reported the detach" guest_reported "$(guest_plan 2 "$front")"
		emit_guest_lines "$(guest_plan 2 "$front")" < /tmp/lines
		ktap_test_result "device still owned by pciback after detach" bound_to_pciback
		[ "${DOFLR:-0}" = 1 ] && [ "$route" = xl ] &&
			ktap_test_result "at the detach libxl wrote do_flr while the guest held the device; the release reset it" \
				doflr_at_detach "$did"
		# The resets attribute says so (sysfs.sh): the release's reset, and the
		# do_flr's at the detach.
		[ "${DOFLR:-0}" = 1 ] && [ "$route" = xl ] &&
			ktap_test_result "resets: the release's reset ($(reset_noted root-bus)), the device assignable" \
				resets_is "$(reset_noted)" "$(reset_noted root-bus)" "$(reset_noted root-bus)" yes
	fi

	destroy_guest "$GUEST"
	# Stop streaming this guest's console (tail -F would follow the next one).
	stop_guest_console
	ktap_test_result "guest destroyed" wait_for 20 guest_gone
	[ "${EXPLAIN:-0}" = 1 ] &&
		ktap_test_result "a write to the device's debugfs statistics clears them" stats_cleared
	[ "${GRANTS:-0}" = 1 ] &&
		ktap_test_result "the grants ended with the guest's release of the device" wait_for 20 grants_gone
	# The frontend's node went with the guest: the backend unregisters its
	# device by itself (before the node removal below).
	[ -n "${CLOSE_CHECK:-}" ] &&
		ktap_test_result "backend device gone with the frontend" wait_for 20 be_gone "$did"
	if [ "$route" = xl ]; then
		ktap_test_result "xl pci-assignable-remove $BDF" timeout 60 xl pci-assignable-remove -r "$BDF"
	elif timeout 10 xenstore-exists "/local/domain/0/backend/pci/$did" 2>/dev/null; then
		# We wrote the backend's node, so we remove it, as the toolstack
		# does with its own (libxl only tears down a Connected backend:
		# after a frontend closed first, it leaves the node).
		timeout 10 xenstore-rm "/local/domain/0/backend/pci/$did"
	fi
	ktap_test_result "$back backend unloads" wait_for 10 backend_unload "$back"
	ktap_finished
}

# The xl groups of every pairing (and the demo): the guest also checks that
# interrupts from the device reach an ordinary driver (IRQ=1, domU/irq.sh),
# INTx and MSI.
group_c_xl() { IRQ=1 passthrough_test c c xl; }
group_c_manual() { passthrough_test c c manual; }
# The Rust backend with the C frontend: virtual bus by xl and by hand, then the
# host addresses (passthrough=1); each also checks that protected fields hold.
# rust-xl: the Rust backend loaded without hide=, as an administrator using
# only xl does: xl pci-assignable-add seizes the device through new_slot and bind.
group_rust_xl() { HIDE=0 IRQ=1 PROTECT=1 GRANTS=1 DOFLR=1 VERBOSE=1 passthrough_test rust c xl; }
group_rust_manual() { PROTECT=1 EXPLAIN=1 passthrough_test rust c manual; }
# rust-pt also grants permissive (GRANTS=1), for the guest's plain writes that
# reach the device on the interrupt (PLAINHW=1).
group_rust_pt() { PROTECT=1 GRANTS=1 PLAINHW=1 BACKEND_ARGS=passthrough=1 GUEST_BDF=$BDF passthrough_test rust c xl; }
# rust-claim: exclusive claims, checked on the xenstore protocol alone with
# paused guests whose backend nodes are written by hand (no frontend runs).
# claim_guest NAME BDF...: a paused guest given the devices (dev-0, dev-1, ...).
claim_guest() {
	local name=$1 did be fe i=0 b devs=()
	shift
	printf 'name = "%s"\ntype = "pv"\nkernel = "/xenpci/vmlinuz-domU"\nmemory = 64\n' "$name" > "/tmp/$name.cfg"
	timeout 60 xl create -p "/tmp/$name.cfg" >/dev/null || return 1
	did=$(xl domid "$name") || return 1
	be=/local/domain/0/backend/pci/$did/0
	fe=/local/domain/$did/device/pci/0
	xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 || return 1
	for b in "$@"; do
		devs+=("$be/dev-$i" "$b" "$be/state-$i" 1)
		i=$((i + 1))
	done
	xenstore-write "$be/frontend" "$fe" "$be/frontend-id" "$did" "$be/online" 1 "$be/state" 1 \
		"$be/domain" "$name" "${devs[@]}" "$be/num_devs" "$i" || return 1
	xenstore-chmod -r "$be" n0 "r$did" && xenstore-chmod -r "$fe" "n$did" r0
}
claim_did() { xl domid "$1" 2>/dev/null; }
be_node() { xenstore-read "/local/domain/0/backend/pci/$(claim_did "$1")/0/$2" 2>/dev/null; }
be_state_is() { [ "$(be_node "$1" state)" = "$2" ] || { echo "# $1: backend state '$(be_node "$1" state)', want $2"; return 1; }; }
be_node_is() { [ "$(be_node "$1" "$2")" = "$3" ] || { echo "# $1: $2 is '$(be_node "$1" "$2")', want $3"; return 1; }; }
# The backend of guest $1 wrote an error to xenstore, containing $2 if given.
be_error() {
	local e
	e=$(xenstore-read "/local/domain/0/error/backend/pci/$(claim_did "$1")/0/error" 2>/dev/null) || return 1
	echo "# $1: $e"
	case "$e" in *"${2:-}"*) ;; *) echo "# expected: ...$2..."; return 1 ;; esac
}
be_gone() { [ ! -e "/sys/bus/xen-backend/devices/pci-$1-0" ]; }
# Removes the guest's backend directory (the backend device goes, releasing its
# devices), waits for the device to go, then destroys the guest.
claim_drop() {
	local did
	did=$(claim_did "$1") || return 1
	xenstore-rm "/local/domain/0/backend/pci/$did"
	wait_for 20 be_gone "$did" || return 1
	timeout 30 xl destroy "$1"
}

group_rust_claim() {
	local other
	ktap_print_header
	ktap_set_plan 19
	# A device that exists and that pciback does not hold.
	other=$(lspci -D | awk -v b="$BDF" '$1 != b { print $1; exit }')
	ktap_test_result "rust backend loads" backend_load rust
	ktap_test_result "guest A gets $BDF" claim_guest claimA "$BDF"
	ktap_test_result "A's backend claims it (Initialised)" wait_for 20 be_state_is claimA 3
	ktap_test_result "A's device is at 0000:00:00.00" be_node_is claimA vdev-0 0000:00:00.00
	ktap_test_result "A's device is Initialised" be_node_is claimA state-0 3
	ktap_test_result "guest B asks for the same device" claim_guest claimB "$BDF"
	ktap_test_result "B's backend refuses it (Closing)" wait_for 20 be_state_is claimB 5
	ktap_test_result "B's backend reports why" be_error claimB
	ktap_test_result "A keeps it" be_state_is claimA 3
	ktap_test_result "guest C asks for $other, not held by pciback" claim_guest claimC "$other"
	ktap_test_result "C's backend refuses it (Closing)" wait_for 20 be_state_is claimC 5
	ktap_test_result "B goes" claim_drop claimB
	ktap_test_result "C goes" claim_drop claimC
	ktap_test_result "A goes (its backend releases the device)" claim_drop claimA
	ktap_test_result "guest D gets the device back" claim_guest claimD "$BDF"
	ktap_test_result "D's backend claims it (Initialised)" wait_for 20 be_state_is claimD 3
	ktap_test_result "D goes" claim_drop claimD
	ktap_test_result "device still bound to pciback" bound_to_pciback
	ktap_test_result "rust backend unloads" backend_unload rust
	ktap_finished
}

# What `make run` shows: one guest, the device passed through, the guest's view.
# The Rust backend and the Rust frontend.
group_demo() { IRQ=1 passthrough_test rust rust xl; }
# The C backend with the Rust frontend.
group_cback_rustfront_xl() { IRQ=1 passthrough_test c rust xl; }
group_cback_rustfront_manual() { passthrough_test c rust manual; }
# The C backend with passthrough=1 and the Rust frontend: the guest sees the
# host address.
group_cback_rustfront_pt() { BACKEND_ARGS=passthrough=1 GUEST_BDF=$BDF passthrough_test c rust xl; }
# Both Rust drivers, both topologies.
group_rust_rust_xl() { IRQ=1 PROTECT=1 EXPLAIN=1 passthrough_test rust rust xl; }
group_rust_rust_pt() { IRQ=1 PROTECT=1 BACKEND_ARGS=passthrough=1 GUEST_BDF=$BDF passthrough_test rust rust xl; }
# The guest closes its frontend before it is destroyed (by hand, so that no
# toolstack tears the backend down): the backend keeps its device while the
# node is online and unregisters it when the frontend's node goes, or at once
# when the node is offline (as the C backend does).
group_rust_rust_close() { PROTECT=1 CLOSE_CHECK=kept passthrough_test rust rust manual; }
group_rust_rust_close_offline() { ONLINE=0 CLOSE_CHECK=gone passthrough_test rust rust manual; }

# ---- A backend Connected that the Rust frontend missed: libxl's detach
# (state-N Closing, backend Reconfiguring) written before the guest's xenwatch
# read the backend's state, so that the frontend, still Initialised, sees
# Reconfiguring. dom0 plays the backend, under a device type no backend
# driver serves, and goes from InitWait to Reconfiguring, never Connected,
# with one device Closing. As C's, the frontend must switch straight to
# Reconfiguring with no bus and no configuration access (nobody maps its
# page: each access would wait out its deadline). It used to scan, switch to
# Connected (which a C backend follows, then ignores the detach), and only
# then to Reconfiguring.
fe_state_is() { [ "$(timeout 10 xenstore-read "$1/state" 2>/dev/null)" = "$2" ]; }
no_config_access() {
	# The frontend logs its first unanswered access at KERN_ERR, on the console.
	! grep -a "the PCI backend does not answer" "$GUEST_LOG" | sed 's/^/# guest: /' | grep .
}
missed_connect_cleanup() {
	timeout 60 xl destroy $GUEST 2>/dev/null
	timeout 10 xenstore-rm /local/domain/0/backend/xenpci-test 2>/dev/null
	return 0
}
group_rust_front_missed_connect() {
	local did be fe
	ktap_print_header
	ktap_set_plan 3
	trap missed_connect_cleanup EXIT
	rotate_guest_log
	guest_cfg "xenpci.front=rust xenpci.loadonly=1" > /tmp/$GUEST.cfg
	timeout 60 xl create -p /tmp/$GUEST.cfg || ktap_exit_fail_msg "xl create failed"
	did=$(xl domid $GUEST) || ktap_exit_fail_msg "no guest"
	be=/local/domain/0/backend/xenpci-test/$did/0
	fe=/local/domain/$did/device/pci/0
	xenstore-write "$be/frontend" "$fe" "$be/frontend-id" "$did" "$be/online" 1 "$be/state" 2 \
		"$be/num_devs" 1 "$be/dev-0" "$BDF" "$be/vdev-0" 0000:00:00.00 "$be/state-0" 5 \
		"$be/root_num" 1 "$be/root-0" 0000:00 &&
		xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 &&
		xenstore-chmod -r "$be" n0 "r$did" && xenstore-chmod -r "$fe" "n$did" r0 ||
		ktap_exit_fail_msg "cannot write the nodes"
	xl unpause $GUEST
	ktap_test_result "the Rust frontend is Initialised behind a backend dom0 plays" \
		wait_secs 60 fe_state_is "$fe" 3
	timeout 10 xenstore-write "$be/state" 7 || echo "# cannot write the backend's state"
	ktap_test_result "... and switches straight to Reconfiguring when the backend is Reconfiguring (its Connected missed)" \
		wait_secs 60 fe_state_is "$fe" 7
	# Time for an access to time out (2 s), had one been made.
	nap 5
	ktap_test_result "... with no configuration access meanwhile" no_config_access
	ktap_finished
}
