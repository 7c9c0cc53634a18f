#!/usr/bin/env python3
"""test_agent_e2e.py -- the node agent, the fake API server and gpu-extender together.

    GX_BIN=build/gpu-extender GX_AGENT_BIN=build/gpu-extender-agent \
    FAKE_NVML_LIB=build/tests/libfake_nvml.so python3 tests/integration/test_agent_e2e.py -v

The agent runs on gpu-node-1 of the fake's fixture cluster with the fake NVML library (an
HGX H100: 8 GPUs, NVSwitch) and the fake kubelet (tests/fakes/fake_kubelet.py), and publishes
through the fake API server, which gpu-extender watches. Checked:

  - the Node gets the topology the fixture describes (tests/fakes/nvml/hgx-h100.expected.json,
    written by hand), and gpu-extender's /debug/nodes shows it, with the agent as the source;
  - at steady state the agent sends no patch at all; a burst of pod starts is one patch;
  - pods in PodResources move gpus-in-use and gpu-pods, and gpu-extender's free set follows
    (a pod the agent lists counts by the node's report, not by our own guess);
  - a critical XID makes the GPU unhealthy on the Node within seconds, gpu-extender stops
    choosing it (a bind through gpu-extender records a GPU set without it); an application
    XID changes nothing;
  - an API outage (503 on every patch) loses nothing: the latest state lands once it ends; a
    rotated token (401) is picked up from the token file;
  - a restarted agent that finds its facts on the Node sends no patch;
  - --once --dry-run prints one JSON object and exits 0; --dry-run exits 0 on SIGTERM; a
    missing NVML library is a clear error;
  - no process's stderr holds a sanitizer report; the agent exits 0 on SIGTERM.

It prints the patch counts it measured (steady state and churn). Environment: as
test_churn.py, plus GX_AGENT_BIN and FAKE_NVML_LIB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_churn import Cluster, log  # noqa: E402

NODE = "gpu-node-1"
NVML_DIR = os.path.join(SRC, "tests", "fakes", "nvml")
KUBELET = os.path.join(SRC, "tests", "fakes", "fake_kubelet.py")
ANN = "gpu-extender.io/"
# The fixture's UUIDs, by index.
UUID = [f"GPU-b7e0a3c1-5f2d-4c8e-9a61-7d30c2e1f0a{i}" for i in range(8)]


def wait_for(what: str, fn, timeout: float = 10.0, every: float = 0.05):
    """fn's first truthy answer within timeout seconds, else a failure naming what."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {str(last)[:400]})")


class AgentE2E(unittest.TestCase):
    def setUp(self):
        for var in ("GX_AGENT_BIN", "FAKE_NVML_LIB"):
            if not os.environ.get(var):
                self.fail(f"{var} is not set (ctest sets it; see the docstring)")
        self.agent_bin = os.environ["GX_AGENT_BIN"]
        self.c = Cluster("agent")
        self.addCleanup(self.c.close)
        self.scenario = os.path.join(self.c.tmp, "pods.json")
        self.socket = os.path.join(self.c.tmp, "kubelet.sock")
        self.events = os.path.join(self.c.tmp, "nvml.events")
        open(self.events, "w").close()
        self.pods = {}
        self.agents = []  # (proc, log path)

    # ---- the pieces

    def set_pods(self, pods: dict[str, list[int]], mode: str = "ok"):
        """The kubelet's answer from now on: pod name (namespace default) -> GPU indices."""
        self.pods = dict(pods)
        doc = {"mode": mode, "pods": [
            {"namespace": "default", "name": name,
             "containers": [{"name": "main", "devices": [
                 {"resource": "nvidia.com/gpu", "ids": [UUID[i] for i in gpus]},
                 {"resource": "example.com/nic", "ids": ["nic-0"]}]}]}
            for name, gpus in sorted(pods.items())]}
        tmp = self.scenario + ".new"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.scenario)

    def start_kubelet(self):
        ready = os.path.join(self.c.tmp, "kubelet.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.kubelet = self.c._popen([os.environ.get("GX_GRPC_PYTHON3") or sys.executable, KUBELET, "--socket", self.socket, "--scenario",
                       self.scenario, "--ready", ready], os.path.join(self.c.tmp, "kubelet.log"))
        wait_for("the fake kubelet", lambda: os.path.exists(ready))

    def agent_env(self):
        env = self.c.daemon_env()
        env["FAKE_NVML_CONFIG"] = os.path.join(NVML_DIR, "hgx-h100.conf")
        env["FAKE_NVML_EVENTS"] = self.events
        return env

    def start_agent(self, tag: str, *extra):
        log_path = os.path.join(self.c.tmp, f"agent-{tag}.log")
        p = self.c._popen([self.agent_bin, "--node-name", NODE, "--kubeconfig",
                           self.c.kubeconfig, "--nvml-lib", os.environ["FAKE_NVML_LIB"],
                           "--pod-resources-socket", self.socket, "--interval-ms", "200",
                           "--settle-ms", "400", "--max-delay-ms", "2000", "--log-level",
                           "debug", *extra], log_path, env=self.agent_env())
        self.agents.append((p, log_path))
        return p

    def stop_agent(self, p) -> int:
        p.send_signal(signal.SIGTERM)
        return p.wait(15)

    def node_ann(self) -> dict:
        _, node = self.c.api("GET", f"/api/v1/nodes/{NODE}")
        return node["metadata"].get("annotations") or {}

    def patches(self) -> int:
        reqs = self.requests(f"PATCH /api/v1/nodes/{NODE}")
        return sum(1 for r in reqs if r["status"] == 200)

    def requests(self, match: str) -> list:
        return self.c.admin("GET", "/requests?match=" + urllib.parse.quote(match))

    def debug_node(self) -> dict:
        status, body = self.c.daemon.http.request("GET", "/debug/nodes")
        self.assertEqual(status, 200)
        return next(n for n in json.loads(body)["nodes"] if n["name"] == NODE)

    def in_use_is(self, want: str):
        return lambda: self.node_ann().get(ANN + "gpus-in-use") == want

    def topo_gpu(self, index: int) -> dict:
        t = json.loads(self.node_ann()[ANN + "topology"])
        return next(g for g in t["gpus"] if g["index"] == index)

    # ---- the test

    def test_agent(self):
        c = self.c
        c.start_fake()
        c.start_daemon("1")
        self.set_pods({"gpu-pod-1": [5]})
        self.start_kubelet()
        # The agent's first read of its Node fails: it must not take the Node for one without
        # GPU Feature Discovery and overwrite GFD's labels meanwhile.
        c.admin("POST", "/fault", {"match": f"^GET /api/v1/nodes/{NODE}$", "action": "status",
                                   "status": 503, "times": 2})
        agent = self.start_agent("1")
        wait_for("the agent to meet both failures",
                 lambda: all(f.get("remaining") == 0 for f in c.admin("GET", "/fault")))
        c.admin("DELETE", "/fault")

        # The topology, as written by hand from the hardware's published matrix.
        with open(os.path.join(NVML_DIR, "hgx-h100.expected.json")) as f:
            expected = f.read().strip()
        wait_for("the agent's topology on the Node",
                 lambda: self.node_ann().get(ANN + "topology") == expected)
        ann = self.node_ann()
        self.assertEqual(ann[ANN + "gpus-in-use"], "5")
        self.assertEqual(json.loads(ann[ANN + "gpu-pods"]), {"default/gpu-pod-1": "5"})
        self.assertIn('"podResources":"ok"', ann[ANN + "agent"])
        self.assertTrue(ann[ANN + "agent-changed-at"].endswith("Z"))
        # GPU Feature Discovery's labels are on the fixture node: the agent leaves them alone.
        _, node = c.api("GET", f"/api/v1/nodes/{NODE}")
        self.assertEqual(node["metadata"]["labels"]["nvidia.com/gpu.product"],
                         "NVIDIA-A100-SXM4-80GB")

        # gpu-extender follows: the agent's facts, its pod counted at the node's index.
        n = wait_for("gpu-extender to see the agent",
                     lambda: (lambda d: d if d.get("gpuFactsSource") == "node agent"
                              and d.get("topology", {}).get("taken") == "5" else None)(
                                  self.debug_node()))
        self.assertEqual(n["topology"]["gpus"], 8)
        self.assertEqual(n["topology"]["takenUnnamed"], 0)
        self.assertTrue(n["agent"]["podsKnown"])
        self.assertGreaterEqual(n["agent"]["ageSeconds"], 0)

        # Steady state: no patch at all.
        before = self.patches()
        time.sleep(2.5)
        steady = self.patches() - before
        self.assertEqual(steady, 0, "patches at steady state")

        # A burst of pod starts (one every 50 ms, inside the settle time) is one patch.
        before = self.patches()
        pods = {"gpu-pod-1": [5]}
        for i, gpu in enumerate((0, 1, 2)):
            pods[f"burst-{i}"] = [gpu]
            self.set_pods(pods)
            time.sleep(0.05)
        wait_for("the burst on the Node", self.in_use_is("0,1,2,5"))
        time.sleep(1.0)
        burst = self.patches() - before
        self.assertEqual(burst, 1, "patches for a burst of 3 pod starts")
        wait_for("gpu-extender to follow the burst",
                 lambda: self.debug_node()["topology"]["taken"] == "0,1,2,5")

        # Churn: five changes 0.6 s apart (longer than the settle time): at most a patch each.
        before = self.patches()
        for i in range(5):
            if i % 2:
                pods.pop(f"churn-{i - 1}")
            else:
                pods[f"churn-{i}"] = [6]
            self.set_pods(pods)
            time.sleep(0.6)
        time.sleep(1.0)
        churn = self.patches() - before
        self.assertLessEqual(churn, 5)
        self.assertGreaterEqual(churn, 1)
        log(f"patches: steady state {steady} in 2.5 s; burst of 3 pod starts: {burst}; "
            f"5 changes 0.6 s apart: {churn}")

        # A critical XID on GPU 3: unhealthy on the Node within seconds; gpu-extender stops
        # choosing it. An application XID (13) on GPU 2 changes nothing.
        self.set_pods({"gpu-pod-1": [5]})
        wait_for("pods back to one", self.in_use_is("5"))
        before = self.patches()
        with open(self.events, "a") as f:
            f.write("xid 2 13\n")
        t0 = time.monotonic()
        with open(self.events, "a") as f:
            f.write("xid 3 79\n")
        wait_for("GPU 3 unhealthy on the Node", lambda: self.topo_gpu(3).get("healthy") is False)
        log(f"critical XID to the Node: {time.monotonic() - t0:.2f} s")
        self.assertNotIn("healthy", self.topo_gpu(2))
        time.sleep(1.0)
        self.assertEqual(self.patches() - before, 1, "patches for an ignored and a critical XID")
        wait_for("gpu-extender to drop GPU 3",
                 lambda: self.debug_node()["topology"]["healthy"] == "0,1,2,4,5,6,7")
        self.assertEqual(self.debug_node()["topology"]["free"], "0,1,2,4,6,7")
        self.bind_and_check_gpus(6, forbidden={3, 5})

        # An outage: every patch fails with 503. Changes made meanwhile land once it ends.
        fault = c.admin("POST", "/fault", {"match": f"PATCH /api/v1/nodes/{NODE}",
                                           "action": "status", "status": 503, "times": -1})
        self.set_pods({"gpu-pod-1": [5], "during-outage": [7]})
        wait_for("a failed patch", lambda: any(
            r["status"] == 503 for r in self.requests("PATCH")), timeout=5)
        self.set_pods({"gpu-pod-1": [5], "during-outage-2": [6]})
        time.sleep(1.5)
        c.admin("DELETE", "/fault")
        del fault
        wait_for("the latest state after the outage", self.in_use_is("5,6"), timeout=20)
        self.assertEqual(json.loads(self.node_ann()[ANN + "gpu-pods"]),
                         {"default/gpu-pod-1": "5", "default/during-outage-2": "6"})

        # A rotated token: 401 once, the token file re-read, the patch goes through.
        c.token = "t2"
        c.admin("POST", "/token", {"token": "t2"})
        c.write_token("t2")
        self.set_pods({"gpu-pod-1": [5]})
        wait_for("a patch with the new token", self.in_use_is("5"), timeout=20)

        # The kubelet goes away: after three failed calls GPUs in use are unknown, removed from
        # the Node rather than left stale; when it is back, they return.
        self.kubelet.send_signal(signal.SIGTERM)
        self.kubelet.wait(10)
        wait_for("gpus-in-use removed while the kubelet is away",
                 lambda: ANN + "gpus-in-use" not in self.node_ann(), timeout=10)
        ann = self.node_ann()
        self.assertNotIn(ANN + "gpu-pods", ann)
        self.assertIn('"podResources":"unavailable"', ann[ANN + "agent"])
        wait_for("gpu-extender to count GPU 5 as unnamed again",
                 lambda: self.debug_node()["topology"]["takenUnnamed"] == 1)
        self.start_kubelet()
        wait_for("gpus-in-use back with the kubelet", self.in_use_is("5"), timeout=10)

        # A restart is how a GPU becomes healthy again (README): one patch says so.
        self.assertEqual(self.stop_agent(agent), 0)
        c.admin("DELETE", "/requests")
        agent = self.start_agent("2")
        wait_for("GPU 3 healthy after the restart", lambda: "healthy" not in self.topo_gpu(3))
        time.sleep(1.0)
        self.assertEqual(self.patches(), 1, "patches after a restart that healed a GPU")
        # A restart that finds its facts on the Node patches nothing.
        self.assertEqual(self.stop_agent(agent), 0)
        c.admin("DELETE", "/requests")
        agent = self.start_agent("3")
        wait_for("the new agent's first turn", lambda: "started" in self.agent_log(-1), timeout=10)
        time.sleep(2.0)
        self.assertEqual(self.patches(), 0, "patches after a restart with nothing changed: " +
                         str([r["body"] for r in self.requests("PATCH")]))
        self.assertEqual(self.stop_agent(agent), 0)

        self.dry_runs()
        for p, path in self.agents:
            text = open(path, errors="replace").read()
            self.assertNotIn("Sanitizer", text, path)
            self.assertNotIn("runtime error", text, path)
        c.finish_daemons(self)

    def agent_log(self, i: int) -> str:
        with open(self.agents[i][1], errors="replace") as f:
            return f.read()

    def bind_and_check_gpus(self, count: int, forbidden: set[int]):
        """Creates a pod asking for count GPUs, binds it to NODE through gpu-extender and
        checks the GPU set recorded on it avoids forbidden."""
        c = self.c
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "wants-gpus", "namespace": "default"},
               "spec": {"schedulerName": "gpu-scheduler", "containers": [
                   {"name": "cuda", "image": "cuda",
                    "resources": {"limits": {"nvidia.com/gpu": str(count)}}}]}}
        _, created = c.api("POST", "/api/v1/namespaces/default/pods", pod)
        uid = created["metadata"]["uid"]
        wait_for("gpu-extender to see the pod", lambda: self.debug_explain_ok())
        status, body = c.daemon.http.request(
            "POST", "/bind", json.dumps({"PodName": "wants-gpus", "PodNamespace": "default",
                                         "PodUID": uid, "Node": NODE}).encode(),
            {"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body).get("Error")), (200, ""), body)
        _, got = c.api("GET", "/api/v1/namespaces/default/pods/wants-gpus")
        gpus = {int(i) for i in got["metadata"]["annotations"][ANN + "gpus"].split(",")}
        self.assertEqual(len(gpus), count)
        self.assertFalse(gpus & forbidden, f"bound to {sorted(gpus)}")
        c.api("DELETE", "/api/v1/namespaces/default/pods/wants-gpus?gracePeriodSeconds=0")

    def debug_explain_ok(self) -> bool:
        status, _ = self.c.daemon.http.request("GET", "/debug/explain/default/wants-gpus")
        return status == 200

    def dry_runs(self):
        env = self.agent_env()
        base = [self.agent_bin, "--nvml-lib", os.environ["FAKE_NVML_LIB"],
                "--pod-resources-socket", self.socket]
        r = subprocess.run(base + ["--once", "--dry-run"], env=env, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        doc = json.loads(lines[0])
        self.assertEqual(json.loads(doc[ANN + "topology"])["gpus"][3].get("healthy"), None,
                         "a new process starts with every GPU healthy")
        self.assertEqual(doc[ANN + "gpus-in-use"], "5")
        # Without a kubelet: PodResources unknown, said so.
        r = subprocess.run(base[:3] + ["--pod-resources-socket", "/nonexistent/kubelet.sock",
                                       "--once", "--dry-run"], env=env, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertNotIn(ANN + "gpus-in-use", doc)
        self.assertIn('"podResources":"unavailable"', doc[ANN + "agent"])
        # Long-running dry run: a line, then SIGTERM, exit 0.
        p = subprocess.Popen(base + ["--dry-run"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        self.assertIn(ANN + "topology", first)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 0, err)
        # A missing NVML library: a clear error, exit 1.
        r = subprocess.run([self.agent_bin, "--nvml-lib", "/nonexistent/libnvidia-ml.so.1",
                            "--once", "--dry-run"], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/libnvidia-ml.so.1", r.stderr)


if __name__ == "__main__":
    unittest.main()
