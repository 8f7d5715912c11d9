#!/usr/bin/python3
"""make_default_model.py - makes rnnserve's bundled default model, "sine", from PyTorch.

Usage: /usr/bin/python3 tools/make_default_model.py      (needs torch, not safetensors)

Writes, next to each other in config/:
  sine.safetensors        the state_dict of torch.manual_seed(0); nn.RNN(1, 4, 1, batch_first=True)
                          (F32, metadata {"format": "pt"})
  default.json            the default server config serving it as model "sine"
  default.request.json    {"inputs": [[[0.0], [0.1411], [-0.2794]]]}: sin(linspace(0, 6, 3)) to 4 places
  default.expected.json   PyTorch's response to that request, in the API.md response form
and prints the response. Floats are float32 values printed with %.9g (they read back exactly).
Deterministic: running it again gives byte-identical files.
"""

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from rnnserve_st import load_safetensors, save_safetensors  # noqa: E402

CONFIG_DIR = os.path.join(HERE, "..", "config")

# The literal values, not exact sines, so that a curl example in the README can show them.
INPUT = [0.0, 0.1411, -0.2794]


def num(v):
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    return "%.9g" % v


def emit(v, ind=0, fmt=num):
    """JSON text: lists of scalars on one line, other containers one item per line; FMT formats
    floats."""
    pad = "  " * ind
    if isinstance(v, dict):
        items = [f"{pad}  {json.dumps(k)}: {emit(x, ind + 1, fmt)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        if not any(isinstance(x, (list, dict)) for x in v):
            return "[" + ", ".join(emit(x, ind, fmt) for x in v) + "]"
        return "[\n" + ",\n".join(pad + "  " + emit(x, ind + 1, fmt) for x in v) + "\n" + pad + "]"
    if isinstance(v, float):
        return fmt(v)
    return json.dumps(v)


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = nn.RNN(input_size=1, hidden_size=4, num_layers=1, batch_first=True)
    m.eval()
    sd = m.state_dict()

    os.makedirs(CONFIG_DIR, exist_ok=True)
    st_path = os.path.join(CONFIG_DIR, "sine.safetensors")
    save_safetensors(st_path, sd, {"format": "pt"}, dtype=torch.float32)
    back = load_safetensors(st_path)
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)

    config = {
        "server": {"host": "0.0.0.0", "port": 8080},
        "models": [{
            "name": "sine", "type": "rnn", "input_size": 1, "hidden_size": 4, "num_layers": 1,
            "nonlinearity": "tanh", "bias": True, "bidirectional": False,
            "weights": "sine.safetensors",
        }],
    }
    write_text(os.path.join(CONFIG_DIR, "default.json"), json.dumps(config, indent=2))

    request = {"inputs": [[[x] for x in INPUT]]}
    write_text(os.path.join(CONFIG_DIR, "default.request.json"),
               emit(request, fmt=repr))

    x = torch.tensor(request["inputs"], dtype=torch.float32)  # (batch 1, T 3, input 1)
    with torch.no_grad():
        y, hn = m(x)
    assert torch.equal(y[0, -1], hn[0, 0])
    response = {
        "model": "sine",
        "outputs": [[[float(v) for v in row] for row in y[0].tolist()]],
        "hidden": [[[float(v) for v in row] for row in hn[:, 0, :].tolist()]],
    }
    text = emit(response)
    write_text(os.path.join(CONFIG_DIR, "default.expected.json"), text)
    print(text)


if __name__ == "__main__":
    main()
