#!/bin/sh
# session_failover_test.sh - sessions behind the scale-out recipe, for real: three build/rnnserve
# instances behind Debian's nginx on loopback, routed with the exact lines deploy/compose ships
# (nginx/rnnserve-sessions.conf's map, `hash $session_id consistent`, and
# nginx/rnnserve-session-proxy.conf for /v1/sessions/). Six clients stream the bundled sine
# model's input one step per request through their sessions; the instance holding the first
# client's session is SIGKILLed mid-stream. Every client whose session was there gets 404 (or
# 410) and recovers as README.md says: it creates a new session from the hidden of its last
# response and goes on. At the end every client's outputs, step by step, must equal /forward on
# the whole sequence within 1e-5: nothing was lost.
#
# Needs nginx, curl and /usr/bin/python3; skips (passing) without nginx. Bounded (about 10 s);
# every process it starts is killed on every exit path. Exit 0 = pass.

BIN=${RNNSERVE:-build/rnnserve}
CONFIG=config/default.json
NGX_DIR=$PWD/deploy/compose/nginx
PY=/usr/bin/python3

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    echo "session_failover_test: SKIP (nginx not installed: tools/install-deps.sh test installs it)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-sessfail.XXXXXX") || exit 1
chmod 755 "$tmp" # nginx workers (user nobody) create temp files below
pids=""
pid_nginx=""

# Children of process $1 (nginx's workers), from /proc: no procps needed.
children() {
    for f in /proc/[0-9]*/stat; do
        sed -n 's/^\([0-9]*\) .*) [A-Za-z] \([0-9]*\) .*/\1 \2/p' "$f" 2>/dev/null
    done | awk -v p="$1" '$2 == p { print $1 }'
}

cleanup() {
    if [ -n "$pid_nginx" ]; then
        workers=$(children "$pid_nginx")
        # shellcheck disable=SC2086 # lists of pids
        kill -KILL "$pid_nginx" $workers 2>/dev/null
    fi
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "session_failover_test: FAIL: $*" >&2
    for f in "$tmp"/*.log; do
        [ -f "$f" ] && { echo "--- $f:" >&2; tail -n 8 "$f" >&2; }
    done
    exit 1
}

[ -x "$BIN" ] || fail "$BIN is not built (run make)"
command -v curl >/dev/null 2>&1 || fail "curl is not installed"
[ -x "$PY" ] || fail "$PY is missing"
for f in rnnserve-sessions.conf rnnserve-session-proxy.conf rnnserve-proxy.conf; do
    [ -f "$NGX_DIR/$f" ] || fail "$NGX_DIR/$f is missing"
done
grep -q 'hash $session_id consistent;' "$NGX_DIR/nginx.conf" ||
    fail "deploy/compose/nginx/nginx.conf no longer hashes on \$session_id: update this test"

# start_rnnserve NAME: an instance on a free port (log: $tmp/NAME.log); sets $port.
start_rnnserve() {
    log=$tmp/$1.log
    : >"$log"
    "$BIN" --config "$CONFIG" --host 127.0.0.1 --port 0 --threads 1 </dev/null >/dev/null 2>>"$log" &
    eval "pid_$1=$!"
    pids="$pids $!"
    n=0
    while ! grep -q 'listening on http://127.0.0.1:[0-9]* ' "$log"; do
        n=$((n + 1))
        [ "$n" -le 100 ] || fail "$1 did not start within 10 s"
        sleep 0.1
    done
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$log")
    [ -n "$port" ] || fail "$1: no port in its log"
}

start_rnnserve a
port_a=$port
start_rnnserve b
port_b=$port
start_rnnserve c
port_c=$port

# nginx on the first free port from 18800, with the shipped session routing
np=18800
url=""
while [ "$np" -lt 18850 ] && [ -z "$url" ]; do
    mkdir -p "$tmp/ngx"
    cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 256; }
http {
    access_log $tmp/access.txt;
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    include $NGX_DIR/rnnserve-sessions.conf;
    # as deploy/compose/nginx/nginx.conf, with loopback ports for the replicas' names
    upstream rnnserve {
        hash \$session_id consistent;
        server 127.0.0.1:$port_a max_fails=1 fail_timeout=10s;
        server 127.0.0.1:$port_b max_fails=1 fail_timeout=10s;
        server 127.0.0.1:$port_c max_fails=1 fail_timeout=10s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$np;
        location / {
            include $NGX_DIR/rnnserve-proxy.conf;
        }
        location /v1/sessions/ {
            include $NGX_DIR/rnnserve-session-proxy.conf;
        }
    }
}
EOF
    : >"$tmp/nginx-error.log"
    "$NGINX" -c "$tmp/nginx.conf" -p "$tmp" </dev/null >/dev/null 2>>"$tmp/nginx-error.log" &
    pid_nginx=$!
    n=0
    while [ "$n" -lt 50 ] && kill -0 "$pid_nginx" 2>/dev/null &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$np/healthz")" != 200 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    if kill -0 "$pid_nginx" 2>/dev/null; then
        url=http://127.0.0.1:$np
    else
        wait "$pid_nginx" 2>/dev/null
        pid_nginx=""
        grep -q 'Address already in use' "$tmp/nginx-error.log" || fail "nginx did not start"
        np=$((np + 1))
    fi
done
[ -n "$url" ] || fail "no free port for nginx in 18800..18849"

# The clients, in one process: six sessions stepped in turn, one step per request.
URL=$url PORTS="$port_a $port_b $port_c" PIDS="$pid_a $pid_b $pid_c" timeout 60 "$PY" - <<'EOF' || fail "the clients failed"
import json, math, os, signal, sys, urllib.error, urllib.request

URL = os.environ["URL"]
PORTS = os.environ["PORTS"].split()
PIDS = [int(p) for p in os.environ["PIDS"].split()]
CLIENTS, STEPS, KILL_AT = 6, 40, 15


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"null")
        except ValueError:  # nginx's own page (502 when no replica could be reached)
            return e.code, text.decode(errors="replace")


def create(h0=None):
    st, body = http("POST", URL + "/v1/models/sine/sessions", {"h0": h0} if h0 else None)
    assert st == 201, (st, body)
    return body["session"]


seq = [round(math.sin(0.3 * t), 4) for t in range(STEPS)]
clients = [{"id": create(), "hidden": None, "outputs": [], "recoveries": 0} for _ in range(CLIENTS)]
killed = None
for t in range(STEPS):
    if t == KILL_AT:
        # the replica holding client 0's session goes away, mid-stream
        for port, pid in zip(PORTS, PIDS):
            st, _ = http("GET", f"http://127.0.0.1:{port}/v1/sessions/{clients[0]['id']}")
            if st == 200:
                killed, victim = port, pid
        assert killed, "no replica holds client 0's session"
        held = [c for c in clients
                if http("GET", f"http://127.0.0.1:{killed}/v1/sessions/{c['id']}")[0] == 200]
        os.kill(victim, signal.SIGKILL)
    for c in clients:
        for attempt in range(3):
            st, body = http("POST", f"{URL}/v1/sessions/{c['id']}/forward",
                            {"inputs": [[[seq[t]]]]})
            if st == 200:
                break
            # its replica is gone: a new session from the state of the last response
            assert st in (404, 410, 502), (st, body)
            c["id"] = create(c["hidden"])
            c["recoveries"] += 1
        assert st == 200, (st, body)
        assert body["outputs"][0][0] == body["hidden"][0][0], "hidden != outputs at that step"
        c["hidden"] = body["hidden"][0]
        c["outputs"].append(body["outputs"][0][0])

st, whole = http("POST", URL + "/v1/models/sine/forward", {"inputs": [[[x] for x in seq]]})
assert st == 200, (st, whole)
worst = 0.0
for c in clients:
    for got, want in zip(c["outputs"], whole["outputs"][0]):
        worst = max(worst, max(abs(a - b) for a, b in zip(got, want)))
recovered = sum(c["recoveries"] for c in clients)
print(f"session_failover_test: {CLIENTS} clients x {STEPS} steps through nginx; the replica on "
      f"port {killed} killed at step {KILL_AT} held {len(held)} sessions; {recovered} "
      f"recovered from their last hidden; worst difference from /forward {worst:.2e}")
assert len(held) >= 1 and recovered >= len(held), "not every session of the killed replica recovered"
assert worst <= 1e-5, f"outputs differ from /forward by {worst}"
EOF
echo "session_failover_test: PASS"
