# SPDX-License-Identifier: GPL-2.0
#
# Interrupts from the passed-through device reach an ordinary guest driver:
# xenpci_edu (selftests/xen-pci/edu) binds QEMU's edu device, takes one vector
# of the type given with irq_type=, raises EDU_RAISES interrupts and logs
#   xenpci_edu 0000:00:00.0: 5/5 interrupts via MSI (irq 58)
# (with the reason in the parentheses when fewer arrived). Its probe succeeds
# either way; only that line says whether interrupts arrived.
#
# Run when xenpci.irq=1 (dom0: IRQ=1), once per type, after the frontend found
# the device and before anything takes the device away: the driver is unloaded
# after each run.

EDU_RAISES=5
# The summary line of the last load (empty if there was none).
EDU_LINE=

edu_summaries() { dmesg | grep 'xenpci_edu .*interrupts via '; }

# Loads xenpci_edu with irq_type=$1 and checks that all raises arrived as $2
# (INTx or MSI), with a vector of that type.
edu_irq_run() {
	local type=$1 name=$2 n0 drv
	n0=$(edu_summaries | wc -l)
	EDU_LINE=
	insmod "$MODDIR/xenpci_edu.ko" "irq_type=$type" || { echo "# insmod xenpci_edu irq_type=$type failed"; return 1; }
	drv=$(basename "$(readlink "$GDEV/driver" 2>/dev/null)" 2>/dev/null)
	[ "$drv" = xenpci_edu ] || echo "# $GBDF is bound to '$drv', not xenpci_edu"
	if [ "$(edu_summaries | wc -l)" -gt "$n0" ]; then
		EDU_LINE=$(edu_summaries | tail -n 1)
		echo "# ${EDU_LINE#*] }"
	else
		echo "# xenpci_edu logged no summary line:"
		dmesg | grep -E 'xenpci_edu|Xen PCI|pcifront' | tail -n 10 | sed 's/^/#   /'
		return 1
	fi
	case "$EDU_LINE" in
		*": $EDU_RAISES/$EDU_RAISES interrupts via $name (irq "*) return 0 ;;
	esac
	dmesg | grep -E 'Xen PCI|pcifront|MSI|msi' | tail -n 10 | sed 's/^/#   /'
	return 1
}

edu_unload() { rmmod xenpci_edu && test ! -e "$GDEV/driver"; }

domU_irq_tests() {
	# Four results, whatever happens (guest_plan counts them).
	echo "# $GBDF: interrupt pin $(od -A n -t u1 -j 61 -N 1 "$GDEV/config" | tr -d ' '), line $(od -A n -t u1 -j 60 -N 1 "$GDEV/config" | tr -d ' ')"
	ktap_check "edu driver gets INTx interrupts" edu_irq_run intx INTx
	ktap_check "edu driver unloads after the INTx test" edu_unload
	ktap_check "edu driver gets MSI interrupts" edu_irq_run msi MSI
	ktap_check "edu driver unloads after the MSI test" edu_unload
}
