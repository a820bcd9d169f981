#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cargo fuzz of the shared code (drivers/xenpci_common/): every target of
# fuzz/ for a fixed number of executions, seeded from the committed corpus
# (fuzz/corpus/<target>/, only read) and growing a scratch one
# (fuzz/scratch/<target>/, not in git, kept between runs). One result per
# target: it passes if it ran all its executions and found nothing. Ends with
# "fuzz: N passed, N failed". Takes the CPU lock (scripts/lib.sh) for the build
# and the runs. The properties each target checks are in
# drivers/xenpci_common/fuzzing.rs; see Documentation/dev-guide.rst, "Fuzzing".
#
#   FUZZ_TARGETS=a,b       only these targets (default: all of BUDGET)
#   FUZZ_SCALE=P           run P % of each budget (default 100)
#   FUZZ_JOBS=N            targets fuzzed at once (default 2, the machine's cores)
#   FUZZ_SANITIZER=S       cargo fuzz -s S: address (default) or none (about 3x faster)
#   FUZZ_UPDATE_CORPUS=1   after a run without findings, minimise the committed and
#                          the scratch corpus together back into fuzz/corpus/
#
# A finding's input is in fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# (in fuzz/), and keep it in fuzz/regressions/<target>/ until it is fixed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
cd "$top/fuzz"

# The budget: target:executions:longest input. At least 10^7 executions in
# all, chosen from the measured speed with AddressSanitizer on this kind of
# machine (see Documentation/dev-guide.rst, "Fuzzing").
BUDGET=(
	conf_engine:250000:1024
	pciif_request:7000000:1024
	policy:250000:512
	xs_values:1200000:256
	bdf_grammar:1500000:512
)
CARGO_FUZZ_VERSION=0.13.2
SAN=${FUZZ_SANITIZER:-address}
JOBS=${FUZZ_JOBS:-2}
SCALE=${FUZZ_SCALE:-100}
# cargo fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module);
# the stable compiler (rustup's, first on PATH) accepts them this way.
export RUSTC_BOOTSTRAP=1

case "$SAN" in address|none) ;; *) die "FUZZ_SANITIZER=$SAN: want address or none" ;; esac
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_JOBS=$JOBS: want a positive number"
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SCALE=$SCALE: want a positive percentage"

targets=()
for entry in "${BUDGET[@]}"; do
	name=${entry%%:*}
	if [ -n "${FUZZ_TARGETS:-}" ] && [[ ",$FUZZ_TARGETS," != *",$name,"* ]]; then
		continue
	fi
	rest=${entry#*:}
	targets+=("$name:$((${rest%%:*} * SCALE / 100)):${rest#*:}")
done
if [ -n "${FUZZ_TARGETS:-}" ]; then
	for name in ${FUZZ_TARGETS//,/ }; do
		printf '%s\n' "${BUDGET[@]%%:*}" | grep -qx "$name" || die "FUZZ_TARGETS: no target $name"
	done
fi

with_cpu_lock
t0=$SECONDS
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
	log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
	cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked ||
		die "cargo install cargo-fuzz failed"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

log "building the fuzz targets (-s $SAN)"
if ! cargo fuzz build -s "$SAN" > "$out/build.log" 2>&1; then
	cat "$out/build.log"
	for entry in "${targets[@]}"; do
		echo "not ok ${entry%%:*}: the fuzz build failed"
	done
	echo "fuzz: 0 passed, ${#targets[@]} failed"
	exit 1
fi

# Runs one target; leaves "executions exec/s seconds" in $out/<target>.result.
run_one() {
	local name=$1 runs=$2 max_len=$3 t=$SECONDS rc execs rate
	mkdir -p "scratch/$name" "corpus/$name"
	log "$name: $runs executions"
	cargo fuzz run -s "$SAN" "$name" "scratch/$name" "corpus/$name" -- \
		-runs="$runs" -max_len="$max_len" -timeout=10 -print_final_stats=1 \
		> "$out/$name.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$name.log" | tail -n 1)
	echo "$rc ${execs:-0} ${rate:-?} $((SECONDS - t))" > "$out/$name.result"
}

for entry in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
		wait -n
	done
	rest=${entry#*:}
	run_one "${entry%%:*}" "${rest%%:*}" "${rest#*:}" &
done
wait

pass=0 fail=0 total=0
for entry in "${targets[@]}"; do
	name=${entry%%:*} rest=${entry#*:}
	planned=${rest%%:*}
	read -r rc execs rate secs < "$out/$name.result"
	total=$((total + execs))
	if [ "$rc" = 0 ] && [ "$execs" -ge "$planned" ]; then
		pass=$((pass + 1))
		echo "ok $name: $execs executions in $secs s ($rate exec/s)"
	else
		fail=$((fail + 1))
		echo "not ok $name: exit $rc, $execs of $planned executions in $secs s"
		grep -E -A3 "panicked at|ERROR: |SUMMARY: |Test unit written to|deadly signal" \
			"$out/$name.log" | head -n 30 | sed 's/^/# /'
	fi
done

if [ "${FUZZ_UPDATE_CORPUS:-}" = 1 ]; then
	if [ "$fail" != 0 ]; then
		log "not updating fuzz/corpus/: there were findings"
	else
		for entry in "${targets[@]}"; do
			name=${entry%%:*} rest=${entry#*:}
			max_len=${rest#*:}
			rm -rf "corpus/$name.new"
			mkdir -p "corpus/$name.new"
			if cargo fuzz run -s "$SAN" "$name" "corpus/$name.new" "corpus/$name" "scratch/$name" -- \
				-merge=1 -use_counters=0 -max_len="$max_len" -timeout=10 > "$out/$name.merge.log" 2>&1 &&
				[ -n "$(ls -A "corpus/$name.new")" ]; then
				rm -rf "corpus/$name"
				mv "corpus/$name.new" "corpus/$name"
				log "$name: fuzz/corpus/$name now $(ls "corpus/$name" | wc -l) files"
			else
				rm -rf "corpus/$name.new"
				tail -n 20 "$out/$name.merge.log"
				die "$name: minimising the corpus failed"
			fi
		done
	fi
fi

echo "# $total executions in all (-s $SAN, $JOBS at once), wall time $((SECONDS - t0)) s"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
