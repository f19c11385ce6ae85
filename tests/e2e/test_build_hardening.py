"""The programs are built hardened, as Debian builds its own packages (dpkg-buildflags with
hardening=+all): position-independent (PIE), full RELRO (read-only relocations, bound now),
stack protector and _FORTIFY_SOURCE (checked libc calls). Reads the ELF files with readelf."""

import os
import subprocess

import harness

PROGRAMS = ("worker/cap-worker", "scheduler/cap-scheduler", "ctl/capctl")


def readelf(*args):
    return subprocess.run(["readelf", "-W"] + list(args), check=True, capture_output=True,
                          text=True).stdout


def main():
    for rel in PROGRAMS:
        path = harness.binary(rel)
        header = readelf("-h", path)
        assert "DYN (" in header, "%s is not position-independent (PIE): %s" % (rel, header)
        segments = readelf("-l", path)
        assert "GNU_RELRO" in segments, "%s has no RELRO segment" % rel
        dynamic = readelf("-d", path)
        assert "BIND_NOW" in dynamic or " NOW" in dynamic, "%s is not bound now" % rel
        syms = readelf("--dyn-syms", path)
        assert "__stack_chk_fail" in syms, "%s has no stack protector" % rel
        fortified = sorted({w.split("@")[0] for w in syms.split() if w.startswith("__")
                            and w.split("@")[0].endswith("_chk")})
        assert fortified, "%s calls no fortified libc function (_FORTIFY_SOURCE)" % rel
        print("%s: PIE, full RELRO, stack protector, fortified: %s"
              % (rel, ", ".join(fortified[:6])))
    print("test_build_hardening: ok")


if __name__ == "__main__":
    main()
