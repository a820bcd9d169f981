#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the test layers, fastest first, and end with one line
# "N passed, N failed, N skipped" over all of them.
#   test.sh host   host tests: cargo test of the shared protocol/policy code,
#                  and the unit tests of the host scripts: the verdict and
#                  qemu-inject.py (scripts/tests/)
#   test.sh all    host tests, kernel + image build, lint (rustfmt, clippy: kernel.sh lint),
#                  the harness's own boot
#                  (scripts/harness-test.sh), then the Xen tests (PLAN=...)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
cd "$top"
pass=0 fail=0 skip=0 t0=$SECONDS
times=()

# Adds the counts of a layer's closing line "[word: ]N passed, N failed[, N skipped]"
# in $2 (a file); a layer that exited non-zero ($1) or printed no such line
# counts one failure more.
count() {
	local rc=$1 file=$2 line
	line=$(grep -E '^([a-z]+: )?[0-9]+ passed, [0-9]+ failed' "$file" | tail -n 1)
	if [ -z "$line" ]; then
		fail=$((fail + 1))
		echo "not ok: $3 printed no count"
		return
	fi
	set -- $(echo "${line#*: }" | tr -dc '0-9 ')
	pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + ${3:-0}))
	[ "$rc" = 0 ] || [ "$2" -gt 0 ] || fail=$((fail + 1))
}

# Runs a layer: shown as it runs, kept to be counted. (Not `tee /dev/stderr`:
# when stderr is a file, reopening it by that name truncates it.)
layer() {
	local name=$1 copy rc t=$SECONDS
	shift
	copy=$(mktemp)
	"$@" 2>&1 | tee "$copy"; rc=${PIPESTATUS[0]}
	count "$rc" "$copy" "$name"
	rm -f "$copy"
	times+=("$name $((SECONDS - t)) s")
}

cargo_tests() {
	local out p f rc
	log "host tests: cargo test"
	out=$(cargo test --quiet 2>&1); rc=$?
	echo "$out"
	p=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
	f=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | awk '{ s += $1 } END { print s + 0 }')
	echo "cargo: $p passed, $f failed"
	return "$rc"
}

verdict_tests() {
	local out rc n f
	log "host tests: the verdict's unit tests"
	out=$(python3 -m unittest discover -s scripts/tests -p 'test_*.py' 2>&1); rc=$?
	echo "$out"
	n=$(echo "$out" | sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p')
	f=$(echo "$out" | sed -n 's/^FAILED (\(.*\))$/\1/p' | tr ',' '\n' | sed -n 's/.*=\([0-9]*\)/\1/p' |
		awk '{ s += $1 } END { print s + 0 }')
	echo "verdict: $((${n:-0} - f)) passed, $f failed"
	return "$rc"
}

build() {
	local base pid rc=0
	# Xen's binary and dom0's root file system (debootstrap: downloads and
	# dpkg, about a minute on a fresh machine) need no kernel: they are
	# made while it builds, both under the lock that keeps builds and QEMU
	# runs apart (taken here, so kernel.sh and images.sh find it held).
	with_cpu_lock
	base=$(mktemp)
	# A session of its own, so that an interrupt stops debootstrap too.
	# (build runs in layer's pipeline, a subshell: the lock and
	# XENPCI_CPU_LOCKED end with it, before the next layer takes its own.)
	setsid -w scripts/images.sh base > "$base" 2>&1 &
	pid=$!
	trap 'kill -- -"$pid" 2>/dev/null' INT TERM
	scripts/kernel.sh build || rc=1
	wait "$pid" || rc=$((rc | 2))
	trap - INT TERM
	cat "$base"; rm -f "$base"
	[ $((rc & 1)) = 0 ] || { echo "not ok kernel build"; echo "build: 0 passed, 1 failed"; return 1; }
	[ $((rc & 2)) = 0 ] || { echo "not ok image build (Xen, dom0's root)"; echo "build: 0 passed, 1 failed"; return 1; }
	scripts/images.sh all || { echo "not ok image build"; echo "build: 0 passed, 1 failed"; return 1; }
	# The kernel with pciback built in, for the boot-time hide= boots (its own tree and images).
	if plan_has_builtin; then
		{ KCONFIG=builtin scripts/kernel.sh build && OUT= KCONFIG=builtin scripts/images.sh all; } ||
			{ echo "not ok build of the kernel with pciback built in"; echo "build: 0 passed, 1 failed"; return 1; }
	fi
	echo "build: 0 passed, 0 failed"
}

# Whether the plan (PLAN, or the default plan) has a group of the built-in kernel's boots
# (groups.conf's boot column, as run-xen.sh decides).
plan_has_builtin() {
	local g
	for g in $(echo "${PLAN:-$(default_plan)}" | tr ',' ' '); do
		case $(awk -v g="$g" '!/^#/ && $1 == g { print $2 }' selftests/xen-pci/groups.conf) in
			builtin|builtin-bad) return 0 ;;
		esac
	done
	return 1
}

host() {
	layer cargo cargo_tests
	layer verdict verdict_tests
}

case "${1:-all}" in
	host) host ;;
	all)
		host
		built=$fail
		layer build build
		# Old images would test old code: no Xen layer after a failed build.
		if [ "$fail" = "$built" ]; then
			layer lint scripts/kernel.sh lint
			layer harness scripts/harness-test.sh
			# The build layer built the built-in kernel's images too.
			layer xen env XENPCI_BUILTIN_BUILT=1 scripts/run-xen.sh
		fi ;;
	*) die "usage: test.sh [host|all]" ;;
esac
echo "# layers: ${times[*]/%/;}"
echo "# wall time $((SECONDS - t0)) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
