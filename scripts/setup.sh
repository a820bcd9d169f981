#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the build and the Xen-under-QEMU tests need, idempotently:
# Debian packages (adding the backports suites derived from this machine's own
# apt source) and bindgen-cli through `cargo install`. Ends by checking that the
# kernel tree accepts the Rust toolchain (`make rustavailable`), which the kernel
# build step runs against the unpacked tree (see scripts/kernel.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

log() { echo "setup: $*"; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

# The apt source this machine already uses: derive the backports suites from it,
# so that no mirror host name is written into this repository.
sources=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/xenpci-backports.sources
if [ ! -f "$extra" ]; then
	uri=$(awk '/^URIs:/ { print $2; exit }' "$sources" 2>/dev/null || true)
	if [ -z "$uri" ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
	fi
	[ -n "$uri" ] || { echo "setup: cannot find the Debian mirror in $sources" >&2; exit 1; }
	log "adding $KERNEL_SUITE and $QEMU_SUITE from $uri"
	$SUDO tee "$extra" >/dev/null <<EOF
Types: deb
URIs: $uri
Suites: $KERNEL_SUITE $QEMU_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	rm -f /tmp/.xenpci-apt-updated
fi

stamp=/tmp/.xenpci-apt-updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
	log "apt-get update"
	$SUDO apt-get update -q >/dev/null
	touch "$stamp"
fi

want=(build-essential bc bison flex libelf-dev libssl-dev cpio kmod zstd lz4 xz-utils gzip rsync
      python3 busybox-static debootstrap e2fsprogs patch
      "$RUSTC_PKG" "$RUST_SRC_PKG" "$CLIPPY_PKG" "$RUSTFMT_PKG"
      "libclang-$LIBCLANG_VERSION-dev" "clang-$LIBCLANG_VERSION"
      )
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# From the backports suites, explicitly (backports are never picked automatically).
if ! dpkg-query -W -f='${Status}' "$KERNEL_PKG" 2>/dev/null | grep -q 'ok installed'; then
	log "installing $KERNEL_PKG from $KERNEL_SUITE"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends -t "$KERNEL_SUITE" "$KERNEL_PKG" >/dev/null
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
	log "installing $QEMU_PKG from $QEMU_SUITE"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends -t "$QEMU_SUITE" "$QEMU_PKG" >/dev/null
fi

# bindgen: the kernel wants a libclang >= 17 and a bindgen >= 0.71.1.
export LIBCLANG_PATH=/usr/lib/llvm-$LIBCLANG_VERSION/lib
BINDGEN=${CARGO_HOME:-$HOME/.cargo}/bin/bindgen
if ! "$BINDGEN" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "cargo install bindgen-cli $BINDGEN_VERSION"
	cargo install -q bindgen-cli --locked --version "$BINDGEN_VERSION"
fi

# The kernel tree itself: rustavailable is checked by scripts/kernel.sh after unpacking.
ver=$(/usr/bin/rustc --version)
case "$ver" in
	*" $RUSTC_VERSION".*) ;;
	*) echo "setup: /usr/bin/rustc is '$ver', want $RUSTC_VERSION" >&2; exit 1 ;;
esac
log "ok: $ver, $("$BINDGEN" --version | head -1), xen $XEN_VERSION, $(qemu-system-x86_64 --version | head -1)"
