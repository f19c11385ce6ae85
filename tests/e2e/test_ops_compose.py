"""Offline checks of deploy/docker-compose.yml: dclint (npm) finds nothing, and the stack has
what the operations issue names: postgres and redis with health checks, a one-shot migrate
service the others wait for, scheduler, two worker replicas, Grafana with the PostgreSQL data
source and the dashboards provisioned; every local file it mounts exists."""

import os
import re
import shutil
import subprocess

import yaml

import harness

SRC = os.path.abspath(harness.source_dir())
DEPLOY = os.path.join(SRC, "deploy")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run_dclint():
    exe = os.path.join(SRC, "tests", "deploy", "node_modules", ".bin", "dclint")
    if not os.path.exists(exe):
        raise AssertionError("missing: npm package dclint in tests/deploy/node_modules; install "
                             "with\n  npm install --prefix tests/deploy $(cat scripts/packages-npm.txt)")
    r = subprocess.run([exe, COMPOSE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120, cwd=os.path.join(SRC, "tests", "deploy"))
    print("dclint exit %d%s" % (r.returncode, (":\n" + r.stdout) if r.stdout.strip() else ""))
    check(r.returncode == 0 and "problem" not in r.stdout,
          "dclint reports problems in deploy/docker-compose.yml")


def flatten_keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        key = prefix + "." + k if prefix else k
        out.add(key)
        if isinstance(v, dict):
            out |= flatten_keys(v, key)
    return out


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def dep_condition(svc, other):
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if other in deps else None
    d = deps.get(other)
    return None if d is None else d.get("condition", "service_started")


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    assert m, "cannot read duration %r" % text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def main():
    run_dclint()
    with open(COMPOSE) as f:
        doc = yaml.safe_load(f)  # resolves the YAML merge keys (<<) as Compose does
    services = doc.get("services", {})
    for name in ("postgres", "redis", "migrate", "scheduler", "worker", "grafana"):
        check(name in services, "service %s exists" % name)
    if failures:
        raise AssertionError("compose file lacks services: %s" % failures)

    for name in ("postgres", "redis", "scheduler", "worker", "grafana"):
        hc = services[name].get("healthcheck", {})
        check(hc.get("test") and not hc.get("disable"), "service %s has a health check" % name)

    mig = services["migrate"]
    check(mig.get("command") == ["capctl", "migrate"], "migrate runs capctl migrate")
    check(str(mig.get("restart")) == "no", "migrate is one-shot (restart: \"no\")")
    check(dep_condition(mig, "postgres") == "service_healthy", "migrate waits for postgres health")
    for name in ("scheduler", "worker", "grafana"):
        check(dep_condition(services[name], "migrate") == "service_completed_successfully",
              "%s waits for migrate to complete successfully" % name)
    for name in ("scheduler", "worker"):
        for dep in ("postgres", "redis"):
            check(dep_condition(services[name], dep) == "service_healthy",
                  "%s waits for %s to be healthy" % (name, dep))

    images = {services[n].get("image") for n in ("migrate", "scheduler", "worker")}
    check(len(images) == 1 and None not in images, "one image for migrate, scheduler, worker")
    check(services["scheduler"].get("command") == ["cap-scheduler"], "scheduler runs cap-scheduler")
    check(services["worker"].get("command") == ["cap-worker"], "worker runs cap-worker")
    check(services["worker"].get("deploy", {}).get("replicas") == 2, "worker runs 2 replicas")
    check(not services["worker"].get("ports"), "worker publishes no host port (2 replicas)")
    build = services["migrate"].get("build", {})
    check(os.path.exists(os.path.join(DEPLOY, build.get("context", "."),
                                      build.get("dockerfile", "Dockerfile"))),
          "the build context and Dockerfile exist")

    # Config: the mounted file and the CERTAUTOPILOT_* variables name known keys.
    with open(os.path.join(DEPLOY, "config.example.yaml")) as f:
        known = flatten_keys(yaml.safe_load(f))
    for name in ("migrate", "scheduler", "worker"):
        env = env_of(services[name])
        for var in env:
            if not var.startswith("CERTAUTOPILOT_") or var == "CERTAUTOPILOT_CONFIG":
                continue
            base = var[len("CERTAUTOPILOT_"):]
            base = base[:-len("_FILE")] if base.endswith("_FILE") else base
            check(any(k.upper().replace(".", "_") == base for k in known),
                  "%s: %s is no configuration key" % (name, var))
        for v in services[name].get("volumes", []):
            host = v.split(":")[0]
            if v.split(":")[1] == env.get("CERTAUTOPILOT_CONFIG"):
                with open(os.path.join(DEPLOY, host)) as f:
                    cfg = yaml.safe_load(f) or {}
                for key in flatten_keys(cfg):
                    check(key in known, "%s: config key %s unknown" % (host, key))
                drain = duration_s(cfg.get("worker", {}).get("drain_grace", "25s"))
                if name == "worker":
                    grace = duration_s(services["worker"].get("stop_grace_period", "10s"))
                    check(grace > drain, "worker stop_grace_period %ss exceeds drain_grace %ss"
                          % (grace, drain))

    # Every local file or folder mounted or used as a secret exists.
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("."):
                check(os.path.exists(os.path.join(DEPLOY, src)), "%s mounts %s, which exists"
                      % (name, src))
        for s in svc.get("secrets", []):
            check(s in doc.get("secrets", {}), "%s uses secret %s, which is declared" % (name, s))
    for s, spec in doc.get("secrets", {}).items():
        check(os.path.isfile(os.path.join(DEPLOY, spec.get("file", ""))),
              "secret %s file %s exists" % (s, spec.get("file")))

    # Grafana: data source and dashboards provisioned from deploy/grafana.
    g = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in g.get("volumes", []) if ":" in v}
    prov = mounts.get("/etc/grafana/provisioning")
    check(prov is not None, "grafana mounts its provisioning folder")
    if prov:
        ds = os.path.join(DEPLOY, prov, "datasources")
        dsfiles = [os.path.join(ds, f) for f in os.listdir(ds)] if os.path.isdir(ds) else []
        pg = []
        for p in dsfiles:
            with open(p) as f:
                pg += [d for d in yaml.safe_load(f).get("datasources", []) if d["type"] == "postgres"]
        check(len(pg) == 1, "one PostgreSQL data source is provisioned")
        genv = env_of(g)
        for p in dsfiles:
            with open(p) as f:
                for var in re.findall(r"\$\{([A-Z0-9_]+)\}", f.read()):
                    check(var in genv, "grafana environment sets %s for the data source" % var)
        dp = os.path.join(DEPLOY, prov, "dashboards")
        paths = []
        for p in os.listdir(dp) if os.path.isdir(dp) else []:
            with open(os.path.join(dp, p)) as f:
                paths += [pr["options"]["path"] for pr in yaml.safe_load(f).get("providers", [])]
        check(paths and all(p in mounts for p in paths),
              "the dashboard provider path %s is a mounted folder" % paths)
        for p in paths:
            if p in mounts:
                folder = os.path.join(DEPLOY, mounts[p])
                check(any(n.endswith(".json") for n in os.listdir(folder)),
                      "dashboards are in %s" % folder)
        # The login Grafana uses is created by the postgres init script in cap_dashboard.
        init = services["postgres"].get("volumes", [])
        initdir = [v.split(":")[0] for v in init if "/docker-entrypoint-initdb.d" in v]
        text = ""
        for d in initdir:
            for n in os.listdir(os.path.join(DEPLOY, d)):
                with open(os.path.join(DEPLOY, d, n)) as f:
                    text += f.read()
        check(re.search(r"CREATE ROLE %s LOGIN .*IN ROLE cap_dashboard"
                        % re.escape(genv.get("CAP_GRAFANA_DB_USER", "?")), text),
              "postgres init creates Grafana's login as a member of cap_dashboard")
        pwfile = doc["secrets"].get("grafana_db_password", {}).get("file")
        if pwfile:
            with open(os.path.join(DEPLOY, pwfile)) as f:
                check(f.read().strip() == genv.get("CAP_GRAFANA_DB_PASSWORD"),
                      "Grafana's database password matches the one postgres sets")

    if failures:
        raise AssertionError("%d compose check(s) failed:\n  %s"
                             % (len(failures), "\n  ".join(failures)))
    print("test_ops_compose: ok")


if __name__ == "__main__":
    main()
