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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain.digest import sha256_file
from toolchain.errors import ToolchainError, UsageError
from toolchain.github import GitHubClient, GitHubError
from toolchain.log import log
from toolchain.release import MANIFEST_NAME, SUMS_NAME, parse_sums, verify_release

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


class PublishError(ToolchainError):
    """A publish step failed; re-running finishes the job."""

    exit_code = 15


@dataclass(frozen=True)
class ReleaseInfo:
    app: str
    version: str
    files: tuple[Path, ...]  # everything to upload, latest.json aside

    @property
    def prerelease(self) -> bool:
        return is_prerelease(self.version)


@dataclass(frozen=True)
class Action:
    destination: str  # github | s3
    name: str
    action: str  # upload | skip | replace | would-upload
    where: str


def is_prerelease(version: str) -> bool:
    """SemVer pre-releases (1.2.0-rc.1) become GitHub pre-releases."""
    return "-" in version.split("+", 1)[0]


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def release_info(folder: Path, public_key_text: str) -> ReleaseInfo:
    """The guardrail, then what to upload."""
    verify_release(folder, public_key_text)
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
    return ReleaseInfo(apps[0]["name"], apps[0]["version"], tuple(sorted(set(files))))


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
    info: ReleaseInfo, settings: dict[str, str], *, replace: bool, notes: str, token: str | None = None
) -> list[Action]:
    repository = settings.get("repository", "")
    if not repository:
        raise UsageError("no GitHub repository to publish to", hint="set [github] repository = OWNER/NAME")
    token_env = settings.get("token-env", "GITHUB_TOKEN")
    token = token or os.environ.get(token_env, "")
    if not token:
        raise UsageError(f"${token_env} is not set", hint="export a token with contents: write permission")
    client = GitHubClient(settings["api-url"], settings["uploads-url"], repository, token)
    tag = settings.get("tag-template", "v{version}").format(version=info.version, app=info.app)
    release = client.find_release(tag)
    if release is None:
        release = client.create_release(tag, f"{info.app} {info.version}", notes, info.prerelease)
        log.info(f"created draft release {tag}")
    else:
        log.info(f"reusing {'draft ' if release.get('draft') else ''}release {tag}")
    existing = {a["name"]: a for a in client.list_assets(int(release["id"]))}
    actions = []
    for path in info.files:
        digest = sha256_file(path)
        asset = existing.get(path.name)
        if asset is not None:
            complete = asset.get("state", "uploaded") == "uploaded"
            if complete and asset.get("digest") == f"sha256:{digest}":
                actions.append(Action("github", path.name, "skip", tag))
                continue
            if complete and not replace:
                raise PublishError(
                    f"release {tag} already has {path.name} with a different digest",
                    hint="pass --replace to overwrite it (or publish a new version)",
                )
            # A half-finished upload (state "starter") is always safe to redo.
            client.delete_asset(int(asset["id"]))
        client.upload_asset(int(release["id"]), path, content_type(path))
        actions.append(Action("github", path.name, "replace" if asset else "upload", tag))
        log.info(f"uploaded {path.name} to {tag}")
    if release.get("draft", True):
        # Published last: a half-uploaded release is never public.
        client.update_release(int(release["id"]), draft=False, prerelease=info.prerelease)
        log.info(f"published release {tag}")
    return actions


def _s3_client(settings: dict[str, Any]) -> Any:
    import boto3

    options: dict[str, Any] = {}
    if settings.get("endpoint-url"):
        options["endpoint_url"] = settings["endpoint-url"]
    if settings.get("region"):
        options["region_name"] = settings["region"]
    return boto3.client("s3", **options)


def _b64(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def upload_s3_object(client: Any, bucket: str, key: str, path: Path, digest: str, settings: dict[str, Any]) -> None:
    """One object, with SHA-256 checksums S3 verifies; in parts when large."""
    metadata = {"sha256": digest}
    size = path.stat().st_size
    if size < int(settings.get("multipart-threshold", 64 << 20)):
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ChecksumSHA256=_b64(digest),
            ContentType=content_type(path),
            Metadata=metadata,
        )
        return
    chunk = int(settings.get("multipart-chunk", 16 << 20))
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", ContentType=content_type(path), Metadata=metadata
    )
    parts = []
    try:
        with path.open("rb") as handle:
            number = 1
            while data := handle.read(chunk):
                checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
                response = client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data,
                    ChecksumSHA256=checksum, ChecksumAlgorithm="SHA256",
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum})
                number += 1
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        raise


def publish_s3(info: ReleaseInfo, settings: dict[str, Any], client: Any | None = None) -> list[Action]:
    bucket = settings.get("bucket", "")
    if not bucket:
        raise UsageError("no S3 bucket to publish to", hint="set [s3] bucket")
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or _s3_client(settings)
    prefix = "/".join(p for p in (settings.get("prefix", "").strip("/"), info.app, info.version) if p)
    actions = []
    try:
        for path in info.files:
            key = f"{prefix}/{path.name}"
            digest = sha256_file(path)
            try:
                head = client.head_object(Bucket=bucket, Key=key)
                if head.get("Metadata", {}).get("sha256") == digest:
                    actions.append(Action("s3", path.name, "skip", f"s3://{bucket}/{key}"))
                    continue
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            upload_s3_object(client, bucket, key, path, digest, settings)
            actions.append(Action("s3", path.name, "upload", f"s3://{bucket}/{key}"))
            log.info(f"uploaded s3://{bucket}/{key}")
        # The pointer goes last: readers never see a version that is not all there.
        latest = {
            "app": info.app,
            "version": info.version,
            "prefix": prefix,
            "files": [{"name": p.name, "sha256": sha256_file(p), "size": p.stat().st_size} for p in info.files],
            "published": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        body = (json.dumps(latest, indent=2, sort_keys=True) + "\n").encode()
        latest_key = "/".join(p for p in (settings.get("prefix", "").strip("/"), info.app, "latest.json") if p)
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        client.put_object(
            Bucket=bucket, Key=latest_key, Body=body, ChecksumSHA256=checksum, ContentType="application/json"
        )
        actions.append(Action("s3", "latest.json", "upload", f"s3://{bucket}/{latest_key}"))
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(
            f"S3 upload failed: {exc}", hint="re-run: files already there with the same digest are skipped"
        ) from exc
    return actions


def plan(info: ReleaseInfo, github: dict[str, str] | None, s3: dict[str, Any] | None) -> list[Action]:
    """What a publish would upload where, without contacting anyone."""
    actions = []
    if github is not None:
        tag = github.get("tag-template", "v{version}").format(version=info.version, app=info.app)
        where = f"{github.get('repository') or 'OWNER/NAME'}@{tag}{' (prerelease)' if info.prerelease else ''}"
        actions += [Action("github", p.name, "would-upload", where) for p in info.files]
    if s3 is not None:
        prefix = "/".join(p for p in (s3.get("prefix", "").strip("/"), info.app, info.version) if p)
        bucket = s3.get("bucket") or "BUCKET"
        actions += [Action("s3", p.name, "would-upload", f"s3://{bucket}/{prefix}/{p.name}") for p in info.files]
        latest = "/".join(p for p in (s3.get("prefix", "").strip("/"), info.app, "latest.json") if p)
        actions.append(Action("s3", "latest.json", "would-upload", f"s3://{bucket}/{latest}"))
    return actions


def publish(
    folder: Path,
    public_key_text: str,
    *,
    github: dict[str, str] | None,
    s3: dict[str, Any] | None,
    replace: bool = False,
    repo: Path | None = None,
) -> list[Action]:
    info = release_info(folder, public_key_text)
    actions: list[Action] = []
    if github is not None:
        try:
            actions += publish_github(info, github, replace=replace, notes=release_notes(repo or folder, info.version))
        except GitHubError as exc:
            raise PublishError(exc.message, hint=f"{exc.hint}; re-running finishes the job") from exc
    if s3 is not None:
        actions += publish_s3(info, s3)
    return actions
