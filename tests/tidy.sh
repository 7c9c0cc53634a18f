#!/bin/sh
# clang-tidy (the checks in .clang-tidy) over every source file of src/, with the compile
# flags of the build directory given as $1 (its compile_commands.json). Any finding fails.
# ctest runs it in the clang builds (label tidy); by hand: sh tests/tidy.sh build-asan
set -u
cd "$(dirname "$0")/.."
build=${1:?usage: tidy.sh BUILD_DIR}
tidy=$(command -v run-clang-tidy-14 || command -v run-clang-tidy || true)
if [ -z "$tidy" ] || [ ! -f "$build/compile_commands.json" ]; then
    echo "tidy: needs run-clang-tidy (scripts/deps.sh installs clang-tidy) and $build/compile_commands.json"
    exit 1
fi
out=$(mktemp)
"$tidy" -p "$build" -j "$(nproc 2>/dev/null || echo 2)" -quiet "$(pwd)/src/.*" >"$out" 2>&1
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E ': (warning|error): ' | sort -u)
rm -f "$out"
if [ -n "$findings" ]; then
    echo "$findings"
    echo "tidy: $(echo "$findings" | wc -l) finding(s)"
    exit 1
fi
echo "tidy: ok"
