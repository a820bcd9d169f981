#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The table of a `make bench` boot (selftests/xen-pci/dom0/bench.sh).

    scripts/bench-table.py [LOG ...]

Reads the "# bench pair=BACK/FRONT op=OP ..." lines (OP read, write, scan,
scan4, read2, read-backend, write-backend, read2-backend, the same three
-frontend, or bench-alt's readalt, readhwalt, their -frontend, sysfsalt and scanalt) of
each LOG (by default the newest bench
boot's log in $OUT/logs, OUT being out/ or out/$KCONFIG/) and prints, per
log, one table per kind of op (config reads, writes of the virtual Interrupt
Line) with one row per pairing: ops/s, the
50th and 99th percentiles of one op's latency, the CPU time per op of the
benchmark process (the guest's; dom0's in the native row), of the guest
domain (Xen's accounting) and of dom0 (its kernel's), and the ratios of ops/s
and of CPU per op to the C pair's (c/c) of the same boot. The last row is
dom0's own ops on the device (the median of its runs, one per group), the
limit. Then the frontends' bus scan times (the C frontend's from its log
lines, without a count of its probes), the Rust backend's own account of
each run (its debugfs statistics: the time to serve a request and the time a
request waited between its event and its service), the Rust frontend's own
account of each run (its debugfs statistics: how its round trips waited),
bench-alt's runs in their order with each Rust run set against the C runs on
either side of it (with several logs, every boot's runs again, each against
its own boot's), and the issue's goals
(Documentation/benchmark.rst), met or not by these numbers. With several
logs, each one's tables, then the same tables of the medians over them (each
value the median of all the boots' runs pooled: dom0-native runs once per
group, a Rust backend's read and write twice per pairing, before and after
its run with fast_path off, a Rust frontend's read four times more, after its
run with its yield off and after each of its three with its quiet_answers off;
the ratios those of the medians).
"""
import glob
import os
import re
import statistics
import sys

PAIRS = ['c/c', 'rust/rust', 'rust-wq/rust', 'rust/rust-noyield', 'rust/rust-signalled',
         'rust/c', 'rust-wq/c', 'c/rust', 'c/rust-noyield', 'c/rust-signalled']
NAMES = {
    'rust/rust-noyield': 'Rust back, Rust front (no yield)',
    'c/rust-noyield': 'C back, Rust front (no yield)',
    'rust/rust-signalled': 'Rust back, Rust front (every answer signalled)',
    'c/rust-signalled': 'C back, Rust front (quiet_answers off)',
    'c/c': 'C back, C front',
    'rust/rust': 'Rust back, Rust front',
    'rust-wq/rust': 'Rust back (work item), Rust front',
    'rust-wq/c': 'Rust back (work item), C front',
    'rust/c': 'Rust back, C front',
    'c/rust': 'C back, Rust front',
    'dom0-native': 'dom0 native',
}
LINE = re.compile(r'# bench (pair=\S+ .*)')


def default_logs():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kconfig = os.environ.get('KCONFIG', '')
    out = os.environ.get('OUT') or os.path.join(top, 'out', *([kconfig] if kconfig else []))
    logs = glob.glob(os.path.join(out, 'logs', 'xen-*-bench-*.log'))
    return [max(logs, key=os.path.getmtime)] if logs else []


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def parse(path):
    """{(pair, op): [dict, ...]} of the log's bench lines."""
    runs = {}
    with open(path, errors='replace') as f:
        for line in f:
            m = LINE.search(line.replace('\r', ''))
            if not m:
                continue
            d = dict(kv.split('=', 1) for kv in m.group(1).split() if '=' in kv)
            d.setdefault('op', 'read')
            d['log'] = path
            runs.setdefault((d['pair'], d['op']), []).append(d)
    return runs


def value(runs, pair, op, key):
    """The run's value (the median over runs: dom0-native runs once per group, a Rust
    backend's read and write twice per pairing, before and after its run with fast_path
    off, and a Rust frontend's read four times more, after its run with its yield off and
    after each of its three with its quiet_answers off)."""
    vals = [num(d.get(key)) for d in runs.get((pair, op), [])]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    return '-' if v is None else f'{v:.{digits}f}'


def ratio(a, b):
    return '-' if a is None or not b else f'{a / b:.2f}'


COLS = [
    # header, key, digits, ratio to C
    ('ops/s', 'ops_per_s', 0, True),
    ('p50 µs', 'p50_us', 0, False),
    ('p99 µs', 'p99_us', 0, False),
    ('proc CPU/op µs', 'guest_process_cpu_us_per_op', 0, False),
    ('guest CPU/op µs', 'guest_domain_cpu_us_per_op', 0, True),
    ('dom0 CPU/op µs', 'dom0_cpu_us_per_op', 0, True),
]


def table(runs, op):
    head = ['pair']
    for h, _, _, r in COLS:
        head.append(h)
        if r:
            head.append('x C')
    rows = []
    pairs = [p for p in PAIRS if (p, op) in runs] + \
        sorted(p for p, o in runs if o == op and p not in PAIRS and p != 'dom0-native')
    for p in pairs + (['dom0-native'] if ('dom0-native', op) in runs else []):
        row = [NAMES.get(p, p)]
        for _, key, digits, r in COLS:
            v = value(runs, p, op, key)
            row.append(fmt(v, digits))
            if r:
                row.append(ratio(v, value(runs, 'c/c', op, key)) if p != 'dom0-native' or key == 'ops_per_s' else '-')
        rows.append(row)
    return rst_table(head, rows)


def rst_table(head, rows):
    """An RST simple table of the header `head` and the rows `rows` (lists of strings)."""
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    rule = ' '.join('=' * w for w in widths)
    out = [rule, ' '.join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), rule]
    out += [' '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.append(rule)
    return '\n'.join(out)


def scan_table(runs):
    """The bus scan of one device (the read and write groups' guests) and of four (the scan
    groups'), per pairing, and the ratios to the C pair's; with the Rust frontend, the time
    it took to read the backend's keys and the time of its answered round trips; and for
    both frontends the time from their load to the devices present (load ms: the guest's
    insmod, logs since 4 December)."""
    head = ['pair', 'devices', 'scan ms', 'x C', 'load ms', 'x C', 'probes', 'accesses', 'keys ms',
            'round trips ms']
    rows = []
    for op, n in (('scan', '1'), ('scan4', '4')):
        c = value(runs, 'c/c', op, 'scan_ms')
        cl = value(runs, 'c/c', op, 'load_ms')
        for p in [p for p in PAIRS if (p, op) in runs]:
            ms = value(runs, p, op, 'scan_ms')
            load = value(runs, p, op, 'load_ms')
            rows.append([NAMES.get(p, p), n, fmt(ms), ratio(ms, c), fmt(load), ratio(load, cl)] +
                        [fmt(value(runs, p, op, k)) for k in ('probes', 'accesses', 'keys_ms', 'trips_ms')])
    return rst_table(head, rows)


def load_split_table(runs):
    """The frontend's load split in three (logs since 4 December, afternoon): from the insmod to
    the scan's start (before), the scan by the frontend's own account, and from its end to the
    insmod's return (after); the medians over the runs of each pairing, with one device
    (bench-alt's runs) and with four (the scan groups'). The frontends' scans start and end at
    different points (see scan_table), so the C frontend's "before" holds its reading of the
    roots and its "after" the devices' addition, which the Rust frontend's scan holds."""
    head = ['pair', 'devices', 'runs', 'load ms', 'before ms', 'scan ms', 'after ms']
    rows = []
    for op, n in (('scanalt', '1'), ('scan4', '4')):
        for p in [p for p in PAIRS if (p, op) in runs]:
            split = [d for d in runs[(p, op)] if num(d.get('pre_ms')) is not None]
            if not split:
                continue

            def med(key):
                vals = [v for v in (num(d.get(key)) for d in split) if v is not None]
                return statistics.median(vals) if vals else None
            rows.append([NAMES.get(p, p), n, str(len(split))] +
                        [fmt(med(k)) for k in ('load_ms', 'pre_ms', 'scan_ms', 'post_ms')])
    return rst_table(head, rows) if rows else None


def two_table(runs):
    """Two guests at once, each reading its own device: each one's rate and latency, their
    sum, and the sum against the same pair's one-guest rate of the same boot."""
    head = ['pair', 'guest 1 ops/s', 'guest 2 ops/s', 'sum', 'x one guest', 'p50 µs', 'p99 µs']
    rows = []
    for p in [p for p in PAIRS if (p, 'read2') in runs]:
        ds = runs[(p, 'read2')]

        def med(guest, key):
            vals = [num(d.get(key)) for d in ds if d.get('guest') == guest]
            vals = [v for v in vals if v is not None]
            return statistics.median(vals) if vals else None
        r1, r2 = med('1', 'ops_per_s'), med('2', 'ops_per_s')
        total = None if r1 is None or r2 is None else r1 + r2
        rows.append([NAMES.get(p, p), fmt(r1), fmt(r2), fmt(total),
                     ratio(total, value(runs, p, 'read', 'ops_per_s')),
                     f"{fmt(med('1', 'p50_us'))}/{fmt(med('2', 'p50_us'))}",
                     f"{fmt(med('1', 'p99_us'))}/{fmt(med('2', 'p99_us'))}"])
    return rst_table(head, rows)


def label(runs, pair, op, key):
    """A bucket label of the backend's statistics ("<64": under 64 µs), the
    boot's or, over several boots, the median bucket's (the lower one of an
    even number)."""
    vals = [d.get(key) for d in runs.get((pair, op), []) if d.get(key) not in (None, '', '-')]
    if not vals:
        return '-'

    def bound(v):
        # ">=1048576" is the bucket above "<1048576".
        return (num(v.lstrip('<>=')) or 0, v.startswith('>'))

    return sorted(vals, key=bound)[(len(vals) - 1) // 2]


def backend_table(runs):
    """The Rust backend's own times per pairing and op, from its debugfs statistics, beside
    the round trip the guest saw."""
    head = ['pair', 'op', 'requests', 'on interrupt', 'service p50 µs', 'wait p50 µs',
            'wait p99 µs', 'round trip p50 µs']
    rows = []
    for p in PAIRS:
        for op in ('read', 'write', 'read2'):
            if (p, op + '-backend') not in runs:
                continue
            b = op + '-backend'
            rows.append([NAMES.get(p, p), 'read2 (per guest)' if op == 'read2' else op,
                         fmt(value(runs, p, b, 'requests')),
                         fmt(value(runs, p, b, 'on_interrupt')),
                         label(runs, p, b, 'service_p50_us'), label(runs, p, b, 'wait_p50_us'),
                         label(runs, p, b, 'wait_p99_us'), fmt(value(runs, p, op, 'p50_us'))])
    return rst_table(head, rows)


def frontend_table(runs):
    """The Rust frontend's own account per pairing and op, from its debugfs statistics: how
    its round trips waited (answered in the spin or after polls, preempted spins, yields, what
    one turn of the spin cost) and the answers' signals its handler took or the round trip took
    off the channel (logs since 4 December, late night)."""
    head = ['pair', 'op', 'round trips', 'in spin %', 'polls/trip', 'watched/trip',
            'events/trip', 'signals taken/trip', 'preempted spins', 'yields/trip', 'trials won yield/spin', 'mean µs',
            'spin budget µs', 'µs/turn']
    rows = []
    for p in PAIRS:
        for op in ('read', 'write', 'read2', 'readalt', 'readhwalt'):
            f = op + '-frontend'
            if (p, f) not in runs:
                continue
            n = value(runs, p, f, 'answered')

            def per(key, scale=1, digits=2):
                # Each run's own ratio; the median over runs.
                vals = [(num(d.get(key)), num(d.get('answered'))) for d in runs[(p, f)]]
                vals = [v * scale / a for v, a in vals if v is not None and a]
                return fmt(statistics.median(vals) if vals else None, digits)

            def per_turn():
                # Each run's spin time over its looks at the clock (logs since 3 December,
                # night); the median over runs.
                vals = [(num(d.get('spin_us')), num(d.get('spin_turns'))) for d in runs[(p, f)]]
                vals = [u / t for u, t in vals if u is not None and t]
                return fmt(statistics.median(vals) if vals else None, 1)

            rows.append([NAMES.get(p, p), 'read2 (per guest)' if op == 'read2' else op, fmt(n),
                         per('answered_spinning', 100, 0), per('polls'), per('watched'),
                         per('events'), per('signals_taken'),
                         fmt(value(runs, p, f, 'preempted_spins')), per('yields'),
                         f"{fmt(value(runs, p, f, 'trials_yield'))}/"
                         f"{fmt(value(runs, p, f, 'trials_spin'))}",
                         fmt(value(runs, p, f, 'mean_us')),
                         fmt(value(runs, p, f, 'spin_budget_us')), per_turn()])
    return rst_table(head, rows)


def gaps_table(runs):
    """The Rust frontend's preempted spins by their longest gap (its debugfs statistics'
    preempted_gaps_us, "BOUND:COUNT,...", BOUND the bucket's upper bound in µs), summed over
    the runs of each pairing and op."""
    rows, bounds = [], None
    for p in PAIRS:
        for op in ('read', 'write', 'read2', 'readalt', 'readhwalt'):
            f = op + '-frontend'
            sums = None
            for d in runs.get((p, f), []):
                pairs = [kv.split(':') for kv in d.get('preempted_gaps_us', '').split(',') if ':' in kv]
                if not pairs:
                    continue
                bounds = bounds or [b for b, _ in pairs]
                counts = [int(n) for _, n in pairs]
                sums = counts if sums is None else [a + b for a, b in zip(sums, counts)]
            if sums is not None:
                rows.append([NAMES.get(p, p), 'read2 (per guest)' if op == 'read2' else op] +
                            [str(n) for n in sums])
    if not rows:
        return None
    head = ['pair', 'op'] + [f'<{b}' if b != 'inf' else f'>={bounds[-2]}' for b in bounds]
    return rst_table(head, rows)


def alt_runs(runs):
    """The runs of bench-alt, the C pair and the Rust pair taking turns (op readalt, readhwalt
    for the reads of a register the device answers, sysfsalt for their guests' floor and scanalt
    for their bus scans), as {log: {n: {'pair': ..., 'read': d, 'readhw': d, 'scan': d}}} by each
    run's number n (run=altN)."""
    boots = {}
    for op, what in (('readalt', 'read'), ('readhwalt', 'readhw'), ('sysfsalt', 'sysfs'),
                     ('scanalt', 'scan')):
        for pair in ('c/c', 'rust/rust'):
            for d in runs.get((pair, op), []):
                m = re.fullmatch(r'alt(\d+)', d.get('run', ''))
                if m:
                    run = boots.setdefault(d['log'], {}).setdefault(int(m.group(1)), {'pair': pair})
                    run[what] = d
    return boots


def past(run):
    """A bench-alt run's reads a second past its guest's floor: 1e6 / (its µs per read less
    its sysfs read's), or None."""
    r = num(run.get('read', {}).get('us_per_op'))
    f = num(run.get('sysfs', {}).get('us_per_op'))
    return None if r is None or f is None or r <= f else 1e6 / (r - f)


def alt_ratios(runs):
    """Each Rust run of bench-alt against the C runs on either side of it in its boot (the
    mean of their values): [(log, n, {name: (rust value, C value)})] for the rate, dom0's CPU
    per read, the p99 against the C runs' p50, the bus scan (each frontend's own account,
    and "load": the guest's insmod of the frontend, which returns with the device present), and
    the rate past the floor
    ("past": reads a second if each took its time less the same guest's sysfs read)."""
    out = []
    for log, boot in alt_runs(runs).items():
        for n in sorted(boot):
            if boot[n]['pair'] != 'rust/rust':
                continue
            side = [boot[k] for k in (n - 1, n + 1) if k in boot and boot[k]['pair'] == 'c/c']
            vals = {}
            for name, what, rkey, ckey in (('rate', 'read', 'ops_per_s', 'ops_per_s'),
                                           ('dom0', 'read', 'dom0_cpu_us_per_op', 'dom0_cpu_us_per_op'),
                                           ('p99', 'read', 'p99_us', 'p50_us'),
                                           ('hwrate', 'readhw', 'ops_per_s', 'ops_per_s'),
                                           ('hwdom0', 'readhw', 'dom0_cpu_us_per_op',
                                            'dom0_cpu_us_per_op'),
                                           ('hwp99', 'readhw', 'p99_us', 'p50_us'),
                                           ('scan', 'scan', 'scan_ms', 'scan_ms'),
                                           ('load', 'scan', 'load_ms', 'load_ms')):
                r = num(boot[n].get(what, {}).get(rkey))
                cs = [num(c.get(what, {}).get(ckey)) for c in side]
                cs = [c for c in cs if c is not None]
                vals[name] = (r, statistics.mean(cs) if cs else None)
            r = past(boot[n])
            cs = [c for c in (past(c) for c in side) if c is not None]
            vals['past'] = (r, statistics.mean(cs) if cs else None)
            out.append((log, n, vals))
    return out


def alt_rows(runs, row):
    """One row per run of bench-alt, in order: row(boot name, n, pair name, run, x) for each,
    x(key) being the run's ratio `key` to its neighbours ('' for a C run); rows that are None
    are left out."""
    ratios = {(log, n): vals for log, n, vals in alt_ratios(runs)}
    rows = []
    for log, boot in alt_runs(runs).items():
        name = re.sub(r'^xen-|-bench-\d+\.log$', '', os.path.basename(log))
        for n in sorted(boot):
            v = ratios.get((log, n), {})

            def x(key, v=v):
                r, c = v.get(key, (None, None))
                return ratio(r, c) if key in v else ''
            r = row(name, n, NAMES.get(boot[n]['pair'], boot[n]['pair']), boot[n], x)
            if r is not None:
                rows.append(r)
    return rows


def alt_table(runs):
    """bench-alt's runs in their order, and each Rust run against its neighbours."""
    head = ['boot', 'run', 'pair', 'ops/s', 'x C', 'p50 µs', 'p99 µs', 'x C p50', 'dom0 CPU/op µs',
            'x C', 'scan ms', 'x C', 'load ms', 'x C', 'µs/op', 'sysfs µs/op', 'past x C']

    def row(name, n, pair, run, x):
        rd, sc = run.get('read', {}), run.get('scan', {})
        return [name, str(n), pair,
                fmt(num(rd.get('ops_per_s'))), x('rate'), fmt(num(rd.get('p50_us'))),
                fmt(num(rd.get('p99_us'))), x('p99'), fmt(num(rd.get('dom0_cpu_us_per_op'))),
                x('dom0'), fmt(num(sc.get('scan_ms'))), x('scan'),
                fmt(num(sc.get('load_ms'))), x('load'),
                fmt(num(rd.get('us_per_op'))),
                fmt(num(run.get('sysfs', {}).get('us_per_op'))), x('past')]
    return rst_table(head, alt_rows(runs, row))


def alt_hw_table(runs):
    """bench-alt's reads of a register the device answers (0x08), as alt_table's reads; None
    if no run has them."""
    head = ['boot', 'run', 'pair', 'ops/s', 'x C', 'p50 µs', 'p99 µs', 'x C p50', 'dom0 CPU/op µs',
            'x C']

    def row(name, n, pair, run, x):
        rd = run.get('readhw')
        if rd is None:
            return None
        return [name, str(n), pair,
                fmt(num(rd.get('ops_per_s'))), x('hwrate'), fmt(num(rd.get('p50_us'))),
                fmt(num(rd.get('p99_us'))), x('hwp99'),
                fmt(num(rd.get('dom0_cpu_us_per_op'))), x('hwdom0')]
    rows = alt_rows(runs, row)
    return rst_table(head, rows) if rows else None


def alt_median(runs, name):
    """The median over bench-alt's Rust runs of their ratio `name` to their neighbours, and
    how many runs it is of."""
    vals = [r / c for _, _, v in alt_ratios(runs) for r, c in [v[name]] if r is not None and c]
    return (statistics.median(vals) if vals else None), len(vals)


def goals(runs):
    """The issue's goals for the Rust pair against the C pair (reads)."""
    rr = value(runs, 'rust/rust', 'read', 'ops_per_s')
    cr = value(runs, 'c/c', 'read', 'ops_per_s')
    rd = value(runs, 'rust/rust', 'read', 'dom0_cpu_us_per_op')
    cd = value(runs, 'c/c', 'read', 'dom0_cpu_us_per_op')
    r99 = value(runs, 'rust/rust', 'read', 'p99_us')
    c50 = value(runs, 'c/c', 'read', 'p50_us')
    lines = []

    def goal(desc, ok, detail):
        state = 'no data' if ok is None else ('met' if ok else 'not met')
        lines.append(f'goal {desc}: {state} ({detail})')

    goal('Rust pair read rate >= 2x C pair',
         None if rr is None or not cr else rr >= 2 * cr, f'{ratio(rr, cr)}x')
    goal('Rust pair dom0 CPU/op <= 0.5x C pair',
         None if rd is None or not cd else rd <= 0.5 * cd, f'{ratio(rd, cd)}x')
    goal("Rust pair read p99 <= C pair read p50",
         None if r99 is None or c50 is None else r99 <= c50, f'{fmt(r99)} µs vs {fmt(c50)} µs')
    # The same three, and the scan against the C backend's C frontend, from bench-alt: each
    # Rust run against the C runs on either side of it, the median of those ratios.
    # The reads of the ID dword, which the Rust backend answers alone, then those of 0x08, which
    # every backend reads from the device.
    for name, desc, cmp in (('rate', 'read rate >= 2x C pair', lambda m: m >= 2),
                            ('dom0', 'dom0 CPU/op <= 0.5x C pair', lambda m: m <= 0.5),
                            ('p99', 'read p99 <= C pair read p50', lambda m: m <= 1),
                            ('hwrate', 'read rate, a register the device answers, >= 2x C pair',
                             lambda m: m >= 2),
                            ('hwdom0', 'dom0 CPU/op, a register the device answers, <= 0.5x C pair',
                             lambda m: m <= 0.5),
                            ('hwp99', 'read p99, a register the device answers, <= C pair p50 of the same reads',
                             lambda m: m <= 1),
                            ('scan', 'bus scan of 1 device <= 0.2x C pair', lambda m: m <= 0.2),
                            ('load', 'bus scan of 1 device, frontend load to devices present, <= 0.2x C pair',
                             lambda m: m <= 0.2)):
        m, n = alt_median(runs, name)
        if n:
            goal(f'(bench-alt, taking turns) Rust pair {desc}', cmp(m),
                 f'{m:.2f}x, the median of {n} run(s) against their neighbours')
    # Not a goal: the tail of a read that never leaves the guest (its sysfs floor), against the
    # C pair's median: no frontend's p99 can be below the floor's.
    floors = [d for p in ('c/c', 'rust/rust') for d in runs.get((p, 'sysfsalt'), [])]
    floor99 = [v for v in (num(d.get('p99_us')) for d in floors) if v is not None]
    # The C runs of the same boots only.
    logs = {d['log'] for d in floors}
    c50 = [num(d.get('p50_us')) for d in runs.get(('c/c', 'readalt'), []) if d['log'] in logs]
    c50 = [v for v in c50 if v is not None]
    if floor99 and c50:
        lines.append(f'(bench-alt, not a goal) p99 of the guests\' sysfs reads (no frontend): median '
                     f'{statistics.median(floor99):.0f} µs (min {min(floor99):.0f}), against the C pair\'s '
                     f'read p50: median {statistics.median(c50):.0f} µs')
    m, n = alt_median(runs, 'past')
    if n:
        lines.append(f'(bench-alt, not a goal) Rust pair read rate past the guest\'s sysfs floor '
                     f'against the C pair\'s: {m:.2f}x, the median of {n} run(s)')
    # The scan: the Rust frontend against the C one, behind the same backend.
    for op, n in (('scan', 1), ('scan4', 4)):
        for back in ('rust', 'c'):
            for key, how in (('scan_ms', ''), ('load_ms', ', frontend load to devices present')):
                r = value(runs, f'{back}/rust', op, key)
                c = value(runs, f'{back}/c', op, key)
                if key == 'load_ms' and r is None and c is None:
                    continue
                goal(f'Rust frontend bus scan of {n} device(s){how} <= 0.2x C frontend, '
                     f'{"Rust" if back == "rust" else "C"} backend',
                     None if r is None or not c else r <= 0.2 * c, f'{ratio(r, c)}x')
    def against(a, b, op, key='ops_per_s'):
        """The ratio of pairing a's value to pairing b's, or None if b has none."""
        vb = value(runs, b, op, key)
        return None if vb is None else ratio(value(runs, a, op, key), vb)

    # Not a goal: what the Rust frontend's yield after preempted spins does, against the same
    # pair with it off (yield_when_preempted=0).
    for back in ('rust', 'c'):
        name = 'Rust' if back == 'rust' else 'C'
        r = against(f'{back}/rust', f'{back}/rust-noyield', 'read')
        if r is not None:
            lines.append(f'{name} backend, Rust frontend: reads with its yield rule against the yield off: '
                         f'rate {r}x')
        r = against(f'{back}/rust', f'{back}/rust-noyield', 'read2')
        if r is not None:
            lines.append(f'{name} backend, Rust frontend, two guests: reads with its yield rule '
                         f'against the yield off: rate {r}x per guest')
    # Not a goal: what asking the backend not to signal the answers the frontend watches for
    # does, against the same guest with every answer signalled (quiet_answers=0, the runs
    # readq), set against the runs that alternate with them (readf before the first, readr
    # after each: the rates of a guest drift over its runs); medians of each. A C backend
    # does not offer feature-quiet-answers, so the frontend never asks it: its line, two
    # settings of one code path, shows the noise.
    for back in ('rust', 'c'):
        name = 'Rust' if back == 'rust' else 'C'
        off = runs.get((f'{back}/rust-signalled', 'read'), [])
        on = [d for d in runs.get((f'{back}/rust', 'read'), []) if d.get('run') in ('readf', 'readr')]
        if not off or not on:
            continue

        def med(ds, key):
            vals = [num(d.get(key)) for d in ds]
            vals = [v for v in vals if v is not None]
            return statistics.median(vals) if vals else None

        parts = []
        for key, what in (('ops_per_s', 'rate'), ('dom0_cpu_us_per_op', 'dom0 CPU/op'),
                          ('guest_domain_cpu_us_per_op', 'guest domain CPU/op'),
                          ('p99_us', 'p99')):
            a, b = med(on, key), med(off, key)
            parts.append(f'{what} {ratio(a, b) if a is not None and b else "-"}x')
        lines.append(f'{name} backend, Rust frontend: reads with quiet_answers against every answer '
                     f'signalled (the runs alternating with quiet_answers on and off): ' + ', '.join(parts))
    # Not a goal: what serving reads and plain writes on the interrupt does, against the same
    # pair with every request in the work item.
    for front in ('rust', 'c'):
        for op in ('read', 'write'):
            r = against(f'rust/{front}', f'rust-wq/{front}', op)
            if r is not None:
                d = against(f'rust/{front}', f'rust-wq/{front}', op, 'dom0_cpu_us_per_op')
                lines.append(f'Rust backend, {NAMES[f"rust/{front}"].split(", ")[1]}: {op}s on the '
                             f'interrupt against the work item only: rate {r}x, dom0 CPU/op {d or "-"}x')
    return '\n'.join(lines)


def report(runs):
    for op, what in (('read', 'config reads (4 bytes at 0x0)'),
                     ('write', 'config writes (1 byte at 0x3c, the virtual Interrupt Line)')):
        if any(o == op for _, o in runs):
            print(f'\n{what}:\n')
            print(table(runs, op))
    if any(o in ('scan', 'scan4') for _, o in runs):
        print('\nbus scan (the guest\'s kernel log; Documentation/benchmark.rst, "Bus scan"):\n')
        print(scan_table(runs))
    if any(o == 'readalt' for _, o in runs):
        print('\nthe C pair and the Rust pair taking turns (bench-alt, reads; each Rust run against'
              ' the mean of the C runs on either side of it; its p99 against their p50; "past":'
              ' the rate if each read took its time less the same guest\'s sysfs read):\n')
        print(alt_table(runs))
        hw = alt_hw_table(runs)
        if hw:
            print('\nthe same runs\' reads of a register the device answers (4 bytes at 0x08, Revision'
                  ' ID and Class Code; those at 0x0 are the IDs, which the Rust backend keeps and'
                  ' answers without the device):\n')
            print(hw)
    split = load_split_table(runs)
    if split:
        print('\nthe frontend\'s load, from its insmod to its return, split at its own account of'
              ' the scan (medians of the runs):\n')
        print(split)
    if any(o == 'read2' for _, o in runs):
        print('\ntwo guests at once, each reading its own device (4 bytes at 0x0):\n')
        print(two_table(runs))
    if any(o.endswith('-backend') for _, o in runs):
        print('\nthe Rust backend\'s own times (debugfs; buckets of powers of two,'
              ' "<64": 32 to 64 µs):\n')
        print(backend_table(runs))
    if any(o.endswith('-frontend') for _, o in runs):
        print('\nthe Rust frontend\'s own account (debugfs; "in spin %", "polls/trip", "watched/trip", "events/trip" and'
              ' "yields/trip" per answered round trip, the other columns per run):\n')
        print(frontend_table(runs))
        gaps = gaps_table(runs)
        if gaps:
            print('\nthe Rust frontend\'s preempted spins by their longest gap, µs (summed over'
                  ' the runs):\n')
            print(gaps)
    print()
    for key, what in (('dom0_idle_cpu_ms_per_s', 'dom0 CPU with no guest (its floor), ms per s'),
                      ('clock_us', 'cost of the clock read in each timed op, µs')):
        vals = [num(d.get(key)) for k in runs for d in runs[k]]
        vals = [v for v in vals if v is not None]
        if vals:
            print(f'{what}: median {statistics.median(vals):.1f} '
                  f'(min {min(vals):.1f}, max {max(vals):.1f})')
    print()
    print(goals(runs))


def main(argv):
    logs = argv[1:] or default_logs()
    if not logs:
        print('bench-table: no bench log (out/logs/xen-*-bench-*.log)', file=sys.stderr)
        return 1
    rc = 0
    merged = {}
    for path in logs:
        runs = parse(path)
        print(f'# bench table of {path}')
        if not runs:
            print('# no "# bench" lines in it')
            rc = 1
            continue
        report(runs)
        for k, v in runs.items():
            merged.setdefault(k, []).extend(v)
    if len(logs) > 1 and merged:
        # Every value the median of all the boots' runs pooled (one run per pairing and op
        # in a boot; dom0-native: one per group); ratios: of those medians.
        print(f'\n# medians over the {len(logs)} boots above')
        report(merged)
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv))
