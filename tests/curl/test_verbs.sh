#!/usr/bin/env bash
# test_verbs.sh -- every extender verb with every kube-1.26 fixture in both nodeCacheCapable
# modes against a standalone daemon, plus the decisions the annotations drive, the byte-exact
# filter echo, --url-prefix, keep-alive, /metrics, /version and /readyz.
. "$(dirname "$0")/lib.sh"

NODES=(gpu-node-1 gpu-node-2 gpu-node-3)
FIX_ARGS=(filter.args filter.failed-nodes.args prioritize.args)
FIX_BIND=(bind.args bind.error.args)
A100=NVIDIA-A100-SXM4-80GB

start_daemon main || finish

# ---------------------------------------------------------------- the fixtures, verb by verb

for mode in false true; do
    for fx in "${FIX_ARGS[@]}"; do
        f=$RAW/$fx.nodecache-$mode.json

        begin "filter $fx nodecache-$mode"
        post filter "$f"
        assert_status 200
        if [[ $mode == false ]]; then
            assert_json "Error is empty" 'd["Error"]' ""
            assert_json "NodeNames is null in full-Nodes mode" 'd["NodeNames"]' null
            assert_json "FailedNodes is an empty map" 'd["FailedNodes"]' '{}'
            assert_json "FailedAndUnresolvableNodes is an empty map" 'd["FailedAndUnresolvableNodes"]' '{}'
            assert_json "Nodes.metadata is {}" 'd["Nodes"]["metadata"]' '{}'
            assert_echo "all three nodes pass, echoed byte for byte" "$f" "${NODES[@]}"
            assert_contains "Content-Type is JSON" "application/json" "$(grep -i '^content-type:' "$HDR_FILE")"
        else
            # No cluster cache yet: NodeNames requests must get a whole-call Error, never a guess.
            assert_error_reply "NodeNames mode answers with an Error" "nodeCacheCapable"
            assert_json "no NodeNames claimed" 'd.get("NodeNames")' null
        fi

        begin "prioritize $fx nodecache-$mode"
        post prioritize "$f"
        if [[ $mode == false ]]; then
            assert_status 200
            assert_json "a bare array of HostPriority, in request order" '[h["Host"] for h in d]' \
                '["gpu-node-1", "gpu-node-2", "gpu-node-3"]'
            assert_json "scores are integers 0..10" \
                'all(type(h["Score"]) is int and 0 <= h["Score"] <= 10 for h in d)' true
            # Default policy: binpack. 1 GPU of 8, 8, 4: round(10*1/8)=1, 1, round(10*1/4)=3.
            assert_json "binpack scores of a 1-GPU pod" '[h["Score"] for h in d]' '[1, 1, 3]'
            assert_json "exactly the keys Host and Score" 'sorted(set(k for h in d for k in h))' \
                '["Host", "Score"]'
        else
            # A non-200 (or any non-array) reply makes kube-scheduler ignore this extender's
            # scores for the cycle, which is the honest answer without a cache.
            assert_json_true "not a score list: the reply carries an Error" \
                'isinstance(d, dict) and isinstance(d.get("Error"), str) and "nodeCacheCapable" in d["Error"]'
            assert_ne "no 2xx other than 200" 201 "$STATUS"
            assert_json_true "status is 200 or 503" "$STATUS in (200, 503)"
        fi

        begin "bind with $fx nodecache-$mode (not ExtenderBindingArgs)"
        post bind "$f"
        assert_status 400 "ExtenderArgs posted to bind is refused"
        assert_error_reply "the Error names the missing field" "PodName"
    done

    for fx in "${FIX_BIND[@]}"; do
        f=$RAW/$fx.nodecache-$mode.json
        begin "bind $fx nodecache-$mode (standalone)"
        post bind "$f"
        assert_status 200
        assert_error_reply "standalone bind refuses with an Error" "standalone"
        assert_json "ExtenderBindingResult has only Error" 'sorted(d)' '["Error"]'

        begin "filter with $fx nodecache-$mode (not ExtenderArgs)"
        post filter "$f"
        assert_status 400
        assert_error_reply "the Error says what is missing" "Pod"
    done

    f=$RAW/preempt.args.nodecache-$mode.json
    begin "preempt nodecache-$mode: standalone, preemption needs the cluster cache"
    post preempt "$f"
    assert_status 503
    assert_error_reply "503 body is an Error naming the cache" "cluster cache"
    post filter "$f"
    assert_status 400 "ExtenderPreemptionArgs posted to filter"
    assert_error_reply "neither Nodes nor NodeNames" "neither"
done

begin "filter echo keeps the request's own formatting (pretty-printed fixture)"
f=$GX_FIXTURES/extender/filter.args.nodecache-false.json
post filter "$f"
assert_status 200
assert_echo "pretty-printed Node objects are echoed with their whitespace" "$f" "${NODES[@]}"

# ---------------------------------------------------------------- annotations and decisions

base=$RAW/filter.args.nodecache-false.json
V=$GX_TMP/variants
mkdir -p "$V"

# filter_case NAME PYCODE   -- derives $V/NAME.json from the base fixture and filters it
filter_case() {
    derive "$base" "$V/$1.json" "$2"
    post filter "$V/$1.json"
    assert_status 200
}

begin "gpu-model A100 matches NVIDIA-A100-SXM4-80GB (token match)"
filter_case model-a100 'annotate(d, "gpu-extender.io/gpu-model", "A100")'
assert_json "no Error" 'd["Error"]' ""
assert_echo "every node passes" "$V/model-a100.json" "${NODES[@]}"

begin "gpu-model a100-sxm4 (several tokens, any case) matches"
filter_case model-multi 'annotate(d, "gpu-extender.io/gpu-model", "a100-sxm4")'
assert_echo "every node passes" "$V/model-multi.json" "${NODES[@]}"

begin "gpu-model list 'H100, A100' matches the second entry"
filter_case model-list 'annotate(d, "gpu-extender.io/gpu-model", "H100, A100")'
assert_echo "every node passes" "$V/model-list.json" "${NODES[@]}"

begin "gpu-model H100 mismatches every node: FailedAndUnresolvableNodes naming the model"
filter_case model-h100 'annotate(d, "gpu-extender.io/gpu-model", "H100")'
assert_json "no Error" 'd["Error"]' ""
assert_echo "no node passes" "$V/model-h100.json"
assert_json "every node unresolvable" 'sorted(d["FailedAndUnresolvableNodes"])' \
    '["gpu-node-1", "gpu-node-2", "gpu-node-3"]'
assert_json "nothing in FailedNodes (preemption cannot change a model)" 'd["FailedNodes"]' '{}'
assert_json_true "the reason names the node's model" \
    "all('$A100' in r for r in d['FailedAndUnresolvableNodes'].values())"
assert_json_true "the reason names the annotation" \
    "all('gpu-extender.io/gpu-model' in r for r in d['FailedAndUnresolvableNodes'].values())"

begin "gpu-model A10 is not a token of NVIDIA-A100-SXM4-80GB"
filter_case model-a10 'annotate(d, "gpu-extender.io/gpu-model", "A10")'
assert_echo "no node passes" "$V/model-a10.json"
assert_json "every node unresolvable" 'len(d["FailedAndUnresolvableNodes"])' 3

begin "one T4 node among A100s: only it is rejected, the others echo around the gap"
filter_case model-gap 'annotate(d, "gpu-extender.io/gpu-model", "A100"); set_product(d, "gpu-node-2", "Tesla-T4")'
assert_echo "nodes 1 and 3 pass, byte for byte" "$V/model-gap.json" gpu-node-1 gpu-node-3
assert_json "node 2 unresolvable" 'sorted(d["FailedAndUnresolvableNodes"])' '["gpu-node-2"]'
assert_json_true "its reason names Tesla-T4" '"Tesla-T4" in d["FailedAndUnresolvableNodes"]["gpu-node-2"]'
assert_json "FailedNodes empty" 'd["FailedNodes"]' '{}'

begin "only the middle node fits"
filter_case model-middle 'annotate(d, "gpu-extender.io/gpu-model", "H100"); set_product(d, "gpu-node-2", "NVIDIA-H100-80GB-HBM3")'
assert_echo "node 2 alone passes" "$V/model-middle.json" gpu-node-2
assert_json "nodes 1 and 3 unresolvable" 'sorted(d["FailedAndUnresolvableNodes"])' '["gpu-node-1", "gpu-node-3"]'

begin "a node without a gpu.product label cannot satisfy a model requirement"
filter_case model-nolabel 'annotate(d, "gpu-extender.io/gpu-model", "A100"); del node_by_name(d, "gpu-node-1")["metadata"]["labels"]["nvidia.com/gpu.product"]'
assert_echo "nodes 2 and 3 pass" "$V/model-nolabel.json" gpu-node-2 gpu-node-3
assert_json_true "node 1 unresolvable, reason names the label" \
    '"nvidia.com/gpu.product" in d["FailedAndUnresolvableNodes"]["gpu-node-1"]'

begin "nvidia.com/use-gputype A100 (substring) passes"
filter_case use-a100 'annotate(d, "nvidia.com/use-gputype", "A100")'
assert_echo "every node passes" "$V/use-a100.json" "${NODES[@]}"

begin "nvidia.com/use-gputype H100 rejects every node"
filter_case use-h100 'annotate(d, "nvidia.com/use-gputype", "H100")'
assert_echo "no node passes" "$V/use-h100.json"
assert_json_true "reasons name the model and use-gputype" \
    "len(d['FailedAndUnresolvableNodes']) == 3 and all('$A100' in r and 'use-gputype' in r for r in d['FailedAndUnresolvableNodes'].values())"

begin "nvidia.com/nouse-gputype A100 rejects every node"
filter_case nouse-a100 'annotate(d, "nvidia.com/nouse-gputype", "a100")'
assert_echo "no node passes" "$V/nouse-a100.json"
assert_json_true "reasons name the model and nouse-gputype" \
    "len(d['FailedAndUnresolvableNodes']) == 3 and all('$A100' in r and 'nouse-gputype' in r for r in d['FailedAndUnresolvableNodes'].values())"

begin "nvidia.com/nouse-gputype H100 passes"
filter_case nouse-h100 'annotate(d, "nvidia.com/nouse-gputype", "H100")'
assert_echo "every node passes" "$V/nouse-h100.json" "${NODES[@]}"

begin "invalid strategy annotation: 200 with an Error"
filter_case strategy-bad 'annotate(d, "gpu-extender.io/strategy", "fastest")'
assert_error_reply "Error names the strategy annotation" "gpu-extender.io/strategy"
assert_error_reply "Error quotes the bad value" "fastest"
assert_json "Nodes is null with an Error" 'd["Nodes"]' null

begin "valid strategy annotations (any case) are accepted by filter"
filter_case strategy-ok 'annotate(d, "gpu-extender.io/strategy", "Spread")'
assert_json "no Error" 'd["Error"]' ""
assert_echo "every node passes" "$V/strategy-ok.json" "${NODES[@]}"

begin "a pod asking 6 GPUs: the 4-GPU node is unresolvable"
filter_case gpus-6 'set_gpus(d, "6")'
assert_echo "the 8-GPU nodes pass" "$V/gpus-6.json" gpu-node-1 gpu-node-2
assert_json "node 3 unresolvable" 'sorted(d["FailedAndUnresolvableNodes"])' '["gpu-node-3"]'
assert_json_true "the reason is about the GPU count" '"fewer nvidia.com/gpu" in d["FailedAndUnresolvableNodes"]["gpu-node-3"]'
assert_json "FailedNodes empty" 'd["FailedNodes"]' '{}'

begin "a pod asking 6 GPUs through requests only (limits unset)"
filter_case gpus-6-req 'set_gpus(d, "6", ("requests",)); [c["resources"].pop("limits") for c in d["Pod"]["spec"]["containers"]]'
assert_echo "the 8-GPU nodes pass" "$V/gpus-6-req.json" gpu-node-1 gpu-node-2
assert_json "node 3 unresolvable" 'sorted(d["FailedAndUnresolvableNodes"])' '["gpu-node-3"]'

begin "a pod asking 16 GPUs fits nowhere"
filter_case gpus-16 'set_gpus(d, "16")'
assert_echo "no node passes" "$V/gpus-16.json"
assert_json "every node unresolvable" 'len(d["FailedAndUnresolvableNodes"])' 3

begin "a node without nvidia.com/gpu is unresolvable for a GPU pod"
filter_case node-nogpu 'del node_by_name(d, "gpu-node-3")["status"]["allocatable"]["nvidia.com/gpu"]'
assert_echo "nodes 1 and 2 pass" "$V/node-nogpu.json" gpu-node-1 gpu-node-2
assert_json_true "node 3's reason" '"no nvidia.com/gpu" in d["FailedAndUnresolvableNodes"]["gpu-node-3"]'

begin "a pod without GPUs is not constrained"
filter_case gpus-0 '[c["resources"].pop(w).pop("nvidia.com/gpu") for c in d["Pod"]["spec"]["containers"] for w in ("limits",)]; [c["resources"]["requests"].pop("nvidia.com/gpu") for c in d["Pod"]["spec"]["containers"]]; annotate(d, "gpu-extender.io/gpu-model", "H100")'
assert_echo "every node passes" "$V/gpus-0.json" "${NODES[@]}"

# ---------------------------------------------------------------- prioritize strategies

pbase=$RAW/prioritize.args.nodecache-false.json
# scores_of FILE   -- the prioritize scores as "node=score ..." in request order
scores_of() {
    post prioritize "$1"
    assert_status 200 "prioritize $(basename "$1")"
    json_get '" ".join("%s=%s" % (h["Host"], h["Score"]) for h in d)'
}

begin "prioritize 4-GPU pod: binpack prefers the 4-GPU node, spread avoids it"
derive "$pbase" "$V/p-binpack4.json" 'set_gpus(d, "4"); annotate(d, "gpu-extender.io/strategy", "binpack")'
derive "$pbase" "$V/p-spread4.json" 'set_gpus(d, "4"); annotate(d, "gpu-extender.io/strategy", "spread")'
assert_eq "binpack scores" "gpu-node-1=5 gpu-node-2=5 gpu-node-3=10" "$(scores_of "$V/p-binpack4.json")"
assert_json "binpack: gpu-node-3 ranks first" 'max(d, key=lambda h: h["Score"])["Host"]' gpu-node-3
assert_eq "spread scores" "gpu-node-1=5 gpu-node-2=5 gpu-node-3=0" "$(scores_of "$V/p-spread4.json")"
assert_json "spread: gpu-node-3 ranks last" 'min(d, key=lambda h: h["Score"])["Host"]' gpu-node-3

begin "prioritize 1-GPU pod: binpack vs spread ordering"
derive "$pbase" "$V/p-binpack1.json" 'annotate(d, "gpu-extender.io/strategy", "BinPack")'
derive "$pbase" "$V/p-spread1.json" 'annotate(d, "gpu-extender.io/strategy", "spread")'
assert_eq "binpack scores" "gpu-node-1=1 gpu-node-2=1 gpu-node-3=3" "$(scores_of "$V/p-binpack1.json")"
assert_eq "spread scores" "gpu-node-1=9 gpu-node-2=9 gpu-node-3=8" "$(scores_of "$V/p-spread1.json")"

begin "prioritize gpu-model-preferred lifts the preferred model"
derive "$pbase" "$V/p-pref.json" 'annotate(d, "gpu-extender.io/gpu-model-preferred", "H100"); set_product(d, "gpu-node-1", "NVIDIA-H100-80GB-HBM3")'
scores_of "$V/p-pref.json" >/dev/null
assert_json "the H100 node scores highest" 'max(d, key=lambda h: h["Score"])["Host"]' gpu-node-1
assert_json_true "strictly above every other node" 'd[0]["Score"] > max(d[1]["Score"], d[2]["Score"])'

begin "prioritize a GPU-less pod: every node scores the same"
derive "$pbase" "$V/p-nogpu.json" '[c["resources"][w].pop("nvidia.com/gpu") for c in d["Pod"]["spec"]["containers"] for w in ("limits", "requests")]'
scores_of "$V/p-nogpu.json" >/dev/null
assert_json "all scores equal" 'len(set(h["Score"] for h in d))' 1

# ---------------------------------------------------------------- --url-prefix

begin "--url-prefix /gpu: verbs under /gpu, probes at the root"
start_daemon prefixed --url-prefix /gpu
post filter "$base"
assert_status 200 "POST /gpu/filter"
assert_echo "/gpu/filter echoes every node" "$base" "${NODES[@]}"
post prioritize "$pbase"
assert_status 200 "POST /gpu/prioritize"
assert_json "/gpu/prioritize answers three scores" 'len(d)' 3
post bind "$RAW/bind.args.nodecache-false.json"
assert_status 200 "POST /gpu/bind"
assert_error_reply "/gpu/bind answers the standalone Error" "standalone"
http POST /filter -H 'Content-Type: application/json' --data-binary "@$base"
assert_status 404 "POST /filter without the prefix"
http POST /gpufilter -H 'Content-Type: application/json' --data-binary "@$base"
assert_status 404 "POST /gpufilter (prefix is a path segment)"
http POST /gpu/gpu/filter -H 'Content-Type: application/json' --data-binary "@$base"
assert_status 404 "POST /gpu/gpu/filter"
http GET /healthz
assert_status 200 "GET /healthz at the root"
http GET /gpu/healthz
assert_status 404 "GET /gpu/healthz"
http GET /metrics
assert_status 200 "GET /metrics at the root"
stop_daemon prefixed
assert_eq "prefixed daemon exits 0 on SIGTERM" 0 "$EXIT_CODE"

begin "--url-prefix /gpu/ (trailing slash) serves /gpu/filter"
start_daemon prefixed2 --url-prefix /gpu/
post filter "$base"
assert_status 200 "POST /gpu/filter"
http POST /gpu//filter -H 'Content-Type: application/json' --data-binary "@$base"
assert_status 404 "POST /gpu//filter"
stop_daemon prefixed2
assert_eq "exits 0 on SIGTERM" 0 "$EXIT_CODE"
use_daemon main

# ---------------------------------------------------------------- keep-alive

begin "keep-alive: five requests on one connection, all answered"
out=$(curl -sS --max-time 20 -H 'Content-Type: application/json' --data-binary "@$base" \
    -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
    -w '%{http_code}:%{num_connects} ' \
    "$GX_URL/filter" "$GX_URL/prioritize" "$GX_URL/filter" "$GX_URL/prioritize" "$GX_URL/filter" 2>&1)
assert_eq "every reply 200; one connect, then reuse" "200:1 200:0 200:0 200:0 200:0 " "$out"

begin "keep-alive survives a 404 and a 400 on the same connection"
printf '{"Pod":' >"$V/truncated.json"
out=$(curl -sS --max-time 20 -H 'Content-Type: application/json' \
    --data-binary "@$base" -o /dev/null -w '%{http_code}:%{num_connects} ' "$GX_URL/filter" \
    --next -H 'Content-Type: application/json' --data-binary "@$base" -o /dev/null -w '%{http_code}:%{num_connects} ' "$GX_URL/nope" \
    --next -H 'Content-Type: application/json' --data-binary "@$V/truncated.json" -o /dev/null -w '%{http_code}:%{num_connects} ' "$GX_URL/filter" \
    --next -H 'Content-Type: application/json' --data-binary "@$base" -o /dev/null -w '%{http_code}:%{num_connects} ' "$GX_URL/filter" 2>&1)
assert_eq "200, 404, 400, 200 on one connection" "200:1 404:0 400:0 200:0 " "$out"

# ---------------------------------------------------------------- /metrics, /version, /readyz

begin "/metrics counters move"
M1=$GX_TMP/metrics.1
M2=$GX_TMP/metrics.2
metrics_snapshot "$M1"
post filter "$base"
post filter "$base"
post filter "$V/strategy-bad.json"
post filter "$V/model-h100.json"
post filter "$V/truncated.json"
post prioritize "$pbase"
post bind "$RAW/bind.args.nodecache-false.json"
http GET /nope
http GET /filter
metrics_snapshot "$M2"
http GET /metrics
assert_status 200
assert_contains "Prometheus text content type" "text/plain; version=0.0.4" "$(grep -i '^content-type:' "$HDR_FILE")"
R='gpu_extender_requests_total'
assert_eq "filter ok +3" 3 "$(metric_delta "$M1" "$M2" "$R{verb=\"filter\",outcome=\"ok\"}")"
assert_eq "filter error +1 (the Error reply)" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"filter\",outcome=\"error\"}")"
assert_eq "filter bad_request +1" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"filter\",outcome=\"bad_request\"}")"
assert_eq "filter bad_method +1 (GET /filter)" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"filter\",outcome=\"bad_method\"}")"
assert_eq "prioritize ok +1" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"prioritize\",outcome=\"ok\"}")"
assert_eq "bind error +1 (standalone)" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"bind\",outcome=\"error\"}")"
assert_eq "bind ok unchanged" 0 "$(metric_delta "$M1" "$M2" "$R{verb=\"bind\",outcome=\"ok\"}")"
assert_eq "other not_found +1" 1 "$(metric_delta "$M1" "$M2" "$R{verb=\"other\",outcome=\"not_found\"}")"
H='gpu_extender_request_duration_seconds'
assert_eq "filter duration count +6" 6 "$(metric_delta "$M1" "$M2" "${H}_count{verb=\"filter\"}")"
assert_eq "filter duration +Inf bucket +6" 6 "$(metric_delta "$M1" "$M2" "${H}_bucket{verb=\"filter\",le=\"+Inf\"}")"
assert_lt "filter duration sum grows" 0 "$(metric_delta "$M1" "$M2" "${H}_sum{verb=\"filter\"}")"
assert_eq "prioritize duration count +1" 1 "$(metric_delta "$M1" "$M2" "${H}_count{verb=\"prioritize\"}")"
assert_eq "bind duration count +1" 1 "$(metric_delta "$M1" "$M2" "${H}_count{verb=\"bind\"}")"
assert_eq "buckets are cumulative (le=5 <= +Inf)" ok "$(py '
m = prom(open(sys.argv[1]).read())
for v in ("filter", "prioritize", "bind", "other"):
    b = [(k, x) for k, x in m.items() if k.startswith("gpu_extender_request_duration_seconds_bucket{verb=\"%s\"" % v)]
    vals = [x for _, x in b]
    if vals != sorted(vals) or not vals:
        print("not cumulative for", v, b); sys.exit()
print("ok")' "$M2")"
assert_eq "bind result error/status 0 +1" 1 "$(metric_delta "$M1" "$M2" 'gpu_extender_bind_total{result="error",status="0"}')"
assert_eq "nodes passed +6" 6 "$(metric_delta "$M1" "$M2" gpu_extender_filter_nodes_passed_total)"
assert_eq "nodes unresolvable +3" 3 "$(metric_delta "$M1" "$M2" gpu_extender_filter_nodes_unresolvable_total)"
assert_eq "nodes failed +0" 0 "$(metric_delta "$M1" "$M2" gpu_extender_filter_nodes_failed_total)"

begin "/version"
http GET /version
assert_status 200
want=$("$GX_DAEMON" --version | awk '{print $2}')
assert_json "version matches gpu-extender --version" 'd["version"]' "$want"
assert_json_true "git describe is present" 'isinstance(d.get("git"), str) and d["git"] != ""'

begin "/readyz"
http GET /readyz
assert_status 200
assert_json "status ok" 'd["status"]' ok
assert_json "mode standalone" 'd["mode"]' standalone
http HEAD /healthz -I
assert_status 200 "HEAD /healthz"

finish
