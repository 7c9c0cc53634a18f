#!/usr/bin/env python3
"""test_churn.py -- gpu-extender's cluster cache under churn, against tests/fake_apiserver.py.

    GX_BIN=build-churn/gpu-extender python3 tests/integration/test_churn.py [-v]

Starts the fake API server and the real daemon (--kubeconfig with a tokenFile), waits for
/readyz, then runs a few hundred steps: nodes are created (200 over the run), deleted and
resized; 2,000 GPU pods (1, 2, 4 or 8 GPUs) are created faster than they fit, scheduled
by the kube-scheduler simulator (sched_sim.py: filter -> prioritize -> bind, 4 pods at once),
deleted (pending and bound, graceful and forced), and finished (phase Succeeded or Failed).
Mid-run it injects trouble: dropped watches, failing binding POSTs, a compaction (410 ->
relist), a 503 on the pod list, and a token rotation.

After EVERY step:
  (a) over-allocation, from the fake's truth (/_admin/state?full=1): on no node do the
      non-terminal pods bound there (deleting ones included) hold more GPUs than it has;
  (b) convergence, within 10 s: /debug/nodes has exactly the fake's nodes, each with the
      fake's allocatable and used GPUs and 0 reserved (no bind is in flight between steps);
  and after every scheduling step, every bind the daemon reported as done is true in the fake
  (the pod is on that node, with the gpu-count annotation), every bind it answered with an
  Error did not happen, and every call was answered within kube-scheduler's 5 s.
Once the cluster is saturated it also checks that freed GPUs are used again (no pending pod
fits on any node by the truth's count, and the nodes freed earlier received new pods).
At the end it stops the daemon with SIGTERM (exit 0) and fails on any sanitizer report in its
stderr.

BindRaceTest (same file, separate tests) pins two bind races deterministically by stalling
the binding POST at the fake: a second bind of the same pod to another node while the first is
in flight must not free the first one's reservation, and a bind that waited for a free worker
must still answer within --bind-timeout-ms. Run one class alone with
`python3 tests/integration/test_churn.py ChurnTest` (or BindRaceTest).

The module also holds the harness (processes, fixture-derived objects, the checks) that
test_restart.py uses.

Environment: GX_BIN (or GX_DAEMON) the binary; GX_FIXTURES the kube-1.26 fixtures (default
tests/fixtures/kube-1.26); GX_SEED a seed to replay a run; GX_CHURN_NODES / GX_CHURN_PODS to
scale the run; GX_KEEP_TMP=1 to keep the scratch directory (logs) even on success. Python 3.11
stdlib only.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sched_sim as sim  # noqa: E402

SOURCE_DIR = os.environ.get("GX_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
FAKE = os.path.join(SOURCE_DIR, "tests", "fake_apiserver.py")
GPU = sim.GPU
ANN_COUNT = "gpu-extender.io/gpu-count"
ANN_MODEL = "gpu-extender.io/gpu-model"
NAMESPACES = ("default", "team-a")
BINDING_RE = r"^POST /api/v1/namespaces/[^/]+/pods/[^/]+/binding$"
CONVERGE_S = float(os.environ.get("GX_CONVERGE_S", "10"))
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                          r"ThreadSanitizer|runtime error:|SUMMARY: .*Sanitizer")


def find_binary() -> str:
    """GX_BIN (or GX_DAEMON, what tests/integration.cmake sets) names the binary, and then it
    must exist (a failure, not a skip: ctest must not pass silently). Without either, the
    usual build directories are tried, and the test is skipped if none has one."""
    for var in ("GX_BIN", "GX_DAEMON"):
        if os.environ.get(var):
            p = os.path.abspath(os.environ[var])
            if not os.access(p, os.X_OK):
                raise AssertionError(f"{var}={p}: not an executable")
            return p
    for d in ("build-churn", "build-asan", "build-it", "build"):
        p = os.path.join(SOURCE_DIR, d, "gpu-extender")
        if os.access(p, os.X_OK):
            return p
    raise unittest.SkipTest("no gpu-extender binary: set GX_BIN")


def find_fixtures() -> str:
    if os.environ.get("GX_FIXTURES"):
        c = os.environ["GX_FIXTURES"]
        if not os.path.isfile(os.path.join(c, "apiserver", "get-node.200.json")):
            raise AssertionError(f"GX_FIXTURES={c}: no apiserver/get-node.200.json there")
        return os.path.abspath(c)
    c = os.path.join(SOURCE_DIR, "tests", "fixtures", "kube-1.26")
    if os.path.isfile(os.path.join(c, "apiserver", "get-node.200.json")):
        return os.path.abspath(c)
    raise unittest.SkipTest("kube-1.26 fixtures not found: set GX_FIXTURES")


def log(msg: str):
    print(f"# {msg}", flush=True)


class CheckFailure(AssertionError):
    pass


# ---------------------------------------------------------------- objects from the captures


class Objects:
    """Nodes and pods derived from the real captured objects. Only names, labels, allocatable
    (and the matching capacity) and GPU requests change; the fields the API server sets on
    create (uid, resourceVersion, creationTimestamp, managedFields) are dropped, as a client
    creating the object would not send them (the fake would drop most of them anyway)."""

    SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields")

    def __init__(self, fixtures: str):
        api = os.path.join(fixtures, "apiserver")
        with open(os.path.join(api, "get-node.200.json"), "rb") as f:
            self.node_template = json.loads(f.read())
        with open(os.path.join(api, "get-pod.unschedulable-insufficient-gpu.200.json"), "rb") as f:
            self.pod_template = json.loads(f.read())
        for o in (self.node_template, self.pod_template):
            for k in self.SERVER_SET:
                o["metadata"].pop(k, None)
        if not self.pod_template["spec"].get("containers"):
            raise AssertionError("the fixture pod has no containers")

    def node(self, name: str, gpus: int | None, product: str | None = None) -> dict:
        n = copy.deepcopy(self.node_template)
        n["metadata"]["name"] = name
        labels = n["metadata"].setdefault("labels", {})
        labels["kubernetes.io/hostname"] = name
        if product:
            labels["nvidia.com/gpu.product"] = product
        for a in n["status"].get("addresses") or []:
            if a.get("type") == "Hostname":
                a["address"] = name
        st = n["status"]
        if gpus is None:   # a CPU-only node: no nvidia.com/gpu at all
            for k in ("allocatable", "capacity"):
                st.get(k, {}).pop(GPU, None)
            for k in list(labels):
                if k.startswith("nvidia.com/gpu."):
                    del labels[k]
        else:
            labels["nvidia.com/gpu.count"] = str(gpus)
            st["allocatable"][GPU] = str(gpus)
            st["capacity"][GPU] = str(gpus)
        return n

    def pod(self, name: str, gpus: int, namespace: str = "default") -> dict:
        p = copy.deepcopy(self.pod_template)
        p["metadata"]["name"] = name
        p["metadata"]["namespace"] = namespace
        p["metadata"]["labels"] = dict(p["metadata"].get("labels") or {})
        p["metadata"]["labels"]["churn.test/gpus"] = str(gpus)
        res = p["spec"]["containers"][0].setdefault("resources", {})
        res.setdefault("limits", {})[GPU] = str(gpus)
        res.setdefault("requests", {})[GPU] = str(gpus)
        return p


# ---------------------------------------------------------------- processes


class Daemon:
    def __init__(self, tag, proc, port, log_path, started):
        self.tag, self.proc, self.port, self.log_path = tag, proc, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.http = sim.Http(self.url, timeout=5.0)
        self.started = started

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"

    def sanitizer_lines(self) -> list:
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return []
        hits = [i for i, l in enumerate(lines) if SANITIZER_RE.search(l)]
        if not hits:
            return []
        first = hits[0]
        return [l.rstrip("\n") for l in lines[max(0, first - 2): first + 40]]

    def metrics(self) -> dict:
        status, body = self.http.request("GET", "/metrics")
        if status != 200:
            raise CheckFailure(f"daemon {self.tag}: /metrics answered {status}")
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out


class Cluster:
    """The fake API server, one or more gpu-extender daemons (one at a time), the scheduler
    simulator, and the checks. Every wait is bounded; every process is started in its own
    process group and killed (by its id) in close()."""

    def __init__(self, name: str, seed: int | None = None):
        self.bin = find_binary()
        self.fixtures = find_fixtures()
        self.tmp = tempfile.mkdtemp(prefix=f"gx-{name}-")
        self.seed = seed if seed is not None else int(os.environ.get("GX_SEED") or
                                                      random.SystemRandom().randrange(1, 10**6))
        self.rng = random.Random(self.seed)
        self.objects = Objects(self.fixtures)
        self.procs = []            # every Popen we started
        self.daemon: Daemon | None = None
        self.daemons = []          # every daemon started (for the sanitizer check)
        self.fake_url = None
        self.fake = None
        self.token = "t1"
        self.token_file = os.path.join(self.tmp, "token")
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        self.sim: sim.Simulator | None = None
        self.failed = False
        # checks' memory
        self.ceiling = {}          # node -> GPUs held when shrunk below that (see check_truth)
        self.steps = 0
        self.step_times = {}       # kind -> [count, step seconds, converge seconds, max converge]
        self.counts = {"nodes_created": 0, "nodes_deleted": 0, "nodes_resized": 0,
                       "pods_created": 0, "pods_deleted_pending": 0, "pods_deleted_bound": 0,
                       "pods_force_deleted": 0, "pods_finished": 0, "binds": 0,
                       "bind_errors": 0, "filter_errors": 0, "unschedulable": 0,
                       "sim_rounds": 0, "rebinds_on_freed": 0}
        self.freed_nodes = {}      # node -> step when GPUs were freed there (not yet reused)
        self.prev_bound = set()    # UIDs of the pods bound at the previous check
        self.reused_nodes = set()
        self.pod_seq = 0
        self.node_seq = 0
        self.rounds = sim.RoundStats()   # every simulator round, merged
        self.last_round = sim.RoundStats()
        log(f"{name}: seed={self.seed} (GX_SEED={self.seed} replays it) tmp={self.tmp} "
            f"bin={self.bin}")

    # ---- lifecycle

    def _popen(self, args, log_path, env=None):
        f = open(log_path, "ab")
        try:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
        finally:
            f.close()
        self.procs.append(p)
        return p

    @staticmethod
    def _wait_port_file(path, proc, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            try:
                with open(path) as f:
                    txt = f.read().strip()
                if txt:
                    return int(txt)
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        return None

    def start_fake(self, *extra):
        pf = os.path.join(self.tmp, "fake.port")
        args = [sys.executable, FAKE, "--listen", "127.0.0.1:0", "--port-file", pf,
                "--token", self.token, "--seed-fixtures", os.path.join(self.fixtures, "apiserver"),
                "--no-node-taint-admission", "--event-window", "20000",
                "--log", os.path.join(self.tmp, "fake.requests.log"), *extra]
        p = self._popen(args, os.path.join(self.tmp, "fake.log"))
        port = self._wait_port_file(pf, p, 20)
        if port is None:
            raise CheckFailure("the fake API server did not start:\n" + self._tail("fake.log"))
        self.fake_url = f"http://127.0.0.1:{port}"
        self.fake = sim.Http(self.fake_url, timeout=30.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.fake.request("GET", "/_admin/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise CheckFailure("the fake API server never answered /_admin/health")
        self.write_token(self.token)
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {self.fake_url}
users:
- name: gpu-extender
  user:
    tokenFile: {self.token_file}
contexts:
- name: fake
  context:
    cluster: fake
    user: gpu-extender
current-context: fake
""")

    def write_token(self, token: str):
        tmp = self.token_file + ".new"
        with open(tmp, "w") as f:
            f.write(token)
        os.replace(tmp, self.token_file)

    def _tail(self, fname, n=20):
        try:
            with open(os.path.join(self.tmp, fname), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def daemon_env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GPU_EXTENDER_") and not k.startswith("KUBERNETES_SERVICE_")
               and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        env.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:print_summary=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        return env

    def start_daemon(self, tag: str, *extra, ready_timeout: float = 20.0) -> Daemon:
        pf = os.path.join(self.tmp, f"daemon-{tag}.port")
        log_path = os.path.join(self.tmp, f"daemon-{tag}.log")
        t0 = time.monotonic()
        p = self._popen([self.bin, "--listen", "127.0.0.1:0", "--port-file", pf,
                         "--kubeconfig", self.kubeconfig, *extra], log_path, env=self.daemon_env())
        port = self._wait_port_file(pf, p, 20)
        if port is None:
            raise CheckFailure(f"daemon {tag} did not write its port file "
                               f"(exit {p.poll()}):\n{self._tail(os.path.basename(log_path))}")
        d = Daemon(tag, p, port, log_path, t0)
        self.daemons.append(d)
        self.daemon = d
        if self.sim is None:
            self.sim = sim.Simulator(d.url, self.fake_url, self.fixtures,
                                     threads=int(os.environ.get("GX_SIM_THREADS", "4")),
                                     seed=self.rng.randrange(1 << 30))
        else:
            self.sim.set_extender(d.url)
        self.wait_ready(d, ready_timeout)
        return d

    def wait_ready(self, d: Daemon, timeout: float) -> float:
        """Waits for /readyz 200; returns the seconds since the daemon was started."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not d.alive():
                raise CheckFailure(f"daemon {d.tag} exited ({d.proc.returncode}) before it was "
                                   f"ready:\n{d.log_tail()}")
            try:
                status, body = d.http.request("GET", "/readyz")
                last = (status, body[:300])
                if status == 200:
                    return time.monotonic() - d.started
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise CheckFailure(f"daemon {d.tag}: /readyz not 200 within {timeout:.0f} s "
                           f"(last: {last})\n{d.log_tail()}")

    def stop_daemon(self, d: Daemon, timeout: float = 20.0) -> int | None:
        """SIGTERM, then wait (bounded); SIGKILL if it will not stop. Returns the exit code."""
        if d.alive():
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(d.proc.pid, signal.SIGKILL)
                d.proc.wait(5)
                return None
        d.http.close_all()
        return d.proc.returncode

    def kill_daemon(self, d: Daemon):
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait(10)
        d.http.close_all()

    def close(self):
        if self.sim is not None:
            self.sim.close()
        for d in self.daemons:
            d.http.close_all()
        if self.fake is not None:
            self.fake.close_all()
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        if self.failed or os.environ.get("GX_KEEP_TMP") == "1":
            log(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def finish_daemons(self, test: unittest.TestCase):
        """Stops the current daemon with SIGTERM (must exit 0) and checks every daemon's stderr
        for sanitizer reports."""
        if self.daemon is not None and self.daemon.alive():
            t0 = time.monotonic()
            rc = self.stop_daemon(self.daemon)
            log(f"daemon {self.daemon.tag} stopped with SIGTERM in {time.monotonic() - t0:.2f} s, "
                f"exit {rc}")
            test.assertEqual(rc, 0, f"daemon {self.daemon.tag} should exit 0 on SIGTERM\n"
                                    f"{self.daemon.log_tail()}")
        for d in self.daemons:
            lines = d.sanitizer_lines()
            if lines:
                test.fail(f"sanitizer report in daemon {d.tag}'s stderr ({d.log_path}):\n"
                          + "\n".join(lines))

    # ---- the fake's API (with the current token) and admin calls

    def api(self, method, path, body=None, ctype="application/json", ok=(200, 201)):
        hdrs = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            hdrs["Content-Type"] = ctype
        status, reply = self.fake.json(method, path, body, hdrs, retry=method in ("GET", "DELETE"))
        if ok and status not in ok:
            raise CheckFailure(f"fake {method} {path} answered {status}: {str(reply)[:300]}")
        return status, reply

    def admin(self, method, path, body=None):
        status, reply = self.fake.json(method, "/_admin" + path, body)
        if status != 200:
            raise CheckFailure(f"fake admin {method} {path} answered {status}: {reply}")
        return reply

    def truth(self) -> dict:
        return self.admin("GET", "/state?full=1")

    # ---- mutations

    def new_pod_name(self):
        self.pod_seq += 1
        return f"churn-{self.pod_seq:05d}"

    def create_pods(self, n: int, sizes=(1, 2, 4, 8), weights=(40, 30, 20, 10)):
        for _ in range(n):
            gpus = self.rng.choices(sizes, weights)[0]
            ns = self.rng.choice(NAMESPACES)
            self.api("POST", f"/api/v1/namespaces/{ns}/pods",
                     self.objects.pod(self.new_pod_name(), gpus, ns))
            self.counts["pods_created"] += 1

    def create_nodes(self, n: int, gpus: int | None = None):
        """n nodes; GPUs random (now and then a node without nvidia.com/gpu) unless given."""
        products = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "Tesla-T4")
        fixed = gpus
        for _ in range(n):
            self.node_seq += 1
            if fixed is not None:
                gpus = fixed
            else:
                gpus = self.rng.choice((8, 8, 8, 4, 4, 2, 1, 0)) if self.node_seq % 37 else None
            self.api("POST", "/api/v1/nodes",
                     self.objects.node(f"churn-node-{self.node_seq:03d}", gpus,
                                       self.rng.choice(products)))
            self.counts["nodes_created"] += 1

    def delete_pod(self, ns, name, grace=None, ok=(200,)):
        q = f"?gracePeriodSeconds={grace}" if grace is not None else ""
        return self.api("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}{q}", ok=ok)

    def set_phase(self, pod: dict, phase: str, via_upsert: bool):
        m = pod["metadata"]
        if via_upsert:
            obj = copy.deepcopy(pod)
            obj["status"]["phase"] = phase
            self.admin("POST", "/upsert", {"object": obj})
        else:
            self.api("PATCH", f'/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}/status',
                     {"status": {"phase": phase}}, ctype="application/merge-patch+json")

    def resize_node(self, name: str, gpus: int):
        self.api("PATCH", f"/api/v1/nodes/{name}/status",
                 {"status": {"allocatable": {GPU: str(gpus)}, "capacity": {GPU: str(gpus)}}},
                 ctype="application/merge-patch+json")
        self.counts["nodes_resized"] += 1

    def delete_node(self, name: str, state: dict):
        """Deletes a node and, like the pod garbage collector, the pods bound to it."""
        self.api("DELETE", f"/api/v1/nodes/{name}")
        self.counts["nodes_deleted"] += 1
        for p in state["pods"]:
            if p["spec"].get("nodeName") == name:
                self.admin("POST", "/force-delete", {"namespace": p["metadata"]["namespace"],
                                                     "name": p["metadata"]["name"]})
        self.ceiling.pop(name, None)
        self.freed_nodes.pop(name, None)

    # ---- views of the truth

    @staticmethod
    def node_alloc(state) -> dict:
        return {n["metadata"]["name"]: sim.node_gpus(n) for n in state["nodes"]}

    @staticmethod
    def pods_where(state, bound=None, terminal=None, deleting=None, gpu=True):
        out = []
        for p in state["pods"]:
            if gpu and not sim.asks_for_gpu(p):
                continue
            if bound is not None and bool(p["spec"].get("nodeName")) != bound:
                continue
            if terminal is not None and sim.is_terminal(p) != terminal:
                continue
            if deleting is not None and bool(p["metadata"].get("deletionTimestamp")) != deleting:
                continue
            out.append(p)
        return out

    # ---- the checks

    def check_truth(self, state: dict, label: str, new_binds=()):
        """(a) No node holds more GPUs than it has, by the fake's own objects.

        A node we deliberately shrank below what it already held may stay above its new size
        until those pods leave: its ceiling is what it held then, and only goes down. And no
        pod bound since the previous check (new_binds, from the truth) may sit on a node that
        is above its size now: if one does, the last of those binds over-allocated it, whatever
        else happened in between (deletions only free GPUs; allocatable does not change during
        a step that binds)."""
        alloc, used = self.node_alloc(state), sim.gpus_in_use(state)
        bad = []
        landed = {}
        for (_ns, _name, _uid, node, gpus) in new_binds:
            landed[node] = landed.get(node, 0) + 1
        for node, a in alloc.items():
            u = used.get(node, 0)
            limit = max(a, self.ceiling.get(node, 0))
            if u > limit or (u > a and landed.get(node)):
                pods = [f'{p["metadata"]["namespace"]}/{p["metadata"]["name"]}:{sim.pod_gpus(p)}'
                        f'{"(deleting)" if p["metadata"].get("deletionTimestamp") else ""}'
                        for p in state["pods"]
                        if p["spec"].get("nodeName") == node and not sim.is_terminal(p)]
                held = (f" (held {self.ceiling[node]} when shrunk)" if node in self.ceiling
                        else "")
                bad.append(f"  {node}: allocatable {a}, GPUs bound {u}{held}"
                           f", {landed.get(node, 0)} pod(s) bound there in this step; pods: "
                           f"{' '.join(pods[:20])}")
        for node in list(self.ceiling):
            u = used.get(node, 0)
            if node not in alloc or u <= alloc[node]:
                del self.ceiling[node]
            else:
                self.ceiling[node] = min(self.ceiling[node], u)
        if bad:
            raise CheckFailure(f"[{label}] OVER-ALLOCATION in the fake's truth "
                               f"(rv {state.get('resourceVersion')}):\n" + "\n".join(bad))

    def check_binds_true(self, state: dict, binds, label: str, failed=()):
        """Every bind the daemon answered {"Error":""} for is true in the fake: the pod (same
        UID), if it still exists, is on that node and carries the gpu-count annotation. And
        every bind it answered with an Error did not happen: the pod is not on that node (an
        Error for a bind that landed would also release its reservation while the GPUs are
        taken, opening a window for over-allocation)."""
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in state["pods"]}
        bad = []
        for (ns, name, uid, node, err) in failed:
            p = pods.get((ns, name))
            if p is not None and p["metadata"]["uid"] == uid and p["spec"].get("nodeName") == node:
                bad.append(f"  {ns}/{name}: bind answered Error, yet the fake has it on {node}: "
                           f"{err[:160]}")
        for (ns, name, uid, node, gpus) in binds:
            p = pods.get((ns, name))
            if p is None or p["metadata"]["uid"] != uid:
                continue   # deleted since (the concurrent-deletion rounds do that)
            if p["spec"].get("nodeName") != node:
                bad.append(f"  {ns}/{name}: bind said ok on {node}, the fake has it on "
                           f"{p['spec'].get('nodeName')!r}")
            elif (p["metadata"].get("annotations") or {}).get(ANN_COUNT) != str(gpus):
                have = (p["metadata"].get("annotations") or {}).get(ANN_COUNT)
                bad.append(f"  {ns}/{name}: annotation {ANN_COUNT} is {have!r}, want '{gpus}'")
        if bad:
            raise CheckFailure(f"[{label}] binds reported as done are not true in the fake:\n"
                               + "\n".join(bad[:30]))

    def daemon_view(self):
        status, doc = self.daemon.http.json("GET", "/debug/nodes")
        if status != 200 or not isinstance(doc, dict):
            raise CheckFailure(f"/debug/nodes answered {status}: {str(doc)[:200]}")
        return doc

    def daemon_gpu_pods(self):
        status, doc = self.daemon.http.json("GET", "/readyz")
        cache = doc.get("cache") if isinstance(doc, dict) else None
        if status != 200 or not isinstance(cache, dict):
            raise CheckFailure(f"/readyz answered {status}: {str(doc)[:200]}")
        return cache.get("gpuPods")

    def diff(self, state: dict, doc: dict, gpu_pods=None) -> list:
        alloc, used = self.node_alloc(state), sim.gpus_in_use(state)
        mine = {n["name"]: n for n in doc.get("nodes") or []}
        out = []
        if not doc.get("synced"):
            out.append("  daemon: synced=false")
        if gpu_pods is not None:
            want = sum(1 for p in state["pods"] if sim.pod_gpus(p) > 0)
            if gpu_pods != want:
                out.append(f"  pods asking for GPUs: fake {want}, daemon (/readyz cache.gpuPods) "
                           f"{gpu_pods}")
        for name in sorted(set(alloc) | set(mine)):
            if name not in mine:
                out.append(f"  {name}: in the fake (allocatable {alloc[name]}, used "
                           f"{used.get(name, 0)}), missing in the daemon")
                continue
            if name not in alloc:
                out.append(f"  {name}: in the daemon ({mine[name]}), deleted in the fake")
                continue
            d = mine[name]
            want = (alloc[name], used.get(name, 0), 0)
            if (d.get("allocatable"), d.get("used"), d.get("reserved")) != want:
                out.append(f"  {name}: fake allocatable={alloc[name]} used={used.get(name, 0)} | "
                           f"daemon allocatable={d.get('allocatable')} used={d.get('used')} "
                           f"reserved={d.get('reserved')} free={d.get('free')}")
        return out

    def wait_converged(self, state: dict, label: str, timeout: float = CONVERGE_S) -> float:
        """(b) The daemon's /debug/nodes equals the truth, within timeout. Returns seconds."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        diff = ["(no answer yet)"]
        while True:
            if not self.daemon.alive():
                raise CheckFailure(f"[{label}] daemon {self.daemon.tag} died (exit "
                                   f"{self.daemon.proc.returncode}):\n{self.daemon.log_tail(40)}")
            try:
                diff = self.diff(state, self.daemon_view(), self.daemon_gpu_pods())
            except (OSError, CheckFailure) as e:
                diff = [f"  /debug/nodes: {e}"]
            if not diff:
                return time.monotonic() - t0
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        raise CheckFailure(
            f"[{label}] the daemon did not converge to the fake's state within {timeout:.0f} s "
            f"(fake rv {state.get('resourceVersion')}; {len(diff)} node(s) differ):\n"
            + "\n".join(diff[:40]) + f"\n--- daemon log tail ---\n{self.daemon.log_tail(25)}")

    def newly_bound(self, state: dict) -> list:
        """Pods bound now that were not bound at the previous check, by the truth alone (so
        binds nobody heard the answer of count too), as (ns, name, uid, node, gpus)."""
        out, now = [], set()
        for p in state["pods"]:
            node = p["spec"].get("nodeName")
            if not node:
                continue
            uid = p["metadata"]["uid"]
            now.add(uid)
            if uid not in self.prev_bound:
                out.append((p["metadata"]["namespace"], p["metadata"]["name"], uid, node,
                            sim.pod_gpus(p)))
        self.prev_bound = now
        return out

    def check_only(self, label: str) -> dict:
        """(a) alone, for moments when no daemon runs."""
        state = self.truth()
        self.check_truth(state, label, self.newly_bound(state))
        return state

    def after_step(self, kind: str, label: str, t_step: float, binds=()) -> dict:
        """Runs (a) and (b) (and the bind checks when the step ran the simulator); returns the
        truth. binds: what the step returned; a simulator round returns its RoundStats."""
        self.steps += 1
        state = self.truth()
        self.check_truth(state, label, self.newly_bound(state))
        failed = ()
        if isinstance(binds, sim.RoundStats):
            binds, failed = binds.binds, binds.failed_binds
        if binds or failed:
            self.check_binds_true(state, binds, label, failed)
            for b in binds:
                if b[3] in self.freed_nodes:
                    self.reused_nodes.add(b[3])
                    self.counts["rebinds_on_freed"] += 1
        t_conv = self.wait_converged(state, label)
        rec = self.step_times.setdefault(kind, [0, 0.0, 0.0, 0.0])
        rec[0] += 1
        rec[1] += t_step
        rec[2] += t_conv
        rec[3] = max(rec[3], t_conv)
        return state

    def step(self, kind: str, fn, *args, **kw):
        """One step: fn(*args) mutates the cluster (and may return sim binds); then the checks."""
        label = f"step {self.steps + 1} {kind}"
        t0 = time.monotonic()
        binds = fn(*args, **kw)
        return self.after_step(kind, label, time.monotonic() - t0, binds or ())

    # ---- scheduling

    def schedule(self, max_pods: int = 250, state=None):
        st = self.sim.run_round(state=state, max_pods=max_pods)
        self.counts["sim_rounds"] += 1
        self.counts["binds"] += st.bound
        self.counts["bind_errors"] += st.bind_errors
        self.counts["filter_errors"] += st.filter_errors
        self.counts["unschedulable"] += st.unschedulable
        self.last_round = st
        self.rounds.merge(st)
        if st.protocol_errors:
            raise CheckFailure("extender protocol errors seen by the simulator:\n  "
                               + "\n  ".join(st.protocol_errors[:20]))
        if st.transport_errors:
            raise CheckFailure(f"{st.transport_errors} extender call(s) got no answer within "
                               f"kube-scheduler's 5 s httpTimeout (or the connection broke): "
                               + str({k: v for k, v in st.error_samples.items()
                                      if "transport" in k}))
        return st

    def saturate_and_check_reuse(self) -> dict:
        """Fills the cluster, then checks that freed GPUs were given out again.

        1-GPU pods are queued and rounds run until one binds nothing (bounded); if nothing
        is left pending then, more 1-GPU pods are queued (bounded). Then, by the truth's
        count, no pending pod may fit on any node kube-scheduler would pass: every GPU freed
        by deletions and finished pods was given out again, and none leaked (a reservation or
        a stale count would leave GPUs that the extender refuses). And if GPUs were freed on
        some nodes since the last check, later binds must have landed on some of them."""
        for _ in range(5):
            self.step("pods+1gpu", self.create_pods, 40, sizes=(1,), weights=(1,))
            for _ in range(8):
                before = self.counts["binds"]
                state = self.step("schedule-drain", self.schedule, 400)
                if self.counts["binds"] == before:
                    break
            else:
                raise CheckFailure("the cluster did not saturate within 8 rounds")
            pending = self.sim.pending_pods(state)
            if pending:
                break
        else:
            raise CheckFailure("saturation: 200 more 1-GPU pods all fit; cannot saturate")
        alloc, used = self.node_alloc(state), sim.gpus_in_use(state)
        load = self.sim.node_load(state)
        problems, where = [], []
        for p in pending:
            for n in self.sim.candidate_nodes(state, p, load):
                if alloc[n] - used.get(n, 0) >= sim.pod_gpus(p):
                    problems.append(f"  {p['metadata']['name']} ({sim.pod_gpus(p)} GPUs) fits on "
                                    f"{n}: allocatable {alloc[n]}, used {used.get(n, 0)}")
                    where.append(n)
                    break
        if problems:
            view = {n["name"]: n for n in self.daemon_view()["nodes"]}
            extra = [f"  daemon's view of {n}: {view.get(n)}" for n in sorted(set(where))[:5]]
            raise CheckFailure("saturated cluster, yet pending pods fit (freed GPUs not given out "
                               f"again; last round: {self.last_round.line()} errors "
                               f"{self.last_round.error_samples}):\n"
                               + "\n".join(problems[:20] + extra))
        freed = set(self.freed_nodes) & set(alloc)
        log(f"saturation: {len(pending)} pending (smallest {min(sim.pod_gpus(p) for p in pending)} "
            f"GPU), {sum(max(0, alloc[n] - used.get(n, 0)) for n in alloc)} GPUs free in total; "
            f"nodes freed since the last check: {len(freed)}, given new pods: "
            f"{len(self.reused_nodes & freed)}")
        if freed and not self.reused_nodes & freed:
            raise CheckFailure(f"GPUs were freed on {len(freed)} node(s) but no later bind used "
                               f"any of them: {sorted(freed)[:10]}")
        self.freed_nodes.clear()
        self.reused_nodes.clear()
        return state

    def print_summary(self, name: str, t_total: float):
        log(f"{name}: {self.steps} steps in {t_total:.1f} s; counts: "
            + " ".join(f"{k}={v}" for k, v in self.counts.items()))
        for kind, (n, ts, tc, tmax) in sorted(self.step_times.items()):
            log(f"  {kind:<22} x{n:<4} step {ts:7.2f} s  converge {tc:6.2f} s (max {tmax:.2f} s)")
        for verb, (n, t, mx) in sorted(self.rounds.call_seconds.items()):
            log(f"  extender {verb:<11} {n:6d} calls, mean {t / max(n, 1) * 1000:6.1f} ms, "
                f"max {mx * 1000:7.1f} ms")
        for msg, n in sorted(self.rounds.error_samples.items(), key=lambda kv: -kv[1])[:8]:
            log(f"  {n:6d} x {msg}")


# ---------------------------------------------------------------- the churn test


def run_cluster_test(test: unittest.TestCase, name: str, body) -> None:
    """body(c) on a fresh Cluster; c keeps its logs if body raises, and the daemons must stop
    cleanly with no sanitizer report."""
    t0 = time.monotonic()
    c = Cluster(name)
    test.addCleanup(c.close)
    try:
        body(c)
    except BaseException:
        c.failed = True
        raise
    c.finish_daemons(test)
    log(f"{name}: done in {time.monotonic() - t0:.1f} s")


class ChurnTest(unittest.TestCase):
    NODES_TOTAL = int(os.environ.get("GX_CHURN_NODES", "200"))
    PODS_TOTAL = int(os.environ.get("GX_CHURN_PODS", "2000"))
    INITIAL_NODES = 100
    BATCH = 75             # pods created per churn epoch
    PENDING_CAP = 150      # pending pods above this get deleted (the queue stays bounded)

    def test_churn(self):
        t_start = time.monotonic()
        c = Cluster("churn")
        self.addCleanup(c.close)
        try:
            self._run(c, t_start)
        except BaseException:
            c.failed = True
            raise

    # -- steps

    def _run(self, c: Cluster, t_start: float):
        c.start_fake()
        d = c.start_daemon("1")
        log(f"daemon ready in {time.monotonic() - d.started:.2f} s on {d.url}")
        # the seeded fixture state first: 3 nodes, a GPU pod bound to gpu-node-1
        c.after_step("seed", "step 0 seed", 0.0)

        n0 = min(self.INITIAL_NODES, self.NODES_TOTAL)
        c.step("nodes+", c.create_nodes, n0 // 2)
        c.step("nodes+", c.create_nodes, n0 - n0 // 2)
        self.assertGreaterEqual(c.counts["nodes_created"], n0)

        epochs = max(1, -(-self.PODS_TOTAL // self.BATCH))
        nodes_per_epoch = max(1, (self.NODES_TOTAL - n0) // max(1, epochs // 2))
        trouble_at = {max(2, epochs * f // 100): t for f, t in
                      ((20, "close-watches"), (30, "bind-faults"), (40, "compact"),
                       (60, "list-503"), (80, "token"))}
        saturate_at = {max(3, epochs * 50 // 100), epochs - 1}
        state = c.truth()
        for epoch in range(epochs):
            n = min(self.BATCH, self.PODS_TOTAL - c.counts["pods_created"])
            if n > 0:
                state = c.step("pods+", c.create_pods, n)
            if epoch in trouble_at:
                state = self._trouble(c, trouble_at[epoch])
            if epoch % 4 == 3:
                state = c.step("schedule+delete", self._schedule_with_deletions, c, state)
            else:
                state = c.step("schedule", c.schedule)
            state = self._churn_ops(c, state, epoch, epochs, nodes_per_epoch)
            if epoch in saturate_at:
                state = c.saturate_and_check_reuse()
        # the nodes still to create, if the epochs did not get there
        while c.counts["nodes_created"] < self.NODES_TOTAL:
            state = c.step("nodes+", c.create_nodes,
                           min(20, self.NODES_TOTAL - c.counts["nodes_created"]))
        state = c.step("schedule", c.schedule)

        self.assertGreaterEqual(c.counts["pods_created"], min(self.PODS_TOTAL, 1000))
        self.assertGreaterEqual(c.counts["nodes_created"], min(self.NODES_TOTAL, 100))
        self.assertGreater(c.counts["binds"], c.counts["pods_created"] // 4,
                           "the simulator bound too few pods: the run did not exercise binds")
        self.assertGreater(c.counts["nodes_deleted"], 0)
        self.assertGreater(c.counts["nodes_resized"], 0)
        self.assertGreater(c.counts["pods_finished"], 0)
        m = c.daemon.metrics()
        log("daemon metrics: " + " ".join(
            f"{k}={int(v)}" for k, v in sorted(m.items())
            if k.startswith(("gpu_extender_cache_", "gpu_extender_bind_total",
                             "gpu_extender_apiserver_token"))))
        c.print_summary("churn", time.monotonic() - t_start)
        c.finish_daemons(self)

    def _churn_ops(self, c: Cluster, state: dict, epoch: int, epochs: int, nodes_per_epoch: int):
        rng = c.rng
        # bound pods deleted: graceful (Terminating: they keep their GPUs) or forced
        bound = c.pods_where(state, bound=True, terminal=False, deleting=False)
        if bound:
            victims = rng.sample(bound, min(len(bound), rng.randint(10, 30)))
            state = c.step("delete-bound", self._delete_bound, c, victims)
        # the "kubelet" finishes Terminating pods: they go away and free their GPUs
        terminating = c.pods_where(state, bound=True, deleting=True)
        if terminating:
            done = rng.sample(terminating, max(1, len(terminating) * 2 // 3))
            state = c.step("terminating-gone", self._finish_terminating, c, done)
        # some bound pods finish (Succeeded through /status, Failed through /_admin/upsert)
        running = c.pods_where(state, bound=True, terminal=False, deleting=False)
        if running:
            fin = rng.sample(running, min(len(running), rng.randint(5, 15)))
            state = c.step("pods-finish", self._finish_pods, c, fin)
        # finished pods are cleaned up now and then
        finished = c.pods_where(state, terminal=True)
        if len(finished) > 40:
            state = c.step("finished-gone", self._delete_pods_plain, c, finished[:30], True)
        # the pending queue stays bounded: the oldest pending pods are deleted
        pending = c.pods_where(state, bound=False, deleting=False, terminal=False)
        if len(pending) > self.PENDING_CAP:
            pending.sort(key=lambda p: p["metadata"]["name"])
            extra = pending[: len(pending) - self.PENDING_CAP + rng.randint(0, 20)]
            state = c.step("delete-pending", self._delete_pods_plain, c, extra, False)
        # nodes: more of them in the first half of the run; deletions and resizes throughout
        if epoch < epochs // 2 and c.counts["nodes_created"] < self.NODES_TOTAL:
            state = c.step("nodes+", c.create_nodes,
                           min(nodes_per_epoch, self.NODES_TOTAL - c.counts["nodes_created"]))
        if epoch % 3 == 1:
            state = c.step("nodes-resize", self._resize_nodes, c, state)
        if epoch % 5 == 2:
            churn_nodes = [n["metadata"]["name"] for n in state["nodes"]
                           if n["metadata"]["name"].startswith("churn-node-")]
            if len(churn_nodes) > 10:
                state = c.step("node-delete", c.delete_node, rng.choice(churn_nodes), state)
        return state

    @staticmethod
    def _delete_bound(c: Cluster, victims):
        for p in victims:
            m = p["metadata"]
            if c.rng.random() < 0.5:
                c.delete_pod(m["namespace"], m["name"])           # graceful: Terminating
            else:
                c.delete_pod(m["namespace"], m["name"], grace=0)  # forced: gone, GPUs free
                c.counts["pods_force_deleted"] += 1
                c.freed_nodes[p["spec"]["nodeName"]] = c.steps
            c.counts["pods_deleted_bound"] += 1

    @staticmethod
    def _finish_terminating(c: Cluster, pods):
        for p in pods:
            m = p["metadata"]
            if c.rng.random() < 0.5:
                c.delete_pod(m["namespace"], m["name"], grace=0)
            else:
                c.admin("POST", "/force-delete", {"namespace": m["namespace"], "name": m["name"]})
            if not sim.is_terminal(p):
                c.freed_nodes[p["spec"]["nodeName"]] = c.steps

    @staticmethod
    def _finish_pods(c: Cluster, pods):
        for p in pods:
            if c.rng.random() < 0.7:
                c.set_phase(p, "Succeeded", via_upsert=False)
            else:
                c.set_phase(p, "Failed", via_upsert=True)
            c.counts["pods_finished"] += 1
            c.freed_nodes[p["spec"]["nodeName"]] = c.steps

    @staticmethod
    def _delete_pods_plain(c: Cluster, pods, bound_ok: bool):
        for p in pods:
            m = p["metadata"]
            c.delete_pod(m["namespace"], m["name"], ok=(200, 404))
            if not bound_ok:
                c.counts["pods_deleted_pending"] += 1

    @staticmethod
    def _resize_nodes(c: Cluster, state: dict):
        """Grows some nodes, shrinks others to no less than they hold, and shrinks one below
        what it holds (its pods stay; nothing new may land there until it has room)."""
        alloc, used = c.node_alloc(state), sim.gpus_in_use(state)
        names = [n for n in alloc if n.startswith("churn-node-") and alloc[n] > 0]
        for name in c.rng.sample(names, min(len(names), 4)):
            a, u = alloc[name], used.get(name, 0)
            choice = c.rng.random()
            if choice < 0.4:
                new = a + c.rng.choice((1, 2, 4))
            elif choice < 0.8 or u < 2:
                new = max(u, a // 2)
            else:
                new = max(0, u - c.rng.randint(1, min(u, 4)))
                c.ceiling[name] = max(c.ceiling.get(name, 0), u)
            if new != a:
                c.resize_node(name, new)

    @staticmethod
    def _schedule_with_deletions(c: Cluster, state: dict):
        """A scheduling round while another thread deletes pending and bound pods, so that
        binds race with deletions (GET pod, reserve, POST binding against a pod that is going)."""
        pending = c.pods_where(state, bound=False, deleting=False, terminal=False)
        bound = c.pods_where(state, bound=True, deleting=False, terminal=False)
        targets = (c.rng.sample(pending, min(len(pending), 15))
                   + c.rng.sample(bound, min(len(bound), 8)))
        c.rng.shuffle(targets)
        errors = []
        # the deleting thread needs its own connection and RNG (the harness's are not shared)
        fake = sim.Http(c.fake_url, timeout=30.0)
        rng = random.Random(c.rng.randrange(1 << 30))
        hdrs = {"Authorization": f"Bearer {c.token}"}

        def deleter():
            try:
                for p in targets:
                    time.sleep(rng.uniform(0, 0.03))
                    m = p["metadata"]
                    q = "?gracePeriodSeconds=0" if rng.random() < 0.6 else ""
                    status, _ = fake.request("DELETE", f'/api/v1/namespaces/{m["namespace"]}/pods/'
                                                       f'{m["name"]}{q}', headers=hdrs)
                    if status not in (200, 404):
                        errors.append(f'DELETE {m["name"]}: {status}')
            except OSError as e:
                errors.append(repr(e))
            finally:
                fake.close()

        t = threading.Thread(target=deleter, name="deleter")
        t.start()
        try:
            binds = c.schedule(state=state)
        finally:
            t.join(30)
        if t.is_alive() or errors:
            raise CheckFailure(f"the deleting thread failed: {errors[:5]} alive={t.is_alive()}")
        for p in targets:
            if p["spec"].get("nodeName"):
                c.counts["pods_deleted_bound"] += 1
            else:
                c.counts["pods_deleted_pending"] += 1
        return binds

    @staticmethod
    def _force_relist(c: Cluster, extra_fault=None):
        """Makes both watches miss events that are then compacted away, so that their
        reconnection gets 410 Gone and the daemon must list again: the next watch requests
        are stalled for a moment (a fault), the watches are dropped, objects change, and the
        fake compacts every event."""
        faults = [{"match": r"^GET /api/v1/(pods|nodes)$", "query": r"(^|&)watch=",
                   "action": "stall", "seconds": 1.0, "times": 2}]
        if extra_fault:
            faults.append(extra_fault)
        ids = [f["id"] for f in c.admin("POST", "/fault", faults)]
        r = c.admin("POST", "/close-watches", {"mode": "rst"})
        if r["closed"] < 2:
            raise CheckFailure(f"expected the daemon's node and pod watches open, closed {r}")
        c.create_pods(10)
        state = c.truth()
        for p in c.pods_where(state, bound=False, deleting=False)[:5]:
            c.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"], ok=(200, 404))
        c.admin("POST", "/compact", {"keep": 0})
        return ids

    def _trouble(self, c: Cluster, what: str):
        d = c.daemon
        m0 = d.metrics()
        relists0 = m0.get("gpu_extender_cache_relists_total", 0)
        log(f"trouble: {what}")
        if what == "close-watches":
            # dropped mid-stream: the daemon resumes from its resourceVersion
            r = c.admin("POST", "/close-watches", {"mode": "drop"})
            self.assertGreaterEqual(r["closed"], 2, "the daemon should hold a node and a pod watch")
            c.step("trouble-churn", c.create_pods, 20)
            state = c.step("trouble-schedule", c.schedule)
        elif what == "compact":
            self._force_relist(c)
            c.step("trouble-churn", c.create_pods, 20)
            state = c.step("trouble-schedule", c.schedule)
            c.admin("DELETE", "/fault")
            relists = d.metrics().get("gpu_extender_cache_relists_total", 0)
            self.assertGreater(relists, relists0,
                               "compaction + dropped watches must cause a relist (410 Gone)")
        elif what == "list-503":
            ids = self._force_relist(c, {"match": r"^GET /api/v1/pods$", "query": r"^limit=",
                                         "action": "status", "status": 503, "times": 3})
            c.step("trouble-churn", c.create_pods, 20)
            state = c.step("trouble-schedule", c.schedule)
            faults = {x["id"]: x for x in c.admin("GET", "/fault")}
            c.admin("DELETE", "/fault")
            self.assertGreaterEqual(faults[ids[1]]["hits"], 1, "the 503 fault on the pod list "
                                    "was never hit: no relist happened")
            relists = d.metrics().get("gpu_extender_cache_relists_total", 0)
            self.assertGreater(relists, relists0)
        elif what == "token":
            reloads0 = m0.get("gpu_extender_apiserver_token_reloads_total", 0)
            c.admin("POST", "/token", {"token": "t2"})   # the daemon's token now gets 401
            c.token = "t2"
            c.admin("POST", "/close-watches", {"mode": "drop"})
            c.create_pods(10)
            # binds while the file still holds the old token: 401, re-read, still 401 -> Error
            gap = c.sim.run_round(max_pods=20)
            c.check_only("token gap")
            self.assertEqual(gap.bound, 0, "a bind succeeded with a rejected token?")
            time.sleep(0.2)
            c.write_token("t2")                          # the kubelet rewrites the file
            c.step("trouble-churn", c.create_pods, 10, sizes=(1,), weights=(1,))
            c.step("trouble-churn", c.create_nodes, 1, 8)  # room for them, surely
            before = c.counts["binds"]
            state = c.step("trouble-schedule", c.schedule, None)
            reloads = d.metrics().get("gpu_extender_apiserver_token_reloads_total", 0)
            log(f"token gap round: {gap.line()} errors {dict(list(gap.error_samples.items())[:3])}")
            self.assertGreater(reloads, reloads0, "the token file should have been re-read")
            self.assertGreater(c.counts["binds"], before, "no bind succeeded after the rotation")
        elif what == "bind-faults":
            # the API server fails binds: no answer (not bound), the answer lost after the
            # binding was stored (bound: the daemon must find out with a GET), a 500, and a
            # stall longer than --bind-timeout-ms (4 s; the fake then drops the request)
            faults = c.admin("POST", "/fault", [
                {"match": BINDING_RE, "action": "drop", "times": 2},
                {"match": BINDING_RE, "action": "close-after-headers", "times": 2},
                {"match": BINDING_RE, "action": "status", "status": 500, "times": 2},
                {"match": BINDING_RE, "action": "stall", "seconds": 8, "times": 1}])
            c.step("trouble-churn", c.create_pods, 20, sizes=(1,), weights=(1,))
            c.step("trouble-churn", c.create_nodes, 2, 8)
            state = c.step("trouble-schedule", c.schedule, None)
            hits = {x["id"]: x["hits"] for x in c.admin("GET", "/fault")}
            c.admin("DELETE", "/fault")
            rnd = c.last_round
            log(f"bind faults: hits {[hits.get(f['id']) for f in faults]}; round {rnd.line()}; "
                f"errors {dict(list(rnd.error_samples.items())[:4])}")
            self.assertTrue(all(hits.get(f["id"], 0) >= 1 for f in faults),
                            f"every bind fault should have been hit: {hits}")
        else:
            raise AssertionError(what)
        return state


# ---------------------------------------------------------------- bind races, one at a time


class BindRaceTest(unittest.TestCase):
    """Two deterministic bind races, each made visible by stalling the binding POST at the fake.
    They assert the behaviour the accounting rules and the README promise."""

    def _cluster(self, name, *daemon_args):
        c = Cluster(name)
        self.addCleanup(c.close)
        c.start_fake()
        c.start_daemon("1", *daemon_args)
        return c

    def _bind_async(self, c: Cluster, pod: dict, node: str, results: dict, key):
        def run():
            h = sim.Http(c.daemon.url, timeout=30)
            t0 = time.monotonic()
            try:
                results[key] = (h.json("POST", "/bind", c.sim.bind_body(pod, node),
                                       c.sim.headers["bind"]), time.monotonic() - t0)
            except OSError as e:
                results[key] = ((0, repr(e)), time.monotonic() - t0)
            finally:
                h.close()
        t = threading.Thread(target=run, name=f"bind-{key}")
        t.start()
        return t

    def _wait_reserved(self, c: Cluster, node: str, gpus: int, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = {n["name"]: n for n in c.daemon_view()["nodes"]}
            if view.get(node, {}).get("reserved") == gpus:
                return
            time.sleep(0.01)
        raise CheckFailure(f"{node} never showed {gpus} GPUs reserved: {view.get(node)}")

    def test_second_bind_of_a_pod_elsewhere_keeps_the_first_reservation(self):
        """Pod P's bind to node A is in flight (its POST stalled) when a second bind of P, to
        node B, arrives (kube-scheduler retrying a pod whose bind call timed out, or two
        scheduler replicas during a leader change). The GPUs P reserved on A must stay
        reserved until the first bind is decided: otherwise a third bind, of pod Q to A,
        takes them, P's first bind lands too, and A holds twice its GPUs."""
        c = self._cluster("double-bind")
        try:
            c.after_step("seed", "seed", 0.0)
            c.step("nodes+", c.create_nodes, 2, 8)
            state = c.step("pods+", c.create_pods, 2, sizes=(8,), weights=(1,))
            p, q = c.sim.pending_pods(state)[:2]
            a, b = sorted(n["metadata"]["name"] for n in state["nodes"]
                          if n["metadata"]["name"].startswith("churn-node-"))[:2]
            c.admin("POST", "/fault", {"match": BINDING_RE, "action": "stall", "seconds": 2,
                                       "times": -1})
            res = {}
            threads = [self._bind_async(c, p, a, res, "P->A")]
            self._wait_reserved(c, a, 8)
            threads.append(self._bind_async(c, p, b, res, "P->B"))
            c.admin("GET", f"/requests?match={urllib.parse.quote(BINDING_RE)}&min=2&wait=10")
            time.sleep(0.2)
            threads.append(self._bind_async(c, q, a, res, "Q->A"))
            for t in threads:
                t.join(30)
            c.admin("DELETE", "/fault")
            log("replies: " + "; ".join(f"{k}: {v[0][1]} in {v[1]:.2f} s"
                                        for k, v in sorted(res.items())))
            state = c.step("binds", lambda: None)
        except BaseException:
            c.failed = True
            raise
        c.finish_daemons(self)

    def test_bind_answers_within_bind_timeout_when_queued(self):
        """--bind-timeout-ms bounds a whole bind, so that kube-scheduler (5 s httpTimeout by
        default) hears the outcome. With every worker busy on a slow API server, a bind that
        waits in the queue must still answer within the timeout counted from its arrival."""
        c = self._cluster("bind-deadline", "--bind-workers", "2", "--bind-timeout-ms", "2000")
        try:
            c.after_step("seed", "seed", 0.0)
            c.step("nodes+", c.create_nodes, 1, 8)
            state = c.step("pods+", c.create_pods, 4, sizes=(1,), weights=(1,))
            node = next(n["metadata"]["name"] for n in state["nodes"]
                        if n["metadata"]["name"].startswith("churn-node-"))
            c.admin("POST", "/fault", {"match": BINDING_RE, "action": "stall", "seconds": 1.5,
                                       "times": -1})
            res = {}
            threads = [self._bind_async(c, p, node, res, p["metadata"]["name"])
                       for p in c.sim.pending_pods(state)]
            for t in threads:
                t.join(30)
            c.admin("DELETE", "/fault")
            late = {k: f"{v[1]:.2f} s: {v[0][1]}" for k, v in res.items() if v[1] > 2.0 + 0.75}
            log("reply times: " + ", ".join(f"{k} {v[1]:.2f} s" for k, v in sorted(res.items())))
            c.step("binds", lambda: None)
            if late:
                self.fail("binds answered later than --bind-timeout-ms 2000 (+0.75 s slack) after "
                          f"they arrived (they waited for a worker first): {late}")
        except BaseException:
            c.failed = True
            raise
        c.finish_daemons(self)


if __name__ == "__main__":
    unittest.main()
