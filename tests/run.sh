#!/bin/sh
# The test command (README "Run the tests"; .ci/run calls exactly this).
#   1. installs the Debian packages (scripts/deps.sh)
#   2. gcc build with -Werror, unit tests, and the soak test unsanitized (its memory check)
#   3. clang build with AddressSanitizer + UndefinedBehaviorSanitizer, every test
#      (unit, fuzz-corpus replay, lint, curl-driven integration against the real binary)
#   4. clang build with ThreadSanitizer: the tests of shared state (label tsan)
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== gcc, -Werror, unit tests"
cmake -S . -B build-gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGX_WERROR=ON >/dev/null
cmake --build build-gcc -j"$jobs"
ctest --test-dir build-gcc -L 'unit|soak' --output-on-failure -j"$jobs"

echo "== clang, ASan + UBSan, all tests"
cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DGX_SANITIZE=ON -DGX_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -LE bench --output-on-failure -j"$jobs"

echo "== clang, ThreadSanitizer, shared-state tests"
cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DGX_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target test_cache test_concurrency test_demand test_topology test_policy_store
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan -L tsan --output-on-failure
