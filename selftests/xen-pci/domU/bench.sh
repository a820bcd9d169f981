# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the benchmark groups (dom0/bench.sh): xenpci.bench=SECONDS.
# Two timed runs of cfgbench: 4-byte reads of the ID dword (offset 0), then
# 1-byte writes of the Interrupt Line (0x3c) with the value it reads (a
# register every backend keeps virtual: nothing reaches the device). Before
# each run the guest writes bench_OP_ready and pauses (dom0 reads the CPU time
# Xen accounted to it), warms up for a second (the first accesses after boot
# are slower), writes bench_OP_start, runs, then writes bench_OP_result
# (cfgbench's line), bench_OP_warmup (the warm-up's) and bench_OP_done.
# With xenpci.benchab=1 two more read runs, readb and readc, then two more
# write runs, writeb and writec, each started by dom0's bench_OP_go. With xenpci.benchgo=1 (two guests at once) only read,
# readb with benchab=1 and readn with benchyield=1, each started by
# bench_OP_go.
# With xenpci.benchyield=1 (the Rust frontend) two more read runs, readn
# with its yield_when_preempted off, readf with it on again.
# With xenpci.benchreads=1 (make bench's bench-alt, dom0/bench.sh
# bench_alt_test) the read run, then readhw, 4-byte reads of the Revision ID
# and Class Code (0x08), a register no backend keeps (the device answers
# each), then the same reads of the device's vendor file (sysfs, 4 bytes at
# 0): a read that never leaves the guest, the floor under every config
# read's time (the system call and sysfs).
# With the Rust frontend, bench_OP_front: its statistics of the run
# (front_stats), cleared just before it.
# Before the runs, bench_scan: how long the frontend's bus scan took
# (Documentation/benchmark.rst, "Bus scan"), from the kernel log: the Rust
# frontend's own line, with its probes and config accesses, and the time it
# took to read the backend's keys and its round trips' time; for the C one the
# time from "Creating PCI Frontend Bus" to its last "claiming resource". For
# both, load_ms, measured the same way for both frontends: the insmod of the
# frontend, which returns with every device added (the marks of load_frontend,
# device.sh), split into pre_ms, from the insmod to the scan's start (the
# module's load, the handshake through xenstore, and for the Rust frontend
# nothing of its scan; for the C one its reading of the roots), and post_ms,
# from the scan's end to the insmod's return (switching to Connected and
# xenbus's looks every 100 ms; for the C frontend also adding the devices).
bench_scan() {
	dmesg | awk '
		function ts(l) { sub(/^\[ */, "", l); sub(/\].*/, "", l); return l + 0 }
		/pcifront .*scanned [0-9]+ root/ {
			s1 = ts($0)
			for (i = 3; i <= NF; i++) {
				if ($i == "probe(s),") p = $(i - 1)
				if ($i == "access(es)") a = $(i - 2)
				if ($i == "ms") ms = $(i - 1)
				if ($i == "(keys") k = $(i + 1)
				if ($i == "trips") t = $(i + 1)
			}
		}
		/pcifront .*Creating PCI Frontend Bus/ && c0 == "" { c0 = ts($0) }
		/pcifront .*claiming resource/ { c1 = ts($0) }
		/xenpci: loading the / { l0 = ts($0); l1 = "" }
		/xenpci: loaded the / && l0 != "" && l1 == "" { l1 = ts($0) }
		END {
			if (ms != "") {
				printf "scan_ms=%s probes=%s accesses=%s keys_ms=%s trips_ms=%s", ms, p, a, k, t
				s0 = s1 - ms / 1000
			} else if (c0 != "" && c1 != "") {
				printf "scan_ms=%.0f", (c1 - c0) * 1000
				s0 = c0; s1 = c1
			} else
				exit
			if (l1 != "")
				printf " load_ms=%.0f pre_ms=%.0f post_ms=%.0f", (l1 - l0) * 1000, (s0 - l0) * 1000, (l1 - s1) * 1000
			printf "\n"
		}'
}

# The Rust frontend's statistics of its connection (FRONT_STATS, device.sh):
# its "name value" lines, given as one line of name=value, or nothing with
# the C frontend. front_stats_clear clears them.
front_stats() { [ -r "$FRONT_STATS" ] && awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $1, $2 } END { print "" }' "$FRONT_STATS"; }
front_stats_clear() { [ -w "$FRONT_STATS" ] && echo 0 > "$FRONT_STATS"; }
YIELD_PARAM=/sys/module/pcifront/parameters/yield_when_preempted
QUIET_PARAM=/sys/module/pcifront/parameters/quiet_answers

# wait_go KEY SECS: waits for dom0's KEY in this guest's directory, looking
# every 0.5 s (a process each time, which costs CPU under TCG); 2*SECS looks
# at most, longer than SECS s (the guest's sh has no SECONDS: they are counted).
wait_go() {
	local n=$(($2 * 2))
	while [ -z "$(xenstore-read "$XS/$1" 2>/dev/null)" ]; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		nap 0.5
	done
}

domU_bench() {
	secs=$(cmdline_arg bench 0)
	[ "$secs" -gt 0 ] 2>/dev/null || return 0
	[ -e "$GDEV/config" ] || return 0
	scan=$(bench_scan)
	xenstore-write "$XS/bench_scan" "${scan:-none}"
	ops="read write"
	# Two read runs more, the first of which dom0 makes the Rust backend
	# serve in its work item only (dom0/bench.sh): the fast path against none
	# and again, same guest; then two write runs so.
	[ "$(cmdline_arg benchab 0)" = 1 ] && ops="read write readb readc writeb writec"
	# With the Rust frontend, eight read runs more: readn with its
	# yield_when_preempted off, readf with it on again, then three times
	# readq with its quiet_answers off and readr with it on again (the guest
	# switches them; alternating, as a guest's rate drifts over its runs).
	[ "$(cmdline_arg benchyield 0)" = 1 ] && ops="$ops readn readf readq readr readq readr readq readr"
	[ "$(cmdline_arg benchreads 0)" = 1 ] && ops="read readhw sysfs"
	for op in $ops; do
		bench_file=$GDEV/config bench_mode=${op%[bcnfqr]}
		case $op in
		read|readb|readc|readn|readf|readq|readr) set -- 0 4 ;;
		write|writeb|writec) set -- 0x3c 1 ;;
		readhw) set -- 0x08 4; bench_mode=read ;;
		sysfs) set -- 0 4; bench_file=$GDEV/vendor bench_mode=read ;;
		esac
		case $op in
		readn) echo 0 > "$YIELD_PARAM" || return 0 ;;
		readf) echo 1 > "$YIELD_PARAM" || return 0 ;;
		readq) echo 0 > "$QUIET_PARAM" || return 0 ;;
		readr) echo 1 > "$QUIET_PARAM" || return 0 ;;
		esac
		xenstore-write "$XS/bench_${op}_ready" 1
		if [ "$(cmdline_arg benchgo 0)" = 1 ]; then
			# make bench's two guests at once (dom0/bench.sh bench_two_test):
			# reads only (read, readb with the Rust backend's fast_path off,
			# readn with the Rust frontend's yield off), each started when
			# dom0 says go to both.
			case $op in read|readb|readn) ;; *) continue ;; esac
			wait_go "bench_${op}_go" 300 || return 0
		elif [ "${op%[bc]}" != "$op" ]; then
			# dom0 switches the backend's fast_path, then says go.
			wait_go "bench_${op}_go" 120 || return 0
		else
			nap 3
		fi
		warm=$(cfgbench "$bench_file" 1 "$1" "$2" "$bench_mode")
		front_stats_clear
		xenstore-write "$XS/bench_${op}_start" 1
		out=$(cfgbench "$bench_file" "$secs" "$1" "$2" "$bench_mode")
		echo "# $out"
		front=$(front_stats)
		xenstore-write "$XS/bench_${op}_result" "${out:-cfgbench failed}" \
			"$XS/bench_${op}_warmup" "${warm:-cfgbench failed}" \
			"$XS/bench_${op}_front" "${front:-none}" "$XS/bench_${op}_done" 1
	done
	# The module's defaults, whatever happened above.
	[ ! -w "$YIELD_PARAM" ] || echo 1 > "$YIELD_PARAM"
	[ ! -w "$QUIET_PARAM" ] || echo 1 > "$QUIET_PARAM"
}

# make bench's scan groups (xenpci.scanonly=N, dom0/bench.sh bench_scan_test):
# loads the frontend, waits for its N devices (240 looks, 0.5 s apart: 2-3
# minutes under TCG, where each look costs processes), then reports the bus
# scan's time and how many PCI functions the guest found.
pci_count() { ls /sys/bus/pci/devices 2>/dev/null | wc -l; }
domU_scan_only() {
	local want=$1 n=240 scan
	load_frontend
	while [ "$(pci_count)" -lt "$want" ] && [ "$n" -gt 0 ]; do
		n=$((n - 1))
		nap 0.5
	done
	# The frontends log their scan as they end it.
	nap 2
	scan=$(bench_scan)
	stats=$(front_stats)
	xenstore-write "$XS/bench_scan" "${scan:-none}${stats:+ $stats} devices=$(pci_count)"
}
