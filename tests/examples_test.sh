#!/bin/sh
# examples_test.sh - the example models, as the README shows them. examples/sine-next: the committed
# request answered by build/rnnserve as PyTorch answered it (expected.json), and an answer that
# makes sense: each wave's predicted next value (unit 0 of the final hidden state) lies within
# 0.1 of the wave's true next value. examples/char-lstm (a token model): its committed request
# answered as PyTorch answered it, and the likeliest next characters right. No Python needed.
# Run from the repo root after make (tests/run.sh does). Exit 0 = pass.

BIN=${RNNSERVE:-build/rnnserve}
EX=examples/sine-next

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-examples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "examples_test: FAIL: $*" >&2
    exit 1
}

numbers() { tr -c '0-9eE.+-' '\n' <"$1" | awk '/^-?[0-9]/'; }

# same GOT WANT TOL: the same numbers, each within TOL.
same() {
    numbers "$1" >"$tmp/a"
    numbers "$2" >"$tmp/b"
    [ -s "$tmp/b" ] && [ "$(wc -l <"$tmp/a")" -eq "$(wc -l <"$tmp/b")" ] &&
        paste "$tmp/a" "$tmp/b" | awk -v tol="$3" '
            { d = $1 - $2; if (d < 0) d = -d; if (d > tol) bad = 1 } END { exit bad }'
}

[ -x "$BIN" ] || fail "$BIN is not built (run make)"
"$BIN" check --config $EX/config.json >"$tmp/check" 2>&1 || fail "check: $(cat "$tmp/check")"

# The request as committed ("precision": 3): 3 significant digits, so within 5e-4.
"$BIN" forward --config $EX/config.json <$EX/request.json >"$tmp/out.json" 2>&1 ||
    fail "forward: $(cat "$tmp/out.json")"
same "$tmp/out.json" $EX/expected.json 0.0005 ||
    fail "answer $(cat "$tmp/out.json") differs from $EX/expected.json"
echo "examples_test: ok: $EX/request.json answered as $EX/expected.json (PyTorch), 3 digits"

# Without "precision": every digit, within 1e-5.
sed 's/, *"precision": *3//' $EX/request.json >"$tmp/full.json"
grep -q precision "$tmp/full.json" && fail "could not drop precision from the request"
"$BIN" forward --config $EX/config.json <"$tmp/full.json" >"$tmp/full.out" 2>&1 ||
    fail "forward: $(cat "$tmp/full.out")"
same "$tmp/full.out" $EX/expected.json 0.00001 || fail "full precision answer differs from PyTorch"
echo "examples_test: ok: at full precision, within 1e-5 of PyTorch"

# Does it predict? The waves of train.py's WAVES: amplitude, period, phase, steps.
grep -o '\[\[-*[0-9][0-9.e-]*' "$tmp/full.out" | tr -d '[' >"$tmp/pred"
[ "$(wc -l <"$tmp/pred")" = 2 ] || fail "expected 2 predictions in $(cat "$tmp/full.out")"
printf '0.8 20 0.0 24\n0.5 12 1.0 15\n' | paste - "$tmp/pred" | awk '
    { truth = $1 * sin(2 * 3.14159265358979 * $4 / $2 + $3); err = $5 - truth; if (err < 0) err = -err
      printf "examples_test: ok: wave %d (amplitude %s, period %s): predicted %.3f, true %.3f, error %.3f\n", NR, $1, $2, $5, truth, err
      if (err > 0.1) bad = 1 }
    END { exit bad }' || fail "a prediction is more than 0.1 off"
echo "examples_test: ok: $EX done"

# examples/char-lstm: a token model (nn.Embedding -> 2-layer LSTM -> softmax head) that takes
# character ids, answering only_last: the next-character distribution after each prompt.
EX=examples/char-lstm
"$BIN" check --config $EX/config.json >"$tmp/check" 2>&1 || fail "check: $(cat "$tmp/check")"
grep -q "embedding of 76 tokens" "$tmp/check" || fail "check: no embedding in $(cat "$tmp/check")"
"$BIN" forward --config $EX/config.json <$EX/request.json >"$tmp/char.json" 2>&1 ||
    fail "forward: $(cat "$tmp/char.json")"
same "$tmp/char.json" $EX/expected.json 0.0005 ||
    fail "answer $(cat "$tmp/char.json") differs from $EX/expected.json"
echo "examples_test: ok: $EX/request.json answered as $EX/expected.json (PyTorch), 3 digits"
sed 's/, *"precision": *3//' $EX/request.json >"$tmp/char_full.json"
"$BIN" forward --config $EX/config.json <"$tmp/char_full.json" >"$tmp/char_full.out" 2>&1 ||
    fail "forward: $(cat "$tmp/char_full.out")"
same "$tmp/char_full.out" $EX/expected.json 0.00001 || fail "full precision answer differs from PyTorch"
echo "examples_test: ok: at full precision, within 1e-5 of PyTorch"

# Does it predict? After "...Version 2." comes '0', after "...Derivative Wor" comes 'k'
# (vocab.json maps each character to its id).
id_of() { sed -n "s/^ *\"$1\": \([0-9]*\),*\$/\1/p" $EX/vocab.json; }
want="$(id_of 0) $(id_of k)"
got=$(sed 's/.*"predictions":\[\[//; s/\]\]}$//; s/\],\[/\n/g' "$tmp/char_full.out" | awk -F, '
    { best = 1; for (i = 2; i <= NF; i++) if ($i + 0 > $best + 0) best = i; printf "%s%d", (NR > 1 ? " " : ""), best - 1 }')
[ "$got" = "$want" ] || fail "likeliest next characters: ids $got, expected $want ('0' and 'k')"
echo "examples_test: ok: $EX predicts '0' after \"Version 2.\" and 'k' after \"Derivative Wor\""
echo "examples_test: PASS"
