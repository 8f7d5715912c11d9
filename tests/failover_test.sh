#!/bin/sh
# failover_test.sh - the scale-out recipe, for real: two build/rnnserve instances behind Debian's
# nginx on loopback, proxied with the exact settings deploy/compose ships
# (deploy/compose/nginx/rnnserve-proxy.conf). Four clients POST /forward continuously; one
# instance is taken down mid-run, and requests must keep succeeding through the survivor.
#
#   crash     the instance is frozen (SIGSTOP, so that requests are surely in flight on it), then
#             SIGKILLed: with the shipped settings every request still gets 200 (nginx re-sends
#             the in-flight POSTs to the survivor: proxy_next_upstream ... non_idempotent)
#   default   the same crash with nginx's default proxy_next_upstream (no non_idempotent): the
#             POSTs in flight on the killed instance get 502, the rest 200; the test requires at
#             least one 502, which proves requests really were in flight at the kill
#   drain     SIGTERM instead (a rolling update): the instance drains, every request gets 200
#
# Prints one line of figures per scenario. Needs nginx and curl; skips (passing) without nginx.
# Bounded (about 20 s); every process it starts is killed on every exit path. Exit 0 = pass.

BIN=${RNNSERVE:-build/rnnserve}
CONFIG=config/default.json
REQUEST=config/default.request.json
EXPECTED=config/default.expected.json
PROXY_CONF=$PWD/deploy/compose/nginx/rnnserve-proxy.conf
CLIENTS=4

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    echo "failover_test: SKIP (nginx not installed: tools/install-deps.sh test installs it)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-failover.XXXXXX") || exit 1
chmod 755 "$tmp" # nginx workers (user nobody) create temp files below
pids=""
pid_nginx=""

# Children of process $1 (nginx's workers), from /proc: no procps needed.
children() {
    for f in /proc/[0-9]*/stat; do
        # "pid (comm) state ppid ...": comm may hold spaces, so cut up to the last ") "
        sed -n 's/^\([0-9]*\) .*) [A-Za-z] \([0-9]*\) .*/\1 \2/p' "$f" 2>/dev/null
    done | awk -v p="$1" '$2 == p { print $1 }'
}

# Stops nginx: SIGTERM to the master (it stops its workers), then SIGKILL to whatever is left,
# workers included (a worker outlives a SIGKILLed master and keeps listening).
stop_nginx() {
    [ -n "$pid_nginx" ] || return 0
    workers=$(children "$pid_nginx")
    kill -TERM "$pid_nginx" 2>/dev/null
    n=0
    while kill -0 "$pid_nginx" 2>/dev/null && [ "$n" -lt 50 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    # shellcheck disable=SC2086 # lists of pids
    kill -KILL "$pid_nginx" $workers 2>/dev/null
    wait "$pid_nginx" 2>/dev/null
    pid_nginx=""
}

cleanup() {
    touch "$tmp/stop" 2>/dev/null
    stop_nginx
    for p in $pids; do
        kill -CONT "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "failover_test: FAIL: $*" >&2
    for f in "$tmp"/*.log; do
        [ -f "$f" ] && { echo "--- $f:" >&2; tail -n 8 "$f" >&2; }
    done
    exit 1
}

# Every number in JSON file $1, one per line.
numbers() { tr -c '0-9eE.+-' '\n' <"$1" | awk '/^-?[0-9]/'; }

# start_rnnserve NAME: starts an instance on a free port (its log: $tmp/NAME.log), sets $port.
start_rnnserve() {
    log=$tmp/$1.log
    : >"$log" # truncated here, not in the child: no stale line from a previous instance
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
    [ -n "$port" ] || fail "$1: no port in its log: $(cat "$log")"
}

# start_nginx PROXYCONF PORT_A PORT_B: nginx on the first free port from 18750, sets $url.
start_nginx() {
    np=18750
    while [ "$np" -lt 18800 ]; do
        mkdir -p "$tmp/ngx"
        cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 256; }
http {
    log_format failover '\$msec \$status \$upstream_addr \$upstream_status \$request_time';
    access_log $tmp/access.txt failover;
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    # as deploy/compose/nginx/nginx.conf, with loopback ports for the replicas' names
    upstream rnnserve {
        server 127.0.0.1:$2 max_fails=1 fail_timeout=10s;
        server 127.0.0.1:$3 max_fails=1 fail_timeout=10s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$np;
        location / {
            include $1;
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
            return 0
        fi
        wait "$pid_nginx" 2>/dev/null
        pid_nginx=""
        grep -q 'Address already in use' "$tmp/nginx-error.log" || fail "nginx did not start"
        np=$((np + 1))
    done
    fail "no free port for nginx in 18750..18799"
}

# client K: POSTs the README's request until $tmp/stop exists; one "code seconds" line each.
client() {
    while [ ! -e "$tmp/stop" ]; do
        curl -s -o /dev/null -m 20 -w '%{http_code} %{time_total}\n' -d @"$REQUEST" \
            "$url/forward" >>"$tmp/client$1.txt"
    done
}

# scenario NAME PROXYCONF: the whole run; prints its figures and sets $ok200 $bad $retried.
scenario() {
    name=$1
    rm -f "$tmp"/client*.txt "$tmp/access.txt" "$tmp/stop"
    start_rnnserve a
    port_a=$port
    start_rnnserve b
    port_b=$port
    start_nginx "$2" "$port_a" "$port_b"

    # both instances answer through nginx, with PyTorch's numbers
    i=0
    while [ "$i" -lt 10 ]; do
        code=$(curl -s -o "$tmp/body.json" -w '%{http_code}' -d @"$REQUEST" "$url/forward")
        [ "$code" = 200 ] || fail "$name: warm-up request $i: HTTP $code"
        i=$((i + 1))
    done
    numbers "$tmp/body.json" >"$tmp/got.txt"
    numbers "$EXPECTED" | paste "$tmp/got.txt" - | awk '
        NF != 2 { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5) bad = 1 }
        END { exit bad }' || fail "$name: answer through nginx differs from $EXPECTED"
    grep -q 'POST path=/forward status=200' "$tmp/a.log" && grep -q 'POST path=/forward status=200' "$tmp/b.log" ||
        fail "$name: nginx did not spread the warm-up requests over both instances"

    k=1
    clients=""
    while [ "$k" -le "$CLIENTS" ]; do
        client "$k" &
        clients="$clients $!"
        pids="$pids $!"
        k=$((k + 1))
    done
    sleep 1
    t_kill=$(date +%s.%N)
    if [ "$name" = drain ]; then
        kill -TERM "$pid_a"
        wait "$pid_a"
        rc=$?
        [ "$rc" = 0 ] || fail "drain: instance a exited $rc after SIGTERM"
    else
        kill -STOP "$pid_a"
        sleep 0.5
        kill -KILL "$pid_a"
        wait "$pid_a" 2>/dev/null
    fi
    sleep 1.5
    touch "$tmp/stop"
    # shellcheck disable=SC2086 # a list of pids
    wait $clients # each ends after its current request (curl -m 20 bounds it)

    # the survivor answers correctly after the kill
    code=$(curl -s -o "$tmp/body.json" -w '%{http_code}' -d @"$REQUEST" "$url/forward")
    [ "$code" = 200 ] || fail "$name: request after the kill: HTTP $code"
    stop_nginx
    kill -TERM "$pid_b"
    wait "$pid_b"

    cat "$tmp"/client*.txt >"$tmp/all.txt"
    total=$(wc -l <"$tmp/all.txt")
    ok200=$(grep -c '^200 ' "$tmp/all.txt")
    bad=$((total - ok200))
    codes=$(awk '$1 != 200 { n[$1]++ } END { for (c in n) printf " %s x%d", c, n[c] }' "$tmp/all.txt")
    slowest=$(awk '$1 == 200 && $2 > m { m = $2 } END { printf "%.2f", m }' "$tmp/all.txt")
    # nginx's own log: a retried request lists two upstreams ("A, B")
    retried=$(awk '$3 ~ /,/ && $2 == 200' "$tmp/access.txt" | wc -l)
    after=$(awk -v t="$t_kill" -v b="127.0.0.1:$port_b" '$1 > t + 0.6 && $2 == 200 && $3 == b' "$tmp/access.txt" | wc -l)
    echo "failover_test: $name: $total POSTs, $ok200 x 200,$codes ${bad} failed; $retried re-sent to the survivor after a failure; $after answered by the survivor alone after the kill; slowest 200 took $slowest s"
    [ "$total" -ge 20 ] || fail "$name: only $total requests in the run"
    [ "$after" -ge 5 ] || fail "$name: the survivor answered only $after requests after the kill"
}

[ -x "$BIN" ] || fail "$BIN is not built (run make)"
command -v curl >/dev/null 2>&1 || fail "curl is not installed"
[ -f "$PROXY_CONF" ] || fail "$PROXY_CONF is missing"
grep -q 'non_idempotent' "$PROXY_CONF" || fail "$PROXY_CONF no longer retries POSTs: update this test and the README"

scenario crash "$PROXY_CONF"
[ "$bad" = 0 ] || fail "crash: $bad requests failed with the shipped settings"
[ "$retried" -ge 1 ] || fail "crash: no request was in flight on the killed instance (nothing re-sent)"

grep -v 'non_idempotent' "$PROXY_CONF" >"$tmp/default-proxy.conf"
echo 'proxy_next_upstream error timeout http_503;' >>"$tmp/default-proxy.conf"
scenario default "$tmp/default-proxy.conf"
[ "$bad" -ge 1 ] || fail "default: no POST failed without non_idempotent: were none in flight?"
grep -v '^200 ' "$tmp/all.txt" | grep -qv '^502 ' && fail "default: failures other than 502: $codes"

scenario drain "$PROXY_CONF"
[ "$bad" = 0 ] || fail "drain: $bad requests failed during a SIGTERM drain"
echo "failover_test: PASS"
