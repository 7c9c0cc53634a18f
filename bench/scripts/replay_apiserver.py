#!/usr/bin/env python3
"""replay_apiserver.py -- a list+watch source fast enough to measure gpu-extender's cache, not
the server: every Node and Pod of a generated cluster (bench/gen/gencluster.py) is encoded to
JSON once at start, so a list page is a join of ready bytes and a burst of watch events is a
prepared buffer written as fast as the socket takes it.

tests/fake_apiserver.py is the faithful fake (admission, selectors, patches); in Python it
spends about 50 ms per 500-pod page re-encoding objects, which caps what can be seen of the
daemon at a few thousand objects per second. This server speaks only what the daemon's
list+watch uses (see src/kube/kube_watch.c):

  GET /api/v1/nodes|pods?limit=N[&continue=K]            a page of a consistent list
  GET /api/v1/nodes|pods?watch=1&resourceVersion=RV...   a chunked stream, quiet until a burst
  POST /_bench/prepare?n=N   builds N MODIFIED pod events (every pod in turn, resourceVersion
                             bumped), returns when ready
  POST /_bench/burst         every open pods watch starts writing them; returns t_start
  GET  /_bench/stats         {t_start, t_written, events, bytes, watches, lists}

  replay_apiserver.py --nodes 15000 --port-file FILE [--shared-topology]
"""

import argparse
import json
import multiprocessing
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen"))
import gencluster  # noqa: E402

LIST_RV = 1000000


def _encode_range(args):
    lo, hi = args
    nodes = [gencluster.node_json(i).encode() for i in range(lo, hi)]
    pods = [p.encode() for i in range(lo, hi) for p in gencluster.pods_of_node(i)]
    return nodes, pods


class State:
    def __init__(self, n):
        t0 = time.time()
        step = 500
        ranges = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
        with multiprocessing.Pool(min(2, os.cpu_count() or 1)) as pool:
            parts = pool.map(_encode_range, ranges)
        self.items = {"nodes": [b for p in parts for b in p[0]], "pods": [b for p in parts for b in p[1]]}
        self.build_s = time.time() - t0
        self.cond = threading.Condition()
        self.burst_id = 0
        self.chunks = []
        self.stats = {"t_start": 0.0, "t_written": 0.0, "events": 0, "bytes": 0, "watches": 0, "lists": 0}

    def prepare(self, n):
        pods = self.items["pods"]
        out, chunk, size = [], [], 0
        for k in range(n):
            i = k % len(pods)
            node_i, j = divmod(i, gencluster.PODS_PER_NODE)
            old = b'"resourceVersion":"%d"' % (200000 + node_i * gencluster.PODS_PER_NODE + j)
            new = b'"resourceVersion":"%d"' % (LIST_RV + 1 + k)
            body = pods[i].replace(old, new, 1)
            chunk.append(b'{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1",' + body[1:] + b"}\n")
            if len(chunk) == 256:
                data = b"".join(chunk)
                out.append(b"%x\r\n" % len(data) + data + b"\r\n")
                size += len(data)
                chunk = []
        if chunk:
            data = b"".join(chunk)
            out.append(b"%x\r\n" % len(data) + data + b"\r\n")
            size += len(data)
        with self.cond:
            self.chunks = out
            self.stats.update({"events": n, "bytes": size, "t_start": 0.0, "t_written": 0.0})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.state
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if u.path == "/_bench/prepare":
            st.prepare(int(q.get("n", ["100000"])[0]))
            return self._send(200, json.dumps(st.stats).encode())
        if u.path == "/_bench/burst":
            with st.cond:
                st.stats["t_start"] = time.time()
                st.burst_id += 1
                st.cond.notify_all()
            return self._send(200, json.dumps(st.stats).encode())
        return self._send(404, b'{"kind":"Status","code":404}')

    def do_GET(self):
        st = self.server.state
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        if u.path == "/_bench/stats":
            return self._send(200, json.dumps(st.stats).encode())
        res = {"/api/v1/nodes": "nodes", "/api/v1/pods": "pods"}.get(u.path)
        if res is None:
            return self._send(404, b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}')
        if q.get("watch", ["0"])[0] in ("1", "true"):
            return self._watch(res, q)
        items = st.items[res]
        limit = int(q.get("limit", ["0"])[0] or 0) or len(items)
        off = int(q.get("continue", ["0"])[0] or 0)
        page = items[off:off + limit]
        more = off + limit < len(items)
        meta = b'{"resourceVersion":"%d"' % LIST_RV
        if more:
            meta += b',"continue":"%d","remainingItemCount":%d' % (off + limit, len(items) - off - limit)
        kind = b"NodeList" if res == "nodes" else b"PodList"
        body = (b'{"kind":"' + kind + b'","apiVersion":"v1","metadata":' + meta + b'},"items":[' +
                b",".join(page) + b"]}\n")
        st.stats["lists"] += 1
        return self._send(200, body)

    def _watch(self, res, q):
        st = self.server.state
        timeout = float(q.get("timeoutSeconds", ["300"])[0] or 300)
        end = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with st.cond:
            seen = st.burst_id
            st.stats["watches"] += 1
        try:
            while time.monotonic() < end and not self.server.stopping:
                with st.cond:
                    st.cond.wait(0.5)
                    go = st.burst_id != seen
                    seen = st.burst_id
                    chunks = st.chunks if go and res == "pods" else None
                if chunks:
                    for c in chunks:
                        self.wfile.write(c)
                    self.wfile.flush()
                    st.stats["t_written"] = time.time()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            with st.cond:
                st.stats["watches"] -= 1
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stopping = False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=15000)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--shared-topology", action="store_true",
                    help="every node of a model gets the same topology annotation (an experiment)")
    a = ap.parse_args()
    gencluster.SHARED_TOPOLOGY = a.shared_topology
    state = State(a.nodes)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = state
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    sys.stderr.write("replay_apiserver: %d nodes, %d pods encoded in %.1f s, port %d\n" % (
        len(state.items["nodes"]), len(state.items["pods"]), state.build_s, srv.server_address[1]))
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
