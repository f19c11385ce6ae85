"""yamllint (Debian package yamllint) on every YAML file under deploy/ and tests/deploy/, and the Grafana files
hold together: the dashboards parse, name the provisioned PostgreSQL data source, and every
panel has a query."""

import glob
import json
import os
import shutil
import subprocess

import yaml

import harness

SRC = os.path.abspath(harness.source_dir())
DEPLOY = os.path.join(SRC, "deploy")


def main():
    exe = shutil.which("yamllint")
    if not exe:
        raise AssertionError("missing: yamllint (Debian package yamllint)")
    files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True) +
                   glob.glob(os.path.join(DEPLOY, "**", "*.yml"), recursive=True) +
                   glob.glob(os.path.join(SRC, "tests", "deploy", "*.yaml")))
    assert len(files) >= 15, "expected the YAML of deploy/, found %d files" % len(files)
    r = subprocess.run([exe, "-f", "parsable", "-s", "-c",
                        os.path.join(SRC, "tests", "deploy", "yamllint.yaml")] + files,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("yamllint found problems:\n" + r.stdout)
    print("yamllint: %d files clean" % len(files))

    uids = set()
    for p in glob.glob(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "*.yaml")):
        with open(p) as f:
            uids |= {d["uid"] for d in yaml.safe_load(f)["datasources"] if d["type"] == "postgres"}
    assert len(uids) == 1, "one provisioned PostgreSQL data source, got %s" % uids
    dashboards = glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))
    assert dashboards, "no dashboards under deploy/grafana/dashboards"
    for p in dashboards:
        with open(p) as f:
            d = json.load(f)
        assert d.get("uid") and d.get("title"), "%s: dashboard uid and title" % p
        panels = [x for x in d["panels"] if x["type"] != "row"]
        assert len(panels) >= 8, "%s: %d panels" % (p, len(panels))
        for x in panels:
            assert x["datasource"]["uid"] in uids, "%s: panel %r uses data source %s" \
                % (p, x["title"], x["datasource"])
            sqls = [t.get("rawSql", "") for t in x.get("targets", [])]
            assert sqls and all(s.strip() for s in sqls), "%s: panel %r has no SQL" % (p, x["title"])
            assert all("cap_" in s for s in sqls), \
                "%s: panel %r does not read a cap_* view" % (p, x["title"])
    print("test_ops_yaml: ok")


if __name__ == "__main__":
    main()
