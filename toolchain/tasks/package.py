"""invoke package, keygen, sign, verify"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.tasks.base import out_folder, required, task


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


@task(
    help={
        "out-dir": "folder for minisign.key and minisign.pub (not the release folder); default: keys",
        "force": "overwrite an existing key pair",
        "root": "make an offline root key (root.key/root.pub): it signs the key lists (`invoke rotate-key`)",
    },
    name="keygen",
)
def keygen_task(c: Context, out_dir: str = "keys", force: bool = False, root: bool = False) -> None:
    """Make a minisign (Ed25519) key pair for signing releases (or, with --root, key lists)."""
    from toolchain.atomic import write_atomic
    from toolchain.release.folder import SUMS_NAME
    from toolchain.release.signing import generate

    folder = Path(required(out_dir, "--out-dir"))
    stem = "root" if root else "minisign"
    secret, public = folder / f"{stem}.key", folder / f"{stem}.pub"
    if secret.exists() and not force:
        raise UsageError(
            f"{secret} already exists",
            hint="pass --force to replace it (old signatures stay valid only with the old key)",
        )
    if (folder / SUMS_NAME).exists() or (folder / "build-record.json").exists():
        raise UsageError(
            f"{folder} is a release folder", hint="keep keys out of what you publish: use another --out-dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    key = generate()
    write_atomic(secret, key.render(), 0o600)
    public.write_text(key.public_key().render())
    where = "offline, never in CI" if root else "a CI secret, never the release folder"
    log.info(f"wrote {secret} (keep it secret: {where}) and {public}")
    print(public.read_text().splitlines()[1])


@task(
    help={
        "path": "file to sign (default: every file listed in the release folder's sha256.sum, and the list)",
        "out-dir": "the release folder; default: dist",
        "secret-key": "minisign secret key file (else [sign] secret-key-file, $TOOLCHAIN_SECRET_KEY(_FILE))",
    },
    name="sign",
)
def sign_task(c: Context, path: str = "", out_dir: str = "", secret_key: str = "") -> None:
    """Sign files with minisign-compatible Ed25519 signatures (.minisig)."""
    from toolchain.config.settings import load_settings
    from toolchain.release.folder import SUMS_NAME
    from toolchain.release.signing import load_secret_key, sign_file

    settings = load_settings()
    key = load_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
    if path:
        files = [Path(path)]
    else:
        from toolchain.release.folder import parse_sums

        folder = out_folder(out_dir, settings)
        files = [folder / name for name in parse_sums(folder / SUMS_NAME)] + [folder / SUMS_NAME]
    for file in files:
        if not file.is_file():
            raise UsageError(f"{file} does not exist", hint="check the path")
        log.info(f"signed {sign_file(file, key, f'file:{file.name}')}")


@task(
    help={
        "path": "the release folder to check; default: dist",
        "public-key": "minisign public key: a file, or the key itself (else [sign] public-key-file)",
        "json": "print the result as JSON on stdout",
    },
    name="verify",
)
def verify_task(c: Context, path: str = "", public_key: str = "", json: bool = False) -> None:
    """Check a release folder: every file listed, every digest and signature right, the channel not about to expire."""
    from toolchain.config.settings import load_settings
    from toolchain.errors import ReleaseCheckError
    from toolchain.release.folder import verify_release
    from toolchain.release.latest import RENEW_HINT, stale_channel
    from toolchain.release.signing import public_key_text

    settings = load_settings()
    folder = out_folder(path, settings)
    key_text = public_key_text(public_key, settings.public_key_file)
    checked = verify_release(folder, key_text)
    try:
        stale = stale_channel(folder, settings.update.min_validity)
    except ValueError as exc:
        raise ReleaseCheckError(str(exc), hint="run `invoke package`") from None
    if stale:
        # Its files are sound, but publishing it would freeze every installed copy.
        raise ReleaseCheckError(f"the channel {stale}", hint=RENEW_HINT)
    if json:
        log.json({"schema": "toolchain.verify/v1", "ok": True, "folder": str(folder), "files": checked})
        return
    log.table(f"Release folder {folder} verified", ["file", "digest", "signature"], [[n, "ok", "ok"] for n in checked])


TASKS = (package_task, keygen_task, sign_task, verify_task)
