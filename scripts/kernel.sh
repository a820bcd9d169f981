#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the project's kernel: Debian's linux-source tree, unpacked once into a
# cache outside the repository (keyed on the kernel package and toolchain), with
# this repository's overlay applied on every run:
#   - new files (rust/, drivers/pciback, drivers/pcifront, drivers/xenpci_common)
#     are copied where they differ, so kbuild rebuilds only what changed;
#   - edits to upstream files are the patches in scripts/kernel-patches/, applied
#     in the order of scripts/series to pristine copies and installed only where
#     the result differs (idempotent, and a patch removed from the series is undone);
# then configured from tinyconfig + scripts/xenpci.config and built (bzImage and
# modules, including the upstream C xen-pciback/xen-pcifront reference peers).
#
# Usage: kernel.sh [build|tree|overlay|config|lint]   (default: build)
#   tree prints the build tree's path (after unpacking it if needed);
#   lint checks the built tree's formatting and that clippy ran (see lint below).
#        kernel.sh build-tree DIR
#   configures and builds another kernel tree as build does, without unpacking or overlay
#   (make patches-check, scripts/series.sh: the tree at each patch of the series), taking
#   the configuration fragments' options that DIR's Kconfig does not define yet as notes.
#        kernel.sh kmake DIR [MAKE ARGUMENTS]
#   runs make in DIR with this script's make variables (toolchain, CLIPPY=1).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/versions.env"
. "$top/scripts/lib.sh"

export LIBCLANG_PATH=/usr/lib/llvm-$LIBCLANG_VERSION/lib
BINDGEN=${BINDGEN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}
# Every Rust object is compiled by clippy-driver (the same code as rustc, plus the lints), so
# that a clippy warning fails the build as any warning does (CONFIG_WERROR): the kernel's
# `make CLIPPY=1` without a second build.
KMAKE=(make -s -j"$(nproc)" RUSTC=/usr/bin/rustc BINDGEN="$BINDGEN" HOSTRUSTC=/usr/bin/rustc
	CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver RUSTFMT=/usr/bin/rustfmt "${KCONFIG_MAKE[@]}")

pkgver=$(dpkg-query -W -f='${Version}' "$KERNEL_PKG")
key=$(printf '%s\n' "$pkgver" "$(/usr/bin/rustc --version)" "$("$BINDGEN" --version | head -1)" \
	"$LIBCLANG_VERSION" | sha256sum | cut -c1-12)
TREE=$CACHE/linux-$KERNEL_VERSION-$key${KCONFIG:+-$KCONFIG}
# The configuration fragments merged on top of tinyconfig, in order.
FRAGMENTS=("$top/scripts/xenpci.config")
if [ -n "$KCONFIG" ]; then FRAGMENTS+=("$top/scripts/xenpci-$KCONFIG.config"); fi

# The normal configuration's tree, from which a variant's tree is seeded.
BASE_TREE=$CACHE/linux-$KERNEL_VERSION-$key
# Set by build-tree: TREE is another tree, which this script only configures and builds.
OTHER_TREE=

unpack() {
	[ -f "$TREE/.xenpci-unpacked" ] && return
	rm -rf "$TREE" "$TREE.tmp"
	mkdir -p "$TREE.tmp"
	if [ -n "$KCONFIG" ] && [ -f "$BASE_TREE/.xenpci-unpacked" ] && [ -f "$BASE_TREE/vmlinux" ]; then
		# A variant starts as a copy of the built normal tree (times kept): kbuild's
		# dependencies on each CONFIG symbol then rebuild only what the variant's
		# fragment changes, and the overlay and patches are brought up to date as
		# in any tree. (For the built-in kernel: a few minutes instead of a full build.)
		# Not while a build may be writing the normal tree (kernel.sh tree runs unlocked).
		with_cpu_lock
		log "seeding $TREE from the built tree $BASE_TREE"
		cp -a --reflink=auto "$BASE_TREE/." "$TREE.tmp/"
		rm -f "$TREE.tmp/.xenpci-unpacked"
		# Modules the variant builds in must not linger (kbuild links the others again).
		find "$TREE.tmp" -name '*.ko' -delete
	else
		log "unpacking $KERNEL_PKG $pkgver into $TREE"
		tar -xf "/usr/src/$KERNEL_PKG.tar.xz" -C "$TREE.tmp" --strip-components=1
		mkdir -p "$TREE.tmp/.xenpci/pristine"
	fi
	touch "$TREE.tmp/.xenpci-unpacked"
	mv "$TREE.tmp" "$TREE"
}

overlay() {
	local meta=$TREE/.xenpci f changed=0
	overlay_files > "$meta/manifest.new"
	# Files that left the overlay since the last run.
	if [ -f "$meta/manifest" ]; then
		comm -23 "$meta/manifest" "$meta/manifest.new" | while read -r f; do
			rm -f "$TREE/$f"
		done
	fi
	while read -r f; do
		[ -f "$top/$f" ] || continue
		if ! cmp -s "$top/$f" "$TREE/$f"; then
			mkdir -p "$(dirname "$TREE/$f")"
			cp "$top/$f" "$TREE/$f"
			changed=$((changed + 1))
		fi
	done < "$meta/manifest.new"
	mv "$meta/manifest.new" "$meta/manifest"

	# Patches: rebuild every patched file from its pristine copy.
	local work=$meta/work patched list patches=()
	rm -rf "$work"; mkdir -p "$work"
	list=$(kernel_patches) || die "scripts/series and scripts/kernel-patches/ disagree"
	[ -z "$list" ] || mapfile -t patches <<< "$list"
	patched=$(cat "${patches[@]}" /dev/null | sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' | sort -u)
	for f in $patched; do
		if [ ! -f "$meta/pristine/$f" ] && [ ! -f "$meta/pristine/$f.absent" ]; then
			mkdir -p "$(dirname "$meta/pristine/$f")"
			if [ -f "$TREE/$f" ]; then cp -p "$TREE/$f" "$meta/pristine/$f"
			else touch "$meta/pristine/$f.absent"; fi
		fi
		mkdir -p "$(dirname "$work/$f")"
		[ -f "$meta/pristine/$f" ] && cp "$meta/pristine/$f" "$work/$f"
	done
	for p in "${patches[@]}"; do
		(cd "$work" && patch -p1 -s --no-backup-if-mismatch < "$p") ||
			die "patch $(basename "$p") does not apply to $KERNEL_PKG $pkgver"
	done
	for f in $patched; do
		if ! cmp -s "$work/$f" "$TREE/$f"; then
			cp "$work/$f" "$TREE/$f"; changed=$((changed + 1))
		fi
	done
	# Files patched by an earlier series but not by this one: restore them.
	(cd "$meta/pristine" && find . -type f | sed 's#^\./##') | while read -r f; do
		case "$f" in *.absent) f=${f%.absent} ;; esac
		if ! printf '%s\n' $patched | grep -qxF "$f"; then
			if [ -f "$meta/pristine/$f" ]; then cp -p "$meta/pristine/$f" "$TREE/$f"
			else rm -f "$TREE/$f"; fi
			rm -f "$meta/pristine/$f" "$meta/pristine/$f.absent"
		fi
	done
	rm -rf "$work"
	log "overlay applied ($changed file(s) changed)"
}

# The configuration: tinyconfig + FRAGMENTS when they changed, else olddefconfig. For another
# tree (build-tree: OTHER_TREE=1) always from tinyconfig, since its Kconfig files change from
# one patch to the next, and an option its Kconfig does not define (a later patch adds it), or
# that its dependencies keep off, is a note, not an error.
config() {
	local want defined=
	want=$(cat "${FRAGMENTS[@]}" | sha256sum | cut -c1-16)
	if [ -z "$OTHER_TREE" ] && [ -f "$TREE/.config" ] &&
		[ "$(cat "$TREE/.xenpci/config-hash" 2>/dev/null)" = "$want" ]; then
		"${KMAKE[@]}" -C "$TREE" olddefconfig >/dev/null
		return
	fi
	log "configuring: tinyconfig + ${FRAGMENTS[*]#$top/}"
	"${KMAKE[@]}" -C "$TREE" tinyconfig >/dev/null
	(cd "$TREE" && scripts/kconfig/merge_config.sh -m -Q .config "${FRAGMENTS[@]}" >/dev/null)
	"${KMAKE[@]}" -C "$TREE" olddefconfig >/dev/null
	if [ -n "$OTHER_TREE" ]; then
		defined=$(cd "$TREE" && find . -name .git -prune -o -name 'Kconfig*' -type f -print0 |
			xargs -0 grep -hoE '^[[:space:]]*(menu)?config[[:space:]]+[A-Za-z0-9_]+' |
			awk '{ print "CONFIG_" $2 }' | sort -u)
	fi
	# Every option the fragments ask for must have survived olddefconfig (a later fragment's
	# line for a symbol replaces an earlier one's).
	local bad=0 line sym val
	while IFS= read -r line; do
		case "$line" in
			CONFIG_*=*) sym=${line%%=*}; val=${line#*=}
				grep -qx "$sym=$val" "$TREE/.config" && continue
				if [ -z "$OTHER_TREE" ]; then echo "kernel.sh: $sym=$val did not survive" >&2; bad=1
				elif grep -qxF "$sym" <<< "$defined"; then log "note: $sym=$val: its dependencies keep it off here"
				else log "note: $sym=$val: not defined in this tree"; fi ;;
			"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
				grep -q "^$sym=" "$TREE/.config" && { echo "kernel.sh: $sym should be off" >&2; bad=1; } ;;
		esac
	done < <(cat "${FRAGMENTS[@]}" | awk '{ s = $0 }
		/^CONFIG_/ { sub(/=.*/, "", s) } /^# CONFIG_.* is not set$/ { s = $2 }
		s ~ /^CONFIG_/ { if (!(s in at)) order[n++] = s; at[s] = $0 }
		END { for (i = 0; i < n; i++) print at[order[i]] }')
	[ $bad = 0 ] || die "configuration fragment not applied as written"
	[ -n "$OTHER_TREE" ] || echo "$want" > "$TREE/.xenpci/config-hash"
}

build() {
	local t0=$SECONDS
	"${KMAKE[@]}" -C "$TREE" rustavailable >/dev/null || die "make rustavailable failed: Rust toolchain not usable"
	log "building bzImage and modules in $TREE"
	# The build's messages (with -s, only warnings and errors) go to stderr and to a file: a
	# warning about the project's objects (objtool's, say, which CONFIG_WERROR does not turn
	# into an error) fails the build as a compiler warning does. objtool checks a module's
	# objects one by one, and the built-in ones (rust/, a built-in pciback) in vmlinux.o, where
	# the project's Rust symbols are mangled `_R...` names that name the crate.
	local elog=$TREE/.xenpci/build-messages
	mkdir -p "$TREE/.xenpci"
	"${KMAKE[@]}" -C "$TREE" bzImage modules 2>&1 | tee "$elog" >&2 || die "kernel build failed"
	if grep -E '^(drivers/(pciback|pcifront)|rust)/[^ ]*: warning|^vmlinux\.o: warning: objtool: _R[^ ]*(6kernel|7pciback|8pcifront)' \
		"$elog" >/dev/null; then
		# Delete the objects so that the next build compiles them again and warns again.
		{ grep -oE '^((drivers/(pciback|pcifront)|rust)/[^: ]*\.o|vmlinux\.o)' "$elog" || true; } |
			sort -u | while read -r o; do rm -f "$TREE/$o"; done
		die "the build warned about the project's objects (above)"
	fi
	# The four drivers, as modules where the configuration says so.
	for m in XEN_PCIBACK_RUST:drivers/pciback/pciback.ko XEN_PCIFRONT_RUST:drivers/pcifront/pcifront.ko \
		XEN_PCIDEV_BACKEND:drivers/xen/xen-pciback/xen-pciback.ko \
		XEN_PCIDEV_FRONTEND:drivers/pci/xen-pcifront.ko; do
		grep -qx "CONFIG_${m%%:*}=m" "$TREE/.config" || continue
		[ -f "$TREE/${m#*:}" ] || die "missing ${m#*:} after the build"
	done
	log "kernel $(cat "$TREE/include/config/kernel.release") built in $((SECONDS - t0)) s"
	[ -n "$OTHER_TREE" ] || ln -sfn "$TREE" "$CACHE/linux${KCONFIG:+-$KCONFIG}"
}

# The lint checks of the built tree, as KTAP-like lines and a count: the overlay is formatted as
# `make rustfmtcheck` wants, and the last build compiled the drivers and the kernel crate with
# clippy-driver under -Dwarnings.
lint() {
	local pass=0 fail=0 out f
	# `make rustfmtcheck`'s file list, without the pristine copies in .xenpci/ (which refer to
	# modules next to them that are not there).
	if out=$(cd "$TREE" && find . \( -path ./.xenpci -o -path ./rust/proc-macro2 -o -path ./rust/quote \
		-o -path ./rust/syn -o -path ./rust/zerocopy -o -path ./rust/zerocopy-derive -o -name .git \) \
		-prune -o -type f -name '*.rs' ! -name '*generated*' -print |
		xargs /usr/bin/rustfmt --check 2>&1) && [ -z "$out" ]; then
		echo "ok rustfmt --check (make rustfmtcheck)"; pass=$((pass + 1))
	else
		echo "$out" | grep -iE '^(Diff in|Error)' | sed 's/^/# /' | head -n 20 || true
		echo "not ok rustfmt --check (make rustfmtcheck)"; fail=$((fail + 1))
	fi
	for f in rust/.kernel.o.cmd drivers/pciback/.pciback.o.cmd drivers/pcifront/.pcifront.o.cmd; do
		if grep -q 'clippy-driver' "$TREE/$f" 2>/dev/null && grep -q -- '-Dwarnings' "$TREE/$f"; then
			echo "ok ${f%.cmd} built by clippy-driver with -Dwarnings"; pass=$((pass + 1))
		else
			echo "not ok ${f%.cmd} built by clippy-driver with -Dwarnings"; fail=$((fail + 1))
		fi
	done
	# The upstream-form series (scripts/series) must place every overlay file in exactly one
	# patch: checked here, where make test sees it, not only by make patches.
	if out=$(KCONFIG= "$top/scripts/series.sh" list 2>&1 >/dev/null); then
		echo "ok scripts/series places every overlay file in exactly one patch"; pass=$((pass + 1))
	else
		echo "$out" | sed 's/^/# /' | head -n 5
		echo "not ok scripts/series places every overlay file in exactly one patch"; fail=$((fail + 1))
	fi
	echo "lint: $pass passed, $fail failed"
	[ "$fail" = 0 ]
}

cmd=${1:-build}
mkdir -p "$CACHE"
case "$cmd" in
	tree) unpack; echo "$TREE" ;;
	overlay) unpack; overlay ;;
	config) unpack; overlay; config ;;
	build) with_cpu_lock; unpack; overlay; config; build ;;
	lint) unpack; lint ;;
	build-tree) [ $# = 2 ] && [ -f "$2/Makefile" ] || die "usage: kernel.sh build-tree DIR"
		[ -z "$KCONFIG" ] || die "build-tree builds the normal configuration only"
		TREE=$(cd "$2" && pwd); OTHER_TREE=1
		with_cpu_lock; config; build ;;
	kmake) [ $# -ge 2 ] || die "usage: kernel.sh kmake DIR [MAKE ARGUMENTS]"
		shift; dir=$1; shift
		with_cpu_lock; "${KMAKE[@]}" -C "$dir" "$@" ;;
	*) die "usage: kernel.sh [build|tree|overlay|config|lint|build-tree DIR|kmake DIR ...]" ;;
esac
