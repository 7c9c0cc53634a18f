#!/usr/bin/env python3
"""report.py -- turns bench.py's results.json into results.md and latency.png (gnuplot).

  report.py RESULTS.json OUT_DIR [WORK_DIR]      (bench.py calls write() directly)
"""

import json
import os
import statistics
import subprocess
import sys


def us(v):
    """Microseconds as a short human figure."""
    if v is None:
        return "-"
    if v >= 100000:
        return "%.0f ms" % (v / 1000)
    if v >= 10000:
        return "%.1f ms" % (v / 1000)
    if v >= 1000:
        return "%.2f ms" % (v / 1000)
    return "%.0f µs" % v


def p99_of_runs(s):
    """A wrk series' median p99, with the spread of its runs' p99."""
    return "%s (%s–%s)" % (us(s["p99_us"]), us(s["p99_min_us"]), us(s["p99_max_us"]))


def mb(b):
    return "%.1f" % (b / 1e6)


def table(head, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


def top_of(R, key):
    cg = R.get("callgrind", {}).get(key)
    if not cg or not cg.get("top"):
        return ""
    return " Where the instructions go (callgrind, self cost): %s." % ", ".join(
        "%s %.0f%%" % (t["fn"], t["pct"]) for t in cg["top"][:6])


def full_split(R, m):
    """Where the HTTP part of the 1,000-node full-Nodes filter goes, from the same run: taking the
    body in (the same body with a pod that fits no node, whose reply is small, minus the work)
    and sending the passing nodes back (the real reply minus that)."""
    f = R["full"]["1000"]
    nf = f.get("filter_nofit", {}).get("summary")
    if not nf:
        return ""
    ours, nofit = f["filter"]["summary"]["p50_us"], nf["p50_us"]
    work = statistics.median(m["total_ns"]) / 1000
    return ("The same body with a pod that fits no node (a %.0f KB reply instead of %.1f MB) takes %s at p50, so "
            "sending the passing nodes back costs %s and taking the body in %s beyond the work; the floor server "
            "takes the same body in within %s. libmicrohttpd reads a body 16 KiB at a time, half its 32 KiB "
            "connection pool, with a poll() before each read (counted by hand with strace -c over one request: "
            "about 800 of each). A larger pool would cut that (by hand, four interleaved wrk runs: the p50 of a pod "
            "that fits no node 11.0 ms with a 256 KiB pool against 13.3 ms with 32 KiB), but every open connection "
            "may fill its pool with headers "
            "(README, Hardening), and libmicrohttpd 0.9.75 zeroes its whole pool at the end of every request, "
            "which small requests would then pay eight times over." % (
                R.get("full_nofit_reply_bytes", 0) / 1e3, m["reply_bytes"] / 1e6, us(nofit), us(ours - nofit),
                us(nofit - work), us(f["floor"]["summary"]["p50_us"]))) + floor_echo(R)


def echo_summary(R):
    """The summary of the floor server answering the 1,000-node body with a reply as long as ours."""
    return R["full"]["1000"].get("floor_echo", {}).get("summary")


def echo_over(R, goal_us):
    """A sentence when even the floor of the full-Nodes exchange is over a p99 goal."""
    e = echo_summary(R)
    if not e or e["p99_us"] <= goal_us:
        return ""
    return " The floor's p99 (%s) is itself over %s, so no server meets this goal here." % (
        us(e["p99_us"]), us(goal_us))


def echo_budget(R, budget_us, work_us):
    """Whether the floor's HTTP plus our work would fit a p50 budget: which of the two stands in
    the way."""
    e = echo_summary(R)
    if not e:
        return ""
    both = e["p50_us"] + work_us
    if e["p50_us"] >= budget_us:
        return " The floor's p50 (%s) alone is over that, so no server meets this goal here." % us(e["p50_us"])
    if both > budget_us:
        return (" The floor's p50 (%s) plus our work (%s) is %s, over that too: both the work and the HTTP "
                "library stand in the way." % (us(e["p50_us"]), us(work_us), us(both)))
    return (" The floor's p50 (%s) plus our work (%s) is %s, within it: what stands in the way is how "
            "libmicrohttpd takes the body in and sends the reply, %s above the floor." % (
                us(e["p50_us"]), us(work_us), us(both), us(R["full"]["1000"]["filter"]["summary"]["p50_us"] - both)))


def floor_echo(R):
    """What the whole 1,000-node full-Nodes exchange costs a server that does nothing."""
    e = echo_summary(R)
    if not e:
        return ""
    return (" The floor server answering the same body with as many bytes as our filter sends back (%.1f MB), "
            "and doing nothing else, takes p50 %s and p99 %s: that much any server pays on this machine, "
            "wrk's reading of the reply included." % (
                R.get("full_reply_bytes", 0) / 1e6, us(e["p50_us"]), us(e["p99_us"])))


def why_fail(R, t):
    """A plain reason for a failed target, from the figures of the same run."""
    try:
        return _why_fail(R, t)
    except (KeyError, TypeError, ZeroDivisionError, statistics.StatisticsError):
        return "not measured in this run, or see the tables below."


def _why_fail(R, t):
    name = t["target"]
    micro = {(m["mode"], m["verb"], m["nodes"]): m for m in R.get("micro", []) if not m.get("after_event")}
    if name.startswith("NodeNames, 5,000"):
        verb = "prioritize" if "prioritize" in name else "filter"
        m = micro.get(("names", verb, 5000))
        fl = R["names"]["5000"]["floor"]["summary"]
        cg = R.get("callgrind", {}).get("%s names 5000" % verb)
        if m:
            tot = statistics.median(m["total_ns"]) / 1000
            dec = statistics.median(m["decode_ns"]) / 1000
            top = ""
            if cg and cg.get("top"):
                top = " Where the instructions go (callgrind, self cost): %s." % ", ".join(
                    "%s %.0f%%" % (t["fn"], t["pct"]) for t in cg["top"][:6])
            s = R["names"]["5000"][verb]["summary"]
            if fl["p99_us"] > 250:
                return ("This machine's loopback alone is over the goal: the floor server, which does nothing "
                        "with the same body, has a p99 of %s in this run (p50 %s), so no server can have a p99 of "
                        "250 µs here. Our own work is %.0f µs in-process (%.0f ns per node; decoding the names %.0f "
                        "µs). Our p50 is %s: %s above the floor's, of which the in-process work is %.0f µs; the "
                        "rest is moving the reply (%.0f KB, where the floor answers 2 bytes) and libmicrohttpd "
                        "reading the %.0f KB body through its 32 KiB connection buffer.%s" % (
                            us(fl["p99_us"]), us(fl["p50_us"]), tot, tot * 1000 / 5000, dec, us(s["p50_us"]),
                            us(s["p50_us"] - fl["p50_us"]), tot, m["reply_bytes"] / 1024,
                            m["body_bytes"] / 1024, top))
            return ("The work itself is over budget: without any socket, one %s of 5,000 names takes %.0f µs "
                    "in-process (decoding the names %.0f µs, deciding and encoding %.0f µs, %.0f ns per node%s), "
                    "before the loopback round trip of the same body (floor p50 %s, p99 %s) is added.%s" % (
                        verb, tot, dec, tot - dec, tot * 1000 / 5000,
                        ", %.0f instructions per node" % (cg["ir_per_call"] / 5000) if cg else "",
                        us(fl["p50_us"]), us(fl["p99_us"]), top))
    if name.startswith("Full Nodes, 1,000 nodes: faster"):
        m = micro.get(("full", "filter", 1000))
        f = R["full"]["1000"]
        if m:
            ours = f["filter"]["summary"]["p50_us"]
            go = f["go_filter"]["summary"]["p50_us"]
            work = statistics.median(m["total_ns"]) / 1000
            return ("Round trip, our p50 is %s and Go's (encoding/json, decoding the body and re-encoding the "
                    "passing nodes) %s: %.1fx. Of our %s, the work is %s (in-process, decode %s); the other %s is "
                    "HTTP, which both servers pay. %s 15x needs our round trip within %s, and with no work at "
                    "all it would still take %s." % (
                        us(ours), us(go), go / ours, us(ours), us(work),
                        us(statistics.median(m["decode_ns"]) / 1000), us(ours - work), full_split(R, m),
                        us(go / 15), us(ours - work))) + echo_budget(R, go / 15, work)
    if name.startswith("Full Nodes, 1,000 nodes (") and "p99" in name:
        m = micro.get(("full", "filter", 1000))
        f = R["full"]["1000"]
        if m:
            ours = f["filter"]["summary"]["p50_us"]
            work = statistics.median(m["total_ns"]) / 1000
            return ("In-process, the filter of this %.1f MB body takes %s at best (%s median; decode alone %s at "
                    "best, about %.0f MB/s). Our round trip: p50 %s, p99 %s. %s With no work at all the p50 "
                    "would still be %s." % (
                        m["body_bytes"] / 1e6, us(min(m["total_ns"]) / 1000), us(work),
                        us(min(m["decode_ns"]) / 1000), m["body_bytes"] / (min(m["decode_ns"]) / 1e9) / 1e6,
                        us(ours), us(f["filter"]["summary"]["p99_us"]), full_split(R, m),
                        us(ours - work))) + echo_over(R, 10000) + top_of(R, "filter full 1000")
    if name.startswith("16 connections"):
        c = R["names"]["c16"]
        m = micro.get(("names", "filter", 3))
        return ("gpu-extender's own /healthz, which does no work, reaches %.0f req/s, %.0f%% of the floor "
                "server's %.0f req/s with the same wrk on the same %d cores: the HTTP layer costs little. What "
                "the filter adds is the request itself: %s in-process for this 3-node request (median), almost "
                "all of it decoding and validating the captured Pod's 3 KB (its managedFields included), which "
                "on 2 cores shared with wrk is %.0f%% of the time a request may take at 90%% of the floor's "
                "rate." % (
                    c["healthz"]["summary"]["rps"], 100 * c["healthz"]["summary"]["rps"] / c["floor"]["summary"]["rps"],
                    c["floor"]["summary"]["rps"], R["env"]["cores"],
                    us(statistics.median(m["total_ns"]) / 1000) if m else "?",
                    100 * (statistics.median(m["total_ns"]) / 1e9) / (R["env"]["cores"] / (0.9 * c["floor"]["summary"]["rps"]))
                    if m else 0))
    if name.startswith("In-process, 5,000 names"):
        verb = "prioritize" if "prioritize" in name else "filter"
        m = micro.get(("names", verb, 5000))
        cg = R.get("callgrind", {}).get("%s names 5000" % verb)
        if m:
            t = sorted(m["total_ns"])
            meds = m.get("process_medians_ns") or [statistics.median(t)]
            return ("The median of %d processes' medians is %.1f ns per node (the processes: %s; of all %d calls, "
                    "fastest %.1f, slowest %.1f): this machine's speed moves between processes and runs by more "
                    "than the margin (the figure is the wall clock of a 2-core virtual machine). Callgrind's %s "
                    "instructions per node are the repeatable figure; where they go: %s." % (
                        len(meds), statistics.median(meds) / 5000, ", ".join("%.1f" % (x / 5000) for x in meds),
                        len(t), t[0] / 5000, t[-1] / 5000,
                        "{:,}".format(cg["ir_per_call"] // 5000) if cg else "?",
                        ", ".join("%s %.0f%%" % (x["fn"], x["pct"]) for x in (cg or {}).get("top", [])[:6])))
        return "See the micro-benchmark table: the per-node cost of this verb in this run."
    if name.startswith("NodeNames, 15,000"):
        verb = "prioritize" if "prioritize" in name else "filter"
        m = micro.get(("names", verb, 15000))
        fl = R["names"]["5000"]["floor"]["summary"]
        s = R["cache"]["names_latency"]["15000"][verb]["summary"]
        if m:
            t = statistics.median(m["total_ns"]) / 1000
            return ("In-process, one %s of 15,000 names takes %s (median; decoding the names %s) against the "
                    "15,000-node cache, %s; the round trip (p50 %s) adds moving a 258 KB body and a %.0f KB reply "
                    "over loopback, and p99 holds this machine's stalls: the floor server's p99 with a 5,000-name "
                    "body is already %s in this run." % (
                        verb, us(t), us(statistics.median(m["decode_ns"]) / 1000),
                        "within the 1 ms" if t <= 1000 else "itself over the 1 ms in this run (%.0f ns per node)" % (
                            t * 1000 / 15000), us(s["p50_us"]), m["reply_bytes"] / 1024, us(fl["p99_us"])))
    if name.startswith("Bind: binds per second"):
        rows = R["bind"]["rows"]
        fake = next((y for y in rows if y["phase"].startswith("fake")), None)
        fast = next((y for y in rows if y["phase"].startswith("fast")), None)
        return ("Every bind must POST a Binding to the API server, and the fake API server (one Python "
                "interpreter, at most one of the %d cores, shared with the daemon and the 16 Python client "
                "threads) takes only %.0f such POSTs per second with no daemon in front of it at all: that is "
                "the ceiling of this setup, and through the daemon binds reached %.0f%% of it in this run (each "
                "bind one POST; the old three-call path reached %.0f%%). A faster fake, or a real API server on a "
                "machine with more cores, is what it takes to show 1,000 binds a second here." % (
                    R["env"]["cores"], fake["per_s"] if fake else 0,
                    100 * fast["per_s"] / fake["per_s"] if fake and fast else 0,
                    100 * next((y["per_s"] for y in rows if y["phase"].startswith("slow")), 0) / fake["per_s"]
                    if fake else 0))
    if name.startswith("Cache: first filter"):
        ev = next((m for m in R.get("micro", []) if m.get("after_event")), None)
        if ev:
            t = statistics.median(ev.get("process_medians_ns") or [statistics.median(ev["total_ns"])]) / 1000
            q = statistics.median(ev.get("process_quiet_medians_ns") or
                                  [statistics.median(ev.get("quiet_ns") or [0])]) / 1000
            base = micro.get(("names", "filter", 5000))
            b = statistics.median(base.get("process_medians_ns") or [statistics.median(base["total_ns"])]) / 1000 \
                if base else 0
            return ("After an event the snapshot is patched, not rebuilt: the call after an event takes %.0f µs "
                    "and the same call without one, interleaved in the same processes, %.0f µs, so the event "
                    "costs %s (medians of the processes' medians). The quiet call itself took %.0f µs here "
                    "against %.0f µs in the micro-benchmark of the same request earlier in this run: this 2-core "
                    "virtual machine runs some processes markedly slower than others. The event's own cost is the "
                    "repeatable "
                    "part: about 0.1 M instructions (callgrind, `bench_extender --callgrind 6 --after-event`)." % (
                        t, q, "%.0f µs" % (t - q) if t >= q else "nothing measurable (%.0f µs)" % (t - q), q, b))
        return "See the micro-benchmark table."
    if name.startswith("Cache: resident"):
        rc = R["cache"]
        sh0 = rc.get("shared_topology_rss_kb")
        if sh0 and sh0 / 1024 <= 60:
            return ("%.0f MB of the %.0f MB are per-node topology tables (%.1f KB per node): every node's "
                    "gpu-extender.io/topology annotation names its own GPU UUIDs, as real nodes do, so each node "
                    "keeps its own part. The same cluster with one annotation text per GPU model takes %.1f MB, "
                    "within the target: what stands in the way is per-node topology memory, which would need the "
                    "UUIDs kept apart from the shared link tables more tightly than now." % (
                        (rc["rss_kb_synced"] - sh0) / 1024, rc["rss_kb_synced"] / 1024,
                        (rc["rss_kb_synced"] - sh0) / rc["nodes"], sh0 / 1024))
        sh = rc.get("shared_topology_rss_kb")
        if sh:
            return ("%.0f MB of the %.0f MB are per-node topology tables (%.1f KB per node): every node's "
                    "gpu-extender.io/topology annotation names its own GPU UUIDs, as real nodes do, so topologies "
                    "interned by their annotation text are never shared. The same cluster with one annotation "
                    "text per GPU model needs %.1f MB." % (
                        (rc["rss_kb_synced"] - sh) / 1024, rc["rss_kb_synced"] / 1024,
                        (rc["rss_kb_synced"] - sh) / rc["nodes"], sh / 1024))
        return "See the cache section for VmRSS after the list and after the events."
    return "See the tables below."


def plot(R, out_dir, work):
    """latency.png: p50 latency against node count, log-log."""
    series = []

    def pts(name, points):
        points = sorted((n, v) for n, v in points if v)
        if points:
            series.append((name, points))

    full = R.get("full", {})

    def full_pts(key):
        p = []
        for n, row in full.items():
            if not n.isdigit() or key not in row:
                continue
            v = row[key].get("summary", {}).get("p50_us") if "summary" in row[key] else row[key].get("median_us")
            p.append((int(n), v))
        return p

    names = R.get("names", {})
    cache_lat = R.get("cache", {}).get("names_latency", {})

    def names_pts(verb):
        p = [(int(n), row[verb]["summary"]["p50_us"]) for n, row in names.items() if n.isdigit()]
        p += [(int(n), row[verb]["summary"]["p50_us"]) for n, row in cache_lat.items()]
        return p

    pts("gpu-extender, full Nodes, filter", full_pts("filter"))
    pts("Go baseline, full Nodes, filter", full_pts("go_filter"))
    pts("gpu-extender, full Nodes, prioritize", full_pts("prioritize"))
    pts("loopback floor, same full body", full_pts("floor"))
    pts("gpu-extender, NodeNames, filter", names_pts("filter"))
    pts("gpu-extender, NodeNames, prioritize", names_pts("prioritize"))
    pts("loopback floor, same NodeNames body",
        [(int(n), row["floor"]["summary"]["p50_us"]) for n, row in names.items() if n.isdigit()])
    if not series:
        return None
    lines = []
    for i, (name, p) in enumerate(series):
        f = os.path.join(work, "plot-%d.dat" % i)
        with open(f, "w") as fh:
            for n, v in p:
                fh.write("%d %.6f\n" % (n, v / 1000.0))
        dash = " dt 2" if "floor" in name else ""
        lines.append("'%s' using 1:2 with linespoints lw 2 pt %d%s title '%s'" % (f, 5 + i, dash, name))
    png = os.path.join(out_dir, "latency.png")
    gp = os.path.join(work, "latency.gp")
    with open(gp, "w") as fh:
        fh.write("""set terminal pngcairo size 1000,640 font 'DejaVu Sans,10'
set output '%s'
set title "gpu-extender vs Go baseline: median round-trip latency over loopback (1 keep-alive connection)\\n%s, %s cores, commit %s"
set logscale xy
set xlabel 'nodes in the request'
set ylabel 'latency p50 (ms, log scale)'
set grid xtics ytics mytics
set key top left
set xrange [80:20000]
set format y '%%g'
plot %s
""" % (png, R["env"]["cpu"], R["env"]["cores"], R["env"]["commit"], ", \\\n     ".join(lines)))
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot failed: %s\n" % r.stderr)
        return None
    return png


def write(R, out_dir, work):
    os.makedirs(out_dir, exist_ok=True)
    png = plot(R, out_dir, work)
    e = R["env"]
    L = []
    L.append("# gpu-extender benchmark results\n")
    L.append("Written by `sh bench/run.sh` on %s in %.0f s. Every figure below comes from this one run on this "
             "one machine; ratios compare runs interleaved within it. `bench/README.md` says how each figure is "
             "taken and how to read it.\n" % (e["date"], R.get("seconds", 0)))
    L.append(table(["machine", ""], [
        ["CPU", e["cpu"]], ["cores", e["cores"]], ["memory", "%s GiB" % e["memory_gib"]],
        ["kernel", e["kernel"]], ["OS", e["os"]],
        ["gpu-extender", "%s (git commit %s, Release build)" % (e["daemon"], e["commit"])],
        ["gcc", e["gcc"]], ["Go", e["go"]], ["wrk", e["wrk"]], ["libmicrohttpd", e["libmicrohttpd"]],
        ["valgrind", e["valgrind"]], ["Python", e["python"]]], ["---", "---"]))
    L.append("\n## Targets\n")
    rows = [[t["target"], t["goal"], t["measured"], "**PASS**" if t["pass"] else "**FAIL**"] for t in R["targets"]]
    L.append(table(["target", "goal", "measured", "result"], rows, ["---", "---", "---", "---"]))
    busy = [r for r in R.get("load", []) if r["others_pct"] > 5 and not r["phase"].startswith(("generate", "fake", "callgrind"))]
    if busy:
        L.append("\n**This machine was shared during the run**: other processes used %s of the CPU during timing "
                 "phases (see \"Background load\" below), so latencies and rates here are pessimistic; "
                 "instruction counts are not affected.\n" % ", ".join("%.0f%% (%s)" % (r["others_pct"], r["phase"])
                                                                      for r in busy))
    fails = [t for t in R["targets"] if not t["pass"]]
    if fails:
        L.append("\nWhy each FAIL fails:\n")
        for t in fails:
            L.append("- **%s**: %s" % (t["target"], why_fail(R, t)))
    if png:
        L.append("\n![latency against node count](latency.png)\n")
        L.append("Full-Nodes points up to 1,000 nodes are wrk medians; 5,000 and 15,000 are curl medians (a new "
                 "connection per request, a few requests). NodeNames points at 750 and 15,000 come from the "
                 "15,000-node cache, the others from the 5,000-node cache synced from tests/fake_apiserver.py.\n")

    d = R["data"]
    L.append("\n## Data\n")
    L.append("Generated by `bench/gen/gencluster.py` (deterministic; seed `%s`) into a temporary directory. "
             "Nodes average %s bytes (%d labels on a GPU node, %d images, managedFields, the "
             "`gpu-extender.io/topology` annotation); %d pods per node (2 DaemonSet pods without GPUs, the "
             "Running GPU pods that fill the node as planned, and finished GPU jobs). The pod being scheduled "
             "asks 2 GPUs and prefers H100, then A100. Models: %s.\n" % (
                 d["seed"], "{:,}".format(d["mean_node_bytes"]), d["labels_per_gpu_node"], d["images_per_node"],
                 d["pods_per_node"], ", ".join("%s %d" % kv for kv in d["models"].items())))
    L.append("kube-scheduler sends the extender only `numFeasibleNodesToFind` nodes: with the default "
             "`percentageOfNodesToScore` (adaptive: max(5, 50 - nodes/125) percent, at least 100 nodes):\n")
    L.append(table(["cluster nodes", "nodes per request", "full-Nodes body", "NodeNames body"], [
        ["{:,}".format(int(n)), "{:,}".format(k), "%s MB" % mb(d["sizes"][str(k)]["full_bytes"]),
         "%s KB" % ("%.1f" % (d["sizes"][str(k)]["names_bytes"] / 1e3))]
        for n, k in d["nodes_to_score"].items()]))

    # NodeNames HTTP
    nm = R.get("names")
    if nm:
        L.append("\n## HTTP, NodeNames mode (nodeCacheCapable: true), one keep-alive connection\n")
        fs = R["fake_sync"]
        L.append("The daemon's cache was synced from `tests/fake_apiserver.py` seeded with %s nodes and %s pods "
                 "(%s GPU pods cached). wrk, %d runs of %d s per row, interleaved; p50 and p99 are medians over "
                 "the runs, with the spread of p99. The floor is `bench/floor_server` answering `{}` to the same "
                 "body; overhead = our p50 minus the floor's.\n" % (
                     "{:,}".format(R["names_nodes"]), "{:,}".format(R["names_nodes"] * d["pods_per_node"]),
                     "{:,}".format((fs.get("cache") or {}).get("gpuPods", 0)), R["runs"], R["dur"]))
        rows = []
        for n in sorted((k for k in nm if k.isdigit()), key=int):
            fl = nm[n]["floor"]["summary"]
            for verb in ("filter", "prioritize"):
                s = nm[n][verb]["summary"]
                rows.append(["{:,}".format(int(n)), verb, us(s["p50_us"]),
                             p99_of_runs(s),
                             "%s / %s" % (us(fl["p50_us"]), us(fl["p99_us"])), us(s["p50_us"] - fl["p50_us"]),
                             "{:,.0f}".format(s["rps"])])
        for n, row in sorted(R.get("cache", {}).get("names_latency", {}).items(), key=lambda kv: int(kv[0])):
            for verb in ("filter", "prioritize"):
                s = row[verb]["summary"]
                rows.append(["{:,} (15k cache)".format(int(n)), verb, us(s["p50_us"]),
                             p99_of_runs(s),
                             "-", "-", "{:,.0f}".format(s["rps"])])
        L.append(table(["nodes", "verb", "p50", "p99 (runs)", "floor p50 / p99", "overhead p50", "req/s"], rows))
        g = nm["get"]
        L.append("\nEmpty request: `GET /healthz` on gpu-extender p50 %s, p99 %s; on the floor server p50 %s, p99 %s.\n"
                 % (us(g["healthz"]["summary"]["p50_us"]), us(g["healthz"]["summary"]["p99_us"]),
                    us(g["floor_get"]["summary"]["p50_us"]), us(g["floor_get"]["summary"]["p99_us"])))
        c = nm["c16"]
        L.append("\n## HTTP, 16 connections (wrk -t2 -c16)\n")
        L.append(table(["request", "req/s", "p50", "p99"], [
            ["gpu-extender filter, NodeNames, 3 nodes (%.1f KB)" % (d["sizes"]["3"]["names_bytes"] / 1e3),
             "{:,.0f}".format(c["filter"]["summary"]["rps"]), us(c["filter"]["summary"]["p50_us"]),
             us(c["filter"]["summary"]["p99_us"])],
            ["gpu-extender GET /healthz", "{:,.0f}".format(c["healthz"]["summary"]["rps"]),
             us(c["healthz"]["summary"]["p50_us"]), us(c["healthz"]["summary"]["p99_us"])],
            ["floor server, same filter body", "{:,.0f}".format(c["floor"]["summary"]["rps"]),
             us(c["floor"]["summary"]["p50_us"]), us(c["floor"]["summary"]["p99_us"])]]))

    full = R.get("full")
    if full:
        L.append("\n## HTTP, full-Nodes mode (nodeCacheCapable: false), standalone daemon\n")
        L.append("Filter echoes the passing Node objects. The Go baseline (`bench/go`, encoding/json into "
                 "Kubernetes-shaped structs) runs in the same loop, interleaved; the ratio is Go p50 / our p50 "
                 "per run, median over runs. The row of a pod that fits no node sends the same 1,000-node body "
                 "with the pod's GPU request raised to 4096: every node fails, so the reply is the failure map "
                 "alone, which separates taking the body in from sending the passing nodes back. The floor "
                 "server's row answers the same body with a JSON body as long as our filter's reply "
                 "(`floor_server --reply-bytes`): the floor of the whole exchange. 5,000 and "
                 "15,000 nodes: curl, a few requests each.\n")
        rows = []
        for n in sorted((k for k in full if k.isdigit()), key=int):
            row = full[n]
            size = d["sizes"][n]["full_bytes"]
            if "summary" in row.get("filter", {}):
                s, g, fl = row["filter"]["summary"], row["go_filter"]["summary"], row["floor"]["summary"]
                rows.append(["{:,}".format(int(n)), mb(size), "filter (wrk)", us(s["p50_us"]),
                             p99_of_runs(s),
                             "%s / %s" % (us(g["p50_us"]), us(g["p99_us"])),
                             "%.1fx" % row["go_ratio_p50"]["median"], us(fl["p50_us"])])
                s, g = row["prioritize"]["summary"], row["go_prioritize"]["summary"]
                rows.append(["{:,}".format(int(n)), mb(size), "prioritize (wrk)", us(s["p50_us"]),
                             p99_of_runs(s),
                             "%s / %s" % (us(g["p50_us"]), us(g["p99_us"])),
                             "%.1fx" % (g["p50_us"] / s["p50_us"]), "-"])
                if "filter_nofit" in row:
                    s = row["filter_nofit"]["summary"]
                    rows.append(["{:,}".format(int(n)), mb(size), "filter, a pod that fits no node (wrk)",
                                 us(s["p50_us"]),
                                 p99_of_runs(s),
                                 "-", "-", "-"])
                if "floor_echo" in row:
                    s = row["floor_echo"]["summary"]
                    rows.append(["{:,}".format(int(n)), mb(size),
                                 "floor server, a reply as long as our filter's (wrk)", "-", "-", "-", "-",
                                 "%s (p99 %s)" % (us(s["p50_us"]), p99_of_runs(s))])
            else:
                o = row.get("filter", {}).get("median_us")
                g = row.get("go_filter", {}).get("median_us")
                rows.append(["{:,}".format(int(n)), mb(size), "filter (curl, %d + %d requests)" % (
                    len(row.get("filter", {}).get("curl_us", [])), len(row.get("go_filter", {}).get("curl_us", []))),
                    us(o), "-", us(g), "%.1fx" % (g / o) if o and g else "-",
                    us(row.get("floor", {}).get("median_us"))])
        L.append(table(["nodes", "body MB", "verb", "ours p50", "ours p99 (runs)", "Go p50 / p99",
                        "Go / ours", "floor p50"], rows))

    b = R.get("big")
    if b:
        L.append("\n## 15,000 nodes in one full-Nodes request\n")
        L.append("A daemon started for this alone (VmHWM %s kB before the request) answered the %.1f MB body "
                 "%s: every node appears once in the echoed Nodes, FailedNodes or FailedAndUnresolvableNodes. "
                 "Peak resident memory (VmHWM) afterwards: %.1f MB, **%.2f times the body**. The daemon's "
                 "`--max-body-bytes` default is 268435456 (256 MiB), so this body is accepted; a cluster "
                 "past ~20,000 such nodes would get 413 unless it is raised.\n" % (
                     "{:,}".format(b["hwm_kb_start"] or 0), b["body_bytes"] / 1e6,
                     "correctly" if b["ok"] else "WRONGLY", b["hwm_kb"] / 1024, b["ratio"]))

    micro = R.get("micro")
    if micro:
        cg = R.get("callgrind", {})
        L.append("\n## Micro-benchmarks (no sockets)\n")
        L.append("`bench/bench_extender`: routes_handle() on the same request bodies, as an HTTP thread runs it "
                 "(decode, decide, encode), and codec_decode_args() alone. Median of the runs, with min–max. "
                 "NodeNames rows run against a cache of 15,000 nodes and 150,000 pods. Instructions: callgrind, "
                 "exactly one call of routes_handle() (repeatable; the regression figure). Decide+encode: the "
                 "fastest whole call minus the fastest decode. Arena: the request's memory besides its body. "
                 "Peak RSS (full-Nodes): the process, body included.\n")
        rows = []
        for m in sorted(micro, key=lambda m: (m["mode"], m["verb"], m["nodes"], m.get("after_event", False))):
            tot = sorted(m["total_ns"])
            dec = statistics.median(m["decode_ns"])
            t = statistics.median(tot)
            rest = max(0, tot[0] - min(m["decode_ns"]))  # fastest whole call minus fastest decode
            c = None if m.get("after_event") else cg.get("%s %s %d" % (m["verb"], m["mode"], m["nodes"]))
            rows.append([m["mode"], m["verb"] + (" (after one watch event)" if m.get("after_event") else ""),
                         "{:,}".format(m["nodes"]),
                         "%.3f" % (m["body_bytes"] / 1e6), us(t / 1000),
                         "%s–%s" % (us(tot[0] / 1000), us(tot[-1] / 1000)), "%.0f" % (t / m["nodes"]),
                         us(dec / 1000), us(rest / 1000), "%.0f" % (m["arena_bytes"] / 1024),
                         "%.0f" % (m["maxrss_kb"] / 1024) if m["mode"] == "full" else "-",
                         "{:,}".format(c["ir_per_call"]) if c else "-",
                         "{:,.0f}".format(c["ir_per_call"] / m["nodes"]) if c else "-"])
        L.append(table(["mode", "verb", "nodes", "body MB", "median", "min–max", "ns/node", "decode",
                        "decide+encode (min)", "arena KB", "peak RSS MB", "instructions/call", "instr./node"],
                       rows, ["---", "---"] + ["---:"] * 11))

    bd = R.get("bind")
    if bd:
        L.append("\n## Bind (bench/scripts/bind_bench.py)\n")
        L.append("The daemon binds pending one-GPU pods through tests/fake_apiserver.py, 16 binds in flight "
                 "(16 client threads, one keep-alive connection each, `--bind-workers 16`). The slow row forces "
                 "the three calls of the old path (`--bind-always-get`); the fast row is the daemon as shipped; "
                 "the last row POSTs the same Bindings straight to the fake, with no daemon: the ceiling of this "
                 "setup. Fast and slow: the daemon's own counters of binds on each path.\n")
        L.append(bd["table"].strip() + "\n")

    topo = R.get("topology", {})
    L.append("\n## Topology set selection (bench/bench_topology)\n")
    if topo.get("present"):
        L.append("Output of `bench_topology` (exit %d, %.1f s):\n" % (topo["rc"], topo["seconds"]))
        L.append(topo["stdout"].strip() + "\n")
    else:
        L.append("**Missing**: %s.\n" % ("bench/bench_topology.c exists but this build has no bench_topology "
                                         "target" if topo.get("source_exists") else
                                         "there is no bench/bench_topology.c in this checkout"))

    rc = R.get("cache")
    L.append("\n## Cluster cache\n")
    fs = R.get("fake_sync")
    if fs:
        fe = R.get("fake_events", {})
        L.append("**tests/fake_apiserver.py** (%s nodes, %s pods; it took %.0f s to load its seed): the daemon "
                 "listed and synced %s objects in %.1f s (%s objects/s), VmRSS %.1f MB after the sync. Watch events "
                 "through its API: %s PATCHes of pod labels from 4 client threads in %.1f s = **%s events/s, "
                 "limited by the fake server** (Python, one lock, every object re-encoded per request); the daemon "
                 "had applied all of them %s ms after the last PATCH was answered.\n" % (
                     "{:,}".format(R["names_nodes"]), "{:,}".format(R["names_nodes"] * d["pods_per_node"]),
                     R.get("fake_load_s", 0), "{:,}".format(fs["objects"]), fs["seconds"],
                     "{:,}".format(fs["per_s"]), (fs["rss_kb"] or 0) / 1024, "{:,}".format(fe.get("patches", 0)),
                     fe.get("write_s", 0), "{:,}".format(fe.get("patch_per_s", 0)), fe.get("lag_ms")))
    if rc:
        w = rc["watch"]
        L.append("**bench/scripts/replay_apiserver.py** (the same generated objects, JSON encoded once at start, so "
                 "the server is not the limit):\n")
        L.append(table(["figure", "value"], [
            ["nodes / pods in the cluster", "{:,} / {:,} ({:,} GPU pods cached)".format(
                rc["nodes"], rc["pods"], (rc.get("cache") or {}).get("gpuPods", 0))],
            ["list + sync (limit=500 pages)", "%.2f s, %s objects/s" % (rc["sync_s"],
                                                                      "{:,}".format(rc["list_objects_per_s"]))],
            ["VmRSS after the sync", "%.1f MB" % (rc["rss_kb_synced"] / 1024)],
            ["VmRSS 1 s later", "%.1f MB" % (rc["rss_kb_idle"] / 1024)],
            ["watch: MODIFIED pod events in one burst", "{:,} ({:.0f} MB)".format(w["events"], w["bytes"] / 1e6)],
            ["watch: ingested (gpu_extender_cache_events_total)", "%s s, **%s events/s**" % (
                w["seconds"], "{:,}".format(w["events_per_s"] or 0))],
            ["watch: the server finished writing after", "%s s" % w["server_written_s"]],
            ["watch: the same burst into curl > /dev/null", "%s s (%s events/s): the source's own limit" % (
                w.get("server_alone_s"), "{:,}".format(w.get("server_alone_events_per_s") or 0))],
            ["VmRSS after the events", "%.1f MB" % (rc["rss_kb_after_events"] / 1024)],
            ["VmHWM (peak) over the whole phase", "%.1f MB" % (rc["hwm_kb"] / 1024)],
            ["VmRSS, same cluster but one topology text per GPU model (an experiment)",
             "%.1f MB: per-node topologies cost %.1f MB, %.1f KB per node" % (
                 rc["shared_topology_rss_kb"] / 1024, (rc["rss_kb_synced"] - rc["shared_topology_rss_kb"]) / 1024,
                 (rc["rss_kb_synced"] - rc["shared_topology_rss_kb"]) / rc["nodes"])
             if rc.get("shared_topology_rss_kb") else "-"]], ["---", "---"]))
        cg = R.get("callgrind", {})
        first = cg.get("filter names 100", {}).get("ir_all_calls")
        if first and len(first) > 1:
            L.append("\nThe first NodeNames call builds the snapshot it reads node by node: in the callgrind run "
                     "(5,000 cached nodes) the first filter of 100 names cost %s instructions, the next %s, about "
                     "%s instructions per cached node. A snapshot is built that way only at start and when nodes "
                     "come or go; after a pod event the next request rebuilds only the nodes it touched (the "
                     "\"after one watch event\" row of the micro-benchmarks).\n" % (
                         "{:,}".format(first[0]), "{:,}".format(first[-1]),
                         "{:,.0f}".format((first[0] - first[-1]) / 5000)))

    load = R.get("load", [])
    if load:
        L.append("\n## Background load during the run\n")
        L.append("CPU used by processes that are not this run's (the machine may be shared), per phase, as a share "
                 "of all cores. Above a few percent, timings of that phase are disturbed; instruction counts are "
                 "not.\n")
        L.append(table(["phase", "seconds", "others' CPU", "stolen by the hypervisor", "busiest others (CPU s)"], [
            [r["phase"], r["wall_s"], "%.1f%%" % r["others_pct"], "%.1f%%" % r.get("steal_pct", 0),
             ", ".join("%s %.1f" % (k, v) for v, k in r["top"]) or "-"] for r in load],
            ["---", "---:", "---:", "---:", "---"]))

    checks = R.get("checks", [])
    bad = [c for c in checks if not c["ok"]]
    L.append("\n## Answer checks\n")
    L.append("%d answers checked (every node accounted for once; passing counts as the generator predicts)%s.\n" % (
        len(checks), ": all correct" if not bad else "; **%d wrong**" % len(bad)))
    for c in bad:
        L.append("- %s: %s" % (c["what"], c["detail"]))
    if R.get("notes"):
        L.append("\n## Notes from this run\n")
        for n in R["notes"]:
            L.append("- " + n)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        res = json.load(fh)
    write(res, sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else sys.argv[2])
