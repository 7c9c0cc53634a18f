#!/usr/bin/env python3
"""test_scarcity_k8s.py -- the scarcity part against a real kube-apiserver and kube-scheduler.

    export K8S_BIN=$HOME/k8s-bin GX_DAEMON=build/gpu-extender
    python3 tests/integration/test_scarcity_k8s.py -v

The control plane and gpu-extender come up as in test_preempt_e2e.py (whose harness code this
test uses: the loopback harness of ../shared/harness, kube-scheduler with gpu-extender as its
extender, nodeCacheCapable, bind through the extender), with the shipped
policy/examples/scarcity.yaml plus a class t4 and a rule t4-only (pods labelled gpu-class=t4
may use only t4). Three nodes: a T4 with 2 GPUs, two A100s with 8. kube-scheduler schedules,
gpu-extender binds, the real API server merges the Binding's annotations, and the watch brings
the pods back to gpu-extender's cache:

  - a pod bound to T4 by gpu-extender.io/gpu-model lands on T4 and carries the record of the
    model it got (gpu-model: Tesla-T4) and its own value (gpu-model-required: T4);
  - a pod that accepts any model lands on an A100, leaving the T4 GPU;
  - a pod of the label rule takes it and carries gpu-extender.io/policy-rule: t4-only;
  - with the annotation pod gone, T4's demand is that running pod's alone, whose labels the
    cache does not keep: a second flexible pod still lands on an A100, not on the free T4 GPU;
  - the policy file rewritten with the weight at 0 (the daemon's default 1 s watch): the next
    flexible pod takes the T4 GPU, as binpack alone does.

Skips (exit 77) as test_preempt_e2e.py does when the control plane cannot be had. About 30 s on
2 cores.
"""

from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_preempt_e2e as e2e  # noqa: E402
from test_scarcity_steering import T4, policy_text  # noqa: E402

SCENARIO = "scarcity"
ANN = "gpu-extender.io/"


class ScarcityK8sTest(e2e.ClusterTestCase):
    policy = policy_text(4)

    def test_scarcity_on_a_real_control_plane(self):
        c = self.c
        nodes = []
        try:
            self.body(c, nodes)
        except BaseException:
            c.failed = True
            c.dump(SCENARIO)
            raise
        finally:
            c.remove_scenario(SCENARIO, None)
            for n in nodes:
                c.api.call("DELETE", f"/api/v1/nodes/{n}", ok=(200, 202, 404))

    def bind(self, c, name, labels=None, annotations=None) -> dict:
        c.create_pod(name, 1, "low", SCENARIO, labels, annotations)
        return c.wait_bound(name, 30)

    def body(self, c, nodes):
        t4 = c.make_node("t4", 2, product=T4)
        nodes.append(t4)
        a100 = [c.make_node("a100x", 8), c.make_node("a100y", 8)]
        nodes.extend(a100)

        p = self.bind(c, "t4-a", annotations={ANN + "gpu-model": "T4"})
        self.assertEqual(p["spec"]["nodeName"], t4)
        ann = p["metadata"]["annotations"]
        self.assertEqual((ann.get(ANN + "gpu-model"), ann.get(ANN + "gpu-model-required")),
                         (T4, "T4"), ann)

        p = self.bind(c, "any-a")
        self.assertIn(p["spec"]["nodeName"], a100, "a flexible pod leaves the T4 GPU alone")
        on_a100 = p["spec"]["nodeName"]

        p = self.bind(c, "t4-c", labels={"gpu-class": "t4"})
        self.assertEqual(p["spec"]["nodeName"], t4)
        self.assertEqual(p["metadata"]["annotations"].get(ANN + "policy-rule"), "t4-only")

        c.api.force_delete_pod("t4-a", None)
        c.wait("gpu-extender to see t4-a gone",
               lambda: (c.daemon_node(t4, 2, False) or {}).get("used") == 1, 15)
        p = self.bind(c, "any-b")
        self.assertEqual(p["spec"]["nodeName"], on_a100,
                         "the label rule's running pod keeps T4 scarce; binpack within A100")

        with open(c.policy + ".new", "w") as f:
            f.write(policy_text(0))
        os.replace(c.policy + ".new", c.policy)

        def reloaded():
            status, pol = c.daemon_get("/debug/policy")
            return status == 200 and pol["weights"]["scarcity"] == 0
        c.wait("the policy with the weight at 0", reloaded, 10)
        p = self.bind(c, "any-c")
        self.assertEqual(p["spec"]["nodeName"], t4, "without the part, binpack takes the T4 GPU")
        e2e.log(f"{SCENARIO}: the flexible pods on {on_a100}, then {t4} with the weight at 0")


def main():
    ScarcityK8sTest.setup = e2e.preflight()
    unittest.main()


if __name__ == "__main__":
    main()
