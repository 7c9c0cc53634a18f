#!/usr/bin/env python3
"""cache_rss.py -- the daemon's resident memory once its cache has synced a large cluster.

    python3 bench/scripts/cache_rss.py BINARY [BINARY...] [--nodes 15000] [--runs 2]

Serves the benchmark's generated cluster (bench/gen/gencluster.py: N nodes, 10 pods each)
with bench/scripts/replay_apiserver.py, starts each daemon binary against it in turn, waits
for /readyz to answer 200, waits one more second, and prints its VmRSS. Give two builds to
compare them in one run (e.g. the Release build of two commits). Python 3 standard library.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def topology_kb(url):
    """The cache's own count of the memory its topologies take (gpu_extender_cache_topology_bytes)."""
    try:
        for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
            if line.startswith("gpu_extender_cache_topology_bytes "):
                return "%d" % (float(line.split()[1]) / 1024)
    except OSError:
        pass
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--nodes", type=int, default=15000)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gx-cache-rss-")
    pf = os.path.join(work, "port")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "replay_apiserver.py"),
                               "--nodes", str(a.nodes), "--port-file", pf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not os.path.exists(pf):
            if server.poll() is not None or time.time() > deadline:
                sys.exit("replay_apiserver did not start")
            time.sleep(0.5)
        port = int(open(pf).read())
        kc = os.path.join(work, "kubeconfig")
        with open(kc, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
                    "\"http://127.0.0.1:%d\"}}]\nusers: [{name: u, user: {token: bench-token}}]\n"
                    "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
                    % port)
        print("| binary | sync s | VmRSS kB | topologies kB |\n|---|---:|---:|---:|")
        for _ in range(a.runs):
            for binary in a.binaries:
                pfile = os.path.join(work, "daemon.port")
                if os.path.exists(pfile):
                    os.remove(pfile)
                d = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--port-file", pfile,
                                      "--kubeconfig", kc, "--log-level", "error"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t0 = time.time()
                try:
                    while not os.path.exists(pfile):
                        time.sleep(0.05)
                    url = "http://127.0.0.1:%s/readyz" % open(pfile).read().strip()
                    while True:
                        try:
                            if urllib.request.urlopen(url, timeout=2).status == 200:
                                break
                        except OSError:
                            pass
                        time.sleep(0.2)
                    sync = time.time() - t0
                    time.sleep(1)
                    print("| %s | %.1f | %d | %s |" % (binary, sync, vmrss_kb(d.pid),
                                                       topology_kb(url.replace("/readyz", "/metrics"))), flush=True)
                finally:
                    d.terminate()
                    d.wait()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
