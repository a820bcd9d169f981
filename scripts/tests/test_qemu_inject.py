# SPDX-License-Identifier: GPL-2.0
"""Unit tests of scripts/qemu-inject.py: only dom0's own request lines reach
QEMU's monitor, each once, as the one HMP command they may name."""

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

spec = importlib.util.spec_from_file_location(
    'qemu_inject', os.path.join(os.path.dirname(__file__), '..', 'qemu-inject.py'))
qi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qi)


class FakeMonitor:
    """An HMP monitor on a Unix socket that records the commands it gets."""

    def __init__(self, path):
        self.commands = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'QEMU 10 monitor - type \'help\'\r\n(qemu) ')
                data = b''
                while not data.endswith(b'\n'):
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                cmd = data.decode().strip()
                self.commands.append(cmd)
                # QEMU echoes what it reads, a character at a time.
                echo = b''.join(cmd[:i].encode() + b'\x1b[K' for i in range(1, len(cmd) + 1))
                conn.sendall(echo + b'\r\ndone\r\n(qemu) ')


class Parse(unittest.TestCase):
    def test_requests(self):
        self.assertEqual(qi.parse('XENPCI-QEMU-AER 1 nic0 POISON_TLP\n'),
                         (1, 'pcie_aer_inject_error nic0 POISON_TLP'))
        self.assertEqual(qi.parse('XENPCI-QEMU-AER 12 nic0 RCVR\r\n'),
                         (12, 'pcie_aer_inject_error nic0 RCVR'))

    def test_not_requests(self):
        for line in ['(domU) XENPCI-QEMU-AER 1 nic0 POISON_TLP',  # a guest's console
                     'XENPCI-QEMU-AER 1 nic0 POISON_TLP; quit',
                     'XENPCI-QEMU-AER 1 nic0 POISON_TLP\nquit',
                     'XENPCI-QEMU-AER 1 -a nic0 POISON_TLP',
                     'XENPCI-QEMU-AER 1 -c nic0 RCVR',
                     'XENPCI-QEMU-AER x nic0 POISON_TLP',
                     'XENPCI-QEMU-AER 1 nic0',
                     'XENPCI-QEMU-AER 1 nic0 poison',
                     ' XENPCI-QEMU-AER 1 nic0 POISON_TLP']:
            self.assertIsNone(qi.parse(line), line)


class Follow(unittest.TestCase):
    def test_each_request_once(self):
        with tempfile.TemporaryDirectory() as d:
            sock, log = os.path.join(d, 'sock'), os.path.join(d, 'log')
            mon = FakeMonitor(sock)
            with open(log, 'w') as f:
                f.write('boot\n(domU) XENPCI-QEMU-AER 1 nic0 SDN\n'
                        'XENPCI-QEMU-AER 1 nic0 POISON_TLP\n'
                        'XENPCI-QEMU-AER 1 nic0 POISON_TLP\n'  # repeated: once
                        'XENPCI-QEMU-AER 2 nic0 RCV')  # not a whole line yet
            threading.Thread(target=qi.follow, args=(log, sock, 0.05), daemon=True).start()
            time.sleep(0.5)
            with open(log, 'a') as f:
                f.write('R\n')
            end = time.monotonic() + 5
            while len(mon.commands) < 2 and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            mon.srv.close()
            self.assertEqual(mon.commands, ['pcie_aer_inject_error nic0 POISON_TLP',
                                            'pcie_aer_inject_error nic0 RCVR'])

    def test_request_the_monitor_missed_is_sent_again(self):
        with tempfile.TemporaryDirectory() as d:
            sock, log = os.path.join(d, 'sock'), os.path.join(d, 'log')
            with open(log, 'w') as f:
                f.write('XENPCI-QEMU-AER 7 rp2 RCVR\n')  # no monitor yet
            threading.Thread(target=qi.follow, args=(log, sock, 0.05), daemon=True).start()
            time.sleep(0.4)
            mon = FakeMonitor(sock)
            with open(log, 'a') as f:
                f.write('XENPCI-QEMU-AER 7 rp2 RCVR\nXENPCI-QEMU-AER 7 rp2 RCVR\n')
            end = time.monotonic() + 5
            while not mon.commands and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            mon.srv.close()
            self.assertEqual(mon.commands, ['pcie_aer_inject_error rp2 RCVR'])

    def test_ends_when_the_log_is_removed_or_the_runner_gone(self):
        errors = []

        def run(*args):
            try:
                qi.follow(*args)
            except Exception as e:  # a crash is not an end
                errors.append(e)

        with tempfile.TemporaryDirectory() as d:
            sock, log = os.path.join(d, 'sock'), os.path.join(d, 'log')
            with open(log, 'w') as f:
                f.write('boot\n')
            t = threading.Thread(target=run, args=(log, sock, 0.05), daemon=True)
            t.start()
            time.sleep(0.3)
            self.assertTrue(t.is_alive())
            os.unlink(log)
            t.join(5)
            self.assertFalse(t.is_alive())
            # No log yet, and the runner (a child that has exited) gone.
            child = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                                   capture_output=True, text=True, check=True)
            pid = int(child.stdout)
            t = threading.Thread(target=run, args=(log, sock, 0.05, pid), daemon=True)
            t.start()
            t.join(5)
            self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])

    def test_answer_is_one_clean_line(self):
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, 'sock')
            mon = FakeMonitor(sock)
            self.assertEqual(qi.send(sock, 'pcie_aer_inject_error nic0 SDN'), 'done')
            mon.srv.close()


if __name__ == '__main__':
    unittest.main()
