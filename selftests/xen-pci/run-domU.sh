#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of the passthrough tests. Results are KTAP lines, printed on
# the console and also stored under the guest's own xenstore directory
# (data/xenpci/tap/N, with data/xenpci/phaseN = number of lines so far) so that
# dom0 gets them even when the console stream is lost.
. ./lib.sh
. ./ktap_helpers.sh

XS=data/xenpci
N=0
# Wrap the KTAP printer: every result line also goes to xenstore.
__ktap_test() {
	result="$1"; description="$2"; directive="${3:-}"
	line="$result $KTAP_TESTNO $description${directive:+ # $directive}"
	echo "$line"
	N=$((N + 1))
	xenstore-write "$XS/tap/$N" "$line" 2>/dev/null
	KTAP_TESTNO=$((KTAP_TESTNO + 1))
}
end_phase() {
	xenstore-write "$XS/phase$1" "$N" 2>/dev/null
	echo "XENPCI-DOMU-PHASE$1"
}

echo "XENPCI-DOMU-START kernel $(uname -r) uptime $(uptime_s)"
ktap_print_header
for f in domU/*.sh; do . "$f"; done
if [ "$FRONT" = rogue ]; then
	# The hostile groups: a user-space frontend, then death mid-request.
	domU_rogue_tests
	end_phase 1
	domU_rogue_die
	ktap_print_totals
	exit 0
fi
domU_device_tests
end_phase 1
if [ "$(cmdline_arg detach 0)" = 1 ]; then
	domU_detach_tests
	end_phase 2
fi
domU_bench
ktap_print_totals
