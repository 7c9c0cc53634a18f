#!/usr/bin/env bash
# test_bind.sh -- the bind verb against tests/fake_apiserver.py seeded with the kube-1.26
# fixture nodes: success and what lands on the pod, idempotence, conflicts, API errors,
# token rotation, a stalled or dropping API server, UID checks, TLS (CA data, wrong CA,
# client certificates) and in-cluster configuration.
. "$(dirname "$0")/lib.sh"

require_file "$GX_SOURCE_DIR/tests/fake_apiserver.py" "the fake API server"
require_file "$GX_SOURCE_DIR/tests/gen_certs.sh" "the test PKI generator"

# These cases check the three-call bind (GET pod, GET node, POST) and faults on its GETs, so
# every daemon here takes that path; test_bind_fast.sh covers the one-call bind the cache
# vouches for.
export GPU_EXTENDER_BIND_ALWAYS_GET=true

A100=NVIDIA-A100-SXM4-80GB
K=$GX_TMP/k
mkdir -p "$K"
PKI=$GX_TMP/pki
bash "$GX_SOURCE_DIR/tests/gen_certs.sh" "$PKI" >"$GX_TMP/gen_certs.log" 2>&1 ||
    { cat "$GX_TMP/gen_certs.log"; fail "gen_certs.sh failed"; finish; }
FAKE_CA=$PKI/ca.crt

# bind_args NAME NODE [UID] [NS]   -- ExtenderBindingArgs derived from the bind fixture;
# prints the file name
bind_args() {
    local f="$K/bind-$1-$2-$RANDOM.json"
    derive "$RAW/bind.args.nodecache-false.json" "$f" "
d['PodName'] = '$1'; d['Node'] = '$2'; d['PodUID'] = '${3-}'; d['PodNamespace'] = '${4:-default}'"
    echo "$f"
}

# bind NAME NODE [UID] [NS]   -- posts the bind to the current daemon
bind() {
    post bind "$(bind_args "$@")"
}

# get_pod NAME   -- GETs the pod from the fake into $KAPI_FILE
get_pod() {
    kapi GET "/api/v1/namespaces/default/pods/$1"
}

# requests_since ID [MATCH]   -- the daemon's requests recorded by the fake after ID
# (optionally matching the regex on "METHOD path") into $REQS_FILE; the test's own calls
# (User-Agent gpu-extender-tests) are left out
REQS_FILE=$GX_TMP/requests.json
requests_since() {
    admin GET "/requests?since=$1${2:+&match=$(py 'import urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$2")}" >/dev/null
    py "$NOT_CACHE_FEED"'
d = json.load(open(sys.argv[1]))
json.dump([r for r in d if r["headers"].get("User-Agent") != "gpu-extender-tests" and not cache_feed(r)],
          open(sys.argv[2], "w"))
' "$ADMIN_FILE" "$REQS_FILE"
}

# The daemon's cluster cache lists and watches nodes and pods on its own; those collection
# reads are not part of any bind and are left out of the request checks.
NOT_CACHE_FEED='
import re
def cache_feed(r):
    return r["method"] == "GET" and (re.fullmatch(r"/api/v1/(watch/)?(nodes|pods|namespaces/[^/]+/pods)|/apis/policy/v1/(watch/)?poddisruptionbudgets", r["path"]) is not None)
'

# last_request_id   -- the id of the newest request record (0 when none)
last_request_id() {
    admin GET /requests >/dev/null
    json_get 'd[-1]["id"] if d else 0' "$ADMIN_FILE"
}

# assert_cert_error DAEMON   -- the last bind failed, and the certificate problem is named in
# its Error or, when the daemon refuses binds because its cache could not sync (the cause
# then being the watch's TLS failure), in the daemon's log
_log_names_cert() { # the watch may still be on its first attempt: 3 s at most
    local deadline
    deadline=$(_deadline 3)
    while _before "$deadline"; do
        grep -qiE 'certificate|SSL' "${D_LOG[$1]}" && return 0
        sleep 0.1
    done
    return 1
}
assert_cert_error() {
    local err
    err=$(json_get 'd.get("Error") or "<no Error>"')
    assert_ne "the bind failed" "<no Error>" "$err"
    if [[ ${err,,} == *certificate* ]]; then
        pass "the Error names the certificate"
    elif [[ ${err,,} == *sync* ]] && _log_names_cert "$1"; then
        pass "the cache never synced, and the log names the certificate"
    else
        fail "the certificate problem is named nowhere"$'\n'"      Error: $(_snip "$err")"$'\n'"      log: $(grep -v level=debug "${D_LOG[$1]}" | tail -n 5)"
    fi
}

# ---------------------------------------------------------------- an HTTP API server, tokenFile

TOKEN_FILE=$K/token
printf 't1\n' >"$TOKEN_FILE"
GX_TOKEN=t1
start_fake api --token t1 || finish
write_kubeconfig "$K/http.kubeconfig" "${F_URL[api]}" token-file="$TOKEN_FILE"
# One HTTP thread, fewer than the binds stalled below: a bind that held its thread would
# starve the filter.
start_daemon d --kubeconfig "$K/http.kubeconfig" --bind-timeout-ms 2000 --threads 1 || finish
wait_ready 10

begin "readyz names the API server"
http GET /readyz
assert_status 200
assert_json "mode is the API server URL" 'd["mode"]' "${F_URL[api]}"

begin "bind success: 201, then the pod has spec.nodeName and both annotations"
M1=$GX_TMP/m1
metrics_snapshot "$M1"
create_pod b-ok
ok_uid=$POD_UID
id0=$(last_request_id)
bind b-ok gpu-node-2 "$ok_uid"
assert_status 200
assert_json "Error is empty" 'd["Error"]' ""
assert_json "the reply is exactly {\"Error\": \"\"}" 'd' '{"Error": ""}'
get_pod b-ok
assert_eq "GET pod 200" 200 "$KAPI_STATUS"
assert_json "spec.nodeName" 'd["spec"].get("nodeName")' gpu-node-2 "$KAPI_FILE"
assert_json "annotation gpu-extender.io/gpu-model" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model"]' "$A100" "$KAPI_FILE"
assert_json "annotation gpu-extender.io/gpu-count" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-count"]' 1 "$KAPI_FILE"
assert_json "PodScheduled=True" '[c["status"] for c in d["status"]["conditions"] if c["type"] == "PodScheduled"]' '["True"]' "$KAPI_FILE"
requests_since "$id0"
assert_json "the daemon's calls: GET pod, GET node, POST binding" '[r["method"] + " " + r["path"] + " " + str(r["status"]) for r in d]' \
    '["GET /api/v1/namespaces/default/pods/b-ok 200", "GET /api/v1/nodes/gpu-node-2 200", "POST /api/v1/namespaces/default/pods/b-ok/binding 201"]' "$REQS_FILE"
assert_json "every call carries the token from tokenFile" 'sorted(set(r["headers"].get("Authorization") for r in d))' '["Bearer t1"]' "$REQS_FILE"
M2=$GX_TMP/m2
metrics_snapshot "$M2"
assert_eq "bind_total success/201 +1" 1 "$(metric_delta "$M1" "$M2" 'gpu_extender_bind_total{result="success",status="201"}')"
assert_eq "requests_total bind ok +1" 1 "$(metric_delta "$M1" "$M2" 'gpu_extender_requests_total{verb="bind",outcome="ok"}')"

begin "the POSTed Binding has the shape of the captured one, plus the decision annotations"
requests_since "$id0" 'POST .*/binding$'
py '
reqs = json.load(open(sys.argv[1]))
assert len(reqs) == 1, "expected one POST binding, got %d" % len(reqs)
json.loads(reqs[0]["body"])
open(sys.argv[2], "w").write(reqs[0]["body"])
open(sys.argv[3], "w").write(json.dumps(reqs[0]["headers"]))
' "$REQS_FILE" "$K/binding.json" "$K/binding.headers" || fail "no single POST binding recorded"
ref=$GX_FIXTURES/apiserver/post-binding.request-sent-by-extender.json
assert_json "apiVersion v1" 'd["apiVersion"]' v1 "$K/binding.json"
assert_json "kind Binding" 'd["kind"]' Binding "$K/binding.json"
assert_json "metadata.name" 'd["metadata"]["name"]' b-ok "$K/binding.json"
assert_json "metadata.namespace" 'd["metadata"]["namespace"]' default "$K/binding.json"
assert_json "metadata.uid is the pod's" 'd["metadata"].get("uid")' "$ok_uid" "$K/binding.json"
# The fixture nodes publish no topology, so no GPU set is named: model, count and the rule.
assert_json "exactly the decision's annotations" 'd["metadata"]["annotations"]' \
    "{\"gpu-extender.io/gpu-count\": \"1\", \"gpu-extender.io/gpu-model\": \"$A100\", \"gpu-extender.io/policy-rule\": \"default\"}" "$K/binding.json"
assert_json "target" 'd["target"]' '{"apiVersion": "v1", "kind": "Node", "name": "gpu-node-2"}' "$K/binding.json"
assert_eq "top-level keys as in the capture" "$(json_get 'sorted(d)' "$ref")" "$(json_get 'sorted(d)' "$K/binding.json")"
assert_eq "target keys as in the capture" "$(json_get 'sorted(d["target"])' "$ref")" "$(json_get 'sorted(d["target"])' "$K/binding.json")"
assert_eq "metadata keys: the capture's plus annotations" \
    "$(json_get 'sorted(list(d["metadata"]) + ["annotations"])' "$ref")" "$(json_get 'sorted(d["metadata"])' "$K/binding.json")"
assert_json "Content-Type application/json" 'd.get("Content-Type")' application/json "$K/binding.headers"

begin "the GPU count annotation follows the pod's request (2 containers: 1 + 2)"
create_pod b-three 'c = d["spec"]["containers"][0]; import copy; c2 = copy.deepcopy(c); c2["name"] = "second"; c2["resources"]["limits"]["nvidia.com/gpu"] = "2"; c2["resources"]["requests"]["nvidia.com/gpu"] = "2"; d["spec"]["containers"].append(c2)'
bind b-three gpu-node-1 "$POD_UID"
assert_status 200
assert_json "success" 'd["Error"]' ""
get_pod b-three
assert_json "gpu-count is 3" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-count"]' 3 "$KAPI_FILE"
assert_json "on gpu-node-1" 'd["spec"]["nodeName"]' gpu-node-1 "$KAPI_FILE"

begin "a pod with its own gpu-model: the record replaces it on the pod, gpu-model-required keeps it"
create_pod b-req 'd["metadata"]["annotations"] = {"gpu-extender.io/gpu-model": "A100,H100"}'
bind b-req gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
get_pod b-req
assert_json "gpu-model is the model got" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model"]' "$A100" "$KAPI_FILE"
assert_json "gpu-model-required is the pod's own" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model-required"]' "A100,H100" "$KAPI_FILE"

begin "the model annotation is the node's model (a T4 node)"
kapi GET /api/v1/nodes/gpu-node-3
py '
n = json.load(open(sys.argv[1]))
n["metadata"]["labels"]["nvidia.com/gpu.product"] = "Tesla-T4-SHARED"
open(sys.argv[2], "w").write(json.dumps({"object": n}))
' "$KAPI_FILE" "$K/t4.json"
admin POST /upsert "$(cat "$K/t4.json")" >/dev/null
create_pod b-t4
bind b-t4 gpu-node-3 "$POD_UID"
assert_json "success" 'd["Error"]' ""
get_pod b-t4
assert_json "gpu-model is Tesla-T4 (the -SHARED suffix dropped)" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-model"]' Tesla-T4 "$KAPI_FILE"

begin "binding again to the same node succeeds (idempotent)"
bind b-ok gpu-node-2 "$ok_uid"
assert_status 200
assert_json "Error is empty" 'd["Error"]' ""
bind b-ok gpu-node-2 ""
assert_json "also without a PodUID" 'd["Error"]' ""
get_pod b-ok
assert_json "still on gpu-node-2" 'd["spec"]["nodeName"]' gpu-node-2 "$KAPI_FILE"

begin "binding a bound pod to another node is an Error"
id0=$(last_request_id)
bind b-ok gpu-node-3 "$ok_uid"
assert_status 200
assert_error_reply "the Error names the node it is on" "gpu-node-2"
get_pod b-ok
assert_json "still on gpu-node-2" 'd["spec"]["nodeName"]' gpu-node-2 "$KAPI_FILE"

begin "409 already assigned to the same node after a stale GET is success"
create_pod b-race
race_uid=$POD_UID
get_pod b-race
cp "$KAPI_FILE" "$K/b-race.unbound.json"
printf '{"apiVersion":"v1","kind":"Binding","metadata":{"name":"b-race","namespace":"default"},"target":{"apiVersion":"v1","kind":"Node","name":"gpu-node-1"}}' >"$K/race-binding.json"
kapi POST /api/v1/namespaces/default/pods/b-race/binding "$K/race-binding.json"
assert_eq "bound behind the daemon's back" 201 "$KAPI_STATUS"
# The daemon's first GET sees the pod as it was before, unbound; the POST then gets 409.
admin POST /fault "$(py 'print(json.dumps({"match": "^GET /api/v1/namespaces/default/pods/b-race$", "action": "status", "status": 200, "body": json.load(open(sys.argv[1])), "times": 2}))' "$K/b-race.unbound.json")" >/dev/null
id0=$(last_request_id)
bind b-race gpu-node-2 "$race_uid"
assert_error_reply "409 and the pod on another node: an Error" "gpu-node-1"
admin DELETE /fault >/dev/null
admin POST /fault "$(py 'print(json.dumps({"match": "^GET /api/v1/namespaces/default/pods/b-race$", "action": "status", "status": 200, "body": json.load(open(sys.argv[1])), "times": 1}))' "$K/b-race.unbound.json")" >/dev/null
id0=$(last_request_id)
bind b-race gpu-node-1 "$race_uid"
assert_json "409 and the pod on this node: success" 'd["Error"]' ""
requests_since "$id0" 'POST .*/binding$'
assert_json "the POST got 409" '[r["status"] for r in d]' '[409]' "$REQS_FILE"
admin DELETE /fault >/dev/null

begin "pod missing: the Error carries the API message"
bind no-such-pod gpu-node-1 "0000"
assert_status 200
assert_error_reply "404 message" 'pods "no-such-pod" not found'
assert_error_reply "names the status" "404"

begin "node missing: an Error, the pod stays unbound"
create_pod b-nonode
bind b-nonode gpu-node-9 "$POD_UID"
assert_error_reply "404 for the node" 'nodes "gpu-node-9" not found'
get_pod b-nonode
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"

begin "API errors from fault injection become Errors"
create_pod b-400
admin POST /fault "$(py 'print(json.dumps({"match": "^POST /api/v1/namespaces/default/pods/b-400/binding$", "action": "status", "status": 400, "body": json.load(open(sys.argv[1])), "times": 1}))' "$APIRAW/post-binding.400-name-mismatch.json")" >/dev/null
bind b-400 gpu-node-1 "$POD_UID"
assert_status 200
assert_error_reply "400 with the API message" "name in URL does not match name in Binding object"
assert_error_reply "names the status" "400"
get_pod b-400
assert_json "the pod stays unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
for code in 403 500 503 429; do
    admin POST /fault "{\"match\": \"^POST /api/v1/namespaces/default/pods/b-400/binding\$\", \"action\": \"status\", \"status\": $code, \"times\": 1}" >/dev/null
    bind b-400 gpu-node-1 "$POD_UID"
    assert_error_reply "a $code on the POST is an Error" "$code"
done
admin POST /fault '{"match": "^GET /api/v1/namespaces/default/pods/b-400$", "action": "status", "status": 500, "times": 1}' >/dev/null
bind b-400 gpu-node-1 "$POD_UID"
assert_error_reply "a 500 on the GET pod is an Error" "500"
admin POST /fault '{"match": "^GET /api/v1/namespaces/default/pods/b-400$", "action": "status", "status": 200, "body": "this is not JSON", "times": 1}' >/dev/null
bind b-400 gpu-node-1 "$POD_UID"
assert_error_reply "an unreadable GET pod reply is an Error" "pod"
get_pod b-400
assert_json "still unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
admin DELETE /fault >/dev/null

begin "a pod being deleted cannot be bound"
create_pod b-deleting 'd["metadata"]["finalizers"] = ["tests.gpu-extender.io/hold"]'
kapi DELETE /api/v1/namespaces/default/pods/b-deleting
bind b-deleting gpu-node-1 "$POD_UID"
assert_error_reply "Error says being deleted" "deleted"
get_pod b-deleting
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"

begin "UID mismatch (the pod was recreated under the same name) is an Error"
create_pod b-uid
old_uid=$POD_UID
kapi DELETE "/api/v1/namespaces/default/pods/b-uid?gracePeriodSeconds=0"
assert_eq "deleted" 200 "$KAPI_STATUS"
create_pod b-uid
assert_ne "the new pod has a new UID" "$old_uid" "$POD_UID"
id0=$(last_request_id)
bind b-uid gpu-node-1 "$old_uid"
assert_error_reply "the Error mentions the UID" "uid"
requests_since "$id0" 'POST'
assert_json "no Binding was POSTed" 'len(d)' 0 "$REQS_FILE"
get_pod b-uid
assert_json "the new pod stays unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
bind b-uid gpu-node-1 "$POD_UID"
assert_json "with the right UID it binds" 'd["Error"]' ""

begin "path-injection names never reach the API server"
id0=$(last_request_id)
for pn in '../../x' '..' 'a/b' 'x?watch=1'; do
    printf '{"PodName":%s,"PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}' "$(py 'print(json.dumps(sys.argv[1]))' "$pn")" >"$K/inj.json"
    post bind "$K/inj.json"
    assert_status 200 "bind $pn"
    assert_json_true "bind $pn: an Error" 'd["Error"] != ""'
done
requests_since "$id0"
assert_json "no request reached the API server" '[r["method"] + " " + r["path"] for r in d]' '[]' "$REQS_FILE"

# ---------------------------------------------------------------- token rotation

begin "401 after the token rotates; success once the token file is rewritten"
M1=$GX_TMP/m1
metrics_snapshot "$M1"
create_pod b-rot
rot_uid=$POD_UID
admin POST /token '{"token": "t2"}' >/dev/null
GX_TOKEN=t2
id0=$(last_request_id)
bind b-rot gpu-node-2 "$rot_uid"
assert_status 200
assert_error_reply "still the old token in the file: an Error naming 401" "401"
requests_since "$id0"
assert_json "it re-read the file and retried once" '[(r["status"], r["headers"].get("Authorization")) for r in d]' \
    '[[401, "Bearer t1"], [401, "Bearer t1"]]' "$REQS_FILE"
printf 't2\n' >"$TOKEN_FILE"
id0=$(last_request_id)
bind b-rot gpu-node-2 "$rot_uid"
assert_json "after rewriting the file: success" 'd["Error"]' ""
requests_since "$id0"
assert_json "a 401 with t1, then t2 for everything" '[(r["status"], r["headers"].get("Authorization")) for r in d]' \
    '[[401, "Bearer t1"], [200, "Bearer t2"], [200, "Bearer t2"], [201, "Bearer t2"]]' "$REQS_FILE"
get_pod b-rot
assert_json "bound" 'd["spec"]["nodeName"]' gpu-node-2 "$KAPI_FILE"
M2=$GX_TMP/m2
metrics_snapshot "$M2"
assert_lt "token reloads counted" 1 "$(metric_delta "$M1" "$M2" gpu_extender_apiserver_token_reloads_total)"

# ---------------------------------------------------------------- a stalled API server

begin "a stalled API server: bind answers within --bind-timeout-ms + 1 s, filter stays fast"
create_pod b-stall
stall_uid=$POD_UID
admin POST /fault '{"match": "^GET /api/v1/namespaces/default/pods/b-stall$", "action": "stall", "seconds": 30, "times": -1}' >/dev/null
stall_args=$(bind_args b-stall gpu-node-2 "$stall_uid")
# Four binds in flight at once, each on its own connection: more than the daemon's threads.
for i in 1 2 3 4; do
    curl -s -o "$K/stall-$i.body" -w '%{http_code} %{time_total}' --max-time 20 \
        -H 'Content-Type: application/json' --data-binary "@$stall_args" "$GX_URL/bind" >"$K/stall-$i.out" 2>&1 &
    _track $!
    eval "stall_pid_$i=$!"
done
admin GET "/requests?match=$(py 'import urllib.parse; print(urllib.parse.quote("GET /api/v1/namespaces/default/pods/b-stall"))')&since=0&min=4&wait=5" >/dev/null
assert_json "the four binds are stalled on the API server" 'len(d) >= 4' true "$ADMIN_FILE"
for i in 1 2 3 4; do
    assert_eq "bind $i still waiting while the API server stalls" yes "$(proc_alive "$(eval echo "\$stall_pid_$i")" && echo yes || echo no)"
done
post filter "$RAW/filter.args.nodecache-false.json"
assert_status 200 "filter while binds are stalled"
assert_lt "filter answered in under 1 s" "$TIME_S" 1
assert_echo "filter answered properly" "$RAW/filter.args.nodecache-false.json" gpu-node-1 gpu-node-2 gpu-node-3
post prioritize "$RAW/prioritize.args.nodecache-false.json"
assert_lt "prioritize answered in under 1 s" "$TIME_S" 1
http GET /healthz
assert_lt "/healthz answered in under 1 s" "$TIME_S" 1
for i in 1 2 3 4; do
    wait_exit "$(eval echo "\$stall_pid_$i")" 15
    read -r code secs <"$K/stall-$i.out"
    assert_eq "stalled bind $i: 200" 200 "$code"
    assert_lt "stalled bind $i: answered within 2 s + 1 s" "$secs" 3
    BODY=$(cat "$K/stall-$i.body")
    assert_json_true "stalled bind $i: an Error" 'd["Error"] != ""' "$K/stall-$i.body"
    assert_json_true "stalled bind $i: the Error says it timed out" '"time" in d["Error"].lower()' "$K/stall-$i.body"
done
admin DELETE /fault >/dev/null
get_pod b-stall
assert_json "the pod stays unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
bind b-stall gpu-node-2 "$stall_uid"
assert_json "once the API server answers again, it binds" 'd["Error"]' ""

begin "a stall on the POST: Error within the timeout, and never a false success"
create_pod b-stallpost
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/b-stallpost/binding$", "action": "stall", "seconds": 30, "times": 1}' >/dev/null
bind b-stallpost gpu-node-2 "$POD_UID"
assert_lt "answered within 3 s" "$TIME_S" 3
assert_error_reply "an Error" "b-stallpost"
admin DELETE /fault >/dev/null

begin "dropped connections become Errors"
create_pod b-drop
drop_uid=$POD_UID
# Every matching request fails (times -1): an HTTP client may retry a request whose reused
# connection died before any answer, and that retry must not mask the failure here.
for action in '"drop"' '"drop", "rst": true' '"close-after-headers"' '"truncate-body"'; do
    admin POST /fault "{\"match\": \"^GET /api/v1/namespaces/default/pods/b-drop\$\", \"action\": $action, \"times\": -1}" >/dev/null
    bind b-drop gpu-node-2 "$drop_uid"
    assert_status 200 "GET pod $action"
    assert_json_true "GET pod $action: an Error" 'd["Error"] != ""'
    admin DELETE /fault >/dev/null
done
admin POST /fault '{"match": "^POST /api/v1/namespaces/default/pods/b-drop/binding$", "action": "drop", "times": -1}' >/dev/null
bind b-drop gpu-node-2 "$drop_uid"
assert_json_true "POST binding dropped (not applied): an Error" 'd["Error"] != ""'
get_pod b-drop
assert_json "still unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
admin DELETE /fault >/dev/null
bind b-drop gpu-node-2 "$drop_uid"
assert_json "then it binds" 'd["Error"]' ""

begin "a pod's own gpu-model of 100 KB, quotes in it: the Binding carries it whole"
# Annotations may hold 256 KiB in all; the Binding's own fields fit in 64 KiB, this does not.
create_pod b-long 'd["metadata"]["annotations"] = {"gpu-extender.io/gpu-model": "A100," + "\"x\"," * 25000 + "H100"}'
bind b-long gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
get_pod b-long
assert_json "gpu-model-required holds all of it" 'len(d["metadata"]["annotations"]["gpu-extender.io/gpu-model-required"])' 100009 "$KAPI_FILE"

begin "the API server going away: Error"
write_kubeconfig "$K/dead.kubeconfig" "http://127.0.0.1:1" token=t1
start_daemon dead --kubeconfig "$K/dead.kubeconfig" --bind-timeout-ms 1000
bind b-ok gpu-node-2 "$ok_uid"
assert_status 200
assert_json_true "an Error" 'd["Error"] != ""'
assert_lt "answered within 2 s" "$TIME_S" 2
stop_daemon dead
assert_eq "exits 0" 0 "$EXIT_CODE"
use_daemon d

# ---------------------------------------------------------------- TLS

GX_TOKEN=t1
start_fake tls --token t1 --tls-cert "$PKI/server.crt" --tls-key "$PKI/server.key" --client-ca "$PKI/ca.crt" || finish

begin "TLS: certificate-authority-data for the fake's CA"
write_kubeconfig "$K/tls-cadata.kubeconfig" "${F_URL[tls]}" ca-data="$PKI/ca.crt" token=t1
start_daemon tls-cadata --kubeconfig "$K/tls-cadata.kubeconfig"
wait_ready 10
create_pod t-cadata
id0=$(last_request_id)
bind t-cadata gpu-node-1 "$POD_UID"
assert_status 200
assert_json "success" 'd["Error"]' ""
requests_since "$id0"
assert_json "every call was over TLS" '[r["tls"] for r in d]' '[true, true, true]' "$REQS_FILE"
get_pod t-cadata
assert_json "bound" 'd["spec"]["nodeName"]' gpu-node-1 "$KAPI_FILE"
stop_daemon tls-cadata

begin "TLS: certificate-authority file"
write_kubeconfig "$K/tls-cafile.kubeconfig" "${F_URL[tls]}" ca="$PKI/ca.crt" token=t1
start_daemon tls-cafile --kubeconfig "$K/tls-cafile.kubeconfig"
wait_ready 10
create_pod t-cafile
bind t-cafile gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
stop_daemon tls-cafile

begin "TLS: another CA is an Error mentioning the certificate"
write_kubeconfig "$K/tls-other.kubeconfig" "${F_URL[tls]}" ca-data="$PKI/other-ca.crt" token=t1
start_daemon tls-other --kubeconfig "$K/tls-other.kubeconfig"
create_pod t-other
id0=$(last_request_id)
bind t-other gpu-node-1 "$POD_UID"
assert_status 200
assert_cert_error tls-other
requests_since "$id0"
assert_json "no request got through" 'len(d)' 0 "$REQS_FILE"
get_pod t-other
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
stop_daemon tls-other

begin "TLS: no CA configured means the system CAs, which do not trust the fake"
write_kubeconfig "$K/tls-noca.kubeconfig" "${F_URL[tls]}" token=t1
start_daemon tls-noca --kubeconfig "$K/tls-noca.kubeconfig"
bind t-other gpu-node-1 "$POD_UID"
assert_cert_error tls-noca
stop_daemon tls-noca

begin "TLS: insecure-skip-tls-verify"
write_kubeconfig "$K/tls-insecure.kubeconfig" "${F_URL[tls]}" insecure token=t1
start_daemon tls-insecure --kubeconfig "$K/tls-insecure.kubeconfig"
wait_ready 10
bind t-other gpu-node-1 "$POD_UID"
assert_json "success without verification" 'd["Error"]' ""
stop_daemon tls-insecure

begin "TLS: client certificate authentication (files)"
write_kubeconfig "$K/tls-cert.kubeconfig" "${F_URL[tls]}" ca="$PKI/ca.crt" cert="$PKI/client.crt" key="$PKI/client.key"
start_daemon tls-cert --kubeconfig "$K/tls-cert.kubeconfig"
wait_ready 10
create_pod t-cert
id0=$(last_request_id)
bind t-cert gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
requests_since "$id0"
assert_json "authenticated as the certificate's CN" 'sorted(set(r["user"] for r in d))' '["gpu-extender"]' "$REQS_FILE"
assert_json "no bearer token sent" '[r["headers"].get("Authorization") for r in d]' '[null, null, null]' "$REQS_FILE"
stop_daemon tls-cert

begin "TLS: client certificate authentication (inline data)"
write_kubeconfig "$K/tls-certdata.kubeconfig" "${F_URL[tls]}" ca-data="$PKI/ca.crt" cert-data="$PKI/client.crt" key-data="$PKI/client.key"
start_daemon tls-certdata --kubeconfig "$K/tls-certdata.kubeconfig"
wait_ready 10
create_pod t-certdata
id0=$(last_request_id)
bind t-certdata gpu-node-1 "$POD_UID"
assert_json "success" 'd["Error"]' ""
requests_since "$id0"
assert_json "authenticated as gpu-extender" 'sorted(set(r["user"] for r in d))' '["gpu-extender"]' "$REQS_FILE"
stop_daemon tls-certdata

begin "TLS: a client certificate from another CA fails"
write_kubeconfig "$K/tls-othercert.kubeconfig" "${F_URL[tls]}" ca="$PKI/ca.crt" cert="$PKI/other-client.crt" key="$PKI/other-client.key"
start_daemon tls-othercert --kubeconfig "$K/tls-othercert.kubeconfig"
create_pod t-othercert
bind t-othercert gpu-node-1 "$POD_UID"
assert_json_true "an Error" 'd["Error"] != ""'
get_pod t-othercert
assert_json "unbound" 'd["spec"].get("nodeName")' null "$KAPI_FILE"
stop_daemon tls-othercert

# ---------------------------------------------------------------- in-cluster

begin "in-cluster: KUBERNETES_SERVICE_HOST/PORT and a service-account directory"
SA=$GX_TMP/sa
mkdir -p "$SA"
printf 't1' >"$SA/token"
cp "$PKI/ca.crt" "$SA/ca.crt"
printf 'default' >"$SA/namespace"
DAEMON_ENV=(KUBERNETES_SERVICE_HOST=127.0.0.1 "KUBERNETES_SERVICE_PORT=${F_PORT[tls]}")
start_daemon incluster --serviceaccount-dir "$SA"
wait_ready 10
http GET /readyz
assert_json "mode is https://127.0.0.1:PORT" 'd["mode"]' "https://127.0.0.1:${F_PORT[tls]}"
create_pod t-incluster
id0=$(last_request_id)
bind t-incluster gpu-node-3 "$POD_UID"
assert_status 200
assert_json "success" 'd["Error"]' ""
requests_since "$id0"
assert_json "the SA token is sent" 'sorted(set(r["headers"].get("Authorization") for r in d))' '["Bearer t1"]' "$REQS_FILE"
get_pod t-incluster
assert_json "bound to gpu-node-3" 'd["spec"]["nodeName"]' gpu-node-3 "$KAPI_FILE"
assert_json "gpu-count annotation" 'd["metadata"]["annotations"]["gpu-extender.io/gpu-count"]' 1 "$KAPI_FILE"

begin "in-cluster: the rotated SA token is re-read on 401"
admin POST /token '{"token": "t3"}' >/dev/null
GX_TOKEN=t3
printf 't3' >"$SA/token"
create_pod t-rotate
bind t-rotate gpu-node-3 "$POD_UID"
assert_json "success with the new token" 'd["Error"]' ""
stop_daemon incluster
assert_eq "exits 0" 0 "$EXIT_CODE"

begin "in-cluster: a CA that is not the server's is an Error"
SA2=$GX_TMP/sa2
mkdir -p "$SA2"
printf 't3' >"$SA2/token"
cp "$PKI/other-ca.crt" "$SA2/ca.crt"
DAEMON_ENV=(KUBERNETES_SERVICE_HOST=127.0.0.1 "KUBERNETES_SERVICE_PORT=${F_PORT[tls]}")
start_daemon incluster2 --serviceaccount-dir "$SA2"
create_pod t-incluster2
bind t-incluster2 gpu-node-3 "$POD_UID"
assert_cert_error incluster2
stop_daemon incluster2

use_daemon d
finish
