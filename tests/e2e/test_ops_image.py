"""The image, proven: deploy/Dockerfile is built with podman and no registry at all, and the
system runs from the image.

The base the Dockerfile names (`FROM debian:12-slim`) is made from Debian packages by
scripts/image-base.sh: debootstrap --variant=minbase bookworm, trimmed as debian:12-slim is,
then `podman import` as docker.io/library/debian:12-slim, the name that FROM finds. `podman
build --pull=never` builds the unmodified Dockerfile (its apt-get steps use the host network,
which reaches the Debian mirror). From the image, `capctl migrate`, one cap-scheduler and one
cap-worker run against the test's own PostgreSQL and Redis on 127.0.0.1 (`--network host`,
read-only root, every capability dropped, as uid 10001, the configuration in a mounted file and
the URLs in `*_FILE` secrets, as on Kubernetes). capctl from the image adds a network_scan
source over a fleet of TLS servers on 127.x loopback addresses and triggers it; the inventory
must then hold exactly the fleet's endpoints and certificates, by SHA-256 fingerprint.

Podman runs as root with a containers.conf and a storage.conf of the test's own
(CONTAINERS_CONF, CONTAINERS_STORAGE_CONF; nothing in /etc is changed): runc (crun fails on
these machines: cgroups in hybrid mode), default_ulimits within the machine's hard limits
(nofile 20000, nproc 32768 here; podman's default nofile of 1048576 makes runc refuse to start
the container), cgroupfs, no journald. Everything the test writes (podman's storage and run
state, the root file system being built, PostgreSQL's data) lives in tmpfs mounts, and the test
runs as the first process of new PID and mount namespaces: when ctest kills it, the kernel
kills every container and conmon with it (a killed `podman run` alone would leave its container
running) and the mounts, images included, go away; only empty cgroups are left. On a normal
end, passed or failed, the containers are removed (podman rm -f) and so are the images (podman
rmi). Podman is driven with `podman run` directly: podman-compose 1.0.3
from Debian ignores `depends_on` conditions and replicas and is no base for a test.

Skipped with a NOTE only when not root or when the Debian mirror cannot be reached (then no
base image can be made). Each step prints its time; on 2 cores the whole test takes 2-4
minutes: debootstrap 30-60 s, the build 60-100 s (apt-get in both stages, and the compile).

The compose file's other images: PostgreSQL's and Redis's can be built offline from the same
base (Debian ships postgresql-15 and redis-server 7.0: FROM debian:12-slim and apt-get
install), though without the official images' entrypoint scripts (POSTGRES_PASSWORD, initdb.d)
that deploy/docker-compose.yml relies on. Grafana's cannot be had offline at all: Debian has
no Grafana package and no registry is reachable. So the compose stack as a whole is not run
here; its file is checked offline by test_ops_compose.py.
"""

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import harness
import tlsfleet

SRC = os.path.abspath(harness.source_dir())
DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
BASE_TAG = "docker.io/library/debian:12-slim"  # what `FROM ${DEBIAN_IMAGE}` finds by default
IMAGE = "localhost/certautopilot-discovery:e2e"
EXIT_NO_MIRROR = 3  # scripts/image-base.sh: the Debian mirror cannot be reached
TOOLS = ("podman", "runc", "debootstrap", "unshare", "mount", "umount")
CTR_CONFIG = "/etc/certautopilot/config.yaml"
CTR_SECRETS = "/run/secrets/certautopilot"
PRIVATE_DIRS = ("/run/runc", "/run/libpod", "/run/containers", "/var/lib/containers")


class Steps:
    """Times each step and prints it as it ends, and all of them at the end."""

    def __init__(self):
        self.rows = []
        self.start = time.time()

    @contextlib.contextmanager
    def __call__(self, name):
        print("step %s ..." % name)
        t0 = time.time()
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.time() - t0
            self.rows.append((name, dt, ok))
            print("step %s: %.1fs%s" % (name, dt, "" if ok else " (failed)"))

    def summary(self):
        print("timings:")
        for name, dt, ok in self.rows:
            print("  %-34s %6.1fs%s" % (name, dt, "" if ok else "  failed"))
        print("  %-34s %6.1fs" % ("total", time.time() - self.start))


def in_own_namespaces():
    """Runs the rest of the test in new PID and mount namespaces (unshare), as their first
    process. The parent waits; if it is killed, unshare gets SIGKILL (parent-death signal) and
    kills our first process (--kill-child), and the kernel then kills every process of the PID
    namespace: containers, conmon, PostgreSQL, Redis. Mounts made in the namespace (the tmpfs
    with podman's storage) vanish with it. The folder the tmpfs is mounted on is made here and
    removed here once the namespace is gone (inside, it is a mount point until the end).
    Returns that folder."""
    if os.environ.get("CAP_IMAGE_NS") == "1":
        if os.getpid() == 1:
            _reap_as_init()
        return os.environ["CAP_IMAGE_WORK"]
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise AssertionError("cannot make PID and mount namespaces (unshare): %s"
                             % probe.stderr.strip()[:300])
    argv = ["unshare", "--pid", "--kill-child", "--mount", "--propagation", "private",
            "--mount-proc", sys.executable, "-u"] + sys.argv
    work = tempfile.mkdtemp(prefix="cap-e2e-image-", dir="/var/tmp")
    sys.stdout.flush()
    try:
        p = subprocess.Popen(argv, env=dict(os.environ, CAP_IMAGE_NS="1", CAP_IMAGE_WORK=work),
                             preexec_fn=harness._set_pdeathsig)
        rc = p.wait()
    finally:
        try:
            os.rmdir(work)
        except OSError as e:
            print("cleanup: %s" % e, file=sys.stderr)
    sys.exit(rc if rc >= 0 else 128 - rc)


def _reap_as_init():
    """As PID 1 of the namespace: forks the test and reaps every orphan (conmon's children end
    up here) until the test exits, then exits with its code, which ends the namespace."""
    pid = os.fork()
    if pid == 0:
        return
    while True:
        try:
            w, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if w == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def hard_limit(which, cap):
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def configure_podman(work):
    """Writes containers.conf and storage.conf into work and points podman at them."""
    nofile = hard_limit(resource.RLIMIT_NOFILE, 1048576)
    nproc = hard_limit(resource.RLIMIT_NPROC, 32768)
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write("# written by tests/e2e/test_ops_image.py\n"
                "[containers]\n"
                "default_ulimits = [\"nofile=%d:%d\", \"nproc=%d:%d\"]\n"
                "log_driver = \"k8s-file\"\n"
                "[engine]\n"
                "runtime = \"runc\"\n"
                "cgroup_manager = \"cgroupfs\"\n"
                "events_logger = \"file\"\n"
                "tmp_dir = \"%s\"\n" % (nofile, nofile, nproc, nproc,
                                         os.path.join(work, "libpod-tmp")))
    storage = os.path.join(work, "storage.conf")
    with open(storage, "w") as f:
        f.write("[storage]\n"
                "driver = \"overlay\"\n"
                "graphroot = \"%s\"\n"
                "runroot = \"%s\"\n" % (os.path.join(work, "storage"), os.path.join(work, "run")))
    os.environ["CONTAINERS_CONF"] = conf
    os.environ["CONTAINERS_STORAGE_CONF"] = storage
    print("podman: runc, ulimits nofile=%d nproc=%d, storage in %s" % (nofile, nproc, work))


def podman(*args, check=True, timeout=120, log=None):
    """Runs podman ARGS; returns CompletedProcess (text). With log, its output goes there."""
    argv = ["podman"] + [str(a) for a in args]
    if log:
        with open(log, "w") as f:
            r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
    else:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError("podman %s exited %d\n%s%s" % (
            " ".join(argv[1:4]), r.returncode, tail_of(log) if log else r.stdout[-3000:],
            "" if log else r.stderr[-3000:]))
    return r


def tail_of(path, n=60):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def make_base(work):
    """scripts/image-base.sh into a folder of the tmpfs. Returns False when the Debian mirror
    cannot be reached."""
    rootfs_dir = os.path.join(work, "base")
    os.mkdir(rootfs_dir)
    r = subprocess.run(["bash", os.path.join(SRC, "scripts", "image-base.sh"), BASE_TAG],
                       env=dict(os.environ, CAP_IMAGE_WORKDIR=rootfs_dir), capture_output=True,
                       text=True, timeout=420, stdin=subprocess.DEVNULL)
    sys.stdout.write(r.stderr[-3000:])
    if r.returncode == EXIT_NO_MIRROR:
        return False
    if r.returncode != 0:
        raise AssertionError("scripts/image-base.sh exited %d" % r.returncode)
    return True


def wait_ready(name, port, timeout=60):
    """Waits for /readyz of a container's metrics listener to answer 200."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        if not state.stdout.startswith("running"):
            raise AssertionError("container %s is not running: %s" % (name, state.stdout.strip()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.3)
    raise AssertionError("%s: /readyz on 127.0.0.1:%d not 200 within %ds (last: %s)"
                         % (name, port, timeout, last))


def as_rows(text):
    v = json.loads(text)
    return v if isinstance(v, list) else [v]


def check_inventory(c, fleet, servers, run_id, capctl):
    """The run found exactly the fleet's live endpoints, each with the certificate it serves;
    capctl's inventory lists exactly those certificates and the intermediate."""
    obs = c.sql_dicts(
        "SELECT host(e.address) AS address, e.port, o.outcome, o.fingerprint_sha256, o.chain "
        "FROM endpoint_observations o JOIN endpoints e ON e.id = o.endpoint_id "
        "WHERE o.run_id = %s", (run_id,))
    got = {(o["address"], o["port"]): o for o in obs}
    want = {(s.addr, s.port): s for s in servers.values()}
    assert set(got) == set(want), "endpoints found %s, expected %s" % (sorted(got), sorted(want))
    assert c.sql("SELECT count(*) FROM endpoints")[0][0] == len(want), \
        c.sql("SELECT host(address), port FROM endpoints")
    for key, s in want.items():
        o = got[key]
        assert o["outcome"] == "ok", (s.name, o)
        assert o["fingerprint_sha256"] == s.cert.fingerprint, (s.name, o["fingerprint_sha256"],
                                                              s.cert.fingerprint)
        assert o["chain"] == [tlsfleet.fingerprint_der(x.public_bytes(
            tlsfleet.serialization.Encoding.DER)) for x in s.cert.chain], (s.name, o["chain"])
    intermediate = tlsfleet.fingerprint_der(
        fleet.intermediate.public_bytes(tlsfleet.serialization.Encoding.DER))
    inv = as_rows(capctl("--json", "inventory").stdout)
    fps = {r["fingerprint_sha256"] for r in inv}
    expect = {s.cert.fingerprint for s in servers.values()} | {intermediate}
    assert fps == expect, "capctl inventory lists %s, expected %s" % (sorted(fps), sorted(expect))
    print("inventory: %d endpoints, %d certificates, fingerprints as served"
          % (len(got), len(fps)))


def check_logs(name, run_id):
    """Every line a program printed is a JSON object (stdout is no terminal); the worker's
    name the run."""
    out = podman("logs", name).stdout
    lines = [l for l in out.splitlines() if l.strip()]
    assert lines, "%s printed nothing" % name
    events = []
    for l in lines:
        try:
            events.append(json.loads(l))
        except ValueError:
            raise AssertionError("%s printed a line that is not JSON: %r" % (name, l[:200]))
    return [e for e in events if e.get("run_id") == run_id]


def run_test(steps, work):
    with steps("base image (debootstrap + import)"):
        if not make_base(work):
            print("NOTE: the Debian mirror cannot be reached, so no base image can be made "
                  "offline: the image test is skipped")
            return False
    with steps("podman build deploy/Dockerfile"):
        log = os.path.join(work, "build.log")
        podman("build", "--pull=never", "--network", "host", "-f", DOCKERFILE, "-t", IMAGE, SRC,
               timeout=480, log=log)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    print("image %s: %.1f MB, user %s" % (IMAGE, size / 1e6, user))
    assert user.split(":")[0] == "10001", "the image runs as %r, not 10001" % user

    with harness.Cluster(name="image", config={"logging.level": "info"}) as c:
        with steps("fleet and container config"):
            fleet = tlsfleet.Fleet(c.tmpdir)
            servers = {
                "rsa": fleet.tls("rsa", fleet.cert("rsa.image.test", key=fleet.rsa(2048))),
                "p256": fleet.tls("p256", fleet.cert("p256.image.test", key=fleet.ecdsa("P-256"))),
                "chain": fleet.tls("chain", fleet.cert("chain.image.test", via_intermediate=True)),
                "self": fleet.tls("self", fleet.cert("self.image.test", self_signed=True)),
            }
            fleet.add("nothing", "refused")  # an address of the range where nothing listens
            fleet.start()
            ctr = os.path.join(work, "ctr")
            os.makedirs(os.path.join(ctr, "secrets"))
            for name, value in (("database-url", c.pg_url), ("redis-url", c.redis_url)):
                with open(os.path.join(ctr, "secrets", name), "w") as f:
                    f.write(value + "\n")
            with open(os.path.join(ctr, "config.yaml"), "w") as f:
                f.write(harness.render_yaml({
                    "logging.level": "info", "logging.format": "json", "scheduler.tick": "1s",
                    "worker.reclaim_idle": "3s", "network.allow_loopback": True}))
            for root, dirs, files in os.walk(ctr):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)  # the image's uid 10001 reads them
        common = ["--pull=never", "--network", "host", "--read-only", "--cap-drop", "all",
                  "--security-opt", "no-new-privileges",
                  "-v", "%s:%s:ro" % (os.path.join(ctr, "config.yaml"), CTR_CONFIG),
                  "-v", "%s:%s:ro" % (os.path.join(ctr, "secrets"), CTR_SECRETS),
                  "-e", "CERTAUTOPILOT_CONFIG=" + CTR_CONFIG,
                  "-e", "CERTAUTOPILOT_DATABASE_URL_FILE=%s/database-url" % CTR_SECRETS,
                  "-e", "CERTAUTOPILOT_REDIS_URL_FILE=%s/redis-url" % CTR_SECRETS]
        counter = [0]

        def capctl(*args, timeout=180):
            counter[0] += 1
            return podman("run", "--rm", "--name", "cap-e2e-capctl-%d" % counter[0], *common,
                          IMAGE, "capctl", *args, timeout=timeout)

        with steps("capctl --help, capctl migrate"):
            r = podman("run", "--rm", "--pull=never", IMAGE, "capctl", "--help")
            assert "usage: capctl" in r.stdout + r.stderr, r.stdout + r.stderr
            capctl("migrate")
            applied = c.sql("SELECT count(*) FROM schema_migrations")[0][0]
            files = len([f for f in os.listdir(os.path.join(SRC, "migrations"))
                         if f.endswith(".sql")])
            assert applied == files, "%d migrations applied, %d in migrations/" % (applied, files)

        ports = {"cap-e2e-scheduler": harness.free_port(), "cap-e2e-worker": harness.free_port()}
        with steps("start scheduler and worker"):
            podman("run", "-d", "--name", "cap-e2e-scheduler", *common,
                   "-e", "CERTAUTOPILOT_TELEMETRY_METRICS_LISTEN=127.0.0.1:%d"
                   % ports["cap-e2e-scheduler"], IMAGE, "cap-scheduler")
            # no command: the image's CMD is cap-worker
            podman("run", "-d", "--name", "cap-e2e-worker", *common,
                   "-e", "CERTAUTOPILOT_TELEMETRY_METRICS_LISTEN=127.0.0.1:%d"
                   % ports["cap-e2e-worker"], IMAGE)
            for name, port in ports.items():
                wait_ready(name, port)
        try:
            with steps("add and trigger a network_scan"):
                capctl("source", "add", "fleet", "--type", "network_scan", "--cidr", fleet.cidr(),
                       "--port", fleet.port, "--timeout", "2s", "--concurrency", "16")
                r = capctl("--json", "source", "trigger", "fleet", "--wait", "--timeout", "120s")
                run = as_rows(r.stdout)[0]
                print("run %s: %s, %s endpoints ok" % (run["id"], run["status"],
                                                       run.get("ok_count")))
                assert run["status"] == "succeeded", run
                assert run["targets_total"] == 64, run["targets_total"]
            with steps("check the inventory"):
                check_inventory(c, fleet, servers, run["id"], capctl)
            with steps("stop scheduler and worker (SIGTERM)"):
                podman("stop", "-t", "30", *ports, timeout=90)
                for name in ports:
                    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout
                    assert code.strip() == "0", "%s exited %s on SIGTERM" % (name, code.strip())
                assert check_logs("cap-e2e-worker", run["id"]), \
                    "the worker's log never names run %s" % run["id"]
                check_logs("cap-e2e-scheduler", run["id"])
        except BaseException:
            for name in ports:
                r = podman("logs", "--tail", "60", name, check=False)
                print("----- podman logs %s (last 60 lines) -----\n%s%s"
                      % (name, r.stdout, r.stderr), file=sys.stderr)
            raise
        finally:
            fleet.stop()
    return True


def wait_podman_quiet(timeout=30):
    """Waits until no podman or conmon process is left in the namespace. When a container ends,
    conmon starts `podman container cleanup` in the background; run after the unmount, it
    would write podman's folders onto the disk under the mount point."""
    deadline = time.time() + timeout
    while True:
        busy = []
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() in ("podman", "conmon"):
                        busy.append(pid)
            except (OSError, ValueError):
                continue
        if not busy:
            return
        if time.time() > deadline:
            print("cleanup: podman processes still running after %ds: %s" % (timeout, busy),
                  file=sys.stderr)
            return
        time.sleep(0.1)


def cleanup(steps, work):
    """Removes every container and image of the test's storage, then unmounts the tmpfs.
    Returns what podman still listed after the removal (nothing, normally)."""
    with steps("cleanup (podman rm -f, rmi)"):
        podman("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
        podman("rmi", "--all", "--force", check=False, timeout=120)
        left = podman("ps", "--all", "--quiet", check=False).stdout.split() + \
            podman("images", "--all", "--quiet", check=False).stdout.split()
        wait_podman_quiet()
        subprocess.run(["umount", "-R", "-l", work], check=False)
        for d in PRIVATE_DIRS:
            subprocess.run(["umount", "-l", d], check=False)
    return left


def main():
    if os.geteuid() != 0:
        print("NOTE: not root: podman (as root), debootstrap and a tmpfs need root, so the "
              "image test is skipped")
        return
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, ("missing: %s (scripts/packages-test.txt lists them; scripts/test.sh "
                         "installs them)" % " ".join(missing))
    work = in_own_namespaces()
    steps = Steps()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g,mode=0755", "cap-e2e-image", work],
                   check=True)
    # Every temporary file goes there too: the harness's PostgreSQL and Redis, the fleet's
    # certificates, podman's own (TMPDIR).
    tmp = os.path.join(work, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    # What podman and runc keep at fixed places (runc's state, libpod's run files, the blob
    # info cache) goes to private tmpfs mounts too, gone with the namespace.
    for d in PRIVATE_DIRS:
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "cap-e2e-image",
                        d], check=True)
    left = []
    try:
        configure_podman(work)
        info = podman("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}")
        runtime, graphroot = info.stdout.split()
        assert runtime == "runc" and graphroot.startswith(work), info.stdout
        ran = run_test(steps, work)
    finally:
        left = cleanup(steps, work)
        steps.summary()
    assert not left, "podman still lists %s after the cleanup" % left
    print("test_ops_image: ok" if ran else "test_ops_image: skipped (see the NOTE above)")


if __name__ == "__main__":
    main()
