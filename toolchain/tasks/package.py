"""invoke package"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import out_folder, task


@task(
    help={
        "out-dir": "the release folder (where `invoke build` wrote the archives); default: dist",
        "secret-key": "minisign secret key file (else [sign] secret-key-file, $TOOLCHAIN_SECRET_KEY(_FILE))",
        "download-url": "base URL the installers download from (else [release] download-url)",
        "merge": "first gather per-target build folders (DIR/*/build-record.json, one per CI job) here",
        "clean": "remove release files in the folder that no build in its record made (old crates, dropped targets)",
        "json": "print the result as JSON on stdout",
    },
    name="package",
)
def package_task(
    c: Context,
    out_dir: str = "",
    secret_key: str = "",
    download_url: str = "",
    merge: str = "",
    clean: bool = False,
    json: bool = False,
) -> None:
    """Write checksums, manifest, provenance, installers and signatures for the built archives."""
    from toolchain.compile.stale import report_stale
    from toolchain.config.settings import load_settings, project_settings
    from toolchain.records.build_record import load_record
    from toolchain.release.folder import package_release
    from toolchain.release.installers import InstallerUpdate
    from toolchain.release.signing import configured_secret_key

    folder = out_folder(out_dir, load_settings())
    if merge:
        from toolchain.release.folder import merge_parts

        log.info(f"merged {', '.join(merge_parts(Path(merge), folder))} into {folder}")
    record = load_record(folder)
    report_stale(folder, record, clean)
    manifests = [e.manifest_path for e in record.targets.values() if e.manifest_path]
    settings = project_settings(manifests)  # the built project's, as its build read them
    key = configured_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
    repo = manifests[0].parent if manifests else folder
    update = InstallerUpdate.from_settings(settings.update)
    report = package_release(
        folder,
        key,
        download_url or settings.release.download_url,
        repo,
        schema_command=settings.update.schema_command,
        update=update,
        formats=settings.package.formats,
        metadata_days=settings.update.metadata_days,
    )
    if json:
        log.json(
            {"schema": "toolchain.package/v1", "signed": report.signed, "files": [f.to_dict() for f in report.files]}
        )
        return
    log.table(
        f"Release folder {folder} ({'signed' if report.signed else 'UNSIGNED'})",
        ["file", "kind", "target", "bytes", "sha256"],
        [[f.name, f.kind, f.target or "-", f"{f.size:,}", f.sha256[:16]] for f in report.files],
    )


TASKS = (package_task,)
