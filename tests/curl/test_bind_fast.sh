#!/usr/bin/env bash
# test_bind_fast.sh -- the one-call bind: when the daemon's cache holds the pod as pending
# under the bind's UID and knows the node, bind POSTs the Binding without GETting either
# (kube_bind.c). Checked by the requests the fake API server records: one round trip in the
# common case, and the fallbacks (a pod the cache does not hold, another UID, 409 with the
# pod on another node or on this one, a lost answer that did or did not land, a timeout).
. "$(dirname "$0")/lib.sh"

require_file "$GX_SOURCE_DIR/tests/fake_apiserver.py" "the fake API server"

A100=NVIDIA-A100-SXM4-80GB
K=$GX_TMP/k
mkdir -p "$K"

# bind NAME NODE UID   -- posts ExtenderBindingArgs to the current daemon
bind() {
    local f="$K/bind-$1-$2-$RANDOM.json"
    derive "$RAW/bind.args.nodecache-false.json" "$f" "
d['PodName'] = '$1'; d['Node'] = '$2'; d['PodUID'] = '$3'; d['PodNamespace'] = 'default'"
    post bind "$f"
}

get_pod() {
    kapi GET "/api/v1/namespaces/default/pods/$1"
}

last_request_id() {
    admin GET /requests >/dev/null
    json_get 'd[-1]["id"] if d else 0' "$ADMIN_FILE"
}

# calls_since ID   -- "METHOD path status" of the daemon's requests after ID, in order, into
# $CALLS (one per line); the cache's own list and watch reads and the test's calls left out
calls_since() {
    admin GET "/requests?since=$1" >/dev/null
    CALLS=$(py '
import re
d = json.load(open(sys.argv[1]))
feed = re.compile(r"/api/v1/(watch/)?(nodes|pods|namespaces/[^/]+/pods)|/apis/policy/v1/(watch/)?poddisruptionbudgets")
for r in d:
    if r["headers"].get("User-Agent") == "gpu-extender-tests":
        continue
    if r["method"] == "GET" and feed.fullmatch(r["path"]):
        continue
    print(r["method"], r["path"], r["status"])
' "$ADMIN_FILE")
}

# cached_pod NAME [CODE]   -- creates the pod (create_pod) and waits until the daemon's cache
# holds it (its GPU pod count goes up)
cached_pod() {
    local before deadline now
    metrics_snapshot "$K/m.before"
    before=$(metric "$K/m.before" gpu_extender_cache_gpu_pods)
    create_pod "$@" || return 1
    deadline=$(_deadline 5)
    while _before "$deadline"; do
        metrics_snapshot "$K/m.now"
        now=$(metric "$K/m.now" gpu_extender_cache_gpu_pods)
        ((now > before)) && return 0
        sleep 0.02
    done
    fail "the cache never saw pod $1"
    return 1
}

# conflict NAME NODE   -- the API server's 409 for a Binding of a pod already on NODE
conflict() {
    printf '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on pods/binding \\"%s\\": pod %s is already assigned to node \\"%s\\"","reason":"Conflict","details":{"name":"%s","kind":"pods/binding"},"code":409}' "$1" "$1" "$2" "$1"
}

# pod_on NAME NODE   -- the pod as the API server has it now, with spec.nodeName NODE (JSON)
pod_on() {
    get_pod "$1"
    py 'd = json.load(open(sys.argv[1])); d["spec"]["nodeName"] = sys.argv[2]; print(json.dumps(d))' "$KAPI_FILE" "$2"
}

PODS=/api/v1/namespaces/default/pods
start_fake api --token t1 || finish
GX_TOKEN=t1
write_kubeconfig "$K/http.kubeconfig" "${F_URL[api]}" token=t1
start_daemon d --kubeconfig "$K/http.kubeconfig" --bind-timeout-ms 2000 || finish
wait_ready 10

begin "the cache knows the pod: one round trip, the same Binding, the same pod afterwards"
cached_pod f-ok
uid=$POD_UID
metrics_snapshot "$K/m1"
id0=$(last_request_id)
bind f-ok gpu-node-2 "$uid"
assert_status 200
assert_json "the reply is exactly {\"Error\": \"\"}" 'd' '{"Error": ""}'
calls_since "$id0"
assert_eq "the daemon's only call: POST binding" "POST $PODS/f-ok/binding 201" "$CALLS"
admin GET "/requests?since=$id0&match=$(py 'import urllib.parse; print(urllib.parse.quote("POST .*/binding$"))')" >/dev/null
py 'open(sys.argv[2], "w").write(json.load(open(sys.argv[1]))[-1]["body"])' "$ADMIN_FILE" "$K/binding.json"
assert_json "metadata.uid is the pod's" 'd["metadata"].get("uid")' "$uid" "$K/binding.json"
assert_json "the decision's annotations (model from the cache)" 'd["metadata"]["annotations"]' \
    "{\"gpu-extender.io/gpu-count\": \"1\", \"gpu-extender.io/gpu-model\": \"$A100\", \"gpu-extender.io/policy-rule\": \"default\"}" "$K/binding.json"
assert_json "target" 'd["target"]' '{"apiVersion": "v1", "kind": "Node", "name": "gpu-node-2"}' "$K/binding.json"
get_pod f-ok
assert_json "spec.nodeName" 'd["spec"].get("nodeName")' gpu-node-2 "$KAPI_FILE"
assert_json "gpu-model on the pod" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model"]' "$A100" "$KAPI_FILE"
metrics_snapshot "$K/m2"
assert_eq "bind_fast_path_total +1" 1 "$(metric_delta "$K/m1" "$K/m2" gpu_extender_bind_fast_path_total)"
assert_eq "bind_slow_path_total +0" 0 "$(metric_delta "$K/m1" "$K/m2" gpu_extender_bind_slow_path_total)"
assert_eq "bind_total success/201 +1" 1 "$(metric_delta "$K/m1" "$K/m2" 'gpu_extender_bind_total{result="success",status="201"}')"

begin "a pod with its own gpu-model: the Binding records the model got and keeps the requirement"
# The record overwrites gpu-extender.io/gpu-model on the pod; without gpu-model-required the
# cache would read every bound pod as needing exactly its node's model (the scarcity demand).
export REQ='a100, "h100"'
cached_pod f-req 'import os; d["metadata"]["annotations"] = {"gpu-extender.io/gpu-model": os.environ["REQ"]}'
id0=$(last_request_id)
bind f-req gpu-node-2 "$POD_UID"
assert_json "success" 'd["Error"]' ""
calls_since "$id0"
assert_eq "the fast path: one POST binding" "POST $PODS/f-req/binding 201" "$CALLS"
admin GET "/requests?since=$id0&match=$(py 'import urllib.parse; print(urllib.parse.quote("POST .*/binding$"))')" >/dev/null
py 'open(sys.argv[2], "w").write(json.load(open(sys.argv[1]))[-1]["body"])' "$ADMIN_FILE" "$K/binding.json"
assert_json "the decision's annotations plus the requirement, escaped" 'd["metadata"]["annotations"]' \
    "{\"gpu-extender.io/gpu-count\": \"1\", \"gpu-extender.io/gpu-model\": \"$A100\", \"gpu-extender.io/gpu-model-required\": \"a100, \\\"h100\\\"\", \"gpu-extender.io/policy-rule\": \"default\"}" "$K/binding.json"
get_pod f-req
assert_json "gpu-model on the pod is the record" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model"]' "$A100" "$KAPI_FILE"
assert_json "gpu-model-required on the pod is the pod's own" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model-required"]' "$REQ" "$KAPI_FILE"

begin "a retried bind of a pod the watch shows bound: the slow path, success"
deadline=$(_deadline 5)
while _before "$deadline"; do # the watch brings the binding's MODIFIED event
    id0=$(last_request_id)
    bind f-ok gpu-node-2 "$uid"
    calls_since "$id0"
    [[ $CALLS == "GET $PODS/f-ok 200" ]] && break
    sleep 0.05
done
assert_json "success" 'd["Error"]' ""
assert_eq "one GET pod, no POST" "GET $PODS/f-ok 200" "$CALLS"

begin "a pod the cache does not hold (no GPUs): GET pod, GET node, POST"
create_pod f-cpu 'for c in d["spec"]["containers"]: c["resources"] = {}'
metrics_snapshot "$K/m1"
id0=$(last_request_id)
bind f-cpu gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
calls_since "$id0"
assert_eq "the three-call bind" "GET $PODS/f-cpu 200
GET /api/v1/nodes/gpu-node-1 200
POST $PODS/f-cpu/binding 201" "$CALLS"
metrics_snapshot "$K/m2"
assert_eq "bind_slow_path_total +1" 1 "$(metric_delta "$K/m1" "$K/m2" gpu_extender_bind_slow_path_total)"
assert_eq "bind_fast_path_total +0" 0 "$(metric_delta "$K/m1" "$K/m2" gpu_extender_bind_fast_path_total)"

begin "another UID (the pod was recreated): the slow path's GET refuses it, nothing is POSTed"
cached_pod f-uid
id0=$(last_request_id)
bind f-uid gpu-node-1 "00000000-dead-beef-0000-000000000000"
assert_error_reply "the Error mentions the UID" "uid"
calls_since "$id0"
assert_eq "GET pod only" "GET $PODS/f-uid 200" "$CALLS"
get_pod f-uid
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"

begin "409, and a GET shows the pod on another node: an Error, the reservation given back"
cached_pod f-409other
uid=$POD_UID
admin POST /fault "$(py 'print(json.dumps([
  {"match": "^POST /api/v1/namespaces/default/pods/f-409other/binding$", "action": "status", "status": 409, "body": json.loads(sys.argv[1]), "times": 1},
  {"match": "^GET /api/v1/namespaces/default/pods/f-409other$", "action": "status", "status": 200, "body": json.loads(sys.argv[2]), "times": 1}]))' \
    "$(conflict f-409other gpu-node-1)" "$(pod_on f-409other gpu-node-1)")" >/dev/null
id0=$(last_request_id)
bind f-409other gpu-node-2 "$uid"
assert_error_reply "the Error names the other node" "gpu-node-1"
assert_error_reply "and the 409" "409"
calls_since "$id0"
assert_eq "POST 409, then GET pod" "POST $PODS/f-409other/binding 409
GET $PODS/f-409other 200" "$CALLS"
metrics_snapshot "$K/m2"
assert_eq "no reservation left" 0 "$(metric "$K/m2" gpu_extender_cache_reservations)"
admin DELETE /fault >/dev/null

begin "409, and a GET shows the pod on this node: success (a retry that had worked)"
cached_pod f-409same
uid=$POD_UID
admin POST /fault "$(py 'print(json.dumps([
  {"match": "^POST /api/v1/namespaces/default/pods/f-409same/binding$", "action": "status", "status": 409, "body": json.loads(sys.argv[1]), "times": 1},
  {"match": "^GET /api/v1/namespaces/default/pods/f-409same$", "action": "status", "status": 200, "body": json.loads(sys.argv[2]), "times": 1}]))' \
    "$(conflict f-409same gpu-node-2)" "$(pod_on f-409same gpu-node-2)")" >/dev/null
id0=$(last_request_id)
bind f-409same gpu-node-2 "$uid"
assert_json "success" 'd["Error"]' ""
calls_since "$id0"
assert_eq "POST 409, then GET pod" "POST $PODS/f-409same/binding 409
GET $PODS/f-409same 200" "$CALLS"
admin DELETE /fault >/dev/null

begin "404 on the POST (the pod is gone): an Error"
cached_pod f-404
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/f-404/binding$", "action": "status", "status": 404, "times": 1}' >/dev/null
id0=$(last_request_id)
bind f-404 gpu-node-1 "$POD_UID"
assert_error_reply "an Error naming 404" "404"
calls_since "$id0"
assert_eq "the POST only" "POST $PODS/f-404/binding 404" "$CALLS"
admin DELETE /fault >/dev/null

begin "the POST's answer is lost after it landed: a GET settles it, success"
cached_pod f-lost
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/f-lost/binding$", "action": "close-after-headers", "times": 1}' >/dev/null
id0=$(last_request_id)
bind f-lost gpu-node-3 "$POD_UID"
assert_json "success" 'd["Error"]' ""
calls_since "$id0"
assert_eq "POST (answer cut), then GET pod" "POST $PODS/f-lost/binding 201
GET $PODS/f-lost 200" "$CALLS"
get_pod f-lost
assert_json "on gpu-node-3" 'd["spec"].get("nodeName")' gpu-node-3 "$KAPI_FILE"
admin DELETE /fault >/dev/null

begin "the POST is dropped before it landed: a GET shows it unbound, an Error"
cached_pod f-drop
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/f-drop/binding$", "action": "drop", "times": -1}' >/dev/null
bind f-drop gpu-node-3 "$POD_UID"
assert_json_true "an Error" 'd["Error"] != ""'
get_pod f-drop
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
admin DELETE /fault >/dev/null

begin "a stalled POST: an Error within --bind-timeout-ms + 1 s that says it timed out"
cached_pod f-stall
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/f-stall/binding$", "action": "stall", "seconds": 30, "times": 1}' >/dev/null
bind f-stall gpu-node-2 "$POD_UID"
assert_lt "answered within 3 s" "$TIME_S" 3
assert_json_true "an Error" 'd["Error"] != ""'
assert_json_true "the Error says it timed out" '"time" in d["Error"].lower()'
# Looked at while the POST is still held: once the fault is cleared the fake may still apply
# it (the client left, but the request had arrived), as a real API server may.
get_pod f-stall
assert_json "unbound while the POST is held" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
admin DELETE /fault >/dev/null

finish
