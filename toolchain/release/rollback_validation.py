"""Rollback validation before publish (guardrail 3), the record: a release whose schema
level differs from the previous release's is published only with proof that an update to it
fails safe. The proof is rollback-validation.json in the release folder (written by
toolchain.pipeline.validate_rollback, which runs the real updater), listed in the manifest
and sha256.sum and signed like every other file; `require_validation` is publish's check of
it, and `previous_release` finds the release this one follows."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.atomic import write_atomic, write_json
from toolchain.digest import sha256_file
from toolchain.errors import (
    PublishError,
    ReleaseCheckError,
    RollbackValidationError,
    SignatureError,
    UsageError,
)
from toolchain.log import log
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, parse_sums
from toolchain.release.schema import ArchiveRef, sandbox
from toolchain.release.signing import SecretKey, parse_public_key, sign_file, verify_file

if TYPE_CHECKING:
    from toolchain.release.github import GitHubTarget
    from toolchain.release.s3 import S3Target

VALIDATION_NAME = "rollback-validation.json"
VALIDATION_SCHEMA = "toolchain.rollback-validation/v1"
SQLITE_MAGIC = b"SQLite format 3\x00"


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


def record_validation(folder: Path, document: dict[str, Any], key: SecretKey | None) -> Path:
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
