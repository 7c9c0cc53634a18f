#!/usr/bin/env python3
"""test_hardening.py -- the HTTP server against hostile and careless clients.

    GX_DAEMON=build/gpu-extender python3 tests/integration/test_hardening.py [-v]

Each test starts the real daemon (standalone) on loopback ports the kernel picks, with short
deadlines so that the suite runs in well under a minute, and checks one promise of README
"Hardening":

  - a connection whose headers do not arrive in time is closed, even if it trickles bytes;
  - so is one whose body does not, and a kept-alive one that sends no next request;
  - one client address may hold only --max-connections-per-client connections;
  - body bytes are reserved as they arrive: a flood of connections announcing huge bodies
    costs next to nothing, and a body over --max-inflight-bytes gets 503 with Retry-After;
  - after a flood past the connection limit is closed, the daemon serves again at once and
    holds no more descriptors than before (libmicrohttpd's epoll loop did not: it wedged);
  - --ops-listen serves health and metrics only.

Clients bind to different addresses in 127.0.0.0/8 to look like many clients. Standard
library only; every wait is bounded.
"""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_proc import log_text, metric_value, read_port_file, stop  # noqa: E402

DAEMON = os.environ.get("GX_DAEMON", "build/gpu-extender")

HEADER_MS, BODY_MS, IDLE_MS = 1000, 1500, 2500
TICK_S = 0.2  # the watchdog's period
PER_CLIENT = 8


def client_addr(i: int) -> str:
    """The i-th fake client address: 127.1.x.y (never 127.0.0.1, the scheduler's)."""
    return "127.1.%d.%d" % (1 + i // 250, 1 + i % 250)


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    return s


def closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closed s (EOF or reset), or None if it stayed open that long."""
    t0 = time.monotonic()
    s.settimeout(0.05)
    while time.monotonic() - t0 < seconds:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def fd_count(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def vm_kib(pid: int, key: str) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Daemon:
    """The daemon with short deadlines; stopped (and its stderr checked) by close()."""

    def __init__(self, *extra: str, nofile: int | None = None, ops: bool = False,
                 short_deadlines: bool = True):
        self.dir = tempfile.mkdtemp(prefix="gx-hardening-")
        port_file = os.path.join(self.dir, "port")
        ops_file = os.path.join(self.dir, "ops-port")
        args = [DAEMON, "--listen", "127.0.0.1:0", "--port-file", port_file,
                "--max-connections-per-client", str(PER_CLIENT), "--log-level", "warn"]
        if short_deadlines:
            args += ["--header-timeout-ms", str(HEADER_MS), "--body-timeout-ms", str(BODY_MS),
                     "--idle-timeout-ms", str(IDLE_MS)]
        args += extra
        if ops:
            args += ["--ops-listen", "127.0.0.1:0", "--ops-port-file", ops_file]

        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=subprocess.DEVNULL,
                                     preexec_fn=limits)
        self.port = self._read_port(port_file)
        self.ops_port = self._read_port(ops_file) if ops else 0

    def _read_port(self, path: str) -> int:
        return read_port_file(self.proc, path, self.stderr)

    def stderr(self) -> str:
        return log_text(self.log)

    def get(self, path: str, port: int | None = None, timeout: float = 3.0):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()

    def metric(self, name: str) -> float:
        _, body, _ = self.get("/metrics")
        return metric_value(body.decode(), name)

    def close(self):
        stop(self.proc, self.log)


class HardeningTest(unittest.TestCase):
    def daemon(self, *extra: str, **kw) -> Daemon:
        d = Daemon(*extra, **kw)
        self.addCleanup(d.close)
        return d

    def test_header_deadline(self):
        d = self.daemon()
        silent = connect(d.port)
        trickle = connect(d.port)
        t0 = time.monotonic()
        closed = None
        # One header byte every 100 ms: active, but the headers never finish in time.
        for b in b"POST /filter HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                trickle.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - t0
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 6:
                break
        self.assertIsNotNone(closed, "a trickling client kept its connection past the deadline")
        self.assertLess(closed, HEADER_MS / 1000 + 1.5)
        waited = closed_within(silent, 3)
        self.assertIsNotNone(waited, "a silent connection stayed open")
        silent.close()
        trickle.close()
        self.assertGreaterEqual(d.metric("gpu_extender_http_header_timeouts_total"), 2)
        self.assertEqual(d.get("/healthz")[0], 200)

    def test_body_deadline(self):
        d = self.daemon()
        s = connect(d.port)
        s.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"Pod\":")
        t = closed_within(s, BODY_MS / 1000 + 2)
        s.close()
        self.assertIsNotNone(t, "a stalled body kept its connection")
        self.assertGreater(t, BODY_MS / 1000 - 0.5)
        self.assertEqual(d.metric("gpu_extender_http_body_timeouts_total"), 1)

    def test_idle_keepalive(self):
        d = self.daemon()
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        c.request("GET", "/healthz")
        self.assertEqual(c.getresponse().read(), b"ok\n")
        time.sleep(IDLE_MS / 2000)
        c.request("GET", "/healthz")  # inside the idle timeout: the same connection serves
        self.assertEqual(c.getresponse().read(), b"ok\n")
        t = closed_within(c.sock, IDLE_MS / 1000 + 2)
        self.assertIsNotNone(t, "an idle kept-alive connection was never closed")
        self.assertGreater(t, IDLE_MS / 1000 - 0.5)
        c.close()

    def test_per_client_limit(self):
        d = self.daemon()
        held = [connect(d.port, "127.1.9.9") for _ in range(PER_CLIENT)]
        extra = connect(d.port, "127.1.9.9")
        self.assertIsNotNone(closed_within(extra, 2), "a client got more than its share")
        extra.close()
        self.assertEqual(d.get("/healthz")[0], 200)  # another address is served meanwhile
        for s in held:
            s.close()

    def test_budget(self):
        budget = 1 << 20
        d = self.daemon("--max-inflight-bytes", str(budget))
        # Announced over the whole budget: refused before a byte of body is read.
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        c.putrequest("POST", "/filter")
        c.putheader("Content-Length", str(2 * budget))
        c.endheaders()
        r = c.getresponse()
        self.assertEqual(r.status, 503)
        self.assertEqual(r.getheader("Retry-After"), "1")
        self.assertIn(b"--max-inflight-bytes", r.read())
        c.close()
        # Two bodies of 0.7 budget: the first holds its bytes, the second overruns and is
        # refused once sent; the first is then served (400: it is not JSON).
        part = int(budget * 0.7)
        first = connect(d.port, "127.1.0.1")
        first.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % part)
        first.sendall(b"x" * (part - 10))
        time.sleep(0.3)
        self.assertGreaterEqual(d.metric("gpu_extender_http_body_bytes"), part)
        # A chunked body (no length announced) that fits what is left of the budget is read,
        # even where its doubling buffer would not fit: it is not JSON, so 400, not 503.
        chunked = 300000
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        c.request("POST", "/filter", body=iter([b"z" * (chunked // 2), b"z" * (chunked // 2)]),
                  encode_chunked=True)
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 400)
        c.close()
        second = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        second.request("POST", "/filter", body=b"y" * part)
        r = second.getresponse()
        self.assertEqual(r.status, 503)
        self.assertEqual(r.getheader("Retry-After"), "1")
        second.close()
        first.sendall(b"x" * 10)
        first.settimeout(5)
        self.assertTrue(first.recv(100).startswith(b"HTTP/1.1 400"))
        first.close()
        time.sleep(0.3)
        self.assertEqual(d.metric("gpu_extender_http_body_bytes"), 0)
        # Both refusals count: the one announced over the whole budget, and the overrun.
        self.assertEqual(d.metric("gpu_extender_http_budget_refusals_total"), 2)

    def test_huge_announced_bodies_cost_nothing(self):
        d = self.daemon("--max-connections-per-client", "1000")
        pid = d.proc.pid
        vm0, rss0 = vm_kib(pid, "VmSize"), vm_kib(pid, "VmRSS")
        socks = []
        for i in range(900):
            s = connect(d.port, client_addr(i))
            s.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n{")
            socks.append(s)
        time.sleep(0.5)
        vm1, rss1 = vm_kib(pid, "VmSize"), vm_kib(pid, "VmRSS")
        print("900 connections announcing 256 MiB: VmSize +%d MiB, VmRSS +%d MiB"
              % ((vm1 - vm0) >> 10, (rss1 - rss0) >> 10), file=sys.stderr)
        self.assertLess(vm1 - vm0, 4 << 20, "virtual memory grew by gigabytes")
        self.assertLess(rss1 - rss0, 256 << 10, "resident memory grew by more than 256 MiB")
        for s in socks:
            s.close()

    def test_flood_past_the_limit_recovers(self):
        # A hard descriptor limit of 1024 leaves room for 384 connections per listener. The
        # deadlines are the defaults (10 s, 60 s): recovery must not wait for them.
        d = self.daemon("--max-connections-per-client", "1000", nofile=1024,
                        short_deadlines=False)
        self.assertEqual(d.get("/healthz")[0], 200)
        base = fd_count(d.proc.pid)
        socks = []
        for i in range(1000):
            try:
                s = connect(d.port, client_addr(i), timeout=2)
                s.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
                socks.append(s)
            except OSError:
                break
        self.assertGreater(len(socks), 384)
        for s in socks:
            s.close()
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline:
            try:
                status = d.get("/healthz", timeout=1)[0]
                if status == 200 and fd_count(d.proc.pid) <= base + 1:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        self.assertEqual(status, 200, "the daemon did not serve again after the flood")
        self.assertLessEqual(fd_count(d.proc.pid), base + 1, "descriptors were not given back")

    def test_ops_listener(self):
        d = self.daemon(ops=True)
        for path in ("/healthz", "/readyz", "/metrics", "/version"):
            self.assertEqual(d.get(path, d.ops_port)[0], 200, path)
        self.assertEqual(d.get("/debug/policy", d.ops_port)[0], 404)
        c = http.client.HTTPConnection("127.0.0.1", d.ops_port, timeout=3)
        for verb in ("/filter", "/prioritize", "/bind", "/debug/explain"):
            c.request("POST", verb, body=b"{}")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 404, verb)
        c.close()
        self.assertEqual(d.get("/debug/policy")[0], 200)  # the verbs listener has them all


if __name__ == "__main__":
    unittest.main()
