# SPDX-License-Identifier: GPL-2.0
#
# Group "rust-sysfs": the attributes of the Rust pciback driver in
# /sys/bus/pci/drivers/pciback/ (new_slot, remove_slot, slots, permissive,
# allow_interrupt_control, quirks), the generic
# bind/unbind and driver_override routes, and xl pci-assignable-add/-list/-remove,
# which drive them as libxl does. Malformed writes must fail with EINVAL, say
# why in the kernel log, and change nothing.
# (Uses driver_of, bound_to_pciback, unbound, unload_pciback, KO and DRV from
# modules.sh.)

# Writes $2 to attribute $1 of the driver; prints the shell's error, if any.
attr_write() { printf '%s\n' "$2" > "$DRV/$1"; }
slots() { cat "$DRV/slots"; }
slots_are() { [ "$(slots | tr '\n' ' ')" = "$*" ] || { echo "# slots: '$(slots | tr '\n' ' ')', want '$*'"; return 1; }; }
slots_empty() { slots_are ""; }
mode_is() { [ "$(stat -c %a "$DRV/$1")" = "$2" ] || { echo "# $1 has mode $(stat -c %a "$DRV/$1")"; return 1; }; }

# attr_refused ATTR VALUE ERRTEXT [LOGTEXT]: the write fails with ERRTEXT
# ("Invalid argument" for EINVAL), LOGTEXT (if given) appears in a pciback log
# line, and the seize list is unchanged.
attr_refused() {
	local attr=$1 value=$2 err=$3 logtext=${4:-} before out
	before=$(slots)
	klog_mark
	if out=$( (printf '%s\n' "$value" > "$DRV/$attr") 2>&1); then
		echo "# '$value' accepted by $attr"
		return 1
	fi
	case "$out" in
		*"$err"*) ;;
		*) echo "# $attr '$value': $out"; return 1 ;;
	esac
	if [ -n "$logtext" ] && ! klog | grep pciback | grep "$attr" | grep -qF -- "$logtext"; then
		echo "# $attr '$value': no log line naming '$logtext':"; klog | tail -3 | sed 's/^/#   /'
		return 1
	fi
	[ "$(slots)" = "$before" ] || { echo "# slots changed"; return 1; }
}

# A full page of slots ends between two lines.
slots_cut_at_line() {
	local n bytes
	n=$(slots | wc -l)
	bytes=$(slots | wc -c)
	[ "$n" -gt 300 ] && [ "$bytes" -lt 4096 ] && ! slots | grep -qvE '^0000:0[0-2]:[01][0-9a-f]\.[0-7]$' ||
		{ echo "# $n lines, $bytes bytes"; return 1; }
}

attr_is() { [ "$(cat "$DRV/$1")" = "$2" ] || { echo "# $1: '$(cat "$DRV/$1")', want '$2'"; return 1; }; }
quirks_has() { grep -qx "$1" "$DRV/quirks" || { echo "# no line '$1' in quirks:"; sed 's/^/#   /' "$DRV/quirks"; return 1; }; }

# The interrupts dom0 took on line $1 (all CPUs), from /proc/interrupts.
line_count() { awk -v irq="$1:" '$1 == irq { n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n }' /proc/interrupts; }

# The seized edu asserts INTx while no guest has it enabled (the handler is
# off): dom0 turns its memory decoding on and writes its interrupt-raise
# register (0x60), after which edu holds the line until its ack register
# (0x64) is written. The handler must mask the interrupt at the device (the
# Interrupt Disable bit of the Command register, with the Interrupt Status
# bit set), after a few interrupts rather than a storm that ends with the
# line disabled ("nobody cared", which the kernel log check fails on too),
# and say so once in the log. Then edu's interrupt is acknowledged and the
# Command register put back.
intx_masked_when_off() {
	local res=/sys/bus/pci/devices/$BDF/resource0 irq cmd0 before after cmd status ok=0
	irq=$(cat "/sys/bus/pci/devices/$BDF/irq")
	cmd0=$(setpci -s "$BDF" COMMAND)
	before=$(line_count "$irq")
	klog_mark
	setpci -s "$BDF" COMMAND=0002
	./mmio "$res" 0x60 1 || return 1
	sleep 1
	after=$(line_count "$irq")
	cmd=$(setpci -s "$BDF" COMMAND)
	status=$(setpci -s "$BDF" STATUS)
	echo "# line $irq: $((after - before)) interrupt(s); Command $cmd, Status $status"
	[ $((0x$cmd & 0x400)) != 0 ] && [ $((0x$status & 0x8)) != 0 ] &&
		[ $((after - before)) -ge 1 ] && [ $((after - before)) -lt 100 ] && ok=1
	./mmio "$res" 0x64 1
	setpci -s "$BDF" COMMAND="$cmd0"
	[ $ok = 1 ]
}
intx_mask_logged() {
	[ "$(klog | grep -c "pciback $BDF: INTx line [0-9]*: the device asserts INTx while no guest has it enabled: masked")" = 1 ] ||
		{ klog | grep pciback | tail -3 | sed 's/^/#   /'; return 1; }
}

# permissive, allow_interrupt_control and quirks on the seized device $BDF
# ($1: its address without the domain).
per_device_attributes() {
	local short=$1 a
	for a in permissive allow_interrupt_control; do
		ktap_check "$a is read-write (0644)" mode_is $a 644
		ktap_check "$a starts empty" attr_is $a ""
		ktap_check "$a 'junk' is refused with EINVAL and logged" \
			attr_refused $a junk "Invalid argument" junk
		ktap_check "$a 00:*.0 (a wildcard) is refused with EINVAL" \
			attr_refused $a "00:*.0" "Invalid argument"
		ktap_check "$a of a device not seized fails with ENODEV and is logged" \
			attr_refused $a 0000:00:1f.0 "No such device" "not seized"
		ktap_check "$a still empty after the refused writes" attr_is $a ""
		ktap_check "$a $short" attr_write $a "$short"
		ktap_check "$a lists $BDF" attr_is $a "$BDF"
	done
	ktap_check "quirks is read-write (0644)" mode_is quirks 644
	ktap_check "quirks lists the device with its IDs and fields" quirks_has "$short"
	ktap_check "quirks $short-80:4:ffff0000 adds a field" attr_write quirks "$short-80:4:ffff0000"
	ktap_check "quirks lists the new field" quirks_has "$(printf '\t\t00000080:4:ffff0000')"
	ktap_check "the same quirk again is refused with EEXIST" \
		attr_refused quirks "$short-80:4:ffff0000" "File exists" "80"
	ktap_check "a quirk over the Command register is refused with EEXIST" \
		attr_refused quirks "$short-4:2:ffff" "File exists"
	ktap_check "a quirk of size 3 is refused with EINVAL and logged" \
		attr_refused quirks "$short-84:3:ff" "Invalid argument" "3"
	ktap_check "a quirk mask wider than its size is refused with EINVAL" \
		attr_refused quirks "$short-88:1:1ff" "Invalid argument"
	ktap_check "a quirk for a device not seized fails with ENODEV" \
		attr_refused quirks "00:1f.0-80:4:0" "No such device" "not seized"
	# Spelled as C's sscanf("%x") also reads it: 0x prefixes, a blank before a number.
	ktap_check "quirks 0x$short-0x8c: 0x2:0xffff (C's spellings) adds a field" \
		attr_write quirks "0x$short-0x8c: 0x2:0xffff"
	ktap_check "quirks lists it" quirks_has "$(printf '\t\t0000008c:2:0000ffff')"
	ktap_check "irq_handlers is read-only (0444)" mode_is irq_handlers 444
	ktap_check "irq_handler_state is write-only (0200)" mode_is irq_handler_state 200
	ktap_check "irq_handlers: the INTx handler is off, acking, 0 interrupts" \
		attr_is irq_handlers "$BDF:off:acking:0"
	ktap_check "irq_handler_state $short toggles it on" attr_write irq_handler_state "$short"
	ktap_check "irq_handlers: on" attr_is irq_handlers "$BDF:on:acking:0"
	ktap_check "irq_handler_state again toggles it off" attr_write irq_handler_state "$BDF"
	ktap_check "irq_handlers: off" attr_is irq_handlers "$BDF:off:acking:0"
	ktap_check "INTx asserted while the handler is off: masked at the device, no storm" \
		intx_masked_when_off
	ktap_check "the mask is logged once" intx_mask_logged
	ktap_check "irq_handlers: still off, acking, 0 interrupts" attr_is irq_handlers "$BDF:off:acking:0"
	ktap_check "irq_handler_state 'junk' is refused with EINVAL and logged" \
		attr_refused irq_handler_state junk "Invalid argument" junk
	ktap_check "irq_handler_state of a device not seized fails with ENODEV" \
		attr_refused irq_handler_state 0000:00:1f.0 "No such device" "not seized"
	ktap_check "resets is read-only (0444)" mode_is resets 444
	ktap_check "resets: the device's methods, the seize's reset ($(reset_noted)), none since" \
		resets_is "$(reset_noted)" - - yes
	ktap_check "do_flr is write-only (0200)" mode_is do_flr 200
	ktap_check "do_flr 'junk' is refused with EINVAL and logged" \
		attr_refused do_flr junk "Invalid argument" junk
	ktap_check "do_flr of a device not seized fails with ENODEV" \
		attr_refused do_flr 0000:00:1f.0 "No such device" "not seized"
	# The kernel lists a device's reset methods in reset_method, when it has any.
	if [ -e "/sys/bus/pci/devices/$BDF/reset_method" ]; then
		ktap_check "do_flr $short resets it ($(cat "/sys/bus/pci/devices/$BDF/reset_method"))" \
			doflr_ok "$short"
	else
		ktap_check "do_flr $short: no reset method, refused with ENOTTY and logged" \
			attr_refused do_flr "$short" "Inappropriate ioctl" "no reset method"
	fi
	ktap_check "resets: the do_flr's reset ($(reset_noted root-bus))" \
		resets_is "$(reset_noted)" - "$(reset_noted root-bus)" yes
}
# The device's reset methods as resets lists them: its reset_method file with
# commas, or none.
reset_methods_of() { tr ' ' ',' < "/sys/bus/pci/devices/$BDF/reset_method" 2>/dev/null || echo none; }
# What resets says of a reset of $BDF: its first method and ok, or, without a
# method, none, with the reason no bus reset was done ($1: lab devices without
# a method, edu, are on the root bus) when one was tried (not at the seize).
reset_noted() {
	local m
	m=$(reset_methods_of)
	if [ "$m" = none ]; then echo "none${1:+:$1}"; else echo "${m%%,*}:ok"; fi
}
# resets_is SEIZE RELEASE DO_FLR ASSIGNABLE: $BDF's line of resets.
resets_is() {
	local want line
	want="$BDF methods=$(reset_methods_of) seize=$1 release=$2 do_flr=$3 assignable=$4"
	line=$(grep "^$BDF " "$DRV/resets")
	[ "$line" = "$want" ] || { echo "# resets: '$line', want '$want'"; return 1; }
}
doflr_ok() { klog_mark; attr_write do_flr "$1" && klog | grep -q "pciback $BDF: do_flr: reset$"; }

bind_refused() { ! (echo "$BDF" > "$DRV/bind") 2>/dev/null; }
set_override() { echo "$1" > "/sys/bus/pci/devices/$BDF/driver_override"; }
probe_device() { echo "$BDF" > /sys/bus/pci/drivers_probe; }
assignable_listed() { xl pci-assignable-list | grep -q "^$BDF"; }

group_rust_sysfs() {
	local bad v short
	ktap_print_header
	short=${BDF#0000:}
	# value|text the log line must quote
	bad='junk|junk
0000:100:00.0|100
00:20.0|20
00:01.8|8
00:*.0|00:*.0
0000:00:01.0 x|x
10000:00:01.0|10000
(00:01.0)|('
	# 86 results, one for each bad value, and 46 in per_device_attributes.
	ktap_set_plan $((86 + $(echo "$bad" | wc -l)))

	[ -n "$(driver_of "$BDF")" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
	ktap_check "rust pciback loads without hide=" insmod "$KO"
	ktap_check "new_slot is write-only (0200)" mode_is new_slot 200
	ktap_check "remove_slot is write-only (0200)" mode_is remove_slot 200
	ktap_check "slots is read-only (0444)" mode_is slots 444
	ktap_check "slots starts empty" slots_empty
	while IFS='|' read -r v part; do
		ktap_check "new_slot '$v' is refused with EINVAL and logged" \
			attr_refused new_slot "$v" "Invalid argument" "$part"
	done <<< "$bad"
	ktap_check "new_slot '' is refused with EINVAL" attr_refused new_slot "" "Invalid argument"
	ktap_check "remove_slot 'junk' is refused with EINVAL and logged" \
		attr_refused remove_slot junk "Invalid argument" junk
	ktap_check "remove_slot of an unlisted address fails with ENOENT" \
		attr_refused remove_slot 0000:00:01.0 "No such file or directory"

	ktap_check "new_slot $BDF lists it" attr_write new_slot "$BDF"
	ktap_check "slots shows it" slots_are "$BDF "
	ktap_check "new_slot is idempotent" attr_write new_slot "$short"
	ktap_check "slots shows it once" slots_are "$BDF "
	ktap_check "new_slot does not bind" unbound
	ktap_check "new_slot 00:1f.* (no domain, function wildcard)" attr_write new_slot "00:1f.*"
	ktap_check "slots shows the 8 functions" slots_are "$BDF $(for f in 0 1 2 3 4 5 6 7; do printf '0000:00:1f.%s ' $f; done)"
	ktap_check "remove_slot 0000:00:1f.* removes them" attr_write remove_slot "0000:00:1f.*"
	ktap_check "slots shows the device alone again" slots_are "$BDF "
	attr_write new_slot "0000:01:*.*"; attr_write new_slot "0000:02:*.*"
	ktap_check "slots with 513 entries is cut at a line boundary" slots_cut_at_line
	attr_write remove_slot "0000:01:*.*"; attr_write remove_slot "0000:02:*.*"
	ktap_check "remove_slot of two buses leaves the device" slots_are "$BDF "

	ktap_check "bind seizes the listed device" attr_write bind "$BDF"
	ktap_check "device bound to pciback" bound_to_pciback
	per_device_attributes "$short"
	ktap_check "unbind releases it" attr_write unbind "$BDF"
	ktap_check "device unbound" unbound
	ktap_check "remove_slot $BDF" attr_write remove_slot "$BDF"
	ktap_check "slots empty" slots_empty
	ktap_check "bind of an unlisted device is refused" bind_refused
	ktap_check "device still unbound" unbound

	ktap_check "driver_override=pciback" set_override pciback
	ktap_check "drivers_probe seizes the device" probe_device
	ktap_check "device bound to pciback through driver_override" bound_to_pciback
	ktap_check "slots lists the overridden device" slots_are "$BDF "
	attr_write unbind "$BDF"; set_override ""; attr_write remove_slot "$BDF"
	ktap_check "driver_override cleared, device unbound" unbound

	ktap_check "xl pci-assignable-add $BDF" timeout 60 xl pci-assignable-add "$BDF"
	ktap_check "device bound to pciback by libxl (new_slot + bind)" bound_to_pciback
	ktap_check "slots lists it" slots_are "$BDF "
	ktap_check "xl pci-assignable-list shows it" assignable_listed
	ktap_check "xl pci-assignable-remove $BDF" timeout 60 xl pci-assignable-remove "$BDF"
	ktap_check "device unbound by libxl" unbound
	ktap_check "slots empty after libxl's remove_slot" slots_empty

	ktap_check "rust pciback unloads" unload_pciback
	ktap_finished
}
