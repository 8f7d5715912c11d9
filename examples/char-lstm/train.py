#!/usr/bin/python3
"""train.py - trains rnnserve's example token model "char-lstm": the classic character-level
LSTM, on the Apache License 2.0 text Debian ships (/usr/share/common-licenses/Apache-2.0).

Usage: /usr/bin/python3 examples/char-lstm/train.py [--state FILE]
  (from the repo root, after `make`; needs torch; about 3 minutes on one core)
  --state FILE   reuse the trained state_dict in FILE when it exists (else train, then save it
                 there): re-exports without retraining

The model is nn.Embedding(V, 32) -> nn.LSTM(32, 128, num_layers=2) -> nn.Linear(128, V), trained
(fixed seed, CPU, Adam) to predict each next character; V is the number of distinct characters
of the text. tools/export_torch.py exports all of it, the embedding included, with a softmax
head: rnnserve then takes the characters' ids ("tokens") and answers each step's next-character
distribution ("predictions").

Writes, next to this script:
  model.safetensors, config.json   the model directory (by tools/export_torch.py, which checks
                                   rnnserve's answers against PyTorch, tokens and all)
  vocab.json                       {"chars": "...", "ids": {char: id}}: id i is chars[i]
  request.json                     two prompts as token ids, "only_last": true, the predictions
                                   at 3 significant digits
  expected.json                    PyTorch's answer to request.json (float32, %.9g)
and prints, per prompt, the five likeliest next characters.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from export_torch import export  # noqa: E402

TEXT = "/usr/share/common-licenses/Apache-2.0"
EMBED, HIDDEN, LAYERS = 32, 128, 2
SEQ, BATCH, ITERS, LR = 64, 32, 1000, 4e-3
SEED = 16
# The request's prompts: each model's answer is the distribution of the character after it.
PROMPTS = ["Licensed under the Apache License, Version 2.", "the Work and such Derivative Wor"]


class CharLSTM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab, EMBED)
        self.rnn = nn.LSTM(EMBED, HIDDEN, num_layers=LAYERS)
        self.fc = nn.Linear(HIDDEN, vocab)

    def forward(self, ids):  # ids (T, B) -> logits (T, B, V)
        y, _ = self.rnn(self.embedding(ids))
        return self.fc(y)


def train(net, data):
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ITERS)
    g = torch.Generator().manual_seed(SEED)
    loss_fn = nn.CrossEntropyLoss()
    for it in range(ITERS):
        starts = torch.randint(0, len(data) - SEQ - 1, (BATCH,), generator=g)
        chunk = torch.stack([data[s:s + SEQ + 1] for s in starts.tolist()], dim=1)  # (T+1, B)
        logits = net(chunk[:-1])
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), chunk[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if it % 200 == 0 or it == ITERS - 1:
            print(f"iteration {it:4d}: loss {loss.item():.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", help="trained state_dict to reuse (or to save)")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # two threads on a shared 2-core machine ran 10x slower
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    chars = "".join(sorted(set(text)))
    ids = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([ids[c] for c in text])
    net = CharLSTM(len(chars))
    if args.state and os.path.exists(args.state):
        net.load_state_dict(torch.load(args.state))
    else:
        train(net, data)
        if args.state:
            torch.save(net.state_dict(), args.state)
    net.eval()

    export(net, HERE, name="char-lstm", head_activation="softmax")
    with open(os.path.join(HERE, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({"chars": chars, "ids": ids}, f, ensure_ascii=True, indent=1)
        f.write("\n")

    prompts = [[ids[c] for c in p] for p in PROMPTS]
    req = {"tokens": prompts, "only_last": True, "return": ["predictions"], "precision": 3}
    with open(os.path.join(HERE, "request.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(req, separators=(", ", ": ")) + "\n")
    preds = []
    with torch.no_grad():
        for p, ptext in zip(prompts, PROMPTS):
            prob = torch.softmax(net(torch.tensor(p).unsqueeze(1))[-1, 0], -1)
            preds.append(prob)
            top = torch.topk(prob, 5)
            likely = ", ".join(f"{chars[i]!r} {v:.3f}" for v, i in zip(top.values.tolist(),
                                                                       top.indices.tolist()))
            print(f"after {ptext!r}: {likely}")
    rows = ",\n    ".join("[" + ", ".join("%.9g" % v for v in p.tolist()) + "]" for p in preds)
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        f.write('{\n  "model": "char-lstm",\n  "predictions": [\n    ' + rows + "\n  ]\n}\n")


if __name__ == "__main__":
    main()
