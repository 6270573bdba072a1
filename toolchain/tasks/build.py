"""invoke build"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit

from toolchain.errors import SOME_TARGETS_FAILED, UsageError
from toolchain.log import log
from toolchain.tasks.base import target_list, task

if TYPE_CHECKING:
    from toolchain.build.pipeline import BuildReport
    from toolchain.config.settings import Settings
    from toolchain.verify.policy import RuleVerdict


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _verdict(verdicts: tuple[RuleVerdict, ...]) -> str:
    if any(v.blocking for v in verdicts):
        return "FAILED"
    notes = [f"allowed {v.rule}" for v in verdicts if v.allowed]
    notes += [f"warn {v.rule}" for v in verdicts if not v.ok and not v.allowed and v.severity == "warn"]
    return "ok" + (f" ({', '.join(notes)})" if notes else "")


def print_summary(report: BuildReport) -> None:
    rows = []
    for result in report.results:
        entry = result.entry
        if not entry.ok:
            row = [entry.target, entry.runner or "-", entry.route or "-", "-", "-", "-"]
            rows.append([*row, f"{entry.seconds:.1f}", "-", "FAILED"])
            continue
        archives = {a.package: a for a in result.artifacts}
        for binary in result.binaries:
            archive = archives.get(binary.package)
            rows.append(
                [
                    entry.target,
                    entry.runner or "-",
                    entry.route or "-",
                    binary.path.name,
                    _human(binary.info.size),
                    f"{archive.path.name} ({_human(archive.size)})" if archive else "-",
                    f"{entry.seconds:.1f}",
                    entry.cache.summary() if entry.cache else "-",
                    _verdict(binary.verdicts),
                ]
            )
    log.table(
        f"Build summary ({report.profile} profile, artifacts in {report.out_dir})",
        ["target", "runner", "route", "binary", "size", "archive", "seconds", "cache", "verdict"],
        rows,
    )


def cache_backend(name: str) -> str | None:
    """--cache, checked before anything is built."""
    from toolchain.build.cache import BACKENDS
    from toolchain.config.schema import did_you_mean

    if not name:
        return None
    if name not in BACKENDS:
        raise UsageError(
            f"unknown compile cache '{name}'; {did_you_mean(name, BACKENDS)}", hint="pass --cache none, local or s3"
        )
    return name


def package_built(report: BuildReport, settings: Settings) -> None:
    """The release folder's files (installers, manifest, provenance, checksums,
    signatures) for what the build put there: a step of the task, not of build()."""
    from toolchain.release.folder import package_release
    from toolchain.release.installers import InstallerUpdate
    from toolchain.release.signing import configured_secret_key

    if report.record_path is None:
        return
    key = configured_secret_key(settings.secret_key_file)
    package_release(
        report.out_dir,
        key,
        settings.release.download_url,
        report.workspace_root or report.out_dir,
        schema_command=settings.update.schema_command,
        update=InstallerUpdate(
            settings.update.data_files, settings.update.backup_command, checks=settings.update.upgrade_checks
        ),
        formats=settings.package.formats,
        metadata_days=settings.update.metadata_days,
        manifests=report.manifests,
        reuse=True,
    )


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
) -> None:
    """Build, inspect and package the project for one or more targets."""
    from toolchain.build.pipeline import BuildOptions, build
    from toolchain.config.settings import load_settings

    settings = load_settings()
    if timings or settings.build.timings:
        from toolchain.report.charts import require_matplotlib

        require_matplotlib()  # before the build, not after minutes of it
    report = build(
        BuildOptions(
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
            cache=cache_backend(cache),
            timings=timings or None,
        ),
        settings,
    )
    if not no_package:
        package_built(report, settings)
    page = None
    if (timings or settings.build.timings) and report.record_path is not None:
        from toolchain.build.record import load_record
        from toolchain.report.pages import write_timings_report

        page = write_timings_report(report.out_dir, load_record(report.out_dir))
    if json:
        log.json({**report.to_dict(), **({"timings_report": str(page)} if page else {})})
    else:
        print_summary(report)
    if page is not None:
        log.info(f"build timings: {page}")
    if not report.ok:
        raise Exit(code=SOME_TARGETS_FAILED)


TASK = build_task
