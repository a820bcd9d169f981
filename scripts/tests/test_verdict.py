# SPDX-License-Identifier: GPL-2.0
"""Unit tests of scripts/verdict.py: each way a boot's log can be wrong must
fail, and a good log must pass."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

VERDICT = os.path.join(os.path.dirname(__file__), '..', 'verdict.py')
GROUPS = """\
good  b project no 60
other b reference yes 60
lab   b lab no 60
"""


def group(name, body, rc=0, secs=5, checks=('ok: kernel logs clean (dom0 and 0 guest console(s))',)):
    lines = ['XENPCI-GROUP-BEGIN %s' % name, 'TAP version 13'] + body
    lines += ['XENPCI-GROUP-CHECK %s %s' % (name, c) for c in checks]
    if rc is not None:
        lines.append('XENPCI-GROUP-END %s rc=%d secs=%d' % (name, rc, secs))
    return lines


def ok(n):
    return ['ok %d case %d' % (i, i) for i in range(1, n + 1)]


class Verdict(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.conf = os.path.join(self.dir.name, 'groups.conf')
        with open(self.conf, 'w') as f:
            f.write(GROUPS)

    def tearDown(self):
        self.dir.cleanup()

    def check(self, lines, plan='good', end=True):
        log = os.path.join(self.dir.name, 'boot.log')
        if end:
            lines = lines + ['XENPCI-BOOT-CHECK ok: kernel log clean after the last group',
                             'XENPCI-END rc=0']
        with open(log, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        js = log + '.json'
        p = subprocess.run([sys.executable, VERDICT, 'check', log, '--plan', plan,
                            '--groups', self.conf, '--boot', 'b', '--json', js],
                           capture_output=True, text=True)
        with open(js) as f:
            self.json = json.load(f)
        return p.returncode, p.stdout

    def failed(self, name='good'):
        return [g for g in self.json['groups'] if g['group'] == name][0]['failed']

    def test_good_group_passes(self):
        rc, out = self.check(group('good', ['1..3'] + ok(3)))
        self.assertEqual(rc, 0, out)
        g = self.json['groups'][0]
        self.assertEqual((g['passed'], g['failed'], g['skipped'], g['secs']), (4, 0, 0, 5))

    def test_exit_1_after_only_ok_lines_fails(self):
        rc, out = self.check(group('good', ['1..2'] + ok(2), rc=1))
        self.assertEqual(rc, 1)
        self.assertIn('not ok good: exited with status 1 although every result passed', out)

    def test_failed_result_and_nonzero_exit_count_once(self):
        rc, out = self.check(group('good', ['1..2', 'ok 1 a', 'not ok 2 b'], rc=1))
        self.assertEqual(rc, 1)
        self.assertEqual(self.failed(), 1, out)

    def test_fewer_results_than_plan_fails(self):
        rc, out = self.check(group('good', ['1..3'] + ok(2)))
        self.assertEqual(rc, 1)
        self.assertIn('reported 2 results, its plan is 3', out)

    def test_more_results_than_plan_fails(self):
        rc, out = self.check(group('good', ['1..1'] + ok(2)))
        self.assertEqual(rc, 1)
        self.assertIn('reported 2 results, its plan is 1', out)

    def test_no_plan_fails(self):
        rc, out = self.check(group('good', ok(2)))
        self.assertEqual(rc, 1)
        self.assertIn('printed no plan', out)

    def test_plan_at_the_end_fails(self):
        rc, out = self.check(group('good', ok(2) + ['1..2']))
        self.assertEqual(rc, 1)
        self.assertIn('its plan came after its first result', out)

    def test_skip_all_fails(self):
        rc, out = self.check(group('good', ['1..0 # SKIP no device under test']))
        self.assertEqual(rc, 1)
        self.assertIn('skipped as a whole', out)

    def test_bail_out_fails(self):
        rc, out = self.check(group('good', ['1..2', 'ok 1 a', 'Bail out!  no guest'], rc=1))
        self.assertEqual(rc, 1)
        self.assertIn('bailed out', out)

    def test_result_counted_twice_fails(self):
        rc, out = self.check(group('good', ['1..3', 'ok 1 a', 'ok 2 b', 'ok 2 b']))
        self.assertEqual(rc, 1)
        self.assertIn('result 3 is numbered 2', out)

    def test_runner_check_failure_counts(self):
        rc, out = self.check(group('good', ['1..1'] + ok(1),
                                   checks=('not ok: kernel log: dom0: WARNING: CPU: 0',)))
        self.assertEqual(rc, 1)
        self.assertIn('not ok good: kernel log: dom0: WARNING: CPU: 0', out)
        self.assertEqual(self.failed(), 1)

    def test_deadline_kill_fails(self):
        body = ['1..2', 'ok 1 a']
        rc, out = self.check(group('good', body, rc=124, checks=(
            'not ok: did not finish within its deadline of 60 s (killed, its guests destroyed)',
            'ok: kernel logs clean (dom0 and 0 guest console(s))')))
        self.assertEqual(rc, 1)
        self.assertIn('did not finish within its deadline', out)

    def test_unknown_group_in_dom0_fails(self):
        lines = ['XENPCI-GROUP-BEGIN nosuch',
                 "XENPCI-GROUP-CHECK nosuch not ok: no test group named 'nosuch'",
                 'XENPCI-GROUP-END nosuch rc=1 secs=0']
        rc, out = self.check(lines, plan='nosuch')
        self.assertEqual(rc, 1)
        self.assertIn("not ok nosuch: no test group named 'nosuch'", out)
        self.assertEqual(self.failed('nosuch'), 1, out)

    def test_group_that_never_ends_fails(self):
        rc, out = self.check(group('good', ['1..2', 'ok 1 a'], rc=None))
        self.assertEqual(rc, 1)
        self.assertIn('never ended', out)

    def test_group_of_the_plan_that_never_began_fails(self):
        rc, out = self.check(group('good', ['1..1'] + ok(1)), plan='good,other')
        self.assertEqual(rc, 1)
        self.assertIn('not ok other: never started', out)

    def test_guest_console_lines_are_not_counted(self):
        rc, out = self.check(group('good', ['1..1', '(domU) ok 1 guest line', 'ok 1 a']))
        self.assertEqual(rc, 0, out)

    def test_skip_counts_as_skip(self):
        rc, out = self.check(group('good', ['1..2', 'ok 1 a', 'ok 2 b # SKIP why']))
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.json['groups'][0]['skipped'], 1)

    def test_crash_before_the_failure_is_the_lab(self):
        body = ['1..2', 'ok 1 a', 'XENPCI-DOM0-CRASH [  12.3] xl[123]: segfault at 0 ip 0 sp 0 error 4', 'not ok 2 b']
        rc, out = self.check(group('good', body, rc=1))
        self.assertEqual(rc, 2, out)
        self.assertIn('failed in the lab', out)

    def test_crash_with_a_kernel_splat_is_not_the_lab(self):
        body = ['1..2', 'ok 1 a', 'XENPCI-DOM0-CRASH [  12.3] xl[123]: segfault at 0', 'not ok 2 b']
        rc, out = self.check(group('good', body, rc=1, checks=(
            'not ok: kernel log: dom0: [ 12.4] WARNING: at foo',)))
        self.assertEqual(rc, 1, out)

    def test_crash_line_not_copied_by_dom0_is_not_the_lab(self):
        body = ['1..2', 'ok 1 a', '[  12.3] xl[123]: segfault at 0 ip 0 sp 0 error 4', 'not ok 2 b']
        rc, out = self.check(group('good', body, rc=1))
        self.assertEqual(rc, 1, out)

    def test_plan_of_zero_fails(self):
        rc, out = self.check(group('good', ['1..0']))
        self.assertEqual(rc, 1)
        self.assertIn('its plan is 0', out)

    def test_every_result_skipped_fails(self):
        rc, out = self.check(group('good', ['1..2', 'ok 1 a # SKIP x', 'ok 2 b # SKIP y']))
        self.assertEqual(rc, 1)
        self.assertIn('every result skipped', out)

    def test_group_without_its_kernel_log_scan_fails(self):
        rc, out = self.check(group('good', ['1..1'] + ok(1), checks=()))
        self.assertEqual(rc, 1)
        self.assertIn('its kernel log was not scanned exactly once', out)

    def test_boot_check_failure_counts(self):
        lines = group('good', ['1..1'] + ok(1))
        lines.insert(0, 'XENPCI-BOOT-CHECK not ok: kernel log from the boot to the first group: '
                        'dom0: [ 3.0] BUG: sleeping function called')
        rc, out = self.check(lines)
        self.assertEqual(rc, 1)
        self.assertIn('not ok boot: kernel log from the boot to the first group', out)

    def test_dom0_end_without_the_last_scan_fails(self):
        rc, out = self.check(group('good', ['1..1'] + ok(1)) + ['XENPCI-END rc=0'], end=False)
        self.assertEqual(rc, 1)
        self.assertIn('without scanning its kernel log after the last group', out)

    def test_crash_after_the_failure_is_not_the_lab(self):
        body = ['1..2', 'not ok 1 a', 'XENPCI-DOM0-CRASH [  12.3] xl[123]: segfault at 0 ip 0 sp 0 error 4', 'ok 2 b']
        rc, out = self.check(group('good', body, rc=1))
        self.assertEqual(rc, 1, out)

    def test_crash_in_another_group_is_not_the_lab(self):
        lines = group('lab', ['1..1', 'XENPCI-DOM0-CRASH [  1.0] xl[9]: segfault at 0 ip 0 sp 0 error 4', 'ok 1 a'])
        lines += group('good', ['1..1', 'not ok 1 a'], rc=1)
        rc, out = self.check(lines, plan='lab,good')
        self.assertEqual(rc, 1, out)

    def test_qemu_crash_mid_group_is_the_lab(self):
        crash = 'qemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: ' \
                'Assertion `section_index < d->map.sections_nb\' failed.'
        lines = group('good', ['1..5'] + ok(3), rc=None, checks=()) + [crash]
        rc, out = self.check(lines, plan='good,other', end=False)
        self.assertEqual(rc, 2, out)
        self.assertIn('QEMU crashed', out)

    def test_machine_stuck_in_xen_mid_group_is_the_lab(self):
        stall = 'XENPCI-EMULATOR-STALL: vCPU 0 ran at Xen address 0xffff82d040326b9a, not ' \
                'halted, for 180 s (vCPU 1 at 0xffff82d0402f9c06 halted): the machine is stuck; QEMU stopped'
        lines = group('good', ['1..5'] + ok(3), rc=None, checks=()) + [stall]
        rc, out = self.check(lines, plan='good,other', end=False)
        self.assertEqual(rc, 2, out)
        self.assertIn('the emulated machine stalled (vCPU 0 ran at Xen address', out)
        # Not the lab when the group had failed before.
        lines = group('good', ['1..5', 'not ok 1 broken'] + ok(3)[1:], rc=None, checks=()) + [stall]
        rc, out = self.check(lines, plan='good', end=False)
        self.assertEqual(rc, 1, out)

    def test_qemu_crash_after_a_failure_is_not_the_lab(self):
        crash = 'qemu-system-x86_64: foo.c:1: f: Assertion `x\' failed.'
        lines = group('good', ['1..5', 'not ok 1 broken'] + ok(3)[1:], rc=None, checks=()) + [crash]
        rc, out = self.check(lines, plan='good', end=False)
        self.assertEqual(rc, 1, out)

    def test_qemu_crash_with_an_earlier_failed_group_is_not_the_lab(self):
        crash = 'qemu-system-x86_64: foo.c:1: f: Assertion `x\' failed.'
        lines = group('other', ['1..1', 'not ok 1 broken'], rc=1) + \
            group('good', ['1..5'] + ok(3), rc=None, checks=()) + [crash]
        rc, out = self.check(lines, plan='other,good', end=False)
        self.assertEqual(rc, 1, out)

    def test_daemons_down_is_the_lab(self):
        rc, out = self.check(['XENPCI-LAB-FAILURE: the Xen daemons did not start'])
        self.assertEqual(rc, 2, out)

    def test_summary_counts_by_class_and_ends_with_the_count(self):
        self.check(group('good', ['1..2'] + ok(2)) + group('other', ['1..1', 'not ok 1 x'], rc=1)
                   + group('lab', ['1..1'] + ok(1)), plan='good,other,lab')
        js = os.path.join(self.dir.name, 'boot.log.json')
        p = subprocess.run([sys.executable, VERDICT, 'summary', js, '--extra-fail', '1'],
                           capture_output=True, text=True)
        lines = p.stdout.strip().split('\n')
        self.assertEqual(p.returncode, 1)
        self.assertIn("# the project's drivers: 4 passed, 0 failed, 0 skipped", lines)
        self.assertIn('# the C reference drivers alone: 1 passed, 1 failed, 0 skipped', lines)
        self.assertIn('# the lab and the harness: 2 passed, 0 failed, 0 skipped', lines)
        self.assertEqual(lines[-1], 'xen: 7 passed, 2 failed, 0 skipped')


if __name__ == '__main__':
    unittest.main()
