#!/bin/sh
# soak.sh - load and memory soak: build/rnnserve (two models) under wrk for SOAK_SECONDS with
# tests/soak.lua's mix of valid ragged batches and bad requests over SOAK_CONNECTIONS
# connections (plus SOAK_EXTRA_CONNECTIONS sending valid requests only), its RSS sampled every
# second. Fails if a valid request got anything but its 200,
# a bad one anything but its exact status, any request a 5xx or no answer, wrk a socket error,
# the server did not exit 0 on SIGTERM, or RSS grew by more than SOAK_RSS_GROWTH_MB after the
# warm-up (the first fifth of the run, at least 2 s). Prints the figures; writes them to
# build/soak.txt. Prints SKIP and exits 0 when wrk is missing (make soak installs it).
# usage: SOAK_SECONDS=60 SOAK_CONNECTIONS=32 sh tests/soak.sh   (from the repo root, after make)
SECS=${SOAK_SECONDS:-60}
CONNS=${SOAK_CONNECTIONS:-32}
EXTRA=${SOAK_EXTRA_CONNECTIONS:-256}
GROWTH_MB=${SOAK_RSS_GROWTH_MB:-16}
BIN=${RNNSERVE:-build/rnnserve}
OUT=build/soak.txt

command -v wrk >/dev/null 2>&1 || {
    echo "soak: SKIP: wrk is not installed (make soak installs it)"
    exit 0
}
[ -x "$BIN" ] || {
    echo "soak: FAIL: $BIN is not built (run make)"
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-soak.XXXXXX") || exit 1
pid=""
sampler=""
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    [ -n "${SOAK_KEEP:-}" ] && echo "soak: kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "soak: FAIL: $*" >&2
    [ -f "$tmp/server.log" ] && grep -v ' access ' "$tmp/server.log" | tail -n 20 >&2
    exit 1
}

# Two models: the bundled rnn (input 1) and a 2-layer bidirectional LSTM (input 3).
root=$(pwd)
cat >"$tmp/config.json" <<EOF
{"server": {"max_batch": 64, "max_steps": 1000, "max_body_bytes": 1048576, "timeout_s": 10},
 "models": [
  {"name": "sine", "type": "rnn", "input_size": 1, "hidden_size": 4,
   "weights": "$root/config/sine.safetensors"},
  {"name": "l3", "type": "lstm", "input_size": 3, "hidden_size": 4, "num_layers": 2,
   "bidirectional": true, "weights": "$root/tests/fixtures/cases/lstm_2layer_bidir/model.safetensors"}]}
EOF

# ---- start on the first free port from 18600 ----------------------------------------------
port=18600
while [ "$port" -lt 18700 ]; do
    "$BIN" --config "$tmp/config.json" --host 127.0.0.1 --port "$port" 2>"$tmp/server.log" &
    pid=$!
    n=0
    while [ "$n" -lt 100 ] && ! grep -q "listening on" "$tmp/server.log" && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        n=$((n + 1))
    done
    grep -q "listening on" "$tmp/server.log" && break
    kill -0 "$pid" 2>/dev/null && fail "no 'listening on' within 10 s"
    grep -q "cannot listen" "$tmp/server.log" || fail "the server did not start"
    pid=""
    port=$((port + 1))
done
[ -n "$pid" ] || fail "no free port in 18600..18699"

# ---- RSS every second while wrk runs ----------------------------------------------------------
(
    while kill -0 "$pid" 2>/dev/null; do
        sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status"
        sleep 1
    done
) >"$tmp/rss.txt" 2>/dev/null &
sampler=$!

# Beside the checked mix, EXTRA more connections from a second wrk, all sending one valid
# ragged request (wrk counts anything but 2xx as an error there).
cat >"$tmp/static.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/v1/models/l3/forward"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], [], [[1, 1, 1]]]}'
LUA
echo "soak: ${SECS}s, $CONNS + $EXTRA connections, server pid $pid on port $port"
wrk -t 2 -c "$EXTRA" -d "${SECS}s" --timeout 10s -s "$tmp/static.lua" \
    "http://127.0.0.1:$port" >"$tmp/wrk2.txt" 2>&1 &
wrk2=$!
wrk -t "$CONNS" -c "$CONNS" -d "${SECS}s" --timeout 10s --latency -s tests/soak.lua \
    "http://127.0.0.1:$port" >"$tmp/wrk.txt" 2>&1
wrc=$?
wait "$wrk2"
wrc2=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sampler=""

# ---- drain and exit --------------------------------------------------------------------------
kill -TERM "$pid"
n=0
while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 150 ]; do
    sleep 0.1
    n=$((n + 1))
done
kill -0 "$pid" 2>/dev/null && fail "still running 15 s after SIGTERM"
wait "$pid"
src=$?
pid=""

# ---- figures ---------------------------------------------------------------------------------
cat "$tmp/wrk.txt" "$tmp/wrk2.txt"
[ "$wrc" = 0 ] && [ "$wrc2" = 0 ] || fail "wrk exited $wrc / $wrc2"
line=$(grep '^soak: valid=' "$tmp/wrk.txt")
[ -n "$line" ] || fail "no soak: line from tests/soak.lua"
get() { echo "$line" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
valid=$(echo "$line" | sed -n 's/^soak: valid=\([0-9]*\).*/\1/p')
valid_ok=$(get valid_ok)
valid_bad=$(get valid_bad)
bad=$(get bad)
bad_ok=$(get bad_ok)
bad_wrong=$(get bad_wrong)
unanswered=$(get unanswered)
server_errors=$(get server_errors)
requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk.txt")
rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/wrk.txt")
requests2=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk2.txt")
non2xx2=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk2.txt")
sockerr=$(cat "$tmp/wrk.txt" "$tmp/wrk2.txt" | grep 'Socket errors')
# Requests wrk had sent when its time ran out are neither answered nor unanswered.
cut=$((valid - valid_ok - valid_bad + bad - bad_ok - bad_wrong - unanswered))
access5xx=$(grep -c ' access .* status=5' "$tmp/server.log")

samples=$(wc -l <"$tmp/rss.txt")
warm=$((SECS / 5))
[ "$warm" -lt 2 ] && warm=2
[ "$samples" -gt "$warm" ] || fail "only $samples RSS samples"
rss_first=$(sed -n 1p "$tmp/rss.txt")
rss_start=$(sed -n "$((warm + 1))p" "$tmp/rss.txt")
rss_end=$(tail -n 1 "$tmp/rss.txt")
rss_max=$(tail -n +"$((warm + 1))" "$tmp/rss.txt" | sort -n | tail -n 1)
growth=$(((rss_max - rss_start) / 1024))

summary="soak: ${SECS} s, $CONNS connections: $requests requests ($rate/s; $cut cut off by the end of the run); valid $valid_ok/$valid ok, bad $bad_ok/$bad with their exact status; $unanswered unanswered, $server_errors 5xx; $EXTRA more connections: ${requests2:-0} valid requests, ${non2xx2:-0} not 2xx; RSS ${rss_first} kB at start, ${rss_start} kB after ${warm} s warm-up, ${rss_end} kB at end, ${rss_max} kB peak (growth ${growth} MB, bound ${GROWTH_MB} MB); server exit $src"
echo "$summary"
mkdir -p build
{
    echo "$summary"
    echo "$line"
    [ -n "$sockerr" ] && echo "$sockerr"
} >"$OUT"

[ -n "$sockerr" ] && fail "wrk: $sockerr"
[ "$valid_bad" = 0 ] || fail "$valid_bad valid requests did not get their 200"
[ "$bad_wrong" = 0 ] || fail "$bad_wrong bad requests got the wrong status"
[ "$unanswered" = 0 ] || fail "$unanswered requests got no answer"
[ "${non2xx2:-0}" = 0 ] || fail "$non2xx2 valid requests of the second wrk were not 2xx"
[ "$server_errors" = 0 ] && [ "$access5xx" = 0 ] || fail "5xx answers: $server_errors (server log: $access5xx)"
[ "$src" = 0 ] || fail "the server exited $src after SIGTERM"
[ "$growth" -le "$GROWTH_MB" ] || fail "RSS grew by $growth MB after warm-up (bound $GROWTH_MB MB)"
echo "soak: PASS"
