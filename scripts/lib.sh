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

# The repository (the directory above this file's).
XENPCI_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Files of the repository that kernel.sh copies into the kernel tree as they are (the
# overlay), one a line. (Not the host crate's root and fuzz entry points: the kernel
# includes mod.rs.)
overlay_files() {
	(cd "$XENPCI_TOP" && git ls-files --cached --others --exclude-standard -- \
		rust drivers/pciback drivers/pcifront drivers/xenpci_common \
		':!drivers/xenpci_common/lib.rs' ':!drivers/xenpci_common/fuzzing.rs' | sort)
}

# The kernel patches (scripts/kernel-patches/NNNN-*.patch), one path a line, in the order of
# scripts/series, which is the order they apply in. Fails (with a message) when the series
# names a patch that is not there, or the directory has a patch the series does not name.
kernel_patches() {
	local top=$XENPCI_TOP dir n p list=() listed
	dir=$top/scripts/kernel-patches
	for n in $(awk '$1 == "patch" { print $2 }' "$top/scripts/series"); do
		p=("$dir/$n"-*.patch)
		if [ ! -f "${p[0]}" ] || [ ${#p[@]} != 1 ]; then
			echo "scripts/series: patch $n: not exactly one $dir/$n-*.patch" >&2; return 1
		fi
		list+=("${p[0]}")
	done
	listed=$(printf '%s\n' "${list[@]}")
	for p in "$dir"/*.patch; do
		if [ "$(grep -cxF "$p" <<< "$listed")" != 1 ]; then
			echo "scripts/series: $(basename "$p") is not named exactly once" >&2; return 1
		fi
	done
	printf '%s\n' "${list[@]}"
}
