"""Publishing: the guardrail, GitHub Releases (against a strict local
stand-in, since GitHub cannot be reached from here: see github_standin.py)
and S3 (against a real S3 endpoint: moto's server on 127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_invoke
from github_standin import GitHubStandIn

from toolchain import REPO_ROOT
from toolchain.build import BuildOptions, build
from toolchain.publish import PublishError, is_prerelease, publish, release_info, upload_s3_object
from toolchain.release import ReleaseCheckError, package_release
from toolchain.signing import generate

TOKEN = "ghp_standin_secret_token_0123456789"
REPO = "acme/tally"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A signed release folder, its public key text, and the key file."""
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    key = generate()
    package_release(folder, key, "", REPO_ROOT)
    key_file = folder.parent / "release.pub"
    key_file.write_text(key.public_key().render())
    return folder, key.public_key().render(), key_file


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(TOKEN, REPO) as server:
        yield server


def github_settings(server: GitHubStandIn) -> dict[str, str]:
    return {"repository": REPO, "api-url": server.url, "uploads-url": server.url, "token-env": "STANDIN_TOKEN",
            "tag-template": "v{version}"}  # fmt: skip


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
    package_release(other, secret, "", REPO_ROOT)
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server: a real HTTP S3 endpoint on 127.0.0.1."""
    port = free_port()
    moto = shutil.which("moto_server") or "moto_server"
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
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
    settings = {"bucket": bucket, "prefix": "downloads", "endpoint-url": s3_endpoint, "region": "us-east-1",
                "multipart-threshold": 64 << 20, "multipart-chunk": 16 << 20}  # fmt: skip
    return client, settings


def test_s3_layout_checksums_and_latest_pointer(signed: tuple[Path, str, Path], s3: tuple[Any, dict[str, Any]]) -> None:
    from toolchain import publish as publish_module

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
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=settings["bucket"])["Contents"]}
    info = release_info(folder, key)
    assert keys == {f"downloads/tally/0.1.0/{p.name}" for p in info.files} | {"downloads/tally/latest.json"}
    archive = next(p for p in info.files if p.name.endswith(".tar.xz"))
    for path in info.files:
        assert sent[path.name] == base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    head = client.head_object(Bucket=settings["bucket"], Key=f"downloads/tally/0.1.0/{archive.name}")
    assert head["Metadata"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    latest = json.loads(client.get_object(Bucket=settings["bucket"], Key="downloads/tally/latest.json")["Body"].read())
    assert latest["version"] == "0.1.0" and len(latest["files"]) == len(info.files)
    again = publish(folder, key, github=None, s3=settings)
    assert {a.action for a in again if a.name != "latest.json"} == {"skip"}


def test_s3_failure_midway_leaves_no_latest_pointer(
    signed: tuple[Path, str, Path], s3: tuple[Any, dict[str, Any]]
) -> None:
    from toolchain import publish as publish_module

    folder, key, _ = signed
    client, settings = s3
    calls = {"n": 0}

    def fail_third(**kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("connection reset")

    client.meta.events.register("before-call.s3.PutObject", fail_third)
    with pytest.raises(RuntimeError):
        publish_module.publish_s3(release_info(folder, key), settings, client=client)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=settings["bucket"]).get("Contents", [])}
    assert len(keys) == 2 and "downloads/tally/latest.json" not in keys


def test_s3_multipart_for_large_files(s3: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    client, settings = s3
    big = tmp_path / "big.tar.xz"
    big.write_bytes(bytes(range(256)) * (11 * 4096))  # 11 MiB
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    settings = {**settings, "multipart-threshold": 5 << 20, "multipart-chunk": 5 << 20}
    upload_s3_object(client, settings["bucket"], "big/big.tar.xz", big, digest, settings)
    head = client.head_object(Bucket=settings["bucket"], Key="big/big.tar.xz", PartNumber=1)
    assert head["PartsCount"] == 3
    body = client.get_object(Bucket=settings["bucket"], Key="big/big.tar.xz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_dry_run_plan_uploads_nothing(signed: tuple[Path, str, Path], tmp_path: Path) -> None:
    folder, _, key_file = signed
    config = tmp_path / "toolchain.toml"
    config.write_text('[github]\nrepository = "acme/tally"\n[s3]\nbucket = "acme-releases"\n')
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(key_file), "--dry-run", "--json",
                        env={"TOOLCHAIN_CONFIG": str(config), "GITHUB_TOKEN": ""})  # fmt: skip
    assert result.returncode == 0, result.stderr
    actions = json.loads(result.stdout)["actions"]
    assert {a["action"] for a in actions} == {"would-upload"}
    assert "acme/tally@v0.1.0" in {a["where"] for a in actions}
    assert "s3://acme-releases/releases/tally/latest.json" in {a["where"] for a in actions}
