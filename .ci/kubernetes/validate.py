#!/usr/bin/env python3
"""Offline validation of the Kubernetes manifests in deploy/kubernetes (no cluster needed).

What it checks, for the base (deploy/kubernetes) and the trial Redis (deploy/kubernetes/redis):

1. Layout: every resource and generator file the kustomization lists exists and parses as YAML,
   and every manifest in the directory is listed.
2. Rendering: `kubectl kustomize` (or `kustomize build`) renders it; the built-in renderer below
   renders it too and must agree on every object (it is the fallback where neither is installed).
   The base needs its Secret files, which are never committed: a development CA, server
   certificate and CRL are made with `warden certs init` in a temporary copy.
3. Schemas: every rendered object of a built-in kind is validated with the PyPI package
   `kubernetes-validate` (JSON schemas of the Kubernetes OpenAPI, bundled in the package) in its
   strict mode (unknown fields are errors), against Kubernetes 1.30 (the oldest with the
   preStop `sleep` action on by default) and 1.37. ServiceMonitor and PrometheusRule are
   validated with `jsonschema` against the openAPIV3Schema of the prometheus-operator CRDs
   (v0.93.0), bundled in .ci/kubernetes/schemas, made strict the same way.
4. Contract (SPEC section 8): the Deployment runs >= 2 replicas, non-root, with a read-only root
   file system, no privilege escalation, probes on /healthz and /readyz, a preStop drain and a
   terminationGracePeriodSeconds longer than the preStop plus warden's 30 s drain; the config is
   mounted as a directory (never subPath, which would hide ConfigMap updates); Services, the
   PodDisruptionBudget and the HorizontalPodAutoscaler select or target what exists; the
   ServiceMonitor selects the admin Service's port and its token Secret exists; the
   PrometheusRule's groups equal config/prometheus/warden-rules.yaml; `cluster.redis` names the
   trial Redis Service.
5. The ConfigMap's warden.yaml passes `warden check` (with the certificate paths pointed at the
   temporary development PKI).
"""

import argparse
import base64
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
DRAIN_SECONDS = 30  # warden's own drain on SIGTERM (app::DRAIN_TIMEOUT)

failures = []
passed = 0


def check(condition, what):
    global passed
    if condition:
        passed += 1
        print(f"  ok    {what}")
    else:
        failures.append(what)
        print(f"  FAIL  {what}")
    return condition


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# 1. Layout ------------------------------------------------------------------------------------

def kustomization(kdir):
    return yaml.safe_load((kdir / "kustomization.yaml").read_text())


def generator_files(k):
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for f in gen.get("files", []):
            yield gen, f.split("=", 1)[-1]


def check_layout(kdir, committed):
    k = kustomization(kdir)
    listed = set()
    for res in k.get("resources", []):
        path = kdir / res
        listed.add(path.resolve())
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            check(bool(docs), f"{res} is listed, exists and parses")
        except (OSError, yaml.YAMLError) as e:
            check(False, f"{res}: {e}")
    for _, f in generator_files(k):
        path = kdir / f
        listed.add(path.resolve())
        in_repo = committed / path.relative_to(kdir) if committed else path
        is_secret_material = f.startswith(("tls/", "admin/"))
        check(path.exists(), f"generator file {f} exists"
              + (" (made for this check; never committed)" if is_secret_material else ""))
        if not is_secret_material:
            check(in_repo.exists(), f"generator file {f} is in the repository")
    for path in sorted(kdir.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            check(path.resolve() in listed, f"{path.name} is listed in {kdir.name}/kustomization.yaml")


# 2. Rendering ---------------------------------------------------------------------------------

def render_with_tool(kdir):
    for cmd in (["kubectl", "kustomize", str(kdir)], ["kustomize", "build", str(kdir)]):
        if shutil.which(cmd[0]):
            out = subprocess.run(cmd, capture_output=True, text=True)
            check(out.returncode == 0, f"`{' '.join(cmd[:2])}` renders {kdir.name} {out.stderr.strip()}")
            return cmd[0], [d for d in yaml.safe_load_all(out.stdout) if d]
    return None, None


def render_builtin(kdir):
    """Resources as listed, generators as ConfigMaps and Secrets without a name hash."""
    k = kustomization(kdir)
    docs = []
    for res in k.get("resources", []):
        path = kdir / res
        if path.is_dir():
            docs += render_builtin(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    options = k.get("generatorOptions", {})
    if k.get("configMapGenerator") or k.get("secretGenerator"):
        check(options.get("disableNameSuffixHash") is True,
              "generators keep their names (disableNameSuffixHash), so updates reach running pods")
    labels = options.get("labels", {})
    for gen in k.get("configMapGenerator", []):
        data = {pathlib.Path(f).name: (kdir / f).read_text() for _, f in generator_files({"configMapGenerator": [gen]})}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": gen["name"], "labels": dict(labels)}, "data": data})
    for gen in k.get("secretGenerator", []):
        data = {pathlib.Path(f).name: base64.b64encode((kdir / f).read_bytes()).decode()
                for _, f in generator_files({"secretGenerator": [gen]})}
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": gen.get("type", "Opaque"),
                     "metadata": {"name": gen["name"], "labels": dict(labels)}, "data": data})
    return docs


def render(kdir):
    tool, rendered = render_with_tool(kdir)
    builtin = render_builtin(kdir)
    if rendered is None:
        print(f"  note  neither kubectl nor kustomize is installed: using the built-in renderer")
        return builtin
    by_name = lambda docs: {name_of(d): d for d in docs}
    ours, theirs = by_name(builtin), by_name(rendered)
    check(set(ours) == set(theirs), f"{tool} and the built-in renderer make the same objects: {sorted(theirs)}")
    def data(d):
        # kustomize wraps base64 over lines: compare what it encodes.
        if d["kind"] == "Secret":
            return {k: base64.b64decode(v) for k, v in d.get("data", {}).items()}
        return d.get("data")

    for key in set(ours) & set(theirs):
        a, b = ours[key], theirs[key]
        same = a.get("spec") == b.get("spec") and data(a) == data(b)
        if not same:
            check(False, f"{key} renders alike with {tool} and the built-in renderer")
    return rendered


# 3. Schemas -----------------------------------------------------------------------------------

def strict(schema):
    """Unknown fields become errors, as `kubernetes-validate --strict` does for built-in kinds."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def validate_schema(doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRDS:
        schema = strict(json.loads((SCHEMAS / CRDS[key]).read_text()))
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
        detail = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:3])
        check(not errors, f"{name_of(doc)} matches the {CRDS[key]} CRD schema (strict) {detail}")
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            check(True, f"{name_of(doc)} matches the Kubernetes {version} schema (strict)")
        except kubernetes_validate.ValidationError as e:
            check(False, f"{name_of(doc)} against Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            check(False, f"{name_of(doc)}: {e.message}")


# 4. Contract ----------------------------------------------------------------------------------

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_contract(docs):
    objs = {name_of(d): d for d in docs}
    dep = objs.get("Deployment/warden")
    if not check(dep is not None, "Deployment/warden is rendered"):
        return
    pod = dep["spec"]["template"]
    pod_labels, spec = pod["metadata"]["labels"], pod["spec"]
    c = spec["containers"][0]
    csc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    check(dep["spec"].get("replicas", 1) >= 2, "two or more replicas")
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runs as non-root")
    check(csc.get("readOnlyRootFilesystem") is True, "read-only root file system")
    check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), "all capabilities dropped")
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "liveness probe on /healthz")
    check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "readiness probe on /readyz")
    pre = c.get("lifecycle", {}).get("preStop", {})
    pre_seconds = pre.get("sleep", {}).get("seconds", 0)
    check(bool(pre), "a preStop drain before stop")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(grace > pre_seconds + DRAIN_SECONDS,
          f"terminationGracePeriodSeconds {grace} > preStop {pre_seconds} s + warden's {DRAIN_SECONDS} s drain")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    args = c.get("args", [])
    config = args[args.index("--config") + 1] if "--config" in args else ""
    config_mount = [m for m in mounts.values() if config.startswith(m["mountPath"].rstrip("/") + "/")]
    check(bool(config_mount) and "subPath" not in config_mount[0]
          and "configMap" in volumes.get(config_mount[0]["name"], {}),
          f"--config {config} is read from a ConfigMap directory mount (no subPath), so updates reload")
    for m in mounts.values():
        check("subPath" not in m, f"volume {m['name']} is mounted without subPath")
    for v in volumes.values():
        ref = (("ConfigMap/" + v["configMap"]["name"]) if "configMap" in v else
               ("Secret/" + v["secret"]["secretName"]) if "secret" in v else None)
        if ref:
            check(ref in objs, f"volume {v['name']} refers to {ref}, which is rendered")
    check(bool(c.get("resources", {}).get("requests", {}).get("cpu")), "a CPU request (the autoscaler's unit)")
    for d in docs:
        kind, spec2 = d["kind"], d.get("spec", {})
        if kind == "Service":
            check(matches(spec2.get("selector"), pod_labels), f"{name_of(d)} selects warden's pods")
            for p in spec2.get("ports", []):
                check(p.get("targetPort") in ports, f"{name_of(d)} port {p['name']} targets a named container port")
        if kind == "PodDisruptionBudget":
            check(matches(spec2["selector"]["matchLabels"], pod_labels), f"{name_of(d)} selects warden's pods")
        if kind == "HorizontalPodAutoscaler":
            t = spec2["scaleTargetRef"]
            check(f"{t['kind']}/{t['name']}" in objs, f"{name_of(d)} scales {t['kind']}/{t['name']}")
            check(spec2.get("minReplicas", 1) >= 2, f"{name_of(d)} keeps two or more replicas")
        if kind == "ServiceMonitor":
            check_service_monitor(d, docs, objs)
        if kind == "PrometheusRule":
            rules = yaml.safe_load((ROOT / "config/prometheus/warden-rules.yaml").read_text())
            check(spec2.get("groups") == rules["groups"],
                  f"{name_of(d)} groups equal config/prometheus/warden-rules.yaml")


def check_service_monitor(sm, docs, objs):
    spec = sm["spec"]
    services = [d for d in docs if d["kind"] == "Service"
                and matches(spec["selector"]["matchLabels"], d["metadata"].get("labels", {}))]
    check(len(services) == 1, f"{name_of(sm)} selects exactly one Service: {[name_of(s) for s in services]}")
    for ep in spec["endpoints"]:
        port_names = [p["name"] for s in services for p in s["spec"]["ports"]]
        check(ep["port"] in port_names, f"{name_of(sm)} scrapes port {ep['port']} of that Service")
        cred = ep.get("authorization", {}).get("credentials", {})
        secret = objs.get(f"Secret/{cred.get('name')}", {})
        check(cred.get("key") in secret.get("data", {}),
              f"{name_of(sm)} sends the admin token from Secret/{cred.get('name')} key {cred.get('key')}")


# 5. The config --------------------------------------------------------------------------------

def check_config(docs, tls_dir, token, warden, redis_docs):
    cm = next((d for d in docs if name_of(d) == "ConfigMap/warden-config"), None)
    if not check(cm is not None and "warden.yaml" in cm.get("data", {}), "ConfigMap/warden-config holds warden.yaml"):
        return
    text = cm["data"]["warden.yaml"]
    cfg = yaml.safe_load(text)
    redis = (cfg.get("cluster") or {}).get("redis", "")
    m = re.match(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", redis)
    svc = next((d for d in redis_docs if d["kind"] == "Service"), None)
    check(m is not None and svc is not None and m.group(1) == svc["metadata"]["name"]
          and int(m.group(2) or 6379) in [p["port"] for p in svc["spec"]["ports"]],
          f"cluster.redis {redis} is the trial Redis Service")
    local = text.replace("/etc/warden/tls/", f"{tls_dir}/").replace("/etc/warden/admin/token", str(token))
    path = tls_dir.parent / "warden-check.yaml"
    path.write_text(local)
    out = subprocess.run([warden, "check", "--config", str(path)], capture_output=True, text=True)
    check(out.returncode == 0, f"`warden check` accepts the ConfigMap's warden.yaml {out.stdout.strip()} {out.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warden", default=str(ROOT / "target/debug/warden"), help="the warden binary")
    parser.add_argument("--base", type=pathlib.Path, default=BASE, help="the kustomize base")
    args = parser.parse_args()
    base_dir = args.base.resolve()
    redis_dir = base_dir / "redis"
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(tmp) / "kubernetes"
        shutil.copytree(base_dir, base, ignore=shutil.ignore_patterns("tls", "admin"))
        tls = base / "tls"
        made = subprocess.run([args.warden, "certs", "init", "--dir", str(tls)], capture_output=True, text=True)
        check(made.returncode == 0, f"a development PKI for the Secret ({made.stderr.strip()})")
        (base / "admin").mkdir()
        token = base / "admin" / "token"
        token.write_text("ci-admin-token")
        print("deploy/kubernetes/redis")
        check_layout(redis_dir, None)
        redis_docs = render(redis_dir)
        for doc in redis_docs:
            validate_schema(doc)
        print("deploy/kubernetes")
        check_layout(base, base_dir)
        docs = render(base)
        for doc in docs:
            validate_schema(doc)
        check_contract(docs)
        check_config(docs, tls, token, args.warden, redis_docs)
        kinds = sorted({name_of(d) for d in docs + redis_docs})
    print(f"kubernetes manifests: {len(kinds)} objects ({', '.join(kinds)})")
    print(f"kubernetes checks: {passed} ok, {len(failures)} failing")
    for f in failures:
        print(f"  failed: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
