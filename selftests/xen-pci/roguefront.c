// SPDX-License-Identifier: GPL-2.0
/*
 * roguefront: a hostile (or buggy) PCI frontend, in user space, for the
 * rust-hostile and c-hostile groups. Runs in a PV guest that has no pcifront
 * loaded.
 *
 *   roguefront VENDOR BACKEND MODE GOFILE
 *   roguefront plan MODE BACKEND
 *
 * VENDOR is the device's vendor ID as dom0 sees it (0x1234), BACKEND is "rust"
 * or "c" (the C backend's answers are checked too; where its documented answer
 * differs, Documentation/status.rst, the result's name says so), MODE is "ops" (bad requests and storms, then death
 * mid-request), "states" (the frontend's xenbus state set to garbage and
 * back: a backend may close on it, so it gets a guest of its own),
 * "setup-magic", "setup-gref", "setup-port" (a connection set up with a bad
 * magic, grant reference or event channel: the backend must refuse it, which
 * is watched from here: its state and a request on the page), or "random"
 * (seeded random actions of every kind above for ROGUE_SECS seconds, see
 * random_cases()).
 *
 * It connects as the kernel pcifront does: one page granted to dom0 through
 * /dev/xen/gntalloc, an unbound event channel for dom0 through /dev/xen/evtchn,
 * pci-op-ref, event-channel and magic under device/pci/0, then state
 * Initialised; once the backend is Connected it sends requests the way
 * pcifront does (struct xen_pci_op in the page, _XEN_PCIF_active, notify, wait
 * for the bit to clear), mostly bad ones, and storms the event channel.
 *
 * One line per case on stdout: "ok DESC", "not ok DESC" or "# NOTE"; the
 * guest's shell turns them into KTAP results. Every mode prints a fixed number
 * of results, whatever the backend answers: "roguefront plan MODE BACKEND"
 * prints that number without running anything (a counting pass over the same
 * cases, with no backend: see plan()). A run counts its results too and, if
 * they differ from the plan, prints one more "not ok" saying so. Once the
 * connection cannot be used (roguefront's own setup failed, or the backend
 * never connected), the remaining cases still run, at once and without the
 * backend, and every one of them fails ("not run: ..."). After the cases it
 * prints XENPCI-ROGUE-CASES-DONE; in mode "ops" it then waits for GOFILE to exist,
 * and flags valid requests and notifies in a loop without ever waiting for an
 * answer, until the guest is destroyed (dom0 destroys it in the middle of
 * this).
 *
 * xenstore is reached through the xenstore-read/-write programs of the guest's
 * initramfs (relative paths are under /local/domain/<this domain>).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/xen/gntalloc.h */
struct ioctl_gntalloc_alloc_gref {
	uint16_t domid;
	uint16_t flags;
	uint32_t count;
	uint64_t index;
	uint32_t gref_id;	/* gref_ids[1]: one grant */
};
#define IOCTL_GNTALLOC_ALLOC_GREF _IOC(_IOC_NONE, 'G', 5, sizeof(struct ioctl_gntalloc_alloc_gref))
#define GNTALLOC_FLAG_WRITABLE 1

/* include/uapi/xen/evtchn.h */
struct ioctl_evtchn_bind_unbound_port {
	unsigned int remote_domain;
};
#define IOCTL_EVTCHN_BIND_UNBOUND_PORT \
	_IOC(_IOC_NONE, 'E', 2, sizeof(struct ioctl_evtchn_bind_unbound_port))
struct ioctl_evtchn_notify {
	unsigned int port;
};
#define IOCTL_EVTCHN_NOTIFY _IOC(_IOC_NONE, 'E', 4, sizeof(struct ioctl_evtchn_notify))

/* include/xen/interface/io/pciif.h */
#define XEN_PCI_MAGIC "7"
#define XEN_PCIF_active (1u << 0)
#define XEN_PCI_OP_conf_read 0
#define XEN_PCI_OP_conf_write 1
#define XEN_PCI_OP_enable_msi 2
#define XEN_PCI_OP_disable_msi 3
#define XEN_PCI_OP_enable_msix 4
#define XEN_PCI_OP_disable_msix 5
#define XEN_PCI_OP_aer_detected 6
#define XEN_PCI_ERR_success 0
#define XEN_PCI_ERR_dev_not_found (-1)
#define XEN_PCI_ERR_invalid_offset (-2)
#define XEN_PCI_ERR_access_denied (-3)
#define XEN_PCI_ERR_not_implemented (-4)
#define XEN_PCI_ERR_op_failed (-5)

struct xen_pci_op {
	uint32_t cmd;
	int32_t err;
	uint32_t domain;
	uint32_t bus;
	uint32_t devfn;
	int32_t offset;
	int32_t size;
	uint32_t value;
	uint32_t info;
	struct { uint16_t vector, entry; } msix_entries[128];
};

struct xen_pci_sharedinfo {
	uint32_t flags;
	struct xen_pci_op op;
	struct { uint32_t cmd; int32_t err; uint32_t domain, bus, devfn; } aer_op;
};

_Static_assert(sizeof(struct xen_pci_op) == 548, "xen_pci_op layout");
_Static_assert(sizeof(struct xen_pci_sharedinfo) == 572, "xen_pci_sharedinfo layout");

#define FE "device/pci/0"
/* Written into err before each request: tells "answered" from "not". */
#define NO_ANSWER 0x5a5a5a5a
/* Per-request deadline (the Rust pcifront gives 2 s; TCG and lateeoi
 * throttling after a storm are slower). */
#define OP_TIMEOUT 15.0

/* The shared page; a page of our own until connect_backend() maps the granted one. */
static struct xen_pci_sharedinfo no_page;
static volatile struct xen_pci_sharedinfo *sh = &no_page;
static int evtchn_fd;
static unsigned int port;
static int is_c;
static char backend[256];

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The counting pass of plan(): results are counted, nothing is printed. */
static int counting;
/*
 * No backend to talk to (the counting pass, or a connection that cannot be
 * used): requests get no answer at once, xenstore is not touched, waits are
 * skipped, and every result printed fails, with the reason.
 */
static const char *offline;
/* Results so far (printed or counted). */
static int results;

static void go_offline(const char *why)
{
	if (!offline)
		offline = why;
}

static void result(int ok, const char *fmt, ...)
{
	va_list ap;

	results++;
	if (counting)
		return;
	if (offline)
		ok = 0;
	printf("%s", ok ? "ok " : "not ok ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (offline)
		printf(" (not run: %s)", offline);
	putchar('\n');
}

/* A result that is skipped: it passes unless the cases ran without a backend. */
static void skip(const char *desc, const char *why)
{
	results++;
	if (counting)
		return;
	if (offline)
		printf("not ok %s (not run: %s)\n", desc, offline);
	else
		printf("ok %s # SKIP %s\n", desc, why);
}

static void note(const char *fmt, ...)
{
	va_list ap;

	if (counting)
		return;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Shell-quoted single-quote-free arguments only: our own paths and values. */
static int xs_read(const char *path, char *buf, size_t len)
{
	char cmd[512];
	FILE *p;
	size_t n;

	if (offline)
		return -1;
	snprintf(cmd, sizeof(cmd), "xenstore-read '%s' 2>/dev/null", path);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(buf, 1, len - 1, p);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return pclose(p) == 0 ? 0 : -1;
}

static int xs_write(const char *path, const char *value)
{
	char cmd[512];

	if (offline)
		return -1;
	snprintf(cmd, sizeof(cmd), "xenstore-write '%s' '%s'", path, value);
	return system(cmd) == 0 ? 0 : -1;
}

/* Sleeps, unless there is no backend to wait for. */
static void wait_s(double secs)
{
	struct timespec ts = { .tv_sec = (time_t)secs, .tv_nsec = (long)((secs - (time_t)secs) * 1e9) };

	if (!offline)
		nanosleep(&ts, NULL);
}

static int xs_read_int(const char *path, int dflt)
{
	char buf[64], *end;
	long v;

	if (xs_read(path, buf, sizeof(buf)))
		return dflt;
	v = strtol(buf, &end, 10);
	return (end == buf || *end) ? dflt : (int)v;
}

static int backend_state(void)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/state", backend);
	return xs_read_int(path, -1);
}

static void notify(void)
{
	struct ioctl_evtchn_notify n = { .port = port };

	if (offline)
		return;
	ioctl(evtchn_fd, IOCTL_EVTCHN_NOTIFY, &n);
}

static void fill(uint32_t cmd, uint32_t domain, uint32_t bus, uint32_t devfn,
		 int32_t offset, int32_t size, uint32_t value)
{
	sh->op.cmd = cmd;
	sh->op.err = NO_ANSWER;
	sh->op.domain = domain;
	sh->op.bus = bus;
	sh->op.devfn = devfn;
	sh->op.offset = offset;
	sh->op.size = size;
	sh->op.value = value;
	sh->op.info = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void set_active(void)
{
	__atomic_fetch_or((uint32_t *)&sh->flags, XEN_PCIF_active, __ATOMIC_SEQ_CST);
}

static void withdraw(void)
{
	__atomic_fetch_and((uint32_t *)&sh->flags, ~XEN_PCIF_active, __ATOMIC_SEQ_CST);
}

static int active(void)
{
	return __atomic_load_n((uint32_t *)&sh->flags, __ATOMIC_SEQ_CST) & XEN_PCIF_active;
}

/*
 * One round trip as pcifront does it. Returns 0 with *err and *value set once
 * the backend cleared the active bit, -1 after OP_TIMEOUT (the request is
 * withdrawn, as pcifront does).
 */
static int op(uint32_t cmd, uint32_t domain, uint32_t bus, uint32_t devfn,
	      int32_t offset, int32_t size, uint32_t *value, int32_t *err, double *secs)
{
	double t0 = mono(), deadline = t0 + OP_TIMEOUT;

	if (offline) {
		if (secs)
			*secs = 0;
		return -1;
	}
	fill(cmd, domain, bus, devfn, offset, size, value ? *value : 0);
	set_active();
	notify();
	while (active()) {
		if (mono() > deadline) {
			withdraw();
			if (secs)
				*secs = mono() - t0;
			return -1;
		}
		usleep(100);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*err = sh->op.err;
	if (value)
		*value = sh->op.value;
	if (secs)
		*secs = mono() - t0;
	return 0;
}

/* The exported device, on the virtual bus. */
#define VDOM 0
#define VBUS 0
#define VDEVFN 0

static uint32_t want_vendor;

/* A conf_read of the exported device's vendor ID that must succeed. */
static int valid_read(const char *when)
{
	uint32_t v = 0;
	int32_t err;
	double secs;

	if (op(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 2, &v, &err, &secs)) {
		note("%s: no answer in %.1f s", when, secs);
		return 0;
	}
	if (err != 0 || v != want_vendor) {
		note("%s: err %d value 0x%x, want err 0 value 0x%x", when, err, v, want_vendor);
		return 0;
	}
	note("%s: answered in %.3f s", when, secs);
	return 1;
}

/* The name of an answer (pciif.h's codes, or a raw errno). */
static const char *errname(int32_t err)
{
	static char buf[4][24];
	static int i;

	switch (err) {
	case XEN_PCI_ERR_success: return "success";
	case XEN_PCI_ERR_dev_not_found: return "dev_not_found";
	case XEN_PCI_ERR_invalid_offset: return "invalid_offset";
	case XEN_PCI_ERR_access_denied: return "access_denied";
	case XEN_PCI_ERR_not_implemented: return "not_implemented";
	case XEN_PCI_ERR_op_failed: return "op_failed";
	case -EINVAL: return "-EINVAL";
	case -ENXIO: return "-ENXIO";
	case (int32_t)NO_ANSWER: return "no answer";
	}
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "error %d", err);
	return buf[i];
}

#define SAME 0x7ffffffe

/*
 * The name of a result that checks for answer `want` from the Rust backend and
 * `want_c` from the C backend (SAME: as Rust; otherwise its documented
 * difference, see Documentation/status.rst): it says the answer this run's
 * backend must give.
 */
static void answer_name(char *name, size_t len, const char *req, int32_t want, int32_t want_c)
{
	if (is_c && want_c != SAME)
		snprintf(name, len, "%s -> %s (C backend's documented difference; Rust answers %s)",
			 req, errname(want_c), errname(want));
	else
		snprintf(name, len, "%s -> %s", req, errname(want));
}

/* One request whose answer must be `want` (Rust) or `want_c` (C), as above. */
static void expect(const char *req, uint32_t cmd, uint32_t domain, uint32_t bus,
		   uint32_t devfn, int32_t offset, int32_t size, uint32_t value,
		   int32_t want, int32_t want_c)
{
	int32_t err, w = is_c && want_c != SAME ? want_c : want;
	uint32_t v = value;
	char name[300];
	double secs;

	answer_name(name, sizeof(name), req, want, want_c);
	if (op(cmd, domain, bus, devfn, offset, size, &v, &err, &secs)) {
		note("%s: no answer in %.1f s", req, secs);
		result(0, "%s", name);
		return;
	}
	if (err != w)
		note("%s: got %s (%d), value 0x%x; want %s", req, errname(err), err, v, errname(w));
	else if (w != want)
		note("%s: got %s, value 0x%x", req, errname(err), v);
	result(err == w, "%s", name);
}

static void storm_notify(int n)
{
	double t0 = mono();
	int i;

	if (offline)
		return;
	for (i = 0; i < n; i++)
		notify();
	note("%d notifies in %.2f s", n, mono() - t0);
}

/* What connect_backend() gets wrong on purpose (the "setup-*" modes). */
enum bad_setup { SETUP_GOOD, SETUP_MAGIC, SETUP_GREF, SETUP_PORT };
static enum bad_setup bad_setup;

static int connect_backend(void)
{
	struct ioctl_gntalloc_alloc_gref g = { .domid = 0, .flags = GNTALLOC_FLAG_WRITABLE, .count = 1 };
	struct ioctl_evtchn_bind_unbound_port b = { .remote_domain = 0 };
	char val[32];
	double deadline;
	int fd, rc, st;
	void *page;

	deadline = mono() + 60;
	while (xs_read(FE "/backend", backend, sizeof(backend))) {
		if (mono() > deadline) {
			note("no " FE "/backend node");
			return -1;
		}
		usleep(200000);
	}
	note("backend %s", backend);

	fd = open("/dev/xen/gntalloc", O_RDWR);
	if (fd < 0 || ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &g)) {
		note("gntalloc: %s", strerror(errno));
		return -1;
	}
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g.index);
	if (page == MAP_FAILED) {
		note("gntalloc mmap: %s", strerror(errno));
		return -1;
	}
	memset(page, 0, 4096);
	sh = page;

	evtchn_fd = open("/dev/xen/evtchn", O_RDWR);
	if (evtchn_fd < 0) {
		note("evtchn: %s", strerror(errno));
		return -1;
	}
	rc = ioctl(evtchn_fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &b);
	if (rc < 0) {
		note("evtchn bind_unbound_port: %s", strerror(errno));
		return -1;
	}
	port = rc;
	note("grant %u, port %u", g.gref_id, port);

	/* A grant reference far beyond the guest's table; a port it never allocated. */
	snprintf(val, sizeof(val), "%u", bad_setup == SETUP_GREF ? 0x7ffffffu : g.gref_id);
	if (xs_write(FE "/pci-op-ref", val))
		return -1;
	snprintf(val, sizeof(val), "%u", bad_setup == SETUP_PORT ? port + 4000 : port);
	if (xs_write(FE "/event-channel", val) ||
	    xs_write(FE "/magic", bad_setup == SETUP_MAGIC ? "8" : XEN_PCI_MAGIC) ||
	    xs_write(FE "/state", "3"))
		return -1;
	if (bad_setup != SETUP_GOOD)
		return 0;

	deadline = mono() + 60;
	while ((st = backend_state()) != 4) {
		if (mono() > deadline) {
			note("backend state %d, not Connected after 60 s", st);
			return -1;
		}
		usleep(200000);
	}
	/* As pcifront, once it has scanned its buses. */
	return xs_write(FE "/state", "4");
}

/*
 * Frontend state set to garbage, then back to Connected. The backend may keep
 * serving, Connected (C and Rust ignore an unknown number), or close (C and
 * Rust unregister their device when the state does not parse: it reads as
 * Unknown, "frontend gone"): its state, read back, must say which. An
 * unreadable state is a failure. Returns 1 if it still serves.
 */
static int garbage_state(const char *garbage)
{
	int before = backend_state(), after, ok;

	xs_write(FE "/state", garbage);
	wait_s(1);
	xs_write(FE "/state", "4");
	wait_s(1);
	after = backend_state();
	ok = valid_read("read after the garbage state");
	note("frontend state '%s' then 4: backend state %d -> %d (-1: unreadable), %s", garbage,
	     before, after, ok ? "still serving" : "serves no more");
	result(ok ? after == 4 : after == 5 || after == 6,
	       "frontend state '%s' then back to 4: the backend serves on and its state reads Connected (4), or serves no more and its state reads Closing (5) or Closed (6)",
	       garbage);
	return ok;
}

static void states_cases(void)
{
	if (garbage_state("9"))
		garbage_state("abc");
	else
		skip("frontend state 'abc' then back to 4", "the backend closed on '9'");
}

/*
 * enable_msix of `nvec` vectors (table entries 0, 1, ...): the answer, or
 * NO_ANSWER.
 */
static int32_t enable_msix(uint32_t nvec)
{
	uint32_t v = nvec, i;
	int32_t err;

	for (i = 0; i < 128; i++) {
		sh->op.msix_entries[i].entry = i < nvec ? i : 0;
		sh->op.msix_entries[i].vector = 0xffff;
	}
	if (op(XEN_PCI_OP_enable_msix, VDOM, VBUS, VDEVFN, 0, 0, &v, &err, NULL))
		return NO_ANSWER;
	return err;
}

/* enable_msix whose answer must be `want` (Rust) or `want_c` (C), as expect(). */
static void expect_msix(const char *req, uint32_t nvec, int32_t want, int32_t want_c)
{
	int32_t err, w = is_c && want_c != SAME ? want_c : want;
	char name[300];

	answer_name(name, sizeof(name), req, want, want_c);
	err = enable_msix(nvec);
	if (err != w)
		note("%s: got %s; want %s", req, errname(err), errname(w));
	result(err == w, "%s", name);
}

/* enable_msix that must get an error, any error (the answer is noted). */
static void expect_msix_error(const char *req, uint32_t nvec)
{
	int32_t err = enable_msix(nvec);

	note("%s: got %s", req, errname(err));
	result(err < 0, "%s -> an error (any negative answer)", req);
}

/* enable_msi that must succeed with a pirq (left on). */
static void expect_msi_pirq(const char *req)
{
	uint32_t v = 0;
	int32_t err = NO_ANSWER;

	if (op(XEN_PCI_OP_enable_msi, VDOM, VBUS, VDEVFN, 0, 0, &v, &err, NULL))
		note("%s: no answer", req);
	else
		note("%s: got %s, pirq %u", req, errname(err), v);
	result(err == 0 && v > 0, "%s -> success with a pirq", req);
}

/*
 * MSI through the backend (the device has MSI, no MSI-X). Ends with MSI left
 * on: the guest dies with it, and dom0 checks the release turned it off.
 */
static void msi_cases(void)
{
	expect_msi_pirq("enable_msi");
	expect("enable_msi again (MSI is on)", XEN_PCI_OP_enable_msi, VDOM, VBUS, VDEVFN, 0, 0, 0,
	       XEN_PCI_ERR_op_failed, SAME);
	expect_msix("enable_msix of 1 vector while MSI is on", 1, -ENXIO, SAME);
	expect("disable_msi", XEN_PCI_OP_disable_msi, VDOM, VBUS, VDEVFN, 0, 0, 0,
	       XEN_PCI_ERR_success, SAME);
	expect("disable_msi again", XEN_PCI_OP_disable_msi, VDOM, VBUS, VDEVFN, 0, 0, 0,
	       XEN_PCI_ERR_success, SAME);
	expect("disable_msix (never enabled)", XEN_PCI_OP_disable_msix, VDOM, VBUS, VDEVFN, 0, 0, 0,
	       XEN_PCI_ERR_success, SAME);
	expect("enable_msi of devfn 0x08 (not exported)", XEN_PCI_OP_enable_msi, VDOM, VBUS, 0x08,
	       0, 0, 0, XEN_PCI_ERR_dev_not_found, SAME);
	expect_msix("enable_msix of 200 vectors", 200, -EINVAL, SAME);
	expect_msix_error("enable_msix of 0 vectors", 0);
	expect_msix_error("enable_msix of 1 vector on a device without MSI-X", 1);
	expect_msi_pirq("enable_msi after disable (left on)");
}

static void ops_cases(void)
{
	uint32_t cmd;
	int32_t err;
	double t0;
	int i, bad;

	/* Commands. */
	expect("unknown command 99", 99, VDOM, VBUS, VDEVFN, 0, 2, 0,
	       XEN_PCI_ERR_not_implemented, SAME);
	expect("command 0xffffffff", 0xffffffff, VDOM, VBUS, VDEVFN, 0, 2, 0,
	       XEN_PCI_ERR_not_implemented, SAME);
	expect("AER command (aer_detected) as a request", XEN_PCI_OP_aer_detected, VDOM, VBUS,
	       VDEVFN, 0, 2, 0, XEN_PCI_ERR_not_implemented, SAME);

	/* Sizes. */
	expect("read size 3", XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 3, 0,
	       XEN_PCI_ERR_invalid_offset, SAME);
	expect("read size 8", XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 8, 0,
	       XEN_PCI_ERR_invalid_offset, SAME);
	expect("read size 0", XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 0, 0,
	       XEN_PCI_ERR_invalid_offset, SAME);
	expect("read size -1", XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, -1, 0,
	       XEN_PCI_ERR_invalid_offset, SAME);
	expect("write size 3", XEN_PCI_OP_conf_write, VDOM, VBUS, VDEVFN, 4, 3, 0,
	       XEN_PCI_ERR_invalid_offset, SAME);

	/* Offsets. */
	expect("read size 2 at offset 1 (misaligned)", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, 1, 2, 0, XEN_PCI_ERR_invalid_offset, SAME);
	expect("read size 4 at offset 2 (misaligned)", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, 2, 4, 0, XEN_PCI_ERR_invalid_offset, SAME);
	expect("read size 4 at offset 0x1000", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, 0x1000, 4, 0, XEN_PCI_ERR_invalid_offset, -EINVAL);
	expect("read size 1 at offset 0xffffffff", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, -1, 1, 0, XEN_PCI_ERR_invalid_offset, XEN_PCI_ERR_success);
	expect("read size 4 at offset 0xfffffffc", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, -4, 4, 0, XEN_PCI_ERR_invalid_offset, XEN_PCI_ERR_success);
	expect("read size 4 at offset 0x7ffffffc", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, VDEVFN, 0x7ffffffc, 4, 0, XEN_PCI_ERR_invalid_offset, -EINVAL);
	expect("write size 4 at offset 0x1000", XEN_PCI_OP_conf_write,
	       VDOM, VBUS, VDEVFN, 0x1000, 4, 0, XEN_PCI_ERR_invalid_offset, XEN_PCI_ERR_success);

	/* Devices the guest was not given. */
	expect("read of devfn 0x08 (not exported)", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, 0x08, 0, 2, 0, XEN_PCI_ERR_dev_not_found, SAME);
	expect("read of bus 1", XEN_PCI_OP_conf_read,
	       VDOM, 1, VDEVFN, 0, 2, 0, XEN_PCI_ERR_dev_not_found, SAME);
	expect("read of domain 1", XEN_PCI_OP_conf_read,
	       1, VBUS, VDEVFN, 0, 2, 0, XEN_PCI_ERR_dev_not_found, SAME);
	expect("read of domain 0xffffffff", XEN_PCI_OP_conf_read,
	       0xffffffff, VBUS, VDEVFN, 0, 2, 0, XEN_PCI_ERR_dev_not_found, SAME);
	expect("read of devfn 0x100 (out of range)", XEN_PCI_OP_conf_read,
	       VDOM, VBUS, 0x100, 0, 2, 0, XEN_PCI_ERR_dev_not_found, XEN_PCI_ERR_success);
	expect("write to devfn 0x08 (not exported)", XEN_PCI_OP_conf_write,
	       VDOM, VBUS, 0x08, 4, 2, 0x7, XEN_PCI_ERR_dev_not_found, SAME);
	expect("unknown command 99 to devfn 0x08 (the device is checked first)", 99,
	       VDOM, VBUS, 0x08, 0, 2, 0, XEN_PCI_ERR_dev_not_found, SAME);

	/* Protected fields: dom0 checks the hardware afterwards. */
	expect("write 0x5a to the Interrupt Line (dom0 checks the hardware kept it)",
	       XEN_PCI_OP_conf_write, VDOM, VBUS, VDEVFN, 0x3c, 1, 0x5a, XEN_PCI_ERR_success, SAME);
	expect("write 0xffff to the vendor ID (read back below)",
	       XEN_PCI_OP_conf_write, VDOM, VBUS, VDEVFN, 0, 2, 0xffff, XEN_PCI_ERR_success, SAME);
	result(valid_read("vendor ID after the write"),
	       "read of the vendor ID after the write -> success, 0x%04x", want_vendor);
	expect("write 0x12345000 to BAR0 (dom0 checks the hardware kept it)", XEN_PCI_OP_conf_write,
	       VDOM, VBUS, VDEVFN, 0x10, 4, 0x12345000, XEN_PCI_ERR_success, SAME);
	cmd = 0;
	if (op(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 4, 2, &cmd, &err, NULL) || err)
		note("reading Command failed");
	expect("write Command without Memory Space (dom0 checks the hardware kept it)",
	       XEN_PCI_OP_conf_write, VDOM, VBUS, VDEVFN, 4, 2, cmd & ~2u, XEN_PCI_ERR_success, SAME);

	/* Event storms. */
	t0 = mono();
	storm_notify(5000);
	result(valid_read("read after 5000 notifies without a request"),
	       "backend serves (a read of the vendor ID) after 5000 notifies without a request");
	fill(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 2, 0);
	storm_notify(3000);
	result(valid_read("read after 3000 notifies with a request not flagged active"),
	       "backend serves (a read of the vendor ID) after 3000 notifies with a request not flagged active");
	if (!offline) {
		for (i = 0; i < 3000; i++) {
			fill(XEN_PCI_OP_conf_read, VDOM, VBUS, i & 1 ? 0x08 : VDEVFN, 0, 2, 0);
			set_active();
			notify();
			withdraw();
		}
		note("3000 requests flagged, notified and withdrawn at once");
	}
	/* A withdrawn request may still be answered: let the backend drain. */
	wait_s(2);
	result(valid_read("read after 3000 withdrawn requests"),
	       "backend serves (a read of the vendor ID) after 3000 requests withdrawn at once");
	bad = 0;
	for (i = 0; i < 1000; i++) {
		uint32_t v = 0;

		if (op(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0x1000, 3, &v, &err, NULL))
			break;
		if (err != XEN_PCI_ERR_invalid_offset)
			bad++;
	}
	note("1000 back-to-back bad requests: %d answered, %d with another code than invalid_offset",
	     i, bad);
	result(i == 1000 && bad == 0,
	       "1000 back-to-back reads of size 3 at offset 0x1000 -> all answered, all invalid_offset");
	note("storms took %.1f s", mono() - t0);
	result(valid_read("read after 1000 back-to-back bad requests"),
	       "backend serves (a read of the vendor ID) after 1000 back-to-back bad requests");

	msi_cases();
}

/* How long the backend is watched after a bad setup, at most, and how long it
 * must stay Closing or Closed before the watch ends early. */
#define SETUP_WATCH 40.0
#define SETUP_SETTLE 5.0

/*
 * A connection set up wrong (bad magic, grant reference or event channel):
 * what the backend does, seen from the guest. From the moment the frontend is
 * Initialised its state (backend/.../state) is read every 0.2 s, and a request
 * is flagged on the page (ours whether or not the backend mapped it) and
 * notified at every read, until the backend has been Closing or Closed for
 * SETUP_SETTLE s, or SETUP_WATCH s passed. The backend must never be
 * Connected (and its state must read every time), must end Closing or Closed,
 * and must never answer the request. dom0 checks its error node and that
 * nothing leaked.
 */
static void setup_cases(const char *what)
{
	double t0 = mono(), settled = 0, now;
	int st = -1, reads = 0, unreadable = 0, connected = 0, answered;

	fill(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 2, 0);
	set_active();
	while (!offline) {
		st = backend_state();
		reads++;
		if (st < 0)
			unreadable++;
		if (st == 4)
			connected++;
		notify();
		now = mono();
		if (st != 5 && st != 6)
			settled = 0;
		else if (!settled)
			settled = now;
		if ((settled && now - settled >= SETUP_SETTLE) || now - t0 >= SETUP_WATCH)
			break;
		usleep(200000);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	answered = !active() || sh->op.err != (int32_t)NO_ANSWER;
	note("%s: watched the backend %.1f s: %d state reads, %d unreadable, %d Connected, last state %d; request %s (flags 0x%x, err 0x%x)",
	     what, mono() - t0, reads, unreadable, connected, st,
	     answered ? "answered" : "not answered", sh->flags, (uint32_t)sh->op.err);
	result(reads > 0 && unreadable == 0 && connected == 0,
	       "%s: the backend's state, read every 0.2 s until it settles, is never Connected (4)", what);
	result(st == 5 || st == 6, "%s: the backend ends Closing (5) or Closed (6)", what);
	result(!answered,
	       "%s: a request flagged and notified on the page throughout is never answered", what);
}

/*
 * The "random" mode: for ROGUE_SECS seconds (default 180), actions drawn from
 * a generator seeded with ROGUE_SEED (printed first, so that a run can be
 * repeated): reads and writes of the exported device's header at random
 * offsets, sizes and values; requests to devices it was not given; malformed
 * requests (random commands, sizes, offsets); MSI and MSI-X requests with
 * random vector counts and entries; event storms with and without a request;
 * requests flagged and withdrawn at once; junk in the rest of the page; and
 * frontend state changes that keep the connection (2, 3, 4, 7 and 8; the
 * states mode covers those that close it). Every request must be answered,
 * with a code the protocol knows, and the answers the protocol fixes (any
 * backend's) must be those: success for a header read, dev_not_found for a
 * device not exported, invalid_offset for a bad size. Afterwards the backend
 * must still be Connected and serve a read; dom0 checks the hardware's
 * protected fields, that the guest's MSI is off once it is destroyed, and
 * its kernel log.
 */
static uint64_t rng;

/* xorshift64*: small, and the same sequence on every machine for one seed. */
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)((rnd() >> 32) % n);
}

/* A size the protocol accepts, and an offset aligned to it below `limit`. */
static int32_t rnd_size(void)
{
	static const int32_t sizes[] = { 1, 2, 4 };

	return sizes[below(3)];
}

static int32_t rnd_offset(int32_t size, uint32_t limit)
{
	return (int32_t)(below(limit / size) * size);
}

struct rstats {
	long actions, requests, timeouts, bad_code;
	long header_reads, header_read_fail;
	long foreign, foreign_wrong;
	long bad_size, bad_size_wrong;
	long writes, malformed, msi, storms, withdrawn, junk, states;
};

/* An answer the protocol can give: success, a pciif code or a negative errno. */
static int known_code(int32_t err)
{
	return err <= 0 && err >= -4095;
}

/*
 * Requests still to come whose answers are not checked: set after a request
 * is withdrawn. The backend may have been serving the withdrawn request, and
 * its answer (and the clearing of the active bit) can land on the next
 * request, as the protocol cannot tell them apart; both backends look at the
 * active bit again after answering, so only that next one is exposed (two are
 * left unchecked, for margin). Such an answer is counted, not checked.
 */
static int unjudged;

/*
 * One request; returns its answer, or NO_ANSWER after the deadline (counted).
 * *checked is 1 if the answer is to be checked (see unjudged).
 */
static int32_t rnd_op(struct rstats *s, uint32_t cmd, uint32_t domain, uint32_t bus,
		      uint32_t devfn, int32_t offset, int32_t size, uint32_t value, int *checked)
{
	int32_t err = NO_ANSWER;
	uint32_t v = value;
	int judged = unjudged == 0;

	if (unjudged)
		unjudged--;
	s->requests++;
	*checked = 0;
	if (op(cmd, domain, bus, devfn, offset, size, &v, &err, NULL)) {
		s->timeouts++;
		if (s->timeouts <= 5)
			note("random: no answer to cmd %u %x:%x:%x offset %d size %d in %.0f s",
			     cmd, domain, bus, devfn, offset, size, OP_TIMEOUT);
		return NO_ANSWER;
	}
	if (!judged)
		return err;
	*checked = 1;
	if (!known_code(err)) {
		s->bad_code++;
		if (s->bad_code <= 5)
			note("random: cmd %u offset %d size %d answered %d", cmd, offset, size, err);
	}
	return err;
}

/*
 * One action. Every random number is drawn into a variable first, in a fixed
 * order, so that a seed gives the same run whatever order a compiler
 * evaluates arguments in.
 */
static void random_action(struct rstats *s)
{
	uint32_t r = below(100), i, n, value = (uint32_t)rnd(), cmd, devfn;
	int32_t size, offset, err;
	int checked;

	s->actions++;
	if (r < 30) {
		/* A read of the exported device's header: it must succeed. */
		size = rnd_size();
		offset = rnd_offset(size, 0x100);
		err = rnd_op(s, XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, offset, size, 0, &checked);
		if (checked) {
			s->header_reads++;
			if (err != XEN_PCI_ERR_success && ++s->header_read_fail <= 5)
				note("random: read of offset 0x%x size %d: %s", offset, size,
				     errname(err));
		}
	} else if (r < 45) {
		/* A write of a random value anywhere in the header or beyond. */
		uint32_t limit;

		size = rnd_size();
		limit = below(4) ? 0x100 : 0x1000;
		offset = rnd_offset(size, limit);
		s->writes++;
		rnd_op(s, XEN_PCI_OP_conf_write, VDOM, VBUS, VDEVFN, offset, size, value, &checked);
	} else if (r < 55) {
		/* A device it was not given: dev_not_found. */
		uint32_t domain = 0, bus = 0;

		devfn = 0;
		switch (below(3)) {
		case 0:
			devfn = 1 + below(is_c ? 0xff : 0x1ff);
			break;
		case 1:
			bus = 1 + below(0xff);
			devfn = below(0x100);
			break;
		default:
			domain = 1 + (uint32_t)(rnd() >> 33);
			break;
		}
		cmd = below(2) ? XEN_PCI_OP_conf_read : XEN_PCI_OP_conf_write;
		offset = rnd_offset(4, 0x100);
		err = rnd_op(s, cmd, domain, bus, devfn, offset, 4, value, &checked);
		if (checked) {
			s->foreign++;
			if (err != XEN_PCI_ERR_dev_not_found && ++s->foreign_wrong <= 5)
				note("random: request to %x:%x:%x: %s", domain, bus, devfn,
				     errname(err));
		}
	} else if (r < 60) {
		/* A configuration request of a size the protocol has not: invalid_offset. */
		static const int32_t bad[] = { 0, 3, 5, 6, 7, 8, -1, 0x7fffffff };

		size = bad[below(8)];
		cmd = below(2) ? XEN_PCI_OP_conf_read : XEN_PCI_OP_conf_write;
		offset = (int32_t)below(0x100);
		err = rnd_op(s, cmd, VDOM, VBUS, VDEVFN, offset, size, value, &checked);
		if (checked) {
			s->bad_size++;
			if (err != XEN_PCI_ERR_invalid_offset && ++s->bad_size_wrong <= 5)
				note("random: request of size %d: %s", size, errname(err));
		}
	} else if (r < 68) {
		/* Anything in the request: command, offset, size. */
		cmd = below(2) ? below(9) : (uint32_t)rnd();
		offset = (int32_t)rnd();
		size = (int32_t)(below(2) ? below(9) : (uint32_t)rnd());
		s->malformed++;
		rnd_op(s, cmd, VDOM, VBUS, VDEVFN, offset, size, value, &checked);
	} else if (r < 74) {
		/* MSI and MSI-X, with random vector counts and table entries. */
		static const uint32_t cmds[] = { XEN_PCI_OP_enable_msi, XEN_PCI_OP_disable_msi,
						 XEN_PCI_OP_enable_msix, XEN_PCI_OP_disable_msix };

		n = below(4) ? below(4) : below(200);
		for (i = 0; i < 128; i++) {
			uint16_t entry = below(2) ? i : (uint16_t)rnd();

			sh->op.msix_entries[i].entry = entry;
			sh->op.msix_entries[i].vector = (uint16_t)rnd();
		}
		cmd = cmds[below(4)];
		s->msi++;
		rnd_op(s, cmd, VDOM, VBUS, VDEVFN, 0, 0, n, &checked);
	} else if (r < 82) {
		/* A burst of notifies, with a request on the page but not flagged. */
		if (below(2))
			fill(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 2, 0);
		s->storms++;
		for (n = 1 + below(200), i = 0; i < n && !offline; i++)
			notify();
	} else if (r < 90) {
		/* Flagged, notified and withdrawn at once. */
		cmd = below(2) ? XEN_PCI_OP_conf_read : (uint32_t)rnd();
		devfn = below(2) ? VDEVFN : below(0x100);
		offset = rnd_offset(4, 0x100);
		fill(cmd, VDOM, VBUS, devfn, offset, 4, value);
		set_active();
		notify();
		withdraw();
		s->withdrawn++;
		unjudged = 2;
	} else if (r < 99 || below(3)) {
		/* Junk in the page outside the request: the MSI-X entries, the AER
		 * request, and the flags other than the guest's active bit. */
		volatile uint8_t *p = (volatile uint8_t *)&sh->op.msix_entries;

		for (n = below(64), i = 0; i < n; i++) {
			uint32_t at = below(sizeof(sh->op.msix_entries));

			p[at] = (uint8_t)rnd();
		}
		sh->aer_op.cmd = (uint32_t)rnd();
		sh->aer_op.err = (int32_t)rnd();
		sh->aer_op.devfn = (uint32_t)rnd();
		if (below(2)) {
			uint32_t bits = (uint32_t)rnd() & ~XEN_PCIF_active;

			__atomic_fetch_or((uint32_t *)&sh->flags, bits, __ATOMIC_SEQ_CST);
		} else {
			__atomic_fetch_and((uint32_t *)&sh->flags, XEN_PCIF_active, __ATOMIC_SEQ_CST);
		}
		s->junk++;
	} else {
		/* A frontend state that keeps the connection (one action in 300:
		 * a xenstore write is slow). */
		static const char *const kept[] = { "2", "3", "4", "7", "8" };

		xs_write(FE "/state", kept[below(5)]);
		s->states++;
	}
}

static void random_cases(void)
{
	const char *e = getenv("ROGUE_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 0) : 1;
	double secs, t0, elapsed;
	struct rstats s = { 0 };
	int checked;

	e = getenv("ROGUE_SECS");
	secs = e ? atof(e) : 180;
	/* xorshift needs a state other than 0. */
	seed = seed ? seed : 1;
	rng = seed;
	unjudged = 0;
	note("random: seed %llu, %.0f s (ROGUE_SEED and ROGUE_SECS repeat the run)",
	     (unsigned long long)seed, secs);
	t0 = mono();
	while (!offline && mono() - t0 < secs)
		random_action(&s);
	elapsed = mono() - t0;
	/* Back to Connected; requests whose answers are not checked use up what a
	 * withdrawn request may still answer (no timing involved). */
	xs_write(FE "/state", "4");
	while (!offline && unjudged)
		rnd_op(&s, XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 2, 0, &checked);
	note("random: %ld actions in %.0f s: %ld requests (%ld header reads, %ld writes, %ld to devices not exported, %ld of a bad size, %ld malformed, %ld MSI/MSI-X), %ld notify bursts, %ld withdrawn, %ld junk, %ld state changes",
	     s.actions, elapsed, s.requests, s.header_reads, s.writes, s.foreign, s.bad_size,
	     s.malformed, s.msi, s.storms, s.withdrawn, s.junk, s.states);
	result(s.requests > 0 && s.timeouts == 0,
	       "random: every request answered within %.0f s (%ld of %ld not)", OP_TIMEOUT,
	       s.timeouts, s.requests);
	result(s.bad_code == 0,
	       "random: every answer is success, a pciif error code or a negative errno (%ld not)",
	       s.bad_code);
	result(s.header_reads > 0 && s.header_read_fail == 0,
	       "random: every read of the exported device's header (offset < 0x100, size 1, 2 or 4, aligned) -> success (%ld of %ld not)",
	       s.header_read_fail, s.header_reads);
	result(s.foreign > 0 && s.foreign_wrong == 0,
	       "random: every request to a device not exported -> dev_not_found (%ld of %ld not)",
	       s.foreign_wrong, s.foreign);
	result(s.bad_size > 0 && s.bad_size_wrong == 0,
	       "random: every configuration request of a size other than 1, 2 or 4 -> invalid_offset (%ld of %ld not)",
	       s.bad_size_wrong, s.bad_size);
	result(backend_state() == 4, "random: the backend is Connected (4) after the run");
	result(valid_read("vendor ID after the random run"),
	       "random: read of the vendor ID after the run -> success, 0x%04x", want_vendor);
}

/* The modes, and the cases each runs: the same code counts them (plan()). */
static const char *const modes[] = { "states", "ops", "random", "setup-magic", "setup-gref",
				      "setup-port" };

static int known_mode(const char *mode)
{
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(mode, modes[i]) == 0)
			return 1;
	return 0;
}

static void run_cases(const char *mode)
{
	int up;

	if (strncmp(mode, "setup-", 6) == 0) {
		const char *what = bad_setup == SETUP_MAGIC ? "bad magic" :
				   bad_setup == SETUP_GREF ? "bad grant reference" :
							     "bad event channel";

		if (!offline && connect_backend())
			go_offline("roguefront's own setup of the connection failed");
		setup_cases(what);
		return;
	}
	up = !offline && connect_backend() == 0;
	result(up, "the backend connects (Connected, 4) to a well-formed frontend (gntalloc page, unbound event channel, magic " XEN_PCI_MAGIC ")");
	if (!up)
		go_offline("the backend did not connect");
	result(valid_read("vendor ID"), "read of the vendor ID -> success, 0x%04x", want_vendor);
	if (strcmp(mode, "states") == 0)
		states_cases();
	else if (strcmp(mode, "random") == 0)
		random_cases();
	else
		ops_cases();
}

/* The number of results run_cases(mode) prints: a pass with no backend. */
static int plan(const char *mode)
{
	const char *saved_offline = offline;
	int n;

	counting = 1;
	offline = "counting";
	results = 0;
	run_cases(mode);
	n = results;
	counting = 0;
	offline = saved_offline;
	results = 0;
	sh = &no_page;
	return n;
}

static void set_mode(const char *mode, const char *back)
{
	is_c = strcmp(back, "c") == 0;
	bad_setup = strcmp(mode, "setup-magic") == 0 ? SETUP_MAGIC :
		    strcmp(mode, "setup-gref") == 0 ? SETUP_GREF :
		    strcmp(mode, "setup-port") == 0 ? SETUP_PORT : SETUP_GOOD;
}

int main(int argc, char **argv)
{
	const char *mode;
	int planned;

	if (argc == 4 && strcmp(argv[1], "plan") == 0 && known_mode(argv[2])) {
		set_mode(argv[2], argv[3]);
		printf("%d\n", plan(argv[2]));
		return 0;
	}
	if (argc != 5 || !known_mode(argv[3])) {
		fprintf(stderr, "usage: roguefront VENDOR rust|c MODE GOFILE\n"
				"       roguefront plan MODE rust|c\n"
				"MODE: ops, states, random, setup-magic, setup-gref, setup-port\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	want_vendor = strtoul(argv[1], NULL, 0);
	mode = argv[3];
	set_mode(mode, argv[2]);
	planned = plan(mode);
	run_cases(mode);
	if (results != planned)
		printf("not ok roguefront printed %d results, its plan says %d\n", results, planned);
	printf("XENPCI-ROGUE-CASES-DONE\n");
	if (strcmp(mode, "ops") || offline)
		return offline ? 1 : 0;

	/* Wait for the signal, then die mid-op: flag, notify, never wait. */
	while (access(argv[4], F_OK))
		usleep(100000);
	note("storming with requests it never waits for, until destroyed");
	for (;;) {
		fill(XEN_PCI_OP_conf_read, VDOM, VBUS, VDEVFN, 0, 4, 0);
		set_active();
		notify();
	}
}
