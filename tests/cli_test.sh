#!/bin/sh
# cli_test.sh - `rnnserve check` and `rnnserve forward` end to end: every fixture case in
# tests/fixtures/cases/MANIFEST against PyTorch's expected.json, the bundled default model, the
# error exits (bad config, bad request, unknown model) and --help on every command.
# usage: sh tests/cli_test.sh   (from the repo root, after make; exits 1 when any check fails)
#
# JSON is compared by build/tests/jsoncmp (structure exact, numbers within 1e-5), built here from
# tests/tools/jsoncmp.c when missing or stale, so the test needs no Python.

BIN=${RNNSERVE:-build/rnnserve} # RNNSERVE=build/asan/rnnserve runs the sanitized binary
CMP=build/tests/jsoncmp
CASES=tests/fixtures/cases
TOL=1e-5
passed=0
failed=0
WRAP= # check_fails runs "$WRAP $BIN ..." (a timeout where the run could hang)

ok() {
    passed=$((passed + 1))
    echo "ok   $*"
}

bad() {
    failed=$((failed + 1))
    echo "FAIL $*"
}

# Shows a captured file under a failure, indented.
show() {
    [ -s "$1" ] && sed -e 's/^/     | /' "$1" | head -n 20
    return 0
}

if [ ! -x "$BIN" ]; then
    echo "FAIL $BIN is not built (run make first)"
    exit 1
fi
if [ ! -x "$CMP" ] || [ -n "$(find tests/tools/jsoncmp.c -newer "$CMP")" ]; then
    mkdir -p build/tests
    # shellcheck disable=SC2046 # pkg-config prints several words on purpose
    if ! ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Wpedantic -o "$CMP.$$" tests/tools/jsoncmp.c \
        $(pkg-config --cflags --libs jansson) || ! mv -f "$CMP.$$" "$CMP"; then
        rm -f "$CMP.$$"
        echo "FAIL cannot build $CMP from tests/tools/jsoncmp.c"
        exit 1
    fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
out=$tmp/out
err=$tmp/err

# The first "name" in a config file: the default model's.
model_name() {
    sed -n 's/.*"name" *: *"\([^"]*\)".*/\1/p' "$1" | head -n 1
}

# check_ok CONFIG NAME: exit 0, one summary line on stdout that starts with the model's name.
check_ok() {
    "$BIN" check --config "$1" >"$out" 2>"$err"
    rc=$?
    lines=$(wc -l <"$out" | tr -d ' ')
    if [ "$rc" = 0 ] && [ "$lines" = 1 ] && grep -q "^$2: " "$out"; then
        ok "check $1: exit 0, one line naming \"$2\""
    else
        bad "check $1: exit $rc, $lines line(s), expected exit 0 and one line naming \"$2\""
        show "$out"
        show "$err"
    fi
}

# forward_ok CONFIG REQUEST EXPECTED [ARGS...]: exit 0 and the response matches EXPECTED.
forward_ok() {
    cfg=$1 req=$2 exp=$3
    shift 3
    "$BIN" forward --config "$cfg" "$@" <"$req" >"$out" 2>"$err"
    rc=$?
    what="forward --config $cfg${*:+ $*} < $req"
    if [ "$rc" != 0 ]; then
        bad "$what: exit $rc, expected 0"
        show "$out"
        show "$err"
    elif "$CMP" --tol "$TOL" "$exp" "$out" 2>"$err"; then
        ok "$what matches $exp within $TOL"
    else
        bad "$what differs from $exp"
        show "$err"
    fi
}

# check_fails CONFIG WORD...: exit 1, nothing on stdout, stderr holds every WORD.
check_fails() {
    cfg=$1
    shift
    # shellcheck disable=SC2086 # WRAP is a command and its arguments, or nothing
    $WRAP "$BIN" check --config "$cfg" >"$out" 2>"$err"
    rc=$?
    missing=""
    for w in "$@"; do
        grep -qF -- "$w" "$err" || missing="$missing \"$w\""
    done
    if [ "$rc" = 1 ] && [ ! -s "$out" ] && [ -z "$missing" ]; then
        ok "check $cfg: exit 1, stderr names $*"
    else
        bad "check $cfg: exit $rc, stderr lacks$missing (expected exit 1, a message naming $*)"
        show "$out"
        show "$err"
    fi
}

# forward_fails STATUS WORD CONFIG [ARGS...] < request: exit 1, and stdout is the contract's
# error JSON with "status": STATUS and a message matching WORD (both grep patterns).
forward_fails() {
    status=$1 word=$2 cfg=$3
    shift 3
    "$BIN" forward --config "$cfg" "$@" >"$out" 2>"$err"
    rc=$?
    what="forward --config $cfg${*:+ $*}"
    if [ "$rc" = 1 ] && "$CMP" "$out" "$out" 2>/dev/null &&
        grep -q "^{\"error\":{\"status\":$status,\"message\":\"" "$out" &&
        grep -q -- "$word" "$out"; then
        ok "$what: exit 1, error JSON with status $status naming \"$word\""
    else
        bad "$what: exit $rc, expected exit 1 and error JSON with status $status naming \"$word\""
        show "$out"
        show "$err"
    fi
}

echo "-- every fixture case: check, then forward against PyTorch's expected.json"
ncases=0
# shellcheck disable=SC2013 # case names are single words
for c in $(sed -e 's/#.*//' "$CASES/MANIFEST"); do
    ncases=$((ncases + 1))
    d=$CASES/$c
    check_ok "$d/config.json" "$(model_name "$d/config.json")"
    forward_ok "$d/config.json" "$d/request.json" "$d/expected.json"
done
if [ "$ncases" -gt 0 ]; then
    ok "MANIFEST lists $ncases cases"
else
    bad "no cases in $CASES/MANIFEST"
fi

echo "-- the bundled default model"
check_ok config/default.json sine
forward_ok config/default.json config/default.request.json config/default.expected.json
forward_ok config/default.json config/default.request.json config/default.expected.json \
    --model sine

echo "-- --model picks a model; an unknown one is 404"
d=$CASES/rnn_tanh_1layer
forward_ok "$d/config.json" "$d/request.json" "$d/expected.json" --model rnn_tanh_1layer
forward_fails 404 nope "$d/config.json" --model nope <"$d/request.json"

echo "-- bad requests are 400 with the JSON path"
printf '{"inputs": 5}' >"$tmp/req"
forward_fails 400 inputs "$d/config.json" <"$tmp/req"
printf '{"inputs": [[[1, 2, 3]], [[1, 2, 3], [4, 5]]]}' >"$tmp/req"
forward_fails 400 'inputs\[1\]\[1\]' "$d/config.json" <"$tmp/req"
printf '{"inputs": [[[1, 2, 3]]], "hidden": 1}' >"$tmp/req"
forward_fails 400 hidden "$d/config.json" <"$tmp/req"
printf '{"inputs": [[[1, 2, 3]]' >"$tmp/req"
forward_fails 400 JSON "$d/config.json" <"$tmp/req"
forward_fails 400 empty "$d/config.json" </dev/null

echo "-- broken configs fail with the key named on stderr"
sed -e 's/"hidden_size"/"hiden_size"/' "$d/config.json" >"$tmp/typo.json"
check_fails "$tmp/typo.json" "$tmp/typo.json" hiden_size
forward_fails '[0-9]*' hiden_size "$tmp/typo.json" <"$d/request.json"
sed -e 's/"num_layers": 1/"num_layers": 0/' "$d/config.json" >"$tmp/range.json"
check_fails "$tmp/range.json" "models[0].num_layers"
printf '{"models": [\n  {"name": }\n]}\n' >"$tmp/syntax.json"
check_fails "$tmp/syntax.json" "$tmp/syntax.json" "line 2"
sed -e 's/"model.safetensors"/"missing.safetensors"/' "$d/config.json" >"$tmp/noweights.json"
check_fails "$tmp/noweights.json" "$tmp/missing.safetensors"
# unidirectional weights for a bidirectional config (weights by absolute path)
sed -e 's/"bidirectional": false/"bidirectional": true/' \
    -e 's|"model.safetensors"|"'"$PWD/$d"'/model.safetensors"|' "$d/config.json" >"$tmp/bidir.json"
check_fails "$tmp/bidir.json" "missing key(s)" "weight_ih_l0_reverse"
check_fails "$tmp/nonexistent.json" "$tmp/nonexistent.json"
# a device or a FIFO as the config fails at once (no endless read of /dev/zero, no wait for a
# FIFO's writer); timeout turns a hang into a failure rather than a stuck test
WRAP="timeout 10"
check_fails /dev/zero "/dev/zero" "not a regular file (a character device)"
mkfifo "$tmp/fifo.json"
check_fails "$tmp/fifo.json" "$tmp/fifo.json" "not a regular file (a FIFO)"
WRAP=

echo "-- a config with two models: one line each, --model reaches the second"
cat >"$tmp/two.json" <<'EOF'
{"models": [
  {"name": "first", "type": "rnn", "input_size": 1, "hidden_size": 1, "bias": false,
   "weights": {"weight_ih_l0": [[0.5]], "weight_hh_l0": [[0.25]]}},
  {"name": "second", "type": "gru", "input_size": 1, "hidden_size": 1, "bias": false,
   "weights": {"weight_ih_l0": [[0.1], [0.2], [0.3]], "weight_hh_l0": [[0.4], [0.5], [0.6]]}}
]}
EOF
"$BIN" check --config "$tmp/two.json" >"$out" 2>"$err"
rc=$?
if [ "$rc" = 0 ] && [ "$(wc -l <"$out" | tr -d ' ')" = 2 ] && grep -q '^first: ' "$out" &&
    grep -q '^second: ' "$out"; then
    ok "check $tmp/two.json: exit 0, one line per model"
else
    bad "check $tmp/two.json: exit $rc, expected exit 0 and lines for first and second"
    show "$out"
    show "$err"
fi
printf '{"inputs": [[]]}' | "$BIN" forward --config "$tmp/two.json" --model second >"$out" 2>"$err"
rc=$?
printf '{"model": "second", "outputs": [[]], "hidden": [[[0]]]}' >"$tmp/want"
if [ "$rc" = 0 ] && "$CMP" "$tmp/want" "$out" 2>"$err"; then
    ok "forward --model second answers as \"second\""
else
    bad "forward --model second: exit $rc"
    show "$out"
    show "$err"
fi

echo "-- --help on every command exits 0 with usage on stdout"
for args in "--help" "check --help" "forward --help" "serve --help"; do
    # shellcheck disable=SC2086 # ARGS is split on purpose
    "$BIN" $args >"$out" 2>"$err"
    rc=$?
    if [ "$rc" = 0 ] && grep -q usage "$out"; then
        ok "rnnserve $args: exit 0, usage on stdout"
    else
        bad "rnnserve $args: exit $rc, expected 0 and usage on stdout"
        show "$out"
        show "$err"
    fi
done

echo "cli_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
