#!/usr/bin/env bash
# test_shutdown.sh -- SIGTERM and SIGINT while a bind is stalled on the API server: the
# request in flight is finished and answered, new connections are refused, and the daemon
# then exits 0. Also: a bind that outlives --drain-timeout-ms, and an idle daemon.
. "$(dirname "$0")/lib.sh"

require_file "$GX_SOURCE_DIR/tests/fake_apiserver.py" "the fake API server"

K=$GX_TMP/k
mkdir -p "$K"
printf 't1' >"$K/token"
GX_TOKEN=t1
start_fake api --token t1 || finish
write_kubeconfig "$K/kubeconfig" "${F_URL[api]}" token-file="$K/token"

# pod_to_bind NAME   -- a pending 1-GPU pod from the fixture pod, and its bind args in
# $K/bind-NAME.json (to gpu-node-2); sets POD_UID
pod_to_bind() {
    create_pod "$1" || return 1
    derive "$RAW/bind.args.nodecache-false.json" "$K/bind-$1.json" \
        "d['PodName'] = '$1'; d['PodUID'] = '$POD_UID'; d['Node'] = 'gpu-node-2'"
}

# start_stalled_bind NAME SECONDS   -- makes the fake stall the POST of pod NAME's Binding (the
# one call every bind makes, whether the cache vouched for the pod or not) for SECONDS,
# posts its bind in the background (BIND_PID; reply in $K/NAME.body, status and time in
# $K/NAME.out) and waits until the fake holds the stalled request
start_stalled_bind() {
    local name=$1 secs=$2
    admin POST /fault "{\"match\": \"^POST /api/v1/namespaces/default/pods/$name/binding\$\", \"action\": \"stall\", \"seconds\": $secs, \"times\": 1}" >/dev/null
    curl -s -o "$K/$name.body" -w '%{http_code} %{time_total}' --max-time 30 \
        -H 'Content-Type: application/json' --data-binary "@$K/bind-$name.json" \
        "$GX_URL/bind" >"$K/$name.out" 2>&1 &
    BIND_PID=$!
    _track "$BIND_PID"
    admin GET "/requests?match=$(py 'import urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "^POST /api/v1/namespaces/default/pods/$name/binding\$")&min=1&wait=5" >/dev/null
    assert_json "the fake holds the stalled POST of $name's Binding" 'len(d)' 1 "$ADMIN_FILE"
}

# refused_within PORT MS   -- polls until a connection to PORT is refused; prints the ms it
# took, or "never"
refused_within() {
    local port=$1 deadline=$(($(_now_ms) + $2)) t0
    t0=$(_now_ms)
    while (($(_now_ms) < deadline)); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz"
        if (($? == 7)); then
            echo $(($(_now_ms) - t0))
            return 0
        fi
        sleep 0.02
    done
    echo never
}

# signal_during_bind SIGNAL NAME   -- the whole scenario for one signal
signal_during_bind() {
    local sig=$1 name=$2
    pod_to_bind "$name"
    start_daemon "$name" --kubeconfig "$K/kubeconfig" --bind-timeout-ms 4000 || return
    local port=${D_PORT[$name]} pid=${D_PID[$name]}
    start_stalled_bind "$name" 2
    local t_sig
    t_sig=$(_now_ms)
    unset "D_WATCH[$name]"
    kill "-$sig" "$pid"
    local took
    took=$(refused_within "$port" 1500)
    assert_ne "new connections are refused after SIG$sig" never "$took"
    assert_eq "the refusal came while the bind was still in flight" yes "$(proc_alive "$BIND_PID" && echo yes || echo no)"
    assert_eq "the daemon is still running, finishing the bind" yes "$(proc_alive "$pid" && echo yes || echo no)"
    wait_exit "$BIND_PID" 15
    local code secs
    read -r code secs <"$K/$name.out"
    assert_eq "the client got its reply: 200" 200 "$code"
    assert_json "the bind finished: Error is empty" 'd["Error"]' "" "$K/$name.body"
    assert_lt "the reply came after the 2 s stall" 1.8 "$secs"
    wait_exit "$pid" 10
    assert_eq "the daemon then exits 0" 0 "$EXIT_CODE"
    assert_lt "and it exits within 1.5 s of the reply (not after the drain timeout)" \
        $(($(_now_ms) - t_sig)) $((2000 + 1500 + 500))
    check_sanitizer_log "$name"
    kapi GET "/api/v1/namespaces/default/pods/$name"
    assert_json "the pod is bound" 'd["spec"].get("nodeName")' gpu-node-2 "$KAPI_FILE"
    assert_contains "the daemon logged the signal" "signal=SIG$sig" "$(cat "${D_LOG[$name]}")"
}

begin "SIGTERM while a bind is stalled on the API server"
signal_during_bind TERM s-term

begin "SIGINT while a bind is stalled on the API server"
signal_during_bind INT s-int

begin "SIGTERM on an idle daemon: exit 0 at once"
start_daemon idle
t0=$(_now_ms)
stop_daemon idle TERM 10
assert_eq "exit 0" 0 "$EXIT_CODE"
assert_lt "within 1 s" $(($(_now_ms) - t0)) 1000

begin "SIGTERM with an idle keep-alive connection open: exit 0 at once"
start_daemon keepalive
"$GX_PYTHON" -S - "${D_PORT[keepalive]}" "$K/ka.out" <<'PYEOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
data = s.recv(4096)
open(sys.argv[2], "wb").write(data)
time.sleep(8)
PYEOF
ka_pid=$!
_track "$ka_pid"
deadline=$(_deadline 5)
while [[ ! -s $K/ka.out ]] && _before "$deadline"; do sleep 0.02; done
assert_contains "the keep-alive request was answered" "200" "$(head -c 20 "$K/ka.out")"
t0=$(_now_ms)
stop_daemon keepalive TERM 15
assert_eq "exit 0" 0 "$EXIT_CODE"
assert_lt "an idle connection does not hold up the exit (under 2 s)" $(($(_now_ms) - t0)) 2000
kill "$ka_pid" 2>/dev/null

begin "SIGTERM while a bind outlives --drain-timeout-ms: no crash, exit 0"
pod_to_bind s-drain
start_daemon s-drain --kubeconfig "$K/kubeconfig" --bind-timeout-ms 3000 --drain-timeout-ms 500
start_stalled_bind s-drain 30
t0=$(_now_ms)
stop_daemon s-drain TERM 15
assert_eq "exit 0" 0 "$EXIT_CODE"
assert_lt "it exits within drain + bind timeout + 1 s" $(($(_now_ms) - t0)) 4500
wait_exit "$BIND_PID" 10
read -r code secs <"$K/s-drain.out"
assert_ne "the client is not told the bind succeeded" '{"Error":""}' "$(cat "$K/s-drain.body" 2>/dev/null)"
admin DELETE /fault >/dev/null

finish
