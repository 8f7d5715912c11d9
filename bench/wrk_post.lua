-- wrk_post.lua - POSTs one JSON body (the file named after wrk's "--") and prints one line of
-- JSON for bench.c to read: request count, latency percentiles (microseconds) and errors.
--   wrk -t2 -c8 -d3s -s bench/wrk_post.lua http://127.0.0.1:PORT/forward -- body.json
function init(args)
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
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
