"""`invoke build` as a whole: the fresh check, else the build, its release folder, its
timings page and its summary, then the fingerprint of a successful one.

Only the fresh check's modules are imported up front: a build with nothing changed
prints the stored summary without importing the pipeline, LIEF or the settings models.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

from toolchain.compile import fresh
from toolchain.errors import ToolchainError
from toolchain.records.build_options import BuildOptions

if TYPE_CHECKING:
    from toolchain.config.settings import Settings
    from toolchain.pipeline.targets import BuildReport
    from toolchain.verify.policy import RuleVerdict


def build_command(options: BuildOptions, *, json: bool = False, force: bool = False) -> bool:
    """Build as `options` ask unless nothing changed since the same command's last successful
    build (`force`: build anyway); print the result (`json`: as a document). Whether it succeeded."""
    outcome = fresh.run_or_reuse(dataclasses.asdict(options), lambda: _build(options), force=force, json=json)
    if outcome.ok and not outcome.fresh:
        _end_without_freeing()
    return outcome.ok


def _build(options: BuildOptions) -> fresh.FreshResult:
    from toolchain.config.settings import load_settings, settings_folder

    settings = load_settings(settings_folder(options.manifest_path, options.demo))
    with contextlib.suppress(ToolchainError):  # no Cargo.toml: the build says so, in its order
        from toolchain.compile.cargo import ask_metadata_ahead
        from toolchain.compile.context import CargoContext
        from toolchain.compile.routes import ask_sysroot_ahead

        # cargo metadata and rustc --print sysroot run while the pipeline's modules load below
        manifest = options.manifest_path or settings.manifest(demo=options.demo)
        ask_metadata_ahead(manifest)
        ask_sysroot_ahead(CargoContext.of(manifest))
    from toolchain.compile.routes import SYSROOTS
    from toolchain.pipeline.targets import build

    report = build(options, settings)
    used = report.settings or settings  # merged with the command line's choices
    if options.package_artifacts:
        package_built(report, used)
    page = None
    if used.build.timings and report.record_path is not None:
        from toolchain.records.build_record import load_record
        from toolchain.report.pages import write_timings_report

        page = write_timings_report(report.out_dir, load_record(report.out_dir))
    project = report.project
    watched = None
    if project is not None and report.record_path is not None:
        from toolchain.release.folder import stamped_day

        watched = fresh.Watched(
            workspace_root=project.workspace_root,
            target_directory=project.target_directory,
            out_dir=report.out_dir,
            manifests=(project.workspace_root / "Cargo.toml", *project.member_manifests),
            build_script_roots=project.build_script_roots,
            binaries=tuple(b.path for r in report.results for b in r.binaries),
            sysroots=tuple(SYSROOTS),
            day=stamped_day(report.out_dir),
        )
    title, columns, rows = summary(report)
    return fresh.FreshResult(
        ok=report.ok,
        document={**report.to_dict(), **({"timings_report": str(page)} if page else {})},
        title=title,
        columns=columns,
        rows=rows,
        notes=(f"build timings: {page}",) if page is not None else (),
        watched=watched,
    )


def _end_without_freeing() -> None:
    """Everything is written: let the process end without collecting its heap. Freeing
    LIEF's bindings and the release folder's libraries at exit takes 0.1-0.3 s, more than
    any other step after cargo; the operating system takes the memory back at once.
    Files are closed by their `with` blocks, temporary folders by theirs."""
    import gc

    from toolchain.pipeline.targets import warmed_up
    from toolchain.verify.inspection import quiet_about_kept_objects

    warmed_up()  # a cargo run whose binary's inspection was cached can end while LIEF is still importing
    quiet_about_kept_objects()
    gc.freeze()


def package_built(report: BuildReport, settings: Settings) -> None:
    """The release folder's files (installers, manifest, provenance, checksums,
    signatures) for what the build put there: a step of the command, not of build()."""
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
