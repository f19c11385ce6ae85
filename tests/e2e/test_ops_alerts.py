"""The Prometheus alerting rules (deploy/prometheus/alerts.yaml) load (`promtool check rules`),
fire and stay quiet as their unit tests expect (`promtool test rules
tests/deploy/alerts_test.yaml`), and only use metric names that docs/metrics.md documents."""

import os
import re
import shutil
import subprocess

import harness

SRC = os.path.abspath(harness.source_dir())


def run(args, cwd):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, cwd=cwd)
    print(r.stdout)
    if r.returncode != 0:
        raise AssertionError("%s exited %d" % (" ".join(args), r.returncode))


def main():
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("missing: promtool (Debian package prometheus)")
    rules = os.path.join(SRC, "deploy", "prometheus", "alerts.yaml")
    run([exe, "check", "rules", rules], SRC)
    run([exe, "test", "rules", "alerts_test.yaml"], os.path.join(SRC, "tests", "deploy"))

    with open(os.path.join(SRC, "docs", "metrics.md")) as f:
        documented = set(re.findall(r"^\| `(cap_[a-z_]+)`", f.read(), re.M))
    with open(rules) as f:
        used = set(re.findall(r"\b(cap_[a-z_]+?)(?:_bucket|_sum|_count)?\b", f.read()))
    used = {u for u in used if not u.startswith("cap_source_health")}
    unknown = sorted(u for u in used if u not in documented)
    assert not unknown, "alerts use metrics docs/metrics.md does not list: %s" % unknown
    print("test_ops_alerts: ok")


if __name__ == "__main__":
    main()
