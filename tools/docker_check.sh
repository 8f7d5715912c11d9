#!/usr/bin/env bash
# docker_check.sh - builds the Dockerfile and checks the running container for real: /healthz,
# /forward numbers against PyTorch's, the HEALTHCHECK (healthy, and failing against a dead port),
# the non-root user, the runtime stage's contents, a model mounted from the host as the README
# says, and a clean exit 0 on SIGTERM. `make docker-check` runs it (from the repo root).
#
# Engine: `docker` when its daemon answers; otherwise rootful podman, set up by
# ../shared/tools/docker/build-and-run.sh (DOCKER_HELPER=path overrides), which needs root and
# installs podman from Debian's mirror on first use. Prints each check, the timings and the image
# size. Every container it starts is removed on every exit path; the image is kept (tag $IMAGE),
# so the next build reuses its layers. NO_CACHE=1 builds without the layer cache (a cold build).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

IMAGE=${IMAGE:-localhost/rnnserve:latest}
HELPER=${DOCKER_HELPER:-../shared/tools/docker/build-and-run.sh}
NAME=rnnserve-check-$$
NAME_MODEL=rnnserve-check-model-$$
WAIT=30 # seconds for a container to answer /healthz
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-docker.XXXXXX") || exit 1
containers=()
passed=0
E=""

cleanup() {
    for c in "${containers[@]}"; do
        $E rm -f "$c" >/dev/null 2>&1
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "docker_check: FAIL: $*" >&2
    for c in "${containers[@]}"; do
        echo "--- $E logs $c:" >&2
        $E logs "$c" 2>&1 | grep -v 'systemd' | tail -n 20 >&2
    done
    exit 1
}

ok() {
    passed=$((passed + 1))
    echo "docker_check: ok: $*"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Every number in JSON file $1, one per line, in document order.
numbers() { tr -c '0-9eE.+-' '\n' <"$1" | awk '/^-?[0-9]/'; }

# same_numbers GOT WANT TOL: the same count of numbers, each within TOL.
same_numbers() {
    numbers "$1" >"$tmp/got.txt"
    numbers "$2" >"$tmp/want.txt"
    [ -s "$tmp/want.txt" ] || return 1
    [ "$(wc -l <"$tmp/got.txt")" -eq "$(wc -l <"$tmp/want.txt")" ] || return 1
    paste "$tmp/got.txt" "$tmp/want.txt" | awk -v tol="$3" '
        { d = $1 - $2; if (d < 0) d = -d; if (d > tol) bad = 1 } END { exit bad }'
}

# start NAME [ARGS...]: runs the image detached on a free loopback port, sets $port, waits for
# /healthz. conmon (podman) keeps whatever fds it is given: never a pipe.
start() {
    local name=$1 t0
    shift
    t0=$(now)
    $E run -d --name "$name" -p 127.0.0.1::8080 "$@" </dev/null >"$tmp/run.out" 2>"$tmp/run.err" ||
        fail "$E run $*: $(grep -v systemd "$tmp/run.err")"
    containers+=("$name")
    port=$($E port "$name" 8080/tcp | head -n 1 | sed 's/.*://')
    [ -n "$port" ] || fail "$E port $name 8080/tcp printed nothing"
    local code=000
    while [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a < '"$WAIT"') }')" = 1 ]; do
        [ "$($E inspect "$name" --format '{{.State.Running}}' 2>/dev/null)" = true ] ||
            fail "container $name exited (code $($E inspect "$name" --format '{{.State.ExitCode}}'))"
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/healthz")
        [ "$code" = 200 ] && break
        sleep 0.2
    done
    [ "$code" = 200 ] || fail "$name: /healthz did not answer 200 within $WAIT s"
    start_s=$(since "$t0")
}

# ---- the engine -------------------------------------------------------------------------------
command -v curl >/dev/null 2>&1 || fail "curl is not installed (tools/install-deps.sh installs it)"
if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    E=docker
    echo "docker_check: engine: docker ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
    [ -x "$HELPER" ] || fail "no docker daemon answers, and $HELPER (the podman helper) is missing"
    [ "$(id -u)" = 0 ] || fail "no docker daemon answers, and rootful podman needs root"
    # CI has a read-only copy of shared/: without its cached base tarball, make one under build/.
    cache=$(dirname "$HELPER")/cache
    if [ ! -s "$cache/bookworm-slim-rootfs.tar.gz" ] && ! [ -w "$cache" ]; then
        export BNR_CACHE=$PWD/build/docker-cache
    fi
    "$HELPER" setup >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; fail "$HELPER setup"; }
    eval "$("$HELPER" env)"
    E=podman
    echo "docker_check: engine: $(podman --version) through $HELPER (no docker daemon answers)"
fi

# ---- build: the builder stage compiles and runs the unit tests ---------------------------------
t0=$(now)
nocache=""
[ "${NO_CACHE:-0}" = 1 ] && nocache=--no-cache
if [ "$E" = docker ]; then
    docker build $nocache -t "$IMAGE" . >"$tmp/build.log" 2>&1
else
    "$HELPER" --no-run $nocache -t "$IMAGE" -n rnnserve . >"$tmp/build.log" 2>&1
fi || {
    tail -n 40 "$tmp/build.log" >&2
    # the runners' access logs bury a failure: its lines again, last
    grep -aE ':[FE]:|Failures: [1-9]|Errors: [1-9]|^unit: FAIL' "$tmp/build.log" | head -n 40 >&2
    fail "image build failed (log above)"
}
build_s=$(since "$t0")
runners=$(grep -cE '100%: Checks: [0-9]+, Failures: 0, Errors: 0' "$tmp/build.log")
ntests=$(find tests -maxdepth 1 -name 'test_*.c' | wc -l)
if [ "$runners" -eq "$ntests" ]; then
    unit="the builder ran all $ntests Check runners, 0 failures"
elif [ "$runners" -eq 0 ] && grep -A 2 'RUN make' "$tmp/build.log" | grep -qiE 'using cache|cached'; then
    # a RUN step leaves a layer only when it succeeds, and `make unit` fails on any failure
    unit="the unit-test layer came from the cache (it exists only because its tests passed)"
else
    tail -n 40 "$tmp/build.log" >&2
    fail "the builder ran $runners of $ntests Check runners clean"
fi
ok "built $IMAGE in $build_s s; $unit"
size=$($E image inspect "$IMAGE" --format '{{.Size}}')
size_mb=$(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }')

# ---- the image's metadata ------------------------------------------------------------------
cfg() { $E image inspect "$IMAGE" --format "$1"; }
[ "$(cfg '{{.Config.User}}')" = 10001:10001 ] || fail "image USER is '$(cfg '{{.Config.User}}')'"
[ "$(cfg '{{.Config.StopSignal}}')" = SIGTERM ] || fail "STOPSIGNAL is '$(cfg '{{.Config.StopSignal}}')'"
cfg '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}' | grep -q '8080/tcp' ||
    fail "image does not EXPOSE 8080"
ok "image: USER 10001:10001, STOPSIGNAL SIGTERM, EXPOSE 8080, $size_mb MB"

# ---- the default model ----------------------------------------------------------------------
start "$NAME" "$IMAGE"
base=http://127.0.0.1:$port
first_start_s=$start_s
ok "container up: /healthz 200 on $base after $start_s s"

curl -s -d @config/default.request.json "$base/forward" >"$tmp/forward.json" ||
    fail "POST /forward failed"
same_numbers "$tmp/forward.json" config/default.expected.json 1e-5 ||
    fail "POST /forward: $(cat "$tmp/forward.json") differs from config/default.expected.json"
ok "POST /forward matches config/default.expected.json (PyTorch) within 1e-5"

[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] || fail "/readyz not 200"
curl -s "$base/v1/models" | grep -q '"name": *"sine"' || fail "/v1/models does not list sine"
ok "/readyz 200, /v1/models lists sine"

# ---- the HEALTHCHECK, run the engine's way, then proven able to fail -------------------------
# (read from the container, which inherits the image's: podman's Docker API leaves it out of
# `docker image inspect`)
mapfile -t hc < <($E inspect "$NAME" --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}')
[ "${hc[0]:-}" = CMD ] && [ "${#hc[@]}" -ge 2 ] && printf '%s\n' "${hc[@]}" | grep -q /healthz ||
    fail "no HEALTHCHECK probing /healthz in the image (${hc[*]:-none})"
if [ "$E" = podman ]; then
    # no systemd here to schedule it: run it now, as the scheduler would
    podman healthcheck run "$NAME" >"$tmp/hc.out" 2>&1 || fail "podman healthcheck run: $(cat "$tmp/hc.out")"
fi
t0=$(now)
status=""
while [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a < 40) }')" = 1 ]; do
    status=$($E inspect "$NAME" --format '{{.State.Health.Status}}')
    [ "$status" = healthy ] && break
    sleep 1
done
[ "$status" = healthy ] || fail "health status '$status' after 40 s"
dead=("${hc[@]:1}")
dead=("${dead[@]//127.0.0.1\/8080/127.0.0.1\/9}")
[ "${dead[*]}" != "${hc[*]:1}" ] || fail "cannot point the HEALTHCHECK at a dead port: ${hc[*]}"
if $E exec "$NAME" "${dead[@]}" >/dev/null 2>&1; then
    fail "the HEALTHCHECK command succeeds against a dead port too: it checks nothing"
fi
ok "HEALTHCHECK: healthy; the same command against a dead port fails"

# ---- non-root, and a runtime stage with the binary and its libraries only ----------------------
uid=$($E exec "$NAME" id -u)
pid1=$($E exec "$NAME" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$uid" = 10001 ] && [ "$pid1" = 10001 ] || fail "runs as uid $uid (PID 1: $pid1), expected 10001"
ok "non-root: exec and PID 1 (rnnserve) run as uid 10001"
$E exec "$NAME" sh -c 'ldd /usr/local/bin/rnnserve' >"$tmp/ldd.txt" 2>&1 || fail "ldd: $(cat "$tmp/ldd.txt")"
grep -q 'not found' "$tmp/ldd.txt" && fail "missing libraries: $(grep 'not found' "$tmp/ldd.txt")"
extra=$($E exec "$NAME" sh -c 'for t in gcc cc make curl; do command -v $t; done;
        ls /usr/include/microhttpd.h /src 2>/dev/null' || true)
[ -z "$extra" ] || fail "the runtime stage holds build tools or sources: $extra"
$E run --rm --name "$NAME-version" "$IMAGE" --version </dev/null >"$tmp/version.txt" 2>"$tmp/version.err"
grep -q '^rnnserve [0-9]' "$tmp/version.txt" && grep -q '^openblas ' "$tmp/version.txt" ||
    fail "rnnserve --version in the image: $(cat "$tmp/version.txt" "$tmp/version.err")"
ok "runtime stage: every library found, no compiler/make/curl/headers/sources; $(head -n 1 "$tmp/version.txt")"

# ---- the README's way to serve your own model: a host folder mounted on /models ---------------
# (with --cpus 1, as a CPU limit would be set: the default thread counts follow the quota)
start "$NAME_MODEL" --cpus 1 -v "$PWD/examples/sine-next:/models:ro" "$IMAGE" --config /models/config.json
curl -s -d @examples/sine-next/request.json "http://127.0.0.1:$port/forward" >"$tmp/own.json" ||
    fail "POST /forward to the mounted model failed"
grep -q '"model": *"sine-next"' "$tmp/own.json" || fail "mounted model answered: $(cat "$tmp/own.json")"
same_numbers "$tmp/own.json" examples/sine-next/expected.json 1e-3 ||
    fail "mounted model: $(cat "$tmp/own.json") differs from examples/sine-next/expected.json"
ok "-v examples/sine-next:/models:ro --config /models/config.json answers as PyTorch (3 digits asked)"
# The log is read whole first: `logs | grep -q` under pipefail fails when grep leaves early and
# the engine's writer gets SIGPIPE (it did, once the access lines after the match grew).
$E logs "$NAME_MODEL" >"$tmp/model.log" 2>&1 || true
grep -q '(1 compute threads)' "$tmp/model.log" ||
    fail "--cpus 1: $(grep 'listening on' "$tmp/model.log")"
ok "--cpus 1: the server starts 1 compute thread (the CPU quota, not the host's core count)"

# ---- SIGTERM: drained and exit 0, well before the engine would SIGKILL -------------------------
for c in "$NAME" "$NAME_MODEL"; do
    t0=$(now)
    $E stop -t 20 "$c" >/dev/null 2>"$tmp/stop.err" || fail "$E stop $c: $(cat "$tmp/stop.err")"
    stop_s=$(since "$t0")
    code=$($E inspect "$c" --format '{{.State.ExitCode}}')
    [ "$code" = 0 ] || fail "$c exited $code after SIGTERM (137 = killed at the timeout)"
    # the engine may still be writing the last lines to its log when stop returns
    n=0
    until { $E logs "$c" >"$tmp/stop.log" 2>&1 || true; grep -q 'SIGTERM received' "$tmp/stop.log"; }; do
        n=$((n + 1))
        [ "$n" -le 20 ] || fail "$c logged no 'SIGTERM received'"
        sleep 0.1
    done
    awk -v s="$stop_s" 'BEGIN { exit !(s < 10) }' || fail "$c took $stop_s s to stop"
done
ok "SIGTERM (docker stop): 'SIGTERM received', exit 0 in $stop_s s"

echo "docker_check: PASS ($passed checks, engine $E): build $build_s s, start to /healthz $first_start_s s, stop $stop_s s, image $IMAGE $size_mb MB"
