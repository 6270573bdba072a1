"""Publishing a verified release folder to GitHub Releases and S3.

The guardrail comes first and cannot be skipped: the folder must pass the
same check as `invoke verify` (every file listed, digests, signatures,
provenance subjects) or nothing is uploaded anywhere."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.digest import sha256_file
from toolchain.errors import GitHubError, PublishError, UsageError
from toolchain.log import log
from toolchain.release.channel_layout import github_asset_name
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, parse_sums, verify_release
from toolchain.release.github import GitHubClient, GitHubTarget
from toolchain.release.keylist import FLAT_PREFIX, KEYS_DIR, folder_key_files
from toolchain.release.latest import LATEST_NAME, RENEW_HINT, stale_channel
from toolchain.release.s3 import S3Target, error_code, latest_version, one_line, s3_client, s3_failure
from toolchain.release.version import is_prerelease, semver_key

CONTENT_TYPES = {
    ".xz": "application/x-xz",
    ".zip": "application/zip",
    ".sh": "text/x-shellscript",
    ".ps1": "text/plain",
    ".json": "application/json",
    ".sha256": "text/plain",
    ".sum": "text/plain",
    ".minisig": "text/plain",
}


@dataclass(frozen=True)
class ReleaseInfo:
    app: str
    version: str
    files: tuple[Path, ...]  # everything to upload, latest.json aside
    # The folder's key list files by their name in keys/ (lists and signatures); lists are never rewritten.
    key_lists: tuple[tuple[str, Path], ...] = ()

    @property
    def prerelease(self) -> bool:
        return is_prerelease(self.version)


@dataclass(frozen=True)
class Action:
    destination: str  # github | s3
    name: str
    action: str  # upload | skip | replace | keep (latest.json not moved back) | would-upload
    where: str


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def require_fresh_channel(folder: Path, min_validity_days: int | None = None) -> None:
    """Refuse a channel that has expired or expires within min-validity days: every
    installed copy would refuse it (None: [update] min-validity of where this runs)."""
    if min_validity_days is None:
        from toolchain.config.settings import load_settings

        min_validity_days = load_settings().update.min_validity
    try:
        problem = stale_channel(folder, min_validity_days)
    except ValueError as exc:
        raise PublishError(str(exc), hint="re-package the release (`invoke package`); nothing was uploaded") from None
    if problem:
        raise PublishError(f"refusing to publish: {problem}", hint=f"{RENEW_HINT}; nothing was uploaded")


def release_info(
    folder: Path, public_key_text: str, *, min_validity_days: int | None = None, root_text: str = ""
) -> ReleaseInfo:
    """The guardrail (a verified folder whose channel is fresh), then what to upload. `root_text`:
    the root the folder's key lists follow from, for a channel re-signed by a channel key."""
    verify_release(folder, public_key_text, root_text)
    require_fresh_channel(folder, min_validity_days)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    apps = manifest.get("apps", [])
    if len(apps) != 1:
        raise UsageError(f"{folder} holds {len(apps)} apps", hint="publish one app's release folder at a time")
    names = [*parse_sums(folder / SUMS_NAME), SUMS_NAME]
    files: list[Path] = []
    for name in names:
        files.append(folder / name)
        for extra in (f"{name}.sha256", f"{name}.minisig"):
            if (folder / extra).is_file():
                files.append(folder / extra)
    key_lists = tuple(folder_key_files(folder).items())
    return ReleaseInfo(apps[0]["name"], apps[0]["version"], tuple(sorted(set(files))), key_lists)


def release_notes(repo: Path, version: str) -> str:
    """The CHANGELOG.md section of this version, if there is one."""
    for changelog in (repo / "CHANGELOG.md",):
        if changelog.is_file():
            text = changelog.read_text()
            match = re.search(rf"^##\s*\[?v?{re.escape(version)}\]?.*?$(.*?)(?=^##\s|\Z)", text, re.M | re.S)
            if match:
                return match.group(1).strip()
    return ""


def publish_github(
    info: ReleaseInfo,
    target: GitHubTarget,
    *,
    replace: bool,
    notes: str,
    token: str | None = None,
    replace_names: frozenset[str] = frozenset(),
    force_latest: bool = False,
) -> list[Action]:
    """replace_names: assets replaced when their digest differs even without replace
    (a renewed channel's files). The release carries the folder's key lists as flat assets
    (keys-N.json, channel_layout), and becomes GitHub's latest release (the channel of
    …/releases/latest/download/latest.json) only when it is not older than the one that is,
    unless force_latest (a withdrawal points the channel back on purpose)."""
    if not target.repository:
        raise UsageError("no GitHub repository to publish to", hint="set [github] repository = OWNER/NAME")
    token = token or os.environ.get(target.token_env, "")
    if not token:
        raise UsageError(f"${target.token_env} is not set", hint="export a token with contents: write permission")
    client = GitHubClient(target.api_url, target.uploads_url, target.repository, token)
    tag = target.tag(info.version, info.app)
    where = target.where(info.version, info.app)
    release = client.find_release(tag)
    if release is None:
        release = client.create_release(tag, f"{info.app} {info.version}", notes, info.prerelease)
        log.info(f"created draft release {tag}")
    else:
        log.info(f"reusing {'draft ' if release.get('draft') else ''}release {tag}")
    existing = {a["name"]: a for a in client.list_assets(int(release["id"]))}
    uploads = [(path, path.name, path.name in replace_names) for path in info.files]
    # Key lists never change once out; their signatures may be re-made (a fresh minisign comment).
    uploads += [(path, github_asset_name(name), path.suffix == ".minisig") for name, path in info.key_lists]
    digests = {name: sha256_file(path) for path, name, _ in uploads}
    for _path, name, replaceable in uploads:  # before any upload: nothing is half-replaced
        asset = existing.get(name)
        if asset is None or asset.get("state", "uploaded") != "uploaded" or replaceable:
            continue
        if name.startswith(FLAT_PREFIX) and asset.get("digest") != f"sha256:{digests[name]}":
            raise PublishError(
                f"release {tag} already holds another key list {name}",
                hint="key lists are never rewritten: write the next one with `invoke rotate-key`",
            )
    actions = []
    for path, name, replaceable in uploads:
        digest = digests[name]
        asset = existing.get(name)
        if asset is not None:
            complete = asset.get("state", "uploaded") == "uploaded"
            if complete and asset.get("digest") == f"sha256:{digest}":
                actions.append(Action("github", name, "skip", where))
                continue
            if complete and not replace and not replaceable:
                raise PublishError(
                    f"release {tag} already has {name} with a different digest",
                    hint="pass --replace to overwrite it (or publish a new version)",
                )
            # A half-finished upload (state "starter") is always safe to redo.
            client.delete_asset(int(asset["id"]))
        client.upload_asset(int(release["id"]), path, content_type(path), name=name)
        actions.append(Action("github", name, "replace" if asset else "upload", where))
        log.info(f"uploaded {name} to {tag}")
    if release.get("draft", True):
        # Published last: a half-uploaded release is never public.
        latest = _make_latest(client, target, info, force_latest)
        client.update_release(int(release["id"]), draft=False, prerelease=info.prerelease, make_latest=latest)
        log.info(f"published release {tag}")
        if latest == "false" and not info.prerelease:
            actions.append(Action("github", "latest", "keep", where))
    elif force_latest and not info.prerelease:
        client.update_release(int(release["id"]), make_latest="true")
        log.info(f"{tag} is GitHub's latest release again")
        actions.append(Action("github", "latest", "upload", where))
    return actions


def _make_latest(client: GitHubClient, target: GitHubTarget, info: ReleaseInfo, force_latest: bool) -> str:
    """GitHub's make_latest for a release being published: "true" unless an older version would
    take the place of a newer one (GitHub makes every newly published release the latest)."""
    if info.prerelease:
        return "false"
    current = client.latest_release()
    if current is None or force_latest:
        return "true"
    version = target.version_of(str(current.get("tag_name", "")), info.app)
    try:
        older = version is not None and semver_key(info.version) < semver_key(version)
    except ValueError:  # the latest release's tag names no SemVer version: no order to keep
        older = False
    if older:
        log.info(
            f"GitHub's latest release stays {current['tag_name']}: {info.version} is older "
            f"(pass --force-latest to make it the latest)"
        )
        return "false"
    return "true"


def _b64(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def upload_s3_object(client: Any, target: S3Target, key: str, path: Path, digest: str) -> None:
    """One object through boto3's managed transfer: a single PUT below
    multipart-threshold, parts of multipart-chunk from there up. Every request
    carries a SHA-256 checksum S3 verifies; a single PUT carries the file's
    verified digest itself (a multipart object's SHA-256 is per part)."""
    extra: dict[str, Any] = {
        "ChecksumAlgorithm": "SHA256",
        "ContentType": content_type(path),
        "Metadata": {"sha256": digest},
    }
    if path.stat().st_size < target.multipart_threshold:
        extra["ChecksumSHA256"] = _b64(digest)
    client.upload_file(str(path), target.bucket, key, ExtraArgs=extra, Config=target.transfer_config())


def _stored_digest(client: Any, bucket: str, key: str) -> str | None:
    """The SHA-256 an object was published with ("" if it has none), or None when there is no object."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return str(head.get("Metadata", {}).get("sha256", ""))


def _abort_uploads(client: Any, target: S3Target, prefix: str, upload_ids: set[str]) -> None:
    """Abort this run's multipart uploads still open under the release's
    prefix: unfinished parts are billed storage that no listing shows."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not upload_ids:
        return
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=target.bucket, Prefix=f"{prefix}/"):
            for upload in page.get("Uploads", []):
                if upload["UploadId"] in upload_ids:
                    client.abort_multipart_upload(Bucket=target.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    log.info(f"aborted the unfinished multipart upload of {target.url(upload['Key'])}")
    except (BotoCoreError, ClientError) as exc:
        log.warn(
            f"could not abort unfinished multipart uploads under {target.url(prefix)}/ ({one_line(exc)}): "
            "abort them with `aws s3api abort-multipart-upload` or a lifecycle rule"
        )


def publish_s3(
    info: ReleaseInfo,
    target: S3Target,
    *,
    replace: bool = False,
    force_latest: bool = False,
    client: Any | None = None,
    replace_names: frozenset[str] = frozenset(),
) -> list[Action]:
    """Upload a release under {prefix}/{app}/{version}/, then move latest.json
    forward (never back, unless force_latest). Every object is looked at before
    anything is uploaded: one with another digest stops the release unless
    replace (or its name is in replace_names: a renewed channel's files); one
    with the same digest is skipped."""
    if not target.bucket:
        raise UsageError("no S3 bucket to publish to", hint="set [s3] bucket")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        semver_key(info.version)
    except (ValueError, TypeError):
        raise PublishError(
            f"{info.app} version {info.version!r} is not a SemVer version", hint="fix the version in Cargo.toml"
        ) from None
    client = client or s3_client(target)
    try:
        return _publish_s3(client, info, target, replace=replace, force_latest=force_latest, names=replace_names)
    except (BotoCoreError, ClientError, boto3.exceptions.Boto3Error) as exc:
        raise s3_failure(exc, target) from exc


def _publish_s3(
    client: Any, info: ReleaseInfo, target: S3Target, *, replace: bool, force_latest: bool, names: frozenset[str]
) -> list[Action]:
    prefix = target.release_prefix(info.app, info.version)
    pointer = {p.name: p for p in info.files if p.name in (LATEST_NAME, f"{LATEST_NAME}.minisig")}
    if len(pointer) != 2:
        raise PublishError(
            f"the release folder has no signed {LATEST_NAME} to point S3's channel at",
            hint="re-package and sign it with this toolkit (`invoke package`); nothing was uploaded",
        )
    # 1. Look first: an unreadable pointer or a conflicting object stops the
    # release before any byte of it is uploaded.
    latest_version(client, target, info.app, force_latest=force_latest)
    planned: list[tuple[Path, str, str]] = []  # (file, digest, upload | skip | replace)
    for path in info.files:
        digest = sha256_file(path)
        stored = _stored_digest(client, target.bucket, target.key(info.app, info.version, path.name))
        planned.append((path, digest, "upload" if stored is None else "skip" if stored == digest else "replace"))
    conflicts = [path.name for path, _, action in planned if action == "replace" and path.name not in names]
    if conflicts and not replace:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise PublishError(
            f"{target.url(prefix)}/ already holds {conflicts[0]} with a different digest{more}",
            hint="pass --replace to overwrite them (or publish a new version); nothing was uploaded",
        )
    # 2. Upload, remembering the multipart uploads this run starts: whatever
    # fails, none of them is left behind.
    started: set[str] = set()

    def remember(parsed: dict[str, Any], **kwargs: Any) -> None:
        if parsed.get("UploadId"):
            started.add(str(parsed["UploadId"]))

    hook, hook_id = "after-call.s3.CreateMultipartUpload", f"toolchain-publish-{id(started)}"
    client.meta.events.register(hook, remember, unique_id=hook_id)
    try:
        for path, digest, action in planned:
            if action == "skip":
                continue
            key = target.key(info.app, info.version, path.name)
            try:
                upload_s3_object(client, target, key, path, digest)
            except OSError as exc:
                raise PublishError(
                    f"cannot read {path}: {exc.strerror or one_line(exc)}",
                    hint="the release folder changed during the upload: check it with `invoke verify`, then re-run",
                ) from exc
            log.info(f"{'replaced' if action == 'replace' else 'uploaded'} {target.url(key)}")
    except BaseException:
        _abort_uploads(client, target, prefix, started)
        raise
    finally:
        client.meta.events.unregister(hook, unique_id=hook_id)
    actions = [Action("s3", p.name, a, target.url(target.key(info.app, info.version, p.name))) for p, _, a in planned]
    # 3. The pointer goes last, and only forward: readers never see a version
    # that is not all there, nor an older one than they saw before.
    latest_key = target.latest_key(info.app)
    current = latest_version(client, target, info.app, force_latest=force_latest)
    if current is not None and not force_latest and semver_key(info.version) < semver_key(current):
        log.info(
            f"{target.url(latest_key)} stays at {current}: {info.version} is older "
            f"(pass --force-latest to point it at {info.version})"
        )
        return [*actions, Action("s3", "latest.json", "keep", target.url(latest_key))]
    actions += _publish_key_lists(client, target, info.app, info.key_lists)
    for name in (f"{LATEST_NAME}.minisig", LATEST_NAME):  # the signature first: a reader between sees a mismatch
        body = pointer[name].read_bytes()
        client.put_object(
            Bucket=target.bucket,
            Key=f"{latest_key}.minisig" if name.endswith(".minisig") else latest_key,
            Body=body,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            ContentType="application/json" if name == LATEST_NAME else "text/plain",
        )
    log.info(f"{target.url(latest_key)} points at {info.version}")
    return [*actions, Action("s3", "latest.json", "upload", target.url(latest_key))]


def _publish_key_lists(
    client: Any, target: S3Target, app: str, key_lists: tuple[tuple[str, Path], ...]
) -> list[Action]:
    """The channel's key lists (the folder's, `invoke rotate-key`) in keys/ beside the pointer, before
    it moves: an updater reading the new pointer finds the lists that name its signer. A published
    list never changes: one with other bytes stops the publish."""
    base = target.latest_key(app).rsplit("/", 1)[0]
    actions = []
    for name, path in key_lists:
        key = f"{base}/{KEYS_DIR}/{name}"
        digest = sha256_file(path)
        stored = _stored_digest(client, target.bucket, key)
        if stored == digest:
            actions.append(Action("s3", f"{KEYS_DIR}/{name}", "skip", target.url(key)))
            continue
        if stored is not None and name.endswith(".json"):
            raise PublishError(
                f"{target.url(key)} already holds another key list {name}",
                hint="key lists are never rewritten: write the next one with `invoke rotate-key`",
            )
        upload_s3_object(client, target, key, path, digest)
        actions.append(Action("s3", f"{KEYS_DIR}/{name}", "upload", target.url(key)))
        log.info(f"uploaded {target.url(key)}")
    return actions


def plan(info: ReleaseInfo, github: GitHubTarget | None, s3: S3Target | None) -> list[Action]:
    """What a publish would upload where, without contacting anyone."""
    actions = []
    if github is not None:
        where = github.where(info.version, info.app)
        actions += [Action("github", p.name, "would-upload", where) for p in info.files]
        actions += [Action("github", github_asset_name(name), "would-upload", where) for name, _ in info.key_lists]
    if s3 is not None:
        actions += [
            Action("s3", p.name, "would-upload", s3.url(s3.key(info.app, info.version, p.name))) for p in info.files
        ]
        base = s3.latest_key(info.app).rsplit("/", 1)[0]
        actions += [
            Action("s3", f"{KEYS_DIR}/{name}", "would-upload", s3.url(f"{base}/{KEYS_DIR}/{name}"))
            for name, _ in info.key_lists
        ]
        actions.append(Action("s3", "latest.json", "would-upload", s3.url(s3.latest_key(info.app))))
    return actions


def publish(
    folder: Path,
    public_key_text: str,
    *,
    github: GitHubTarget | None,
    s3: S3Target | None,
    replace: bool = False,
    force_latest: bool = False,
    repo: Path | None = None,
    previous: str = "",
    min_validity_days: int | None = None,
    root_text: str = "",
) -> list[Action]:
    """Verify the folder (the guardrail), then publish it to each destination.

    replace: overwrite release assets / objects that exist with another digest.
    force_latest: point the channel (S3's latest.json, GitHub's latest release) at this version even when
    it is older.
    previous: the release this one follows (folder or URL); default: the latest
    on each destination. A schema change needs a passing rollback validation.
    min_validity_days: the channel must stay valid this long (None: [update] min-validity)."""
    from toolchain.release.rollback_validation import AppRelease, previous_release, require_validation

    info = release_info(folder, public_key_text, min_validity_days=min_validity_days, root_text=root_text)
    try:
        found = previous_release(info.app, info.version, previous=previous, github=github, s3=s3)
    except GitHubError as exc:
        raise PublishError(exc.message, hint=f"{exc.hint}; re-running finishes the job") from exc
    befores: list[AppRelease | None] = [*found] or [None]
    for before in befores:
        log.info(require_validation(folder, before))
    actions: list[Action] = []
    if github is not None:
        try:
            notes = release_notes(repo or folder, info.version)
            actions += publish_github(info, github, replace=replace, notes=notes, force_latest=force_latest)
        except GitHubError as exc:
            raise PublishError(exc.message, hint=f"{exc.hint}; re-running finishes the job") from exc
    if s3 is not None:
        actions += publish_s3(info, s3, replace=replace, force_latest=force_latest)
    return actions
