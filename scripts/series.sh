#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The project in upstream form: the patch series that scripts/series describes,
# made of the same files as kernel.sh's overlay (the kernel patches and the new
# files), never written twice.
#
# Usage: series.sh list      the patches of the series and the files each adds
#        series.sh patches   (make patches) commit each patch of the series on the
#                            pristine tree, in a scratch repository in the cache, and
#                            write them to out/patches/ with `git format-patch`
#        series.sh tree      make the check's tree (below) if needed, print its path
#        series.sh check     (make patches-check) make the series, then apply it with
#                            `git am` to a pristine tree, one patch at a time, and after
#                            each: configure and build the kernel as kernel.sh does
#                            (`kernel.sh build-tree`: tinyconfig + scripts/xenpci.config,
#                            CLIPPY=1, CONFIG_WERROR), build the selftests once the
#                            patch that adds them is in, and run scripts/checkpatch.pl
#                            --strict on the patch (errors fail it, warnings and checks
#                            are listed); ends "patches-check: N passed, N failed"
#
# The check's tree (patches-check-<kernel tree> in the cache) is made once as a copy of
# kernel.sh's built tree (or from the archive when there is none) and reset to the
# pristine sources with git before every run: kbuild then rebuilds only what each patch
# changes. Logs: out/patches-check/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/versions.env"
. "$top/scripts/lib.sh"

pkgver=$(dpkg-query -W -f='${Version}' "$KERNEL_PKG")
# The pristine tree, committed in a scratch repository: branch pristine, the series on
# branch series.
SRC=$CACHE/series-linux-$KERNEL_VERSION-$(printf '%s\n' "$KERNEL_PKG" "$pkgver" | sha256sum | cut -c1-12)
PATCHES=$top/out/patches
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The identity and date of the commits: the repository's user, its last commit's date
# (the same series twice gives the same files).
git_env() {
	local name email date
	name=$(git -C "$top" config user.name) || die "git config user.name is not set"
	email=$(git -C "$top" config user.email) || die "git config user.email is not set"
	date=$(git -C "$top" log -1 --format=%ad --date=raw)
	export GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=$date
	export GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email GIT_COMMITTER_DATE=$date
}

# Reads scripts/series into kind[], num[], msg[], adds[], msrc[], mdst[] (one entry per patch).
parse() {
	local line n=-1 t
	kind=() num=() msg=() adds=() msrc=() mdst=()
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in
			'' | '#'*) continue ;;
			'patch '*) n=$((n + 1)); kind[n]=patch; num[n]=${line#patch } ;;
			new) n=$((n + 1)); kind[n]=new; num[n]= ;;
			'|'*) [ $n -ge 0 ] && [ "${kind[n]}" = new ] || die "scripts/series: a | line outside a new patch"
				t=${line#|}; msg[n]+="${t# }"$'\n' ;;
			'add '*) [ $n -ge 0 ] || die "scripts/series: add before the first patch"
				adds[n]+="${line#add } " ;;
			'map '*) [ $n -ge 0 ] || die "scripts/series: map before the first patch"
				read -r msrc[n] mdst[n] t <<< "${line#map }"
				[ -n "${mdst[n]}" ] && [ -z "$t" ] || die "scripts/series: want map SRC DST: $line" ;;
			*) die "scripts/series: cannot read: $line" ;;
		esac
	done < "$top/scripts/series"
	[ $n -ge 0 ] || die "scripts/series: no patch"
	local i
	for i in "${!kind[@]}"; do
		: "${msg[i]:=}" "${adds[i]:=}" "${msrc[i]:=}" "${mdst[i]:=}"
		[ "${kind[i]}" = patch ] || [ -n "${msg[i]}" ] || die "scripts/series: new patch $((i + 1)) has no message"
	done
}

# The repository files of entry $1, one a line: those its add lines name, and of an entry
# without a map line only those of the overlay (which leaves out the host crate's roots).
entry_files() {
	local specs=${adds[$1]}
	[ -n "$specs" ] || return 0
	# shellcheck disable=SC2086 # pathspecs, split on blanks
	(cd "$top" && git ls-files --cached --others --exclude-standard -- $specs | sort -u |
		while IFS= read -r f; do [ -f "$f" ] && echo "$f"; done) |
		if [ -n "${msrc[$1]}" ]; then cat; else comm -12 - <(overlay_files); fi
}

# Every file of the overlay in exactly one entry without a map; the files of an entry with
# a map under its SRC.
validate() {
	local i f all=
	kernel_patches > /dev/null || die "scripts/series and scripts/kernel-patches/ disagree"
	for i in "${!kind[@]}"; do
		if [ -n "${msrc[i]}" ]; then
			while IFS= read -r f; do
				case "$f" in "${msrc[i]}"/*) ;; *) die "scripts/series: $f is not under ${msrc[i]}" ;; esac
			done < <(entry_files "$i")
		else
			all+=$(entry_files "$i")$'\n'
		fi
	done
	local extra missing spec
	extra=$(sed '/^$/d' <<< "$all" | sort | uniq -d)
	[ -z "$extra" ] || die "scripts/series: added by more than one patch: $(echo $extra)"
	for i in "${!kind[@]}"; do
		for spec in ${adds[i]}; do
			[ -n "$(cd "$top" && git ls-files --cached --others --exclude-standard -- "$spec")" ] ||
				die "scripts/series: add $spec: no such file"
		done
	done
	missing=$(comm -23 <(overlay_files) <(sed '/^$/d' <<< "$all" | sort))
	[ -z "$missing" ] || die "scripts/series: overlay files in no patch: $(echo $missing)"
}

# The scratch repository of the pristine tree (made once, from the archive).
pristine() {
	[ -f "$SRC/.git/xenpci-pristine" ] && return
	with_cpu_lock
	[ -f "$SRC/.git/xenpci-pristine" ] && return
	log "committing the pristine $KERNEL_PKG $pkgver in $SRC"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -xf "/usr/src/$KERNEL_PKG.tar.xz" -C "$SRC.tmp" --strip-components=1
	(cd "$SRC.tmp" && git init -q -b pristine && git config gc.auto 0 && git config core.autocrlf false &&
		git add -Af . && date=$(date -u -r Makefile '+%s +0000') &&
		GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git -c user.name=xenpci \
		-c user.email=xenpci@localhost commit -q -m "Linux $KERNEL_VERSION ($KERNEL_PKG $pkgver)")
	touch "$SRC.tmp/.git/xenpci-pristine"
	mv "$SRC.tmp" "$SRC"
}

patches() {
	local i f dst p msgfile=$tmp/msg subject dsts
	parse
	validate
	# One run at a time in the scratch repository (a check holds it to its end). The CPU
	# lock first, when the scratch repository is to be made (as check takes it): never the
	# two locks in the other order.
	mkdir -p "$CACHE"
	[ -f "$SRC/.git/xenpci-pristine" ] || with_cpu_lock
	exec 8> "$SRC.lock"
	flock 8
	pristine
	git_env
	(cd "$SRC" && git checkout -q -f -B series pristine && git clean -q -fdx)
	for i in "${!kind[@]}"; do
		if [ "${kind[i]}" = patch ]; then
			p=$(kernel_patches | grep "/${num[i]}-[^/]*\.patch$")
			awk '/^(diff |--- )/{exit} {print}' "$p" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$msgfile"
			(cd "$SRC" && patch -p1 -s --no-backup-if-mismatch < "$p") ||
				die "$(basename "$p") does not apply at its place in the series"
		else
			printf '%s' "${msg[i]}" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$msgfile"
		fi
		subject=$(head -n 1 "$msgfile")
		[ -n "$subject" ] && [ "$(sed -n 2p "$msgfile")" = "" ] ||
			die "patch $((i + 1)) of scripts/series: want a subject line, then a blank line"
		# The files to commit: those the kernel patch touches, and the new files.
		dsts=()
		[ "${kind[i]}" != patch ] || mapfile -t dsts < <(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$p" | sort -u)
		while IFS= read -r f; do
			dst=$f
			[ -z "${msrc[i]}" ] || dst=${mdst[i]}/${f#"${msrc[i]}"/}
			mkdir -p "$(dirname "$SRC/$dst")"
			cp "$top/$f" "$SRC/$dst"
			dsts+=("$dst")
		done < <(entry_files "$i")
		# (-f: Debian's top-level .gitignore ignores every file that is not tracked.)
		(cd "$SRC" && git add -f -- "${dsts[@]}" && git commit -q -s -F "$msgfile") ||
			die "patch $((i + 1)) of scripts/series ($subject) changes nothing"
	done
	rm -rf "$PATCHES"; mkdir -p "$PATCHES"
	(cd "$SRC" && git format-patch -q -o "$PATCHES" pristine..series)
	log "$(find "$PATCHES" -name '*.patch' | wc -l) patches in ${PATCHES#"$top"/}"
	(cd "$SRC" && git log --reverse --format='  %s' pristine..series) >&2
}

# The check's tree: a copy of kernel.sh's built tree (or the archive, built from scratch),
# a git repository sharing the pristine repository's objects.
check_tree() {
	local built
	built=$("$top/scripts/kernel.sh" tree)
	CHK=$CACHE/patches-check-$(basename "$built")
	[ -f "$CHK/.git/xenpci-check" ] && return
	rm -rf "$CHK" "$CHK.tmp"
	if [ -f "$built/vmlinux" ]; then
		log "seeding $CHK from the built tree $built"
		cp -a --reflink=auto "$built/." "$CHK.tmp/"
		rm -rf "$CHK.tmp/.xenpci" "$CHK.tmp/.xenpci-unpacked"
	else
		log "unpacking $KERNEL_PKG into $CHK (no built tree to start from: a full build follows)"
		mkdir -p "$CHK.tmp"
		tar -xf "/usr/src/$KERNEL_PKG.tar.xz" -C "$CHK.tmp" --strip-components=1
	fi
	(cd "$CHK.tmp" && git init -q -b check && git config gc.auto 0 &&
		echo "$SRC/.git/objects" > .git/objects/info/alternates &&
		git update-ref refs/heads/pristine "$(git -C "$SRC" rev-parse pristine)" &&
		git reset -q pristine && { git update-index -q --refresh > /dev/null || true; }) ||
		die "cannot make the check tree $CHK"
	touch "$CHK.tmp/.git/xenpci-check"
	mv "$CHK.tmp" "$CHK"
}

check() {
	with_cpu_lock
	patches
	check_tree
	local logs=$top/out/patches-check t0=$SECONDS
	rm -rf "$logs"; mkdir -p "$logs"
	# Back to the pristine sources: only the files the last run (or the copied overlay)
	# changed are written, with a new time, so kbuild rebuilds just what depends on them.
	# The files the series adds go too (Debian's .gitignore ignores every untracked file,
	# so git clean does not see them; the build's files stay).
	log "resetting $CHK to the pristine sources"
	(cd "$CHK" && { git am --abort > /dev/null 2>&1 || true; } && git checkout -q -f -B check pristine &&
		git -C "$SRC" diff --name-only --diff-filter=A -z pristine series | xargs -0 rm -f &&
		git clean -q -fd) || die "cannot reset $CHK"
	local p n=0 pass=0 fail=0 subject t1 log cp_line e w c status notes summary= warnings= applied=1 d
	# The directories the map lines of scripts/series put files in (the selftests): built
	# with their Makefile once a patch brought it.
	local mapped
	mapped=$(printf '%s\n' "${mdst[@]}" | sed '/^$/d' | sort -u)
	for p in "$PATCHES"/*.patch; do
		n=$((n + 1)); t1=$SECONDS; status=ok; notes=
		# (The subject as git format-patch folds it, unfolded.)
		subject=$(awk '/^Subject: / { s = $0; while ((getline l) > 0 && l ~ /^ /) s = s l; print s; exit }' "$p" |
			sed 's/^Subject: \[PATCH[^]]*\] //')
		log=$logs/$(basename "$p" .patch).log
		log "[$n] $subject"
		if [ $applied = 1 ] && (cd "$CHK" && git am -q "$p") > "$log" 2>&1; then
			if ! "$top/scripts/kernel.sh" build-tree "$CHK" >> "$log" 2>&1; then
				status="not ok"; notes+=" build failed;"
			else
				for d in $mapped; do
					[ -f "$CHK/$d/Makefile" ] || continue
					"$top/scripts/kernel.sh" kmake "$CHK/$d" KDIR="$CHK" >> "$log" 2>&1 ||
						{ status="not ok"; notes+=" $d: build failed;"; }
				done
			fi
		else
			status="not ok"; notes+=" does not apply;"; applied=0
		fi
		cp_line=$(cd "$CHK" && scripts/checkpatch.pl --strict --color=never "$p" 2>&1 |
			tee "$log.checkpatch" | grep -E '^total: ' || true)
		e=$(sed -n 's/^total: \([0-9]*\) errors.*/\1/p' <<< "$cp_line")
		w=$(sed -n 's/.* \([0-9]*\) warnings.*/\1/p' <<< "$cp_line")
		c=$(sed -n 's/.* \([0-9]*\) checks.*/\1/p' <<< "$cp_line")
		if [ -z "$e" ]; then status="not ok"; notes+=" checkpatch did not run;"
		elif [ "$e" != 0 ]; then status="not ok"; notes+=" checkpatch: $e error(s);"; fi
		[ "$status" = ok ] && pass=$((pass + 1)) || fail=$((fail + 1))
		summary+=$(printf '%s %d %s (%d s; checkpatch %s errors, %s warnings, %s checks)%s' \
			"$status" "$n" "$subject" $((SECONDS - t1)) "${e:-?}" "${w:-?}" "${c:-?}" "${notes:+ #$notes}")$'\n'
		if [ "${w:-0}" != 0 ] || [ "${c:-0}" != 0 ]; then
			warnings+="# $n $subject:"$'\n'
			warnings+=$(grep -E '^(WARNING|CHECK|ERROR):' "$log.checkpatch" |
				sed 's/line length of [0-9]* exceeds/line length exceeds/' | sort | uniq -c | sort -rn |
				sed 's/^/#   /')$'\n'
		fi
		log "[$n] $status in $((SECONDS - t1)) s${notes:+:$notes}"
	done
	{
		printf '%s' "$summary"
		[ -z "$warnings" ] || printf '# checkpatch --strict warnings and checks, by patch:\n%s' "$warnings"
		echo "# $n patches in $((SECONDS - t0)) s; logs in out/patches-check/"
		echo "patches-check: $pass passed, $fail failed"
	} | tee "$logs/summary"
	[ "$fail" = 0 ]
}

# The series as scripts/series gives it: each patch's subject and the files it adds.
list() {
	local i p subject
	parse
	validate
	for i in "${!kind[@]}"; do
		if [ "${kind[i]}" = patch ]; then
			p=$(kernel_patches | grep "/${num[i]}-[^/]*\.patch$")
			subject="$(head -n 1 "$p") (scripts/kernel-patches/$(basename "$p"))"
		else
			subject=$(head -n 1 <<< "${msg[i]}")
		fi
		printf '%d %s\n' $((i + 1)) "$subject"
		entry_files "$i" | sed "s#^#\t#${msrc[i]:+; s#\t${msrc[i]}/#\t${mdst[i]}/#}"
	done
}

# The series is of the normal configuration (kernel.sh build-tree refuses another).
[ -z "${KCONFIG:-}" ] || die "the series is built with the normal configuration: unset KCONFIG"

case "${1:-}" in
	list) list ;;
	tree) with_cpu_lock; parse; validate; exec 8> "$SRC.lock"; flock 8; pristine; check_tree
		echo "$CHK" ;;
	patches) patches ;;
	check) check ;;
	*) die "usage: series.sh list|patches|check|tree" ;;
esac
