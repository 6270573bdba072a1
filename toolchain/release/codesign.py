"""Apple code signatures on Mach-O binaries, made on Linux with rcodesign
(`cargo install --locked apple-codesign`): ad hoc, or with a Developer ID
identity from a PKCS#12 file or a CI secret, with the hardened runtime.

Signing runs after the policy checks and before archiving, on a copy (the
`codesign/` folder beside cargo's output), so the archive, its checksum and
the provenance all cover the signed bytes and a no-op rebuild never finds a
signed file to sign again."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from toolchain.config.settings import MACOS_P12_BASE64_ENV, MacSigningSettings
from toolchain.errors import ConfigError, MissingToolError
from toolchain.release import certificates
from toolchain.verify.policy import MacSignatureExpectation

RCODESIGN_HINT = 'cargo install --locked apple-codesign (it provides rcodesign), or set [sign] macos-sign = "linker"'


@dataclass(frozen=True)
class MacIdentity:
    """A checked Developer ID identity: what rcodesign is given."""

    pkcs12: Path
    password: str | None = field(repr=False)
    signer_sha256: str
    subject: str


def rcodesign() -> str:
    tool = shutil.which("rcodesign")
    if tool is None:
        raise MissingToolError("rcodesign is not installed, so Mach-O binaries cannot be signed", hint=RCODESIGN_HINT)
    return tool


@contextmanager
def identity(settings: MacSigningSettings) -> Iterator[MacIdentity | None]:
    """The checked Developer ID identity (None for ad hoc or the linker's
    signature), for the duration of a `with`."""
    if settings.effective_mode != "developer-id":
        yield None
        return
    if not settings.has_identity:
        raise ConfigError(
            "[sign] macos-sign is 'developer-id' but no identity is configured",
            hint=f"set [sign] macos-identity to a .p12 file, or ${MACOS_P12_BASE64_ENV} to it base64-encoded",
        )
    password = os.environ.get(settings.password_env) or None
    if settings.identity is not None:
        what = str(settings.identity)
        data = certificates.read_file(settings.identity, "[sign] macos-identity", "the .p12 file, or leave it empty")
    else:
        what = f"in ${MACOS_P12_BASE64_ENV}"
        data = certificates.decode_secret(MACOS_P12_BASE64_ENV, os.environ[MACOS_P12_BASE64_ENV])
    key, cert = certificates.open_pkcs12(data, password, f"macOS signing identity {what}", settings.password_env)
    described = certificates.describe(
        cert, "macOS signing", "renew the Developer ID certificate and point [sign] macos-identity at the new one"
    )
    with tempfile.TemporaryDirectory(prefix="toolchain-codesign-") as tmp:
        # rcodesign reads only the legacy (3DES) PKCS#12 encryption; OpenSSL 3
        # exports AES. The identity is re-encoded, still under its password.
        legacy = Path(tmp) / "identity.p12"
        legacy.touch(mode=0o600)
        secret = password or secrets.token_hex(16)  # the legacy format needs a password
        legacy.write_bytes(certificates.legacy_pkcs12(key, cert, secret))
        yield MacIdentity(legacy, secret, described.sha256, described.subject)


def expectation(settings: MacSigningSettings, ident: MacIdentity | None) -> MacSignatureExpectation | None:
    """The `macos-signature` rule's expectation; None when rcodesign does not sign."""
    if not settings.signs:
        return None
    return MacSignatureExpectation(ident.signer_sha256 if ident else "", settings.hardened_runtime)


def sign_macho(
    source: Path, signed: Path, settings: MacSigningSettings, ident: MacIdentity | None, identifier: str, epoch: int
) -> None:
    """Write `signed`, a signed copy of `source` (every slice of a universal
    binary), through a temp file so a failure leaves nothing half-written.
    epoch: the CMS signing time (SOURCE_DATE_EPOCH), so that without a
    timestamp server a Developer ID signature is reproducible."""
    tool = rcodesign()
    signed.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".codesign-", dir=signed.parent) as tmp:
        partial = Path(tmp) / signed.name
        argv = [tool, "sign", "--binary-identifier", identifier]
        if ident is not None:
            argv += ["--p12-file", str(ident.pkcs12)]
            secret = Path(tmp) / "password"
            secret.write_text(ident.password or "")
            secret.chmod(0o600)
            argv += ["--p12-password-file", str(secret)]
            # rcodesign asks Apple's server when no URL is given; that must be a choice.
            argv += ["--timestamp-url", settings.timestamp_url or "none"]
            argv += ["--signing-time", datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
        if settings.hardened_runtime:
            argv += ["--code-signature-flags", "runtime"]
        if settings.entitlements is not None:
            if not settings.entitlements.is_file():
                raise ConfigError(
                    f"[sign] macos-entitlements {settings.entitlements} is not a file",
                    hint="point it at an entitlements plist, or leave it empty",
                )
            argv += ["--entitlements-xml-file", str(settings.entitlements)]
        argv += [str(source), str(partial)]
        hint = "check [sign] macos-identity, its password and macos-timestamp-url"
        certificates.run_signing_tool(argv, "rcodesign", source.name, hint)
        os.replace(partial, signed)
