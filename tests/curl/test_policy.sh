#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317 # wait_for evals command lines given in single quotes; policy_* are called by name
# test_policy.sh -- the policy file end to end, standalone (full-Nodes requests):
#   - gpu-extender --check-policy: each class of mistake is reported as file:line:col: key.path:
#     message at the right place, with exit 1; every shipped example passes with exit 0;
#   - rules select pods by namespace, labels and priorityClassName, first match wins; allow,
#     forbid and prefer steer filter and prioritize; pod annotations only narrow, and one the
#     rule does not permit is an Error;
#   - hot reload while serving, with filter requests running all along (every one must get 200
#     and a well-formed, self-consistent reply, and the verdict must flip exactly once per
#     applied change): a file edit seen by the watcher (--policy-watch-ms 100), an invalid file
#     refused (old policy keeps serving, counted, shown in /debug/policy), a deleted file, an
#     in-place rewrite, SIGHUP with the watcher off, and the ConfigMap "..data" symlink swap.
. "$(dirname "$0")/lib.sh"

A100=NVIDIA-A100-SXM4-80GB
FILTER=$RAW/filter.args.nodecache-false.json
P=$GX_TMP/p
mkdir -p "$P"
HEAD='apiVersion: gpu-extender.io/v1alpha1
kind: GPUPolicy'

# put FILE   -- writes stdin to FILE atomically (a new inode, renamed over the old one), the
# way editors that save safely and tools like `kubectl cp` do; the watcher never sees a
# half-written file
put() {
    cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}

# check_policy FILE   -- runs --check-policy; sets CP_OUT and CP_RC
check_policy() {
    CP_OUT=$("$GX_DAEMON" --check-policy "$1" 2>&1)
    CP_RC=$?
}

# policy_hash FILE   -- the hash --check-policy prints for a valid file
policy_hash() {
    "$GX_DAEMON" --check-policy "$1" | sed -n 's/.*hash \([0-9a-f]\{16\}\)).*/\1/p'
}

# verdicts   -- one line summarizing a filter reply: NAME=pass, NAME=F:reason
# (FailedNodes) or NAME=U:reason (FailedAndUnresolvable), in node-name order, or ERROR:...
verdicts() {
    json_get '"ERROR:" + d["Error"] if d.get("Error") else " ".join(sorted(
    [n["metadata"]["name"] + "=pass" for n in (d.get("Nodes") or {}).get("items") or []] +
    [k + "=F:" + v for k, v in (d.get("FailedNodes") or {}).items()] +
    [k + "=U:" + v for k, v in (d.get("FailedAndUnresolvableNodes") or {}).items()]))' "$BODY_FILE"
}

# debug_policy   -- GET /debug/policy into $DP (a file)
DP=$GX_TMP/debug-policy.json
debug_policy() {
    curl -s --max-time 5 -o "$DP" "$GX_URL/debug/policy"
}

# wait_for DESC TIMEOUT_S CMDLINE   -- evals CMDLINE (a shell command line) every 20 ms until
# it succeeds; records a failure after TIMEOUT_S. Sets WAITED_MS.
wait_for() {
    local desc=$1 t=$2 cmd=$3 start deadline
    start=$(_now_ms)
    deadline=$(_deadline "$t")
    while ! eval "$cmd"; do
        if ! _before "$deadline"; then
            WAITED_MS=$(($(_now_ms) - start))
            fail "$desc: not within ${t} s"
            return 1
        fi
        sleep 0.02
    done
    WAITED_MS=$(($(_now_ms) - start))
    pass "$desc (${WAITED_MS} ms)"
}

# filter_is EXPECTED_VERDICTS   -- one filter of the fixture; true when the verdicts match
filter_is() {
    post filter "$FILTER"
    [[ $STATUS == 200 && $(verdicts) == "$1" ]]
}

metric_now() { # metric_now SERIES -- from the current daemon
    metrics_snapshot "$GX_TMP/m.now"
    metric "$GX_TMP/m.now" "$1"
}

# ---------------------------------------------------------------- background load

# load_start NAME   -- filter requests against the current daemon, one after another, until
# load_stop NAME: each reply body and "seq http_code seconds" are kept for load_check
declare -A LOAD_PID LOAD_DIR
load_start() {
    local name=$1 dir=$GX_TMP/load-$1 url=$GX_URL$GX_PREFIX/filter
    mkdir -p "$dir"
    rm -f "$dir/stop"
    (
        i=0
        while [[ ! -e $dir/stop ]]; do
            i=$((i + 1))
            curl -s -o "$dir/$i.body" -w "$i %{http_code} %{time_total}\n" --max-time 5 \
                -H 'Content-Type: application/json' --data-binary "@$FILTER" "$url" >>"$dir/codes" 2>/dev/null ||
                echo "$i 000 curl-failed" >>"$dir/codes"
        done
    ) &
    LOAD_PID[$name]=$!
    LOAD_DIR[$name]=$dir
    _track "${LOAD_PID[$name]}"
}

# load_stop NAME EXPECTED_RUNS   -- stops the loop and checks every request: HTTP 200 within
# 1 s, valid JSON, Error "", each of the three fixture nodes exactly once (passed, FailedNodes or
# FailedAndUnresolvableNodes), all three with the same verdict (one policy decided the whole
# request). EXPECTED_RUNS is the sequence of verdicts the replies went through, in request
# order, consecutive repeats collapsed (e.g. "pass | U:gpu-extender: policy x: ... forbidden"):
# each applied change flips the verdict once and for good, and a refused one changes nothing.
load_stop() {
    local name=$1 want=$2 dir=${LOAD_DIR[$1]} out
    touch "$dir/stop"
    wait_exit "${LOAD_PID[$name]}" 10 || fail "load loop $name did not stop"
    out=$(py '
import os, re
d = sys.argv[1]
codes = [l.split() for l in open(os.path.join(d, "codes")).read().splitlines() if l.strip()]
bad, runs, slow = [], [], []
names = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
for rec in codes:
    i, code = rec[0], rec[1]
    if code != "200":
        bad.append("#%s: HTTP %s" % (i, " ".join(rec[1:]))); continue
    if float(rec[2]) > 1.0:
        slow.append("#%s: %s s" % (i, rec[2]))
    try:
        r = json.load(open(os.path.join(d, i + ".body"), "rb"))
    except Exception as e:
        bad.append("#%s: not JSON: %s" % (i, e)); continue
    if r.get("Error") != "":
        bad.append("#%s: Error %r" % (i, r.get("Error"))); continue
    v = {}
    for n in (r.get("Nodes") or {}).get("items") or []:
        v.setdefault(n["metadata"]["name"], []).append("pass")
    for k, x in (r.get("FailedNodes") or {}).items():
        v.setdefault(k, []).append("F:" + x)
    for k, x in (r.get("FailedAndUnresolvableNodes") or {}).items():
        v.setdefault(k, []).append("U:" + x)
    if sorted(v) != names or any(len(x) != 1 for x in v.values()):
        bad.append("#%s: nodes not partitioned: %s" % (i, v)); continue
    kinds = set(x[0] for x in v.values())
    if len(kinds) != 1:
        bad.append("#%s: mixed verdicts in one reply: %s" % (i, v)); continue
    k = kinds.pop()
    if not runs or runs[-1] != k:
        runs.append(k)
print("requests=%d" % len(codes))
print("bad=%d %s" % (len(bad), "; ".join(bad[:5])))
print("slow=%d %s" % (len(slow), "; ".join(slow[:5])))
print("runs=" + " | ".join(runs))
' "$dir")
    log "load $name: $(echo "$out" | head -n1)"
    local n
    n=$(sed -n 's/^requests=//p' <<<"$out")
    assert_lt "load $name: a steady stream of requests was sent" 20 "$n"
    assert_eq "load $name: every request answered 200 with a valid, consistent reply" "bad=0 " "$(grep '^bad=' <<<"$out")"
    assert_eq "load $name: every request answered within 1 s" "slow=0 " "$(grep '^slow=' <<<"$out")"
    assert_eq "load $name: verdicts in order, each applied change flipping once" "runs=$want" "$(grep '^runs=' <<<"$out")"
}

# ================================================================ --check-policy

# bad_policy NAME EXPECTED_LINE...   -- writes stdin to NAME.yaml, runs --check-policy, and
# checks exit 1 and that each expected "line:col: key.path: message start" is printed after
# the file name
bad_policy() {
    local name=$1 f=$P/$1.yaml exp
    shift
    cat >"$f"
    check_policy "$f"
    assert_eq "$name: exit 1" 1 "$CP_RC"
    for exp in "$@"; do
        assert_contains "$name: reports $exp" "$f:$exp" "$CP_OUT"
    done
    assert_not_contains "$name: no ok line" ": ok (" "$CP_OUT"
}

begin "--check-policy: an unknown key, with the keys known there"
bad_policy unknown-key "4:3: scoring.strategi: unknown key" <<EOF
$HEAD
scoring:
  strategi: binpack
EOF
assert_contains "names the known keys" "known keys here: strategy, weights" "$CP_OUT"

begin "--check-policy: an unknown key in a rule and in a class"
bad_policy unknown-key-deep "5:5: classes[0].product: unknown key" "9:7: rules[0].match.namespace: unknown key" <<EOF
$HEAD
classes:
  - name: a100
    product: [NVIDIA-A100-SXM4-80GB]
rules:
  - name: r
    match:
      namespace: [x]
EOF

begin "--check-policy: wrong types"
bad_policy wrong-type "5:12: scoring.weights.model: expected an integer" "7:11: podOverrides.models:" \
    "10:15: classes[0].products:" <<EOF
$HEAD
scoring:
  weights:
    model: "4"
podOverrides:
  models: yes
classes:
  - name: x
    products: Tesla-T4
EOF

begin "--check-policy: values out of range, and a bad enum value"
bad_policy out-of-range "5:15: scoring.weights.freeGPUs: must be 0..100, got 250" \
    "6:15: scoring.weights.topology: must be 0..100, got -1" "7:13: scoring.strategy:" <<EOF
$HEAD
scoring:
  weights:
    freeGPUs: 250
    topology: -1
  strategy: pack
EOF

begin "--check-policy: out-of-range rule values (prefer weight, topology)"
bad_policy rule-range "12:17: rules[0].prefer[0].weight: must be" "14:16: rules[0].topology.require:" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
rules:
  - name: r
    match: {namespaces: [n]}
    allow: [a]
    prefer:
      - class: a
        weight: 101
    topology:
      require: NVSwitch
EOF

begin "--check-policy: a duplicate class name points at the first"
bad_policy dup-class "6:11: classes[1].name: duplicate class name \"a\" (first at line 4)" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
  - name: a
    products: [y]
EOF

begin "--check-policy: a reference to an undefined class, wherever it is"
bad_policy undefined-class "9:13: rules[0].allow[0]: undefined class \"nosuch\"" \
    "10:17: rules[0].forbid[1]: undefined class \"gone\"" "12:12: default.forbid[0]: undefined class \"t5\"" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
rules:
  - name: r
    match: {namespaces: [n]}
    allow: [nosuch]
    forbid: [a, gone]
default:
  forbid: [t5]
EOF
assert_contains "lists the classes defined" "defined classes: a" "$CP_OUT"

begin "--check-policy: a rule shadowed by an earlier one can never match"
bad_policy shadowed "10:5: rules[1]: can never match: rule \"wide\" (line 7) selects every pod this one does" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
rules:
  - name: wide
    match: {namespaces: [n, m]}
    forbid: [a]
  - name: narrow
    match:
      namespaces: [n]
      labels: {team: x}
    allow: [a]
EOF

begin "--check-policy: an empty selector list can never match"
bad_policy empty-selector "5:25: rules[0].match.namespaces: empty, so the rule can never match" <<EOF
$HEAD
rules:
  - name: r1
    match: {namespaces: []}
EOF

begin "--check-policy: a rule that allows nothing"
bad_policy allows-nothing "9:12: rules[0].allow: allows nothing: every class in it is also in forbid" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
rules:
  - name: r1
    match: {namespaces: [n]}
    allow: [a]
    forbid: [a]
EOF

begin "--check-policy: a duplicate rule name, a preference that can never apply, all weights 0"
bad_policy dup-rule "6:11: rules[1].name: duplicate rule name \"r\" (first at line 4)" <<EOF
$HEAD
rules:
  - name: r
    match: {namespaces: [n]}
  - name: r
    match: {namespaces: [m]}
EOF
bad_policy pref-never "13:16: rules[0].prefer[0].class: can never apply: class \"b\" is not in allow" <<EOF
$HEAD
classes:
  - name: a
    products: [x]
  - name: b
    products: [y]
rules:
  - name: r
    match: {namespaces: [n]}
    allow: [a]
    prefer:
      - class: b
EOF
bad_policy weights-zero "4:12: scoring.weights: every weight is 0" <<EOF
$HEAD
scoring:
  weights: {freeGPUs: 0, model: 0, topology: 0}
EOF

begin "--check-policy: an empty file, two YAML documents"
bad_policy empty "1:1: the policy is empty" </dev/null
bad_policy two-docs "3:1: only one YAML document is allowed" <<EOF
$HEAD
---
kind: GPUPolicy
EOF

begin "--check-policy: every error in one run, in file order"
bad_policy many "4:3: scoring.strategi: unknown key" "8:11: classes[1].name: duplicate class name" \
    "13:13: rules[0].allow[0]: undefined class" <<EOF
$HEAD
scoring:
  strategi: binpack
classes:
  - name: a
    products: [x]
  - name: a
    products: [y]
rules:
  - name: r
    match: {namespaces: [n]}
    allow: [zz]
EOF
assert_eq "three lines, one per error, each file:line:col: path: message" 3 \
    "$(grep -cE "^$P/many.yaml:[0-9]+:[0-9]+: [A-Za-z][^:]*: .+" <<<"$CP_OUT")"

begin "--check-policy: missing apiVersion/kind, bad YAML, a missing file"
bad_policy no-header "" <<EOF
scoring:
  strategy: spread
EOF
assert_contains "apiVersion required" "apiVersion" "$CP_OUT"
assert_contains "kind required" "kind" "$CP_OUT"
bad_policy bad-yaml "" <<EOF
$HEAD
scoring: {strategy: binpack
EOF
assert_eq "bad YAML: one message" 1 "$(grep -c . <<<"$CP_OUT")"
assert_contains "with a line:col" "$P/bad-yaml.yaml:" "$CP_OUT"
check_policy "$P/does-not-exist.yaml"
assert_eq "a missing file: exit 1" 1 "$CP_RC"
assert_contains "a missing file is named" "does-not-exist.yaml" "$CP_OUT"

begin "--check-policy: policy/default.yaml and every file in policy/examples/ pass"
n_examples=0
for f in "$GX_SOURCE_DIR"/policy/default.yaml "$GX_SOURCE_DIR"/policy/examples/*.yaml "$GX_SOURCE_DIR"/policy/examples/*.yml; do
    [[ -e $f ]] || continue
    check_policy "$f"
    assert_eq "$(basename "$f"): exit 0" 0 "$CP_RC"
    assert_contains "$(basename "$f"): ok line" "$f: ok (" "$CP_OUT"
    assert_eq "$(basename "$f"): one line" 1 "$(grep -c . <<<"$CP_OUT")"
    n_examples=$((n_examples + 1))
done
assert_lt "there are examples" 1 "$n_examples"

begin "the ConfigMap in manifests/ ships policy/default.yaml"
# The block scalar under "policy.yaml: |", de-indented, must load to the same policy as
# policy/default.yaml (its own header comment aside), so both print the same settings.
py '
import sys
lines = open(sys.argv[1]).read().splitlines()
start = lines.index("  policy.yaml: |") + 1
open(sys.argv[2], "w").write("\n".join(l[4:] for l in lines[start:]) + "\n")
' "$GX_SOURCE_DIR/manifests/21-policy.yaml" "$P/configmap-policy.yaml"
cmp_default=$(grep -v '^#' "$GX_SOURCE_DIR/policy/default.yaml")
cmp_configmap=$(grep -v '^#' "$P/configmap-policy.yaml")
assert_eq "same content as policy/default.yaml" "$cmp_default" "$cmp_configmap"
check_policy "$P/configmap-policy.yaml"
assert_eq "the ConfigMap's policy passes --check-policy" 0 "$CP_RC"

begin "the daemon refuses to start on an invalid policy, naming the problem"
"$GX_DAEMON" --listen 127.0.0.1:0 --policy "$P/shadowed.yaml" >"$GX_TMP/refuse.log" 2>&1 </dev/null &
refuse_pid=$!
_track "$refuse_pid"
wait_exit "$refuse_pid" 10
assert_ne "exits non-zero" 0 "$EXIT_CODE"
assert_contains "logs the error with line:col" "shadowed.yaml:10:5" "$(cat "$GX_TMP/refuse.log")"

# ================================================================ rules steer filter/prioritize

put "$P/rules.yaml" <<EOF
$HEAD
classes:
  - name: a100
    products: ["NVIDIA-A100*"]
  - name: h100
    products: ["NVIDIA-H100*"]
  - name: t4
    products: ["Tesla-T4"]
rules:
  - name: by-label
    match: {labels: {team: vision}}
    allow: [h100]
  - name: by-priority
    match: {priorityClassNames: [batch-low]}
    forbid: [a100]
  - name: by-namespace
    match: {namespaces: [ml-train]}
    allow: [a100, h100]
    prefer:
      - class: h100
      - class: a100
    podOverrides: {models: false}
default:
  forbid: [t4]
EOF
start_daemon rules --policy "$P/rules.yaml" || finish
# The fixture's three A100 nodes become one of each: node-1 A100, node-2 T4, node-3 H100.
MIX=$GX_TMP/mix.json
derive "$FILTER" "$MIX" "set_product(d, 'gpu-node-2', 'Tesla-T4-SHARED'); set_product(d, 'gpu-node-3', 'NVIDIA-H100-80GB-HBM3')"
H100=NVIDIA-H100-80GB-HBM3

# pod_variant NAME PYCODE   -- $GX_TMP/NAME.json from MIX with the Pod edited by PYCODE (p is
# the Pod)
pod_variant() {
    derive "$MIX" "$GX_TMP/$1.json" "p = d['Pod']; $2"
}

# expect_filter DESC FILE EXPECTED_VERDICTS
expect_filter() {
    post filter "$2"
    assert_status 200 "$1: 200"
    assert_eq "$1" "$3" "$(verdicts)"
}

begin "rules: a pod no rule selects gets the default rule (T4 forbidden)"
expect_filter "default rule" "$MIX" \
    "gpu-node-1=pass gpu-node-2=U:gpu-extender: policy default: model Tesla-T4 forbidden gpu-node-3=pass"

begin "rules: selected by a label"
pod_variant label 'p["metadata"]["labels"]["team"] = "vision"'
expect_filter "by-label allows only h100" "$GX_TMP/label.json" \
    "gpu-node-1=U:gpu-extender: policy by-label: model $A100 not allowed gpu-node-2=U:gpu-extender: policy by-label: model Tesla-T4 not allowed gpu-node-3=pass"

begin "rules: selected by priorityClassName; a rule replaces the default entirely"
pod_variant prio 'p["spec"]["priorityClassName"] = "batch-low"'
expect_filter "by-priority forbids a100, and T4 is no longer forbidden" "$GX_TMP/prio.json" \
    "gpu-node-1=U:gpu-extender: policy by-priority: model $A100 forbidden gpu-node-2=pass gpu-node-3=pass"

begin "rules: selected by namespace, and prefer ranks classes in prioritize"
pod_variant ns 'p["metadata"]["namespace"] = "ml-train"'
expect_filter "by-namespace allows a100 and h100" "$GX_TMP/ns.json" \
    "gpu-node-1=pass gpu-node-2=U:gpu-extender: policy by-namespace: model Tesla-T4 not allowed gpu-node-3=pass"
derive "$GX_TMP/ns.json" "$GX_TMP/ns-prio.json" "d['Nodes']['items'] = [n for n in d['Nodes']['items'] if n['metadata']['name'] != 'gpu-node-2']"
post prioritize "$GX_TMP/ns-prio.json"
assert_status 200
# binpack, 1 GPU: node-1 (A100, 8 GPUs) f = 1/8, node-3 (H100, 4 GPUs) f = 1/4. h100 is first
# of two preferences (weight 100): round(10*(0.25+4*1)/5) = round(8.5) = 9; a100 second
# (weight 50): round(10*(0.125+4*0.5)/5) = round(4.25) = 4.
assert_json "h100 scores 9, a100 4" '[(h["Host"], h["Score"]) for h in d]' '[["gpu-node-1", 4], ["gpu-node-3", 9]]'
post prioritize "$MIX"
# The default rule has no preference: binpack alone, 1 of 8, 8, 4 GPUs -> 1, 1, 3.
assert_json "default rule: free GPUs alone" '[h["Score"] for h in d]' '[1, 1, 3]'

begin "rules: the first matching rule wins (label before namespace)"
pod_variant ns-label 'p["metadata"]["namespace"] = "ml-train"; p["metadata"]["labels"]["team"] = "vision"'
expect_filter "by-label, listed first, applies" "$GX_TMP/ns-label.json" \
    "gpu-node-1=U:gpu-extender: policy by-label: model $A100 not allowed gpu-node-2=U:gpu-extender: policy by-label: model Tesla-T4 not allowed gpu-node-3=pass"

begin "rules: pod annotations only narrow; forbidden stays forbidden"
pod_variant ann-h100 'annotate(d, "gpu-extender.io/gpu-model", "H100")'
expect_filter "gpu-model H100 narrows the default rule" "$GX_TMP/ann-h100.json" \
    "gpu-node-1=U:gpu-extender: model $A100 not in gpu-extender.io/gpu-model gpu-node-2=U:gpu-extender: policy default: model Tesla-T4 forbidden gpu-node-3=pass"
pod_variant ann-t4 'annotate(d, "gpu-extender.io/gpu-model", "Tesla-T4")'
expect_filter "asking for the forbidden T4 does not reach it" "$GX_TMP/ann-t4.json" \
    "gpu-node-1=U:gpu-extender: model $A100 not in gpu-extender.io/gpu-model gpu-node-2=U:gpu-extender: policy default: model Tesla-T4 forbidden gpu-node-3=U:gpu-extender: model $H100 not in gpu-extender.io/gpu-model"
pod_variant hami 'annotate(d, "nvidia.com/use-gputype", "T4,A100")'
expect_filter "HAMi's use-gputype narrows too, T4 stays forbidden" "$GX_TMP/hami.json" \
    "gpu-node-1=pass gpu-node-2=U:gpu-extender: policy default: model Tesla-T4 forbidden gpu-node-3=U:gpu-extender: model $H100 not in nvidia.com/use-gputype"

begin "rules: an annotation the rule does not permit is an Error for the whole call"
pod_variant ns-ann 'p["metadata"]["namespace"] = "ml-train"; annotate(d, "gpu-extender.io/gpu-model", "A100")'
post filter "$GX_TMP/ns-ann.json"
assert_status 200
assert_error_reply "names the annotation, the rule and the key" "gpu-extender.io/gpu-model is not allowed by policy rule by-namespace (podOverrides.models)"
assert_json "no node claimed" '(d.get("Nodes") or {}).get("items") or d.get("NodeNames")' null
pod_variant ns-hami 'p["metadata"]["namespace"] = "ml-train"; annotate(d, "nvidia.com/nouse-gputype", "T4")'
post filter "$GX_TMP/ns-hami.json"
assert_error_reply "HAMi's annotations count as model overrides" "podOverrides.models"
pod_variant ns-pref 'p["metadata"]["namespace"] = "ml-train"; annotate(d, "gpu-extender.io/gpu-model-preferred", "A100")'
post filter "$GX_TMP/ns-pref.json"
assert_json "gpu-model-preferred is still allowed there (podOverrides.preferred inherited)" 'd["Error"]' ""
stop_daemon rules
assert_eq "exits 0" 0 "$EXIT_CODE"

# ================================================================ hot reload: the file watcher

# Three versions of a policy, each deciding the fixture's three A100 nodes differently.
V_PASS="pass"
V_FORBID="U:gpu-extender: policy lockdown: model $A100 forbidden"
V_NOTALLOWED="U:gpu-extender: policy t4-only: model $A100 not allowed"
all3() { echo "gpu-node-1=$1 gpu-node-2=$1 gpu-node-3=$1"; }
CLASSES='classes:
  - name: a100
    products: ["NVIDIA-A100*"]
  - name: t4
    products: ["Tesla-T4"]'
policy_v1() { printf '%s\n%s\ndefault:\n  forbid: [t4]\n' "$HEAD" "$CLASSES"; }
policy_v2() { # forbid the model the fixture nodes have, for namespace default
    printf '%s\n%s\nrules:\n  - name: lockdown\n    match: {namespaces: [default]}\n    forbid: [a100]\ndefault:\n  forbid: [t4]\n' "$HEAD" "$CLASSES"
}
policy_v3() { # allow only T4, for pods labelled app=gpu-test (the fixture pod)
    printf '%s\n%s\nrules:\n  - name: t4-only\n    match: {labels: {app: gpu-test}}\n    allow: [t4]\n' "$HEAD" "$CLASSES"
}
policy_bad() { # v2 with a typo: must be refused whole
    policy_v2
    printf 'scoring:\n  weights:\n    modle: 3\n'
}
for v in v1 v2 v3 bad; do
    "policy_$v" >"$P/$v.yaml"
done
H1=$(policy_hash "$P/v1.yaml")
H2=$(policy_hash "$P/v2.yaml")
H3=$(policy_hash "$P/v3.yaml")

WATCHED=$P/watched.yaml
policy_v1 | put "$WATCHED"
start_daemon watch --policy "$WATCHED" --policy-watch-ms 100 || finish

begin "reload: the initial policy is shown by /debug/policy, /readyz and /metrics"
debug_policy
assert_json "source is the path given" 'd["source"]' "$WATCHED" "$DP"
assert_json "hash is the file's" 'd["hash"]' "$H1" "$DP"
assert_json "no reloads yet" '[d["reloads"], d["reloadFailures"], d["lastReloadError"]]' '[0, 0, ""]' "$DP"
assert_json "the file's text" 'd["text"]' "$(cat "$WATCHED")" "$DP"
assert_json "loadedAt is an RFC 3339 UTC time" '__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["loadedAt"]) is not None' true "$DP"
http GET /readyz
assert_json "readyz policyHash" 'd["policyHash"]' "$H1"
assert_eq "reloads_total 0" 0 "$(metric_now gpu_extender_policy_reloads_total)"
assert_eq "reload_failures_total 0" 0 "$(metric_now gpu_extender_policy_reload_failures_total)"
post filter "$FILTER"
assert_eq "every fixture node passes" "$(all3 pass)" "$(verdicts)"

load_start watch

begin "reload: an edited file is applied within 2 s while requests keep flowing"
sleep 0.3
policy_v2 | put "$WATCHED"
wait_for "the filter verdict flipped to forbidden" 2 'filter_is "$(all3 "$V_FORBID")"'
debug_policy
assert_json "/debug/policy shows the new hash" 'd["hash"]' "$H2" "$DP"
assert_json "reloads 1, failures 0" '[d["reloads"], d["reloadFailures"], d["lastReloadError"]]' '[1, 0, ""]' "$DP"
assert_json "the new rule is listed" '[(r["name"], r["forbid"], r["match"]) for r in d["rules"]]' \
    '[["lockdown", ["a100"], {"namespaces": ["default"]}]]' "$DP"
assert_json "the text is the new file" 'd["text"]' "$(cat "$WATCHED")" "$DP"
assert_eq "reloads_total 1" 1 "$(metric_now gpu_extender_policy_reloads_total)"
http GET /readyz
assert_json "readyz policyHash follows" 'd["policyHash"]' "$H2"
assert_contains "logged with the reason" "msg=\"reloaded\" why=\"file changed\"" "$(cat "${D_LOG[watch]}")"

begin "reload: an invalid file is refused; the old policy keeps serving"
sleep 0.3
put "$WATCHED" <"$P/bad.yaml"
wait_for "reload_failures_total reached 1" 2 '[[ $(metric_now gpu_extender_policy_reload_failures_total) == 1 ]]'
debug_policy
assert_json "still the previous hash" 'd["hash"]' "$H2" "$DP"
assert_json "reloads 1, failures 1" '[d["reloads"], d["reloadFailures"]]' '[1, 1]' "$DP"
assert_json_true "lastReloadError names file:line:col and the key" \
    'd["lastReloadError"].startswith("'"$WATCHED"':16:5: scoring.weights.modle: unknown key")' "$DP"
assert_json "the text shown is the active policy's, not the refused file's" 'd["text"]' "$(cat "$P/v2.yaml")" "$DP"
assert_eq "reloads_total unchanged" 1 "$(metric_now gpu_extender_policy_reloads_total)"
sleep 0.5
post filter "$FILTER"
assert_eq "filter behaviour unchanged" "$(all3 "$V_FORBID")" "$(verdicts)"
assert_eq "refused exactly once (not again at every poll)" 1 "$(metric_now gpu_extender_policy_reload_failures_total)"
assert_contains "the refusal is logged" "reload refused; the old policy stays active" "$(cat "${D_LOG[watch]}")"

begin "reload: a deleted file keeps the active policy; a new file is applied"
rm -f "$WATCHED"
sleep 0.5
post filter "$FILTER"
assert_eq "still serving the active policy" "$(all3 "$V_FORBID")" "$(verdicts)"
assert_eq "a missing file is not a refused reload" 1 "$(metric_now gpu_extender_policy_reload_failures_total)"
policy_v3 | put "$WATCHED"
wait_for "the v3 verdict (not allowed) is served" 2 'filter_is "$(all3 "$V_NOTALLOWED")"'
debug_policy
assert_json "hash v3, reloads 2, the error cleared" '[d["hash"], d["reloads"], d["reloadFailures"], d["lastReloadError"]]' \
    "[\"$H3\", 2, 1, \"\"]" "$DP"

begin "reload: an in-place rewrite of the same inode is applied"
sleep 0.3
ino0=$(stat -c %i "$WATCHED")
policy_v2 >"$WATCHED"
assert_eq "same inode" "$ino0" "$(stat -c %i "$WATCHED")"
wait_for "the v2 verdict is served again" 2 'filter_is "$(all3 "$V_FORBID")"'
debug_policy
assert_json "hash v2" 'd["hash"]' "$H2" "$DP"
sleep 0.3

load_stop watch "$V_PASS | $V_FORBID | $V_NOTALLOWED | $V_FORBID"

begin "reload: the same bytes again are not a reload"
reloads0=$(json_get 'd["reloads"]' "$DP")
policy_v2 | put "$WATCHED"
sleep 0.6
debug_policy
assert_json "reloads unchanged" 'd["reloads"]' "$reloads0" "$DP"
assert_contains "logged as unchanged" "reload: the file is unchanged" "$(cat "${D_LOG[watch]}")"
stop_daemon watch
assert_eq "exits 0" 0 "$EXIT_CODE"

# ================================================================ hot reload: SIGHUP

HUPPED=$P/hupped.yaml
policy_v1 | put "$HUPPED"
start_daemon hup --policy "$HUPPED" --policy-watch-ms 0 || finish
load_start hup

begin "SIGHUP: with the watcher off (--policy-watch-ms 0) a change waits for the signal"
sleep 0.3
policy_v2 | put "$HUPPED"
sleep 0.8
post filter "$FILTER"
assert_eq "not applied without SIGHUP" "$(all3 pass)" "$(verdicts)"
debug_policy
assert_json "no reload yet" '[d["hash"], d["reloads"]]' "[\"$H1\", 0]" "$DP"
kill -HUP "${D_PID[hup]}"
wait_for "applied after SIGHUP" 2 'filter_is "$(all3 "$V_FORBID")"'
debug_policy
assert_json "hash v2, reloads 1" '[d["hash"], d["reloads"], d["reloadFailures"]]' "[\"$H2\", 1, 0]" "$DP"
assert_contains "logged as a SIGHUP reload" "msg=\"reloaded\" why=\"SIGHUP\"" "$(cat "${D_LOG[hup]}")"

begin "SIGHUP: an unchanged file is not a reload"
sleep 0.2
kill -HUP "${D_PID[hup]}"
wait_for "logged as unchanged" 2 'grep -q "reload: the file is unchanged\" why=\"SIGHUP\"" "${D_LOG[hup]}"'
assert_eq "reloads_total 1" 1 "$(metric_now gpu_extender_policy_reloads_total)"

begin "SIGHUP: an invalid file is refused"
sleep 0.2
put "$HUPPED" <"$P/bad.yaml"
kill -HUP "${D_PID[hup]}"
wait_for "reload_failures_total 1" 2 '[[ $(metric_now gpu_extender_policy_reload_failures_total) == 1 ]]'
debug_policy
assert_json "still v2, failure counted, error shown" '[d["hash"], d["reloads"], d["reloadFailures"], "modle" in d["lastReloadError"]]' \
    "[\"$H2\", 1, 1, true]" "$DP"
post filter "$FILTER"
assert_eq "filter behaviour unchanged" "$(all3 "$V_FORBID")" "$(verdicts)"

begin "SIGHUP: a valid file after a refused one is applied"
policy_v3 | put "$HUPPED"
kill -HUP "${D_PID[hup]}"
wait_for "v3 served" 2 'filter_is "$(all3 "$V_NOTALLOWED")"'
debug_policy
assert_json "hash v3, reloads 2, failures 1, error cleared" '[d["hash"], d["reloads"], d["reloadFailures"], d["lastReloadError"]]' \
    "[\"$H3\", 2, 1, \"\"]" "$DP"
sleep 0.3
load_stop hup "$V_PASS | $V_FORBID | $V_NOTALLOWED"
stop_daemon hup
assert_eq "exits 0" 0 "$EXIT_CODE"

# ================================================================ hot reload: ConfigMap volume

# A ConfigMap volume as the kubelet writes it: the files live in a timestamped directory,
# "..data" is a symlink to it, and the visible file is a symlink through "..data". An update
# writes a new directory and renames a new "..data" symlink over the old one (atomic).
CM=$P/configmap
mkdir -p "$CM/..v1"
policy_v1 >"$CM/..v1/policy.yaml"
ln -s ..v1 "$CM/..data"
ln -s ..data/policy.yaml "$CM/policy.yaml"
cm_swap() { # cm_swap VERSION_DIR FILE_CONTENT_SOURCE
    mkdir -p "$CM/$1"
    cp "$2" "$CM/$1/policy.yaml"
    ln -s "$1" "$CM/..data_tmp"
    mv -T "$CM/..data_tmp" "$CM/..data"
}
start_daemon cm --policy "$CM/policy.yaml" --policy-watch-ms 100 || finish
load_start cm

begin "ConfigMap: the ..data symlink swap is applied within 2 s"
sleep 0.3
cm_swap ..v2 "$P/v2.yaml"
rm -rf "$CM/..v1" # the kubelet removes the old directory after the swap
wait_for "v2 served" 2 'filter_is "$(all3 "$V_FORBID")"'
debug_policy
assert_json "source is the path given (the symlink)" 'd["source"]' "$CM/policy.yaml" "$DP"
assert_json "hash v2, reloads 1" '[d["hash"], d["reloads"]]' "[\"$H2\", 1]" "$DP"

begin "ConfigMap: a swap to an invalid policy is refused"
sleep 0.3
cm_swap ..v3 "$P/bad.yaml"
wait_for "reload_failures_total 1" 2 '[[ $(metric_now gpu_extender_policy_reload_failures_total) == 1 ]]'
debug_policy
assert_json "still v2" '[d["hash"], d["reloads"], d["reloadFailures"]]' "[\"$H2\", 1, 1]" "$DP"
assert_json_true "lastReloadError set" 'd["lastReloadError"] != ""' "$DP"

begin "ConfigMap: the next valid swap is applied"
sleep 0.3
cm_swap ..v4 "$P/v3.yaml"
wait_for "v3 served" 2 'filter_is "$(all3 "$V_NOTALLOWED")"'
debug_policy
assert_json "hash v3, reloads 2, error cleared" '[d["hash"], d["reloads"], d["lastReloadError"]]' "[\"$H3\", 2, \"\"]" "$DP"
sleep 0.3
load_stop cm "$V_PASS | $V_FORBID | $V_NOTALLOWED"

finish
