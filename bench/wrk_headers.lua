-- wrk_headers.lua - POSTs one body (the file named after wrk's "--") with the request headers
-- given after it ("Name: value" each), and prints one line of JSON for bench.c to read, as
-- wrk_post.lua does: request count, bytes, latency percentiles (microseconds) and errors.
--   wrk -t2 -c8 -d3s -s bench/wrk_headers.lua http://127.0.0.1:PORT/v2/models/M/infer -- \
--       body.bin "Inference-Header-Content-Length: 241" "Accept-Encoding: gzip"
function init(args)
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    for i = 2, #args do
        local k, v = args[i]:match("^([^:]+):%s*(.*)$")
        if k then
            wrk.headers[k] = v
        end
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,' ..
        '"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
        '"err_status":%d,"err_timeout":%d}\n',
        summary.requests, summary.duration, summary.bytes, latency:percentile(50),
        latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write,
        e.status, e.timeout))
end
