# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the benchmark groups (dom0/bench.sh): xenpci.bench=SECONDS.

domU_bench() {
	secs=$(cmdline_arg bench 0)
	[ "$secs" -gt 0 ] 2>/dev/null || return 0
	[ -e "$GDEV/config" ] || return 0
	# Warm up (the first reads after boot are slower), then measure.
	cfgbench "$GDEV/config" 1 0 >/dev/null
	xenstore-write "$XS/bench_start" 1
	out=$(cfgbench "$GDEV/config" "$secs" 0)
	echo "# $out"
	xenstore-write "$XS/bench_result" "$out"
	xenstore-write "$XS/bench_done" 1
}
