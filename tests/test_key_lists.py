"""Keys with a root: key lists written by the real CLI (`invoke keygen --root`,
`invoke rotate-key`, `invoke revoke-key`), their signatures checked by the
real minisign, and an installed copy's channel check (toolchain.update.trust)
following them: K1 -> K2 release-key rotation, R1 -> R2 root rotation, a
revoked key refused, a list signed by an unknown root refused.

The channel is a folder as publish lays it out (latest.json, the archive it
names and their signatures, keys/ beside them); the archive's bytes do not
matter to what is checked here (its digest and members are checked by the
updater, tests/test_update_channel.py), so no cargo build is needed."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import run_invoke

from toolchain.errors import UpdateError
from toolchain.release.keylist import KeyList, latest_list
from toolchain.release.latest import LatestFile, write_latest
from toolchain.release.signing import PublicKey, SecretKey, generate, parse_secret_key, sign_file
from toolchain.update.channel import ChannelRelease
from toolchain.update.trust import Trust, pinned_trust, read_trusted_channel

HOST = "x86_64-unknown-linux-gnu"
ARCHIVE = f"tally-{HOST}.tar.xz"


def keypair(folder: Path, name: str) -> tuple[Path, Path]:
    key = generate()
    (folder / f"{name}.key").write_text(key.render())
    (folder / f"{name}.pub").write_text(key.public_key().render())
    return folder / f"{name}.key", folder / f"{name}.pub"


def secret(path: Path) -> SecretKey:
    return parse_secret_key(path.read_text())


def release(channel: Path, version: str, key: SecretKey) -> Path:
    """The channel's release, signed by `key`."""
    (channel / ARCHIVE).write_bytes(f"archive of {version}".encode())
    write_latest(channel, "tally", version, [LatestFile(ARCHIVE, "0" * 64, 16, HOST, ("tally",))], 30)
    for name in (ARCHIVE, "latest.json"):
        sign_file(channel / name, key, f"file:{name}")
    return channel / "latest.json"


def invoke_ok(*args: str) -> None:
    result = run_invoke(*args)
    assert result.returncode == 0, result.stderr


def read(channel: Path, trusted: KeyList, tmp_path: Path) -> tuple[ChannelRelease, Trust, PublicKey]:
    work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
    work.mkdir()
    return read_trusted_channel(str(channel / "latest.json"), trusted, "tally", work)


def test_rotation_revocation_and_roots(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    channel = tmp_path / "channel"
    channel.mkdir()
    k1, k1_pub = keypair(keys, "k1")
    k2, k2_pub = keypair(keys, "k2")
    invoke_ok("keygen", "--root", "--out-dir", str(keys / "r1"))
    invoke_ok("keygen", "--root", "--out-dir", str(keys / "r2"))
    r1, r2 = keys / "r1" / "root.key", keys / "r2" / "root.key"
    assert (keys / "r1" / "root.pub").is_file()
    # An existing install pinned K1 (one key, no root yet).
    legacy = pinned_trust(k1_pub.read_text(), root=False)
    release(channel, "0.1.0", secret(k1))
    # List 1 moves it to root R1: signed by its pinned K1 and by R1; K1 stays the release key.
    invoke_ok("rotate-key", "--dir", str(channel), "--root-key", str(r1), "--pinned-key", str(k1),
              "--release-key", str(k1_pub))  # fmt: skip
    for signer, public in ((r1, keys / "r1" / "root.pub"), (k1, k1_pub)):
        key_id = secret(signer).key_id
        signature = channel / "keys" / f"1.json.{key_id[::-1].hex().upper()}.minisig"
        checked = subprocess.run(["minisign", "-V", "-m", str(channel / "keys" / "1.json"), "-x", str(signature),
                                  "-p", str(public)], capture_output=True, text=True)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
    _, trust, key = read(channel, legacy, tmp_path)
    assert trust.followed == (1,) and key.key_id == secret(k1).key_id
    state1 = trust.keylist
    # A fresh install that pinned R1 reads the same channel.
    _, fresh, _ = read(channel, pinned_trust((keys / "r1" / "root.pub").read_text(), root=True), tmp_path)
    assert fresh.followed == (1,)

    # K1 -> K2: list 2 (signed by R1) names K2; the release signed by K2 is taken.
    invoke_ok("rotate-key", "--dir", str(channel), "--root-key", str(r1), "--release-key", str(k2_pub))
    release(channel, "0.2.0", secret(k2))
    _, trust, key = read(channel, state1, tmp_path)
    assert trust.followed == (2,) and key.key_id == secret(k2).key_id
    state2 = trust.keylist
    # A release still signed by K1 is refused: list 2 no longer names it.
    release(channel, "0.2.1", secret(k1))
    with pytest.raises(UpdateError, match="does not name"):
        read(channel, state2, tmp_path)

    # R1 -> R2: list 3 signed by both roots; the copy follows it.
    invoke_ok("rotate-key", "--dir", str(channel), "--root-key", str(r1), "--new-root", str(r2),
              "--release-key", str(k2_pub))  # fmt: skip
    release(channel, "0.3.0", secret(k2))
    _, trust, _ = read(channel, state2, tmp_path)
    assert trust.followed == (3,) and trust.keylist.root_ids == {secret(r2).key_id[::-1].hex().upper()}
    state3 = trust.keylist
    # From list 1's state, the copy follows 2 then 3 in one read.
    _, trust, _ = read(channel, state1, tmp_path)
    assert trust.followed == (2, 3)

    # R1 can no longer sign for the copy: a list 4 signed by R1 alone is refused.
    bad = tmp_path / "bad-root"
    shutil.copytree(channel, bad)
    result = run_invoke("rotate-key", "--dir", str(bad), "--root-key", str(r1), "--release-key", str(k1_pub))
    assert result.returncode == 2 and "is not a root of key list 3" in result.stderr
    # ... nor by hand: list 4 made by R2 and signed by an unknown root R9 instead.
    invoke_ok("rotate-key", "--dir", str(bad), "--root-key", str(r2), "--release-key", str(k1_pub))
    r9 = generate()
    four = bad / "keys" / "4.json"
    for signature in (bad / "keys").glob("4.json.*.minisig"):
        signature.unlink()
    made = sign_file(four, r9, "keylist:4")
    made.rename(four.with_name(f"4.json.{r9.key_id[::-1].hex().upper()}.minisig"))
    with pytest.raises(UpdateError, match="signed by 0 of the roots you trust"):
        read(bad, state3, tmp_path)
    # A root rotation signed by the new root only is refused too.
    lone = tmp_path / "lone"
    shutil.copytree(channel, lone)
    three = lone / "keys" / "3.json"
    (lone / "keys" / f"3.json.{secret(r1).key_id[::-1].hex().upper()}.minisig").unlink()
    assert three.is_file()
    with pytest.raises(UpdateError, match="signed by 0 of the roots you trust"):
        read(lone, state2, tmp_path)

    # Revoke K2: list 4 (R2) drops it; a release signed by K2 is refused as revoked.
    k2_id = secret(k2).key_id[::-1].hex().upper()
    invoke_ok("revoke-key", "--dir", str(channel), "--root-key", str(r2), "--key-id", k2_id)
    newest = latest_list(channel)
    assert newest is not None and newest.version == 4 and k2_id in newest.revoked
    with pytest.raises(UpdateError, match="revokes"):
        read(channel, state3, tmp_path)


def test_an_expired_release_key_is_refused(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    channel.mkdir()
    k1, k1_pub = keypair(tmp_path, "k1")
    r1, _ = keypair(tmp_path, "r1")
    invoke_ok("rotate-key", "--dir", str(channel), "--root-key", str(r1), "--release-key", str(k1_pub),
              "--days", "1")  # fmt: skip
    release(channel, "0.1.0", secret(k1))
    trusted = pinned_trust(secret(r1).public_key().render(), root=True)
    work = tmp_path / "work"
    work.mkdir()
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(UpdateError, match="expired at"):
        read_trusted_channel(str(channel / "latest.json"), trusted, "tally", work, now=later)
