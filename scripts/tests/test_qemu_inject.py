# SPDX-License-Identifier: GPL-2.0
"""Unit tests of scripts/qemu-inject.py: only dom0's own request lines reach
QEMU's monitor, each once, as the one HMP command they may name."""

import importlib.util
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

spec = importlib.util.spec_from_file_location(
    'qemu_inject', os.path.join(os.path.dirname(__file__), '..', 'qemu-inject.py'))
qi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qi)


class FakeMonitor:
    """An HMP monitor on a Unix socket that records the commands it gets."""

    def __init__(self, path, answers=None):
        self.commands = []
        self.answers = answers or {}
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
                conn.sendall(echo + b'\r\n' + self.answers.get(cmd, b'done\r\n') + b'(qemu) ')


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


# "info registers -a" of the machine that stalled on 2 December (rust-slots):
# vCPU 0 spinning in Xen's time_calibration_std_rendezvous, waiting for vCPU 1,
# which sat halted in default_idle (lines trimmed to those the watch reads).
STUCK = (b'CPU#0\r\nRAX=0000000000000001 RBX=ffff83007fdafe20\r\n'
         b'RIP=ffff82d040326b9a RFL=00000097 [--S-APC] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n'
         b'ES =0000 0000000000000000 ffffffff 00c00000\r\n'
         b'CPU#1\r\nRAX=0000000000000000 RBX=ffff83007fdb7ef8\r\n'
         b'RIP=ffff82d0402f9c06 RFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n')
RUNNING = STUCK.replace(b'RIP=ffff82d040326b9a', b'RIP=ffffffff81000010')


def cpus(dump):
    return qi.vcpus(qi.clean(dump, 'info registers -a'))


class Watch(unittest.TestCase):
    def test_registers(self):
        self.assertEqual(cpus(STUCK), {0: (0xffff82d040326b9a, False), 1: (0xffff82d0402f9c06, True)})
        # A vCPU still in 32-bit mode is not read, nor given the next one's registers.
        mixed = STUCK.replace(b'RIP=ffff82d040326b9a RFL=00000097',
                              b'EIP=0000b7ee EFL=00000097')
        self.assertEqual(cpus(mixed), {1: (0xffff82d0402f9c06, True)})

    def test_a_spin_in_xen_is_a_stall_after_its_time(self):
        st = qi.Stall(180)
        for t in range(0, 180, 10):
            self.assertIsNone(st.sample(t, cpus(STUCK)), t)
        why = st.sample(180, cpus(STUCK))
        self.assertIn('vCPU 0 ran at Xen address 0xffff82d040326b9a', why)
        self.assertIn('vCPU 1 at 0xffff82d0402f9c06 halted', why)

    def test_what_moves_halts_or_runs_outside_xen_is_not(self):
        st = qi.Stall(180)
        for t in range(0, 1000, 10):
            # Halted in Xen's idle loop; a kernel's address; Xen, moving on.
            self.assertIsNone(st.sample(t, {0: (0xffff82d0402f9c06, True), 1: (0xffffffff81000010, False),
                                            2: (0xffff82d040326b9a + t % 20, False)}), t)

    def test_a_spin_that_ends_starts_the_count_again(self):
        st = qi.Stall(180)
        for t in range(0, 170, 10):
            self.assertIsNone(st.sample(t, cpus(STUCK)))
        self.assertIsNone(st.sample(170, cpus(RUNNING)))
        for t in range(180, 360, 10):
            self.assertIsNone(st.sample(t, cpus(STUCK)), t)
        self.assertIsNotNone(st.sample(360, cpus(STUCK)))

    def test_follow_stops_a_stalled_qemu(self):
        with tempfile.TemporaryDirectory() as d:
            sock, log = os.path.join(d, 'sock'), os.path.join(d, 'log')
            mon = FakeMonitor(sock, {'info registers -a': STUCK})
            with open(log, 'w') as f:
                f.write('boot\n')
            out = io.StringIO()
            with mock.patch('sys.stdout', new=out):
                t = threading.Thread(target=qi.follow, args=(log, sock, 0.01, None, qi.Stall(0.3), 0.05),
                                     daemon=True)
                t.start()
                t.join(10)
            self.assertFalse(t.is_alive())
            self.assertEqual(mon.commands[-1], 'quit')
            self.assertIn('XENPCI-EMULATOR-STALL: vCPU 0 ran at Xen address', out.getvalue())
            mon.srv.close()


if __name__ == '__main__':
    unittest.main()
