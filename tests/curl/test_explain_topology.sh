#!/usr/bin/env bash
# test_explain_topology.sh -- GPU topology and /debug/explain against tests/fake_apiserver.py.
#
# The fake is seeded with the fixture nodes plus four with interconnect annotations:
#   nv-island  8 x H100, two NVLink islands: 0-3 NV2 among themselves, 4-7 the same, SYS across
#   pcie-box   4 x L40S, PCIe: 0-1 PIX, 2-3 PIX, SYS across
#   hami-t4    4 x T4, HAMi's hami.io/node-nvidia-score: h0-h1 and h2-h3 score 200 (NVLink)
#   bad-topo   8 x A100 with a malformed gpu-extender.io/topology (a duplicate GPU index)
# and the daemon runs a policy whose rule nvlink-4 (namespace default) requires NVLink between
# all GPUs of pods asking 4 or more; the default rule forbids T4.
#
# Checked: /debug/nodes topology (masks, takenUnnamed, topologyError) and the invalid-topology
# metric and log (once); NodeNames filter reasons for the requirement (never / not now / no
# topology); prioritize's interconnect part; the GPU sets bind records on the pod
# (gpu-extender.io/gpus, gpu-uuids, policy-rule) and their look-ahead (keep NVLink groups
# whole); gpus-in-use on the node; /debug/explain by GET (a pending pod in the cache) and POST;
# explain's 404s, standalone included.
. "$(dirname "$0")/lib.sh"

require_file "$GX_SOURCE_DIR/tests/fake_apiserver.py" "the fake API server"

K=$GX_TMP/k
mkdir -p "$K"
H100=NVIDIA-H100-80GB-HBM3

# ---------------------------------------------------------------- the cluster

py '
node = json.load(open(sys.argv[1], "rb"))
for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
    node["metadata"].pop(k, None)

def mk(name, gpus, product, ann):
    n = json.loads(json.dumps(node))
    md = n["metadata"]
    md["name"] = name
    md["labels"]["kubernetes.io/hostname"] = name
    md["labels"]["nvidia.com/gpu.product"] = product
    md["labels"]["nvidia.com/gpu.count"] = str(gpus)
    md["annotations"] = ann
    for w in ("allocatable", "capacity"):
        n["status"][w]["nvidia.com/gpu"] = str(gpus)
    return n

def nvlink_islands():
    gpus = [{"index": i, "uuid": "GPU-isl-%d" % i, "numa": i // 4, "healthy": True} for i in range(8)]
    links = [[a, b, "NV2"] for base in (0, 4) for a in range(base, base + 4) for b in range(a + 1, base + 4)]
    return json.dumps({"gpus": gpus, "links": links}, separators=(",", ":"))

pcie = json.dumps({"gpus": [{"index": i, "uuid": "GPU-pcie-%d" % i, "numa": 0} for i in range(4)],
                   "links": [[0, 1, "PIX"], [2, 3, "PIX"]]}, separators=(",", ":"))
hami = json.dumps([{"uuid": "GPU-h%d" % i, "score": {"GPU-h%d" % (i ^ 1): 200}} for i in range(4)],
                  separators=(",", ":"))
bad = "{\"gpus\":[{\"index\":0},{\"index\":0}]}"
nodes = [mk("nv-island", 8, sys.argv[3], {"gpu-extender.io/topology": nvlink_islands()}),
         mk("pcie-box", 4, "NVIDIA-L40S", {"gpu-extender.io/topology": pcie}),
         mk("hami-t4", 4, "Tesla-T4", {"hami.io/node-nvidia-score": hami}),
         mk("bad-topo", 8, "NVIDIA-A100-SXM4-80GB", {"gpu-extender.io/topology": bad})]
json.dump({"nodes": nodes}, open(sys.argv[2], "w"))
' "$APIRAW/get-node.200.json" "$K/seed.json" "$H100" || fail "cannot write the seed"

POLICY=$K/policy.yaml
cat >"$POLICY" <<'EOF'
apiVersion: gpu-extender.io/v1alpha1
kind: GPUPolicy
classes:
  - name: t4
    products: ["Tesla-T4"]
rules:
  - name: nvlink-4
    match: {namespaces: [default]}
    topology:
      minGPUs: 4
      require: NVLink
default:
  forbid: [t4]
EOF
RULE_LINE=7 # the line of "- name: nvlink-4"
ALL_NODES='["bad-topo", "gpu-node-1", "gpu-node-2", "gpu-node-3", "hami-t4", "nv-island", "pcie-box"]'

GX_TOKEN=t1
start_fake api --token t1 --no-node-taint-admission --seed-json "$K/seed.json" || finish
write_kubeconfig "$K/kubeconfig" "${F_URL[api]}" token=t1
start_daemon d --kubeconfig "$K/kubeconfig" --policy "$POLICY" || finish
wait_ready 15

# ---------------------------------------------------------------- helpers

# nn_args OUT GPUS [NAME] [NAMESPACE]   -- a NodeNames-mode ExtenderArgs (the captured
# nodecache-true request) for a pod asking GPUS, sent with every node's name
nn_args() {
    derive "$RAW/filter.args.nodecache-true.json" "$1" "
set_gpus(d, '$2')
d['Pod']['metadata']['name'] = '${3:-probe-$2}'
d['Pod']['metadata']['namespace'] = '${4:-default}'
d['NodeNames'] = $ALL_NODES"
}

# verdicts   -- the last NodeNames filter reply as one line: NAME=pass / NAME=F:reason /
# NAME=U:reason, sorted by name, or ERROR:...
verdicts() {
    json_get '"ERROR:" + d["Error"] if d.get("Error") else " ".join(sorted(
    [n + "=pass" for n in d.get("NodeNames") or []] +
    [k + "=F:" + v for k, v in (d.get("FailedNodes") or {}).items()] +
    [k + "=U:" + v for k, v in (d.get("FailedAndUnresolvableNodes") or {}).items()]))'
}

# verdict_of NODE   -- that node's verdict in the last filter reply: pass, F:reason, U:reason
verdict_of() {
    json_get 'next((x for x in ["pass" if sys.argv[3] in (d.get("NodeNames") or []) else None,
        "F:" + d["FailedNodes"][sys.argv[3]] if sys.argv[3] in (d.get("FailedNodes") or {}) else None,
        "U:" + d["FailedAndUnresolvableNodes"][sys.argv[3]] if sys.argv[3] in (d.get("FailedAndUnresolvableNodes") or {}) else None] if x), "absent")' \
        "$BODY_FILE" "$1"
}

# gpus_of NAME   -- ["gpu-extender.io/gpus", "gpu-extender.io/gpu-uuids"] of the pod on the fake
gpus_of() {
    pod_ann "$1" | py 'a = json.load(sys.stdin); print(json.dumps([a.get("gpu-extender.io/gpus"), a.get("gpu-extender.io/gpu-uuids")]))'
}

# bind_pod NAME NODE UID   -- ExtenderBindingArgs from the captured one, posted
bind_pod() {
    derive "$RAW/bind.args.nodecache-true.json" "$K/bind-$1.json" "
d['PodName'] = '$1'; d['Node'] = '$2'; d['PodUID'] = '$3'; d['PodNamespace'] = 'default'"
    post bind "$K/bind-$1.json"
}

# gpu_pod NAME GPUS [PYCODE]   -- creates a pending pod asking GPUS on the fake; sets POD_UID
gpu_pod() {
    create_pod "$1" "
for c in d['spec']['containers']:
    c['resources'] = {'limits': {'nvidia.com/gpu': '$2'}, 'requests': {'cpu': '100m', 'memory': '128Mi', 'nvidia.com/gpu': '$2'}}
${3:-}"
}

# pod_ann NAME   -- the pod's gpu-extender.io annotations on the fake, as compact JSON
pod_ann() {
    kapi GET "/api/v1/namespaces/default/pods/$1"
    json_get '{k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k.startswith("gpu-extender.io/")}' "$KAPI_FILE"
}

# topo_of NODE   -- "used/reserved taken=.. free=.. unnamed=N" from /debug/nodes
topo_of() {
    curl -s --max-time 5 -o "$K/nodes.json" "$GX_URL/debug/nodes"
    json_get 'next(("%d/%d taken=%s free=%s unnamed=%d" % (n["used"], n["reserved"], n["topology"]["taken"], n["topology"]["free"], n["topology"]["takenUnnamed"]) if "topology" in n else "no topology: " + n.get("topologyError", "")) for n in d["nodes"] if n["name"] == sys.argv[3])' \
        "$K/nodes.json" "$1"
}

# wait_topo NODE EXPECTED   -- waits (5 s) until topo_of NODE prints EXPECTED: the watch has
# brought the bind (or the node change) into the cache
wait_topo() {
    local deadline got
    deadline=$(_deadline 5)
    while :; do
        got=$(topo_of "$1")
        [[ $got == "$2" ]] && break
        _before "$deadline" || break
        sleep 0.05
    done
    assert_eq "/debug/nodes $1" "$2" "$got"
}

# patch_node NAME MERGE_PATCH_JSON
patch_node() {
    printf '%s' "$2" >"$K/patch.json"
    local args=(-s -X PATCH --max-time 30 -o "$KAPI_FILE" -w '%{http_code}' -A gpu-extender-tests
        -H "Authorization: Bearer $GX_TOKEN" -H 'Content-Type: application/merge-patch+json'
        --data-binary "@$K/patch.json")
    KAPI_STATUS=$(curl "${args[@]}" "${F_URL[$GX_FAKE]}/api/v1/nodes/$1")
    assert_eq "PATCH node $1" 200 "$KAPI_STATUS"
}

NEVER4="gpu-extender: policy nvlink-4: node has no 4 GPUs all linked by NVLink"
NOTNOW4="gpu-extender: policy nvlink-4: no 4 free GPUs all linked by NVLink"
NOTOPO="gpu-extender: policy nvlink-4: node publishes no GPU topology"
nn_args "$K/f4.json" 4
nn_args "$K/f2.json" 2

# ---------------------------------------------------------------- the cache's view

begin "/debug/nodes: topology masks per node, the refused annotation named"
wait_topo nv-island "0/0 taken= free=0,1,2,3,4,5,6,7 unnamed=0"
wait_topo pcie-box "0/0 taken= free=0,1,2,3 unnamed=0"
wait_topo hami-t4 "0/0 taken= free=0,1,2,3 unnamed=0"
assert_json "nv-island: 8 GPUs, all healthy" '[(n["topology"]["gpus"], n["topology"]["healthy"]) for n in d["nodes"] if n["name"] == "nv-island"]' \
    '[[8, "0,1,2,3,4,5,6,7"]]' "$K/nodes.json"
assert_json_true "bad-topo: topologyError names the annotation, no topology object" \
    '[(n["topologyError"].startswith("gpu-extender.io/topology: "), "topology" in n) for n in d["nodes"] if n["name"] == "bad-topo"] == [(True, False)]' "$K/nodes.json"
assert_json "fixture nodes: neither topology nor topologyError" \
    '[n["name"] for n in d["nodes"] if n["name"].startswith("gpu-node-") and ("topology" in n or "topologyError" in n)]' '[]' "$K/nodes.json"
metrics_snapshot "$K/m0"
assert_eq "gpu_extender_topology_invalid_total is 1" 1 "$(metric "$K/m0" gpu_extender_topology_invalid_total)"
assert_eq "logged once" 1 "$(grep -c 'node topology refused' "${D_LOG[d]}")"
assert_contains "the log names the node" "node=bad-topo" "$(grep 'node topology refused' "${D_LOG[d]}")"

# ---------------------------------------------------------------- filter and prioritize

begin "filter, 4 GPUs under an NVLink requirement: never / no topology / pass"
post filter "$K/f4.json"
assert_status 200
assert_eq "every node's verdict" \
    "bad-topo=U:$NOTOPO gpu-node-1=U:$NOTOPO gpu-node-2=U:$NOTOPO gpu-node-3=U:$NOTOPO hami-t4=U:$NEVER4 nv-island=pass pcie-box=U:$NEVER4" \
    "$(verdicts)"

begin "filter, 2 GPUs: below minGPUs the requirement does not apply"
post filter "$K/f2.json"
assert_eq "every node passes" \
    "bad-topo=pass gpu-node-1=pass gpu-node-2=pass gpu-node-3=pass hami-t4=pass nv-island=pass pcie-box=pass" "$(verdicts)"
nn_args "$K/f2-other.json" 2 probe-other other
post filter "$K/f2-other.json"
assert_eq "another namespace gets the default rule: T4 forbidden, HAMi topology or not" \
    "U:gpu-extender: policy default: model Tesla-T4 forbidden" "$(verdict_of hami-t4)"

begin "prioritize, 2 GPUs: the interconnect part ranks an NVLink pair over a PIX pair"
derive "$K/f2.json" "$K/p2.json" "d['NodeNames'] = ['nv-island', 'pcie-box', 'gpu-node-2']"
post prioritize "$K/p2.json"
assert_status 200
# weights freeGPUs 1, topology 2 (no preference, so model does not count):
#   nv-island: binpack 2/8 = 0.25, NV2 pair quality 1.0  -> round(10*(0.25+2*1.0)/3) = round(7.5) = 8
#   pcie-box:  binpack 2/4 = 0.5,  PIX pair quality 0.5  -> round(10*(0.5+2*0.5)/3)  = 5
#   gpu-node-2 publishes no topology: free GPUs alone    -> round(10*2/8) = round(2.5) = 3
assert_json "scores" '[(h["Host"], h["Score"]) for h in d]' '[["nv-island", 8], ["pcie-box", 5], ["gpu-node-2", 3]]'

# ---------------------------------------------------------------- binds and GPU sets

begin "bind 2 GPUs on nv-island: two GPUs of one island, recorded on the pod"
gpu_pod t2a 2
bind_pod t2a nv-island "$POD_UID"
assert_status 200
assert_json "success" 'd["Error"]' ""
# topo_choose: every NV2 pair scores 200; the leftover is best with the pair inside an island
# (1480 either way); lowest mask then: {0,1}.
assert_eq "annotations" \
    "{\"gpu-extender.io/gpu-count\": \"2\", \"gpu-extender.io/gpu-model\": \"$H100\", \"gpu-extender.io/gpu-uuids\": \"GPU-isl-0,GPU-isl-1\", \"gpu-extender.io/gpus\": \"0,1\", \"gpu-extender.io/policy-rule\": \"nvlink-4\"}" \
    "$(pod_ann t2a)"
wait_topo nv-island "2/0 taken=0,1 free=2,3,4,5,6,7 unnamed=0"

begin "bind 1 GPU on nv-island: the look-ahead keeps the other island whole"
gpu_pod t1a 1
bind_pod t1a nv-island "$POD_UID"
assert_json "success" 'd["Error"]' ""
# Free {2,...,7}. A single GPU scores 0, so the leftover decides: taking 2 (or 3) leaves
# {3,4,5,6,7}: island 4-7 whole (6 x 200) + 3's SYS links to it (4 x 10) = 1240; taking one
# of 4-7 leaves {2,3} (200) + a 3-island (600) + 6 SYS links (60) = 860. 2 and 3 tie at
# 1240; the lowest mask wins: GPU 2.
assert_eq "gpus 2, its UUID, the rule" \
    '{"gpu-extender.io/gpu-count": "1", "gpu-extender.io/gpu-model": "'"$H100"'", "gpu-extender.io/gpu-uuids": "GPU-isl-2", "gpu-extender.io/gpus": "2", "gpu-extender.io/policy-rule": "nvlink-4"}' \
    "$(pod_ann t1a)"
wait_topo nv-island "3/0 taken=0,1,2 free=3,4,5,6,7 unnamed=0"

begin "filter 4 GPUs: nv-island still passes, since island 4-7 is whole"
post filter "$K/f4.json"
assert_eq "nv-island passes" pass "$(verdict_of nv-island)"

begin "explain GET: a pending 4-GPU pod in the cache"
gpu_pod pend4 4
deadline=$(_deadline 5)
while http GET /debug/explain/default/pend4 && [[ $STATUS != 200 ]] && _before "$deadline"; do
    sleep 0.05
done
assert_status 200 "explain answers once the watch brought the pod"
cp "$BODY_FILE" "$K/explain-get.json"
curl -s -o "$K/policy.json" "$GX_URL/debug/policy"
assert_json "pod" 'd["pod"]' '{"gpus": 4, "name": "pend4", "namespace": "default"}'
assert_json "rule, its line, strategy" '[d["rule"], d["ruleLine"], d["strategy"]]' "[\"nvlink-4\", $RULE_LINE, \"binpack\"]"
assert_json "policyHash is the active policy's" 'd["policyHash"]' "$(json_get 'd["hash"]' "$K/policy.json")"
assert_json "summary" 'd["summary"]' '{"FailedAndUnresolvableNodes": 6, "pass": 1, "takenNow": 0}'
assert_json "nodes: pass first, then unresolvable, by name" '[(n["name"], n["verdict"]) for n in d["nodes"]]' \
    '[["nv-island", "pass"], ["bad-topo", "FailedAndUnresolvableNodes"], ["gpu-node-1", "FailedAndUnresolvableNodes"], ["gpu-node-2", "FailedAndUnresolvableNodes"], ["gpu-node-3", "FailedAndUnresolvableNodes"], ["hami-t4", "FailedAndUnresolvableNodes"], ["pcie-box", "FailedAndUnresolvableNodes"]]'
# nv-island: 3 of 8 GPUs used, the pod takes 4: binpack (3+4)/8 = 0.875; GPUs 4-7, all NV2:
# quality 1.0; round(10*(0.875 + 2*1.0)/3) = round(9.58) = 10. No preference: model weight 0.
assert_json "nv-island: model, allocatable, free, score" '[[n["model"], n["allocatable"], n["free"], n["score"]] for n in d["nodes"] if n["name"] == "nv-island"]' \
    "[[\"$H100\", 8, 5, 10]]"
assert_json "nv-island: score parts" '[n["parts"] for n in d["nodes"] if n["name"] == "nv-island"][0]' \
    '{"freeGPUs": {"strategy": "binpack", "value": 0.875, "weight": 1}, "model": {"rank": 0, "value": 0, "weight": 0}, "topology": {"gpus": "4,5,6,7", "value": 1, "weight": 2}}'
assert_json "pcie-box: the filter's reason, no score" '[[n.get("reason"), "score" in n] for n in d["nodes"] if n["name"] == "pcie-box"]' \
    "[[\"$NEVER4\", false]]"
assert_json "bad-topo: no topology" '[n.get("reason") for n in d["nodes"] if n["name"] == "bad-topo"]' "[\"$NOTOPO\"]"

begin "gpus-in-use on the node takes GPU 4: no island is whole, nv-island is rejected for now"
patch_node nv-island '{"metadata":{"annotations":{"gpu-extender.io/gpus-in-use":"4"}}}'
wait_topo nv-island "3/0 taken=0,1,2,4 free=3,5,6,7 unnamed=0"
post filter "$K/f4.json"
# Unresolvable to kube-scheduler's preemption, like every rejection (codec.c says why).
assert_eq "4 GPUs free, but not 4 linked by NVLink" "U:$NOTNOW4" "$(verdict_of nv-island)"
http GET /debug/explain/default/pend4
assert_json "explain agrees, and says the GPUs are taken now" '[[n["verdict"], n["reason"], n["takenNow"]] for n in d["nodes"] if n["name"] == "nv-island"]' \
    "[[\"FailedAndUnresolvableNodes\", \"$NOTNOW4\", true]]"
assert_json "summary" 'd["summary"]' '{"FailedAndUnresolvableNodes": 7, "pass": 0, "takenNow": 1}'
post filter "$K/f2.json"
assert_eq "a 2-GPU pod still fits there" pass "$(verdict_of nv-island)"
patch_node nv-island '{"metadata":{"annotations":{"gpu-extender.io/gpus-in-use":null}}}'
wait_topo nv-island "3/0 taken=0,1,2 free=3,4,5,6,7 unnamed=0"
post filter "$K/f4.json"
assert_eq "without it, island 4-7 is whole again" pass "$(verdict_of nv-island)"

begin "bind 1 GPU again: GPU 3 closes island 0-3; then the 4-GPU pod gets 4-7"
gpu_pod t1b 1
bind_pod t1b nv-island "$POD_UID"
# Free {3,...,7}: taking 3 leaves island 4-7 whole (1200); any of 4-7 leaves 600 + 3 x 10.
assert_eq "gpus 3" '["3", "GPU-isl-3"]' "$(gpus_of t1b)"
wait_topo nv-island "4/0 taken=0,1,2,3 free=4,5,6,7 unnamed=0"
kapi GET /api/v1/namespaces/default/pods/pend4
bind_pod pend4 nv-island "$(json_get 'd["metadata"]["uid"]' "$KAPI_FILE")"
assert_json "success" 'd["Error"]' ""
assert_eq "pend4: GPUs 4-7 and their UUIDs" '["4,5,6,7", "GPU-isl-4,GPU-isl-5,GPU-isl-6,GPU-isl-7"]' "$(gpus_of pend4)"
wait_topo nv-island "8/0 taken=0,1,2,3,4,5,6,7 free= unnamed=0"
http GET /debug/explain/default/pend4
assert_status 404 "a bound pod is not explained by GET"
assert_contains "says POST instead" "POST" "$BODY"

begin "PCIe box, 1-GPU pods: the second one takes the broken pair's partner"
gpu_pod pc1 1
bind_pod pc1 pcie-box "$POD_UID"
# Free {0,1,2,3}: whichever GPU goes, one PIX pair stays (leftover 50 + 2 x 10): a tie, GPU 0.
assert_eq "pc1 gets 0" '["0", "GPU-pcie-0"]' \
    "$(gpus_of pc1)"
wait_topo pcie-box "1/0 taken=0 free=1,2,3 unnamed=0"
gpu_pod pc2 1
bind_pod pc2 pcie-box "$POD_UID"
# Free {1,2,3}: taking 1 leaves the PIX pair 2-3 (50); taking 2 or 3 leaves 1 and a SYS link (10).
assert_eq "pc2 gets 1, not a GPU of the whole pair 2-3" '["1", "GPU-pcie-1"]' \
    "$(gpus_of pc2)"
wait_topo pcie-box "2/0 taken=0,1 free=2,3 unnamed=0"

begin "a pod bound by someone else without indices: takenUnnamed, and binds name no GPUs"
gpu_pod foreign 1
printf '{"apiVersion":"v1","kind":"Binding","metadata":{"name":"foreign"},"target":{"apiVersion":"v1","kind":"Node","name":"pcie-box"}}' >"$K/foreign-binding.json"
kapi POST /api/v1/namespaces/default/pods/foreign/binding "$K/foreign-binding.json"
assert_eq "bound through the API directly" 201 "$KAPI_STATUS"
wait_topo pcie-box "3/0 taken=0,1 free=2,3 unnamed=1"
gpu_pod pc3 1
bind_pod pc3 pcie-box "$POD_UID"
assert_json "success" 'd["Error"]' ""
# One of 2 and 3 is in use and nobody said which: naming a GPU would be a guess.
assert_eq "no gpus / gpu-uuids recorded; count, model and rule are" \
    '{"gpu-extender.io/gpu-count": "1", "gpu-extender.io/gpu-model": "NVIDIA-L40S", "gpu-extender.io/policy-rule": "nvlink-4"}' \
    "$(pod_ann pc3)"
wait_topo pcie-box "4/0 taken=0,1 free=2,3 unnamed=2"

begin "HAMi scores: a 2-GPU bind takes a linked pair"
gpu_pod hm2 2
bind_pod hm2 hami-t4 "$POD_UID"
assert_json "success" 'd["Error"]' ""
assert_eq "GPUs 0,1 (h0-h1 score 200), their UUIDs" '["0,1", "GPU-h0,GPU-h1"]' \
    "$(gpus_of hm2)"

# ---------------------------------------------------------------- explain by POST

begin "explain POST: a Pod body, in another namespace (the default rule)"
py '
d = json.load(open(sys.argv[1], "rb"))["Pod"]
d["metadata"]["namespace"] = "other"
d["metadata"]["name"] = "posted"
for c in d["spec"]["containers"]:
    c["resources"] = {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}}
open(sys.argv[2], "w").write(json.dumps(d))
' "$RAW/filter.args.nodecache-true.json" "$K/posted-pod.json"
http POST /debug/explain -H 'Content-Type: application/json' --data-binary "@$K/posted-pod.json"
assert_status 200
assert_json "pod" 'd["pod"]' '{"gpus": 2, "name": "posted", "namespace": "other"}'
assert_json "rule default, at the line /debug/policy gives it" '[d["rule"], d["ruleLine"]]' \
    "[\"default\", $(json_get 'd["default"]["line"]' "$K/policy.json")]"
assert_json_true "ruleLine points into the file" '0 < d["ruleLine"] <= 13'
# nv-island and hami-t4 (T4, forbidden here) are full or forbidden; pcie-box is full.
assert_json "verdicts" '[(n["name"], n["verdict"], n.get("reason")) for n in d["nodes"]]' \
    '[["gpu-node-3", "pass", null], ["gpu-node-1", "pass", null], ["bad-topo", "pass", null], ["gpu-node-2", "pass", null], ["nv-island", "FailedAndUnresolvableNodes", "gpu-extender: not enough free nvidia.com/gpu"], ["pcie-box", "FailedAndUnresolvableNodes", "gpu-extender: not enough free nvidia.com/gpu"], ["hami-t4", "FailedAndUnresolvableNodes", "gpu-extender: policy default: model Tesla-T4 forbidden"]]'
# binpack, 2 GPUs, no topology on these: gpu-node-3 2/4 -> 5; gpu-node-1 (1 used) 3/8 -> 4;
# gpu-node-2 and bad-topo 2/8 -> 3 (ties by name).
assert_json "scores, best first" '[(n["name"], n.get("score")) for n in d["nodes"] if n["verdict"] == "pass"]' \
    '[["gpu-node-3", 5], ["gpu-node-1", 4], ["bad-topo", 3], ["gpu-node-2", 3]]'
assert_json "a count-only node: no topology weight" '[n["parts"]["topology"] for n in d["nodes"] if n["name"] == "bad-topo"]' \
    '[{"gpus": "", "value": 0, "weight": 0}]'

begin "explain POST: an unusable annotation is reported, not a score"
py '
d = json.load(open(sys.argv[1]))
d["metadata"]["annotations"] = {"gpu-extender.io/strategy": "bogus"}
open(sys.argv[2], "w").write(json.dumps(d))
' "$K/posted-pod.json" "$K/posted-bad.json"
http POST /debug/explain -H 'Content-Type: application/json' --data-binary "@$K/posted-bad.json"
assert_status 200
assert_json "rule and error" '[d["rule"], "binpack or spread" in d["error"], "nodes" in d]' '["default", true, false]'

begin "explain: 400 and 404 answers"
printf '[1,2]' >"$K/not-a-pod.json"
http POST /debug/explain -H 'Content-Type: application/json' --data-binary "@$K/not-a-pod.json"
assert_status 400 "a body that is not a Pod"
http GET /debug/explain/default/no-such-pod
assert_status 404 "an unknown pod"
http GET /debug/explain/default
assert_status 404 "no name"
http GET /debug/explain/default/a/b
assert_status 404 "too many parts"

# ---------------------------------------------------------------- the refused annotation, again

begin "a refused annotation is counted and logged once, whatever else changes on the node"
patch_node bad-topo '{"metadata":{"labels":{"touch":"1"}}}'
patch_node bad-topo '{"metadata":{"labels":{"touch":"2"}}}'
# Then a valid annotation: once the cache shows it, the watch has delivered the two label
# changes before it, each a new version of a node whose annotation was refused.
patch_node bad-topo '{"metadata":{"annotations":{"gpu-extender.io/topology":"{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3},{\"index\":4},{\"index\":5},{\"index\":6},{\"index\":7}]}"}}}'
deadline=$(_deadline 5)
while [[ $(topo_of bad-topo) == "no topology"* ]] && _before "$deadline"; do sleep 0.05; done
metrics_snapshot "$K/m1"
assert_eq "gpu_extender_topology_invalid_total still 1" 1 "$(metric "$K/m1" gpu_extender_topology_invalid_total)"
assert_eq "still logged once" 1 "$(grep -c 'node topology refused' "${D_LOG[d]}")"
assert_eq "a fixed annotation is used at once" "0/0 taken= free=0,1,2,3,4,5,6,7 unnamed=0" "$(topo_of bad-topo)"
assert_json "topologyError gone" '[("topologyError" in n) for n in d["nodes"] if n["name"] == "bad-topo"]' '[false]' "$K/nodes.json"

# ---------------------------------------------------------------- standalone

begin "standalone: explain and /debug/nodes answer 404"
start_daemon alone --policy "$POLICY" || finish
http GET /debug/explain/default/pend4
assert_status 404 "GET explain"
assert_error_reply "says why" "standalone"
http POST /debug/explain -H 'Content-Type: application/json' --data-binary "@$K/posted-pod.json"
assert_status 404 "POST explain"
http GET /debug/nodes
assert_status 404 "/debug/nodes"
stop_daemon alone
assert_eq "exits 0" 0 "$EXIT_CODE"
use_daemon d

finish
