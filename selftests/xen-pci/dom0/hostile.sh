# SPDX-License-Identifier: GPL-2.0
#
# Hostile groups: PV guests get the device by xl (pci=[...]) but run no
# pcifront; roguefront (roguefront.c, domU/rogue.sh) connects from user space.
# The first guest sets its xenbus state to garbage and back; the second sends
# bad commands, sizes, offsets and addresses, writes protected fields, storms
# the event channel, asks for MSI and MSI-X, and finally floods requests it
# never waits for while dom0 destroys it; three more set their connection up
# with a bad magic, grant reference or event channel. Before them all, a
# guest runs seeded random actions for a few minutes (roguefront's random
# mode; the seed is printed, and xenpci.seed= and xenpci.secs= on dom0's
# command line, DOM0_EXTRA of scripts/run-xen.sh, repeat or lengthen the run:
# whole seconds, within the group's deadline);
# the device must then still serve the guests after it. The backend must refuse
# those (never Connected, an error in xenstore, no request served), answer
# every request with an error code, keep serving (or close cleanly on a garbage
# state), keep the hardware's protected fields, stay responsive, let each guest
# die without a hang or a leak (its backend device and the dying domain go).
# (The harness scans dom0's kernel log and the guests' consoles after the group.)
#
# Uses the helpers of passthrough.sh (backend_load, write_guest_cfg,
# hw_snapshot, protected_checks, collect_phase, emit_guest_lines, ...) and
# modules.sh (bound_to_pciback).

# The guest's data/xenpci/$2 is $3.
guest_node_is() { [ "$(guest_count "$1" "$2")" = "$3" ]; }

# dom0 answers promptly while the guest storms.
dom0_responsive() {
	local t0=$SECONDS
	timeout 20 xl list >/dev/null && timeout 20 xenstore-read /local/domain/0/name >/dev/null &&
		timeout 20 lspci -s "$BDF" >/dev/null || return 1
	echo "# xl list, xenstore-read and lspci took $((SECONDS - t0)) s during the storm"
}

# No domain with this id remains, dying ones included (a dying domain stays
# while dom0 still maps one of its grants).
# xl list must work (and list Domain-0): a failing xl list proves nothing.
domain_freed() {
	local out rc
	out=$(timeout 20 xl list 2>&1)
	rc=$?
	if [ "$rc" != 0 ] || ! echo "$out" | awk 'NR > 1 { print $2 }' | grep -qx 0; then
		echo "# xl list failed (exit status $rc): $(echo "$out" | head -n 3 | tr '\n' ' ')"
		return 1
	fi
	! echo "$out" | awk 'NR > 1 { print $2 }' | grep -qx "$1"
}

# A command that may hang in the kernel, with a bounded wait (timeout(1)
# cannot kill a process stuck in D state).
bounded() {
	local secs=$1 rc=/tmp/bounded.rc
	shift
	rm -f "$rc"
	( "$@"; echo $? > "$rc.tmp"; mv "$rc.tmp" "$rc" ) &
	wait_for "$secs" test -e "$rc" || { echo "# '$*' still running after $secs s"; return 1; }
	[ "$(cat "$rc")" = 0 ]
}

# Starts a rogue guest (xenpci.rogue=$2, more guest arguments in $3) with the device and re-emits its
# phase-1 results, exactly 1 + $(rogue_results), padded with failures;
# sets ROGUE_DID. The previous guest's console log is kept (the harness scans
# them all).
rogue_guest() {
	local back=$1 mode=$2 n
	n=$(rogue_results "$back" "$mode") || n=0
	mv -f "$GUEST_LOG" "$GUEST_LOG.$(date +%s%N)" 2>/dev/null
	write_guest_cfg rogue 0
	sed -i "s/^extra = \"/extra = \"xenpci.rogue=$mode ${3:-}/" /tmp/$GUEST.cfg
	echo "pci = [ '$BDF' ]" >> /tmp/$GUEST.cfg
	ktap_check "$mode guest: xl create with pci=[...], no pcifront in the guest" \
		timeout 120 xl create /tmp/$GUEST.cfg
	find_guest
	ROGUE_DID=$GUEST_DID
	guest_phase1 "$ROGUE_DID" $((600 + ${ROGUE_SECS:-0})) "$mode guest reported its cases" "$n"
}

# Destroys the rogue guest; its backend device and the domain must go.
rogue_destroy() {
	local mode=$1 did=$ROGUE_DID
	ktap_check "$mode guest destroyed" destroy_guest "$GUEST"
	stop_guest_console
	ktap_check "$mode guest gone" wait_secs 20 guest_gone
	if wait_secs 30 be_gone "$did"; then
		ktap_test_pass "$mode guest: backend device pci-$did-0 gone"
	else
		ktap_test_fail "$mode guest: backend device pci-$did-0 gone"
		echo "# backend devices: $(ls /sys/bus/xen-backend/devices/ | tr '\n' ' ')"
		timeout 10 xenstore-ls -f "/local/domain/0/backend/pci/$did" 2>&1 | head -n 30 | sed 's/^/# /'
	fi
	if wait_secs 30 domain_freed "$did"; then
		ktap_test_pass "$mode guest: no dying domain left (no grant mapping leaked)"
	else
		ktap_test_fail "$mode guest: no dying domain left (no grant mapping leaked)"
		domain_freed "$did"
	fi
}

hw_byte() { od -A n -t u1 -j "$1" -N 1 "/sys/bus/pci/devices/$BDF/config" | tr -d ' '; }
# The MSI Enable bit of the device's MSI capability is clear.
msi_off_hw() {
	local ptr n=0 ctl
	ptr=$(hw_byte 52)
	while [ "${ptr:-0}" -ne 0 ] && [ $n -lt 48 ]; do
		if [ "$(hw_byte "$ptr")" = 5 ]; then
			ctl=$(hw_byte $((ptr + 2)))
			[ $((ctl & 1)) = 0 ] || { echo "# MSI control 0x$(printf %x "$ctl")"; return 1; }
			return 0
		fi
		ptr=$(hw_byte $((ptr + 1)))
		n=$((n + 1))
	done
	echo "# no MSI capability found"
	return 1
}

# The results a rogue guest reports in mode $2 against backend $1: the
# evtchn/gntalloc load, then roguefront's (it counts them without running).
rogue_results() {
	local n
	n=$(./roguefront plan "$2" "$1") && [ -n "$n" ] || return 1
	echo $((1 + n))
}

ROGUE_MODES="random states ops setup-magic setup-gref setup-port"

# The number of results hostile_test $1 prints, from what it runs: keep in
# step with hostile_test below.
hostile_plan() {
	local back=$1 n mode g
	n=2			# backend loads, xl pci-assignable-add
	for mode in $ROGUE_MODES; do
		g=$(rogue_results "$back" "$mode") || return 1
		# rogue_guest: xl create, "reported its cases", the guest's
		# results; rogue_destroy: 4.
		n=$((n + 1 + 1 + g + 4))
		case $mode in
			ops) n=$((n + 3 + 1 + 1 + 1)) ;;	# protected_checks, storm, responsive, MSI off
			random) n=$((n + 3 + 1)) ;;		# protected_checks, MSI off
			setup-*) n=$((n + 1)) ;;		# the backend's error node
		esac
	done
	echo $((n + 3))		# still bound, pci-assignable-remove, unload
}

hostile_test() {
	local back=$1 hw_before
	ktap_print_header
	KSFT_NUM_TESTS=$(hostile_plan "$back") ||
		ktap_exit_fail_msg "no plan: ./roguefront plan failed"
	ktap_set_plan "$KSFT_NUM_TESTS"

	# The random guest's seed (dom0's xenpci.seed, or a new one) and duration.
	ROGUE_SEED=$(cmdline_arg seed "")
	[ -n "$ROGUE_SEED" ] || ROGUE_SEED=$(od -A n -N 4 -t u4 /dev/urandom | tr -d ' ')
	ROGUE_SECS=$(cmdline_arg secs 180)

	ktap_check "$back backend loads" backend_load "$back"
	ktap_check "xl pci-assignable-add $BDF" timeout 60 xl pci-assignable-add "$BDF"
	hw_before=$(hw_snapshot)

	# Guest 1: random actions for $ROGUE_SECS s; the hardware's protected
	# fields kept, the MSI it may have left on turned off, and the device
	# serves the next guest (its first read of the vendor ID).
	echo "# random guest: seed $ROGUE_SEED, $ROGUE_SECS s (xenpci.seed=$ROGUE_SEED xenpci.secs=$ROGUE_SECS on dom0's command line repeat it)"
	rogue_guest "$back" random "xenpci.seed=$ROGUE_SEED xenpci.secs=$ROGUE_SECS "
	protected_checks "$hw_before"
	rogue_destroy random
	ktap_check "MSI the random guest may have left on is off in the hardware" msi_off_hw

	# Guest 2: garbage xenbus states (a backend may close on them).
	rogue_guest "$back" states
	rogue_destroy states

	# Guest 3: bad requests and storms (phase 1), protected fields...
	rogue_guest "$back" ops
	protected_checks "$hw_before"
	# ... then requests flagged and notified without waiting; the guest
	# dies in the middle of them.
	# (storm is 0 when roguefront is no longer running: no need to wait.)
	wait_secs 60 guest_count "$ROGUE_DID" storm
	ktap_check "guest storms with requests it does not wait for" guest_node_is "$ROGUE_DID" storm 1
	sleep 3
	ktap_check "dom0 responsive during the storm" dom0_responsive
	rogue_destroy ops
	ktap_check "MSI the dead guest left on is off in the hardware" msi_off_hw

	# Guests 4 to 6: a connection set up with a bad magic, grant reference
	# or event channel; the backend refuses it and says why (for the magic,
	# in the words both backends use, not overwritten by a later error).
	local why
	for kind in magic gref port; do
		rogue_guest "$back" "setup-$kind"
		why=; [ "$kind" = magic ] && why="version mismatch"
		ktap_check "setup-$kind: the backend wrote its error to xenstore${why:+ ($why)}" \
			be_error "$GUEST" "$why"
		rogue_destroy "setup-$kind"
	done

	ktap_check "device still bound to pciback" bound_to_pciback
	ktap_check "xl pci-assignable-remove $BDF" timeout 60 xl pci-assignable-remove -r "$BDF"
	ktap_check "$back backend unloads (no leak, no hang)" bounded 60 backend_unload "$back"
	ktap_finished
}

# The Rust backend; and the C backend for comparison (documented differences
# are recorded, not failed: see Documentation/status.rst).
group_rust_hostile() { hostile_test rust; }
group_c_hostile() { hostile_test c; }
