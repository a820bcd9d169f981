# SPDX-License-Identifier: GPL-2.0
#
# Benchmark groups: config-space reads per second in a PV guest through a
# backend/frontend pair, and what they cost: the guest's CPU per op and dom0's
# (the backend's host) CPU per op, from Xen's own accounting of each domain's
# CPU time (xl list). dom0 native reads are measured too, for reference.
# Results are "# bench ..." lines; the KTAP results only say the benchmark ran
# and every read returned the same value.

# CPU seconds Xen has accounted to domain $1 (a name).
domain_cpu() { timeout 10 xl list "$1" 2>/dev/null | awk 'NR == 2 { print $6 }'; }

# (ktap_test_result splits its arguments on spaces: checks are functions.)
have_bench_result() { [ -n "$out" ]; }

bench_value() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

bench_test() {
	local back=$1 front=$2 did secs=${BENCH_SECONDS:-10} d0a d0b dua dub out ops native
	ktap_print_header
	ktap_set_plan 8
	rotate_guest_log
	ktap_test_result "$back backend loads" backend_load "$back"
	ktap_test_result "xl pci-assignable-add $BDF" timeout 60 xl pci-assignable-add "$BDF"
	write_guest_cfg "$front" 0
	sed -i "s/^extra = \"\(.*\)\"/extra = \"\1 xenpci.bench=$secs\"/" /tmp/$GUEST.cfg
	echo "pci = [ '$BDF' ]" >> /tmp/$GUEST.cfg
	ktap_test_result "xl create with pci=[...]" timeout 120 xl create /tmp/$GUEST.cfg
	did=$(xl domid $GUEST 2>/dev/null)
	if [ -n "$did" ] && wait_for 200 guest_count "$did" bench_start; then
		d0a=$(domain_cpu Domain-0); dua=$(domain_cpu $GUEST)
		wait_for $((secs + 60)) guest_count "$did" bench_done
		d0b=$(domain_cpu Domain-0); dub=$(domain_cpu $GUEST)
		out=$(timeout 10 xenstore-read "$(xs_guest "$did")/bench_result" 2>/dev/null)
	fi
	ktap_test_result "guest benchmark ran" have_bench_result
	if [ -n "$out" ]; then
		ops=$(bench_value ops "$out")
		echo "# bench pair=$back/$front ops_per_s=$(bench_value ops_per_s "$out") us_per_op=$(bench_value us_per_op "$out")" \
			"guest_process_cpu_us_per_op=$(bench_value cpu_us_per_op "$out")" \
			"guest_domain_cpu_us_per_op=$(awk "BEGIN { printf \"%.1f\", ($dub - $dua) * 1e6 / $ops }")" \
			"dom0_cpu_us_per_op=$(awk "BEGIN { printf \"%.1f\", ($d0b - $d0a) * 1e6 / $ops }")" \
			"ops=$ops secs=$(bench_value secs "$out") mismatches=$(bench_value mismatches "$out")"
		ktap_test_result "every benchmark read returned the same value" test "$(bench_value mismatches "$out")" = 0
	else
		ktap_test_fail "every benchmark read returned the same value"
	fi
	timeout 30 xl destroy $GUEST
	ktap_test_result "guest destroyed" wait_for 20 guest_gone
	ktap_test_result "xl pci-assignable-remove $BDF" timeout 60 xl pci-assignable-remove "$BDF"
	native=$(./cfgbench "/sys/bus/pci/devices/$BDF/config" 5 0)
	echo "# bench pair=dom0-native ops_per_s=$(bench_value ops_per_s "$native") us_per_op=$(bench_value us_per_op "$native") process_cpu_us_per_op=$(bench_value cpu_us_per_op "$native")"
	ktap_test_result "$back backend unloads" backend_unload "$back"
	ktap_finished
}

group_bench_c() { bench_test c c; }
group_bench_rust() { bench_test rust rust; }
