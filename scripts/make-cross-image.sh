#!/usr/bin/env bash
# Make a local image for the cross runner (`cross build` with
# `[cross] images`), without a registry: cross's own images live on ghcr.io,
# which the build machines cannot reach.
#
#   scripts/make-cross-image.sh [TARGET] [IMAGE]
#     TARGET  only aarch64-unknown-linux-gnu for now (the default)
#     IMAGE   default: local/cross:TARGET
#   BASE_IMAGE         default local/bookworm:base (scripts/make-base-image.sh
#                      makes it when it is missing)
#   RUSTC_WEB_VERSION  Debian's Rust inside the image (default: the same pin
#                      as Dockerfile.build at the repository root)
#
# What is inside, and why:
# - Debian's Rust (rustc-web, cargo-web) with the prebuilt arm64 std
#   (libstd-rust-web-dev:arm64). cross mounts the host's sysroot at /rust and
#   runs `sh -c "PATH=$PATH:/rust/bin cargo build ..."`: the image's cargo
#   comes first on PATH. A rustup toolchain is relocatable and would work
#   from /rust, but Debian's is not (rustc and cargo load librustc_driver,
#   libLLVM, libgit2... from /usr/lib/x86_64-linux-gnu), and rustup cannot
#   add the aarch64 std offline. So the image brings the toolchain.
# - gcc + libc6-dev (build scripts run on the build machine) and the aarch64
#   linker and libc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross), named in
#   the same variables cross's own images set (linker, CC/AR for cc-rs).
#   The arm64 compiler libraries that libstd-rust-web-dev:arm64 drags in
#   (librustc_driver, libLLVM, ICU, z3: about 300 MB) run only on arm64:
#   they are deleted.
# - The glibc floor of what it links is Debian 12's: binaries need
#   GLIBC_2.34, above the toolkit's 2.17 policy (zig pins that; cross 0.2.5
#   cannot use zig). Build with --allow glibc-floor, or use the zig runner.
# - /bin/sh (cross's entry point). cross runs the container as the caller's
#   uid:gid with CARGO_HOME=/cargo and CARGO_TARGET_DIR=/target mounted from
#   the host, so no user has to exist in the image.
# One RUN step: with docker's vfs storage driver every step copies the
# whole root filesystem. An existing image with the same pin is not rebuilt.
set -euo pipefail

target="${1:-aarch64-unknown-linux-gnu}"
image="${2:-local/cross:$target}"
base="${BASE_IMAGE:-local/bookworm:base}"
rust_version="${RUSTC_WEB_VERSION:-1.96.0+dfsg1-1~deb12u2}"
here="$(cd "$(dirname "$0")" && pwd)"

case "$target" in
    aarch64-unknown-linux-gnu) ;;
    *)
        echo "make-cross-image.sh: no recipe for $target (only aarch64-unknown-linux-gnu)" >&2
        exit 2
        ;;
esac

built="$(docker image inspect --format '{{ index .Config.Labels "org.toolchain.rustc-web" }}' "$image" 2>/dev/null || true)"
if [ "$built" = "$rust_version" ]; then
    echo "$image already exists (Rust $rust_version)"
    exit 0
fi
if [ -n "$built" ]; then
    echo "$image has Rust $built, the pin is $rust_version: rebuilding"
fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ "$base" = "local/bookworm:base" ]; then
        bash "$here/make-base-image.sh" "$base"
    else
        echo "make-cross-image.sh: the base image $base is not in the engine" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
context="$work/context"
mkdir "$context"
cat >"$context/Dockerfile" <<'EOF'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG RUSTC_WEB_VERSION
LABEL org.toolchain.image="cross" \
      org.toolchain.target="aarch64-unknown-linux-gnu" \
      org.toolchain.rustc-web="${RUSTC_WEB_VERSION}"
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eu \
    && . /etc/os-release \
    && printf 'deb http://deb.debian.org/debian %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
        "$VERSION_CODENAME" "$VERSION_CODENAME" > /etc/apt/sources.list.d/toolchain-updates.list \
    && dpkg --add-architecture arm64 \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends \
        ca-certificates gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        "rustc-web=${RUSTC_WEB_VERSION}" "cargo-web=${RUSTC_WEB_VERSION}" \
        "libstd-rust-web-dev:arm64=${RUSTC_WEB_VERSION}" >/dev/null \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
    && rm -f /usr/lib/aarch64-linux-gnu/librustc_driver-*.so /usr/lib/aarch64-linux-gnu/libLLVM*.so* \
        /usr/lib/aarch64-linux-gnu/libicu*.so* /usr/lib/aarch64-linux-gnu/libz3.so* \
    && echo cross-image > /etc/toolchain-route \
    && mkdir -p /cargo /target && chmod 1777 /cargo /target
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CROSS_SYSROOT=/usr/aarch64-linux-gnu \
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
EOF

start=$(date +%s)
if ! docker build --network host \
    --build-arg "BASE_IMAGE=$base" --build-arg "RUSTC_WEB_VERSION=$rust_version" \
    -t "$image" "$context" >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "make-cross-image.sh: docker build of $image failed" >&2
    exit 1
fi
echo "made $image from $base (Rust $rust_version) in $(($(date +%s) - start)) s"
