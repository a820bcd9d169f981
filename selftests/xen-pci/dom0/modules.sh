# SPDX-License-Identifier: GPL-2.0
#
# Group "modules": the Rust pciback module in dom0 — loading, unloading and the
# hide= parameter (good values, malformed values, devices that are absent at
# load time and appear later) — and the Rust pcifront, which only PV guests
# load.

KO=/lib/modules/$(uname -r)/kernel/drivers/pciback/pciback.ko
DRV=/sys/bus/pci/drivers/pciback

# The driver bound to a device, or nothing.
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
# (ktap_test_result splits its arguments on spaces: checks are functions.)
bound_to_pciback() { [ "$(driver_of "$BDF")" = pciback ]; }
unbound() { [ -z "$(driver_of "$BDF")" ]; }

FRONT_KO=/lib/modules/$(uname -r)/kernel/drivers/pcifront/pcifront.ko

# insmod of pcifront in dom0 must fail with ENODEV ("No such device").
pcifront_refused_in_dom0() {
	local out
	if out=$(insmod "$FRONT_KO" 2>&1); then
		rmmod pcifront
		echo "# pcifront loaded in dom0"
		return 1
	fi
	case "$out" in
		*"No such device"*) ;;
		*) echo "# insmod said: $out"; return 1 ;;
	esac
	! grep -q '^pcifront ' /proc/modules
}

bound_to_stub() { [ "$(driver_of "$BDF")" = pci-stub ]; }
stub_takes_device() {
	modprobe pci-stub &&
		echo "$(cat /sys/bus/pci/devices/$BDF/vendor) $(cat /sys/bus/pci/devices/$BDF/device)" |
		sed 's/0x//g' > /sys/bus/pci/drivers/pci-stub/new_id &&
		wait_for 5 bound_to_stub
}
unseized_logged() {
	klog | grep pciback | grep -F "$BDF not seized: it is bound to another driver" |
		grep -qF "write $BDF to /sys/bus/pci/drivers/pciback/bind" ||
		{ echo "# no such log line:"; klog | grep pciback | tail -3 | sed 's/^/#   /'; return 1; }
}
hand_over() {
	echo "$BDF" > /sys/bus/pci/drivers/pci-stub/unbind &&
		echo "$BDF" > "$DRV/bind" && bound_to_pciback
}

unload_pciback() { rmmod pciback 2>/dev/null; [ ! -d "$DRV" ]; }

# The parameters in /sys/module/pciback/parameters/: hide and passthrough
# readable (0444), permissive read-write (0644) as in C; verbose_request,
# dma_isolation and fast_path (Rust only) read-write.
PARAMS=/sys/module/pciback/parameters
param_is() {
	[ "$(stat -c %a "$PARAMS/$1" 2>/dev/null)" = "$2" ] && [ "$(cat "$PARAMS/$1")" = "$3" ] ||
		{ echo "# $1: mode $(stat -c %a "$PARAMS/$1" 2>&1), value '$(cat "$PARAMS/$1" 2>&1)'; want $2, '$3'"; return 1; }
}
params_shown() {
	param_is hide 444 "$1" && param_is passthrough 444 N && param_is permissive 644 N &&
		param_is verbose_request 644 N && param_is dma_isolation 644 Y && param_is fast_path 644 Y
}
permissive_toggles() {
	echo 1 > "$PARAMS/permissive" && param_is permissive 644 Y &&
		echo N > "$PARAMS/permissive" && param_is permissive 644 N
}
# fast_path (Rust only): switched at run time, a malformed value refused.
fast_path_switches() {
	echo 0 > "$PARAMS/fast_path" && param_is fast_path 644 N &&
		echo Y > "$PARAMS/fast_path" && param_is fast_path 644 Y &&
		if (echo maybe > "$PARAMS/fast_path") 2>/dev/null; then echo "# 'maybe' accepted"; false; else true; fi &&
		param_is fast_path 644 Y
}
permissive_bad_refused() {
	if (echo maybe > "$PARAMS/permissive") 2>/dev/null; then echo "# 'maybe' accepted"; return 1; fi
	param_is permissive 644 N
}
read_only_params() {
	local p
	for p in hide passthrough; do
		if (echo 1 > "$PARAMS/$p") 2>/dev/null; then echo "# $p written"; return 1; fi
	done
}

# insmod must fail with EINVAL and log a line naming the bad part.
check_bad_hide() {
	local value=$1 part=$2 out
	klog_mark
	if out=$(insmod "$KO" "hide=$value" 2>&1); then
		rmmod pciback
		echo "# hide=$value was accepted"
		return 1
	fi
	case "$out" in
		# kmod spells EINVAL from init_module as "Invalid parameters".
		*"Invalid argument"* | *"Invalid parameters"*) ;;
		*) echo "# hide=$value: insmod said: $out"; return 1 ;;
	esac
	if ! klog | grep "pciback" | grep -qF -- "$part"; then
		echo "# hide=$value: no log line naming '$part':"; klog | tail -3 | sed 's/^/#   /'
		return 1
	fi
	[ ! -d "$DRV" ]
}

group_modules() {
	local bad
	ktap_print_header
	# value|text the error message must quote
	bad='0000:06:01.0|0000:06:01.0
(0000:06:01.0|(0000:06:01.0
()|()
(10000:00:01.0)|10000
(0000:100:01.0)|100
(0000:00:20.0)|20
(0000:00:01.8)|8
(0000:00:01.0)junk|junk
(0000:00:01.0)(zz:00.0)|zz
(0000:0g:01.0)|0g'
	ktap_set_plan $((17 + $(echo "$bad" | wc -l)))

	ktap_test_result "rust pcifront refuses to load in dom0 (ENODEV)" pcifront_refused_in_dom0
	ktap_test_result "rust pciback loads without parameters" insmod "$KO"
	ktap_test_result "pciback driver directory exists" test -d "$DRV"
	ktap_test_result "rust pciback unloads" unload_pciback

	while IFS='|' read -r value part; do
		ktap_test_result "hide=$value is rejected with EINVAL and logged" check_bad_hide "$value" "$part"
	done <<< "$bad"

	ktap_test_result "hide= naming an absent device is accepted" insmod "$KO" "hide=(0000:ff:1f.7)"
	ktap_check "parameters in $PARAMS: hide, passthrough (0444), permissive, verbose_request, dma_isolation, fast_path (0644)" \
		params_shown "(0000:ff:1f.7)"
	ktap_check "permissive can be set and cleared at run time" permissive_toggles
	ktap_check "permissive 'maybe' is refused and changes nothing" permissive_bad_refused
	ktap_check "fast_path can be switched at run time; 'maybe' is refused and changes nothing" fast_path_switches
	ktap_check "hide and passthrough cannot be written" read_only_params
	unload_pciback

	# The device under test (the runner does not start this group without one).
	{
		local short=${BDF#0000:} drv
		drv=$(driver_of "$BDF")
		[ -n "$drv" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
		insmod "$KO" "hide=(${short%%.*}.*)"
		ktap_test_result "device under test seized at load (hide=(${short%%.*}.*))" bound_to_pciback
		unload_pciback
		ktap_test_result "device released at unload" unbound
		# Take the device away, load with it absent, bring it back.
		echo 1 > "/sys/bus/pci/devices/$BDF/remove"
		insmod "$KO" "hide=($BDF)"
		echo 1 > /sys/bus/pci/rescan
		ktap_test_result "device appearing after load is seized" wait_for 10 bound_to_pciback
		unload_pciback
		# Another host driver got the device first: the load says so and how
		# to hand the device over, and following that works.
		ktap_test_result "pci-stub takes the device" stub_takes_device
		klog_mark
		insmod "$KO" "hide=($BDF)"
		ktap_test_result "hide= device bound elsewhere stays there" bound_to_stub
		ktap_check "the load says it was not seized, and how to fix it" unseized_logged
		ktap_check "unbind from pci-stub, bind to pciback" hand_over
		unload_pciback
		rmmod pci-stub
	}
	ktap_finished
}
