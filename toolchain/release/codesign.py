"""Apple code signatures on Mach-O binaries, made on Linux with rcodesign
(`cargo install --locked apple-codesign`): ad hoc, or with a Developer ID
identity from a PKCS#12 file or a CI secret, with the hardened runtime.

Signing runs after the policy checks and before archiving, on a copy (the
`codesign/` folder beside cargo's output), so the archive, its checksum and
the provenance all cover the signed bytes and a no-op rebuild never finds a
signed file to sign again."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from toolchain import proc
from toolchain.config.settings import MACOS_P12_BASE64_ENV, MacSigningSettings
from toolchain.errors import ConfigError, MissingToolError, SignatureError
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
    signature); one from $TOOLCHAIN_MACOS_P12_BASE64 lives in a private temp
    file for the duration."""
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
        try:
            data = settings.identity.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read [sign] macos-identity {settings.identity}: {exc.strerror}",
                hint="point it at the .p12 file, or leave it empty",
            ) from exc
        yield _identity(settings.identity, data, password, str(settings.identity), settings.password_env)
        return
    data = certificates.decode_secret(MACOS_P12_BASE64_ENV, os.environ[MACOS_P12_BASE64_ENV])
    with tempfile.TemporaryDirectory(prefix="toolchain-codesign-") as tmp:
        p12 = Path(tmp) / "identity.p12"
        p12.write_bytes(data)
        p12.chmod(0o600)
        yield _identity(p12, data, password, f"in ${MACOS_P12_BASE64_ENV}", settings.password_env)


def _identity(path: Path, data: bytes, password: str | None, what: str, password_env: str) -> MacIdentity:
    _key, cert = certificates.open_pkcs12(data, password, f"macOS signing identity {what}", password_env)
    described = certificates.describe(
        cert, "macOS signing", "renew the Developer ID certificate and point [sign] macos-identity at the new one"
    )
    return MacIdentity(path, password, described.sha256, described.subject)


def expectation(settings: MacSigningSettings, ident: MacIdentity | None) -> MacSignatureExpectation | None:
    """The `macos-signature` rule's expectation; None when rcodesign does not sign."""
    if not settings.signs:
        return None
    return MacSignatureExpectation(ident.signer_sha256 if ident else "", settings.hardened_runtime)


def sign_macho(
    source: Path, signed: Path, settings: MacSigningSettings, ident: MacIdentity | None, identifier: str
) -> None:
    """Write `signed`, a signed copy of `source` (every slice of a universal
    binary), through a temp file so a failure leaves nothing half-written."""
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
        result = proc.run(argv, check=False)
        if result.returncode != 0:
            last = (result.stderr or result.stdout or "").strip().splitlines()
            raise SignatureError(
                f"rcodesign could not sign {source.name}: {last[-1] if last else 'exit ' + str(result.returncode)}",
                hint="check [sign] macos-identity, its password and macos-timestamp-url",
            )
        os.replace(partial, signed)
