# SPDX-License-Identifier: GPL-2.0
#
# Xen PCI passthrough for PV guests, as Rust-for-Linux drivers.
#
#   make run     install what is needed, build the kernel and images, boot Xen
#                under QEMU with a PV guest that gets a device passed through
#   make test    the same build, then every test: host (cargo test) and Xen
#                (module, passthrough and guest selftests); ends "N passed, N failed"
#
#   make test KCONFIG=debug   the same on the debug kernel (scripts/xenpci-debug.config:
#                lockdep, kmemleak, KFENCE, SLUB debug, debug objects), its tree and images apart
#
#   make patches        the project in upstream form: out/patches/, a `git format-patch`
#                series against the pristine Linux tree, one logical change per patch
#                (scripts/series orders them and says which files each adds)
#   make patches-check  applies that series to a pristine tree one patch at a time, builds
#                the kernel after each and runs checkpatch.pl --strict on it; ends
#                "patches-check: N passed, N failed". Builds ~20 times: not part of make test
#
# Builds are cached outside the repository in $(XENPCI_CACHE) (default
# /var/cache/xenpci); see Documentation/dev-guide.rst.

SHELL := /bin/bash
# The test plan: empty for every group of selftests/xen-pci/groups.conf but the
# demo, the benchmarks, the C reference groups and the harness's self-tests;
# or a comma-separated list.
PLAN ?=
DEMO_PLAN ?= demo
BENCH_MORE := bench-alt,bench-two-c,bench-two-rust,bench-two-rustback-cfront,bench-scan-c,bench-scan-rust,bench-scan-rustback-cfront,bench-scan-cback-rustfront
BENCH_PLAN ?= bench-c,bench-rust,bench-rustback-cfront,bench-cback-rustfront,$(BENCH_MORE)

.PHONY: all setup kernel images hosttest xentest test test-harness run bench reference fuzz modules-ext \
	patches patches-check clean

all: images

setup:
	scripts/setup.sh

kernel: setup
	scripts/kernel.sh build

images: kernel
	scripts/images.sh all

hosttest:
	scripts/test.sh host

xentest: images
	PLAN=$(PLAN) scripts/run-xen.sh

test: setup
	PLAN=$(PLAN) scripts/test.sh all

# The harness's own test alone (make test runs it too): broken groups must fail.
test-harness: images
	scripts/harness-test.sh

run: images
	PLAN=$(DEMO_PLAN) SHOW_GUEST=1 scripts/run-xen.sh

# Config-space reads and writes through each pairing of the two backends and
# the two frontends, in one boot: ops/s, latency percentiles and CPU per op,
# then their table (scripts/bench-table.py, from the boot's log). Not a test.
bench: images
	PLAN=$(BENCH_PLAN) scripts/run-xen.sh; rc=$$?; python3 scripts/bench-table.py; exit $$rc

# The C drivers alone (xen-pciback with xen-pcifront, against hostile guests,
# and their PCIe AER recovery with the lab devices): what the project's
# documented differences from C are measured against. Results about C, not about this project: not part of make test.
reference: images
	PLAN=$$(. scripts/lib.sh && default_plan 'reference|ref-devices') scripts/run-xen.sh

# cargo fuzz of the shared code (drivers/xenpci_common/), a fixed budget of
# executions per target, about 11 minutes; ends "fuzz: N passed, N failed". Not
# part of make test (whose cargo test replays the committed corpus, fuzz/corpus/).
# FUZZ_UPDATE_CORPUS=1 minimises what the run found back into fuzz/corpus/.
fuzz:
	scripts/fuzz.sh

# The upstream-form series (scripts/series.sh; Documentation/dev-guide.rst, "The
# series in upstream form"). patches-check's tree starts as a copy of the kernel
# tree make kernel built (else from the archive, a full build more).
patches: setup
	scripts/series.sh patches

patches-check: setup
	scripts/series.sh check

# The two drivers built out of tree (M=) against the cached kernel tree, into
# this directory: a quick compile check that leaves the cached tree alone.
modules-ext:
	flock /var/lock/xenpci-cpu.lock $(MAKE) -C "$$(scripts/kernel.sh tree)" RUSTC=/usr/bin/rustc \
		BINDGEN=$$HOME/.cargo/bin/bindgen M=$(CURDIR) modules

clean:
	rm -rf out target Module.symvers modules.order .module-common.o .*.cmd
	find drivers \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
		-o -name '.*.cmd' -o -name 'modules.order' \) -delete
