#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Developer tool: rewrite one patch of scripts/kernel-patches/ from the files
# as they now are in the cached kernel tree (after editing them there, or after
# `make rustfmt` in the tree). The patch keeps its message; its diff becomes
# (pristine + the patches before it) -> (the tree's file), for every file it
# touches ("before" and "later" in the order of scripts/series). A file that a
# later patch touches too is refused: edit that patch.
#
# Usage: refresh-patch.sh NNNN      (the patch's number, e.g. 0013)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
[ $# = 1 ] || die "usage: refresh-patch.sh NNNN"
dir=$top/scripts/kernel-patches
patch=$(ls "$dir/$1"-*.patch 2>/dev/null) || die "no patch $1 in $dir"
tree=$("$top/scripts/kernel.sh" tree)
files() { sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$@" | sort -u; }
mine=$(files "$patch")
patches=$(kernel_patches) || die "scripts/series and $dir disagree"
before=$(sed "\#^$patch\$#,\$d" <<< "$patches")
after=$(sed "1,\#^$patch\$#d" <<< "$patches")
for p in $after; do
	for f in $(files "$p"); do
		printf '%s\n' $mine | grep -qxF "$f" && die "$f is also in $(basename "$p")"
	done
done
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for f in $mine; do
	mkdir -p "$(dirname "$work/$f")"
	[ -f "$tree/.xenpci/pristine/$f" ] && cp "$tree/.xenpci/pristine/$f" "$work/$f"
done
for p in $before; do
	# Only the hunks of files this patch touches matter; the others are skipped.
	filterdiff_files=$(files "$p")
	for f in $mine; do
		printf '%s\n' $filterdiff_files | grep -qxF "$f" || continue
		awk -v f="$f" '/^diff /{keep = ($NF == "b/" f)} keep' "$p" | (cd "$work" && patch -p1 -s --no-backup-if-mismatch)
	done
done
new=$(mktemp)
awk '/^(diff |--- )/{exit} {print}' "$patch" > "$new"
for f in $mine; do
	a=$work/$f; [ -f "$a" ] || a=/dev/null
	b=$tree/$f; [ -f "$b" ] || b=/dev/null
	echo "diff -ru a/$f b/$f" >> "$new"
	diff -u --label "a/$f" --label "b/$f" "$a" "$b" >> "$new" || true
done
mv "$new" "$patch"
log "rewrote $(basename "$patch")"
