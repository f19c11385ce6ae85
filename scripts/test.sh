#!/bin/bash
# Installs what the build and the tests need, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every test (unit, fuzz-corpus replays, end-to-end).
# For a fresh Debian 12 machine, as root or as a user with sudo. Exits non-zero on any failure.
#
# Environment: CAP_TEST_BUILD_DIR (default build-test), CAP_JOBS (default 2),
# CAP_SKIP_INSTALL=1 to leave the packages alone, CTEST_ARGS for extra ctest arguments
# (e.g. CTEST_ARGS="-L e2e").
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CAP_SCRIPT=test.sh
. "$ROOT/scripts/lib.sh"

BUILD_DIR=${CAP_TEST_BUILD_DIR:-build-test}
JOBS=${CAP_JOBS:-2}

# 1. Packages. apt-get update + install of whatever is missing (nothing to do, and no network
# needed, when everything is there). A machine whose nodejs comes from NodeSource already has
# npm, and Debian's npm package conflicts with that nodejs: an npm on PATH counts as installed.
if [ "${CAP_SKIP_INSTALL:-0}" != 1 ]; then
    pkgs=$(cap_packages scripts/packages-build.txt scripts/packages-test.txt)
    if command -v npm >/dev/null 2>&1; then
        pkgs=$(printf '%s\n' "$pkgs" | grep -vx npm || true)
    fi
    # shellcheck disable=SC2086
    cap_apt_install_missing $pkgs
    if [ -f scripts/packages-npm.txt ] && [ -n "$(cap_packages scripts/packages-npm.txt)" ]; then
        command -v npm >/dev/null 2>&1 || cap_apt_install npm
        # --no-save: the versions are pinned by the list; the checkout stays unchanged.
        # shellcheck disable=SC2046
        cap_as_invoker npm install --no-save --no-audit --no-fund --prefix tests/deploy \
            $(cap_packages scripts/packages-npm.txt)
    fi
fi

# 2. Build (as the invoking user when run through sudo, so the checkout stays theirs).
cap_log "configuring $BUILD_DIR (sanitizers on)"
cap_as_invoker cmake -S "$ROOT" -B "$ROOT/$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DENABLE_SANITIZERS=ON -DENABLE_FUZZERS=OFF -DCAP_WERROR=ON
cap_log "building with -j$JOBS"
cap_as_invoker cmake --build "$ROOT/$BUILD_DIR" -j "$JOBS"

# 3. Tests. Sanitizer reports abort the program, so a report fails its test.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cap_log "running ctest -j$JOBS"
start=$(date +%s)
rc=0
# shellcheck disable=SC2086
cap_as_invoker ctest --test-dir "$ROOT/$BUILD_DIR" --output-on-failure --no-tests=error \
    -j "$JOBS" ${CTEST_ARGS:-} || rc=$?
cap_log "ctest finished in $(( $(date +%s) - start ))s with exit code $rc"
exit "$rc"
