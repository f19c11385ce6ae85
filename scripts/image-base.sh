#!/bin/bash
# Makes the Debian 12 base image that deploy/Dockerfile builds on from Debian packages alone,
# with no container registry: debootstrap --variant=minbase bookworm, trimmed the way
# debian:12-slim is, then `podman import` under the name the Dockerfile's FROM uses.
#
# Usage: scripts/image-base.sh [TAG]     (as root; TAG defaults to docker.io/library/debian:12-slim,
#                                          which is what `FROM debian:12-slim` finds)
# Environment: CAP_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   CAP_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
#   CAP_IMAGE_WORKDIR: an empty folder to build the root file system in (a tmpfs makes it
#   about twice as fast); default a new folder under /var/tmp. Removed at the end either way.
# podman reads CONTAINERS_CONF and CONTAINERS_STORAGE_CONF as usual.
# Exit codes: 0 done, 1 failure, 3 the Debian mirror cannot be reached (nothing was made).
set -euo pipefail

# shellcheck disable=SC2034 # read by lib.sh
CAP_SCRIPT=image-base.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

TAG=${1:-docker.io/library/debian:12-slim}
MIRROR=${CAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${CAP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
EXIT_NO_MIRROR=3

[ "$(id -u)" = 0 ] || cap_die "run as root (debootstrap needs chroot; podman is used as root)"
for t in debootstrap podman wget tar; do
    command -v "$t" >/dev/null 2>&1 || cap_die "missing: $t (apt-get install debootstrap podman)"
done

if [ -n "${CAP_IMAGE_WORKDIR:-}" ]; then
    WORK=$CAP_IMAGE_WORKDIR
    [ -d "$WORK" ] || cap_die "CAP_IMAGE_WORKDIR=$WORK: not a folder"
    OWN_WORK=0
else
    WORK=$(mktemp -d /var/tmp/cap-image-base.XXXXXX)
    OWN_WORK=1
fi
ROOTFS=$WORK/rootfs

# debootstrap mounts proc and sysfs inside the target while it works; unmount whatever is
# left there before removing it, and never cross into another file system while removing.
cleanup() {
    local m
    if [ -d "$ROOTFS" ]; then
        for m in $(findmnt -rn -o TARGET | grep -F "$ROOTFS/" | sort -r); do
            umount -l "$m" 2>/dev/null || true
        done
        rm -rf --one-file-system "$ROOTFS"
    fi
    rm -f "$WORK/debootstrap.log"
    if [ "$OWN_WORK" = 1 ]; then
        rmdir "$WORK" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# 1. Can the mirror be reached at all? Anything else that fails later is a real failure.
if ! wget -q --spider --timeout=20 --tries=2 "$MIRROR/dists/$SUITE/InRelease"; then
    cap_log "cannot reach the Debian mirror $MIRROR (no $MIRROR/dists/$SUITE/InRelease)"
    exit "$EXIT_NO_MIRROR"
fi

# 2. The root file system: Essential + Priority required + apt.
start=$(date +%s)
if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    if grep -qE "Failed getting release file|Couldn't download|Failure trying to run: wget" \
        "$WORK/debootstrap.log"; then
        cap_log "debootstrap could not download from $MIRROR"
        exit "$EXIT_NO_MIRROR"
    fi
    cap_die "debootstrap failed (log above)"
fi
cap_log "debootstrap $SUITE: $(( $(date +%s) - start ))s"

# 3. Trim it as debian:12-slim is: no documentation, manual pages or translations, now or
# in later installs; apt keeps no packages or lists; dpkg does not fsync every file.
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d" "$ROOTFS/etc/apt/apt.conf.d" "$ROOTFS/etc/apt/sources.list.d"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
echo force-unsafe-io >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb'
clean="$clean /var/cache/apt/*.bin || true"
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<EOF
DPkg::Post-Invoke { "$clean"; };
APT::Update::Post-Invoke { "$clean"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$ROOTFS"/usr/share/{man,groff,info,lintian,linda}/* \
    "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*
# The sources of the official image: the release, its updates and the security archive.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# The container engine provides these at run time; the build machine's must not leak in.
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/machine-id" "$ROOTFS/var/lib/dbus/machine-id"

# 4. Into podman's storage under the name FROM looks for.
start=$(date +%s)
tar --numeric-owner --xattrs -C "$ROOTFS" -c . |
    podman import -q --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$TAG" >/dev/null
cap_log "podman import as $TAG: $(( $(date +%s) - start ))s"
