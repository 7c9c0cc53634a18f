#!/usr/bin/env python3
"""test_restart.py -- gpu-extender killed mid-churn and started again, against the fake.

    GX_BIN=build-churn/gpu-extender python3 tests/integration/test_restart.py [-v]

Same setup as test_churn.py (whose harness it uses): the fake API server, the daemon with a
kubeconfig and tokenFile, the kube-scheduler simulator. After some churn, twice: a scheduling
round runs in the background and the daemon is SIGKILLed as soon as the fake has received a
few binding POSTs, so binds are in flight (some land with nobody hearing the answer). Pods
keep being created, deleted and finished, and nodes changed, for 2 s while no daemon runs.
Then a new daemon starts on a new port, and the test checks:

  - /readyz comes back (200) within 20 s;
  - its state converges to the fake's truth (nodes, allocatable, used, 0 reserved, pod count);
  - no node was ever over-allocated in the fake's truth (checked at every step, the kill
    included, counting binds nobody heard back about);
  - binding again the pods that were bound before the kill (and the ones bound by binds
    that were in flight at the kill) to the same node answers {"Error":""}, and reserves
    nothing; to another node, an Error;
  - the simulator keeps binding afterwards, and freed GPUs are given out again;
  - no daemon's stderr has a sanitizer report; the last one exits 0 on SIGTERM.

Environment: as test_churn.py (GX_BIN, GX_FIXTURES, GX_SEED, GX_KEEP_TMP).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_churn import BINDING_RE, Cluster, log  # noqa: E402


class RestartTest(unittest.TestCase):
    NODES = 100

    def test_restart(self):
        t_start = time.monotonic()
        c = Cluster("restart")
        self.addCleanup(c.close)
        try:
            self._run(c, t_start)
        except BaseException:
            c.failed = True
            raise

    def _churn(self, c: Cluster, n_pods: int):
        """One epoch of ordinary churn: pods in, a scheduling round, some pods out."""
        c.step("pods+", c.create_pods, n_pods)
        state = c.step("schedule", c.schedule)
        bound = c.pods_where(state, bound=True, terminal=False, deleting=False)
        victims = c.rng.sample(bound, min(len(bound), 10))
        for p in victims:
            c.freed_nodes[p["spec"]["nodeName"]] = c.steps
        return c.step("delete-bound", self._delete, c, victims)

    @staticmethod
    def _delete(c: Cluster, pods, grace=0):
        for p in pods:
            m = p["metadata"]
            c.delete_pod(m["namespace"], m["name"], grace=grace, ok=(200, 404))
            if p["spec"].get("nodeName"):
                c.counts["pods_deleted_bound"] += 1
                c.counts["pods_force_deleted"] += grace == 0
            else:
                c.counts["pods_deleted_pending"] += 1

    def _run(self, c: Cluster, t_start: float):
        c.start_fake()
        d = c.start_daemon("1")
        log(f"daemon 1 ready in {time.monotonic() - d.started:.2f} s on {d.url}")
        c.after_step("seed", "step 0 seed", 0.0)
        c.step("nodes+", c.create_nodes, self.NODES)
        for _ in range(3):
            self._churn(c, 80)
        for cycle in (1, 2):
            self._kill_and_restart(c, cycle)
            binds0 = c.counts["binds"]
            for _ in range(2):
                self._churn(c, 50)
            # every GPU freed (before, during and after the outage) is given out again
            c.saturate_and_check_reuse()
            log(f"after restart {cycle}: {c.counts['binds'] - binds0} binds")
            self.assertGreater(c.counts["binds"] - binds0, 0, "no bind succeeded after the restart")
        c.print_summary("restart", time.monotonic() - t_start)
        c.finish_daemons(self)

    def _kill_and_restart(self, c: Cluster, cycle: int):
        old = c.daemon
        # some pods Terminating (graceful delete): they hold their GPUs across the restart
        state = c.truth()
        bound = c.pods_where(state, bound=True, terminal=False, deleting=False)
        state = c.step("delete-graceful", self._delete, c, c.rng.sample(bound, min(len(bound), 6)),
                       None)
        before_kill = {p["metadata"]["uid"]: p["spec"]["nodeName"]
                       for p in c.pods_where(state, bound=True, terminal=False)}
        self.assertGreater(len(before_kill), 20, "too few pods bound before the kill")

        # ---- SIGKILL while binds are in flight (new nodes: room for the binds, surely)
        c.step("nodes+", c.create_nodes, 4, 8)
        c.step("pods+", c.create_pods, 80)
        state = c.truth()
        pending_before = {p["metadata"]["uid"] for p in c.sim.pending_pods(state)}
        c.admin("DELETE", "/requests")
        holder = {}

        def bg_round():
            try:
                holder["round"] = c.sim.run_round(state=state)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                holder["error"] = e

        t = threading.Thread(target=bg_round, name="kill-round")
        t.start()
        seen = c.admin("GET", f"/requests?match={urllib.parse.quote(BINDING_RE)}&min=6&wait=15")
        t_kill = time.monotonic()
        c.kill_daemon(old)
        t.join(60)
        self.assertFalse(t.is_alive(), "the scheduling round did not end after the kill")
        if "error" in holder:
            raise holder["error"]
        rnd = holder["round"]
        self.assertGreaterEqual(len(seen), 6, "no binds were in flight when the daemon was killed")
        self.assertEqual(rnd.protocol_errors, [])
        c.counts["binds"] += rnd.bound
        state = c.check_only(f"kill {cycle}: after SIGKILL")
        c.check_binds_true(state, rnd.binds, f"kill {cycle}: after SIGKILL", rnd.failed_binds)
        acked = {b[2] for b in rnd.binds}
        landed = {p["metadata"]["uid"]: p for p in c.pods_where(state, bound=True)
                  if p["metadata"]["uid"] in pending_before}
        unacked = [p for uid, p in landed.items() if uid not in acked]
        log(f"kill {cycle}: SIGKILL after {len(seen)} binding POSTs reached the fake; the round: "
            f"{rnd.line()}; {len(landed)} pods bound in it, {len(unacked)} of them with no answer "
            f"to the simulator (in flight at the kill)")

        # ---- churn while no daemon runs (a couple of seconds): only (a) can be checked
        deadline = time.monotonic() + 2.0
        while True:
            c.create_pods(15)
            state = c.check_only(f"kill {cycle}: dead: pods+")
            bound = c.pods_where(state, bound=True, terminal=False, deleting=False)
            gone = c.rng.sample(bound, min(len(bound), 6))
            self._delete(c, gone[:3], 0)            # forced: GPUs free at once
            self._delete(c, gone[3:], None)         # graceful: Terminating, GPUs still held
            for p in gone[:3]:
                c.freed_nodes[p["spec"]["nodeName"]] = c.steps
            terminating = c.pods_where(state, bound=True, deleting=True)
            self._delete(c, terminating[:3], 0)      # the "kubelet" finishes some
            gone_uids = {p["metadata"]["uid"] for p in gone}
            running = [p for p in c.pods_where(state, bound=True, terminal=False, deleting=False)
                       if p["metadata"]["uid"] not in gone_uids]
            for p in c.rng.sample(running, min(len(running), 2)):
                c.set_phase(p, "Succeeded", via_upsert=False)
                c.counts["pods_finished"] += 1
                c.freed_nodes[p["spec"]["nodeName"]] = c.steps
            pending = c.pods_where(state, bound=False, deleting=False, terminal=False)
            self._delete(c, c.rng.sample(pending, min(len(pending), 6)), 0)
            c.check_only(f"kill {cycle}: dead: deletions")
            if time.monotonic() >= deadline:
                break
        state = c.truth()
        churn_nodes = [n["metadata"]["name"] for n in state["nodes"]
                       if n["metadata"]["name"].startswith("churn-node-")]
        victim = c.rng.choice(churn_nodes)
        c.delete_node(victim, state)
        c.create_nodes(3)
        alloc = c.node_alloc(state)
        grow = [n for n in churn_nodes if n != victim and alloc.get(n)][:2]
        for n in grow:
            c.resize_node(n, alloc[n] + 2)
        state = c.check_only(f"kill {cycle}: dead: nodes")
        dead_s = time.monotonic() - t_kill

        # ---- a new daemon on a new port
        d = c.start_daemon(str(cycle + 1))
        ready_s = time.monotonic() - d.started
        self.assertNotEqual(d.port, old.port)
        log(f"daemon {d.tag} ready in {ready_s:.2f} s on {d.url} ({dead_s:.1f} s without a daemon)")
        state = c.after_step("restart", f"restart {cycle}: converge", 0.0)

        # ---- binds of pods already bound are idempotent, and reserve nothing
        still = {p["metadata"]["uid"]: p for p in c.pods_where(state, bound=True)}
        again = [still[u] for u in before_kill if u in still]
        again = c.rng.sample(again, min(len(again), 25)) + [still[p["metadata"]["uid"]]
                                                            for p in unacked
                                                            if p["metadata"]["uid"] in still]
        self.assertGreater(len(again), 10)
        bad = []
        names = [n["metadata"]["name"] for n in state["nodes"]]
        for p in again:
            node = p["spec"]["nodeName"]
            status, reply = d.http.json("POST", "/bind", c.sim.bind_body(p, node),
                                        c.sim.headers["bind"])
            if status != 200 or reply != {"Error": ""}:
                bad.append(f"  {p['metadata']['name']} on {node}: {status} {reply}")
        if bad:
            self.fail("binding an already bound pod again to its node must answer "
                      "{\"Error\":\"\"}:\n" + "\n".join(bad))
        # one of them to another node: an Error (so the check above can tell the two apart)
        p = again[0]
        other = next(n for n in names if n != p["spec"]["nodeName"])
        status, reply = d.http.json("POST", "/bind", c.sim.bind_body(p, other),
                                    c.sim.headers["bind"])
        self.assertEqual(status, 200)
        self.assertTrue(isinstance(reply, dict) and reply.get("Error"),
                        f"binding a bound pod to another node should fail, got {reply}")
        log(f"restart {cycle}: {len(again)} bound pods bound again to their node -> "
            f"{{\"Error\":\"\"}} ({len(unacked)} of them bound by binds in flight at the kill)")
        c.after_step("rebind", f"restart {cycle}: after the idempotent binds", 0.0)


if __name__ == "__main__":
    unittest.main()
