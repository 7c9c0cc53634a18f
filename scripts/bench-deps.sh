#!/bin/sh
# Installs what the benchmark suite (bench/run.sh, bench/README.md) needs on Debian bookworm,
# beyond the build and test packages of scripts/deps.sh (which it runs first). The one list of
# benchmark packages:
#   wrk          HTTP load generator with Lua scripts (bench/lua/request.lua)
#   golang-go    the Go baseline (bench/go), standard library only, built off-line
#   gnuplot-nox  the latency plot (pngcairo terminal)
#   valgrind     callgrind instruction counts
#   time         /usr/bin/time, for measuring by hand (bench/README.md)
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
PKGS="wrk golang-go gnuplot-nox valgrind time"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bench-deps: installing$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
