"""Snapshots: the binary and every SQLite file (copied by the kernel under
SQLite's write lock) put into a private folder before the swap; restore
(checked before the first file is touched, streamed, and resumable); listing
and pruning; and the free-space check for everything an update writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain.atomic import fsync_dir, write_json
from toolchain.digest import sha256_file
from toolchain.errors import UpdateError, UsageError
from toolchain.update.files import (
    CHUNK,
    PRIVATE_DIR,
    PRIVATE_FILE,
    apply_ownership,
    copy_private,
    existing_ancestor,
    os_reason,
    ownership,
    state_digest,
)

SNAPSHOTS = "snapshots"


def _sidecars(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(folder, PRIVATE_DIR)  # noqa: PTH101 - exact mode, whatever the umask


LOCK_WAIT = 30.0  # seconds to wait for another writer's transaction to end
FICLONE = 0x40049409  # linux/fs.h: share the extents (btrfs, xfs), no bytes copied


@contextlib.contextmanager
def _write_locked(database: Path, timeout: float) -> Iterator[None]:
    """Hold SQLite's write lock with every committed page in the main file.

    Under the lock no writer can commit, so the file cannot change while it is
    copied; a checkpoint first moves what the WAL holds into it. A writer that
    keeps its transaction open past `timeout` makes this raise, never copy."""
    deadline = time.monotonic() + timeout
    connection = sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=timeout, isolation_level=None)
    checkpointer = sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=0, isolation_level=None)
    try:
        # Empties the WAL when nobody writes, then the live file has no WAL to
        # replay; without waiting, as the loop below copes with a busy one.
        connection.execute("PRAGMA busy_timeout = 0")
        with contextlib.suppress(sqlite3.OperationalError):  # locked: BEGIN IMMEDIATE waits below
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        while True:
            _begin_immediate(connection, database, deadline, timeout)
            # A second connection: a checkpoint cannot run inside this one's transaction.
            busy, frames, copied = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and frames == copied:  # 0, -1, -1 outside WAL mode
                break
            connection.execute("ROLLBACK")  # a reader needs older pages, or another checkpoint runs: let it finish
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"{database} cannot be checkpointed: a reader kept an old snapshot open for {timeout:g} s"
                )
            time.sleep(0.05)
        yield
        connection.execute("ROLLBACK")
    finally:
        checkpointer.close()
        connection.close()


def _begin_immediate(connection: sqlite3.Connection, database: Path, deadline: float, timeout: float) -> None:
    """Take the write lock, polling every millisecond: SQLite's own busy wait
    backs off to 100 ms sleeps and rarely lands between a busy writer's commits."""
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"{database} stays locked by another writer (waited {timeout:g} s): {exc}"
                ) from None
        time.sleep(0.001)


def _kernel_copy(source: Path, destination: Path) -> None:
    """Copy into the new, empty destination without passing the bytes through
    Python: a reflink where the filesystem has one, else copy_file_range, else
    (another OS) a streamed copy."""
    with source.open("rb") as reader, destination.open("r+b") as writer:
        with contextlib.suppress(OSError, ImportError):
            import fcntl

            fcntl.ioctl(writer.fileno(), FICLONE, reader.fileno())
            os.fsync(writer.fileno())
            return
        size = os.fstat(reader.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                sent = os.copy_file_range(reader.fileno(), writer.fileno(), size - offset, offset, offset)
                if sent == 0:
                    break
                offset += sent
        except (AttributeError, OSError) as exc:
            if offset or (isinstance(exc, OSError) and exc.errno not in (errno.ENOSYS, errno.EXDEV, errno.EINVAL)):
                raise
            shutil.copyfileobj(reader, writer, CHUNK)
        os.fsync(writer.fileno())


def _file_record(path: Path) -> dict[str, Any] | None:
    """Size, mtime and SHA-256 of one file, or None when it does not exist."""
    try:
        info = path.stat()
        return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256_file(path)}
    except FileNotFoundError:
        return None


def live_record(database: Path) -> dict[str, Any]:
    """What a database looked like (itself, its -wal and -shm: size, mtime,
    digest), and its content state (file + WAL) that recovery compares."""
    return {
        "state": state_digest(database),
        "files": {suffix or "db": _file_record(database.with_name(database.name + suffix))
                  for suffix in ("", "-wal", "-shm")},
    }  # fmt: skip


def snapshot(
    binary: Path,
    data_files: list[Path],
    folder: Path,
    *,
    lock_timeout: float = LOCK_WAIT,
    receipt: Path | None = None,
) -> dict[str, Any]:
    """Copy the binary, every SQLite file and the install receipt into folder
    (folders 0700, files 0600: a snapshot holds the app's data). Each database
    is copied with its write lock held after a checkpoint, so the copy is byte
    for byte the live file; its digest is taken from the live file while the
    kernel copies, and what the live files looked like is recorded under the
    same lock, so a restore can tell whether anything was written since."""
    private_dir(folder)
    private_dir(folder / "data")
    copy_private(binary, folder / "binary")
    receipt_entry: dict[str, Any] | None = None
    if receipt is not None and receipt.is_file():
        copy_private(receipt, folder / "receipt")
        receipt_entry = {"path": str(receipt), "sha256": sha256_file(folder / "receipt"), **ownership(receipt)}
    entries = []
    for index, database in enumerate(data_files):
        copy = folder / "data" / f"{index}-{database.name}"
        if database.exists():
            owner = ownership(database)
            os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
            os.chmod(copy, PRIVATE_FILE)  # noqa: PTH101 - exact mode, whatever the umask
            with _write_locked(database, lock_timeout), ThreadPoolExecutor(1) as hasher:
                digest = hasher.submit(sha256_file, database)  # hashlib lets go of the GIL: both at once
                _kernel_copy(database, copy)
                entries.append(
                    {"path": str(database), "copy": copy.name, "existed": True, "sha256": digest.result(),
                     "live": live_record(database), **owner}
                )  # fmt: skip
        else:
            entries.append({"path": str(database), "copy": None, "existed": False, "sha256": None,
                            "live": live_record(database)})  # fmt: skip
    binary_entry: dict[str, Any] = {"path": str(binary), "sha256": sha256_file(folder / "binary")}
    binary_entry.update(ownership(binary))
    manifest: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "binary": binary_entry,
        "data": entries,
        **({"receipt": receipt_entry} if receipt_entry else {}),
    }
    write_json(folder / "snapshot.json", manifest, PRIVATE_FILE, durable=True)
    fsync_dir(folder / "data")
    return manifest


def read_snapshot(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / "snapshot.json").read_text())
        return manifest
    except (OSError, ValueError) as exc:
        raise UpdateError(
            f"the snapshot {folder} is unreadable ({os_reason(exc)})", hint="it cannot be restored"
        ) from None


def _restore_plan(folder: Path, manifest: dict[str, Any]) -> list[tuple[str, Path, Path | None, dict[str, Any]]]:
    """What restoring takes, checked before anything is touched: each copy is
    there and intact (or was put back already), and there is room for copies
    that cross filesystems."""
    entries = [
        ("file", Path(e["path"]), folder / "data" / e["copy"] if e["copy"] else None, e) for e in manifest["data"]
    ]
    if manifest.get("receipt"):
        entries.append(("receipt", Path(manifest["receipt"]["path"]), folder / "receipt", manifest["receipt"]))
    entries.append(("binary", Path(manifest["binary"]["path"]), folder / "binary", manifest["binary"]))
    plan: list[tuple[str, Path, Path | None, dict[str, Any]]] = []
    space: dict[int, tuple[Path, int]] = {}
    for kind, live, copy, entry in entries:
        if kind == "file" and not entry["existed"]:
            plan.append(("remove", live, None, entry))
            continue
        assert copy is not None
        if not copy.exists():
            if state_digest(live) == entry["sha256"]:
                continue  # put back by an earlier, interrupted restore
            raise UpdateError(
                f"the snapshot copy of {live} is missing from {folder}", hint="it cannot be restored from there"
            )
        if sha256_file(copy) != entry["sha256"]:
            raise UpdateError(
                f"the snapshot copy {copy} of {live} is damaged (its SHA-256 does not match snapshot.json)",
                hint="it cannot be restored from there",
            )
        parent = existing_ancestor(live.parent)
        if parent.stat().st_dev != copy.stat().st_dev:
            device = parent.stat().st_dev
            space[device] = (parent, space.get(device, (parent, 0))[1] + copy.stat().st_size)
        plan.append(("put" if kind == "file" else f"put-{kind}", live, copy, entry))
    for parent, needed in space.values():
        free = shutil.disk_usage(parent).free
        if free < needed:
            raise UpdateError(
                f"not enough disk space in {parent} to restore the snapshot: {free:,} bytes free, {needed:,} needed",
                hint="free some space there",
            )
    return plan


def _stream_verified(copy: Path, partial: Path, expected: str) -> None:
    """Copy in CHUNK-sized reads (never a whole file in memory), hashing what
    is written, and refuse the result unless it has the snapshot's digest."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out, copy.open("rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
            out.write(view[:read])
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != expected:
        raise UpdateError(f"the copy of {copy} changed while it was restored", hint="run the restore again")


def _put_back(copy: Path, live: Path, entry: dict[str, Any]) -> None:
    """Move a snapshot copy over the live file: a rename where both are on one
    filesystem (no space needed, and the file _restore_plan checked is the one
    put back), else a streamed, verified copy and a rename."""
    if live.parent.stat().st_dev == copy.stat().st_dev:
        apply_ownership(copy, entry)
        os.replace(copy, live)
    else:
        partial = live.with_name(f".{live.name}.{os.getpid()}.partial")
        try:
            _stream_verified(copy, partial, entry["sha256"])
            apply_ownership(partial, entry)
            os.replace(partial, live)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    fsync_dir(live.parent)


def restore(folder: Path) -> int:
    """Put back the binary, data and receipt of a snapshot, keeping each file's
    mode, owner and group; each copy's digest is proven before the first file
    is touched, and again on the bytes written where a copy crosses
    filesystems. A second run finishes an interrupted one. Returns how many
    data files the snapshot holds (each was put back, or removed where it had
    not existed), for messages that never claim more than that."""
    manifest = read_snapshot(folder)
    for action, live, copy, entry in _restore_plan(folder, manifest):
        for sidecar in _sidecars(live) if action in ("put", "remove") else []:
            sidecar.unlink(missing_ok=True)  # a stale WAL would be replayed onto the old file
        if action == "remove":
            live.unlink(missing_ok=True)
            continue
        assert copy is not None
        _put_back(copy, live, entry)
    return len(manifest["data"])


def restored_what(binary: str, data_files: int) -> str:
    """The one wording of what a restore put back: never "data" when none was snapshotted."""
    if data_files:
        return f"{binary} and {data_files} data file{'s' if data_files != 1 else ''}"
    return f"{binary} (no data files are declared, so no data was restored)"


def list_snapshots(state_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder in sorted((state_dir / SNAPSHOTS).glob("*")):
        with contextlib.suppress(OSError, ValueError):
            found.append((folder, json.loads((folder / "snapshot.json").read_text())))
    return found


def check_keep(keep: int) -> None:
    if keep < 0:
        raise UsageError(
            f"keep = {keep} is negative (it would delete every snapshot)",
            hint="pass --keep 0 or more, or set [update] keep to 0 or more",
        )


def prune(state_dir: Path, keep: int) -> None:
    check_keep(keep)
    complete = [folder for folder, _ in list_snapshots(state_dir)]
    for folder in complete[: max(len(complete) - keep, 0)]:
        shutil.rmtree(folder, ignore_errors=True)


def _filesystem_needs(
    binary: Path, data_files: list[Path], state_dir: Path, new_size: int
) -> dict[int, tuple[Path, int, list[str]]]:
    """Bytes each filesystem the update writes must have free: the new binary
    beside the old, the snapshot in the state dir, migration room beside each
    data file, and restore copies where a snapshot is on another filesystem."""
    needs: dict[int, tuple[Path, int, list[str]]] = {}

    def add(folder: Path, size: int, what: str) -> None:
        where = existing_ancestor(folder)
        device = where.stat().st_dev
        known = needs.get(device, (where, 0, []))
        needs[device] = (known[0], known[1] + size, [*known[2], what])

    def size_of(database: Path) -> int:
        return sum(p.stat().st_size for p in [database, *_sidecars(database)] if p.exists())

    state_device = existing_ancestor(state_dir).stat().st_dev
    binary_size = binary.stat().st_size
    add(binary.parent, new_size, f"the new {binary.name}")
    add(state_dir, binary_size + sum(size_of(d) for d in data_files), "the snapshot")
    if existing_ancestor(binary.parent).stat().st_dev != state_device:
        add(binary.parent, binary_size, f"restoring {binary.name}")
    for database in data_files:
        add(database.parent, size_of(database), f"migrating {database.name}")
        if existing_ancestor(database.parent).stat().st_dev != state_device:
            add(database.parent, size_of(database), f"restoring {database.name}")
    return needs


def check_space(
    binary: Path, data_files: list[Path], state_dir: Path, new_size: int, free_space: Callable[[Path], int]
) -> None:
    for folder, size, whats in _filesystem_needs(binary, data_files, state_dir, new_size).values():
        needed = int(size * 1.1) + (1 << 20)
        free = free_space(folder)
        if free < needed:
            raise UpdateError(
                f"not enough disk space in {folder}: {free:,} bytes free, {needed:,} needed for {', '.join(whats)}",
                hint="free some space there; nothing was changed",
            )
