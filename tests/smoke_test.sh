#!/bin/sh
# smoke_test.sh - the real binary, driven the way the README drives it: start build/rnnserve on
# the bundled model, query it with curl, stop it with SIGTERM; then the start-up failures (a
# broken config, a bad --port). Run from the repo root (tests/run.sh does). Exit 0 = pass.

BIN=build/rnnserve
CONFIG=config/default.json
EXPECTED=config/default.expected.json
TOL=0.00001

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-smoke.XXXXXX") || exit 1
pids=""

cleanup() {
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fail() {
    echo "smoke_test: FAIL: $*" >&2
    if [ -f "$tmp/server.log" ]; then
        echo "--- server log:" >&2
        cat "$tmp/server.log" >&2
    fi
    exit 1
}

ok() {
    echo "smoke_test: ok: $*"
}

# Waits up to $2 tenths of a second for process $1 to end. Returns 0 if it ended.
wait_gone() {
    n=0
    while kill -0 "$1" 2>/dev/null; do
        [ "$n" -ge "$2" ] && return 1
        sleep 0.1
        n=$((n + 1))
    done
    return 0
}

# Every number in JSON file $1, one per line, in document order.
numbers() {
    tr -c '0-9eE.+-' '\n' <"$1" | awk '/^-?[0-9]/'
}

[ -x "$BIN" ] || fail "$BIN is not built (run make)"
command -v curl >/dev/null 2>&1 || fail "curl is not installed"

# ---- start the server on the first free port from 18400 -----------------------------------
port=18400
pid=""
while [ "$port" -lt 18500 ]; do
    : >"$tmp/server.log"
    "$BIN" --config "$CONFIG" --host 127.0.0.1 --port "$port" 2>"$tmp/server.log" &
    pid=$!
    pids="$pids $pid"
    n=0
    while [ "$n" -lt 100 ]; do # 10 s at most
        grep -q "listening on" "$tmp/server.log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        n=$((n + 1))
    done
    grep -q "listening on" "$tmp/server.log" && break
    if ! kill -0 "$pid" 2>/dev/null && grep -q "cannot listen" "$tmp/server.log"; then
        port=$((port + 1)) # taken: try the next one
        continue
    fi
    fail "server did not say 'listening on' within 10 s"
done
grep -q "listening on" "$tmp/server.log" || fail "no free port in 18400..18499"
base="http://127.0.0.1:$port"
ok "listening on port $port"

# ---- the README's request ---------------------------------------------------------------
curl -s -d '{"inputs": [[[0.0],[0.1411],[-0.2794]]]}' "$base/forward" >"$tmp/forward.json" ||
    fail "curl POST /forward failed"
grep -q '"model" *: *"sine"' "$tmp/forward.json" || fail "no model name in: $(cat "$tmp/forward.json")"
numbers "$tmp/forward.json" >"$tmp/got.txt"
numbers "$EXPECTED" >"$tmp/want.txt"
[ -s "$tmp/want.txt" ] || fail "no numbers in $EXPECTED"
paste "$tmp/got.txt" "$tmp/want.txt" | awk -v tol="$TOL" '
    NF != 2 { print "count differs at number " NR; bad = 1; exit }
    { d = $1 - $2; if (d < 0) d = -d; if (d > tol) { print "number " NR ": got " $1 ", expected " $2; bad = 1 } }
    END { exit bad }' >"$tmp/diff.txt" ||
    fail "POST /forward differs from $EXPECTED: $(cat "$tmp/diff.txt"); got $(cat "$tmp/forward.json")"
[ "$(wc -l <"$tmp/got.txt")" -eq "$(wc -l <"$tmp/want.txt")" ] ||
    fail "POST /forward: $(wc -l <"$tmp/got.txt") numbers, expected $(wc -l <"$tmp/want.txt")"
ok "POST /forward matches $EXPECTED within $TOL"

# ---- probes and metadata ------------------------------------------------------------------
body=$(curl -s "$base/healthz")
echo "$body" | grep -q '"status" *: *"ok"' || fail "GET /healthz: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")
[ "$code" = 200 ] || fail "GET /readyz: $code"
body=$(curl -s "$base/v1/models")
echo "$body" | grep -q '"name" *: *"sine"' || fail "GET /v1/models: $body"
echo "$body" | grep -q '"hidden_size" *: *4' || fail "GET /v1/models: $body"
ok "/healthz, /readyz, /v1/models"

# ---- errors ---------------------------------------------------------------------------------
code=$(curl -s -o "$tmp/err.json" -w '%{http_code}' "$base/no/such/route")
[ "$code" = 404 ] || fail "GET /no/such/route: $code"
grep -q '"error" *: *{ *"status" *: *404 *, *"message" *: *"' "$tmp/err.json" ||
    fail "404 body: $(cat "$tmp/err.json")"
code=$(curl -s -o "$tmp/err.json" -w '%{http_code}' -d '{"inputs": [[[0.0, 1.0]]]}' "$base/forward")
[ "$code" = 400 ] || fail "POST /forward with 2 numbers per step: $code"
grep -q '"status" *: *400' "$tmp/err.json" || fail "400 body: $(cat "$tmp/err.json")"
grep -q 'inputs\[0\]\[0\]' "$tmp/err.json" || fail "400 body does not name inputs[0][0]: $(cat "$tmp/err.json")"
ok "404 and 400 bodies"

# ---- a broken config fails before the port is bound ----------------------------------------
# Started on the port the good server holds: it must complain about the key, not the port.
sed 's/"hidden_size"/"hiden_size"/' "$CONFIG" >"$tmp/broken.json"
"$BIN" --config "$tmp/broken.json" --host 127.0.0.1 --port "$port" 2>"$tmp/broken.log" &
bpid=$!
pids="$pids $bpid"
wait_gone "$bpid" 10 || fail "broken config: still running after 1 s"
wait "$bpid"
rc=$?
[ "$rc" != 0 ] || fail "broken config: exit status 0"
grep -q 'hiden_size' "$tmp/broken.log" || fail "broken config: message does not name the key: $(cat "$tmp/broken.log")"
grep -q 'listening on\|cannot listen' "$tmp/broken.log" &&
    fail "broken config: got as far as the port: $(cat "$tmp/broken.log")"
ok "broken config exits $rc naming the key: $(head -n 1 "$tmp/broken.log")"

"$BIN" --config "$CONFIG" --port abc 2>"$tmp/port.log" &
ppid_=$!
pids="$pids $ppid_"
wait_gone "$ppid_" 10 || fail "--port abc: still running after 1 s"
wait "$ppid_"
rc=$?
[ "$rc" = 2 ] || fail "--port abc: exit status $rc, expected 2 ($(cat "$tmp/port.log"))"
ok "--port abc exits 2"

# ---- SIGTERM: drain, log, exit 0 ----------------------------------------------------------
kill -TERM "$pid"
wait_gone "$pid" 50 || fail "server still running 5 s after SIGTERM"
wait "$pid"
rc=$?
[ "$rc" = 0 ] || fail "server exited $rc after SIGTERM"
grep -q 'access method=POST path=/forward status=200' "$tmp/server.log" ||
    fail "no access line for POST /forward"
grep -q 'access method=GET path=/healthz status=200' "$tmp/server.log" ||
    fail "no access line for GET /healthz"
grep -q 'status=404' "$tmp/server.log" || fail "no access line for the 404"
grep -q 'stopped' "$tmp/server.log" || fail "no 'stopped' line"
ok "SIGTERM: exit 0, access lines and 'stopped' logged"
echo "smoke_test: PASS"
