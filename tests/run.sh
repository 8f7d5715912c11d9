#!/bin/sh
# run.sh - runs every Check runner (plain, then ASan+UBSan) and every tests/*_test.sh script,
# and prints the failures again at the end (CI shows only a log's tail), then one closing line:
# "N passed, N failed".
# usage: tests/run.sh test_a test_b ...   (runner names under build/tests and build/asan/tests)
passed=0
failed=0
log=$(mktemp)
fails=$(mktemp)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
for t in "$@"; do
    for bin in build/tests/$t build/asan/tests/$t; do
        echo "== $bin"
        "$bin" >"$log" 2>&1
        rc=$?
        cat "$log"
        # A failure's message may run over several lines (a server log's tail): keep them all.
        awk -v bin="$bin" '/^[^ ]+:[0-9]+:[FE]:/ { on = 1; print bin ": " $0; next }
                           /^[^ ]+:[0-9]+:P:|^[0-9]+%: Checks/ { on = 0 }
                           on { print "    " $0 }' "$log" >>"$fails"
        line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        if [ -z "$line" ]; then
            echo "!! $bin printed no Check summary (exit $rc)" | tee -a "$fails"
            failed=$((failed + 1))
            continue
        fi
        passed=$((passed + n - f - e))
        failed=$((failed + f + e))
        if [ "$rc" != 0 ] && [ "$f" = 0 ] && [ "$e" = 0 ]; then
            echo "!! $bin exited $rc (sanitizer report?)" | tee -a "$fails"
            failed=$((failed + 1))
        fi
    done
done
for s in tests/*_test.sh; do
    [ -f "$s" ] || continue
    echo "== $s"
    if sh "$s"; then passed=$((passed + 1)); else echo "!! $s failed" | tee -a "$fails"; failed=$((failed + 1)); fi
done
if [ -s "$fails" ]; then
    echo "== what failed"
    cat "$fails"
fi
rm -f "$log" "$fails"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
