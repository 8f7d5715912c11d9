#!/bin/sh
# install-deps.sh - installs the Debian packages rnnserve needs, if missing.
#   tools/install-deps.sh         to build and run (make run)
#   tools/install-deps.sh test    and to run every test (make test): libcurl for the HTTP tests,
#                                 valgrind, and prometheus (promtool and a real scraper), nginx,
#                                 python3-kubernetes and docker-compose (the recipes in deploy/)
#   tools/install-deps.sh browser and to test the playground page (make test-browser): chromium
#   tools/install-deps.sh fuzz    and to fuzz (make fuzz): clang and its libFuzzer runtime
#   tools/install-deps.sh soak    and to soak under load (make soak): wrk
#   tools/install-deps.sh bench   and to run make bench: wrk, and the peers it compares against
#                                 (python3-torch, python3-fastapi, python3-uvicorn; best effort:
#                                 the benchmark skips a peer it cannot run, with the reason)
# Runs as root, or through sudo; does nothing when everything is already there.
set -e
PKGS="gcc make pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev zlib1g-dev curl"
OPTIONAL=""
if [ "${1:-}" = test ]; then
    PKGS="$PKGS check libsubunit-dev libcurl4-openssl-dev valgrind prometheus"
    # nginx (failover_test.sh: a real reverse proxy in front of two instances), the official
    # Kubernetes Python client (deploy_test.sh checks deploy/kubernetes against its API models)
    # and docker-compose (whose `config` checks deploy/compose; no daemon needed)
    PKGS="$PKGS nginx python3-kubernetes docker-compose"
fi
if [ "${1:-}" = browser ]; then
    # make test-browser: Debian's Chromium and a font for its screenshots. playwright-core comes
    # from npm (make test-browser runs npm ci) and needs Node.js 20 or later, which Debian 12's
    # own nodejs (18) is not, so Node is checked here, not installed.
    PKGS="$PKGS chromium fonts-dejavu-core"
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
        echo "install-deps: make test-browser needs Node.js 20 or later and npm" >&2; exit 1
    fi
fi
if [ "${1:-}" = fuzz ]; then
    PKGS="$PKGS clang libclang-rt-14-dev"
fi
if [ "${1:-}" = soak ]; then
    PKGS="$PKGS wrk"
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
