"""rnnserve_st - a minimal safetensors writer and reader for rnnserve's Python tools.

This module owns the on-disk safetensors format on the Python side of rnnserve: the test fixture
generator (tests/fixtures/gen.py), the default-model maker (tools/make_default_model.py) and any
exporter import it instead of the `safetensors` package, which is not a dependency. It uses only
torch and the standard library.

Format written (see shared/reference/safetensors.md, huggingface/safetensors README "Format"):

    [8 bytes]  N, unsigned 64-bit little-endian: the header length
    [N bytes]  UTF-8 JSON header, padded with trailing spaces so that N is a multiple of 8
    [rest]     the tensor bytes, little-endian, C (row-major) order, contiguous, no holes

The header maps each tensor name to {"dtype", "shape", "data_offsets": [BEGIN, END]}, offsets
relative to the start of the byte buffer. An optional "__metadata__" entry (a str -> str map)
comes first. Tensors are laid out in the order the caller's dict gives them (unlike the Rust
writer, which sorts by alignment then name), so the output is fully determined by the input.
When every tensor has the same dtype (always true when `dtype=` is passed) each tensor starts at a
multiple of its element size, because the data section starts 8-aligned.

Supported dtypes are the ones rnnserve accepts: F32, F64, F16 and BF16.

    save_safetensors(path, tensors, metadata=None, dtype=None)
    load_safetensors(path) -> dict[str, torch.Tensor]
    load_safetensors_metadata(path) -> dict[str, str] | None
"""

import ctypes
import json
import struct
import sys

import torch

__all__ = ["DTYPES", "save_safetensors", "load_safetensors", "load_safetensors_metadata"]

# safetensors dtype string <-> torch dtype, for the dtypes rnnserve accepts.
DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}
_NAMES = {v: k for k, v in DTYPES.items()}

# The reference reader's cap on the header length (safetensors MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000


def _le_bytes(t):
    """Returns the little-endian row-major bytes of CPU tensor T (any supported dtype)."""
    t = t.detach().contiguous()
    n = t.numel() * t.element_size()
    if n == 0:
        return b""
    if sys.byteorder != "little" and t.element_size() > 1:
        u8 = t.reshape(-1).view(torch.uint8).reshape(-1, t.element_size()).flip(-1).contiguous()
        return ctypes.string_at(u8.data_ptr(), n)
    return ctypes.string_at(t.data_ptr(), n)


def save_safetensors(path, tensors, metadata=None, dtype=None):
    """Writes TENSORS (a dict name -> torch.Tensor, e.g. a state_dict) to PATH as safetensors.

    Tensors are stored in the dict's order, each with the safetensors dtype of its torch dtype
    (float32 -> F32, float64 -> F64, float16 -> F16, bfloat16 -> BF16; anything else raises
    ValueError). If DTYPE is given (a torch dtype or one of "F32", "F64", "F16", "BF16"), every
    tensor is first cast to it (round-to-nearest-even, as Tensor.to does). METADATA, if not None,
    must be a dict of str -> str and is written as "__metadata__" (e.g. {"format": "pt"}).
    Tensors are detached and moved to the CPU; views and non-contiguous tensors are fine (they
    are copied), and tensors sharing storage are each written out in full.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unsupported safetensors dtype {dtype!r}")
        dtype = DTYPES[dtype]
    if dtype is not None and dtype not in _NAMES:
        raise ValueError(f"unsupported dtype {dtype}")

    header = {}
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValueError("metadata must be a dict of str -> str")
        header["__metadata__"] = dict(metadata)

    chunks = []
    offset = 0
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: not a torch.Tensor")
        t = t.detach().cpu()
        if dtype is not None:
            t = t.to(dtype)
        if t.dtype not in _NAMES:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        data = _le_bytes(t)
        header[name] = {
            "dtype": _NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)

    hdr = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for c in chunks:
            f.write(c)


def _read(path):
    """Parses PATH, enforcing the reference reader's rules; returns (header dict, data bytes)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: header too small")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_SIZE:
        raise ValueError(f"{path}: header too large ({n} bytes)")
    if 8 + n > len(buf):
        raise ValueError(f"{path}: invalid header length {n} for a {len(buf)}-byte file")

    def no_dups(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise ValueError(f"{path}: duplicate key {k!r} in header")
            d[k] = v
        return d

    header = json.loads(buf[8 : 8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    return header, memoryview(buf)[8 + n :]


def load_safetensors(path):
    """Reads a safetensors file written by anyone; returns {name: tensor} in header order.

    Only F32, F64, F16 and BF16 tensors are accepted. Validates what the reference reader does:
    known dtype, offsets matching shape*dtype size, offsets contiguous from 0 with no gaps or
    overlaps, and the data section exactly covered. Tensors keep their stored dtype (call
    .float() to get what rnnserve computes with). "__metadata__" is skipped; see
    load_safetensors_metadata.
    """
    header, data = _read(path)
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info.get("dtype")
        if dt not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r}: unsupported dtype {dt!r}")
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise ValueError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)
                and 0 <= offs[0] <= offs[1]):
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets {offs!r}")
        count = 1
        for s in shape:
            count *= s
        size = torch.empty((), dtype=DTYPES[dt]).element_size()
        if offs[1] - offs[0] != count * size:
            raise ValueError(
                f"{path}: tensor {name!r}: data_offsets {offs} but shape {shape} {dt} "
                f"needs {count * size} bytes"
            )
        spans.append((offs[0], offs[1], name, dt, shape, count))

    end = 0
    for b, e, name, *_ in sorted(spans):
        if b != end:
            raise ValueError(f"{path}: invalid offset for tensor {name!r}")
        end = e
    if end != len(data):
        raise ValueError(f"{path}: incomplete metadata, file not fully covered")

    out = {}
    for b, e, name, dt, shape, count in spans:
        if count == 0:
            out[name] = torch.empty(shape, dtype=DTYPES[dt])
            continue
        raw = bytearray(data[b:e])
        t = torch.frombuffer(raw, dtype=DTYPES[dt], count=count)
        if sys.byteorder != "little" and t.element_size() > 1:
            esz = t.element_size()
            u8 = torch.frombuffer(raw, dtype=torch.uint8).reshape(-1, esz).flip(-1).contiguous()
            t = u8.reshape(-1).view(DTYPES[dt])
        out[name] = t.reshape(shape).clone()
    return out


def load_safetensors_metadata(path):
    """Returns the "__metadata__" map of PATH (a dict of str -> str), or None if absent."""
    header, _ = _read(path)
    meta = header.get("__metadata__")
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise ValueError(f"{path}: __metadata__ must be a map of strings")
    return meta
