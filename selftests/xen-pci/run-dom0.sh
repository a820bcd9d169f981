#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The dom0 side of the Xen tests. Starts the Xen daemons, then runs each group
# of the plan (xenpci.plan=a+b+... on the kernel command line: QEMU reserves commas). Every group is
# a KTAP document of its own between XENPCI-GROUP-BEGIN/END markers, which the
# host runner (scripts/run-xen.sh) collects.
cd "$(dirname "$0")"
. ./lib.sh
. ./ktap_helpers.sh
for f in dom0/*.sh; do . "$f"; done

log() { echo "dom0[$(uptime_s)]: $*"; }

start_xen() {
	local m
	for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd; do
		modprobe "$m" || log "modprobe $m failed"
	done
	mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen
	xenstored --pid-file /run/xenstored.pid || return 1
	wait_for 10 xenstore-read /local/domain/0/domid || wait_for 10 xenstore-ls / || return 1
	xen-init-dom0 >/dev/null || return 1
	xenconsoled --pid-file /run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || return 1
	log "xen daemons up"
}

if ! start_xen; then
	echo "XENPCI-LAB-FAILURE: the Xen daemons did not start"
	exit 1
fi

# The device under test (QEMU's edu unless the host runner says otherwise).
DEV_ID=$(cmdline_arg dev 1234:11e8)
BDF=$(lspci -D -n -d "$DEV_ID" | awk 'NR == 1 { print $1 }')
log "device under test: ${BDF:-none} ($DEV_ID)"
log "virt_caps: $(xl info | sed -n 's/^virt_caps *: //p')"
export BDF DEV_ID

rc=0
for group in $(cmdline_arg plan modules+c-xl | tr '+,' '  '); do
	fn=group_$(echo "$group" | tr '-' '_')
	echo "XENPCI-GROUP-BEGIN $group"
	if ! type "$fn" >/dev/null 2>&1; then
		ktap_print_header; ktap_skip_all "no test group named $group"
		grc=1
	else
		( "$fn" )
		grc=$?
	fi
	echo "XENPCI-GROUP-END $group rc=$grc"
	[ "$grc" = 0 ] || rc=1
done
exit $rc
