#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the project's kernel: Debian's linux-source tree, unpacked once into a
# cache outside the repository (keyed on the kernel package and toolchain), with
# this repository's overlay applied on every run:
#   - new files (rust/, drivers/pciback, drivers/pcifront, drivers/xenpci_common)
#     are copied where they differ, so kbuild rebuilds only what changed;
#   - edits to upstream files are the patches in scripts/kernel-patches/, applied
#     to pristine copies and installed only where the result differs (idempotent,
#     and a patch removed from the series is undone);
# then configured from tinyconfig + scripts/xenpci.config and built (bzImage and
# modules, including the upstream C xen-pciback/xen-pcifront reference peers).
#
# Usage: kernel.sh [build|tree|overlay|config]   (default: build)
#   tree prints the build tree's path (after unpacking it if needed).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/versions.env"
. "$top/scripts/lib.sh"

export LIBCLANG_PATH=/usr/lib/llvm-$LIBCLANG_VERSION/lib
BINDGEN=${BINDGEN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}
KMAKE=(make -s -j"$(nproc)" RUSTC=/usr/bin/rustc BINDGEN="$BINDGEN" HOSTRUSTC=/usr/bin/rustc)

pkgver=$(dpkg-query -W -f='${Version}' "$KERNEL_PKG")
key=$(printf '%s\n' "$pkgver" "$(/usr/bin/rustc --version)" "$("$BINDGEN" --version | head -1)" \
	"$LIBCLANG_VERSION" | sha256sum | cut -c1-12)
TREE=$CACHE/linux-$KERNEL_VERSION-$key

unpack() {
	[ -f "$TREE/.xenpci-unpacked" ] && return
	log "unpacking $KERNEL_PKG $pkgver into $TREE"
	rm -rf "$TREE" "$TREE.tmp"
	mkdir -p "$TREE.tmp"
	tar -xf "/usr/src/$KERNEL_PKG.tar.xz" -C "$TREE.tmp" --strip-components=1
	mkdir -p "$TREE.tmp/.xenpci/pristine"
	touch "$TREE.tmp/.xenpci-unpacked"
	mv "$TREE.tmp" "$TREE"
}

# Files of the repository that are copied into the kernel tree as they are.
overlay_files() {
	(cd "$top" && git ls-files --cached --others --exclude-standard -- \
		rust drivers/pciback drivers/pcifront drivers/xenpci_common | sort)
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
	local work=$meta/work patched
	rm -rf "$work"; mkdir -p "$work"
	patched=$(cat "$top"/scripts/kernel-patches/*.patch 2>/dev/null |
		sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' | sort -u)
	for f in $patched; do
		if [ ! -f "$meta/pristine/$f" ] && [ ! -f "$meta/pristine/$f.absent" ]; then
			mkdir -p "$(dirname "$meta/pristine/$f")"
			if [ -f "$TREE/$f" ]; then cp -p "$TREE/$f" "$meta/pristine/$f"
			else touch "$meta/pristine/$f.absent"; fi
		fi
		mkdir -p "$(dirname "$work/$f")"
		[ -f "$meta/pristine/$f" ] && cp "$meta/pristine/$f" "$work/$f"
	done
	for p in "$top"/scripts/kernel-patches/*.patch; do
		[ -f "$p" ] || continue
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

config() {
	local want
	want=$(cat "$top/scripts/xenpci.config" | sha256sum | cut -c1-16)
	if [ -f "$TREE/.config" ] && [ "$(cat "$TREE/.xenpci/config-hash" 2>/dev/null)" = "$want" ]; then
		"${KMAKE[@]}" -C "$TREE" olddefconfig >/dev/null
		return
	fi
	log "configuring: tinyconfig + scripts/xenpci.config"
	"${KMAKE[@]}" -C "$TREE" tinyconfig >/dev/null
	(cd "$TREE" && scripts/kconfig/merge_config.sh -m -Q .config "$top/scripts/xenpci.config" >/dev/null)
	"${KMAKE[@]}" -C "$TREE" olddefconfig >/dev/null
	# Every option the fragment asks for must have survived olddefconfig.
	local bad=0 line sym val
	while IFS= read -r line; do
		case "$line" in
			CONFIG_*=*) sym=${line%%=*}; val=${line#*=}
				grep -qx "$sym=$val" "$TREE/.config" || { echo "kernel.sh: $sym=$val did not survive" >&2; bad=1; } ;;
			"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
				grep -q "^$sym=" "$TREE/.config" && { echo "kernel.sh: $sym should be off" >&2; bad=1; } ;;
		esac
	done < "$top/scripts/xenpci.config"
	[ $bad = 0 ] || die "configuration fragment not applied as written"
	echo "$want" > "$TREE/.xenpci/config-hash"
}

build() {
	local t0=$SECONDS
	"${KMAKE[@]}" -C "$TREE" rustavailable >/dev/null || die "make rustavailable failed: Rust toolchain not usable"
	log "building bzImage and modules in $TREE"
	"${KMAKE[@]}" -C "$TREE" bzImage modules >&2 || die "kernel build failed"
	for m in drivers/pciback/pciback.ko drivers/pcifront/pcifront.ko \
		drivers/xen/xen-pciback/xen-pciback.ko drivers/pci/xen-pcifront.ko; do
		[ -f "$TREE/$m" ] || die "missing $m after the build"
	done
	log "kernel $(cat "$TREE/include/config/kernel.release") built in $((SECONDS - t0)) s"
	ln -sfn "$TREE" "$CACHE/linux"
}

cmd=${1:-build}
mkdir -p "$CACHE"
case "$cmd" in
	tree) unpack; echo "$TREE" ;;
	overlay) unpack; overlay ;;
	config) unpack; overlay; config ;;
	build) with_cpu_lock; unpack; overlay; config; build ;;
	*) die "usage: kernel.sh [build|tree|overlay|config]" ;;
esac
