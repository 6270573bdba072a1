"""Rollback validation before publish (guardrail 3): a release whose schema
level differs from the previous release's is published only with proof that
an update to it fails safe.

`validate_rollback` installs the previous release in a sandbox, makes data
with it, runs the real updater (toolchain.update.update) to this release
with a forced migration failure and checks that binary and data were put
back exactly (bytes, and SQL dumps), then runs a clean update. The result,
rollback-validation.json, is added to the release folder: listed in the
manifest and sha256.sum and signed like every other file. `require_validation`
is publish's check of it."""

from __future__ import annotations

import json
import platform
import shutil
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain import proc
from toolchain.atomic import write_atomic, write_json
from toolchain.digest import sha256_file
from toolchain.errors import (
    ConfigError,
    PublishError,
    ReleaseCheckError,
    RollbackValidationError,
    SignatureError,
    ToolchainError,
    UpdateError,
    UsageError,
)
from toolchain.log import log
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, parse_sums, verify_release
from toolchain.release.installers import env_prefix
from toolchain.release.schema import ArchiveRef, parse_level, runnable_first, sandbox, sandbox_env
from toolchain.release.signing import SecretKey, parse_public_key, sign_file, verify_file

if TYPE_CHECKING:
    from toolchain.release.github import GitHubTarget
    from toolchain.release.s3 import S3Target

VALIDATION_NAME = "rollback-validation.json"
VALIDATION_SCHEMA = "toolchain.rollback-validation/v1"
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class RollbackOptions:
    """The [update] settings validation needs, read once."""

    schema_command: tuple[str, ...] = ()
    fail_migration_env: str = "{APP}_FAIL_MIGRATION"
    seed_commands: tuple[tuple[str, ...], ...] = ()

    def fail_env(self, app: str) -> str:
        return self.fail_migration_env.replace("{APP}", env_prefix(app))


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ValidationReport:
    path: Path
    passed: bool
    checks: tuple[Check, ...]
    previous_version: str
    version: str
    previous_level: int | None
    level: int | None
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppRelease:
    """One app of a release as its (verified) manifest describes it."""

    app: str
    version: str
    schema_level: int | None
    archives: tuple[ArchiveRef, ...]
    digests: dict[str, str]  # every artifact the manifest lists: name -> sha256

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str) -> AppRelease:
        apps = manifest.get("apps", [])
        if len(apps) != 1:
            raise UsageError(f"{where} holds {len(apps)} apps", hint="validate one app's release folder at a time")
        app = apps[0]
        level = app.get("schema_level")
        archives = tuple(
            ArchiveRef(a["name"], a.get("target") or "", a["sha256"], tuple(a.get("binaries", ())))
            for a in manifest.get("artifacts", [])
            if a.get("kind") == "archive"
        )
        digests = {a["name"]: a["sha256"] for a in manifest.get("artifacts", [])}
        return cls(str(app["name"]), str(app["version"]), level if isinstance(level, int) else None, archives, digests)


def source_file(source: str, name: str, into: Path) -> Path:
    """A file of a release given as a folder or as a URL of its folder."""
    if "://" not in source:
        path = Path(source) / name
        if not path.is_file():
            raise UsageError(f"{path} is missing", hint="pass a release folder (with manifest.json) or its URL")
        return path
    url = f"{source.rstrip('/')}/{name}"
    out = into / name
    try:
        with urllib.request.urlopen(url, timeout=60) as response, out.open("wb") as handle:
            shutil.copyfileobj(response, handle)
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"cannot download {url}: {exc}", hint="check the release URL") from None
    return out


def verified_manifest(source: str, public_key_text: str, into: Path) -> dict[str, Any]:
    """A release's manifest.json, after its signature checks out with the trusted key."""
    manifest = source_file(source, MANIFEST_NAME, into)
    signature = source_file(source, f"{MANIFEST_NAME}.minisig", into)
    try:
        verify_file(manifest, signature, parse_public_key(public_key_text))
    except SignatureError as exc:
        raise SignatureError(f"{source}: {exc.message}", hint=exc.hint) from None
    try:
        document: dict[str, Any] = json.loads(manifest.read_text())
    except ValueError:
        raise ReleaseCheckError(f"{source}/{MANIFEST_NAME} is not JSON", hint="use the release's own files") from None
    return document


def published_manifest(source: str, into: Path) -> dict[str, Any]:
    """A published release's manifest.json as it stands: not checked against
    today's key, since an earlier release may be signed with a retired one (the
    audit is what checks published signatures)."""
    try:
        document: dict[str, Any] = json.loads(source_file(source, MANIFEST_NAME, into).read_text())
    except ValueError:
        raise ReleaseCheckError(f"{source}/{MANIFEST_NAME} is not JSON", hint="use the release's own files") from None
    return document


def _dumps(files: Sequence[Path]) -> dict[str, list[str]]:
    """Each database's content as SQL (the same rows give the same dump)."""
    out = {}
    for path in files:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            out[path.name] = list(connection.iterdump())
        connection.close()
    return out


def _sqlite_files(home: Path) -> list[Path]:
    """The data the app made: every SQLite file in its sandbox (the sandbox
    holds nothing else, so this finds them without the project naming them)."""
    found = []
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                    found.append(path)
    return found


def _binary_name(archive: ArchiveRef, app: str) -> str:
    return archive.binaries[0] if archive.binaries else app


def _archive_source(source: str, name: str) -> str:
    return f"{source.rstrip('/')}/{name}" if "://" in source else str(Path(source) / name)


def validate_rollback(
    folder: Path,
    previous: str,
    public_key_text: str,
    key: SecretKey | None,
    options: RollbackOptions,
) -> ValidationReport:
    """Prove that updating from `previous` to the release in `folder` rolls back
    cleanly on a failed migration and succeeds without one; record it in the folder."""
    from toolchain.update import update
    from toolchain.update.artifact import extract_binary, verify_artifact
    from toolchain.update.journal import Journal

    verify_release(folder, public_key_text)
    signed = (folder / f"{SUMS_NAME}.minisig").is_file()
    if signed and key is None:
        raise UsageError(
            f"{folder} is signed, and adding {VALIDATION_NAME} to it needs the signing key",
            hint="set [sign] secret-key-file or $TOOLCHAIN_SECRET_KEY",
        )
    if key is not None and key.public_key() != parse_public_key(public_key_text):
        raise SignatureError(
            "the secret key does not belong to the public key the release is checked with",
            hint="pass the release's own key pair",
        )
    this = AppRelease.from_manifest(json.loads((folder / MANIFEST_NAME).read_text()), str(folder))
    native = [a for a, how in runnable_first(this.archives) if how == "native"]
    if not native:
        raise UsageError(
            f"no archive of {this.app} in {folder} runs natively on this machine",
            hint="run validate-rollback on a machine of one of the release's targets",
        )
    archive = native[0]
    if this.schema_level is None:
        raise ConfigError(
            f"{folder}/{MANIFEST_NAME} records no schema level for {this.app}",
            hint="set [update] schema-command to the app's schema report and re-run `invoke package`",
        )
    fail_env = options.fail_env(this.app)
    checks: list[Check] = []
    with sandbox("toolchain-rollback-") as work:
        (work / "download").mkdir()
        before = AppRelease.from_manifest(verified_manifest(previous, public_key_text, work / "download"), previous)
        if before.app != this.app:
            raise UsageError(
                f"{previous} is a release of {before.app}, not {this.app}", hint="pass the previous release"
            )
        old = next((a for a in before.archives if a.target == archive.target), None)
        if old is None:
            raise UsageError(
                f"{previous} has no {archive.target} archive", hint="pass a release built for this machine"
            )
        name = _binary_name(archive, this.app)
        log.step(f"installing {this.app} {before.version} in {work}")
        artifact = verify_artifact(_archive_source(previous, old.name), public_key_text, work / "download")
        (work / "bin").mkdir()
        binary = work / "bin" / name
        extract_binary(artifact, name, binary)
        binary.chmod(0o755)
        home = work / "home"
        env = sandbox_env(this.app, home)
        for command in options.seed_commands:
            result = proc.run([binary, *command], env=env, check=False, timeout=120)
            if result.returncode != 0:
                last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
                raise ConfigError(
                    f"`{name} {' '.join(command)}` (seed-commands) exited {result.returncode}: {last[0]}",
                    hint="fix [update] seed-commands to commands the previous release accepts",
                )
        data = _sqlite_files(home)
        if not data:
            raise ConfigError(
                f"{this.app} {before.version} made no SQLite file with [update] seed-commands",
                hint='set seed-commands to commands that write the app\'s data (e.g. [["migrate"]])',
            )
        binary_before, dump_before = sha256_file(binary), _dumps(data)
        checks.append(Check("data made", True, f"{len(data)} SQLite file(s) by {before.version}"))
        step = str(this.schema_level)
        state = work / "state"
        log.step(f"update {before.version} -> {this.version} with {fail_env}={step} (must roll back)")
        try:
            update(binary, str(folder / archive.name), public_key_text, data, state_dir=state, keep=1,
                   env={**env, fail_env: step})  # fmt: skip
            checks.append(Check("forced failure refused", False, f"the update succeeded despite {fail_env}={step}"))
        except UpdateError as exc:
            journal = Journal.read(state)
            steps = [s[0] for s in journal.record.get("steps", [])] if journal else []
            migrated = "migrating" in steps and journal is not None and journal.state == "rolled-back"
            checks.append(Check("forced failure refused", migrated, exc.message[:300]))
        checks.append(Check("binary restored", sha256_file(binary) == binary_before, f"sha256 {binary_before[:16]}"))
        restored = _dumps(data) == dump_before
        checks.append(Check("data restored", restored, "same SQL dump" if restored else "the SQL dump differs"))
        log.step(f"update {before.version} -> {this.version} (must succeed)")
        try:
            result_ok = update(
                binary, str(folder / archive.name), public_key_text, data, state_dir=state, keep=1, env=env
            )
            report = proc.run([binary, *options.schema_command], env=env, check=False, timeout=120)
            level = parse_level(report.stdout)
            checks.append(
                Check(
                    "clean update",
                    result_ok.ok and level == this.schema_level,
                    f"{result_ok.old_version} -> {result_ok.new_version}, schema level {level}",
                )
            )
        except ToolchainError as exc:
            checks.append(Check("clean update", False, exc.message[:300]))
    passed = all(c.ok for c in checks)
    document = {
        "schema": VALIDATION_SCHEMA,
        "app": this.app,
        "version": this.version,
        "schema_level": this.schema_level,
        "previous": {
            "source": previous,
            "version": before.version,
            "schema_level": before.schema_level,
            "archive": old.name,
            "sha256": old.sha256,
        },
        "exercised": {"archive": archive.name, "target": archive.target, "sha256": archive.sha256},
        "forced_failure": {"env": fail_env, "value": step},
        "seed_commands": [list(c) for c in options.seed_commands],
        "artifacts": this.digests,
        "checks": [asdict(c) for c in checks],
        "result": "pass" if passed else "fail",
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{platform.system()}-{platform.machine()}",
    }
    path = _record(folder, document, key)
    report_out = ValidationReport(
        path, passed, tuple(checks), before.version, this.version, before.schema_level, this.schema_level, this.digests
    )
    if not passed:
        failed = next(c for c in checks if not c.ok)
        raise RollbackValidationError(
            f"rollback validation of {this.app} {before.version} -> {this.version} failed: {failed.name} "
            f"({failed.detail})",
            hint=f"fix the update path; {path.name} records the failure and publish will refuse the release",
        )
    return report_out


def _record(folder: Path, document: dict[str, Any], key: SecretKey | None) -> Path:
    """Write the validation, list it in the manifest and sha256.sum, and sign all three."""
    path = write_json(folder / VALIDATION_NAME, document)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["rollback_validation"] = {
        "name": VALIDATION_NAME,
        "sha256": sha256_file(path),
        "result": document["result"],
    }
    write_json(folder / MANIFEST_NAME, manifest)
    sums = parse_sums(folder / SUMS_NAME)
    sums[VALIDATION_NAME] = sha256_file(path)
    sums[MANIFEST_NAME] = sha256_file(folder / MANIFEST_NAME)
    write_atomic(folder / SUMS_NAME, "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
    if key is not None:
        for name in (VALIDATION_NAME, MANIFEST_NAME, SUMS_NAME):
            sign_file(folder / name, key, f"file:{name}")
    log.info(f"wrote {path} ({document['result']}) and re-signed {MANIFEST_NAME} and {SUMS_NAME}")
    return path


def require_validation(folder: Path, previous: AppRelease | None) -> str:
    """Publish's check (after the folder itself was verified): a release whose
    schema level differs from the previous release's needs a passing
    validation of exactly its artifacts. Returns why it may go out."""
    this = AppRelease.from_manifest(json.loads((folder / MANIFEST_NAME).read_text()), str(folder))
    if previous is None:
        return "no previous release"
    if previous.schema_level == this.schema_level:
        return f"schema level {this.schema_level} unchanged since {previous.version}"
    change = f"{this.app} {this.version} changes the schema level ({previous.schema_level} -> {this.schema_level})"
    hint = f"run `invoke validate-rollback --from PREVIOUS` ({previous.version}) on this folder, then publish"
    path = folder / VALIDATION_NAME
    if VALIDATION_NAME not in parse_sums(folder / SUMS_NAME) or not path.is_file():
        raise RollbackValidationError(f"{change} and has no rollback validation", hint=hint)
    document = json.loads(path.read_text())
    if document.get("result") != "pass":
        raise RollbackValidationError(f"{change} and its rollback validation failed", hint=hint)
    if document.get("artifacts") != this.digests:
        raise RollbackValidationError(f"{change} and its rollback validation covers other artifacts", hint=hint)
    recorded = document.get("previous", {}).get("schema_level")
    if recorded != previous.schema_level:
        raise RollbackValidationError(
            f"{change} but its rollback validation started from schema level {recorded}", hint=hint
        )
    return f"schema level {previous.schema_level} -> {this.schema_level}, rollback validated"


def previous_release(
    app: str,
    version: str,
    *,
    previous: str = "",
    github: GitHubTarget | None = None,
    s3: S3Target | None = None,
    token: str | None = None,
) -> list[AppRelease]:
    """The release(s) this one follows: `previous` (a folder or URL) when
    given, else the latest on each publish target (S3's latest.json, GitHub's
    newest published release with another tag)."""
    wanted = (MANIFEST_NAME,)
    found: list[AppRelease] = []
    with sandbox("toolchain-previous-") as work:
        if previous:
            return [AppRelease.from_manifest(published_manifest(previous, work), previous)]
        if s3 is not None and s3.bucket:
            found += _previous_on_s3(app, s3, work / "s3", wanted)
        if github is not None and github.repository:
            found += _previous_on_github(app, version, github, work / "github", wanted, token)
    return found


def _previous_on_s3(app: str, target: S3Target, into: Path, wanted: tuple[str, ...]) -> list[AppRelease]:
    from toolchain.release.s3 import download_s3, latest_version, s3_client, s3_errors

    client = s3_client(target)
    with s3_errors(target, PublishError):
        latest = latest_version(client, target, app, force_latest=True)
        if latest is None:
            return []
        local = download_s3(client, target, target.release_prefix(app, latest), into, wanted)
    if not (local / MANIFEST_NAME).is_file():
        return []
    return [AppRelease.from_manifest(published_manifest(str(local), into), target.url(target.key(app, latest, "")))]


def _previous_on_github(
    app: str,
    version: str,
    target: GitHubTarget,
    into: Path,
    wanted: tuple[str, ...],
    token: str | None,
) -> list[AppRelease]:
    import os

    from toolchain.release.github import GitHubClient, download_github

    token = token or os.environ.get(target.token_env, "")
    if not token:
        return []  # publishing to GitHub stops at once with its own message about the token
    client = GitHubClient(target.api_url, target.uploads_url, target.repository, token)
    this_tag = target.tag(version, app)
    for release in client.releases():
        if release.get("draft") or release.get("tag_name") == this_tag:
            continue
        local = download_github(client, release, into / str(release["id"]), wanted)
        if (local / MANIFEST_NAME).is_file():
            manifest = published_manifest(str(local), local)
            if [a.get("name") for a in manifest.get("apps", [])] == [app]:
                return [AppRelease.from_manifest(manifest, f"{target.repository}@{release['tag_name']}")]
    return []
