#!/bin/sh
# run.sh - runs each libFuzzer target for SECONDS and prints one line of figures per target
# (executions, executions per second, new inputs, coverage, peak RSS); exits 1 if any target
# found a crash, a leak, a hang or a failed check. `make fuzz` builds the targets and calls this.
# usage: sh tests/fuzz/run.sh SECONDS TARGET...   (targets under build/fuzz/fuzz_<TARGET>)
# The figures line per target also goes to build/fuzz/summary.txt.
#
# Seeds come from tests/fuzz/corpus/<target> and tests/fuzz/regress/<target> (read-only); new
# inputs libFuzzer finds go to build/fuzz/work/<target>, crash inputs to build/fuzz/crashes/.
# A crash input, once fixed, is minimised and copied into tests/fuzz/regress/<target>/ so that
# make test replays it (tests/test_fuzz.c).
secs=${1:?usage: run.sh SECONDS TARGET...}
shift
out=build/fuzz
summary=$out/summary.txt
: >"$summary"
failed=0
for t in "$@"; do
    bin=$out/fuzz_$t
    work=$out/work/$t
    crashes=$out/crashes/$t
    log=$out/$t.log
    mkdir -p "$work" "$crashes" tests/fuzz/regress/"$t"
    dict=""
    [ -f tests/fuzz/"$t".dict ] && dict="-dict=tests/fuzz/$t.dict"
    echo "== fuzz $t for ${secs}s"
    # The HTTP target's server writes an access line per request: kept out of the log.
    # shellcheck disable=SC2086 # $dict is one word or none
    {
        "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$crashes/" $dict "$work" tests/fuzz/corpus/"$t" \
            tests/fuzz/regress/"$t" 2>&1
        echo "exit=$?"
    } | grep -a -v ' access method=' >"$log"
    rc=$(sed -n 's/^exit=//p' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
    cov=$(grep -a 'DONE' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 edges, \2 features, corpus \3/p')
    line="$t: ${execs:-?} execs in ${secs} s (${rate:-?} exec/s), ${added:-?} new inputs, ${cov:-?}, peak RSS ${rss:-?} MB"
    if [ "$rc" != 0 ]; then
        failed=1
        line="$line: FAILED (exit $rc; see $log, inputs in $crashes/)"
        grep -E 'ERROR|fuzz check failed|SUMMARY|Test unit written' "$log" | head -n 20
    fi
    echo "$line" | tee -a "$summary"
done
[ "$failed" = 0 ] || { echo "fuzz: a target failed" >&2; exit 1; }
