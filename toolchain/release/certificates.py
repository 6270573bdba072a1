"""What Authenticode and Apple code signing share: signing identities in
PKCS#12 files (open the file with its password, check that it holds a key
and a certificate that has not expired, describe the certificate), reading
the files the settings name, and running the signing tool."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.errors import ConfigError, SignatureError


@dataclass(frozen=True)
class Certificate:
    """What the policy rules and the log need of a signing certificate."""

    sha256: str  # of the certificate's DER: what a signature's signer is compared with
    subject: str
    not_after: datetime


def describe(cert: Any, what: str, renew_hint: str) -> Certificate:
    """The certificate's fingerprint and subject; an expired one is refused."""
    from cryptography.hazmat.primitives import serialization

    not_after = cert.not_valid_after_utc
    if not_after <= datetime.now(UTC):
        raise SignatureError(
            f"the {what} certificate {cert.subject.rfc4514_string()} expired on {not_after:%Y-%m-%d}", hint=renew_hint
        )
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(hashlib.sha256(der).hexdigest(), cert.subject.rfc4514_string(), not_after)


def open_pkcs12(data: bytes, password: str | None, what: str, password_env: str) -> tuple[Any, Any]:
    """(private key, certificate) from a PKCS#12; a wrong password or a file
    without both is one SignatureError naming `what`."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as exc:
        raise SignatureError(
            f"cannot open the PKCS#12 {what}: wrong password or not a PKCS#12 file",
            hint=f"set ${password_env} to its password (or check the file)",
        ) from exc
    if key is None or cert is None:
        raise SignatureError(
            f"the PKCS#12 {what} holds no private key and certificate",
            hint="export the signing certificate with its private key",
        )
    return key, cert


def decode_secret(variable: str, encoded: str) -> bytes:
    """A file stored base64-encoded in a CI secret."""
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"${variable} is not base64", hint="store the file base64-encoded in the secret") from exc


def legacy_pkcs12(key: Any, cert: Any, password: str) -> bytes:
    """The identity as a PKCS#12 with the legacy SHA-1/3DES encryption, the
    one every reader (rcodesign, macOS Keychain) takes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(b"identity", key, cert, None, encryption)


def read_file(path: Path, key: str, what: str) -> bytes:
    """A file a setting names (`key`, e.g. "[sign] macos-identity"); `what` it should be."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {key} {path}: {exc.strerror}", hint=f"point it at {what}") from exc


def run_signing_tool(argv: list[str], tool: str, subject: str, hint: str) -> None:
    """Run a signing tool; a failure is one line quoting the tool's last words."""
    result = proc.run(argv, check=False)
    if result.returncode != 0:
        last = (result.stderr or result.stdout or "").strip().splitlines()
        said = last[-1] if last else f"exit {result.returncode}"
        raise SignatureError(f"{tool} could not sign {subject}: {said}", hint=hint)
