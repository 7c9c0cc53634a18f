#!/bin/sh
# Installs what the benchmark suite (bench/run.sh, bench/README.md) needs on Debian bookworm,
# beyond the build and test packages of scripts/deps.sh (which installs them too). The one list of
# benchmark packages:
#   wrk          HTTP load generator with Lua scripts (bench/lua/request.lua)
#   golang-go    the Go baseline (bench/go), standard library only, built off-line
#   gnuplot-nox  the latency plot (pngcairo terminal)
#   valgrind     callgrind instruction counts
#   time         /usr/bin/time, for measuring by hand (bench/README.md)
set -eu
cd "$(dirname "$0")/.."
exec sh scripts/deps.sh wrk golang-go gnuplot-nox valgrind time
