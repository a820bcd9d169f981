# SPDX-License-Identifier: GPL-2.0
#
# Group "kunit": the results of the built-in KUnit suites (the kernel glue of
# this project: string module parameters, the Xen abstractions), which ran
# during dom0's boot. Each test case of each suite becomes one result here.

group_kunit() {
	local line suite="" indent name n=0
	ktap_print_header
	dmesg | sed 's/^\[ *[0-9.]*\] //' > /tmp/kunit.log
	if ! grep -q '^KTAP version 1$' /tmp/kunit.log; then
		ktap_set_plan 1
		ktap_test_fail "KUnit ran at boot (no KTAP in the kernel log)"
		ktap_finished
	fi
	while IFS= read -r line; do
		case "$line" in
			*"# Subtest: "*) suite=${line##*# Subtest: }; continue ;;
		esac
		# Test cases are indented one level (4 spaces) below their suite.
		[[ "$line" =~ ^(\ {4})(not ok|ok)\ [0-9]+\ ([^#]*)(#.*)?$ ]] || continue
		name=${BASH_REMATCH[3]% }
		n=$((n + 1))
		case "${BASH_REMATCH[2]}:${BASH_REMATCH[4]}" in
			ok:*SKIP*) ktap_test_skip "$suite.$name" ;;
			ok:*) ktap_test_pass "$suite.$name" ;;
			*) ktap_test_fail "$suite.$name" ;;
		esac
	done < /tmp/kunit.log
	if [ "$n" = 0 ]; then
		ktap_test_fail "KUnit suites reported test cases"
		n=1
	fi
	ktap_set_plan "$n"
	ktap_finished
}
