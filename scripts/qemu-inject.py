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
repeated). Nothing else reaches the monitor. What the monitor
answered is printed, one line per request.

Usage: qemu-inject.py LOG SOCKET [PID]
Ends when killed, when process PID (the runner) is gone, or when LOG is
removed (the run is over).
"""

import os
import re
import socket
import sys
import time

REQUEST = re.compile(r'^XENPCI-QEMU-AER ([0-9]{1,6}) ([a-z][a-z0-9_-]{0,31} [A-Z][A-Z_]{1,31})$')
PROMPT = b'(qemu) '


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


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def follow(log, path, poll=0.2, pid=None):
    """Serves the requests in LOG until killed, until PID is gone or until LOG is removed."""
    seen = set()
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
        time.sleep(poll)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    follow(sys.argv[1], sys.argv[2], pid=int(sys.argv[3]) if len(sys.argv) == 4 else None)


if __name__ == '__main__':
    main()
