#!/bin/sh
# openapi_lint_test.sh - docs/openapi.json passes `redocly lint` (@redocly/cli 2.77.0 from npm,
# installed once under build/redocly). Skips, saying so, where npm or its registry is missing.
set -u
dir=build/redocly
bin=$dir/node_modules/.bin/redocly
if [ ! -x "$bin" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "openapi_lint_test: SKIP (npm not installed)"
        exit 0
    fi
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"name": "rnnserve-lint", "private": true}' > "$dir/package.json"
    if ! (cd "$dir" && npm install --no-audit --no-fund --silent @redocly/cli@2.77.0 >/dev/null 2>&1); then
        echo "openapi_lint_test: SKIP (npm could not install @redocly/cli@2.77.0)"
        exit 0
    fi
fi
if ! out=$("$bin" lint docs/openapi.json 2>&1); then
    echo "$out" | tail -40
    echo "openapi_lint_test: FAIL (redocly lint reported errors)"
    exit 1
fi
echo "$out" | grep -E 'valid|warning' | tail -2
echo "openapi_lint_test: PASS"
