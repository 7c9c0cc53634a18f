#!/bin/sh
# run.sh -- the whole benchmark suite in one command (bench/README.md explains the figures):
#
#   sh bench/run.sh [--quick] [--keep]
#
# Installs the packages (scripts/bench-deps.sh), builds the Release daemon and the benchmark
# programs into build-bench/ (GX_BENCH_BUILD overrides), builds the Go baseline off-line,
# generates the cluster data into a temporary directory, runs every benchmark and writes
# bench/results/results.md and bench/results/latency.png (GX_BENCH_RESULTS overrides).
# About 6 minutes on a 2-core machine, build included. --quick: shorter runs, to try the script (its numbers
# are not the ones to quote). --keep: keep the temporary directory (data, logs, results.json).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=""
KEEP=0
for a in "$@"; do
    case $a in
    --quick) QUICK="--quick" ;;
    --keep) KEEP=1 ;;
    *) echo "usage: sh bench/run.sh [--quick] [--keep]" >&2; exit 2 ;;
    esac
done
START=$(date +%s)
sh scripts/bench-deps.sh

BUILD=${GX_BENCH_BUILD:-$ROOT/build-bench}
RESULTS=${GX_BENCH_RESULTS:-$ROOT/bench/results}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gx-bench.XXXXXX")
cleanup() {
    if [ "$KEEP" = 1 ]; then echo "bench: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== build (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGX_WERROR=OFF >/dev/null
TARGETS="gpu-extender bench_extender floor_server"
if cmake --build "$BUILD" --target help 2>/dev/null | grep -q bench_topology; then
    TARGETS="$TARGETS bench_topology"
fi
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS

echo "== Go baseline (standard library only, off-line)"
mkdir -p "$BUILD/go"
(cd bench/go && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$BUILD/go/cache" \
    GOPATH="$BUILD/go/path" CGO_ENABLED=0 go build -o "$BUILD/go/go-baseline" .)

echo "== benchmarks (work directory $WORK)"
PYTHONDONTWRITEBYTECODE=1 python3 bench/scripts/bench.py --src "$ROOT" --build "$BUILD" \
    --go-bin "$BUILD/go/go-baseline" --work "$WORK" --results "$RESULTS" $QUICK
echo "== done in $(($(date +%s) - START)) s: $RESULTS/results.md, $RESULTS/latency.png"
