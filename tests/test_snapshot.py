"""Snapshots copied under SQLite's write lock, and restores that stream: real
SQLite files, real locks held by other connections, a real memory limit."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import on_ci

from toolchain import REPO_ROOT
from toolchain.errors import UpdateError
from toolchain.update import snapshot as snapshot_module
from toolchain.update.snapshot import restore, snapshot


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def make_database(path: Path, mode: str, rows: int = 200) -> None:
    with sqlite3.connect(path) as setup:
        setup.execute(f"PRAGMA journal_mode = {mode}")
        setup.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")
        setup.executemany("INSERT INTO notes (body) VALUES (randomblob(3000))", [()] * rows)
    setup.close()


def rows_in(path: Path) -> int:
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count: int = check.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
    check.close()
    return count


def app(tmp_path: Path) -> Path:
    binary = tmp_path / "app"
    binary.write_bytes(b"binary")
    return binary


def test_snapshot_is_the_live_file_byte_for_byte_with_commits_only_in_the_wal(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_database(database, "WAL")
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # these commits stay in the WAL
    writer.executemany("INSERT INTO notes (body) VALUES (randomblob(3000))", [()] * 300)
    assert (tmp_path / "app.db-wal").stat().st_size > 300 * 3000
    try:
        manifest = snapshot(app(tmp_path), [database], tmp_path / "snap")
        copy = tmp_path / "snap" / "data" / manifest["data"][0]["copy"]
        assert copy.read_bytes() == database.read_bytes()
        assert manifest["data"][0]["sha256"] == sha256(copy)
        assert rows_in(copy) == 500
        # The open, idle connection goes on writing after the snapshot.
        writer.execute("INSERT INTO notes (body) VALUES (x'00')")
    finally:
        writer.close()
    assert rows_in(database) == 501


def test_snapshot_waits_for_a_reader_on_an_old_snapshot_of_the_wal(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_database(database, "WAL")
    reader = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM notes").fetchone()  # pins the 200-row state
    with sqlite3.connect(database, isolation_level=None) as writer:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.executemany("INSERT INTO notes (body) VALUES (randomblob(3000))", [()] * 100)
    writer.close()
    with pytest.raises(sqlite3.OperationalError, match="a reader kept an old snapshot open"):
        snapshot(app(tmp_path), [database], tmp_path / "refused", lock_timeout=0.5)
    threading.Timer(0.5, lambda: reader.execute("COMMIT")).start()
    manifest = snapshot(app(tmp_path), [database], tmp_path / "snap", lock_timeout=20)
    reader.close()
    assert rows_in(tmp_path / "snap" / "data" / manifest["data"][0]["copy"]) == 300


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_a_held_write_lock_makes_the_snapshot_wait_or_refuse(tmp_path: Path, mode: str) -> None:
    database = tmp_path / "app.db"
    make_database(database, mode)
    before = database.read_bytes()
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA cache_size = 5")  # spill the open transaction's pages to the file or WAL
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany("INSERT INTO notes (body) VALUES (randomblob(3000))", [()] * 400)
    if mode == "DELETE":
        assert database.read_bytes() != before, "the half-written transaction reached the file"
    with pytest.raises(sqlite3.OperationalError, match="locked by another writer"):
        snapshot(app(tmp_path), [database], tmp_path / "refused", lock_timeout=0.5)
    assert not list((tmp_path / "refused" / "data").iterdir()) or all(
        p.stat().st_size == 0 for p in (tmp_path / "refused" / "data").iterdir()
    )
    started = time.monotonic()
    threading.Timer(0.7, lambda: writer.execute("COMMIT")).start()
    manifest = snapshot(app(tmp_path), [database], tmp_path / "snap", lock_timeout=20)
    assert time.monotonic() - started >= 0.6, "it copied without waiting for the lock"
    writer.close()
    copy = tmp_path / "snap" / "data" / manifest["data"][0]["copy"]
    assert rows_in(copy) == 600
    assert copy.read_bytes() == database.read_bytes()


LIMITED_RESTORE = """
import resource, sys
from pathlib import Path
def peak_rss_kib():
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's from before exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from toolchain.update.snapshot import restore
restore(Path(sys.argv[1]))
print(peak_rss_kib())
"""


@pytest.mark.parametrize("where", ["same filesystem", "across filesystems"])
def test_restore_streams_a_file_larger_than_its_memory_limit(tmp_path: Path, where: str) -> None:
    if where == "across filesystems" and not Path("/dev/shm").is_dir() and not on_ci():
        pytest.skip("no tmpfs at /dev/shm here")  # CI has one: there the test must run
    database = tmp_path / "app.db"
    make_database(database, "WAL")
    with tempfile.TemporaryDirectory(dir="/dev/shm" if where == "across filesystems" else tmp_path) as other:
        folder = Path(other) / "snap"
        manifest = snapshot(app(tmp_path), [database], folder)
        # The copy grows to 160 MB of holes (no disk or RAM): SQLite reads the
        # pages its header counts, so it is still the same database.
        copy = folder / "data" / manifest["data"][0]["copy"]
        os.truncate(copy, 160 << 20)
        manifest["data"][0]["sha256"] = sha256(copy)
        (folder / "snapshot.json").write_text(json.dumps(manifest))
        database.write_bytes(b"changed since")
        limit = 100 << 20  # the interpreter needs about 35 MB of address space
        done = subprocess.run(
            [sys.executable, "-c", LIMITED_RESTORE, str(folder), str(limit)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) * 1024 < 64 << 20  # peak RSS, in KiB on Linux
    assert database.stat().st_size == 160 << 20
    assert rows_in(database) == 200


def test_restore_checks_the_bytes_it_writes_across_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/dev/shm").is_dir() and not on_ci():
        pytest.skip("no tmpfs at /dev/shm here")  # CI has one: there the test must run
    database = tmp_path / "app.db"
    make_database(database, "WAL")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        folder = Path(other) / "snap"
        snapshot(app(tmp_path), [database], folder)
        manifest = json.loads((folder / "snapshot.json").read_text())
        copy = folder / "data" / manifest["data"][0]["copy"]
        database.write_bytes(b"changed since")
        # Damage the copy after the plan has checked it: the write must notice.
        checked = snapshot_module._restore_plan

        def plan_then_damage(*args: Any) -> Any:
            plan = checked(*args)
            with copy.open("r+b") as handle:
                handle.seek(100)
                handle.write(b"\xff")
            return plan

        monkeypatch.setattr(snapshot_module, "_restore_plan", plan_then_damage)
        with pytest.raises(UpdateError, match="changed while it was restored"):
            restore(folder)
    assert database.read_bytes() == b"changed since", "a damaged copy was put back"
    assert not list(tmp_path.glob(".app.db.*.partial"))
