#!/bin/sh
# install_test.sh - `make install` into a DESTDIR with a PREFIX, the way a packager runs it: the
# exact file list, modes, an installed binary that runs from there (--version, check, forward on
# both installed models), then `make uninstall` leaving nothing behind. Runs from the repo root
# after make (tests/run.sh does). Exit 0 = pass.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
dest=$tmp/dest
repo=$PWD
prefix=/opt/rnnserve-test
root=$dest$prefix
passed=0

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}
ok() {
    passed=$((passed + 1))
    echo "install_test: ok: $*"
}

# make from the test's environment, not a parent make's (no jobserver, no -s/-k flags).
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory "$@" >"$tmp/make.log" 2>&1; }

mk install PREFIX="$prefix" DESTDIR="$dest" || fail "make install: $(tail -n 5 "$tmp/make.log")"
(cd "$dest" && find . -type f | sort) >"$tmp/files"
cat >"$tmp/want" <<EOF
.$prefix/bin/rnnserve
.$prefix/share/doc/rnnserve/API.md
.$prefix/share/doc/rnnserve/README.md
.$prefix/share/rnnserve/default.json
.$prefix/share/rnnserve/examples/sine-next/config.json
.$prefix/share/rnnserve/examples/sine-next/model.safetensors
.$prefix/share/rnnserve/examples/sine-next/request.json
.$prefix/share/rnnserve/sine.safetensors
EOF
diff "$tmp/want" "$tmp/files" >"$tmp/diff" || fail "installed files differ from the list:
$(cat "$tmp/diff")"
ok "make install PREFIX=$prefix DESTDIR=...: the $(wc -l <"$tmp/want") expected files, nothing else"

[ "$(stat -c %a "$root/bin/rnnserve")" = 755 ] || fail "bin/rnnserve mode $(stat -c %a "$root/bin/rnnserve")"
[ "$(stat -c %a "$root/share/rnnserve/default.json")" = 644 ] || fail "default.json is not 0644"
cmp -s build/rnnserve "$root/bin/rnnserve" || fail "the installed binary is not build/rnnserve"
ok "modes 755 (binary) and 644 (data); the binary is build/rnnserve"

# From a folder where no relative path could reach the repository's files.
cd "$tmp" || fail "cd $tmp"
"$root/bin/rnnserve" --version >"$tmp/version" 2>&1 || fail "--version: $(cat "$tmp/version")"
grep -q '^rnnserve [0-9]' "$tmp/version" || fail "--version printed: $(cat "$tmp/version")"
for lib in libmicrohttpd jansson openblas; do
    grep -q "^$lib " "$tmp/version" || fail "--version has no $lib line"
done
ok "installed rnnserve --version: $(tr '\n' ';' <"$tmp/version" | cut -c1-80)"

"$root/bin/rnnserve" check --config "$root/share/rnnserve/default.json" >"$tmp/check" 2>&1 ||
    fail "check default.json: $(cat "$tmp/check")"
"$root/bin/rnnserve" check --config "$root/share/rnnserve/examples/sine-next/config.json" \
    >>"$tmp/check" 2>&1 || fail "check sine-next: $(cat "$tmp/check")"
grep -q '^sine: ' "$tmp/check" && grep -q '^sine-next: ' "$tmp/check" || fail "check: $(cat "$tmp/check")"
ok "installed configs load their weights (relative to themselves): sine, sine-next"

printf '{"inputs": [[0.0, 0.1411, -0.2794]]}' |
    "$root/bin/rnnserve" forward --config "$root/share/rnnserve/default.json" >"$tmp/out" 2>&1 ||
    fail "forward on the installed default model: $(cat "$tmp/out")"
grep -q '"model":"sine"' "$tmp/out" || fail "forward answered: $(cat "$tmp/out")"
"$root/bin/rnnserve" forward --config "$root/share/rnnserve/examples/sine-next/config.json" \
    <"$root/share/rnnserve/examples/sine-next/request.json" >"$tmp/out" 2>&1 ||
    fail "forward on the installed example: $(cat "$tmp/out")"
grep -q '"model":"sine-next"' "$tmp/out" || fail "forward answered: $(cat "$tmp/out")"
ok "installed rnnserve forward answers on both models"

cd "$repo" || fail "cd $repo"
mk uninstall PREFIX="$prefix" DESTDIR="$dest" || fail "make uninstall: $(tail -n 5 "$tmp/make.log")"
left=$(cd "$dest" && find . -type f)
[ -z "$left" ] || fail "make uninstall left: $left"
ok "make uninstall removes every installed file"
echo "install_test: PASS ($passed checks)"
