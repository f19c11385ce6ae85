# shellcheck shell=bash
# Shared shell functions for scripts/test.sh and scripts/run-local.sh (sourced, bash).
# Nothing here runs on its own.

CAP_SCRIPT=${CAP_SCRIPT:-$(basename "$0")}

cap_log() {
    printf '%s: %s\n' "$CAP_SCRIPT" "$*" >&2
}

cap_die() {
    printf '%s: error: %s\n' "$CAP_SCRIPT" "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
cap_as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        cap_die "this step needs root: run as root or install sudo ($*)"
    fi
}

# The user who invoked us: $SUDO_USER when root through sudo and the checkout ($ROOT) is
# writable by that user, else the current user.
cap_invoker() {
    if [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ] && [ "${SUDO_USER}" != root ] &&
        id "$SUDO_USER" >/dev/null 2>&1 &&
        setpriv --reuid="$SUDO_USER" --regid="$(id -g "$SUDO_USER")" --init-groups \
            test -w "${ROOT:-.}" 2>/dev/null; then
        printf '%s\n' "$SUDO_USER"
    else
        id -un
    fi
}

# Runs a command as the invoking user (so a checkout of theirs gets no root-owned build
# folders when the script runs under sudo); directly when that is us.
cap_as_invoker() {
    local u
    u=$(cap_invoker)
    if [ "$u" = "$(id -un)" ]; then
        "$@"
    else
        setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups \
            env HOME="$(getent passwd "$u" | cut -d: -f6)" USER="$u" LOGNAME="$u" "$@"
    fi
}

# Package names from list files: one per line, '#' comments and blank lines ignored.
cap_packages() {
    sed -e 's/#.*//' "$@" | tr -s ' \t\r\n' '\n' | sed '/^$/d' | sort -u
}

# apt-get update + install of the given packages (idempotent).
cap_apt_install() {
    [ "$#" -gt 0 ] || return 0
    cap_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    cap_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# Installs only the packages that are missing (no network use when all are there).
cap_apt_install_missing() {
    local missing="" p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing="$missing $p"
        fi
    done
    if [ -n "$missing" ]; then
        cap_log "installing:$missing"
        # shellcheck disable=SC2086
        cap_apt_install $missing
    else
        cap_log "all packages are installed"
    fi
}

# True when user $1 can enter directory $2 and every parent of it.
cap_user_can_reach() {
    local user=$1 dir=$2
    setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups test -x "$dir" 2>/dev/null
}

# First existing ancestor of a path (the path itself when it exists).
cap_existing_ancestor() {
    local d=$1
    while [ ! -e "$d" ]; do
        d=$(dirname "$d")
    done
    printf '%s\n' "$d"
}
