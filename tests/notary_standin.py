"""A strict local stand-in for Apple's Notary REST API (v2).

Apple's service cannot be reached from the test machines, so `invoke
notarize` is tested against this HTTP server on 127.0.0.1. Like Apple's, it
takes only a bearer JSON Web Token signed ES256 with the team's API key
(right key ID, issuer and audience, not expired, at most 20 minutes long);
answers a submission with temporary credentials for an S3 object (here in
moto's real S3 server); and judges the submission by what was uploaded: the
object's SHA-256 must be the one the submission named, else "Invalid"."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conftest import serving

BUCKET = "notary-submissions"


@dataclass
class State:
    public_key: Any  # the API key's public half (cryptography EllipticCurvePublicKey)
    key_id: str
    issuer_id: str
    s3_endpoint: str
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: list[dict[str, Any]] = field(default_factory=list)  # the claims of every accepted token
    verdict: str = ""  # force an answer ("Rejected"); "" judges the upload


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_token(state: State, header_value: str) -> str | None:
    """None when the bearer token is one Apple would take, else why not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not header_value.startswith("Bearer "):
        return "no bearer token"
    try:
        head, body, signature = header_value[len("Bearer ") :].split(".")
        header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
        raw = _unb64(signature)
    except ValueError:
        return "malformed token"
    if header != {"alg": "ES256", "kid": state.key_id, "typ": "JWT"}:
        return f"wrong header {header}"
    if len(raw) != 64:
        return "an ES256 signature is 64 bytes"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        state.public_key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    now = time.time()
    if claims.get("iss") != state.issuer_id or claims.get("aud") != "appstoreconnect-v1":
        return f"wrong issuer or audience {claims}"
    if not claims["iat"] - 60 <= now < claims["exp"] or claims["exp"] - claims["iat"] > 20 * 60:
        return "expired, or longer than 20 minutes"
    state.tokens.append(claims)
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        problem = check_token(self.state, self.headers.get("Authorization", ""))
        if problem:
            self._send(401, {"errors": [{"status": "401", "code": "NOT_AUTHORIZED", "detail": problem}]})
        return problem is None

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path != "/notary/v2/submissions" or self.headers.get("Content-Type") != "application/json":
            self._send(404, {"errors": [{"detail": f"no POST {self.path}"}]})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if set(body) != {"submissionName", "sha256"} or len(body["sha256"]) != 64:
            self._send(400, {"errors": [{"detail": f"bad body {body}"}]})
            return
        number = f"00000000-0000-4000-8000-{len(self.state.submissions) + 1:012d}"
        self.state.submissions[number] = {"body": body, "object": f"uploads/{number}.zip"}
        attributes = {
            "awsAccessKeyId": "AKIANOTARY",
            "awsSecretAccessKey": "secret",
            "awsSessionToken": "session",
            "bucket": BUCKET,
            "object": f"uploads/{number}.zip",
        }
        self._send(200, {"data": {"id": number, "type": "newSubmissions", "attributes": attributes}})

    def do_GET(self) -> None:
        if not self._authorized():
            return
        parts = self.path.strip("/").split("/")  # notary v2 submissions ID [logs]
        submission = self.state.submissions.get(parts[3]) if len(parts) >= 4 else None
        if submission is None:
            self._send(404, {"errors": [{"detail": f"no GET {self.path}"}]})
            return
        if parts[4:] == ["logs"]:
            self._send(200, {"data": {"attributes": {"developerLogUrl": f"https://logs.invalid/{parts[3]}.json"}}})
            return
        self._send(200, {"data": {"id": parts[3], "attributes": {"status": self._judge(submission)}}})

    def _judge(self, submission: dict[str, Any]) -> str:
        import boto3

        if self.state.verdict:
            return self.state.verdict
        s3 = boto3.client(
            "s3", endpoint_url=self.state.s3_endpoint, region_name="us-west-2",
            aws_access_key_id="x", aws_secret_access_key="x",
        )  # fmt: skip
        try:
            data = s3.get_object(Bucket=BUCKET, Key=submission["object"])["Body"].read()
        except s3.exceptions.NoSuchKey:
            # Apple gives up on a submission whose upload never came.
            submission["polls"] = submission.get("polls", 0) + 1
            return "In Progress" if submission["polls"] < 3 else "Invalid"
        return "Accepted" if hashlib.sha256(data).hexdigest() == submission["body"]["sha256"] else "Invalid"


@contextmanager
def notary_service(state: State) -> Iterator[str]:
    """The API's base URL (…/notary/v2), for the duration; the S3 bucket is made in moto."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=state.s3_endpoint, region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # moto's server lives for the session
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with serving(type("BoundHandler", (Handler,), {"state": state})) as url:
        yield f"{url}/notary/v2"
