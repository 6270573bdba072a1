"""The S3 store a release is published to: where (S3Target, from the [s3]
settings), the client, each failure in one line, the latest.json pointer's
version and downloading a published release. Uploading is publish.py's."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolchain.config.settings import S3Settings
from toolchain.errors import AuditError, ConfigError, PublishError, ToolchainError
from toolchain.release.version import semver_key


@dataclass(frozen=True)
class S3Target:
    """Where a release goes on S3: the [s3] settings, read once. Keys are
    {prefix}/{app}/{version}/{file} and the pointer {prefix}/{app}/latest.json."""

    bucket: str
    prefix: str = ""  # without leading or trailing slashes
    endpoint_url: str = ""
    region: str = ""
    multipart_threshold: int = 64 << 20
    multipart_chunk: int = 16 << 20

    @classmethod
    def from_settings(cls, settings: S3Settings) -> S3Target:
        """The [s3] table (already checked by its model), with the endpoint
        URL checked further: a host, and no blanks."""
        endpoint = settings.endpoint_url
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in endpoint):
                raise ConfigError(
                    f"[s3] endpoint-url {endpoint!r} is not an http(s) URL",
                    hint='set it to the store\'s URL, e.g. "https://s3.example.com", or to "" for AWS',
                )
        return cls(
            bucket=settings.bucket,
            prefix=settings.prefix.strip("/"),
            endpoint_url=endpoint,
            region=settings.region,
            multipart_threshold=settings.multipart_threshold,
            multipart_chunk=settings.multipart_chunk,
        )

    def release_prefix(self, app: str, version: str) -> str:
        return "/".join(p for p in (self.prefix, app, version) if p)

    def key(self, app: str, version: str, name: str) -> str:
        return f"{self.release_prefix(app, version)}/{name}"

    def latest_key(self, app: str) -> str:
        return "/".join(p for p in (self.prefix, app, "latest.json") if p)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket or 'BUCKET'}/{key}"

    def transfer_config(self) -> Any:
        """boto3's managed transfer, in parts from multipart-threshold up (parts
        smaller than S3's 5 MiB minimum are raised to it). The classic transfer
        manager: it uses our client, so its requests are the ones we see."""
        transfer = importlib.import_module("boto3.s3.transfer")  # (boto3 has no type information)
        return transfer.TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunk,
            preferred_transfer_client="classic",
        )


def s3_client(target: S3Target) -> Any:
    """A boto3 S3 client for the target (the standard AWS credential chain)."""
    import boto3
    from botocore.exceptions import BotoCoreError, InvalidRegionError

    options: dict[str, Any] = {}
    if target.endpoint_url:
        options["endpoint_url"] = target.endpoint_url
    if target.region:
        options["region_name"] = target.region
    try:
        # A session of its own: boto3's default one keeps the credentials it found first.
        return boto3.session.Session().client("s3", **options)
    except InvalidRegionError as exc:
        raise ConfigError(
            f"[s3] region {target.region!r} is not a region name",
            hint='set it to e.g. "us-east-1", or to "" for the default',
        ) from exc
    except ValueError as exc:  # botocore's own check of the endpoint
        raise ConfigError(
            f"[s3] endpoint-url {target.endpoint_url!r} is not usable: {one_line(exc)}",
            hint='set it to the store\'s URL, e.g. "https://s3.example.com", or to "" for AWS',
        ) from exc
    except BotoCoreError as exc:
        raise s3_failure(exc, target) from exc


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def latest_version(client: Any, target: S3Target, app: str, *, force_latest: bool) -> str | None:
    """The version latest.json points at, None when there is none (or, with
    --force-latest, when it is unreadable and about to be overwritten)."""
    from botocore.exceptions import ClientError

    key = target.latest_key(app)
    try:
        body = client.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        version = json.loads(body)["version"]
        semver_key(version)
    except (ValueError, KeyError, TypeError):
        if force_latest:
            return None
        raise PublishError(
            f"{target.url(key)} does not name a SemVer version",
            hint="pass --force-latest to overwrite it with this version (or delete it)",
        ) from None
    return str(version)


def s3_failure(exc: BaseException, target: S3Target) -> PublishError:
    """One line for what went wrong talking to S3, and what to do about it."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    cause = exc
    wrapped = exc.__cause__ or exc.__context__
    if not isinstance(exc, ClientError) and isinstance(wrapped, ClientError):
        cause = wrapped  # boto3's managed transfer wraps the real error in S3UploadFailedError
    again = "re-running finishes the job: objects already there with the same digest are skipped"
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return PublishError(
            "no AWS credentials for S3",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile in ~/.aws/config",
        )
    if isinstance(cause, ProfileNotFound):
        return PublishError(
            f"AWS profile {cause.kwargs.get('profile')!r} does not exist",
            hint="fix AWS_PROFILE (profiles live in ~/.aws/config), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(cause, EndpointConnectionError):
        return PublishError(
            f"cannot reach S3 at {cause.kwargs.get('endpoint_url')}",
            hint=f"check the network and [s3] endpoint-url; {again}",
        )
    if isinstance(cause, ClientError):
        code = error_code(cause)
        if code == "NoSuchBucket":
            return PublishError(f"S3 bucket {target.bucket!r} does not exist", hint="create it or fix [s3] bucket")
        message = one_line(cause.response.get("Error", {}).get("Message", ""))
        refused = f"S3 refused {cause.operation_name} in bucket {target.bucket!r}: {code} {message}".rstrip()
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return PublishError(
                refused,
                hint=f"check the AWS credentials and that they may get, put and list {target.url(target.prefix)}",
            )
        return PublishError(refused, hint=again)
    return PublishError(f"S3 request failed: {one_line(exc)}", hint=again)


@contextmanager
def s3_errors(target: S3Target, error: type[ToolchainError] = AuditError) -> Iterator[None]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, boto3.exceptions.Boto3Error) as exc:
        failure = s3_failure(exc, target)  # the same one-line reasons publish gives
        raise error(failure.message, hint=failure.hint) from None


def download_s3(client: Any, target: S3Target, prefix: str, into: Path, names: tuple[str, ...] = ()) -> Path:
    """The objects of one release (or only `names`) into a folder."""
    into.mkdir(parents=True, exist_ok=True)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) + 1 :]
            if "/" in name or (names and name not in names):
                continue
            client.download_file(target.bucket, item["Key"], str(into / name))
    return into
