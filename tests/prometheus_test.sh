#!/bin/sh
# prometheus_test.sh - real clients judge /metrics: promtool lints a live page from
# build/rnnserve, then a real Prometheus server scrapes it until up{job="rnnserve"} is 1 and
# rnnserve_requests_total is queryable.
#
# Run from the repo root (tests/run.sh does). Needs curl, promtool and prometheus (Debian package
# "prometheus"); skips, passing, when promtool or prometheus is missing. Exit 0 = pass.
# Every process it starts is stopped on every exit path, and the whole run is bounded (~55 s).
# RNNSERVE=path overrides the server binary (default build/rnnserve).

RNNSERVE=${RNNSERVE:-build/rnnserve}
CONFIG=config/default.json
REQUEST=config/default.request.json
BUDGET=55 # seconds for the whole run

for tool in promtool prometheus; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "prometheus_test: SKIP (promtool/prometheus not installed)"
        exit 0
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-prom.XXXXXX") || exit 1
rn_pid=""
prom_pid=""
deadline=$(($(date +%s) + BUDGET))

# Stops process $1: SIGTERM, up to 5 s to exit, then SIGKILL.
stop() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null
    i=0
    while kill -0 "$1" 2>/dev/null && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    stop "$prom_pid"
    stop "$rn_pid"
    prom_pid=""
    rn_pid=""
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "prometheus_test: interrupted"; exit 1' HUP INT TERM

fail() {
    echo "prometheus_test: FAIL: $*"
    for log in rnnserve.log prometheus.log; do
        if [ -s "$tmp/$log" ]; then
            echo "--- last lines of $log"
            tail -n 20 "$tmp/$log"
        fi
    done
    exit 1
}

in_time() {
    [ "$(date +%s)" -lt "$deadline" ]
}

# Candidate ports: 0 (the program picks a free one and logs it), then a few random high ones
# in case it cannot.
seed=$(($$ * 7919 % 40000))
PORTS="0 $((20000 + seed)) $((20000 + (seed + 12343) % 40000)) $((20000 + (seed + 24689) % 40000))"

# --- rnnserve ------------------------------------------------------------------------------------
[ -x "$RNNSERVE" ] || fail "$RNNSERVE not found or not executable (run make first)"
for f in "$CONFIG" "$REQUEST"; do
    [ -r "$f" ] || fail "$f not found (run from the repo root)"
done
command -v curl >/dev/null 2>&1 || fail "curl not installed"

rn_port=""
for p in $PORTS; do
    "$RNNSERVE" --config "$CONFIG" --host 127.0.0.1 --port "$p" >"$tmp/rnnserve.log" 2>&1 &
    rn_pid=$!
    # Ready once it logs "listening on http://127.0.0.1:PORT".
    while in_time && kill -0 "$rn_pid" 2>/dev/null; do
        rn_port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
            "$tmp/rnnserve.log" | head -n 1)
        [ -n "$rn_port" ] && break
        sleep 0.1
    done
    [ -n "$rn_port" ] && [ "$rn_port" != 0 ] && break
    in_time || fail "rnnserve did not report 'listening on http://127.0.0.1:PORT' in time"
    stop "$rn_pid" # exited (port taken?) or reported port 0: try the next candidate
    rn_pid=""
    rn_port=""
done
[ -n "$rn_port" ] || fail "rnnserve could not listen on any of the ports: $PORTS"
base="http://127.0.0.1:$rn_port"

code=$(curl -sS -m 10 -o "$tmp/forward.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary "@$REQUEST" "$base/forward" 2>"$tmp/curl.err")
[ "$code" = 200 ] || fail "POST /forward answered '$code' (expected 200): $(cat "$tmp/curl.err" \
    "$tmp/forward.json" 2>/dev/null | head -c 500)"
code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "$base/healthz" 2>"$tmp/curl.err")
[ "$code" = 200 ] || fail "GET /healthz answered '$code' (expected 200): $(cat "$tmp/curl.err")"

code=$(curl -sS -m 10 -o "$tmp/metrics.txt" -w '%{http_code}' "$base/metrics" 2>"$tmp/curl.err")
[ "$code" = 200 ] || fail "GET /metrics answered '$code' (expected 200): $(cat "$tmp/curl.err")"
for series in 'rnnserve_requests_total{route="forward",code="200"} ' \
    'rnnserve_request_duration_seconds_bucket{route="forward",le="+Inf"} ' \
    'rnnserve_request_duration_seconds_sum{route="forward"} ' \
    'rnnserve_request_duration_seconds_count{route="forward"} ' \
    'rnnserve_sequences_total ' 'rnnserve_steps_total ' 'rnnserve_in_flight_requests ' \
    'rnnserve_build_info' 'rnnserve_start_time_seconds ' \
    'rnnserve_model_requests_total{model="sine",code="200"} ' \
    'rnnserve_model_request_duration_seconds_count{model="sine"} ' \
    'rnnserve_decode_seconds_bucket{model="sine",le="+Inf"} ' \
    'rnnserve_compute_seconds_sum{model="sine"} ' 'rnnserve_queue_wait_seconds_count{model="sine"} ' \
    'rnnserve_pass_requests_bucket{le="1"} ' 'rnnserve_pass_sequences_count ' \
    'rnnserve_rejected_requests_total ' 'rnnserve_expired_requests_total ' \
    'rnnserve_cancelled_requests_total ' 'rnnserve_stopped_requests_total ' \
    'rnnserve_queue_requests ' 'rnnserve_queue_flops ' 'rnnserve_running_passes ' \
    'rnnserve_reloads_total{result="success"} ' 'rnnserve_last_reload_success_timestamp_seconds '; do
    grep -qF "$series" "$tmp/metrics.txt" || fail "/metrics has no series '$series'"
done

promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool.out" 2>&1
rc=$?
if [ "$rc" != 0 ] || [ -s "$tmp/promtool.out" ]; then
    cat "$tmp/promtool.out"
    fail "promtool check metrics exited $rc on /metrics (output above)"
fi

# --- prometheus ----------------------------------------------------------------------------------
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rnnserve
    static_configs:
      - targets: ['127.0.0.1:$rn_port']
EOF
promtool check config "$tmp/prometheus.yml" >"$tmp/promtool.out" 2>&1 ||
    fail "promtool rejects the generated prometheus.yml: $(cat "$tmp/promtool.out")"

prom_port=""
for p in $PORTS; do
    prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
        --web.listen-address="127.0.0.1:$p" >"$tmp/prometheus.log" 2>&1 &
    prom_pid=$!
    # Ready once it logs msg="Listening on" address=127.0.0.1:PORT (the bound port).
    while in_time && kill -0 "$prom_pid" 2>/dev/null; do
        prom_port=$(sed -n 's|.*msg="Listening on" address=127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
            "$tmp/prometheus.log" | head -n 1)
        [ -n "$prom_port" ] && break
        sleep 0.1
    done
    [ -n "$prom_port" ] && [ "$prom_port" != 0 ] && break
    in_time || fail "prometheus did not report 'Listening on' in time"
    stop "$prom_pid"
    prom_pid=""
    prom_port=""
    rm -rf "$tmp/data"
done
[ -n "$prom_port" ] || fail "prometheus could not listen on any of the ports: $PORTS"
api="http://127.0.0.1:$prom_port/api/v1/query"

# Runs the PromQL query $1 against prometheus into $tmp/query.json.
query() {
    curl -sS -m 5 -G --data-urlencode "query=$1" "$api" >"$tmp/query.json" 2>"$tmp/curl.err"
}

# up{job="rnnserve"} turns 1 after the first successful scrape (0 if the scrape or the parse of
# the page failed).
up=""
while in_time; do
    if query 'up{job="rnnserve"}' && grep -q '"value":\[[0-9.e+]*,"1"\]' "$tmp/query.json"; then
        up=1
        break
    fi
    sleep 0.5
done
if [ -z "$up" ]; then
    curl -sS -m 5 "http://127.0.0.1:$prom_port/api/v1/targets" >"$tmp/targets.json" 2>/dev/null
    fail "up{job=\"rnnserve\"} never became 1; last answer: $(head -c 500 "$tmp/query.json");" \
        "scrape errors: $(grep -o '"lastError":"[^"]*"' "$tmp/targets.json" 2>/dev/null)"
fi

for q in 'rnnserve_requests_total{job="rnnserve",route="forward",code="200"}' \
    'rnnserve_request_duration_seconds_count{job="rnnserve",route="forward"}' \
    'rnnserve_build_info{job="rnnserve"}'; do
    query "$q" || fail "query $q: $(cat "$tmp/curl.err")"
    if ! grep -q '"status":"success"' "$tmp/query.json" ||
        ! grep -q '"result":\[{' "$tmp/query.json"; then
        fail "query $q returned no series: $(head -c 500 "$tmp/query.json")"
    fi
done

echo "prometheus_test: PASS (promtool clean; prometheus scraped 127.0.0.1:$rn_port, up=1)"
exit 0
