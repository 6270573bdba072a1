"""invoke build"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from toolchain.errors import SOME_TARGETS_FAILED
from toolchain.tasks.base import target_list, task


@task(
    help={
        "target": "target triple(s), comma-separated; default: this host's target",
        "all": "build every release target this host can build",
        "profile": "build profile from profiles/ (dist, size, fast) or cargo's release/dev; default: dist",
        "manifest-path": "Cargo.toml of the crate or workspace; default: the nearest Cargo.toml, as cargo finds it",
        "demo": "build the bundled demo app (from a source checkout of the toolkit)",
        "features": "cargo features to turn on, comma-separated (added to [build] features)",
        "all-features": "turn on every feature of the selected packages",
        "no-default-features": "turn off the default features",
        "clean": "remove release files in the output folder that this build record did not make",
        "no-locked": "let cargo update Cargo.lock (default: build --locked, from the lock file as committed)",
        "package": "only this workspace package",
        "bin": "only this binary (repeatable)",
        "runner": "auto, native, zig or cross; default: auto (chosen from the target data)",
        "force-profile": "use the toolkit's profile even if Cargo.toml defines one of that name",
        "out-dir": "where archives and checksums go; default: dist",
        "keep-going": "with several targets, go on past a failing one",
        "no-package": "build and verify only; write no archive",
        "allow": "let this policy rule fail without failing the build (repeatable; recorded)",
        "timings": "chart each target's phases into build-timings.html and keep cargo's own --timings page",
        "json": "print the result as a JSON document on stdout",
        "cache": "compile cache for this build: none, local or s3 (default: [cache] backend)",
        "force": "build even when nothing changed since this command's last successful build",
    },
    iterable=["bin", "allow", "features"],
    name="build",
)
def build_task(
    c: Context,
    target: str = "",
    all: bool = False,  # noqa: A002 - the flag users type is --all
    profile: str = "",
    manifest_path: str = "",
    package: str = "",
    bin: list[str] | None = None,  # noqa: A002 - the flag users type is --bin
    runner: str = "",
    force_profile: bool = False,
    out_dir: str = "",
    keep_going: bool = False,
    no_package: bool = False,
    allow: list[str] | None = None,
    demo: bool = False,
    features: list[str] | None = None,
    all_features: bool = False,
    no_default_features: bool = False,
    no_locked: bool = False,
    clean: bool = False,
    timings: bool = False,
    json: bool = False,
    cache: str = "",
    force: bool = False,
) -> None:
    """Build, inspect and package the project for one or more targets."""
    from toolchain.pipeline.command import build_command
    from toolchain.records.build_options import BuildOptions

    # Every option that changes what is built or written (not --json, --force: how it is shown, whether to check).
    options = BuildOptions(
        targets=target_list(target),
        all_targets=all,
        profile=profile or None,
        manifest_path=Path(manifest_path) if manifest_path else None,
        package=package or None,
        binaries=tuple(bin or ()),
        runner=runner or None,
        force_profile=force_profile,
        out_dir=Path(out_dir) if out_dir else None,
        keep_going=keep_going,
        package_artifacts=not no_package,
        allow=tuple(allow or ()),
        demo=demo,
        features=target_list(*(features or ())),  # the same comma-list syntax
        all_features=all_features or None,
        no_default_features=no_default_features or None,
        locked=False if no_locked else None,
        clean=clean,
        cache=cache or None,  # checked when it builds (a fresh hit repeats a build that checked it)
        timings=timings or None,
    )
    if not build_command(options, json=json, force=force):
        raise Exit(code=SOME_TARGETS_FAILED)


TASK = build_task
