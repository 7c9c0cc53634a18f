#!/usr/bin/env python3
"""test_tls.py -- HTTPS on the verbs listener, client certificates and rotation.

    GX_DAEMON=build/gpu-extender python3 tests/integration/test_tls.py [-v]

Starts the real daemon (standalone) with --tls-cert, --tls-key and --tls-client-ca on loopback
ports the kernel picks, and checks README "HTTPS and client certificates" the way
kube-scheduler and a curious human would meet it:

  - a client with a certificate from the client CA is served (GET /healthz, and POST /filter
    with a request kube-scheduler really sent), on one kept-alive connection;
  - a client without a certificate, with one from another CA, or with a server certificate
    (no clientAuth) gets 403 with the reason, and the connection is closed;
  - plain HTTP on the HTTPS port and TLS 1.1 fail the handshake (and are counted); TLS 1.2
    and 1.3 work; the operations listener stays plain HTTP;
  - rotation: the files are a Kubernetes Secret volume (symlinks through "..data") that is
    swapped to a new server certificate and key while clients keep connecting: within a few
    seconds new handshakes get the new certificate, no request fails, a kept-alive connection
    and an upload in flight across the swap finish; an invalid replacement (a key that does
    not match) keeps the old certificate serving, logged once and counted.

Certificates come from tests/gen_certs.sh and openssl. Standard library only; every wait is
bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_proc import log_text, metric_value, read_port_file, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
DAEMON = os.environ.get("GX_DAEMON", os.path.join(SRC, "build", "gpu-extender"))


def fixture_dir() -> str:
    for d in (os.environ.get("GX_FIXTURES", ""),
              os.path.join(SRC, "tests", "fixtures", "kube-1.26"),
              os.path.join(SRC, "..", "shared", "fixtures", "kube-1.26")):
        if d and os.path.isdir(os.path.join(d, "extender", "raw")):
            return d
    raise unittest.SkipTest("no kube-1.26 fixtures")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def make_server_cert(pki: str, out_dir: str) -> str:
    """A new key and server certificate signed by pki's CA, as tls.key/tls.crt in out_dir
    (with the CA as ca.crt, as cert-manager writes a Secret). Returns the serial."""
    os.makedirs(out_dir, exist_ok=True)
    key, csr, crt = (os.path.join(out_dir, n) for n in ("tls.key", "tls.csr", "tls.crt"))
    ext = os.path.join(out_dir, "tls.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", key)
    run("openssl", "req", "-new", "-key", key, "-subj", "/CN=gpu-extender", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.crt"),
        "-CAkey", os.path.join(pki, "ca.key"), "-set_serial", "0x" + os.urandom(8).hex(),
        "-days", "30", "-sha256", "-extfile", ext, "-out", crt)
    os.remove(csr)
    os.remove(ext)
    shutil.copy(os.path.join(pki, "ca.crt"), os.path.join(out_dir, "ca.crt"))
    return run("openssl", "x509", "-noout", "-serial", "-in", crt).strip().split("=", 1)[1]


class SecretVolume:
    """A directory laid out as the kubelet lays out a Secret volume: tls.crt -> ..data/tls.crt,
    ..data -> ..<version>, and an update is one atomic rename of ..data."""

    FILES = ("tls.crt", "tls.key", "ca.crt")

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path)
        self.n = 0

    def version_dir(self) -> str:
        self.n += 1
        return os.path.join(self.path, "..v%d" % self.n)

    def publish(self, version_dir: str) -> None:
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(os.path.basename(version_dir), tmp)
        os.rename(tmp, os.path.join(self.path, "..data"))
        for f in self.FILES:
            link = os.path.join(self.path, f)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", f), link)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


class Daemon:
    """The daemon with HTTPS on the verbs listener and a plain operations listener; stopped
    (exit code and stderr checked) by close()."""

    def __init__(self, tmp: str, *tls_args: str):
        self.dir = tempfile.mkdtemp(prefix="daemon-", dir=tmp)
        port_file = os.path.join(self.dir, "port")
        ops_file = os.path.join(self.dir, "ops-port")
        args = [DAEMON, "--listen", "127.0.0.1:0", "--port-file", port_file,
                "--ops-listen", "127.0.0.1:0", "--ops-port-file", ops_file, *tls_args]
        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=subprocess.DEVNULL)
        self.port = self._read_port(port_file)
        self.ops_port = self._read_port(ops_file)

    def _read_port(self, path: str) -> int:
        return read_port_file(self.proc, path, self.stderr)

    def stderr(self) -> str:
        return log_text(self.log)

    def metric(self, name: str) -> float:
        c = http.client.HTTPConnection("127.0.0.1", self.ops_port, timeout=5)
        try:
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
        finally:
            c.close()
        return metric_value(body, name)

    def close(self) -> None:
        err = stop(self.proc, self.log)
        assert self.proc.returncode == 0, "exit code %d:\n%s" % (self.proc.returncode, err)


def client_context(ca: str, cert: str | None = None, key: str | None = None,
                   version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; the point here is
            # that the server refuses them, so the client must be able to offer them.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1, on purpose
            ctx.minimum_version = version
            ctx.maximum_version = version
    return ctx


def https(port: int, ctx: ssl.SSLContext, method: str = "GET", path: str = "/healthz",
          body: bytes | None = None):
    """One request on a new connection: (status, body, headers, server certificate serial)."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        c.connect()
        serial = c.sock.getpeercert()["serialNumber"]
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        return r.status, r.read(), r, serial
    finally:
        c.close()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(DAEMON):
            raise unittest.SkipTest("no daemon at " + DAEMON)
        cls.tmp = tempfile.mkdtemp(prefix="gx-tls-")
        cls.pki = os.path.join(cls.tmp, "pki")
        subprocess.run(["bash", os.path.join(SRC, "tests", "gen_certs.sh"), cls.pki],
                       check=True, capture_output=True)
        with open(os.path.join(fixture_dir(), "extender", "raw",
                               "filter.args.nodecache-false.json"), "rb") as f:
            cls.filter_body = f.read()

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("GX_KEEP_TMP") != "1":
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def p(self, name: str) -> str:
        return os.path.join(self.pki, name)

    def daemon(self, *args: str) -> Daemon:
        d = Daemon(self.tmp, *args)
        self.addCleanup(d.close)
        return d

    def mtls_daemon(self) -> Daemon:
        return self.daemon("--tls-cert", self.p("server.crt"), "--tls-key", self.p("server.key"),
                           "--tls-client-ca", self.p("ca.crt"))

    def good(self, **kw) -> ssl.SSLContext:
        return client_context(self.p("ca.crt"), self.p("client.crt"), self.p("client.key"), **kw)

    def test_trusted_client_is_served(self):
        d = self.mtls_daemon()
        status, body, _, _ = https(d.port, self.good())
        self.assertEqual((status, body), (200, b"ok\n"))
        # kube-scheduler keeps its connection alive: several verbs on one connection.
        c = http.client.HTTPSConnection("127.0.0.1", d.port, context=self.good(), timeout=10)
        for _ in range(3):
            c.request("POST", "/filter", body=self.filter_body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            reply = json.loads(r.read())
            self.assertEqual(r.status, 200)
            self.assertEqual(reply["Nodes"]["items"][0]["metadata"]["name"], "gpu-node-1")
        c.close()
        self.assertEqual(d.metric("gpu_extender_tls_client_refusals_total"), 0)

    def test_untrusted_clients_get_403(self):
        d = self.mtls_daemon()
        cases = [
            ("no certificate", client_context(self.p("ca.crt")),
             b"no client certificate was sent"),
            ("another CA's client", client_context(self.p("ca.crt"), self.p("other-client.crt"),
                                                   self.p("other-client.key")),
             b"issuer is unknown"),
            ("a server certificate", client_context(self.p("ca.crt"), self.p("server.crt"),
                                                    self.p("server.key")),
             b"does not match the intended purpose"),
        ]
        for name, ctx, reason in cases:
            with self.subTest(name):
                status, body, r, _ = https(d.port, ctx)
                self.assertEqual(status, 403)
                self.assertTrue(body.startswith(b"gpu-extender: client certificate refused: "),
                                body)
                self.assertIn(reason, body)
                self.assertEqual(r.getheader("Connection"), "close")
        # A verb with a body is refused before the body is read, then the connection closes.
        status, body, _, _ = https(d.port, client_context(self.p("ca.crt")), "POST", "/filter",
                                   self.filter_body)
        self.assertEqual(status, 403)
        self.assertEqual(d.metric("gpu_extender_tls_client_refusals_total"), 4)
        self.assertEqual(d.metric('gpu_extender_requests_total{verb="filter",outcome="ok"}'), 0)
        # The first refusal is a warning, the next ones within 10 s are at debug.
        self.assertEqual(d.stderr().count("refused a client without a trusted certificate"), 1)

    def test_plain_http_and_old_tls_fail(self):
        d = self.mtls_daemon()
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
        with self.assertRaises((http.client.HTTPException, OSError)):
            c.request("GET", "/healthz")
            c.getresponse().read()
        c.close()
        with self.assertRaises(OSError):  # ssl.SSLError is an OSError
            https(d.port, self.good(version=ssl.TLSVersion.TLSv1_1))
        # Both reached the server's handshake and were refused there, not by the client.
        deadline = time.monotonic() + 5
        while d.metric("gpu_extender_tls_handshake_failures_total") < 2:
            self.assertLess(time.monotonic(), deadline, "handshake failures were not counted")
            time.sleep(0.05)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version.name):
                self.assertEqual(https(d.port, self.good(version=version))[0], 200)
        self.assertNotIn("level=warn mod=http msg=\"libmicrohttpd\"", d.stderr())

    def test_ops_listener_stays_plain(self):
        d = self.mtls_daemon()
        for path in ("/healthz", "/metrics"):
            c = http.client.HTTPConnection("127.0.0.1", d.ops_port, timeout=5)
            c.request("GET", path)
            self.assertEqual(c.getresponse().status, 200, path)
            c.close()

    def test_server_auth_only(self):
        d = self.daemon("--tls-cert", self.p("server.crt"), "--tls-key", self.p("server.key"))
        status, body, _, _ = https(d.port, client_context(self.p("ca.crt")))
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_start_refuses_bad_files(self):
        cases = [
            (["--tls-cert", self.p("server.crt")], 2, "--tls-cert and --tls-key go together"),
            (["--tls-cert", self.p("server.crt"), "--tls-key", self.p("client.key")], 1,
             "do not match"),
            (["--tls-cert", self.p("server.crt"), "--tls-key", self.p("server.key"),
              "--tls-client-ca", self.p("nope.crt")], 1, "nope.crt: cannot open"),
        ]
        for args, code, want in cases:
            with self.subTest(want):
                r = subprocess.run([DAEMON, "--listen", "127.0.0.1:0", *args],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(want, r.stderr)

    def test_rotation(self):
        vol = SecretVolume(os.path.join(self.tmp, "secret"))
        v1 = vol.version_dir()
        serial1 = make_server_cert(self.pki, v1)
        vol.publish(v1)
        d = self.daemon("--tls-cert", vol.file("tls.crt"), "--tls-key", vol.file("tls.key"),
                        "--tls-client-ca", vol.file("ca.crt"))
        self.assertEqual(https(d.port, self.good())[3], serial1)

        # Clients that keep going across the swaps: new connections (each a new handshake),
        # and one kept-alive connection, as kube-scheduler has.
        stop = threading.Event()
        seen: list[tuple[float, str]] = []
        failures: list[str] = []

        def poll_new_connections():
            while not stop.is_set():
                try:
                    status, _, _, serial = https(d.port, self.good())
                    if status != 200:
                        failures.append("status %d" % status)
                    seen.append((time.monotonic(), serial))
                except Exception as e:  # noqa: BLE001 -- every failure counts
                    failures.append("new connection: %r" % e)
                time.sleep(0.01)

        kept = http.client.HTTPSConnection("127.0.0.1", d.port, context=self.good(), timeout=10)
        kept_serials: set[str] = set()

        def poll_kept_alive():
            while not stop.is_set():
                try:
                    kept.request("POST", "/filter", body=self.filter_body,
                                 headers={"Content-Type": "application/json"})
                    r = kept.getresponse()
                    r.read()
                    if r.status != 200:
                        failures.append("kept-alive status %d" % r.status)
                    kept_serials.add(kept.sock.getpeercert()["serialNumber"])
                except Exception as e:  # noqa: BLE001
                    failures.append("kept-alive connection: %r" % e)
                    return
                time.sleep(0.02)

        # An upload in flight across the swap: half the body before, the rest after.
        upload = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        upload = self.good().wrap_socket(upload, server_hostname="127.0.0.1")
        upload.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(self.filter_body))
        half = len(self.filter_body) // 2
        upload.sendall(self.filter_body[:half])

        threads = [threading.Thread(target=poll_new_connections),
                   threading.Thread(target=poll_kept_alive)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            v2 = vol.version_dir()
            serial2 = make_server_cert(self.pki, v2)
            swapped_at = time.monotonic()
            vol.publish(v2)
            deadline = swapped_at + 5
            while not any(s == serial2 for _, s in seen):
                self.assertLess(time.monotonic(), deadline,
                                "new handshakes never got the new certificate")
                time.sleep(0.05)
            took = min(t for t, s in seen if s == serial2) - swapped_at
            self.assertEqual(d.metric("gpu_extender_tls_reloads_total"), 1)

            upload.sendall(self.filter_body[half:])
            reply = upload.recv(100)
            self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
            upload.close()

            # An invalid replacement: a new certificate with the previous key.
            v3 = vol.version_dir()
            make_server_cert(self.pki, v3)
            shutil.copy(os.path.join(v2, "tls.key"), os.path.join(v3, "tls.key"))
            vol.publish(v3)
            deadline = time.monotonic() + 5
            while d.metric("gpu_extender_tls_reload_failures_total") < 1:
                self.assertLess(time.monotonic(), deadline, "the invalid set was not refused")
                time.sleep(0.05)
            refused_at = time.monotonic()
            time.sleep(2.5)  # the watcher looks again twice: still one refusal
            self.assertEqual(d.metric("gpu_extender_tls_reload_failures_total"), 1)
            self.assertEqual(d.stderr().count("TLS reload refused"), 1)
            after = [s for t, s in seen if t > refused_at]
            self.assertTrue(after and all(s == serial2 for s in after), after[-5:])

            # Fixed: served again from the next change.
            v4 = vol.version_dir()
            serial4 = make_server_cert(self.pki, v4)
            vol.publish(v4)
            deadline = time.monotonic() + 5
            while not any(s == serial4 for _, s in seen):
                self.assertLess(time.monotonic(), deadline, "the fixed set was not taken")
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
            kept.close()
        self.assertEqual(failures, [])
        # New handshakes never went back to an older certificate once a newer one served.
        order = {serial1: 1, serial2: 2, serial4: 4}
        ranks = [order[s] for _, s in seen]
        self.assertEqual(ranks, sorted(ranks))
        # The kept-alive connection was never dropped: it kept its first certificate.
        self.assertEqual(kept_serials, {serial1})
        self.assertEqual(d.metric("gpu_extender_tls_reloads_total"), 2)
        print("\nrotation: new handshakes saw the new certificate %.2f s after the swap; "
              "%d requests on new connections, none failed" % (took, len(seen)))


if __name__ == "__main__":
    unittest.main()
