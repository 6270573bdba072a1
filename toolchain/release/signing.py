"""Ed25519 signatures in minisign's formats, so users can check them with
the real `minisign -V`. Keys are unencrypted minisign keys (the form CI
secrets take; `minisign -G -W` makes one too); the secret key is read from
a file or an environment variable and never printed or written into the
release folder."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.errors import SignatureError, UsageError

SIG_ALG = b"Ed"
HASHED_SIG_ALG = b"ED"  # signature over BLAKE2b-512 of the file (minisign's default)
KDF_NONE = b"\0\0"
KDF_SCRYPT = b"Sc"
CHECKSUM_ALG = b"B2"
SECRET_ENV = "TOOLCHAIN_SECRET_KEY"
SECRET_FILE_ENV = "TOOLCHAIN_SECRET_KEY_FILE"


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes

    def render(self) -> str:
        body = base64.b64encode(SIG_ALG + self.key_id + self.key).decode()
        return f"untrusted comment: minisign public key {self.key_id[::-1].hex().upper()}\n{body}\n"


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes  # the 32-byte Ed25519 seed
    public: bytes

    def render(self) -> str:
        secret = self.seed + self.public  # libsodium's 64-byte secret key
        checksum = hashlib.blake2b(SIG_ALG + self.key_id + secret, digest_size=32).digest()
        body = SIG_ALG + KDF_NONE + CHECKSUM_ALG + bytes(32) + bytes(16) + self.key_id + secret + checksum
        return f"untrusted comment: minisign secret key (unencrypted)\n{base64.b64encode(body).decode()}\n"

    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.public)


def generate() -> SecretKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SecretKey(secrets.token_bytes(8), seed, public)


def _payload(text: str, what: str) -> bytes:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("untrusted comment:"):
        raise SignatureError(f"{what} is not in minisign's format", hint="make one with `invoke keygen`")
    try:
        return base64.b64decode(lines[1], validate=True)
    except ValueError as exc:
        raise SignatureError(f"{what} is not valid base64", hint="check the file") from exc


def parse_public_key(text: str, what: str = "public key") -> PublicKey:
    data = _payload(text, what)
    if len(data) != 42 or data[:2] != SIG_ALG:
        raise SignatureError(f"{what} is not an Ed25519 minisign public key", hint="check the file")
    return PublicKey(data[2:10], data[10:42])


def parse_secret_key(text: str, what: str = "secret key") -> SecretKey:
    data = _payload(text, what)
    if len(data) != 158 or data[:2] != SIG_ALG or data[4:6] != CHECKSUM_ALG:
        raise SignatureError(f"{what} is not a minisign secret key", hint="make one with `invoke keygen`")
    if data[2:4] == KDF_SCRYPT:
        raise SignatureError(
            f"{what} is password-protected",
            hint="use an unencrypted key (`invoke keygen`, or `minisign -G -W`) kept in a CI secret",
        )
    if data[2:4] != KDF_NONE:
        raise SignatureError(f"{what} uses an unknown key derivation", hint="regenerate it")
    key_id, secret, checksum = data[54:62], data[62:126], data[126:158]
    if hashlib.blake2b(SIG_ALG + key_id + secret, digest_size=32).digest() != checksum:
        raise SignatureError(f"{what} is corrupt (checksum mismatch)", hint="restore it from your secret store")
    return SecretKey(key_id, secret[:32], secret[32:])


def load_secret_key(path: Path | None) -> SecretKey:
    """From a file, else TOOLCHAIN_SECRET_KEY (the key's text), else TOOLCHAIN_SECRET_KEY_FILE."""
    if path is None and os.environ.get(SECRET_ENV):
        return parse_secret_key(os.environ[SECRET_ENV], f"${SECRET_ENV}")
    if path is None and os.environ.get(SECRET_FILE_ENV):
        path = Path(os.environ[SECRET_FILE_ENV])
    if path is None:
        raise UsageError("no signing key", hint=f"pass --secret-key FILE or set {SECRET_ENV} / {SECRET_FILE_ENV}")
    try:
        return parse_secret_key(path.read_text(), str(path))
    except OSError as exc:
        raise UsageError(f"cannot read secret key {path}: {exc.strerror}", hint="check the path") from exc


def public_key_text(given: str, configured: Path | None) -> str:
    """The trusted public key's text: from the command line (the key itself, as minisign -P
    takes it or as its .pub file reads, or a file holding it), else the config."""
    if given.strip().startswith("untrusted comment:"):
        return given
    if given and not Path(given).exists() and _is_key_line(given.strip()):
        return f"untrusted comment: minisign public key given on the command line\n{given.strip()}\n"
    path = Path(given) if given else configured
    if path is None:
        raise UsageError(
            "no public key to check signatures with", hint="pass --public-key or set [sign] public-key-file"
        )
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror}", hint="check the path") from exc


def _is_key_line(text: str) -> bool:
    """A minisign public key's one base64 line (what `minisign -P` takes)."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(data) == 42 and data[:2] == SIG_ALG


def configured_secret_key(path: Path | None) -> SecretKey | None:
    """The signing key if one is configured (file or environment), else None."""
    if path is None and not os.environ.get(SECRET_ENV) and not os.environ.get(SECRET_FILE_ENV):
        return None
    return load_secret_key(path)


def _file_hash(path: Path) -> bytes:
    digest = hashlib.blake2b(digest_size=64)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def sign_file(path: Path, key: SecretKey, trusted_comment: str | None = None) -> Path:
    """Write `path.minisig` (prehashed Ed25519, minisign's default format)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    signature = private.sign(_file_hash(path))
    comment = trusted_comment or f"file:{path.name}"
    global_signature = private.sign(signature + comment.encode())
    text = (
        f"untrusted comment: signature from toolchain secret key {key.key_id[::-1].hex().upper()}\n"
        f"{base64.b64encode(HASHED_SIG_ALG + key.key_id + signature).decode()}\n"
        f"trusted comment: {comment}\n"
        f"{base64.b64encode(global_signature).decode()}\n"
    )
    return write_atomic(path.with_name(path.name + ".minisig"), text)


def verify_file(path: Path, signature_path: Path, public: PublicKey) -> str:
    """Check a minisign signature; return its trusted comment."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not signature_path.is_file():
        raise SignatureError(
            f"{path.name} has no signature ({signature_path.name} is missing)", hint="run `invoke sign`"
        )
    lines = signature_path.read_text().splitlines()
    if len(lines) < 4 or not lines[2].startswith("trusted comment: "):
        raise SignatureError(f"{signature_path.name} is not a minisign signature", hint="re-sign the file")
    try:
        blob = base64.b64decode(lines[1], validate=True)
        global_signature = base64.b64decode(lines[3], validate=True)
    except ValueError as exc:
        raise SignatureError(f"{signature_path.name} is not valid base64", hint="re-sign the file") from exc
    if len(blob) != 74 or blob[:2] not in (SIG_ALG, HASHED_SIG_ALG):
        raise SignatureError(f"{signature_path.name} is not an Ed25519 signature", hint="re-sign the file")
    if blob[2:10] != public.key_id:
        raise SignatureError(
            f"{signature_path.name} was made by key {blob[2:10][::-1].hex().upper()}, "
            f"not {public.key_id[::-1].hex().upper()}",
            hint="verify with the key that signed the release",
        )
    verifier = Ed25519PublicKey.from_public_bytes(public.key)
    message = _file_hash(path) if blob[:2] == HASHED_SIG_ALG else path.read_bytes()
    comment = lines[2].removeprefix("trusted comment: ")
    try:
        verifier.verify(blob[10:], message)
    except InvalidSignature as exc:
        raise SignatureError(f"{path.name}: signature does not match its content", hint="the file was changed") from exc
    try:
        verifier.verify(global_signature, blob[10:] + comment.encode())
    except InvalidSignature as exc:
        raise SignatureError(
            f"{signature_path.name}: its trusted comment {comment!r} is not the one that was signed",
            hint="the .minisig was edited; use the release's own signature file",
        ) from exc
    return comment
