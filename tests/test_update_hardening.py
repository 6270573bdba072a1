"""The updater against what goes wrong in the field: stuck rollbacks, crafted
(validly re-signed) archives, a full disk, wrong arguments, kill -9.

Real binaries (the two demo builds of tests/test_update.py), real SQLite
files, real signed releases re-signed with the release key after their
contents were replaced, real tmpfs mounts for a full disk, real kill -9."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import jsonschema
import pytest
from conftest import run_invoke
from test_update import Install, Release, do_update, make_install, make_release, updater_code

from toolchain import REPO_ROOT
from toolchain.config.catalog import packaged
from toolchain.errors import UpdateError, UsageError
from toolchain.records.build_record import Member
from toolchain.release.signing import sign_file
from toolchain.update.artifact import Artifact, check_members, extract_binary
from toolchain.update.journal import CRASH_ENV
from toolchain.update.updater import update

HOST = "x86_64-unknown-linux-gnu"
TOP = f"tally-{HOST}"


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(tmp_path_factory)


@pytest.fixture
def install(release: Release, tmp_path: Path) -> Install:
    return make_install(release, tmp_path)


def state_dir(install: Install) -> Path:
    return install.binary.parent / ".tally-update"


def journal_of(install: Install) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((state_dir(install) / "journal.json").read_text())
    return document


def key_file(release: Release) -> Path:
    path = release.folder.parent / "release.pub"
    path.write_text(release.public_key)
    return path


def cli_update(
    release: Release, install: Install, *extra: str, archive: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_invoke(
        "update",
        "--artifact",
        str(archive or release.archive),
        "--binary",
        str(install.binary),
        "--public-key",
        str(key_file(release)),
        "--data",
        str(install.database),
        *extra,
        env={**install.env, **(env or {})},
    )


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The run failed with `code` and said so in exactly one line, no traceback."""
    last = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == code, f"exit {result.returncode}, not {code}: {last[0]}"
    assert "Traceback" not in result.stderr, f"a traceback: {last[0]}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def kill_at(release: Release, install: Install, state: str, env: dict[str, str] | None = None,
            extra: dict[str, str] | None = None) -> None:  # fmt: skip
    """Run the updater in its own process and SIGKILL it right after `state`."""
    code = updater_code(release, install, {**install.env, **(env or {})})
    killed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=False,
                            env={**os.environ, CRASH_ENV: state, **(extra or {})})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def archive_contents(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as bundle:
        return {m.name: bundle.extractfile(m).read() for m in bundle.getmembers() if m.isfile()}  # type: ignore[union-attr]


def described(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def tar_info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    item = tarfile.TarInfo(name)
    item.size, item.type, item.linkname, item.mode, item.mtime = size, kind, link, 0o755, 315532800
    return item


def write_tar_xz(path: Path, entries: list[tuple[tarfile.TarInfo, IO[bytes] | None]] | list[Any]) -> None:
    with path.open("wb") as raw, lzma.open(raw, "wb", preset=1) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, data)


def crafted(
    release: Release,
    folder: Path,
    write: Callable[[Path], None] | None = None,
    members: list[dict[str, Any]] | None = None,
    manifest: Callable[[dict[str, Any]], Any] | None = None,
) -> Path:
    """A copy of the release whose archive `write` replaced, with its .sha256,
    manifest entry (members as given) and signatures made again with the
    release's own key: validly signed, whatever is inside."""
    shutil.copytree(release.folder, folder)
    archive = folder / release.archive.name
    if write is not None:
        write(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (folder / f"{archive.name}.sha256").write_text(f"{digest}  {archive.name}\n")
    sign_file(archive, release.key, f"file:{archive.name}")
    document = json.loads((folder / "manifest.json").read_text())
    entry = next(a for a in document["artifacts"] if a["name"] == archive.name)
    entry.update(sha256=digest, size=archive.stat().st_size)
    if members is not None:
        entry["members"] = members
    edited = manifest(document) if manifest is not None else document
    text = edited if isinstance(edited, str) else json.dumps(edited, indent=2)
    (folder / "manifest.json").write_text(text)
    sign_file(folder / "manifest.json", release.key, "file:manifest.json")
    return archive


def assert_untouched(install: Install, binary: str, dump: list[str]) -> None:
    assert install.digest() == binary and install.dump() == dump
    assert not state_dir(install).exists(), "refused after creating the state folder"
    assert sorted(p.name for p in install.binary.parent.iterdir()) == ["tally"]


class Zeros(io.RawIOBase):
    """`size` zero bytes, without holding them in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


# --- 5 and 11: the archive's members against the signed manifest ----------------------------


def test_manifest_lists_every_member_with_size_and_sha256(release: Release) -> None:
    document = json.loads((release.folder / "manifest.json").read_text())
    jsonschema.validate(document, json.loads(packaged("schemas", "manifest.schema.json").read_text()))
    entry = next(a for a in document["artifacts"] if a["name"] == release.archive.name)
    contents = archive_contents(release.archive)
    assert entry["members"] == sorted((described(n, d) for n, d in contents.items()), key=lambda m: m["path"])
    assert f"{TOP}/tally" in {m["path"] for m in entry["members"]}


def test_decompression_bomb_stops_at_its_header(release: Release, install: Install, tmp_path: Path) -> None:
    """64 MiB of zeros where the signed manifest says 1 MiB: refused before a byte is
    unpacked (the updater's memory does not grow by the member's size)."""
    bomb = 64 << 20

    def write(archive: Path) -> None:
        write_tar_xz(
            archive, [(tar_info(TOP, 0, tarfile.DIRTYPE), None), (tar_info(f"{TOP}/tally", bomb), Zeros(bomb))]
        )

    claimed = described(f"{TOP}/tally", bytes(1 << 20))
    archive = crafted(release, tmp_path / "bomb", write, members=[claimed])
    assert archive.stat().st_size < 1 << 20
    before = install.digest(), install.dump()
    key = key_file(release)
    code = (
        "import json, resource; from pathlib import Path; import lief; from toolchain.errors import ToolchainError; "
        "from toolchain.update import update; import cryptography.hazmat.primitives.asymmetric.ed25519\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"try:\n    update(Path({str(install.binary)!r}), {str(archive)!r}, Path({str(key)!r}).read_text(), "
        f"[Path({str(install.database)!r})], env={install.env!r}); error = None\n"
        "except ToolchainError as exc:\n    error = str(exc)\n"
        "print(json.dumps({'error': error, 'grew': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome["error"] and "tally is 67,108,864 bytes, but the signed manifest says 1,048,576" in outcome["error"]
    assert outcome["grew"] < 16 << 10, f"memory grew by {outcome['grew']} KiB"
    assert_untouched(install, *before)


@pytest.mark.parametrize("change", ["bigger", "same size, other bytes"])
def test_member_unlike_the_manifest_is_refused_before_anything_is_touched(
    release: Release, install: Install, tmp_path: Path, change: str
) -> None:
    contents = archive_contents(release.archive)
    signed = [described(name, data) for name, data in contents.items()]  # what the release signed
    real = contents[f"{TOP}/tally"]
    contents[f"{TOP}/tally"] = real + bytes(4096) if change == "bigger" else real[:-1] + bytes([real[-1] ^ 1])

    def write(archive: Path) -> None:
        entries: list[tuple[tarfile.TarInfo, IO[bytes] | None]] = [(tar_info(TOP, 0, tarfile.DIRTYPE), None)]
        entries += [(tar_info(n, len(d)), io.BytesIO(d)) for n, d in sorted(contents.items())]
        write_tar_xz(archive, entries)

    archive = crafted(release, tmp_path / "crafted", write, members=signed)
    before = install.digest(), install.dump()
    message = one_error(cli_update(release, install, archive=archive), 13)
    expected = "bytes, but the signed manifest says" if change == "bigger" else "does not match the SHA-256"
    assert f"{TOP}/tally" in message and expected in message
    assert_untouched(install, *before)


UNSAFE = {
    "parent path": (f"{TOP}/../../escaped", tarfile.REGTYPE, "", "unsafe path"),
    "absolute path": ("/tmp/toolchain-escaped-{pid}", tarfile.REGTYPE, "", "unsafe path"),
    "symlink binary": (f"{TOP}/tally", tarfile.SYMTYPE, "/bin/sh", "is a symlink"),
    "hardlink binary": (f"{TOP}/tally", tarfile.LNKTYPE, f"{TOP}/README.md", "is a hardlink"),
    "no binary": (None, tarfile.REGTYPE, "", f"has no member {TOP}/tally"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_links_unsafe_paths_and_a_missing_binary_are_refused_before_extraction(
    release: Release, install: Install, tmp_path: Path, case: str
) -> None:
    name, kind, link, expected = UNSAFE[case]
    if name is not None:
        name = name.format(pid=os.getpid())
    contents = archive_contents(release.archive)
    payload = b"#!/bin/sh\necho pwned\n"

    def write(archive: Path) -> None:
        entries: list[tuple[tarfile.TarInfo, IO[bytes] | None]] = [(tar_info(TOP, 0, tarfile.DIRTYPE), None)]
        for member, data in sorted(contents.items()):
            if member == f"{TOP}/tally" and (case == "no binary" or kind != tarfile.REGTYPE):
                continue
            entries.append((tar_info(member, len(data)), io.BytesIO(data)))
        if name is not None:
            size = len(payload) if kind == tarfile.REGTYPE else 0
            entries.append((tar_info(name, size, kind, link), io.BytesIO(payload) if size else None))
        write_tar_xz(archive, entries)

    listed = [described(n, d) for n, d in contents.items()]
    if name is not None and kind == tarfile.REGTYPE:
        listed.append(described(name, payload))  # even a signed listing does not make the path safe
    archive = crafted(release, tmp_path / "crafted", write, members=listed)
    before = install.digest(), install.dump()
    message = one_error(cli_update(release, install, archive=archive), 13)
    assert expected in message, message
    assert_untouched(install, *before)
    assert not (tmp_path / "escaped").exists() and not Path(f"/tmp/toolchain-escaped-{os.getpid()}").exists()


# --- 9: one line, an exit code, and nothing touched ----------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_truncated_or_corrupt_signed_archive_is_one_line(
    release: Release, install: Install, tmp_path: Path, damage: str
) -> None:
    def write(archive: Path) -> None:
        data = bytearray(archive.read_bytes())
        if damage == "truncated":
            del data[len(data) // 2 :]
        else:
            middle = len(data) // 2
            data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        archive.write_bytes(bytes(data))

    archive = crafted(release, tmp_path / "damaged", write)
    before = install.digest(), install.dump()
    message = one_error(cli_update(release, install, archive=archive), 13)
    assert f"{archive.name} is truncated or corrupt" in message
    assert_untouched(install, *before)


def test_installed_binary_of_another_architecture_is_refused(release: Release, install: Install) -> None:
    shutil.copy2(release.foreign_binary, install.binary)  # an aarch64 tally where an x86_64 one should be
    before = install.digest(), install.dump()
    message = one_error(cli_update(release, install), 13)
    assert f"{install.binary} is an ELF executable for aarch64" in message and "x86_64-unknown-linux-gnu" in message
    assert_untouched(install, *before)


@pytest.mark.parametrize("kind", ["text file", "folder"])
def test_data_that_is_not_a_sqlite_file_is_refused(release: Release, install: Install, kind: str) -> None:
    if kind == "folder":
        data = install.data
    else:
        data = install.data / "notes.txt"
        data.write_text("not a database\n")
    wrong = Install(install.binary, install.data, data, install.env)
    message = one_error(cli_update(release, wrong), 2)
    assert f"data file {data} is " + ("a folder" if kind == "folder" else "not a SQLite database") in message
    if kind == "folder":
        assert str(install.database) in message  # the file to pass instead
    assert_untouched(install, install.digest(), install.dump())


MANIFESTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "not JSON": (lambda m: "{ not json", "is not valid JSON"),
    "no apps": (lambda m: {k: v for k, v in m.items() if k != "apps"}, "lacks 'apps'"),
    "app without version": (lambda m: m | {"apps": [{"name": "tally"}]}, "lacks an app's 'version'"),
    "artifacts not a list": (lambda m: m | {"artifacts": {}}, "has a malformed 'artifacts'"),
    "no members": (
        lambda m: m | {"artifacts": [{k: v for k, v in a.items() if k != "members"} for a in m["artifacts"]]},
        "lists no members",
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_signed_manifest_that_is_malformed_is_one_line(
    release: Release, install: Install, tmp_path: Path, case: str
) -> None:
    edit, expected = MANIFESTS[case]
    archive = crafted(release, tmp_path / "crafted", manifest=edit)
    before = install.digest(), install.dump()
    message = one_error(cli_update(release, install, archive=archive), 13)
    assert "the signed manifest.json" in message and expected in message, message
    assert_untouched(install, *before)


# --- 1: a rollback that cannot finish stops everything, and never restores over newer data --


def stuck_after_a_failed_restore(release: Release, install: Install, tmp_path: Path) -> Path:
    """Kill the updater after the migration, make the snapshot unreadable so the
    recovery's restore fails, and return where the snapshot copy was put aside."""
    kill_at(release, install, "migrated")
    snapshot = Path(journal_of(install)["snapshot"])
    aside = tmp_path / "aside.db"
    shutil.move(snapshot / "data" / "0-tally.db", aside)
    failed = run_invoke("recover", "--binary", str(install.binary))
    message = one_error(failed, 13)
    assert "could not be rolled back" in message and "--force" in message and "--abandon" in message
    assert journal_of(install)["state"] == "stuck"
    # The app goes on: the new binary on the migrated data (417 apples).
    assert install.run("add", "apples", "412").returncode == 0
    return aside


def test_failed_restore_blocks_updates_until_recover_force(release: Release, install: Install, tmp_path: Path) -> None:
    before_binary, before_dump = install.digest(), install.dump()
    aside = stuck_after_a_failed_restore(release, install, tmp_path)
    for refused in (
        cli_update(release, install),
        run_invoke("recover", "--binary", str(install.binary)),
        run_invoke("rollback", "--binary", str(install.binary), "--yes"),
    ):
        message = one_error(refused, 13)
        assert "is stuck: it could not be rolled back" in message and "recover --binary" in message
        assert "tally.db changed since" in message  # what --force would discard
        assert install.run("list").stdout == "apples = 417\npears = 1\n", "newer data was restored over"
    shutil.move(aside, Path(journal_of(install)["snapshot"]) / "data" / "0-tally.db")
    forced = run_invoke("recover", "--binary", str(install.binary), "--force")
    assert forced.returncode == 0, forced.stderr
    assert install.digest() == before_binary and install.dump() == before_dump
    assert journal_of(install)["state"] == "rolled-back"


def test_abandon_keeps_the_current_files_and_unblocks_updates(
    release: Release, install: Install, tmp_path: Path
) -> None:
    stuck_after_a_failed_restore(release, install, tmp_path)
    snapshot = Path(journal_of(install)["snapshot"])
    abandoned = run_invoke("recover", "--binary", str(install.binary), "--abandon")
    assert abandoned.returncode == 0, abandoned.stderr
    assert journal_of(install)["state"] == "abandoned" and snapshot.is_dir()
    assert install.run("list").stdout == "apples = 417\npears = 1\n"
    again = cli_update(release, install)
    assert again.returncode == 0, again.stderr
    assert install.run("list").stdout == "apples = 417\npears = 1\n"


def write_after_the_crash(install: Install, state: str) -> None:
    if state == "checked":  # the new version had passed its checks: the app is usable
        assert install.run("add", "apples", "412").returncode == 0
    else:  # the failed migration left a schema no tally opens: another writer
        with contextlib.closing(sqlite3.connect(install.database)) as connection, connection:
            connection.execute("CREATE TABLE written_after_the_crash (note TEXT)")


def test_interrupted_update_is_finished_forward_when_the_new_binary_wrote_since(
    release: Release, install: Install
) -> None:
    kill_at(release, install, "checked")
    write_after_the_crash(install, "checked")
    written = install.dump()
    done = run_invoke("recover", "--binary", str(install.binary), env=install.env)
    assert done.returncode == 0, done.stderr
    assert "kept tally.db as written since the snapshot" in done.stderr
    assert install.dump() == written and install.run("--version").stdout.strip() == "tally 0.2.0"
    assert journal_of(install)["state"] == "done" and Path(journal_of(install)["snapshot"]).is_dir()


@pytest.mark.parametrize("state", ["rolling-back"])
def test_interrupted_update_is_not_restored_over_data_written_since(
    release: Release, install: Install, state: str
) -> None:
    env = {"TALLY_FAIL_MIGRATION": "3"} if state == "rolling-back" else {}
    kill_at(release, install, state, env)
    write_after_the_crash(install, state)
    written = install.dump()
    message = one_error(run_invoke("recover", "--binary", str(install.binary)), 13)
    assert "tally.db changed since" in message and "--force" in message and "--abandon" in message
    assert install.dump() == written
    assert journal_of(install)["state"] == "stuck"
    kept = run_invoke("recover", "--binary", str(install.binary), "--abandon")
    assert kept.returncode == 0, kept.stderr
    assert install.dump() == written


# --- 4: permissions -------------------------------------------------------------------------


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_snapshots_are_private(release: Release, install: Install) -> None:
    old_umask = os.umask(0o022)
    try:
        result = do_update(release, install)
    finally:
        os.umask(old_umask)
    assert result.snapshot is not None
    found = modes(result.snapshot)
    assert found == {".": 0o700, "binary": 0o600, "data": 0o700, "data/0-tally.db": 0o600, "snapshot.json": 0o600}
    assert stat.S_IMODE(result.snapshot.parent.stat().st_mode) == 0o700


def test_rollback_keeps_mode_owner_and_group(release: Release, install: Install) -> None:
    install.database.chmod(0o600)
    install.data.chmod(0o700)
    install.binary.chmod(0o750)
    owner = (12345, 23456) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(install.database, *owner)
    with pytest.raises(UpdateError, match="rolled back"):
        update(install.binary, str(release.archive), release.public_key, [install.database],
               env={**install.env, "TALLY_FAIL_MIGRATION": "3"})  # fmt: skip
    for path, mode in ((install.database, 0o600), (install.data, 0o700), (install.binary, 0o750)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert (install.database.stat().st_uid, install.database.stat().st_gid) == owner
    do_update(release, install)
    assert stat.S_IMODE(install.binary.stat().st_mode) == 0o750, "the new binary got another mode"
    assert run_invoke("rollback", "--binary", str(install.binary), "--yes").returncode == 0
    assert stat.S_IMODE(install.database.stat().st_mode) == 0o600
    assert (install.database.stat().st_uid, install.database.stat().st_gid) == owner


# --- 6: a full disk -------------------------------------------------------------------------


def moved(install: Install, binary_dir: Path | None = None, data_dir: Path | None = None) -> Install:
    """The same installation with its binary and/or data folder somewhere else."""
    binary = install.binary
    if binary_dir is not None:
        binary = binary_dir / "tally"
        shutil.copy2(install.binary, binary)
    data = install.data
    if data_dir is not None:
        for path in install.data.iterdir():
            shutil.copy2(path, data_dir / path.name)
        data = data_dir
    return Install(binary, data, data / "tally.db", {"TALLY_HOME": str(data)})


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill a filesystem with a real file until it is full, then give back `leave` bytes."""
    filler = folder / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 16))
                handle.flush()
        except OSError:
            pass
    with filler.open("r+b") as handle:
        handle.truncate(max(filler.stat().st_size - leave, 0))
    return filler


@pytest.mark.parametrize("where", ["binary", "data"])
def test_free_space_is_checked_on_every_filesystem_written(
    release: Release, install: Install, tmp_path: Path, small_fs: Callable[[str, int], Path], where: str
) -> None:
    if where == "binary":
        target = moved(install, binary_dir=small_fs("small", install.binary.stat().st_size + (512 << 10)))
    else:
        target = moved(install, data_dir=small_fs("small", 256 << 10))
    before = target.digest(), target.dump()
    state = tmp_path / "state"  # on the big disk: only the small filesystem is short
    result = cli_update(release, target, "--state-dir", str(state))
    message = one_error(result, 13)
    folder = target.binary.parent if where == "binary" else target.data
    assert f"not enough disk space in {folder}:" in message and "nothing was changed" in message
    assert (target.digest(), target.dump()) == before
    assert not list(state.glob("snapshots/*"))


@pytest.mark.parametrize("where", ["binary", "state"])
def test_disk_full_while_writing_is_one_line_and_changes_nothing(
    release: Release, install: Install, tmp_path: Path, small_fs: Callable[[str, int], Path], where: str
) -> None:
    """The free-space check is told there is room (as when another writer fills
    the disk meanwhile): the real ENOSPC must end as one line, nothing changed."""
    if where == "binary":
        target, state = moved(install, binary_dir=small_fs("small", install.binary.stat().st_size + (512 << 10))), None
    else:
        target, state = install, small_fs("state", 256 << 10)
    before = target.digest(), target.dump()
    with pytest.raises(UpdateError) as caught:
        update(target.binary, str(release.archive), release.public_key, [target.database], env=target.env,
               state_dir=state, free_space=lambda _: 1 << 40)  # fmt: skip
    message = str(caught.value)
    assert "no space left on the device" in message and "nothing was changed" in message
    assert "\n" not in message
    assert (target.digest(), target.dump()) == before
    assert sorted(p.name for p in target.binary.parent.iterdir() if not p.name.startswith(".tally-update")) == ["tally"]
    journal = json.loads(((state or state_dir(target)) / "journal.json").read_text()) if where == "state" else None
    assert journal is None or journal["state"] == "rolled-back"
    assert not list((state or state_dir(target)).glob("snapshots/*/*"))


def test_restore_by_rename_needs_no_free_space(
    release: Release, install: Install, small_fs: Callable[[str, int], Path]
) -> None:
    disk = small_fs("disk", 12 << 20)
    (disk / "bin").mkdir()
    (disk / "data").mkdir()
    target = moved(install, binary_dir=disk / "bin", data_dir=disk / "data")
    before = target.digest(), target.dump()
    kill_at(release, target, "migrated")
    fill(disk, leave=64 << 10)  # room for the journal, not for a copy of anything
    recovered = run_invoke("recover", "--binary", str(target.binary))
    assert recovered.returncode == 0, recovered.stderr
    assert (target.digest(), target.dump()) == before
    assert journal_of(target)["state"] == "rolled-back"


def test_disk_full_during_a_restore_across_filesystems_leaves_a_consistent_journal(
    release: Release, install: Install, small_fs: Callable[[str, int], Path]
) -> None:
    target = moved(install, data_dir=small_fs("smalldata", 4 << 20))
    before = target.digest(), target.dump()
    kill_at(release, target, "migrated")
    migrated = hashlib.sha256(target.database.read_bytes()).hexdigest()
    filler = fill(target.data)
    message = one_error(run_invoke("recover", "--binary", str(target.binary)), 13)
    assert f"not enough disk space in {target.data}" in message and "--force" in message
    assert journal_of(target)["state"] == "stuck"
    assert hashlib.sha256(target.database.read_bytes()).hexdigest() == migrated, "the live data was touched"
    filler.unlink()
    forced = run_invoke("recover", "--binary", str(target.binary), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target.digest(), target.dump()) == before


# --- papercuts ------------------------------------------------------------------------------


def test_negative_keep_is_refused_before_anything_is_touched(release: Release, install: Install) -> None:
    do_update(release, install)
    snapshots = sorted(state_dir(install).glob("snapshots/*"))
    assert len(snapshots) == 1
    with pytest.raises(UsageError, match=r"keep = -3 is negative"):
        do_update(release, install, keep=-3)
    assert one_error(cli_update(release, install, "--keep", "-3"), 2)
    assert sorted(state_dir(install).glob("snapshots/*")) == snapshots


def test_keep_0_does_not_report_a_deleted_snapshot(release: Release, install: Install) -> None:
    result = do_update(release, install, keep=0)
    assert result.snapshot is None
    assert not list(state_dir(install).glob("snapshots/*"))
    again = cli_update(release, install, "--keep", "0")
    assert again.returncode == 0, again.stderr
    assert "no snapshot kept" in again.stderr and "snapshots/" not in again.stderr


@pytest.mark.parametrize("task", ["snapshots", "rollback", "recover"])
def test_a_missing_binary_is_an_error(tmp_path: Path, task: str) -> None:
    message = one_error(run_invoke(task, "--binary", str(tmp_path / "nonexistent" / "tally")), 2)
    assert "nonexistent/tally is missing, not an installed binary" in message
    assert not (tmp_path / "nonexistent").exists()


def test_rollback_says_what_is_lost_and_asks_for_yes(release: Release, install: Install) -> None:
    before_binary, before_dump = install.digest(), install.dump()
    result = do_update(release, install)
    assert install.run("add", "apples", "10").returncode == 0
    snapshot = json.loads((result.snapshot / "snapshot.json").read_text())  # type: ignore[operator]
    message = one_error(run_invoke("rollback", "--binary", str(install.binary)), 2)
    assert snapshot["created"] in message and "tally.db" in message and "--yes" in message
    assert install.run("list").stdout == "apples = 15\npears = 1\n"
    done = run_invoke("rollback", "--binary", str(install.binary), "--yes")
    assert done.returncode == 0, done.stderr
    assert install.digest() == before_binary and install.dump() == before_dump


def test_recover_cleans_what_a_killed_updater_left(release: Release, install: Install, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    kill_at(release, install, "snapshotted", extra={"TMPDIR": str(scratch)})
    assert list(install.binary.parent.glob(".tally.new.*.partial")), "the scenario left no staged binary"
    assert list(scratch.iterdir()), "the scenario left no scratch folder"
    recovered = run_invoke("recover", "--binary", str(install.binary), env={"TMPDIR": str(scratch)})
    assert recovered.returncode == 0, recovered.stderr
    assert not list(install.binary.parent.glob(".tally.*")), list(install.binary.parent.iterdir())
    assert not list(scratch.iterdir())


def test_artifact_that_is_a_folder_says_so(release: Release, install: Install) -> None:
    message = one_error(cli_update(release, install, archive=release.folder), 2)
    assert f"{release.folder} is a folder, not an archive" in message and str(release.archive) in message


def test_update_by_receipt_records_the_new_version(release: Release, install: Install, tmp_path: Path) -> None:
    receipt = tmp_path / "install-receipt.json"
    old = {"app": "tally", "version": "0.1.0", "target": HOST, "install_dir": str(install.binary.parent),
           "source": "https://example.invalid/tally.tar.xz", "sha256": "0" * 64, "binaries": ["tally"],
           "installed_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    receipt.write_text(json.dumps(old))
    receipt.chmod(0o640)
    args = ["--artifact", str(release.archive), "--public-key", str(key_file(release))]
    result = run_invoke("update", "--receipt", str(receipt), *args, "--data", str(install.database), env=install.env)
    assert result.returncode == 0, result.stderr
    document = json.loads(receipt.read_text())
    digest = hashlib.sha256(release.archive.read_bytes()).hexdigest()
    assert document == old | {"version": "0.2.0", "sha256": digest, "source": str(release.archive)}
    assert stat.S_IMODE(receipt.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".install-receipt")]


def test_edited_trusted_comment_is_named(release: Release, install: Install, tmp_path: Path) -> None:
    folder = tmp_path / "edited"
    shutil.copytree(release.folder, folder)
    signature = folder / f"{release.archive.name}.minisig"
    lines = signature.read_text().splitlines()
    lines[2] += " (edited)"
    signature.write_text("\n".join(lines) + "\n")
    message = one_error(cli_update(release, install, archive=folder / release.archive.name), 13)
    assert f"{signature.name}: its trusted comment 'file:{release.archive.name} (edited)'" in message
    assert "the file was changed" not in message


# --- the same member checks for a .zip (the Windows archives) --------------------------------


def zip_artifact(folder: Path, members: list[tuple[zipfile.ZipInfo, bytes]], listed: list[Member]) -> Artifact:
    archive = folder / "tally-x86_64-pc-windows-msvc.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return Artifact(archive, digest, "x86_64-pc-windows-msvc", "0.2.0", ("tally.exe",), tuple(listed))


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system, info.external_attr = 3, mode << 16
    return info


def test_zip_members_are_checked_and_extracted_within_their_signed_size(tmp_path: Path) -> None:
    top = "tally-x86_64-pc-windows-msvc"
    exe = os.urandom(4096)
    good = Member(f"{top}/tally.exe", len(exe), hashlib.sha256(exe).hexdigest())
    artifact = zip_artifact(tmp_path, [(zip_info(good.path, 0o100755), exe)], [good])
    check_members(artifact)
    extract_binary(artifact, "tally.exe", tmp_path / "staged")
    assert (tmp_path / "staged").read_bytes() == exe
    bomb = zip_artifact(tmp_path, [(zip_info(good.path, 0o100755), bytes(8 << 20))], [good])
    with pytest.raises(UpdateError, match=r"is 8,388,608 bytes, but the signed manifest says 4,096"):
        check_members(bomb)
    link = zip_artifact(tmp_path, [(zip_info(good.path, 0o120777), b"C:/Windows/notepad.exe")], [good])
    with pytest.raises(UpdateError, match=r"tally.exe is a symlink, not a regular file"):
        check_members(link)
    escape = zip_artifact(tmp_path, [(zip_info("../tally.exe", 0o100644), exe)], [good])
    with pytest.raises(UpdateError, match=r"unsafe path '../tally.exe'"):
        check_members(escape)
    (tmp_path / "truncated.zip").write_bytes(artifact.archive.read_bytes()[:-100])
    truncated = Artifact(tmp_path / "truncated.zip", "", artifact.target, "0.2.0", ("tally.exe",), (good,))
    with pytest.raises(UpdateError, match=r"truncated.zip is truncated or corrupt"):
        check_members(truncated)
