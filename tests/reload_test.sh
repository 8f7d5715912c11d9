#!/bin/sh
# reload_test.sh - SIGHUP reloads the config of a running build/rnnserve under load without
# losing a request: clients keep POSTing while the config flips between two models and is
# once broken; every request must get a 200, and the log must show the reloads and the failure.
set -u
BIN=${RNNSERVE:-build/rnnserve}
dir=$(mktemp -d /tmp/rnnserve-reload.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
fail() {
    echo "reload_test: FAIL: $*"
    tail -20 "$dir/log" 2>/dev/null
    exit 1
}

top=$(pwd)
conf() { # $1: fixture case whose weights serve as model "m"
    cat > "$dir/config.json" <<EOF
{"models": [{"name": "m", "type": "rnn", "input_size": 3, "hidden_size": $2,
  "num_layers": $3, "bias": $4,
  "weights": "$top/tests/fixtures/cases/$1/model.safetensors"}]}
EOF
}
conf rnn_tanh_1layer 5 1 true
"$BIN" --config "$dir/config.json" --host 127.0.0.1 --port 0 2>"$dir/log" &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || fail "server did not start"

# 4 clients x 60 requests while the config changes under them.
for c in 1 2 3 4; do
    (
        i=0
        while [ $i -lt 60 ]; do
            code=$(curl -s -o /dev/null -w '%{http_code}' \
                -d '{"inputs": [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], [[1, 2, 3]]]}' \
                "http://127.0.0.1:$port/forward")
            echo "$code" >> "$dir/codes.$c"
            i=$((i + 1))
        done
    ) &
done
for k in 1 2 3 4 5 6; do
    if [ $((k % 2)) = 0 ]; then conf rnn_tanh_1layer 5 1 true; else conf rnn_nobias 4 2 false; fi
    [ "$k" = 3 ] && echo '{"models": [' > "$dir/config.json" # broken on purpose
    kill -HUP "$pid"
    sleep 0.2
done
wait_clients=0
while [ "$(cat "$dir"/codes.* 2>/dev/null | wc -l)" -lt 240 ] && [ $wait_clients -lt 600 ]; do
    sleep 0.1
    wait_clients=$((wait_clients + 1))
done
total=$(cat "$dir"/codes.* | wc -l)
ok=$(grep -c '^200$' "$dir"/codes.* | awk -F: '{s += $2} END {print s}')
[ "$total" = 240 ] || fail "only $total of 240 requests finished"
[ "$ok" = 240 ] || fail "$((240 - ok)) of 240 requests did not get 200"
reloads=$(grep -c 'SIGHUP: reloaded model m' "$dir/log")
failed=$(grep -c 'SIGHUP: reload failed, still serving' "$dir/log")
[ "$reloads" -ge 4 ] || fail "expected at least 4 reloads in the log, saw $reloads"
[ "$failed" -ge 1 ] || fail "the broken config's reload failure is not in the log"
kill -TERM "$pid"
wait "$pid" || fail "exit status $? after SIGTERM"
pid=""
echo "reload_test: PASS (240/240 requests 200 across $reloads reloads and $failed failed reload)"
