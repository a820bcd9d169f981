# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the scripts in this directory (sourced, not run).

# Build products that outlive a clone: the unpacked kernel tree, the dom0 root
# file system, downloaded packages. Keyed by their inputs inside.
CACHE=${XENPCI_CACHE:-/var/cache/xenpci}

# The kernel configuration: empty for the normal one (scripts/xenpci.config), or
# scripts/xenpci-$KCONFIG.config on top of it: debug (lockdep, kmemleak, KFENCE, ...)
# or builtin (pciback and virtio_pci built in: the boot-time hide= boots).
# Each has its own kernel tree in $CACHE and its own images (out/, out/$KCONFIG/).
KCONFIG=${KCONFIG:-}
case "$KCONFIG" in
	""|debug|builtin) ;;
	*) echo "${0##*/}: error: KCONFIG=$KCONFIG: want empty, debug or builtin" >&2; exit 1 ;;
esac
# What the kernel's make needs besides the toolchain for a configuration (nothing so far;
# a KASAN configuration would need CC=clang-$LIBCLANG_VERSION: Rust allows KASAN only then).
KCONFIG_MAKE=()
# The images of this configuration.
OUT=${OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/out${KCONFIG:+/$KCONFIG}}

log() { echo "${0##*/}: $*" >&2; }
die() { echo "${0##*/}: error: $*" >&2; exit 1; }

# Kernel builds and QEMU runs must never overlap on this 2-core machine (TCG
# under load makes pcifront time out): every script that uses the CPUs takes
# this lock for its whole run. Re-entrant through XENPCI_CPU_LOCKED.
with_cpu_lock() {
	[ -n "${XENPCI_CPU_LOCKED:-}" ] && return 0
	local lock=${XENPCI_LOCK:-/var/lock/xenpci-cpu.lock}
	mkdir -p "$(dirname "$lock")"
	exec 9>"$lock"
	if ! flock -n 9; then
		log "waiting for another build or QEMU run to finish (lock $lock)"
		flock 9
	fi
	export XENPCI_CPU_LOCKED=1
}

# The default test plan: every group of selftests/xen-pci/groups.conf but the
# demo (make run), the benchmarks (make bench), the C reference alone (make
# reference) and the harness's self-tests. With an argument: the groups of
# the boots it names (an awk pattern: reference|ref-devices).
default_plan() {
	awk -v only="${1:-}" '{ sub(/#.*/, "") } NF == 0 { next }
		NF != 5 { print "groups.conf:" NR ": not 5 columns" > "/dev/stderr"; bad = 1; exit 1 }
		only == "" && $2 !~ /^(demo|bench|reference|ref-devices|harness)$/ || only != "" && $2 ~ "^(" only ")$" {
			printf "%s%s", s, $1; s = ","
		}' \
		"$(dirname "${BASH_SOURCE[0]}")/../selftests/xen-pci/groups.conf"
}
