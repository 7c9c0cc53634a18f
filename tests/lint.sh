#!/bin/sh
# Mechanical rules from STYLE.md that a compiler does not check:
#  - each third-party library is included from its one directory only (the build's link checks
#    enforce the libraries; this keeps their headers out too);
#  - banned libc functions (git's banned.h list) do not appear in our C code;
#  - every struct errbuf is declared with ERRBUF_INIT;
#  - every C file is formatted as .clang-format says (clang-format --dry-run --Werror).
# Static analysis (clang-tidy) is tests/tidy.sh: it needs a build's compile_commands.json.
set -u
cd "$(dirname "$0")/.."
fail=0
check_include() { # header, allowed directory
    hits=$(grep -rln --include="*.[ch]" "#include <$1" src include tests bench 2>/dev/null | grep -v "^$2/" || true)
    if [ -n "$hits" ]; then
        echo "lint: <$1> included outside $2/: $hits"
        fail=1
    fi
}
check_include microhttpd.h src/http
check_include gnutls/ src/http
check_include curl/ src/kube
check_include yaml.h src/config
check_include nghttp2/ src/podres
check_include protobuf-c/ src/podres
# NVML is loaded at run time, never linked: dlopen() belongs to its loader alone.
check_include dlfcn.h src/agent
for f in $(grep -rl --include="*.[ch]" "#include <cjson/" src include tests bench 2>/dev/null); do
    case "$f" in src/api/*) ;; *) echo "lint: cJSON included outside src/api/: $f"; fail=1 ;; esac
done
banned='\<(strcpy|strcat|strncpy|sprintf|vsprintf|strtok|atoi|atol|gmtime|localtime|ctime)[[:space:]]*\('
hits=$(grep -rnE "$banned" src include tests bench --include='*.c' --include='*.h' | grep -v 'sorry_' || true)
if [ -n "$hits" ]; then
    echo "lint: banned functions:"
    echo "$hits"
    fail=1
fi
# (Members of a struct definition are not declarations of a buffer, so awk skips those blocks.)
hits=$(find src tests bench -name '*.c' | sort | xargs awk '
    /^[a-z ]*struct [a-z_]+ \{$/ { in_struct = 1 }
    in_struct && /^};/ { in_struct = 0 }
    !in_struct && /struct errbuf [a-z_]+( = [^E][^;]*)?;/ { print FILENAME ":" FNR ": " $0 }')
if [ -n "$hits" ]; then
    echo "lint: an errbuf declared without ERRBUF_INIT:"
    echo "$hits"
    fail=1
fi
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')
if ! command -v clang-format >/dev/null 2>&1; then
    echo "lint: clang-format is not installed (scripts/deps.sh installs it)"
    fail=1
elif ! clang-format --dry-run --Werror $files 2>/tmp/lint-format.$$; then
    echo "lint: files not formatted as .clang-format says (run clang-format -i on them):"
    grep -o '^[^:]*\.[ch]' /tmp/lint-format.$$ | sort -u
    fail=1
fi
rm -f /tmp/lint-format.$$
[ $fail -eq 0 ] && echo "lint: ok"
exit $fail
