#!/usr/bin/env python3
"""sim_seeds.py -- the simulator's placement figures over many seeds, as one table.

    python3 bench/scripts/sim_seeds.py --bin build/gpu-extender --traces ../shared/traces/openb \\
        [--seeds 30] [--out bench/results/sim/seeds.md]

The seed picks among equally good nodes (kube-scheduler breaks ties at random too) and drives
the random baseline, so one seed's figure can be luck. For each openb pod list, with and
without the GPU-sharing pods, this runs `gpu-extender simulate ... --seed S --json` for seeds
1..N with the settings of bench/results/sim/README.md, and prints, for every column, the
smallest, median and largest GPU allocation at the fill's first failure and count of 8-GPU
requests placed, how many seeds reach first fit's allocation, and in how many the replay's
waits (p50, p95 and p99 of each GPU count) are no longer than best fit's; multigpu30 has no
times, so it has no waits to compare. First fit and best fit take
the lowest-numbered node among the best and do not depend on the seed. Python 3 standard
library; about 1 s per seed on a 2-core machine.
"""

import argparse
import json
import statistics
import subprocess
import sys

LISTS = ["default", "gpuspec33", "multigpu30"]


def run(binary, traces, pods, seed, skip_sharing):
    cmd = [binary, "simulate", "--nodes", f"{traces}/openb_node_list_gpu_node.csv",
           "--pods", f"{traces}/openb_pod_list_{pods}.csv", "--topology", "--compress", "1000",
           "--scarcity", "4", "--seed", str(seed), "--json"]
    if skip_sharing:
        cmd.append("--skip-sharing")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    cols = {}
    for c in json.loads(out)["columns"]:
        fill = c["fill"]
        eight = [b for b in fill["buckets"] if b["name"] == "8+ GPUs"][0]
        waits = [(b["waitP50"], b["waitP95"], b["waitP99"]) for b in c["replay"]["buckets"]]
        cols[c["label"]] = (fill["allocFirstFailure"], eight["placed"], eight["pods"], waits)
    return cols


def no_longer(waits, best):
    """Does every GPU count wait no longer than under best fit, at p50, p95 and p99?"""
    return all(w <= b for ws, bs in zip(waits, best) for w, b in zip(ws, bs))


def spread(values, fmt):
    return " / ".join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--traces", required=True)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--out")
    a = ap.parse_args()

    lines = ["# The openb placement figures over seeds", "",
             "Written by `python3 bench/scripts/sim_seeds.py` (bench/results/sim/README.md).", "",
             f"Seeds 1 to {a.seeds}, `--topology --compress 1000 --scarcity 4`. Each cell: "
             "smallest / median / largest over the seeds; \"at first fit\": seeds whose first "
             "failure comes at first fit's allocation or later; \"waits\": seeds whose replay "
             "makes no GPU count wait longer than best fit does (p50, p95 and p99).", ""]
    for pods in LISTS:
        for skip in (False, True):
            runs = [run(a.bin, a.traces, pods, s, skip) for s in range(1, a.seeds + 1)]
            ff = runs[0]["first fit"][0]
            title = pods + (" `--skip-sharing`" if skip else "")
            lines += [f"### {title}", "",
                      "| column | allocation at the first failure | 8-GPU requests placed "
                      "| at first fit | waits |", "|---|---:|---:|---:|---:|"]
            for label in runs[0]:
                alloc = [r[label][0] for r in runs]
                eight = [r[label][1] for r in runs]
                at = sum(1 for v in alloc if v >= ff)
                waits = sum(1 for r in runs if no_longer(r[label][3], r["best fit"][3]))
                waits = "-" if pods == "multigpu30" else f"{waits} of {a.seeds}"
                lines.append(f"| {label} | {spread(alloc, lambda v: f'{100 * v:.2f}%')} "
                             f"| {spread(eight, lambda v: f'{v:g}')} of {runs[0][label][2]} "
                             f"| {at} of {a.seeds} | {waits} |")
            lines.append("")
            print(f"sim_seeds: {title} done", file=sys.stderr)
    text = "\n".join(lines)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
