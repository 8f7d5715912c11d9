#!/usr/bin/python3
"""train.py - trains the real models the playground's browser test serves (beside the bundled
sine RNN and examples/char-lstm), each a shape that once made the page unreadable.

Usage: /usr/bin/python3 tests/browser/models/train.py   (from the repo root, after `make`;
  needs torch; CPU, fixed seeds, well under a minute on one core)

Writes, each into its own directory next to this script (tools/export_torch.py writes and
verifies model.safetensors and config.json):
  gru-cls/     nn.GRU(2, 8) -> nn.Linear(8, 3) + softmax: which of three frequencies a 2-D
               sequence carries. Trained until its gates saturate: states sit just under 1, the
               range whose axis once read "NaN".
  lstm-h128/   nn.LSTM(1, 128, num_layers=2) -> nn.Linear(128, 1): the next value of a sine, a
               forecast model (the head is as wide as the input). 128 units: too many lines to
               draw one each; its cell state runs wider than its outputs.
  birnn/       nn.RNN(3, 6, bidirectional=True) -> nn.Linear(12, 1): the running sum of the
               first input channel, read both ways.
"""

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tools"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from export_torch import export  # noqa: E402

SEED = 5


class Net(nn.Module):
    def __init__(self, rnn, width, out):
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(width, out)

    def forward(self, x):  # x (B, T, I) -> (B, T, O)
        y, _ = self.rnn(x)
        return self.fc(y)


def fit(net, batch, loss_of, iters, lr):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for it in range(iters):
        x, y = batch()
        loss = loss_of(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"  final loss {loss.item():.4f}", flush=True)
    net.eval()


def gru_classifier(g):
    T = 24

    def batch():
        k = torch.randint(0, 3, (64,), generator=g)
        phase = torch.rand(64, 1, generator=g) * 6.28
        t = torch.arange(T).float().unsqueeze(0)
        f = (0.25 + 0.5 * k.float()).unsqueeze(1)
        x = torch.stack([torch.sin(f * t + phase), torch.cos(f * t + phase)], dim=2)
        return x, k

    net = Net(nn.GRU(2, 8, batch_first=True), 8, 3)
    fit(net, batch, lambda o, k: nn.functional.cross_entropy(o[:, -1], k), 400, 0.03)
    return net


def lstm_forecaster(g):
    T = 40

    def batch():
        phase = torch.rand(32, 1, generator=g) * 6.28
        t = torch.arange(T + 1).float().unsqueeze(0)
        s = torch.sin(0.3 * t + phase).unsqueeze(2)
        return s[:, :-1], s[:, 1:]

    net = Net(nn.LSTM(1, 128, num_layers=2, batch_first=True), 128, 1)
    fit(net, batch, nn.functional.mse_loss, 120, 0.01)
    return net


def birnn_summer(g):
    T = 16

    def batch():
        x = torch.rand(64, T, 3, generator=g) * 2 - 1
        return x, torch.cumsum(x[:, :, :1], dim=1) / math.sqrt(T)

    net = Net(nn.RNN(3, 6, batch_first=True, bidirectional=True), 12, 1)
    fit(net, batch, nn.functional.mse_loss, 300, 0.02)
    return net


def main():
    torch.set_num_threads(1)
    for name, make, act in [("gru-cls", gru_classifier, "softmax"),
                            ("lstm-h128", lstm_forecaster, "none"),
                            ("birnn", birnn_summer, "none")]:
        print(name, flush=True)
        torch.manual_seed(SEED)
        net = make(torch.Generator().manual_seed(SEED))
        export(net, os.path.join(HERE, name), name=name, head_activation=act)


if __name__ == "__main__":
    main()
