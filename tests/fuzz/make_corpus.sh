#!/bin/sh
# make_corpus.sh - (re)writes the seed corpora in tests/fuzz/corpus/<target>/ from real requests,
# configs and weight files (tests/fixtures/cases/*, config/) plus one example of each kind of
# bad input the server documents, so that fuzzing starts from every path rather than from
# nothing. The output is committed; rerun after adding fixtures. Run from the repo root.
# usage: sh tests/fuzz/make_corpus.sh
set -e
C=tests/fuzz/corpus
rm -rf "$C"
mkdir -p "$C/codec" "$C/config" "$C/safetensors" "$C/http" "$C/inflate" "$C/deflate"

# A file named $1 holding the rest of the arguments, printf-interpreted (\r, \n, \NNN octal).
put() {
    f=$1
    shift
    printf "$@" >"$f"
}

# ---- codec: request bodies ---------------------------------------------------------------
for d in tests/fixtures/cases/*/; do
    n=$(basename "$d")
    [ -f "$d/request.json" ] && cp "$d/request.json" "$C/codec/case-$n.json"
done
cp config/default.request.json "$C/codec/default.json"
X=$C/codec
put "$X/bare-steps.json" '{"inputs": [[0.0, 0.1411, -0.2794], [0.5], []]}'
put "$X/h0-c0-return-precision.json" '{"inputs": [[[1,2,3]], []], "h0": [[[0,0,0,0],[1,1,1,1],[2,2,2,2],[3,3,3,3]], [[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0]]], "c0": null, "return": ["hidden", "cell"], "precision": 3}'
put "$X/null-h0.json" '{"inputs": [[[0.5, -1e-3, 3e5]]], "h0": null}'
put "$X/extremes.json" '{"inputs": [[[3.4028235e38, -3.4028235e38, 1.4e-45], [1e-50, -0.0, 123456789012345678901234]]]}'
put "$X/bad-overflow.json" '{"inputs": [[[1e39, 0, 0]]]}'
put "$X/bad-width.json" '{"inputs": [[[1, 2]]]}'
put "$X/bad-type-step.json" '{"inputs": [[["1", 2, 3]]]}'
put "$X/bad-type-seq.json" '{"inputs": [{"a": 1}]}'
put "$X/bad-type-inputs.json" '{"inputs": "x"}'
put "$X/bad-type-root.json" '[[[1, 2, 3]]]'
put "$X/bad-empty-batch.json" '{"inputs": []}'
put "$X/bad-duplicate.json" '{"inputs": [[[1,2,3]]], "inputs": [[[1,2,3]]]}'
put "$X/bad-unknown-field.json" '{"inputs": [[[1,2,3]]], "input": 1}'
put "$X/bad-return.json" '{"inputs": [[[1,2,3]]], "return": ["outputs", "nope", 3]}'
put "$X/bad-precision.json" '{"inputs": [[[1,2,3]]], "precision": 10.5}'
put "$X/bad-truncated.json" '{"inputs": [[[1,2,3]], [[4,'
put "$X/bad-utf8.json" '{"inputs": [[[1,2,3]]], "\377\376": 1}'
put "$X/bad-surrogate.json" '{"inputs": [[[1,2,3]]], "\\ud800": 1}'
put "$X/bad-nul.json" '{"inputs": [[[1,2,3]]]}\000'
put "$X/bad-deep.json" '{"inputs": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}'
put "$X/bad-over-batch.json" '{"inputs": [[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]]}'
put "$X/empty.json" ''
# The same requests as the Open Inference Protocol writes them (api_forward, v2).
put "$X/v2-lstm.json" '{"id": "1", "inputs": [{"name": "input", "shape": [2, 2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 0.5, 0.25, 0, 0, 0, 0]}, {"name": "lengths", "shape": [2], "datatype": "INT64", "data": [2, 1]}], "outputs": [{"name": "output"}, {"name": "h_n"}]}'
put "$X/v2-h0.json" '{"inputs": [{"name": "input", "shape": [1, 1, 3], "datatype": "FP32", "data": [[[1, 2, 3]]]}, {"name": "h0", "shape": [1, 1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}'
put "$X/v2-bad-shape.json" '{"inputs": [{"name": "input", "shape": [1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'

# ---- config: config files ----------------------------------------------------------------
for d in tests/fixtures/cases/*/; do
    n=$(basename "$d")
    cp "$d/config.json" "$C/config/case-$n.json"
done
cp config/default.json "$C/config/default.json"
X=$C/config
put "$X/server-all.json" '{"server": {"host": "127.0.0.1", "port": 0, "threads": 2, "max_body_bytes": 1048576, "max_batch": 64, "max_steps": 1000, "timeout_s": 5, "max_connections": 100, "cors_origins": ["http://a.example", "http://b.example"], "playground": false, "admin_token": "0123456789abcdef0123", "api_keys": ["k1", "k2"]}, "models": [{"name": "m", "type": "gru", "input_size": 1, "hidden_size": 1, "weights": {"weight_ih_l0": [[0.1], [0.2], [0.3]], "weight_hh_l0": [[0.1], [0.2], [0.3]], "bias_ih_l0": [0, 0, 0], "bias_hh_l0": [0, 0, 0]}}]}'
put "$X/two-models-inline.json" '{"models": [{"name": "a", "type": "rnn", "input_size": 1, "hidden_size": 1, "nonlinearity": "relu", "bias": false, "weights": {"weight_ih_l0": [[2]], "weight_hh_l0": [[0.5]]}}, {"name": "b", "type": "lstm", "input_size": 1, "hidden_size": 1, "num_layers": 1, "bidirectional": true, "prefix": "rnn.", "weights": {"rnn.weight_ih_l0": [[1],[1],[1],[1]], "rnn.weight_hh_l0": [[1],[1],[1],[1]], "rnn.bias_ih_l0": [0,0,0,0], "rnn.bias_hh_l0": [0,0,0,0], "rnn.weight_ih_l0_reverse": [[1],[1],[1],[1]], "rnn.weight_hh_l0_reverse": [[1],[1],[1],[1]], "rnn.bias_ih_l0_reverse": [0,0,0,0], "rnn.bias_hh_l0_reverse": [0,0,0,0]}}]}'
put "$X/bad-typo.json" '{"models": [{"name": "m", "type": "rnn", "input_size": 1, "hiden_size": 4, "weights": "w.safetensors"}]}'
put "$X/bad-range.json" '{"server": {"port": 70000}, "models": [{"name": "m", "type": "rnn", "input_size": 0, "hidden_size": 4, "weights": "w.safetensors"}]}'
put "$X/bad-shape.json" '{"models": [{"name": "m", "type": "rnn", "input_size": 2, "hidden_size": 1, "weights": {"weight_ih_l0": [[1]], "weight_hh_l0": [[1], [2]], "bias_ih_l0": [1e39], "bias_hh_l0": 1}}]}'
put "$X/bad-duplicate-name.json" '{"models": [{"name": "m", "type": "rnn", "input_size": 1, "hidden_size": 1, "weights": "a"}, {"name": "m", "type": "gru", "input_size": 1, "hidden_size": 1, "weights": "b"}]}'
put "$X/bad-json.json" '{"models": [{"name": "m",,}]}'

# ---- safetensors: weight files -----------------------------------------------------------
for d in tests/fixtures/cases/*/; do
    n=$(basename "$d")
    [ -f "$d/model.safetensors" ] && cp "$d/model.safetensors" "$C/safetensors/case-$n.safetensors"
done
cp config/sine.safetensors "$C/safetensors/sine.safetensors"
X=$C/safetensors
# A header that lies: an offset past the end of the data.
put "$X/bad-offset.safetensors" '\104\000\000\000\000\000\000\000{"weight_ih_l0":{"dtype":"F32","shape":[4,1],"data_offsets":[0,99]}}\000\000\000\000'
put "$X/bad-truncated.safetensors" '\377\377\377\377\000\000\000\000{"'

# ---- http: raw client bytes ----------------------------------------------------------------
X=$C/http
body=$(cat "$C/codec/default.json" | tr -d '\n')
len=$(printf '%s' "$body" | wc -c)
post() { # name path body [extra header lines]
    n=$1 p=$2 b=$3 h=${4:-}
    l=$(printf '%s' "$b" | wc -c)
    printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%bContent-Length: %d\r\n\r\n%s' \
        "$p" "$h" "$l" "$b" >"$X/$n.http"
}
post forward /forward "$body"
post forward-named /v1/models/sine/forward '{"inputs": [[0.0, 0.1411, -0.2794], [0.5], []], "return": ["hidden"], "precision": 4}'
post forward-pool /v1/models/big/forward '{"inputs": [[[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8],[0,0,0,0,0,0,0,1]],[[1,1,1,1,1,1,1,1]]]}'
post forward-bad-width /forward '{"inputs": [[[0.0, 1.0]]]}'
post forward-unknown-model /v1/models/nope/forward "$body"
post forward-origin /forward "$body" 'Origin: http://a.example\r\n'
post v2-infer /v2/models/sine/infer '{"inputs": [{"name": "input", "shape": [1, 3, 1], "datatype": "FP32", "data": [0, 0.1411, -0.2794]}]}'
post admin-reload /v1/admin/reload '' 'Authorization: Bearer fuzz-admin-token-0123456789\r\n'
post admin-noauth /v1/admin/reload ''
for p in / /healthz /readyz /metrics /v1/models /v1/models/sine /v1/models/big /v2/health/live \
    /v2/health/ready /v2/models/sine /v2/models/big/ready /nope /forward; do
    n=$(printf '%s' "get$p" | tr '/' '-')
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$p" >"$X/$n.http"
done
put "$X/head-models.http" 'HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n'
put "$X/options.http" 'OPTIONS /forward HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n'
put "$X/delete-405.http" 'DELETE /forward HTTP/1.1\r\nHost: x\r\n\r\n'
put "$X/http10.http" 'GET /healthz HTTP/1.0\r\n\r\n'
put "$X/chunked.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' "$len" "$body"
put "$X/chunked-ext-trailer.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10;a=b\r\n{"inputs": [[0.\r\n7\r\n5]]}   \r\n0\r\nX-Trailer: 1\r\n\r\n'
put "$X/expect-100.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n%s' "$len" "$body"
put "$X/pipelined.http" 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$len" "$body"
put "$X/early-413.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{"inputs":'
put "$X/huge-content-length.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n'
put "$X/bad-content-length.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'
put "$X/bad-chunk-size.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'
put "$X/bad-version.http" 'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n'
put "$X/bad-header.http" 'GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n'
put "$X/truncated-body.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"inputs": [['
# Framing a proxy could read otherwise (refused before the body, connection closed).
put "$X/smuggle-two-lengths.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n'
put "$X/smuggle-length-and-chunked.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n'
put "$X/smuggle-coding.http" 'POST /v2/models/sine/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'
put "$X/half-close-chunked.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"inputs": '
put "$X/half-close-headers.http" 'POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n'
# A query of thousands of arguments, and a request pipelined behind it: both answered.
{
    printf 'GET /healthz?'
    i=0
    while [ $i -lt 3000 ]; do
        printf 'a&'
        i=$((i + 1))
    done
    printf 'b=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n'
} >"$X/query-flood-pipelined.http"
# Over max_body_bytes (64 KiB in the harness), chunked: read to the end, then 413.
{
    printf 'POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
    i=0
    while [ $i -lt 17 ]; do
        printf '1000\r\n%4096s\r\n' ' '
        i=$((i + 1))
    done
    printf '0\r\n\r\n'
} >"$X/chunked-over-limit.http"
# ---- inflate: compressed request bodies ----------------------------------------------------
# Byte 0 picks the coding (0 gzip, 1 deflate), byte 1 seeds the chunk sizes (fuzz_inflate.c).
# Encoded by Python's zlib, an encoder other than the one under test.
python3 - "$C/inflate" "$C/codec/default.json" <<'PY'
import sys, zlib
out, src = sys.argv[1], open(sys.argv[2], "rb").read()
def z(data, wbits, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()
gz, zl, raw = z(src, 31), z(src, 15), z(src, -15)
seeds = {
    "gzip": (0, gz), "zlib": (1, zl), "raw": (1, raw),
    "gzip-stored": (0, z(src, 31, 0)), "raw-best": (1, z(src * 3, -15, 9)),
    "gzip-members": (0, gz + z(b"[1, 2]", 31) + gz),
    "gzip-empty": (0, z(b"", 31)), "zlib-empty": (1, z(b"", 15)), "raw-empty": (1, b"\3\0"),
    "gzip-bomb": (0, z(bytes(1 << 20), 31, 9)), "zlib-bomb": (1, z(bytes(1 << 20), 15, 9)),
    "gzip-truncated": (0, gz[:-5]), "zlib-truncated": (1, zl[: len(zl) // 2]),
    "gzip-trailing": (0, gz + b"xyz"), "zlib-trailing": (1, zl + b"\0"),
    "gzip-bad-crc": (0, gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:]),
    "zlib-fdict": (1, b"\x78\xbb\0\0\0\1\3\0"), "not-gzip": (0, src),
}
# FEXTRA, FNAME, FCOMMENT and FHCRC set: header fields zlib must skip, and a header CRC to check
h = b"\x1f\x8b\x08\x1e\0\0\0\0\0\3\4\0ab\0\0name\0comment\0"
h += (zlib.crc32(h) & 0xFFFF).to_bytes(2, "little")
seeds["gzip-header-fields"] = (0, h + raw + gz[-8:])
for name, (mode, body) in seeds.items():
    with open(f"{out}/{name}.bin", "wb") as f:
        f.write(bytes([mode, 7]) + body)
PY
# ---- deflate: response bodies for the literal-only encoder -------------------------------------
# Byte 0: bit 0 the coding (0 gzip, 1 deflate), bit 1 repeats the body past CZ_HUFFMAN_FROM for
# cz_compress (fuzz_deflate.c); the rest is the body: float JSON as the server writes it, every
# byte value, one byte value, text with long-code outliers.
python3 - "$C/deflate" <<'PY'
import random, sys
out = sys.argv[1]
rng = random.Random(7)
floats = ("[[" + ",".join(f"{rng.uniform(-1, 1):.9g}" for _ in range(300)) + "]]").encode()
seeds = {
    "floats-gzip": (0, floats), "floats-zlib": (1, floats), "floats-big-gzip": (2, floats[:700]),
    "floats-big-zlib": (3, floats[:500]), "all-bytes": (0, bytes(range(256)) * 3),
    "one-byte": (1, b"7" * 2000), "one-byte-big": (2, b"\0"), "empty": (0, b""),
    "outliers": (3, b"0123456789" * 200 + bytes([0, 255, 128]) + b"9876543210" * 100),
}
for name, (mode, body) in seeds.items():
    with open(f"{out}/{name}.bin", "wb") as f:
        f.write(bytes([mode]) + body)
PY
# ---- binary: the binary tensor data extension's framing on /v2 -------------------------------
# Byte 0: bit 0 the model (0: lstm I=2 H=3 bidirectional, 1: gru I=1 H=4 2 layers), bit 1 no
# header, bit 2 the header's value as text in bytes 1..8; else bytes 1-2 are the header length
# (fuzz_binary.c). Bodies framed as tritonclient.http frames them (compact JSON, then tobytes()).
mkdir -p "$C/binary"
python3 - "$C/binary" <<'PY'
import json, struct, sys
out = sys.argv[1]
def tensor(name, shape, dt, data=None, size=None):
    t = {"name": name, "shape": shape, "datatype": dt}
    if size is not None:
        t["parameters"] = {"binary_data_size": size}
    if data is not None:
        t["data"] = data
    return t
def req(inputs, outputs=None, params=None):
    r = {"inputs": inputs}
    if outputs:
        r["outputs"] = outputs
    if params:
        r["parameters"] = params
    return json.dumps(r, separators=(",", ":")).encode()
def f32(v): return struct.pack("<%df" % len(v), *v)
def i64(v): return struct.pack("<%dq" % len(v), *v)
def i32(v): return struct.pack("<%di" % len(v), *v)
x = [0.1 * i for i in range(12)]  # [2, 3, 2]
seeds = {}
def framed(name, model, header, binary, hlen=None):
    n = len(header) if hlen is None else hlen
    seeds[name] = bytes([model]) + struct.pack("<H", n) + header + binary
framed("client-default", 0, req([tensor("input", [2, 3, 2], "FP32", size=48),
       tensor("lengths", [2], "INT64", size=16)], params={"binary_data_output": True}),
       f32(x) + i64([3, 1]))
framed("client-outputs", 0, req([tensor("input", [2, 3, 2], "FP32", size=48),
       tensor("lengths", [2], "INT32", size=8)],
       outputs=[{"name": "output", "parameters": {"binary_data": True}},
                {"name": "h_n", "parameters": {"binary_data": False}}]), f32(x) + i32([2, 3]))
framed("states", 0, req([tensor("input", [1, 3, 2], "FP32", size=24),
       tensor("h0", [2, 1, 3], "FP32", size=24), tensor("c0", [2, 1, 3], "FP32", size=24)],
       params={"binary_data_output": True}), f32(x[:6]) + f32(x[:6]) + f32(x[6:]))
framed("mixed", 0, req([tensor("lengths", [2], "INT64", data=[1, 2]),
       tensor("input", [2, 3, 2], "FP32", size=48)]), f32(x))
framed("gru", 1, req([tensor("input", [3, 2, 1], "FP32", size=24)],
       params={"binary_data_output": True}), f32(x[:6]))
framed("short", 0, req([tensor("input", [2, 3, 2], "FP32", size=48)]), f32(x)[:40])
framed("long", 0, req([tensor("input", [2, 3, 2], "FP32", size=48)]), f32(x) + b"\0" * 8)
framed("not-multiple", 0, req([tensor("input", [2, 3, 2], "FP32", size=47)]), f32(x)[:47])
framed("shape-count", 0, req([tensor("input", [2, 2, 2], "FP32", size=48)]), f32(x))
framed("data-and-size", 0, req([tensor("input", [1, 1, 2], "FP32", data=[1, 2], size=8)]), f32(x[:2]))
framed("fp64", 0, req([tensor("input", [1, 1, 2], "FP64", size=16)]), struct.pack("<2d", 1, 2))
framed("header-past-body", 0, req([tensor("input", [1, 1, 2], "FP32", size=8)]), f32(x[:2]), 4000)
framed("header-zero", 0, b"", f32(x), 0)
seeds["no-header"] = bytes([2, 0, 0]) + req([tensor("input", [1, 1, 2], "FP32", data=[1, 2])])
seeds["header-text"] = bytes([4]) + b"99      " + req([tensor("input", [1, 1, 2], "FP32", size=8)]) + f32(x[:2])
seeds["header-text-bad"] = bytes([4]) + b"-12x" + b"{}"
for name, body in seeds.items():
    with open(f"{out}/{name}.bin", "wb") as f:
        f.write(body)
PY
echo "make_corpus: $(find "$C" -type f | wc -l) seed files in $C"
