#!/usr/bin/env python3
"""test_agent_k8s.py -- the node agent against a real kube-apiserver and kube-scheduler.

    export K8S_BIN=$HOME/k8s-bin GX_DAEMON=build/gpu-extender \
           GX_AGENT_BIN=build/gpu-extender-agent FAKE_NVML_LIB=build/tests/libfake_nvml.so
    python3 tests/integration/test_agent_k8s.py -v

The control plane and gpu-extender come up as in test_preempt_e2e.py (whose harness code this
test uses: the loopback harness of ../shared/harness, kube-scheduler with gpu-extender as its
extender, nodeCacheCapable, bind through the extender). One 8-GPU node is made with the
harness's make-gpu-nodes.sh; gpu-extender-agent publishes on it, with the admin kubeconfig,
the fake NVML library (an HGX H100: 8 GPUs, NVSwitch) and the fake kubelet
(tests/fakes/fake_kubelet.py) saying that a pod holds GPU 5. Checked against the real API
server: the merge patch lands (the topology as written by hand in
tests/fakes/nvml/hgx-h100.expected.json, gpus-in-use, gpu-pods), GFD's labels are left as the
node has them, gpu-extender reads the node as the agent's. Then a critical XID on GPU 3: the
Node says GPU 3 is unhealthy within seconds, and a 4-GPU pod that kube-scheduler schedules
through gpu-extender is bound with a GPU set that holds neither GPU 3 nor GPU 5. The agent exits
0 on SIGTERM, and neither process logged a sanitizer report.

Skips (exit 77) as test_preempt_e2e.py does when the control plane cannot be had, and also
without GX_AGENT_BIN or FAKE_NVML_LIB (ctest sets both), or without a python3 with grpcio
(GX_GRPC_PYTHON3). About 30 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_preempt_e2e as e2e  # noqa: E402

ANN = "gpu-extender.io/"
NVML_DIR = os.path.join(e2e.SOURCE_DIR, "tests", "fakes", "nvml")
KUBELET = os.path.join(e2e.SOURCE_DIR, "tests", "fakes", "fake_kubelet.py")
UUID = [f"GPU-b7e0a3c1-5f2d-4c8e-9a61-7d30c2e1f0a{i}" for i in range(8)]
SCENARIO = "agent"


class AgentK8sTest(e2e.ClusterTestCase):
    def start(self, args, log_name, env=None):
        f = open(os.path.join(self.c.tmp, log_name), "wb")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                             env=env)
        f.close()
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def log_of(self, name) -> str:
        with open(os.path.join(self.c.tmp, name), errors="replace") as f:
            return f.read()

    def node_ann(self, node) -> dict:
        return self.c.api.get(f"/api/v1/nodes/{node}")["metadata"].get("annotations") or {}

    def test_agent_on_a_real_api_server(self):
        c = self.c
        try:
            self.body(c)
        except BaseException:
            c.failed = True
            for name in ("agent.log", "kubelet.log"):
                try:
                    print(f"---- {name}\n{self.log_of(name)[-3000:]}", flush=True)
                except OSError:
                    pass
            print(f"---- gpu-extender\n{c.daemon_tail()}", flush=True)
            raise
        finally:
            c.remove_scenario(SCENARIO, None)

    def body(self, c):
        node = c.make_node("agent", 8)
        labels_before = c.api.get(f"/api/v1/nodes/{node}")["metadata"].get("labels") or {}
        scenario = os.path.join(c.tmp, "pods.json")
        with open(scenario, "w") as f:
            json.dump({"mode": "ok", "pods": [{"namespace": "other", "name": "holder",
                       "containers": [{"name": "c", "devices": [
                           {"resource": "nvidia.com/gpu", "ids": [UUID[5]]}]}]}]}, f)
        sock = os.path.join(c.tmp, "kubelet.sock")
        ready = os.path.join(c.tmp, "kubelet.ready")
        self.start([os.environ.get("GX_GRPC_PYTHON3") or sys.executable, KUBELET, "--socket",
                    sock, "--scenario", scenario, "--ready", ready], "kubelet.log")
        c.wait("the fake kubelet", lambda: os.path.exists(ready), 15)
        events = os.path.join(c.tmp, "nvml.events")
        open(events, "w").close()
        env = dict(os.environ, FAKE_NVML_CONFIG=os.path.join(NVML_DIR, "hgx-h100.conf"),
                   FAKE_NVML_EVENTS=events)
        env.setdefault("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:print_summary=1")
        agent = self.start([os.environ["GX_AGENT_BIN"], "--node-name", node, "--kubeconfig",
                            c.env["KUBECONFIG"], "--nvml-lib", os.environ["FAKE_NVML_LIB"],
                            "--pod-resources-socket", sock, "--interval-ms", "200",
                            "--settle-ms", "200", "--log-level", "debug"], "agent.log", env)

        with open(os.path.join(NVML_DIR, "hgx-h100.expected.json")) as f:
            expected = f.read().strip()
        c.wait("the agent's topology on the real Node",
               lambda: self.node_ann(node).get(ANN + "topology") == expected, 20)
        ann = self.node_ann(node)
        self.assertEqual(ann[ANN + "gpus-in-use"], "5")
        self.assertEqual(json.loads(ann[ANN + "gpu-pods"]), {"other/holder": "5"})
        labels = c.api.get(f"/api/v1/nodes/{node}")["metadata"].get("labels") or {}
        if "nvidia.com/gpu.product" in labels_before:
            self.assertEqual(labels.get("nvidia.com/gpu.product"),
                             labels_before["nvidia.com/gpu.product"], "GFD's label was changed")
        else:
            self.assertEqual(labels.get("nvidia.com/gpu.product"), "NVIDIA-H100-80GB-HBM3")
        n = c.wait("gpu-extender to read the agent's facts",
                   lambda: (lambda d: d if d and d.get("gpuFactsSource") == "node agent"
                            and d["topology"]["taken"] == "5" else None)(
                       c.daemon_node(node, 8, True)), 15)
        self.assertEqual(n["topology"]["takenUnnamed"], 0)

        # A critical XID on GPU 3 (after the agent armed its events: it logged "started").
        c.wait("the agent to arm its events", lambda: "health_events=1" in self.log_of("agent.log"),
               10)
        t0 = time.monotonic()
        with open(events, "a") as f:
            f.write("xid 3 79\n")
        c.wait("GPU 3 unhealthy on the real Node", lambda: any(
            g["index"] == 3 and g.get("healthy") is False
            for g in json.loads(self.node_ann(node)[ANN + "topology"])["gpus"]), 10)
        e2e.log(f"critical XID to the real Node: {time.monotonic() - t0:.2f} s")
        c.wait("gpu-extender to drop GPU 3", lambda: (c.daemon_node(node, 8, True) or {}).get(
            "topology", {}).get("healthy") == "0,1,2,4,5,6,7", 10)

        # kube-scheduler schedules a 4-GPU pod through gpu-extender: never GPU 3 or 5.
        c.create_pod("agent-four", 4, "low", SCENARIO)
        pod = c.wait_bound("agent-four", 30)
        self.assertEqual(pod["spec"]["nodeName"], node)
        gpus = {int(i) for i in pod["metadata"]["annotations"][ANN.rstrip("/") + "/gpus"]
                .split(",")}
        self.assertEqual(len(gpus), 4)
        self.assertFalse(gpus & {3, 5}, f"bound to GPUs {sorted(gpus)}")

        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(15), 0)
        text = self.log_of("agent.log")
        self.assertIsNone(e2e.SANITIZER_RE.search(text), text[-2000:])


def main():
    for var in ("GX_AGENT_BIN", "FAKE_NVML_LIB"):
        if not os.environ.get(var):
            e2e.skip(f"{var} is not set (ctest sets it)")
    AgentK8sTest.setup = e2e.preflight()
    unittest.main()


if __name__ == "__main__":
    main()
