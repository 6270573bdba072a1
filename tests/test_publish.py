"""Publishing: the guardrail, GitHub Releases (against a strict local
stand-in, since GitHub cannot be reached from here: see github_standin.py)
and S3 (against a real S3 endpoint: moto's server on 127.0.0.1)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import demo_contract, run_invoke
from github_standin import GitHubStandIn

from toolchain import REPO_ROOT
from toolchain.config.settings import load_settings
from toolchain.errors import PublishError, ReleaseCheckError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.github import GitHubClient, GitHubTarget
from toolchain.release.publish import publish, release_info, upload_s3_object
from toolchain.release.s3 import S3Target
from toolchain.release.signing import generate
from toolchain.release.version import is_prerelease

TOKEN = "ghp_standin_secret_token_0123456789"
REPO = "acme/tally"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A signed release folder, its public key text, and the key file."""
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    key = generate()
    package_release(folder, key, "", REPO_ROOT, **demo_contract())
    key_file = folder.parent / "release.pub"
    key_file.write_text(key.public_key().render())
    return folder, key.public_key().render(), key_file


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(TOKEN, REPO) as server:
        yield server


def github_settings(server: GitHubStandIn) -> GitHubTarget:
    return GitHubTarget(REPO, api_url=server.url, uploads_url=server.url, token_env="STANDIN_TOKEN")


def test_guardrail_refuses_before_any_request(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, key, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "provenance.intoto.json.minisig").unlink()
    with pytest.raises(ReleaseCheckError, match="provenance.intoto.json has no signature"):
        publish(broken, key, github=github_settings(standin), s3=None)
    archive = next(broken.glob("*.tar.xz"))
    archive.write_bytes(archive.read_bytes()[::-1])
    with pytest.raises(ReleaseCheckError, match="SHA-256 does not match"):
        publish(broken, key, github=github_settings(standin), s3=None)
    assert standin.state.events == [] and standin.state.uploads == 0


def test_publish_uploads_everything_then_publishes_last(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, key, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    actions = publish(folder, key, github=github_settings(standin), s3=None, repo=REPO_ROOT / "demo")
    names = {a.name for a in actions}
    assert {
        "sha256.sum",
        "sha256.sum.minisig",
        "manifest.json",
        "provenance.intoto.json",
        "tally-installer.sh",
    } <= names
    assert any(n.endswith(".tar.xz.minisig") for n in names) and any(n.endswith(".tar.xz.sha256") for n in names)
    events = standin.state.events
    assert events[0] == ("create", "v0.1.0") and events[-1] == ("publish", "v0.1.0")
    assert [e for e in events if e[0] == "upload"] == [("upload", a.name) for a in actions]
    (release,) = standin.state.releases.values()
    assert release["draft"] is False and release["prerelease"] is False
    assert "First release" in release["body"], "release notes come from CHANGELOG.md"
    uploaded = {a["name"]: a["digest"] for a in standin.state.assets.values()}
    for name, digest in uploaded.items():
        assert digest == "sha256:" + hashlib.sha256((folder / name).read_bytes()).hexdigest()


def test_rerun_after_a_failure_mid_upload_finishes_the_job(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, key, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    standin.state.fail_upload_number = 3
    with pytest.raises(PublishError, match="GitHub refused to upload .*: 502"):
        publish(folder, key, github=github_settings(standin), s3=None)
    (release,) = standin.state.releases.values()
    assert release["draft"] is True, "a half-uploaded release is never public"
    uploaded_first = [name for kind, name in standin.state.events if kind == "upload"]
    assert len(uploaded_first) == 2
    standin.state.fail_upload_number = None
    actions = publish(folder, key, github=github_settings(standin), s3=None)
    skipped = [a.name for a in actions if a.action == "skip"]
    assert sorted(skipped) == sorted(uploaded_first), "what already landed is not uploaded again"
    assert any(a.action == "replace" for a in actions), "the broken starter asset is redone"
    assert standin.state.events[-1] == ("publish", "v0.1.0")
    assert all(a["state"] == "uploaded" for a in standin.state.assets.values())
    third = publish(folder, key, github=github_settings(standin), s3=None)
    assert {a.action for a in third} == {"skip"}


def test_a_different_digest_needs_replace(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, key, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    publish(folder, key, github=github_settings(standin), s3=None)
    # The same version packaged again with other timestamps: other archive bytes.
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    build(BuildOptions(out_dir=other))
    secret = generate()
    package_release(other, secret, "", REPO_ROOT, **demo_contract())
    other_key = secret.public_key().render()
    before = len(standin.state.events)
    with pytest.raises(PublishError, match="already has .* with a different digest"):
        publish(other, other_key, github=github_settings(standin), s3=None)
    assert not [e for e in standin.state.events[before:] if e[0] in ("delete", "upload")]
    actions = publish(other, other_key, github=github_settings(standin), s3=None, replace=True)
    assert any(a.action == "replace" for a in actions)


def test_bad_token_is_a_clear_error_and_never_printed(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path
) -> None:
    folder, _, key_file = signed
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[github]\nrepository = "{REPO}"\napi-url = "{standin.url}"\nuploads-url = "{standin.url}"\n')
    env = {"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": "wrong-" + TOKEN}
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--github", env=env)
    assert result.returncode == 15
    assert "GitHub refused to list releases: 401 Bad credentials" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    missing = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--github",
                         env={"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": ""})  # fmt: skip
    assert missing.returncode == 2 and "$GITHUB_TOKEN is not set" in missing.stderr


def test_cli_publish_to_the_standin(signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path) -> None:
    folder, _, key_file = signed
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[github]\nrepository = "{REPO}"\napi-url = "{standin.url}"\nuploads-url = "{standin.url}"\n')
    env = {"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": TOKEN}
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert {a["destination"] for a in json.loads(result.stdout)["actions"]} == {"github"}


def test_prerelease_follows_the_version() -> None:
    assert is_prerelease("1.0.0-rc.1") and is_prerelease("0.3.0-alpha")
    assert not is_prerelease("1.0.0") and not is_prerelease("1.0.0+build.5")


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> tuple[Any, S3Target]:
    import boto3

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    bucket = "releases-" + request.node.name.lower().replace("_", "-")[:40]
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    settings = msgspec.structs.replace(
        load_settings().s3, bucket=bucket, prefix="downloads", endpoint_url=s3_endpoint, region="us-east-1"
    )
    return client, S3Target.from_settings(settings)


def test_s3_layout_checksums_and_latest_pointer(signed: tuple[Path, str, Path], s3: tuple[Any, S3Target]) -> None:
    from toolchain.release import publish as publish_module

    folder, key, _ = signed
    client, settings = s3
    sent: dict[str, str] = {}

    def record_checksum(request: Any, **kwargs: Any) -> None:
        sent[request.url.rsplit("/", 1)[-1]] = request.headers.get("x-amz-checksum-sha256", b"").decode()

    # moto accepts the header but does not check it; real S3 rejects a mismatch.
    # What is proven here is that every upload carries the file's true SHA-256.
    client.meta.events.register("before-send.s3.PutObject", record_checksum)
    actions = publish_module.publish_s3(release_info(folder, key), settings, client=client)
    assert actions[-1].name == "latest.json"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=settings.bucket)["Contents"]}
    info = release_info(folder, key)
    pointer = {"downloads/tally/latest.json", "downloads/tally/latest.json.minisig"}
    assert keys == {f"downloads/tally/0.1.0/{p.name}" for p in info.files} | pointer
    archive = next(p for p in info.files if p.name.endswith(".tar.xz"))
    for path in info.files:
        assert sent[path.name] == base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    head = client.head_object(Bucket=settings.bucket, Key=f"downloads/tally/0.1.0/{archive.name}")
    assert head["Metadata"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    # The pointer is the release folder's own signed latest.json (tests/test_update_channel.py reads it).
    for name in ("latest.json", "latest.json.minisig"):
        body = client.get_object(Bucket=settings.bucket, Key=f"downloads/tally/{name}")["Body"].read()
        assert body == (folder / name).read_bytes()
    assert json.loads((folder / "latest.json").read_text())["version"] == "0.1.0"
    again = publish(folder, key, github=None, s3=settings)
    assert {a.action for a in again if a.name != "latest.json"} == {"skip"}


def test_s3_multipart_for_large_files(s3: tuple[Any, S3Target], tmp_path: Path) -> None:
    client, settings = s3
    big = tmp_path / "big.tar.xz"
    big.write_bytes(bytes(range(256)) * (11 * 4096))  # 11 MiB
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    settings = dataclasses.replace(settings, multipart_threshold=5 << 20, multipart_chunk=5 << 20)
    upload_s3_object(client, settings, "big/big.tar.xz", big, digest)
    head = client.head_object(Bucket=settings.bucket, Key="big/big.tar.xz", PartNumber=1)
    assert head["PartsCount"] == 3
    body = client.get_object(Bucket=settings.bucket, Key="big/big.tar.xz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_dry_run_plan_uploads_nothing(signed: tuple[Path, str, Path], tmp_path: Path) -> None:
    signed_folder, _, key_file = signed
    folder = tmp_path / "release"
    shutil.copytree(signed_folder, folder)
    from toolchain.release.keylist import KeyList, write_keylist

    root = generate()
    write_keylist(folder, KeyList(1, (root.public_key(),), 1, (), ()), [root])
    config = tmp_path / "toolchain.toml"
    config.write_text('[github]\nrepository = "acme/tally"\n[s3]\nbucket = "acme-releases"\n')
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--dry-run", "--json",
                        env={"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": ""})  # fmt: skip
    assert result.returncode == 0, result.stderr
    actions = json.loads(result.stdout)["actions"]
    assert {a["action"] for a in actions} == {"would-upload"}
    assert "acme/tally@v0.1.0" in {a["where"] for a in actions}
    assert "s3://acme-releases/releases/tally/latest.json" in {a["where"] for a in actions}
    # The key lists too: flat on GitHub, in keys/ beside S3's pointer.
    assert ("github", "keys-1.json") in {(a["destination"], a["name"]) for a in actions}
    assert "s3://acme-releases/releases/tally/keys/1.json" in {a["where"] for a in actions}


# --- S3 hardening: forward-only latest.json, no silent overwrite, clean failures ---


def relabel(folder: Path, version: str, dest: Path) -> tuple[Path, str]:
    """A copy of a signed release folder that says it is `version`, signed with
    a fresh key (so its signatures differ from the original's): a real release
    folder that passes the guardrail, without another cargo build."""
    shutil.copytree(folder, dest)
    record_path = dest / "build-record.json"
    record = json.loads(record_path.read_text())
    for entry in record["targets"].values():
        for binary in entry["binaries"]:
            binary["version"] = version
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    secret = generate()
    package_release(dest, secret, "", REPO_ROOT, **demo_contract())
    return dest, secret.public_key().render()


def latest_version(client: Any, target: S3Target) -> str:
    body = client.get_object(Bucket=target.bucket, Key=target.latest_key("tally"))["Body"].read()
    return str(json.loads(body)["version"])


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_semver_order_of_latest() -> None:
    from toolchain.release.version import semver_key

    ordered = [
        *("0.1.0", "0.2.0-rc.1", "0.2.0", "0.9.0", "0.10.0"),
        *("1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"),
        *("1.0.0-rc.1", "1.0.0", "2.0.0"),
    ]
    assert sorted(reversed(ordered), key=semver_key) == ordered
    assert semver_key("1.0.0+build.7") == semver_key("1.0.0")
    with pytest.raises(ValueError):
        semver_key("1.0")


def test_s3_latest_only_moves_forward(
    signed: tuple[Path, str, Path],
    s3: tuple[Any, S3Target],
    tmp_path: Path,
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from toolchain.release.publish import publish_s3

    folder, _, _ = signed
    client, target = s3
    releases = {v: relabel(folder, v, tmp_path / v) for v in ("0.2.0", "0.1.0", "0.2.0-rc.1", "0.10.0")}
    publish(releases["0.2.0"][0], releases["0.2.0"][1], github=None, s3=target)
    assert latest_version(client, target) == "0.2.0"
    capsys.readouterr()
    actions = publish(releases["0.1.0"][0], releases["0.1.0"][1], github=None, s3=target)
    assert latest_version(client, target) == "0.2.0", "an older version never moves latest.json back"
    pointer = target.url(target.latest_key("tally"))  # the release's own latest.json goes to 0.1.0/ as well
    assert [a.action for a in actions if a.where == pointer] == ["keep"]
    assert client.head_object(Bucket=target.bucket, Key=target.key("tally", "0.1.0", "manifest.json"))
    said = [line for line in capsys.readouterr().err.splitlines() if pointer in line]
    assert len(said) == 1 and "0.2.0" in said[0] and "--force-latest" in said[0], said
    publish_s3(release_info(*releases["0.2.0-rc.1"]), target)
    assert latest_version(client, target) == "0.2.0", "a pre-release orders below its release"
    publish_s3(release_info(*releases["0.10.0"]), target)
    assert latest_version(client, target) == "0.10.0", "SemVer order, not string order"
    # --force-latest, through the real CLI: moves it back on purpose.
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[s3]\nbucket = "{target.bucket}"\nprefix = "{target.prefix}"\nendpoint-url = "{s3_endpoint}"\n')
    key_file = tmp_path / "0.1.0.pub"
    key_file.write_text(releases["0.1.0"][1])
    env = {"TOOLCHAIN_CONFIG": str(config)}
    args = ("publish", "--out-dir", str(releases["0.1.0"][0]), "--public-key", str(key_file), "--s3", "--json")
    result = run_invoke(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert latest_version(client, target) == "0.10.0"
    forced = run_invoke(*args, "--force-latest", env=env)
    assert forced.returncode == 0, forced.stderr
    assert latest_version(client, target) == "0.1.0"
    assert {a["action"] for a in json.loads(forced.stdout)["actions"] if a["where"] == pointer} == {"upload"}


def test_force_latest_is_an_option_of_publish_and_release() -> None:
    for name in ("publish", "release"):
        result = run_invoke(name, "--help")
        assert result.returncode == 0 and "--force-latest" in result.stdout, (name, result.stdout)


def test_s3_refuses_other_bytes_for_a_published_version_before_uploading_anything(
    signed: tuple[Path, str, Path], s3: tuple[Any, S3Target], tmp_path: Path
) -> None:
    folder, _, _ = signed
    client, target = s3
    first, first_key = relabel(folder, "0.2.0", tmp_path / "first")
    publish(first, first_key, github=None, s3=target)
    # A file missing from the store sorts first: a publisher that checks as it
    # goes would upload it before meeting the first conflicting object.
    names = sorted(p.name for p in release_info(first, first_key).files)
    missing = target.key("tally", "0.2.0", names[0])
    client.delete_object(Bucket=target.bucket, Key=missing)
    before = objects(client, target.bucket)
    # The same version signed again with another key: other .minisig bytes.
    second, second_key = relabel(folder, "0.2.0", tmp_path / "second")
    with pytest.raises(PublishError, match=r"already holds .*\.minisig with a different digest") as refused:
        publish(second, second_key, github=None, s3=target)
    assert refused.value.exit_code == 15 and "--replace" in str(refused.value)
    assert objects(client, target.bucket) == before, "nothing of the release was uploaded or changed"
    actions = publish(second, second_key, github=None, s3=target, replace=True)
    by_action = {a.action for a in actions}
    assert {"replace", "upload", "skip"} <= by_action, actions
    after = objects(client, target.bucket)
    for path in release_info(second, second_key).files:
        assert after[target.key("tally", "0.2.0", path.name)] == path.read_bytes()


def test_s3_managed_transfer_uploads_in_parts(s3: tuple[Any, S3Target], tmp_path: Path) -> None:
    client, target = s3
    big = tmp_path / "big.tar.xz"
    big.write_bytes(bytes(range(256)) * (11 * 4096))  # 11 MiB
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    # 1 MiB is below S3's 5 MiB part minimum: the managed transfer raises it to 5 MiB.
    target = dataclasses.replace(target, multipart_threshold=5 << 20, multipart_chunk=1 << 20)
    upload_s3_object(client, target, "big/big.tar.xz", big, digest)
    head = client.head_object(Bucket=target.bucket, Key="big/big.tar.xz", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert head["Metadata"]["sha256"] == digest and head.get("ChecksumSHA256")
    assert client.head_object(Bucket=target.bucket, Key="big/big.tar.xz", PartNumber=1)["PartsCount"] == 3
    body = client.get_object(Bucket=target.bucket, Key="big/big.tar.xz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_s3_failure_midway_leaves_no_pointer_and_no_incomplete_uploads(
    signed: tuple[Path, str, Path], s3: tuple[Any, S3Target], tmp_path: Path
) -> None:
    from toolchain.release.publish import publish_s3

    folder, key, _ = signed
    client, target = s3
    copy = tmp_path / "release"
    shutil.copytree(folder, copy)
    info = release_info(copy, key)
    target = dataclasses.replace(target, multipart_threshold=1)  # every file in parts
    started: list[str] = []

    def third_file_disappears(parsed: dict[str, Any], **kwargs: Any) -> None:
        # A real failure: the file is gone from the release folder once its
        # multipart upload exists, so its parts cannot be read.
        started.append(parsed["Key"])
        if len(started) == 3:
            (copy / parsed["Key"].rsplit("/", 1)[-1]).unlink()

    client.meta.events.register("after-call.s3.CreateMultipartUpload", third_file_disappears)
    with pytest.raises(PublishError) as failed:
        publish_s3(info, target, client=client)
    assert failed.value.exit_code == 15 and "\n" not in str(failed.value)
    assert started[2].rsplit("/", 1)[-1] in str(failed.value), "the message names the file"
    keys = set(objects(client, target.bucket))
    assert keys == set(started[:2]), "what finished is there, nothing else"
    assert target.latest_key("tally") not in keys
    assert client.list_multipart_uploads(Bucket=target.bucket).get("Uploads", []) == []


def test_s3_cleanup_aborts_this_runs_unfinished_uploads_only(s3: tuple[Any, S3Target]) -> None:
    """The second line behind the managed transfer's own abort: after a failure
    the publisher lists the release prefix and aborts the uploads it started."""
    from toolchain.release.publish import _abort_uploads

    client, target = s3
    prefix = target.release_prefix("tally", "0.1.0")
    ours = client.create_multipart_upload(Bucket=target.bucket, Key=f"{prefix}/a.tar.xz")["UploadId"]
    theirs = client.create_multipart_upload(Bucket=target.bucket, Key=f"{prefix}/b.tar.xz")["UploadId"]
    elsewhere = client.create_multipart_upload(Bucket=target.bucket, Key="other/a.tar.xz")["UploadId"]
    _abort_uploads(client, target, prefix, {ours, elsewhere})
    left = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=target.bucket).get("Uploads", [])}
    assert left == {theirs, elsewhere}, "only this run's uploads, only under the release prefix"


def test_s3_missing_bucket_is_a_clear_client_error(
    signed: tuple[Path, str, Path], s3: tuple[Any, S3Target], s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3
    from botocore.exceptions import ClientError

    from toolchain.release.publish import publish_s3

    folder, key, key_file = signed
    client, target = s3
    missing = dataclasses.replace(target, bucket="no-such-bucket-here")
    with pytest.raises(PublishError) as failed:
        publish_s3(release_info(folder, key), missing)
    assert isinstance(failed.value.__cause__, ClientError), "the real botocore ClientError path"
    assert failed.value.exit_code == 15
    assert "'no-such-bucket-here'" in str(failed.value) and "create it or fix [s3] bucket" in str(failed.value)

    # The bucket goes away mid-publish: the managed transfer's error names it too.
    other = boto3.client("s3", endpoint_url=s3_endpoint)

    def bucket_goes_away(**kwargs: Any) -> None:
        for item in other.list_objects_v2(Bucket=target.bucket).get("Contents", []):
            other.delete_object(Bucket=target.bucket, Key=item["Key"])
        other.delete_bucket(Bucket=target.bucket)

    client.meta.events.register("after-call.s3.PutObject", bucket_goes_away)
    with pytest.raises(
        PublishError, match=rf"S3 bucket '{target.bucket}' does not exist; create it or fix \[s3\] bucket"
    ):
        publish_s3(release_info(folder, key), target, client=client)

    config = tmp_path / "toolchain.toml"
    config.write_text(f'[s3]\nbucket = "no-such-bucket-here"\nendpoint-url = "{s3_endpoint}"\n')
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--s3",
                        env={"TOOLCHAIN_CONFIG": str(config)})  # fmt: skip
    assert result.returncode == 15, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-bucket-here" in errors[0] and "[s3] bucket" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_s3_missing_credentials_say_what_to_set(
    signed: tuple[Path, str, Path], s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, key_file = signed
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[s3]\nbucket = "releases"\nendpoint-url = "{s3_endpoint}"\nregion = "us-east-1"\n')
    nowhere = str(tmp_path / "none")
    env = {"TOOLCHAIN_CONFIG": str(config), "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_CONFIG_FILE": nowhere}  # fmt: skip
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--s3", env=env)
    assert result.returncode == 15, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needed in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        assert needed in errors[0], errors[0]
    unknown = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--s3",
                         env={**env, "AWS_PROFILE": "nosuchprofile"})  # fmt: skip
    assert unknown.returncode == 15 and "Traceback" not in unknown.stderr, unknown.stderr
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'nosuchprofile'" in errors[0] and "AWS_PROFILE" in errors[0], unknown.stderr


def test_s3_endpoint_url_that_is_not_a_url_is_a_config_error(signed: tuple[Path, str, Path], tmp_path: Path) -> None:
    folder, _, key_file = signed
    config = tmp_path / "toolchain.toml"
    config.write_text('[s3]\nbucket = "releases"\nendpoint-url = "not a url"\n')
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--s3",
                        env={"TOOLCHAIN_CONFIG": str(config)})  # fmt: skip
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "[s3] endpoint-url" in errors[0] and "not a url" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    # Read with the settings, so even a dry run (which makes no client) says so.
    plan_only = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--s3", "--dry-run",
                           env={"TOOLCHAIN_CONFIG": str(config)})  # fmt: skip
    assert plan_only.returncode == 3 and "[s3] endpoint-url" in plan_only.stderr, plan_only.stderr
    # And where the client is made, for a target built by hand.
    from toolchain.errors import ConfigError
    from toolchain.release.s3 import s3_client

    with pytest.raises(ConfigError, match=r"\[s3\] endpoint-url 'not a url'") as refused:
        s3_client(S3Target("releases", endpoint_url="not a url"))
    assert refused.value.exit_code == 3


def test_keys_and_tags_are_derived_in_one_place(
    signed: tuple[Path, str, Path],
    s3: tuple[Any, S3Target],
    standin: GitHubStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolchain.errors import ConfigError
    from toolchain.release.publish import plan, publish_s3

    s3_settings = load_settings().s3
    target = S3Target.from_settings(msgspec.structs.replace(s3_settings, bucket="b", prefix="/downloads/"))
    assert target.key("tally", "0.1.0", "a.tar.xz") == "downloads/tally/0.1.0/a.tar.xz"
    assert target.latest_key("tally") == "downloads/tally/latest.json"
    bare = S3Target.from_settings(msgspec.structs.replace(s3_settings, bucket="b", prefix=""))
    assert (
        bare.key("tally", "0.1.0", "a.tar.xz") == "tally/0.1.0/a.tar.xz"
        and bare.latest_key("tally") == "tally/latest.json"
    )
    github_table = msgspec.structs.replace(load_settings().github, repository=REPO)
    github = GitHubTarget.from_settings(msgspec.structs.replace(github_table, tag_template="{app}-v{version}"))
    assert github.tag("0.1.0", "tally") == "tally-v0.1.0"
    with pytest.raises(ConfigError, match=r"\[github\] tag-template"):
        GitHubTarget.from_settings(msgspec.structs.replace(github_table, tag_template="v{semver}"))
    # The dry-run plan names exactly the objects and the tag a real publish uses.
    folder, key, _ = signed
    client, s3_target = s3
    info = release_info(folder, key)
    github = dataclasses.replace(github_settings(standin), tag_template="{app}-v{version}")
    planned = plan(info, github, s3_target)
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    done = publish(folder, key, github=github, s3=None) + publish_s3(info, s3_target, client=client)
    assert {(a.destination, a.name, a.where) for a in planned} == {(a.destination, a.name, a.where) for a in done}
    assert standin.state.events[0] == ("create", "tally-v0.1.0")


def github_latest(server: GitHubStandIn, name: str = "manifest.json") -> str:
    """The version GitHub's public …/releases/latest/download/ serves (as installers and updaters read it)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.url}/{REPO}/releases/latest/download/{name}", timeout=30) as response:
            return str(json.loads(response.read())["apps"][0]["version"])
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"


def test_github_latest_only_moves_forward(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub makes every newly published release its latest, which is the channel of
    …/releases/latest/download/latest.json: a backport published after a newer release would move
    every installed copy's channel back. publish says make_latest "false" for it, and --force-latest
    (a withdrawal) makes an older published release the latest on purpose."""
    folder, _, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    target = github_settings(standin)
    releases = {v: relabel(folder, v, tmp_path / v) for v in ("0.2.0", "0.1.1", "0.3.0-rc.1")}
    assert github_latest(standin) == "HTTP 404"
    publish(*releases["0.2.0"], github=target, s3=None)
    assert github_latest(standin) == "0.2.0"
    actions = publish(*releases["0.1.1"], github=target, s3=None)
    assert github_latest(standin) == "0.2.0", "a backport does not become GitHub's latest release"
    assert [a.action for a in actions if a.name == "latest"] == ["keep"]
    publish(*releases["0.3.0-rc.1"], github=target, s3=None)
    assert github_latest(standin) == "0.2.0", "a pre-release is never the latest"
    # The published 0.1.1's own download folder still serves it.
    with urllib_get(f"{standin.url}/{REPO}/releases/download/v0.1.1/manifest.json") as response:
        assert json.loads(response.read())["apps"][0]["version"] == "0.1.1"
    forced = publish(*releases["0.1.1"], github=target, s3=None, force_latest=True)
    assert github_latest(standin) == "0.1.1" and [a.action for a in forced if a.name == "latest"] == ["upload"]
    # A latest release whose tag names no SemVer version (made by hand) has no order to keep.
    client = GitHubClient(standin.url, standin.url, REPO, TOKEN)
    made = client.create_release("vnightly", "nightly", "", prerelease=False)
    client.update_release(int(made["id"]), draft=False)
    assert (client.latest_release() or {}).get("tag_name") == "vnightly"
    publish(*relabel(folder, "0.1.2", tmp_path / "0.1.2"), github=target, s3=None)
    assert github_latest(standin) == "0.1.2"


def urllib_get(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)


def test_github_releases_carry_the_key_lists_as_flat_assets(
    signed: tuple[Path, str, Path], standin: GitHubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GitHub release has no folders: each release carries the folder's keys/ as keys-N.json and
    keys-N.json.KEYID.minisig, beside …/releases/latest/download/latest.json, and a published list is
    never rewritten (a list with other bytes stops the publish, --replace or not)."""
    from toolchain.release.keylist import KeyList, ListedKey, write_keylist
    from toolchain.update.trust import has_key_lists

    folder, key, _ = signed
    monkeypatch.setenv("STANDIN_TOKEN", TOKEN)
    release = tmp_path / "release"
    shutil.copytree(folder, release)
    root = generate()
    from datetime import UTC, datetime, timedelta

    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
    listed = KeyList(1, (root.public_key(),), 1, (ListedKey(generate().public_key(), "release", expires),), ())
    write_keylist(release, listed, [root])
    channel = f"{standin.url}/{REPO}/releases/latest/download/latest.json"
    assert not has_key_lists(channel)
    publish(release, key, github=github_settings(standin), s3=None)
    names = {a["name"] for a in standin.state.assets.values()}
    wanted = {f"keys-{p.name}" for p in (release / "keys").iterdir()}
    assert len(wanted) == 2 and wanted <= names and not any("/" in n for n in names)
    assert has_key_lists(channel), "the updater finds list 1 beside GitHub's latest channel"
    # The same list again is skipped; another list 1 is refused before it replaces anything.
    again = publish(release, key, github=github_settings(standin), s3=None)
    assert {a.action for a in again if a.name.startswith("keys-")} == {"skip"}
    other = KeyList(1, (root.public_key(),), 1, (ListedKey(generate().public_key(), "release", expires),), ())
    write_keylist(release, other, [root])
    uploads = standin.state.uploads
    with pytest.raises(PublishError, match="already holds another key list keys-1.json"):
        publish(release, key, github=github_settings(standin), s3=None, replace=True)
    assert standin.state.uploads == uploads
