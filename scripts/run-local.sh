#!/bin/bash
# Sets up and runs CertAutoPilot discovery locally on a Debian 12 machine: installs the
# packages, builds (Release), starts a PostgreSQL and a Redis in a data folder, migrates, and
# runs cap-scheduler and cap-worker in the foreground until Ctrl-C, which stops everything.
# Re-running reuses the data. See docs/local.md.
#
# Environment: CAP_LOCAL_DATA (data folder, default ./.local in the checkout),
# CAP_LOCAL_PG_PORT (default 55432), CAP_LOCAL_REDIS_PORT (default 56379), CAP_JOBS (2),
# CAP_SKIP_INSTALL=1 to leave the packages alone.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CAP_SCRIPT=run-local.sh
. "$ROOT/scripts/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
BUILD_DIR="$ROOT/build"
LOCAL="$ROOT/.local"                  # config and secrets (always in the checkout)
DATA=${CAP_LOCAL_DATA:-$LOCAL}        # server data (may move, see below)
PG_PORT=${CAP_LOCAL_PG_PORT:-55432}
REDIS_PORT=${CAP_LOCAL_REDIS_PORT:-56379}
JOBS=${CAP_JOBS:-2}

# 1. Packages: what the build needs, plus the two servers.
if [ "${CAP_SKIP_INSTALL:-0}" != 1 ]; then
    # shellcheck disable=SC2046
    cap_apt_install_missing $(cap_packages scripts/packages-build.txt) postgresql-15 redis-server
fi
[ -x "$PG_BIN/postgres" ] || cap_die "PostgreSQL 15 is not installed in $PG_BIN"
command -v redis-server >/dev/null || cap_die "redis-server is not installed"

# 2. Build, without sanitizers (as the invoking user when run through sudo).
cap_as_invoker cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DENABLE_SANITIZERS=OFF -DENABLE_FUZZERS=OFF >/dev/null
cap_as_invoker cmake --build "$BUILD_DIR" -j "$JOBS" --target capctl cap-scheduler cap-worker
CAPCTL="$BUILD_DIR/ctl/capctl"

# 3. Who runs the servers. PostgreSQL refuses to run as root, so as root they run as the
# unprivileged `postgres` user (or `nobody`), which must be able to reach the data folder.
if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then SRV_USER=postgres; else SRV_USER=nobody; fi
    SRV_GROUP=$(id -gn "$SRV_USER")
    AS_SRV=(setpriv --reuid="$SRV_USER" --regid="$SRV_GROUP" --init-groups)
else
    SRV_USER=$(id -un)
    SRV_GROUP=$(id -gn)
    AS_SRV=()
fi
# Runs a command as the server user from a folder it can enter (the checkout may not be one).
as_srv() {
    (cd / && "${AS_SRV[@]}" "$@")
}
mkdir -p "$LOCAL"
chmod 0700 "$LOCAL"
if [ "$(id -u)" = 0 ] && [ -z "${CAP_LOCAL_DATA:-}" ] &&
    ! cap_user_can_reach "$SRV_USER" "$ROOT"; then
    DATA=/var/tmp/certautopilot-local
    cap_log "the checkout is not reachable by user $SRV_USER (a 0700 home?):"
    cap_log "the PostgreSQL and Redis data go to $DATA instead of $LOCAL"
fi
mkdir -p "$DATA"
if [ "$DATA" = "$LOCAL" ]; then
    # The servers need to enter .local to reach their own folders inside it.
    chmod 0711 "$LOCAL"
fi
for d in pg redis run; do
    mkdir -p "$DATA/$d"
    if [ "$(id -u)" = 0 ]; then chown "$SRV_USER:$SRV_GROUP" "$DATA/$d"; fi
    chmod 0700 "$DATA/$d"
done
if [ "$(id -u)" = 0 ] && ! cap_user_can_reach "$SRV_USER" "$DATA/pg"; then
    cap_die "user $SRV_USER cannot reach $DATA/pg; set CAP_LOCAL_DATA to a folder it can reach"
fi

# 4. Secrets, made once and reused: the database and Redis passwords.
SECRETS="$LOCAL/secrets.env"
if [ ! -f "$SECRETS" ]; then
    umask 077
    {
        echo "PG_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
        echo "REDIS_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    } >"$SECRETS"
    umask 022
fi
# shellcheck disable=SC1090
. "$SECRETS"

# 5. PostgreSQL: initdb once (password auth over TCP, trust on the private socket folder).
if [ ! -f "$DATA/pg/PG_VERSION" ]; then
    cap_log "initialising PostgreSQL in $DATA/pg"
    pwfile="$DATA/run/pwfile"
    printf '%s\n' "$PG_PASSWORD" >"$pwfile"
    if [ "$(id -u)" = 0 ]; then chown "$SRV_USER" "$pwfile"; fi
    chmod 0600 "$pwfile"
    as_srv "$PG_BIN/initdb" -D "$DATA/pg" -U postgres --pwfile="$pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C >"$DATA/initdb.log" 2>&1 ||
        { cat "$DATA/initdb.log" >&2; cap_die "initdb failed"; }
    rm -f "$pwfile"
fi

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$PG_PORT" "$REDIS_PORT"; do
    if port_busy "$p"; then
        cap_die "port 127.0.0.1:$p is in use (another run-local.sh still running?); set CAP_LOCAL_PG_PORT / CAP_LOCAL_REDIS_PORT"
    fi
done

PIDS_SERVERS=()
PIDS_CAP=()
stopping=0
stop_all() {
    [ "$stopping" = 0 ] || return 0
    stopping=1
    trap '' INT TERM HUP
    cap_log "stopping"
    local p
    for p in "${PIDS_CAP[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS_CAP[@]}"; do wait "$p" 2>/dev/null || true; done
    # PostgreSQL: SIGINT is its fast shutdown; Redis: SIGTERM (no persistence configured).
    if [ -n "${PG_PID:-}" ]; then kill -INT "$PG_PID" 2>/dev/null || true; fi
    if [ -n "${REDIS_PID:-}" ]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; fi
    for p in "${PIDS_SERVERS[@]}"; do wait "$p" 2>/dev/null || true; done
    cap_log "stopped; data kept in $DATA (run this script again to reuse it)"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all; exit 129' HUP
trap 'stop_all' EXIT

# The servers get their own sessions so that Ctrl-C reaches them only through stop_all,
# after the scheduler and worker have drained.
cap_log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $DATA/postgres.log)"
setsid "${AS_SRV[@]}" "$PG_BIN/postgres" -D "$DATA/pg" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$DATA/run" \
    >>"$DATA/postgres.log" 2>&1 </dev/null &
PG_PID=$!
PIDS_SERVERS+=("$PG_PID")

cap_log "starting Redis on 127.0.0.1:$REDIS_PORT (log: $DATA/redis.log)"
# The password goes through stdin as a config file, never on a command line (ps shows those).
printf 'requirepass "%s"\n' "$REDIS_PASSWORD" |
    setsid "${AS_SRV[@]}" redis-server - --port "$REDIS_PORT" --bind 127.0.0.1 \
        --dir "$DATA/redis" --save '' --appendonly no --daemonize no \
        >>"$DATA/redis.log" 2>&1 &
REDIS_PID=$!
PIDS_SERVERS+=("$REDIS_PID")

for _ in $(seq 1 100); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then break; fi
    kill -0 "$PG_PID" 2>/dev/null || { tail -20 "$DATA/postgres.log" >&2; cap_die "PostgreSQL did not start"; }
    sleep 0.2
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || cap_die "PostgreSQL is not ready"
for _ in $(seq 1 50); do
    port_busy "$REDIS_PORT" && break
    kill -0 "$REDIS_PID" 2>/dev/null || { tail -20 "$DATA/redis.log" >&2; cap_die "Redis did not start"; }
    sleep 0.1
done

if ! as_srv "$PG_BIN/psql" -h "$DATA/run" -p "$PG_PORT" -U postgres -d postgres -Atq \
    -c "SELECT 1 FROM pg_database WHERE datname = 'certautopilot'" | grep -q 1; then
    as_srv "$PG_BIN/psql" -h "$DATA/run" -p "$PG_PORT" -U postgres -d postgres -q \
        -c "CREATE DATABASE certautopilot"
fi

# 6. Configuration, written on every start from the secrets above (settings of your own go into
# CERTAUTOPILOT_* environment variables, which win over the file).
CONFIG="$LOCAL/config.yaml"
umask 077
cat >"$CONFIG" <<EOF
# Local lab configuration, rewritten by scripts/run-local.sh on every start.
# Override any key with an environment variable: CERTAUTOPILOT_ + the key in upper case with
# dots as underscores (CERTAUTOPILOT_LOGGING_LEVEL=debug); the environment wins.
database:
  url: "postgresql://postgres:${PG_PASSWORD}@127.0.0.1:${PG_PORT}/certautopilot"
redis:
  url: "redis://:${REDIS_PASSWORD}@127.0.0.1:${REDIS_PORT}/0"
logging:
  level: info
  format: auto      # text on a terminal, JSON lines otherwise
scheduler:
  tick: 5s
worker:
  reclaim_idle: 60s
network:
  # A local lab scans servers on this machine (127.0.0.0/8), which production refuses by
  # default. Never set this in a shared deployment.
  allow_loopback: true
# telemetry.metrics_listen is left out: the scheduler and the worker each take their own
# default (127.0.0.1:9101 and 127.0.0.1:9102).
EOF
umask 022
INVOKER=$(cap_invoker)
if [ "$(id -u)" = 0 ] && [ "$INVOKER" != root ]; then
    chown "$INVOKER" "$LOCAL" "$CONFIG" "$SECRETS"
fi

cap_log "applying migrations"
"$CAPCTL" --config "$CONFIG" migrate

# 7. The scheduler and the worker, logs interleaved on this terminal.
"$BUILD_DIR/scheduler/cap-scheduler" --config "$CONFIG" &
PIDS_CAP+=("$!")
"$BUILD_DIR/worker/cap-worker" --config "$CONFIG" &
PIDS_CAP+=("$!")

cat >&2 <<EOF

CertAutoPilot discovery is running (Ctrl-C stops everything). In another terminal:

  build/ctl/capctl --config .local/config.yaml source add lab --type network_scan \\
      --cidr 127.0.0.1/32 --port 443 --trigger
  build/ctl/capctl --config .local/config.yaml runs list
  build/ctl/capctl --config .local/config.yaml findings list

PostgreSQL: 127.0.0.1:$PG_PORT (user postgres, password in .local/secrets.env), log $DATA/postgres.log
Redis:      127.0.0.1:$REDIS_PORT, log $DATA/redis.log

EOF

# Returns when any of them exits, or when a signal runs the trap. On Ctrl-C the terminal also
# sends SIGINT to the scheduler and the worker, which drain and exit 0 by themselves; bash may
# then return from `wait` without running the INT trap, so a clean exit counts as a stop too.
rc=0
wait -n "${PIDS_CAP[@]}" "${PIDS_SERVERS[@]}" || rc=$?
if [ "$stopping" = 0 ]; then
    if [ "$rc" = 0 ]; then
        stop_all
        exit 0
    fi
    cap_log "a process exited with code $rc; stopping the others"
    stop_all
    exit 1
fi
