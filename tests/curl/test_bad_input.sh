#!/usr/bin/env bash
# test_bad_input.sh -- hostile and malformed requests: each gets the right status and the
# daemon keeps serving. Meant for the ASan+UBSan build: any sanitizer report in the daemon's
# stderr fails the test (checked when the daemons stop, in finish).
. "$(dirname "$0")/lib.sh"

B=$GX_TMP/bad
mkdir -p "$B"
base=$RAW/filter.args.nodecache-false.json
names=$RAW/filter.args.nodecache-true.json
bindf=$RAW/bind.args.nodecache-false.json

start_daemon main || finish

# expect STATUS NAME FILE [VERB]   -- posts FILE to VERB (filter) and checks the status and
# that a 4xx comes with a JSON {"Error": "..."} body
expect() {
    local want=$1 name=$2 file=$3 verb=${4:-filter}
    post "$verb" "$file"
    assert_status "$want" "$name -> $want"
    if [[ $want == 4* ]]; then
        assert_json_true "$name: the $want body is a JSON Error" \
            'isinstance(d, dict) and isinstance(d.get("Error"), str) and d["Error"] != ""'
    fi
}

# bytes_edit OUT PYCODE   -- b = the raw filter fixture bytes; PYCODE rebinds b; writes OUT
bytes_edit() {
    py '
b = open(sys.argv[1], "rb").read()
exec(sys.argv[3])
open(sys.argv[2], "wb").write(b)
' "${SRC:-$base}" "$1" "$2" || fail "bytes_edit $1"
}

# ---------------------------------------------------------------- truncated JSON

begin "truncated filter requests"
len=$(stat -c %s "$base")
for off in 1 2 7 8 100 1000 5000 $((len / 2)) $((len - 2)) $((len - 1)); do
    head -c "$off" "$base" >"$B/trunc-$off.json"
    expect 400 "filter fixture cut at byte $off of $len" "$B/trunc-$off.json"
    assert_error_reply "cut at $off: the Error says malformed" "malformed"
done
nlen=$(stat -c %s "$names")
for off in 1 50 $((nlen - 1)); do
    head -c "$off" "$names" >"$B/ntrunc-$off.json"
    expect 400 "NodeNames fixture cut at byte $off" "$B/ntrunc-$off.json"
    expect 400 "NodeNames fixture cut at byte $off, to prioritize" "$B/ntrunc-$off.json" prioritize
done
blen=$(stat -c %s "$bindf")
for off in 1 20 $((blen - 1)); do
    head -c "$off" "$bindf" >"$B/btrunc-$off.json"
    expect 400 "bind fixture cut at byte $off" "$B/btrunc-$off.json" bind
done

begin "empty body"
: >"$B/empty.json"
for verb in filter prioritize bind; do
    expect 400 "empty body to $verb" "$B/empty.json" "$verb"
done
printf '  \n\t ' >"$B/blank.json"
expect 400 "whitespace-only body" "$B/blank.json"

# ---------------------------------------------------------------- wrong types

begin "wrong types in ExtenderArgs"
derive "$base" "$B/pod-string.json" 'd["Pod"] = "gpu-pod-1"'
expect 400 "Pod as a string" "$B/pod-string.json"
derive "$base" "$B/pod-array.json" 'd["Pod"] = [d["Pod"]]'
expect 400 "Pod as an array" "$B/pod-array.json"
derive "$base" "$B/pod-number.json" 'd["Pod"] = 1'
expect 400 "Pod as a number" "$B/pod-number.json"
derive "$base" "$B/pod-null.json" 'd["Pod"] = None'
expect 400 "Pod null (no pod)" "$B/pod-null.json"
derive "$base" "$B/nodes-string.json" 'd["Nodes"] = "gpu-node-1"'
expect 400 "Nodes as a string" "$B/nodes-string.json"
derive "$base" "$B/nodes-array.json" 'd["Nodes"] = d["Nodes"]["items"]'
expect 400 "Nodes as an array" "$B/nodes-array.json"
derive "$base" "$B/items-object.json" 'd["Nodes"]["items"] = {"a": d["Nodes"]["items"][0]}'
expect 400 "Nodes.items as an object" "$B/items-object.json"
derive "$base" "$B/item-string.json" 'd["Nodes"]["items"][1] = "gpu-node-2"'
expect 400 "a Nodes.items element as a string" "$B/item-string.json"
derive "$base" "$B/node-noname.json" 'del d["Nodes"]["items"][0]["metadata"]["name"]'
expect 400 "a Node without metadata.name" "$B/node-noname.json"
derive "$base" "$B/both.json" 'd["NodeNames"] = ["gpu-node-1"]'
expect 400 "both Nodes and NodeNames" "$B/both.json"
derive "$names" "$B/names-object.json" 'd["NodeNames"] = {"gpu-node-1": True}'
expect 400 "NodeNames as an object" "$B/names-object.json"
derive "$names" "$B/names-string.json" 'd["NodeNames"] = "gpu-node-1"'
expect 400 "NodeNames as a string" "$B/names-string.json"
derive "$names" "$B/names-number-elem.json" 'd["NodeNames"] = ["gpu-node-1", 2]'
expect 400 "NodeNames with a number element" "$B/names-number-elem.json"
expect 400 "NodeNames with a number element, to prioritize" "$B/names-number-elem.json" prioritize
for top in '[]' '"x"' '42' 'null' 'true'; do
    printf '%s' "$top" >"$B/top.json"
    expect 400 "top-level $top" "$B/top.json"
done

begin "wrong types of a container's nvidia.com/gpu"
i=0
for v in 1 '"1.5"' '"-1"' '"abc"' '""' '"1Gi"' '"99999999999999999999999"' '"5000"' null true '{}' '[]'; do
    i=$((i + 1))
    derive "$base" "$B/gpu-req-$i.json" "set_gpus(d, json.loads('$v'), ('requests',))"
    expect 400 "container requests nvidia.com/gpu = $v" "$B/gpu-req-$i.json"
    derive "$base" "$B/gpu-lim-$i.json" "set_gpus(d, json.loads('$v'), ('limits',))"
    expect 400 "container limits nvidia.com/gpu = $v" "$B/gpu-lim-$i.json"
done
derive "$base" "$B/gpu-2k.json" 'set_gpus(d, "2k")'
expect 200 "container nvidia.com/gpu = \"2k\" (a whole quantity) is well-formed" "$B/gpu-2k.json"
assert_json "2000 GPUs fit nowhere" 'len(d["FailedAndUnresolvableNodes"])' 3
derive "$base" "$B/alloc-abc.json" 'node_by_name(d, "gpu-node-2")["status"]["allocatable"]["nvidia.com/gpu"] = "abc"'
expect 400 "node allocatable nvidia.com/gpu = \"abc\"" "$B/alloc-abc.json"
derive "$base" "$B/alloc-num.json" 'node_by_name(d, "gpu-node-2")["status"]["allocatable"]["nvidia.com/gpu"] = 8'
expect 400 "node allocatable nvidia.com/gpu as a number" "$B/alloc-num.json"
derive "$base" "$B/containers-object.json" 'd["Pod"]["spec"]["containers"] = {"a": 1}'
expect 400 "spec.containers as an object" "$B/containers-object.json"
derive "$base" "$B/container-string.json" 'd["Pod"]["spec"]["containers"] = ["c"]'
expect 400 "a container as a string" "$B/container-string.json"
derive "$base" "$B/ann-number.json" 'annotate(d, "gpu-extender.io/gpu-model", 100)'
expect 400 "annotation gpu-model as a number" "$B/ann-number.json"
derive "$base" "$B/name-number.json" 'd["Pod"]["metadata"]["name"] = 7'
expect 400 "pod metadata.name as a number" "$B/name-number.json"
derive "$base" "$B/unsched-string.json" 'node_by_name(d, "gpu-node-1")["spec"]["unschedulable"] = "yes"'
expect 400 "node spec.unschedulable as a string" "$B/unsched-string.json"

# ---------------------------------------------------------------- nesting

begin "100,000 '[' inside the Pod"
py '
b = open(sys.argv[1], "rb").read()
assert b.startswith(b"{\"Pod\":{")
deep = b"[" * 100000 + b"]" * 100000
open(sys.argv[2], "wb").write(b"{\"Pod\":{\"deep\":" + deep + b"," + b[len(b"{\"Pod\":{"):])
open(sys.argv[3], "wb").write(b"{\"Pod\":{\"deep\":" + b"[" * 100000)
obj = b"{\"a\":" * 100000 + b"1" + b"}" * 100000
open(sys.argv[4], "wb").write(b"{\"Pod\":{\"deep\":" + obj + b"," + b[len(b"{\"Pod\":{"):])
' "$base" "$B/deep-balanced.json" "$B/deep-open.json" "$B/deep-objects.json"
expect 400 "balanced 100,000-deep array" "$B/deep-balanced.json"
assert_error_reply "the Error mentions the nesting" "nest"
expect 400 "100,000 unclosed '['" "$B/deep-open.json"
expect 400 "100,000-deep objects" "$B/deep-objects.json"
expect 400 "100,000-deep array to prioritize" "$B/deep-balanced.json" prioritize
py 'open(sys.argv[1], "wb").write(b"{\"PodName\":" + b"[" * 100000 + b"]" * 100000 + b"}")' "$B/deep-bind.json"
expect 400 "100,000-deep array in bind args" "$B/deep-bind.json" bind
derive "$base" "$B/nest-ok.json" 'd["Pod"]["x"] = json.loads("[" * 100 + "]" * 100)'
expect 200 "a 100-deep array in an unknown field is fine" "$B/nest-ok.json"

# ---------------------------------------------------------------- bytes

begin "invalid UTF-8, overlong encodings, lone continuation bytes, NUL"
# In a string the daemon reads (the pod's name) and in one it only skips (a label value).
i=0
for bad in '\xff' '\xc0\xaf' '\xe0\x80\xaf' '\xf0\x80\x80\xaf' '\x80' '\xbf' '\xed\xa0\x80' '\xf4\x90\x80\x80' '\xe2\x82' '\xc3' '\x00' '\x1f' '\x0a'; do
    i=$((i + 1))
    bytes_edit "$B/utf8-read-$i.json" "
assert b.count(b'\"name\":\"gpu-pod-1\"') == 1
b = b.replace(b'\"name\":\"gpu-pod-1\"', b'\"name\":\"gpu-pod-1' + b'$bad' + b'x\"')"
    expect 400 "byte(s) $bad in the pod name" "$B/utf8-read-$i.json"
    bytes_edit "$B/utf8-skip-$i.json" "
k = b'\"kubernetes.io/hostname\":\"gpu-node-2\"'
assert b.count(k) == 1
b = b.replace(k, b'\"kubernetes.io/hostname\":\"gpu-' + b'$bad' + b'node-2\"')"
    expect 400 "byte(s) $bad in a node label the daemon does not read" "$B/utf8-skip-$i.json"
done
bytes_edit "$B/nul-between.json" 'b = b.replace(b"{\"Pod\":", b"{\x00\"Pod\":", 1)'
expect 400 "a NUL byte between tokens" "$B/nul-between.json"
bytes_edit "$B/nul-end.json" 'b = b + b"\x00"'
expect 400 "a NUL byte after the document" "$B/nul-end.json"
bytes_edit "$B/bom.json" 'b = b"\xef\xbb\xbf" + b'
expect 400 "a UTF-8 byte order mark before the document" "$B/bom.json"
# Controls: valid UTF-8 and escapes are fine.
bytes_edit "$B/utf8-ok.json" "b = b.replace(b'\"kubernetes.io/hostname\":\"gpu-node-2\"', b'\"kubernetes.io/hostname\":\"gpu-node-2\xc3\xa9\xe5\x90\x8d\xf0\x9f\x98\x80\"')"
expect 200 "valid 2-, 3- and 4-byte UTF-8 in a label" "$B/utf8-ok.json"
assert_echo "the node with UTF-8 is echoed byte for byte" "$B/utf8-ok.json" gpu-node-1 gpu-node-2 gpu-node-3
bytes_edit "$B/escapes-ok.json" "b = b.replace(b'\"kubernetes.io/hostname\":\"gpu-node-2\"', b'\"kubernetes.io/hostname\":\"gpu-node-2\\\\u0000\\\\ud83d\\\\ude00\\\\\"\\\\n\"')"
expect 200 "escaped \\u0000, a surrogate pair, \\\" and \\n in a label" "$B/escapes-ok.json"
assert_echo "echoed with the escapes intact" "$B/escapes-ok.json" gpu-node-1 gpu-node-2 gpu-node-3
bytes_edit "$B/bad-escape.json" "b = b.replace(b'\"kubernetes.io/hostname\":\"gpu-node-2\"', b'\"kubernetes.io/hostname\":\"gpu-node-2\\\\x41\"')"
expect 400 "an invalid escape \\x41" "$B/bad-escape.json"
bytes_edit "$B/bad-u-escape.json" "b = b.replace(b'\"kubernetes.io/hostname\":\"gpu-node-2\"', b'\"kubernetes.io/hostname\":\"gpu-node-2\\\\u12G4\"')"
expect 400 "an invalid escape \\u12G4" "$B/bad-u-escape.json"
SRC=$bindf bytes_edit "$B/bind-utf8.json" 'b = b.replace(b"gpu-pod-1", b"gpu-pod-\xc0\xaf", 1)'
expect 400 "an overlong encoding in bind args" "$B/bind-utf8.json" bind
SRC=$bindf bytes_edit "$B/bind-nul.json" 'b = b.replace(b"gpu-pod-1", b"gpu-pod\x00-1", 1)'
expect 400 "a raw NUL in bind args" "$B/bind-nul.json" bind

# ---------------------------------------------------------------- duplicate keys

begin "duplicate keys"
bytes_edit "$B/dup-pod.json" 'assert b.startswith(b"{\"Pod\":"); b = b"{\"Pod\":{\"metadata\":{\"name\":\"other\"}}," + b[1:]'
expect 400 "two Pod keys" "$B/dup-pod.json"
bytes_edit "$B/dup-pod-case.json" 'b = b"{\"pod\":{\"metadata\":{\"name\":\"other\"}}," + b[1:]'
expect 400 "Pod and pod (keys match case-insensitively)" "$B/dup-pod-case.json"
bytes_edit "$B/dup-nodes.json" 'b = b[:-1] + b",\"Nodes\":{\"metadata\":{},\"items\":[]}}"'
expect 400 "two Nodes keys" "$B/dup-nodes.json"
bytes_edit "$B/dup-items.json" 'k = b"\"Nodes\":{\"metadata\":{},"; assert b.count(k) == 1; b = b.replace(k, k + b"\"items\":[],")'
expect 400 "two items keys in Nodes" "$B/dup-items.json"
bytes_edit "$B/dup-limits.json" 'k = b"\"limits\":{\"nvidia.com/gpu\":\"1\"}"; assert b.count(k) == 1; b = b.replace(k, b"\"limits\":{\"nvidia.com/gpu\":\"1\",\"nvidia.com/gpu\":\"8\"}")'
expect 400 "a duplicate nvidia.com/gpu in limits" "$B/dup-limits.json"
bytes_edit "$B/dup-requests.json" 'k = b"\"nvidia.com/gpu\":\"1\"}},"; n = b.count(k); assert n >= 1, n; i = b.index(b"\"requests\":{"); j = b.index(k, i); b = b[:j] + b"\"nvidia.com/gpu\":\"1\",\"nvidia.com/gpu\":\"0\"}}," + b[j + len(k):]'
expect 400 "a duplicate nvidia.com/gpu in requests" "$B/dup-requests.json"
bytes_edit "$B/dup-alloc.json" 'k = b"\"allocatable\":{"; i = b.index(k); b = b[:i + len(k)] + b"\"nvidia.com/gpu\":\"64\"," + b[i + len(k):]'
expect 400 "a duplicate nvidia.com/gpu in a node's allocatable" "$B/dup-alloc.json"
bytes_edit "$B/dup-ann.json" 'k = b"\"metadata\":{\"name\":\"gpu-pod-1\","; assert b.count(k) == 1; b = b.replace(k, k + b"\"annotations\":{\"gpu-extender.io/gpu-model\":\"A100\",\"gpu-extender.io/gpu-model\":\"H100\"},")'
expect 400 "a duplicate gpu-model annotation" "$B/dup-ann.json"
bytes_edit "$B/dup-meta.json" 'k = b"{\"Pod\":{"; b = b.replace(k, k + b"\"metadata\":{\"name\":\"x\"},", 1)'
expect 400 "a duplicate Pod metadata" "$B/dup-meta.json"
bytes_edit "$B/dup-nodename.json" 'k = b"\"labels\":{"; i = b.index(k, b.index(b"\"items\"")); j = b.index(b"\"name\":\"gpu-node-1\"", b.index(b"\"items\"")); b = b[:j] + b"\"name\":\"gpu-node-9\"," + b[j:]'
expect 400 "a Node with two metadata.name keys" "$B/dup-nodename.json"
printf '{"PodName":"a","PodName":"b","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}' >"$B/dup-bind.json"
expect 400 "two PodName keys in bind args" "$B/dup-bind.json" bind
printf '{"PodName":"a","podname":"b","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}' >"$B/dup-bind-case.json"
expect 400 "PodName and podname in bind args" "$B/dup-bind-case.json" bind
bytes_edit "$B/dup-unknown.json" 'b = b"{\"Extra\":1,\"Extra\":2," + b[1:]'
expect 200 "a repeated unknown top-level key is ignored" "$B/dup-unknown.json"

# ---------------------------------------------------------------- trailing bytes

begin "trailing garbage after the JSON"
for t in 'x' '{}' ',' '}' ']' '"' '0' 'null'; do
    bytes_edit "$B/trail.json" "b = b + b'$t'"
    expect 400 "filter fixture followed by $t" "$B/trail.json"
done
bytes_edit "$B/trail-doc.json" 'b = b + b" " + b'
expect 400 "two documents back to back" "$B/trail-doc.json"
SRC=$bindf bytes_edit "$B/trail-bind.json" 'b = b + b"]"'
expect 400 "bind args followed by ]" "$B/trail-bind.json" bind
SRC=$bindf bytes_edit "$B/trail-bind2.json" 'b = b + b"{}"'
expect 400 "bind args followed by {}" "$B/trail-bind2.json" bind
bytes_edit "$B/trail-ws.json" 'b = b" \r\n\t" + b + b"\r\n \t\n"'
expect 200 "leading and trailing whitespace is fine" "$B/trail-ws.json"

# ---------------------------------------------------------------- routing

begin "unknown paths: 404"
for p in /preemptx /filterx /filter/ /FILTER /Filter /filter/extra / /api/v1/filter /bind/../filter; do
    http POST "$p" -H 'Content-Type: application/json' --data-binary "@$base" --path-as-is
    assert_status 404 "POST $p"
done
http GET /nope
assert_status 404 "GET /nope"
assert_json_true "404 body is a JSON Error" 'd["Error"] != ""'

begin "wrong methods: 405"
for m in GET PUT DELETE PATCH; do
    http "$m" /filter
    assert_status 405 "$m /filter"
done
http GET /prioritize
assert_status 405 "GET /prioritize"
http GET /bind
assert_status 405 "GET /bind"
http PUT /bind -H 'Content-Type: application/json' --data-binary "@$bindf"
assert_status 405 "PUT /bind"
assert_json_true "405 body is a JSON Error" 'd["Error"] != ""'
http POST /healthz --data-binary x
assert_status 405 "POST /healthz"
http POST /metrics --data-binary x
assert_status 405 "POST /metrics"
http DELETE /version
assert_status 405 "DELETE /version"

# ---------------------------------------------------------------- bind arguments

begin "bind args: missing, empty and non-string fields -> 400"
j=0
while IFS= read -r args; do
    j=$((j + 1))
    printf '%s' "$args" >"$B/bind-$j.json"
    expect 400 "bind $args" "$B/bind-$j.json" bind
done <<'EOF'
{}
{"PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u"}
{"PodName":"","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":""}
{"PodName":null,"PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":5,"PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":["default"],"PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":7,"Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":{"name":"gpu-node-1"}}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":true}
["gpu-pod-1","default","u","gpu-node-1"]
"gpu-pod-1"
null
EOF
printf '{"PodName":"gpu-pod-1","PodNamespace":"default","Node":"gpu-node-1"}' >"$B/bind-nouid.json"
expect 200 "bind without PodUID is well-formed (standalone Error)" "$B/bind-nouid.json" bind
assert_error_reply "standalone Error" "standalone"

# The bind cases that must never reach the API server run against a daemon connected to the
# fake API server, whose request records show what reached it: a valid name does (the
# control), an unsafe one must not. The cache's own list/watch reads are not counted.
begin "bind args with path-injection names -> 200 with an Error, no API request"
require_file "$GX_SOURCE_DIR/tests/fake_apiserver.py" "the fake API server"
GX_TOKEN=test-token
start_fake api --token test-token
write_kubeconfig "$GX_TMP/api.kubeconfig" "${F_URL[api]}" token=test-token
start_daemon kc --kubeconfig "$GX_TMP/api.kubeconfig" --bind-timeout-ms 3000
wait_ready 10
# api_requests_since ID   -- "METHOD path?query" of every request after ID, one a line,
# without the cache's collection reads
api_requests_since() {
    admin GET "/requests?since=$1" >/dev/null
    py '
import re
for r in json.load(open(sys.argv[1])):
    if r["method"] == "GET" and re.fullmatch(r"/api/v1/(watch/)?(nodes|pods|namespaces/[^/]+/pods)|/apis/policy/v1/(watch/)?poddisruptionbudgets", r["path"]):
        continue
    print(r["method"], r["path"] + ("?" + r["query"] if r["query"] else ""))
' "$ADMIN_FILE"
}
last_id() {
    admin GET /requests >/dev/null
    json_get 'd[-1]["id"] if d else 0' "$ADMIN_FILE"
}
j=0
long=$(printf 'a%.0s' {1..300})
while IFS= read -r args; do
    j=$((j + 1))
    printf '%s' "$args" >"$B/inj-$j.json"
    id0=$(last_id)
    post bind "$B/inj-$j.json"
    if [[ $args == *'\u0000'* ]]; then
        # An escaped NUL cannot be part of any name: refusing the request as malformed is as
        # good as an Error reply.
        assert_json_true "bind $args -> 200 or 400" "$STATUS in (200, 400)"
    else
        assert_status 200 "bind $args -> 200"
    fi
    assert_json_true "an Error, not success" 'isinstance(d.get("Error"), str) and d["Error"] != ""'
    # The fake records a request when it arrives, and the bind reply waits for the API calls.
    assert_eq "no API request for $args" "" "$(api_requests_since "$id0")"
done <<EOF
{"PodName":"../../x","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"../../api/v1/secrets","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":"../../api/v1/namespaces/kube-system/secrets/x"}
{"PodName":"a/b","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"a\/b","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"a%2Fb","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"x?watch=true","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"x#frag","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"a b","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"x\r\nX-Injected: 1","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"x\u0000y","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"Gpu-Pod-1","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1\"}"}
{"PodName":"$long","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":"$long"}
{"PodName":"..","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":".","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"..","PodUID":"u","Node":"gpu-node-1"}
{"PodName":"gpu-pod-1","PodNamespace":"default","PodUID":"u","Node":".."}
{"PodName":"-x","PodNamespace":"default","PodUID":"u","Node":"gpu-node-1"}
EOF
# Control: a valid bind does reach the API server, so the checks above can fail. gpu-pod-1
# is seeded bound to gpu-node-1: GET pod, then success without a POST.
id0=$(last_id)
post bind "$bindf"
assert_status 200 "control bind"
assert_contains "the control bind reached the API server" "GET /api/v1/namespaces/default/pods/gpu-pod-1" "$(api_requests_since "$id0")"
stop_daemon kc
assert_eq "kc daemon exits 0" 0 "$EXIT_CODE"
use_daemon main

begin "path-injection bind on the standalone daemon"
post bind "$B/inj-1.json"
assert_status 200
assert_json_true "an Error" 'd["Error"] != ""'

# ---------------------------------------------------------------- size limits

begin "a body over --max-body-bytes: 413"
start_daemon small --max-body-bytes 4096
expect 413 "the 14.5 KB filter fixture, Content-Length" "$base"
assert_error_reply "the Error names the limit" "4096"
http POST /filter -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "@$base"
assert_status 413 "the 14.5 KB filter fixture, chunked"
http POST /filter -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "@$names"
assert_status 200 "a 3 KB NodeNames fixture, chunked, is under the limit"
assert_error_reply "and gets the NodeNames answer" "nodeCacheCapable"
py '
b = open(sys.argv[1], "rb").read()
assert len(b) < 4096
open(sys.argv[2], "wb").write(b + b" " * (4096 - len(b)))
open(sys.argv[3], "wb").write(b + b" " * (4097 - len(b)))
' "$names" "$B/exact-4096.json" "$B/over-4097.json"
expect 200 "exactly 4096 bytes" "$B/exact-4096.json"
expect 413 "4097 bytes" "$B/over-4097.json"
http POST /filter -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary "@$B/over-4097.json"
assert_status 413 "4097 bytes, chunked"
expect 413 "an oversized bind" "$B/over-4097.json" bind
printf 'POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999\r\n\r\n{"Pod":' >"$B/huge-cl.http"
out=$(raw_request "${D_PORT[small]}" "$B/huge-cl.http" 5)
assert_contains "a 99 TB Content-Length is refused at once" "HTTP/1.1 413" "$out"
expect 200 "a normal small request still works on the small daemon" "$B/exact-4096.json"
stop_daemon small
assert_eq "small daemon exits 0" 0 "$EXIT_CODE"
use_daemon main

# ---------------------------------------------------------------- big but well-formed

begin "100,000 node names"
derive "$names" "$B/names-100k.json" 'd["NodeNames"] = ["gpu-node-%d" % i for i in range(100000)]'
GX_CURL_MAX_TIME=30 post filter "$B/names-100k.json"
assert_status 200
assert_json_true "a sensible answer: an Error, or NodeNames from the input" \
    '(isinstance(d.get("Error"), str) and d["Error"] != "") or (isinstance(d.get("NodeNames"), list) and set(d["NodeNames"]) <= set("gpu-node-%d" % i for i in range(100000)))'
assert_lt "answered in under 5 s" "$TIME_S" 5
GX_CURL_MAX_TIME=30 post prioritize "$B/names-100k.json"
assert_json_true "prioritize: a score list over the input, or an Error" \
    '(isinstance(d, list) and len(d) <= 100000) or (isinstance(d, dict) and d.get("Error"))'
assert_json_true "prioritize status 200 or 503" "$STATUS in (200, 503)"

begin "1,000 full Node objects: all pass, all echoed byte for byte"
derive "$base" "$B/nodes-1k.json" '
import copy
tmpl = d["Nodes"]["items"]
d["Nodes"]["items"] = []
for i in range(1000):
    n = copy.deepcopy(tmpl[i % 3]); n["metadata"]["name"] = "node-%04d" % i
    d["Nodes"]["items"].append(n)'
GX_CURL_MAX_TIME=30 post filter "$B/nodes-1k.json"
assert_status 200
mapfile -t all < <(seq -f 'node-%04g' 0 999)
assert_echo "1,000 nodes echoed" "$B/nodes-1k.json" "${all[@]}"
assert_lt "answered in under 5 s" "$TIME_S" 5

# ---------------------------------------------------------------- broken HTTP

begin "broken HTTP: garbage, a body cut short, huge headers, many at once"
printf 'GARBAGE\r\n\r\n' >"$B/garbage.http"
out=$(raw_request "${D_PORT[main]}" "$B/garbage.http" 5)
assert_not_contains "a garbage request line is not answered 200" "HTTP/1.1 200" "$out"
printf 'POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14000\r\n\r\n{"Pod":{"metadata"' >"$B/short.http"
# abort_upload PORT FILE   -- sends FILE (a request whose body is cut short) and closes the
# connection the way an aborted client does
abort_upload() {
    python3 - "$1" "$2" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(open(sys.argv[2], "rb").read())
time.sleep(0.2)
s.close()
PYEOF
}
abort_upload "${D_PORT[main]}" "$B/short.http"
py '
h = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n"
open(sys.argv[1], "wb").write(h)' "$B/bighdr.http"
out=$(raw_request "${D_PORT[main]}" "$B/bighdr.http" 5)
assert_not_contains "a 200 KB header is not served as OK" "HTTP/1.1 200" "$out"
urls=()
for ((k = 0; k < 40; k++)); do urls+=(-o /dev/null "$GX_URL/filter"); done
out=$(curl -sS -Z --parallel-max 20 --max-time 30 -H 'Content-Type: application/json' \
    --data-binary "@$base" -w '%{http_code}\n' "${urls[@]}" 2>"$GX_TMP/parallel.err" | sort | uniq -c | awk '{print $1 "x" $2}')
assert_eq "40 filters, 20 at a time, all 200" "40x200" "$out"

begin "a client that half-closes in the middle of a body does not hold up SIGTERM"
# The request can never complete: the connection is dead, and a SIGTERM that follows must
# not wait --drain-timeout-ms for it.
start_daemon halfclose --drain-timeout-ms 4000
python3 - "${D_PORT[halfclose]}" "$B/short.http" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(open(sys.argv[2], "rb").read())
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)
s.close()
PYEOF
sleep 0.5
t0=$(_now_ms)
stop_daemon halfclose TERM 10
assert_eq "halfclose daemon exits 0" 0 "$EXIT_CODE"
assert_lt "it exits within 2 s of SIGTERM (not after the 4 s drain timeout)" $(($(_now_ms) - t0)) 2000
use_daemon main

# ---------------------------------------------------------------- still serving

begin "after everything: alive, /healthz 200, a fixture filter still works"
http GET /healthz
assert_status 200 "/healthz"
post filter "$base"
assert_status 200 "filter fixture"
assert_echo "every node passes, byte for byte" "$base" gpu-node-1 gpu-node-2 gpu-node-3
post prioritize "$RAW/prioritize.args.nodecache-false.json"
assert_json "prioritize still scores" '[h["Score"] for h in d]' '[1, 1, 3]'

finish
