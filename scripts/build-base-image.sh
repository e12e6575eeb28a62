#!/usr/bin/env bash
# Build a local base image (jupycell-base:bookworm) from Debian packages with
# debootstrap, for machines that cannot pull python:3.11-slim from a registry.
# Idempotent: does nothing when the image already exists.
#
# Env:
#   JUPYCELL_LOCAL_BASE  image name to create (default jupycell-base:bookworm)
#   DEBIAN_MIRROR        mirror to bootstrap from (default: the one apt uses here)
set -euo pipefail

IMAGE="${JUPYCELL_LOCAL_BASE:-jupycell-base:bookworm}"
SUITE="bookworm"
PACKAGES="python3,python3-venv,python3-pip,ca-certificates"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-base-image: $IMAGE already exists, skipping"
    exit 0
fi

# Pick the Debian mirror apt already uses on this host (deb822 or one-line
# format), so we go through whatever proxy/snapshot the host is set up for.
detect_mirror() {
    local files=() f uri
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    # "URIs: http://.../debian" (deb822) or "deb http://.../debian bookworm main".
    uri="$(grep -hE '^[[:space:]]*(URIs:|deb[[:space:]])' "${files[@]}" 2>/dev/null \
        | grep -oE 'https?://[^[:space:]]+/debian/?' \
        | grep -v -- '-security' | head -n1 || true)"
    echo "${uri%/}"
}

MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

command -v debootstrap >/dev/null || {
    echo "build-base-image: debootstrap missing (apt-get install -y debootstrap)" >&2
    exit 1
}

DIR="$(mktemp -d /tmp/jupycell-rootfs.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT

echo "build-base-image: debootstrap $SUITE from $MIRROR into $DIR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR" "$MIRROR"

# Slim the rootfs a little: apt lists and caches are not needed in the image.
rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/archives/*.deb

echo "build-base-image: importing as $IMAGE"
tar -C "$DIR" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE"
echo "build-base-image: done: $(docker image inspect -f '{{.Id}}' "$IMAGE")"
