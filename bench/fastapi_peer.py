#!/usr/bin/python3
"""fastapi_peer.py - the server a Python user would write: FastAPI + uvicorn + torch, the same
/forward contract as rnnserve (docs/API.md: "inputs", optional "h0", "return"; response
"model", "outputs", "hidden").

Usage: /usr/bin/python3 bench/fastapi_peer.py WORKDIR PORT NAME [NAME...]

Serves the models NAME... of WORKDIR/shapes.json (nn.RNN, tanh), the first on POST /forward and
each on POST /v1/models/NAME/forward, and GET /readyz. One uvicorn worker: uvicorn's own server
(asyncio) sets TCP_NODELAY on every connection, which `--workers 2` loses (and then stalls 40 ms
per response on delayed ACKs). torch keeps its default thread count (one per core).
Prints "FASTAPI_SKIP reason" and exits 3 when fastapi, uvicorn or torch is missing.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))


def main():
    workdir, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    try:
        import torch
        import torch.nn as nn
        import uvicorn
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.responses import JSONResponse, Response
        from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence
        from rnnserve_st import load_safetensors
    except Exception as e:  # noqa: BLE001
        print(f"FASTAPI_SKIP cannot import fastapi/uvicorn/torch: {e}", flush=True)
        return 3

    with open(os.path.join(workdir, "shapes.json")) as f:
        shapes = {s["name"]: s for s in json.load(f)}
    models = {}
    for name in names:
        sh = shapes[name]
        m = nn.RNN(sh["input"], sh["hidden"], sh["layers"], nonlinearity="tanh", bias=True,
                   batch_first=True)
        m.load_state_dict(load_safetensors(os.path.join(workdir, sh["weights"])))
        m.eval()
        models[name] = (m, sh)

    app = FastAPI()

    def forward(name, body):
        m, sh = models[name]
        want = set(body.get("return", ["outputs", "hidden"]))
        seqs = []
        for s in body["inputs"]:
            t = torch.tensor(s, dtype=torch.float32)
            seqs.append(t.reshape(-1, sh["input"]))
        lengths = [len(s) for s in seqs]
        h0 = body.get("h0")
        if h0 is not None:
            h0 = torch.tensor(h0, dtype=torch.float32).transpose(0, 1).contiguous()
        with torch.no_grad():
            out, hn = m(pack_sequence(seqs, enforce_sorted=False), h0)
        resp = {"model": name}
        if "outputs" in want:
            padded, _ = pad_packed_sequence(out, batch_first=True)
            resp["outputs"] = [padded[i, :n].tolist() for i, n in enumerate(lengths)]
        if "hidden" in want:
            resp["hidden"] = hn.transpose(0, 1).tolist()
        return resp

    async def handle(name, request):
        try:
            body = json.loads(await request.body())
            return JSONResponse(forward(name, body))
        except Exception as e:  # noqa: BLE001
            raise HTTPException(status_code=400, detail=str(e))

    @app.post("/forward")
    async def default_forward(request: Request):
        return await handle(names[0], request)

    @app.post("/v1/models/{name}/forward")
    async def named_forward(name: str, request: Request):
        if name not in models:
            raise HTTPException(status_code=404, detail="no such model")
        return await handle(name, request)

    @app.get("/readyz")
    async def readyz():
        return Response(content='{"status":"ready"}', media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
