#!/bin/sh
# Mechanical rules from STYLE.md that a compiler does not check:
#  - each third-party library is included from its one directory only;
#  - banned libc functions (git's banned.h list) do not appear in our C code.
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
check_include curl/ src/kube
check_include yaml.h src/config
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
[ $fail -eq 0 ] && echo "lint: ok"
exit $fail
