#!/bin/sh
# triton_wire_test.sh - the /v2 routes as NVIDIA's Python client (tritonclient.http) frames its
# requests and reads its results, in every mode (binary by default, binary_data=False, binary
# outputs, gzip and deflate both ways), against PyTorch (tests/tools/triton_wire.py; tritonclient
# itself is not installable here). Needs numpy and torch for /usr/bin/python3; skips (passing)
# without them. Run from the repo root after make (tests/run.sh does). Exit 0 = pass.

PY=/usr/bin/python3
if ! "$PY" -c 'import numpy, torch' 2>/dev/null; then
    echo "triton_wire_test: SKIP (no numpy/torch for $PY: apt-get install python3-torch)"
    exit 0
fi
[ -x build/rnnserve ] || { echo "triton_wire_test: FAIL: build/rnnserve is not built"; exit 1; }
exec timeout 300 "$PY" tests/tools/triton_wire.py
