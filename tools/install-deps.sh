#!/bin/sh
# install-deps.sh - installs the Debian packages rnnserve needs, if missing.
#   tools/install-deps.sh         to build and run (make run)
#   tools/install-deps.sh test    and to run every test (make test): libcurl for the HTTP tests,
#                                 valgrind, and prometheus (promtool and a real scraper)
#   tools/install-deps.sh bench   and to run make bench: wrk, and the peers it compares against
#                                 (python3-torch, python3-fastapi, python3-uvicorn; best effort:
#                                 the benchmark skips a peer it cannot run, with the reason)
# Runs as root, or through sudo; does nothing when everything is already there.
set -e
PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev curl"
OPTIONAL=""
if [ "${1:-}" = test ]; then
    PKGS="$PKGS check libsubunit-dev libcurl4-openssl-dev valgrind prometheus"
fi
if [ "${1:-}" = bench ]; then
    PKGS="$PKGS wrk"
    OPTIONAL="python3-torch python3-fastapi python3-uvicorn"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
optional_missing=""
for p in $OPTIONAL; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || optional_missing="$optional_missing $p"
done
[ -z "$missing" ] && [ -z "$optional_missing" ] && exit 0
echo "install-deps: installing:$missing$optional_missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        [ -z "$missing" ] && { echo "install-deps: cannot install$optional_missing (not root); going on without" >&2; exit 0; }
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$optional_missing" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $optional_missing >/dev/null ||
        echo "install-deps: could not install$optional_missing; the benchmark skips those peers" >&2
fi
