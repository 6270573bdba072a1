"""Compile one target: choose its runner and route, set up the profile, run cargo (or join a
fat Mach-O from its components), and say how. What follows cargo (verify, package) is the
pipeline's (toolchain/pipeline/)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from toolchain import __version__, proc
from toolchain.compile.c_libraries import require_c_libraries
from toolchain.compile.cargo import Project, Selection
from toolchain.compile.context import HERE, CargoContext
from toolchain.compile.header_case import header_links_env
from toolchain.compile.libclang import require_libclang
from toolchain.compile.routes import Route, rustc_version
from toolchain.compile.runners import BuildJob, choose_runner
from toolchain.compile.rust_version import require_rust_version
from toolchain.compile.sdk import require_sdk
from toolchain.compile.vendor import merge_sources
from toolchain.config.profiles import Profile, SettingSource, effective_settings
from toolchain.config.settings import Settings
from toolchain.config.targets import Target, host_platform
from toolchain.log import log


def profile_is_defined_by_toolkit(profile: Profile, project: Project, force: bool) -> tuple[bool, str]:
    """Whether to pass the profile on cargo's command line, and where it comes from."""
    if profile.builtin:
        return False, f"cargo's built-in {profile.name} profile"
    if profile.name in project.manifest_profiles and not force:
        return False, f"[profile.{profile.name}] in {project.workspace_root / 'Cargo.toml'}"
    return True, str(profile.source)


@dataclass(frozen=True)
class Compiled:
    """What cargo produced for one target, and how."""

    executables: dict[str, Path]
    runner: str
    runner_reason: str
    route: Route
    profile_source: str
    profile_settings: tuple[SettingSource, ...] = ()
    versions: Future[dict[str, str | None]] | None = None  # toolchain_versions(route), asked while cargo ran
    split_debug: bool = False  # linked with its debug info, to split off (compile/debuginfo.py)
    strip_symbols: bool = False  # the split copy loses its symbol table too (strip = "symbols")
    # the toolkit's own time before the runner's build (runner, checks that read the crate graph,
    # route, sources, profile): the build record's "prepare" phase, not counted as cargo's
    prepare_seconds: float = 0.0


def compile_target(
    project: Project,
    selections: list[Selection],
    target: Target,
    profile: Profile,
    settings: Settings,
    force_profile: bool,
    cache_env: dict[str, str] | None = None,
) -> Compiled:
    if target.components:
        parts = [
            compile_target(project, selections, settings.catalog.target(c), profile, settings, force_profile, cache_env)
            for c in target.components
        ]
        return join_components(project, target, profile, parts)
    started = time.monotonic()
    host = host_platform()
    with log.group(f"build {target.triple} ({profile.name} profile)"):
        choice = choose_runner(settings.build.runner, target, host)
        log.info(f"runner: {choice.runner.name} ({choice.reason})")
        require_sdk(target, project, selections, settings)
        require_libclang(target, project, selections, settings)
        require_c_libraries(target, project, selections, settings, choice.runner.name, host)
        header_env = header_links_env(target, project, selections, settings) if choice.runner.remaps_host_paths else {}
        route = choice.runner.route(target, project)
        log.info(f"toolchain route: {route.name} ({route.detail})")
        require_rust_version(target, project, selections, settings, route)
        if route.merge is not None:
            count = merge_sources(*route.merge)
            log.info(f"merged {count} vendored crates (std's and the project's) into {route.merge[2]}")
        define, profile_source = profile_is_defined_by_toolkit(profile, project, force_profile)
        if not define and not profile.builtin:
            log.warn(f"using {profile_source}; pass --force-profile to use the toolkit's {profile.name} profile")
        log.info(f"profile: {profile.name} from {profile_source}")
        skip: frozenset[str] = frozenset()
        profile_settings: tuple[SettingSource, ...] = ()
        if define:
            manifest = project.workspace_root / "Cargo.toml"
            release = project.manifest_profiles.get("release", {})
            skip, profile_settings = effective_settings(profile, release, manifest, force_profile)
            for key in sorted(skip):
                log.info(f"keeping {key} = {release[key]!r} from [profile.release]: tighter than {profile.name}'s")
        from toolchain.compile.debuginfo import effective_debug, keeps_debug, strips_symbols

        split_debug = keeps_debug(effective_debug(profile, project.manifest_profiles, define, skip))
        if split_debug:
            log.info("the profile keeps debug info: it is split off each binary and shipped as its own artifact")
        job = BuildJob(
            project,
            tuple(selections),
            target,
            profile,
            define,
            route,
            settings,
            skip,
            features=settings.build.features,
            all_features=settings.build.all_features,
            no_default_features=settings.build.no_default_features,
            locked=settings.build.locked,
            cache_env=dict(cache_env or {}),
            timings=settings.build.timings,
            split_debug=split_debug,
            header_env=header_env,
        )
        # two version probes, off the path after cargo
        versions = proc.soon(lambda: toolchain_versions(route, project.context), "toolchain-probe")
        prepared = time.monotonic() - started
        executables = choice.runner.build(job)
    strip = split_debug and strips_symbols(profile, project.manifest_profiles, define)
    return Compiled(
        executables, choice.runner.name, choice.reason, route, profile_source, profile_settings, versions,
        split_debug, strip, prepared,
    )  # fmt: skip


def join_components(project: Project, target: Target, profile: Profile, parts: list[Compiled]) -> Compiled:
    """Join each binary's slices, built for the target's components, into one fat Mach-O."""
    out_dir = project.target_directory / target.triple / profile.dir_name()
    from toolchain.compile.fat import join_fat

    out_dir.mkdir(parents=True, exist_ok=True)
    joined = {}
    with log.group(f"join {target.triple}"):
        for name in sorted(parts[0].executables):
            slices = [part.executables[name] for part in parts]
            joined[name] = join_fat(slices, out_dir / slices[0].name)
            log.info(f"joined {', '.join(str(p) for p in slices)} into {joined[name]}")
    first = parts[0]
    reason = f"components {', '.join(target.components)} joined into one fat Mach-O"
    return Compiled(
        joined, first.runner, reason, first.route, first.profile_source, first.profile_settings, first.versions,
        first.split_debug, first.strip_symbols, sum(part.prepare_seconds for part in parts),
    )  # fmt: skip


def toolchain_versions(route: Route, context: CargoContext = HERE) -> dict[str, str | None]:
    """The route's compiler versions; cargo's is asked once per build (with_cargo)."""
    if route.versions:
        return {**dict(route.versions), "route": route.name, "route_detail": route.detail, "toolkit": __version__}
    cargo = route.env.get("CARGO")  # a route that runs its own cargo names it; else with_cargo adds the build's
    return {
        **({"cargo": context.output([cargo, "--version"])} if cargo else {}),
        "rustc": rustc_version(route.rustc, context),
        "route": route.name,
        "route_detail": route.detail,
        "toolkit": __version__,
    }
