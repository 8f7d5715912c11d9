#!/usr/bin/python3
"""train.py - trains rnnserve's example model "sine-next": a GRU that reads a noisy sine wave
and predicts its next clean value.

Usage: /usr/bin/python3 examples/sine-next/train.py    (from the repo root, after `make`; needs
torch, about 20 s on one core)

The model is nn.GRU(input_size=1, hidden_size=8, batch_first=True), trained so that unit 0 of
its output at step t is the wave's clean value at step t+1: rnnserve's answer *is* the
prediction, with no head layer to run elsewhere. Training data: waves of period 10-30 steps,
amplitude 0.4-0.9, any phase, plus Gaussian noise of sd 0.05; the loss skips the first 4 steps
(the model needs a few to see the wave's frequency).

Writes, next to this script:
  model.safetensors, config.json   the model directory (by tools/export_torch.py, which checks
                                   rnnserve's answers against PyTorch)
  request.json                     two noisy waves (see WAVES), 3 decimals per value
  expected.json                    PyTorch's answer to request.json (float32, %.9g)
and prints each wave's last input, the predicted next value and the true one.
deploy/kubernetes/configmap.yaml carries a copy of this model (tests/deploy_test.sh compares them
byte for byte): regenerate it after retraining, as its header says.
"""

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from export_torch import export  # noqa: E402

HIDDEN = 8
STEPS = 3000
NOISE = 0.05
# The request's waves: amplitude * sin(2 pi t / period + phase) + noise, t = 0 .. steps-1.
# tests/examples_test.sh knows them too: it checks that the answer predicts step `steps`.
WAVES = [dict(amplitude=0.8, period=20, phase=0.0, steps=24),
         dict(amplitude=0.5, period=12, phase=1.0, steps=15)]


def clean(w, t):
    return w["amplitude"] * math.sin(2 * math.pi * t / w["period"] + w["phase"])


def batch(n, T):
    """N noisy waves of T steps (n, T, 1) and each step's next clean value (n, T)."""
    period = torch.empty(n, 1).uniform_(10, 30)
    phase = torch.empty(n, 1).uniform_(0, 2 * math.pi)
    amp = torch.empty(n, 1).uniform_(0.4, 0.9)
    t = torch.arange(T + 1, dtype=torch.float32).unsqueeze(0)
    wave = amp * torch.sin(2 * math.pi * t / period + phase)
    noisy = wave + NOISE * torch.randn_like(wave)
    return noisy[:, :T].unsqueeze(-1), wave[:, 1:]


def train():
    model = nn.GRU(input_size=1, hidden_size=HIDDEN, batch_first=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    for i in range(STEPS):
        x, y = batch(64, 48)
        out, _ = model(x)
        loss = ((out[:, 4:, 0] - y[:, 4:]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if i % 500 == 0 or i == STEPS - 1:
            print(f"step {i:4d}  mse {loss.item():.5f}")
    model.eval()
    with torch.no_grad():
        x, y = batch(2000, 48)
        out, _ = model(x)
        mae = (out[:, 12:, 0] - y[:, 12:]).abs().mean().item()
    print(f"held-out waves: mean abs error {mae:.3f} after 12 steps (the noise alone is "
          f"{NOISE * math.sqrt(2 / math.pi):.3f})")
    return model


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = train()
    export(model, HERE, name="sine-next")

    g = torch.Generator().manual_seed(1)
    inputs = []
    for w in WAVES:
        noise = torch.randn(w["steps"], generator=g) * NOISE
        inputs.append([round(clean(w, t) + noise[t].item(), 3) for t in range(w["steps"])])
    with open(os.path.join(HERE, "request.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"inputs": inputs, "return": ["hidden"], "precision": 3}) + "\n")

    hidden = []
    with torch.no_grad():
        for seq in inputs:
            x = torch.tensor(seq, dtype=torch.float32).view(1, -1, 1)
            _, hn = model(x)
            hidden.append([[float("%.9g" % v) for v in row] for row in hn[:, 0].tolist()])
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"model": "sine-next", "hidden": hidden}) + "\n")

    for w, seq, h in zip(WAVES, inputs, hidden):
        print(f"wave {w}: last input {seq[-1]:+.3f}, predicted next {h[0][0]:+.3f}, "
              f"true next {clean(w, w['steps']):+.3f}")


if __name__ == "__main__":
    main()
