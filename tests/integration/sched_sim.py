"""sched_sim.py -- a small kube-scheduler simulator for the gpu-extender integration tests.

It plays the part of kube-scheduler 1.26 configured with gpu-extender as an extender in
NodeNames mode (nodeCacheCapable: true) with managedResources nvidia.com/gpu and
ignoredByScheduler: true. That last setting makes kube-scheduler skip nvidia.com/gpu in its own
NodeResourcesFit check, so gpu-extender alone guards GPU capacity: the simulator never counts
GPUs itself.

One round (Simulator.run_round):
  1. Takes a snapshot of the cluster from the fake API server (/_admin/state?full=1), standing
     in for kube-scheduler's informers.
  2. Picks the pending pods: spec.nodeName empty, not being deleted, phase Pending, asking for
     nvidia.com/gpu in a container's requests or limits (the managedResources gate), and with
     the wanted schedulerName (any, by default). Oldest first, as the scheduling queue does.
  3. The candidate nodes are the nodes that are not "full" by kube-scheduler's own count:
     spec.unschedulable off, every NoSchedule/NoExecute taint tolerated, and the pod's cpu,
     memory and pod count fitting beside the non-terminal pods already bound there
     (NodeResourcesFit with nvidia.com/gpu ignored).
  4. For each pod, on one of `threads` worker threads (several pods at once, so binds race):
     POST /filter with those NodeNames; if two or more pass, POST /prioritize with the passing
     names and take the highest score (ties broken at random); then POST /bind. An Error from
     filter or bind, a transport failure or no passing node leaves the pod pending for a later
     round.

Request bodies are derived from the real captures in
tests/fixtures/kube-1.26/extender/raw/{filter,prioritize,bind}.args.nodecache-true.json: the
captured body is loaded and only the Pod (the real object as the fake returns it, without the
kind/apiVersion that informer objects lack), the NodeNames, or the four bind fields are
replaced. The HTTP headers are the captured ones (http-requests.nodecache-true.json).

The simulator also checks the protocol as kube-scheduler would read it: a filter reply must be
a JSON object whose NodeNames are a subset of the names sent; a prioritize reply must be an
array of {Host, Score} with integer scores in 0..10 for names that were sent. A violation is
recorded in RoundStats.protocol_errors (the tests fail on any).

Python 3.11 standard library only.
"""

from __future__ import annotations

import copy
import gzip
import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

GPU = "nvidia.com/gpu"
TERMINAL_PHASES = ("Succeeded", "Failed")


# ---------------------------------------------------------------- quantities and pod requests


_SUFFIX = {
    "n": 10**-9, "u": 10**-6, "m": 10**-3, "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(q) -> float:
    """A Kubernetes resource.Quantity string ("100m", "128Mi", "8") as a number."""
    if q is None:
        return 0.0
    if isinstance(q, (int, float)):
        return float(q)
    s = str(q).strip()
    for suf in sorted(_SUFFIX, key=len, reverse=True):
        if suf and s.endswith(suf):
            return float(s[: -len(suf)]) * _SUFFIX[suf]
    return float(s)


def container_request(c: dict, name: str) -> float:
    res = c.get("resources") or {}
    req = res.get("requests") or {}
    if name in req:
        return parse_quantity(req[name])
    lim = res.get("limits") or {}
    return parse_quantity(lim.get(name)) if name in lim else 0.0


def pod_request(pod: dict, name: str) -> float:
    """The pod's request for one resource, as kube-scheduler computes it: the larger of the sum
    over app containers and the largest init container (restartable init containers aside,
    which these tests do not create)."""
    spec = pod.get("spec") or {}
    app = sum(container_request(c, name) for c in spec.get("containers") or [])
    init = max((container_request(c, name) for c in spec.get("initContainers") or []), default=0.0)
    return max(app, init)


def pod_gpus(pod: dict) -> int:
    return int(pod_request(pod, GPU))


def asks_for_gpu(pod: dict) -> bool:
    """kube-scheduler's IsInterested gate for managedResources: a container or init container
    names the resource in requests or limits."""
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        if GPU in (res.get("requests") or {}) or GPU in (res.get("limits") or {}):
            return True
    return False


def is_terminal(pod: dict) -> bool:
    return ((pod.get("status") or {}).get("phase")) in TERMINAL_PHASES


def node_gpus(node: dict) -> int:
    return int(parse_quantity(((node.get("status") or {}).get("allocatable") or {}).get(GPU)))


def gpus_in_use(state: dict) -> dict:
    """Node name -> GPUs held there: non-terminal pods bound to the node, including pods being
    deleted (they hold their GPUs until they are gone). The accounting rule of gx/cache.h."""
    used = {(n.get("metadata") or {}).get("name"): 0 for n in state.get("nodes") or []}
    for p in state.get("pods") or []:
        node = (p.get("spec") or {}).get("nodeName")
        if node and not is_terminal(p):
            used[node] = used.get(node, 0) + pod_gpus(p)
    return used


# ---------------------------------------------------------------- HTTP


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _NoDelayConnection(http.client.HTTPConnection):
    """http.client writes the headers and the body with two send() calls; with Nagle's
    algorithm on, the body then waits for the server's delayed ACK of the headers (40 ms on
    Linux). Go's net/http, which kube-scheduler uses, sets TCP_NODELAY on every connection;
    so do we."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Http:
    """A keep-alive HTTP/1.1 client for one base URL, one connection per thread."""

    def __init__(self, base: str, timeout: float = 5.0):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.timeout = timeout
        self._local = threading.local()
        self._all = []
        self._all_lock = threading.Lock()

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = _NoDelayConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
            with self._all_lock:
                self._all.append(c)
        return c

    def close(self):
        """Closes this thread's connection."""
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
            with self._all_lock:
                if c in self._all:
                    self._all.remove(c)

    def close_all(self):
        """Closes every thread's connection (when no request is under way)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()

    def request(self, method: str, path: str, body=None, headers=None, retry: bool = True):
        """Returns (status, body bytes). Raises OSError/HTTPException on transport failure.
        retry: one more try on a fresh connection when a kept-alive one turns out dead (only
        safe for requests that may be repeated)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=body, headers=hdrs)
                if _QUICKACK is not None and c.sock is not None:
                    # The fake API server (Python's http.server) writes a reply's headers and
                    # body in two segments with Nagle on, so the body waits for our ACK of the
                    # headers, which Linux delays by up to 40 ms on a kept-alive connection.
                    # Acknowledge at once instead (the flag is one-shot: set per request).
                    c.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                r = c.getresponse()
                data = r.read()
                if (r.getheader("Content-Encoding") or "").lower() == "gzip":
                    data = gzip.decompress(data)
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                self.close()
                if attempt == 1 or not retry:
                    raise
                last = e  # noqa: F841 - a stale kept-alive connection: try once more
            except (OSError, http.client.HTTPException):
                self.close()
                raise
        raise OSError("unreachable")

    def json(self, method: str, path: str, body=None, headers=None, retry: bool = True):
        status, data = self.request(method, path, body, headers, retry)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode("utf-8", "replace")


# ---------------------------------------------------------------- the simulator


@dataclass
class RoundStats:
    pending: int = 0            # pods that were pending at the start of the round
    attempted: int = 0          # pods sent to filter
    bound: int = 0              # bind answered {"Error":""}
    unschedulable: int = 0      # filter passed no node
    filter_errors: int = 0      # filter answered with an Error (or failed in transport)
    bind_errors: int = 0        # bind answered with an Error (or failed in transport)
    transport_errors: int = 0   # no HTTP answer at all (included in the two above)
    prioritized: int = 0        # pods that needed a prioritize call
    protocol_errors: list = field(default_factory=list)
    binds: list = field(default_factory=list)          # (namespace, name, uid, node, gpus)
    failed_binds: list = field(default_factory=list)   # (namespace, name, uid, node, Error)
    error_samples: dict = field(default_factory=dict)  # message prefix -> count
    seconds: float = 0.0
    call_seconds: dict = field(default_factory=dict)   # verb -> [calls, total seconds, max]

    def time_call(self, verb: str, seconds: float):
        rec = self.call_seconds.setdefault(verb, [0, 0.0, 0.0])
        rec[0] += 1
        rec[1] += seconds
        rec[2] = max(rec[2], seconds)

    def note_error(self, msg: str):
        # one line per kind of error: names and numbers would make every message unique
        key = re.sub(r"[a-z0-9.-]+/[a-z0-9.-]+ to [a-z0-9.-]+", "POD to NODE", msg or "")
        key = re.sub(r"\d+", "N", re.sub(r"node [a-z0-9.-]+", "node NODE", key))[:140]
        self.error_samples[key] = self.error_samples.get(key, 0) + 1

    def merge(self, other: "RoundStats"):
        for k in ("pending", "attempted", "bound", "unschedulable", "filter_errors", "bind_errors",
                  "transport_errors", "prioritized"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.protocol_errors += other.protocol_errors
        self.binds += other.binds
        self.failed_binds += other.failed_binds
        for k, v in other.error_samples.items():
            self.error_samples[k] = self.error_samples.get(k, 0) + v
        for k, (n, t, mx) in other.call_seconds.items():
            rec = self.call_seconds.setdefault(k, [0, 0.0, 0.0])
            rec[0] += n
            rec[1] += t
            rec[2] = max(rec[2], mx)
        self.seconds += other.seconds

    def line(self) -> str:
        return (f"pending={self.pending} attempted={self.attempted} bound={self.bound} "
                f"unschedulable={self.unschedulable} filter_err={self.filter_errors} "
                f"bind_err={self.bind_errors} transport_err={self.transport_errors} "
                f"{self.seconds:.2f}s")


def _tolerates(tolerations, taint) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key") and op == "Exists":
            return True
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


class Simulator:
    """kube-scheduler, reduced to what matters for an extender that guards GPUs alone."""

    def __init__(self, extender_url: str, fake_url: str, fixtures: str, threads: int = 4,
                 seed: int = 1, scheduler_name: str | None = None, timeout: float = 5.0):
        self.ext = Http(extender_url, timeout=timeout)   # kube-scheduler's httpTimeout: 5 s
        self.fake = Http(fake_url, timeout=30.0)
        self.threads = threads
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.scheduler_name = scheduler_name
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sched")
        raw = os.path.join(fixtures, "extender", "raw")
        with open(os.path.join(raw, "filter.args.nodecache-true.json"), "rb") as f:
            self.filter_template = json.loads(f.read())
        with open(os.path.join(raw, "prioritize.args.nodecache-true.json"), "rb") as f:
            self.prioritize_template = json.loads(f.read())
        with open(os.path.join(raw, "bind.args.nodecache-true.json"), "rb") as f:
            self.bind_template = json.loads(f.read())
        with open(os.path.join(fixtures, "extender", "http-requests.nodecache-true.json"),
                  "rb") as f:
            captured = json.loads(f.read())
        self.headers = {}
        for verb in ("filter", "prioritize", "bind"):
            h = dict(captured[verb]["headers"])
            for k in ("Host", "Content-Length"):
                h.pop(k, None)   # http.client writes these for the real target and body
            self.headers[verb] = h
        # Informer objects have no kind/apiVersion: the captured Pod shows which keys it has.
        self.pod_top_keys = set(self.filter_template["Pod"])

    def set_extender(self, extender_url: str):
        """Points the simulator at another daemon (after a restart on a new port)."""
        self.ext.close_all()
        self.ext = Http(extender_url, timeout=self.ext.timeout)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ext.close_all()
        self.fake.close_all()

    # ---- request bodies, derived from the captures

    def _informer_pod(self, pod: dict) -> dict:
        return {k: v for k, v in pod.items()
                if k in self.pod_top_keys or k not in ("kind", "apiVersion")}

    def filter_body(self, pod: dict, names: list) -> bytes:
        args = copy.copy(self.filter_template)   # keys in the captured order: Pod, Nodes, NodeNames
        args["Pod"] = self._informer_pod(pod)
        args["NodeNames"] = list(names)
        return json.dumps(args, separators=(",", ":")).encode()

    def prioritize_body(self, pod: dict, names: list) -> bytes:
        args = copy.copy(self.prioritize_template)
        args["Pod"] = self._informer_pod(pod)
        args["NodeNames"] = list(names)
        return json.dumps(args, separators=(",", ":")).encode()

    def bind_body(self, pod: dict, node: str) -> bytes:
        m = pod["metadata"]
        args = copy.copy(self.bind_template)
        args.update({"PodName": m["name"], "PodNamespace": m.get("namespace", "default"),
                     "PodUID": m["uid"], "Node": node})
        return json.dumps(args, separators=(",", ":")).encode()

    # ---- cluster view

    def snapshot(self) -> dict:
        status, state = self.fake.json("GET", "/_admin/state?full=1")
        if status != 200 or not isinstance(state, dict):
            raise RuntimeError(f"fake /_admin/state answered {status}")
        return state

    def pending_pods(self, state: dict) -> list:
        out = []
        for p in state.get("pods") or []:
            m, s = p.get("metadata") or {}, p.get("spec") or {}
            if s.get("nodeName") or m.get("deletionTimestamp"):
                continue
            if ((p.get("status") or {}).get("phase") or "Pending") != "Pending":
                continue
            if not asks_for_gpu(p):
                continue
            if self.scheduler_name and s.get("schedulerName") != self.scheduler_name:
                continue
            out.append(p)
        out.sort(key=lambda p: (-(p["spec"].get("priority") or 0),
                                p["metadata"].get("creationTimestamp") or "",
                                p["metadata"]["name"]))
        return out

    def node_load(self, state: dict) -> dict:
        """Node name -> (pods, cpu, memory) requested by the non-terminal pods bound there."""
        load = {}
        for p in state.get("pods") or []:
            n = (p.get("spec") or {}).get("nodeName")
            if n and not is_terminal(p):
                c, cpu, mem = load.get(n, (0, 0.0, 0.0))
                load[n] = (c + 1, cpu + pod_request(p, "cpu"), mem + pod_request(p, "memory"))
        return load

    def candidate_nodes(self, state: dict, pod: dict, load: dict | None = None) -> list:
        """Nodes kube-scheduler itself would pass (GPUs ignored: ignoredByScheduler: true)."""
        load = load if load is not None else self.node_load(state)
        cpu, mem = pod_request(pod, "cpu"), pod_request(pod, "memory")
        tol = (pod.get("spec") or {}).get("tolerations") or []
        names = []
        for node in state.get("nodes") or []:
            name = node["metadata"]["name"]
            spec = node.get("spec") or {}
            if spec.get("unschedulable"):
                continue
            if any(t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tol, t)
                   for t in spec.get("taints") or []):
                continue
            alloc = (node.get("status") or {}).get("allocatable") or {}
            n_pods, n_cpu, n_mem = load.get(name, (0, 0.0, 0.0))
            if n_pods + 1 > parse_quantity(alloc.get("pods", "110")):
                continue
            if cpu and n_cpu + cpu > parse_quantity(alloc.get("cpu")):
                continue
            if mem and n_mem + mem > parse_quantity(alloc.get("memory")):
                continue
            names.append(name)
        return names

    # ---- one pod

    def _post(self, verb: str, body: bytes, st: RoundStats):
        """POSTs one verb; returns (status, decoded JSON or text). Transport errors raise.
        Like Go's transport, a request that finds its kept-alive connection closed by the
        server is sent once more on a new connection (bind is idempotent, the others pure)."""
        t0 = time.monotonic()
        try:
            return self.ext.json("POST", "/" + verb, body, self.headers[verb], retry=True)
        finally:
            st.time_call(verb, time.monotonic() - t0)

    def schedule_one(self, pod: dict, names: list, st: RoundStats):
        pname = f'{pod["metadata"].get("namespace")}/{pod["metadata"]["name"]}'
        st.attempted += 1
        if not names:
            st.unschedulable += 1
            return
        try:
            status, reply = self._post("filter", self.filter_body(pod, names), st)
        except (OSError, http.client.HTTPException) as e:
            st.filter_errors += 1
            st.transport_errors += 1
            st.note_error(f"filter transport: {type(e).__name__}")
            return
        if status != 200 or not isinstance(reply, dict):
            st.filter_errors += 1
            st.note_error(f"filter HTTP {status}: {str(reply)[:80]}")
            return
        if reply.get("Error"):
            st.filter_errors += 1
            st.note_error("filter Error: " + reply["Error"])
            return
        passed = reply.get("NodeNames") or []
        if not set(passed) <= set(names):
            st.protocol_errors.append(f"{pname}: filter passed nodes it was not sent: "
                                      f"{sorted(set(passed) - set(names))[:5]}")
            return
        if not passed:
            st.unschedulable += 1
            return
        target = passed[0]
        if len(passed) >= 2:
            st.prioritized += 1
            try:
                status, scores = self._post("prioritize", self.prioritize_body(pod, passed), st)
            except (OSError, http.client.HTTPException) as e:
                st.filter_errors += 1
                st.transport_errors += 1
                st.note_error(f"prioritize transport: {type(e).__name__}")
                return
            if status != 200 or not isinstance(scores, list):
                st.filter_errors += 1
                st.note_error(f"prioritize HTTP {status}: {str(scores)[:80]}")
                return
            best, best_hosts = None, []
            for hp in scores:
                host, score = (hp or {}).get("Host"), (hp or {}).get("Score")
                if host not in passed or not isinstance(score, int) or isinstance(score, bool) \
                        or not 0 <= score <= 10:
                    st.protocol_errors.append(f"{pname}: bad prioritize entry {hp!r}")
                    return
                if best is None or score > best:
                    best, best_hosts = score, [host]
                elif score == best:
                    best_hosts.append(host)
            if best_hosts:
                with self.rng_lock:
                    target = self.rng.choice(best_hosts)
        try:
            status, reply = self._post("bind", self.bind_body(pod, target), st)
        except (OSError, http.client.HTTPException) as e:
            st.bind_errors += 1
            st.transport_errors += 1
            st.note_error(f"bind transport: {type(e).__name__}")
            return
        if status != 200 or not isinstance(reply, dict):
            st.bind_errors += 1
            st.note_error(f"bind HTTP {status}: {str(reply)[:80]}")
            return
        m = pod["metadata"]
        if reply.get("Error"):
            st.bind_errors += 1
            st.note_error("bind Error: " + reply["Error"])
            st.failed_binds.append((m.get("namespace", "default"), m["name"], m["uid"], target,
                                    reply["Error"]))
            return
        st.bound += 1
        st.binds.append((m.get("namespace", "default"), m["name"], m["uid"], target, pod_gpus(pod)))

    # ---- one round

    def run_round(self, state: dict | None = None, max_pods: int | None = None,
                  stop: threading.Event | None = None) -> RoundStats:
        """Schedules every pending pod once (at most max_pods of them), `threads` at a time.
        state: a fresh /_admin/state?full=1 snapshot to use instead of fetching one.
        stop: when set, pods not started yet are skipped."""
        t0 = time.monotonic()
        state = state if state is not None else self.snapshot()
        load = self.node_load(state)
        pods = self.pending_pods(state)
        total = RoundStats(pending=len(pods))
        if max_pods is not None:
            pods = pods[:max_pods]

        def work(pod):
            st = RoundStats()
            if stop is None or not stop.is_set():
                self.schedule_one(pod, self.candidate_nodes(state, pod, load), st)
            return st

        for f in [self.pool.submit(work, p) for p in pods]:
            total.merge(f.result())
        total.seconds = time.monotonic() - t0
        return total
