"""Authenticode from Linux, for real: certificates made here with
cryptography, signatures made by osslsigncode, checked by `osslsigncode
verify` against the test CA and by LIEF through the `authenticode` policy
rule, and the signed demo run under wine."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from conftest import on_ci
from signing_certs import Certs, assert_cli_refuses_a_wrong_password, assert_refused_before_cargo, make_certs

from toolchain.config.catalog import load_catalog
from toolchain.config.settings import P12_BASE64_ENV, AuthenticodeSettings, Settings, load_settings
from toolchain.errors import ConfigError, SignatureError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.release import authenticode
from toolchain.verify.inspection import inspect_binary
from toolchain.verify.policy import evaluate
from toolchain.verify.smoke import smoke_binary

pytestmark = pytest.mark.skipif(
    shutil.which("osslsigncode") is None and not on_ci(), reason="osslsigncode is not installed"
)

WINDOWS = "x86_64-pc-windows-gnu"
PASSWORD_ENV = "TEST_AUTHENTICODE_PASSWORD"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")


def _settings(cert: Path | None, key: Path | None = None) -> Settings:
    settings = load_settings()
    sign = msgspec.structs.replace(
        settings.sign,
        authenticode_cert=str(cert or ""),
        authenticode_key=str(key or ""),
        authenticode_password_env=PASSWORD_ENV,
        timestamp_url="",
    )
    return msgspec.structs.replace(settings, sign=sign)


@dataclass(frozen=True)
class Signed:
    report: BuildReport
    signed: Path  # copies taken right after the build: the shared target dir is other tests' too
    unsigned: Path


@pytest.fixture(scope="module")
def signed_build(certs: Certs, tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Signed:
    os.environ[PASSWORD_ENV] = "s3cret"
    try:
        out_dir = tmp_path_factory.mktemp("signed")
        report = build(BuildOptions(targets=(WINDOWS,), profile="fast", out_dir=out_dir), _settings(certs.p12))
    finally:
        del os.environ[PASSWORD_ENV]
    built = report.results[0].binaries[0].path
    signed, unsigned = out_dir / "copies" / "signed.exe", out_dir / "copies" / "unsigned.exe"
    signed.parent.mkdir()
    shutil.copyfile(built, signed)
    shutil.copyfile(built.parent.parent / built.name, unsigned)
    return Signed(report, signed, unsigned)


def _osslsigncode_verify(path: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["osslsigncode", "verify", "-CAfile", str(ca), "-in", str(path)], capture_output=True, text=True, check=False
    )


def test_the_archived_exe_is_signed_and_verifies_against_the_ca(signed_build: Signed, certs: Certs) -> None:
    (result,) = signed_build.report.results
    (binary,) = result.binaries
    assert binary.path.parent.name == "authenticode", "the record must point at the signed copy"
    assert [name for name, _ in result.entry.phases] == ["prepare", "cargo", "verify", "sign", "package"]
    verdict = next(v for v in binary.verdicts if v.rule == "authenticode")
    assert verdict.ok and "Toolkit Test Signer" in verdict.found
    (artifact,) = result.artifacts
    unpacked = artifact.path.parent / "unpacked"
    with zipfile.ZipFile(artifact.path) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith("tally.exe")]
        exe = Path(archive.extract(member, unpacked))
    assert exe.read_bytes() == signed_build.signed.read_bytes(), "the archive must hold the signed bytes"
    checked = _osslsigncode_verify(exe, certs.ca)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # cargo's own output stays unsigned: a no-op rebuild never re-signs a signed file
    assert inspect_binary(signed_build.unsigned).authenticode is None


def test_the_signed_exe_still_runs_under_wine(signed_build: Signed) -> None:
    if shutil.which("wine") is None and not on_ci():
        pytest.skip("wine is not installed")  # scripts/setup.sh installs it: under CI the test must run
    binary = signed_build.report.results[0].binaries[0]
    exe = signed_build.signed.with_name("tally.exe")
    shutil.copyfile(signed_build.signed, exe)
    ran = smoke_binary(load_catalog().target(WINDOWS), exe, binary.version, [["doctor"]])
    assert ran.how == "wine" and ran.ok, ran


def test_signing_is_reproducible_and_tampering_breaks_the_rule(
    signed_build: Signed, certs: Certs, tmp_path: Path, password: None
) -> None:
    signed, unsigned = signed_build.signed, signed_build.unsigned
    with authenticode.identity(AuthenticodeSettings(certs.p12, None, PASSWORD_ENV, "")) as ident:
        assert ident is not None
        again = tmp_path / "again" / "tally.exe"
        authenticode.sign_pe(unsigned, again, ident, "tally", authenticode_epoch(signed_build.report))
        signer = ident.signer_sha256
    assert again.read_bytes() == signed.read_bytes(), "the same input and time must sign to the same bytes"

    catalog = load_catalog()
    target = catalog.target(WINDOWS)
    policy = catalog.policy_for(target)

    def rule(path: Path, expected: str | None = signer) -> tuple[bool, str]:
        verdicts = evaluate(inspect_binary(path), target, path, policy, signer=expected)
        found = [v for v in verdicts if v.rule == "authenticode"]
        assert len(found) == (1 if expected else 0)
        return (found[0].ok, found[0].found) if found else (True, "not configured")

    assert rule(signed)[0]
    tampered = tmp_path / "tampered.exe"
    data = bytearray(signed.read_bytes())
    text = data.find(b"tally")  # a string in .rdata, inside the signed range
    data[text] ^= 0x20
    tampered.write_bytes(data)
    ok, found = rule(tampered)
    assert not ok and "BAD_DIGEST" in found
    assert _osslsigncode_verify(tampered, certs.ca).returncode != 0
    ok, found = rule(unsigned)
    assert not ok and found == "no Authenticode signature"
    with authenticode.identity(AuthenticodeSettings(certs.other_p12, None, PASSWORD_ENV, "")) as other:
        assert other is not None
        by_other = tmp_path / "other" / "tally.exe"
        authenticode.sign_pe(unsigned, by_other, other, "tally", 0)
    ok, found = rule(by_other)
    assert not ok and "Somebody Else" in found
    assert rule(unsigned, expected=None) == (True, "not configured"), "no identity configured: the rule is not applied"


def authenticode_epoch(report: BuildReport) -> int:
    from toolchain.release.package import source_date_epoch

    assert report.workspace_root is not None
    return source_date_epoch(report.workspace_root)


def test_a_pem_certificate_and_key_sign_too(signed_build: Signed, certs: Certs, tmp_path: Path, password: None) -> None:
    unsigned = signed_build.unsigned
    signed = tmp_path / "pem" / "tally.exe"
    with authenticode.identity(AuthenticodeSettings(certs.pem_cert, certs.pem_key, PASSWORD_ENV, "")) as ident:
        assert ident is not None and ident.subject == "CN=Toolkit Test Signer"
        authenticode.sign_pe(unsigned, signed, ident, "tally", 0)
    checked = _osslsigncode_verify(signed, certs.ca)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with authenticode.identity(AuthenticodeSettings(certs.p12, None, PASSWORD_ENV, "")) as from_p12:
        assert from_p12 is not None and from_p12.signer_sha256 == ident.signer_sha256


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("missing", ConfigError, "cannot read [sign] authenticode-cert"),
        ("wrong-password", SignatureError, "wrong password"),
        ("expired", SignatureError, "expired on"),
        ("pem-without-key", ConfigError, "without a key"),
    ],
)
def test_a_bad_identity_stops_the_build_before_cargo(
    certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, error: type[Exception], words: str
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong" if which == "wrong-password" else "s3cret")
    cert = {
        "missing": tmp_path / "nope.p12",
        "wrong-password": certs.p12,
        "expired": certs.expired_p12,
        "pem-without-key": certs.pem_cert,
    }[which]
    out_dir = tmp_path / "dist"
    with pytest.raises(error) as raised:
        build(BuildOptions(targets=(WINDOWS,), profile="fast", out_dir=out_dir), _settings(cert))
    assert_refused_before_cargo(raised.value, words, out_dir)


def test_the_cli_refuses_a_wrong_password_in_one_line(certs: Certs, tmp_path: Path) -> None:
    table = f'authenticode-cert = "{certs.p12}"\nauthenticode-password-env = "{PASSWORD_ENV}"\n'
    assert_cli_refuses_a_wrong_password(table, WINDOWS, PASSWORD_ENV, tmp_path)


def test_a_base64_secret_can_carry_the_pkcs12(certs: Certs, monkeypatch: pytest.MonkeyPatch, password: None) -> None:
    import base64

    monkeypatch.setenv(P12_BASE64_ENV, base64.b64encode(certs.p12.read_bytes()).decode())
    settings = AuthenticodeSettings(None, None, PASSWORD_ENV, "")
    assert settings.configured
    with authenticode.identity(settings) as ident:
        assert ident is not None and ident.pkcs12 is not None and ident.pkcs12.is_file()
        kept = ident.pkcs12
    assert not kept.exists(), "the decoded PKCS#12 must not outlive the signing"
    monkeypatch.setenv(P12_BASE64_ENV, "not base64!")
    with pytest.raises(ConfigError, match="is not base64"), authenticode.identity(settings):
        pass
