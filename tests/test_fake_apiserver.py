#!/usr/bin/env python3
"""Self-test of tests/fake_apiserver.py (stdlib unittest).

    python3 tests/test_fake_apiserver.py [-v]

Starts the fake as a subprocess (plain HTTP, and HTTPS with client-cert
auth) and checks it against the real kube-apiserver 1.26 captures.
The captures are tests/fixtures/kube-1.26/apiserver; KUBE_FIXTURES names another
capture's apiserver dir.
"""

import base64
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_apiserver.py")
GEN_CERTS = os.path.join(HERE, "gen_certs.sh")


def _find_fixtures():
    cands = [os.environ.get("KUBE_FIXTURES", ""), os.path.join(HERE, "fixtures", "kube-1.26", "apiserver")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "list-nodes.200.json")):
            return os.path.abspath(c)
    return None


FIX = _find_fixtures()
TOKEN = "t1"


def raw(name):
    with open(os.path.join(FIX, "raw", name), "rb") as f:
        return f.read()


class Fake:
    """One fake apiserver process."""

    def __init__(self, *extra, tls_dir=None, client_ca=False):
        self.tmp = tempfile.TemporaryDirectory(prefix="fakeapi-")
        self.port_file = os.path.join(self.tmp.name, "port")
        self.log = os.path.join(self.tmp.name, "log")
        args = [sys.executable, FAKE, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                "--token", TOKEN, "--seed-fixtures", FIX, "--log", self.log, "--bookmark-interval", "0.3"]
        self.ctx = None
        if tls_dir:
            args += ["--tls-cert", os.path.join(tls_dir, "server.crt"),
                     "--tls-key", os.path.join(tls_dir, "server.key")]
            if client_ca:
                args += ["--client-ca", os.path.join(tls_dir, "ca.crt")]
            self.ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.crt"))
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("fake exited: " + self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise RuntimeError("fake did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def conn(self, timeout=5, ctx=None):
        if self.ctx is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx or self.ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def req(self, method, path, body=None, token=TOKEN, ctype="application/json", headers=None, conn=None):
        own = conn is None
        c = conn or self.conn()
        h = {"User-Agent": "fake-selftest", "Accept": "application/json"}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if ctype:
                h["Content-Type"] = ctype
        h.update(headers or {})
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, r, data
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, **kw):
        st, _, data = self.req(method, path, body, **kw)
        return st, json.loads(data) if data else None

    def admin(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10) if self.ctx is None else \
            http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.ctx)
        try:
            c.request(method, "/_admin" + path, body=None if body is None else json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            assert r.status == 200, (r.status, data)
            return json.loads(data)
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        rc = self.proc.returncode
        self.tmp.cleanup()
        return rc


class Watch:
    def __init__(self, fake, path, token=TOKEN, timeout=5):
        self.c = fake.conn(timeout=timeout)
        h = {"Authorization": "Bearer " + token} if token else {}
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()

    def next(self):
        line = self.r.readline()
        if not line:
            return None
        return json.loads(line)

    def until(self, pred, limit=50):
        for _ in range(limit):
            ev = self.next()
            if ev is None:
                return None
            if pred(ev):
                return ev
        return None

    def close(self):
        self.c.close()


def pod_manifest(name, gpus=1, node=None, labels=None, finalizers=None, annotations=None):
    m = {"name": name}
    if labels:
        m["labels"] = labels
    if finalizers:
        m["finalizers"] = finalizers
    if annotations:
        m["annotations"] = annotations
    spec = {"containers": [{"name": "cuda", "image": "nvidia/cuda:12.0.0-base-ubuntu22.04",
                            "command": ["sleep", "infinity"],
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)},
                                          "requests": {"cpu": "100m"}}}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec}


def binding(name, node, annotations=None, uid=None, ns="default"):
    m = {"name": name, "namespace": ns}
    if uid:
        m["uid"] = uid
    if annotations:
        m["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Binding", "metadata": m,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


PODS = "/api/v1/namespaces/default/pods"


def setUpModule():
    if FIX is None:
        raise unittest.SkipTest("kube-1.26 apiserver fixtures not found (set KUBE_FIXTURES)")


class PlainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.f = Fake()

    @classmethod
    def tearDownClass(cls):
        cls.f.stop()

    def setUp(self):
        self.f.admin("DELETE", "/fault")

    # ---- reads -------------------------------------------------------------

    def test_list_pagination_and_selectors(self):
        f = self.f
        st, nl = f.json("GET", "/api/v1/nodes")
        self.assertEqual(st, 200)
        self.assertEqual((nl["kind"], nl["apiVersion"]), ("NodeList", "v1"))
        self.assertEqual([n["metadata"]["name"] for n in nl["items"]], ["gpu-node-1", "gpu-node-2", "gpu-node-3"])
        self.assertNotIn("kind", nl["items"][0])  # list items carry no kind, like the capture
        self.assertGreaterEqual(int(nl["metadata"]["resourceVersion"]), 1000)
        # pagination
        st, p1 = f.json("GET", "/api/v1/nodes?limit=2")
        self.assertEqual(len(p1["items"]), 2)
        self.assertEqual(p1["metadata"]["remainingItemCount"], 1)
        tok = p1["metadata"]["continue"]
        st, p2 = f.json("GET", "/api/v1/nodes?limit=2&continue=" + quote(tok))
        self.assertEqual(st, 200)
        self.assertEqual([n["metadata"]["name"] for n in p2["items"]], ["gpu-node-3"])
        self.assertNotIn("continue", p2["metadata"])
        self.assertEqual(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"])
        # selectors
        st, l1 = f.json("GET", "/api/v1/nodes?labelSelector=" + quote("nvidia.com/gpu.present=true"))
        self.assertEqual(len(l1["items"]), 3)
        st, l2 = f.json("GET", "/api/v1/nodes?labelSelector=" + quote("nvidia.com/gpu.count=4"))
        self.assertEqual([n["metadata"]["name"] for n in l2["items"]], ["gpu-node-3"])
        st, l3 = f.json("GET", "/api/v1/nodes?labelSelector=no-such-label")
        self.assertEqual(l3["items"], [])
        st, pl = f.json("GET", "/api/v1/pods?fieldSelector=" + quote("spec.nodeName=gpu-node-1"))
        self.assertEqual(pl["kind"], "PodList")
        self.assertEqual(sorted(p["metadata"]["name"] for p in pl["items"]),
                         ["cpu-pod-1", "gpu-pod-1", "unscheduled-a"])
        st, pl = f.json("GET", PODS + "?labelSelector=app&fieldSelector=" + quote("spec.nodeName=gpu-node-1"))
        self.assertEqual([p["metadata"]["name"] for p in pl["items"]], ["gpu-pod-1"])
        # garbage continue token: the real server answers 400 BadRequest
        st, e = f.json("GET", "/api/v1/nodes?limit=1&continue=garbage!!")
        self.assertEqual((st, e["reason"], e["code"]), (400, "BadRequest", 400))
        self.assertTrue(e["message"].startswith("invalid continue token"))

    def test_get_and_404_bodies_are_the_captured_ones(self):
        f = self.f
        st, _, body = f.req("GET", PODS + "/no-such-pod")
        self.assertEqual(st, 404)
        self.assertEqual(body, raw("get-pod.404-not-found.json"))
        st, _, body = f.req("GET", "/api/v1/nodes", token="wrong")
        self.assertEqual(st, 401)
        self.assertEqual(body, raw("get-nodes.401-unauthorized.json"))
        st, r, body = f.req("GET", "/api/v1/nodes/gpu-node-1")
        self.assertEqual(st, 200)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertEqual(int(r.getheader("Content-Length")), len(body))
        self.assertEqual(json.loads(body), json.loads(raw("list-nodes.200.json"))["items"][0] |
                         {"kind": "Node", "apiVersion": "v1"})
        st, e = f.json("GET", "/api/v1/nodes/nope")
        self.assertEqual(e["message"], 'nodes "nope" not found')

    def test_keepalive_many_requests_one_connection(self):
        c = self.f.conn()
        try:
            for _ in range(5):
                st, r, body = self.f.req("GET", "/api/v1/nodes/gpu-node-2", conn=c)
                self.assertEqual(st, 200)
                self.assertFalse(r.will_close)
            sock1 = c.sock
            self.f.req("GET", PODS + "/no-such-pod", conn=c)
            self.assertIs(c.sock, sock1)
        finally:
            c.close()

    # ---- binding -----------------------------------------------------------

    def test_binding_statuses(self):
        f = self.f
        # 409 on the pod the capture used (seeded bound to gpu-node-1): byte-identical
        st, _, body = f.req("POST", PODS + "/gpu-pod-1/binding",
                            binding("gpu-pod-1", "gpu-node-2", uid="50cd77ff-fa80-4118-a673-8ae6f01d07b9"))
        self.assertEqual(st, 409)
        self.assertEqual(body, raw("post-binding.409-already-assigned.json"))
        # 404
        b = binding("no-such-pod", "gpu-node-1")
        del b["metadata"]["namespace"]
        st, _, body = f.req("POST", PODS + "/no-such-pod/binding", b)
        self.assertEqual((st, body), (404, raw("post-binding.404-pod-not-found.json")))
        # 400 name mismatch
        st, _, body = f.req("POST", PODS + "/gpu-pod-1/binding", binding("another-name", "gpu-node-1"))
        self.assertEqual((st, body), (400, raw("post-binding.400-name-mismatch.json")))
        # 201: annotations merged, PodScheduled set, one MODIFIED event
        st, pod = f.json("POST", PODS, pod_manifest("bind-me", 2, labels={"app": "gpu-test"},
                                                    annotations={"keep": "me"}))
        self.assertEqual(st, 201)
        c = pod["spec"]["containers"][0]["resources"]
        self.assertEqual(c["requests"]["nvidia.com/gpu"], "2")  # admission copies limits into requests
        self.assertEqual(pod["status"], {"phase": "Pending", "qosClass": "Burstable"})
        rv0 = pod["metadata"]["resourceVersion"]
        w = Watch(f, PODS + "?watch=1&resourceVersion=" + rv0)
        try:
            st, _, body = f.req("POST", PODS + "/bind-me/binding",
                                binding("bind-me", "gpu-node-2", annotations={"gpu.example.com/assigned": "0,1"},
                                        uid="00000000-0000-0000-0000-000000000000"))
            self.assertEqual((st, body), (201, raw("post-binding.201-created.json")))
            ev = w.next()
        finally:
            w.close()
        self.assertEqual(ev["type"], "MODIFIED")
        got = ev["object"]
        self.assertEqual(got["spec"]["nodeName"], "gpu-node-2")
        self.assertEqual(got["metadata"]["annotations"], {"keep": "me", "gpu.example.com/assigned": "0,1"})
        self.assertEqual(int(got["metadata"]["resourceVersion"]), int(rv0) + 1)
        conds = got["status"]["conditions"]
        self.assertEqual([(x["type"], x["status"], x["lastProbeTime"]) for x in conds],
                         [("PodScheduled", "True", None)])
        st, again = f.json("GET", PODS + "/bind-me")
        self.assertEqual(again, got)
        # the version before the bind is intact: the bind copies what it changes and shares the
        # rest, so a list at rv0 (a continue token pinned there) must still see the pod unbound
        tok = base64.urlsafe_b64encode(json.dumps(
            {"v": "meta.k8s.io/v1", "rv": int(rv0), "start": "bind-me"}).encode()).decode().rstrip("=")
        st, old = f.json("GET", PODS + "?limit=1&continue=" + tok)
        self.assertEqual(st, 200)
        before = old["items"][0]
        self.assertEqual(before["metadata"]["name"], "bind-me")
        self.assertEqual(before["metadata"]["resourceVersion"], rv0)
        self.assertNotIn("nodeName", before["spec"])
        self.assertEqual(before["metadata"]["annotations"], {"keep": "me"})
        self.assertEqual(before["status"], {"phase": "Pending", "qosClass": "Burstable"})
        # second binding: conflict with the exact message
        st, e = f.json("POST", PODS + "/bind-me/binding", binding("bind-me", "gpu-node-1"))
        self.assertEqual(st, 409)
        self.assertEqual(e["message"], 'Operation cannot be fulfilled on pods/binding "bind-me": pod bind-me is '
                                       'already assigned to node "gpu-node-2"')
        # node existence is not checked
        f.json("POST", PODS, pod_manifest("bind-nowhere"))
        st, _, body = f.req("POST", PODS + "/bind-nowhere/binding", binding("bind-nowhere", "no-such-node"))
        self.assertEqual((st, body), (201, raw("post-binding.201-nonexistent-node-accepted.json")))

    def test_binding_pod_being_deleted(self):
        f = self.f
        # a finalizer keeps the unbound pod around with a deletionTimestamp
        f.json("POST", PODS, pod_manifest("held", finalizers=["test/hold"]))
        st, pod = f.json("DELETE", PODS + "/held")
        self.assertEqual(st, 200)
        self.assertIn("deletionTimestamp", pod["metadata"])
        st, e = f.json("POST", PODS + "/held/binding", binding("held", "gpu-node-1"))
        self.assertEqual(st, 409)
        self.assertEqual(e["reason"], "Conflict")
        self.assertEqual(e["details"], {"name": "held", "kind": "pods/binding"})
        self.assertEqual(e["message"], 'Operation cannot be fulfilled on pods/binding "held": pod held is being '
                                       "deleted, cannot be assigned to a host")
        f.admin("POST", "/force-delete", {"namespace": "default", "name": "held"})
        self.assertEqual(f.json("GET", PODS + "/held")[0], 404)

    # ---- patch / delete ------------------------------------------------------

    def test_merge_patch(self):
        f = self.f
        f.json("POST", PODS, pod_manifest("patch-me", annotations={"a": "1", "b": "2"}))
        st, p = f.json("PATCH", PODS + "/patch-me", {"metadata": {"annotations": {"a": None, "c": "3"}}},
                       ctype="application/merge-patch+json")
        self.assertEqual(st, 200)
        self.assertEqual(p["kind"], "Pod")
        self.assertEqual(p["metadata"]["annotations"], {"b": "2", "c": "3"})
        rv = p["metadata"]["resourceVersion"]
        # a no-op patch keeps the resourceVersion
        st, p2 = f.json("PATCH", PODS + "/patch-me", {"metadata": {"annotations": {"c": "3"}}},
                        ctype="application/merge-patch+json")
        self.assertEqual(p2["metadata"]["resourceVersion"], rv)
        st, p3 = f.json("PATCH", PODS + "/patch-me", {"metadata": {"labels": {"x": "y"}}},
                        ctype="application/strategic-merge-patch+json")
        self.assertEqual((st, p3["metadata"]["labels"]), (200, {"x": "y"}))
        st, p4 = f.json("PATCH", PODS + "/patch-me",
                        [{"op": "add", "path": "/metadata/annotations/gpu.example.com~1ids", "value": "0"}],
                        ctype="application/json-patch+json")
        self.assertEqual(p4["metadata"]["annotations"]["gpu.example.com/ids"], "0")
        st, e = f.json("PATCH", PODS + "/patch-me", {"metadata": {}}, ctype="application/apply-patch+yaml")
        self.assertEqual((st, e["reason"]), (415, "UnsupportedMediaType"))
        st, e = f.json("PATCH", PODS + "/patch-me", {"metadata": {}}, ctype="text/plain")
        self.assertEqual(st, 415)
        st, e = f.json("PATCH", PODS + "/patch-me", {"metadata": {"resourceVersion": "1", "labels": {"x": "z"}}},
                       ctype="application/merge-patch+json")
        self.assertEqual((st, e["reason"]), (409, "Conflict"))
        st, e = f.json("PATCH", PODS + "/patch-me", {"spec": {"nodeName": "gpu-node-1"}},
                       ctype="application/merge-patch+json")
        self.assertEqual((st, e["reason"]), (422, "Invalid"))
        st, e = f.json("PATCH", PODS + "/nope", {}, ctype="application/merge-patch+json")
        self.assertEqual(st, 404)
        st, n = f.json("PATCH", "/api/v1/nodes/gpu-node-3", {"spec": {"unschedulable": True}},
                       ctype="application/merge-patch+json")
        self.assertEqual((st, n["spec"]), (200, {"unschedulable": True}))

    def test_create_conflict_and_delete_semantics(self):
        f = self.f
        st, pod = f.json("POST", PODS, pod_manifest("del-bound", node="gpu-node-3"))
        self.assertEqual(st, 201)
        st, e = f.json("POST", PODS, pod_manifest("del-bound"))
        self.assertEqual(st, 409)
        self.assertEqual(e, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                             "message": 'pods "del-bound" already exists', "reason": "AlreadyExists",
                             "details": {"name": "del-bound", "kind": "pods"}, "code": 409})
        w = Watch(f, PODS + "?watch=1&resourceVersion=" + pod["metadata"]["resourceVersion"])
        try:
            st, p = f.json("DELETE", PODS + "/del-bound")  # graceful: stays, Terminating
            self.assertEqual(st, 200)
            self.assertEqual(p["metadata"]["deletionGracePeriodSeconds"], 30)
            self.assertEqual(f.json("GET", PODS + "/del-bound")[0], 200)
            st, p = f.json("DELETE", PODS + "/del-bound")  # still pending: no change
            self.assertEqual(st, 200)
            st, p = f.json("DELETE", PODS + "/del-bound?gracePeriodSeconds=0")
            self.assertEqual(st, 200)
            self.assertEqual(f.json("GET", PODS + "/del-bound")[0], 404)
            types = [(e["type"], e["object"]["metadata"].get("deletionGracePeriodSeconds")) for e in
                     (w.next(), w.next(), w.next())]
        finally:
            w.close()
        # like the captured force delete: MODIFIED (grace 30), MODIFIED (grace 0), DELETED
        self.assertEqual(types, [("MODIFIED", 30), ("MODIFIED", 0), ("DELETED", 0)])
        # an unbound pod is removed at once
        f.json("POST", PODS, pod_manifest("del-unbound"))
        st, _ = f.json("DELETE", PODS + "/del-unbound")
        self.assertEqual(f.json("GET", PODS + "/del-unbound")[0], 404)

    # ---- watch ---------------------------------------------------------------

    def test_watch_from_rv_and_selector(self):
        f = self.f
        rv = f.json("GET", PODS)[1]["metadata"]["resourceVersion"]
        w = Watch(f, PODS + "?watch=1&resourceVersion=" + rv)
        sel = Watch(f, "/api/v1/pods?watch=true&resourceVersion=" + rv + "&fieldSelector=" +
                    quote("spec.nodeName=gpu-node-3"))
        try:
            self.assertEqual(w.r.status, 200)
            self.assertEqual(w.r.getheader("Transfer-Encoding"), "chunked")
            f.json("POST", PODS, pod_manifest("watched"))
            f.req("PATCH", PODS + "/watched", {"metadata": {"labels": {"l": "1"}}},
                  ctype="application/merge-patch+json")
            f.req("POST", PODS + "/watched/binding", binding("watched", "gpu-node-3"))
            f.req("DELETE", PODS + "/watched?gracePeriodSeconds=0")
            evs = [w.next() for _ in range(5)]
            self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"])
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
            self.assertEqual(rvs, list(range(int(rv) + 1, int(rv) + 6)))
            self.assertTrue(all(e["object"]["kind"] == "Pod" for e in evs))
            # the nodeName watch sees the pod appear when bound (ADDED), then go
            sevs = [sel.next() for _ in range(3)]
            self.assertEqual([e["type"] for e in sevs], ["ADDED", "MODIFIED", "DELETED"])
            self.assertEqual(sevs[0]["object"]["spec"]["nodeName"], "gpu-node-3")
        finally:
            w.close()
            sel.close()
        # no resourceVersion: the current state first, as ADDED
        w = Watch(f, "/api/v1/nodes?watch=1&timeoutSeconds=1")
        try:
            evs = []
            while True:
                e = w.next()
                if e is None:
                    break
                evs.append(e)
        finally:
            w.close()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "gpu-node-1"), ("ADDED", "gpu-node-2"), ("ADDED", "gpu-node-3")])

    def test_watch_bookmarks(self):
        f = self.f
        rv = f.json("GET", "/api/v1/nodes")[1]["metadata"]["resourceVersion"]
        t0 = time.monotonic()
        w = Watch(f, "/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv)
        try:
            ev = w.next()
        finally:
            w.close()
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertEqual((ev["object"]["kind"], ev["object"]["apiVersion"]), ("Node", "v1"))
        self.assertGreaterEqual(int(ev["object"]["metadata"]["resourceVersion"]), int(rv))

    def test_client_disconnect_mid_stream(self):
        f = self.f
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", f.port))
            s.sendall(b"GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t1\r\n\r\n")
            s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        f.json("POST", PODS, pod_manifest("after-disconnect"))
        self.assertEqual(f.json("GET", PODS + "/after-disconnect")[0], 200)
        # the server notices the closed watches and drops them
        deadline = time.monotonic() + 3
        while f.admin("GET", "/watches") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(f.admin("GET", "/watches"), [])

    def test_close_watches(self):
        f = self.f
        w = Watch(f, "/api/v1/nodes?watch=1")
        try:
            for _ in range(3):
                w.next()
            self.assertEqual(len(f.admin("GET", "/watches?min=1&wait=2")), 1)
            self.assertEqual(f.admin("POST", "/close-watches", {"mode": "end"})["closed"], 1)
            self.assertIsNone(w.next())
        finally:
            w.close()

    # ---- faults and recording ------------------------------------------------

    def test_faults(self):
        f = self.f
        fl = f.admin("POST", "/fault", {"match": "^GET /api/v1/nodes$", "action": "status", "status": 503,
                                        "times": 2})
        self.assertEqual(fl["remaining"], 2)
        self.assertEqual(f.req("GET", "/api/v1/nodes")[0], 503)
        st, e = f.json("GET", "/api/v1/nodes")
        self.assertEqual((st, e["reason"], e["code"]), (503, "ServiceUnavailable", 503))
        self.assertEqual(f.req("GET", "/api/v1/nodes")[0], 200)
        self.assertEqual(f.admin("GET", "/fault")[0]["hits"], 2)
        # drop: the socket closes without an answer, once
        f.admin("POST", "/fault", {"match": "nodes/gpu-node-1", "action": "drop"})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            f.req("GET", "/api/v1/nodes/gpu-node-1")
        self.assertEqual(f.req("GET", "/api/v1/nodes/gpu-node-1")[0], 200)
        # stall
        f.admin("POST", "/fault", {"match": "nodes/gpu-node-2", "action": "stall", "seconds": 0.6})
        t0 = time.monotonic()
        self.assertEqual(f.req("GET", "/api/v1/nodes/gpu-node-2")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.6)
        t0 = time.monotonic()
        f.req("GET", "/api/v1/nodes/gpu-node-2")
        self.assertLess(time.monotonic() - t0, 0.5)
        # close-after-headers: the announced body never comes
        f.admin("POST", "/fault", {"match": "nodes/gpu-node-3", "action": "close-after-headers"})
        with self.assertRaises(http.client.IncompleteRead):
            f.req("GET", "/api/v1/nodes/gpu-node-3")
        # 429 is plain text with Retry-After, like the real server
        f.admin("POST", "/fault", {"match": "nodes/gpu-node-3", "action": "status", "status": 429})
        st, r, body = f.req("GET", "/api/v1/nodes/gpu-node-3")
        self.assertEqual((st, r.getheader("Retry-After")), (429, "1"))
        self.assertEqual([x["remaining"] for x in f.admin("GET", "/fault")], [0, 0, 0, 0, 0])

    def test_stall_whose_client_left_is_not_handled(self):
        # The client gives up during the stall and the fault is cleared at once, before the
        # fake's next look at the socket: the binding must still not be stored, as its client
        # was told nothing landed (this let a late bind through in a CI run of bind_races).
        f = self.f
        st, _ = f.json("POST", PODS, pod_manifest("stall-left", 1))
        self.assertEqual(st, 201)
        path = PODS + "/stall-left/binding"
        f.admin("POST", "/fault", {"match": "^POST " + path + "$", "action": "stall",
                                   "seconds": 30})
        c = f.conn(timeout=0.3)
        with self.assertRaises(socket.timeout):
            f.req("POST", path, binding("stall-left", "gpu-node-2"), conn=c)
        c.close()
        f.admin("DELETE", "/fault")
        time.sleep(0.5)
        st, pod = f.json("GET", PODS + "/stall-left")
        self.assertEqual((st, pod["spec"].get("nodeName")), (200, None))
        # with the client still there, a release lets the request through
        f.admin("POST", "/fault", {"match": "^POST " + path + "$", "action": "stall",
                                   "seconds": 30})
        c = f.conn(timeout=5)
        t = threading.Timer(0.3, f.admin, ("DELETE", "/fault"))
        t.start()
        try:
            st, _, _ = f.req("POST", path, binding("stall-left", "gpu-node-2"), conn=c)
        finally:
            t.join()
            c.close()
        self.assertEqual(st, 201)

    def test_recorded_requests(self):
        f = self.f
        f.admin("DELETE", "/requests")
        f.req("POST", PODS + "/gpu-pod-1/binding", binding("gpu-pod-1", "gpu-node-3"))
        f.req("GET", "/api/v1/nodes?limit=1")
        recs = f.admin("GET", "/requests")
        self.assertEqual([(r["method"], r["path"], r["status"]) for r in recs],
                         [("POST", PODS + "/gpu-pod-1/binding", 409), ("GET", "/api/v1/nodes", 200)])
        self.assertEqual(recs[0]["headers"]["Authorization"], "Bearer t1")
        self.assertEqual(recs[0]["headers"]["Content-Type"], "application/json")
        self.assertEqual(json.loads(recs[0]["body"])["target"]["name"], "gpu-node-3")
        self.assertEqual(recs[1]["query"], "limit=1")
        recs = f.admin("GET", "/requests?match=" + quote("^GET "))
        self.assertEqual(len(recs), 1)


PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


def pdb_manifest(name, match_labels, min_available=None, max_unavailable=None, ns="default"):
    spec = {"selector": {"matchLabels": match_labels}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


class PolicyAndPreemptionTest(unittest.TestCase):
    """policy/v1 PodDisruptionBudgets, and the pod calls kube-scheduler makes when it preempts."""

    @classmethod
    def setUpClass(cls):
        cls.f = Fake()

    @classmethod
    def tearDownClass(cls):
        cls.f.stop()

    def test_pdb_create_get_patch_status_delete(self):
        f = self.f
        st, pdb = f.json("POST", PDBS, pdb_manifest("pdb-a", {"app": "a"}, min_available=1))
        self.assertEqual(st, 201)
        self.assertEqual((pdb["kind"], pdb["apiVersion"]), ("PodDisruptionBudget", "policy/v1"))
        self.assertEqual(pdb["metadata"]["generation"], 1)
        self.assertEqual(pdb["status"], {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                         "expectedPods": 0})
        self.assertEqual(list(pdb["spec"]), ["minAvailable", "selector"])   # Go field order
        st, e = f.json("POST", PDBS, pdb_manifest("pdb-a", {"app": "a"}))
        self.assertEqual((st, e["reason"], e["message"]), (409, "AlreadyExists",
                                                          'poddisruptionbudgets.policy "pdb-a" already exists'))
        self.assertEqual(e["details"], {"name": "pdb-a", "group": "policy", "kind": "poddisruptionbudgets"})
        st, e = f.json("POST", PDBS, pdb_manifest("pdb-both", {"app": "a"}, 1, 1))
        self.assertEqual((st, e["reason"]), (422, "Invalid"))
        st, e = f.json("GET", PDBS + "/nope")
        self.assertEqual((st, e["message"]), (404, 'poddisruptionbudgets.policy "nope" not found'))
        # the wrong group or no namespace: unknown paths
        self.assertEqual(f.json("GET", "/api/v1/namespaces/default/poddisruptionbudgets")[0], 404)
        self.assertEqual(f.json("GET", "/apis/policy/v1/pods")[0], 404)
        self.assertEqual(f.json("GET", "/apis/policy/v1/poddisruptionbudgets/pdb-a")[0], 404)
        st, disc = f.json("GET", "/apis/policy/v1")
        self.assertEqual((st, disc["groupVersion"]), (200, "policy/v1"))
        # /status takes status (what the disruption controller would write) and ignores spec
        st, p = f.json("PATCH", PDBS + "/pdb-a/status",
                       {"spec": {"minAvailable": 5},
                        "status": {"disruptionsAllowed": 2, "disruptedPods": {"low-1": "2026-01-01T00:00:00Z"}}},
                       ctype="application/merge-patch+json")
        self.assertEqual(st, 200)
        self.assertEqual(p["status"]["disruptionsAllowed"], 2)
        self.assertEqual(p["status"]["disruptedPods"], {"low-1": "2026-01-01T00:00:00Z"})
        self.assertEqual((p["spec"]["minAvailable"], p["metadata"]["generation"]), (1, 1))
        # the main endpoint takes spec (generation +1) and ignores status
        st, p = f.json("PATCH", PDBS + "/pdb-a", {"spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 9}},
                       ctype="application/strategic-merge-patch+json")
        self.assertEqual((st, p["spec"]["minAvailable"], p["metadata"]["generation"]), (200, 2, 2))
        self.assertEqual(p["status"]["disruptionsAllowed"], 2)
        self.assertEqual(f.json("GET", PDBS + "/pdb-a")[1], p)
        self.assertEqual([x["name"] for x in f.admin("GET", "/state")["pdbs"]], ["pdb-a"])
        st, out = f.json("DELETE", PDBS + "/pdb-a")
        self.assertEqual(st, 200)
        self.assertEqual(out, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                               "details": {"name": "pdb-a", "group": "policy", "kind": "poddisruptionbudgets",
                                           "uid": pdb["metadata"]["uid"]}})
        self.assertEqual(f.json("GET", PDBS + "/pdb-a")[0], 404)
        self.assertEqual(f.json("DELETE", PDBS + "/pdb-a")[0], 404)

    def test_pdb_list_pages_and_watch(self):
        f = self.f
        for i in range(5):
            ns = "team-b" if i == 4 else "default"
            path = "/apis/policy/v1/namespaces/%s/poddisruptionbudgets" % ns
            self.assertEqual(f.json("POST", path, pdb_manifest("page-%d" % i, {"i": str(i)}, ns=ns))[0], 201)
        st, l1 = f.json("GET", "/apis/policy/v1/poddisruptionbudgets?limit=2")
        self.assertEqual((st, l1["kind"], l1["apiVersion"]), (200, "PodDisruptionBudgetList", "policy/v1"))
        self.assertNotIn("kind", l1["items"][0])
        names = [p["metadata"]["name"] for p in l1["items"]]
        rv = l1["metadata"]["resourceVersion"]
        tok = l1["metadata"]["continue"]
        while tok:
            st, more = f.json("GET", "/apis/policy/v1/poddisruptionbudgets?limit=2&continue=" + quote(tok))
            self.assertEqual((st, more["metadata"]["resourceVersion"]), (200, rv))
            names += [p["metadata"]["name"] for p in more["items"]]
            tok = more["metadata"].get("continue")
        self.assertEqual(names, ["page-0", "page-1", "page-2", "page-3", "page-4"])   # by namespace/name
        st, nsl = f.json("GET", PDBS + "?fieldSelector=" + quote("metadata.name=page-1"))
        self.assertEqual([p["metadata"]["name"] for p in nsl["items"]], ["page-1"])
        st, e = f.json("GET", PDBS + "?fieldSelector=" + quote("spec.minAvailable=1"))
        self.assertEqual(st, 400)
        # watch from the list's RV: the changes after it, in order, typed objects; and bookmarks
        w = Watch(f, "/apis/policy/v1/poddisruptionbudgets?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv)
        ns_w = Watch(f, "/apis/policy/v1/watch/namespaces/team-b/poddisruptionbudgets?resourceVersion=" + rv)
        try:
            f.json("PATCH", PDBS + "/page-0/status", {"status": {"disruptionsAllowed": 1}},
                   ctype="application/merge-patch+json")
            f.json("DELETE", PDBS + "/page-1")
            f.json("DELETE", "/apis/policy/v1/namespaces/team-b/poddisruptionbudgets/page-4")
            evs = [w.until(lambda e: e["type"] != "BOOKMARK") for _ in range(3)]
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                             [("MODIFIED", "page-0"), ("DELETED", "page-1"), ("DELETED", "page-4")])
            self.assertEqual(evs[0]["object"]["status"]["disruptionsAllowed"], 1)
            self.assertTrue(all((e["object"]["kind"], e["object"]["apiVersion"]) ==
                                ("PodDisruptionBudget", "policy/v1") for e in evs))
            bm = w.until(lambda e: e["type"] == "BOOKMARK")
            self.assertEqual((bm["object"]["kind"], bm["object"]["apiVersion"]), ("PodDisruptionBudget", "policy/v1"))
            self.assertEqual(bm["object"]["status"]["disruptionsAllowed"], 0)
            ev = ns_w.next()
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("DELETED", "page-4"))
        finally:
            w.close()
            ns_w.close()
        for i in (0, 2, 3):
            f.json("DELETE", PDBS + "/page-%d" % i)

    def test_pod_calls_of_a_preemption(self):
        """What kube-scheduler does to a victim (DisruptionTarget condition on /status, then a
        DELETE with the default grace) and to the preemptor (status.nominatedNodeName), and the
        kubelet's final DELETE with gracePeriodSeconds=0."""
        f = self.f
        f.json("POST", PODS, pod_manifest("victim", node="gpu-node-2", labels={"app": "low"}))
        st, pre = f.json("POST", PODS, pod_manifest("preemptor"))
        self.assertEqual(st, 201)
        st, v = f.json("PATCH", PODS + "/victim/status",
                       {"status": {"$setElementOrder/conditions": [{"type": "DisruptionTarget"}],
                                   "conditions": [{"type": "DisruptionTarget", "status": "True",
                                                   "reason": "PreemptionByScheduler",
                                                   "message": "default-scheduler: preempting to accommodate a "
                                                              "higher priority pod"}]}},
                       ctype="application/strategic-merge-patch+json")
        self.assertEqual(st, 200)
        self.assertEqual([(c["type"], c["status"], c["reason"]) for c in v["status"]["conditions"]],
                         [("DisruptionTarget", "True", "PreemptionByScheduler")])
        st, v = f.json("DELETE", PODS + "/victim")              # DeleteOptions{}: the pod's own grace
        self.assertEqual((st, v["metadata"]["deletionGracePeriodSeconds"]), (200, 30))
        self.assertIn("deletionTimestamp", v["metadata"])
        self.assertEqual(f.json("DELETE", PODS + "/victim", {})[0], 200)   # again, with a body: no change
        self.assertEqual(f.json("GET", PODS + "/victim")[1]["metadata"]["resourceVersion"],
                         v["metadata"]["resourceVersion"])
        st, p = f.json("PATCH", PODS + "/preemptor/status", {"status": {"nominatedNodeName": "gpu-node-2"}},
                       ctype="application/strategic-merge-patch+json")
        self.assertEqual((st, p["status"]["nominatedNodeName"]), (200, "gpu-node-2"))
        st, pl = f.json("GET", "/api/v1/pods?fieldSelector=" + quote("status.nominatedNodeName=gpu-node-2"))
        self.assertEqual([x["metadata"]["name"] for x in pl["items"]], ["preemptor"])
        self.assertEqual(f.json("DELETE", PODS + "/victim?gracePeriodSeconds=0")[0], 200)   # the kubelet
        self.assertEqual(f.json("GET", PODS + "/victim")[0], 404)
        st, p = f.json("PATCH", PODS + "/preemptor/status", {"status": {"nominatedNodeName": None}},
                       ctype="application/merge-patch+json")
        self.assertEqual((st, "nominatedNodeName" in p["status"]), (200, False))
        f.json("DELETE", PODS + "/preemptor")
        self.assertEqual(f.json("GET", PODS + "/preemptor")[0], 404)   # unbound: gone at once


class IsolatedTest(unittest.TestCase):
    """Tests that change global server state get their own process."""

    def test_token_rotation(self):
        f = Fake()
        try:
            self.assertEqual(f.req("GET", "/api/v1/nodes")[0], 200)
            self.assertEqual(f.req("GET", "/api/v1/nodes", token=None)[0], 401)
            f.admin("POST", "/token", {"token": "t2"})
            st, _, body = f.req("GET", "/api/v1/nodes")
            self.assertEqual((st, body), (401, raw("get-nodes.401-unauthorized.json")))
            self.assertEqual(f.req("GET", "/api/v1/nodes", token="t2")[0], 200)
            f.admin("POST", "/token", {"token": "t3", "keep_old": True})
            self.assertEqual(f.req("GET", "/api/v1/nodes", token="t2")[0], 200)
            self.assertEqual(f.req("GET", "/api/v1/nodes", token="t3")[0], 200)
            self.assertEqual(f.req("GET", "/api/v1/nodes", token="t1")[0], 401)
        finally:
            self.assertEqual(f.stop(), 0)

    def test_compaction_410(self):
        f = Fake("--event-window", "100")
        try:
            st, p1 = f.json("GET", "/api/v1/pods?limit=1")
            tok, rv = p1["metadata"]["continue"], p1["metadata"]["resourceVersion"]
            f.json("POST", PODS, pod_manifest("zz-c1"))
            f.json("POST", PODS, pod_manifest("zz-c2"))
            # before compaction the continue is a consistent snapshot (no zz-c1/zz-c2)
            st, p2 = f.json("GET", "/api/v1/pods?limit=10&continue=" + quote(tok))
            self.assertEqual(st, 200)
            self.assertEqual(len(p2["items"]), 2)
            self.assertEqual(p2["metadata"]["resourceVersion"], rv)
            f.admin("POST", "/compact", {"keep": 1})
            st, e = f.json("GET", "/api/v1/pods?limit=10&continue=" + quote(tok))
            self.assertEqual(st, 410)
            self.assertEqual((e["kind"], e["status"], e["reason"], e["code"]), ("Status", "Failure", "Expired", 410))
            self.assertTrue(e["message"].startswith("The provided continue parameter is too old"))
            # the new token continues (inconsistently) at the latest state
            st, p3 = f.json("GET", "/api/v1/pods?continue=" + quote(e["metadata"]["continue"]))
            self.assertEqual((st, len(p3["items"])), (200, 4))
            # watch from a compacted resourceVersion: one ERROR event, then the stream ends
            w = Watch(f, "/api/v1/pods?watch=1&resourceVersion=" + rv)
            try:
                self.assertEqual(w.r.status, 200)
                ev = w.next()
                self.assertIsNone(w.next())
            finally:
                w.close()
            cur = f.admin("GET", "/state")["resourceVersion"]
            self.assertEqual(ev, {"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": f"too old resource version: {rv} ({cur - 1})", "reason": "Expired", "code": 410}})
            # the retained window still works
            w = Watch(f, "/api/v1/pods?watch=1&resourceVersion=" + str(cur - 1))
            try:
                self.assertEqual(w.next()["type"], "ADDED")
            finally:
                w.close()
        finally:
            self.assertEqual(f.stop(), 0)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="fakeapi-pki-")
        subprocess.run(["bash", GEN_CERTS, cls.dir.name], check=True)
        cls.f = Fake(tls_dir=cls.dir.name, client_ca=True)

    @classmethod
    def tearDownClass(cls):
        cls.f.stop()
        cls.dir.cleanup()

    def _ctx(self, client=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir.name, "ca.crt"))
        if client:
            ctx.load_cert_chain(os.path.join(self.dir.name, client + ".crt"),
                                os.path.join(self.dir.name, client + ".key"))
        return ctx

    def test_token_over_https(self):
        self.assertEqual(self.f.req("GET", "/api/v1/nodes/gpu-node-1")[0], 200)
        st, _, body = self.f.req("GET", "/api/v1/nodes/gpu-node-1", token=None)
        self.assertEqual((st, body), (401, raw("get-nodes.401-unauthorized.json")))

    def test_client_certificate(self):
        c = self.f.conn(ctx=self._ctx("client"))
        try:
            st, _, _ = self.f.req("GET", "/api/v1/nodes", token=None, conn=c)
            self.assertEqual(st, 200)
        finally:
            c.close()
        recs = self.f.admin("GET", "/requests")
        self.assertEqual(recs[-1]["user"], "gpu-extender")
        self.assertTrue(recs[-1]["tls"])
        c = self.f.conn(ctx=self._ctx("other-client"))
        try:
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                self.f.req("GET", "/api/v1/nodes", token=None, conn=c)
        finally:
            c.close()
        # the server survives bad handshakes
        self.assertEqual(self.f.req("GET", "/api/v1/nodes")[0], 200)

    def test_watch_over_https(self):
        w = Watch(self.f, "/api/v1/nodes?watch=1&timeoutSeconds=1")
        try:
            self.assertEqual(w.next()["type"], "ADDED")
        finally:
            w.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
