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

kube-scheduler 1.28 with preemption (Simulator(preemption=True), or gpu_in_tree=True without
it). It plays kube-scheduler v1.28.7 configured with managedResources nvidia.com/gpu,
ignoredByScheduler: false and preemptVerb: preempt, following schedule_one.go,
framework/preemption/preemption.go, plugins/defaultpreemption/default_preemption.go and
extender.go of that release:
  - one pod at a time (kube-scheduler's single scheduling loop), highest priority first; the
    cluster is re-read after every pod that changed it;
  - its own filters: unschedulable and untolerated taints (UnschedulableAndUnresolvable), then
    NodeResourcesFit with nvidia.com/gpu counted (Unschedulable): the pod's requests against
    allocatable minus the requests of the non-terminal pods bound there (Terminating ones too)
    and of the pods nominated there with a priority >= the pod's (RunFilterPluginsWithNominatedPods);
  - a pod with status.nominatedNodeName first tries that node alone (its filters, then the
    extender's filter with just that node), then every node (evaluateNominatedNode);
  - no feasible node: PostFilter. PodEligibleToPreemptOthers (preemptionPolicy Never; a
    Terminating lower-priority pod with DisruptionTarget/PreemptionByScheduler on the nominated
    node). Candidates: every node not UnschedulableAndUnresolvable (extender's
    FailedAndUnresolvableNodes, taints); nodes failed by the in-tree count are candidates. Dry
    run per node (SelectVictimsOnNode): remove every lower-priority pod, check the fit, reprieve
    the PDB-violating ones then the others, each highest priority first (MoreImportantPod), with
    the PDBs counted as filterPodsWithPDBViolation does. POST /preempt (body from
    preempt.args.nodecache-{true,false}.json: Pod and the victims map replaced), the reply checked
    as kube-scheduler does (known node, each victim UID a pod on that node, no empty list: else a
    protocol error and no preemption); pickOneNodeForPreemption; each victim gets the
    DisruptionTarget condition (the 1.28.7 status patch, see Simulator._evict) and a DELETE with
    no options; lower-priority pods nominated there lose their nomination; the preemptor gets
    status.nominatedNodeName;
  - a kubelet (class Kubelet): bound pods start (phase Running, startTime); a Terminating pod is
    removed with gracePeriodSeconds=0 once it has been Terminating for kubelet_delay seconds.
RoundStats then also lists the preemptions, the victims (node, preemptor) and the preempt calls.

Python 3.11 standard library only.
"""

from __future__ import annotations

import calendar
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
    # preemption (Simulator(preemption=True)); see Simulator.post_filter
    preemptions: list = field(default_factory=list)    # one dict per preemption carried out
    victims: list = field(default_factory=list)        # one dict per pod deleted as a victim
    preempt_calls: int = 0      # POST /preempt sent
    preempt_errors: int = 0     # /preempt failed (transport, HTTP status, undecodable, invalid)
    not_eligible: int = 0       # PodEligibleToPreemptOthers said no
    no_candidates: int = 0      # the dry run found no node (or the extender kept none)
    nominated_binds: int = 0    # pods bound to their nominated node (evaluateNominatedNode)
    preempt_notes: list = field(default_factory=list)  # odd but accepted by kube-scheduler
    dryrun_errors: list = field(default_factory=list)  # "expected at least one victim pod on node"
    preempt_exchanges: list = field(default_factory=list)   # (preemptor, offered, replied): names

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
                  "transport_errors", "prioritized", "preempt_calls", "preempt_errors", "not_eligible",
                  "no_candidates", "nominated_binds"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.protocol_errors += other.protocol_errors
        self.binds += other.binds
        self.failed_binds += other.failed_binds
        self.preemptions += other.preemptions
        self.victims += other.victims
        self.preempt_notes += other.preempt_notes
        self.dryrun_errors += other.dryrun_errors
        self.preempt_exchanges += other.preempt_exchanges
        if len(self.preempt_exchanges) > 200:   # the first ones and the latest ones
            del self.preempt_exchanges[100:-100]
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
                + (f"preemptions={len(self.preemptions)} victims={len(self.victims)} "
                   f"preempt_calls={self.preempt_calls} preempt_err={self.preempt_errors} "
                   if self.preempt_calls or self.preemptions else "")
                + f"{self.seconds:.2f}s")


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


# ---------------------------------------------------------------- kube-scheduler 1.28 helpers

UNSCHEDULABLE = "Unschedulable"
UNRESOLVABLE = "UnschedulableAndUnresolvable"
MAX_INT32 = 2**31 - 1


def pod_priority(pod: dict) -> int:
    """corev1helpers.PodPriority: spec.priority, 0 when unset."""
    p = (pod.get("spec") or {}).get("priority")
    return int(p) if isinstance(p, int) and not isinstance(p, bool) else 0


def pod_uid(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("uid") or ""


def pod_ref(pod: dict) -> str:
    m = pod.get("metadata") or {}
    return f'{m.get("namespace", "default")}/{m.get("name")}'


def parse_time(s) -> float | None:
    """A metav1.Time ("2024-01-02T03:04:05Z") as seconds since the epoch."""
    if not s:
        return None
    try:
        return float(calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def pod_start_time(pod: dict, now: float) -> float:
    """util.GetPodStartTime: status.startTime, or now for a pod that has not started."""
    t = parse_time((pod.get("status") or {}).get("startTime"))
    return t if t is not None else now


def more_important_key(now: float):
    """util.MoreImportantPod as a sort key: higher priority first, then earlier start."""
    return lambda p: (-pod_priority(p), pod_start_time(p, now))


def label_selector_matches(sel, labels: dict) -> bool | None:
    """metav1.LabelSelectorAsSelector(sel).Matches(labels). None: a nil or empty selector, which
    filterPodsWithPDBViolation treats as matching nothing (also returned for an invalid one)."""
    if not isinstance(sel, dict):
        return None
    ml = sel.get("matchLabels") or {}
    me = sel.get("matchExpressions") or []
    if not ml and not me:
        return None
    for k, v in ml.items():
        if labels.get(k) != v:
            return False
    for e in me:
        if not isinstance(e, dict):
            return None
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In":
            ok = k in labels and labels[k] in vals
        elif op == "NotIn":
            ok = k not in labels or labels[k] not in vals
        elif op == "Exists":
            ok = k in labels
        elif op == "DoesNotExist":
            ok = k not in labels
        else:
            return None
        if not ok:
            return False
    return True


def filter_pods_with_pdb_violation(pods: list, pdbs: list):
    """defaultpreemption.filterPodsWithPDBViolation: (violating, non-violating), order kept."""
    allowed = [int(((p.get("status") or {}).get("disruptionsAllowed")) or 0) for p in pdbs]
    violating, non_violating = [], []
    for pod in pods:
        m = pod.get("metadata") or {}
        labels = m.get("labels") or {}
        violated = False
        if labels:
            for i, pdb in enumerate(pdbs):
                pm = pdb.get("metadata") or {}
                if pm.get("namespace") != m.get("namespace"):
                    continue
                if not label_selector_matches((pdb.get("spec") or {}).get("selector"), labels):
                    continue
                if m.get("name") in (((pdb.get("status") or {}).get("disruptedPods")) or {}):
                    continue   # already being disrupted: processed by the API server
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(pod)
    return violating, non_violating


def now_ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def update_pod_condition(status: dict, cond: dict) -> bool:
    """podutil.UpdatePodCondition: adds or updates a condition (lastTransitionTime kept when the
    status does not change); True if anything changed."""
    new = dict(cond)
    new.setdefault("lastProbeTime", None)
    new["lastTransitionTime"] = now_ts()
    conds = status.setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                new["lastTransitionTime"] = c.get("lastTransitionTime")
            same = all(c.get(k) == new.get(k) for k in ("status", "reason", "message", "lastProbeTime",
                                                         "lastTransitionTime"))
            conds[i] = new
            return not same
    conds.append(new)
    return True


def two_way_status_patch(old: dict, new: dict) -> dict:
    """strategicpatch.CreateTwoWayMergePatch of {"status": old} -> {"status": new}, the status
    part: changed and new keys set, removed keys null, conditions merged by type (changed or
    new items, removed ones as {"$patch": "delete"}, with $setElementOrder)."""
    patch = {}
    for k, v in new.items():
        if k != "conditions" and old.get(k) != v:
            patch[k] = v
    for k in old:
        if k not in new and k != "conditions":
            patch[k] = None
    oc = {c.get("type"): c for c in old.get("conditions") or []}
    nc = new.get("conditions") or []
    if (old.get("conditions") or []) != nc:
        items = [c for c in nc if oc.get(c.get("type")) != c]
        types = {c.get("type") for c in nc}
        items += [{"type": t, "$patch": "delete"} for t in oc if t not in types]
        patch["$setElementOrder/conditions"] = [{"type": c.get("type")} for c in nc]
        patch["conditions"] = items
    return patch


def _ci_get(d: dict, key: str):
    """Go's encoding/json key lookup: the exact key, else a case-insensitive match."""
    if not isinstance(d, dict):
        return None
    if key in d:
        return d[key]
    low = key.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


class ClusterView:
    """What kube-scheduler's cache and informers hold, built from one /_admin/state?full=1
    snapshot: nodes, the pods on each node (the non-terminal ones, Terminating included), the
    nominated pods per node (pending, not being deleted, status.nominatedNodeName set) and the
    PodDisruptionBudgets."""

    def __init__(self, state: dict, scheduler_name: str | None = None):
        self.state = state
        self.nodes = {n["metadata"]["name"]: n for n in state.get("nodes") or []}
        self.node_order = [n["metadata"]["name"] for n in state.get("nodes") or []]
        self.on_node = {name: [] for name in self.nodes}
        self.nominated = {}
        self.by_uid = {}
        for p in state.get("pods") or []:
            self.by_uid[pod_uid(p)] = p
            s, m = p.get("spec") or {}, p.get("metadata") or {}
            node = s.get("nodeName")
            if node:
                if not is_terminal(p):
                    self.on_node.setdefault(node, []).append(p)
                continue
            nnn = (p.get("status") or {}).get("nominatedNodeName")
            if nnn and not m.get("deletionTimestamp") and \
                    (scheduler_name is None or s.get("schedulerName") == scheduler_name):
                self.nominated.setdefault(nnn, []).append(p)
        self.pdbs = state.get("pdbs") or []


class Kubelet(threading.Thread):
    """The kubelets of every node, as far as the tests need them: a bound pod that is Pending is
    started (status phase Running and startTime, which preemption orders victims by), and a pod
    that is being deleted is removed with DELETE ?gracePeriodSeconds=0 `delay` seconds after the
    kubelet first saw its deletionTimestamp.

    It looks either from its own thread every `poll` seconds (start()), or when tick() is
    called: the Simulator calls it at the end of every round unless told to use the thread.
    At round ends, a test can let the extender's watch catch up before the next round; with a
    real kube-scheduler the preemptor's retry waits for its backoff (1 s and more) after the
    victims are gone, so the extender has seen them go before the pod comes back."""

    def __init__(self, sim: "Simulator", delay: float, poll: float = 0.05, start_pods: bool = True):
        super().__init__(name="kubelet", daemon=True)
        self.sim, self.delay, self.poll, self.start_pods = sim, delay, poll, start_pods
        self.stop_ev = threading.Event()
        self.seen_deleting = {}   # uid -> monotonic time first seen Terminating
        self.started = set()
        self.removed = 0
        self.errors = []
        self.http = Http(sim.fake_url, timeout=10.0)

    def run(self):
        while not self.stop_ev.wait(self.poll):
            try:
                self.tick()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.errors.append(f"{type(e).__name__}: {e}")

    def tick(self):
        status, state = self.http.json("GET", "/_admin/state")
        if status != 200 or not isinstance(state, dict):
            return
        now = time.monotonic()
        live = set()
        for p in state.get("pods") or []:
            uid, node = p.get("uid"), p.get("nodeName")
            live.add(uid)
            if not node or p.get("phase") in TERMINAL_PHASES:
                continue
            base = f'/api/v1/namespaces/{p.get("namespace")}/pods/{p.get("name")}'
            if p.get("deletionTimestamp"):
                first = self.seen_deleting.setdefault(uid, now)
                if now - first >= self.delay:
                    st, _ = self.sim.api(self.http, "DELETE", base + "?gracePeriodSeconds=0")
                    if st in (200, 404):
                        self.removed += st == 200
                    else:
                        self.errors.append(f"DELETE {base}: {st}")
                continue
            if self.start_pods and p.get("phase") == "Pending" and uid not in self.started:
                self.started.add(uid)
                st, _ = self.sim.api(self.http, "PATCH", base + "/status",
                                     {"status": {"phase": "Running", "startTime": time.strftime(
                                         "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}},
                                     "application/merge-patch+json")
                if st not in (200, 404):
                    self.errors.append(f"PATCH {base}/status: {st}")
        for uid in list(self.seen_deleting):
            if uid not in live:
                del self.seen_deleting[uid]

    def close(self):
        self.stop_ev.set()
        if self.is_alive():
            self.join(5)
        self.http.close_all()


class Simulator:
    """kube-scheduler, reduced to what matters for a GPU extender.

    By default it plays 1.26 with ignoredByScheduler: true and no preemption (the module
    docstring). With gpu_in_tree=True it plays 1.28 with ignoredByScheduler: false (its own
    NodeResourcesFit counts nvidia.com/gpu); with preemption=True also DefaultPreemption (the
    PostFilter) and, unless preempt_verb is None, the extender's preempt verb; both modes
    schedule one pod at a time, as kube-scheduler's single scheduling loop does (see
    schedule_one_v128). node_cache=False sends the nodeCacheCapable: false bodies (full Nodes,
    full victim Pods). kubelet_delay: also play the kubelet (class Kubelet). token: the bearer
    token for the API calls the simulator makes itself (preemption, kubelet)."""

    def __init__(self, extender_url: str, fake_url: str, fixtures: str, threads: int = 4,
                 seed: int = 1, scheduler_name: str | None = None, timeout: float = 5.0,
                 gpu_in_tree: bool = False, preemption: bool = False,
                 preempt_verb: str | None = "preempt", node_cache: bool = True,
                 token: str | None = None, kubelet_delay: float | None = None,
                 kubelet_poll: float = 0.05, kubelet_thread: bool = False):
        self.ext = Http(extender_url, timeout=timeout)   # kube-scheduler's httpTimeout: 5 s
        self.fake_url = fake_url
        self.fake = Http(fake_url, timeout=30.0)
        self.threads = threads
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.scheduler_name = scheduler_name
        self.gpu_in_tree = gpu_in_tree or preemption
        self.preemption = preemption
        self.preempt_verb = preempt_verb
        self.node_cache = node_cache
        self.token = token
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sched")
        raw = os.path.join(fixtures, "extender", "raw")
        self.templates = {}
        for mode in ("true", "false"):
            for verb in ("filter", "prioritize", "bind", "preempt"):
                with open(os.path.join(raw, f"{verb}.args.nodecache-{mode}.json"), "rb") as f:
                    self.templates[(verb, mode == "true")] = json.loads(f.read())
        self.filter_template = self.templates[("filter", True)]
        self.prioritize_template = self.templates[("prioritize", True)]
        self.bind_template = self.templates[("bind", True)]
        self.headers = {}
        for mode in ("true", "false"):
            with open(os.path.join(fixtures, "extender", f"http-requests.nodecache-{mode}.json"),
                      "rb") as f:
                captured = json.loads(f.read())
            for verb in ("filter", "prioritize", "bind", "preempt"):
                h = dict(captured[verb]["headers"])
                for k in ("Host", "Content-Length"):
                    h.pop(k, None)   # http.client writes these for the real target and body
                self.headers[(verb, mode == "true")] = h
                if mode == "true":
                    self.headers[verb] = h
        # Informer objects have no kind/apiVersion: the captured Pod and Node show which keys
        # they have.
        self.pod_top_keys = set(self.filter_template["Pod"])
        self.node_top_keys = set(self.templates[("filter", False)]["Nodes"]["items"][0])
        self.kubelet = None
        self.kubelet_thread = kubelet_thread
        if kubelet_delay is not None:
            self.kubelet = Kubelet(self, kubelet_delay, kubelet_poll)
            if kubelet_thread:
                self.kubelet.start()

    def set_extender(self, extender_url: str):
        """Points the simulator at another daemon (after a restart on a new port)."""
        self.ext.close_all()
        self.ext = Http(extender_url, timeout=self.ext.timeout)

    def close(self):
        if self.kubelet is not None:
            self.kubelet.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ext.close_all()
        self.fake.close_all()

    def kubelet_tick(self):
        """One look by the kubelet (no-op without one, or when it runs in its own thread)."""
        if self.kubelet is not None and not self.kubelet_thread:
            try:
                self.kubelet.tick()
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.kubelet.errors.append(f"{type(e).__name__}: {e}")

    def api(self, conn: Http, method: str, path: str, body=None, ctype="application/json"):
        """One Kubernetes API call to the fake, with the token; (status, decoded body)."""
        hdrs = {"Accept": "application/json", "User-Agent": "kube-scheduler/v1.28.7 (sched_sim)"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs["Content-Type"] = ctype
        return conn.json(method, path, body, hdrs, retry=method in ("GET", "DELETE"))

    # ---- request bodies, derived from the captures

    def _informer_pod(self, pod: dict) -> dict:
        return {k: v for k, v in pod.items()
                if k in self.pod_top_keys or k not in ("kind", "apiVersion")}

    def _informer_node(self, node: dict) -> dict:
        return {k: v for k, v in node.items()
                if k in self.node_top_keys or k not in ("kind", "apiVersion")}

    def _args(self, verb: str, pod: dict, names: list, nodes: dict | None) -> bytes:
        """filter/prioritize args: NodeNames in cache mode, a NodeList (informer objects)
        otherwise; every other key as captured, in the captured order."""
        cache = self.node_cache or nodes is None
        args = copy.copy(self.templates[(verb, cache)])
        args["Pod"] = self._informer_pod(pod)
        if cache:
            args["NodeNames"] = list(names)
        else:
            args["Nodes"] = {"metadata": {}, "items": [self._informer_node(nodes[n]) for n in names]}
        return json.dumps(args, separators=(",", ":")).encode()

    def filter_body(self, pod: dict, names: list, nodes: dict | None = None) -> bytes:
        return self._args("filter", pod, names, nodes)

    def prioritize_body(self, pod: dict, names: list, nodes: dict | None = None) -> bytes:
        return self._args("prioritize", pod, names, nodes)

    def bind_body(self, pod: dict, node: str) -> bytes:
        m = pod["metadata"]
        args = copy.copy(self.bind_template)
        args.update({"PodName": m["name"], "PodNamespace": m.get("namespace", "default"),
                     "PodUID": m["uid"], "Node": node})
        return json.dumps(args, separators=(",", ":")).encode()

    def preempt_body(self, pod: dict, victims: dict) -> bytes:
        """ExtenderPreemptionArgs from preempt.args.nodecache-*.json: only the Pod and the
        victims map are replaced. victims: node -> (pods, numPDBViolations). Go writes map keys
        sorted; cache mode sends NodeNameToMetaVictims (UIDs), the other NodeNameToVictims (the
        informer's Pod objects)."""
        args = copy.copy(self.templates[("preempt", self.node_cache)])
        args["Pod"] = self._informer_pod(pod)
        out = {}
        for node in sorted(victims):
            pods, npdb = victims[node]
            if self.node_cache:
                out[node] = {"Pods": [{"UID": pod_uid(p)} for p in pods], "NumPDBViolations": npdb}
            else:
                out[node] = {"Pods": [self._informer_pod(p) for p in pods], "NumPDBViolations": npdb}
        args["NodeNameToMetaVictims" if self.node_cache else "NodeNameToVictims"] = out
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

    # ---- one pod (1.26, ignoredByScheduler: true)

    def _post(self, verb: str, body: bytes, st: RoundStats):
        """POSTs one verb; returns (status, decoded JSON or text). Transport errors raise.
        Like Go's transport, a request that finds its kept-alive connection closed by the
        server is sent once more on a new connection (bind is idempotent, the others pure)."""
        t0 = time.monotonic()
        hdrs = self.headers.get((verb, self.node_cache), self.headers[verb])
        try:
            return self.ext.json("POST", "/" + verb, body, hdrs, retry=True)
        finally:
            st.time_call(verb, time.monotonic() - t0)

    def _call(self, verb: str, body: bytes, st: RoundStats, errors: str, want: type,
              label: str = "", strict: str = ""):
        """POSTs one verb and returns its decoded reply, or None after counting the failure in
        st.<errors>: a transport error (also counted in transport_errors), or an answer that is
        not a 200 carrying a JSON <want>. label names the verb in the notes (default: verb);
        with strict (the pod's name), a bad answer is a protocol error rather than a note."""
        label = label or verb
        try:
            status, reply = self._post(verb, body, st)
        except (OSError, http.client.HTTPException) as e:
            setattr(st, errors, getattr(st, errors) + 1)
            st.transport_errors += 1
            st.note_error(f"{label} transport: {type(e).__name__}")
            return None
        if status != 200 or not isinstance(reply, want):
            setattr(st, errors, getattr(st, errors) + 1)
            if strict:
                st.protocol_errors.append(f"{strict}: {label} answered HTTP {status}: "
                                          f"{str(reply)[:200]}")
            else:
                st.note_error(f"{label} HTTP {status}: {str(reply)[:80]}")
            return None
        return reply

    def schedule_one(self, pod: dict, names: list, st: RoundStats):
        pname = f'{pod["metadata"].get("namespace")}/{pod["metadata"]["name"]}'
        st.attempted += 1
        if not names:
            st.unschedulable += 1
            return
        reply = self._call("filter", self.filter_body(pod, names), st, "filter_errors", dict)
        if reply is None:
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
        self._pick_and_bind(pod, pname, passed, st)

    def _pick_and_bind(self, pod: dict, pname: str, passed: list, st: RoundStats,
                       nodes: dict | None = None) -> str | None:
        """One feasible node is taken as is; two or more go to prioritize (highest score, ties
        at random). Then bind. Returns the node on success, None otherwise."""
        target = passed[0]
        if len(passed) >= 2:
            st.prioritized += 1
            scores = self._call("prioritize", self.prioritize_body(pod, passed, nodes), st,
                                "filter_errors", list)
            if scores is None:
                return None
            best, best_hosts = None, []
            for hp in scores:
                host, score = (hp or {}).get("Host"), (hp or {}).get("Score")
                if host not in passed or not isinstance(score, int) or isinstance(score, bool) \
                        or not 0 <= score <= 10:
                    st.protocol_errors.append(f"{pname}: bad prioritize entry {hp!r}")
                    return None
                if best is None or score > best:
                    best, best_hosts = score, [host]
                elif score == best:
                    best_hosts.append(host)
            if best_hosts:
                with self.rng_lock:
                    target = self.rng.choice(best_hosts)
        reply = self._call("bind", self.bind_body(pod, target), st, "bind_errors", dict)
        if reply is None:
            return None
        m = pod["metadata"]
        if reply.get("Error"):
            st.bind_errors += 1
            st.note_error("bind Error: " + reply["Error"])
            st.failed_binds.append((m.get("namespace", "default"), m["name"], m["uid"], target,
                                    reply["Error"]))
            return None
        st.bound += 1
        st.binds.append((m.get("namespace", "default"), m["name"], m["uid"], target, pod_gpus(pod)))
        return target

    # ---- one pod (1.28, ignoredByScheduler: false, DefaultPreemption)

    def intree_status(self, pod: dict, node: str, view: ClusterView, removed=frozenset(),
                      added=()) -> tuple | None:
        """kube-scheduler's own Filter plugins for one node, RunFilterPluginsWithNominatedPods
        style: the pods nominated to the node with a priority >= the pod's (other than the pod)
        count as if they were there. removed: UIDs of pods taken away (the preemption dry run);
        added: pods put back. None if the node passes, else (code, reason):
        NodeUnschedulable and TaintToleration give UnschedulableAndUnresolvable, NodeResourcesFit
        (pods, cpu, memory and, as ignoredByScheduler: false, nvidia.com/gpu) Unschedulable."""
        n = view.nodes.get(node)
        if n is None:
            return (UNRESOLVABLE, "node not found")
        spec = n.get("spec") or {}
        tol = (pod.get("spec") or {}).get("tolerations") or []
        if spec.get("unschedulable") and not _tolerates(
                tol, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
            return (UNRESOLVABLE, "node(s) were unschedulable")
        for t in spec.get("taints") or []:
            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tol, t):
                return (UNRESOLVABLE, "node(s) had untolerated taint")
        prio, me = pod_priority(pod), pod_uid(pod)
        pods = [p for p in view.on_node.get(node, []) if pod_uid(p) not in removed]
        pods += list(added)
        pods += [p for p in view.nominated.get(node, [])
                 if pod_priority(p) >= prio and pod_uid(p) != me]
        alloc = (n.get("status") or {}).get("allocatable") or {}
        if len(pods) + 1 > parse_quantity(alloc.get("pods", "110")):
            return (UNSCHEDULABLE, "Too many pods")
        names = ["cpu", "memory"] + ([GPU] if self.gpu_in_tree else [])
        for r in names:
            want = pod_request(pod, r)
            if want and want > parse_quantity(alloc.get(r)) - sum(pod_request(p, r) for p in pods):
                return (UNSCHEDULABLE, f"Insufficient {r}")
        return None

    def _extender_filter(self, pod: dict, names: list, view: ClusterView, st: RoundStats,
                         statuses: dict):
        """findNodesThatPassExtenders for our one extender: returns the passing names, or None
        after an error (counted). FailedAndUnresolvableNodes and FailedNodes go into statuses."""
        pname = pod_ref(pod)
        reply = self._call("filter", self.filter_body(pod, names, view.nodes), st, "filter_errors",
                           dict)
        if reply is None:
            return None
        if _ci_get(reply, "Error"):
            st.filter_errors += 1
            st.note_error("filter Error: " + str(_ci_get(reply, "Error")))
            return None
        if self.node_cache and _ci_get(reply, "NodeNames") is not None:
            passed = list(_ci_get(reply, "NodeNames"))
        else:
            nl = _ci_get(reply, "Nodes")
            items = _ci_get(nl, "items") if isinstance(nl, dict) else None
            passed = [((i or {}).get("metadata") or {}).get("name") for i in items or []]
        if not set(passed) <= set(names):
            st.protocol_errors.append(f"{pname}: filter passed nodes it was not sent: "
                                      f"{sorted(set(map(str, passed)) - set(names))[:5]}")
            st.filter_errors += 1
            return None
        unres = _ci_get(reply, "FailedAndUnresolvableNodes") or {}
        failed = _ci_get(reply, "FailedNodes") or {}
        for n, why in unres.items():
            statuses[n] = (UNRESOLVABLE, why)
        for n, why in failed.items():
            if n not in unres:
                statuses[n] = (UNSCHEDULABLE, why)
        return passed

    def _patch_status(self, pod: dict, patch: dict, st: RoundStats, what: str) -> bool:
        m = pod["metadata"]
        path = f'/api/v1/namespaces/{m.get("namespace", "default")}/pods/{m["name"]}/status'
        try:
            status, reply = self.api(self.fake, "PATCH", path, {"status": patch},
                                     "application/strategic-merge-patch+json")
        except (OSError, http.client.HTTPException) as e:
            st.note_error(f"{what} transport: {type(e).__name__}")
            return False
        if status != 200:
            st.note_error(f"{what} HTTP {status}: {str(reply)[:80]}")
            return False
        return True

    def _set_nominated(self, pod: dict, node: str, st: RoundStats):
        """updatePod with a NominatingInfo in ModeOverride: status.nominatedNodeName set to node
        ("" clears it), only if it changes."""
        cur = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if cur != node:
            self._patch_status(pod, {"nominatedNodeName": node or None}, st, "nominate")

    def schedule_one_v128(self, pod: dict, view: ClusterView, st: RoundStats) -> bool:
        """One scheduling cycle of kube-scheduler 1.28.7 (schedule_one.go) for one pod:
        evaluateNominatedNode (the nominated node alone, through the in-tree filters and the
        extender's filter), then every node through the in-tree filters and the feasible ones
        through the extender; no feasible node runs PostFilter (preemption). Returns True if the
        cluster changed (a bind, a preemption or a nomination), so the caller re-reads it."""
        pname = pod_ref(pod)
        st.attempted += 1
        statuses = {}
        nnn = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nnn and nnn in view.nodes:
            code = self.intree_status(pod, nnn, view)
            if code is None:
                passed = self._extender_filter(pod, [nnn], view, st, statuses)
                if passed:   # an error is logged and the cycle goes on with every node
                    if self._pick_and_bind(pod, pname, passed, st, view.nodes):
                        st.nominated_binds += 1
                        return True
                    self._set_nominated(pod, "", st)   # a binding error clears the nomination
                    return True
            else:
                statuses[nnn] = code
        feasible = []
        for name in view.node_order:
            code = self.intree_status(pod, name, view)
            if code is None:
                feasible.append(name)
            else:
                statuses[name] = code
        passed = []
        if feasible:
            passed = self._extender_filter(pod, feasible, view, st, statuses)
            if passed is None:   # not a FitError: no preemption, the nomination is cleared
                if nnn:
                    self._set_nominated(pod, "", st)
                    return True
                return False
        if passed:
            if self._pick_and_bind(pod, pname, passed, st, view.nodes):
                return True
            if nnn:
                self._set_nominated(pod, "", st)
            return True
        st.unschedulable += 1
        if not self.preemption:
            return False
        return self.post_filter(pod, view, statuses, st)

    # ---- preemption (framework/preemption/preemption.go, plugins/defaultpreemption)

    def eligible_to_preempt(self, pod: dict, view: ClusterView, statuses: dict) -> tuple:
        """PodEligibleToPreemptOthers (PodDisruptionConditions on, the 1.28 default)."""
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return False, "not eligible due to preemptionPolicy=Never."
        nnn = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nnn:
            if statuses.get(nnn, (None,))[0] == UNRESOLVABLE:
                return True, ""
            prio = pod_priority(pod)
            for p in view.on_node.get(nnn, []):
                if pod_priority(p) < prio and self._terminating_by_preemption(p):
                    return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    @staticmethod
    def _terminating_by_preemption(p: dict) -> bool:
        if not (p.get("metadata") or {}).get("deletionTimestamp"):
            return False
        for c in (p.get("status") or {}).get("conditions") or []:
            if c.get("type") == "DisruptionTarget":
                return c.get("status") == "True" and c.get("reason") == "PreemptionByScheduler"
        return False

    def select_victims_on_node(self, pod: dict, node: str, view: ClusterView, now: float):
        """SelectVictimsOnNode: remove every lower-priority pod, check the fit, then reprieve
        (PDB-violating pods first, then the others, each highest priority first). Returns
        (victims, numPDBViolations, status) with status None on success."""
        prio = pod_priority(pod)
        potential = [p for p in view.on_node.get(node, []) if pod_priority(p) < prio]
        if not potential:
            return [], 0, (UNRESOLVABLE, "No preemption victims found for incoming pod")
        removed = {pod_uid(p) for p in potential}
        code = self.intree_status(pod, node, view, removed)
        if code is not None:
            return [], 0, code
        potential.sort(key=more_important_key(now))
        violating, non_violating = filter_pods_with_pdb_violation(potential, view.pdbs)
        victims, n_violating = [], 0
        for group, counts in ((violating, True), (non_violating, False)):
            for p in group:
                removed.discard(pod_uid(p))
                if self.intree_status(pod, node, view, removed) is not None:
                    removed.add(pod_uid(p))
                    victims.append(p)
                    n_violating += counts
        return victims, n_violating, None

    def post_filter(self, pod: dict, view: ClusterView, statuses: dict, st: RoundStats) -> bool:
        """DefaultPreemption.PostFilter -> Evaluator.Preempt. Returns True if it changed the
        cluster (victims deleted, a nomination set or cleared)."""
        pname = pod_ref(pod)
        pod = view.by_uid.get(pod_uid(pod), pod)   # 0) the latest version of the pod
        ok, why = self.eligible_to_preempt(pod, view, statuses)
        if not ok:
            st.not_eligible += 1
            return False
        # 2) candidates: every node not UnschedulableAndUnresolvable, dry-run in parallel from a
        # random offset (sequentially here), stopping once enough are found
        potential = [n for n in view.node_order if statuses.get(n, (None,))[0] != UNRESOLVABLE]
        nnn = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if not potential:
            st.no_candidates += 1
            if nnn:   # ClearNominatedNodeName, and the FitError result's "" nomination
                self._set_nominated(pod, "", st)
                return True
            return False
        n = len(potential)
        num_candidates = min(n, max(100, n * 10 // 100))
        with self.rng_lock:
            offset = self.rng.randrange(n)
        now = time.time()
        non_violating, violating, errs = [], [], []
        for i in range(n):
            node = potential[(offset + i) % n]
            victims, npdb, code = self.select_victims_on_node(pod, node, view, now)
            if code is None and victims:
                (non_violating if npdb == 0 else violating).append((node, victims, npdb))
                if non_violating and len(non_violating) + len(violating) >= num_candidates:
                    break
            elif code is None:
                errs.append(f'expected at least one victim pod on node "{node}"')
        candidates = non_violating + violating
        if errs and not candidates:
            st.dryrun_errors.append(f"{pname}: {'; '.join(errs[:3])}")
            return False
        if not candidates:
            st.no_candidates += 1
            if nnn:
                self._set_nominated(pod, "", st)
                return True
            return False
        # 3) the extender's preempt verb
        chosen = {node: (victims, npdb) for node, victims, npdb in candidates}
        if self.preempt_verb is not None:
            chosen = self._call_preempt(pod, chosen, view, st)
            if chosen is None:
                return False
        if not chosen:
            st.no_candidates += 1   # "no candidate node for preemption"
            return False
        # 4) pickOneNodeForPreemption (Go iterates a map: the order of ties is random)
        nodes = sorted(chosen)
        with self.rng_lock:
            self.rng.shuffle(nodes)
        best = nodes[0] if len(nodes) == 1 else self.pick_one_node(nodes, chosen, now)
        victims, npdb = chosen[best]
        # 5) prepareCandidate: DisruptionTarget on each victim, DELETE it; lower-priority pods
        # nominated to that node lose their nomination; then the preemptor is nominated
        rec = {"preemptor": pname, "uid": pod_uid(pod), "priority": pod_priority(pod),
               "gpus": pod_gpus(pod), "node": best, "time": time.monotonic(),
               "num_pdb_violations": npdb,
               "victims": [(pod_ref(v), pod_uid(v), pod_gpus(v), pod_priority(v)) for v in victims],
               "offered": {node: [pod_ref(p) for p in vs] for node, vs, _ in candidates},
               "chosen": {k: [pod_ref(p) for p in v[0]] for k, v in chosen.items()}}
        for v in victims:
            if not self._evict(pod, v, best, st):
                st.preempt_notes.append(f"{pname}: evicting {pod_ref(v)} failed")
                return True
        for p in view.nominated.get(best, []):
            if pod_priority(p) < pod_priority(pod) and pod_uid(p) != pod_uid(pod):
                self._set_nominated(p, "", st)
        st.preemptions.append(rec)
        self._set_nominated(pod, best, st)
        return True

    def _evict(self, preemptor: dict, victim: dict, node: str, st: RoundStats) -> bool:
        """prepareCandidate for one victim: the DisruptionTarget condition, then DELETE with no
        options (the pod's own grace period). Any failure (a 404 too) fails the preemption.

        As in 1.28.7 exactly, the condition is added to a copy of the PREEMPTOR's status and
        the victim is patched with the two-way strategic merge patch from its own status to that
        one (util.PatchPodStatus(victim, preemptor status + condition)): the victim's status
        becomes the preemptor's (phase, conditions, no startTime...) plus DisruptionTarget.
        Later releases start from the victim's status."""
        m = victim["metadata"]
        sched_name = (preemptor.get("spec") or {}).get("schedulerName", "")
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": f"{sched_name}: preempting to accommodate a higher priority pod"}
        new_status = copy.deepcopy(preemptor.get("status") or {})
        if update_pod_condition(new_status, cond):
            patch = two_way_status_patch(victim.get("status") or {}, new_status)
            if patch and not self._patch_status(victim, patch, st, "DisruptionTarget"):
                return False
        path = f'/api/v1/namespaces/{m.get("namespace", "default")}/pods/{m["name"]}'
        try:
            status, reply = self.api(self.fake, "DELETE", path)
        except (OSError, http.client.HTTPException) as e:
            st.note_error(f"evict transport: {type(e).__name__}")
            return False
        if status != 200:
            st.note_error(f"evict HTTP {status}: {str(reply)[:80]}")
            return False
        st.victims.append({"victim": pod_ref(victim), "uid": pod_uid(victim), "node": node,
                           "gpus": pod_gpus(victim), "priority": pod_priority(victim),
                           "preemptor": pod_ref(preemptor), "preemptor_uid": pod_uid(preemptor),
                           "time": time.monotonic()})
        return True

    def _call_preempt(self, pod: dict, offered: dict, view: ClusterView, st: RoundStats):
        """HTTPExtender.ProcessPreemption and callExtenders' checks. Returns node -> (victim
        pods, numPDBViolations) as the extender replied, or None after an error (a protocol
        error is recorded for anything kube-scheduler would refuse)."""
        pname = pod_ref(pod)
        st.preempt_calls += 1
        body = self.preempt_body(pod, offered)
        reply = self._call(self.preempt_verb, body, st, "preempt_errors", dict, label="preempt",
                           strict=pname)
        if reply is None:
            return None
        got = _ci_get(reply, "NodeNameToMetaVictims")
        if got is None:
            got = {}
        if not isinstance(got, dict):
            st.preempt_errors += 1
            st.protocol_errors.append(f"{pname}: preempt: NodeNameToMetaVictims is not an object: "
                                      f"{str(got)[:200]}")
            return None
        out = {}
        prio = pod_priority(pod)
        for node, mv in got.items():
            if node not in view.nodes:
                st.preempt_errors += 1
                st.protocol_errors.append(f'{pname}: preempt: node "{node}" not found')
                return None
            if mv is not None and not isinstance(mv, dict):
                st.preempt_errors += 1
                st.protocol_errors.append(f"{pname}: preempt: victims of {node} not an object: {mv!r}")
                return None
            mv = mv or {}
            npdb = _ci_get(mv, "NumPDBViolations")
            if npdb is None:
                npdb = 0
            if not isinstance(npdb, int) or isinstance(npdb, bool):
                st.preempt_errors += 1
                st.protocol_errors.append(f"{pname}: preempt: NumPDBViolations of {node} is {npdb!r}")
                return None
            here = {pod_uid(p): p for p in view.on_node.get(node, [])}
            pods = []
            for mp in _ci_get(mv, "Pods") or []:
                uid = _ci_get(mp, "UID") if isinstance(mp, dict) else None
                if uid not in here:
                    st.preempt_errors += 1
                    st.protocol_errors.append(
                        f"{pname}: preempt claims to preempt pod (UID: {uid}) on node {node}, "
                        "but the pod is not found on that node")
                    return None
                pods.append(here[uid])
            out[node] = (pods, npdb)
        for node, (pods, _) in out.items():
            if not pods:
                st.preempt_errors += 1
                st.protocol_errors.append(f'{pname}: preempt: expected at least one victim pod on '
                                          f'node "{node}"')
                return None
        st.preempt_exchanges.append((pname, {n: [pod_ref(p) for p in v[0]] for n, v in offered.items()},
                                     {n: [pod_ref(p) for p in v[0]] for n, v in out.items()}))
        # accepted by kube-scheduler, but worth a look
        for node, (pods, _) in out.items():
            if node not in offered:
                st.preempt_notes.append(f"{pname}: preempt returned {node}, which was not offered")
            for p in pods:
                if pod_priority(p) >= prio:
                    st.preempt_notes.append(f"{pname}: preempt names {pod_ref(p)} (priority "
                                            f"{pod_priority(p)} >= {prio}) on {node}")
        return out

    @staticmethod
    def pick_one_node(nodes: list, victims: dict, now: float) -> str:
        """pickOneNodeForPreemption over node -> (pods, numPDBViolations), pods in the order
        given (Pods[0] is taken as the highest priority, as kube-scheduler does)."""
        def earliest_start(pods):
            top, best = pod_priority(pods[0]), pod_start_time(pods[0], now)
            for p in pods:
                pr = pod_priority(p)
                if pr == top:
                    best = min(best, pod_start_time(p, now))
                elif pr > top:
                    top, best = pr, pod_start_time(p, now)
            return best

        funcs = [
            lambda n: -victims[n][1],
            lambda n: -pod_priority(victims[n][0][0]),
            lambda n: -sum(pod_priority(p) + MAX_INT32 + 1 for p in victims[n][0]),
            lambda n: -len(victims[n][0]),
            lambda n: earliest_start(victims[n][0]),
        ]
        cands = list(nodes)
        for f in funcs:
            scores = {n: f(n) for n in cands}
            top = max(scores.values())
            sel = [n for n in cands if scores[n] == top]
            if len(sel) == 1:
                return sel[0]
            cands = sel
        return cands[0]

    # ---- one round

    def run_round(self, state: dict | None = None, max_pods: int | None = None,
                  stop: threading.Event | None = None) -> RoundStats:
        """Schedules every pending pod once (at most max_pods of them), `threads` at a time.
        state: a fresh /_admin/state?full=1 snapshot to use instead of fetching one.
        stop: when set, pods not started yet are skipped.
        With gpu_in_tree or preemption: one pod at a time (kube-scheduler's one scheduling
        loop), the cluster re-read after every pod that changed it (the informers catching up:
        binds, deletions and nominations are seen by the next pod)."""
        t0 = time.monotonic()
        state = state if state is not None else self.snapshot()
        pods = self.pending_pods(state)
        total = RoundStats(pending=len(pods))
        if max_pods is not None:
            pods = pods[:max_pods]
        if self.gpu_in_tree:
            view = ClusterView(state, self.scheduler_name)
            for pod in pods:
                if stop is not None and stop.is_set():
                    break
                cur = view.by_uid.get(pod_uid(pod))
                if cur is None or (cur.get("spec") or {}).get("nodeName") or \
                        (cur.get("metadata") or {}).get("deletionTimestamp"):
                    continue   # bound or deleted meanwhile
                if self.schedule_one_v128(cur, view, total):
                    view = ClusterView(self.snapshot(), self.scheduler_name)
            self.kubelet_tick()
            total.seconds = time.monotonic() - t0
            return total
        load = self.node_load(state)

        def work(pod):
            st = RoundStats()
            if stop is None or not stop.is_set():
                self.schedule_one(pod, self.candidate_nodes(state, pod, load), st)
            return st

        for f in [self.pool.submit(work, p) for p in pods]:
            total.merge(f.result())
        self.kubelet_tick()
        total.seconds = time.monotonic() - t0
        return total
