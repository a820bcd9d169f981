#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The dom0 side of the Xen tests. Starts the Xen daemons, then runs each group
# of the plan (xenpci.plan=a+b+... on the kernel command line: QEMU reserves
# commas). Every group is a KTAP document of its own between
# XENPCI-GROUP-BEGIN/END markers, which the host runner (scripts/run-xen.sh,
# scripts/verdict.py) collects. Around each group this script adds what the
# group cannot say about itself, as XENPCI-GROUP-CHECK lines:
#   - a group that needs the device under test does not run without it;
#   - a group that outlives its deadline (groups.conf, times xenpci.scale) is
#     killed with everything it started, its guests are destroyed, and the
#     next group runs;
#   - after a group that fails (exits non-zero) or is killed, every guest is
#     destroyed, pciback's devices are given back and both backends are
#     unloaded, so that its leftovers do not fail the groups after it;
#   - after every group, dom0's kernel log since the group began and the
#     console of every guest it started are scanned for BUG, WARNING, Oops,
#     KASAN, lockdep reports, "nobody cared" and stalls.
# The END line carries the group's exit status and its duration.
#
#   run-dom0.sh            the plan (PID 1 calls this)
#   run-dom0.sh --group G  one group in this process (the plan runs each group
#                          this way, as the leader of a session of its own)
cd "$(dirname "$0")"
. ./lib.sh
. ./ktap_helpers.sh
for f in dom0/*.sh; do . "$f"; done

log() { echo "dom0[$(uptime_s)]: $*"; }

if [ "${1:-}" = --group ]; then
	# DEV_ID and BDF come from the environment of the plan loop.
	fn=group_$(echo "$2" | tr '-' '_')
	"$fn"
	exit $?
fi

start_xen() {
	local m
	for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd; do
		modprobe "$m" || log "modprobe $m failed"
	done
	mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen
	xenstored --pid-file /run/xenstored.pid || return 1
	# Until xenstored serves. (Not /local/domain/0/domid: xen-init-dom0
	# writes that key, below, so waiting for it cost a whole wait_for.)
	wait_for 20 xenstore-ls / || return 1
	xen-init-dom0 >/dev/null || return 1
	xenconsoled --pid-file /run/xenconsoled.pid --log=guest --log-dir="$CONSOLE_DIR" || return 1
	log "xen daemons up"
}

# The group's line of groups.conf: sets G_DEVICE and G_DEADLINE; fails for a
# name that is not there or has no group_* function.
group_entry() {
	local name boot class device deadline
	while read -r name boot class device deadline; do
		[ "$name" = "$1" ] || continue
		G_DEVICE=$device G_DEADLINE=$deadline
		type "group_$(echo "$1" | tr '-' '_')" >/dev/null 2>&1
		return
	done <<< "$(grep -v '^#' groups.conf)"
	return 1
}

check() { echo "XENPCI-GROUP-CHECK $1 $2"; }

# Kills what is left of session $1 (a group's), until nothing is; a process
# stuck in the kernel ignores the kill: gives up after $2 seconds.
kill_session() {
	local sid=$1 end=$((SECONDS + $2))
	kill -KILL -- "-$sid" 2>/dev/null
	while busybox pgrep -s "$sid" >/dev/null 2>&1; do
		busybox pkill -KILL -s "$sid" 2>/dev/null
		[ "$SECONDS" -ge "$end" ] && return 1
		nap 1
	done
}

# What a killed or failed group may have left behind (guests, console streams,
# modules): gone before the next group, which would otherwise fail for it ($1
# says when, for the diagnosis lines). Each step is bounded; those that may
# hang in the kernel, where timeout(1) cannot end them, in the background.
group_cleanup() {
	local id n bg end when=$1
	# For the diagnosis: the guests and their PCI connections as they stood.
	if timeout 20 xl list > /tmp/cleanup.list 2> /tmp/cleanup.err; then
		sed "s/^/# $when: /" /tmp/cleanup.list
		timeout 10 xenstore-ls -f /local/domain/0/backend/pci 2>&1 | head -n 40 | sed "s/^/# $when: /"
		# xl destroy detaches a running guest's PCI devices one by one first:
		# destroy_guest's bound for its number of devices.
		for id in $(awk 'NR > 1 && $2 ~ /^[1-9][0-9]*$/ { print $2 }' /tmp/cleanup.list); do
			n=$(timeout 10 xenstore-read "/local/domain/0/backend/pci/$id/0/num_devs" 2>/dev/null)
			destroy_guest "$id" "${n:-1}" || echo "# $when: xl destroy $id failed"
		done
		# Xen keeps a device quarantined until xl pci-assignable-remove:
		# another pci-assignable-add of it would fail. Every device pciback
		# holds (xl pci-assignable-list leaves out those a half-destroyed
		# guest's libxl records still name); -r rebinds its earlier driver.
		# In a session of its own, ended whole if it outlives 10 minutes.
		setsid bash -c '
			for id in /sys/bus/pci/drivers/pciback/????:??:??.?; do
				[ -e "$id" ] || continue
				echo "# $0: xl pci-assignable-remove -r ${id##*/}"
				timeout 60 xl pci-assignable-remove -r "${id##*/}" 2>&1 | sed "s/^/# $0: /"
			done' "$when" &
		bg=$! end=$((SECONDS + 600))
		while kill -0 "$bg" 2>/dev/null; do
			if [ "$SECONDS" -ge "$end" ]; then
				# By session: timeout(1) puts xl in a process group of its own.
				kill_session "$bg" 10
				echo "# $when: xl pci-assignable-remove still ran after 600 s: stopped"
				break
			fi
			nap 1
		done
		wait "$bg" 2>/dev/null
	else
		# No toolstack (xenstored gone: a lab failure): nothing to ask it.
		sed "s/^/# $when: xl list: /" /tmp/cleanup.err
	fi
	busybox pkill -f "tail -F $CONSOLE_DIR" 2>/dev/null
	# An unload may hang on what the group broke: a bounded wait, before the
	# kernel log is scanned (what the unload says is this group's). It also
	# releases what pci-assignable-remove could not (a device never
	# quarantined: seized by hide= or by hand).
	( rmmod pciback; rmmod xen-pciback ) >/dev/null 2>&1 &
	wait_for 30 sh -c "! kill -0 $! 2>/dev/null" || echo "# the modules' unload still hangs after 30 s"
}

# Kernel messages that fail any group, wherever they appear. Not the debug kernel's
# greetings at boot ("kmemleak: Kernel memory leak detector initialized", "rcu: RCU
# lockdep checking is enabled."): lockdep's reports are matched by their own words.
SPLAT='(^|[^A-Z])BUG:|WARNING:|Oops[: ]|KASAN|UBSAN|kernel BUG|Kernel panic|general protection fault|Call Trace:|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|bad unlock balance|INFO: lockdep is turned off|DEBUG_LOCKS_WARN_ON|nobody cared|rcu_.*stall|RCU stall|self-detected stall|soft lockup|hard LOCKUP|blocked for more than|hung_task|kmemleak: ([0-9]+ new suspected|Cannot|.*disabled)|KFENCE: |refcount_t: |list_(add|del) corruption|ODEBUG'

# dom0's kernel log is scanned in consecutive windows, from the boot on: each
# scan starts at the mark the previous one left, so nothing falls between
# groups (a release on the xenwatch thread may log after its group ended: the
# next window has it).
SCAN_MARK=
scan_mark() {
	SCAN_MARK="XENPCI-SCANNED $(date +%s%N)"
	echo "$SCAN_MARK" > /dev/kmsg
}
# dom0's kernel log since the last scan; every guest console of this group
# (the files in $CONSOLE_DIR, when $1 is "guests"). Sets LOGS_WHY or
# LOGS_SCANNED.
logs_clean() {
	local bad f n=0
	if [ -n "$SCAN_MARK" ] && ! dmesg | grep -q "$SCAN_MARK"; then
		LOGS_WHY="the last scan's mark is no longer in dom0's kernel log (overflowed or cleared)"
		scan_mark
		return 1
	fi
	if [ -n "$SCAN_MARK" ]; then
		bad=$(dmesg | sed -n "/$SCAN_MARK/,\$p" | grep -E "$SPLAT" | sed 's/^/dom0: /')
	else
		bad=$(dmesg | grep -E "$SPLAT" | sed 's/^/dom0: /')
	fi
	scan_mark
	if [ "${1:-}" = guests ]; then
		for f in "$CONSOLE_DIR"/*.log*; do
			[ -f "$f" ] || continue
			n=$((n + 1))
			# The guests' own KTAP lines are not kernel messages.
			bad+=$(tr -d '\r' < "$f" | grep -vE '^(ok|not ok) [0-9]' | grep -E "$SPLAT" |
				sed "s|^|${f##*/}: |")
		done
		# A dead console daemon would leave the guests' consoles unread.
		busybox pidof xenconsoled >/dev/null ||
			bad+="xenconsoled is not running: the guests' consoles were not logged"
	fi
	if [ -n "$bad" ]; then
		echo "$bad" | head -n 20 | sed 's/^/# splat: /'
		LOGS_WHY="$(echo "$bad" | head -n 1)"
		return 1
	fi
	LOGS_SCANNED="dom0 and $n guest console(s)"
}

# The debug kernel's leak detector (KCONFIG=debug: kmemleak without its periodic scan),
# after each group and before its kernel log is scanned: 6 s after the group ended (kmemleak
# does not report objects younger than 5 s), two scans (an object is reported once two scans
# found it unreferenced); each reported object is the group's leak. A scan that finds some
# logs "kmemleak: N new suspected memory leaks", which fails the group's log check too. Then
# the list is cleared, so that the next group reports only its own. Returns 2 without
# kmemleak.
KMEMLEAK=/sys/kernel/debug/kmemleak
kmemleak_clean() {
	local n
	[ -e "$KMEMLEAK" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	[ -w "$KMEMLEAK" ] || return 2
	nap 6
	echo scan > "$KMEMLEAK"
	echo scan > "$KMEMLEAK"
	n=$(grep -c '^unreferenced object' "$KMEMLEAK")
	if [ "$n" -gt 0 ]; then
		head -n 60 "$KMEMLEAK" | sed 's/^/# kmemleak: /'
		KMEMLEAK_WHY="$n unreferenced object(s)"
	fi
	echo clear > "$KMEMLEAK"
	[ "$n" = 0 ]
}

run_group() {
	local group=$1 fn mark pid rc t0 end scale killed=0
	echo "XENPCI-GROUP-BEGIN $group"
	if ! group_entry "$group"; then
		check "$group" "not ok: no test group named '$group' (groups.conf and dom0/*.sh)"
		echo "XENPCI-GROUP-END $group rc=1 secs=0"
		return 1
	fi
	if [ "$G_DEVICE" = yes ] && [ -z "$BDF" ]; then
		check "$group" "not ok: needs the device under test ($DEV_ID), and dom0 has none"
		echo "XENPCI-GROUP-END $group rc=1 secs=0"
		return 1
	fi
	scale=$(cmdline_arg scale 1)
	G_DEADLINE=$(awk -v d="$G_DEADLINE" -v s="$scale" 'BEGIN { printf "%d", d * s + 0.5 }')
	# Consoles of earlier groups' guests are not this group's.
	mkdir -p "$CONSOLE_DIR/old"
	mv -f "$CONSOLE_DIR"/*.log* "$CONSOLE_DIR/old/" 2>/dev/null
	mark="XENPCI-MARK $group $(date +%s%N)"
	echo "$mark" > /dev/kmsg
	t0=$SECONDS end=$((SECONDS + G_DEADLINE))
	# A session of its own: a group that outlives its deadline is killed with
	# everything it started.
	setsid ./run-dom0.sh --group "$group" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$end" ]; then
			killed=1
			break
		fi
		nap 1
	done
	if [ "$killed" = 1 ]; then
		echo
		check "$group" "not ok: did not finish within its deadline of $G_DEADLINE s (killed, its guests destroyed)"
		if ! kill_session "$pid" 30; then
			check "$group" "not ok: still stuck in the kernel 30 s after the kill (stack below)"
			sed 's/^/# stack: /' "/proc/$pid/stack" 2>/dev/null
		fi
		group_cleanup "at the deadline"
		rc=124
	else
		wait "$pid"; rc=$?
		# Whatever the group left running in its session goes with it.
		kill_session "$pid" 10 || echo "# processes of the group's session survive the kill"
		# A failed group's guest or module would fail the groups after it.
		[ "$rc" = 0 ] || group_cleanup "after the failure"
	fi
	# Only a leak is a check of its own (the harness's self-test counts each group's checks).
	kmemleak_clean || [ $? = 2 ] || check "$group" "not ok: kmemleak: $KMEMLEAK_WHY"
	if logs_clean guests; then
		check "$group" "ok: kernel logs clean ($LOGS_SCANNED)"
	else
		check "$group" "not ok: kernel log: $LOGS_WHY"
	fi
	echo "XENPCI-GROUP-END $group rc=$rc secs=$((SECONDS - t0))"
	[ "$rc" = 0 ]
}

# dom0 user-space crashes, as the kernel reports them, on the console as they
# happen (KERN_INFO lines do not reach it by themselves): the host runner ties
# a failure that follows one to the lab.
crash_follower() {
	dmesg -w 2>/dev/null | grep --line-buffered -E 'segfault at|traps: .* general protection' |
		sed -u 's/^/XENPCI-DOM0-CRASH /'
}

CONSOLE_DIR=/var/log/xen/console
if ! start_xen; then
	echo "XENPCI-LAB-FAILURE: the Xen daemons did not start"
	exit 1
fi

# The device under test (QEMU's edu unless the host runner says otherwise).
DEV_ID=$(cmdline_arg dev 1234:11e8)
BDF=$(lspci -D -n -d "$DEV_ID" | awk 'NR == 1 { print $1 }')
log "device under test: ${BDF:-none} ($DEV_ID)"
log "virt_caps: $(xl info | sed -n 's/^virt_caps *: //p')"
export BDF DEV_ID

crash_follower &
# What the boot leaked (the built-in KUnit suites run then) fails the boot's check.
kmemleak_clean
# The boot (the built-in KUnit suites included) up to the first group.
if logs_clean; then
	echo "XENPCI-BOOT-CHECK ok: kernel log clean from the boot to the first group"
else
	echo "XENPCI-BOOT-CHECK not ok: kernel log from the boot to the first group: $LOGS_WHY"
fi
rc=0
for group in $(cmdline_arg plan modules+c-xl | tr '+,' '  '); do
	run_group "$group" || rc=1
done
# What the last group's asynchronous work logged after its scan.
sleep 5
if logs_clean; then
	echo "XENPCI-BOOT-CHECK ok: kernel log clean after the last group"
else
	echo "XENPCI-BOOT-CHECK not ok: kernel log after the last group: $LOGS_WHY"
	rc=1
fi
exit $rc
