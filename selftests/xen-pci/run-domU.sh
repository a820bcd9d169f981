#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of the passthrough tests. Results are KTAP lines, printed on
# the console and also stored under the guest's own xenstore directory
# (data/xenpci/tap/N, with data/xenpci/phaseN = number of lines so far) so that
# dom0 gets them even when the console stream is lost.
. ./lib.sh
. ./ktap_helpers.sh

XS=data/xenpci
N=0
# Wrap the KTAP printer: every result line also goes to xenstore, eight at a
# time and at the end of each phase (a process costs about 0.1 s under TCG:
# one xenstore-write per result took seconds of every guest). dom0 reads them
# once the phase ends; the console has every line as it comes.
PENDING=/tmp/xenpci-pending
: > "$PENDING"
flush_results() {
	set --
	while IFS= read -r l; do
		set -- "$@" "$XS/tap/${l%% *}" "${l#* }"
	done < "$PENDING"
	[ $# -gt 0 ] && xenstore-write "$@" 2>/dev/null
	: > "$PENDING"
}
__ktap_test() {
	result="$1"; description="$2"; directive="${3:-}"
	line="$result $KTAP_TESTNO $description${directive:+ # $directive}"
	echo "$line"
	N=$((N + 1))
	printf '%s %s\n' "$N" "$line" >> "$PENDING"
	[ $((N % 8)) = 0 ] && flush_results
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
}
end_phase() {
	flush_results
	xenstore-write "$XS/phase$1" "$N" 2>/dev/null
	echo "XENPCI-DOMU-PHASE$1"
}

echo "XENPCI-DOMU-START kernel $(uname -r) uptime $(uptime_s)"
# ---- begin: the kunit group (xenpci.front=kunit, dom0/kunit.sh) ----
# No device: report the KUnit suites that ran at this guest's boot. They print
# at KERN_INFO, below the console's loglevel: copy their KTAP from the kernel
# log to the console (prefixed "KUNIT: ") and to xenstore (data/xenpci/kunit/N,
# then data/xenpci/kunit/lines = N), in batches of 20 lines per write.
if [ "$(cmdline_arg front c)" = kunit ]; then
	dmesg -s 1048576 | sed 's/^\[ *[0-9.]*\] //' |
		grep -E '^ *(KTAP version [0-9]+|1\.\.[0-9]+|# |(not )?ok [0-9]+ )' > /tmp/kunit.ktap
	echo "XENPCI-DOMU-KUNIT-BEGIN"
	n=0
	set --
	while IFS= read -r line; do
		n=$((n + 1))
		echo "KUNIT: $line"
		set -- "$@" "$XS/kunit/$n" "$line"
		if [ $# -ge 40 ]; then xenstore-write "$@"; set --; fi
	done < /tmp/kunit.ktap
	[ $# -gt 0 ] && xenstore-write "$@"
	xenstore-write "$XS/kunit/lines" "$n"
	echo "XENPCI-DOMU-KUNIT-END $n"
	exit 0
fi
# ---- end: the kunit group ----
ktap_print_header
for f in domU/*.sh; do . "$f"; done
if [ "$FRONT" = rogue ]; then
	# The hostile groups: a user-space frontend, then death mid-request.
	domU_rogue_tests
	end_phase 1
	domU_rogue_die
	ktap_print_totals
	exit 0
fi
if [ "$(cmdline_arg scanonly 0)" != 0 ]; then
	# make bench: the bus scan of several devices, nothing else.
	domU_scan_only "$(cmdline_arg scanonly 0)"
	ktap_print_totals
	exit 0
fi
if [ "$(cmdline_arg loadonly 0)" = 1 ]; then
	# dom0 plays the backend and checks what the frontend does
	# (dom0/passthrough.sh, group_rust_front_missed_connect): load it, no more.
	load_frontend
	exit 0
fi
if [ "$(cmdline_arg slots 0)" = 1 ]; then
	# The devices boot: the virtual bus's 33rd slot.
	domU_slots_tests
	end_phase 1
	ktap_print_totals
	exit 0
fi
if [ "$(cmdline_arg multi 0)" = 1 ]; then
	# The devices boot: every lab device in one guest.
	domU_multi_tests
	end_phase 1
	if [ "$(cmdline_arg aer 0)" != 0 ]; then
		domU_aer_tests
		end_phase 2
	fi
	if [ "$(cmdline_arg hotplug 0)" != 0 ]; then
		# The NVMe drive detached and attached again while the guest runs.
		domU_hotplug_tests
		end_phase 3
	fi
	ktap_print_totals
	exit 0
fi
domU_device_tests
end_phase 1
if [ "$(cmdline_arg detach 0)" = 1 ]; then
	domU_detach_tests
	end_phase 2
fi
domU_bench
ktap_print_totals
