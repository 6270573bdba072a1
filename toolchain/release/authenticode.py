"""Authenticode signatures on Windows executables, made on Linux with
osslsigncode (Debian's package). The certificate and key come from files or
a CI secret; the password is read from an environment variable and handed to
osslsigncode in a private file, never on a command line or in a log.

Signing runs after the policy checks and before archiving, so the archive,
its checksum and the provenance all cover the signed bytes. Without a
timestamp server the signing time is SOURCE_DATE_EPOCH (or the Unix epoch):
RSA PKCS#1 v1.5 signatures are deterministic, so a signed build is as
reproducible as an unsigned one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from toolchain.config.settings import P12_BASE64_ENV, AuthenticodeSettings
from toolchain.errors import ConfigError, MissingToolError, SignatureError
from toolchain.release import certificates

P12_SUFFIXES = (".p12", ".pfx")


@dataclass(frozen=True)
class Identity:
    """A loaded, checked signing identity: what osslsigncode is given."""

    pkcs12: Path | None
    cert: Path | None
    key: Path | None
    password: str | None = field(repr=False)
    timestamp_url: str
    signer_sha256: str  # SHA-256 of the signer certificate (DER), what the policy rule expects
    subject: str
    not_after: datetime


def _load_certificates(settings: AuthenticodeSettings, data: bytes, password: str | None, what: str) -> Identity:
    from cryptography.hazmat.primitives import serialization

    if settings.cert is None or settings.cert.suffix.lower() in P12_SUFFIXES:
        _key, cert = certificates.open_pkcs12(data, password, f"Authenticode {what}", settings.password_env)
        pkcs12_path, cert_path, key_path = settings.cert, None, None
    else:
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificates(data)[0]
        except ValueError as exc:
            raise SignatureError(
                f"{what} is not a PEM certificate", hint="set [sign] authenticode-cert to a .p12/.pfx or PEM file"
            ) from exc
        if settings.key is None:
            raise ConfigError(
                f"{what} is a PEM certificate without a key",
                hint="set [sign] authenticode-key to its PEM private key (or use a .p12 file)",
            )
        try:
            pem = _read(settings.key, "authenticode-key")
            serialization.load_pem_private_key(pem, password.encode() if password else None)
        except (ValueError, TypeError) as exc:
            raise SignatureError(
                f"cannot open the Authenticode key {settings.key}: wrong password or not a PEM private key",
                hint=f"set ${settings.password_env} to its password (or check the file)",
            ) from exc
        pkcs12_path, cert_path, key_path = None, settings.cert, settings.key
    described = certificates.describe(
        cert, "Authenticode", "renew the code-signing certificate and point [sign] authenticode-cert at the new one"
    )
    return Identity(
        pkcs12=pkcs12_path,
        cert=cert_path,
        key=key_path,
        password=password,
        timestamp_url=settings.timestamp_url,
        signer_sha256=described.sha256,
        subject=described.subject,
        not_after=described.not_after,
    )


def _read(path: Path, key: str) -> bytes:
    return certificates.read_file(path, f"[sign] {key}", "the file, or leave it empty")


@contextmanager
def identity(settings: AuthenticodeSettings) -> Iterator[Identity | None]:
    """The checked identity (None when Authenticode is not configured); a
    PKCS#12 from $TOOLCHAIN_AUTHENTICODE_P12_BASE64 lives in a private temp
    file for the duration."""
    if not settings.configured:
        yield None
        return
    password = os.environ.get(settings.password_env) or None
    encoded = os.environ.get(P12_BASE64_ENV)
    if settings.cert is None and encoded:
        data = certificates.decode_secret(P12_BASE64_ENV, encoded)
        with tempfile.TemporaryDirectory(prefix="toolchain-authenticode-") as tmp:
            p12 = Path(tmp) / "identity.p12"
            p12.write_bytes(data)
            p12.chmod(0o600)
            loaded = _load_certificates(
                AuthenticodeSettings(p12, None, settings.password_env, settings.timestamp_url),
                data,
                password,
                f"in ${P12_BASE64_ENV}",
            )
            yield loaded
        return
    assert settings.cert is not None
    yield _load_certificates(settings, _read(settings.cert, "authenticode-cert"), password, str(settings.cert))


def sign_pe(source: Path, signed: Path, ident: Identity, description: str, epoch: int) -> None:
    """Write `signed`, a signed copy of `source` (through a temp file, so a
    failure leaves nothing half-written). cargo's own output is never
    touched, so a no-op rebuild does not find a signed file to re-sign.
    epoch: the signing time when there is no timestamp server."""
    tool = shutil.which("osslsigncode")
    if tool is None:
        raise MissingToolError(
            "osslsigncode is not installed, so Windows binaries cannot be Authenticode-signed",
            hint="apt-get install osslsigncode (or leave [sign] authenticode-cert empty)",
        )
    signed.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".authenticode-", dir=signed.parent) as tmp:
        partial = Path(tmp) / signed.name
        argv = [tool, "sign", "-h", "sha256", "-n", description]
        if ident.pkcs12 is not None:
            argv += ["-pkcs12", str(ident.pkcs12)]
        else:
            argv += ["-certs", str(ident.cert), "-key", str(ident.key)]
        if ident.password:
            secret = Path(tmp) / "password"
            secret.write_text(ident.password)
            secret.chmod(0o600)
            argv += ["-readpass", str(secret)]
        if ident.timestamp_url:
            argv += ["-ts", ident.timestamp_url]
        else:
            argv += ["-time", str(epoch)]
        argv += ["-in", str(source), "-out", str(partial)]
        hint = "check the certificate, its password and the timestamp URL"
        certificates.run_signing_tool(argv, "osslsigncode", source.name, hint)
        os.replace(partial, signed)
