"""Toolchain routes: where the std library for a target comes from.

- rustup:    the rustup toolchain has the target's std (`rustup target add`).
- distro:    the distribution's rustc (/usr/bin/rustc) has a prebuilt std for
             the target (Debian's libstd-rust-*-dev:ARCH multiarch packages).
- build-std: std is built from the distribution's rust sources. std's own
             crates come from its vendored folder (no network), from the
             registry when the project needs registry crates too, or from
             one merged directory source when the project is vendored.
Online machines take the first; air-gapped ones fall back to the others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.compile.context import HERE, CargoContext
from toolchain.compile.context import SYSROOTS as SYSROOTS  # the fresh check's import
from toolchain.compile.context import forget_sysroots as forget_sysroots  # provision's
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError, ToolchainError

DISTRO_RUSTC = Path("/usr/bin/rustc")
DISTRO_CARGO = Path("/usr/bin/cargo")
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
    # (std's vendor dir, the project's vendor dir, merged dir): made before cargo runs.
    merge: tuple[Path, Path, Path] | None = None
    # cargo's own path trimming (-Ztrim-paths, unstable: build-std routes run
    # with RUSTC_BOOTSTRAP already). It leaves RUSTFLAGS alone, so the std
    # built for a target is shared by every crate built into one target folder.
    trim_paths: bool = False


def rustc_sysroot(rustc: str, context: CargoContext = HERE) -> Path | None:
    return context.rustc_sysroot(rustc)


def ask_sysroot_ahead(context: CargoContext = HERE) -> None:
    """Ask rustc's sysroot (the std route) on a thread, while other work runs: one wait, not two.
    Asked twice, the second waits for the first's answer (the lock, the cache)."""

    def ask() -> None:
        rustc = default_rustc()
        if shutil.which(rustc) or Path(rustc).is_file():
            # Only a cache warmed early: a failure is the build's to report, when it asks itself.
            with contextlib.suppress(ToolchainError):
                context.rustc_sysroot(rustc)  # cached for candidate_routes

    threading.Thread(target=ask, name="toolchain-sysroot", daemon=True).start()


def rustc_version(rustc: str, context: CargoContext = HERE) -> str | None:
    return context.rustc_version(rustc)


def has_std(sysroot: Path | None, triple: str) -> bool:
    return sysroot is not None and (sysroot / "lib" / "rustlib" / triple / "lib").is_dir()


def default_rustc() -> str:
    return os.environ.get("RUSTC") or shutil.which("rustc") or "rustc"


def is_rustup_toolchain(sysroot: Path | None) -> bool:
    return sysroot is not None and ".rustup" in sysroot.parts


def candidate_routes(
    target: Target, sources: ProjectSources | None = None, context: CargoContext = HERE
) -> list[Route]:
    """Every route that can build this target on this machine, best first (rustc asked in
    the project's folder: its rust-toolchain.toml picks the compiler)."""
    routes = []
    rustc = default_rustc()
    sysroot = context.rustc_sysroot(rustc) if shutil.which(rustc) or Path(rustc).is_file() else None
    if has_std(sysroot, target.triple):
        name = "rustup" if is_rustup_toolchain(sysroot) else "sysroot"
        routes.append(Route(name, rustc, detail=f"std from {sysroot}"))
    if DISTRO_RUSTC.is_file():
        distro_env = {"RUSTC": str(DISTRO_RUSTC)}
        if DISTRO_CARGO.is_file():
            # The cargo of the same release: what cargo hands rustc changes between releases (with a
            # rust-toolchain.toml pin, rustup's cargo 1.93 passed -Zremap-path-scope, which rustc 1.96
            # no longer knows). cargo-zigbuild runs the CARGO it is given; the native runner runs it.
            distro_env["CARGO"] = str(DISTRO_CARGO)
        if str(DISTRO_RUSTC) != rustc and has_std(DISTRO_SYSROOT, target.triple):
            routes.append(Route("distro", str(DISTRO_RUSTC), distro_env, detail="prebuilt std from /usr/lib/rustlib"))
        if target.toolchain.build_std and VENDORED_STD_SOURCES.is_dir():
            routes.append(build_std_route({**distro_env, "RUSTC_BOOTSTRAP": "1"}, sources or ProjectSources()))
    return routes


@dataclass(frozen=True)
class ProjectSources:
    """Where a project's registry dependencies come from, as far as build-std cares."""

    registry_dependencies: tuple[str, ...] = ()
    vendor_dir: Path | None = None  # a directory source that replaces crates-io (`cargo vendor`)
    offline: bool = False
    merge_dir: Path | None = None  # where the merged std + project source is made


def build_std_route(env: dict[str, str], sources: ProjectSources) -> Route:
    """std built from source. Its own dependencies come from std's vendored
    crates when nothing else is needed (works offline), from a merged
    directory source when the project is vendored, else from the registry."""
    # Stable rustc accepts -Z flags only with RUSTC_BOOTSTRAP.
    if sources.vendor_dir is not None:
        merged = sources.merge_dir or sources.vendor_dir.parent / ".toolchain-merged-source"
        return Route(
            "build-std",
            env["RUSTC"],
            env,
            (*BUILD_STD, *replace_crates_io("toolchain-merged", merged)),
            detail=f"std built from {VENDORED_STD_SOURCES.parent}; crates from std's and {sources.vendor_dir} merged",
            merge=(VENDORED_STD_SOURCES, sources.vendor_dir, merged),
            trim_paths=True,
        )
    if not sources.registry_dependencies:
        return Route(
            "build-std",
            env["RUSTC"],
            env,
            build_std_args(),
            detail=f"std built from {VENDORED_STD_SOURCES.parent} (its crates vendored: no network)",
            trim_paths=True,
        )
    if sources.offline:
        return Route(
            "build-std",
            env["RUSTC"],
            env,
            BUILD_STD,
            detail=f"std built from {VENDORED_STD_SOURCES.parent}; crates from cargo's offline cache",
            trim_paths=True,
        )
    return Route(
        "build-std",
        env["RUSTC"],
        env,
        BUILD_STD,
        detail=f"std built from {VENDORED_STD_SOURCES.parent}; std's and the project's crates from the registry",
        trim_paths=True,
    )


BUILD_STD = ("-Zbuild-std=std,panic_abort",)


def replace_crates_io(name: str, directory: Path) -> tuple[str, ...]:
    return (
        "--config",
        f'source.crates-io.replace-with="{name}"',
        "--config",
        f'source.{name}.directory="{directory}"',
    )


def build_std_args(vendor: Path = VENDORED_STD_SOURCES) -> tuple[str, ...]:
    return (*BUILD_STD, *replace_crates_io("vendored-std", vendor))


def resolve_route(target: Target, sources: ProjectSources | None = None, context: CargoContext = HERE) -> Route:
    routes = candidate_routes(target, sources, context)
    if routes:
        return routes[0]
    raise MissingToolError(
        f"no Rust standard library for {target.triple} on this machine",
        hint=route_fix(target),
    )


def route_fix(target: Target) -> str:
    """The command that provides std for this target."""
    online = f"`rustup target add {target.triple}`"
    if target.toolchain.std_package:
        return f"run {online}, or offline `apt-get install rustc-web cargo-web {target.toolchain.std_package}`"
    if target.toolchain.build_std:
        return f"run {online}, or offline `apt-get install rustc-web cargo-web rust-web-src` (std is built from source)"
    return f"run {online}"
