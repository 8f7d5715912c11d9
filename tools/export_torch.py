#!/usr/bin/python3
"""export_torch.py - turns a PyTorch RNN into an rnnserve model directory, and proves it.

Needs only torch (not the `safetensors` package). Writes DIR/model.safetensors (the RNN's
state_dict, float32, PyTorch's tensor names with any prefix removed) and DIR/config.json (an
rnnserve config serving it), then runs the exported model through `build/rnnserve forward` on a
random ragged batch (random h0/c0 too) and compares with PyTorch, one sequence at a time, printing
the max abs diff. Exit status 0 when the diff is within --tol, 1 otherwise, 2 on a usage error.

Command line (SOURCE is a file made by torch.save):

  /usr/bin/python3 tools/export_torch.py SOURCE -o DIR [options]

  SOURCE holding            what happens
  a whole module            torch.save(model): the nn.RNN/nn.LSTM/nn.GRU inside it is found (its
                            class must be importable: run from your project or set PYTHONPATH)
  a state_dict              torch.save(model.state_dict()): type, sizes, layers, bias and
                            direction are read off the tensor shapes; any flag you give is checked
                            against them; an nn.RNN's needs --nonlinearity (shapes cannot tell)
  a checkpoint dict         {"state_dict": ...} or {"model_state_dict": ...}: as a state_dict

  -o, --output DIR          the model directory to write (created if missing)
  --name NAME               the model's name in the config (default: DIR's basename)
  --prefix P                which RNN, when the module or state_dict holds several ("encoder.")
  --type rnn|lstm|gru, --input-size N, --hidden-size N, --num-layers N, --bidirectional,
  --no-bias, --nonlinearity tanh|relu
                            the hyperparameters, for a state_dict
  --rnnserve PATH           the binary used to verify (default: $RNNSERVE, else build/rnnserve
                            next to this script's repository)
  --head-activation none|sigmoid|softmax
                            what follows the output head, when one is found (default none)
  --no-head                 ignore a Linear head even when one is found
  --no-embedding            ignore an nn.Embedding even when one is found
  --into CONFIG             also add the model to the existing (multi-model) config CONFIG: its
                            other models and its server section are kept, a model of the same
                            name is refused, the file is replaced atomically
  --tol X                   the largest acceptable abs diff (default 1e-5)
  --seed N                  seed of the random verification batch (default 0)
  --no-verify               write the directory without running rnnserve
  --verify-only             write nothing: compare an existing DIR with SOURCE

From Python (the module, or a module containing one, straight from memory):

  sys.path.insert(0, "path/to/rnnserve/tools")
  from export_torch import export
  diff = export(model, "mymodel")          # returns the max abs diff; raises ExportError

An output head (the usual `self.fc = nn.Linear(D*H, O)` applied at every step) is found
automatically: the one nn.Linear (or, in a state_dict, the one WEIGHT/BIAS pair outside the RNN)
whose input width is the RNN's num_directions * hidden_size. It is exported with the RNN
("head" in the config) and its predictions are verified too.

An input embedding (an nn.Embedding before the RNN, as in a char-RNN) is found the same way: the
one nn.Embedding (in a state_dict, the one 2-D X.weight without an X.bias outside the RNN) whose
width is the RNN's input_size. It is exported ("embedding" in the config: the served model then
takes token ids, "tokens"), and the verification sends token ids.

Nothing is dropped silently: every layer of a module that is not exported is named, one line
each, with why (a Dropout: no weights, inactive at inference; a layer with weights, or one that
computes something, such as a LayerNorm, a ReLU or a second RNN: a warning naming its class, its
parameters and their shapes, since the served model does not apply it). For a state_dict, the
tensors that are not exported are named the same way.

Then: build/rnnserve --config DIR/config.json  (or mount DIR into the Docker image, see README).
"""

import argparse
import copy
import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from rnnserve_st import save_safetensors  # noqa: E402

__all__ = ["ExportError", "export", "find_rnn", "spec_from_module", "spec_from_state_dict"]

TYPES = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}
MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {1: "rnn", 3: "gru", 4: "lstm"}
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
DEFAULT_RNNSERVE = os.path.join(HERE, "..", "build", "rnnserve")


class ExportError(Exception):
    """A model that cannot be exported, or an export that does not match PyTorch."""


# ---------------------------------------------------------------- finding the RNN

def _rnn_type(m):
    for cls, name in TYPES.items():
        if type(m) is cls:
            return name
    return None


def find_rnn(module, prefix=None):
    """Returns (prefix, rnn): the one nn.RNN/LSTM/GRU inside MODULE (MODULE itself if it is one),
    and its state_dict key prefix ("" or "encoder.rnn."). PREFIX picks one when there are several.
    Raises ExportError when there is none, several without PREFIX, or PREFIX names none."""
    found = [(name + "." if name else "", m) for name, m in module.named_modules()
             if isinstance(m, nn.RNNBase)]
    if prefix is not None:
        want = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        for p, m in found:
            if p == want:
                return p, m
        raise ExportError(f"no RNN at prefix {prefix!r}; the module has: "
                          + (", ".join(repr(p) for p, _ in found) or "none"))
    if not found:
        raise ExportError(f"{type(module).__name__} contains no nn.RNN, nn.LSTM or nn.GRU")
    if len(found) > 1:
        raise ExportError("the module contains several RNNs: "
                          + ", ".join(f"{p!r} ({type(m).__name__})" for p, m in found)
                          + "; pick one with --prefix")
    return found[0]


def spec_from_module(rnn):
    """The rnnserve model entry (without name and weights) describing RNN, an nn.RNN/LSTM/GRU.
    Raises ExportError for what rnnserve does not serve (LSTM projections, subclasses)."""
    kind = _rnn_type(rnn)
    if kind is None:
        raise ExportError(f"{type(rnn).__name__} is not nn.RNN, nn.LSTM or nn.GRU (a subclass "
                          "may compute something else; export its state_dict instead)")
    if getattr(rnn, "proj_size", 0):
        raise ExportError(f"LSTM with proj_size={rnn.proj_size}: rnnserve does not serve "
                          "projections (weight_hr_l*)")
    spec = {"type": kind, "input_size": rnn.input_size, "hidden_size": rnn.hidden_size,
            "num_layers": rnn.num_layers}
    if kind == "rnn":
        spec["nonlinearity"] = rnn.nonlinearity
    spec["bias"] = bool(rnn.bias)
    spec["bidirectional"] = bool(rnn.bidirectional)
    return spec


def _rnn_prefixes(sd):
    return sorted({k[: -len("weight_ih_l0")] for k in sd if k.endswith("weight_ih_l0")})


def spec_from_state_dict(sd, prefix=None, hyper=None):
    """Reads (prefix, spec) off a state_dict's names and shapes. HYPER holds the hyperparameters
    the user gave (keys as in spec; None = not given): each is checked against the tensors.
    Raises ExportError naming the mismatch."""
    hyper = {k: v for k, v in (hyper or {}).items() if v is not None}
    prefixes = _rnn_prefixes(sd)
    if prefix is not None:
        if prefix and not prefix.endswith("."):
            prefix += "."
        if prefix not in prefixes:
            raise ExportError(f"no {prefix}weight_ih_l0 in the state_dict; RNN prefixes found: "
                              + (", ".join(repr(p) for p in prefixes) or "none"))
    elif not prefixes:
        raise ExportError("no weight_ih_l0 tensor in the state_dict: not an RNN's state_dict")
    elif len(prefixes) > 1:
        raise ExportError("the state_dict holds several RNNs: "
                          + ", ".join(repr(p) for p in prefixes) + "; pick one with --prefix")
    else:
        prefix = prefixes[0]
    own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if any(k.startswith("weight_hr_l") for k in own):
        raise ExportError("LSTM projections (weight_hr_l*) are not served by rnnserve")

    w_ih, w_hh = own["weight_ih_l0"], own.get("weight_hh_l0")
    if w_hh is None or w_ih.dim() != 2 or w_hh.dim() != 2:
        raise ExportError(f"{prefix}weight_hh_l0 missing or not 2-D")
    H = w_hh.shape[1]
    if H == 0 or w_hh.shape[0] % H or w_hh.shape[0] // H not in GATES:
        raise ExportError(f"{prefix}weight_hh_l0 has shape {list(w_hh.shape)}: not "
                          "(G*hidden_size, hidden_size) with G = 1 (rnn), 3 (gru) or 4 (lstm)")
    kind = GATES[w_hh.shape[0] // H]
    L = 1 + max(int(m.group(1)) for k in own for m in [re.match(r"weight_ih_l(\d+)$", k)] if m)
    spec = {"type": kind, "input_size": w_ih.shape[1], "hidden_size": H, "num_layers": L}
    if kind == "rnn":
        if "nonlinearity" not in hyper:
            raise ExportError(f"the tensors under {prefix!r} are an nn.RNN's, whose tanh or relu "
                              "they cannot tell: pass --nonlinearity tanh (PyTorch's default) "
                              "or --nonlinearity relu")
        spec["nonlinearity"] = hyper["nonlinearity"]
    spec["bias"] = "bias_ih_l0" in own
    spec["bidirectional"] = "weight_ih_l0_reverse" in own
    for key, given in hyper.items():
        if key == "nonlinearity" and kind != "rnn":
            raise ExportError(f"--nonlinearity applies to rnn models; the tensors are a {kind}'s")
        if spec[key] != given:
            raise ExportError(f"{key}: you said {given!r}, but the tensors under {prefix!r} say "
                              f"{spec[key]!r} ({prefix}weight_hh_l0 {list(w_hh.shape)}, "
                              f"{prefix}weight_ih_l0 {list(w_ih.shape)})")
    return prefix, spec


def module_from_state_dict(sd, prefix, spec):
    """Builds the nn.RNN/LSTM/GRU SPEC describes and loads the tensors under PREFIX into it
    (strictly: a missing, extra or misshapen tensor is an ExportError)."""
    kw = dict(input_size=spec["input_size"], hidden_size=spec["hidden_size"],
              num_layers=spec["num_layers"], bias=spec["bias"],
              bidirectional=spec["bidirectional"])
    if spec["type"] == "rnn":
        kw["nonlinearity"] = spec["nonlinearity"]
    rnn = MODULES[spec["type"]](**kw)
    own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    try:
        rnn.load_state_dict(own, strict=True)
    except RuntimeError as e:
        raise ExportError(f"the tensors under {prefix!r} do not fit {spec}: {e}") from None
    return rnn


# ---------------------------------------------------------------- writing

def find_head(named, width):
    """The output head among NAMED ((key prefix, weight, bias) triples of Linear layers outside
    the RNN): the one whose input width is WIDTH (num_directions * hidden_size), or None."""
    fits = [h for h in named if h[1].dim() == 2 and h[1].shape[1] == width]
    if len(fits) > 1:
        raise ExportError("several Linear layers could be the output head ("
                          + ", ".join(repr(h[0]) for h in fits) + "); pass --no-head, or export a "
                          "module holding one")
    return fits[0] if fits else None


def heads_in_module(module, rnn_prefix):
    """(key prefix, weight, bias) of every nn.Linear in MODULE, by state_dict key prefix."""
    out = []
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear) and not (n + ".").startswith(rnn_prefix or "\0"):
            out.append((n + ".", m.weight.detach(), m.bias.detach() if m.bias is not None else None))
    return out


def heads_in_state_dict(sd, rnn_prefix):
    """(key prefix, weight, bias) of every 2-D X.weight (with its X.bias) outside the RNN."""
    out = []
    for k, v in sd.items():
        if k.endswith(".weight") and not k.startswith(rnn_prefix) and v.dim() == 2:
            p = k[: -len("weight")]
            out.append((p, v, sd.get(p + "bias")))
    return out


def find_embedding(named, input_size):
    """The input embedding among NAMED ((state_dict key, weight) pairs): the one whose width is
    INPUT_SIZE, or None."""
    fits = [e for e in named if e[1].dim() == 2 and e[1].shape[1] == input_size]
    if len(fits) > 1:
        raise ExportError("several embeddings could feed the RNN ("
                          + ", ".join(repr(e[0]) for e in fits) + "); pass --no-embedding, or "
                          "export a module holding one")
    return fits[0] if fits else None


def embeddings_in_module(module):
    """(state_dict key, weight) of every nn.Embedding in MODULE."""
    return [(n + ".weight", m.weight.detach()) for n, m in module.named_modules()
            if isinstance(m, nn.Embedding)]


def embeddings_in_state_dict(sd, rnn_prefix, head):
    """(key, tensor) of every 2-D X.weight outside the RNN with no X.bias and not the head's."""
    hk = head[0] + "weight" if head else None
    return [(k, v) for k, v in sd.items()
            if k.endswith(".weight") and not k.startswith(rnn_prefix) and v.dim() == 2
            and k[: -len("weight")] + "bias" not in sd and k != hk]


# Modules without weights that compute nothing at inference.
INACTIVE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
            nn.FeatureAlphaDropout, nn.Identity)


def _shapes(params):
    return ", ".join(f"{n} {list(p.shape)}" for n, p in params)


def leftovers_in_module(module, rnn_prefix, head, embedding):
    """One line per layer of MODULE that the export leaves out, and whether any is a warning:
    every leaf module (and RNN) that is not the exported RNN, head or embedding."""
    used = {rnn_prefix}
    if head:
        used.add(head[0])
    if embedding:
        used.add(embedding[0][: -len("weight")])
    lines, warn = [], False
    for n, m in module.named_modules():
        p = n + "." if n else ""
        if p in used or any(p.startswith(u) for u in used if u) or not n:
            continue
        if any(True for _ in m.children()) and not isinstance(m, nn.RNNBase):
            continue  # a container: its leaves are named instead
        cls = type(m).__name__
        params = list(m.named_parameters())
        if isinstance(m, INACTIVE):
            lines.append(f"not exported: {n} ({cls}): no weights, inactive at inference")
        elif params:
            warn = True
            lines.append(f"warning: not exported: {n} ({cls}, {_shapes(params)}): rnnserve does "
                         "not apply it; the served outputs skip it")
        else:
            warn = True
            lines.append(f"warning: not exported: {n} ({cls}, no weights): rnnserve does not "
                         "apply it; the served outputs skip it")
    return lines, warn


def leftovers_in_state_dict(sd, rnn_prefix, head, embedding):
    """The same for a state_dict: its tensors outside the exported ones, grouped by layer."""
    used = {k for k in sd if k.startswith(rnn_prefix)}
    if head:
        used |= {head[0] + "weight", head[0] + "bias"}
    if embedding:
        used.add(embedding[0])
    groups = {}
    for k, v in sd.items():
        if k not in used:
            groups.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append((k, v))
    lines = [f"warning: not exported: {g} (from a state_dict, class unknown: {_shapes(ts)}): "
             "rnnserve does not apply it; the served outputs skip it" for g, ts in groups.items()]
    return lines, bool(lines)


def write_model_dir(rnn, spec, out_dir, name, head=None, activation="none", embedding=None):
    """Writes OUT_DIR/model.safetensors (RNN's state_dict as float32, plus the head's and the
    embedding's tensors under their own names) and OUT_DIR/config.json."""
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().to(torch.float32) for k, v in rnn.state_dict().items()}
    entry = {"name": name, **spec, "weights": "model.safetensors"}
    if embedding is not None:
        sd[embedding[0]] = embedding[1].to(torch.float32).contiguous()
        entry["embedding"] = embedding[0]
    if head is not None:
        hp, w, b = head
        sd[hp + "weight"] = w.to(torch.float32).contiguous()
        entry["head"] = {"weight": hp + "weight", "activation": activation}
        if b is not None:
            sd[hp + "bias"] = b.to(torch.float32).contiguous()
            entry["head"]["bias"] = hp + "bias"
    save_safetensors(os.path.join(out_dir, "model.safetensors"), sd,
                     {"format": "pt", "exported_by": "rnnserve tools/export_torch.py"})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"models": [entry]}, indent=2) + "\n")
    return entry


def add_into(config_path, entry, out_dir):
    """Adds ENTRY (its weights path made relative to CONFIG_PATH's folder) to the config at
    CONFIG_PATH, keeping everything else; written to a temporary file, then renamed over it."""
    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError(f"--into {config_path}: cannot read it as JSON ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("models"), list):
        raise ExportError(f"--into {config_path}: not an rnnserve config (no \"models\" list)")
    names = [m.get("name") for m in cfg["models"] if isinstance(m, dict)]
    if entry["name"] in names:
        raise ExportError(f"--into {config_path}: it already has a model named "
                          f"{entry['name']!r} (pass --name)")
    base = os.path.dirname(os.path.abspath(config_path))
    entry = dict(entry, weights=os.path.relpath(
        os.path.abspath(os.path.join(out_dir, "model.safetensors")), base))
    cfg["models"].append(entry)
    tmp = f"{config_path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, config_path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ExportError(f"--into {config_path}: cannot write it ({e})") from None


# ---------------------------------------------------------------- verifying

def _random_request(spec, seed, embedding=None):
    """A ragged batch of 5 sequences (lengths 1..13, one of each extreme) with random inputs and
    random h0 (and c0 for LSTM), as Python floats that are exact float32 values. With an
    EMBEDDING, the request sends random token ids and the sequences are their embedded rows."""
    g = torch.Generator().manual_seed(seed)
    r = random.Random(seed)
    lengths = [1, 13] + [r.randint(1, 13) for _ in range(3)]
    r.shuffle(lengths)
    rows = spec["num_layers"] * (2 if spec["bidirectional"] else 1)
    H, I = spec["hidden_size"], spec["input_size"]

    def rand(*shape):
        return (torch.rand(*shape, generator=g) * 2 - 1).to(torch.float32)

    if embedding is not None:
        table = embedding[1].to(torch.float32)
        ids = [torch.randint(0, table.shape[0], (T,), generator=g) for T in lengths]
        seqs = [table[t] for t in ids]
        req = {"tokens": [t.tolist() for t in ids]}
    else:
        seqs = [rand(T, I) for T in lengths]
        req = {"inputs": [s.tolist() for s in seqs]}
    h0 = [rand(rows, H) for _ in lengths]
    c0 = [rand(rows, H) for _ in lengths] if spec["type"] == "lstm" else None
    req["h0"] = [h.tolist() for h in h0]
    if c0 is not None:
        req["c0"] = [c.tolist() for c in c0]
    return req, seqs, h0, c0


def _torch_reference(rnn, seqs, h0, c0):
    """PyTorch's answer, each sequence run alone (batch of one, no padding), in float32."""
    ref = copy.deepcopy(rnn).cpu().to(torch.float32).eval()
    bf = ref.batch_first
    outs, hids, cells = [], [], []
    with torch.no_grad():
        for i, x in enumerate(seqs):
            xb = x.unsqueeze(0) if bf else x.unsqueeze(1)
            h = h0[i].unsqueeze(1)
            y, st = ref(xb, (h, c0[i].unsqueeze(1)) if c0 is not None else h)
            hn, cn = st if c0 is not None else (st, None)
            outs.append(y[0] if bf else y[:, 0])
            hids.append(hn[:, 0])
            if cn is not None:
                cells.append(cn[:, 0])
    return outs, hids, cells


HEAD_ACT = {"none": lambda y: y, "sigmoid": torch.sigmoid,
            "softmax": lambda y: torch.softmax(y, -1)}


def verify(rnn, spec, config_path, rnnserve=None, tol=1e-5, seed=0, log=print, head=None,
           activation="none", embedding=None):
    """Runs `rnnserve forward --config CONFIG_PATH` on a random ragged batch and compares every
    number with PyTorch. Returns the max abs diff; raises ExportError when rnnserve fails, the
    shapes differ, or the diff exceeds TOL."""
    rnnserve = rnnserve or os.environ.get("RNNSERVE") or DEFAULT_RNNSERVE
    if not (os.path.isfile(rnnserve) and os.access(rnnserve, os.X_OK)):
        raise ExportError(f"{rnnserve} not found: run `make` in the rnnserve repository, or pass "
                          "--rnnserve PATH (or --no-verify to skip the check)")
    req, seqs, h0, c0 = _random_request(spec, seed, embedding)
    p = subprocess.run([rnnserve, "forward", "--config", config_path],
                       input=json.dumps(req).encode(), capture_output=True, timeout=120)
    if p.returncode != 0:
        raise ExportError(f"{rnnserve} forward exited {p.returncode}: "
                          f"{(p.stdout + p.stderr).decode(errors='replace').strip()}")
    got = json.loads(p.stdout)
    want = list(_torch_reference(rnn, seqs, h0, c0))
    worst = 0.0
    parts = ["outputs", "hidden"] + (["cell"] if c0 is not None else [])
    if head is not None:
        _, w, b = head
        w = w.to(torch.float32)
        preds = [HEAD_ACT[activation](o @ w.T + (b.to(torch.float32) if b is not None else 0))
                 for o in want[0]]
        if c0 is None:
            want.append([])
        want.append(preds)
        parts = ["outputs", "hidden", "cell", "predictions"]
        if c0 is None:
            parts.remove("cell")
            want.pop(2)
    for part, ref in zip(parts, want):
        for i, t in enumerate(ref):
            g = torch.tensor(got[part][i], dtype=torch.float64)
            if tuple(g.shape) != tuple(t.shape) and not (t.numel() == 0 and g.numel() == 0):
                raise ExportError(f"{part}[{i}]: rnnserve answered shape {list(g.shape)}, "
                                  f"PyTorch {list(t.shape)}")
            if t.numel():
                worst = max(worst, (g - t.to(torch.float64)).abs().max().item())
    lengths = [len(s) for s in seqs]
    log(f"verified: rnnserve vs PyTorch on {len(seqs)} sequences of lengths {lengths}"
        f"{' (token ids)' if embedding is not None else ''} with "
        f"random h0{'/c0' if c0 is not None else ''}"
        f"{', head predictions' if head is not None else ''}: max abs diff {worst:.3g} "
        f"(tol {tol:g})")
    if not worst <= tol:
        raise ExportError(f"max abs diff {worst:.3g} exceeds tol {tol:g}: the export does not "
                          "match PyTorch")
    return worst


# ---------------------------------------------------------------- the whole thing

def export(model, out_dir, name=None, prefix=None, rnnserve=None, tol=1e-5, seed=0,
           verify_export=True, write=True, log=print, head_activation="none", no_head=False,
           no_embedding=False, into=None):
    """Exports MODEL (an nn.RNN/LSTM/GRU, or a module containing one, with its output head and
    its input embedding when it has them) to the model directory OUT_DIR and verifies it with
    rnnserve; INTO names an existing config to add the model to as well. Logs a line for every
    layer left out. Returns the max abs diff (None without verifying). With WRITE false, only
    verifies an existing OUT_DIR. Raises ExportError."""
    p, rnn = find_rnn(model, prefix)
    spec = spec_from_module(rnn)
    width = spec["hidden_size"] * (2 if spec["bidirectional"] else 1)
    head = None if no_head else find_head(heads_in_module(model, p), width)
    emb = None if no_embedding else find_embedding(embeddings_in_module(model),
                                                   spec["input_size"])
    for line in leftovers_in_module(model, p, head, emb)[0]:
        log(line)
    return _export_rnn(rnn, p, spec, out_dir, name, rnnserve, tol, seed, verify_export, write, log,
                       head, head_activation, emb, into)


def _export_rnn(rnn, prefix, spec, out_dir, name, rnnserve, tol, seed, verify_export, write, log,
                head=None, activation="none", embedding=None, into=None):
    name = name or os.path.basename(os.path.normpath(out_dir))
    if not NAME_RE.match(name):
        raise ExportError(f"model name {name!r}: use only A-Z a-z 0-9 . _ - (pass --name)")
    desc = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "type")
    where = f" at prefix {prefix!r}" if prefix else ""
    config_path = os.path.join(out_dir, "config.json")
    if write:
        entry = write_model_dir(rnn, spec, out_dir, name, head, activation, embedding)
        log(f"wrote {config_path} and model.safetensors: {spec['type']}{where} ({desc})"
            + (f", embedding {embedding[0]} {list(embedding[1].shape)}" if embedding else "")
            + (f", head {head[0]}weight {list(head[1].shape)} + {activation}" if head else ""))
    elif not os.path.isfile(config_path):
        raise ExportError(f"{config_path} does not exist (nothing to verify)")
    diff = None
    if verify_export:
        diff = verify(rnn, spec, config_path, rnnserve, tol, seed, log, head, activation,
                      embedding)
    if into and write:
        add_into(into, entry, out_dir)
        log(f"added model {name!r} to {into}")
    return diff


def _load_source(path):
    """torch.load PATH: returns ("module", module) or ("state_dict", dict)."""
    try:
        obj = torch.load(path, map_location="cpu")
    except (AttributeError, ModuleNotFoundError) as e:
        raise ExportError(f"{path}: cannot unpickle ({e}); a saved module needs its class "
                          "importable: run from your project or set PYTHONPATH") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds
        raise ExportError(f"{path}: not a file torch.load can read ({e})") from None
    if isinstance(obj, nn.Module):
        return "module", obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return "state_dict", obj
    raise ExportError(f"{path}: holds a {type(obj).__name__}, not a module or a state_dict")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="export_torch.py", description="Export a PyTorch RNN to an rnnserve model directory "
        "and verify it against PyTorch.", epilog="See the module docstring for details.")
    ap.add_argument("source", help="a file made by torch.save (a module or a state_dict)")
    ap.add_argument("-o", "--output", required=True, help="the model directory to write")
    ap.add_argument("--name")
    ap.add_argument("--prefix")
    ap.add_argument("--type", choices=sorted(MODULES))
    ap.add_argument("--input-size", type=int)
    ap.add_argument("--hidden-size", type=int)
    ap.add_argument("--num-layers", type=int)
    ap.add_argument("--bidirectional", action="store_const", const=True)
    ap.add_argument("--no-bias", dest="bias", action="store_const", const=False)
    ap.add_argument("--nonlinearity", choices=["tanh", "relu"])
    ap.add_argument("--rnnserve")
    ap.add_argument("--head-activation", choices=sorted(HEAD_ACT), default="none")
    ap.add_argument("--no-head", action="store_true")
    ap.add_argument("--no-embedding", action="store_true")
    ap.add_argument("--into", metavar="CONFIG")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--verify-only", action="store_true")
    a = ap.parse_args(argv)
    if a.no_verify and a.verify_only:
        ap.error("--no-verify and --verify-only exclude each other")
    if a.into and a.verify_only:
        ap.error("--into and --verify-only exclude each other")
    torch.set_num_threads(1)
    hyper = {"type": a.type, "input_size": a.input_size, "hidden_size": a.hidden_size,
             "num_layers": a.num_layers, "bidirectional": a.bidirectional, "bias": a.bias,
             "nonlinearity": a.nonlinearity}
    try:
        kind, obj = _load_source(a.source)
        if kind == "module":
            given = [f"--{k.replace('_', '-')}" for k, v in hyper.items() if v is not None]
            if given:
                raise ExportError(f"{a.source} holds a module, which knows its hyperparameters: "
                                  f"drop {' '.join(given)}")
            prefix, rnn = find_rnn(obj, a.prefix)
            spec = spec_from_module(rnn)
            heads = heads_in_module(obj, prefix)
        else:
            prefix, spec = spec_from_state_dict(obj, a.prefix, hyper)
            rnn = module_from_state_dict(obj, prefix, spec)
            heads = heads_in_state_dict(obj, prefix)
        width = spec["hidden_size"] * (2 if spec["bidirectional"] else 1)
        head = None if a.no_head else find_head(heads, width)
        if kind == "module":
            embs = embeddings_in_module(obj)
        else:
            embs = embeddings_in_state_dict(obj, prefix, head)
        emb = None if a.no_embedding else find_embedding(embs, spec["input_size"])
        leftovers = (leftovers_in_module if kind == "module" else leftovers_in_state_dict)
        for line in leftovers(obj, prefix, head, emb)[0]:
            print(line)
        _export_rnn(rnn, prefix, spec, a.output, a.name, a.rnnserve, a.tol, a.seed,
                    not a.no_verify, not a.verify_only, print, head, a.head_activation, emb,
                    a.into)
    except ExportError as e:
        print(f"export_torch: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
