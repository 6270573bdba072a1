"""Submitting signed macOS binaries to Apple's notary service (the Notary
REST API, v2), as a separate, explicit step after the build.

The request is built here: a zip of the target's Developer ID-signed
binaries, a JSON body naming it and its SHA-256, and a JSON Web Token
signed (ES256) with the team's App Store Connect API key. `--dry-run` stops
there and shows the request; otherwise it is sent, the zip is uploaded to
the S3 object the service names (boto3, with the temporary credentials it
returns), and the submission is polled until Apple accepts or rejects it.
Written here because rcodesign's notary client cannot show a request
without sending it."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.config.settings import NOTARY_KEY_ENV, NotarySettings
from toolchain.errors import ConfigError, NotaryError, SignatureError, UsageError
from toolchain.release import certificates
from toolchain.release.package import ZIP_EPOCH_FLOOR, ArchiveEntry, write_zip
from toolchain.verify.inspection import BinaryInfo

AUDIENCE = "appstoreconnect-v1"
TOKEN_SECONDS = 15 * 60  # Apple accepts at most 20 minutes
DONE = ("Accepted", "Invalid", "Rejected")


@dataclass(frozen=True)
class NotaryRequest:
    """What `submit` sends: POST url with this body and bearer token."""

    url: str
    body: dict[str, str]
    token: str = field(repr=False)
    archive: Path
    archive_sha256: str

    def shown(self) -> dict[str, Any]:
        """The request without the token's signature (it is a credential for 15 minutes)."""
        import jwt

        return {
            "method": "POST",
            "url": self.url,
            "headers": {"Authorization": "Bearer <JWT>", "Content-Type": "application/json"},
            "jwt_header": jwt.get_unverified_header(self.token),
            "jwt_claims": jwt.decode(self.token, options={"verify_signature": False}),
            "body": self.body,
            "archive": str(self.archive),
            "archive_sha256": self.archive_sha256,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, the token included (for --request-out)."""
        return {**self.shown(), "headers": {"Authorization": f"Bearer {self.token}"}}


@dataclass(frozen=True)
class NotaryResult:
    submission_id: str
    status: str  # Accepted | Invalid | Rejected | In Progress (when not waited for)
    log_url: str = ""


def require_notarizable(name: str, info: BinaryInfo) -> None:
    """Apple rejects what is not Developer ID-signed with the hardened runtime
    and a secure timestamp: refuse it here, before anything is sent."""
    for piece in info.slices:
        signature = piece.signature
        problem = None
        if signature is None or signature.kind != "developer-id":
            problem = "is not signed with a Developer ID certificate"
            hint = 'set [sign] macos-identity (macos-sign = "auto" or "developer-id") and rebuild'
        elif signature.status != "OK":
            problem, hint = f"has a broken signature ({signature.status})", "rebuild it"
        elif not signature.hardened_runtime:
            problem, hint = (
                "is signed without the hardened runtime",
                "set [sign] macos-hardened-runtime = true and rebuild",
            )
        elif not signature.timestamped:
            problem = "has no secure timestamp"
            hint = 'set [sign] macos-timestamp-url = "http://timestamp.apple.com/ts01" and rebuild'
        if problem:
            raise SignatureError(f"{name} ({piece.machine} slice) {problem}, so Apple would reject it", hint=hint)


def _api_key(settings: NotarySettings) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not settings.key_id or not settings.issuer_id:
        missing = "key-id" if not settings.key_id else "issuer-id"
        raise ConfigError(
            f"[notarize] {missing} is empty", hint="set it from App Store Connect (Users and Access > Integrations)"
        )
    text = os.environ.get(NOTARY_KEY_ENV, "").encode()
    what = f"${NOTARY_KEY_ENV}"
    if settings.key_file is not None:
        what = str(settings.key_file)
        text = certificates.read_file(settings.key_file, "[notarize] key-file", "the .p8 key")
    if not text:
        raise ConfigError(
            "no App Store Connect API key: [notarize] key-file is empty and $TOOLCHAIN_NOTARY_KEY is unset",
            hint="set [notarize] key-file to the .p8 key App Store Connect gave, or its text in $TOOLCHAIN_NOTARY_KEY",
        )
    try:
        key = serialization.load_pem_private_key(text, None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a PEM private key", hint="use the .p8 file App Store Connect gave") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{what} is not a P-256 key", hint="use the .p8 file App Store Connect gave")
    return key


def token(settings: NotarySettings, now: int) -> str:
    """The ES256 JSON Web Token the Notary API takes as a bearer token (PyJWT)."""
    import jwt

    claims = {"iss": settings.issuer_id, "iat": now, "exp": now + TOKEN_SECONDS, "aud": AUDIENCE}
    return jwt.encode(claims, _api_key(settings), algorithm="ES256", headers={"kid": settings.key_id, "typ": "JWT"})


def build_request(
    settings: NotarySettings, binaries: list[Path], top: str, out: Path, mtime: int, now: int
) -> NotaryRequest:
    """Zip `binaries` into `out` (Apple takes a zip, not a bare Mach-O) and make the request."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    write_zip([ArchiveEntry(p.name, p, executable=True) for p in binaries], top, mtime, partial)
    os.replace(partial, out)
    with out.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    body = {"submissionName": out.name, "sha256": digest}
    return NotaryRequest(f"{settings.api_url.rstrip('/')}/submissions", body, token(settings, now), out, digest)


def _call(method: str, url: str, bearer: str, body: dict[str, str] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {bearer}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:200]
        hint = "check [notarize] key-id, issuer-id and the key" if exc.code == 401 else "try again later"
        raise NotaryError(f"the notary service answered {exc.code} to {method} {url}: {detail}", hint=hint) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NotaryError(
            f"cannot reach the notary service at {url}: {exc}", hint="check the network and [notarize] api-url"
        ) from exc


def submit(
    request: NotaryRequest, settings: NotarySettings, *, wait: bool, poll_seconds: float = 15, timeout: float = 3600
) -> NotaryResult:
    """Send the request, upload the zip, and (with wait) poll until Apple decides."""
    import boto3

    answer = _call("POST", request.url, request.token, request.body)
    try:
        submission = answer["data"]["id"]
        upload = answer["data"]["attributes"]
        bucket, key = upload["bucket"], upload["object"]
        credentials = (upload["awsAccessKeyId"], upload["awsSecretAccessKey"], upload["awsSessionToken"])
    except (KeyError, TypeError) as exc:
        raise NotaryError(f"the notary service's answer has no upload target: {exc}", hint="try again later") from exc
    # The service's bucket lives in us-west-2; AWS_ENDPOINT_URL_S3 (boto3's own variable) can point elsewhere.
    s3 = boto3.client(
        "s3",
        region_name="us-west-2",
        aws_access_key_id=credentials[0],
        aws_secret_access_key=credentials[1],
        aws_session_token=credentials[2],
    )
    try:
        s3.upload_file(str(request.archive), bucket, key)
    except Exception as exc:  # boto3 raises botocore and S3 transfer errors of many classes
        raise NotaryError(f"uploading {request.archive.name} for notarization failed: {exc}", hint="try again") from exc
    status_url = f"{settings.api_url.rstrip('/')}/submissions/{submission}"
    status = "In Progress"
    deadline = time.monotonic() + timeout
    while wait and status not in DONE:
        if time.monotonic() > deadline:
            raise NotaryError(
                f"submission {submission} is still {status} after {timeout:.0f} s",
                hint="check it later with Apple's notary log (the submission ID above)",
            )
        time.sleep(poll_seconds)
        bearer = token(settings, int(time.time()))
        status = str(_call("GET", status_url, bearer)["data"]["attributes"]["status"])
    log_url = ""
    if status in ("Invalid", "Rejected"):
        logs = _call("GET", f"{status_url}/logs", token(settings, int(time.time())))
        log_url = str(logs.get("data", {}).get("attributes", {}).get("developerLogUrl", ""))
        raise NotaryError(
            f"Apple's notary service answered {status} for submission {submission}",
            hint=f"read its log: {log_url or 'GET ' + status_url + '/logs'}",
        )
    return NotaryResult(submission, status, log_url)


@dataclass(frozen=True)
class NotaryOutcome:
    """What `invoke notarize` reports."""

    target: str
    request: NotaryRequest
    result: NotaryResult | None  # None on a dry run

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "toolchain.notarize/v1",
            "target": self.target,
            "dry_run": self.result is None,
            "request": self.request.shown(),
            "submission": None if self.result is None else self.result.__dict__,
        }


def notarize_target(
    out_dir: Path,
    triple: str,
    settings: NotarySettings,
    *,
    dry_run: bool,
    wait: bool,
    request_out: Path | None = None,
    mtime: int = ZIP_EPOCH_FLOOR,
    poll_seconds: float = 15,
) -> NotaryOutcome:
    """Notarize the last build of a macOS target from `out_dir`: check that
    each binary can pass, build the request, and send it unless dry_run."""
    from toolchain.records.build_record import load_record
    from toolchain.verify.inspection import inspect_binary

    entry = load_record(out_dir).entry(triple)
    if entry is None:
        raise UsageError(
            f"{triple} has not been built into {out_dir}", hint=f"run `invoke build --target {triple}` first"
        )
    if not triple.endswith("-apple-darwin"):
        raise UsageError(f"{triple} is not a macOS target", hint="notarize an *-apple-darwin target")
    paths = [b.path for b in entry.binaries]
    for path in paths:
        require_notarizable(path.name, inspect_binary(path))
    first = entry.binaries[0]
    top = f"{first.package}-{first.version}-{triple}"
    request = build_request(settings, paths, top, out_dir / "notary" / f"{top}.zip", mtime, int(time.time()))
    if request_out is not None:
        request_out.parent.mkdir(parents=True, exist_ok=True)
        request_out.touch(mode=0o600)
        request_out.write_text(json.dumps(request.to_dict(), indent=2) + "\n")
    if dry_run:
        return NotaryOutcome(triple, request, None)
    return NotaryOutcome(triple, request, submit(request, settings, wait=wait, poll_seconds=poll_seconds))
