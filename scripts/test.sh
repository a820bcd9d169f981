#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the test layers, fastest first, and end with one line
# "N passed, N failed" over all of them.
#   test.sh host   host tests only (cargo test of the shared protocol/policy code)
#   test.sh all    host tests, kernel + image build, Xen tests (PLAN=...)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
cd "$top"
pass=0 fail=0 skip=0 t0=$SECONDS

host() {
	local out p f
	log "host tests: cargo test"
	out=$(cargo test --quiet 2>&1); local rc=$?
	echo "$out"
	p=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
	f=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | awk '{ s += $1 } END { print s + 0 }')
	[ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1
	pass=$((pass + p)) fail=$((fail + f))
}

xen() {
	local rc line
	scripts/kernel.sh build || { fail=$((fail + 1)); echo "not ok kernel build"; return; }
	scripts/images.sh all || { fail=$((fail + 1)); echo "not ok image build"; return; }
	# Shown as it runs, and kept to be counted. (Not `tee /dev/stderr`: when
	# stderr is a file, reopening it by that name truncates it.)
	local copy
	copy=$(mktemp)
	scripts/run-xen.sh | tee "$copy"; rc=${PIPESTATUS[0]}
	line=$(grep -E '^xen: [0-9]+ passed, [0-9]+ failed' "$copy" | tail -n 1)
	rm -f "$copy"
	if [ -z "$line" ]; then fail=$((fail + 1)); return; fi
	set -- $(echo "$line" | tr -dc '0-9 ')
	pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + ${3:-0}))
	[ "$rc" = 0 ] || [ "$2" -gt 0 ] || fail=$((fail + 1))
}

case "${1:-all}" in
	host) host ;;
	all) host; xen ;;
	*) die "usage: test.sh [host|all]" ;;
esac
echo "# wall time $((SECONDS - t0)) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
