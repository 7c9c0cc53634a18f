-- request.lua -- the wrk script of the HTTP benchmarks (bench/scripts/bench.py runs it).
--
--   wrk -t1 -c1 -d3s -s bench/lua/request.lua http://127.0.0.1:PORT/filter -- POST body.json
--   wrk -t2 -c16 -d3s -s bench/lua/request.lua http://127.0.0.1:PORT/healthz -- GET
--
-- Every request is the same: METHOD with the bytes of the body file, sent as kube-scheduler
-- sends them (Content-Type: application/json, Content-Length, keep-alive). It defines no
-- response() callback, because with one wrk keeps every response body in a buffer, and
-- copying a 12 MB echo would be counted in the latency. At the end it prints one line,
-- "WRKJSON {...}", with the request count, errors and latency percentiles in microseconds.

function init(args)
  wrk.method = args[1] or "GET"
  if args[2] and args[2] ~= "" then
    local f = assert(io.open(args[2], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
