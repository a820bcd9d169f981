#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot Xen under QEMU (TCG, q35, emulated VT-d with interrupt remapping) with
# the project's kernel as PV dom0, run a test plan in dom0 (which starts PV
# guests), and report the KTAP results it prints, ending with the line
# "N passed, N failed". Exit status 0 only if every test passed.
#
# Environment:
#   PLAN      comma-separated test groups (selftests/xen-pci/dom0/*.sh: group_*)
#   CPU       QEMU CPU model (default Nehalem: no AVX/XSAVE, see Documentation)
#   IOMMU     intel (default) or none
#   TIMEOUT   seconds before QEMU is killed (default 900)
#   LAB_RETRIES  reruns allowed for a failure the log proves is the lab's (default 1)
#   OUT       where the images are (default out/)
#   SHOW_GUEST=1  print the guest's console too (make run)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
OUT=${OUT:-$top/out}
PLAN=${PLAN:-lab,kunit,modules,rust-xl,rust-manual,rust-pt,c-xl,c-manual,rust-claim,rust-sysfs,cback-rustfront-xl,cback-rustfront-manual,cback-rustfront-pt,rust-rust-xl,rust-rust-pt,rust-rust-close,rust-rust-close-offline,c-hostile,rust-hostile}
CPU=${CPU:-Nehalem}
IOMMU=${IOMMU:-intel}
TIMEOUT=${TIMEOUT:-900}
LAB_RETRIES=${LAB_RETRIES:-1}
DEVICES=${DEVICES:--device edu,id=edu0}
LOGDIR=${LOGDIR:-$OUT/logs}
mkdir -p "$LOGDIR"

for f in xen vmlinuz dom0.cpio; do
	[ -f "$OUT/$f" ] || die "$OUT/$f missing: run scripts/images.sh first"
done

boot() {
	local log=$1 iommu=
	[ "$IOMMU" = intel ] && iommu="-device intel-iommu,intremap=on,caching-mode=on"
	local xen_cmd="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=all iommu=verbose"
	local dom0_cmd="console=hvc0 earlyprintk=xen loglevel=6 xenpci.plan=${PLAN//,/+} ${DOM0_EXTRA:-}"
	# shellcheck disable=SC2086
	timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
		-machine q35,accel=tcg -cpu "$CPU" -m 2G -smp 2 -nic none \
		-display none -no-reboot -serial stdio -monitor none \
		$iommu $DEVICES \
		-kernel "$OUT/xen" -append "$xen_cmd" \
		-initrd "$OUT/vmlinuz $dom0_cmd,$OUT/dom0.cpio" \
		< /dev/null 2>&1 | tr -d '\r' > "$log"
}

# Why a run failed, when the log proves it was the lab and not the code.
lab_failure() {
	local log=$1
	grep -q 'XENPCI-LAB-FAILURE' "$log" && { grep -m1 'XENPCI-LAB-FAILURE' "$log"; return 0; }
	local segv
	segv=$(grep -m1 -E '^[^(]*\[[0-9]+\]: segfault at|traps: .* general protection' "$log")
	[ -n "$segv" ] && { echo "dom0 user-space crash: $segv"; return 0; }
	return 1
}

# Print the results of one run; sets PASS FAIL SKIP.
report() {
	local log=$1
	PASS=0 FAIL=0 SKIP=0
	local group="" line
	while IFS= read -r line; do
		case "$line" in
			XENPCI-GROUP-BEGIN*) group=${line#XENPCI-GROUP-BEGIN }; continue ;;
			XENPCI-GROUP-END*)
				case "$line" in *rc=0) ;; *) echo "# group $group ended with ${line##* }" ;; esac
				group=""; continue ;;
		esac
		[ -n "$group" ] || continue
		case "$line" in
			"ok "*"# SKIP"*) SKIP=$((SKIP + 1)); echo "ok $group: ${line#ok }" ;;
			"ok "[0-9]*) PASS=$((PASS + 1)); echo "ok $group: ${line#ok }" ;;
			"not ok "[0-9]*) FAIL=$((FAIL + 1)); echo "not ok $group: ${line#not ok }" ;;
			"# "*) echo "$group $line" ;;
		esac
	done < "$log"
	# A group that started and never ended counts as a failure.
	local begun ended
	begun=$(grep -c '^XENPCI-GROUP-BEGIN' "$log")
	ended=$(grep -c '^XENPCI-GROUP-END' "$log")
	if [ "$begun" != "$ended" ] || [ "$begun" = 0 ]; then
		echo "not ok run: $((begun - ended)) group(s) did not finish, $begun started"
		FAIL=$((FAIL + 1))
	fi
}

with_cpu_lock
attempt=0
while :; do
	attempt=$((attempt + 1))
	log=$LOGDIR/xen-$(date +%Y%m%d-%H%M%S).log
	log "booting Xen (plan $PLAN, cpu $CPU, iommu $IOMMU), log $log"
	t0=$SECONDS
	boot "$log"
	log "QEMU ran $((SECONDS - t0)) s"
	ln -sf "$(basename "$log")" "$LOGDIR/latest.log"
	report "$log" > "$log.results"
	if [ "$FAIL" -gt 0 ] && why=$(lab_failure "$log") && [ "$attempt" -le "$LAB_RETRIES" ]; then
		echo "# LAB FAILURE (not a test failure), retrying once: $why"
		continue
	fi
	break
done

if [ -n "${SHOW_GUEST:-}" ]; then
	echo "# --- the guest's console ---"
	sed -n 's/^(domU) //p' "$log"
fi
cat "$log.results"
if [ "$FAIL" -gt 0 ]; then
	why=$(lab_failure "$log") && echo "# this run failed in the lab: $why"
	grep -q 'XENPCI-END' "$log" || echo "# QEMU stopped before dom0 finished (timeout after ${TIMEOUT}s, or a crash)"
	# The part of the log that explains it: each failed group's own section
	# (dom0 and streamed guest lines), or the end of the log.
	failed=$(awk '/^XENPCI-GROUP-END/ && !/rc=0$/ { print $2 }' "$log")
	if [ -n "$failed" ]; then
		for g in $failed; do
			echo "# --- group $g ($log) ---"
			sed -n "/^XENPCI-GROUP-BEGIN $g\$/,/^XENPCI-GROUP-END $g /p" "$log" |
				grep -vE '^(ok|not ok) ' | tail -n 80 | sed 's/^/# /'
		done
	else
		echo "# --- end of the log ($log) ---"
		grep -v '^(XEN) .*\(mm.c\|p2m\|grant_table.c\)' "$log" | tail -n 60 | sed 's/^/# /'
	fi
fi
[ "$attempt" -gt 1 ] && echo "# note: $((attempt - 1)) run(s) discarded as lab failures (see $LOGDIR)"
echo "xen: $PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" = 0 ]
