#!/bin/sh
# export_test.sh - tools/export_torch.py end to end (tests/tools/export_check.py): a module
# containing an LSTM, a saved nn.GRU, a checkpoint's state_dict with hyperparameters, an nn.RNN
# with relu, several RNNs, bad input, a tampered export, a token model (embedding, layers left out
# named), --into a multi-model config, and the exported model served over HTTP,
# all against PyTorch. Needs Debian's python3-torch for /usr/bin/python3; skips (passing)
# without it. Run from the repo root after make (tests/run.sh does). Exit 0 = pass.

PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "export_test: SKIP (no torch for $PY: apt-get install python3-torch)"
    exit 0
fi
[ -x build/rnnserve ] || { echo "export_test: FAIL: build/rnnserve is not built"; exit 1; }
exec timeout 300 "$PY" tests/tools/export_check.py
