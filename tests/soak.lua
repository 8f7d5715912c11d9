-- soak.lua - the request mix tests/soak.sh drives rnnserve with, through wrk: four in five are
-- valid ragged batches (random models, batch sizes, lengths, h0, return subsets, precision),
-- one in five is bad in one of many ways, each with the status it must get.
--
-- wrk runs one connection per thread here (soak.sh passes -t N -c N) and pipelines nothing,
-- so each response() answers the request() just before it on the same Lua state: that is how a
-- response is checked against what was asked. A request() while one is still pending means the
-- connection ended without an answer. done() prints one "soak:" line that soak.sh parses.
-- (Lua globals: wrk's setup() gives each thread its "id"; "counts" and "first_failure" are read
-- back from every thread in done().)

local valid, bad = {}, {}
local pending = nil
counts = {valid = 0, valid_ok = 0, valid_bad = 0, bad = 0, bad_ok = 0, bad_wrong = 0,
          unanswered = 0, server_errors = 0}
first_failure = ""

local function num()
  return string.format("%.4f", math.random() * 2 - 1)
end

-- A step of WIDTH numbers; a bare number when WIDTH is 1 and the coin says so.
local function step(width)
  if width == 1 and math.random() < 0.5 then
    return num()
  end
  local t = {}
  for i = 1, width do t[i] = num() end
  return "[" .. table.concat(t, ",") .. "]"
end

local function rows(n, width)
  local t = {}
  for i = 1, n do t[i] = step(width) end
  return "[" .. table.concat(t, ",") .. "]"
end

-- A ragged batch for a model of input width I; for the LSTM (4 rows of 4 per sequence) an h0
-- and c0 now and then.
local function ragged(I, lstm)
  local B = math.random(1, 8)
  local seqs = {}
  for b = 1, B do
    local T = math.random(0, 40)
    if math.random() < 0.1 then T = 0 end
    seqs[b] = rows(T, I)
  end
  local body = '{"inputs": [' .. table.concat(seqs, ",") .. "]"
  if lstm and math.random() < 0.3 then
    local h, c = {}, {}
    for b = 1, B do h[b] = rows(4, 4); c[b] = rows(4, 4) end
    body = body .. ', "h0": [' .. table.concat(h, ",") .. '], "c0": [' .. table.concat(c, ",") .. "]"
  end
  if math.random() < 0.2 then body = body .. ', "return": ["hidden"]' end
  if math.random() < 0.2 then body = body .. ', "precision": ' .. math.random(1, 9) end
  return body .. "}"
end

local function add_bad(method, path, body, status)
  bad[#bad + 1] = {method = method, path = path, body = body, status = status}
end

function init(args)
  -- Each thread its own stream, the same on every run.
  math.randomseed(1000 + (id or 0))
  for i = 1, 48 do
    if i % 2 == 0 then
      valid[#valid + 1] = {path = "/forward", body = ragged(1, false)}
    else
      valid[#valid + 1] = {path = "/v1/models/l3/forward", body = ragged(3, true)}
    end
  end
  local over_batch = {}
  for i = 1, 65 do over_batch[i] = "[]" end
  add_bad("POST", "/forward", '{"inputs": [[0.5], [0.25]', 400)
  add_bad("POST", "/forward", "{inputs: 1}", 400)
  add_bad("POST", "/forward", "", 400)
  add_bad("POST", "/forward", '{"inputs": []}', 400)
  add_bad("POST", "/forward", '{"inputs": [[[0.5, 0.5]]]}', 400)
  add_bad("POST", "/v1/models/l3/forward", '{"inputs": [[[1, 2]]]}', 400)
  add_bad("POST", "/v1/models/l3/forward", '{"inputs": [[["1", 2, 3]]]}', 400)
  add_bad("POST", "/forward", '{"inputs": [[1e39]]}', 400)
  add_bad("POST", "/forward", '{"inputs": [[0.5]], "inputs": [[0.5]]}', 400)
  add_bad("POST", "/forward", '{"inputs": ' .. string.rep("[", 3000) .. string.rep("]", 3000) .. "}", 400)
  add_bad("POST", "/forward", '{"inputs": [[0.5]], "return": ["\255"]}', 400)
  add_bad("POST", "/forward", '{"inputs": [[0.5]], "c0": [[[0,0,0,0]]]}', 400)
  add_bad("POST", "/forward", '{"inputs": [' .. table.concat(over_batch, ",") .. "]}", 413)
  add_bad("POST", "/forward", '{"inputs": [[' .. string.rep("0.5,", 1000) .. "0.5]]}", 413)
  add_bad("POST", "/v1/models/nope/forward", '{"inputs": [[0.5]]}', 404)
  add_bad("GET", "/no/such/route", nil, 404)
  add_bad("GET", "/forward", nil, 405)
  add_bad("DELETE", "/v1/models", nil, 405)
  add_bad("POST", "/v2/models/sine/infer", '{"inputs": [{"name": "input", "shape": [1, 2, 1], "datatype": "FP32", "data": [1]}]}', 400)
end

local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  threads = threads or {}
  threads[#threads + 1] = thread
end

-- wrk calls request() once on thread 0's state before any connection exists, only to check
-- that the script's requests parse: that one is never sent, so it must not count.
local checked = false

function request()
  if id == 0 and not checked then
    checked = true
    return wrk.format("GET", "/healthz")
  end
  if pending then
    counts.unanswered = counts.unanswered + 1
    if first_failure == "" then
      first_failure = "no answer to " .. pending.what
    end
  end
  if math.random() < 0.8 then
    local v = valid[math.random(#valid)]
    pending = {valid = true, what = "POST " .. v.path}
    counts.valid = counts.valid + 1
    return wrk.format("POST", v.path, {["Content-Type"] = "application/json"}, v.body)
  end
  local b = bad[math.random(#bad)]
  pending = {valid = false, status = b.status, what = b.method .. " " .. b.path .. " " .. (b.body or ""):sub(1, 60)}
  counts.bad = counts.bad + 1
  return wrk.format(b.method, b.path, nil, b.body)
end

function response(status, headers, body)
  if status >= 500 then counts.server_errors = counts.server_errors + 1 end
  if not pending then return end
  local ok
  if pending.valid then
    ok = status == 200 and body:sub(1, 9) == '{"model":'
    if ok then counts.valid_ok = counts.valid_ok + 1 else counts.valid_bad = counts.valid_bad + 1 end
  else
    ok = status == pending.status
    if ok then counts.bad_ok = counts.bad_ok + 1 else counts.bad_wrong = counts.bad_wrong + 1 end
  end
  if not ok and first_failure == "" then
    first_failure = pending.what .. " -> " .. status .. " " .. body:sub(1, 200)
  end
  pending = nil
end

function done(summary, latency, requests)
  local total = {}
  local failure = ""
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    local f = t:get("first_failure")
    if failure == "" and f and f ~= "" then failure = f end
  end
  io.write(string.format(
    "soak: valid=%d valid_ok=%d valid_bad=%d bad=%d bad_ok=%d bad_wrong=%d unanswered=%d " ..
    "server_errors=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    total.valid or 0, total.valid_ok or 0, total.valid_bad or 0, total.bad or 0,
    total.bad_ok or 0, total.bad_wrong or 0, total.unanswered or 0, total.server_errors or 0,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  if failure ~= "" then io.write("soak: first failure: " .. failure .. "\n") end
end
