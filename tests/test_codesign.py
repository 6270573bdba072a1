"""Apple code signatures from Linux, for real: a Developer ID-shaped
certificate made here, signatures made by rcodesign (ad hoc and with the
identity, hardened runtime, a timestamp from a real RFC 3161 authority on
127.0.0.1), checked by `rcodesign verify` and by LIEF through the
`macos-signature` rule; then `invoke notarize` up to the request it sends,
and through a strict local stand-in for Apple's notary API (unreachable
from here) with the upload going to moto's real S3 server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import pytest
from conftest import on_ci, run_invoke
from local_tsa import timestamp_authority
from notary_standin import BUCKET, State, notary_service
from signing_certs import Certs, assert_cli_refuses_a_wrong_password, assert_refused_before_cargo, make_certs

from toolchain.config.catalog import load_catalog
from toolchain.config.settings import (
    MACOS_P12_BASE64_ENV,
    MacSigningSettings,
    NotarySettings,
    Settings,
    load_settings,
)
from toolchain.errors import ConfigError, MissingToolError, NotaryError, SignatureError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.release import codesign, notary
from toolchain.verify.inspection import inspect_binary
from toolchain.verify.policy import MacSignatureExpectation, evaluate

pytestmark = pytest.mark.skipif(shutil.which("rcodesign") is None and not on_ci(), reason="rcodesign is not installed")

PASSWORD_ENV = "TEST_MACOS_P12_PASSWORD"
DEVELOPER_ID = "Developer ID Application: Toolkit Test (TKTEST1234)"
THIN = ("x86_64-apple-darwin", "aarch64-apple-darwin")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"), DEVELOPER_ID)


def _signing(**changes: object) -> MacSigningSettings:
    return replace(MacSigningSettings(password_env=PASSWORD_ENV), **changes)  # type: ignore[arg-type]


def _settings(signing: MacSigningSettings) -> Settings:
    """The loaded settings with [sign] macos-* set as `signing` says."""
    settings = load_settings()
    sign = msgspec.structs.replace(
        settings.sign,
        macos_sign=signing.mode,
        macos_identity=str(signing.identity or ""),
        macos_password_env=signing.password_env,
        macos_hardened_runtime=signing.hardened_runtime,
        macos_entitlements=str(signing.entitlements or ""),
        macos_timestamp_url=signing.timestamp_url,
    )
    return msgspec.structs.replace(settings, sign=sign)


@dataclass(frozen=True)
class Signed:
    report: BuildReport
    out_dir: Path
    tsa_requests: int


@pytest.fixture(scope="module")
def developer_id_build(certs: Certs, tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Signed:
    """The demo for both macOS slices and universal2, signed with the identity and timestamped."""
    os.environ[PASSWORD_ENV] = "s3cret"
    try:
        out_dir = tmp_path_factory.mktemp("signed")
        with timestamp_authority() as (url, answered):
            settings = _settings(_signing(mode="developer-id", identity=certs.p12, timestamp_url=url))
            report = build(
                BuildOptions(targets=(*THIN, "universal2-apple-darwin"), profile="fast", out_dir=out_dir), settings
            )
    finally:
        del os.environ[PASSWORD_ENV]
    return Signed(report, out_dir, len(answered))


def _expected(certs: Certs) -> MacSignatureExpectation:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

    cert = pkcs12.load_key_and_certificates(certs.p12.read_bytes(), b"s3cret")[1]
    assert cert is not None
    import hashlib

    return MacSignatureExpectation(hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(), True)


def _rule(path: Path, triple: str, expected: MacSignatureExpectation | None) -> dict[str, tuple[bool, str]]:
    catalog = load_catalog()
    target = catalog.target(triple)
    verdicts = evaluate(
        inspect_binary(path),
        target,
        path,
        catalog.policy_for(target),
        component_machines=catalog.component_machines(target),
        macos=expected,
    )
    return {v.rule: (v.ok, v.found) for v in verdicts}


def test_every_slice_is_signed_with_the_identity_and_the_hardened_runtime(
    developer_id_build: Signed, certs: Certs
) -> None:
    assert developer_id_build.tsa_requests >= 4, "every slice's signature asks the timestamp authority"
    for result in developer_id_build.report.results:
        (binary,) = result.binaries
        assert binary.path.parent.name == "codesign", "cargo's own output is never signed in place"
        assert dict(result.entry.phases).get("sign") is not None
        slices = binary.info.slices
        assert len(slices) == (2 if result.triple.startswith("universal2") else 1)
        for piece in slices:
            signature = piece.signature
            assert signature is not None
            assert (signature.kind, signature.status) == ("developer-id", "OK")
            assert signature.signer_subject.startswith("CN=Developer ID Application: Toolkit Test")
            assert signature.hardened_runtime and signature.timestamped
            assert signature.identifier == "tally"
        verdict = {v.rule: v for v in binary.verdicts}["macos-signature"]
        assert verdict.ok, verdict
        # rcodesign's own verifier agrees.
        checked = subprocess.run(["rcodesign", "verify", str(binary.path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_changed_byte_breaks_the_signature_and_the_rules(
    developer_id_build: Signed, certs: Certs, tmp_path: Path
) -> None:
    result = next(r for r in developer_id_build.report.results if r.triple == "aarch64-apple-darwin")
    signed = result.binaries[0].path
    tampered = tmp_path / "tally"
    data = bytearray(signed.read_bytes())
    data[0x4000 + 100] ^= 0xFF  # inside the first code page after the header page
    tampered.write_bytes(bytes(data))
    rules = _rule(tampered, "aarch64-apple-darwin", _expected(certs))
    assert rules["macos-signature"][0] is False and "bad page" in rules["macos-signature"][1]
    assert rules["code-signature"][0] is False, "a broken ad hoc or linker signature fails too"
    assert _rule(signed, "aarch64-apple-darwin", _expected(certs))["macos-signature"][0]


def test_another_identity_or_no_hardened_runtime_fails_the_rule(developer_id_build: Signed, certs: Certs) -> None:
    result = next(r for r in developer_id_build.report.results if r.triple == "x86_64-apple-darwin")
    path = result.binaries[0].path
    other = MacSignatureExpectation("0" * 64, True)
    ok, found = _rule(path, "x86_64-apple-darwin", other)["macos-signature"]
    assert not ok and "not the configured identity" in found
    ok, found = _rule(path, "x86_64-apple-darwin", MacSignatureExpectation("", False))["macos-signature"]
    assert not ok and "not ad hoc" in found
    assert "macos-signature" not in _rule(path, "x86_64-apple-darwin", None), "not configured: not applied"


def test_a_forged_cms_signature_is_caught(developer_id_build: Signed, certs: Certs, tmp_path: Path) -> None:
    """Swap in a CMS blob whose signature bytes are changed: the page hashes
    still match, so only the CMS check can catch it."""
    result = next(r for r in developer_id_build.report.results if r.triple == "x86_64-apple-darwin")
    data = bytearray(result.binaries[0].path.read_bytes())
    cms = data.rfind(b"\xfa\xde\x0b\x01")  # the CMS blob; its first 256-byte OCTET STRING is the signer's
    marker = data.find(b"\x04\x82\x01\x00", cms)  # signature (the timestamp token's comes later)
    assert cms > 0 and marker > cms
    data[marker + 10] ^= 0x01
    forged = tmp_path / "tally"
    forged.write_bytes(bytes(data))
    info = inspect_binary(forged)
    signature = info.slices[0].signature
    assert signature is not None and signature.status == "bad CMS signature"
    ok, found = _rule(forged, "x86_64-apple-darwin", _expected(certs))["macos-signature"]
    assert not ok and "bad CMS signature" in found


def test_a_cut_or_scrambled_signature_is_a_finding_never_a_crash(developer_id_build: Signed) -> None:
    import lief

    from toolchain.verify.macho_signature import read_signature

    result = next(r for r in developer_id_build.report.results if r.triple == "aarch64-apple-darwin")
    data = result.binaries[0].path.read_bytes()
    fat = lief.MachO.parse(str(result.binaries[0].path))
    assert fat is not None
    blob = bytes(fat.at(0).code_signature.content)  # type: ignore[union-attr]
    assert read_signature(blob, data).status == "OK"
    declared = int.from_bytes(blob[4:8], "big")  # the SuperBlob's own length; zero padding follows it
    for cut in range(0, declared, max(1, declared // 97)):
        assert read_signature(blob[:cut], data).status != "OK"
    for at in range(8, len(blob), max(1, len(blob) // 89)):
        scrambled = bytearray(blob)
        scrambled[at] ^= 0xFF
        read_signature(bytes(scrambled), data)  # whatever it finds, it returns


# Notarization


@dataclass(frozen=True)
class ApiKey:
    settings: NotarySettings
    public_key: object


@pytest.fixture(scope="module")
def api_key(tmp_path_factory: pytest.TempPathFactory) -> ApiKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("notary") / "AuthKey_TKKEY12345.p8"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ApiKey(NotarySettings(path, "TKKEY12345", "69a6de7e-0000-47e3-e053-5b8c7c11a4d1"), key.public_key())


def test_a_dry_run_shows_the_request_apple_would_take(
    developer_id_build: Signed, api_key: ApiKey, tmp_path: Path
) -> None:
    from notary_standin import check_token

    request_file = tmp_path / "request.json"
    outcome = notary.notarize_target(
        developer_id_build.out_dir, "universal2-apple-darwin", api_key.settings,
        dry_run=True, wait=False, request_out=request_file,
    )  # fmt: skip
    assert outcome.result is None
    shown = outcome.to_dict()["request"]
    assert shown["url"] == "https://appstoreconnect.apple.com/notary/v2/submissions"
    assert shown["jwt_header"] == {"alg": "ES256", "kid": "TKKEY12345", "typ": "JWT"}
    assert shown["jwt_claims"]["aud"] == "appstoreconnect-v1"
    assert "Bearer <JWT>" in json.dumps(shown), "the token is not shown"
    import hashlib
    import zipfile

    archive = Path(shown["archive"])
    assert shown["body"] == {"submissionName": archive.name, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    with zipfile.ZipFile(archive) as bundle:
        (member,) = bundle.infolist()
        assert member.filename.endswith("/tally") and member.external_attr >> 16 & 0o111
    assert request_file.stat().st_mode & 0o777 == 0o600
    full = json.loads(request_file.read_text())
    state = State(api_key.public_key, "TKKEY12345", api_key.settings.issuer_id, "")
    assert check_token(state, full["headers"]["Authorization"]) is None, "the token verifies with the key's public half"


def test_a_submission_is_uploaded_and_accepted(
    developer_id_build: Signed, api_key: ApiKey, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    state = State(api_key.public_key, "TKKEY12345", api_key.settings.issuer_id, s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)  # boto3's own variable: the upload goes to moto
    with notary_service(state) as url:
        settings = replace(api_key.settings, api_url=url)
        outcome = notary.notarize_target(
            developer_id_build.out_dir, "aarch64-apple-darwin", settings, dry_run=False, wait=True, poll_seconds=0.1
        )
    assert outcome.result is not None and outcome.result.status == "Accepted"
    (submission,) = state.submissions.values()
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    uploaded = s3.get_object(Bucket=BUCKET, Key=submission["object"])["Body"].read()
    assert uploaded == outcome.request.archive.read_bytes()
    assert len(state.tokens) >= 2, "each call carries a token"


def test_a_rejection_or_a_wrong_key_is_one_line_with_exit_18(
    developer_id_build: Signed, api_key: ApiKey, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    state = State(api_key.public_key, "TKKEY12345", api_key.settings.issuer_id, s3_endpoint, verdict="Rejected")
    with notary_service(state) as url:
        with pytest.raises(NotaryError, match="answered Rejected") as raised:
            notary.notarize_target(
                developer_id_build.out_dir, "x86_64-apple-darwin", replace(api_key.settings, api_url=url),
                dry_run=False, wait=True, poll_seconds=0.1,
            )  # fmt: skip
        assert "logs" in (raised.value.hint or "")
        config = tmp_path / "toolchain.toml"
        config.write_text(
            f'[notarize]\nkey-file = "{api_key.settings.key_file}"\nkey-id = "WRONGKEY"\n'
            f'issuer-id = "{api_key.settings.issuer_id}"\napi-url = "{url}"\n'
        )
        result = run_invoke(
            "notarize", "--target", "x86_64-apple-darwin", "--out-dir", str(developer_id_build.out_dir),
            env={"TOOLCHAIN_CONFIG": str(config)},
        )  # fmt: skip
    assert result.returncode == NotaryError.exit_code == 18, result.stderr
    assert "answered 401" in result.stderr and "Traceback" not in result.stderr


def test_notarize_needs_a_complete_api_key(developer_id_build: Signed, api_key: ApiKey) -> None:
    with pytest.raises(ConfigError, match=r"\[notarize\] issuer-id is empty"):
        notary.notarize_target(
            developer_id_build.out_dir, "aarch64-apple-darwin", replace(api_key.settings, issuer_id=""),
            dry_run=True, wait=False,
        )  # fmt: skip


# The builds below sign into the same shared target folder as developer_id_build
# (cargo's output/codesign/), so they come after every test that reads its binaries.


def test_ad_hoc_signing_covers_every_slice(tmp_path: Path, shared_target_dir: Path) -> None:
    report = build(
        BuildOptions(targets=("universal2-apple-darwin",), profile="fast", out_dir=tmp_path),
        _settings(_signing(mode="adhoc")),
    )
    (binary,) = report.results[0].binaries
    kinds = [(p.machine, p.signature.kind if p.signature else None) for p in binary.info.slices]
    assert sorted(kinds) == [("aarch64", "adhoc"), ("x86_64", "adhoc")], "the linker signs only arm64; rcodesign both"
    assert all(p.signature and p.signature.hardened_runtime for p in binary.info.slices)
    assert {v.rule: v.ok for v in binary.verdicts}["macos-signature"]
    # rcodesign's verify trips over its own empty ad hoc CMS slot (it warns that it is unreliable),
    # so its parser is asked what it sees instead.
    shown = subprocess.run(["rcodesign", "print-signature-info", str(binary.path)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("flags: CodeSignatureFlags(ADHOC | RUNTIME)") == 2


def test_signing_is_reproducible_without_a_timestamp(certs: Certs, tmp_path: Path, shared_target_dir: Path) -> None:
    os.environ[PASSWORD_ENV] = "s3cret"
    try:
        digests = []
        for run in ("one", "two"):
            report = build(
                BuildOptions(targets=("aarch64-apple-darwin",), profile="fast", out_dir=tmp_path / run),
                _settings(_signing(mode="developer-id", identity=certs.p12)),
            )
            digests.append(report.results[0].binaries[0].sha256)
    finally:
        del os.environ[PASSWORD_ENV]
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("none", ConfigError, "no identity is configured"),
        ("missing", ConfigError, "cannot read [sign] macos-identity"),
        ("wrong-password", SignatureError, "wrong password"),
        ("expired", SignatureError, "expired on"),
        ("no-rcodesign", MissingToolError, "rcodesign is not installed"),
    ],
)
def test_a_bad_identity_stops_the_build_before_cargo(
    certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, error: type[Exception], words: str
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong" if which == "wrong-password" else "s3cret")
    monkeypatch.delenv(MACOS_P12_BASE64_ENV, raising=False)
    if which == "no-rcodesign":
        monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                  if not (Path(p) / "rcodesign").exists()))  # fmt: skip
    identity = {
        "none": None,
        "missing": tmp_path / "nope.p12",
        "wrong-password": certs.p12,
        "expired": certs.expired_p12,
        "no-rcodesign": certs.p12,
    }[which]
    out_dir = tmp_path / "dist"
    with pytest.raises(error) as raised:
        build(
            BuildOptions(targets=("aarch64-apple-darwin",), profile="fast", out_dir=out_dir),
            _settings(_signing(mode="developer-id", identity=identity)),
        )
    assert_refused_before_cargo(raised.value, words, out_dir)


def test_the_cli_refuses_a_wrong_password_in_one_line(certs: Certs, tmp_path: Path) -> None:
    table = f'macos-identity = "{certs.p12}"\nmacos-password-env = "{PASSWORD_ENV}"\n'
    assert_cli_refuses_a_wrong_password(table, "aarch64-apple-darwin", PASSWORD_ENV, tmp_path)


def test_a_base64_secret_can_carry_the_identity(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    monkeypatch.setenv(MACOS_P12_BASE64_ENV, base64.b64encode(certs.p12.read_bytes()).decode())
    settings = _signing()
    assert settings.effective_mode == "developer-id", "auto: an identity means Developer ID"
    with codesign.identity(settings) as ident:
        assert ident is not None and ident.pkcs12.is_file() and ident.subject.startswith("CN=Developer ID")
        kept = ident.pkcs12
    assert not kept.exists(), "the decoded PKCS#12 must not outlive the signing"
    monkeypatch.delenv(MACOS_P12_BASE64_ENV)
    assert _signing().effective_mode == "linker", "auto without an identity keeps the linker's ad hoc signature"


def test_notarize_refuses_what_apple_would_reject(
    certs: Certs, api_key: ApiKey, tmp_path: Path, shared_target_dir: Path
) -> None:
    os.environ[PASSWORD_ENV] = "s3cret"
    try:
        build(
            BuildOptions(targets=("aarch64-apple-darwin",), profile="fast", out_dir=tmp_path),
            _settings(_signing(mode="developer-id", identity=certs.p12)),  # no timestamp server
        )
    finally:
        del os.environ[PASSWORD_ENV]
    with pytest.raises(SignatureError, match="has no secure timestamp"):
        notary.notarize_target(tmp_path, "aarch64-apple-darwin", api_key.settings, dry_run=True, wait=False)
    assert not (tmp_path / "notary").exists(), "nothing is written for a binary Apple would reject"


def test_doctor_opens_each_identity_the_way_a_build_would(
    certs: Certs, api_key: ApiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolchain.config.settings import AuthenticodeSettings
    from toolchain.doctor import signing_checks

    authenticode_off = AuthenticodeSettings(None, None, "UNSET_PASSWORD_ENV", "")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    checks = {c.name: c for c in signing_checks(authenticode_off, _signing(identity=certs.p12), api_key.settings)}
    assert checks["rcodesign"].ok and checks["rcodesign"].detail.startswith("apple-codesign")
    assert checks["macOS identity"].ok and DEVELOPER_ID in checks["macOS identity"].detail
    assert checks["notary API key"].ok and "TKKEY12345" in checks["notary API key"].detail
    assert checks["Authenticode identity"].detail == "not configured"
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    broken = {
        c.name: c for c in signing_checks(authenticode_off, _signing(identity=certs.expired_p12), api_key.settings)
    }
    assert not broken["macOS identity"].ok and "wrong password" in broken["macOS identity"].detail
    assert broken["macOS identity"].fix and PASSWORD_ENV in broken["macOS identity"].fix
