"""The release folder: checksums, manifest, provenance and signatures,
checked with the real sha256sum and minisign."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import jsonschema
import pytest
from conftest import demo_contract, run_invoke

from toolchain import REPO_ROOT, dated
from toolchain.config.catalog import packaged
from toolchain.errors import ReleaseCheckError, SignatureError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release, verify_release
from toolchain.release.signing import generate, load_secret_key, parse_secret_key, sign_file

HOST = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    result = run_invoke("keygen", "--out-dir", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, keys: Path) -> Path:
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    key = parse_secret_key((keys / "minisign.key").read_text())
    package_release(folder, key, "https://downloads.example/tally/0.1.0", REPO_ROOT, **demo_contract())
    return folder


@pytest.fixture
def copy(release: Path, tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "copy"
    shutil.copytree(release, target)
    yield target


def listed(folder: Path) -> list[str]:
    return [line.split("  ", 1)[1] for line in (folder / "sha256.sum").read_text().splitlines()]


def test_sha256sum_accepts_the_list(release: Path) -> None:
    names = listed(release)
    assert names == sorted(names)
    assert {"manifest.json", "provenance.intoto.json", "tally-installer.sh", "tally-installer.ps1"} <= set(names)
    assert f"tally-{HOST}.tar.xz" in names
    check = subprocess.run(["sha256sum", "-c", "sha256.sum"], cwd=release, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_real_minisign_verifies_every_signature(release: Path, keys: Path) -> None:
    for name in [*listed(release), "sha256.sum"]:
        result = subprocess.run(
            ["minisign", "-Vm", name, "-p", str(keys / "minisign.pub")], cwd=release, capture_output=True, text=True
        )
        assert result.returncode == 0, (name, result.stderr)
        assert f"file:{name}" in result.stdout


def test_manifest_matches_its_schema_and_the_files(release: Path) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    schema = json.loads((packaged("schemas", "manifest.schema.json")).read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["apps"] == [{"name": "tally", "version": "0.1.0", "schema_level": 3}]  # `tally migrate --status`
    archive = next(a for a in manifest["artifacts"] if a["target"] == HOST)
    assert archive["kind"] == "archive" and archive["binaries"] == ["tally"]
    assert archive["size"] == (release / archive["name"]).stat().st_size
    assert {v["rule"] for v in archive["verdicts"]} >= {"machine", "stripped", "glibc-floor"}


def test_provenance_is_an_in_toto_slsa_statement(release: Path) -> None:
    statement = json.loads((release / "provenance.intoto.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    sums = {}
    for line in (release / "sha256.sum").read_text().splitlines():
        digest, name = line.split("  ")
        sums[name] = digest
    metadata = ("manifest.json", "provenance.intoto.json", "latest.json")  # about the release, not in it
    assert subjects == {n: d for n, d in sums.items() if n not in metadata}
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["targets"] == [HOST]
    assert set(definition["externalParameters"]["source"]) == {"commit", "dirty"}
    host = definition["internalParameters"][HOST]
    assert host["runner"] == "zig" and host["route"] == "rustup" and host["toolchain"]["rustc"].startswith("rustc")
    lock = next(d for d in definition["resolvedDependencies"] if d.get("name") == "Cargo.lock")
    assert len(lock["digest"]["sha256"]) == 64
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] and run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]


def test_secret_key_is_never_in_the_release_folder(release: Path, keys: Path) -> None:
    secret_line = (keys / "minisign.key").read_text().splitlines()[1]
    seed = base64.b64decode(secret_line)[62:94]
    for path in release.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret_line.encode() not in data and seed not in data, path


def test_verify_accepts_the_folder(release: Path, keys: Path) -> None:
    result = run_invoke("verify", "--path", str(release), "--public-key", str(keys / "minisign.pub"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_verify_names_a_tampered_archive(copy: Path, keys: Path) -> None:
    archive = copy / f"tally-{HOST}.tar.xz"
    archive.write_bytes(archive.read_bytes()[:-1] + b"\0")
    result = run_invoke("verify", "--path", str(copy), "--public-key", str(keys / "minisign.pub"))
    assert result.returncode == 12
    assert f"error: tally-{HOST}.tar.xz: SHA-256 does not match sha256.sum" in result.stderr


def test_verify_names_a_missing_signature(copy: Path, keys: Path) -> None:
    (copy / "tally-installer.sh.minisig").unlink()
    with pytest.raises(ReleaseCheckError, match="tally-installer.sh: tally-installer.sh has no signature"):
        verify_release(copy, (keys / "minisign.pub").read_text())


def test_verify_refuses_an_unlisted_file_and_a_foreign_key(copy: Path, keys: Path) -> None:
    other = generate().public_key().render()
    with pytest.raises(ReleaseCheckError, match="was made by key"):
        verify_release(copy, other)
    shutil.copy(copy / f"tally-{HOST}.tar.xz", copy / "extra-x86_64-unknown-linux-gnu.tar.xz")
    with pytest.raises(
        ReleaseCheckError, match="extra-x86_64-unknown-linux-gnu.tar.xz is in the release folder but not"
    ):
        verify_release(copy, (keys / "minisign.pub").read_text())


def test_verify_catches_a_forged_provenance(copy: Path, keys: Path) -> None:
    statement = json.loads((copy / "provenance.intoto.json").read_text())
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    (copy / "provenance.intoto.json").write_text(json.dumps(statement))
    with pytest.raises(ReleaseCheckError, match="provenance.intoto.json: SHA-256 does not match"):
        verify_release(copy, (keys / "minisign.pub").read_text())


def test_verify_catches_a_validly_signed_provenance_that_names_other_files(copy: Path, keys: Path) -> None:
    # Every digest and signature is right (the forger holds the key, or a bug
    # wrote it): only the subject check can see that provenance vouches for
    # something other than the release.
    provenance = copy / "provenance.intoto.json"
    statement = json.loads(provenance.read_text())
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    provenance.write_text(json.dumps(statement))
    resign(copy, keys, [provenance.name])
    with pytest.raises(ReleaseCheckError, match="provenance subject does not match the release"):
        verify_release(copy, (keys / "minisign.pub").read_text())


def resign(folder: Path, keys: Path, changed: list[str]) -> None:
    """What a holder of the key would do after changing files: every digest
    (sha256.sum, .sha256 files, the manifest's entries) and signature redone."""
    key = load_secret_key(keys / "minisign.key")
    manifest = folder / "manifest.json"
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in changed}
    document = json.loads(manifest.read_text())
    for artifact in document["artifacts"]:
        artifact["sha256"] = digests.get(artifact["name"], artifact["sha256"])
    manifest.write_text(json.dumps(document))
    digests[manifest.name] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    lines = []
    for line in (folder / "sha256.sum").read_text().splitlines():
        name = line.split("  ", 1)[1]
        lines.append(f"{digests[name]}  {name}" if name in digests else line)
    (folder / "sha256.sum").write_text("\n".join(lines) + "\n")
    for name, digest in digests.items():
        if (folder / f"{name}.sha256").exists():
            (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n")
        sign_file(folder / name, key, f"file:{name}")
    sign_file(folder / "sha256.sum", key, "file:sha256.sum")


@pytest.mark.parametrize("member", ["symlink", "escape"])
def test_verify_opens_archives_and_refuses_unsafe_members(copy: Path, keys: Path, member: str) -> None:
    archive = copy / f"tally-{HOST}.tar.xz"
    top = f"tally-{HOST}"
    with tarfile.open(archive, "w:xz") as crafted:
        if member == "symlink":
            link = tarfile.TarInfo(f"{top}/tally")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
            crafted.addfile(link)
        else:
            data = b"#!/bin/sh\n"
            escape = tarfile.TarInfo(f"{top}/../../evil")
            escape.size = len(data)
            crafted.addfile(escape, io.BytesIO(data))
    resign(copy, keys, [archive.name])
    with pytest.raises(ReleaseCheckError, match=rf"{archive.name}: unsafe member"):
        verify_release(copy, (keys / "minisign.pub").read_text())


def test_verify_refuses_members_other_than_the_signed_ones(copy: Path, keys: Path) -> None:
    # A well-formed archive with other bytes for the binary, re-signed: the
    # manifest's signed member list (sizes, digests) no longer matches.
    archive = copy / f"tally-{HOST}.tar.xz"
    with tarfile.open(archive) as original:
        members = [(m, original.extractfile(m).read() if m.isfile() else None) for m in original.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(archive, "w:xz") as crafted:
        for info, data in members:
            if data is not None and info.name.endswith("/tally"):
                data = data + b"\0"
                info.size = len(data)
            crafted.addfile(info, io.BytesIO(data) if data is not None else None)
    resign(copy, keys, [archive.name])
    with pytest.raises(ReleaseCheckError, match="members differ from the signed manifest"):
        verify_release(copy, (keys / "minisign.pub").read_text())


def test_keygen_protects_existing_keys_and_release_folders(keys: Path, release: Path) -> None:
    again = run_invoke("keygen", "--out-dir", str(keys))
    assert again.returncode == 2 and "already exists" in again.stderr
    into_release = run_invoke("keygen", "--out-dir", str(release))
    assert into_release.returncode == 2 and "is a release folder" in into_release.stderr


def test_password_protected_keys_are_refused_clearly(keys: Path) -> None:
    lines = (keys / "minisign.key").read_text().splitlines()
    data = bytearray(base64.b64decode(lines[1]))
    data[2:4] = b"Sc"
    with pytest.raises(SignatureError, match="password-protected"):
        parse_secret_key(f"{lines[0]}\n{base64.b64encode(bytes(data)).decode()}\n")


def test_sign_from_the_environment_and_minisign_checks_it(keys: Path, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("release notes\n")
    env = {"TOOLCHAIN_SECRET_KEY": (keys / "minisign.key").read_text()}
    result = run_invoke("sign", "--path", str(target), env=env)
    assert result.returncode == 0, result.stderr
    assert env["TOOLCHAIN_SECRET_KEY"].splitlines()[1] not in result.stdout + result.stderr
    check = subprocess.run(["minisign", "-Vm", str(target), "-p", str(keys / "minisign.pub")], capture_output=True)
    assert check.returncode == 0


def test_archives_are_reproducible_from_a_clean_build(tmp_path: Path) -> None:
    # Two clean builds in two target folders give the same archive bytes.
    digests = []
    for name in ("a", "b"):
        env = {"CARGO_TARGET_DIR": str(tmp_path / f"target-{name}"), "SOURCE_DATE_EPOCH": "1700000000"}
        out = tmp_path / f"out-{name}"
        result = run_invoke("build", "--out-dir", str(out), "--no-package", "--json", env=env)
        assert result.returncode == 0, result.stderr
        result = run_invoke("build", "--out-dir", str(out), "--json", env=env)
        document = json.loads(result.stdout)
        digests.append(document["targets"][0]["artifacts"][0]["sha256"])
    assert digests[0] == digests[1]


def test_a_release_folder_made_again_says_which_input_changed(
    copy: Path, keys: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Reused when nothing changed; else made again with the reason on one line: a file
    edited by hand, or an input (here the UTC day, which latest.json's dates follow)."""
    key = parse_secret_key((keys / "minisign.key").read_text())

    def package() -> str:
        capfd.readouterr()
        package_release(copy, key, "https://downloads.example/tally/0.1.0", REPO_ROOT, **demo_contract(), reuse=True)
        return capfd.readouterr().err

    # The release fixture may have been made on the day before.
    first = package()
    assert f"release folder {copy} unchanged" in (package() if "made again: day changed" in first else first)
    installer = copy / "tally-installer.sh"
    installer.write_text(installer.read_text() + "# edited\n")
    assert f"release folder {copy} made again: tally-installer.sh changed since it was written" in package()
    assert f"release folder {copy} unchanged" in package()
    (copy / "tally-installer.sh.sha256").unlink()
    assert f"release folder {copy} made again: tally-installer.sh.sha256 is missing" in package()
    assert f"release folder {copy} unchanged" in package()

    class Tomorrow(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Tomorrow:
            moment = datetime.now(tz) + timedelta(days=1)
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(dated, "datetime", Tomorrow)
    assert f"release folder {copy} made again: day changed" in package()
    assert f"release folder {copy} unchanged" in package()
