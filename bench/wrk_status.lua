-- wrk_status.lua - as wrk_post.lua (POSTs the body file named after "--"), but also counts the
-- answers by status, and the 503s that carry Retry-After, for the scheduler's overload row.
--   wrk -t2 -c128 -d10s --timeout 3s -s bench/wrk_status.lua http://127.0.0.1:PORT/path -- body
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    n200, n503, n503_retry, nother = 0, 0, 0, 0
end

function response(status, headers, body)
    if status == 200 then
        n200 = n200 + 1
    elseif status == 503 then
        n503 = n503 + 1
        if headers["Retry-After"] or headers["retry-after"] then
            n503_retry = n503_retry + 1
        end
    else
        nother = nother + 1
    end
end

function done(summary, latency, requests)
    local c200, c503, c503r, cother = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        c200 = c200 + t:get("n200")
        c503 = c503 + t:get("n503")
        c503r = c503r + t:get("n503_retry")
        cother = cother + t:get("nother")
    end
    local e = summary.errors
    io.write(string.format(
        'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
        '"n200":%d,"n503":%d,"n503_retry":%d,"nother":%d,"err_connect":%d,"err_read":%d,' ..
        '"err_write":%d,"err_timeout":%d}\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        latency.max, c200, c503, c503r, cother, e.connect, e.read, e.write, e.timeout))
end
