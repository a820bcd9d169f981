#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Inject PCIe AER errors into the running QEMU when dom0 asks for them.

dom0 cannot reach QEMU's monitor: it asks on its console, which QEMU's serial
port writes into the boot's log. This follows the log while QEMU runs and, for
each request line

    XENPCI-QEMU-AER SEQ QEMU_ID ERROR

(at the start of a line, so a guest's console, which dom0 streams prefixed with
"(domU) ", cannot ask), sends QEMU's HMP command
"pcie_aer_inject_error QEMU_ID ERROR" (QEMU knows from the
error's name whether it is correctable) to the monitor socket, once per SEQ
(dom0 repeats a request whose effect it did not see, in case its line was
mangled on the console; a request the monitor did not take is sent again when
repeated). No other request from the log reaches the monitor; what the
monitor answered is printed, one line per request.

It also watches for a machine that can no longer make progress: every
WATCH_EVERY seconds it reads the vCPUs' registers ("info registers -a"); a
vCPU that is not halted and sits at one address in Xen's text for STALL_SECS
(Xen spinning, e.g. in a rendezvous for an interrupt QEMU never delivered to
the other, halted vCPU) makes it print one line

    XENPCI-EMULATOR-STALL: ...

and stop QEMU ("quit"), instead of the boot waiting out its whole limit.
The runner copies that line into the boot's log, where the verdict takes it
as the emulator's failure, like a QEMU crash.

Usage: qemu-inject.py LOG SOCKET [PID]
Ends when killed, when process PID (the runner) is gone, when LOG is
removed (the run is over), or after stopping a stalled QEMU.
"""

import os
import re
import socket
import sys
import time

REQUEST = re.compile(r'^XENPCI-QEMU-AER ([0-9]{1,6}) ([a-z][a-z0-9_-]{0,31} [A-Z][A-Z_]{1,31})$')
PROMPT = b'(qemu) '
# One vCPU in "info registers -a" (its lines joined by clean()): its number,
# then its RIP and whether it is halted, all before the next vCPU's CPU#
# (a vCPU in 32-bit mode, printing EIP, does not match: Xen runs in 64-bit mode).
VCPU = re.compile(r'CPU#(\d+) (?:(?!CPU#).)*?RIP=([0-9a-f]{16}) RFL=\S+ \[[^\]]*\] CPL=\d (?:(?!CPU#).)*?HLT=([01])')
# Xen's text on x86-64 (Xen 4.17's starts at 0xffff82d040200000).
XEN_TEXT = range(0xffff82d040000000, 0xffff82d080000000)
WATCH_EVERY = 10.0
STALL_SECS = 180.0


def parse(line):
    """(seq, HMP command) for a request line, else None."""
    m = REQUEST.match(line.rstrip('\r\n'))
    if not m:
        return None
    return int(m.group(1)), 'pcie_aer_inject_error ' + m.group(2)


def clean(data, command):
    """The monitor's answer to COMMAND as one printable line: it echoes the
    command as typed, one character at a time, with escape sequences."""
    text = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', data.decode('utf-8', 'replace'))
    text = text.replace(PROMPT.decode(), ' ')
    at = text.rfind(command)
    if at >= 0:
        text = text[at + len(command):]
    return ' '.join(''.join(c for c in text if c.isprintable() or c.isspace()).split())


def read_until_prompt(sock, deadline):
    data = b''
    while not data.endswith(PROMPT):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def send(path, command, timeout=20.0):
    """Runs one HMP command; returns what the monitor printed for it."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        read_until_prompt(sock, deadline)  # the banner
        sock.sendall(command.encode() + b'\n')
        return clean(read_until_prompt(sock, deadline), command)


def vcpus(dump):
    """{vCPU: (RIP, halted)} of the monitor's "info registers -a" answer."""
    return {int(m.group(1)): (int(m.group(2), 16), m.group(3) == '1') for m in VCPU.finditer(dump)}


class Stall:
    """Tells when a vCPU has run, not halted, at one address in Xen's text
    for `secs`: from one sample to the next a running vCPU moves on, so the
    same address every time is a spin that does not end."""

    def __init__(self, secs=STALL_SECS):
        self.secs = secs
        self.since = {}  # vCPU -> (RIP, time first seen there)
        self.unread = False

    def sample(self, now, cpus):
        """Takes one sample; the stall's description, or None."""
        for i, (rip, halted) in sorted(cpus.items()):
            if halted or rip not in XEN_TEXT:
                self.since.pop(i, None)
                continue
            prev = self.since.get(i)
            if prev is None or prev[0] != rip:
                self.since[i] = (rip, now)
            elif now - prev[1] >= self.secs:
                others = ', '.join('vCPU %d at %#x%s' % (j, r, ' halted' if h else '')
                                   for j, (r, h) in sorted(cpus.items()) if j != i)
                return ('vCPU %d ran at Xen address %#x, not halted, for %d s (%s): '
                        'the machine is stuck; QEMU stopped'
                        % (i, rip, now - prev[1], others or 'no other vCPU'))
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def watch(path, stall, now):
    """One sample of the vCPUs; True when QEMU was stopped for a stall."""
    try:
        cpus = vcpus(send(path, 'info registers -a'))
    except OSError:
        return False  # no monitor yet, or QEMU is gone
    if not cpus and not stall.unread:
        # Before Xen is in 64-bit mode; said once, in case it lasts.
        stall.unread = True
        print('watch: no vCPU registers read (yet)', flush=True)
    why = stall.sample(now, cpus)
    if why is None:
        return False
    print('XENPCI-EMULATOR-STALL: %s' % why, flush=True)
    try:
        send(path, 'quit', timeout=5.0)
    except OSError:
        pass  # it quit before it answered
    return True


def follow(log, path, poll=0.2, pid=None, stall=None, every=WATCH_EVERY):
    """Serves the requests in LOG until killed, until PID is gone or until LOG
    is removed; with STALL, stops QEMU when it finds the machine stuck."""
    seen = set()
    next_watch = time.monotonic() + every
    while not os.path.exists(log):
        if pid is not None and not alive(pid):
            return
        time.sleep(poll)
    pos, partial = 0, ''
    while pid is None or alive(pid):
        try:
            f = open(log, 'r', errors='replace')
        except FileNotFoundError:
            return  # the run is over and its files gone
        with f:
            if os.fstat(f.fileno()).st_size < pos:
                pos, partial = 0, ''  # truncated: a new boot, numbered afresh
                seen.clear()
            f.seek(pos)
            chunk = f.read()
            pos = f.tell()
        lines = (partial + chunk).split('\n')
        partial = lines.pop()
        for line in lines:
            req = parse(line)
            if req is None or req[0] in seen:
                continue
            try:
                answer = send(path, req[1])
                seen.add(req[0])  # a request the monitor did not get may come again
            except OSError as e:
                answer = 'monitor error: %s' % e
            print('request %d: %s: %s' % (req[0], req[1], answer), flush=True)
        if stall is not None and time.monotonic() >= next_watch:
            if watch(path, stall, time.monotonic()):
                return
            next_watch = time.monotonic() + every
        time.sleep(poll)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    follow(sys.argv[1], sys.argv[2], pid=int(sys.argv[3]) if len(sys.argv) == 4 else None,
           stall=Stall())


if __name__ == '__main__':
    main()
