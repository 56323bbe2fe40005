#!/usr/bin/env bash
# A real container engine and a small Python image for the tests (and for trying the container runners by
# hand), with no registry: podman (docker's command line, no daemon) and Debian's runc, and an image built
# from Debian's packages with debootstrap.
#
#   tests/containers/image.sh [DIR]     (default DIR: /tmp/isobench-containers)
#
# Installs podman, runc and debootstrap with apt when missing (log in DIR/log), writes DIR/containers.conf
# (podman's default ulimits removed, runtime runc: see ../shared/notes/local-containers.md), and makes sure the
# image exists: isobench-test:py-<recipe hash>, built once by `debootstrap --variant=minbase --include=python3`
# and imported; the root file system's tarball is kept in DIR/cache (keyed by the recipe's hash, so a changed
# recipe builds a new image) and re-imported when the engine's storage lost the image. Also imports
# isobench-test:empty (no files at all: an image without Python). Checks that a container starts.
# Prints two lines on success: CONTAINERS_CONF=<file> and the image's name. Exits 77, saying why on one line,
# when an engine cannot run on this machine (no root, no apt-get, no user namespaces or cgroups for
# containers); 1 on any other failure.
set -euo pipefail
DIR=$(realpath -m "${1:-/tmp/isobench-containers}")
SUITE=bookworm
PACKAGES=python3
RECIPE="debootstrap --variant=minbase --include=$PACKAGES $SUITE (isobench test image v1)"
HASH=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)
IMAGE="isobench-test:py-$HASH"
fail() { echo "containers: $*" >&2; exit 1; }
cannot() { echo "containers: $*" >&2; exit 77; }

mkdir -p "$DIR/log" "$DIR/cache"
if [ "$(id -u)" != 0 ]; then
    SUDO=$(command -v sudo || true)
    [ -n "$SUDO" ] && $SUDO -n true 2>/dev/null || cannot "needs root (or passwordless sudo) to install podman and debootstrap"
else
    SUDO=""
fi
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || cannot "podman, runc or debootstrap missing and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { $SUDO apt-get install -y -q --no-install-recommends podman runc catatonit debootstrap uidmap \
                    >"$DIR/log/apt.log" 2>&1; }
    apt_install || { $SUDO apt-get update -q >"$DIR/log/apt-update.log" 2>&1 && apt_install; } ||
        cannot "apt-get install of podman, runc and debootstrap failed (see $DIR/log/apt.log)"
fi

CONF="$DIR/containers.conf"
cat >"$CONF" <<'EOF'
# Written by tests/containers/image.sh: podman's default ulimits cannot be raised on these machines, and their
# cgroups are hybrid, which crun refuses; runc works.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$CONF"

if ! podman image exists "$IMAGE"; then
    TARBALL="$DIR/cache/rootfs-$HASH.tar"
    if [ ! -s "$TARBALL" ]; then
        ROOTFS="$DIR/rootfs-$HASH"
        rm -rf "$ROOTFS"
        $SUDO debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" >"$DIR/log/debootstrap.log" 2>&1 ||
            fail "debootstrap failed (see $DIR/log/debootstrap.log)"
        $SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
        $SUDO tar -C "$ROOTFS" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
        $SUDO rm -rf "$ROOTFS"
    fi
    podman import --quiet "$TARBALL" "$IMAGE" >"$DIR/log/import.log" 2>&1 || fail "podman import failed (see $DIR/log/import.log)"
fi
if ! podman image exists isobench-test:empty; then
    tar -cf - --files-from /dev/null | podman import --quiet - isobench-test:empty >>"$DIR/log/import.log" 2>&1 ||
        fail "podman import of the empty image failed (see $DIR/log/import.log)"
fi

if ! out=$(podman run --rm --init --network none "$IMAGE" python3 -c 'import sys; print(sys.version_info[0])' 2>&1); then
    case "$out" in
        *"user namespace"*|*cgroup*|*"Operation not permitted"*|*"permission denied"*)
            cannot "podman cannot start a container here: $(printf '%s' "$out" | tail -1)" ;;
        *) fail "podman could not run the image: $(printf '%s' "$out" | tail -1)" ;;
    esac
fi
[ "$out" = 3 ] || fail "the image's python3 printed '$out'"
echo "CONTAINERS_CONF=$CONF"
echo "$IMAGE"
