"""Toolchain routes: where the std library for a target comes from.

- rustup:    the rustup toolchain has the target's std (`rustup target add`).
- distro:    the distribution's rustc (/usr/bin/rustc) has a prebuilt std for
             the target (Debian's libstd-rust-*-dev:ARCH multiarch packages).
- build-std: std is built from the distribution's rust sources, whose crate
             dependencies are vendored, so it works with no network.
Online machines take the first; air-gapped ones fall back to the others.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from toolchain import proc
from toolchain.errors import MissingToolError
from toolchain.targets import Target

DISTRO_RUSTC = Path("/usr/bin/rustc")
DISTRO_SYSROOT = Path("/usr")
VENDORED_STD_SOURCES = Path("/usr/lib/rustlib/src/rust/library/vendor")


@dataclass(frozen=True)
class Route:
    name: str
    rustc: str
    env: dict[str, str] = field(default_factory=dict)
    cargo_args: tuple[str, ...] = ()
    detail: str = ""
    # Versions known without asking the host's rustc (a container's toolchain).
    versions: tuple[tuple[str, str], ...] = ()


@functools.cache
def rustc_sysroot(rustc: str) -> Path | None:
    result = proc.run([rustc, "--print", "sysroot"], check=False, quiet=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


@functools.cache
def rustc_version(rustc: str) -> str | None:
    result = proc.run([rustc, "--version"], check=False, quiet=True)
    return result.stdout.strip() if result.returncode == 0 else None


def has_std(sysroot: Path | None, triple: str) -> bool:
    return sysroot is not None and (sysroot / "lib" / "rustlib" / triple / "lib").is_dir()


def default_rustc() -> str:
    return os.environ.get("RUSTC") or shutil.which("rustc") or "rustc"


def is_rustup_toolchain(sysroot: Path | None) -> bool:
    return sysroot is not None and ".rustup" in sysroot.parts


def candidate_routes(target: Target) -> list[Route]:
    """Every route that can build this target on this machine, best first."""
    routes = []
    rustc = default_rustc()
    sysroot = rustc_sysroot(rustc) if shutil.which(rustc) or Path(rustc).is_file() else None
    if has_std(sysroot, target.triple):
        name = "rustup" if is_rustup_toolchain(sysroot) else "sysroot"
        routes.append(Route(name, rustc, detail=f"std from {sysroot}"))
    if DISTRO_RUSTC.is_file():
        distro_env = {"RUSTC": str(DISTRO_RUSTC)}
        if str(DISTRO_RUSTC) != rustc and has_std(DISTRO_SYSROOT, target.triple):
            routes.append(Route("distro", str(DISTRO_RUSTC), distro_env, detail="prebuilt std from /usr/lib/rustlib"))
        if target.build_std and VENDORED_STD_SOURCES.is_dir():
            routes.append(
                Route(
                    "build-std",
                    str(DISTRO_RUSTC),
                    # Stable rustc accepts -Z flags only with RUSTC_BOOTSTRAP.
                    {**distro_env, "RUSTC_BOOTSTRAP": "1"},
                    build_std_args(),
                    detail=f"std built from {VENDORED_STD_SOURCES.parent}",
                )
            )
    return routes


def build_std_args(vendor: Path = VENDORED_STD_SOURCES) -> tuple[str, ...]:
    return (
        "-Zbuild-std=std,panic_abort",
        "--config",
        'source.crates-io.replace-with="vendored-std"',
        "--config",
        f'source.vendored-std.directory="{vendor}"',
    )


def resolve_route(target: Target) -> Route:
    routes = candidate_routes(target)
    if routes:
        return routes[0]
    raise MissingToolError(
        f"no Rust standard library for {target.triple} on this machine",
        hint=route_fix(target),
    )


def route_fix(target: Target) -> str:
    """The command that provides std for this target."""
    online = f"`rustup target add {target.triple}`"
    if target.std_package:
        return f"run {online}, or offline `apt-get install rustc-web cargo-web {target.std_package}`"
    if target.build_std:
        return f"run {online}, or offline `apt-get install rustc-web cargo-web rust-web-src` (std is built from source)"
    return f"run {online}"
