"""End-to-end test harness: a throw-away PostgreSQL and Redis on free loopback ports, plus
helpers to run capctl, cap-scheduler and cap-worker against them.

    import harness
    with harness.Cluster(name="scan") as c:
        c.capctl_ok("migrate")
        w = c.start_worker()
        ...

Servers run as user `nobody` when the tests run as root, in a temporary folder that `nobody`
can reach. Every process the harness starts is killed when the `with` block ends, when the
interpreter exits (atexit), on SIGTERM/SIGINT, and (through the parent-death signal) when the
test process itself is killed. When the block ends with an exception, the tail of every log
is printed. When it ends cleanly, programs still running get SIGTERM (so LeakSanitizer runs
at their exit) and a sanitizer report in any program log fails the test. A program that
crashes (SIGSEGV, SIGABRT, ...) fails wait_run at once instead of at its timeout. Set
CAP_E2E_KEEP=1 to keep the temporary folder for inspection.
"""

import atexit
import ctypes
import json
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
import psycopg2.extras
import redis as redis_mod

PG_BIN = os.environ.get("CAP_PG_BIN", "/usr/lib/postgresql/15/bin")
REDIS_SERVER = os.environ.get("CAP_REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")
LOG_TAIL_LINES = 80
FINAL_STATUSES = ("succeeded", "partial", "failed", "dead")

# Sanitizer reports that fail a test when they appear in the log of a process we started.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")

# Deaths by these signals are crashes (tests send SIGKILL/SIGTERM/SIGINT on purpose).
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL)

_live_clusters = []
_PR_SET_PDEATHSIG = 1


def _set_pdeathsig():
    """preexec_fn: the child gets SIGKILL when the test process dies (covers SIGKILL by ctest)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def _cleanup_all():
    for c in list(_live_clusters):
        try:
            c.close()
        except Exception as e:  # keep cleaning the others
            print("harness: cleanup of %s failed: %s" % (c.name, e), file=sys.stderr)


def _on_signal(signum, frame):
    # Turn SIGTERM/SIGINT into an exception so `with` blocks and atexit clean up.
    raise SystemExit(128 + signum)


atexit.register(_cleanup_all)
if hasattr(signal, "SIGTERM"):
    try:
        signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not the main thread
        pass


def free_port():
    """A port on 127.0.0.1 that was free a moment ago (bind to 0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def build_dir():
    d = os.environ.get("CAP_BUILD_DIR")
    if not d:
        raise AssertionError("CAP_BUILD_DIR is not set: run the e2e tests through ctest, or set "
                             "CAP_BUILD_DIR to the cmake build folder")
    return d


def source_dir():
    d = os.environ.get("CAP_SOURCE_DIR")
    if d:
        return d
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def binary(rel):
    """Path of a built program, e.g. binary("worker/cap-worker"); fails naming what is missing."""
    p = os.path.join(build_dir(), rel)
    if not os.access(p, os.X_OK):
        raise AssertionError("missing program %s: it is not built (yet) in CAP_BUILD_DIR=%s"
                             % (rel, build_dir()))
    return p


def run_driver(rel, *args, timeout=300):
    """Runs a C test driver built under tests/ (rel, e.g. "tests/test_pg") with args; prints what
    it printed and raises AssertionError when it fails or a sanitizer reported anything."""
    p = subprocess.run([binary(rel)] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    print(p.stdout, end="")
    if p.returncode != 0:
        raise AssertionError("%s failed (rc %d):\n%s%s" % (rel, p.returncode, p.stdout, p.stderr))
    if "ERROR: AddressSanitizer" in p.stderr or "runtime error:" in p.stderr:
        raise AssertionError("sanitizer report from %s:\n%s" % (rel, p.stderr))
    return p


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = prefix + k if not prefix else prefix + "." + k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        raise TypeError("nested dict inside a list is not supported")
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def render_yaml(flat):
    """Renders {"a.b": 1, "a.c": "x"} as nested block YAML (sections sorted, keys in order)."""
    tree = {}
    for key, v in flat.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    lines = []

    def emit(node, indent):
        for k, v in node.items():
            if isinstance(v, dict):
                lines.append("%s%s:" % ("  " * indent, k))
                emit(v, indent + 1)
            elif isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, dict) for x in v):
                lines.append("%s%s:" % ("  " * indent, k))
                for item in v:
                    first = True
                    for ik, iv in item.items():
                        lead = "- " if first else "  "
                        lines.append("%s%s%s: %s" % ("  " * (indent + 1), lead, ik, _yaml_scalar(iv)))
                        first = False
            else:
                lines.append("%s%s: %s" % ("  " * indent, k, _yaml_scalar(v)))

    emit(tree, 0)
    return "\n".join(lines) + "\n"


class Cluster:
    """PostgreSQL + Redis in a temporary folder, and the CertAutoPilot processes of one test."""

    def __init__(self, name="e2e", config=None, start_redis=True):
        """config: extra or overriding config keys, dotted ("scheduler.tick": "60s") or nested;
        a value of None removes a key from the defaults."""
        self.name = name
        self._extra_config = dict(_flatten(config or {}))
        self._start_redis_at_enter = start_redis
        self.tmpdir = None
        self.procs = []         # [(Popen, logpath, label)]
        self._servers = {}      # "postgres"/"redis" -> (Popen, logpath)
        self._logs = []         # every log path, in start order
        self._pg = None
        self._closed = False
        self._counter = 0
        self.as_root = os.geteuid() == 0
        self.pg_port = None
        self.redis_port = None

    # ----------------------------------------------------------------- set-up and tear-down

    def __enter__(self):
        _live_clusters.append(self)
        try:
            self._make_tmpdir()
            self._start_postgres()
            if self._start_redis_at_enter:
                self.start_redis()
            else:
                self.redis_port = free_port()
            self.redis_url = "redis://127.0.0.1:%d/0" % self.redis_port
            self.config = {
                "database.url": self.pg_url,
                "redis.url": self.redis_url,
                "logging.format": "json",
                "logging.level": "debug",
                "scheduler.tick": "1s",
                "worker.reclaim_idle": "3s",
                "network.allow_loopback": True,
                "telemetry.metrics_listen": "off",
            }
            for k, v in self._extra_config.items():
                if v is None:
                    self.config.pop(k, None)
                else:
                    self.config[k] = v
            self.config_path = self.write_config(self.config, "config.yaml")
        except BaseException:
            self.dump_logs("set-up of cluster %r failed" % self.name)
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        if failed:
            self.dump_logs("test failed: %s: %s" % (exc_type.__name__, exc))
            self.close()
            return False
        # A clean end: programs still running get SIGTERM, so that LeakSanitizer runs at their
        # exit, then every program log is checked for sanitizer reports.
        for p, _, label in self.procs:
            if p.poll() is None:
                rc = self._kill(p, signal.SIGTERM, 20)
                if rc != 0:
                    print("harness: %s exited %s on SIGTERM at the end of the test"
                          % (label, rc), file=sys.stderr)
        try:
            self.check_sanitizers()
        except AssertionError:
            self.dump_logs("sanitizer report in a process log")
            self.close()
            raise
        self.close()
        return False

    def _make_tmpdir(self):
        base = tempfile.gettempdir()
        if self.as_root and not self._reachable_by_others(base):
            base = "/tmp"
        self.tmpdir = tempfile.mkdtemp(prefix="cap-e2e-%s-" % self.name, dir=base)
        os.chmod(self.tmpdir, 0o755)
        self.logdir = os.path.join(self.tmpdir, "logs")
        os.mkdir(self.logdir)
        if self.as_root:
            pw = pwd.getpwnam("nobody")
            self._uid, self._gid = pw.pw_uid, grp.getgrnam("nogroup").gr_gid
            os.chown(self.tmpdir, self._uid, self._gid)

    @staticmethod
    def _reachable_by_others(path):
        p = os.path.abspath(path)
        while True:
            st = os.stat(p)
            if not st.st_mode & 0o001:
                return False
            parent = os.path.dirname(p)
            if parent == p:
                return True
            p = parent

    def _server_dir(self, sub):
        d = os.path.join(self.tmpdir, sub)
        if not os.path.isdir(d):
            os.mkdir(d, 0o700)
            if self.as_root:
                os.chown(d, self._uid, self._gid)
        return d

    def _server_cmd(self, argv):
        if self.as_root:
            return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                    "--pdeathsig", "KILL"] + argv
        return argv

    def _open_log(self, label):
        path = os.path.join(self.logdir, "%s.log" % label)
        self._logs.append(path)
        return path, open(path, "ab", buffering=0)

    def _spawn_server(self, label, argv):
        path, f = self._open_log(label)
        try:
            p = subprocess.Popen(self._server_cmd(argv), stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, cwd=self.tmpdir,
                                 start_new_session=True,
                                 preexec_fn=None if self.as_root else _set_pdeathsig)
        finally:
            f.close()
        return p, path

    def _start_postgres(self):
        data = os.path.join(self._server_dir("pg"), "data")
        sockdir = self._server_dir("pgsock")
        initlog, f = self._open_log("initdb")
        try:
            rc = subprocess.call(self._server_cmd(
                [os.path.join(PG_BIN, "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "-N", "-D", data]), stdout=f, stderr=subprocess.STDOUT,
                cwd=self.tmpdir)
        finally:
            f.close()
        if rc != 0:
            raise AssertionError("initdb failed with exit code %d (see %s)" % (rc, initlog))
        self._logs.remove(initlog)  # its chatter is no help once it worked
        last_err = None
        for _ in range(5):
            port = free_port()
            p, path = self._spawn_server("postgres", [
                os.path.join(PG_BIN, "postgres"), "-D", data, "-p", str(port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + sockdir,
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                "-c", "shared_buffers=32MB", "-c", "max_connections=200",
                "-c", "log_min_messages=warning", "-c", "log_line_prefix=%m [%p] "])
            self._servers["postgres"] = (p, path)
            try:
                self._wait_port(p, port, "postgres", 60)
                self.pg_port = port
                break
            except AssertionError as e:
                last_err = e
                self._kill(p, signal.SIGKILL, 5)
                if "already in use" not in _tail(path, 20):
                    raise
        else:
            raise last_err
        self.pg_admin_url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.pg_port
        deadline = time.time() + 30
        while True:
            try:
                conn = psycopg2.connect(self.pg_admin_url)
                break
            except psycopg2.OperationalError as e:  # "the database system is starting up"
                if time.time() > deadline:
                    raise AssertionError("postgres did not accept connections: %s" % e)
                time.sleep(0.1)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE certautopilot")
        conn.close()
        self.pg_url = "postgresql://postgres@127.0.0.1:%d/certautopilot" % self.pg_port

    def start_redis(self):
        """Starts Redis (again) on the cluster's port with the same data folder."""
        if "redis" in self._servers and self._servers["redis"][0].poll() is None:
            raise AssertionError("redis is already running")
        d = self._server_dir("redis")
        fixed = self.redis_port is not None
        last_err = None
        for _ in range(1 if fixed else 5):
            port = self.redis_port if fixed else free_port()
            p, path = self._spawn_server("redis", [
                REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", d, "--daemonize", "no", "--logfile", "",
                "--protected-mode", "yes"])
            self._servers["redis"] = (p, path)
            try:
                self._wait_port(p, port, "redis", 30)
                self.redis_port = port
                return
            except AssertionError as e:
                last_err = e
                self._kill(p, signal.SIGKILL, 5)
                if "already in use" not in _tail(path, 20):
                    raise
        raise last_err

    def restart_postgres(self, down_s=0.0):
        """Stops PostgreSQL (fast shutdown: every connection is cut), waits down_s seconds and
        starts it again on the same port with the same data."""
        p, _ = self._servers["postgres"]
        self._kill(p, signal.SIGINT, 30)
        if self._pg is not None:
            try:
                self._pg.close()
            except psycopg2.Error:
                pass
            self._pg = None
        time.sleep(down_s)
        data = os.path.join(self._server_dir("pg"), "data")
        sockdir = self._server_dir("pgsock")
        p, path = self._spawn_server("postgres", [
            os.path.join(PG_BIN, "postgres"), "-D", data, "-p", str(self.pg_port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + sockdir,
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
            "-c", "shared_buffers=32MB", "-c", "max_connections=200",
            "-c", "log_min_messages=warning", "-c", "log_line_prefix=%m [%p] "])
        self._servers["postgres"] = (p, path)
        self._wait_port(p, self.pg_port, "postgres", 60)
        deadline = time.time() + 30
        while True:
            try:
                self._conn()
                return
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def stop_redis(self):
        """Stops Redis (SIGTERM, no persistence: its data is gone)."""
        p, _ = self._servers.get("redis", (None, None))
        if p is None or p.poll() is not None:
            raise AssertionError("redis is not running")
        self._kill(p, signal.SIGTERM, 15)

    def _wait_port(self, p, port, what, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if p.poll() is not None:
                raise AssertionError("%s exited with code %s before listening on port %d"
                                     % (what, p.returncode, port))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("%s did not listen on 127.0.0.1:%d within %ds" % (what, port, timeout))

    @staticmethod
    def _kill(p, sig, timeout):
        """Signals p's process group with sig, then SIGKILL after timeout. Returns the code."""
        p.expected_exit = True
        if p.poll() is not None:
            return p.returncode
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return p.wait(10)

    def close(self):
        """Stops every process and server; removes the temporary folder. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for p, _, _ in self.procs:
            self._kill(p, signal.SIGKILL, 5)
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:
                pass
            self._pg = None
        for label, (p, _) in list(self._servers.items()):
            # postgres: fast shutdown (SIGINT) releases its shared memory; kill if it hangs.
            self._kill(p, signal.SIGINT if label == "postgres" else signal.SIGTERM, 10)
        if self in _live_clusters:
            _live_clusters.remove(self)
        if self.tmpdir and os.environ.get("CAP_E2E_KEEP") != "1":
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        elif self.tmpdir:
            print("harness: kept %s" % self.tmpdir, file=sys.stderr)

    # ----------------------------------------------------------------- logs

    def dump_logs(self, why=""):
        """Prints the last LOG_TAIL_LINES lines of every log the cluster wrote."""
        out = sys.stderr
        print("\n===== harness %s: %s =====" % (self.name, why), file=out)
        for path in self._logs:
            print("----- %s (last %d lines) -----" % (os.path.basename(path), LOG_TAIL_LINES),
                  file=out)
            print(_tail(path, LOG_TAIL_LINES), file=out)
        print("===== end of logs =====", file=out)
        out.flush()

    def log_text(self, p):
        """The whole log of a process started with start_worker/start_scheduler/start_process."""
        for q, path, _ in self.procs:
            if q is p:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
        raise KeyError("not a process of this cluster")

    def log_events(self, p):
        """The JSON log lines of a process, parsed (lines that are not JSON are skipped)."""
        out = []
        for line in self.log_text(p).splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def check_sanitizers(self):
        """Raises AssertionError when a log of a started program holds a sanitizer report."""
        for _, path, label in self.procs:
            text = _tail(path, 100000)
            for m in SANITIZER_MARKERS:
                if m in text:
                    raise AssertionError("sanitizer report (%r) in the log of %s (%s)"
                                         % (m, label, path))

    # ----------------------------------------------------------------- config

    def write_config(self, flat, filename=None):
        """Writes a YAML config from dotted keys into tmpdir; returns its path."""
        if filename is None:
            self._counter += 1
            filename = "config-%d.yaml" % self._counter
        path = os.path.join(self.tmpdir, filename)
        with open(path, "w") as f:
            f.write("# written by tests/e2e/harness.py for test %s\n" % self.name)
            f.write(render_yaml(flat))
        return path

    def config_with(self, overrides):
        """Writes the base config plus overrides (dotted or nested; None removes); returns path."""
        cfg = dict(self.config)
        for k, v in _flatten(overrides or {}).items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        return self.write_config(cfg)

    # ----------------------------------------------------------------- programs

    def _env(self, extra_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTAUTOPILOT_")}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if extra_env:
            env.update(extra_env)
        return env

    def capctl(self, *args, timeout=120, extra_env=None, config_path=None, input=None):
        """Runs capctl --config CONFIG ARGS...; returns CompletedProcess (text). Never raises
        on a non-zero exit (a timeout gives returncode -9 and what was printed so far)."""
        argv = [binary("ctl/capctl"), "--config", config_path or self.config_path] + \
            [str(a) for a in args]
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=self._env(extra_env), timeout=timeout, input=input,
                                  cwd=self.tmpdir)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            return subprocess.CompletedProcess(argv, -9, out, err + "\n[harness: timed out after %ss]" % timeout)

    def capctl_ok(self, *args, **kw):
        """Like capctl, but raises AssertionError with the output unless the exit code is 0."""
        r = self.capctl(*args, **kw)
        if r.returncode != 0:
            raise AssertionError("capctl %s exited %d\nstdout:\n%s\nstderr:\n%s"
                                 % (" ".join(str(a) for a in args), r.returncode, r.stdout, r.stderr))
        return r

    def capctl_json(self, *args, **kw):
        """capctl_ok(*args, "--json") parsed as JSON."""
        r = self.capctl_ok(*(list(args) + ["--json"]), **kw)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("capctl %s --json printed no JSON (%s):\n%s"
                                 % (" ".join(args), e, r.stdout))

    def start_process(self, rel, label=None, args=(), extra_env=None, config_overrides=None,
                      config_path=None):
        """Starts a built program (path relative to CAP_BUILD_DIR) with --config; returns Popen.
        Its stdout and stderr go to tmpdir/logs/LABEL.log."""
        exe = binary(rel)
        if config_path is None:
            config_path = self.config_with(config_overrides) if config_overrides else self.config_path
        self._counter += 1
        label = label or "%s-%d" % (os.path.basename(rel), self._counter)
        path, f = self._open_log(label)
        try:
            p = subprocess.Popen([exe, "--config", config_path] + [str(a) for a in args],
                                 stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 env=self._env(extra_env), cwd=self.tmpdir,
                                 start_new_session=True, preexec_fn=_set_pdeathsig)
        finally:
            f.close()
        p.label = label
        p.log_path = path
        p.config_path = config_path
        self.procs.append((p, path, label))
        return p

    def start_worker(self, extra_env=None, config_overrides=None, label=None, args=()):
        """Starts cap-worker; returns Popen (label and log_path attributes set)."""
        return self.start_process("worker/cap-worker", label=label or "worker-%d" % (self._counter + 1),
                                  args=args, extra_env=extra_env, config_overrides=config_overrides)

    def start_scheduler(self, extra_env=None, config_overrides=None, label=None, args=()):
        """Starts cap-scheduler; returns Popen (label and log_path attributes set)."""
        return self.start_process("scheduler/cap-scheduler",
                                  label=label or "scheduler-%d" % (self._counter + 1),
                                  args=args, extra_env=extra_env, config_overrides=config_overrides)

    def stop(self, p, sig=signal.SIGTERM, timeout=30):
        """Sends sig to p (its whole process group); waits up to timeout seconds, then kills it
        with SIGKILL. Returns the exit code (negative: killed by that signal)."""
        return self._kill(p, sig, timeout)

    def assert_running(self, p):
        """Raises AssertionError (naming the process and its exit code) if p has exited."""
        if p.poll() is not None:
            raise AssertionError("%s exited with code %s" % (getattr(p, "label", p.pid), p.returncode))

    # ----------------------------------------------------------------- database and redis

    def _conn(self):
        if self._pg is None or self._pg.closed:
            self._pg = psycopg2.connect(self.pg_url)
            self._pg.autocommit = True
        return self._pg

    def sql(self, query, params=None):
        """Runs one statement (autocommit); returns the rows as a list of tuples ([] when the
        statement returns none)."""
        try:
            conn = self._conn()
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description is not None else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            self._pg = None
            raise

    def sql_dicts(self, query, params=None):
        """Like sql, but each row is a dict keyed by column name."""
        conn = self._conn()
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query, params)
            return [dict(r) for r in cur.fetchall()] if cur.description is not None else []

    def redis(self):
        """A new redis.Redis client for the cluster's Redis (decode_responses=False)."""
        return redis_mod.Redis.from_url(self.redis_url, decode_responses=False,
                                        socket_timeout=10)

    # ----------------------------------------------------------------- the job spine

    @property
    def stream(self):
        return self.config.get("redis.stream", "cap:discovery").encode()

    @property
    def group(self):
        return self.config.get("redis.group", "cap-workers").encode()

    @property
    def dead_stream(self):
        return self.config.get("redis.dead_letter_stream", "cap:discovery:dead").encode()

    def migrate(self):
        """capctl migrate, which must succeed."""
        return self.capctl_ok("migrate")

    def add_source_sql(self, name, type="network_scan", schedule="manual", **cols):
        """Inserts a source row directly (as the product UI would); returns its id. Keywords
        naming a field of the type (discovery_source_types: cidrs, ports, timeout_ms, domains,
        ...) go into its spec, the others are columns (enabled, trigger_on_save, ...). A
        network_scan source gets cidrs ['127.0.0.1/32'] and a ct_log source domains
        ['example.com'] unless given."""
        if type == "network_scan" and "cidrs" not in cols and "hosts" not in cols:
            cols["cidrs"] = ["127.0.0.1/32"]
        if type == "ct_log" and "domains" not in cols:
            cols["domains"] = ["example.com"]
        rows = self.sql("SELECT fields FROM discovery_source_types WHERE type = %s", (type,))
        fields = set(rows[0][0]) if rows else set()
        spec = {k: v for k, v in cols.items() if k in fields}
        cols = {k: v for k, v in cols.items() if k not in fields}
        names = ["name", "type", "schedule", "spec"] + list(cols)
        values = [name, type, schedule, json.dumps(spec)] + list(cols.values())
        return self.sql("INSERT INTO discovery_sources (%s) VALUES (%s) RETURNING id"
                        % (", ".join(names), ", ".join(["%s"] * len(names))), values)[0][0]

    def insert_run_sql(self, source_id, trigger="manual"):
        """Inserts a queued run directly; returns its id (a scheduler, if running, publishes it)."""
        return self.sql("INSERT INTO discovery_runs (source_id, trigger) VALUES (%s, %s) "
                        "RETURNING id", (source_id, trigger))[0][0]

    def job_message(self, run_id, source_id, attempt=0, version=1, type="discovery_execute"):
        """The msgpack job message for a run, as the scheduler publishes it."""
        return msgpack_pack({"v": version, "type": type, "run_id": run_id,
                             "source_id": source_id, "attempt": attempt,
                             "enqueued_at": int(time.time() * 1000)})

    def xadd_job(self, run_id, source_id, attempt=0, fields=None):
        """XADDs a job for a run by hand (fields: raw entry fields instead); returns the id."""
        r = self.redis()
        if fields is None:
            fields = {b"job": self.job_message(run_id, source_id, attempt)}
        return r.xadd(self.stream, fields)

    def pending_count(self):
        """Messages of the stream's group delivered and not yet acknowledged (0 without group)."""
        r = self.redis()
        try:
            return r.xpending(self.stream, self.group)["pending"]
        except redis_mod.ResponseError as e:
            if "NOGROUP" in str(e):
                return 0
            raise

    def group_info(self):
        """XINFO GROUPS of the stream's group as a dict with str keys, or None."""
        r = self.redis()
        try:
            groups = r.xinfo_groups(self.stream)
        except redis_mod.ResponseError:
            return None
        for g in groups:
            name = g.get("name")
            if name in (self.group, self.group.decode()):
                return {(k.decode() if isinstance(k, bytes) else k): v for k, v in g.items()}
        return None

    def runs(self, source_id=None):
        """Every run (of one source), as dicts ordered by id."""
        if source_id is None:
            return self.sql_dicts("SELECT * FROM discovery_runs ORDER BY id")
        return self.sql_dicts("SELECT * FROM discovery_runs WHERE source_id = %s ORDER BY id",
                              (source_id,))

    def run_row(self, run_id):
        rows = self.sql_dicts("SELECT * FROM discovery_runs WHERE id = %s", (run_id,))
        return rows[0] if rows else None

    def wait_run(self, run_id, statuses=FINAL_STATUSES, timeout=60):
        """Waits until run run_id has one of statuses; returns the run row as a dict."""
        deadline = time.time() + timeout
        row = None
        while time.time() < deadline:
            row = self.run_row(run_id)
            if row is not None and row["status"] in statuses:
                return row
            self._check_procs_alive()
            time.sleep(0.2)
        raise AssertionError("run %s did not reach %s within %ss; last row: %s"
                             % (run_id, "/".join(statuses), timeout, _short_row(row)))

    def wait_for(self, fn, timeout=30, what="condition", interval=0.2):
        """Polls fn() until it returns a true value (returned); raises naming `what`."""
        deadline = time.time() + timeout
        last_exc = None
        while time.time() < deadline:
            try:
                v = fn()
                if v:
                    return v
                last_exc = None
            except (psycopg2.Error, redis_mod.RedisError) as e:
                last_exc = e
            time.sleep(interval)
        raise AssertionError("timed out after %ss waiting for %s%s"
                             % (timeout, what, " (last error: %s)" % last_exc if last_exc else ""))

    def _check_procs_alive(self):
        # A crash shows up here long before a timeout would. Exits with a code (a start-up
        # error a test may provoke on purpose) are left to the test.
        for p, path, label in self.procs:
            if p.poll() is None or getattr(p, "expected_exit", False):
                continue
            text = _tail(path, 400)
            if any(m in text for m in SANITIZER_MARKERS):
                raise AssertionError("%s died with a sanitizer report (exit %s)"
                                     % (label, p.returncode))
            if -p.returncode in CRASH_SIGNALS:
                raise AssertionError("%s crashed (signal %d)" % (label, -p.returncode))


def msgpack_pack(obj):
    """Minimal msgpack encoder (nil, bool, int, str, bytes, list, dict) for hand-made jobs."""
    import struct
    out = bytearray()

    def enc(o):
        if o is None:
            out.append(0xc0)
        elif o is True:
            out.append(0xc3)
        elif o is False:
            out.append(0xc2)
        elif isinstance(o, int):
            if 0 <= o <= 0x7f:
                out.append(o)
            elif -32 <= o < 0:
                out.append(o & 0xff)
            elif 0 <= o <= 0xff:
                out.extend(b"\xcc" + struct.pack(">B", o))
            elif 0 <= o <= 0xffff:
                out.extend(b"\xcd" + struct.pack(">H", o))
            elif 0 <= o <= 0xffffffff:
                out.extend(b"\xce" + struct.pack(">I", o))
            elif o >= 0:
                out.extend(b"\xcf" + struct.pack(">Q", o))
            else:
                out.extend(b"\xd3" + struct.pack(">q", o))
        elif isinstance(o, str):
            b = o.encode()
            if len(b) < 32:
                out.append(0xa0 | len(b))
            elif len(b) < 256:
                out.extend(b"\xd9" + struct.pack(">B", len(b)))
            else:
                out.extend(b"\xda" + struct.pack(">H", len(b)))
            out.extend(b)
        elif isinstance(o, bytes):
            out.extend(b"\xc4" + struct.pack(">B", len(o)) + o)
        elif isinstance(o, (list, tuple)):
            out.append(0x90 | len(o))
            for x in o:
                enc(x)
        elif isinstance(o, dict):
            out.append(0x80 | len(o))
            for k, v in o.items():
                enc(k)
                enc(v)
        else:
            raise TypeError("cannot pack %r" % (o,))

    enc(obj)
    return bytes(out)


def in_own_netns(what):
    """Runs the rest of this test in a network namespace of its own (unshare --net, loopback
    up): nftables tables and routes the test sets there live and die with it, and the test's
    traffic cannot leave the namespace. Needs root (CI runs as root); without root, or where
    the kernel refuses namespaces, prints a NOTE naming `what` and exits 0. Call it first."""
    if os.environ.get("CAP_IN_NETNS") == "1":
        return
    if os.geteuid() != 0:
        print("NOTE: not root, so no network namespace of its own: %s is skipped" % what)
        sys.exit(0)
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("NOTE: network namespaces unavailable here (%s): %s is skipped"
              % (probe.stderr.strip()[:200], what))
        sys.exit(0)
    env = dict(os.environ, CAP_IN_NETNS="1")
    argv = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
            sys.executable, "-u"] + sys.argv
    sys.stdout.flush()
    sys.exit(subprocess.call(argv, env=env))


def nft(script):
    """Applies an nftables script (nft -f -); raises with nft's message on failure."""
    r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nft failed: %s\n%s" % (r.stderr.strip(), script))


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-n:])


def _short_row(row):
    if row is None:
        return None
    keys = ("id", "source_id", "trigger", "status", "attempts", "stream_id", "worker", "error",
            "queued_at", "published_at", "started_at", "finished_at", "heartbeat_at")
    return {k: (str(row[k]) if row[k] is not None and not isinstance(row[k], (int, str))
                else row[k]) for k in keys if k in row}


def require(cond, what):
    """Fails with a message naming a missing component (used while parts are being built)."""
    if not cond:
        raise AssertionError("missing: " + what)
