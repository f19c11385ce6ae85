"""Offline checks of deploy/Dockerfile (no Docker engine here): multi-stage on Debian 12, every
path a COPY takes from the build context exists and is not excluded by the .dockerignore,
every path copied from the build stage is produced there, the build stage copies every folder
CMake needs, the runtime stage runs as a non-root user it creates, installs no -dev package but
the runtime library of each -dev package the build uses (from `apt-cache depends`), and every
shared library the built programs need comes from a package the runtime stage installs, and
CMake configures on exactly the files the build stage copies."""

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import harness

SRC = os.path.abspath(harness.source_dir())
DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
PROGRAMS = {"cap-scheduler": "scheduler/cap-scheduler", "cap-worker": "worker/cap-worker",
            "capctl": "ctl/capctl"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def parse(path):
    """Returns (args, stages): the global ARG defaults and a list of stages, each a dict with
    name, base, and instructions [(KEYWORD, text)]. Continuation lines are joined."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    args, stages = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kw, _, rest = line.partition(" ")
        kw = kw.upper()
        rest = rest.strip()
        if kw == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            assert m, "cannot parse FROM %r" % rest
            base = re.sub(r"\$\{?(\w+)\}?", lambda mm: args.get(mm.group(1), mm.group(0)),
                          m.group(1))
            stages.append({"name": m.group(2), "base": base, "ins": []})
        elif kw == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1]["ins"].append((kw, rest))
    return args, stages


def dockerignore_patterns():
    for p in (DOCKERFILE + ".dockerignore", os.path.join(SRC, ".dockerignore")):
        if os.path.exists(p):
            with open(p) as f:
                return [l.strip() for l in f if l.strip() and not l.startswith("#")]
    return []


def ignored(rel, patterns):
    rel = rel.strip("/")
    for p in patterns:
        p = p.lstrip("/")
        if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split("/")[0], p) or \
                fnmatch.fnmatch(rel, p.replace("**/", "*")):
            return True
    return False


def copy_args(rest):
    words = shlex.split(rest)
    flags = {w.split("=", 1)[0]: w.split("=", 1)[1] if "=" in w else "" for w in words
             if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    if paths and paths[0].startswith("["):  # JSON form
        import json
        paths = json.loads(rest[rest.index("["):])
    return flags, paths[:-1], paths[-1]


def apt_packages(stage):
    pkgs = set()
    for kw, rest in stage["ins"]:
        if kw != "RUN":
            continue
        for part in re.split(r"&&|;", rest):
            words = part.split()
            if "apt-get" in words and "install" in words:
                pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


def runtime_deps_of(dev_pkg):
    r = subprocess.run(["apt-cache", "depends", dev_pkg], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise AssertionError("apt-cache depends %s failed (apt lists missing? run apt-get "
                             "update): %s" % (dev_pkg, r.stderr.strip()))
    deps = set()
    for line in r.stdout.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(\S+)", line)
        if m and not m.group(1).endswith("-dev") and m.group(1).startswith("lib") \
                and not m.group(1).startswith("<"):
            deps.add(m.group(1).split(":")[0])
    return deps


def package_of(path):
    r = subprocess.run(["dpkg", "-S", os.path.realpath(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        r = subprocess.run(["dpkg", "-S", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    if r.returncode != 0:
        return None
    return r.stdout.split(":")[0].strip()


def check_linked_libraries(runtime_pkgs):
    """Every library the built programs load belongs to a runtime package (or libc6, which
    every Debian image has). Sanitizer runtimes of the test build are skipped."""
    ldd = shutil.which("ldd")
    assert ldd, "missing: ldd (libc-bin)"
    cache = {}
    for prog, rel in PROGRAMS.items():
        exe = harness.binary(rel)
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                                subprocess.run(["readelf", "-d", exe], stdout=subprocess.PIPE,
                                               text=True).stdout))
        check(needed, "readelf lists the libraries %s needs" % prog)
        out = subprocess.run([ldd, exe], stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line)
            # Libraries pulled in by the runtime packages themselves (libssl3 -> ...) come
            # with them; only the program's own NEEDED entries must be listed.
            if not m or m.group(1) not in needed:
                continue
            soname, path = m.groups()
            if re.match(r"lib(asan|ubsan|lsan|tsan)\.", soname):
                continue
            if path not in cache:
                cache[path] = package_of(path)
            pkg = cache[path]
            if pkg is None:
                check(False, "%s needs %s (%s), which no Debian package provides" %
                      (prog, soname, path))
                continue
            pkg = pkg.split(",")[0].split(":")[0]
            check(pkg in runtime_pkgs or pkg in ("libc6", "libgcc-s1"),
                  "%s links %s from package %s, which the runtime stage does not install"
                  % (prog, soname, pkg))


def stage_build_context(stage, where):
    """Copies what the build stage's COPY instructions copy (relative to its WORKDIR) into
    where, so CMake can be configured on exactly those files."""
    workdir = "/"
    for kw, rest in stage["ins"]:
        if kw == "WORKDIR":
            workdir = os.path.join(workdir, rest)
        if kw != "COPY" or "--from" in rest:
            continue
        _, sources, dest = copy_args(rest)
        target = os.path.join(where, os.path.relpath(os.path.join(workdir, dest), workdir))
        for s in sources:
            src = os.path.join(SRC, s)
            if os.path.isdir(src):
                shutil.copytree(src, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            elif dest.endswith("/") or dest in (".", "./") or len(sources) > 1:
                os.makedirs(target, exist_ok=True)
                shutil.copy(src, os.path.join(target, os.path.basename(s)))
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy(src, target)


def configure_like_build_stage(stage):
    """cmake configures on the files the build stage copies (no Docker engine needed)."""
    with tempfile.TemporaryDirectory(prefix="cap-docker-ctx-") as tmp:
        ctx = os.path.join(tmp, "src")
        os.makedirs(ctx)
        stage_build_context(stage, ctx)
        r = subprocess.run(["cmake", "-S", ctx, "-B", os.path.join(tmp, "build"),
                            "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DENABLE_SANITIZERS=OFF"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        check(r.returncode == 0, "cmake configures on the files the build stage copies:\n%s"
              % r.stdout[-3000:])


def main():
    args, stages = parse(DOCKERFILE)
    check(len(stages) >= 2, "multi-stage build (got %d stages)" % len(stages))
    for st in stages:
        check(re.match(r"(docker\.io/(library/)?)?debian:(12|bookworm)", st["base"]),
              "stage %s builds on Debian 12, not %s" % (st["name"], st["base"]))
    names = {st["name"]: st for st in stages if st["name"]}
    runtime = stages[-1]
    patterns = dockerignore_patterns()

    for st in stages:
        for kw, rest in st["ins"]:
            if kw not in ("COPY", "ADD"):
                continue
            flags, sources, dest = copy_args(rest)
            if "--from" in flags:
                other = names.get(flags["--from"])
                check(other is not None, "COPY --from=%s names a stage" % flags["--from"])
                if other:
                    made = " ".join(r for k, r in other["ins"] if k in ("RUN", "WORKDIR", "COPY"))
                    for s in sources:
                        check(s.rstrip("/") in made,
                              "COPY --from=%s %s: the path is produced in that stage"
                              % (flags["--from"], s))
                continue
            for s in sources:
                full = os.path.join(SRC, s)
                check(os.path.exists(full), "COPY %s: exists in the build context" % s)
                check(not ignored(s, patterns), "COPY %s: not excluded by .dockerignore" % s)

    # The build stage has what CMake reads: every add_subdirectory and the migrations.
    build = [st for st in stages if st is not runtime]
    copied = set()
    for st in build:
        for kw, rest in st["ins"]:
            if kw == "COPY" and "--from" not in rest:
                copied |= {s.rstrip("/") for s in copy_args(rest)[1]}
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        subdirs = re.findall(r"add_subdirectory\((\w+)\)", f.read())
    for d in subdirs + ["migrations", "CMakeLists.txt"]:
        check(d in copied or "%s/CMakeLists.txt" % d in copied,
              "the build stage copies %s, which the CMake build needs" % d)
    buildruns = " ".join(r for st in build for k, r in st["ins"] if k == "RUN")
    for prog in PROGRAMS:
        check(re.search(r"--target[^&]*\b%s\b" % re.escape(prog), buildruns),
              "the build stage builds %s" % prog)

    # Runtime stage: non-root user it creates, no build tools, the three programs.
    users = [r for k, r in runtime["ins"] if k == "USER"]
    check(users, "the runtime stage sets USER")
    if users:
        user = users[-1].split(":")[0]
        check(user not in ("root", "0"), "the runtime stage runs as non-root, not %s" % user)
        runs = " ".join(r for k, r in runtime["ins"] if k == "RUN")
        check(re.search(r"useradd\b[^&]*(--uid %s\b|\b%s$|\b%s\b)" % (user, user, user), runs),
              "the runtime stage creates its user %s" % user)
    rpkgs = apt_packages(runtime)
    bpkgs = set().union(*(apt_packages(st) for st in build)) if build else set()
    check(rpkgs, "the runtime stage installs its libraries with apt-get")
    for p in rpkgs:
        check(not p.endswith("-dev") and p not in ("build-essential", "cmake", "gcc", "clang"),
              "the runtime stage installs no build package (%s)" % p)
    for dev in sorted(p for p in bpkgs if p.endswith("-dev")):
        deps = runtime_deps_of(dev)
        check(deps & rpkgs, "runtime library of %s (one of %s) is installed in the runtime stage"
              % (dev, sorted(deps)))
    runtime_text = " ".join(r for k, r in runtime["ins"])
    for prog in PROGRAMS:
        check(prog in buildruns and "/usr/local/bin" in runtime_text,
              "the runtime stage carries %s" % prog)
    check(any(k in ("CMD", "ENTRYPOINT") for k, _ in runtime["ins"]),
          "the runtime stage names a default command")
    check_linked_libraries(rpkgs)
    for st in build:
        if any(k == "RUN" and "cmake" in r for k, r in st["ins"]):
            configure_like_build_stage(st)

    if failures:
        raise AssertionError("%d Dockerfile check(s) failed:\n  %s"
                             % (len(failures), "\n  ".join(failures)))
    print("test_ops_dockerfile: ok (%d stages, runtime packages: %s)"
          % (len(stages), " ".join(sorted(rpkgs))))


if __name__ == "__main__":
    main()
