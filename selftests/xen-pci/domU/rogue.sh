# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the hostile groups (dom0/hostile.sh), xenpci.front=rogue: no
# pcifront is loaded; roguefront (roguefront.c) is the frontend, from user
# space. xenpci.rogue=ops: bad requests and event storms (phase 1), then it
# floods the backend with requests it never waits for until dom0 destroys the
# guest in the middle of one. xenpci.rogue=states: its xenbus state set to
# garbage and back; xenpci.rogue=setup-magic, -gref, -port: a connection set
# up wrong; xenpci.rogue=random: seeded random actions for xenpci.secs
# seconds (xenpci.seed; see roguefront.c). The guest reports exactly 1 + N results, N being what
# "roguefront plan MODE BACKEND" says (dom0's plan counts them the same way).

ROGUE_OUT=/tmp/rogue.out
ROGUE_GO=/tmp/rogue-storm

rogue_load_mods() {
	insmod "$MODDIR/xen-evtchn.ko" && insmod "$MODDIR/xen-gntalloc.ko" &&
		wait_for 10 test -c /dev/xen/evtchn -a -c /dev/xen/gntalloc
}

rogue_done() { grep -q '^XENPCI-ROGUE-CASES-DONE' "$ROGUE_OUT" || ! kill -0 "$ROGUE_PID" 2>/dev/null; }

# Relays exactly $1 of roguefront's results (the plan): missing ones (it died
# or hung) are failures; if it printed more, the last relayed one fails and
# says so.
rogue_relay() {
	local plan=$1 total k=0 line desc
	total=$(grep -cE '^(not )?ok ' "$ROGUE_OUT")
	[ "$total" = "$plan" ] || echo "# roguefront printed $total results, its plan says $plan"
	while IFS= read -r line; do
		case "$line" in
			"ok "*|"not ok "*)
				k=$((k + 1))
				if [ "$k" -gt "$plan" ]; then
					echo "# $line"; continue
				elif [ "$k" = "$plan" ] && [ "$total" -gt "$plan" ]; then
					echo "# $line"
					ktap_test_fail "rogue: roguefront printed $total results, more than its plan ($plan)"
					continue
				fi ;;
		esac
		case "$line" in
			"ok "*"# SKIP "*) desc=${line#ok }; ktap_test_skip "rogue: ${desc%% # SKIP *} (${desc##* # SKIP })" ;;
			"ok "*) ktap_test_pass "rogue: ${line#ok }" ;;
			"not ok "*) ktap_test_fail "rogue: ${line#not ok }" ;;
			"#"*) echo "$line" ;;
			*) echo "# $line" ;;
		esac
	done < "$ROGUE_OUT"
	while [ "$k" -lt "$plan" ]; do
		k=$((k + 1))
		ktap_test_fail "rogue: roguefront result $k missing"
	done
}

# 1 + N results, N from "roguefront plan" (dom0 counts the same way).
domU_rogue_tests() {
	local mode back plan
	mode=$(cmdline_arg rogue ops)
	back=$(cmdline_arg back rust)
	ktap_test_result "evtchn and gntalloc drivers load" rogue_load_mods
	if ! plan=$(roguefront plan "$mode" "$back"); then
		ktap_test_fail "rogue: roguefront has a plan for mode $mode"
		return
	fi
	rm -f "$ROGUE_OUT" "$ROGUE_GO"
	ROGUE_SEED=$(cmdline_arg seed 1) ROGUE_SECS=$(cmdline_arg secs 180) \
		roguefront "$(cmdline_arg vendor 0)" "$back" "$mode" "$ROGUE_GO" > "$ROGUE_OUT" 2>&1 &
	ROGUE_PID=$!
	wait_for $((600 + $(cmdline_arg secs 0))) rogue_done
	grep -q '^XENPCI-ROGUE-CASES-DONE' "$ROGUE_OUT" ||
		echo "# roguefront did not finish its cases (exited or hung)"
	rogue_relay "$plan"
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
