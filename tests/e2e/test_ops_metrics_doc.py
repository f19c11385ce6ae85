"""Every metric the programs register (cap_metrics_counter/gauge/histogram in the C sources)
is documented in docs/metrics.md with the same type and labels, so the reference operators
build dashboards and alerts from stays complete."""

import glob
import os
import re

import harness

SRC = os.path.abspath(harness.source_dir())
CALL = re.compile(r'cap_metrics_(counter|gauge|histogram)\(\s*"([a-z_:]+)"\s*,\s*'
                  r'(?:"(?:[^"\\]|\\.)*"\s*)+,\s*(NULL|"[^"]*")')


def documented():
    out = {}
    with open(os.path.join(SRC, "docs", "metrics.md")) as f:
        for line in f:
            m = re.match(r"\| `([a-z_:]+)` \| (counter|gauge|histogram) \| ([^|]*)\|", line)
            if m:
                labels = tuple(sorted(re.findall(r"`([a-z_]+)`", m.group(3))))
                out[m.group(1)] = (m.group(2), labels)
    return out


def main():
    docs = documented()
    assert len(docs) >= 15, "docs/metrics.md lists only %d metrics" % len(docs)
    found = {}
    for path in glob.glob(os.path.join(SRC, "*", "**", "*.c"), recursive=True):
        rel = os.path.relpath(path, SRC)
        if rel.startswith(("tests", "build", "bench")) or "/build" in rel:
            continue
        with open(path, errors="replace") as f:
            text = f.read()
        for kind, name, labels in CALL.findall(text):
            labels = () if labels == "NULL" else tuple(sorted(
                l.strip() for l in labels.strip('"').split(",") if l.strip()))
            found[name] = (kind, labels, rel)
    assert found, "no metric registrations found in the sources"
    problems = []
    for name, (kind, labels, rel) in sorted(found.items()):
        if name not in docs:
            problems.append("%s (%s, %s) is not in docs/metrics.md" % (name, kind, rel))
        elif docs[name] != (kind, labels):
            problems.append("%s: registered as %s %s in %s, documented as %s %s"
                            % (name, kind, list(labels), rel, docs[name][0], list(docs[name][1])))
    assert not problems, "metrics and their documentation disagree:\n  " + "\n  ".join(problems)
    print("test_ops_metrics_doc: %d registered metrics documented" % len(found))


if __name__ == "__main__":
    main()
