"""Safe in-place update of an installed binary and its SQLite data.

verify the artifact → lock → journal → snapshot (binary + every SQLite
file, through SQLite's online backup API) → atomic swap → `new migrate` and
`new doctor` → commit and prune, or restore everything from the snapshot.
Every step is written to a journal first, so an updater killed at any
point is finished or undone by the next `update` or `recover`: the result
is fully old or fully new, never a mix.

`update()` is the library entry point an app's own `self-update` can call.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import catalog
from toolchain.atomic import fsync_dir, write_atomic
from toolchain.digest import sha256_file
from toolchain.errors import ToolchainError, UpdateError
from toolchain.log import log
from toolchain.signing import parse_public_key, verify_file
from toolchain.targets import host_platform

JOURNAL = "journal.json"
LOCK = "update.lock"
SNAPSHOTS = "snapshots"
# Test hook: the updater SIGKILLs itself right after writing this journal state.
CRASH_ENV = "TOOLCHAIN_UPDATE_CRASH_AT"
STATES = (
    "verified", "snapshotting", "snapshotted", "swapping", "swapped",
    "migrating", "migrated", "checked", "committed", "done", "rolling-back", "rolled-back",
)  # fmt: skip
# Before "snapshotted" nothing live was touched; from "committed" on the new
# version has passed its checks: in between, recovery restores the snapshot.
UNTOUCHED = {"verified", "snapshotting"}
FINISHED = {"done", "rolled-back"}


@dataclass(frozen=True)
class Artifact:
    archive: Path
    sha256: str
    target: str
    version: str
    binaries: tuple[str, ...]


@dataclass(frozen=True)
class UpdateResult:
    ok: bool
    state: str
    old_version: str | None
    new_version: str
    snapshot: Path | None
    output: str = ""
    steps: tuple[str, ...] = field(default_factory=tuple)


def default_state_dir(binary: Path) -> Path:
    return binary.parent / f".{binary.name}-update"


def _copy_durably(source: Path, destination: Path) -> None:
    write_atomic(destination, source.read_bytes(), source.stat().st_mode & 0o7777, durable=True)


# --- fetching and verifying the artifact -------------------------------------------------


def _fetch(source: str, name: str, into: Path) -> Path:
    """A sibling file of the artifact: from a folder, or from a URL's folder."""
    out = into / name
    if "://" in source:
        url = source.rsplit("/", 1)[0] + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                out.write_bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise UpdateError(f"cannot download {url}: {exc}", hint="check the artifact URL") from exc
        return out
    local = Path(source).parent / name
    if not local.is_file():
        raise UpdateError(
            f"{local} is missing", hint="the archive needs its .sha256, .minisig and manifest.json beside it"
        )
    return local


def verify_artifact(source: str, public_key_text: str, work: Path) -> Artifact:
    """Digest, signature and target of the new archive, before anything is touched."""
    name = source.rsplit("/", 1)[-1]
    archive = _fetch(source, name, work)
    checksum = _fetch(source, f"{name}.sha256", work).read_text().split()
    digest = sha256_file(archive)
    if not checksum or checksum[0] != digest:
        raise UpdateError(f"{name}: SHA-256 does not match {name}.sha256", hint="the download is corrupt or tampered")
    public = parse_public_key(public_key_text)
    try:
        verify_file(archive, _fetch(source, f"{name}.minisig", work), public)
        manifest_path = _fetch(source, "manifest.json", work)
        verify_file(manifest_path, _fetch(source, "manifest.json.minisig", work), public)
    except ToolchainError as exc:
        raise UpdateError(f"{name}: {exc.message}", hint="refusing an artifact that is not signed by your key") from exc
    manifest = json.loads(manifest_path.read_text())
    entry = next((a for a in manifest.get("artifacts", []) if a.get("name") == name), None)
    if entry is None or entry.get("sha256") != digest:
        raise UpdateError(f"{name} is not in the signed manifest with this digest", hint="use the release's own files")
    target = entry.get("target") or ""
    host = host_platform()
    known = catalog.current()
    runnable = {
        t for t in (known.host_triple(), target) if t in known.targets and known.target(t).run.get(host) == "native"
    }
    if target not in runnable:
        raise UpdateError(
            f"{name} is built for {target}, which does not run on this {host} machine",
            hint="pick the archive for this machine",
        )
    version = next((a["version"] for a in manifest.get("apps", []) if a["name"] == entry.get("app")), "")
    return Artifact(archive, digest, target, version, tuple(entry.get("binaries", ())))


def extract_binary(artifact: Artifact, name: str, destination: Path) -> None:
    top = artifact.archive.name.removesuffix(".tar.xz").removesuffix(".zip")
    member = f"{top}/{name}"
    if artifact.archive.name.endswith(".zip"):
        with zipfile.ZipFile(artifact.archive) as archive:
            data = archive.read(member)
    else:
        with tarfile.open(artifact.archive) as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise UpdateError(f"{artifact.archive.name} has no {member}", hint="check the archive")
            data = handle.read()
    write_atomic(destination, data, 0o755, durable=True)


# --- lock and journal ----------------------------------------------------------------------


@contextlib.contextmanager
def exclusive_lock(state_dir: Path, wait: float) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK).open("a+")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                _try_lock(handle)
                break
            except (BlockingIOError, PermissionError):
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise UpdateError(
                        f"another update of this installation is running (pid {holder})",
                        hint="wait for it, or pass --wait SECONDS",
                    ) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing drops the flock


def _try_lock(handle: Any) -> None:
    """Take an exclusive lock without waiting (flock on Unix, msvcrt on Windows)."""
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Journal:
    def __init__(self, state_dir: Path, record: dict[str, Any]) -> None:
        self.path = state_dir / JOURNAL
        self.record = record

    @classmethod
    def read(cls, state_dir: Path) -> Journal | None:
        try:
            return cls(state_dir, json.loads((state_dir / JOURNAL).read_text()))
        except (OSError, ValueError):
            return None

    @property
    def state(self) -> str:
        return str(self.record.get("state", ""))

    def advance(self, state: str, **details: Any) -> None:
        assert state in STATES
        self.record.update(details)
        self.record["state"] = state
        self.record.setdefault("steps", []).append([state, datetime.now(UTC).isoformat(timespec="seconds")])
        write_atomic(self.path, json.dumps(self.record, indent=2, sort_keys=True) + "\n", durable=True)
        if os.environ.get(CRASH_ENV) == state:
            os.kill(os.getpid(), signal.SIGKILL)


# --- snapshots -----------------------------------------------------------------------------


def _sidecars(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def snapshot(binary: Path, data_files: list[Path], folder: Path) -> dict[str, Any]:
    """Copy the binary and back up every SQLite file consistently into folder."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    _copy_durably(binary, folder / "binary")
    entries = []
    for index, database in enumerate(data_files):
        copy = folder / "data" / f"{index}-{database.name}"
        if database.exists():
            # The online backup API reads through SQLite: a consistent copy
            # even while a writer commits, with the WAL's content included.
            source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
            target = sqlite3.connect(copy)
            try:
                with target:
                    source.backup(target)
                target.execute("PRAGMA journal_mode = DELETE")  # a self-contained file
            finally:
                source.close()
                target.close()
            with copy.open("rb") as handle:
                os.fsync(handle.fileno())
            entries.append({"path": str(database), "copy": copy.name, "existed": True, "sha256": sha256_file(copy)})
        else:
            entries.append({"path": str(database), "copy": None, "existed": False, "sha256": None})
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "binary": {
            "path": str(binary),
            "sha256": sha256_file(folder / "binary"),
            "mode": binary.stat().st_mode & 0o7777,
        },
        "data": entries,
    }
    write_atomic(
        folder / "snapshot.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), durable=True
    )
    return manifest


def restore(folder: Path) -> None:
    """Put back the binary and data of a snapshot, then prove it by digest."""
    manifest = json.loads((folder / "snapshot.json").read_text())
    binary = Path(manifest["binary"]["path"])
    write_atomic(binary, (folder / "binary").read_bytes(), manifest["binary"]["mode"], durable=True)
    for entry in manifest["data"]:
        database = Path(entry["path"])
        for sidecar in _sidecars(database):
            sidecar.unlink(missing_ok=True)  # a stale WAL would be replayed onto the old file
        if not entry["existed"]:
            database.unlink(missing_ok=True)
            continue
        write_atomic(database, (folder / "data" / entry["copy"]).read_bytes(), durable=True)
        if sha256_file(database) != entry["sha256"]:
            raise UpdateError(f"restored {database} does not match its snapshot", hint=f"copy it from {folder} by hand")
    if sha256_file(binary) != manifest["binary"]["sha256"]:
        raise UpdateError(f"restored {binary} does not match its snapshot", hint=f"copy it from {folder} by hand")


def list_snapshots(state_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder in sorted((state_dir / SNAPSHOTS).glob("*")):
        with contextlib.suppress(OSError, ValueError):
            found.append((folder, json.loads((folder / "snapshot.json").read_text())))
    return found


def prune(state_dir: Path, keep: int) -> None:
    complete = [folder for folder, _ in list_snapshots(state_dir)]
    for folder in complete[: max(len(complete) - keep, 0)]:
        shutil.rmtree(folder, ignore_errors=True)


def space_needed(binary: Path, data_files: list[Path], new_size: int) -> int:
    sizes = [binary.stat().st_size, new_size]
    for database in data_files:
        sizes += [p.stat().st_size for p in [database, *_sidecars(database)] if p.exists()]
    return int(sum(sizes) * 1.1) + (1 << 20)


# --- the update ----------------------------------------------------------------------------


def recover(state_dir: Path) -> str | None:
    """Finish or undo an update that was interrupted; return what was done."""
    journal = Journal.read(state_dir)
    if journal is None or journal.state in FINISHED:
        return None
    snapshot_dir = Path(journal.record.get("snapshot", "")) if journal.record.get("snapshot") else None
    if journal.state == "committed":
        prune(state_dir, int(journal.record.get("keep", 3)))
        journal.advance("done")
        log.info("recovered: the interrupted update had passed its checks; it is now complete")
        return "completed"
    if journal.state in UNTOUCHED or snapshot_dir is None:
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
        journal.advance("rolled-back", reason="interrupted before anything was changed")
        log.info("recovered: the interrupted update had not changed anything")
        return "nothing to undo"
    journal.advance("rolling-back", reason=f"interrupted at {journal.state}")
    restore(snapshot_dir)
    journal.advance("rolled-back")
    log.info(f"recovered: restored binary and data from {snapshot_dir}")
    return "restored"


def _run(binary: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    log.command([binary, *args])
    completed = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600, check=False
    )
    return completed.returncode, (completed.stdout + completed.stderr).strip()


def update(
    binary: Path,
    source: str,
    public_key_text: str,
    data_files: list[Path],
    *,
    state_dir: Path | None = None,
    keep: int = 3,
    wait: float = 0.0,
    env: dict[str, str] | None = None,
    free_space: Callable[[Path], int] | None = None,
) -> UpdateResult:
    """Update `binary` from the archive at `source` (path or URL), safely."""
    binary = binary.resolve()
    if not binary.is_file():
        raise UpdateError(f"{binary} is not an installed binary", hint="pass the installed executable or its receipt")
    state_dir = state_dir or default_state_dir(binary)
    env = env or {}
    with tempfile.TemporaryDirectory(prefix="toolchain-update-") as scratch:
        with log.status("verifying the new artifact"):
            artifact = verify_artifact(source, public_key_text, Path(scratch))
        if binary.name not in artifact.binaries:
            raise UpdateError(f"{artifact.archive.name} has no {binary.name}", hint="pick the archive of this app")
        with exclusive_lock(state_dir, wait):
            recover(state_dir)
            new_size = artifact.archive.stat().st_size * 4
            needed = space_needed(binary, data_files, new_size)
            free = (free_space or (lambda p: shutil.disk_usage(p).free))(state_dir)
            if free < needed:
                raise UpdateError(
                    f"not enough disk space for the snapshot: {free:,} bytes free in {state_dir}, {needed:,} needed",
                    hint="free some space; nothing was changed",
                )
            _, old_version = _run(binary, ["--version"], env)
            ident = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
            snapshot_dir = state_dir / SNAPSHOTS / ident
            journal = Journal(state_dir, {"id": ident, "binary": str(binary), "keep": keep, "steps": []})
            journal.advance(
                "verified",
                artifact=artifact.archive.name,
                new_sha256=artifact.sha256,
                new_version=artifact.version,
                old_version=old_version,
                data_files=[str(p) for p in data_files],
            )
            journal.advance("snapshotting", snapshot=str(snapshot_dir))
            with log.status(f"snapshotting {binary.name} and {len(data_files)} data file(s)"):
                snapshot(binary, data_files, snapshot_dir)
            journal.advance("snapshotted")
            output = ""
            try:
                journal.advance("swapping")
                staged = binary.with_name(f".{binary.name}.new.{os.getpid()}")
                extract_binary(artifact, binary.name, staged)
                if os.name == "nt":  # a running exe can be renamed, not replaced
                    os.replace(binary, binary.with_name(binary.name + ".old"))
                os.replace(staged, binary)
                fsync_dir(binary.parent)
                journal.advance("swapped")
                journal.advance("migrating")
                code, output = _run(binary, ["migrate"], env)
                if code != 0:
                    last = output.splitlines()[-1] if output else "no output"
                    raise UpdateError(f"`{binary.name} migrate` failed with exit code {code}: {last}")
                journal.advance("migrated")
                code, doctor_output = _run(binary, ["doctor"], env)
                output = f"{output}\n{doctor_output}".strip()
                if code != 0:
                    raise UpdateError(f"`{binary.name} doctor` failed with exit code {code} after the migration")
                journal.advance("checked")
            except BaseException as failure:
                reason = failure.message if isinstance(failure, ToolchainError) else repr(failure)
                journal.advance("rolling-back", reason=reason, output=output)
                restore(snapshot_dir)
                journal.advance("rolled-back")
                if isinstance(failure, UpdateError):
                    raise UpdateError(
                        f"{failure.message}; rolled back binary and data to {old_version}",
                        hint=f"the migration said: {output[-500:]}" if output else "see the output above",
                    ) from None
                raise
            journal.advance("committed")
            prune(state_dir, keep)
            journal.advance("done")
    return UpdateResult(
        True, "done", old_version, artifact.version, snapshot_dir, output, tuple(s[0] for s in journal.record["steps"])
    )


def rollback(state_dir: Path, wait: float = 0.0) -> Path:
    """Restore the newest snapshot by hand."""
    with exclusive_lock(state_dir, wait):
        recover(state_dir)
        snapshots = list_snapshots(state_dir)
        if not snapshots:
            raise UpdateError(f"no snapshots in {state_dir / SNAPSHOTS}", hint="nothing to roll back to")
        folder, _ = snapshots[-1]
        restore(folder)
        return folder
