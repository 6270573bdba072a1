"""invoke build"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit

from toolchain.errors import SOME_TARGETS_FAILED, ToolchainError, UsageError
from toolchain.log import log
from toolchain.tasks.base import target_list, task

if TYPE_CHECKING:
    from toolchain.build.fresh import Reads
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


def summary(report: BuildReport) -> tuple[str, list[str], list[list[str]]]:
    """The summary table: its title, columns and rows (kept with the fresh check's fingerprint)."""
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
    title = f"Build summary ({report.profile} profile, artifacts in {report.out_dir})"
    return title, ["target", "runner", "route", "binary", "size", "archive", "seconds", "cache", "verdict"], rows


def print_summary(report: BuildReport) -> None:
    log.table(*summary(report))


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
        update=InstallerUpdate.from_settings(settings.update),
        formats=settings.package.formats,
        metadata_days=settings.update.metadata_days,
        manifests=report.manifests,
        reuse=True,
        source=report.source_state,
        source_epoch=report.source_epoch,
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
    import time

    from toolchain.build import fresh

    # Every option that changes what is built or written (not --json, --force: how it is shown, whether to check).
    options = dict(locals())
    for name in ("c", "json", "force", "time", "fresh"):
        options.pop(name, None)
    key = fresh.command_key(options)
    previous = None if force else fresh.stored(key)
    if previous is not None:
        log.info("fresh: nothing changed since this command's last build (--force builds again)")
        if json:
            log.json({**previous["report"], "fresh": True})
        else:
            log.table(previous["title"], previous["columns"], previous["rows"])
        return
    started_ns = time.time_ns()
    reads = fresh.Reads.start()
    try:
        _build(SimpleNamespace(**options), json, key, reads, started_ns)
    finally:
        reads.stop()


def _build(o: SimpleNamespace, json: bool, key: str, reads: Reads, started_ns: int) -> None:
    """The build itself, then the fresh check's fingerprint of it."""
    from toolchain.config.settings import load_settings, settings_folder

    manifest_path = Path(o.manifest_path) if o.manifest_path else None
    settings = load_settings(settings_folder(manifest_path, o.demo))
    with contextlib.suppress(ToolchainError):  # no Cargo.toml: the build says so, in its order
        from toolchain.build.cargo import ask_metadata_ahead

        ask_metadata_ahead(manifest_path or settings.manifest(demo=o.demo))  # while the imports below run
    from toolchain.build import fresh
    from toolchain.build.pipeline import BuildOptions, build
    from toolchain.build.routes import SYSROOTS

    if o.timings or settings.build.timings:
        from toolchain.report.charts import require_matplotlib

        require_matplotlib()  # before the build, not after minutes of it
    report = build(
        BuildOptions(
            targets=target_list(o.target),
            all_targets=o.all,
            profile=o.profile or None,
            manifest_path=manifest_path,
            package=o.package or None,
            binaries=tuple(o.bin or ()),
            runner=o.runner or None,
            force_profile=o.force_profile,
            out_dir=Path(o.out_dir) if o.out_dir else None,
            keep_going=o.keep_going,
            package_artifacts=not o.no_package,
            allow=tuple(o.allow or ()),
            demo=o.demo,
            features=target_list(*(o.features or ())),  # the same comma-list syntax
            all_features=o.all_features or None,
            no_default_features=o.no_default_features or None,
            locked=False if o.no_locked else None,
            clean=o.clean,
            cache=cache_backend(o.cache),
            timings=o.timings or None,
        ),
        settings,
    )
    if not o.no_package:
        package_built(report, settings)
    page = None
    if (o.timings or settings.build.timings) and report.record_path is not None:
        from toolchain.build.record import load_record
        from toolchain.report.pages import write_timings_report

        page = write_timings_report(report.out_dir, load_record(report.out_dir))
    document = {**report.to_dict(), **({"timings_report": str(page)} if page else {})}
    if json:
        log.json({**document, "fresh": False})
    else:
        print_summary(report)
    if page is not None:
        log.info(f"build timings: {page}")
    if not report.ok:
        raise Exit(code=SOME_TARGETS_FAILED)
    project = report.project
    if project is not None and report.record_path is not None:
        title, columns, rows = summary(report)
        why_not = fresh.save(
            key,
            reads,
            started_ns,
            {"report": document, "title": title, "columns": columns, "rows": rows},
            workspace_root=project.workspace_root,
            target_directory=project.target_directory,
            out_dir=report.out_dir,
            manifests=(project.workspace_root / "Cargo.toml", *project.member_manifests),
            build_script_roots=project.build_script_roots,
            binaries=tuple(b.path for r in report.results for b in r.binaries),
            sysroots=tuple(SYSROOTS),
        )
        if why_not:
            log.info(f"the next build runs cargo again: {why_not}")
    _end_without_freeing()


def _end_without_freeing() -> None:
    """Everything is written: let the process end without collecting its heap. Freeing
    LIEF's bindings and the release folder's libraries at exit takes 0.1-0.3 s, more than
    any other step after cargo; the operating system takes the memory back at once.
    Files are closed by their `with` blocks, temporary folders by theirs."""
    import gc

    from toolchain.verify.inspection import quiet_about_kept_objects

    quiet_about_kept_objects()
    gc.freeze()


TASK = build_task
