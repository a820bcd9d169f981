#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot Xen under QEMU (TCG, q35, emulated VT-d with interrupt remapping) with
# the project's kernel as PV dom0, run a test plan in dom0 (which starts PV
# guests), and report the KTAP results it prints, ending with the line
# "xen: N passed, N failed, N skipped". Exit status 0 only if every test passed.
#
# The plan's groups are split into boots by their family (the "boot" column of
# selftests/xen-pci/groups.conf), in the order of the plan: each boot starts
# from fresh hardware and a fresh dom0, and has its own QEMU time limit, the
# sum of its groups' deadlines and of the boot's own overhead. dom0 kills a
# group that outlives its deadline and goes on with the next one.
# scripts/verdict.py judges each boot's log and prints the summary.
#
# Environment:
#   PLAN        comma-separated test groups (groups.conf)
#   TIME_SCALE  multiplies every deadline and time limit (default 1; e.g. 2 on
#               a machine known to be twice as slow as the ones measured)
#   TIMEOUT     QEMU's limit in seconds for every boot, instead of the computed one
#   CPU         QEMU CPU model (default Nehalem: no AVX/XSAVE, see Documentation)
#   IOMMU       intel (default) or none
#   DEVICES     QEMU's device options (default: QEMU's edu, the device under test)
#   LAB_DEVICES QEMU's device options of the devices and ref-devices boots (default: edu, a NIC
#               with MSI-X and AER behind a PCIe root port, a multi-function
#               device, an NVMe drive behind another root port backed by a
#               file made here, 29 conventional test devices behind a
#               PCIe-to-PCI bridge; see dom0/devices.sh). Every boot's QEMU has
#               a monitor, through which scripts/qemu-inject.py injects the
#               PCIe errors dom0 asks for and stops a machine stuck in Xen
#               (a vCPU spinning at one address for 180 s: a lab failure).
#   LAB_RETRIES reruns of a boot allowed for a failure the log ties to the lab
#               (default 1)
#   OUT         where the images are (default out/, out/debug/ with KCONFIG=debug)
#   KCONFIG     debug: the images of the debug kernel (scripts/xenpci-debug.config),
#               with every deadline scaled by 4 unless TIME_SCALE says otherwise
#   SHOW_GUEST=1  print the guests' consoles too (make run)
#   DOM0_EXTRA  more options for dom0's command line
#   GUEST_TSC   the xl.cfg tsc_mode of the guests dom0/passthrough.sh's
#               guest_cfg writes (passthrough, device and bench groups):
#               default, always_emulate, native or native_paravirt (unset:
#               Xen's default, which under TCG emulates every rdtsc of a PV
#               guest: the emulated CPU has no invariant TSC)
#   ONE_BOOT=1  every group of the plan in one boot (with the lab devices if a
#               group needs them, else the bench boot's four edu functions if a
#               bench group is in the plan, else DEVICES: a plan mixing lab and
#               bench groups gives the bench groups the lab's devices, on which
#               bench-scan-* and bench-two-* do not work)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
CONF=$top/selftests/xen-pci/groups.conf
PLAN=${PLAN:-$(default_plan)}
# The debug kernel (lockdep, SLUB debugging, kmemleak) is several times slower under TCG.
if [ "$KCONFIG" = debug ]; then TIME_SCALE=${TIME_SCALE:-4}; else TIME_SCALE=${TIME_SCALE:-1}; fi
CPU=${CPU:-Nehalem}
case ${GUEST_TSC:-} in
'' | default | always_emulate | native | native_paravirt) ;;
*) die "GUEST_TSC=$GUEST_TSC: not an xl.cfg tsc_mode (default, always_emulate, native, native_paravirt)" ;;
esac
IOMMU=${IOMMU:-intel}
LAB_RETRIES=${LAB_RETRIES:-1}
DEVICES=${DEVICES--device edu,id=edu0}
# The bench boot's: four edu functions (make bench's scan groups export the
# four to one guest; the other groups use the first).
BENCH_DEVICES=${BENCH_DEVICES-"-device edu,id=edu0 -device edu -device edu -device edu"}
NVME_IMG=$OUT/work/nvme.img
# rp2 is a 2.5 GT/s port: after a secondary bus reset QEMU's root port does not
# set Data Link Layer Link Active again, which Linux waits for on ports faster
# than 5 GT/s (the AER recovery's link reset would fail).
# A conventional PCI bus behind a PCIe-to-PCI bridge, with 29 of QEMU's
# pci-testdev: the first is one of the lab devices (a conventional device
# behind a bridge, a root of its own with passthrough=1); with them a guest's
# virtual bus gets its 32 slots and a 33rd is asked for (dom0/devices.sh,
# group_rust_slots). rp3 holds QEMU's edu as the two functions of one slot,
# which only a secondary bus reset resets (dom0/resets.sh).
TESTDEVS=$(for i in $(seq 1 29); do printf -- '-device pci-testdev,bus=pb0,addr=%02x.0 ' "$i"; done)
LAB_DEVICES=${LAB_DEVICES-"-device edu,id=edu0 \
-device virtio-net-pci,disable-legacy=on,multifunction=on,addr=05.0 \
-device virtio-rng-pci,disable-legacy=on,addr=05.1 \
-device pcie-root-port,id=rp1,chassis=1,addr=06.0 \
-drive file=$NVME_IMG,if=none,id=nvm,format=raw -device nvme,serial=xenpci1,bus=rp1,drive=nvm \
-device pcie-root-port,id=rp2,chassis=2,addr=07.0,x-speed=2_5,x-width=1 -device e1000e,id=nic0,bus=rp2 \
-device pcie-pci-bridge,id=pb0,addr=08.0 $TESTDEVS \
-device pcie-root-port,id=rp3,chassis=3,addr=09.0,x-speed=2_5,x-width=1 \
-device edu,bus=rp3,addr=00.0,multifunction=on -device edu,bus=rp3,addr=00.1"}
LOGDIR=${LOGDIR:-$OUT/logs}
# Seconds from QEMU's start to dom0's first group, and from its last group to
# QEMU's exit (measured: see Documentation/dev-guide.rst, "Time budgets").
BOOT_OVERHEAD=${BOOT_OVERHEAD:-150}
mkdir -p "$LOGDIR"

# The boots of the kernel with pciback built in (groups.conf: builtin, builtin-bad) use
# that kernel's images, QEMU's virtio pair (which its built-in virtio-pci would bind) and
# pciback.hide= on dom0's command line, valid or malformed (dom0/builtin.sh).
BUILTIN_OUT=${BUILTIN_OUT:-$top/out/builtin}
BUILTIN_DEVICES="-device edu,id=edu0 \
-device virtio-net-pci,disable-legacy=on,multifunction=on,addr=05.0 \
-device virtio-rng-pci,disable-legacy=on,addr=05.1"
boot_out() { case $1 in builtin|builtin-bad) echo "$BUILTIN_OUT" ;; *) echo "$OUT" ;; esac; }
builtin_dom0_args() {
	case $1 in
		builtin) echo 'pciback.hide=(0000:00:05.0)(0000:00:05.1)' ;;
		builtin-bad) echo 'pciback.hide=(0000:00:05.0)(00:05.1' ;;
	esac
}

boot() {
	local log=$1 plan=$2 limit=$3 devices=$4 out=${5:-$OUT} extra=${6:-} iommu= mondir= watcher= monitor
	[ "$IOMMU" = intel ] && iommu="-device intel-iommu,intremap=on,caching-mode=on"
	local xen_cmd="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=all iommu=verbose"
	local dom0_cmd="console=hvc0 earlyprintk=xen loglevel=6 xenpci.plan=${plan//,/+} xenpci.scale=$TIME_SCALE${GUEST_TSC:+ xenpci.guest_tsc=$GUEST_TSC} $extra ${DOM0_EXTRA:-}"
	local f
	for f in xen vmlinuz dom0.cpio; do
		[ -f "$out/$f" ] || die "$out/$f missing: run scripts/images.sh first"
	done
	: > "$log"
	# A monitor for the errors dom0 asks for (dom0/devices.sh, aer_inject; the
	# lab devices' boots) and for the watch on a machine stuck in Xen (every
	# boot): scripts/qemu-inject.py.
	mondir=$(mktemp -d /tmp/xenpci-monitor.XXXXXX)
	monitor=(-monitor "unix:$mondir/sock,server=on,wait=off")
	python3 "$top/scripts/qemu-inject.py" "$log" "$mondir/sock" $$ > "$log.monitor" 2>&1 &
	watcher=$!
	# shellcheck disable=SC2086
	timeout --foreground -k 10 "$limit" qemu-system-x86_64 \
		-machine q35,accel=tcg -cpu "$CPU" -m 2G -smp 2 -nic none \
		-display none -no-reboot -serial stdio "${monitor[@]}" \
		$iommu $devices \
		-kernel "$out/xen" -append "$xen_cmd" \
		-initrd "$out/vmlinuz $dom0_cmd,$out/dom0.cpio" \
		< /dev/null 2>&1 | stdbuf -oL tr -d '\r' > "$log"
	kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null
	rm -rf "$mondir"
	# Why the watch stopped QEMU, for the verdict: a line of its own after
	# QEMU's last, even one without its newline.
	if grep -q '^XENPCI-EMULATOR-STALL' "$log.monitor"; then
		[ -n "$(tail -c 1 "$log")" ] && echo >> "$log"
		grep '^XENPCI-EMULATOR-STALL' "$log.monitor" >> "$log"
	fi
	return 0
}

# The groups.conf column $2 of group $1 (empty for an unknown group).
conf() { awk -v g="$1" -v c="$2" '!/^#/ && $1 == g { print $c }' "$CONF"; }

# Whether plan $1 has a group of the bench boot.
bench_plan() {
	local g
	for g in ${1//,/ }; do
		[ "$(conf "$g" 2)" = bench ] && return 0
	done
	return 1
}

# Whether plan $1 has a group of a boot with the lab devices.
lab_plan() {
	local g
	for g in ${1//,/ }; do
		case $(conf "$g" 2) in devices|ref-devices) return 0 ;; esac
	done
	return 1
}

# The boots of the plan, in order: "family group,group,..." per line.
boots=() unknown=()
declare -A of_boot=()
for g in ${PLAN//,/ }; do
	b=$(conf "$g" 2)
	if [ -z "$b" ]; then unknown+=("$g"); continue; fi
	# The built-in kernel's boots need their own kernel and command line: never in one boot.
	case $b in builtin|builtin-bad) ;; *) [ -n "${ONE_BOOT:-}" ] && b=one ;; esac
	[ -n "${of_boot[$b]+x}" ] || boots+=("$b")
	of_boot[$b]=${of_boot[$b]:+${of_boot[$b]},}$g
done

with_cpu_lock
# The built-in kernel's images, when a boot needs them: built here (incrementally, so that
# they test the current code) unless make test's build layer just did (XENPCI_BUILTIN_BUILT).
for b in "${boots[@]}"; do
	case $b in builtin|builtin-bad) ;; *) continue ;; esac
	[ -n "${XENPCI_BUILTIN_BUILT:-}" ] && break
	log "building the kernel with pciback built in and its images ($BUILTIN_OUT)"
	{ KCONFIG=builtin "$top/scripts/kernel.sh" build && OUT=$BUILTIN_OUT KCONFIG=builtin "$top/scripts/images.sh" all; } ||
		die "cannot build the images of the built-in kernel"
	break
done
jsons=() notes=() extra_fail=0
for g in "${unknown[@]}"; do
	echo "not ok run: no test group named '$g' in PLAN (see selftests/xen-pci/groups.conf)"
	extra_fail=$((extra_fail + 1))
done
stamp=$(date +%Y%m%d-%H%M%S)
for b in "${boots[@]}"; do
	plan=${of_boot[$b]}
	limit=$BOOT_OVERHEAD
	for g in ${plan//,/ }; do limit=$((limit + $(conf "$g" 5))); done
	limit=$(awk -v l="$limit" -v s="$TIME_SCALE" 'BEGIN { printf "%d", l * s + 0.5 }')
	limit=${TIMEOUT:-$limit}
	attempt=0
	while :; do
		attempt=$((attempt + 1))
		log=$LOGDIR/xen-$stamp-$b-$attempt.log
		log "boot $b: groups $plan, QEMU limit $limit s (cpu $CPU, iommu $IOMMU), log $log"
		t0=$SECONDS
		devices=$DEVICES
		if [ "$b" = devices ] || [ "$b" = ref-devices ] || { [ "$b" = one ] && lab_plan "$plan"; }; then
			# A fresh drive for every boot (the guest writes to it).
			mkdir -p "$(dirname "$NVME_IMG")"
			rm -f "$NVME_IMG" && truncate -s 16M "$NVME_IMG"
			devices=$LAB_DEVICES
		fi
		if [ "$b" = bench ] || { [ "$b" = one ] && ! lab_plan "$plan" && bench_plan "$plan"; }; then
			devices=$BENCH_DEVICES
		fi
		case $b in builtin|builtin-bad) devices=$BUILTIN_DEVICES ;; esac
		boot "$log" "$plan" "$limit" "$devices" "$(boot_out "$b")" "$(builtin_dom0_args "$b")"
		secs=$((SECONDS - t0))
		log "boot $b: QEMU ran $secs s"
		ln -sf "$(basename "$log")" "$LOGDIR/latest.log"
		python3 "$top/scripts/verdict.py" check "$log" --plan "$plan" --boot "$b" \
			--groups "$CONF" --secs "$secs" --limit "$limit" --json "$log.json" > "$log.results"
		rc=$?
		if [ "$rc" = 2 ] && [ "$attempt" -le "$LAB_RETRIES" ]; then
			why=$(sed -n 's/^# this boot failed in the lab: //p' "$log.results")
			notes+=("boot $b was run again: its first run failed in the lab ($why; log $log)")
			echo "# LAB FAILURE (not a test failure), boot $b runs again: $why"
			continue
		fi
		break
	done
	jsons+=("$log.json")
	if [ -n "${SHOW_GUEST:-}" ]; then
		echo "# --- the guests' consoles (boot $b) ---"
		sed -n 's/^(domU) //p' "$log"
	fi
	cat "$log.results"
	if [ "$rc" != 0 ]; then
		grep -q 'XENPCI-END' "$log" ||
			echo "# boot $b: QEMU stopped before dom0 finished (its limit of $limit s, or a crash)"
		# The part of the log that explains it: each failed group's own
		# section (dom0 and streamed guest lines), or the end of the log.
		failed=$(sed -n 's/^not ok \([^:]*\): .*/\1/p' "$log.results" | sort -u)
		for g in $failed; do
			if grep -q "^XENPCI-GROUP-BEGIN $g\$" "$log"; then
				echo "# --- group $g ($log) ---"
				sed -n "/^XENPCI-GROUP-BEGIN $g\$/,/^XENPCI-GROUP-END $g /p" "$log" |
					grep -vE '^(ok|not ok) ' | tail -n 80 | sed 's/^/# /'
			fi
		done
		if [ -s "$log.monitor" ]; then
			echo "# --- QEMU's monitor ($log.monitor) ---"
			sed 's/^/# /' "$log.monitor"
		fi
		if ! grep -q 'XENPCI-END' "$log"; then
			echo "# --- end of the log ($log) ---"
			grep -v '^(XEN) .*\(mm.c\|p2m\|grant_table.c\)' "$log" | tail -n 40 | sed 's/^/# /'
		fi
	fi
done

if [ "${#jsons[@]}" = 0 ]; then
	echo "xen: 0 passed, $((extra_fail > 0 ? extra_fail : 1)) failed, 0 skipped"
	exit 1
fi
args=()
for n in "${notes[@]}"; do args+=(--note "$n"); done
python3 "$top/scripts/verdict.py" summary "${jsons[@]}" --extra-fail "$extra_fail" "${args[@]}"
