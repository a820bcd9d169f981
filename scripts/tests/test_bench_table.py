# SPDX-License-Identifier: GPL-2.0
"""Unit tests of scripts/bench-table.py's comparison of the pairs taking turns
(bench-alt): each Rust run against the C runs beside it, in its own boot."""

import importlib.util
import os
import tempfile
import unittest

spec = importlib.util.spec_from_file_location(
    'bench_table', os.path.join(os.path.dirname(__file__), '..', 'bench-table.py'))
bench_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_table)


def read_line(pair, n, rate, us, p50=1000, p99=3000, dom0=300):
    return (f'# bench pair={pair} op=readalt ops_per_s={rate} us_per_op={us} p50_us={p50} '
            f'p99_us={p99} dom0_cpu_us_per_op={dom0} run=alt{n}')


def readhw_line(pair, n, rate, dom0=300):
    return read_line(pair, n, rate, 1, dom0=dom0).replace('op=readalt', 'op=readhwalt')


def sysfs_line(pair, n, us):
    return f'# bench pair={pair} op=sysfsalt ops_per_s=1 us_per_op={us} p99_us=900 run=alt{n}'


def scan_line(pair, n, ms, load=None):
    extra = '' if load is None else f' load_ms={load}'
    return f'# bench pair={pair} op=scanalt run=alt{n} scan_ms={ms}{extra}'


def front_line(n, **counts):
    extra = ''.join(f' {k}={v}' for k, v in counts.items())
    return (f'# bench pair=rust/rust op=readalt-frontend answered=1000 answered_spinning=990 '
            f'polls=10 mean_us=300 spin_budget_us=600{extra} run=alt{n}')


class Alt(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def log(self, name, lines):
        path = os.path.join(self.dir.name, name)
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def runs(self, *paths):
        merged = {}
        for path in paths:
            for k, v in bench_table.parse(path).items():
                merged.setdefault(k, []).extend(v)
        return merged

    def test_the_median_of_the_runs_ratios(self):
        path = self.log('xen-1-bench-1.log', [
            read_line('c/c', 1, 100, 1), read_line('rust/rust', 2, 150, 1),
            read_line('c/c', 3, 100, 1), read_line('rust/rust', 4, 200, 1),
            read_line('c/c', 5, 100, 1), read_line('rust/rust', 6, 400, 1),
            read_line('c/c', 7, 100, 1),
        ])
        # 1.5, 2 and 4: the median, not the mean (2.5) or the smallest.
        self.assertEqual(bench_table.alt_median(self.runs(path), 'rate'), (2.0, 3))

    def test_reads_the_device_answers_apart_from_the_id_reads(self):
        path = self.log('xen-1-bench-1.log', [
            read_line('c/c', 1, 100, 1), readhw_line('c/c', 1, 80, dom0=400),
            read_line('rust/rust', 2, 300, 1), readhw_line('rust/rust', 2, 120, dom0=300),
            read_line('c/c', 3, 100, 1), readhw_line('c/c', 3, 80, dom0=200),
        ])
        runs = self.runs(path)
        self.assertEqual(bench_table.alt_median(runs, 'rate'), (3.0, 1))
        self.assertEqual(bench_table.alt_median(runs, 'hwrate'), (1.5, 1))
        self.assertEqual(bench_table.alt_median(runs, 'hwdom0'), (1.0, 1))
        self.assertIn('read rate, a register the device answers, >= 2x C pair: not met (1.50x',
                      bench_table.goals(runs))
        self.assertIn('1.50', bench_table.alt_hw_table(runs))

    def test_c_runs_only_or_unknown_values(self):
        path = self.log('xen-1-bench-1.log', [
            read_line('c/c', 1, 100, 1), read_line('rust/rust', 2, '?', '?', p50='?', p99='?', dom0='?'),
            read_line('c/c', 3, 100, 1), read_line('c/c', 5, 100, 1),
        ])
        (_, n, v), = bench_table.alt_ratios(self.runs(path))
        self.assertEqual(n, 2)
        self.assertIsNone(v['rate'][0])
        self.assertEqual(bench_table.alt_median(self.runs(path), 'dom0'), (None, 0))
        # The table and the goals print, with nothing to say about the unknown run.
        self.assertIn('Rust back, Rust front', bench_table.alt_table(self.runs(path)))
        self.assertNotIn('taking turns', bench_table.goals(self.runs(path)))

    def test_each_rust_run_against_the_mean_of_its_neighbours(self):
        path = self.log('xen-1-bench-1.log', [
            read_line('c/c', 1, 600, 1600, dom0=400), read_line('rust/rust', 2, 1400, 700, p99=2000, dom0=150),
            read_line('c/c', 3, 800, 1200, p50=1200, dom0=200), read_line('rust/rust', 4, 1600, 600),
        ])
        got = {n: v for _, n, v in bench_table.alt_ratios(self.runs(path))}
        self.assertEqual(sorted(got), [2, 4])
        self.assertAlmostEqual(got[2]['rate'][0] / got[2]['rate'][1], 1400 / 700)
        self.assertAlmostEqual(got[2]['dom0'][0] / got[2]['dom0'][1], 150 / 300)
        # Its p99 against their p50.
        self.assertAlmostEqual(got[2]['p99'][0] / got[2]['p99'][1], 2000 / 1100)
        # The last run has a C run on one side only.
        self.assertAlmostEqual(got[4]['rate'][0] / got[4]['rate'][1], 1600 / 800)
        m, n = bench_table.alt_median(self.runs(path), 'rate')
        self.assertEqual(n, 2)
        self.assertAlmostEqual(m, (2 + 2) / 2)

    def test_boots_are_not_mixed(self):
        # Run 1 of the second boot is no neighbour of run 2 of the first.
        a = self.log('xen-1-bench-1.log', [read_line('rust/rust', 2, 1000, 1000), read_line('c/c', 3, 500, 2000)])
        b = self.log('xen-2-bench-1.log', [read_line('c/c', 1, 100, 10000), read_line('rust/rust', 2, 1000, 1000)])
        got = {(os.path.basename(log), n): v for log, n, v in bench_table.alt_ratios(self.runs(a, b))}
        self.assertAlmostEqual(got[('xen-1-bench-1.log', 2)]['rate'][1], 500)
        self.assertAlmostEqual(got[('xen-2-bench-1.log', 2)]['rate'][1], 100)

    def test_rate_past_the_floor(self):
        path = self.log('xen-1-bench-1.log', [
            read_line('c/c', 1, 1, 1100), sysfs_line('c/c', 1, 300),
            read_line('rust/rust', 2, 1, 600), sysfs_line('rust/rust', 2, 200),
            read_line('c/c', 3, 1, 1100),
        ])
        (_, _, v), = bench_table.alt_ratios(self.runs(path))
        # Each run less its own guest's floor; run 3 has none, so only run 1 counts:
        # (1100 - 300) / (600 - 200).
        self.assertAlmostEqual(v['past'][0] / v['past'][1], 2.0)

    def test_the_cost_of_a_turn_of_the_spin(self):
        # Each run's spin_us over its spin_turns (2, 4 and 12 µs), the median of the runs
        # (not their mean, 6); a run without turns or without the counts (a log before they
        # were added) is left out.
        path = self.log('xen-1-bench-1.log', [
            front_line(2, spin_us=2000, spin_turns=1000),
            front_line(4, spin_us=8000, spin_turns=2000),
            front_line(6, spin_us=900, spin_turns=0),
            front_line(8),
            front_line(10, spin_us=12000, spin_turns=1000),
        ])
        row = self.front_row(bench_table.frontend_table(self.runs(path)))
        self.assertEqual(row[-1], '4.0')
        # No run with the counts: "-".
        path = self.log('xen-2-bench-1.log', [front_line(2)])
        row = self.front_row(bench_table.frontend_table(self.runs(path)))
        self.assertEqual(row[-1], '-')

    def front_row(self, table):
        rows = [line.split() for line in table.splitlines() if ' readalt ' in line]
        self.assertEqual(len(rows), 1, table)
        return rows[0]

    def test_the_scan_from_the_frontends_load(self):
        # Each frontend's own account (scan_ms) and the guest's marks (load_ms) are two
        # ratios, each against the same measure of the neighbours.
        path = self.log('xen-1-bench-1.log', [
            scan_line('c/c', 1, 200, load=1000), scan_line('rust/rust', 2, 100, load=600),
            scan_line('c/c', 3, 200, load=500),
        ])
        (_, _, v), = bench_table.alt_ratios(self.runs(path))
        self.assertAlmostEqual(v['scan'][0] / v['scan'][1], 0.5)
        self.assertAlmostEqual(v['load'][0] / v['load'][1], 600 / 750)
        self.assertIn('frontend load to devices present, <= 0.2x C pair: not met (0.80x',
                      bench_table.goals(self.runs(path)))
        # Logs before the marks: no load ratio and no goal line of it.
        path = self.log('xen-2-bench-1.log', [scan_line('c/c', 1, 200), scan_line('rust/rust', 2, 100)])
        (_, _, v), = bench_table.alt_ratios(self.runs(path))
        self.assertIsNone(v['load'][0])
        self.assertNotIn('frontend load', bench_table.goals(self.runs(path)))

    def test_the_load_split_at_the_scan(self):
        # Medians over the runs with the split (pre_ms) of each pair; a run without it (a log
        # before it) is left out of every column, not only of "before".
        lines = [scan_line('c/c', 1, 200, load=500) + ' pre_ms=200 post_ms=100',
                 scan_line('c/c', 3, 300, load=700) + ' pre_ms=300 post_ms=100',
                 scan_line('c/c', 5, 900, load=900),
                 scan_line('rust/rust', 2, 100, load=300) + ' pre_ms=150 post_ms=50',
                 scan_line('rust/rust', 4, 80, load=200) + ' pre_ms=100 post_ms=20',
                 scan_line('rust/rust', 6, 60, load=400) + ' pre_ms=250 post_ms=90']
        path = self.log('xen-1-bench-1.log', lines)
        rows = {tuple(r[:3]): r[3:] for r in
                (line.rsplit(None, 6) for line in
                 bench_table.load_split_table(self.runs(path)).splitlines() if ' back, ' in line)}
        self.assertEqual(rows, {('C back, C front', '1', '2'): ['600', '250', '250', '100'],
                                ('Rust back, Rust front', '1', '3'): ['300', '150', '80', '50']})
        # No run with the split: no table.
        path = self.log('xen-2-bench-1.log', lines[2:3])
        self.assertIsNone(bench_table.load_split_table(self.runs(path)))

    def test_no_neighbour_no_ratio(self):
        path = self.log('xen-1-bench-1.log', [read_line('rust/rust', 2, 1000, 1000)])
        (_, _, v), = bench_table.alt_ratios(self.runs(path))
        self.assertIsNone(v['rate'][1])
        self.assertEqual(bench_table.alt_median(self.runs(path), 'rate'), (None, 0))


if __name__ == '__main__':
    unittest.main()
