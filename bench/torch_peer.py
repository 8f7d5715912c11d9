#!/usr/bin/python3
"""torch_peer.py - the PyTorch side of `make bench`: the same models and batches as the engine.

Usage: OPENBLAS_NUM_THREADS=N /usr/bin/python3 bench/torch_peer.py WORKDIR N [SHAPE...]

WORKDIR/shapes.json (written by build/bench/bench) lists the shapes: each names a safetensors
file of an nn.RNN state_dict and a raw little-endian float32 file of the inputs, sequences back
to back, with their lengths. For each shape this runs nn.RNN on the packed ragged batch
(pack_sequence, enforce_sorted=False: what a user with sequences of different lengths writes) on
N threads, and prints one line per shape:

    TORCHJSON {"shape": "M", "threads": 1, "median_s": ..., "reps": ..., "torch": "1.13.0"}

or "TORCHSKIP reason" when torch cannot be imported. Timing includes packing and the forward
pass (not the unpacking of outputs), median over repetitions within a time budget per shape.
OPENBLAS_NUM_THREADS must be set by the caller (it is read when the library loads): torch's
intra-op pool and OpenBLAS's are separate, and both must be N.
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

BUDGET_S = {"S": 0.4, "M": 1.0, "L": 2.0, "L1": 2.0}


def main():
    workdir, threads = sys.argv[1], int(sys.argv[2])
    only = set(sys.argv[3:])
    try:
        import torch
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_sequence
        from rnnserve_st import load_safetensors
    except Exception as e:  # noqa: BLE001 - any import failure means "no peer"
        print(f"TORCHSKIP cannot import torch: {e}", flush=True)
        return 0
    torch.set_num_threads(threads)
    with open(os.path.join(workdir, "shapes.json")) as f:
        shapes = json.load(f)
    for sh in shapes:
        if only and sh["name"] not in only:
            continue
        model = nn.RNN(sh["input"], sh["hidden"], sh["layers"], nonlinearity="tanh", bias=True,
                       batch_first=True)
        model.load_state_dict(load_safetensors(os.path.join(workdir, sh["weights"])))
        model.eval()
        with open(os.path.join(workdir, sh["inputs"]), "rb") as f:
            raw = bytearray(f.read())
        flat = torch.frombuffer(raw, dtype=torch.float32).reshape(-1, sh["input"])
        seqs, at = [], 0
        for n in sh["lengths"]:
            seqs.append(flat[at:at + n])
            at += n

        def once():
            with torch.no_grad():
                return model(pack_sequence(seqs, enforce_sorted=False))

        t0 = time.perf_counter()
        once()  # warm-up
        warm = time.perf_counter() - t0
        budget = BUDGET_S.get(sh["name"], 1.0)
        # at least 3 timed runs, unless one alone eats the budget (a loaded machine): then 1
        min_reps = 3 if warm < budget / 3 else 1
        times, start = [], time.perf_counter()
        while len(times) < min_reps or (time.perf_counter() - start < budget and len(times) < 20000):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
        print("TORCHJSON " + json.dumps({
            "shape": sh["name"], "threads": threads, "median_s": statistics.median(times),
            "reps": len(times), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
