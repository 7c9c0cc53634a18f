#!/bin/sh
# Installs everything gpu-extender needs to build, run and test on Debian bookworm.
# The one list of packages: README's commands and .ci/run both come through here.
# Extra package names given as arguments are installed too (scripts/bench-deps.sh does this).
set -eu
PKGS="build-essential clang libclang-rt-14-dev clang-format clang-tidy cmake pkg-config git
      libmicrohttpd-dev libgnutls28-dev libcjson-dev libcurl4-openssl-dev libssl-dev libyaml-dev
      libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler python3-grpcio
      curl python3 openssl ca-certificates $*"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
