"""What every runner shares: the job it is given, the Runner protocol, the
base class of runners that are one cargo-like command on this host, and the
cargo arguments they all pass."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from toolchain.compile import stdcache
from toolchain.compile.auditable import auditable_command
from toolchain.compile.cargo import Project, Selection, resolution_args
from toolchain.compile.routes import VENDORED_STD_SOURCES, Route, resolve_route
from toolchain.compile.rustflags import encoded_rustflags
from toolchain.config.profiles import Profile
from toolchain.config.settings import Settings
from toolchain.config.targets import Target, c_build_env_names
from toolchain.errors import BuildError, ToolchainError


@dataclass(frozen=True)
class BuildJob:
    """Everything a runner needs to build one target."""

    project: Project
    selections: tuple[Selection, ...]
    target: Target
    profile: Profile
    define_profile: bool  # False when the user's Cargo.toml defines it and wins
    route: Route
    settings: Settings
    skip_keys: frozenset[str] = frozenset()  # ours, left out: the project's release is tighter
    features: tuple[str, ...] = ()
    all_features: bool = False
    no_default_features: bool = False
    locked: bool = True
    # RUSTC_WRAPPER and the private sccache server's variables (toolchain.compile.cache); empty: no cache.
    cache_env: dict[str, str] = field(default_factory=dict)
    timings: bool = False  # cargo writes its timings page (cargo-timings/ in the target folder)
    # The profile keeps debug info: linked unstripped, split and stripped after (compile/debuginfo.py).
    split_debug: bool = False
    # CFLAGS/CXXFLAGS for the target's C compiles that find headers as the sources spell them (compile/header_case.py).
    header_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CargoInvocation:
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


class Runner(Protocol):
    name: str
    remaps_host_paths: bool  # the build runs on this host's paths (a container sees its own)

    def problem(self, target: Target, host: str) -> str | None:
        """Why this runner cannot build `target` on `host` (with the fix), or None."""
        ...

    def route(self, target: Target, project: Project) -> Route:
        """Where std for the target comes from when this runner builds it."""
        ...

    def build(self, job: BuildJob) -> dict[str, Path]:
        """Build; return binary name -> path of the executable on this host."""
        ...


class CommandRunner(ABC):
    """A runner that is one cargo-like command on this host."""

    name = "command"
    # Whether the build runs on this host's paths (a container sees its own).
    remaps_host_paths = True
    # Whether cargo runs on this host, where the build's sccache server listens.
    uses_compile_cache = True

    @abstractmethod
    def invocation(self, job: BuildJob) -> CargoInvocation:
        """The command line (argument list and extra environment)."""

    def route(self, target: Target, project: Project) -> Route:
        return resolve_route(target, project.sources, project.context)

    def explain_failure(self, job: BuildJob, stderr: str) -> ToolchainError | None:
        """What a failed build's error output means when this runner knows more than cargo
        says (a library its linker could not find, a build script that tested the build machine
        where it meant the target, a header its compiler lacks); None: cargo's own words stand."""
        # Imported on a failed build's path only.
        from toolchain.compile.host_cfg import explain_host_cfg
        from toolchain.compile.missing_library import explain_missing_library

        found = (job.target, job.project, list(job.selections), job.settings, stderr)
        # A build script's wrong choice first: the library it asked for is then not the thing to supply.
        return explain_host_cfg(*found) or explain_missing_library(*found)

    def build(self, job: BuildJob) -> dict[str, Path]:
        if stdcache.uses_cache(job):
            with stdcache.cached_sysroot(job, self, self.invocation(job).env) as sysroot:
                return self._build(stdcache.without_build_std(job), sysroot)
        return self._build(job, None)

    def _build(self, job: BuildJob, sysroot: Path | None) -> dict[str, Path]:
        invocation = self.invocation(job)
        if job.settings.build.auditable:
            invocation = CargoInvocation(*auditable_command(invocation.argv, invocation.env, self.name))
        env = dict(invocation.env)
        if self.uses_compile_cache:
            env.update(job.cache_env)
        if self.remaps_host_paths:
            env.update(job.header_env)  # after the std cache's key: std compiles no such C
        if self.remaps_host_paths and not job.route.trim_paths:
            project = job.project
            env["CARGO_ENCODED_RUSTFLAGS"] = encoded_rustflags(
                project.workspace_root,
                project.target_directory,
                job.target.triple,
                project.sources.vendor_dir,
                VENDORED_STD_SOURCES.parent.parent if job.route.name == "build-std" else None,
                project.context.folder,
            )
        if sysroot is not None:
            # std from the machine's cache, beside the flags above (the user's, and the remaps when set)
            env["CARGO_ENCODED_RUSTFLAGS"] = stdcache.sysroot_rustflags(
                job, sysroot, env.get("CARGO_ENCODED_RUSTFLAGS")
            )
        result = job.project.context.run(
            invocation.argv,
            explain=lambda stderr: self.explain_failure(job, stderr),
            env=env,
            tee_stderr=True,
            error=BuildError,
            what=f"cargo build for {job.target.triple}",
        )
        return parse_executables(result.stdout)


def parse_executables(stdout: str) -> dict[str, Path]:
    """Binary name -> path, from cargo's JSON messages (not from guessing)."""
    found = {}
    packages: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        is_artifact = message.get("reason") == "compiler-artifact" and message.get("executable")
        if is_artifact and "bin" in message["target"]["kind"]:
            name, package = message["target"]["name"], str(message.get("package_id", ""))
            if packages.setdefault(name, package) != package:
                # Both were written to one file: which binary it holds now is not knowable.
                raise BuildError(
                    f"cargo built two binaries named '{name}' ({packages[name]} and {package}) into one file",
                    hint="build one package at a time with --package",
                )
            found[name] = Path(message["executable"])
    if not found:
        raise BuildError("cargo reported no executable", hint="check --package/--bin")
    return found


def target_build_env(target: Target, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The target's [toolchain] build-env for its C build scripts, each as NAME_<triple> (the
    spelling cc-rs and pkg-config read first, and one that reaches no other target); a NAME the
    user set in any spelling they read is left to the user."""
    environ = os.environ if environ is None else environ
    chosen = {}
    for name, value in target.toolchain.build_env.items():
        spellings = c_build_env_names(name, target.triple)
        if not any(s in environ for s in spellings):
            chosen[spellings[1]] = value
    return chosen


def cargo_build_args(job: BuildJob) -> list[str]:
    """The arguments every runner passes after its own build command."""
    args = [
        "--manifest-path",
        str(job.project.manifest_path),
        "--target",
        job.target.triple,
        "--profile",
        job.profile.name,
        "--message-format",
        "json-render-diagnostics",
    ]
    if job.define_profile:
        args += job.profile.config_args(job.skip_keys)
    if job.split_debug:
        # The linker keeps the DWARF; the split after the link strips the shipped copy as the profile asks.
        args += ["--config", f'profile.{job.profile.name}.strip="none"']
        if job.target.os == "macos":
            # rustc keeps the objects the binary's debug map names, for our dsymutil to link (rustc's
            # own "packed" run needs a `dsymutil` on PATH, which LLVM's versioned packages lack).
            args += ["--config", f'profile.{job.profile.name}.split-debuginfo="unpacked"']
        else:
            # All of it in the linked binary: a crate's own "packed" or "unpacked" would leave its
            # code's DWARF in a .dwp or .dwo files beside cargo's output, and skeletons in the binary.
            args += ["--config", f'profile.{job.profile.name}.split-debuginfo="off"']
    for selection in job.selections:
        args += ["--package", selection.package.name]
        for binary in selection.binaries:
            args += ["--bin", binary]
    args += resolution_args(job.project, job.features, job.all_features, job.no_default_features, job.locked)
    if job.timings:
        # Plain --timings: cargo 1.95 refuses a value (--timings=html) without -Zunstable-options.
        args.append("--timings")
    args += job.route.cargo_args
    if job.route.trim_paths:
        args += ["-Ztrim-paths", "--config", f'profile.{job.profile.name}.trim-paths="all"']
    return args
