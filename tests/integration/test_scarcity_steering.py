#!/usr/bin/env python3
"""test_scarcity_steering.py -- the scarcity part of the score, end to end, from the watch.

    GX_BIN=build-churn/gpu-extender python3 tests/integration/test_scarcity_steering.py [-v]

Same setup as test_policy_steering.py (the harness of test_churn.py): the fake API server, the
daemon with a kubeconfig, and the kube-scheduler simulator (filter -> prioritize -> bind). The
daemon runs with the shipped policy/examples/scarcity.yaml (binpack, scarcity weight 4) plus one
class and one rule appended (t4-only: pods labelled gpu-class=t4 may use only the class t4), with
--policy-watch-ms 100.

The cluster: one T4 node with 2 GPUs, two A100 nodes with 8. The demand the daemon scores on
comes only from the pods its watch has seen, so every check below is about what the watch fed
the table. By hand (freeGPUs 1, scarcity 4: the part holds 8 of the 10 points, binpack 2):

  - T4-only pods (gpu-extender.io/gpu-model: T4, nvidia.com/use-gputype: T4, or the t4-only
    rule's label) make T4 scarce: 1 GPU of demand over 2 is 0.5, A100 stays 0;
  - a pod that accepts any model then scores 0 on the half-used T4 node (binpack 2, scarcity 0,
    less the fleet-share mark-down: it would take 1 of T4's 2 GPUs against 1 of A100's 16, so
    round(8 * (2/2 - 2/16)) = 7 levels) and 8 or 9 on A100, so it leaves the T4 GPU to the next
    T4-only pod, which binds;
  - a second flexible pod joins the first on its A100 node (binpack within a model), so the
    other A100 node stays whole and an 8-GPU pod binds there;
  - /debug/explain shows the scarcity part per node: 0 on T4, 1 on A100, the mark-down's 7
    levels on T4 and none on A100, and the same after a
    restart, which lists the bound pods afresh: a bound pod's requirement is read from
    gpu-extender.io/gpu-model-required, since the Binding's gpu-model records the model it got;
  - a running pod of the label rule still counts as T4 demand, though the cache keeps no labels
    of running pods: by the rule its Binding recorded (gpu-extender.io/policy-rule);
  - with the same cluster and the weight set to 0 by a hot reload, the next flexible pod takes
    the T4 GPU (binpack's 10 against 6): the weight, not the cluster, made the choice.

Plus the harness's checks after every step: no node over-allocated, the daemon's cache
converges to the fake's truth, every bind answered OK is true in the fake; the daemon must exit
0 on SIGTERM with no sanitizer report.

Environment: as test_churn.py (GX_BIN, GX_FIXTURES, GX_SEED, GX_KEEP_TMP). A few seconds.
"""

from __future__ import annotations

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_churn import CheckFailure, Cluster, log, run_cluster_test  # noqa: E402

PRODUCT = "nvidia.com/gpu.product"
T4, A100 = "Tesla-T4", "NVIDIA-A100-SXM4-80GB"
NODES = [("t4-1", 2, T4), ("a100-1", 8, A100), ("a100-2", 8, A100)]
ANN_MODEL, ANN_REQUIRED = "gpu-extender.io/gpu-model", "gpu-extender.io/gpu-model-required"
SHIPPED = os.path.join(ROOT, "policy", "examples", "scarcity.yaml")

# Appended to the shipped file: a third way to bind a pod to T4, a rule by label.
RULE = """
classes:
  - name: t4
    products: ["Tesla-T4"]
rules:
  - name: t4-only
    match: {labels: {gpu-class: t4}}
    allow: [t4]
"""


def policy_text(weight: int) -> str:
    """The shipped scarcity.yaml with its weight set to weight, plus RULE (test_scarcity_k8s.py
    uses it too)."""
    with open(SHIPPED) as f:
        text = f.read()
    if "scarcity: 4\n" not in text:
        raise CheckFailure(f"{SHIPPED} no longer sets scarcity: 4; update this test")
    return text.replace("scarcity: 4\n", f"scarcity: {weight}\n") + RULE


class ScarcitySteeringTest(unittest.TestCase):
    def test_scarcity_steering(self):
        run_cluster_test(self, "scarcity-steering", self._run)

    def write_policy(self, weight: int):
        tmp = self.policy_path + ".new"
        with open(tmp, "w") as f:
            f.write(policy_text(weight))
        os.replace(tmp, self.policy_path)

    def _run(self, c: Cluster):
        self.c = c
        self.policy_path = os.path.join(c.tmp, "policy.yaml")
        self.write_policy(4)
        c.start_fake()
        d = c.start_daemon("1", "--policy", self.policy_path, "--policy-watch-ms", "100")
        self.assertEqual(self.scarcity_weight(d), 4)
        c.after_step("seed", "step 0 seed", 0.0)

        state = c.truth()
        for n in list(state["nodes"]):
            c.delete_node(n["metadata"]["name"], state)
        for name, gpus, product in NODES:
            c.api("POST", "/api/v1/nodes", c.objects.node(name, gpus, product))
        c.step("nodes", lambda: None)

        # A T4-only pod by our annotation: T4 is its only choice. The Binding records the model
        # it got in gpu-model, over the pod's requirement, which it keeps in gpu-model-required:
        # read as a requirement, that record would make every running pod demand its node's
        # model (the A100 pods below would make A100 "scarce").
        self.create("t4-a", 1, annotations={ANN_MODEL: "T4"})
        self.assertEqual(self.drain("t4-a"), {"t4-a": "t4-1"})
        ann = self.annotations("t4-a")
        self.assertEqual((ann.get(ANN_MODEL), ann.get(ANN_REQUIRED)), (T4, "T4"), ann)

        # Two flexible pods: both on one A100 node, none on the half-used T4 node. Before the
        # round, explain gives the parts of the first one's score.
        self.create("any-a", 1)
        self.check_explain("any-a", {"t4-1": (0, 0.0, 7), "a100-1": (8, 1.0, None),
                                     "a100-2": (8, 1.0, None)}, {T4: 0.5, A100: 0.0})
        m = d.metrics()
        self.assertEqual((m.get(f'gpu_extender_model_scarcity{{model="{T4}"}}'),
                          m.get(f'gpu_extender_model_scarcity{{model="{A100}"}}'),
                          m.get(f'gpu_extender_model_gpus{{model="{A100}"}}')), (0.5, 0.0, 16.0))
        placed = self.drain("any-a")
        self.assertIn(placed["any-a"], ("a100-1", "a100-2"), "a flexible pod leaves T4 alone")
        a100_used = placed["any-a"]
        a100_whole = "a100-2" if a100_used == "a100-1" else "a100-1"
        self.create("any-b", 1)
        self.assertEqual(self.drain("any-b"), {"any-b": a100_used},
                         "binpack within a model: the other A100 node stays whole")
        ann = self.annotations("any-b")
        self.assertEqual((ann.get(ANN_MODEL), ann.get(ANN_REQUIRED)), (A100, None), ann)

        # The T4 GPU the flexible pods left: taken by a pod bound to T4 by HAMi's annotation.
        self.create("t4-b", 1, annotations={"nvidia.com/use-gputype": "T4"})
        # Explain shows it the table too, and why the part does not apply: one model allowed.
        status, body = self.c.daemon.http.json("GET", "/debug/explain/default/t4-b")
        self.assertEqual(status, 200, body)
        rows = {m["model"]: (m["allowed"], m["scarcity"]) for m in body["scarcity"]["models"]}
        self.assertEqual(rows, {T4: (True, 0.5), A100: (False, 0.0)}, body["scarcity"])
        self.assertFalse(body["scarcity"]["applies"], body["scarcity"])
        self.assertEqual(self.drain("t4-b"), {"t4-b": "t4-1"})

        # The whole A100 node takes an 8-GPU pod.
        self.create("big", 8)
        self.assertEqual(self.drain("big"), {"big": a100_whole})

        # T4 frees a GPU. The flexible pod below must leave it to the t4-only rule's pod after it.
        self.c.delete_pod("default", "t4-b", grace=0)
        self.c.step("delete t4-b", lambda: None)
        self.create("any-c", 1)
        want_c = {"t4-1": (0, 0.0, 7), a100_used: (9, 1.0, None), a100_whole: (None, None)}
        self.check_explain("any-c", want_c, {T4: 0.5, A100: 0.0})

        # A restart lists the bound pods afresh (no pending state to remember their
        # requirements from): the same table, the same scores.
        self.c.stop_daemon(d)
        d = self.c.start_daemon("2", "--policy", self.policy_path, "--policy-watch-ms", "100")
        self.c.after_step("restart", "restart", 0.0)
        self.check_explain("any-c", want_c, {T4: 0.5, A100: 0.0})
        self.assertEqual(self.drain("any-c"), {"any-c": a100_used})

        # A pod bound to T4 by the t4-only rule, which selects it by label. Once it runs, the
        # cache keeps none of its labels: its demand comes from the rule its Binding recorded
        # (gpu-extender.io/policy-rule). With t4-a gone it is T4's only demand.
        self.create("t4-c", 1, labels={"gpu-class": "t4"})
        self.assertEqual(self.drain("t4-c"), {"t4-c": "t4-1"}, "the t4-only rule's pod")
        self.assertEqual(self.annotations("t4-c").get("gpu-extender.io/policy-rule"), "t4-only")
        self.c.delete_pod("default", "t4-a", grace=0)
        self.c.step("delete t4-a", lambda: None)
        self.create("any-e", 1)
        self.check_explain("any-e", {"t4-1": (0, 0.0, 7), a100_used: (9, 1.0, None),
                                     a100_whole: (None, None)}, {T4: 0.5, A100: 0.0})
        self.assertEqual(self.drain("any-e"), {"any-e": a100_used})

        # The same cluster state with the weight at 0: a hot reload, and the next flexible pod
        # takes the free T4 GPU, as plain binpack does (10 on T4 against 6 on the A100 node).
        pid = d.proc.pid
        self.write_policy(0)
        self.wait_weight(d, 0)
        self.assertTrue(d.alive() and d.proc.pid == pid, "no restart")
        self.create("any-d", 1)
        self.check_explain("any-d", {"t4-1": (10, None, None), a100_used: (6, None, None),
                                     a100_whole: (None, None)})
        self.assertEqual(self.drain("any-d"), {"any-d": "t4-1"},
                         "without the part, binpack takes the T4 GPU")

    # ---- helpers

    def create(self, name: str, gpus: int, ns: str = "default", annotations=None, labels=None):
        pod = self.c.objects.pod(name, gpus, ns)
        pod["metadata"]["labels"].update(labels or {})
        if annotations:
            pod["metadata"].setdefault("annotations", {}).update(annotations)
        self.c.api("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        self.c.after_step("pods+", f"step {self.c.steps + 1} pods+ {name}", 0.0)
        self.last = (ns, name)

    def annotations(self, name: str, ns: str = "default") -> dict:
        for p in self.c.truth()["pods"]:
            if (p["metadata"]["namespace"], p["metadata"]["name"]) == (ns, name):
                return p["metadata"].get("annotations") or {}
        raise CheckFailure(f"{ns}/{name} is not in the fake's truth")

    def drain(self, label: str) -> dict:
        """One scheduling round for the pod just created: name -> node of every pod it bound."""
        state = self.c.step("schedule", self.c.schedule)
        rnd = self.c.last_round
        log(f"{label}: {rnd.line()}")
        ns, name = self.last
        for p in state["pods"]:
            m = p["metadata"]
            if (m["namespace"], m["name"]) == (ns, name):
                return {name: p["spec"].get("nodeName")}
        raise CheckFailure(f"{ns}/{name} is not in the fake's truth")

    def check_explain(self, name: str, want: dict, table=None):
        """want: node -> (score or None: does not pass, scarcity part or None: absent, and for
        a node that passes the fleet-share mark-down's levels or None: absent); table: model ->
        its scarcity in the table the pod was scored on (None: no table shown)."""
        ns = self.last[0]
        status, body = self.c.daemon.http.json("GET", f"/debug/explain/{ns}/{name}")
        self.assertEqual(status, 200, body)
        if table is None:
            self.assertNotIn("scarcity", body)
        else:
            got = {m["model"]: m["scarcity"] for m in body["scarcity"]["models"]}
            self.assertEqual(got, table, body["scarcity"])
            self.assertTrue(body["scarcity"]["applies"], body["scarcity"])
        nodes = {n["name"]: n for n in body["nodes"]}
        for node, (score, part, *levels) in want.items():
            got = nodes[node]
            if score is None:
                self.assertNotEqual(got["verdict"], "pass", got)
                continue
            self.assertEqual(got["verdict"], "pass", got)
            self.assertEqual(got["score"], score, got)
            share = got["parts"].get("fleetShare")
            self.assertEqual(share and share["levels"], levels[0], got)
            scarcity = got["parts"].get("scarcity")
            if part is None:
                self.assertIsNone(scarcity, got)
            else:
                self.assertEqual(scarcity["weight"], 4, got)
                self.assertAlmostEqual(scarcity["value"], part, places=6, msg=got)

    @staticmethod
    def scarcity_weight(d) -> int:
        status, pol = d.http.json("GET", "/debug/policy")
        if status != 200:
            raise CheckFailure(f"/debug/policy answered {status}")
        return pol["weights"]["scarcity"]

    def wait_weight(self, d, weight: int, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scarcity_weight(d) == weight:
                return
            time.sleep(0.05)
        raise CheckFailure(f"the scarcity weight did not become {weight} within {timeout} s")


if __name__ == "__main__":
    unittest.main()
