#!/bin/sh
# install-deps.sh - installs the Debian packages rnnserve needs, if missing.
#   tools/install-deps.sh         to build and run (make run)
#   tools/install-deps.sh test    and to run every test (make test): libcurl for the HTTP tests,
#                                 valgrind, and prometheus (promtool and a real scraper)
# Runs as root, or through sudo; does nothing when everything is already there.
set -e
PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev curl"
if [ "${1:-}" = test ]; then
    PKGS="$PKGS check libsubunit-dev libcurl4-openssl-dev valgrind prometheus"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
