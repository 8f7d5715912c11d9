#!/bin/sh
# deploy_test.sh - the scale-out recipes in deploy/, checked offline: every Kubernetes manifest
# against the Kubernetes API schema and against the image and the model it serves, and the
# Compose stack's structure (tests/tools/deploy_check.py); Compose's nginx.conf through `nginx -t`;
# and, where installed, `kubectl kustomize` and `docker-compose config`. No cluster is needed (or
# contacted). Skips, passing, without python3-kubernetes; each other tool is used when present.
# Run from the repo root after make (tests/run.sh does). Exit 0 = pass.

PY=/usr/bin/python3
if ! "$PY" -c 'import kubernetes, yaml' 2>/dev/null; then
    echo "deploy_test: SKIP (needs python3-kubernetes and python3-yaml: tools/install-deps.sh test)"
    exit 0
fi
[ -x build/rnnserve ] || { echo "deploy_test: FAIL: build/rnnserve is not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rnnserve-deploy.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
failed=0

timeout 60 "$PY" tests/tools/deploy_check.py || failed=1

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -x "$NGINX" ]; then
    # The replicas' names only resolve inside Compose: point them at loopback; the rest as shipped.
    mkdir -p "$tmp/logs"
    sed -e 's/server rnnserve-[0-9]*:8080/server 127.0.0.1:8080/' \
        -e "s|^pid .*|pid $tmp/nginx.pid;|" \
        -e "s|/var/log/nginx/|$tmp/logs/|" \
        -e "s|include /etc/nginx/|include $PWD/deploy/compose/nginx/|" \
        deploy/compose/nginx/nginx.conf >"$tmp/nginx.conf"
    if "$NGINX" -t -q -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/logs/error.log" >"$tmp/t.log" 2>&1; then
        echo "ok   nginx -t accepts deploy/compose/nginx/nginx.conf and rnnserve-proxy.conf"
    else
        echo "FAIL nginx -t on deploy/compose/nginx/nginx.conf:"
        sed 's/^/     | /' "$tmp/t.log"
        failed=1
    fi
else
    echo "skip nginx -t (nginx not installed)"
fi

if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize deploy/kubernetes >"$tmp/all.yaml" 2>"$tmp/k.log"; then
        echo "ok   kubectl kustomize deploy/kubernetes renders $(grep -c '^kind:' "$tmp/all.yaml") objects"
    else
        echo "FAIL kubectl kustomize deploy/kubernetes: $(cat "$tmp/k.log")"
        failed=1
    fi
else
    echo "skip kubectl kustomize (kubectl not installed)"
fi

if command -v docker-compose >/dev/null 2>&1; then
    if docker-compose -f deploy/compose/compose.yaml config -q >"$tmp/c.log" 2>&1; then
        echo "ok   docker-compose config accepts deploy/compose/compose.yaml"
    else
        echo "FAIL docker-compose config: $(cat "$tmp/c.log")"
        failed=1
    fi
else
    echo "skip docker-compose config (docker-compose not installed)"
fi

[ "$failed" = 0 ] && echo "deploy_test: PASS" || echo "deploy_test: FAIL"
[ "$failed" = 0 ]
