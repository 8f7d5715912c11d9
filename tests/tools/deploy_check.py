#!/usr/bin/python3
"""deploy_check.py - checks deploy/kubernetes/ and deploy/compose/ offline, as far as that goes.

Usage: /usr/bin/python3 tests/tools/deploy_check.py     (from the repo root; tests/deploy_test.sh
runs it). Needs python3-yaml and python3-kubernetes (Debian packages); prints one line per check
and exits 1 when any fails.

Kubernetes: every manifest is checked field by field against the official Kubernetes Python
client's API models (generated from the Kubernetes OpenAPI spec): an unknown or misspelt field, a
wrong type or a missing required field fails, as `kubectl apply --validate=strict` would. Debian's
client (22.6) predates autoscaling/v2, so the HorizontalPodAutoscaler is checked against
autoscaling/v2beta2, whose fields v2 kept unchanged. Then what a schema cannot see: selectors
match the pod labels, probes hit /healthz and /readyz on the container's port, the model
ConfigMap is examples/sine-next byte for byte and `build/rnnserve check` loads it, the HPA targets
the Deployment, the pod runs as the image's user, the grace period covers the drain, and the
Ingress routes to the Service hashing on the session id.

Compose: the file's structure, the replicas nginx.conf names, the model folder it mounts, and
the session routing (the id map, consistent hashing on it, the session location's 404 pass-on).
"""

import base64
import os
import re
import subprocess
import sys
import tempfile

import kubernetes.client as k8s
import yaml

K8S = "deploy/kubernetes"
COMPOSE = "deploy/compose"
MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}
failed = 0


def ok(msg):
    print(f"ok   {msg}")


def bad(msg):
    global failed
    failed += 1
    print(f"FAIL {msg}")


def expect(cond, msg):
    (ok if cond else bad)(msg)
    return cond


# ---------------------------------------------------------------- schema

def check_type(value, typ, path, errors):
    """Checks VALUE (parsed YAML) against the client's type string TYP; appends to ERRORS."""
    if typ.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check_type(v, typ[5:-1], f"{path}[{i}]", errors)
    elif typ.startswith("dict("):
        inner = typ[typ.index(",") + 1 : -1].strip()
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            check_type(v, inner, f"{path}.{k}", errors)
    elif typ in ("str", "datetime", "date"):
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif typ == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true or false, got {value!r}")
    elif typ == "object":  # IntOrString, Quantity, RawExtension
        if not isinstance(value, (str, int, dict)):
            errors.append(f"{path}: unexpected {value!r}")
    else:
        model = getattr(k8s, typ)
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a {typ} object, got {value!r}")
            return
        by_json = {j: a for a, j in model.attribute_map.items()}
        for k, v in value.items():
            if k not in by_json:
                errors.append(f"{path}: unknown field {k!r} (a {typ} has: "
                              f"{', '.join(sorted(by_json))})")
                continue
            check_type(v, model.openapi_types[by_json[k]], f"{path}.{k}", errors)


def check_schema(doc, where):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in MODELS:
        bad(f"{where}: {key} is not a kind this check knows")
        return
    errors = []
    check_type(doc, MODELS[key], doc["kind"], errors)
    try:  # the client's constructors enforce required fields
        k8s.ApiClient()._ApiClient__deserialize(doc, MODELS[key])
    except (ValueError, TypeError) as e:
        errors.append(f"{doc['kind']}: {e}")
    if expect(not errors, f"{where}: {doc['kind']} {doc['metadata'].get('name')!r} matches the "
              f"{key[0]} schema ({MODELS[key]}), no unknown field"):
        return
    for e in errors:
        print(f"     | {e}")


# ---------------------------------------------------------------- kubernetes

def load_k8s():
    docs = {}
    files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml"))
    for f in files:
        if f == "kustomization.yaml":
            continue
        with open(os.path.join(K8S, f), encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                if doc:
                    docs[doc["kind"]] = doc
                    check_schema(doc, f"{K8S}/{f}")
    with open(os.path.join(K8S, "kustomization.yaml"), encoding="utf-8") as fh:
        kust = yaml.safe_load(fh)
    listed = sorted(kust.get("resources", []))
    expect(listed == sorted(f for f in files if f != "kustomization.yaml"),
           f"kustomization.yaml lists every manifest: {listed}")
    return docs


def check_k8s(docs):
    dep, svc, hpa, cm, pdb = (docs.get(k) for k in ("Deployment", "Service",
                                                    "HorizontalPodAutoscaler", "ConfigMap",
                                                    "PodDisruptionBudget"))
    if not expect(all((dep, svc, hpa, cm, pdb)), "Deployment, Service, HPA, ConfigMap, PDB present"):
        return
    spec = dep["spec"]
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    sel = spec["selector"]["matchLabels"]
    expect(sel.items() <= labels.items(), f"Deployment selector {sel} matches its pod labels")
    expect(svc["spec"]["selector"].items() <= labels.items(), "Service selector matches the pods")
    expect(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(),
           "PodDisruptionBudget selector matches the pods")
    (c,) = pod["spec"]["containers"]
    ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
    expect(ports.get("http") == 8080, "container port http is 8080 (the image's EXPOSE)")
    expect(svc["spec"]["ports"][0]["targetPort"] in ("http", 8080), "Service targets port http")
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    expect(live["path"] == "/healthz" and live["port"] in ("http", 8080),
           "liveness probe: GET /healthz on the container port")
    expect(ready["path"] == "/readyz" and ready["port"] in ("http", 8080),
           "readiness probe: GET /readyz on the container port")
    res = c["resources"]
    expect(all(k in res.get(w, {}) for w in ("requests", "limits") for k in ("cpu", "memory")),
           f"cpu and memory requests and limits: {res}")

    def cpu(q):
        return float(q[:-1]) / 1000 if str(q).endswith("m") else float(q)

    def mem(q):
        m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
        return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]

    expect(cpu(res["requests"]["cpu"]) <= cpu(res["limits"]["cpu"]) and
           mem(res["requests"]["memory"]) <= mem(res["limits"]["memory"]), "requests <= limits")
    args = c["args"]
    threads = int(args[args.index("--threads") + 1]) if "--threads" in args else None
    expect(threads is not None and threads <= max(1, int(cpu(res["limits"]["cpu"]) + 0.999)),
           f"--threads {threads} fits the CPU limit {res['limits']['cpu']}")

    with open("Dockerfile", encoding="utf-8") as fh:
        user = re.search(r"^USER (\d+)(?::(\d+))?", fh.read(), re.M)
    psc = pod["spec"].get("securityContext", {})
    expect(user and psc.get("runAsNonRoot") is True and str(psc.get("runAsUser")) == user.group(1),
           f"pod runs as non-root uid {psc.get('runAsUser')}, the Dockerfile's USER")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = int(pre[1]) if pre[:1] == ["sleep"] else 0
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    expect(grace > pre_s + 30, f"terminationGracePeriodSeconds {grace} > preStop {pre_s} s + "
           "server.timeout_s 30 s (the drain)")

    # the model: a volume from the ConfigMap, the config path inside its mount
    cfg_path = args[args.index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    hit = [n for n, p in mounts.items() if cfg_path.startswith(p.rstrip("/") + "/")]
    expect(len(hit) == 1 and vols[hit[0]].get("configMap", {}).get("name") ==
           cm["metadata"]["name"], f"--config {cfg_path} is in the mounted ConfigMap "
           f"{cm['metadata']['name']!r}")
    files = dict(cm.get("data", {}))
    for k, v in cm.get("binaryData", {}).items():
        files[k] = base64.b64decode(v.replace("\n", ""), validate=True)
    key = os.path.basename(cfg_path)
    expect(key in files, f"the ConfigMap has {key}")
    size = sum(len(v) for v in files.values())
    expect(size < 1 << 20, f"the ConfigMap holds {size} bytes (< 1 MiB, the API's limit)")
    ex = "examples/sine-next"
    same = all(
        (open(os.path.join(ex, n), "rb").read() == (v if isinstance(v, bytes) else v.encode()))
        for n, v in files.items())
    expect(same and set(files) == {"config.json", "model.safetensors"},
           f"the ConfigMap's files are {ex}'s, byte for byte")
    with tempfile.TemporaryDirectory() as d:
        for n, v in files.items():
            with open(os.path.join(d, n), "wb") as fh:
                fh.write(v if isinstance(v, bytes) else v.encode())
        p = subprocess.run(["build/rnnserve", "check", "--config", os.path.join(d, key)],
                           capture_output=True, text=True, timeout=30)
        expect(p.returncode == 0, "build/rnnserve check loads the ConfigMap's model: "
               + (p.stdout or p.stderr).strip().replace(d + "/", ""))

    ref = hpa["spec"]["scaleTargetRef"]
    expect((ref["apiVersion"], ref["kind"], ref["name"]) ==
           (dep["apiVersion"], "Deployment", dep["metadata"]["name"]),
           f"HPA targets Deployment {ref['name']!r}")
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    metrics = [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    expect(1 <= lo <= hi and "cpu" in metrics and "cpu" in res["requests"],
           f"HPA scales {lo}..{hi} on cpu (which needs the cpu request)")
    expect(pdb["spec"]["minAvailable"] < lo, f"PDB minAvailable {pdb['spec']['minAvailable']} < "
           f"the HPA's minReplicas {lo}: a node drain can proceed")

    ing = docs.get("Ingress")
    if expect(ing is not None, "an Ingress example is present"):
        ann = ing["metadata"].get("annotations", {})
        expect(ann.get("nginx.ingress.kubernetes.io/upstream-hash-by") == "$session_id",
               "Ingress: ingress-nginx hashes on $session_id (upstream-hash-by)")
        expect("http_404" in ann.get("nginx.ingress.kubernetes.io/proxy-next-upstream", ""),
               "Ingress: a 404 is passed on to the next pod (a session made elsewhere)")
        backends = [p["backend"]["service"] for r in ing["spec"]["rules"]
                    for p in r["http"]["paths"]]
        expect(all(b["name"] == svc["metadata"]["name"] and
                   b["port"].get("name", b["port"].get("number")) in ("http", 80)
                   for b in backends) and backends,
               f"Ingress routes to Service {svc['metadata']['name']!r} port http")
        with open(os.path.join(K8S, "ingress.yaml"), encoding="utf-8") as fh:
            expect("map $uri $session_id" in fh.read(),
                   "Ingress: says how to define $session_id in the controller's http-snippet")


# ---------------------------------------------------------------- compose

def check_compose():
    with open(os.path.join(COMPOSE, "compose.yaml"), encoding="utf-8") as fh:
        comp = yaml.safe_load(fh)
    services = comp.get("services", {})
    replicas = sorted(n for n in services if n.startswith("rnnserve-"))
    expect(len(replicas) >= 2 and "nginx" in services,
           f"compose: {len(replicas)} rnnserve replicas and nginx")
    known = {"image", "command", "volumes", "restart", "stop_signal", "stop_grace_period", "cpus",
             "mem_limit", "read_only", "build", "ports", "depends_on"}
    unknown = {k for s in services.values() for k in s} - known
    expect(not unknown, f"compose: only keys this check knows ({sorted(unknown) or 'none other'})")
    for n in replicas:
        s = services[n]
        cmd = s["command"]
        m = re.fullmatch(r"\$\{MODEL_DIR:-([^}]+)\}:([^:]+):ro", s["volumes"][0])
        default_dir = os.path.normpath(os.path.join(COMPOSE, m.group(1))) if m else None
        cfg = cmd[cmd.index("--config") + 1]
        expect(m and cfg.startswith(m.group(2).rstrip("/") + "/") and
               os.path.isfile(os.path.join(default_dir, os.path.basename(cfg))),
               f"compose {n}: --config {cfg} is in its read-only mount of {default_dir}")
    up = services["nginx"]
    expect(set(up.get("depends_on", [])) == set(replicas), "compose: nginx depends on every replica")
    with open(os.path.join(COMPOSE, "nginx", "nginx.conf"), encoding="utf-8") as fh:
        conf = fh.read()
    named = sorted(re.findall(r"^\s*server\s+(rnnserve-\d+):8080\b", conf, re.M))
    expect(named == replicas, f"nginx.conf's upstream names exactly the replicas: {named}")
    expect(os.path.isfile(os.path.join(COMPOSE, "nginx", "rnnserve-proxy.conf")),
           "nginx/rnnserve-proxy.conf (the settings failover_test.sh runs) exists")
    ngx = os.path.join(COMPOSE, "nginx")
    with open(os.path.join(ngx, "rnnserve-sessions.conf"), encoding="utf-8") as fh:
        smap = fh.read()
    expect(re.search(r"map \$uri \$session_id \{\s*~\^/v1/sessions/\(\?<sid>\[\^/\]\+\) \$sid;",
                     smap) is not None, "nginx: rnnserve-sessions.conf maps /v1/sessions/{id} to $session_id")
    up = re.search(r"upstream rnnserve \{(.*?)\}", conf, re.S)
    expect(up and re.search(r"^\s*hash \$session_id consistent;", up.group(1), re.M) and
           "include /etc/nginx/rnnserve-sessions.conf;" in conf,
           "nginx.conf: the upstream hashes consistently on $session_id")
    with open(os.path.join(ngx, "rnnserve-session-proxy.conf"), encoding="utf-8") as fh:
        sp = fh.read()
    expect(re.search(r"location /v1/sessions/ \{\s*include /etc/nginx/rnnserve-session-proxy.conf;",
                     conf) is not None and "http_404" in sp and "proxy_pass http://rnnserve;" in sp,
           "nginx.conf: /v1/sessions/ passes a 404 on to the next replica")
    with open(os.path.join(ngx, "Dockerfile"), encoding="utf-8") as fh:
        df = fh.read()
    incl = sorted(set(re.findall(r"include /etc/nginx/([\w.-]+);", conf)))
    expect(all(f"COPY {f} /etc/nginx/{f}" in df for f in incl),
           f"nginx/Dockerfile copies every file nginx.conf includes: {incl}")


def main():
    docs = load_k8s()
    check_k8s(docs)
    check_compose()
    print(f"deploy_check: {'FAIL' if failed else 'PASS'} ({failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
