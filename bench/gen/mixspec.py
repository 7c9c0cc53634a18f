#!/usr/bin/env python3
"""mixspec.py -- openb's multigpu30 pod list with gpuspec33's model constraints.

    python3 bench/gen/mixspec.py TRACES_DIR OUT.csv

A mix none of the public lists has: many multi-GPU requests (multigpu30) and a third of the
pods bound to a model (gpuspec33). Each multigpu30 row takes the gpu_spec of the gpuspec33 row
of the same name (empty when there is none); multigpu30 has no times, so only the simulator's
fill applies. bench/results/sim/README.md uses it to show what the scarcity weight trades.
Python 3 standard library; the traces are read in place, nothing is copied.
"""
import csv
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    traces, out = sys.argv[1], sys.argv[2]
    with open(f"{traces}/openb_pod_list_gpuspec33.csv", newline="") as f:
        spec = {row["name"]: row["gpu_spec"] for row in csv.DictReader(f)}
    with open(f"{traces}/openb_pod_list_multigpu30.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec"])
        for r in rows:
            w.writerow([r["name"], r["cpu_milli"], r["memory_mib"], r["num_gpu"], r["gpu_milli"],
                        spec.get(r["name"], "")])


if __name__ == "__main__":
    main()
