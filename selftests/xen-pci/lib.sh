# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the dom0 and domU test scripts (bash and busybox sh).

# Value of xenpci.NAME=VALUE on the kernel command line, or $2.
cmdline_arg() {
	v=$(tr ' ' '\n' < /proc/cmdline | sed -n "s/^xenpci\.$1=//p" | tail -n 1)
	echo "${v:-$2}"
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Poll a command until it succeeds or $1 seconds pass.
wait_for() {
	local secs=$1 i=0
	shift
	while [ "$i" -lt $((secs * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# ktap_test_result with the command's arguments passed on intact (the kselftest
# helper splits them on spaces and expands globs).
ktap_check() {
	local desc=$1
	shift
	if "$@"; then ktap_test_pass "$desc"; else ktap_test_fail "$desc"; fi
}
