#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The verdict of the Xen test runs: what one boot's console log says, and the
summary over all boots.

  verdict.py check LOG --plan a,b,c [--boot NAME] [--secs N] [--limit N] --json OUT
      Prints every result of the boot's groups as "ok GROUP: ..." or
      "not ok GROUP: ...", writes the per-group counts to OUT (JSON) and exits
      0 when all passed, 1 when something failed, 2 when something failed and
      the log ties every failure to the lab (then a rerun is allowed).
  verdict.py summary OUT... [--extra-fail N]
      Prints each group's counts and duration, each boot's time against its
      limit, the counts by class (the project's drivers, the C reference
      drivers, the lab) and, last, "xen: N passed, N failed, N skipped".

A group's verdict cannot be better than its log: it fails when it printed no
plan before its first result, when its results do not number 1..N for its
plan N, when it skipped as a whole or bailed out, when it exited non-zero,
when a check the runner made around it (XENPCI-GROUP-CHECK: device present,
deadline, kernel logs) failed, when it never ended (QEMU's limit, or dom0
died), and a group of the plan that never began is a failure too.
"""

import argparse
import json
import os
import re
import sys

RESULT = re.compile(r'^(ok|not ok) (\d+)(?: (.*))?$')
PLAN = re.compile(r'^1\.\.(\d+)(?:\s*#\s*(.*))?$')
BEGIN = re.compile(r'^XENPCI-GROUP-BEGIN (\S+)$')
END = re.compile(r'^XENPCI-GROUP-END (\S+) rc=(-?\d+)(?: secs=(\d+))?')
CHECK = re.compile(r'^XENPCI-GROUP-CHECK (\S+) (ok|not ok): (.*)$')
BOOT_CHECK = re.compile(r'^XENPCI-BOOT-CHECK (ok|not ok): (.*)$')
# A dom0 user-space program that crashed (the kernel's report of it, which
# dom0 copies to the console as it happens).
CRASH = re.compile(r'^XENPCI-DOM0-CRASH ')
# QEMU itself died (an assertion or abort in the emulator, not in a guest).
# QEMU's own death, or the runner's watch stopping a machine stuck in Xen
# (scripts/qemu-inject.py): either way the emulator's failure, not a test's.
EMU_CRASH = re.compile(r'^qemu-system-\S+: .*(Assertion .* failed|[Aa]borted)|^qemu: (fatal|hardware error)'
                       r'|^XENPCI-EMULATOR-STALL: ')
LAB = 'XENPCI-LAB-FAILURE'


def groups_conf(path):
    """groups.conf: name -> dict(boot, class, device, deadline)."""
    table = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            name, boot, klass, device, deadline = line
            table[name] = dict(boot=boot, klass=klass, device=device == 'yes',
                               deadline=int(deadline))
    return table


class Group:
    def __init__(self, name, first_line):
        self.name = name
        self.plan = None
        self.plan_line = None
        self.skip_all = None
        self.results = []       # (status, number, description, line index)
        self.checks = []        # (ok, text, line index)
        self.bail = None
        self.rc = None
        self.secs = None
        self.begin = first_line
        self.end = None
        self.comments = []
        self.faults = []        # (text, line index): the group's own failures

    def counts(self):
        p = sum(1 for r in self.results if r[0] == 'pass')
        p += sum(1 for c in self.checks if c[0])
        f = sum(1 for r in self.results if r[0] == 'fail')
        f += sum(1 for c in self.checks if not c[0]) + len(self.faults)
        s = sum(1 for r in self.results if r[0] == 'skip')
        return p, f, s


def parse(lines):
    """The groups of a boot log, in order (the boot's own checks as a last
    pseudo-group "boot"), and the indexes of lab lines."""
    groups, cur = [], None
    lab, crashes = [], []
    boot = Group('boot', 0)
    boot.emu_crash = None
    boot.plan = 0
    boot.finished = False
    for i, raw in enumerate(lines):
        line = raw.rstrip('\r\n')
        if LAB in line:
            lab.append((i, line))
        if CRASH.search(line):
            crashes.append((i, line))
        if EMU_CRASH.search(line) and boot.emu_crash is None:
            boot.emu_crash = (i, line)
        if line.startswith('XENPCI-END'):
            boot.finished = True
        m = BOOT_CHECK.match(line)
        if m:
            boot.checks.append((m.group(1) == 'ok', m.group(2), i))
            continue
        m = BEGIN.match(line)
        if m:
            if cur is not None:
                cur.faults.append(('a new group began before it ended', i))
            cur = Group(m.group(1), i)
            groups.append(cur)
            continue
        if cur is None:
            continue
        m = END.match(line)
        if m and m.group(1) == cur.name:
            cur.rc = int(m.group(2))
            cur.secs = int(m.group(3)) if m.group(3) else None
            cur.end = i
            cur = None
            continue
        m = CHECK.match(line)
        if m and m.group(1) == cur.name:
            cur.checks.append((m.group(2) == 'ok', m.group(3), i))
            continue
        m = PLAN.match(line)
        if m:
            if cur.plan is None:
                cur.plan, cur.plan_line = int(m.group(1)), i
                if cur.plan == 0 and m.group(2) and m.group(2).upper().startswith('SKIP'):
                    cur.skip_all = m.group(2)
            else:
                cur.faults.append(('a second plan line: ' + line, i))
            continue
        if line.startswith('Bail out!'):
            cur.bail = (line, i)
            continue
        m = RESULT.match(line)
        if m:
            desc = m.group(3) or ''
            if m.group(1) == 'not ok':
                status = 'fail'
            elif re.search(r'#\s*SKIP', desc, re.I):
                status = 'skip'
            else:
                status = 'pass'
            cur.results.append((status, int(m.group(2)), desc, i))
            continue
        if line.startswith('# '):
            cur.comments.append(line)
    if boot.emu_crash is not None:
        crashes.append((boot.emu_crash[0], 'EMULATOR ' + boot.emu_crash[1]))
    if boot.checks or boot.finished:
        boot.end = len(lines)
        boot.rc = 0
        if boot.finished and not any('after the last group' in c[1] for c in boot.checks):
            boot.faults.append(('dom0 finished without scanning its kernel log after the '
                                'last group', None))
        groups.append(boot)
    return groups, lab, crashes


def judge(groups, plan):
    """Adds each group's structural failures; returns the missing groups."""
    for g in groups:
        if g.name == 'boot':
            continue
        if g.plan is None and not g.results and any(not c[0] for c in g.checks):
            # Not run: the runner's failed check (no such group, no device)
            # is the verdict.
            continue
        if g.plan == 0 and g.skip_all is None:
            g.faults.append(('its plan is 0: it tests nothing', g.plan_line))
        if g.results and all(r[0] == 'skip' for r in g.results):
            g.faults.append(('every result skipped', g.results[0][3]))
        if g.end is not None and sum(1 for c in g.checks if c[1].startswith('kernel log')) != 1:
            g.faults.append(('its kernel log was not scanned exactly once', g.end))
        if g.skip_all is not None:
            g.faults.append(('skipped as a whole: ' + g.skip_all, g.plan_line))
        elif g.plan is None:
            g.faults.append(('printed no plan (1..N)', g.begin))
        elif g.results and g.plan_line > g.results[0][3]:
            g.faults.append(('its plan came after its first result', g.plan_line))
        if g.plan is not None and g.skip_all is None and len(g.results) != g.plan:
            g.faults.append(('reported %d results, its plan is %d' % (len(g.results), g.plan),
                             g.end if g.end is not None else g.begin))
        for k, r in enumerate(g.results):
            if r[1] != k + 1:
                g.faults.append(('result %d is numbered %d (duplicated or out of order)'
                                 % (k + 1, r[1]), r[3]))
                break
        if g.bail:
            g.faults.append(('bailed out: ' + g.bail[0], g.bail[1]))
        if g.end is None:
            g.faults.append(('never ended (QEMU stopped: its time limit, or a crash)', g.begin))
        elif g.rc != 0 and not g.faults and all(r[0] != 'fail' for r in g.results) \
                and all(c[0] for c in g.checks):
            g.faults.append(('exited with status %d although every result passed' % g.rc, g.end))
        if plan is not None and g.name not in plan:
            g.faults.append(('ran, but is not in the plan of this boot', g.begin))
    seen = {g.name for g in groups}
    return [p for p in plan if p not in seen]


def first_failure(g):
    idx = [r[3] for r in g.results if r[0] == 'fail']
    idx += [c[2] for c in g.checks if not c[0]]
    idx += [f[1] for f in g.faults if f[1] is not None]
    return min(idx) if idx else None


def lab_cause(groups, missing, lab, crashes):
    """Why every failure of the boot is the lab's, or None.

    The Xen daemons did not start (dom0 says so before any group), or each
    failed group's own section has a dom0 user-space crash before its first
    failure."""
    if lab and not groups:
        return lab[0][1]
    failed = [g for g in groups if g.counts()[1]]
    emu = [(i, line[len('EMULATOR '):]) for i, line in crashes if line.startswith('EMULATOR ')]
    crashes = [c for c in crashes if not c[1].startswith('EMULATOR ')]
    if emu:
        # QEMU died: the lab's, if the only failures are the group it died
        # in (which never ended, and failed nothing before it died) and the
        # groups that never began.
        ei, eline = emu[0]
        for g in failed:
            if g.end is not None or g.begin > ei:
                return None
            if any(r[0] == 'fail' and r[3] < ei for r in g.results) or any(
                    not c[0] for c in g.checks) or g.bail:
                return None
        if eline.startswith('XENPCI-EMULATOR-STALL: '):
            return 'the emulated machine stalled (%s)' % eline[len('XENPCI-EMULATOR-STALL: '):].strip()
        return 'QEMU crashed (%s)' % eline.strip()
    if not failed:
        return None if not missing else (lab[0][1] if lab else None)
    why = []
    for g in failed:
        # A kernel splat or a deadline is never the lab's.
        if any(not c[0] and (c[1].startswith('kernel log') or 'deadline' in c[1]
                             or 'stuck' in c[1]) for c in g.checks):
            return None
        first = first_failure(g)
        end = g.end if g.end is not None else float('inf')
        c = [line for i, line in crashes if g.begin < i <= min(first, end)]
        if not c:
            return None
        why.append('%s: %s' % (g.name, c[0].strip()))
    return 'dom0 user-space crash before the failure (' + '; '.join(why) + ')'


def check(args):
    with open(args.log, errors='replace') as f:
        lines = f.readlines()
    plan = args.plan.split(',')
    groups, lab, crashes = parse(lines)
    missing = judge(groups, plan)
    table = groups_conf(args.groups) if args.groups else {}
    out = []
    for g in groups:
        if g.name == 'boot' and plan and 'boot' not in table:
            klass = 'project'
        else:
            klass = table.get(g.name, {}).get('klass', 'project')
        for status, n, desc, _ in g.results:
            word = 'not ok' if status == 'fail' else 'ok'
            print('%s %s: %d %s' % (word, g.name, n, desc))
        for ok, text, _ in g.checks:
            print('%s %s: %s' % ('ok' if ok else 'not ok', g.name, text))
        for text, _ in g.faults:
            print('not ok %s: %s' % (g.name, text))
        p, fl, s = g.counts()
        if fl:
            for c in g.comments[-40:]:
                print('%s %s' % (g.name, c))
        out.append(dict(group=g.name, boot=args.boot, klass=klass,
                        passed=p, failed=fl, skipped=s, secs=g.secs))
    for name in missing:
        print('not ok %s: never started (QEMU stopped before it: its time limit, or a crash)' % name)
        out.append(dict(group=name, boot=args.boot,
                        klass=table.get(name, {}).get('klass', 'project'),
                        passed=0, failed=1, skipped=0, secs=None))
    if not groups and lab:
        print('not ok %s: %s' % (args.boot, lab[0][1]))
        out.append(dict(group='(boot %s)' % args.boot, boot=args.boot, klass='lab',
                        passed=0, failed=1, skipped=0, secs=None))
    failed = sum(o['failed'] for o in out)
    cause = lab_cause(groups, missing, lab, crashes) if failed else None
    with open(args.json, 'w') as f:
        json.dump(dict(boot=args.boot, secs=args.secs, limit=args.limit, lab=cause,
                       groups=out), f)
    if not failed:
        return 0
    if cause:
        print('# this boot failed in the lab: %s' % cause)
        return 2
    return 1


def summary(args):
    boots = []
    for path in args.json:
        with open(path) as f:
            boots.append(json.load(f))
    print('# %-26s %-11s %-10s %6s %6s %7s %6s' %
          ('group', 'boot', 'class', 'passed', 'failed', 'skipped', 'secs'))
    tot = {}
    for b in boots:
        for g in b['groups']:
            print('# %-26s %-11s %-10s %6d %6d %7d %6s' %
                  (g['group'], g['boot'], g['klass'], g['passed'], g['failed'],
                   g['skipped'], '-' if g['secs'] is None else g['secs']))
            t = tot.setdefault(g['klass'], [0, 0, 0])
            t[0] += g['passed']
            t[1] += g['failed']
            t[2] += g['skipped']
    for b in boots:
        print('# boot %s: QEMU ran %s s of its %s s limit%s' %
              (b['boot'], b['secs'], b['limit'],
               '; lab failure: %s' % b['lab'] if b.get('lab') else ''))
    for note in args.note or []:
        print('# ' + note)
    names = dict(project="the project's drivers", reference='the C reference drivers alone',
                 lab='the lab and the harness')
    for k in ('project', 'reference', 'lab'):
        if k in tot:
            print('# %s: %d passed, %d failed, %d skipped' % ((names[k],) + tuple(tot[k])))
    p = sum(t[0] for t in tot.values())
    fl = sum(t[1] for t in tot.values()) + args.extra_fail
    s = sum(t[2] for t in tot.values())
    if args.extra_fail:
        print('# %d failure(s) of the runner itself (above)' % args.extra_fail)
    print('xen: %d passed, %d failed, %d skipped' % (p, fl, s))
    return 0 if fl == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('check')
    c.add_argument('log')
    c.add_argument('--plan', required=True)
    c.add_argument('--boot', default='boot')
    c.add_argument('--groups', default=os.path.join(os.path.dirname(__file__), '..',
                                                    'selftests', 'xen-pci', 'groups.conf'))
    c.add_argument('--secs', type=int)
    c.add_argument('--limit', type=int)
    c.add_argument('--json', required=True)
    s = sub.add_parser('summary')
    s.add_argument('json', nargs='+')
    s.add_argument('--extra-fail', type=int, default=0)
    s.add_argument('--note', action='append')
    args = ap.parse_args()
    return check(args) if args.cmd == 'check' else summary(args)


if __name__ == '__main__':
    sys.exit(main())
