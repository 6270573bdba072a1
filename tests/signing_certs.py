"""Code-signing certificates made in the tests (for Authenticode and for
Apple code signatures): nothing here is trusted anywhere else."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Certs:
    ca: Path
    p12: Path
    pem_cert: Path
    pem_key: Path
    other_p12: Path
    expired_p12: Path


def self_signed(name: str, days: int, extension: Any) -> tuple[Any, Any]:
    """(RSA key, certificate) for `name`, valid `days` either side of now, with one critical extension."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=days))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(extension, critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_certs(root: Path, signer_name: str = "Toolkit Test Signer") -> Certs:
    """A test CA, a code-signing certificate it issued (as a PKCS#12 and as
    PEM files, password "s3cret"), another signer's and an expired one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca = self_signed("Toolkit Test CA", 400, x509.BasicConstraints(ca=True, path_length=None))
    ca_name = ca.subject

    def signer(name: str, serial: int, days: int) -> tuple[object, object]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=365))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return key, cert

    def p12(path: Path, key: object, cert: object) -> Path:
        encryption = serialization.BestAvailableEncryption(b"s3cret")
        path.write_bytes(pkcs12.serialize_key_and_certificates(b"signer", key, cert, [ca], encryption))  # type: ignore[arg-type]
        return path

    root.mkdir(parents=True, exist_ok=True)
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key, cert = signer(signer_name, 2, 30)
    other_key, other_cert = signer("Somebody Else", 3, 30)
    old_key, old_cert = signer("Toolkit Old Signer", 4, -1)
    (root / "signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))  # type: ignore[attr-defined]
    (root / "signer.key").write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    return Certs(
        ca=root / "ca.pem",
        p12=p12(root / "signer.p12", key, cert),
        pem_cert=root / "signer.pem",
        pem_key=root / "signer.key",
        other_p12=p12(root / "other.p12", other_key, other_cert),
        expired_p12=p12(root / "expired.pfx", old_key, old_cert),
    )


def assert_cli_refuses_a_wrong_password(sign_table: str, target: str, password_env: str, tmp_path: Path) -> None:
    """`invoke build` with this [sign] table and a wrong password in
    `password_env`: exit 11, one line naming it, no traceback, no password."""
    from conftest import run_invoke

    from toolchain.errors import SignatureError

    config = tmp_path / "toolchain.toml"
    config.write_text(f"[sign]\n{sign_table}")
    result = run_invoke(
        "build", "--target", target, "--out-dir", str(tmp_path / "dist"),
        env={"TOOLCHAIN_CONFIG": str(config), password_env: "not-it"},
    )  # fmt: skip
    assert result.returncode == SignatureError.exit_code, result.stderr
    errors = [line for line in result.stderr.splitlines() if "wrong password" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "not-it" not in result.stderr + result.stdout


def assert_refused_before_cargo(raised: Exception, words: str, out_dir: Path) -> None:
    """A bad identity's refusal: its words, never the password, nothing written."""
    assert words in str(raised)
    assert "s3cret" not in str(raised)
    assert not out_dir.exists() or not any(out_dir.iterdir()), "nothing may be written"
