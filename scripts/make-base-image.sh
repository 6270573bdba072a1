#!/usr/bin/env bash
# Make a local Debian 12 base image without a registry (none is reachable
# from the build machines): debootstrap a minimal root filesystem from the
# distribution mirror and import it into the docker engine. Needs root.
#   scripts/make-base-image.sh [IMAGE_NAME]   (default: local/bookworm:base)
set -euo pipefail
image="${1:-local/bookworm:base}"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image already exists"
    exit 0
fi
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
# mktemp -d made the folder 0700: as the image's / that would lock out every
# non-root user.
chmod 755 "$rootfs"
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
echo "made $image"
