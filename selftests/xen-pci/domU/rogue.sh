# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the hostile groups (dom0/hostile.sh), xenpci.front=rogue: no
# pcifront is loaded; roguefront (roguefront.c) is the frontend, from user
# space. xenpci.rogue=ops: bad requests and event storms (phase 1), then it
# floods the backend with requests it never waits for until dom0 destroys the
# guest in the middle of one. xenpci.rogue=states: its xenbus state set to
# garbage and back.

ROGUE_OUT=/tmp/rogue.out
ROGUE_GO=/tmp/rogue-storm

rogue_load_mods() {
	insmod "$MODDIR/xen-evtchn.ko" && insmod "$MODDIR/xen-gntalloc.ko" &&
		wait_for 10 test -c /dev/xen/evtchn -a -c /dev/xen/gntalloc
}

rogue_done() { grep -q '^XENPCI-ROGUE-CASES-DONE' "$ROGUE_OUT" || ! kill -0 "$ROGUE_PID" 2>/dev/null; }

domU_rogue_tests() {
	ktap_test_result "evtchn and gntalloc drivers load" rogue_load_mods
	rm -f "$ROGUE_OUT" "$ROGUE_GO"
	roguefront "$(cmdline_arg vendor 0)" "$(cmdline_arg back rust)" "$(cmdline_arg rogue ops)" "$ROGUE_GO" > "$ROGUE_OUT" 2>&1 &
	ROGUE_PID=$!
	wait_for 600 rogue_done
	grep -q '^XENPCI-ROGUE-CASES-DONE' "$ROGUE_OUT" ||
		echo "# roguefront did not finish its cases (exited or hung)"
	while IFS= read -r line; do
		case "$line" in
			"ok "*"# SKIP "*) desc=${line#ok }; ktap_test_skip "rogue: ${desc%% # SKIP *} (${desc##* # SKIP })" ;;
			"ok "*) ktap_test_pass "rogue: ${line#ok }" ;;
			"not ok "*) ktap_test_fail "rogue: ${line#not ok }" ;;
			"#"*) echo "$line" ;;
			*) echo "# $line" ;;
		esac
	done < "$ROGUE_OUT"
}

# Starts the storm the guest dies in; tells dom0 through data/xenpci/storm.
domU_rogue_die() {
	touch "$ROGUE_GO"
	sleep 1
	if kill -0 "$ROGUE_PID" 2>/dev/null; then
		xenstore-write "$XS/storm" 1 2>/dev/null
	else
		xenstore-write "$XS/storm" 0 2>/dev/null
	fi
	echo "XENPCI-DOMU-STORM"
}
