# SPDX-License-Identifier: GPL-2.0
#
# Group "kunit": the results of the built-in KUnit suites (the kernel glue of
# this project), one result per test case, named suite.case:
#   - those that ran during dom0's boot, from dom0's kernel log;
#   - those that ran during the boot of a PV guest without devices (the same
#     bzImage), named domU:suite.case. The guest (run-domU.sh with
#     xenpci.front=kunit) copies its KTAP from its kernel log to xenstore and to
#     its console. Cases that cannot run in the initial domain skip themselves
#     there and run in the guest (the kernel::pci root bus: dom0's Xen PCI
#     notifier would report its made-up device to Xen, which crashes).
# Everything is parsed before anything is printed, so that the plan comes first.
# A suite that reports more or fewer cases than its own plan, a log that ends
# inside a suite, a top-level plan that does not match the suites, and an
# expected suite that did not report are failures.

# Every suite of the project, in both domains.
KUNIT_SUITES="rust_module_param rust_driver_attribute rust_xen_domid rust_xen_grant \
rust_xen_evtchn rust_xen_xenbus rust_xen_xenstore rust_xen_pci rust_xen_pci_owner rust_kernel_pci_pcibios \
rust_kernel_pci_host rust_atomic_bitwise rust_workqueue_flush rust_raw_spinlock_irq xenbus_watch"

KUNIT_GUEST=kunit
KUNIT_GUEST_LOG=/var/log/xen/console/guest-$KUNIT_GUEST.log

# The parsed results: "pass|fail|skip|comment<TAB>text", in order.
KUNIT_OUT=/tmp/kunit.out

kunit_emit() { printf '%s\t%s\n' "$1" "$2" >> "$KUNIT_OUT"; }

# Parses the KTAP that KUnit printed at boot (on stdin, kernel log prefixes
# removed) and records one result per case, prefixed with $1.
kunit_parse() {
	local prefix=$1 line suite="" plan="" cases=0 top_plan="" nsuites=0 seen=" " name dir s
	while IFS= read -r line; do
		line=${line%$'\r'}
		if [[ "$line" =~ ^1\.\.([0-9]+)$ ]]; then
			top_plan=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^\ {4}#\ Subtest:\ (.*)$ ]]; then
			[ -n "$suite" ] && kunit_emit fail "$prefix$suite: the suite did not end before the next one"
			suite=${BASH_REMATCH[1]}
			plan=""
			cases=0
		elif [ -n "$suite" ] && [[ "$line" =~ ^\ {4}1\.\.([0-9]+)$ ]]; then
			plan=${BASH_REMATCH[1]}
		elif [ -n "$suite" ] && [[ "$line" =~ ^\ {4}(not ok|ok)\ [0-9]+\ ([^#]*)(#\ *(.*))?$ ]]; then
			name=${BASH_REMATCH[2]% }
			dir=${BASH_REMATCH[4]}
			cases=$((cases + 1))
			case "${BASH_REMATCH[1]}:$dir" in
				ok:SKIP*)
					kunit_emit skip "$prefix$suite.$name"
					[ -n "${dir#SKIP}" ] && kunit_emit comment "$prefix$suite.$name skipped:${dir#SKIP}" ;;
				ok:*) kunit_emit pass "$prefix$suite.$name" ;;
				*) kunit_emit fail "$prefix$suite.$name" ;;
			esac
		elif [ -n "$suite" ] && [[ "$line" =~ ^\ {4}#\ ([A-Za-z0-9_]+\.)?(speed|module|is_init):\  ]]; then
			# Attributes of the suite or of a case.
			:
		elif [ -n "$suite" ] && [[ "$line" =~ ^\ {4}#\ (.*)$ ]]; then
			# A case's diagnostics (assertion failures): kept as comments.
			kunit_emit comment "$prefix$suite: ${BASH_REMATCH[1]}"
		elif [[ "$line" =~ ^(not ok|ok)\ [0-9]+\ ([^#]*)(#.*)?$ ]]; then
			name=${BASH_REMATCH[2]% }
			if [ -z "$suite" ] || [ "$name" != "$suite" ]; then
				kunit_emit fail "$prefix$name: the suite ended without its cases (began as '${suite:-nothing}')"
			elif [ -z "$plan" ]; then
				kunit_emit fail "$prefix$suite: no plan, $cases case(s) reported"
			elif [ "$plan" != "$cases" ]; then
				kunit_emit fail "$prefix$suite: plan 1..$plan, $cases case(s) reported"
			elif [ "${BASH_REMATCH[1]}" = "not ok" ] && [ "$cases" = 0 ]; then
				kunit_emit fail "$prefix$suite: the suite failed"
			fi
			nsuites=$((nsuites + 1))
			seen="$seen$name "
			suite=""
		fi
	done
	[ -n "$suite" ] && kunit_emit fail "$prefix$suite: the log ends inside the suite"
	if [ -z "$top_plan" ]; then
		kunit_emit fail "${prefix}KUnit: no plan (no KTAP in the kernel log)"
	elif [ "$top_plan" != "$nsuites" ]; then
		kunit_emit fail "${prefix}KUnit: plan 1..$top_plan, $nsuites suite(s) reported"
	fi
	for s in $KUNIT_SUITES; do
		case "$seen" in
			*" $s "*) ;;
			*) kunit_emit fail "$prefix$s: the suite did not report" ;;
		esac
	done
}

# The KTAP lines of a kernel log (timestamps removed).
kunit_ktap() {
	sed 's/^\[ *[0-9.]*\] //' | grep -E '^ *(KTAP version [0-9]+|1\.\.[0-9]+|# |(not )?ok [0-9]+ )'
}

kunit_guest_cfg() {
	cat > "/tmp/$KUNIT_GUEST.cfg" <<CFG
name = "$KUNIT_GUEST"
type = "pv"
kernel = "/xenpci/vmlinuz-domU"
ramdisk = "/xenpci/domU.cpio"
extra = "console=hvc0 loglevel=6 xenpci.front=kunit"
memory = 192
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

kunit_guest_xs() { echo "/local/domain/$1/data/xenpci/kunit"; }

# Boots the guest and prints its KTAP lines: from xenstore, or from its console
# when xenstore has none. Returns 1 when it reported nothing.
kunit_guest_ktap() {
	local did n i keys=() end=$((SECONDS + 300))
	kunit_guest_cfg
	if ! timeout 120 xl create "/tmp/$KUNIT_GUEST.cfg" >&2; then
		echo "xl create failed" >&2
		return 1
	fi
	did=$(xl domid "$KUNIT_GUEST") || return 1
	until n=$(timeout 10 xenstore-read "$(kunit_guest_xs "$did")/lines" 2>/dev/null); do
		if [ "$SECONDS" -ge "$end" ]; then n=""; break; fi
		nap 1
	done
	if [ -n "$n" ] && [ "$n" -gt 0 ]; then
		for ((i = 1; i <= n; i++)); do keys+=("$(kunit_guest_xs "$did")/$i"); done
		timeout 30 xenstore-read "${keys[@]}"
	elif grep -q XENPCI-DOMU-KUNIT-END "$KUNIT_GUEST_LOG" 2>/dev/null; then
		echo "note: the guest's xenstore results are missing; results taken from its console" >&2
		tr -d '\r' < "$KUNIT_GUEST_LOG" | sed -n 's/^KUNIT: //p'
	else
		echo "the guest reported no KUnit results within 300 s" >&2
		return 1
	fi
	timeout 30 xl destroy "$KUNIT_GUEST" >&2
}

group_kunit() {
	local kind text guest_ok=1
	: > "$KUNIT_OUT"
	dmesg | kunit_ktap > /tmp/kunit.dom0
	kunit_parse "" < /tmp/kunit.dom0

	kunit_guest_ktap > /tmp/kunit.domU 2> /tmp/kunit.domU.err || guest_ok=0
	grep -q . /tmp/kunit.domU || guest_ok=0
	[ "$guest_ok" = 1 ] || kunit_emit fail "domU: the guest reported its KUnit results"
	kunit_parse "domU:" < /tmp/kunit.domU

	# A case may skip itself in one domain (in dom0: it needs a guest), never
	# in both: each skipped case must pass in the other.
	local name other
	cp "$KUNIT_OUT" /tmp/kunit.results
	while IFS=$'\t' read -r kind text; do
		[ "$kind" = skip ] || continue
		name=${text#domU:}
		if [ "$name" = "$text" ]; then other="domU:$name"; else other=$name; fi
		grep -qxF "pass	$other" "$KUNIT_OUT" ||
			kunit_emit fail "$name skipped in one domain passes in the other"
	done < /tmp/kunit.results

	ktap_print_header
	sed 's/^/# /' /tmp/kunit.domU.err
	ktap_set_plan "$(grep -cv '^comment' "$KUNIT_OUT")"
	while IFS=$'\t' read -r kind text; do
		case $kind in
			pass) ktap_test_pass "$text" ;;
			skip) ktap_test_skip "$text" ;;
			fail) ktap_test_fail "$text" ;;
			comment) echo "# $text" ;;
		esac
	done < "$KUNIT_OUT"
	# The guest is gone (its console log stays for the harness).
	xl domid "$KUNIT_GUEST" >/dev/null 2>&1 && timeout 30 xl destroy "$KUNIT_GUEST"
	ktap_finished
}
