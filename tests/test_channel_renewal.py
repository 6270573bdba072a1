"""A channel's freshness over a release's life: publish refuses an expired or
about-to-expire latest.json before any upload (real S3: moto's server on
127.0.0.1; GitHub: the local stand-in, since GitHub cannot be reached), and
`invoke renew` re-signs it without rebuilding. The renewed signature is
checked with the real minisign, and an installed copy's channel check
(toolchain.update.channel) accepts the renewed channel and refuses the old one."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_contract, run_invoke
from github_standin import GitHubStandIn

from toolchain import REPO_ROOT
from toolchain.errors import PublishError, UpdateError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import SUMS_NAME, package_release, parse_sums
from toolchain.release.latest import parse_latest
from toolchain.release.publish import publish
from toolchain.release.renew import renew_channel
from toolchain.release.signing import SecretKey, generate, sign_file
from toolchain.update.channel import read_channel

TOKEN = "ghp_standin_secret_token_0123456789"
REPO = "acme/tally"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SecretKey]:
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    key = generate()
    package_release(folder, key, "", REPO_ROOT, **demo_contract())
    return folder, key


@pytest.fixture
def keys(release: tuple[Path, SecretKey], tmp_path: Path) -> tuple[Path, Path]:
    _, key = release
    secret, public = tmp_path / "minisign.key", tmp_path / "minisign.pub"
    secret.write_text(key.render())
    public.write_text(key.public_key().render())
    return secret, public


def aged(release: tuple[Path, SecretKey], into: Path, *, days_left: float) -> Path:
    """A copy of the release whose channel was signed so it has days_left left (negative: expired)."""
    folder, key = release
    shutil.copytree(folder, into)
    now = datetime.now(UTC)
    renew_channel(into, key, key.public_key().render(), 30, now=now - timedelta(days=30 - days_left))
    return into


@pytest.fixture
def s3(s3_endpoint: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str, dict[str, str]]:
    import boto3

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    bucket = "renew-" + request.node.name.lower().replace("_", "-")[:40]
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    return client, bucket, env


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def stored_lists(client: Any, bucket: str) -> set[str]:
    return {k.rsplit("/", 1)[1] for k in objects(client, bucket) if k.startswith("downloads/tally/keys/")}


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(TOKEN, REPO) as server:
        yield server


def config(tmp_path: Path, s3_endpoint: str, bucket: str, standin: GitHubStandIn, extra: str = "") -> Path:
    path = tmp_path / "toolchain.toml"
    path.write_text(
        f'[github]\nrepository = "{REPO}"\napi-url = "{standin.url}"\nuploads-url = "{standin.url}"\n'
        f'[s3]\nbucket = "{bucket}"\nprefix = "downloads"\nendpoint-url = "{s3_endpoint}"\nregion = "us-east-1"\n'
        + extra
    )
    return path


@pytest.mark.parametrize("days_left", [-10.0, 3.0], ids=["expired", "expires-in-3-days"])
def test_publish_refuses_a_stale_channel_before_any_upload(
    release: tuple[Path, SecretKey], keys: tuple[Path, Path], s3: tuple[Any, str, dict[str, str]],
    s3_endpoint: str, standin: GitHubStandIn, tmp_path: Path, days_left: float,
) -> None:  # fmt: skip
    client, bucket, env = s3
    folder = aged(release, tmp_path / "release", days_left=days_left)
    expires = parse_latest((folder / "latest.json").read_bytes()).expires.isoformat()
    env = {**env, "TOOLCHAIN_CONFIG": str(config(tmp_path, s3_endpoint, bucket, standin)), "GITHUB_TOKEN": TOKEN}
    result = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(keys[1]), "--s3", "--github", env=env)
    assert result.returncode == 15, result.stderr
    assert expires in result.stderr and "invoke renew" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert objects(client, bucket) == {}
    assert standin.state.events == [] and standin.state.uploads == 0
    # `invoke verify` reports the same channel (its files are sound; publishing it is not).
    verified = run_invoke("verify", "--path", str(folder), "--public-key", str(keys[1]), env=env)
    assert verified.returncode == 12 and expires in verified.stderr and "invoke renew" in verified.stderr


def test_min_validity_is_a_setting(release: tuple[Path, SecretKey], tmp_path: Path) -> None:
    folder = aged(release, tmp_path / "release", days_left=3.0)
    key = release[1].public_key().render()
    with pytest.raises(PublishError, match="within \\[update\\] min-validity \\(7 days\\)"):
        publish(folder, key, github=None, s3=None, min_validity_days=7)
    with pytest.raises(PublishError, match="min-validity \\(5 days\\)"):
        publish(folder, key, github=None, s3=None, min_validity_days=5)
    publish(folder, key, github=None, s3=None, min_validity_days=2)  # fresh enough: nowhere to go, nothing done


def test_renew_resigns_only_the_expiry_and_installed_copies_follow(
    release: tuple[Path, SecretKey], keys: tuple[Path, Path], s3: tuple[Any, str, dict[str, str]],
    s3_endpoint: str, standin: GitHubStandIn, tmp_path: Path,
) -> None:  # fmt: skip
    client, bucket, env = s3
    expired = aged(release, tmp_path / "expired", days_left=-10.0)
    folder = tmp_path / "release"
    shutil.copytree(expired, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    old = json.loads(before["latest.json"])
    env = {**env, "TOOLCHAIN_CONFIG": str(config(tmp_path, s3_endpoint, bucket, standin)), "GITHUB_TOKEN": TOKEN}
    # The release as first published (fresh then): its GitHub assets exist, renewal replaces the channel's.
    fresh = aged(release, tmp_path / "fresh", days_left=20.0)
    first = run_invoke("publish", "--out-dir", str(fresh), "--public-key", str(keys[1]), "--github", env=env)
    assert first.returncode == 0, first.stderr
    mark = len(standin.state.events)

    root = tmp_path / "root.key"
    root.write_text(generate().render())
    listed = run_invoke("rotate-key", "--dir", str(folder), "--root-key", str(root), "--pinned-key", str(keys[0]),
                        "--release-key", str(keys[1]))  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    result = run_invoke(
        "renew", "--out-dir", str(folder), "--secret-key", str(keys[0]), "--public-key", str(keys[1]),
        "--s3", "--github", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    new = json.loads((folder / "latest.json").read_text())
    assert {k: v for k, v in new.items() if k != "expires"} == {k: v for k, v in old.items() if k != "expires"}
    assert datetime.fromisoformat(new["expires"]) > datetime.now(UTC) + timedelta(days=29)
    assert report["expires"] == new["expires"] and report["previous_expires"] == old["expires"]
    changed = {p.name for p in folder.iterdir() if p.is_file() and before.get(p.name) != p.read_bytes()}
    # The key lists went up beside S3's pointer (before it moved).
    assert (
        stored_lists(client, bucket) == {p.name for p in (folder / "keys").iterdir()}
        and len(stored_lists(client, bucket)) == 3
    )
    assert changed == {"latest.json", "latest.json.minisig", SUMS_NAME, f"{SUMS_NAME}.minisig"}
    old_sums, new_sums = parse_sums(expired / SUMS_NAME), parse_sums(folder / SUMS_NAME)
    assert {n: d for n, d in new_sums.items() if n != "latest.json"} == {
        n: d for n, d in old_sums.items() if n != "latest.json"
    }
    # The real minisign accepts the renewed signatures.
    for name in ("latest.json", SUMS_NAME):
        checked = subprocess.run(
            ["minisign", "-V", "-p", str(keys[1]), "-m", str(folder / name)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
    # Published: S3's pointer is the renewed channel; GitHub's assets were replaced.
    stored = objects(client, bucket)
    assert stored["downloads/tally/latest.json"] == (folder / "latest.json").read_bytes()
    assert stored["downloads/tally/0.1.0/latest.json"] == (folder / "latest.json").read_bytes()
    renewed = standin.state.events[mark:]
    deleted = {name for event, name in renewed if event == "delete"}
    uploaded = {name for event, name in renewed if event == "upload"}
    channel_files = {"latest.json", "latest.json.minisig", SUMS_NAME, f"{SUMS_NAME}.minisig"}
    # ... and the release carries the key lists as flat assets (GitHub's assets have no folders).
    assert deleted == channel_files
    assert uploaded == channel_files | {f"keys-{p.name}" for p in (folder / "keys").iterdir()}
    # An installed copy's channel check: the renewed channel is taken, the expired one refused.
    work = tmp_path / "work"
    work.mkdir()
    public = keys[1].read_text()
    assert read_channel(str(folder / "latest.json"), public, "tally", work).latest.expires == datetime.fromisoformat(
        new["expires"]
    )
    with pytest.raises(UpdateError, match="expired"):
        read_channel(str(expired / "latest.json"), public, "tally", work)
    # A renewed folder publishes again (the pointer moved; nothing else re-uploaded).
    again = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(keys[1]), "--s3", env=env)
    assert again.returncode == 0, again.stderr


def test_renew_with_another_key_changes_nothing(release: tuple[Path, SecretKey], tmp_path: Path) -> None:
    folder = aged(release, tmp_path / "release", days_left=-1.0)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    secret = tmp_path / "other.key"
    secret.write_text(generate().render())
    public = tmp_path / "release.pub"
    public.write_text(release[1].public_key().render())
    result = run_invoke("renew", "--out-dir", str(folder), "--secret-key", str(secret), "--public-key", str(public))
    assert result.returncode == 2 and "is not the release's key" in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_a_channel_key_renews_while_the_release_key_stays_offline(
    release: tuple[Path, SecretKey], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """CI holds a channel key the key lists name, not the release key: it re-signs latest.json and
    sha256.sum, and verify, the real minisign and an installed copy following the lists accept the
    result. A key no list names, or one named by a list no root signed, changes nothing."""
    from toolchain.release.keylist import KeyList, ListedKey, latest_list, write_keylist
    from toolchain.update.trust import pinned_trust, read_trusted_channel

    folder = aged(release, tmp_path / "release", days_left=2.0)
    secret, public = keys
    channel, stranger = generate(), generate()
    for name, key in (("channel", channel), ("stranger", stranger)):
        (tmp_path / f"{name}.key").write_text(key.render())
        (tmp_path / f"{name}.pub").write_text(key.public_key().render())
    root = tmp_path / "root.key"
    root.write_text(generate().render())
    # List 1: the root's, signed by the release key too (installed copies pinned it), naming both keys.
    listed = run_invoke("rotate-key", "--dir", str(folder), "--root-key", str(root), "--pinned-key", str(secret),
                        "--release-key", str(public), "--channel-key", str(tmp_path / "channel.pub"))  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    # A key no list names: refused, nothing changed.
    refused = run_invoke("renew", "--out-dir", str(folder), "--secret-key", str(tmp_path / "stranger.key"),
                         "--public-key", str(public))  # fmt: skip
    assert refused.returncode == 2 and "nor a channel key of its key lists" in refused.stderr, refused.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before

    renewed = run_invoke("renew", "--out-dir", str(folder), "--secret-key", str(tmp_path / "channel.key"),
                         "--public-key", str(public), "--json")  # fmt: skip
    assert renewed.returncode == 0, renewed.stderr
    assert datetime.fromisoformat(json.loads(renewed.stdout)["expires"]) > datetime.now(UTC) + timedelta(days=29)
    for name in ("latest.json", SUMS_NAME):
        checked = subprocess.run(["minisign", "-V", "-p", str(tmp_path / "channel.pub"), "-m", str(folder / name)],
                                 capture_output=True, text=True)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
    verified = run_invoke("verify", "--path", str(folder), "--public-key", str(public))
    assert verified.returncode == 0, verified.stderr
    # An installed copy that pinned the release key follows list 1 and takes the renewed channel.
    work = tmp_path / "work"
    work.mkdir()
    offer, trust, signer = read_trusted_channel(
        str(folder / "latest.json"), pinned_trust(public.read_text(), root=False), "tally", work
    )
    assert trust.followed == (1,) and signer.key_id == release[1].key_id
    assert offer.latest.expires > datetime.now(UTC) + timedelta(days=29)

    # A list 2 naming the stranger as channel key, signed by the stranger alone (no root): refused.
    forged = tmp_path / "forged"
    shutil.copytree(folder, forged)
    current = latest_list(forged)
    assert current is not None
    expires = datetime.now(UTC) + timedelta(days=30)
    write_keylist(forged, KeyList(2, current.roots, 1, (ListedKey(stranger.public_key(), "channel", expires),), ()),
                  [stranger])  # fmt: skip
    kept = {p.name: p.read_bytes() for p in forged.iterdir() if p.is_file()}
    refused = run_invoke("renew", "--out-dir", str(forged), "--secret-key", str(tmp_path / "stranger.key"),
                         "--public-key", str(public))  # fmt: skip
    assert refused.returncode == 2 and "signed by 0 of the roots" in refused.stderr, refused.stderr
    assert {p.name: p.read_bytes() for p in forged.iterdir() if p.is_file()} == kept
    # ... nor does verify accept a channel the stranger signed by hand under that list.
    for name in ("latest.json", SUMS_NAME):
        (forged / f"{name}.minisig").unlink()
        sign_file(forged / name, stranger, f"file:{name}")
    checked = run_invoke("verify", "--path", str(forged), "--public-key", str(public))
    assert checked.returncode != 0 and "signed by 0 of the roots" in checked.stderr, checked.stderr


def test_a_channel_valid_for_less_than_min_validity_is_a_config_error(tmp_path: Path) -> None:
    """Else every release packaged with these settings would be refused by publish."""
    config = tmp_path / "toolchain.toml"
    config.write_text("[update]\nmetadata-days = 5\n")
    result = run_invoke("verify", "--path", str(tmp_path), env={"TOOLCHAIN_CONFIG": str(config)})
    assert result.returncode == 3, result.stderr
    assert "metadata-days (5) must be more than min-validity (7)" in result.stderr
    config.write_text("[update]\nmetadata-days = 5\nmin-validity = 2\nmin-validty = 1\n")
    result = run_invoke("verify", "--path", str(tmp_path), env={"TOOLCHAIN_CONFIG": str(config)})
    assert result.returncode == 3 and "min-validity" in result.stderr, result.stderr  # did you mean


def test_the_scheduled_renewal_of_a_github_release_with_a_channel_key(
    release: tuple[Path, SecretKey], keys: tuple[Path, Path], s3_endpoint: str, standin: GitHubStandIn,
    tmp_path: Path,
) -> None:  # fmt: skip
    """renew.yml's steps: download the newest GitHub release (its key lists arrive flat, keys-N.json,
    as GitHub's assets have no folders), `invoke renew --github` with the channel key the lists
    name. The lists are read from the flat files, the renewed channel replaces the release's, and
    GitHub's latest channel is then the renewed one."""
    from toolchain.release.github import GitHubClient, download_github

    folder = aged(release, tmp_path / "release", days_left=10.0)
    secret, public = keys
    channel = generate()
    (tmp_path / "channel.key").write_text(channel.render())
    (tmp_path / "channel.pub").write_text(channel.public_key().render())
    root = tmp_path / "root.key"
    root.write_text(generate().render())
    listed = run_invoke("rotate-key", "--dir", str(folder), "--root-key", str(root), "--pinned-key", str(secret),
                        "--release-key", str(public), "--channel-key", str(tmp_path / "channel.pub"))  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    env = {"TOOLCHAIN_CONFIG": str(config(tmp_path, s3_endpoint, "unused", standin)), "GITHUB_TOKEN": TOKEN}
    first = run_invoke("publish", "--out-dir", str(folder), "--public-key", str(public), "--github", env=env)
    assert first.returncode == 0, first.stderr

    client = GitHubClient(standin.url, standin.url, REPO, TOKEN)
    latest = client.latest_release()
    assert latest is not None
    downloaded = download_github(client, latest, tmp_path / "dist")
    assert not (downloaded / "keys").exists() and (downloaded / "keys-1.json").is_file()
    renewed = run_invoke("renew", "--out-dir", str(downloaded), "--secret-key", str(tmp_path / "channel.key"),
                         "--public-key", str(public), "--github", "--json", env=env)  # fmt: skip
    assert renewed.returncode == 0, renewed.stderr
    expires = json.loads(renewed.stdout)["expires"]
    assert datetime.fromisoformat(expires) > datetime.now(UTC) + timedelta(days=29)
    import urllib.request

    url = f"{standin.url}/{REPO}/releases/latest/download/latest.json"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert json.loads(response.read())["expires"] == expires
