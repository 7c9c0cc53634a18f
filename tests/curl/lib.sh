# lib.sh -- shared helpers for the curl-driven integration tests (tests/curl/test_*.sh).
#
# Source it from a test script:   . "$(dirname "$0")/lib.sh"
#
# Environment (all optional; ctest sets the first three):
#   GX_DAEMON      the gpu-extender binary (default: the first of build/, build-asan/, build-it/)
#   GX_FIXTURES    the captured kube-1.26 fixtures (default: tests/fixtures/kube-1.26 in the checkout)
#   GX_SOURCE_DIR  the checkout (default: two levels above this file)
#   GX_KEEP_TMP=1  keep the scratch directory (logs, bodies) even when every check passed
#   GX_VERBOSE=1   print every passing check, not only the failures
#
# Model: a script calls begin "case name" before each case. Checks inside a case call the
# assert_* helpers, which print expected versus actual and count failures but never exit.
# Every begin (and finish) first checks that every daemon still running is alive and answers
# /healthz with 200, and charges a failure to the case that just ended if not. finish stops
# the daemons with SIGTERM, scans their stderr for sanitizer reports, prints a summary and
# exits 1 if anything failed. An EXIT trap kills whatever children are left.
#
# Only bash, curl, python3 (stdlib json) and coreutils are used. Nothing listens on a fixed
# port: every server binds port 0 and reports its port through a file. Every wait is bounded.

# Variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034

set -u
set -o pipefail

GX_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GX_SOURCE_DIR=${GX_SOURCE_DIR:-$(cd "$GX_LIB_DIR/../.." && pwd)}
if [[ -z ${GX_DAEMON:-} ]]; then
    for _c in "$GX_SOURCE_DIR"/{build,build-asan,build-it}/gpu-extender; do
        if [[ -x $_c ]]; then
            GX_DAEMON=$_c
            break
        fi
    done
fi
GX_DAEMON=${GX_DAEMON:-$GX_SOURCE_DIR/build/gpu-extender}
GX_FIXTURES=${GX_FIXTURES:-$GX_SOURCE_DIR/tests/fixtures/kube-1.26}
RAW=$GX_FIXTURES/extender/raw
APIRAW=$GX_FIXTURES/apiserver/raw

# The tests talk to 127.0.0.1 only: no proxy, no in-cluster config leaking in from a CI pod,
# no daemon settings from the caller's environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' no_proxy='*'
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT
while IFS='=' read -r _v _; do
    [[ $_v == GPU_EXTENDER_* ]] && unset "$_v"
done < <(env)
# python3 once resolved (a pyenv-style shim costs ~0.1 s a call), without site packages:
# the helpers use the standard library only.
GX_PYTHON=$(command python3 -c 'import sys; print(sys.executable)') || {
    echo "FAIL: python3 is required" >&2
    exit 1
}
# (A function: never start it with & -- $! would be a subshell, not python. Use "$GX_PYTHON".)
python3() { "$GX_PYTHON" -S "$@"; }
# Sanitizer builds: stop at the first error, with a stack; leaks are reported at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

GX_TEST_NAME=$(basename "${0%.sh}")
GX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gx-$GX_TEST_NAME.XXXXXX")
GX_START_S=$(date +%s.%N)
GX_FAILS=0
GX_CHECKS=0
GX_CASES=0
GX_CASE=""
GX_CASE_FAILS=0
GX_FAILED_CASES=()
GX_CHILDREN=()       # every pid we started, for the EXIT trap
declare -A D_PID D_PORT D_URL D_LOG D_WATCH D_PREFIX_OF
GX_URL=""            # the daemon that post/http talk to (use_daemon switches it)
GX_PREFIX=""         # the --url-prefix of that daemon, for post
DAEMON_ENV=()        # extra VAR=VALUE for the next start_daemon only
STATUS=""            # results of the last post/http
BODY=""
BODY_FILE="$GX_TMP/last.body"
HDR_FILE="$GX_TMP/last.headers"
CURL_ERR=""
TIME_S=""

# ---------------------------------------------------------------- output and assertions

_say() { printf '%s\n' "$*"; }
log() { printf '# %s\n' "$*"; }

_snip() { # a one-line, bounded rendering of a value for messages
    local s=${1//$'\n'/\\n}
    if ((${#s} > 600)); then
        s="${s:0:600}... (${#1} bytes)"
    fi
    printf '%s' "$s"
}

pass() {
    GX_CHECKS=$((GX_CHECKS + 1))
    [[ ${GX_VERBOSE:-0} == 1 ]] && _say "  ok: $*"
    return 0
}

fail() {
    GX_CHECKS=$((GX_CHECKS + 1))
    GX_FAILS=$((GX_FAILS + 1))
    GX_CASE_FAILS=$((GX_CASE_FAILS + 1))
    _say "  FAIL [$GX_CASE]: $*"
    return 1
}

# assert_eq DESC EXPECTED ACTUAL
assert_eq() {
    if [[ $2 == "$3" ]]; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected: $(_snip "$2")"$'\n'"      actual:   $(_snip "$3")"
    fi
}

# assert_ne DESC UNEXPECTED ACTUAL
assert_ne() {
    if [[ $2 != "$3" ]]; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected anything but: $(_snip "$2")"
    fi
}

# assert_contains DESC NEEDLE HAYSTACK
assert_contains() {
    if [[ $3 == *"$2"* ]]; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected to contain: $(_snip "$2")"$'\n'"      actual: $(_snip "$3")"
    fi
}

# assert_not_contains DESC NEEDLE HAYSTACK
assert_not_contains() {
    if [[ $3 != *"$2"* ]]; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected not to contain: $(_snip "$2")"$'\n'"      actual: $(_snip "$3")"
    fi
}

# assert_lt DESC A B    (numbers, floats allowed): A < B
assert_lt() {
    if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$2" "$3"; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected: $2 < $3"
    fi
}

# assert_status EXPECTED [DESC]   -- the status of the last post/http
assert_status() {
    local desc=${2:-"HTTP status"}
    if [[ $STATUS == "$1" ]]; then
        pass "$desc"
    else
        fail "$desc"$'\n'"      expected status: $1"$'\n'"      actual status:   $STATUS${CURL_ERR:+ (curl: $CURL_ERR)}"$'\n'"      body: $(_snip "$BODY")"
    fi
}

# The Python helper module: raw-byte JSON span walking (for byte-for-byte comparisons),
# fixture derivation and Prometheus parsing. Written once into the scratch directory.
cat >"$GX_TMP/gxjson.py" <<'PYEOF'
import json, sys

WS = b" \t\r\n"

def skip_ws(b, i):
    while i < len(b) and b[i] in WS:
        i += 1
    return i

def value_end(b, i):
    """End offset of the JSON value starting at b[i] (b is bytes, assumed well-formed)."""
    i = skip_ws(b, i)
    c = b[i:i + 1]
    if c == b'"':
        i += 1
        while True:
            ch = b[i]
            if ch == 0x5C:  # backslash
                i += 2
            elif ch == 0x22:
                return i + 1
            else:
                i += 1
    if c in (b"{", b"["):
        depth = 0
        while True:
            ch = b[i:i + 1]
            if ch == b'"':
                i = value_end(b, i)
                continue
            if ch in (b"{", b"["):
                depth += 1
            elif ch in (b"}", b"]"):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(b) and b[i:i + 1] not in (b",", b"}", b"]") and b[i] not in WS:
        i += 1
    return i

def members(b, i):
    """(raw key bytes, value start, value end) for the object at b[i]."""
    i = skip_ws(b, i)
    assert b[i:i + 1] == b"{", "not an object at %d" % i
    i = skip_ws(b, i + 1)
    out = []
    if b[i:i + 1] == b"}":
        return out
    while True:
        kend = value_end(b, i)
        key = b[i + 1:kend - 1]
        i = skip_ws(b, kend)
        assert b[i:i + 1] == b":"
        vs = skip_ws(b, i + 1)
        ve = value_end(b, vs)
        out.append((key, vs, ve))
        i = skip_ws(b, ve)
        if b[i:i + 1] == b"}":
            return out
        assert b[i:i + 1] == b","
        i = skip_ws(b, i + 1)

def elements(b, i):
    """(start, end) of each element of the array at b[i]."""
    i = skip_ws(b, i)
    assert b[i:i + 1] == b"[", "not an array at %d" % i
    i = skip_ws(b, i + 1)
    out = []
    if b[i:i + 1] == b"]":
        return out
    while True:
        e = value_end(b, i)
        out.append((i, e))
        i = skip_ws(b, e)
        if b[i:i + 1] == b"]":
            return out
        assert b[i:i + 1] == b","
        i = skip_ws(b, i + 1)

def member(b, i, name, ci=False):
    for k, s, e in members(b, i):
        kk = k.decode("utf-8", "replace")
        if kk == name or (ci and kk.lower() == name.lower()):
            return s, e
    return None

def node_items(b):
    """Raw bytes of every Nodes.items[] element of an ExtenderArgs / ExtenderFilterResult."""
    m = member(b, 0, "Nodes", ci=True)
    if m is None or b[m[0]:m[0] + 1] != b"{":
        return None
    it = member(b, m[0], "items")
    if it is None or b[it[0]:it[0] + 1] != b"[":
        return None
    return [b[s:e] for s, e in elements(b, it[0])]

def item_name(raw):
    return json.loads(raw)["metadata"]["name"]

def compact(d):
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()

# ---- fixture derivation helpers (used by derive) ----

def pod_of(d):
    return d["Pod"]

def annotate(d, key, value):
    md = d["Pod"].setdefault("metadata", {})
    if md.get("annotations") is None:
        md["annotations"] = {}
    md["annotations"][key] = value

def set_gpus(d, n, which=("requests", "limits")):
    for c in d["Pod"]["spec"]["containers"]:
        res = c.setdefault("resources", {})
        for w in which:
            if res.get(w) is None:
                res[w] = {}
            res[w]["nvidia.com/gpu"] = n

def node_by_name(d, name):
    for n in d["Nodes"]["items"]:
        if n["metadata"]["name"] == name:
            return n
    raise KeyError(name)

def set_product(d, node, product):
    node_by_name(d, node)["metadata"]["labels"]["nvidia.com/gpu.product"] = product

def prom(text):
    """Prometheus text -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        out[k] = float(v)
    return out
PYEOF

# py CODE [ARGS...]   -- python3 with the helper module imported as gx (and its names)
py() {
    local code=$1
    shift
    PYTHONPATH="$GX_TMP${PYTHONPATH:+:$PYTHONPATH}" python3 -c "import sys, json, gxjson as gx
from gxjson import *
$code" "$@"
}

# json_get PYEXPR [FILE [ARG...]]   -- prints PYEXPR evaluated with d = the JSON in FILE
# (default: the last body); ARGs are sys.argv[3:]. Strings print bare, everything else as
# compact JSON; "<error: ...>" when the document does not parse or the expression raises.
json_get() {
    local expr=$1 file=${2:-$BODY_FILE}
    shift
    [[ $# -gt 0 ]] && shift
    py '
try:
    d = json.load(open(sys.argv[2], "rb"))
    v = eval(sys.argv[1])
    print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
except Exception as e:
    print("<error: %s: %s>" % (type(e).__name__, e))
' "$expr" "$file" "$@"
}

# assert_json DESC PYEXPR EXPECTED [FILE]   -- json_get PYEXPR must print EXPECTED
assert_json() {
    local got
    got=$(json_get "$2" "${4:-$BODY_FILE}")
    if [[ $got == "$3" ]]; then
        pass "$1"
    else
        fail "$1 ($2)"$'\n'"      expected: $(_snip "$3")"$'\n'"      actual:   $(_snip "$got")"$'\n'"      body: $(_snip "$(head -c 800 "${4:-$BODY_FILE}")")"
    fi
}

# assert_json_true DESC PYEXPR [FILE]   -- PYEXPR must be truthy
assert_json_true() {
    assert_json "$1" "bool($2)" true "${3:-}"
}

# assert_error_reply DESC NEEDLE   -- the last body is JSON whose "Error" is a non-empty
# string containing NEEDLE (case-insensitive)
assert_error_reply() {
    local err
    err=$(json_get 'd["Error"] if isinstance(d.get("Error"), str) and d["Error"] else "<no Error>"')
    if [[ $err != "<"* && ${err,,} == *"${2,,}"* ]]; then
        pass "$1"
    else
        fail "$1"$'\n'"      expected Error containing: $2"$'\n'"      actual Error: $(_snip "$err")"$'\n'"      body: $(_snip "$BODY")"
    fi
}

# assert_echo DESC REQUEST_FILE NAME...   -- the last body is an ExtenderFilterResult whose
# Nodes.items are exactly the request's Node objects with these names, in request order,
# each byte for byte as it was in the request (compared on the raw bytes, never re-serialized)
assert_echo() {
    local desc=$1 req=$2 out
    shift 2
    out=$(py '
req = open(sys.argv[1], "rb").read()
rep = open(sys.argv[2], "rb").read()
want = sys.argv[3:]
try:
    json.loads(rep)
except Exception as e:
    print("the reply is not valid JSON: %s" % e); sys.exit()
ri = node_items(req)
pi = node_items(rep)
if pi is None:
    print("the reply has no Nodes.items array"); sys.exit()
by_name = {}
for raw in ri:
    by_name.setdefault(item_name(raw), raw)
exp = [by_name[n] for n in want]
got_names = [item_name(raw) for raw in pi]
if got_names != want:
    print("items are %s, expected %s" % (got_names, want)); sys.exit()
for n, e, g in zip(want, exp, pi):
    if e != g:
        k = next((i for i in range(min(len(e), len(g))) if e[i] != g[i]), min(len(e), len(g)))
        print("node %s differs from the request at byte %d of %d/%d: request %r reply %r" % (n, k, len(e), len(g), e[max(0,k-20):k+40], g[max(0,k-20):k+40])); sys.exit()
print("ok")
' "$req" "$BODY_FILE" "$@")
    if [[ $out == ok ]]; then
        pass "$desc"
    else
        fail "$desc: $out"
    fi
}

# derive SRC OUT PYCODE   -- loads the JSON fixture SRC as d, runs PYCODE (the helpers of
# gxjson are in scope: annotate, set_gpus, set_product, node_by_name...), writes d compactly.
derive() {
    py '
d = json.load(open(sys.argv[1], "rb"))
exec(sys.argv[3])
open(sys.argv[2], "wb").write(compact(d))
' "$1" "$2" "$3" || fail "derive $2 from $1 failed"
}

# ---------------------------------------------------------------- processes

# proc_alive PID   -- a running process (an unreaped zombie counts as dead)
proc_alive() {
    local st
    [[ -r /proc/$1/stat ]] || return 1
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# wait_exit PID TIMEOUT_S   -- waits until PID is gone; sets EXIT_CODE (124: still running)
wait_exit() {
    local pid=$1 deadline
    deadline=$(_deadline "$2")
    while proc_alive "$pid" && _before "$deadline"; do
        sleep 0.02
    done
    if proc_alive "$pid"; then
        EXIT_CODE=124
        return 1
    fi
    wait "$pid" 2>/dev/null
    EXIT_CODE=$?
    return 0
}

_now_ms() { date +%s%3N; }
_deadline() { echo $(($(_now_ms) + ${1%.*} * 1000)); }
_before() { (($(_now_ms) < $1)); }

_track() { GX_CHILDREN+=("$1"); }

_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${GX_CHILDREN[@]}"; do
        if proc_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    local deadline
    deadline=$(_deadline 3)
    for pid in "${GX_CHILDREN[@]}"; do
        while proc_alive "$pid" && _before "$deadline"; do
            sleep 0.02
        done
        proc_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    if ((rc == 0)) && [[ ${GX_KEEP_TMP:-0} != 1 ]]; then
        rm -rf "$GX_TMP"
    else
        _say "# scratch directory kept: $GX_TMP"
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_port_file FILE PID TIMEOUT_S   -- prints the port once FILE holds one
wait_port_file() {
    local f=$1 pid=$2 deadline
    deadline=$(_deadline "$3")
    while _before "$deadline"; do
        if [[ -s $f ]] && grep -qE '^[0-9]+$' "$f"; then
            cat "$f"
            return 0
        fi
        proc_alive "$pid" || return 1
        sleep 0.02
    done
    return 1
}

# start_daemon NAME [FLAGS...]   -- starts gpu-extender on 127.0.0.1:0, waits for its port
# file and a 200 from /healthz (10 s at most), and makes it the current daemon. Extra
# environment for this start only: DAEMON_ENV=(VAR=value ...). Sets D_PID/D_PORT/D_URL/D_LOG
# [NAME]. Returns 1 (and records a failure) when it does not come up.
start_daemon() {
    local name=$1 prefix="" a prev=""
    shift
    local pf="$GX_TMP/$name.port" log="$GX_TMP/$name.log"
    for a in "$@"; do
        [[ ${prev:-} == --url-prefix ]] && prefix=$a
        [[ $a == --url-prefix=* ]] && prefix=${a#--url-prefix=}
        prev=$a
    done
    rm -f "$pf"
    env ${DAEMON_ENV[@]+"${DAEMON_ENV[@]}"} "$GX_DAEMON" --listen 127.0.0.1:0 --port-file "$pf" "$@" \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    DAEMON_ENV=()
    _track "$pid"
    D_PID[$name]=$pid
    D_LOG[$name]=$log
    local port
    if ! port=$(wait_port_file "$pf" "$pid" 10); then
        fail "daemon $name did not write its port file (flags: $*)"$'\n'"$(tail -n 20 "$log")"
        return 1
    fi
    D_PORT[$name]=$port
    D_URL[$name]="http://127.0.0.1:$port"
    D_WATCH[$name]=1
    prefix=${prefix%/}
    D_PREFIX_OF[$name]=$prefix
    use_daemon "$name"
    local deadline
    deadline=$(_deadline 10)
    while _before "$deadline"; do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${D_URL[$name]}/healthz") == 200 ]]; then
            return 0
        fi
        sleep 0.05
    done
    fail "daemon $name never answered /healthz with 200"$'\n'"$(tail -n 20 "$log")"
    return 1
}

# wait_ready [TIMEOUT_S]   -- waits until the current daemon's /readyz answers 200 (its
# cluster cache has synced, when it has an API server); 10 s at most
wait_ready() {
    local deadline code
    deadline=$(_deadline "${1:-10}")
    while _before "$deadline"; do
        code=$(curl -s -o "$GX_TMP/readyz.body" -w '%{http_code}' --max-time 2 "$GX_URL/readyz")
        [[ $code == 200 ]] && return 0
        sleep 0.05
    done
    fail "daemon $GX_CUR not ready: /readyz $code $(head -c 300 "$GX_TMP/readyz.body")"$'\n'"$(grep -v level=debug "${D_LOG[$GX_CUR]}" | tail -n 10)"
    return 1
}

# use_daemon NAME   -- post/http now talk to that daemon
use_daemon() {
    GX_URL=${D_URL[$1]}
    GX_PREFIX=${D_PREFIX_OF[$1]:-}
    GX_CUR=$1
}

# stop_daemon NAME [SIGNAL] [TIMEOUT_S]   -- signals it (TERM), waits for the exit (10 s,
# then SIGKILL), sets EXIT_CODE and stops watching it. Scans its log for sanitizer reports.
stop_daemon() {
    local name=$1 sig=${2:-TERM} t=${3:-10} pid=${D_PID[$1]}
    unset "D_WATCH[$name]"
    kill "-$sig" "$pid" 2>/dev/null
    if ! wait_exit "$pid" "$t"; then
        fail "daemon $name still running ${t}s after SIG$sig; killing it"
        kill -KILL "$pid" 2>/dev/null
        wait_exit "$pid" 5
        EXIT_CODE=124
    fi
    check_sanitizer_log "$name"
}

# check_sanitizer_log NAME   -- fails when the daemon's stderr holds an ASan/UBSan/LSan report
check_sanitizer_log() {
    local log=${D_LOG[$1]} hits
    hits=$(grep -nE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY: (Address|Undefined|Leak)' "$log" 2>/dev/null | head -n 5)
    if [[ -n $hits ]]; then
        fail "sanitizer report in the stderr of daemon $1 ($log):"$'\n'"$hits"$'\n'"$(grep -m1 -A 25 -E 'ERROR: |runtime error' "$log")"
    else
        pass "no sanitizer report from daemon $1"
    fi
}

# check_daemons   -- every watched daemon is running and /healthz answers 200
check_daemons() {
    local name code
    for name in "${!D_WATCH[@]}"; do
        if ! proc_alive "${D_PID[$name]}"; then
            wait "${D_PID[$name]}" 2>/dev/null
            fail "daemon $name (pid ${D_PID[$name]}) died (exit $?)"$'\n'"$(grep -v level=debug "${D_LOG[$name]}" | tail -n 40)"
            unset "D_WATCH[$name]"
            check_sanitizer_log "$name"
            continue
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${D_URL[$name]}/healthz")
        if [[ $code == 200 ]]; then
            pass "daemon $name alive, /healthz 200"
        else
            fail "daemon $name: /healthz answered $code, expected 200"
        fi
    done
}

# ---------------------------------------------------------------- cases

_end_case() {
    [[ -z $GX_CASE ]] && return 0
    check_daemons
    local ms=$(($(_now_ms) - GX_CASE_START_MS))
    ((ms >= 3000)) && _say "   ($GX_CASE took $((ms / 1000)).$((ms % 1000 / 100)) s)"
    if ((GX_CASE_FAILS > 0)); then
        GX_FAILED_CASES+=("$GX_CASE")
    fi
}

# begin NAME   -- ends the previous case (daemon liveness check) and starts a new one
begin() {
    _end_case
    GX_CASE=$1
    GX_CASE_START_MS=$(_now_ms)
    GX_CASE_FAILS=0
    GX_CASES=$((GX_CASES + 1))
    _say "== $1"
}

# finish   -- ends the last case, stops every daemon still watched (TERM: exit 0 expected),
# checks sanitizer logs, prints the summary and exits.
finish() {
    local name
    _end_case
    GX_CASE="shutdown"
    GX_CASE_FAILS=0
    for name in "${!D_WATCH[@]}"; do
        stop_daemon "$name" TERM 10
        assert_eq "daemon $name exits 0 on SIGTERM" 0 "$EXIT_CODE"
    done
    ((GX_CASE_FAILS > 0)) && GX_FAILED_CASES+=("shutdown")
    local secs
    secs=$(python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$GX_START_S")
    if ((GX_FAILS == 0)); then
        _say "PASS $GX_TEST_NAME: $GX_CASES cases, $GX_CHECKS checks, ${secs}s"
        exit 0
    fi
    _say "FAIL $GX_TEST_NAME: $GX_FAILS of $GX_CHECKS checks failed in ${#GX_FAILED_CASES[@]} of $GX_CASES cases (${secs}s):"
    for name in "${GX_FAILED_CASES[@]}"; do
        _say "  - $name"
    done
    exit 1
}

# ---------------------------------------------------------------- HTTP

# http METHOD PATH [CURL ARGS...]   -- one request to the current daemon. Sets STATUS (000
# when no answer), BODY, BODY_FILE, HDR_FILE, CURL_ERR and TIME_S (seconds).
http() {
    local method=$1 path=$2 out
    shift 2
    : >"$BODY_FILE"
    : >"$HDR_FILE"
    out=$(curl -sS -X "$method" -o "$BODY_FILE" -D "$HDR_FILE" --max-time "${GX_CURL_MAX_TIME:-20}" \
        -w '%{http_code} %{time_total}' "$@" "$GX_URL$path" 2>"$GX_TMP/curl.err")
    STATUS=${out% *}
    TIME_S=${out#* }
    CURL_ERR=$(head -c 300 "$GX_TMP/curl.err")
    BODY=$(tr -d '\0' <"$BODY_FILE")
}

# post VERB FILE [CURL ARGS...]   -- POSTs FILE's bytes as the scheduler does (Content-Type
# application/json, Content-Length) to {prefix}/VERB of the current daemon.
post() {
    local verb=$1 file=$2
    shift 2
    http POST "$GX_PREFIX/$verb" -H 'Content-Type: application/json' --data-binary "@$file" "$@"
}

# metrics_snapshot FILE   -- saves the current daemon's /metrics text
metrics_snapshot() {
    curl -s --max-time 5 -o "$1" "$GX_URL/metrics"
}

# metric FILE SERIES   -- the value of one series ('name{labels}' exactly as exposed), or
# "absent"
metric() {
    py '
m = prom(open(sys.argv[1]).read())
v = m.get(sys.argv[2])
print("absent" if v is None else ("%d" % v if v == int(v) else v))
' "$1" "$2"
}

# metric_delta BEFORE AFTER SERIES   -- after - before (absent counts as 0)
metric_delta() {
    py '
a = prom(open(sys.argv[1]).read()); b = prom(open(sys.argv[2]).read())
d = b.get(sys.argv[3], 0) - a.get(sys.argv[3], 0)
print("%d" % d if d == int(d) else d)
' "$1" "$2" "$3"
}

# raw_request PORT FILE [TIMEOUT_S]   -- sends FILE's bytes verbatim on a new TCP connection,
# half-closes, prints whatever comes back (for requests curl will not send)
raw_request() {
    python3 - "$1" "$2" "${3:-10}" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=float(sys.argv[3]))
s.sendall(open(sys.argv[2], "rb").read())
try:
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass
out = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
except (socket.timeout, ConnectionResetError):
    pass
sys.stdout.write(out.decode("latin-1"))
PYEOF
}

# ---------------------------------------------------------------- the fake API server

declare -A F_PID F_PORT F_URL F_CURL F_LOG
GX_FAKE=""           # the fake that admin/kapi talk to
GX_TOKEN=""          # the bearer token kapi sends

# start_fake NAME [FLAGS...]   -- starts tests/fake_apiserver.py on 127.0.0.1:0 seeded with
# the fixture nodes and pods, waits (15 s at most) for /_admin/health, and makes it current.
# With --tls-cert, set FAKE_CA=ca.crt first so that curl can verify it. F_CURL[NAME] holds
# the curl options that reach it.
start_fake() {
    local name=$1 scheme=http a
    shift
    for a in "$@"; do [[ $a == --tls-cert ]] && scheme=https; done
    local pf="$GX_TMP/$name.port" log="$GX_TMP/$name.log"
    rm -f "$pf"
    # The interpreter itself, not the python3 function: $! must be the server's own pid.
    "$GX_PYTHON" -S "$GX_SOURCE_DIR/tests/fake_apiserver.py" --listen 127.0.0.1:0 --port-file "$pf" \
        --seed-fixtures "$GX_FIXTURES/apiserver" --log "$GX_TMP/$name.requests.log" "$@" \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    _track "$pid"
    F_PID[$name]=$pid
    F_LOG[$name]=$log
    local port
    if ! port=$(wait_port_file "$pf" "$pid" 15); then
        fail "fake API server $name did not start"$'\n'"$(tail -n 20 "$log")"
        return 1
    fi
    F_PORT[$name]=$port
    F_URL[$name]="$scheme://127.0.0.1:$port"
    F_CURL[$name]=""
    [[ $scheme == https ]] && F_CURL[$name]="--cacert ${FAKE_CA:?set FAKE_CA for a TLS fake}"
    GX_FAKE=$name
    local deadline
    deadline=$(_deadline 15)
    while _before "$deadline"; do
        # shellcheck disable=SC2086
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 ${F_CURL[$name]} "${F_URL[$name]}/_admin/health") == 200 ]]; then
            return 0
        fi
        sleep 0.05
    done
    fail "fake API server $name never answered /_admin/health"
    return 1
}

# admin METHOD PATH [JSON]   -- calls the current fake's /_admin API; the reply is in
# $ADMIN_FILE (and on stdout); ADMIN_STATUS holds the status
ADMIN_FILE="$GX_TMP/admin.body"
admin() {
    local method=$1 path=$2 data=${3:-}
    local args=(-s -X "$method" --max-time 30 -o "$ADMIN_FILE" -w '%{http_code}')
    [[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    # shellcheck disable=SC2086
    ADMIN_STATUS=$(curl "${args[@]}" ${F_CURL[$GX_FAKE]} "${F_URL[$GX_FAKE]}/_admin$path")
    [[ $ADMIN_STATUS == 2* ]] || log "admin $method $path answered $ADMIN_STATUS: $(head -c 300 "$ADMIN_FILE")"
    cat "$ADMIN_FILE"
}

# kapi METHOD PATH [FILE]   -- a Kubernetes API call to the current fake with $GX_TOKEN (the
# body of FILE as JSON); the reply is in $KAPI_FILE, the status in KAPI_STATUS
KAPI_FILE="$GX_TMP/kapi.body"
kapi() {
    local method=$1 path=$2 file=${3:-}
    local args=(-s -X "$method" --max-time 30 -o "$KAPI_FILE" -w '%{http_code}' -A gpu-extender-tests)
    [[ -n $GX_TOKEN ]] && args+=(-H "Authorization: Bearer $GX_TOKEN")
    [[ -n $file ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$file")
    # shellcheck disable=SC2086
    KAPI_STATUS=$(curl "${args[@]}" ${F_CURL[$GX_FAKE]} "${F_URL[$GX_FAKE]}$path")
}

# require_file PATH WHAT   -- the test cannot run without it: fail loudly (never skip)
require_file() {
    if [[ ! -e $1 ]]; then
        _say "FAIL $GX_TEST_NAME: $2 not found at $1"
        exit 1
    fi
}

require_file "$GX_DAEMON" "the gpu-extender binary (set GX_DAEMON)"
require_file "$RAW/filter.args.nodecache-false.json" "the kube-1.26 fixtures (set GX_FIXTURES)"

# ---- API server objects for bind tests (need start_fake and kapi above) ----

# write_kubeconfig FILE SERVER [ca=F] [ca-data=F] [insecure] [token=T] [token-file=F]
#                  [cert=F key=F] [cert-data=F key-data=F]
write_kubeconfig() {
    local file=$1 server=$2 cl="" us="" kv
    shift 2
    for kv in "$@"; do
        case $kv in
        ca=*) cl+="    certificate-authority: ${kv#*=}"$'\n' ;;
        ca-data=*) cl+="    certificate-authority-data: $(base64 -w0 "${kv#*=}")"$'\n' ;;
        insecure) cl+="    insecure-skip-tls-verify: true"$'\n' ;;
        token=*) us+="    token: ${kv#*=}"$'\n' ;;
        token-file=*) us+="    tokenFile: ${kv#*=}"$'\n' ;;
        cert=*) us+="    client-certificate: ${kv#*=}"$'\n' ;;
        key=*) us+="    client-key: ${kv#*=}"$'\n' ;;
        cert-data=*) us+="    client-certificate-data: $(base64 -w0 "${kv#*=}")"$'\n' ;;
        key-data=*) us+="    client-key-data: $(base64 -w0 "${kv#*=}")"$'\n' ;;
        *) fail "write_kubeconfig: unknown $kv" ;;
        esac
    done
    [[ -z $us ]] && us="    {}"$'\n'
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $server
$cl
users:
- name: tester
  user:
$us
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
current-context: fake
EOF
}

# create_pod NAME [PYCODE]   -- creates a pod through the fake's API from the fixture pod
# (gpu-pod-1 as kube-scheduler sent it, minus server-set fields); PYCODE may edit d (the
# pod). Sets POD_UID.
create_pod() {
    local name=$1 code=${2:-}
    py '
d = json.load(open(sys.argv[1], "rb"))["Pod"]
md = d["metadata"]
d["metadata"] = {"name": sys.argv[3], "namespace": md["namespace"], "labels": md.get("labels") or {}}
d["spec"].pop("nodeName", None)
d.pop("status", None)
exec(sys.argv[4])
open(sys.argv[2], "wb").write(compact(d))
' "$RAW/filter.args.nodecache-false.json" "${K:-$GX_TMP}/pod-$name.json" "$name" "$code"
    kapi POST /api/v1/namespaces/default/pods "${K:-$GX_TMP}/pod-$name.json"
    if [[ $KAPI_STATUS != 201 ]]; then
        fail "creating pod $name: $KAPI_STATUS $(head -c 300 "$KAPI_FILE")"
        POD_UID=""
        return 1
    fi
    POD_UID=$(json_get 'd["metadata"]["uid"]' "$KAPI_FILE")
}

