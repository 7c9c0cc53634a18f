#!/usr/bin/env python3
"""test_preempt_e2e.py -- GPU preemption end to end, against a real kube-apiserver and
kube-scheduler (v1.28.7 is what it was written against).

    export K8S_BIN=$HOME/k8s-bin GX_DAEMON=build/gpu-extender
    python3 tests/integration/test_preempt_e2e.py -v

The control plane comes from the loopback harness `../shared/harness` (beside the checkout;
its README.md): etcd, kube-apiserver and kube-scheduler on 127.0.0.1, no kubelet and no
kube-controller-manager. kube-scheduler is configured with gpu-extender as its one extender:
nodeCacheCapable true, verbs filter, prioritize, bind and preempt, managedResources
nvidia.com/gpu with ignoredByScheduler false (kube-scheduler counts GPUs itself too), httpTimeout
5 s. Every port (etcd, kube-apiserver, kube-scheduler, the extender) is picked free at start, and
the harness's "current cluster" file is private to the run, so a developer's own harness cluster
is left alone. The daemon (GX_DAEMON) runs with --kubeconfig (the harness's admin kubeconfig),
--policy (below) and --log-level debug, on the port EXTENDER_URL names.

PriorityClasses low (100), mid (200), upper (300) and high (1000). Policy: one rule,
`nvlink-high`, selecting pods of priority class `high`, that requires NVLink between all GPUs
of pods asking 4 or more (topology {minGPUs: 4, require: NVLink}).

Scenario 1 (node s1-gpu-1, 4 GPUs, no topology): four 1-GPU `low` pods, created one by one, each
bound by kube-scheduler through the extender. Then `s1-high` asks 2 GPUs. Expected: exactly two
of the four low pods are preempted (equal priorities: any two, but no more than the request
needs) and s1-high is bound on s1-gpu-1; the other two keep running.

Scenario 2 (node s2-gpu-1, 8 GPUs, annotation gpu-extender.io/topology: GPUs 0-3 linked NV12
to each other, 4-7 likewise, SYS across): eight 1-GPU pods, created one by one, each bound
through the extender, which records the GPU it chose in the pod's gpu-extender.io/gpus. Their
priorities, in creation order, are low, low, mid, mid, low, low, upper, upper; the extender
fills one quad before the other, so one quad holds {100, 100, 200, 200} and the other
{100, 100, 300, 300} (the test reads the real placement from the annotations and computes the
expectation from it, whatever it is). Then `s2-high` (priority 1000, rule nvlink-high) asks 4
GPUs. The rules imply:
  - the victims must leave it 4 free GPUs all linked by NVLink: all the pods of one quad (every
    cross-quad pair is SYS), and nothing else;
  - of the two quads, the cheaper: the fewest PodDisruptionBudget violations (none here), then
    the lowest highest-priority victim, then the fewest victims, then the smallest sum of
    priorities (the order of include/gx/preempt.h; kube-scheduler ranks candidate nodes alike).
    So the quad holding {100, 100, 200, 200}: 200 < 300 whichever way the later keys go.
kube-scheduler's own dry run, which counts GPUs and knows nothing of NVLink, proposes the four
priority-100 pods, two in each quad: the extender's preempt verb must replace that proposal.
Expected: exactly the four pods of that quad are preempted, s2-high is bound on s2-gpu-1 with
gpu-extender.io/gpus naming exactly that quad's GPUs and gpu-extender.io/policy-rule
nvlink-high, and the other quad's four pods keep running.

The test plays the kubelet for deletions. There is no kubelet: pods never run, and a bound pod
that is deleted (as kube-scheduler deletes preemption victims, with their grace period) stays
Terminating for ever, holding its GPUs. A thread polls the pods every 100 ms and, for each one
with metadata.deletionTimestamp set, records it as a victim and confirms the deletion with
DELETE gracePeriodSeconds=0 (and a UID precondition), as a kubelet does once the containers
have stopped. The test itself deletes only with gracePeriodSeconds=0, so every pod the thread
sees Terminating was deleted by someone else: here, by kube-scheduler's preemption.

Also checked: the extender's preempt verb was called and answered ok (never an error), and
named exactly as many victims as were evicted (gpu_extender_requests_total{verb="preempt"},
gpu_extender_preempt_victims_total), so the victims are its choice, not only kube-scheduler's
dry run; every victim carries a `Preempted` event naming the node, the preemptor a `Scheduled`
event; no event reports an extender error; after the preemptor is bound, nothing more is
preempted for 2 s; the daemon is still alive, exits 0 on SIGTERM and logged no sanitizer
report. A failure prints the pods (priority, node, GPUs, deletion), every event of the
namespace, the victims the fake kubelet confirmed, the daemon's /debug/nodes, the daemon log's
preempt lines and tail, and kube-scheduler's log lines about preemption and the extender; the
harness's state dir (logs, certificates) is kept and its path printed.

Skips (exit 77, which tests/integration.cmake declares as SKIP_RETURN_CODE), saying why, when
K8S_BIN is unset or lacks kube-apiserver or kube-scheduler, when etcd, kubectl, openssl or curl
is missing, when the harness is not at $GX_SOURCE_DIR/../shared/harness, or when no daemon
binary is found (GX_DAEMON or GX_BIN, if set, must exist: that is a failure, not a skip). It
never builds anything.

Environment: K8S_BIN (required), GX_DAEMON or GX_BIN, GX_SOURCE_DIR (default: this checkout),
GX_HARNESS (overrides the harness directory), ETCD, KUBECTL, GX_KEEP_TMP=1 (keep the state dir
even on success). About 40 s on 2 cores. Python 3.11 standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SKIP_RC = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("GX_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
GPU = "nvidia.com/gpu"
ANN_GPUS = "gpu-extender.io/gpus"
ANN_RULE = "gpu-extender.io/policy-rule"
ANN_TOPOLOGY = "gpu-extender.io/topology"
NS = "default"
SCENARIO_LABEL = "e2e.gpu-extender.io/scenario"
PRIORITIES = {"low": 100, "mid": 200, "upper": 300, "high": 1000}
RULE = "nvlink-high"
POLICY = f"""apiVersion: gpu-extender.io/v1alpha1
kind: GPUPolicy
rules:
  - name: {RULE}
    match:
      priorityClassNames: [high]
    topology:
      minGPUs: 4
      require: NVLink
"""
QUADS = ((0, 1, 2, 3), (4, 5, 6, 7))
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                          r"ThreadSanitizer|runtime error:|SUMMARY: .*Sanitizer")
# An event that says the extender (or the scheduler around it) failed, not just "no room".
# (The extender's own filter reasons start "gpu-extender: ..." and are not errors.)
ERROR_EVENT_RE = re.compile(r"\berror\b|with extender|timeout|deadline exceeded|refused|panic|"
                            r"failed (to )?(preempt|bind|filter|prioritize)", re.IGNORECASE)
SETTLE_S = 2.0


def log(msg: str):
    print(f"# {msg}", flush=True)


def skip(reason: str):
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP_RC)


# ---------------------------------------------------------------- what the test needs


class Setup:
    k8s_bin: str
    etcd: str
    kubectl: str
    harness: str
    daemon: str


def preflight() -> Setup:
    """Everything the test needs, or a skip (exit 77) naming what is missing. A daemon named
    by GX_DAEMON/GX_BIN that does not exist is a failure: ctest must not pass silently."""
    s = Setup()
    k8s = os.environ.get("K8S_BIN", "")
    if not k8s:
        skip("K8S_BIN is not set (a directory with kube-apiserver and kube-scheduler; "
             "see ../shared/harness/README.md)")
    for b in ("kube-apiserver", "kube-scheduler"):
        if not os.access(os.path.join(k8s, b), os.X_OK):
            skip(f"K8S_BIN={k8s}: no executable {b} there")
    s.k8s_bin = os.path.abspath(k8s)
    s.etcd = os.environ.get("ETCD") or shutil.which("etcd") or ""
    if not s.etcd or not os.access(s.etcd, os.X_OK):
        skip("etcd not found (Debian package etcd-server; or set ETCD)")
    s.kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl") or ""
    if not s.kubectl or not os.access(s.kubectl, os.X_OK):
        skip("kubectl not found (or set KUBECTL)")
    for tool in ("openssl", "curl", "bash"):
        if not shutil.which(tool):
            skip(f"{tool} not found (the harness needs it)")
    s.harness = os.path.abspath(os.environ.get("GX_HARNESS") or
                                os.path.join(SOURCE_DIR, "..", "shared", "harness"))
    for f in ("cluster-up.sh", "cluster-down.sh", "make-gpu-nodes.sh"):
        if not os.path.isfile(os.path.join(s.harness, f)):
            skip(f"the loopback harness is not at {s.harness} (no {f})")
    for var in ("GX_DAEMON", "GX_BIN"):
        if os.environ.get(var):
            p = os.path.abspath(os.environ[var])
            if not os.access(p, os.X_OK):
                print(f"FAIL: {var}={p}: not an executable", flush=True)
                sys.exit(1)
            s.daemon = p
            return s
    for d in ("build", "build-asan", "build-gcc", "build-it"):
        p = os.path.join(SOURCE_DIR, d, "gpu-extender")
        if os.access(p, os.X_OK):
            s.daemon = p
            return s
    skip("no gpu-extender binary: set GX_DAEMON")
    raise AssertionError("unreachable")


def free_ports(n: int) -> list:
    """n distinct ports that were free a moment ago (held open together while picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- kube-apiserver client


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path}: {status} {body[:300]!r}")
        self.status = status


class Api:
    """A minimal HTTPS client for kube-apiserver: bearer token, the cluster CA, one kept-alive
    connection per thread."""

    def __init__(self, url: str, token: str, cafile: str):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            self.local.conn = c
        return c

    def close(self):
        c = getattr(self.local, "conn", None)
        if c is not None:
            c.close()
            self.local.conn = None

    def call(self, method: str, path: str, body=None, ctype="application/json",
             ok=(200, 201, 202)):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Authorization": "Bearer " + self.token, "Accept": "application/json",
                "User-Agent": "gpu-extender-e2e"}
        if data is not None:
            hdrs["Content-Type"] = ctype
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=hdrs)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.close()
                if attempt == 1:
                    raise
        if r.status not in ok:
            raise ApiError(method, path, r.status, raw)
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.call("GET", path)

    def pod(self, name, ns=NS):
        return self.get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def pods(self, selector=None, ns=NS):
        q = "?labelSelector=" + urllib.parse.quote(selector) if selector else ""
        return self.get(f"/api/v1/namespaces/{ns}/pods{q}")["items"]

    def force_delete_pod(self, name, uid=None, ns=NS):
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        if uid:
            body["preconditions"] = {"uid": uid}
        return self.call("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body,
                         ok=(200, 202, 404, 409))


# ---------------------------------------------------------------- the fake kubelet


class FakeKubelet(threading.Thread):
    """Confirms deletions as a kubelet would: every 100 ms, each pod with a deletionTimestamp
    is recorded (first sight: its name, UID, node, priority, GPUs, conditions, and when it was
    seen) and deleted with gracePeriodSeconds=0 and a UID precondition."""

    def __init__(self, api: Api):
        super().__init__(name="fake-kubelet", daemon=True)
        self.api = api
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seen = {}          # uid -> record
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                for p in self.api.get("/api/v1/pods")["items"]:
                    md = p["metadata"]
                    if not md.get("deletionTimestamp"):
                        continue
                    with self.lock:
                        if md["uid"] not in self.seen:
                            self.seen[md["uid"]] = {
                                "name": md["name"], "namespace": md["namespace"],
                                "uid": md["uid"], "node": p["spec"].get("nodeName"),
                                "priority": p["spec"].get("priority"),
                                "gpus": (md.get("annotations") or {}).get(ANN_GPUS),
                                "scenario": (md.get("labels") or {}).get(SCENARIO_LABEL),
                                "deletionTimestamp": md["deletionTimestamp"],
                                "conditions": [c for c in (p.get("status") or {})
                                               .get("conditions") or []
                                               if c.get("type") == "DisruptionTarget"],
                                "seen": time.monotonic()}
                    self.api.force_delete_pod(md["name"], md["uid"], md["namespace"])
            except Exception as e:   # noqa: BLE001 - keep confirming; report at the end
                self.errors.append(repr(e))
                self.api.close()
            self.stop.wait(0.1)
        self.api.close()

    def victims(self, scenario: str) -> list:
        with self.lock:
            return [v for v in self.seen.values() if v["scenario"] == scenario]


# ---------------------------------------------------------------- the cluster


class Cluster:
    """The harness's control plane, the daemon, the fake kubelet; every process is stopped by
    its own id (cluster-down.sh stops only the PIDs it recorded)."""

    def __init__(self, setup: Setup, policy: str = POLICY):
        self.s = setup
        self.tmp = tempfile.mkdtemp(prefix="gx-preempt-e2e-")
        self.current = os.path.join(self.tmp, "harness.current")
        self.cluster_dir = None
        self.env = None
        self.api = None
        self.daemon = None
        self.daemon_log = os.path.join(self.tmp, "gpu-extender.log")
        self.kubelet = None
        self.failed = False
        self.policy = os.path.join(self.tmp, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(policy)

    # ---- start

    def up(self):
        check = subprocess.run([self.s.daemon, "--check-policy", self.policy],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise AssertionError(f"--check-policy refused the test's policy:\n"
                                 f"{check.stdout}{check.stderr}")
        for attempt in range(3):
            etcd, peer, api, sched, ext = free_ports(5)
            self.ext_port = ext
            env = dict(os.environ)
            for k in ("KUBECONFIG", "CLUSTER_DIR"):
                env.pop(k, None)
            env.update({
                "K8S_BIN": self.s.k8s_bin, "ETCD": self.s.etcd, "KUBECTL": self.s.kubectl,
                "ETCD_PORT": str(etcd), "ETCD_PEER_PORT": str(peer),
                "APISERVER_PORT": str(api), "SCHEDULER_PORT": str(sched),
                "HARNESS_CURRENT": self.current,
                "EXTENDER_URL": f"http://127.0.0.1:{ext}",
                "NODE_CACHE_CAPABLE": "true",
                "EXTENDER_FILTER_VERB": "filter", "EXTENDER_PRIORITIZE_VERB": "prioritize",
                "EXTENDER_BIND_VERB": "bind", "EXTENDER_PREEMPT_VERB": "preempt",
                "EXTENDER_MANAGED_RESOURCE": GPU, "EXTENDER_MANAGED_IGNORED": "false",
                "EXTENDER_IGNORABLE": "false", "EXTENDER_HTTP_TIMEOUT": "5s",
                "EXTENDER_ENABLED": "1", "SCHEDULER_VERBOSITY": "4", "START_TIMEOUT": "60"})
            t0 = time.monotonic()
            r = subprocess.run([os.path.join(self.s.harness, "cluster-up.sh")], env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=180)
            try:
                with open(self.current) as f:
                    self.cluster_dir = f.read().strip() or None
            except OSError:
                pass
            if r.returncode == 0:
                break
            if "already in use" in r.stderr and attempt < 2:
                # refused before it started anything: pick other ports
                log(f"cluster-up: a port was taken meanwhile; again ({r.stderr.strip()[-200:]})")
                continue
            raise AssertionError(f"cluster-up.sh failed (rc {r.returncode}):\n{r.stderr[-4000:]}")
        envf = r.stdout.strip().splitlines()[-1]
        self.env = dict(env)
        with open(envf) as f:
            for line in f:
                if line.startswith("export "):
                    k, v = line[len("export "):].strip().split("=", 1)
                    self.env[k] = v.strip('"')
        self.cluster_dir = self.env["CLUSTER_DIR"]
        log(f"cluster up in {time.monotonic() - t0:.1f} s: {self.cluster_dir} "
            f"(apiserver {self.env['APISERVER_URL']}, extender port {self.ext_port})")
        self.api = Api(self.env["APISERVER_URL"], self.env["ADMIN_TOKEN"], self.env["CA_CERT"])
        for name, value in PRIORITIES.items():
            self.api.call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", {
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value,
                "description": "gpu-extender preemption e2e"})
        self.start_daemon()
        self.kubelet = FakeKubelet(Api(self.env["APISERVER_URL"], self.env["ADMIN_TOKEN"],
                                       self.env["CA_CERT"]))
        self.kubelet.start()

    def start_daemon(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GPU_EXTENDER_") and not k.startswith("KUBERNETES_SERVICE_")
               and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        env.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:print_summary=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        args = [self.s.daemon, "--listen", f"127.0.0.1:{self.ext_port}",
                "--kubeconfig", self.env["KUBECONFIG"], "--policy", self.policy,
                "--log-level", "debug"]
        t0 = time.monotonic()
        with open(self.daemon_log, "ab") as f:
            self.daemon = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f,
                                           stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)
        # cluster-down.sh stops it too if the test dies before it does (a pid file with the
        # executable's name is accepted when the running executable has that name).
        with open(os.path.join(self.cluster_dir, "pids",
                               os.path.basename(self.s.daemon) + ".pid"), "w") as f:
            f.write(f"{self.daemon.pid}\n")
        status, last = None, None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError(f"gpu-extender exited ({self.daemon.returncode}) before "
                                     f"it was ready:\n{self.daemon_tail()}")
            try:
                status, last = self.daemon_get("/readyz")
                if status == 200:
                    break
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        else:
            raise AssertionError(f"gpu-extender: /readyz not 200 within 30 s (last: {last})\n"
                                 f"{self.daemon_tail()}")
        log(f"gpu-extender ready in {time.monotonic() - t0:.1f} s: {' '.join(args)}")

    def daemon_get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.ext_port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body.decode(errors="replace")

    # ---- stop

    def stop_daemon(self) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait(5)
                return None
        return self.daemon.returncode

    def down(self, keep: bool):
        if self.kubelet is not None:
            self.kubelet.stop.set()
            self.kubelet.join(5)
        if self.daemon is not None and self.daemon.poll() is None:
            self.stop_daemon()
        if self.api is not None:
            self.api.close()
        if self.cluster_dir:
            env = dict(os.environ, HARNESS_CURRENT=self.current,
                       KEEP_CLUSTER_DIR="1" if keep else "0")
            subprocess.run([os.path.join(self.s.harness, "cluster-down.sh"), self.cluster_dir],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            if keep:
                log(f"kept the harness state dir (logs, certificates, etcd data): "
                    f"{self.cluster_dir}")
            self.cluster_dir = None
        if keep:
            log(f"kept the test's scratch dir (daemon log, policy): {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- objects

    def make_node(self, prefix: str, gpus: int, annotations: dict | None = None,
                  product: str | None = None) -> str:
        env = dict(self.env, GPU_COUNTS=str(gpus), KUBELET_VERSION="v1.28.7")
        if product:
            env["GPU_PRODUCT"] = product
        r = subprocess.run([os.path.join(self.s.harness, "make-gpu-nodes.sh"), "1", prefix],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"make-gpu-nodes.sh failed: {r.stderr}")
        name = r.stdout.split()[-1]
        if annotations:
            self.api.call("PATCH", f"/api/v1/nodes/{name}",
                          {"metadata": {"annotations": annotations}},
                          ctype="application/merge-patch+json")
        # The extender must know the node (and its topology) before a pod is scheduled there:
        # an extender filter error in kube-scheduler 1.28 can park a pod for minutes.
        self.wait(f"gpu-extender sees {name}", lambda: self.daemon_node(name, gpus,
                                                                       bool(annotations)), 15)
        return name

    def metrics(self) -> dict:
        c = http.client.HTTPConnection("127.0.0.1", self.ext_port, timeout=5)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def daemon_node(self, name, gpus, topo):
        status, body = self.daemon_get("/debug/nodes")
        if status != 200:
            return None
        for n in body.get("nodes") or []:
            if n.get("name") == name and n.get("allocatable") == gpus and \
                    (not topo or "topology" in n):
                return n
        return None

    def daemon_nodes(self):
        try:
            return self.daemon_get("/debug/nodes")[1]
        except OSError as e:
            return repr(e)

    def create_pod(self, name: str, gpus: int, priority_class: str, scenario: str,
                   labels: dict | None = None, annotations: dict | None = None) -> dict:
        return self.api.call("POST", f"/api/v1/namespaces/{NS}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS,
                         "labels": {SCENARIO_LABEL: scenario, **(labels or {})},
                         "annotations": annotations or {}},
            "spec": {
                "priorityClassName": priority_class,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "name": "main", "image": "registry.invalid/gpu-extender-e2e/never-pulled:1",
                    "resources": {"limits": {GPU: str(gpus)}, "requests": {GPU: str(gpus)}}}]}})

    def wait(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(f"gpu-extender exited ({self.daemon.returncode}) while "
                                     f"waiting for {what}")
            time.sleep(0.1)

    def wait_bound(self, name, timeout) -> dict:
        def bound():
            p = self.api.pod(name)
            return p if p["spec"].get("nodeName") else None
        return self.wait(f"pod {name} bound", bound, timeout)

    def events(self) -> list:
        evs = self.api.get(f"/api/v1/namespaces/{NS}/events")["items"]
        return sorted(evs, key=lambda e: (e.get("eventTime") or e.get("lastTimestamp") or
                                          e.get("firstTimestamp") or
                                          e["metadata"].get("creationTimestamp") or ""))

    def remove_scenario(self, scenario: str, node: str | None):
        for p in self.api.pods(f"{SCENARIO_LABEL}={scenario}"):
            self.api.force_delete_pod(p["metadata"]["name"], p["metadata"]["uid"])
        if node:
            self.api.call("DELETE", f"/api/v1/nodes/{node}", ok=(200, 202, 404))

            def gone():
                status, body = self.daemon_get("/debug/nodes")
                return status == 200 and all(n.get("name") != node
                                             for n in body.get("nodes") or [])
            self.wait(f"gpu-extender forgets {node}", gone, 15)

    # ---- diagnostics

    def daemon_tail(self, n=40) -> str:
        try:
            with open(self.daemon_log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return f"(cannot read {self.daemon_log}: {e})"

    def daemon_lines(self, pattern: str, n=60) -> str:
        rx = re.compile(pattern, re.IGNORECASE)
        try:
            with open(self.daemon_log, errors="replace") as f:
                return "".join([l for l in f if rx.search(l)][-n:])
        except OSError as e:
            return f"(cannot read {self.daemon_log}: {e})"

    def sanitizer_report(self) -> str:
        try:
            with open(self.daemon_log, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return ""
        hits = [i for i, l in enumerate(lines) if SANITIZER_RE.search(l)]
        return "".join(lines[max(0, hits[0] - 2): hits[0] + 40]) if hits else ""

    def scheduler_lines(self, n=60) -> str:
        path = os.path.join(self.cluster_dir or "", "logs", "kube-scheduler.log")
        rx = re.compile(r"preempt|extender|victim|nominat|FailedScheduling|error", re.IGNORECASE)
        try:
            with open(path, errors="replace") as f:
                return "".join([l for l in f if rx.search(l)][-n:])
        except OSError as e:
            return f"(cannot read {path}: {e})"

    def dump(self, scenario: str):
        out = [f"===== diagnostics for {scenario} ====="]
        try:
            out.append("-- pods (name priority node gpus rule deletionTimestamp nominated):")
            for p in self.api.pods(f"{SCENARIO_LABEL}={scenario}"):
                md, sp, st = p["metadata"], p["spec"], p.get("status") or {}
                ann = md.get("annotations") or {}
                out.append(f"   {md['name']:<12} {sp.get('priority')!s:>5} "
                           f"{sp.get('nodeName') or '-':<10} {ann.get(ANN_GPUS, '-'):<10} "
                           f"{ann.get(ANN_RULE, '-'):<12} {md.get('deletionTimestamp') or '-'} "
                           f"{st.get('nominatedNodeName') or '-'}")
            out.append("-- events:")
            for e in self.events():
                io = e.get("involvedObject") or {}
                out.append(f"   {e.get('type')} {e.get('reason')} {io.get('name')}: "
                           f"{e.get('message')}")
        except Exception as e:   # noqa: BLE001 - diagnostics must not hide the failure
            out.append(f"   (API: {e!r})")
        if self.kubelet is not None:
            out.append("-- deletions the fake kubelet confirmed:")
            for v in sorted(self.kubelet.seen.values(), key=lambda v: v["seen"]):
                out.append(f"   {v}")
            if self.kubelet.errors:
                out.append(f"   errors: {self.kubelet.errors[-5:]}")
        out.append(f"-- gpu-extender /debug/nodes: {json.dumps(self.daemon_nodes())}")
        out.append("-- gpu-extender log, lines about preempt:")
        out.append(self.daemon_lines(r"preempt|victim"))
        out.append("-- gpu-extender log, last lines:")
        out.append(self.daemon_tail())
        out.append("-- kube-scheduler log, preemption/extender lines:")
        out.append(self.scheduler_lines())
        print("\n".join(out), flush=True)


# ---------------------------------------------------------------- the tests


class ClusterTestCase(unittest.TestCase):
    """One control plane and daemon for the class: up before its tests, down after them, the
    daemon's exit code and sanitizer report checked (test_agent_k8s.py uses it too)."""
    setup: Setup = None
    policy: str = POLICY
    c: Cluster = None

    @classmethod
    def setUpClass(cls):
        cls.t0 = time.monotonic()
        cls.c = Cluster(cls.setup, cls.policy)
        try:
            cls.c.up()
        except BaseException:
            cls.c.failed = True
            try:
                print(cls.c.daemon_tail(), flush=True)
            finally:
                cls.c.down(keep=True)
            raise

    @classmethod
    def tearDownClass(cls):
        c = cls.c
        rc = c.stop_daemon()
        san = c.sanitizer_report()
        keep = c.failed or bool(san) or rc != 0 or os.environ.get("GX_KEEP_TMP") == "1"
        if rc != 0 or san:
            print(f"gpu-extender: exit {rc} on SIGTERM\n{san or c.daemon_tail()}", flush=True)
        c.down(keep=keep)
        log(f"total {time.monotonic() - cls.t0:.1f} s")
        if rc != 0:
            raise AssertionError(f"gpu-extender exited {rc} on SIGTERM, not 0")
        if san:
            raise AssertionError("sanitizer report in gpu-extender's log")


class PreemptE2ETest(ClusterTestCase):
    def run_scenario(self, scenario, body):
        t0 = time.monotonic()
        node = None
        try:
            node = body()
        except BaseException:
            self.c.failed = True
            self.c.dump(scenario)
            raise
        finally:
            try:
                self.c.remove_scenario(scenario, node or getattr(self, "node", None))
            except Exception as e:   # noqa: BLE001
                log(f"{scenario}: clean-up failed: {e!r}")
        log(f"{scenario}: passed in {time.monotonic() - t0:.1f} s")

    # ---- shared steps

    def fill(self, scenario, node, names_classes):
        """Creates 1-GPU pods one by one; each must be bound by kube-scheduler (through the
        extender's bind) on node. Returns {name: pod}."""
        pods = {}
        for name, pc in names_classes:
            self.c.create_pod(name, 1, pc, scenario)
            p = self.c.wait_bound(name, 30)
            self.assertEqual(p["spec"]["nodeName"], node, f"{name} bound elsewhere")
            pods[name] = p
        # The extender's cache has every one of them (no bind in flight) before the preemptor.
        def counted():
            status, body = self.c.daemon_get("/debug/nodes")
            return status == 200 and any(n.get("name") == node and n.get("used") == len(pods)
                                         and n.get("reserved") == 0
                                         for n in body.get("nodes") or [])
        self.c.wait("gpu-extender counts the low pods", counted, 15)
        return pods

    def preempt(self, scenario, name, gpus, node):
        """Creates the high-priority pod and waits until it is bound; returns (pod, victims,
        seconds to the first victim, seconds to bound). The victims must be the extender's
        choice: its preempt verb answered (never with an error) and named as many victims as
        kube-scheduler evicted."""
        m0 = self.c.metrics()
        t0 = time.monotonic()
        self.c.create_pod(name, gpus, "high", scenario)
        p = self.c.wait_bound(name, 60)
        t_bound = time.monotonic() - t0
        self.assertEqual(p["spec"]["nodeName"], node, f"{name} bound elsewhere")
        # Nothing more is preempted once it is bound (a second preemption round would show here).
        time.sleep(SETTLE_S)
        victims = self.c.kubelet.victims(scenario)
        first = min((v["seen"] for v in victims), default=t0) - t0
        m1 = self.c.metrics()
        delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1
                 if "preempt" in k and "duration" not in k and m1.get(k, 0) != m0.get(k, 0)}
        log(f"{scenario}: gpu-extender preempt metrics moved by {delta}")
        calls = delta.get('gpu_extender_requests_total{verb="preempt",outcome="ok"}', 0)
        self.assertGreaterEqual(calls, 1, "kube-scheduler never called the extender's preempt")
        failed = {k: v for k, v in delta.items()
                  if k.startswith("gpu_extender_requests_total") and 'outcome="ok"' not in k}
        self.assertEqual(failed, {}, "preempt calls that did not answer ok")
        self.assertEqual(delta.get("gpu_extender_preempt_victims_total", 0), len(victims),
                         "victims the extender named vs pods kube-scheduler evicted")
        return self.c.api.pod(name), victims, first, t_bound

    def check_events(self, scenario, node, preemptor, victims):
        """Every victim has a Preempted event naming the node; the preemptor a Scheduled event;
        no event of the scenario's pods reports an error."""
        names = {v["name"] for v in victims}
        mine = {p["metadata"]["name"] for p in self.c.api.pods(f"{SCENARIO_LABEL}={scenario}")}
        mine |= names | {preemptor}

        def complete():
            evs = [e for e in self.c.events()
                   if (e.get("involvedObject") or {}).get("name") in mine]
            preempted = {e["involvedObject"]["name"] for e in evs
                         if e.get("reason") == "Preempted" and node in (e.get("message") or "")}
            scheduled = any(e["involvedObject"]["name"] == preemptor and
                            e.get("reason") == "Scheduled" for e in evs)
            return evs if names <= preempted and scheduled else None
        try:
            evs = self.c.wait("Preempted events for every victim and Scheduled for "
                              f"{preemptor}", complete, 10)
        except AssertionError:
            raise AssertionError(f"events incomplete: want Preempted (naming {node}) on "
                                 f"{sorted(names)} and Scheduled on {preemptor}") from None
        bad = [e for e in evs if e.get("type") == "Warning" and
               (e.get("reason") != "FailedScheduling" or
                ERROR_EVENT_RE.search(e.get("message") or ""))]
        self.assertEqual(bad, [], "events reporting an error")
        others = [e for e in evs if e.get("reason") == "Preempted" and
                  e["involvedObject"]["name"] not in names]
        self.assertEqual(others, [], "Preempted events on pods that are not victims")
        for e in evs:
            if e["involvedObject"]["name"] == preemptor:
                log(f"   event {preemptor}: {e.get('reason')}: {e.get('message')}")

    # ---- scenario 1

    def test_1_count_only(self):
        """4-GPU node full of four 1-GPU low pods; a 2-GPU high pod evicts exactly two."""
        def body():
            node = self.node = self.c.make_node("s1-gpu-", 4)
            lows = self.fill("s1", node, [(f"s1-low-{i}", "low") for i in range(1, 5)])
            pod, victims, first, bound = self.preempt("s1", "s1-high", 2, node)
            log(f"s1: first victim seen {first:.1f} s after s1-high was created, "
                f"bound after {bound:.1f} s; victims {sorted(v['name'] for v in victims)}")
            self.assertEqual(len(victims), 2, f"want exactly 2 victims, got {victims}")
            names = {v["name"] for v in victims}
            self.assertLessEqual(names, set(lows), "a victim that is not one of the low pods")
            for v in victims:
                self.assertEqual(v["node"], node)
            for name in set(lows) - names:
                p = self.c.api.pod(name)
                self.assertEqual(p["spec"].get("nodeName"), node)
                self.assertFalse(p["metadata"].get("deletionTimestamp"), f"{name} deleted")
            self.check_events("s1", node, "s1-high", victims)
            return node
        self.run_scenario("s1", body)

    # ---- scenario 2

    @staticmethod
    def topology() -> str:
        gpus = [{"index": i, "numa": 0 if i < 4 else 1} for i in range(8)]
        links = []
        for a in range(8):
            for b in range(a + 1, 8):
                same = (a < 4) == (b < 4)
                links.append([a, b, "NV12" if same else "SYS"])
        return json.dumps({"gpus": gpus, "links": links}, separators=(",", ":"))

    @staticmethod
    def expected_quad(placement: dict, priority: dict) -> list:
        """The quads whose pods the rules would evict (usually one): every pod of a quad, all
        below the preemptor's priority, ranked by the lowest highest victim priority, then the
        fewest victims, then the lowest sum of priorities (no budgets; both quads are NVLink
        alike and each pod holds one GPU); ties give several."""
        ranked = []
        for q in QUADS:
            pods = [n for n, g in placement.items() if g in q]
            if any(priority[n] >= PRIORITIES["high"] for n in pods):
                continue
            prios = [priority[n] for n in pods]
            ranked.append(((max(prios, default=0), len(pods), sum(prios)), q, set(pods)))
        if not ranked:
            raise AssertionError(f"no quad can be freed: {placement} {priority}")
        best = min(r[0] for r in ranked)
        return [(q, pods) for key, q, pods in ranked if key == best]

    def test_2_nvlink_quad(self):
        """8-GPU node, two NVLink quads, eight 1-GPU pods of mixed priority; a 4-GPU high pod
        that must have NVLink evicts exactly the cheaper quad's four pods."""
        def body():
            node = self.node = self.c.make_node("s2-gpu-", 8, {ANN_TOPOLOGY: self.topology()})
            classes = ["low", "low", "mid", "mid", "low", "low", "upper", "upper"]
            lows = self.fill("s2", node, [(f"s2-p{i}-{pc}", pc) for i, pc in enumerate(classes)])
            placement, priority = {}, {}
            for name, p in lows.items():
                ann = p["metadata"].get("annotations") or {}
                self.assertIn(ANN_GPUS, ann, f"{name}: bound without {ANN_GPUS}")
                idx = [int(x) for x in ann[ANN_GPUS].split(",")]
                self.assertEqual(len(idx), 1, f"{name}: {ANN_GPUS}={ann[ANN_GPUS]}")
                placement[name], priority[name] = idx[0], p["spec"]["priority"]
            self.assertEqual(sorted(placement.values()), list(range(8)),
                             f"each of the 8 GPUs once: {placement}")
            log("s2: placement " + ", ".join(f"{n}@{g}" for n, g in
                                             sorted(placement.items(), key=lambda x: x[1])))
            want = self.expected_quad(placement, priority)
            if len(want) != 1:
                log(f"s2: the placement leaves {len(want)} equally cheap quads; either will do")
            # What kube-scheduler's dry run proposes by count alone: the lowest priorities.
            lowest = sorted(priority.values())[:4]
            log(f"s2: kube-scheduler's own choice would be 4 pods of priorities {lowest}, "
                f"the rules' choice is quad {[q for q, _ in want]}")

            pod, victims, first, bound = self.preempt("s2", "s2-high", 4, node)
            names = {v["name"] for v in victims}
            log(f"s2: first victim seen {first:.1f} s after s2-high was created, "
                f"bound after {bound:.1f} s; victims "
                f"{sorted(names, key=lambda n: placement.get(n, -1))}")
            match = [(q, pods) for q, pods in want if pods == names]
            self.assertTrue(match, f"victims {sorted(names)} are not the pods of "
                                   f"{' or '.join(str(sorted(p)) for _, p in want)} "
                                   f"(placement {placement})")
            quad = match[0][0]
            ann = pod["metadata"].get("annotations") or {}
            self.assertIn(ANN_GPUS, ann, "s2-high bound without a GPU set")
            self.assertEqual(sorted(int(x) for x in ann[ANN_GPUS].split(",")), list(quad),
                             f"s2-high's GPUs")
            self.assertEqual(ann.get(ANN_RULE), RULE)
            for name in set(lows) - names:
                p = self.c.api.pod(name)
                self.assertEqual(p["spec"].get("nodeName"), node)
                self.assertFalse(p["metadata"].get("deletionTimestamp"), f"{name} deleted")
            self.check_events("s2", node, "s2-high", victims)
            return node
        self.run_scenario("s2", body)


def main():
    PreemptE2ETest.setup = preflight()
    log(f"daemon {PreemptE2ETest.setup.daemon}, K8S_BIN {PreemptE2ETest.setup.k8s_bin}, "
        f"harness {PreemptE2ETest.setup.harness}")
    unittest.main()


if __name__ == "__main__":
    main()
