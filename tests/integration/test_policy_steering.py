#!/usr/bin/env python3
"""test_policy_steering.py -- a policy's rules steering pods, end to end, and a hot reload.

    GX_BIN=build-churn/gpu-extender python3 tests/integration/test_policy_steering.py [-v]

Same setup as test_churn.py (whose harness it uses): the fake API server, the daemon with a
kubeconfig and tokenFile, and the kube-scheduler simulator (filter -> prioritize -> bind). The
daemon runs with --policy FILE --policy-watch-ms 100 and this policy:

    classes   h100, a100, l40s, t4 (by nvidia.com/gpu.product)
    ml-train  (namespace ml-train)  allow h100, a100; prefer h100, then a100
    inference (namespace inference) allow l40s, a100, h100; prefer l40s, then a100
              (h100 allowed, not preferred: a last resort)
    ci        (namespace ci)        any model; prefer t4
    default   forbid t4

on 12 nodes: 4 H100 x 8 GPUs, 4 A100 x 8, 2 L40S x 4, 2 T4 x 4 (the fixture nodes are removed).
Waves of pods are created and scheduled; after every scheduling round, from the fake's truth
(never the daemon's own view):

  - no pod sits on a class its rule does not allow (ml-train never on L40S/T4, default never
    on T4), and every bound pod carries gpu-extender.io/policy-rule naming its rule;
  - preference order: no pod bound in the round sits on a class while a class its rule prefers
    more still has a node with room for it at the end of the round (nothing is deleted during
    a round, so that room was there when the pod was decided);
  - plus the harness's checks: no node over-allocated, the daemon's cache converges to the
    truth, every bind answered OK is true in the fake.

Then, expected outcomes wave by wave: ml-train fills the H100s and only then falls back to
A100; inference fills the L40S and then takes A100; ci lands on T4; default pods fill the A100s
and stay pending rather than take the free T4 GPUs (and filter says why). Last, the policy file
is rewritten (ml-train now prefers a100 first), the watcher applies it without a restart, and
new ml-train pods follow the new order. The daemon must exit 0 on SIGTERM with no sanitizer
report.

Environment: as test_churn.py (GX_BIN, GX_FIXTURES, GX_SEED, GX_KEEP_TMP). About 20 s with
an ASan build.
"""

from __future__ import annotations

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sched_sim as sim  # noqa: E402
from test_churn import CheckFailure, Cluster, log, run_cluster_test  # noqa: E402

ANN_RULE = "gpu-extender.io/policy-rule"
PRODUCT = "nvidia.com/gpu.product"

PRODUCTS = {"h100": "NVIDIA-H100-80GB-HBM3", "a100": "NVIDIA-A100-SXM4-80GB",
            "l40s": "NVIDIA-L40S", "t4": "Tesla-T4"}
NODES = [("h100", 4, 8), ("a100", 4, 8), ("l40s", 2, 4), ("t4", 2, 4)]   # class, count, GPUs

POLICY = """apiVersion: gpu-extender.io/v1alpha1
kind: GPUPolicy
classes:
  - name: h100
    products: ["NVIDIA-H100*"]
  - name: a100
    products: ["NVIDIA-A100*"]
  - name: l40s
    products: ["NVIDIA-L40S"]
  - name: t4
    products: ["Tesla-T4"]
rules:
  - name: ml-train
    match: {namespaces: [ml-train]}
    allow: [h100, a100]
    prefer:
      - class: %(first)s
      - class: %(second)s
  - name: inference
    match: {namespaces: [inference]}
    allow: [l40s, a100, h100]
    prefer:
      - class: l40s
      - class: a100
  - name: ci
    match: {namespaces: [ci]}
    prefer:
      - class: t4
default:
  forbid: [t4]
"""

# What each namespace's rule allows, and its preference order (best first; classes after the
# listed ones are allowed fallbacks that score 0 for the model part). The default rule has no
# preference: free GPUs alone decide.
RULE_OF = {"ml-train": "ml-train", "inference": "inference", "ci": "ci", "default": "default"}
ALLOWED = {"ml-train": {"h100", "a100"}, "inference": {"l40s", "a100", "h100"},
           "ci": {"h100", "a100", "l40s", "t4"}, "default": {"h100", "a100", "l40s"}}


def policy_text(first: str, second: str) -> str:
    return POLICY % {"first": first, "second": second}


class PolicySteeringTest(unittest.TestCase):
    def test_policy_steering(self):
        run_cluster_test(self, "policy-steering", self._run)

    # ---- setup

    def write_policy(self, c: Cluster, text: str):
        tmp = self.policy_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.policy_path)   # atomic: the watcher never sees half a file

    def _run(self, c: Cluster):
        self.prefer = {"ml-train": ["h100", "a100"], "inference": ["l40s", "a100", "h100"],
                       "ci": ["t4"], "default": []}
        self.policy_path = os.path.join(c.tmp, "policy.yaml")
        self.write_policy(c, policy_text("h100", "a100"))
        c.start_fake()
        d = c.start_daemon("1", "--policy", self.policy_path, "--policy-watch-ms", "100")
        status, pol = d.http.json("GET", "/debug/policy")
        self.assertEqual(status, 200)
        self.assertEqual([r["name"] for r in pol["rules"]], ["ml-train", "inference", "ci"])
        c.after_step("seed", "step 0 seed", 0.0)

        # The cluster: the fixture nodes (and their pods) go, twelve nodes of four classes come.
        state = c.truth()
        for n in list(state["nodes"]):
            c.delete_node(n["metadata"]["name"], state)
        for cls, count, gpus in NODES:
            for i in range(1, count + 1):
                c.api("POST", "/api/v1/nodes", c.objects.node(f"{cls}-{i}", gpus, PRODUCTS[cls]))
        state = c.step("nodes", lambda: None)
        self.assertEqual(sorted(self.classes(state).values()),
                         sorted(cls for cls, count, _ in NODES for _ in range(count)))

        # Wave 1: ml-train, 12 x 2 GPUs = 24 of the 32 H100 GPUs: all on H100.
        names = self.create(c, "ml-train", 12, 2)
        state = self.drain(c, "wave 1 ml-train")
        self.assertEqual(self.placement(state, names), {"h100": 12},
                         "ml-train pods go to H100 while H100 has room")

        # Wave 2: 8 more x 2 GPUs: 4 fill the H100s, 4 fall back to A100.
        names = self.create(c, "ml-train", 8, 2)
        state = self.drain(c, "wave 2 ml-train")
        self.assertEqual(self.placement(state, names), {"h100": 4, "a100": 4},
                         "ml-train fills the H100s, then falls back to A100")
        self.assertEqual(self.free_by_class(state)["h100"], 0)

        # Wave 3: inference, 6 x 2 GPUs: the 8 L40S GPUs first (4 pods), then A100 (2).
        names = self.create(c, "inference", 6, 2)
        state = self.drain(c, "wave 3 inference")
        self.assertEqual(self.placement(state, names), {"l40s": 4, "a100": 2},
                         "inference fills the L40S, then takes A100")

        # Wave 4: ci, 2 x 2 GPUs: T4, which ci prefers (and only ci may use). Some T4 node
        # keeps 2 or more GPUs free, enough for any pod below.
        names = self.create(c, "ci", 2, 2)
        state = self.drain(c, "wave 4 ci")
        self.assertEqual(self.placement(state, names), {"t4": 2}, "ci prefers T4")

        # Wave 5: default, 12 x 2 GPUs = 24 > the 20 A100 GPUs left: 10 bind, 2 stay pending
        # although the T4 nodes have 4 GPUs free (forbidden to the default rule). Every pod
        # asks 2 GPUs and every node has an even count, so free GPUs never fragment.
        free = self.free_by_class(state)
        self.assertEqual(free, {"h100": 0, "a100": 20, "l40s": 0, "t4": 4})
        names = self.create(c, "default", 12, 2)
        state = self.drain(c, "wave 5 default")
        self.assertEqual(self.placement(state, names), {"a100": 10, None: 2},
                         "default pods fill the A100s and never take T4")
        self.assertEqual(self.free_by_class(state), {"h100": 0, "a100": 0, "l40s": 0, "t4": 4})
        pending = [p for p in c.sim.pending_pods(state)
                   if p["metadata"]["namespace"] == "default"]
        self.assertEqual(len(pending), 2)
        self.check_filter_reasons(c, state, pending[0])

        # Wave 6: a hot reload. ml-train now prefers a100 first. Room is made on both classes
        # (2 ml-train pods off H100, 2 default pods off A100: 4 GPUs each), the pending default
        # pods are removed, and the new policy file is written; no restart.
        pid = d.proc.pid
        self.make_room(c, state)
        state = c.step("make-room", lambda: None)
        self.assertEqual(self.free_by_class(state), {"h100": 4, "a100": 4, "l40s": 0, "t4": 4})
        m0 = d.metrics()
        self.write_policy(c, policy_text("a100", "h100"))
        self.wait_policy(d, ["a100", "h100"])
        m1 = d.metrics()
        self.assertEqual(m1.get("gpu_extender_policy_reloads_total", 0)
                         - m0.get("gpu_extender_policy_reloads_total", 0), 1)
        self.assertEqual(m1.get("gpu_extender_policy_reload_failures_total", 0), 0)
        self.assertTrue(d.alive() and d.proc.pid == pid and c.daemon is d, "no restart")
        self.prefer["ml-train"] = ["a100", "h100"]
        names = self.create(c, "ml-train", 4, 2)
        state = self.drain(c, "wave 6 ml-train after reload")
        self.assertEqual(self.placement(state, names), {"a100": 2, "h100": 2},
                         "after the reload ml-train fills A100 first, then H100")
        log("placements per class (GPUs used/allocatable): "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.usage_by_class(state).items())))

    # ---- cluster helpers

    def create(self, c: Cluster, ns: str, n: int, gpus: int) -> list:
        names = []
        for _ in range(n):
            name = f"{ns}-{c.new_pod_name()}"
            c.api("POST", f"/api/v1/namespaces/{ns}/pods", c.objects.pod(name, gpus, ns))
            names.append((ns, name))
        c.after_step("pods+", f"step {c.steps + 1} pods+ {ns}", 0.0)
        return names

    @staticmethod
    def classes(state: dict) -> dict:
        """Node name -> class, from the node's product label in the truth."""
        by_product = {v: k for k, v in PRODUCTS.items()}
        return {n["metadata"]["name"]: by_product.get(n["metadata"]["labels"].get(PRODUCT))
                for n in state["nodes"]}

    def free_by_class(self, state: dict) -> dict:
        cls, alloc, used = self.classes(state), Cluster.node_alloc(state), sim.gpus_in_use(state)
        out = {k: 0 for k in PRODUCTS}
        for node, a in alloc.items():
            out[cls[node]] += a - used.get(node, 0)
        return out

    def usage_by_class(self, state: dict) -> dict:
        cls, alloc, used = self.classes(state), Cluster.node_alloc(state), sim.gpus_in_use(state)
        out = {}
        for node, a in alloc.items():
            u, t = out.get(cls[node], (0, 0))
            out[cls[node]] = (u + used.get(node, 0), t + a)
        return {k: f"{u}/{t}" for k, (u, t) in out.items()}

    def placement(self, state: dict, names: list) -> dict:
        """Class -> how many of these pods are bound there (None: still pending)."""
        cls = self.classes(state)
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in state["pods"]}
        out = {}
        for key in names:
            node = pods[key]["spec"].get("nodeName")
            k = cls[node] if node else None
            out[k] = out.get(k, 0) + 1
        return out

    def drain(self, c: Cluster, label: str, max_rounds: int = 8) -> dict:
        """Scheduling rounds until one binds nothing; the policy checks after each."""
        state = c.truth()
        for i in range(max_rounds):
            before = {p["metadata"]["uid"] for p in state["pods"] if p["spec"].get("nodeName")}
            state = c.step("schedule", c.schedule)
            rnd = c.last_round
            new = [p for p in state["pods"]
                   if p["spec"].get("nodeName") and p["metadata"]["uid"] not in before]
            self.check_round(state, new, f"{label} round {i + 1}")
            log(f"{label} round {i + 1}: {rnd.line()}"
                + (f" errors {dict(list(rnd.error_samples.items())[:3])}" if rnd.error_samples
                   else ""))
            if rnd.bound == 0 or not c.sim.pending_pods(state):
                return state
        raise CheckFailure(f"{label}: still binding after {max_rounds} rounds")

    def check_round(self, state: dict, new: list, label: str):
        cls = self.classes(state)
        alloc, used = Cluster.node_alloc(state), sim.gpus_in_use(state)
        room = {}   # class -> the most free GPUs on one node of it
        for node, a in alloc.items():
            room[cls[node]] = max(room.get(cls[node], 0), a - used.get(node, 0))
        bad = []
        for p in state["pods"]:
            node = p["spec"].get("nodeName")
            if not node or sim.is_terminal(p):
                continue
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            if cls[node] not in ALLOWED[ns]:
                bad.append(f"  {ns}/{name} on {node} ({cls[node]}): not allowed by rule "
                           f"{RULE_OF[ns]}")
            rule = (p["metadata"].get("annotations") or {}).get(ANN_RULE)
            if rule != RULE_OF[ns]:
                bad.append(f"  {ns}/{name}: annotation {ANN_RULE} is {rule!r}, want "
                           f"{RULE_OF[ns]!r}")
        for p in new:
            ns, name, node = p["metadata"]["namespace"], p["metadata"]["name"], p["spec"]["nodeName"]
            order = self.prefer[ns]
            rank = order.index(cls[node]) if cls[node] in order else len(order)
            for better in order[:rank]:
                if better in ALLOWED[ns] and room.get(better, 0) >= sim.pod_gpus(p):
                    bad.append(f"  {ns}/{name} ({sim.pod_gpus(p)} GPUs) bound to {node} "
                               f"({cls[node]}) while a node of class {better} (preferred) still has "
                               f"{room[better]} GPUs free")
        if bad:
            raise CheckFailure(f"[{label}] the policy was not followed:\n" + "\n".join(bad[:20]))

    def check_filter_reasons(self, c: Cluster, state: dict, pod: dict):
        """A pending default-namespace pod: filter says why, node by node."""
        names = sorted(n["metadata"]["name"] for n in state["nodes"])
        status, reply = c.daemon.http.json("POST", "/filter", c.sim.filter_body(pod, names),
                                           c.sim.headers["filter"])
        self.assertEqual(status, 200)
        self.assertEqual(reply.get("Error"), "")
        self.assertEqual(reply.get("NodeNames") or [], [])
        cls = self.classes(state)
        # Every rejection is unresolvable to kube-scheduler's preemption (src/api/codec.c).
        want_u = {n: "gpu-extender: policy default: model Tesla-T4 forbidden"
                  if cls[n] == "t4" else "gpu-extender: not enough free nvidia.com/gpu"
                  for n in names}
        self.assertEqual(reply.get("FailedAndUnresolvableNodes"), want_u)
        self.assertEqual(reply.get("FailedNodes"), {})

    def make_room(self, c: Cluster, state: dict):
        cls = self.classes(state)
        on = {"h100": [], "a100": []}
        for p in state["pods"]:
            node, ns = p["spec"].get("nodeName"), p["metadata"]["namespace"]
            if not node:
                if ns == "default":
                    c.delete_pod(ns, p["metadata"]["name"], grace=0)
                continue
            if (cls[node], ns) in (("h100", "ml-train"), ("a100", "default")):
                on[cls[node]].append(p)
        for k in on:
            for p in sorted(on[k], key=lambda p: p["metadata"]["name"])[:2]:
                c.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"], grace=0)

    def wait_policy(self, d, ml_train_order: list, timeout: float = 3.0):
        """Waits until /debug/policy shows ml-train preferring ml_train_order."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            status, pol = d.http.json("GET", "/debug/policy")
            if status == 200 and isinstance(pol, dict):
                seen = [e["class"] for r in pol["rules"] if r["name"] == "ml-train"
                        for e in r["prefer"]]
                if seen == ml_train_order:
                    log(f"policy reloaded: hash {pol['hash']}, reloads {pol['reloads']}")
                    return
            time.sleep(0.05)
        raise CheckFailure(f"the policy change was not applied within {timeout} s "
                           f"(ml-train prefers {seen})\n{d.log_tail()}")


if __name__ == "__main__":
    unittest.main()
