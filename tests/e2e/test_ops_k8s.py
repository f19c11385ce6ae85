"""Offline checks of the Kubernetes manifests (deploy/k8s): each overlay is rendered with
`kubectl kustomize` (or, where no kubectl is installed, with tests/deploy/kustomize_lite.py,
which is then also compared with kubectl wherever both exist), every object is validated
against its schema (npm kubernetes-models and @kubernetes-models/keda), and the properties the
operations issue asks for are asserted on the rendered objects."""

import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

import harness

SRC = os.path.abspath(harness.source_dir())
K8S = os.path.join(SRC, "deploy", "k8s")
DEPLOY_TESTS = os.path.join(SRC, "tests", "deploy")
sys.path.insert(0, DEPLOY_TESTS)
import kustomize_lite  # noqa: E402

OVERLAYS = ("overlays/dev", "overlays/production")
IMAGE_MARK = "certautopilot"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def normalise(objs):
    """Generated-name hashes and base64 line breaks differ between renderers: drop them."""
    out = {}
    for o in objs:
        o = json.loads(re.sub(r"(cap-(?:config|secrets))-[a-z0-9]{10}", r"\1-HASH",
                              json.dumps(o, sort_keys=True)))
        if o["kind"] == "Secret":
            o["data"] = {k: base64.b64decode(re.sub(r"\s", "", v)).decode()
                         for k, v in (o.get("data") or {}).items()}
        out[(o["kind"], o["metadata"]["name"])] = o
    return out


def render(overlay):
    folder = os.path.join(K8S, overlay)
    lite = kustomize_lite.render(folder)
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("%s: kubectl not installed; rendered with tests/deploy/kustomize_lite.py" % overlay)
        return lite
    r = subprocess.run([kubectl, "kustomize", folder], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed:\n%s" % (overlay, r.stderr))
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    a, b = normalise(objs), normalise(lite)
    check(set(a) == set(b), "%s: kustomize_lite renders other objects than kubectl: %s"
          % (overlay, sorted(set(a) ^ set(b))))
    for k in set(a) & set(b):
        check(a[k] == b[k], "%s: kustomize_lite renders %s differently from kubectl" % (overlay, k))
    print("%s: rendered with %s (kustomize_lite agrees)" % (overlay, kubectl))
    return objs


def validate_schemas(objs_by_source):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise AssertionError("missing: node (Debian package nodejs) for the schema validation")
    for pkg in ("kubernetes-models", "@kubernetes-models/keda"):
        if not os.path.isdir(os.path.join(DEPLOY_TESTS, "node_modules", pkg)):
            raise AssertionError(
                "missing: npm package %s in tests/deploy/node_modules; install with\n"
                "  npm install --prefix tests/deploy $(cat scripts/packages-npm.txt)" % pkg)
    payload = []
    for source, objs in objs_by_source.items():
        for o in objs:
            o = dict(o, __source=source)
            if o["kind"] == "Secret" and o.get("data"):
                # kustomize wraps long base64 values; the API server (Go's decoder) skips the
                # line breaks, the schema's "byte" format does not.
                o["data"] = {k: re.sub(r"\s", "", v) for k, v in o["data"].items()}
            payload.append(o)
    r = subprocess.run([node, os.path.join(DEPLOY_TESTS, "validate-k8s.js")],
                       input=json.dumps(payload), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120, cwd=DEPLOY_TESTS)
    print(r.stdout)
    check(r.returncode == 0, "schema validation failed (see above)")


def by_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def pod_spec(o):
    return o["spec"]["template"]["spec"]


def selector_matches(sel, labels):
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        val = labels.get(e["key"])
        op = e["operator"]
        if op == "In" and val not in e["values"]:
            return False
        if op == "NotIn" and val in e["values"]:
            return False
        if op == "Exists" and e["key"] not in labels:
            return False
        if op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", str(text).strip())
    assert m, "cannot read duration %r" % text
    mult = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * mult


def flatten_keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        key = prefix + "." + k if prefix else k
        out.add(key)
        if isinstance(v, dict):
            out |= flatten_keys(v, key)
    return out


def check_config(overlay, objs):
    cms = [o for o in objs if o["kind"] == "ConfigMap" and
           o["metadata"]["name"].startswith("cap-config-")]
    check(len(cms) == 1, "%s: one generated ConfigMap cap-config-<hash>" % overlay)
    if not cms:
        return {}
    cfg = yaml.safe_load(cms[0]["data"]["config.yaml"])
    with open(os.path.join(SRC, "deploy", "config.example.yaml")) as f:
        known = flatten_keys(yaml.safe_load(f))
    for key in sorted(flatten_keys(cfg)):
        check(key in known, "%s: config key %s is not in deploy/config.example.yaml" % (overlay, key))
    for key in ("database", "redis.url"):
        check(key not in flatten_keys(cfg) or key == "database" and "url" not in cfg.get("database", {}),
              "%s: secrets (%s) do not belong in the ConfigMap" % (overlay, key))
    return cfg


def check_workloads(overlay, objs, cfg, secret_keys):
    deps = by_kind(objs, "Deployment")
    jobs = by_kind(objs, "Job")
    for name in ("cap-scheduler", "cap-worker"):
        check(name in deps, "%s: Deployment %s" % (overlay, name))
    check("cap-migrate" in jobs, "%s: migration Job cap-migrate" % overlay)
    if "cap-scheduler" in deps:
        check(deps["cap-scheduler"]["spec"].get("replicas") == 2,
              "%s: cap-scheduler runs 2 replicas" % overlay)
    check(any(o["kind"] == "Namespace" for o in objs), "%s: Namespace" % overlay)

    configmaps = set(by_kind(objs, "ConfigMap"))
    secrets = set(by_kind(objs, "Secret"))
    images = set()
    workloads = list(deps.values()) + list(jobs.values())
    for w in workloads:
        name = w["metadata"]["name"]
        ps = pod_spec(w)
        psc = ps.get("securityContext", {})
        tmpl_labels = w["spec"]["template"]["metadata"].get("labels", {})
        if w["kind"] == "Deployment":
            check(selector_matches(w["spec"]["selector"], tmpl_labels),
                  "%s: %s selector matches its pod labels" % (overlay, name))
        check(psc.get("runAsNonRoot") is True, "%s: %s runAsNonRoot" % (overlay, name))
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              "%s: %s seccompProfile RuntimeDefault" % (overlay, name))
        check(ps.get("enableServiceLinks") is False, "%s: %s enableServiceLinks false"
              % (overlay, name))
        check(ps.get("automountServiceAccountToken") is False,
              "%s: %s mounts no service account token" % (overlay, name))
        for c in ps["containers"]:
            csc = c.get("securityContext", {})
            what = "%s: %s/%s" % (overlay, name, c["name"])
            check(csc.get("readOnlyRootFilesystem") is True, what + " readOnlyRootFilesystem")
            check(csc.get("allowPrivilegeEscalation") is False, what + " no privilege escalation")
            check(csc.get("capabilities", {}).get("drop") == ["ALL"], what + " drops ALL caps")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    check(r in res.get(kind, {}), "%s resources.%s.%s" % (what, kind, r))
            if IMAGE_MARK in c.get("image", ""):
                images.add(c["image"])
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                for var in ("CERTAUTOPILOT_DATABASE_URL_FILE", "CERTAUTOPILOT_REDIS_URL_FILE"):
                    path = env.get(var)
                    check(path is not None, "%s sets %s" % (what, var))
                    if path:
                        mounted = [m for m in c.get("volumeMounts", [])
                                   if path.startswith(m["mountPath"].rstrip("/") + "/")]
                        check(mounted, "%s: %s=%s lies in a mounted volume" % (what, var, path))
                        check(os.path.basename(path) in secret_keys,
                              "%s: %s names key %s, which the Secret does not have"
                              % (what, var, os.path.basename(path)))
                check(env.get("CERTAUTOPILOT_CONFIG") == "/etc/certautopilot/config.yaml",
                      what + " CERTAUTOPILOT_CONFIG")
                if w["kind"] == "Deployment":
                    listen = env.get("CERTAUTOPILOT_TELEMETRY_METRICS_LISTEN", "")
                    port = int(listen.rsplit(":", 1)[-1]) if ":" in listen else None
                    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
                    check(port is not None and ports.get("metrics") == port,
                          what + " metrics port %r matches metrics_listen %r" % (ports, listen))
                    for probe, path in (("livenessProbe", "/healthz"),
                                        ("readinessProbe", "/readyz")):
                        hg = c.get(probe, {}).get("httpGet", {})
                        check(hg.get("path") == path and hg.get("port") in ("metrics", port),
                              "%s %s on %s" % (what, probe, path))
        for v in ps.get("volumes", []):
            if "configMap" in v:
                check(v["configMap"]["name"] in configmaps,
                      "%s: %s mounts ConfigMap %s, which the overlay renders"
                      % (overlay, name, v["configMap"]["name"]))
            for src in ("secret", "configMap"):
                mode = v.get(src, {}).get("defaultMode", 0o644)
                if src in v and not mode & 0o004:
                    # Not world-readable: only root or the fsGroup may read the files.
                    check(psc.get("fsGroup") is not None and
                          psc.get("fsGroup") in (psc.get("runAsGroup"), psc.get("runAsUser")),
                          "%s: %s mounts %s with mode %o but sets no matching fsGroup, so "
                          "its non-root user cannot read it" % (overlay, name, v["name"], mode))
            if "secret" in v:
                sn = v["secret"]["secretName"]
                check(sn in secrets or sn == "cap-secrets",
                      "%s: %s mounts Secret %s" % (overlay, name, sn))
    check(len(images) == 1, "%s: one image for all programs, got %s" % (overlay, sorted(images)))
    for img in images:
        check(re.search(r":[A-Za-z0-9._-]+$", img) and not img.endswith(":latest"),
              "%s: image %s has a fixed tag" % (overlay, img))

    # Every pod of the namespace passes the "restricted" Pod Security profile the Namespace
    # enforces (this covers the development Postgres and Redis too).
    for w in workloads:
        for c in pod_spec(w)["containers"]:
            check(c.get("securityContext", {}).get("runAsNonRoot") is True or
                  pod_spec(w).get("securityContext", {}).get("runAsNonRoot") is True,
                  "%s: %s/%s runs as non-root" % (overlay, w["metadata"]["name"], c["name"]))

    worker = deps.get("cap-worker")
    if worker:
        grace = pod_spec(worker).get("terminationGracePeriodSeconds")
        drain = duration_s(cfg.get("worker", {}).get("drain_grace", "25s"))
        check(grace is not None and drain < grace <= drain + 30,
              "%s: worker terminationGracePeriodSeconds %s matched to worker.drain_grace %ss"
              % (overlay, grace, drain))
    return deps


def check_pdb_and_autoscaling(overlay, objs, deps, cfg):
    pdbs = by_kind(objs, "PodDisruptionBudget")
    for dep in ("cap-worker", "cap-scheduler"):
        labels = deps[dep]["spec"]["template"]["metadata"]["labels"] if dep in deps else {}
        check(any(selector_matches(p["spec"]["selector"], labels) for p in pdbs.values()),
              "%s: a PodDisruptionBudget covers %s" % (overlay, dep))
    hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and
            o["spec"]["scaleTargetRef"]["name"] == "cap-worker"]
    sos = [o for o in objs if o["kind"] == "ScaledObject" and
           o["spec"]["scaleTargetRef"]["name"] == "cap-worker"]
    check(len(hpas) + len(sos) == 1,
          "%s: exactly one autoscaler on cap-worker (HPA %d, ScaledObject %d)"
          % (overlay, len(hpas), len(sos)))
    if "cap-worker" in deps:
        check("replicas" not in deps["cap-worker"]["spec"],
              "%s: cap-worker sets no replicas (its autoscaler owns them)" % overlay)
    for h in hpas:
        metrics = h["spec"]["metrics"]
        check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics),
              "%s: the HPA scales on CPU" % overlay)
    auths = by_kind(objs, "TriggerAuthentication")
    for so in sos:
        trig = [t for t in so["spec"]["triggers"] if t["type"] == "redis-streams"]
        check(len(trig) == 1, "%s: ScaledObject has a redis-streams trigger" % overlay)
        for t in trig:
            md = t["metadata"]
            check(md.get("stream") == cfg.get("redis", {}).get("stream", "cap:discovery"),
                  "%s: KEDA stream %r matches redis.stream" % (overlay, md.get("stream")))
            check(md.get("consumerGroup") == cfg.get("redis", {}).get("group", "cap-workers"),
                  "%s: KEDA consumerGroup %r matches redis.group" % (overlay, md.get("consumerGroup")))
            check("pendingEntriesCount" in md, "%s: KEDA scales on pending entries" % overlay)
            ref = t.get("authenticationRef", {}).get("name")
            check(ref in auths, "%s: TriggerAuthentication %s exists" % (overlay, ref))


def check_network_policies(overlay, objs, deps):
    nps = by_kind(objs, "NetworkPolicy")

    def policies_for(labels):
        return [p for p in nps.values() if selector_matches(p["spec"]["podSelector"], labels)]

    w_labels = deps["cap-worker"]["spec"]["template"]["metadata"]["labels"]
    s_labels = deps["cap-scheduler"]["spec"]["template"]["metadata"]["labels"]
    wp, sp = policies_for(w_labels), policies_for(s_labels)
    check(len(wp) == 1 and len(sp) == 1, "%s: one NetworkPolicy each for workers and schedulers"
          % overlay)
    if not wp or not sp:
        return
    wp, sp = wp[0], sp[0]
    for p in (wp, sp):
        check("Egress" in p["spec"].get("policyTypes", []), "%s: %s restricts egress"
              % (overlay, p["metadata"]["name"]))

    blocks = {}
    for rule in wp["spec"].get("egress", []):
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                check(not rule.get("ports"), "%s: worker ipBlock egress is open on every port"
                      % overlay)
                blocks[peer["ipBlock"]["cidr"]] = peer["ipBlock"].get("except", [])
    check(set(blocks) == {"0.0.0.0/0", "::/0"}, "%s: worker egress to 0.0.0.0/0 and ::/0" % overlay)
    required = {"0.0.0.0/0": {"169.254.0.0/16", "100.100.100.200/32"},
                "::/0": {"fe80::/10", "fd00:ec2::254/128"}}
    for cidr, excepts in blocks.items():
        net = ipaddress.ip_network(cidr)
        for e in excepts:
            check(ipaddress.ip_network(e).subnet_of(net), "%s: except %s lies in %s"
                  % (overlay, e, cidr))
        missing = required.get(cidr, set()) - set(excepts)
        check(not missing, "%s: worker egress %s does not except %s" % (overlay, cidr, missing))

    allowed = set()
    for rule in sp["spec"].get("egress", []):
        for peer in rule.get("to", []):
            check("ipBlock" not in peer or ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen
                  > 0, "%s: scheduler egress is not open to the world" % overlay)
        check(rule.get("ports") and rule.get("to"),
              "%s: every scheduler egress rule names peers and ports" % overlay)
        for port in rule.get("ports", []):
            allowed.add(port.get("port"))
    check(allowed == {53, 5432, 6379}, "%s: scheduler egress only DNS, Postgres, Redis: %s"
          % (overlay, sorted(allowed, key=str)))
    migrate = by_kind(objs, "Job").get("cap-migrate")
    if migrate:
        check(policies_for(migrate["spec"]["template"]["metadata"]["labels"]) == [sp],
              "%s: the migration Job falls under the scheduler's NetworkPolicy" % overlay)


def secret_keys_of(overlay, objs, template):
    gen = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].startswith("cap-secrets")]
    if gen:
        return set(gen[0].get("data", {}))
    return set(template.get("stringData", {}))


def main():
    with open(os.path.join(K8S, "base", "secret.template.yaml")) as f:
        template = yaml.safe_load(f)
    check(template["kind"] == "Secret" and template["metadata"]["name"] == "cap-secrets",
          "base/secret.template.yaml is the Secret cap-secrets")
    check({"database-url", "redis-url", "redis-password"} <= set(template.get("stringData", {})),
          "the Secret template has database-url, redis-url, redis-password")

    rendered = {"secret.template.yaml": [template]}
    for overlay in OVERLAYS:
        objs = render(overlay)
        rendered[overlay] = objs
        cfg = check_config(overlay, objs)
        keys = secret_keys_of(overlay, objs, template)
        deps = check_workloads(overlay, objs, cfg, keys)
        check_pdb_and_autoscaling(overlay, objs, deps, cfg)
        check_network_policies(overlay, objs, deps)
        check(any(o["kind"] == "HorizontalPodAutoscaler" for o in objs) ==
              (overlay == "overlays/dev"), "%s: the CPU HPA only in the dev overlay" % overlay)
    validate_schemas(rendered)
    if failures:
        raise AssertionError("%d deployment check(s) failed:\n  %s"
                             % (len(failures), "\n  ".join(failures)))
    print("test_ops_k8s: ok")


if __name__ == "__main__":
    main()
