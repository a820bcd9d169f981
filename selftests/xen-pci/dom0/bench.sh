# SPDX-License-Identifier: GPL-2.0
#
# Benchmark groups: config-space accesses per second in a PV guest through a
# backend/frontend pair, their latency and what they cost. Two kinds of op,
# timed apart: 4-byte reads of the ID dword, and 1-byte writes of the
# Interrupt Line (0x3c), a register every backend keeps virtual (the guest
# writes back the value it reads; nothing reaches the device). Per kind: ops/s,
# the 50th and 99th percentiles of one op's latency (cfgbench's histogram),
# the CPU time of the guest's benchmark process per op, the CPU time Xen
# accounted to the guest domain per op, and dom0's (the backend's host) CPU
# time per op. Then the same ops in dom0 on the device itself (dom0-native),
# the limit. And how long the frontend's bus scan took (the guest's kernel
# log). Results are "# bench ..." lines, which scripts/bench-table.py
# makes a table of; the KTAP results only say the benchmark ran and every op
# returned what it should (benchmarks are not timed tests).
#
# How the CPU times are taken, so that dom0's own work does not count as the
# backend's (under TCG every process dom0 starts costs about 0.1 s of CPU, an
# xl list about 0.7 s): dom0 follows the guest's keys with one xenstore-watch
# started before the guest runs, not by polling; dom0's CPU time is its
# kernel's (/proc/stat: user, nice, system, irq, softirq of all its vCPUs;
# not idle, iowait or steal), read by the shell itself at the run's start and
# done events; the guest's is Xen's accounting (xl list), read while the
# guest pauses before its warm-up and after the run, so that no xl runs
# inside dom0's window, and divided by the ops of the warm-up and the run.

# dom0's busy CPU time in clock ticks (USER_HZ, 100 a second) in TICKS: no
# process (a $(...) would fork).
dom0_ticks() {
	local _ u n s i w q sq _r
	read -r _ u n s i w q sq _r < /proc/stat
	TICKS=$((u + n + s + q + sq))
}

# CPU seconds Xen has accounted to the test guest.
guest_cpu() { timeout 10 xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $6 }'; }

# The watch of the guest's xenstore directory (WATCH_FD), from before it can
# write the benchmark's keys to the end of the group: xenstore-watch prints
# the path of every write under it, and fires once when the watch is set.
watch_guest() {
	coproc WATCH { exec timeout "$2" xenstore-watch "$(xs_guest "$1")" 2>/dev/null; }
	WATCH_FD=${WATCH[0]} WATCH_PIDS=$WATCH_PID
	read -r -t 30 -u "$WATCH_FD" _
}
unwatch_guest() { { kill "$WATCH_PIDS" && wait "$WATCH_PIDS"; } 2>/dev/null; }

# next_key DID KEY SECS: reads the watch's events until the guest writes its
# KEY; fails after SECS s without it. Then sets TICKS and NOW. No process.
next_key() {
	local want=/local/domain/$1/data/xenpci/$2 end=$((SECONDS + $3)) path
	while [ "$SECONDS" -lt "$end" ]; do
		read -r -t $((end - SECONDS)) -u "$WATCH_FD" path || break
		if [ "$path" = "$want" ]; then
			dom0_ticks
			NOW=$EPOCHREALTIME
			return 0
		fi
	done
	echo "# no $2 from the guest in $3 s"
	return 1
}

# bench_line PAIR OP RESULT WARMUP G0 G1 K0 K1 T0 T1 IDLE [RUN]: the "# bench"
# line of one run, from cfgbench's lines of the run and the warm-up, the
# guest's CPU seconds (Xen) before and after, dom0's ticks and the times of
# the run's start and done events, and dom0's CPU use with no guest (ms per
# s); RUN, the run's own name (readf, readq, ...: which runs bracket which),
# OP if not given.
bench_line() {
	awk -v pair="$1" -v op="$2" -v out="$3" -v warm="$4" -v g0="$5" -v g1="$6" \
		-v k0="$7" -v k1="$8" -v t0="$9" -v t1="${10}" -v idle="${11}" -v run="${12:-$2}" 'BEGIN {
		n = split(out, f, " ")
		for (i = 1; i <= n; i++)
			if (split(f[i], kv, "=") == 2)
				v[kv[1]] = kv[2]
		n = split(warm, f, " ")
		for (i = 1; i <= n; i++)
			if (split(f[i], kv, "=") == 2 && kv[1] == "ops")
				wops = kv[2]
		ops = v["ops"] + 0
		gd = ops > 0 && g0 != "" && g1 != "" ? sprintf("%.1f", (g1 - g0) * 1e6 / (ops + wops)) : "?"
		dd = ops > 0 && k0 != "" && k1 != "" ? sprintf("%.1f", (k1 - k0) * 1e4 / ops) : "?"
		w = t0 != "" && t1 != "" ? sprintf("%.2f", t1 - t0) : "?"
		printf "# bench pair=%s op=%s ops_per_s=%s us_per_op=%s p50_us=%s p99_us=%s max_us=%s clock_us=%s", \
			pair, op, v["ops_per_s"], v["us_per_op"], v["p50_us"], v["p99_us"], v["max_us"], v["clock_us"]
		printf " guest_process_cpu_us_per_op=%s guest_domain_cpu_us_per_op=%s dom0_cpu_us_per_op=%s", \
			v["cpu_us_per_op"], gd, dd
		printf " dom0_idle_cpu_ms_per_s=%s window_s=%s ops=%s warmup_ops=%s secs=%s mismatches=%s run=%s\n", \
			idle, w, v["ops"], wops + 0, v["secs"], v["mismatches"], run
	}'
}

# The Rust backend's own account of a run, from the device's statistics in
# debugfs (drivers/xenpci_common/stats.rs), cleared when the guest is ready
# for the run and read as soon as it is done: how many requests it served
# (the 1 s warm-up's included), the median time it took to serve one, and the
# median and 99th percentile of the time a request waited between the event
# that announced it and its service (the hand-over from the event channel's
# interrupt to the work item), and how many it served on the interrupt itself
# (on_interrupt, with no wait). Buckets of powers of two of microseconds
# ("<64": from 32 to 64 us). The C backend has no such counts.
backend_stats_clear() {
	local f=/sys/kernel/debug/pciback/$BDF
	echo 0 > "$f" || { echo "# cannot clear $f"; return 1; }
}
# backend_stats_line PAIR OP STATS: the "# bench" line of STATS, the file's text.
backend_stats_line() {
	echo "$3" | awk -v pair="$1" -v op="$2" '
		/^requests / { for (i = 2; i <= NF; i++) { split($i, kv, "="); n += kv[2] } }
		/^service_us_p50 / { s50 = $2 }
		/^wait_us_p50 / { w50 = $2 }
		/^wait_us_p99 / { w99 = $2 }
		/^on_interrupt / { irq = $2 }
		END { printf "# bench pair=%s op=%s-backend requests=%d service_p50_us=%s wait_p50_us=%s wait_p99_us=%s on_interrupt=%s\n", pair, op, n, s50, w50, w99, irq }'
}

# frontend_stats_line STATS PAIR OP: the "# bench" line of the Rust
# frontend's statistics of a run (a guest's bench_OP_front, domU/bench.sh
# front_stats: "answered=N ..."; nothing with the C frontend's "none").
frontend_stats_line() {
	case $1 in
	answered=*) echo "# bench pair=$2 op=$3-frontend $1" ;;
	esac
}
# no_yield RESULT STATS: the run with the frontend's yield off, none yielding
# (STATS also says how many spins were preempted: whether a yield was due).
# both_no_yield R1 S1 R2 S2: both guests' runs so.
both_no_yield() { no_yield "$1" "$2" && no_yield "$3" "$4"; }
# stat_of KEY STATS: KEY's count in the Rust frontend's statistics line
# ("... KEY=N ...").
stat_of() { echo " $2 " | sed -n "s/.* $1=\([0-9]*\) .*/\1/p"; }
# not_watched RESULT STATS: the run with the frontend's quiet_answers off, or
# any run behind a backend that does not offer feature-quiet-answers (the C
# one), no post watching for its answer; watched_most RESULT STATS: a run with
# it on behind the Rust backend, more than half its round trips posted
# watching (the others polled from the start: a connection's first, or after
# a long one).
not_watched() {
	consistent "$1" || return 1
	echo "# the frontend's statistics: '$2'"
	[ "$(stat_of watched "$2")" = 0 ]
}
watched_most() {
	local w a
	consistent "$1" || return 1
	w=$(stat_of watched "$2") a=$(stat_of answered "$2")
	echo "# watched=$w answered=$a"
	[ "${a:-0}" -gt 0 ] && [ "$((${w:-0} * 2))" -gt "$a" ]
}
# quiet_backend READ_STATS READQ_STATS: the Rust backend's account of the read
# run (quiet_answers on) and of the readq run (off): most answers of the first
# not signalled (watched_answers), every one of the second signalled.
quiet_backend() {
	local n q nq
	n=$(echo "$1" | awk '/^requests / { for (i = 2; i <= NF; i++) { split($i, kv, "="); n += kv[2] } } END { print n + 0 }')
	q=$(echo "$1" | sed -n 's/^watched_answers \([0-9]*\)$/\1/p')
	nq=$(echo "$2" | sed -n 's/^watched_answers \([0-9]*\)$/\1/p')
	echo "# read: requests=$n watched_answers=$q; with quiet_answers off: watched_answers=$nq"
	[ "$n" -gt 0 ] && [ "$((${q:-0} * 2))" -gt "$n" ] && [ "$nq" = 0 ]
}
no_yield() {
	consistent "$1" || return 1
	echo "# the frontend's statistics: '$2'"
	case " $2 " in
	*" yields=0 "*) ;;
	*) return 1 ;;
	esac
}

# A run's result: cfgbench's line with every op as it should be.
ran() { case $1 in *" ops_per_s="*) true ;; *) echo "# no result: '$1'"; false ;; esac; }
ran_both() { ran "$1" && ran "$2"; }
consistent() { case $1 in *" mismatches=0 "*) true ;; *) echo "# $1"; false ;; esac; }
# wq_only RESULT N: the run with fast_path off, none of its N reads on the
# interrupt; fast_too RESULT N: the run with it on again, some of them there.
wq_only() { consistent "$1" || return 1; [ "$2" = 0 ] || { echo "# on_interrupt: '$2'"; false; }; }
fast_too() { consistent "$1" || return 1; [ "${2:-0}" -gt 0 ] || { echo "# on_interrupt: '$2'"; false; }; }
# writes_fast RESULT STATS: the write run, more than half its writes (to the
# Interrupt Line, which the backend keeps virtual: plain writes) served on the
# interrupt (on_interrupt counts its few reads too).
writes_fast() {
	local w irq
	consistent "$1" || return 1
	w=$(echo "$2" | sed -n 's/^requests .*conf_write=\([0-9]*\) .*/\1/p')
	irq=$(echo "$2" | sed -n 's/^on_interrupt \([0-9]*\)$/\1/p')
	echo "# conf_write=$w on_interrupt=$irq"
	[ "${w:-0}" -gt 0 ] && [ "$((${irq:-0} * 2))" -gt "$w" ]
}

# bench_test BACK FRONT: with the Rust backend, the guest reads twice more:
# readb with the backend's fast_path off, every request served in its work
# item as in C (reported as the pair rust-wq/FRONT), then readc with it on
# again (reported with read): the same guest and device in the same boot, the
# fast path before and after; then writes twice more, writeb with fast_path
# off (rust-wq/FRONT) and writec with it on again (reported with write). dom0
# switches fast_path when the guest is ready
# for the run, then tells it to go (bench_OP_go). With the Rust frontend, the
# guest reads twice more, switching the frontend's yield_when_preempted
# itself: readn with it off (the pair BACK/rust-noyield), then readf with it
# on again (reported with read), then three times readq with its
# quiet_answers off, every answer signalled (the pair BACK/rust-signalled),
# and readr with it on again (reported with read): alternating, as a guest's
# rate drifts over its runs; the checks look at the last readq. After each run of the Rust frontend, its own account
# of the run (op=OP-frontend, its debugfs statistics).
bench_test() {
	local back=$1 front=$2 did secs=${BENCH_SECONDS:-10} op idle out warm g0 g1 k0 k1 t0 t1 tx slow stats pair ops="read write" ab=0 yab=0 wq_irq= fast_irq= write_stats= writec_stats= wq_write_irq= read_stats= readq_stats=
	[ "$back" = rust ] && ops="read write readb readc writeb writec" ab=1
	[ "$front" = rust ] && ops="$ops readn readf readq readr readq readr readq readr" yab=1
	local -A result native front_stats
	ktap_print_header
	ktap_set_plan $((11 + 5 * ab + 3 * yab + ab * yab))
	rotate_guest_log
	# dom0's own CPU use over 5 s with no guest: the floor under its CPU per op.
	dom0_ticks; k0=$TICKS t0=$EPOCHREALTIME
	nap 5
	dom0_ticks; k1=$TICKS t1=$EPOCHREALTIME
	idle=$(awk -v k="$((k1 - k0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", k * 10 / (b - a) }')
	ktap_test_result "$back backend loads" backend_load "$back"
	[ "$back" = rust ] && echo "# fast_path=$(cat /sys/module/pciback/parameters/fast_path 2>&1)"
	ktap_test_result "xl pci-assignable-add $BDF" timeout 60 xl pci-assignable-add "$BDF"
	write_guest_cfg "$front" 0
	sed -i "s/^extra = \"\(.*\)\"/extra = \"\1 xenpci.bench=$secs xenpci.benchab=$ab xenpci.benchyield=$yab\"/" /tmp/$GUEST.cfg
	echo "pci = [ '$BDF' ]" >> /tmp/$GUEST.cfg
	ktap_test_result "xl create with pci=[...]" timeout 120 xl create /tmp/$GUEST.cfg
	did=$(xl domid $GUEST 2>/dev/null)
	if [ -n "$did" ] && ! watch_guest "$did" 600; then
		echo "# xenstore-watch of the guest's directory failed"
		did=
	fi
	for op in $ops; do
		result[$op]=
		pair=$back/$front
		case $op in readb|writeb) pair=rust-wq/$front ;; esac
		[ "$op" = readn ] && pair=$back/rust-noyield
		[ "$op" = readq ] && pair=$back/rust-signalled
		[ -n "$did" ] || continue
		# The guest boots and checks its device before the first run.
		next_key "$did" "bench_${op}_ready" "$([ "$op" = read ] && echo 150 || echo 60)" || continue
		# The guest writes the write run's ready as soon as the read run is done:
		# dom0's time since then counts.
		[ "$op" = read ] && tx=$NOW
		case $op in
		readb|readc|writeb|writec)
			echo "$(case $op in *b) echo 0 ;; *) echo 1 ;; esac)" > /sys/module/pciback/parameters/fast_path ||
				{ echo "# cannot switch fast_path"; continue; }
			echo "# $op: fast_path=$(cat /sys/module/pciback/parameters/fast_path)" ;;
		esac
		stats=
		[ "$back" = rust ] && backend_stats_clear && stats=yes
		g0=$(guest_cpu)
		# The guest pauses 3 s after its ready, then warms up for 1 s: a dom0
		# that took over 3 s to get past the xl list (no time to count from:
		# the same) may have read the guest's CPU time during the warm-up and
		# may read the start event late: dom0's and the guest's CPU per op are
		# then left unknown.
		slow=1
		[ -z "$tx" ] || slow=$((${EPOCHREALTIME/./} - ${tx/./} > 3000000))
		case $op in
		readb|readc|writeb|writec)
			# The guest waits for this: no time limit on dom0's part.
			slow=0
			xenstore-write "$(xs_guest "$did")/bench_${op}_go" 1 ;;
		esac
		next_key "$did" "bench_${op}_start" 60 || continue
		k0=$TICKS t0=$NOW
		[ "$slow" = 0 ] || { echo "# dom0 took over 3 s from the guest's ready: the CPU per $op not measured"; k0= g0=; }
		next_key "$did" "bench_${op}_done" $((secs + 60)) || continue
		k1=$TICKS t1=$NOW tx=$NOW
		[ -z "$stats" ] || stats=$(cat "/sys/kernel/debug/pciback/$BDF") || stats=
		g1=$(guest_cpu)
		out=$(guest_count "$did" "bench_${op}_result")
		warm=$(guest_count "$did" "bench_${op}_warmup")
		result[$op]=$out
		echo "# guest: $out"
		ran "$out" || continue
		bench_line "$pair" "${op%[bcnfqr]}" "$out" "$warm" "$g0" "$g1" "$k0" "$k1" "$t0" "$t1" "$idle" "$op"
		[ -z "$stats" ] || backend_stats_line "$pair" "${op%[bcnfqr]}" "$stats"
		front_stats[$op]=$(guest_count "$did" "bench_${op}_front")
		frontend_stats_line "${front_stats[$op]}" "$pair" "${op%[bcnfqr]}"
		case $op in
		read) read_stats=$stats ;;
		readq) readq_stats=$stats ;;
		write) write_stats=$stats ;;
		writec) writec_stats=$stats ;;
		writeb) wq_write_irq=$(echo "$stats" | sed -n 's/^on_interrupt \([0-9]*\)$/\1/p') ;;
		readb) wq_irq=$(echo "$stats" | sed -n 's/^on_interrupt \([0-9]*\)$/\1/p') ;;
		readc) fast_irq=$(echo "$stats" | sed -n 's/^on_interrupt \([0-9]*\)$/\1/p') ;;
		esac
	done
	# On again whatever happened above (the module's default).
	[ "$ab" = 1 ] && echo 1 > /sys/module/pciback/parameters/fast_path
	if [ -n "$did" ]; then
		unwatch_guest
		# The frontend's bus scan, from the guest's kernel log (domU/bench.sh).
		out=$(guest_count "$did" bench_scan)
		case $out in
		scan_ms=*) echo "# bench pair=$back/$front op=scan $out" ;;
		*) echo "# no bus scan time from the guest: '$out'" ;;
		esac
	fi
	ktap_check "guest read benchmark ran" ran "${result[read]}"
	ktap_check "every benchmark read returned the first read's value" consistent "${result[read]}"
	ktap_check "guest write benchmark ran" ran "${result[write]}"
	ktap_check "the Interrupt Line read back the value the benchmark wrote" consistent "${result[write]}"
	if [ "$ab" = 1 ]; then
		ktap_check "guest write benchmark: most writes served on the event channel's interrupt" \
			writes_fast "${result[write]}" "$write_stats"
		ktap_check "guest read benchmark with fast_path off ran, every read its first value, none on the interrupt" \
			wq_only "${result[readb]}" "$wq_irq"
		ktap_check "guest read benchmark with fast_path on again ran, every read its first value, some on the interrupt" \
			fast_too "${result[readc]}" "$fast_irq"
		ktap_check "guest write benchmark with fast_path off ran, every write read back, none on the interrupt" \
			wq_only "${result[writeb]}" "$wq_write_irq"
		ktap_check "guest write benchmark with fast_path on again ran, every write read back, most on the interrupt" \
			writes_fast "${result[writec]}" "$writec_stats"
	fi
	if [ "$yab" = 1 ]; then
		ktap_check "guest read benchmark with the frontend's yield_when_preempted off ran, every read its first value, none yielding" \
			no_yield "${result[readn]}" "${front_stats[readn]}"
		if [ "$back" = rust ]; then
			ktap_check "the frontend's reads watched for most of their answers (quiet_answers, offered by the Rust backend)" \
				watched_most "${result[read]}" "${front_stats[read]}"
		else
			ktap_check "the frontend's reads watched for none of their answers (the C backend offers no quiet answers)" \
				not_watched "${result[read]}" "${front_stats[read]}"
		fi
		ktap_check "guest read benchmark with the frontend's quiet_answers off ran, every read its first value, none watching" \
			not_watched "${result[readq]}" "${front_stats[readq]}"
	fi
	if [ "$ab" = 1 ] && [ "$yab" = 1 ]; then
		ktap_check "the backend signalled few answers the frontend watched for, and every one with quiet_answers off" \
			quiet_backend "$read_stats" "$readq_stats"
	fi
	destroy_guest "$GUEST"
	ktap_test_result "guest destroyed" wait_for 20 guest_gone
	ktap_test_result "xl pci-assignable-remove $BDF" timeout 60 xl pci-assignable-remove "$BDF"
	# The same ops in dom0 on the device itself: the limit. dom0's CPU per op
	# is its kernel's, over the run.
	for op in read write; do
		dom0_ticks; k0=$TICKS t0=$EPOCHREALTIME
		case $op in
		read) out=$(./cfgbench "/sys/bus/pci/devices/$BDF/config" 5 0 4 read) ;;
		write) out=$(./cfgbench "/sys/bus/pci/devices/$BDF/config" 5 0x3c 1 write) ;;
		esac
		dom0_ticks; k1=$TICKS t1=$EPOCHREALTIME
		native[$op]=$out
		ran "$out" && bench_line dom0-native "$op" "$out" "" "" "" "$k0" "$k1" "$t0" "$t1" "$idle"
	done
	ktap_check "dom0 native reads and writes ran" ran_both "${native[read]}" "${native[write]}"
	ktap_test_result "$back backend unloads" backend_unload "$back"
	ktap_finished
}

# bench_scan_test BACK FRONT: how long the frontend's bus scan of four
# exported devices takes (the bench boot's four edu functions, SCAN_DEVS, in
# one guest on its virtual bus): the guest only reports its scan
# (domU/bench.sh, xenpci.scanonly=4) and how many PCI functions it found.
SCAN_DEVS=4
scan_devs() { lspci -D -n -d "$DEV_ID" | awk -v n="$SCAN_DEVS" 'NR <= n { print $1 }'; }
guest_key_set() { [ -n "$(guest_count "$1" "$2")" ]; }
assignable_all() {
	local b
	for b in $(scan_devs); do timeout 60 xl pci-assignable-add "$b" || return 1; done
}
unassignable_all() {
	local b rc=0
	for b in $(scan_devs); do timeout 60 xl pci-assignable-remove -r "$b" || rc=1; done
	return $rc
}
found_all() { case $1 in scan_ms=*" devices=$SCAN_DEVS") true ;; *) echo "# guest: '$1'"; false ;; esac; }
bench_scan_test() {
	local back=$1 front=$2 did out devs
	ktap_print_header
	ktap_set_plan 7
	rotate_guest_log
	devs=$(scan_devs)
	echo "# the devices: $(echo $devs)"
	ktap_test_result "$back backend loads" env_hide0_load "$back"
	ktap_test_result "xl pci-assignable-add of the $SCAN_DEVS devices" assignable_all
	guest_cfg "xenpci.front=$front xenpci.scanonly=$SCAN_DEVS" > /tmp/$GUEST.cfg
	echo "pci = [ $(for b in $devs; do printf "'%s', " "$b"; done) ]" >> /tmp/$GUEST.cfg
	ktap_test_result "xl create with the $SCAN_DEVS devices" timeout 120 xl create /tmp/$GUEST.cfg
	did=$(xl domid $GUEST 2>/dev/null)
	out=
	if [ -n "$did" ] && key_within 150 "$did" bench_scan; then
		out=$(guest_count "$did" bench_scan)
	fi
	if found_all "$out"; then
		echo "# bench pair=$back/$front op=scan$SCAN_DEVS ${out% devices=*}"
	else
		echo "# no bus scan time of $SCAN_DEVS devices from the guest: '$out'"
	fi
	ktap_check "the guest found the $SCAN_DEVS devices and timed its scan" found_all "$out"
	destroy_guest "$GUEST" "$SCAN_DEVS"
	ktap_test_result "guest destroyed" wait_for 20 guest_gone
	ktap_test_result "the $SCAN_DEVS devices given back (xl pci-assignable-remove -r)" unassignable_all
	ktap_test_result "$back backend unloads" backend_unload "$back"
	ktap_finished
}
# The Rust backend seizes nothing at load here: xl pci-assignable-add does.
env_hide0_load() { HIDE=0 backend_load "$1"; }

# bench_two_test BACK FRONT: two guests at once, each reading its own device
# (the bench boot's first two edu functions) for BENCH_SECONDS: both get
# dom0's go (bench_OP_go) when both are ready. One "# bench ... op=read2
# guest=N" line per guest; bench-table.py sets their sum against the pair's
# one-guest rate. With the Rust backend the two guests read again with its
# fast_path off (op=read2, pair rust-wq/FRONT), and its own account of each
# device's reads follows each run (op=read2-backend guest=N): how many it
# served on the interrupt, how long the others waited for the work item.
# With the Rust frontend the two read again with its yield_when_preempted
# off (pair BACK/rust-noyield), and each frontend's account of its reads
# follows each run (op=read2-frontend guest=N).
GUEST2=domU2
assignable_two() { timeout 60 xl pci-assignable-add "$1" && timeout 60 xl pci-assignable-add "$2"; }
unassignable_two() { timeout 60 xl pci-assignable-remove -r "$1"; timeout 60 xl pci-assignable-remove -r "$2"; }
created_two() { timeout 120 xl create /tmp/$GUEST.cfg && timeout 120 xl create /tmp/$GUEST2.cfg; }
both_gone() { guest_gone && ! xl domid "$GUEST2" >/dev/null 2>&1; }
# key_within SECS DID KEY: waits for the guest's KEY, looking every 2 s (a
# process each time: under TCG each costs dom0 about 0.1 s of CPU, which a
# loop of wait_for's 0.1 s would take from the guests).
key_within() {
	local end=$((SECONDS + $1))
	until guest_key_set "$2" "$3"; do
		[ "$SECONDS" -lt "$end" ] || { echo "# no $3 from guest $2 in $1 s"; return 1; }
		nap 2
	done
}
# both_consistent O1 O2: both guests' runs with every read its first value.
both_consistent() { consistent "$1" && consistent "$2"; }
bench_two_test() {
	local back=$1 front=$2 secs=${BENCH_SECONDS:-10} b1 b2 d1 d2 op pair ab=0 yab=0 ops=read n o1 o2 s1 s2 f1 f2 wait
	local -A res1 res2 fs1 fs2
	[ "$back" = rust ] && ab=1 ops="read readb"
	[ "$front" = rust ] && yab=1 ops="$ops readn"
	ktap_print_header
	ktap_set_plan $((9 + 2 * ab + yab))
	rotate_guest_log
	b1=$(scan_devs | sed -n 1p) b2=$(scan_devs | sed -n 2p)
	echo "# the devices: $b1 $b2"
	ktap_test_result "$back backend loads" env_hide0_load "$back"
	ktap_test_result "xl pci-assignable-add of two devices" assignable_two "$b1" "$b2"
	for n in 1 2; do
		local g=$GUEST b=$b1
		[ "$n" = 2 ] && g=$GUEST2 b=$b2
		GUEST=$g BDF=$b write_guest_cfg "$front" 0
		sed -i "s/^extra = \"\(.*\)\"/extra = \"\1 xenpci.bench=$secs xenpci.benchgo=1 xenpci.benchab=$ab xenpci.benchyield=$yab\"/" /tmp/$g.cfg
		echo "pci = [ '$b' ]" >> /tmp/$g.cfg
	done
	ktap_test_result "xl create of two guests, a device each" created_two
	d1=$(xl domid $GUEST 2>/dev/null) d2=$(xl domid $GUEST2 2>/dev/null)
	for op in $ops; do
		res1[$op]= res2[$op]=
		pair=$back/$front
		[ "$op" = readb ] && pair=rust-wq/$front
		[ "$op" = readn ] && pair=$back/rust-noyield
		wait=60
		[ "$op" = read ] && wait=150
		if [ -z "$d1" ] || [ -z "$d2" ] || ! key_within "$wait" "$d1" "bench_${op}_ready" ||
			! key_within 60 "$d2" "bench_${op}_ready"; then
			echo "# the guests did not both get ready for $op"
			continue
		fi
		if [ "$ab" = 1 ]; then
			echo "$([ "$op" = readb ] && echo 0 || echo 1)" > /sys/module/pciback/parameters/fast_path ||
				{ echo "# cannot switch fast_path"; continue; }
			echo "# $op: fast_path=$(cat /sys/module/pciback/parameters/fast_path)"
			BDF=$b1 backend_stats_clear
			BDF=$b2 backend_stats_clear
		fi
		# Both in one write; each guest looks every 0.5 s (the runs may start
		# that far apart). No process of dom0's during the runs.
		xenstore-write "$(xs_guest "$d1")/bench_${op}_go" 1 "$(xs_guest "$d2")/bench_${op}_go" 1
		nap $((secs + 3))
		key_within 40 "$d1" "bench_${op}_done"
		key_within 20 "$d2" "bench_${op}_done"
		s1= s2=
		if [ "$ab" = 1 ]; then
			s1=$(cat "/sys/kernel/debug/pciback/$b1") s2=$(cat "/sys/kernel/debug/pciback/$b2")
		fi
		o1=$(guest_count "$d1" "bench_${op}_result") o2=$(guest_count "$d2" "bench_${op}_result")
		res1[$op]=$o1 res2[$op]=$o2
		echo "# guest 1 $op: $o1"
		echo "# guest 2 $op: $o2"
		ran "$o1" && echo "# bench pair=$pair op=read2 guest=1 ${o1#cfgbench op=* }"
		ran "$o2" && echo "# bench pair=$pair op=read2 guest=2 ${o2#cfgbench op=* }"
		[ -z "$s1" ] || backend_stats_line "$pair" read2 "$s1" | sed 's/$/ guest=1/'
		[ -z "$s2" ] || backend_stats_line "$pair" read2 "$s2" | sed 's/$/ guest=2/'
		f1=$(guest_count "$d1" "bench_${op}_front") f2=$(guest_count "$d2" "bench_${op}_front")
		fs1[$op]=$f1 fs2[$op]=$f2
		frontend_stats_line "$f1" "$pair" read2 | sed 's/$/ guest=1/'
		frontend_stats_line "$f2" "$pair" read2 | sed 's/$/ guest=2/'
	done
	# On again whatever happened above (the module's default).
	[ "$ab" = 1 ] && echo 1 > /sys/module/pciback/parameters/fast_path
	ktap_check "both guests' reads ran at once" ran_both "${res1[read]}" "${res2[read]}"
	ktap_check "every read of guest 1 returned its first read's value" consistent "${res1[read]}"
	ktap_check "every read of guest 2 returned its first read's value" consistent "${res2[read]}"
	if [ "$ab" = 1 ]; then
		ktap_check "both guests' reads ran at once with fast_path off" ran_both "${res1[readb]}" "${res2[readb]}"
		ktap_check "every read of both guests with fast_path off returned its first read's value" \
			both_consistent "${res1[readb]}" "${res2[readb]}"
	fi
	if [ "$yab" = 1 ]; then
		ktap_check "both guests' reads ran at once with the frontend's yield off, every read its first value, none yielding" \
			both_no_yield "${res1[readn]}" "${fs1[readn]}" "${res2[readn]}" "${fs2[readn]}"
	fi
	destroy_guest "$GUEST"
	destroy_guest "$GUEST2"
	ktap_test_result "both guests destroyed" wait_for 20 both_gone
	ktap_test_result "the two devices given back (xl pci-assignable-remove -r)" unassignable_two "$b1" "$b2"
	ktap_test_result "$back backend unloads" backend_unload "$back"
	ktap_finished
}

# bench_alt_test: the C pair and the Rust pair taking turns in one boot, C
# first (BENCH_ALT runs, 7 by default: C, Rust, C, Rust, C, Rust, C; an odd
# count ends with C too, so that every Rust run has a C run on either side),
# a guest of its own each, reading only (xenpci.benchreads=1), every driver
# at its defaults. On this machine one pair's rate moves between boots by as
# much as the gap between the pairs, and drifts within a boot: bench-table.py
# sets each Rust run against the mean of the C runs on either side of it.
# Each run's "# bench" lines: op=readalt (as the read runs above, dom0's floor
# measured once, before the first; with the Rust frontend its own account,
# op=readalt-frontend), op=scanalt (the guest's bus scan of the device),
# op=readhwalt (then 4-byte reads of the Revision ID and Class Code at 0x08,
# which every backend reads from the device: the ID dword is the backend's
# own, which the Rust backend answers without the device), op=sysfsalt (then
# the same reads of the device's vendor file in sysfs, which never leave the
# guest: its floor), all with run=altN.
bench_alt_test() {
	local n=${BENCH_ALT:-7} i back idle k0 k1 t0 t1
	ktap_print_header
	ktap_set_plan "$n"
	rotate_guest_log
	dom0_ticks; k0=$TICKS t0=$EPOCHREALTIME
	nap 5
	dom0_ticks; k1=$TICKS t1=$EPOCHREALTIME
	idle=$(awk -v k="$((k1 - k0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", k * 10 / (b - a) }')
	for i in $(seq 1 "$n"); do
		back=c
		[ $((i % 2)) = 0 ] && back=rust
		ktap_check "run $i: $back backend and $back frontend, reads ran, every read its first value, and the sysfs floor's" \
			alt_run "$back" "$i" "$idle"
	done
	ktap_finished
}

# alt_run BACK I IDLE: run I of bench_alt_test, the pair BACK/BACK: loads the
# backend, gives it the device, reads in a new guest, then undoes all of it
# whatever failed (the next run needs the other backend).
alt_run() {
	local back=$1 i=$2 idle=$3 secs=${BENCH_SECONDS:-10} did rc=1
	HIDE=0 backend_load "$back" || { echo "# run $i: the $back backend does not load"; return 1; }
	if timeout 60 xl pci-assignable-add "$BDF"; then
		write_guest_cfg "$back" 0
		sed -i "s/^extra = \"\(.*\)\"/extra = \"\1 xenpci.bench=$secs xenpci.benchreads=1\"/" /tmp/$GUEST.cfg
		echo "pci = [ '$BDF' ]" >> /tmp/$GUEST.cfg
		if timeout 120 xl create /tmp/$GUEST.cfg; then
			did=$(xl domid $GUEST 2>/dev/null)
			if [ -z "$did" ]; then
				echo "# run $i: no guest"
			elif watch_guest "$did" 600; then
				alt_read "$back" "$i" "$did" "$idle" && rc=0
				unwatch_guest
			else
				echo "# run $i: xenstore-watch of the guest's directory failed"
				unwatch_guest
			fi
		fi
		# Also after a create that failed or was killed half way: a domain
		# left behind would keep the device from the runs after this one.
		if ! guest_gone; then
			destroy_guest "$GUEST"
			wait_for 20 guest_gone || { echo "# run $i: the guest is not gone"; rc=1; }
		fi
		timeout 60 xl pci-assignable-remove "$BDF" || rc=1
	fi
	backend_unload "$back" || rc=1
	return $rc
}

# alt_read BACK I DID IDLE: the read runs of alt_run's guest DID, each timed
# as bench_test times its read run (alt_timed), its bus scan and its sysfs
# floor.
alt_read() {
	local back=$1 i=$2 did=$3 idle=$4 secs=${BENCH_SECONDS:-10} out warm scan
	alt_timed "$back" "$i" "$did" "$idle" read readalt || return 1
	scan=$(guest_count "$did" bench_scan)
	case $scan in
	scan_ms=*) echo "# bench pair=$back/$back op=scanalt run=alt$i $scan" ;;
	*) echo "# no bus scan time from the guest: '$scan'" ;;
	esac
	alt_timed "$back" "$i" "$did" "$idle" readhw readhwalt || return 1
	# The guest's floor: only its process's CPU time (dom0 reads neither its
	# own nor the guest domain's in this window).
	next_key "$did" bench_sysfs_done $((secs + 60)) || return 1
	out=$(guest_count "$did" bench_sysfs_result)
	echo "# guest (sysfs): $out"
	ran "$out" && consistent "$out" || return 1
	warm=$(guest_count "$did" bench_sysfs_warmup)
	bench_line "$back/$back" sysfsalt "$out" "$warm" "" "" "" "" "" "" "$idle" "alt$i"
}

# alt_timed BACK I DID IDLE RUN OP: the guest's run RUN (its bench_RUN_*
# keys), with the guest's and dom0's CPU time, as OP of run I.
alt_timed() {
	local back=$1 i=$2 did=$3 idle=$4 run=$5 op=$6 secs=${BENCH_SECONDS:-10} tx g0 g1 k0 k1 t0 t1 slow out warm
	next_key "$did" "bench_${run}_ready" 150 || return 1
	tx=$NOW
	g0=$(guest_cpu)
	slow=$((${EPOCHREALTIME/./} - ${tx/./} > 3000000))
	next_key "$did" "bench_${run}_start" 60 || return 1
	k0=$TICKS t0=$NOW
	[ "$slow" = 0 ] || { echo "# dom0 took over 3 s from the guest's ready: the CPU per read not measured"; k0= g0=; }
	next_key "$did" "bench_${run}_done" $((secs + 60)) || return 1
	k1=$TICKS t1=$NOW
	g1=$(guest_cpu)
	out=$(guest_count "$did" "bench_${run}_result")
	warm=$(guest_count "$did" "bench_${run}_warmup")
	echo "# guest ($run): $out"
	ran "$out" && consistent "$out" || return 1
	bench_line "$back/$back" "$op" "$out" "$warm" "$g0" "$g1" "$k0" "$k1" "$t0" "$t1" "$idle" "alt$i"
	frontend_stats_line "$(guest_count "$did" "bench_${run}_front")" "$back/$back" "$op" | sed "s/\$/ run=alt$i/"
}

group_bench_c() { bench_test c c; }
group_bench_rust() { bench_test rust rust; }
group_bench_rustback_cfront() { bench_test rust c; }
group_bench_cback_rustfront() { bench_test c rust; }
group_bench_two_c() { bench_two_test c c; }
group_bench_two_rust() { bench_two_test rust rust; }
group_bench_two_rustback_cfront() { bench_two_test rust c; }
group_bench_scan_c() { bench_scan_test c c; }
group_bench_scan_rust() { bench_scan_test rust rust; }
group_bench_scan_rustback_cfront() { bench_scan_test rust c; }
group_bench_scan_cback_rustfront() { bench_scan_test c rust; }
group_bench_alt() { bench_alt_test; }
