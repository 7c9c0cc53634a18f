#!/usr/bin/env python3
"""simtrace.py -- a large synthetic trace for `gpu-extender simulate`'s speed figure, in the
openb CSV formats (../shared/traces/README.md).

    python3 bench/gen/simtrace.py OUT_DIR [--nodes 15000] [--pods 500000] [--seed 1]

writes OUT_DIR/nodes.csv and OUT_DIR/pods.csv. Nodes: five models (G2 x8 45 %, T4 x2 30 %,
P100 x2 10 %, V100M32 x8 5 %, A10 x1 10 %). Pods: exponential inter-arrival times (mean 2 s)
and run times (mean 20,000 s); 1 GPU 80 %, 2 GPUs 8 %, 4 GPUs 6 %, 8 GPUs 6 %; 70 % accept any
model, the rest only T4, only G2, or V100M32 or G2. Deterministic for a seed. Python 3
standard library only.
"""
import argparse
import os
import random

MODELS = [("G2", 8, 0.45), ("T4", 2, 0.30), ("P100", 2, 0.10), ("V100M32", 8, 0.05),
          ("A10", 1, 0.10)]
SIZES = [1] * 80 + [2] * 8 + [4] * 6 + [8] * 6
SPECS = [""] * 7 + ["T4", "G2", "V100M32|G2"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--nodes", type=int, default=15000)
    ap.add_argument("--pods", type=int, default=500000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "nodes.csv"), "w") as f:
        f.write("sn,cpu_milli,memory_mib,gpu,model\n")
        for i in range(a.nodes):
            r, acc = rng.random(), 0.0
            for model, gpus, share in MODELS:
                acc += share
                if r <= acc:
                    break
            f.write(f"n-{i:05d},1,1,{gpus},{model}\n")
    with open(os.path.join(a.out, "pods.csv"), "w") as f:
        f.write("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
                "creation_time,deletion_time,scheduled_time\n")
        t = 0.0
        for i in range(a.pods):
            t += rng.expovariate(1 / 2.0)
            run = rng.expovariate(1 / 20000.0)
            f.write(f"p-{i},1,1,{rng.choice(SIZES)},1000,{rng.choice(SPECS)},LS,Running,"
                    f"{t:.0f},{t + run:.0f},{t:.0f}\n")


if __name__ == "__main__":
    main()
