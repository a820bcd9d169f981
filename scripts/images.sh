#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the boot images for the Xen-under-QEMU tests:
#   xen      Xen's hypervisor binary, from Debian's package (cached)
#   rootfs   the dom0 root file system: a minimal Debian with the Xen tools (cached)
#   domU     the guest's initramfs: busybox, the selftests, both frontends,
#            roguefront and the evtchn/gntalloc drivers it uses, the
#            xenpci_edu test driver (built here, out of tree), and the NVMe
#            and e1000e drivers for the lab devices
#   dom0     dom0's initramfs: the cached root file system plus this build's
#            modules, the selftests, the guest kernel and the guest initramfs
#   base     xen, rootfs and its packed archive: all that needs no kernel
# Output goes to $OUT (default: out/ in the repository, out/debug/ with KCONFIG=debug).
#
# Usage: images.sh [all|base|xen|rootfs|domU|dom0]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/versions.env"
. "$top/scripts/lib.sh"
mkdir -p "$OUT" "$CACHE"

ktree() { "$top/scripts/kernel.sh" tree; }

xen() {
	local dir=$CACHE/xen-$XEN_VERSION
	if [ ! -f "$dir/xen" ]; then
		log "fetching $XEN_HYPERVISOR_PKG"
		rm -rf "$dir"; mkdir -p "$dir/deb"
		(cd "$dir/deb" && apt-get download -q "$XEN_HYPERVISOR_PKG" >/dev/null 2>&1) ||
			die "apt-get download $XEN_HYPERVISOR_PKG failed"
		dpkg-deb -x "$dir"/deb/*.deb "$dir/x"
		# An ELF32 multiboot image: QEMU's -kernel loads it.
		zcat "$dir"/x/boot/xen-"$XEN_VERSION"-amd64.gz > "$dir/xen.tmp"
		mv "$dir/xen.tmp" "$dir/xen"
	fi
	cp "$dir/xen" "$OUT/xen"
}

# The packages of the dom0 root file system: the key of its cache entry.
ROOTFS_PKGS="$XEN_UTILS_PKG,xenstore-utils,pciutils,kmod,busybox"
rootfs_dir() {
	echo "$CACHE/dom0root-$(printf '%s %s\n' "$DEBIAN_SUITE" "$ROOTFS_PKGS" | sha256sum | cut -c1-12)"
}

rootfs() {
	local dir mirror
	dir=$(rootfs_dir)
	[ -f "$dir/.complete" ] && return
	mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
	log "debootstrap $DEBIAN_SUITE into $dir (once; about 2 minutes)"
	rm -rf "$dir"
	debootstrap --variant=minbase --include="$ROOTFS_PKGS" "$DEBIAN_SUITE" "$dir" "$mirror" \
		> "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
	rm -rf "$dir"/usr/share/{doc,man,locale,info} "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/*
	touch "$dir/.complete"
}

# The dom0 root file system as a compressed cpio, built once per root.
rootfs_cpio() {
	local dir cpio
	dir=$(rootfs_dir)
	cpio=$dir.cpio.zst
	if [ ! -f "$cpio" ] || [ "$dir/.complete" -nt "$cpio" ]; then
		log "packing the dom0 root file system"
		(cd "$dir" && find . -path ./.complete -prune -o -print | cpio -H newc -o --quiet | zstd -q -T0 -3) > "$cpio.tmp"
		mv "$cpio.tmp" "$cpio"
	fi
	echo "$cpio"
}

# Copy a program of the dom0 root with the shared libraries it needs.
copy_with_libs() {
	local root=$1 prog=$2 dest=$3 lib
	mkdir -p "$dest$(dirname "$prog")"
	cp -L "$root$prog" "$dest$prog"
	for lib in $(chroot "$root" /usr/bin/ldd "$prog" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
		mkdir -p "$dest$(dirname "$lib")"
		cp -L "$root$lib" "$dest$lib"
	done
}

# The guest's interrupt test driver (selftests/xen-pci/edu), a Rust module built
# out of tree against the kernel tree, its objects under $OUT (MO=).
edu_module() {
	local tree=$1 obj=$OUT/work/edu
	mkdir -p "$obj"
	with_cpu_lock
	LIBCLANG_PATH=/usr/lib/llvm-$LIBCLANG_VERSION/lib make -s -C "$tree" \
		RUSTC=/usr/bin/rustc BINDGEN="${BINDGEN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}" \
		HOSTRUSTC=/usr/bin/rustc CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver "${KCONFIG_MAKE[@]}" \
		M="$top/selftests/xen-pci/edu" MO="$obj" modules >&2 ||
		die "building selftests/xen-pci/edu/xenpci_edu.ko failed"
	echo "$obj/xenpci_edu.ko"
}

domU() {
	local tree kver w=$OUT/work/domU edu
	tree=$(ktree); kver=$(cat "$tree/include/config/kernel.release")
	edu=$(edu_module "$tree")
	rm -rf "$w"; mkdir -p "$w"/{bin,proc,sys,dev,tmp,lib/modules/"$kver",xenpci}
	cp /bin/busybox "$w/bin/busybox"
	for a in $(/bin/busybox --list); do [ -e "$w/bin/$a" ] || ln -s busybox "$w/bin/$a"; done
	cp "$top/selftests/xen-pci/domU-init" "$w/init"
	cp -r "$top/selftests/xen-pci/." "$w/xenpci/"
	cp "$tree/tools/testing/selftests/kselftest/ktap_helpers.sh" "$w/xenpci/"
	gcc -O2 -static -Wall -o "$w/bin/cfgbench" "$top/selftests/xen-pci/cfgbench.c"
	gcc -O2 -static -Wall -o "$w/bin/roguefront" "$top/selftests/xen-pci/roguefront.c"
	gcc -O2 -static -Wall -o "$w/bin/dio" "$top/selftests/xen-pci/dio.c"
	cp "$tree/drivers/pcifront/pcifront.ko" "$tree/drivers/pci/xen-pcifront.ko" "$edu" "$w/lib/modules/$kver/"
	# The drivers of the lab devices (the devices boot): only the guest has them.
	cp "$tree/drivers/nvme/host/nvme-core.ko" "$tree/drivers/nvme/host/nvme.ko" \
		"$tree/drivers/net/ethernet/intel/e1000e/e1000e.ko" "$w/lib/modules/$kver/"
	# For roguefront (the hostile groups): a frontend from user space.
	cp "$tree/drivers/xen/xen-evtchn.ko" "$tree/drivers/xen/xen-gntalloc.ko" "$w/lib/modules/$kver/"
	# A xenstore client, for the second result path (guest -> xenstore -> dom0).
	local root; root=$(rootfs_dir)
	for p in /usr/bin/xenstore-write /usr/bin/xenstore-read; do copy_with_libs "$root" "$p" "$w"; done
	# Not compressed: libxenguest would unpack it in dom0 at every xl create
	# (dom0's own initramfs compresses it once).
	(cd "$w" && find . | cpio -H newc -o --quiet) > "$OUT/domU.cpio"
}

dom0() {
	local tree kver w=$OUT/work/dom0 base
	tree=$(ktree); kver=$(cat "$tree/include/config/kernel.release")
	base=$(rootfs_cpio)
	# usr/lib, not lib: /lib is a symlink in the root, and an archive entry of
	# another type at the same path would replace it when unpacked.
	local mods=$w/usr/lib/modules/$kver
	rm -rf "$w"; mkdir -p "$w/xenpci" "$mods/kernel"
	# The modules of this configuration (modules.order), not every .ko in the tree: a tree
	# seeded from another configuration's (kernel.sh) keeps that one's stale modules.
	(cd "$tree" && sed -n 's#^\(drivers/\(xen\|pci\|pciback\|pcifront\)/.*\)\.o$#\1.ko#p' modules.order |
		cpio -pdm --quiet "$mods/kernel/")
	cp "$tree/modules.builtin" "$tree/modules.builtin.modinfo" "$tree/modules.order" "$mods/" 2>/dev/null || true
	depmod -b "$w/usr" "$kver"
	cp "$top/selftests/xen-pci/dom0-init" "$w/init"
	cp -r "$top/selftests/xen-pci/." "$w/xenpci/"
	cp "$tree/tools/testing/selftests/kselftest/ktap_helpers.sh" "$w/xenpci/"
	cp "$tree/arch/x86/boot/bzImage" "$w/xenpci/vmlinuz-domU"
	cp "$OUT/domU.cpio" "$w/xenpci/"
	cp "$OUT/work/domU/bin/cfgbench" "$OUT/work/domU/bin/roguefront" "$w/xenpci/"
	gcc -O2 -static -Wall -o "$w/xenpci/vecstate" "$top/selftests/xen-pci/vecstate.c"
	gcc -O2 -static -Wall -o "$w/xenpci/mmio" "$top/selftests/xen-pci/mmio.c"
	# Two concatenated archives: the cached root, then this build's files over it.
	(cd "$w" && find . -mindepth 1 | cpio -H newc -o --quiet | gzip -1) > "$OUT/dom0-overlay.cpio.gz"
	cat "$base" "$OUT/dom0-overlay.cpio.gz" > "$OUT/dom0.cpio"
	cp "$tree/arch/x86/boot/bzImage" "$OUT/vmlinuz"
	log "images ready in $OUT (kernel $kver)"
}

case "${1:-all}" in
	xen) xen ;;
	rootfs) rootfs ;;
	domU) rootfs; domU ;;
	dom0) rootfs; domU; dom0 ;;
	all) xen; rootfs; domU; dom0 ;;
	# What needs no kernel: scripts/test.sh makes it while the kernel builds.
	base) xen; rootfs; rootfs_cpio >/dev/null ;;
	*) die "usage: images.sh [all|base|xen|rootfs|domU|dom0]" ;;
esac
