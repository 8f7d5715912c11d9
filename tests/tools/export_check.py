#!/usr/bin/python3
"""export_check.py - tools/export_torch.py on every kind of input it takes, judged from outside.

Usage: /usr/bin/python3 tests/tools/export_check.py    (from the repo root, after make; needs
torch; tests/export_test.sh runs it). Prints one line per check; exit 1 when any fails.

Beyond the exporter's own verification (which it prints), this checks what that cannot: the
written tensors equal the model's bit for bit, the config says what the module is, the command
line fails with a useful message on bad input, a tampered export is caught by --verify-only, and
the real HTTP server, started on the exported directory, answers a ragged batch with PyTorch's
numbers; a token model's embedding is exported (every other layer named), and --into adds a model
to a multi-model config.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, "tools")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from export_torch import ExportError, export  # noqa: E402
from rnnserve_st import load_safetensors, save_safetensors  # noqa: E402

EXPORT = ["/usr/bin/python3", "tools/export_torch.py"]
failed = 0


def ok(msg):
    print(f"ok   {msg}")


def bad(msg):
    global failed
    failed += 1
    print(f"FAIL {msg}")


def expect(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        bad(msg)
        if detail:
            print("     | " + detail.strip().replace("\n", "\n     | "))
    return cond


def cli(*args):
    p = subprocess.run(EXPORT + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def diff_of(out):
    m = re.search(r"max abs diff ([0-9.e+-]+)", out)
    return float(m.group(1)) if m else None


class Seq2One(nn.Module):
    """A typical user model: an LSTM encoder inside a module, with layers around it."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.encoder = nn.Module()
        self.encoder.rnn = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, 1)


class CharRNN(nn.Module):
    """A token model: an Embedding before the RNN, a Linear head after it, and layers the export
    leaves out (a Dropout, a LayerNorm, a second Linear that is not the head)."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(13, 5)
        self.drop = nn.Dropout(0.2)
        self.rnn = nn.GRU(5, 6, num_layers=2)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 13)
        self.aux = nn.Linear(13, 2)


def same_tensors(d, rnn, head=None):
    """The file holds RNN's state_dict exactly (and, given HEAD, (prefix, Linear), its tensors
    under their own names)."""
    st = load_safetensors(os.path.join(d, "model.safetensors"))
    sd = dict(rnn.state_dict())
    if head is not None:
        sd.update({head[0] + k: v for k, v in head[1].state_dict().items()})
    return list(st) == list(sd) and all(torch.equal(st[k], sd[k].float()) for k in sd)


def main(tmp):
    torch.manual_seed(0)
    torch.set_num_threads(1)

    # 1. a module containing the RNN, from Python: prefix found, tensors stripped of it
    m = Seq2One()
    d1 = os.path.join(tmp, "seq2one")
    try:
        diff = export(m, d1, log=lambda s: None)
        expect(diff is not None and diff < 1e-5,
               f"export(module with encoder.rnn LSTM 2-layer bidir): max abs diff {diff:.3g}")
    except ExportError as e:
        bad(f"export(module): {e}")
    cfg = json.load(open(os.path.join(d1, "config.json")))["models"][0]
    expect(cfg == {"name": "seq2one", "type": "lstm", "input_size": 4, "hidden_size": 6,
                   "num_layers": 2, "bias": True, "bidirectional": True,
                   "weights": "model.safetensors",
                   "head": {"weight": "head.weight", "activation": "none", "bias": "head.bias"}},
           "config.json describes the LSTM and its output head (the Linear of width 2*6; "
           "the embedding Linear(3, 4) is not one)", str(cfg))
    expect(same_tensors(d1, m.encoder.rnn, ("head.", m.head)),
           "model.safetensors holds the LSTM's state_dict exactly, without the 'encoder.rnn.' "
           "prefix, plus the head's tensors, and not the other layers")
    out = subprocess.run(["build/rnnserve", "forward", "--config", os.path.join(d1, "config.json")],
                         input=json.dumps({"inputs": [[[0.1, 0.2, 0.3, 0.4]] * 3, [[1, 0, 0, 1]]],
                                           "return": ["predictions"]}),
                         capture_output=True, text=True)
    got = json.loads(out.stdout) if out.returncode == 0 else {}
    with torch.no_grad():
        want = [m.head(m.encoder.rnn(torch.tensor([s]))[0][0]).tolist()
                for s in ([[0.1, 0.2, 0.3, 0.4]] * 3, [[1.0, 0, 0, 1]])]
    expect(len(got.get("predictions", [])) == 2 and all(
        abs(a - b) < 1e-5 for gs, ws in zip(got["predictions"], want)
        for gr, wr in zip(gs, ws) for a, b in zip(gr, wr)),
        "the served model's predictions equal PyTorch's head(rnn(x)) at every step", out.stdout)
    p = subprocess.run(["build/rnnserve", "check", "--config", os.path.join(d1, "config.json")],
                       capture_output=True, text=True)
    expect(p.returncode == 0, "build/rnnserve check loads it", p.stderr)

    # 2. a whole saved module on the command line
    gru = nn.GRU(5, 7, num_layers=3, bidirectional=True)
    torch.save(gru, os.path.join(tmp, "gru.pt"))
    d2 = os.path.join(tmp, "gru")
    rc, out = cli(os.path.join(tmp, "gru.pt"), "-o", d2, "--name", "my-gru")
    expect(rc == 0 and diff_of(out) is not None and diff_of(out) < 1e-5,
           f"CLI, torch.save(nn.GRU 3-layer bidir): exit {rc}, max abs diff {diff_of(out)}", out)
    expect(same_tensors(d2, gru) and
           json.load(open(os.path.join(d2, "config.json")))["models"][0]["name"] == "my-gru",
           "its tensors are the GRU's, named my-gru")

    # 3. a state_dict of a bigger module, hyperparameters read off the shapes and checked
    sd_path = os.path.join(tmp, "seq2one_sd.pt")
    torch.save({"state_dict": m.state_dict(), "epoch": 3}, sd_path)
    rc, out = cli(sd_path, "-o", os.path.join(tmp, "sd"), "--type", "lstm", "--hidden-size", "6",
                  "--num-layers", "2", "--bidirectional")
    expect(rc == 0 and "at prefix 'encoder.rnn.'" in out and "head head.weight" in out and
           diff_of(out) < 1e-5,
           f"CLI, checkpoint {{'state_dict': ...}} + hyperparameters: exit {rc}, prefix found, "
           f"max abs diff {diff_of(out)}", out)
    rc, out = cli(sd_path, "-o", os.path.join(tmp, "sd2"), "--hidden-size", "5")
    expect(rc == 1 and "hidden_size: you said 5" in out and "say 6" in out,
           "a hyperparameter that contradicts the tensors: exit 1, both values named", out)

    # 4. nn.RNN state_dicts need the nonlinearity said
    relu = nn.RNN(2, 6, num_layers=2, nonlinearity="relu")
    torch.save(relu.state_dict(), os.path.join(tmp, "relu.pt"))
    rc, out = cli(os.path.join(tmp, "relu.pt"), "-o", os.path.join(tmp, "relu"))
    expect(rc == 1 and "--nonlinearity" in out, "nn.RNN state_dict without --nonlinearity: "
           "exit 1, asks for it (tanh and relu weights look alike)", out)
    rc, out = cli(os.path.join(tmp, "relu.pt"), "-o", os.path.join(tmp, "relu"),
                  "--nonlinearity", "relu")
    cfg = json.load(open(os.path.join(tmp, "relu", "config.json")))["models"][0]
    expect(rc == 0 and cfg.get("nonlinearity") == "relu" and diff_of(out) < 1e-5,
           f"... with --nonlinearity relu: exit {rc}, max abs diff {diff_of(out)}", out)
    rc, out = cli(os.path.join(tmp, "relu.pt"), "-o", os.path.join(tmp, "relu"), "--verify-only",
                  "--nonlinearity", "tanh")
    expect(rc == 1 and "exceeds tol" in out,
           "--verify-only of the relu export against a tanh reading of it: exit 1 (diff "
           f"{diff_of(out)})", out)

    # 5. several RNNs: refused without --prefix, each reachable with it
    two = nn.Module()
    two.fwd = nn.GRU(2, 3)
    two.back = nn.LSTM(3, 4, bias=False)
    try:
        export(two, os.path.join(tmp, "two"), log=lambda s: None)
        bad("a module with two RNNs exported without --prefix")
    except ExportError as e:
        expect("'fwd.'" in str(e) and "'back.'" in str(e), f"two RNNs, no prefix: {e}")
    try:
        diff = export(two, os.path.join(tmp, "back"), prefix="back", log=lambda s: None)
        expect(diff < 1e-5 and same_tensors(os.path.join(tmp, "back"), two.back),
               f"prefix='back': the bias-less LSTM, max abs diff {diff:.3g}")
    except ExportError as e:
        bad(f"prefix='back': {e}")
    try:
        export(nn.Linear(2, 2), os.path.join(tmp, "none"), log=lambda s: None)
        bad("a module with no RNN was exported")
    except ExportError as e:
        ok(f"no RNN at all: {e}")
    try:
        export(nn.LSTM(2, 4, proj_size=2), os.path.join(tmp, "proj"), log=lambda s: None)
        bad("an LSTM with proj_size was exported")
    except ExportError as e:
        ok(f"LSTM projections refused: {e}")

    # 6. tampering is caught: one weight moved by 0.01, then --verify-only
    st_path = os.path.join(d2, "model.safetensors")
    sd = load_safetensors(st_path)
    sd["weight_hh_l1"][0, 0] += 0.01
    save_safetensors(st_path, sd)
    rc, out = cli(os.path.join(tmp, "gru.pt"), "-o", d2, "--verify-only")
    expect(rc == 1 and "exceeds tol" in out,
           f"a weight moved by 0.01 in the export: --verify-only exits {rc}, diff {diff_of(out)}",
           out)

    # 7. a token model: the Embedding exported, verified with token ids, every other layer named
    cr = CharRNN().eval()
    lines = []
    d8 = os.path.join(tmp, "char")
    try:
        diff = export(cr, d8, head_activation="softmax", log=lines.append)
        expect(diff is not None and diff < 1e-5 and any("(token ids)" in ln for ln in lines),
               f"export(Embedding -> GRU -> Linear): verified with token ids, max abs diff {diff:.3g}",
               "\n".join(lines))
    except ExportError as e:
        bad(f"export(token model): {e}")
    cfg = json.load(open(os.path.join(d8, "config.json")))["models"][0]
    st = load_safetensors(os.path.join(d8, "model.safetensors"))
    expect(cfg.get("embedding") == "embedding.weight" and
           torch.equal(st["embedding.weight"], cr.embedding.weight.detach()) and
           cfg.get("head", {}).get("weight") == "fc.weight",
           "config.json names the embedding (and the head); the file holds it exactly", str(cfg))
    want = {"not exported: drop (Dropout): no weights, inactive at inference",
            "warning: not exported: norm (LayerNorm, weight [6], bias [6]): rnnserve does not "
            "apply it; the served outputs skip it",
            "warning: not exported: aux (Linear, weight [2, 13], bias [2]): rnnserve does not "
            "apply it; the served outputs skip it"}
    expect(want <= set(lines) and not any("embedding" in ln and "not exported" in ln
                                          for ln in lines),
           "every layer left out is named with why: Dropout (inactive), LayerNorm and the extra "
           "Linear (warnings with their shapes)", "\n".join(lines))
    out = subprocess.run(["build/rnnserve", "forward", "--config", os.path.join(d8, "config.json")],
                         input=json.dumps({"tokens": [[1, 12, 0], [7]], "only_last": True,
                                           "return": ["predictions"]}),
                         capture_output=True, text=True)
    got = json.loads(out.stdout) if out.returncode == 0 else {}
    with torch.no_grad():
        wantp = [torch.softmax(cr.fc(cr.rnn(cr.embedding(torch.tensor(ids)))[0][-1]), -1)
                 for ids in ([1, 12, 0], [7])]
    expect(len(got.get("predictions", [])) == 2 and all(
        (torch.tensor(g) - w).abs().max().item() < 1e-5
        for g, w in zip(got["predictions"], wantp)),
        "the served token model's only_last predictions equal PyTorch's at each last step",
        out.stdout + out.stderr)

    # ... from a state_dict on the command line: the bias-less 2-D tensor of the input's width
    sdp = os.path.join(tmp, "char_sd.pt")
    torch.save(cr.state_dict(), sdp)
    rc, out = cli(sdp, "-o", os.path.join(tmp, "char_sd"), "--head-activation", "softmax")
    expect(rc == 0 and "embedding embedding.weight [13, 5]" in out and "(token ids)" in out and
           "warning: not exported: norm (from a state_dict" in out and
           "warning: not exported: aux (" in out and diff_of(out) < 1e-5,
           f"CLI, a token model's state_dict: embedding found, leftovers named, exit {rc}, max abs "
           f"diff {diff_of(out)}", out)

    # 8. --into: added to a multi-model config, its other entries and server section kept
    into = os.path.join(tmp, "serve.json")
    base = {"server": {"port": 9123, "max_batch": 16},
            "models": [{"name": "my-gru", "type": "gru", "input_size": 5, "hidden_size": 7,
                        "num_layers": 3, "bidirectional": True,
                        "weights": os.path.relpath(os.path.join(d2, "model.safetensors"), tmp)}]}
    with open(into, "w") as f:
        json.dump(base, f)
    rc, out = cli(sdp, "-o", os.path.join(tmp, "models", "char"), "--head-activation", "softmax",
                  "--into", into)
    merged = json.load(open(into))
    expect(rc == 0 and merged["server"] == base["server"] and
           [m["name"] for m in merged["models"]] == ["my-gru", "char"] and
           merged["models"][1]["weights"] == os.path.join("models", "char", "model.safetensors") and
           merged["models"][1]["embedding"] == "embedding.weight",
           f"--into: exit {rc}, the model appended with its weights relative to the config, the "
           "rest kept", out + json.dumps(merged))
    p = subprocess.run(["build/rnnserve", "check", "--config", into], capture_output=True,
                       text=True)
    expect(p.returncode == 0 and "embedding of 13 tokens" in p.stdout + p.stderr,
           "build/rnnserve check loads the merged config, both models", p.stdout + p.stderr)
    before = open(into).read()
    rc, out = cli(sdp, "-o", os.path.join(tmp, "models", "char2"), "--name", "my-gru", "--into",
                  into)
    expect(rc == 1 and "already has a model named 'my-gru'" in out and open(into).read() == before
           and not [f for f in os.listdir(tmp) if ".tmp" in f],
           "--into with a name the config has: exit 1, named, the file untouched", out)

    # 9. the real server on the exported directory, over HTTP, against PyTorch
    srv = subprocess.Popen(["build/rnnserve", "--config", os.path.join(d1, "config.json"),
                            "--host", "127.0.0.1", "--port", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in srv.stderr:
            mt = re.search(r"listening on http://127\.0\.0\.1:(\d+) ", line)
            if mt:
                port = int(mt.group(1))
                break
        if not expect(port is not None, "build/rnnserve serves the export"):
            return
        xs = [torch.rand(T, 4) * 2 - 1 for T in (9, 1, 4)]
        body = json.dumps({"inputs": [x.tolist() for x in xs]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/forward", data=body)
        got = json.load(urllib.request.urlopen(req, timeout=30))
        worst = 0.0
        rnn = m.encoder.rnn.eval()
        with torch.no_grad():
            for i, x in enumerate(xs):
                y, (h, c) = rnn(x.unsqueeze(0))
                for part, t in (("outputs", y[0]), ("hidden", h[:, 0]), ("cell", c[:, 0])):
                    g = torch.tensor(got[part][i], dtype=torch.float64)
                    worst = max(worst, (g - t.double()).abs().max().item())
        expect(worst < 1e-5, f"POST /forward on the exported LSTM (ragged 9/1/4 steps): outputs, "
               f"hidden and cell within {worst:.3g} of PyTorch")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as t:
        main(t)
    print(f"export_check: {'FAIL' if failed else 'PASS'} ({failed} failed)")
    sys.exit(1 if failed else 0)
