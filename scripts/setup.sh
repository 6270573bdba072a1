#!/usr/bin/env bash
# Installs everything the toolkit and its tests need on a fresh Debian 12
# machine (run as root): the cross toolchains, emulators and Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi
packages="rustc-web cargo-web rust-web-src rust-web-llvm libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64
    qemu-user wine64 shellcheck minisign busybox curl git xz-utils osslsigncode sqlite3 wixl msitools rpm lintian
    zlib1g-dev pkg-config"
# shellcheck disable=SC2086 # a list of package names
if dpkg-query -W -f='${Status}\n' $packages 2>/dev/null | grep -vq "install ok installed" \
    || [ "$(dpkg-query -W -f='${Status}\n' $packages 2>/dev/null | wc -l)" -ne "$(echo $packages | wc -w)" ]; then
    apt-get update -qq
fi
# Distribution Rust with std for aarch64 and rust-src (for build-std), its LLVM
# (rust-web-llvm: llvm-objcopy, dsymutil and llvm-symbolizer split debug info off
# release binaries and symbolicate crash addresses; rustc-web recommends it), the
# cross linkers, emulators for smoke runs, script checkers, the sqlite3 CLI
# (the installers' snapshot when an app declares no backup command),
# osslsigncode (Authenticode); wixl and msitools build and inspect MSIs, rpm
# and lintian check the Linux packages; zlib1g-dev and pkg-config give the
# machine's zlib.pc, the answer a zig build of libz-sys must not take.
# shellcheck disable=SC2086
apt-get install -y -qq $packages >/dev/null

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
