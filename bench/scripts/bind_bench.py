#!/usr/bin/env python3
"""bind_bench.py -- bind throughput and latency against tests/fake_apiserver.py, in one run:

  slow   the daemon with --bind-always-get: GET pod, GET node, POST binding (three calls)
  fast   the daemon as shipped: the cache vouches for the pod, one POST binding
  fake   no daemon: the same number of POST bindings straight to the fake, the fake's own
         ceiling for the calls a bind cannot avoid

Each phase binds its own --pods pending one-GPU pods with --inflight requests in flight (one
keep-alive connection per client thread), and prints binds per second, p50 and p99. The
daemon runs with --bind-workers equal to --inflight.

  python3 bench/scripts/bind_bench.py --daemon build-bench/gpu-extender [--pods 3000]

Python clients and the Python fake share the machine with the daemon: on 2 cores the fake
(one interpreter, one core at most) is the ceiling, which the "fake" row measures.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

NODES = 16


def fixtures(src):
    return os.path.join(src, "tests", "fixtures", "kube-1.26")


def seed(src, path, pods_per_phase, phases):
    node0 = json.load(open(os.path.join(fixtures(src), "apiserver", "list-nodes.200.json")))["items"][0]
    pod0 = json.load(open(os.path.join(fixtures(src), "extender", "raw", "filter.args.nodecache-false.json")))["Pod"]
    nodes, pods = [], []
    for i in range(NODES):
        n = json.loads(json.dumps(node0))
        n["metadata"] = {"name": "bench-node-%d" % i, "labels": n["metadata"]["labels"]}
        n["metadata"]["labels"]["kubernetes.io/hostname"] = n["metadata"]["name"]
        for k in ("allocatable", "capacity"):
            n["status"][k]["nvidia.com/gpu"] = "4096"
            n["status"][k]["pods"] = "10000"
        nodes.append(n)
    for ph in range(phases):
        for i in range(pods_per_phase):
            p = json.loads(json.dumps(pod0))
            name = "bench-%d-%d" % (ph, i)
            p["metadata"] = {"name": name, "namespace": "default", "labels": {},
                             "uid": "00000000-0000-4000-8000-%012d" % (ph * 1000000 + i)}
            p["spec"].pop("nodeName", None)
            p["status"] = {"phase": "Pending"}
            pods.append(p)
    json.dump({"nodes": nodes, "pods": pods}, open(path, "w"))


def wait_file(path, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        if proc.poll() is not None:
            raise SystemExit("%s exited" % proc.args[0])
        time.sleep(0.05)
    raise SystemExit("no port file %s" % path)


def metric(url, name):
    for line in urllib.request.urlopen(url + "/metrics", timeout=10).read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def drive(host, port, path, jobs, inflight, headers, body_of, want):
    """Sends every job, inflight at a time (one connection each); returns (seconds,
    latencies in ms, failures)."""
    lat, bad = [], []
    lock = threading.Lock()
    it = iter(jobs)

    def worker():
        c = http.client.HTTPConnection(host, port, timeout=30)
        mine, errs = [], []
        while True:
            with lock:
                job = next(it, None)
            if job is None:
                break
            body = body_of(job)
            t0 = time.perf_counter()
            c.request("POST", path(job), body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if not want(r.status, data):
                errs.append("%s: %d %s" % (job, r.status, data[:200]))
        c.close()
        with lock:
            lat.extend(mine)
            bad.extend(errs)

    threads = [threading.Thread(target=worker) for _ in range(inflight)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, lat, bad


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemon", required=True, help="the gpu-extender binary")
    ap.add_argument("--src", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ap.add_argument("--pods", type=int, default=3000, help="binds per phase")
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bind-bench.")
    procs = []
    try:
        seed(a.src, os.path.join(work, "seed.json"), a.pods, 3)
        fake = subprocess.Popen([sys.executable, "-S", os.path.join(a.src, "tests", "fake_apiserver.py"),
                                 "--listen", "127.0.0.1:0", "--port-file", os.path.join(work, "fake.port"),
                                 "--token", "t1", "--seed-json", os.path.join(work, "seed.json"),
                                 "--event-window", str(4 * a.pods), "--log", "/dev/null"],
                                stdout=open(os.path.join(work, "fake.out"), "w"), stderr=subprocess.STDOUT)
        procs.append(fake)
        fport = wait_file(os.path.join(work, "fake.port"), fake, 60)
        kc = os.path.join(work, "kubeconfig")
        open(kc, "w").write(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
            "    server: http://127.0.0.1:%d\ncontexts:\n- name: c\n  context:\n    cluster: k\n"
            "    user: u\nusers:\n- name: u\n  user:\n    token: t1\n" % fport)
        rows = []
        for ph, (label, extra) in enumerate((("slow: GET, GET, POST (--bind-always-get)", ["--bind-always-get"]),
                                             ("fast: POST only (the cache vouches)", []))):
            pf = os.path.join(work, "d%d.port" % ph)
            d = subprocess.Popen([a.daemon, "--listen", "127.0.0.1:0", "--port-file", pf, "--kubeconfig", kc,
                                  "--bind-workers", str(a.inflight), "--log-level", "warn"] + extra,
                                 stdout=open(os.path.join(work, "d%d.log" % ph), "w"), stderr=subprocess.STDOUT)
            procs.append(d)
            url = "http://127.0.0.1:%d" % wait_file(pf, d, 30)
            end = time.time() + 120
            while time.time() < end and (metric(url, "gpu_extender_cache_synced") or 0) < 1:
                time.sleep(0.1)
            jobs = ["bench-%d-%d" % (ph, i) for i in range(a.pods)]
            uid = {j: "00000000-0000-4000-8000-%012d" % (ph * 1000000 + i) for i, j in enumerate(jobs)}
            node = {j: "bench-node-%d" % (i % NODES) for i, j in enumerate(jobs)}
            fast0, slow0 = metric(url, "gpu_extender_bind_fast_path_total"), metric(url, "gpu_extender_bind_slow_path_total")
            secs, lat, bad = drive(
                "127.0.0.1", int(url.rsplit(":", 1)[1]), lambda j: "/bind", jobs, a.inflight,
                {"Content-Type": "application/json"},
                lambda j: json.dumps({"PodName": j, "PodNamespace": "default", "PodUID": uid[j], "Node": node[j]}).encode(),
                lambda st, body: st == 200 and json.loads(body).get("Error") == "")
            fast = metric(url, "gpu_extender_bind_fast_path_total") - fast0
            slow = metric(url, "gpu_extender_bind_slow_path_total") - slow0
            rows.append({"phase": label, "binds": len(lat), "failed": len(bad), "per_s": len(lat) / secs,
                         "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "fast": int(fast), "slow": int(slow)})
            for b in bad[:5]:
                print("  failed:", b, file=sys.stderr)
            d.terminate()
            d.wait(10)
        jobs = ["bench-2-%d" % i for i in range(a.pods)]
        cpu0 = cpu_seconds(fake.pid)
        secs, lat, bad = drive(
            "127.0.0.1", fport, lambda j: "/api/v1/namespaces/default/pods/%s/binding" % j, jobs, a.inflight,
            {"Content-Type": "application/json", "Authorization": "Bearer t1"},
            lambda j: json.dumps({"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": j, "namespace": "default"},
                                  "target": {"apiVersion": "v1", "kind": "Node", "name": "bench-node-0"}}).encode(),
            lambda st, body: st == 201)
        fake_cpu_us = (cpu_seconds(fake.pid) - cpu0) * 1e6 / max(1, len(lat))
        rows.append({"phase": "fake alone: POST binding, no daemon", "binds": len(lat), "failed": len(bad),
                     "per_s": len(lat) / secs, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "fast": "", "slow": "",
                     "fake_cpu_us_per_bind": fake_cpu_us})
        print("| %d in flight, %d binds each | binds/s | p50 ms | p99 ms | failed | fast | slow |" % (a.inflight, a.pods))
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print("| %s | %.0f | %.2f | %.2f | %d | %s | %s |" % (r["phase"], r["per_s"], r["p50_ms"], r["p99_ms"],
                                                               r["failed"], r["fast"], r["slow"]))
        print("\nThe fake's own CPU per bind in the last row: %.0f µs (user + system, /proc/PID/stat)." % fake_cpu_us)
        if a.json:
            json.dump(rows, open(a.json, "w"), indent=1)
        return 0 if all(r["failed"] == 0 for r in rows) else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
