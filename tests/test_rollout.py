"""Staged rollout, pause and withdrawal: the signed channel's share and
withdrawn versions, written by the real CLI (`invoke rollout`, `invoke
withdraw`), checked by the real minisign, and followed by `invoke update`
on a real installed tally (tests/test_update_channel.py's two releases)."""

# ruff: noqa: F811 - the fixtures imported from test_update_channel are parameters here

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import run_invoke
from test_update import Install
from test_update_channel import Releases, new_install, old_install, releases  # noqa: F401 - fixtures

from toolchain.release.folder import SUMS_NAME, parse_sums
from toolchain.release.latest import Latest
from toolchain.release.signing import generate, sign_file
from toolchain.update.rollout import bucket, channel_status, new_install_id, selected


def test_a_ten_percent_rollout_selects_ten_percent_of_a_thousand_copies() -> None:
    # Install ids as new_install_id makes them (128 random bits in hex), from a seeded generator: the
    # count is then the same on every run (a fresh sample misses the +-3 % band about once in 600 runs).
    draw = random.Random(29)
    ids = [f"{draw.getrandbits(128):032x}" for _ in range(1000)]
    assert len(new_install_id()) == len(ids[0])
    chosen = [i for i in ids if selected(i, "0.2.0", 10)]
    assert 70 <= len(chosen) <= 130, len(chosen)
    assert not any(selected(i, "0.2.0", 0) for i in ids)  # 0 pauses every copy
    assert all(selected(i, "0.2.0", 100) for i in ids)
    # Raising the share only adds copies; the bucket is stable for an id and version.
    assert {i for i in ids if selected(i, "0.2.0", 50)} >= set(chosen)
    assert [bucket(i, "0.2.0") for i in ids[:5]] == [bucket(i, "0.2.0") for i in ids[:5]]
    # A new version draws a new sample.
    assert {i for i in ids if selected(i, "0.3.0", 10)} != set(chosen)


def _latest(version: str, rollout: int = 100, withdrawn: tuple[str, ...] = ()) -> Latest:
    now = datetime.now(UTC)
    return Latest("tally", version, now, now + timedelta(days=30), (), rollout, withdrawn)


def test_what_a_copy_does_with_each_channel() -> None:
    copy = new_install_id()
    assert channel_status(_latest("0.2.0", withdrawn=("0.2.0",)), "0.1.0", copy).action == "skip-withdrawn"
    assert channel_status(_latest("0.2.0", rollout=0), "0.1.0", copy).action == "paused"
    assert channel_status(_latest("0.2.0"), "0.1.0", copy).action == "update"
    told = channel_status(_latest("0.1.0", withdrawn=("0.2.0",)), "0.2.0", copy)
    assert told.running_withdrawn and "WITHDRAWN" in told.message and "rollback" in told.message


def _keys(releases: Releases, tmp_path: Path) -> list[str]:
    secret = tmp_path / "release.key"
    secret.write_text(releases.key.render())
    return ["--secret-key", str(secret), "--public-key", str(releases.key_file)]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rollout_pause_and_withdrawal_through_the_cli(
    releases: Releases,
    old_install: Install,
    tmp_path: Path,
) -> None:
    keys = _keys(releases, tmp_path)
    channel = tmp_path / "0.2.0"
    shutil.copytree(releases.new, channel)
    update = ["update", "--binary", str(old_install.binary), "--channel", str(channel / "latest.json"),
              "--public-key", str(releases.key_file)]  # fmt: skip
    before = _digest(old_install.binary)

    paused = run_invoke("rollout", "--percent", "0", "--out-dir", str(channel), *keys)
    assert paused.returncode == 0, paused.stderr
    assert json.loads((channel / "latest.json").read_text())["rollout"] == 0
    signed = subprocess.run(["minisign", "-V", "-p", str(releases.key_file), "-m", str(channel / "latest.json")],
                            capture_output=True, text=True)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    checked = run_invoke(*update, "--check", "--json", env=old_install.env)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["action"] == "paused"
    held = run_invoke(*update, env=old_install.env)
    assert held.returncode == 0 and "paused" in held.stderr, held.stderr
    assert _digest(old_install.binary) == before  # nothing changed
    copy_id = (old_install.binary.parent / ".tally-update" / "install-id").read_text().strip()
    assert len(copy_id) == 32

    assert run_invoke("rollout", "--percent", "100", "--out-dir", str(channel), *keys).returncode == 0
    taken = run_invoke(*update, env=old_install.env)
    assert taken.returncode == 0, taken.stderr
    assert "0.2.0" in old_install.run("--version").stdout

    # 0.2.0 turns out bad: the channel points back at 0.1.0 and marks 0.2.0 withdrawn.
    good = tmp_path / "0.1.0"
    shutil.copytree(releases.old, good)
    refused = run_invoke("withdraw", "--version", "0.1.0", "--out-dir", str(good), *keys)
    assert refused.returncode == 2 and "points at 0.1.0 itself" in refused.stderr
    withdrawn = run_invoke("withdraw", "--version", "0.2.0", "--out-dir", str(good), *keys, "--json")
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert json.loads(withdrawn.stdout)["withdrawn"] == ["0.2.0"]
    # The copy running 0.2.0 is told on its next check.
    check = ["update", "--check", "--binary", str(old_install.binary), "--channel", str(good / "latest.json")]
    told = run_invoke(*check, "--public-key", str(releases.key_file), env=old_install.env)
    assert told.returncode == 0, told.stderr
    assert "0.2.0, which this copy runs, was WITHDRAWN" in told.stderr


def test_a_copy_pinning_one_key_follows_key_lists_across_a_release_key_rotation(
    releases: Releases,
    old_install: Install,
    tmp_path: Path,
) -> None:
    """The copy pinned release key K (as every install before key lists did). The channel publishes list 1
    (signed by K and the new root R1) and list 2 (R1: release key K2), and 0.2.0 is signed by K2 only."""
    channel = tmp_path / "0.2.0"
    shutil.copytree(releases.new, channel)
    pinned = tmp_path / "k.key"
    pinned.write_text(releases.key.render())
    root, k2 = generate(), generate()
    (tmp_path / "r1.key").write_text(root.render())
    (tmp_path / "k2.pub").write_text(k2.public_key().render())
    first = run_invoke("rotate-key", "--dir", str(channel), "--root-key", str(tmp_path / "r1.key"),
                       "--pinned-key", str(pinned), "--release-key", str(releases.key_file))  # fmt: skip
    assert first.returncode == 0, first.stderr
    update = ["update", "--binary", str(old_install.binary), "--channel", str(channel / "latest.json"),
              "--public-key", str(releases.key_file)]  # fmt: skip
    for name in [*parse_sums(channel / SUMS_NAME), SUMS_NAME]:
        sign_file(channel / name, k2, f"file:{name}")
    # Signed by K2 while the lists name only K: refused, nothing changed.
    before = _digest(old_install.binary)
    refused = run_invoke(*update, env=old_install.env)
    assert refused.returncode == 13 and "does not name" in refused.stderr, refused.stderr
    assert _digest(old_install.binary) == before
    second = run_invoke("rotate-key", "--dir", str(channel), "--root-key", str(tmp_path / "r1.key"),
                        "--release-key", str(tmp_path / "k2.pub"))  # fmt: skip
    assert second.returncode == 0, second.stderr
    taken = run_invoke(*update, env=old_install.env)
    assert taken.returncode == 0, taken.stderr
    assert "0.2.0" in old_install.run("--version").stdout
    trust = json.loads((old_install.binary.parent / ".tally-update" / "trust.json").read_text())
    assert trust["keylist"]["version"] == 2
