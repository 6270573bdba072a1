"""The audit of published releases: a real signed release of the demo app,
published to a real S3 endpoint (moto's server on 127.0.0.1), to the GitHub
stand-in, or kept in a folder, then downloaded again and re-verified. Each
kind of tampering fails with its own reason."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import demo_contract, run_invoke
from github_standin import GitHubStandIn
from test_publish import s3  # noqa: F401 - the S3 fixture (its endpoint is in conftest)

from toolchain import REPO_ROOT
from toolchain.digest import sha256_file
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.audit import ReleaseAudit, audit
from toolchain.release.folder import MANIFEST_NAME, PROVENANCE_NAME, SUMS_NAME, package_release, parse_sums
from toolchain.release.github import GitHubClient, GitHubTarget
from toolchain.release.publish import publish
from toolchain.release.s3 import S3Target
from toolchain.release.signing import SecretKey, generate, sign_file

TOKEN = "ghp_standin_audit_token"
REPO = "acme/tally"
ARCHIVE = "tally-x86_64-unknown-linux-gnu.tar.xz"
INSTALLER = "tally-installer.sh"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SecretKey]:
    folder = tmp_path_factory.mktemp("audit") / "tally-0.1.0"
    build(BuildOptions(out_dir=folder))
    key = generate()
    package_release(folder, key, "", REPO_ROOT, **demo_contract())
    return folder, key


def reseal(folder: Path, key: SecretKey, *, fix_provenance: bool = True) -> None:
    """Re-derive digests, manifest, sums and signatures from the files as they
    are: what a release pipeline that signs whatever it is given would publish."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for artifact in manifest["artifacts"]:
        if artifact["kind"] != "provenance":
            artifact["sha256"] = sha256_file(folder / artifact["name"])
            artifact["size"] = (folder / artifact["name"]).stat().st_size
    if fix_provenance:
        statement = json.loads((folder / PROVENANCE_NAME).read_text())
        digests = {a["name"]: a["sha256"] for a in manifest["artifacts"]}
        for subject in statement["subject"]:
            subject["digest"]["sha256"] = digests[subject["name"]]
        (folder / PROVENANCE_NAME).write_text(json.dumps(statement, indent=2, sort_keys=True) + "\n")
    for artifact in manifest["artifacts"]:
        if artifact["kind"] == "provenance":
            artifact["sha256"] = sha256_file(folder / artifact["name"])
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    names = sorted(parse_sums(folder / SUMS_NAME))
    (folder / SUMS_NAME).write_text("".join(f"{sha256_file(folder / n)}  {n}\n" for n in names))
    for name in [*names, SUMS_NAME]:
        sign_file(folder / name, key, f"file:{name}")
    for name in names:
        single = folder / f"{name}.sha256"
        if single.is_file():
            single.write_text(f"{sha256_file(folder / name)}  {name}\n")


def tamper_archive(folder: Path, key: SecretKey) -> None:
    with (folder / ARCHIVE).open("ab") as handle:
        handle.write(b"\0")


def tamper_signature(folder: Path, key: SecretKey) -> None:
    # A real signature by the right key, but of another file.
    shutil.copyfile(folder / f"{PROVENANCE_NAME}.minisig", folder / f"{MANIFEST_NAME}.minisig")


def tamper_provenance(folder: Path, key: SecretKey) -> None:
    statement = json.loads((folder / PROVENANCE_NAME).read_text())
    for subject in statement["subject"]:
        if subject["name"] == ARCHIVE:
            subject["digest"]["sha256"] = "0" * 64
    (folder / PROVENANCE_NAME).write_text(json.dumps(statement, indent=2, sort_keys=True) + "\n")
    reseal(folder, key, fix_provenance=False)


def tamper_installer(folder: Path, key: SecretKey) -> None:
    installer = folder / INSTALLER
    digest = sha256_file(folder / ARCHIVE)
    assert digest in installer.read_text()
    installer.write_text(installer.read_text().replace(digest, "f" * 64))
    reseal(folder, key)


def other_key(folder: Path, key: SecretKey) -> None:
    reseal(folder, generate())


TAMPERING: dict[str, tuple[Callable[[Path, SecretKey], None], str, str]] = {
    # kind: (how, the check that must fail, its reason)
    "archive bytes": (tamper_archive, "digests", f"{ARCHIVE}: SHA-256 does not match"),
    "signature": (tamper_signature, "signatures", "manifest.json: signature does not match its content"),
    "provenance subject": (tamper_provenance, "provenance", f"{ARCHIVE}: the provenance subject"),
    "installer's baked digest": (tamper_installer, "installers", f"{INSTALLER} bakes a SHA-256 for {ARCHIVE}"),
    "another key": (other_key, "key", "not the configured"),
}


def failed(result: ReleaseAudit) -> dict[str, str]:
    return {c.check: c.detail for c in result.checks if not c.ok}


def test_a_clean_release_passes(release: tuple[Path, SecretKey]) -> None:
    folder, key = release
    [result] = audit(key.public_key().render(), folder=folder)
    assert result.ok and result.release == "tally@0.1.0", failed(result)
    assert [c.check for c in result.checks] == ["key", "digests", "signatures", "provenance", "installers", "verify"]


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_each_kind_of_tampering_fails_with_its_reason(
    kind: str, release: tuple[Path, SecretKey], tmp_path: Path
) -> None:
    folder, key = release
    how, check, reason = TAMPERING[kind]
    copy = shutil.copytree(folder, tmp_path / folder.name)
    how(copy, key)
    clean = shutil.copytree(folder, tmp_path / "clean" / folder.name)
    results = audit(key.public_key().render(), folder=tmp_path)
    by_source = {Path(r.source): r for r in results}
    assert by_source[clean].ok  # the untouched release beside it still passes
    problems = failed(by_source[copy])
    assert check in problems and reason in problems[check], problems
    if kind in ("provenance subject", "installer's baked digest", "another key"):
        assert "digests" not in problems  # a consistent, re-signed release: only its own check catches it


def test_s3_releases_are_downloaded_again_and_checked(
    release: tuple[Path, SecretKey],
    s3: tuple[Any, S3Target],  # noqa: F811 - the fixture
) -> None:
    folder, key = release
    client, target = s3
    publish(folder, key.public_key().render(), github=None, s3=target)
    [clean] = audit(key.public_key().render(), s3=target)
    assert clean.ok and clean.source.startswith(f"s3://{target.bucket}/downloads/tally/0.1.0"), failed(clean)
    tampered = (folder / ARCHIVE).read_bytes()[:-1] + b"\1"
    client.put_object(Bucket=target.bucket, Key=target.key("tally", "0.1.0", ARCHIVE), Body=tampered)
    [result] = audit(key.public_key().render(), s3=target)
    assert "SHA-256 does not match" in failed(result)["digests"]


def test_github_releases_are_downloaded_again_and_checked(release: tuple[Path, SecretKey], tmp_path: Path) -> None:
    folder, key = release
    with GitHubStandIn(TOKEN, REPO) as server:
        target = GitHubTarget(REPO, api_url=server.url, uploads_url=server.url, token_env="AUDIT_TOKEN")
        from toolchain.release.publish import publish_github, release_info

        publish_github(release_info(folder, key.public_key().render()), target, replace=False, notes="", token=TOKEN)
        client = GitHubClient(server.url, server.url, REPO, TOKEN)
        [clean] = audit(key.public_key().render(), github=client)
        assert clean.ok and clean.source == f"github:{REPO}@v0.1.0", failed(clean)
        asset = next(a for a in server.state.assets.values() if a["name"] == f"{SUMS_NAME}.minisig")
        sums = shutil.copyfile(folder / SUMS_NAME, tmp_path / SUMS_NAME)
        # A signature of the same file by another key, swapped in on the server.
        server.state.blobs[asset["id"]] = sign_file(sums, generate(), "file:sha256.sum").read_bytes()
        [result] = audit(key.public_key().render(), github=client)
    assert "not the configured" in failed(result)["key"]


def test_cli_table_json_and_exit_code(release: tuple[Path, SecretKey], tmp_path: Path) -> None:
    folder, key = release
    public = tmp_path / "k.pub"
    public.write_text(key.public_key().render())
    ok = run_invoke("audit", "--folder", str(folder), "--public-key", str(public), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    table = run_invoke("audit", "--folder", str(folder), "--public-key", str(public))
    assert table.returncode == 0 and "installers" in table.stdout + table.stderr
    copy = shutil.copytree(folder, tmp_path / "copy")
    tamper_archive(copy, key)
    bad = run_invoke("audit", "--folder", str(copy), "--public-key", str(public), "--json")
    assert bad.returncode == 17, bad.stderr
    assert json.loads(bad.stdout)["ok"] is False
    assert len(bad.stderr.strip().splitlines()) == 1 and "failed the audit" in bad.stderr


def test_ci_workflow_schedules_the_audit_naming_secrets(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "workflows" / "release.yml"
    assert run_invoke("ci.workflow", "--path", str(path)).returncode == 0
    audit_path = path.with_name("audit.yml")
    workflow = yaml.safe_load(audit_path.read_text())
    assert workflow[True]["schedule"][0]["cron"]  # YAML 1.1 reads the key `on` as true
    steps = workflow["jobs"]["audit"]["steps"]
    runs = [s for s in steps if "invoke audit" in s.get("run", "")]
    assert runs and all(re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", v) for v in runs[0]["env"].values())
    assert "schedule" not in yaml.safe_load(path.read_text())[True]  # the release pipeline is not scheduled
    lint = subprocess.run(["actionlint", str(path), str(audit_path)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
