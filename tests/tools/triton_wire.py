#!/usr/bin/python3
"""triton_wire.py - rnnserve's /v2 routes as NVIDIA's Python client (tritonclient.http) speaks to
them, judged against PyTorch.

Usage: /usr/bin/python3 tests/tools/triton_wire.py    (from the repo root, after make; needs
numpy and torch; tests/triton_wire_test.sh runs it). Prints one line per check; exit 1 when any
fails.

tritonclient cannot be installed here (no PyPI), so the few functions of its HTTP client that
shape the bytes on the wire are reproduced from its source (triton-inference-server/client,
src/python/library/tritonclient/http/): InferInput (_infer_input.py: set_data_from_numpy with
binary_data=True by default, _get_tensor), InferRequestedOutput (_requested_output.py),
_get_inference_request (_utils.py: the compact JSON header, binary_data_output when no outputs
are named, the inputs' raw bytes after it), InferenceServerClient.infer's headers (_client.py:
Inference-Header-Content-Length, Content-Encoding and Accept-Encoding for
request_compression_algorithm / response_compression_algorithm, the body gzip.compress'ed or
zlib.compress'ed), and InferResult (_infer_result.py: decompressing by Content-Encoding, then
splitting the header from the binary outputs by Inference-Header-Content-Length and the outputs'
binary_data_size). A served LSTM's answers are compared with torch.nn.LSTM's in every mode.
"""

import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, "tools")
from rnnserve_st import save_safetensors  # noqa: E402

failed = 0


def expect(cond, msg, detail=""):
    global failed
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failed += 1
        if detail:
            print("     | " + str(detail).strip()[:2000].replace("\n", "\n     | "))


# ---------------------------------------------------------------- tritonclient.http, as it is

NP_TO_TRITON = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
                np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64"}
TRITON_TO_NP = {v: k for k, v in NP_TO_TRITON.items()}


class InferInput:
    """_infer_input.py's InferInput, for numpy's numeric types."""

    def __init__(self, name, shape, datatype):
        self._name, self._shape, self._datatype = name, shape, datatype
        self._parameters, self._data, self._raw_data = {}, None, None

    def set_data_from_numpy(self, input_tensor, binary_data=True):
        assert NP_TO_TRITON[input_tensor.dtype] == self._datatype
        assert list(input_tensor.shape) == list(self._shape)
        if not binary_data:
            self._parameters.pop("binary_data_size", None)
            self._raw_data = None
            self._data = [val.item() for val in input_tensor.flatten()]
        else:
            self._data = None
            self._raw_data = input_tensor.tobytes()
            self._parameters["binary_data_size"] = len(self._raw_data)
        return self

    def _get_binary_data(self):
        return self._raw_data

    def _get_tensor(self):
        tensor = {"name": self._name, "shape": self._shape, "datatype": self._datatype}
        if self._parameters:
            tensor["parameters"] = self._parameters
        if self._parameters.get("shared_memory_region") is None and self._raw_data is None:
            if self._data is not None:
                tensor["data"] = self._data
        return tensor


class InferRequestedOutput:
    """_requested_output.py's InferRequestedOutput (binary_data=True by default)."""

    def __init__(self, name, binary_data=True, class_count=0):
        self._name, self._parameters = name, {}
        if class_count != 0:
            self._parameters["classification"] = class_count
        self._binary = binary_data
        self._parameters["binary_data"] = binary_data

    def _get_tensor(self):
        tensor = {"name": self._name}
        if self._parameters:
            tensor["parameters"] = self._parameters
        return tensor


def dumps(obj):
    """rapidjson.dumps: compact, keys in insertion order."""
    return json.dumps(obj, separators=(",", ":"))


def _get_inference_request(inputs, request_id, outputs, sequence_id, sequence_start,
                           sequence_end, priority, timeout, custom_parameters):
    """_utils.py's _get_inference_request, line for line."""
    infer_request = {}
    parameters = {}
    if request_id != "":
        infer_request["id"] = request_id
    if sequence_id != 0 and sequence_id != "":
        parameters["sequence_id"] = sequence_id
        parameters["sequence_start"] = sequence_start
        parameters["sequence_end"] = sequence_end
    if priority != 0:
        parameters["priority"] = priority
    if timeout is not None:
        parameters["timeout"] = timeout
    infer_request["inputs"] = [this_input._get_tensor() for this_input in inputs]
    if outputs:
        infer_request["outputs"] = [this_output._get_tensor() for this_output in outputs]
    else:
        # no outputs specified so set 'binary_data_output' True in the
        # request so that all outputs are returned in binary format
        parameters["binary_data_output"] = True
    if custom_parameters:
        for key, value in custom_parameters.items():
            parameters[key] = value
    if parameters:
        infer_request["parameters"] = parameters
    request_json = dumps(infer_request)
    json_size = len(request_json)
    request_body = [request_json.encode()]
    for input_tensor in inputs:
        raw_data = input_tensor._get_binary_data()
        if raw_data is not None:
            request_body.append(raw_data)
    if len(request_body) == 1:
        return request_body[0], None
    return b"".join(request_body), json_size


class InferResult:
    """_infer_result.py's InferResult, from a status-200 response's headers and body."""

    def __init__(self, headers, body):
        header_length = headers.get("Inference-Header-Content-Length")
        content_encoding = headers.get("Content-Encoding")
        if content_encoding is not None:
            if content_encoding == "gzip":
                body = gzip.decompress(body)
            elif content_encoding == "deflate":
                body = zlib.decompress(body)
        if header_length is None:
            self._result = json.loads(body)
            self._buffer = b""
            self._output_name_to_buffer_map = {}
        else:
            header_length = int(header_length)
            self._result = json.loads(body[:header_length])
            self._output_name_to_buffer_map = {}
            self._buffer = body[header_length:]
            buffer_index = 0
            for output in self._result["outputs"]:
                parameters = output.get("parameters")
                if parameters is not None:
                    this_data_size = parameters.get("binary_data_size")
                    if this_data_size is not None:
                        self._output_name_to_buffer_map[output["name"]] = buffer_index
                        buffer_index = buffer_index + this_data_size

    def as_numpy(self, name):
        for output in self._result.get("outputs", []):
            if output["name"] != name:
                continue
            datatype = output["datatype"]
            parameters = output.get("parameters")
            if parameters is not None and parameters.get("binary_data_size") is not None:
                size = parameters["binary_data_size"]
                start = self._output_name_to_buffer_map[name]
                arr = np.frombuffer(self._buffer[start:start + size],
                                    dtype=TRITON_TO_NP[datatype])
            else:
                arr = np.array(output["data"], dtype=TRITON_TO_NP[datatype])
            return arr.reshape(output["shape"])
        return None

    def binary_outputs(self):
        return sorted(self._output_name_to_buffer_map)


def infer(port, model_name, inputs, outputs=None, request_compression_algorithm=None,
          response_compression_algorithm=None):
    """InferenceServerClient.infer's framing and headers (_client.py); returns the status, the
    response headers, and the InferResult (None for an error)."""
    request_body, json_size = _get_inference_request(inputs, "", outputs, 0, False, False, 0,
                                                     None, None)
    headers = {}
    if request_compression_algorithm == "gzip":
        headers["Content-Encoding"] = "gzip"
        request_body = gzip.compress(request_body)
    elif request_compression_algorithm == "deflate":
        headers["Content-Encoding"] = "deflate"
        request_body = zlib.compress(request_body)
    if response_compression_algorithm == "gzip":
        headers["Accept-Encoding"] = "gzip"
    elif response_compression_algorithm == "deflate":
        headers["Accept-Encoding"] = "deflate"
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = json_size
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # http.client adds Accept-Encoding: identity unless told not to; geventhttpclient does not
    conn.putrequest("POST", f"/v2/models/{model_name}/infer", skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, str(v))
    conn.putheader("Content-Length", str(len(request_body)))
    conn.endheaders(request_body)
    resp = conn.getresponse()
    body = resp.read()
    rh = {k: v for k, v in resp.getheaders()}
    conn.close()
    if resp.status != 200:
        return resp.status, rh, body
    return resp.status, rh, InferResult(rh, body)


# ---------------------------------------------------------------- the model and the server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(model_dir):
    port = free_port()
    cfg = {"server": {"host": "127.0.0.1", "port": port},
           "models": [{"name": "lstm", "type": "lstm", "input_size": 3, "hidden_size": 8,
                       "num_layers": 2, "bias": True, "bidirectional": True,
                       "weights": "model.safetensors"}]}
    path = os.path.join(model_dir, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(model_dir, "server.log"), "w")
    p = subprocess.Popen(["build/rnnserve", "--config", path], stdout=log, stderr=log)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("triton_wire: the server did not become ready")


def main():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True)
    rng = np.random.default_rng(1)
    lengths = np.array([7, 1, 4, 0, 7], dtype=np.int64)
    B, T = len(lengths), int(lengths.max())
    x = rng.standard_normal((B, T, 3)).astype(np.float32)
    for b in range(B):
        x[b, lengths[b]:] = 0
    h0 = rng.standard_normal((4, B, 8)).astype(np.float32)
    c0 = rng.standard_normal((4, B, 8)).astype(np.float32)
    with torch.no_grad():
        # PyTorch's packing refuses a zero length: run each sequence alone, as the engine does
        out_w = np.zeros((B, T, 16), dtype=np.float32)
        hn_w, cn_w = h0.copy(), c0.copy()
        for b in range(B):
            if lengths[b] == 0:
                continue
            o, (hn, cn) = lstm(torch.from_numpy(x[b:b + 1, :lengths[b]]),
                               (torch.from_numpy(h0[:, b:b + 1].copy()),
                                torch.from_numpy(c0[:, b:b + 1].copy())))
            out_w[b, :lengths[b]] = o[0].numpy()
            hn_w[:, b] = hn[:, 0].numpy()
            cn_w[:, b] = cn[:, 0].numpy()
    want = {"output": out_w, "h_n": hn_w, "c_n": cn_w}
    with tempfile.TemporaryDirectory() as d:
        save_safetensors(os.path.join(d, "model.safetensors"),
                         {k: v.detach() for k, v in lstm.state_dict().items()})
        server, port = start_server(d)
        try:
            run_modes(port, x, lengths, h0, c0, want)
            check_headers(port, x, lengths)
        finally:
            server.terminate()
            server.wait(10)
    print(f"triton_wire: {'FAIL' if failed else 'ok'} ({failed} failed)")
    return 1 if failed else 0


def make_inputs(x, lengths, h0, c0, binary_data):
    ins = [InferInput("input", list(x.shape), "FP32"), InferInput("lengths", [len(lengths)], "INT64"),
           InferInput("h0", list(h0.shape), "FP32"), InferInput("c0", list(c0.shape), "FP32")]
    for i, a in zip(ins, (x, lengths, h0, c0)):
        i.set_data_from_numpy(a, binary_data=binary_data)
    return ins


def run_modes(port, x, lengths, h0, c0, want):
    names = ["output", "h_n", "c_n"]
    modes = [
        ("defaults (binary inputs, no outputs named: binary_data_output)", True, None, None, None,
         names),
        ("binary_data=False inputs, no outputs named (binary_data_output)", False, None, None,
         None, names),
        ("binary_data=False inputs, outputs binary_data=False", False,
         [InferRequestedOutput(n, binary_data=False) for n in names], None, None, []),
        ("JSON inputs, binary outputs (InferRequestedOutput defaults)", False,
         [InferRequestedOutput(n) for n in names], None, None, names),
        ("mixed: binary output, JSON h_n", True,
         [InferRequestedOutput("output"), InferRequestedOutput("h_n", binary_data=False)], None,
         None, ["output"]),
    ]
    for coding in ("gzip", "deflate"):
        modes.append((f"request_compression_algorithm={coding}", True, None, coding, None, names))
        modes.append((f"response_compression_algorithm={coding}", True, None, None, coding, names))
        modes.append((f"binary_data=False, {coding} both ways", False,
                      [InferRequestedOutput(n, binary_data=False) for n in names], coding, coding,
                      []))
    for label, binary_in, outputs, req_c, resp_c, binary_out in modes:
        status, rh, res = infer(port, "lstm", make_inputs(x, lengths, h0, c0, binary_in), outputs,
                                req_c, resp_c)
        if status != 200:
            expect(False, f"{label}: status 200", f"{status} {res[:500]}")
            continue
        asked = [o._name for o in outputs] if outputs else names
        worst = 0.0
        for n in asked:
            got = res.as_numpy(n)
            if got is None or got.shape != want[n].shape:
                worst = float("inf")
                break
            worst = max(worst, float(np.abs(got - want[n]).max()))
        enc = rh.get("Content-Encoding")
        expect(worst < 1e-5 and res.binary_outputs() == sorted(binary_out)
               and enc == resp_c
               and (rh.get("Content-Type") == "application/octet-stream") == bool(binary_out),
               f"{label}: PyTorch's numbers within 1e-5 (max diff {worst:.2g}), binary outputs "
               f"{res.binary_outputs()}, Content-Encoding {enc}",
               rh)


def check_headers(port, x, lengths):
    """What the client sees besides the numbers: the metadata names the extension, responses
    vary on Accept-Encoding, and errors stay JSON the client can read (_get_error)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/v2")
    meta = json.loads(c.getresponse().read())
    expect("binary_tensor_data" in meta.get("extensions", []),
           "GET /v2 lists binary_tensor_data in extensions", meta)
    inp = InferInput("input", list(x.shape), "FP32").set_data_from_numpy(x)
    inp._parameters["binary_data_size"] -= 4  # one element short: the sizes do not add up
    status, rh, body = infer(port, "lstm", [inp])
    err = json.loads(body).get("error", "") if status != 200 else ""
    expect(status == 400 and "binary_data_size" in err,
           "a binary_data_size that does not add up: 400 naming it, in JSON", f"{status} {body}")
    status, rh, res = infer(port, "lstm", make_inputs(x, lengths, *[np.zeros((4, len(lengths), 8),
                                                                          np.float32)] * 2, True),
                            None, None, "gzip")
    expect(status == 200 and "Accept-Encoding" in rh.get("Vary", ""),
           "a compressed answer says Vary: Accept-Encoding", rh)


if __name__ == "__main__":
    sys.exit(main())
