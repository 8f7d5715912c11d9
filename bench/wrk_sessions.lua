-- wrk_sessions.lua - steps sessions: POSTs the body file (the first argument after "--") to
-- /v1/sessions/<id>/forward, the ids read from the file named second (one per line). Each wrk
-- thread takes its own share of the ids and goes round them, so that a session is never stepped
-- by two requests at once (that would be a 409): a thread has at most its connections in flight
-- and reuses an id only after going round all of its own. The third argument is wrk's -t (a
-- thread's init runs before the next thread exists). Prints wrk_post.lua's WRKJSON line.
--   wrk -t2 -c64 -d5s -s bench/wrk_sessions.lua http://127.0.0.1:PORT -- step.json ids.txt 2
local created = 0

function setup(thread)
    thread:set("tid", created)
    created = created + 1
end

function init(args)
    local f = assert(io.open(args[1], "rb"))
    body = f:read("*a")
    f:close()
    mine = {}
    local k, n = 0, tonumber(args[3])
    for line in io.lines(args[2]) do
        if k % n == tid then
            table.insert(mine, line)
        end
        k = k + 1
    end
    at = 0
    headers = {["Content-Type"] = "application/json"}
end

function request()
    at = at % #mine + 1
    return wrk.format("POST", "/v1/sessions/" .. mine[at] .. "/forward", headers, body)
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
