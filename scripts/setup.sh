#!/usr/bin/env bash
# Installs everything the toolkit and its tests need on a fresh Debian 12
# machine (run as root): the cross toolchains, emulators and Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi
apt-get update -qq
# Distribution Rust with std for aarch64 and rust-src (for build-std), the
# cross linkers, emulators for smoke runs, and script checkers.
apt-get install -y -qq \
    rustc-web cargo-web rust-web-src libstd-rust-web-dev:arm64 \
    gcc-aarch64-linux-gnu gcc-mingw-w64-x86-64 qemu-user wine64 \
    shellcheck minisign busybox curl git xz-utils >/dev/null

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
