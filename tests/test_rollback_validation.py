"""Rollback validation before publish, with real builds of the demo app at
two versions and a real schema change: 0.1.0 at schema level 1, 0.2.0 at
level 3 (built from the same source with TALLY_SCHEMA_LEVEL, as
tests/test_update.py does), the real updater and real SQLite files."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import demo_contract, run_invoke
from github_standin import GitHubStandIn
from test_publish import s3  # noqa: F401 - the S3 fixture (its endpoint is in conftest)
from test_update import build_version

from toolchain import REPO_ROOT
from toolchain.config.catalog import packaged
from toolchain.errors import RollbackValidationError
from toolchain.pipeline.validate_rollback import RollbackOptions, validate_rollback
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, package_release, parse_sums, verify_release
from toolchain.release.github import GitHubTarget
from toolchain.release.publish import publish
from toolchain.release.rollback_validation import VALIDATION_NAME, record_validation
from toolchain.release.s3 import S3Target
from toolchain.release.signing import SecretKey, generate

HOST = ("x86_64-unknown-linux-gnu",)
TOKEN = "ghp_standin_rollback_token"
REPO = "acme/tally"
SEED = (("migrate",), ("add", "apples", "5"), ("add", "pears"))
OPTIONS = RollbackOptions(("migrate", "--status"), "{APP}_FAIL_MIGRATION", SEED)


@dataclass(frozen=True)
class Releases:
    old: Path  # signed 0.1.0 release folder (schema level 1)
    new: Path  # signed 0.2.0 release folder (schema level 3), never validated
    key: SecretKey
    public: str
    public_file: Path
    secret_file: Path


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    root = tmp_path_factory.mktemp("versions")
    old = build_version(root, "0.1.0", "1", HOST)
    new = build_version(root, "0.2.0", "3", HOST)
    key = generate()
    for folder in (old, new):
        package_release(folder, key, "", REPO_ROOT, **demo_contract())
    (root / "k.pub").write_text(key.public_key().render())
    (root / "k.key").write_text(key.render())
    return Releases(old, new, key, key.public_key().render(), root / "k.pub", root / "k.key")


def copy_of(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def levels(folder: Path) -> list[int | None]:
    return [a["schema_level"] for a in json.loads((folder / MANIFEST_NAME).read_text())["apps"]]


def test_manifest_records_the_schema_level_the_app_reports(releases: Releases) -> None:
    assert levels(releases.old) == [1] and levels(releases.new) == [3]


def test_validation_rolls_back_a_failed_migration_and_is_signed_into_the_release(
    releases: Releases, tmp_path: Path
) -> None:
    folder = copy_of(releases.new, tmp_path / "new")
    report = validate_rollback(folder, str(releases.old), releases.public, releases.key, OPTIONS)
    assert report.passed and (report.previous_level, report.level) == (1, 3)
    checks = {c.name: c for c in report.checks}
    assert set(checks) == {"data made", "forced failure refused", "binary restored", "data restored", "clean update"}
    assert all(c.ok for c in checks.values()), checks
    assert "migrate" in checks["forced failure refused"].detail  # the failure came from the migration
    document = json.loads((folder / VALIDATION_NAME).read_text())
    jsonschema.validate(document, json.loads(packaged("schemas", "rollback-validation.schema.json").read_text()))
    jsonschema.validate(
        json.loads((folder / MANIFEST_NAME).read_text()),
        json.loads(packaged("schemas", "manifest.schema.json").read_text()),
    )
    assert document["result"] == "pass" and document["forced_failure"] == {"env": "TALLY_FAIL_MIGRATION", "value": "3"}
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert document["artifacts"] == {a["name"]: a["sha256"] for a in manifest["artifacts"]}
    assert document["previous"]["version"] == "0.1.0" and document["previous"]["schema_level"] == 1
    # Listed, in the manifest, and signed like the rest: the folder still verifies.
    assert VALIDATION_NAME in parse_sums(folder / SUMS_NAME)
    assert manifest["rollback_validation"]["result"] == "pass"
    assert VALIDATION_NAME in verify_release(folder, releases.public)
    (folder / VALIDATION_NAME).write_text((folder / VALIDATION_NAME).read_text().replace('"pass"', '"PASS"'))
    with pytest.raises(Exception, match="rollback-validation.json"):
        verify_release(folder, releases.public)


def test_a_migration_that_cannot_be_made_to_fail_fails_the_validation(releases: Releases, tmp_path: Path) -> None:
    folder = copy_of(releases.new, tmp_path / "new")
    ignored = replace(OPTIONS, fail_migration_env="{APP}_NOT_A_SWITCH")  # the app ignores it: nothing fails
    with pytest.raises(RollbackValidationError, match="forced failure refused") as caught:
        validate_rollback(folder, str(releases.old), releases.public, releases.key, ignored)
    assert caught.value.exit_code == 16
    assert json.loads((folder / VALIDATION_NAME).read_text())["result"] == "fail"
    verify_release(folder, releases.public)  # the failure is recorded and signed too


def github(server: GitHubStandIn) -> GitHubTarget:
    return GitHubTarget(REPO, api_url=server.url, uploads_url=server.url)


def test_publish_refuses_a_schema_change_without_a_passing_validation_of_these_artifacts(
    releases: Releases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    unvalidated = copy_of(releases.new, tmp_path / "unvalidated")
    with GitHubStandIn(TOKEN, REPO) as server:
        target = github(server)
        publish(releases.old, releases.public, github=target, s3=None)
        # The previous release is the latest on the publish target: 0.1.0 at level 1.
        with pytest.raises(RollbackValidationError, match=r"changes the schema level \(1 -> 3\).*no rollback valid"):
            publish(unvalidated, releases.public, github=target, s3=None)
        assert ("create", "v0.2.0") not in server.state.events  # refused before any upload
        validated = copy_of(releases.new, tmp_path / "validated")
        validate_rollback(validated, str(releases.old), releases.public, releases.key, OPTIONS)
        # A validation of other artifacts does not count (here: re-packaged, so other digests).
        repackaged = copy_of(releases.new, tmp_path / "repackaged")
        package_release(repackaged, releases.key, "https://example.invalid/", REPO_ROOT, **demo_contract())
        record_validation(repackaged, json.loads((validated / VALIDATION_NAME).read_text()), releases.key)
        verify_release(repackaged, releases.public)
        with pytest.raises(RollbackValidationError, match="covers other artifacts"):
            publish(repackaged, releases.public, github=target, s3=None)
        actions = publish(validated, releases.public, github=target, s3=None)
        assert {a.name for a in actions} >= {VALIDATION_NAME, f"{VALIDATION_NAME}.minisig"}


def test_publish_finds_the_previous_release_on_s3(
    releases: Releases,
    tmp_path: Path,
    s3: tuple[Any, S3Target],  # noqa: F811 - the fixture
) -> None:
    client, target = s3
    publish(releases.old, releases.public, github=None, s3=target)
    with pytest.raises(RollbackValidationError, match=r"\(1 -> 3\) and has no rollback validation"):
        publish(copy_of(releases.new, tmp_path / "unvalidated"), releases.public, github=None, s3=target)
    assert not client.list_objects_v2(Bucket=target.bucket, Prefix="downloads/tally/0.2.0/").get("Contents")
    validated = copy_of(releases.new, tmp_path / "validated")
    validate_rollback(validated, str(releases.old), releases.public, releases.key, OPTIONS)
    publish(validated, releases.public, github=None, s3=target)
    latest = json.loads(client.get_object(Bucket=target.bucket, Key="downloads/tally/latest.json")["Body"].read())
    assert latest["version"] == "0.2.0"


def test_same_schema_level_needs_no_validation(releases: Releases, tmp_path: Path) -> None:
    from toolchain.release.rollback_validation import AppRelease, require_validation

    same = AppRelease.from_manifest(json.loads((releases.new / MANIFEST_NAME).read_text()), "same")
    assert "unchanged" in require_validation(releases.new, same)
    assert require_validation(releases.new, None) == "no previous release"


def test_cli_refusal_is_one_line_with_its_exit_code(releases: Releases, tmp_path: Path) -> None:
    config = tmp_path / "toolchain.toml"
    with GitHubStandIn(TOKEN, REPO) as server:
        config.write_text(f'[github]\nrepository = "{REPO}"\napi-url = "{server.url}"\nuploads-url = "{server.url}"\n')
        env = {"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": TOKEN}
        refused = run_invoke("publish", "--out-dir", str(releases.new), "--public-key", str(releases.public_file),
                             "--previous", str(releases.old), env=env)  # fmt: skip
    assert refused.returncode == 16, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "validate-rollback" in refused.stderr
    assert "Traceback" not in refused.stderr and not server.state.releases
    missing = run_invoke("validate-rollback", "--out-dir", str(releases.new), "--public-key", str(releases.public_file))
    assert missing.returncode == 2 and "--from is required" in missing.stderr


def test_cli_validates_from_a_url(releases: Releases, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    folder = copy_of(releases.new, tmp_path / "new")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(releases.old.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{releases.old.name}"
        result = run_invoke("validate-rollback", "--from", url, "--out-dir", str(folder), "--public-key",
                            str(releases.public_file), "--secret-key", str(releases.secret_file), "--json")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] and document["schema_levels"] == [1, 3]
    assert json.loads((folder / VALIDATION_NAME).read_text())["previous"]["source"] == url
