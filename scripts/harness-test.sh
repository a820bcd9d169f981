#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The harness's own test: one boot of groups that are broken on purpose
# (selftests/xen-pci/dom0/harness.sh), without the device under test, and a
# group name that does not exist. Each must fail with the reason the runner is
# expected to give; the group after the one that exits 1 must find the
# module that one left unloaded, and the group after the one killed at its
# deadline must run and pass. KTAP on stdout, "harness: N passed, N failed" last.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
PLAN=harness-exit1,harness-clean,harness-sleep,harness-after,harness-warn,harness-short,modules,no-such-group \
	ONE_BOOT=1 DEVICES= LAB_RETRIES=0 "$top/scripts/run-xen.sh" > "$out" 2>&1
rc=$?

# description|a line the runner's output must have (grep -E)
cases="a group that exits 1 after printing only ok lines fails|^not ok harness-exit1: exited with status 1 although every result passed
a group that outlives its deadline is killed and fails|^not ok harness-sleep: did not finish within its deadline of [0-9]+ s
a failed group's module is unloaded before the next group|^ok harness-clean: 1 harness: the failed group's backend module was unloaded
the group after a killed one runs and passes|^ok harness-after: 1 harness: the killed group left no process behind
a WARNING in dom0's kernel log fails its group|^not ok harness-warn: kernel log: .*WARNING: CPU: 0 PID: [0-9]+ at harness self-test
a group with fewer results than its plan fails|^not ok harness-short: reported 2 results, its plan is 3
a device group without the device fails|^not ok modules: needs the device under test
a group name that does not exist fails|^not ok run: no test group named 'no-such-group'
the harness-after group has no failure|^# harness-after +one +lab +2 +0 +0
the closing line counts the failures|^xen: [0-9]+ passed, 7 failed, 0 skipped\$"
n=0 pass=0 fail=0
echo "TAP version 13"
echo "1..$(( $(echo "$cases" | wc -l) + 1 ))"
while IFS='|' read -r desc re; do
	n=$((n + 1))
	if grep -qE -- "$re" "$out"; then
		echo "ok $n $desc"; pass=$((pass + 1))
	else
		echo "not ok $n $desc"; fail=$((fail + 1))
		echo "# no line matching: $re"
	fi
done <<< "$cases"
n=$((n + 1))
if [ "$rc" != 0 ]; then
	echo "ok $n the run exits non-zero"; pass=$((pass + 1))
else
	echo "not ok $n the run exits non-zero"; fail=$((fail + 1))
fi
if [ "$fail" != 0 ]; then
	echo "# --- the runner's output ---"
	sed 's/^/# /' "$out" | tail -n 80
fi
echo "harness: $pass passed, $fail failed"
[ "$fail" = 0 ]
