"""The journal of an update: its states, written durably before every
step, in the state folder beside the binary; the exclusive lock; and the
bookkeeping recovery works from (which live files changed since a step, a
stuck journal's message, and the leftovers of a killed updater)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain.atomic import write_json
from toolchain.errors import UpdateError
from toolchain.update.files import PRIVATE_DIR, PRIVATE_FILE, pid_alive, state_digest
from toolchain.update.snapshot import read_snapshot

JOURNAL = "journal.json"
LOCK = "update.lock"
SCRATCH_PREFIX = "toolchain-update-"
# Test hook: the updater SIGKILLs itself right after writing this journal state.
CRASH_ENV = "TOOLCHAIN_UPDATE_CRASH_AT"
STATES = (
    "verified", "snapshotting", "snapshotted", "swapping", "swapped",
    "migrating", "migrated", "checked", "committed", "done", "rolling-back", "rolled-back",
    "stuck", "abandoned",
)  # fmt: skip
# Before "snapshotted" nothing live was touched; from "committed" on the new
# version has passed its checks: in between, recovery restores the snapshot.
UNTOUCHED = {"verified", "snapshotting"}
FINISHED = {"done", "rolled-back", "abandoned"}


def default_state_dir(binary: Path) -> Path:
    return binary.parent / f".{binary.name}-update"


@contextlib.contextmanager
def exclusive_lock(state_dir: Path, wait: float) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
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
        self.state_dir = state_dir
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

    @property
    def snapshot_dir(self) -> Path | None:
        return Path(self.record["snapshot"]) if self.record.get("snapshot") else None

    def paths(self) -> list[Path]:
        """The live files this update may change: the binary and every data file."""
        return [Path(p) for p in [self.record.get("binary", ""), *self.record.get("data_files", [])] if p]

    def live(self, *paths: Path) -> dict[str, str | None]:
        return {str(p): state_digest(p) for p in (paths or self.paths())}

    def advance(self, state: str, **details: Any) -> None:
        assert state in STATES
        if "live" in details:  # digests of the live files at this step (merged, newest wins)
            details["live"] = {**self.record.get("live", {}), **details["live"]}
        self.record.update(details)
        self.record["state"] = state
        self.record.setdefault("steps", []).append([state, datetime.now(UTC).isoformat(timespec="seconds")])
        write_json(self.path, self.record, PRIVATE_FILE, durable=True)
        if os.environ.get(CRASH_ENV) == state:
            os.kill(os.getpid(), signal.SIGKILL)


def recover_hint(journal: Journal) -> str:
    binary = Path(str(journal.record.get("binary", "")))
    if binary.name and default_state_dir(binary) == journal.state_dir:
        where = f"--binary {binary}"
    else:
        where = f"--state-dir {journal.state_dir}"
    return f"invoke recover {where}"


def changed_since(journal: Journal, against: dict[str, Any]) -> list[str]:
    """Names of live files whose content is none of the states this update
    could have left them in: the snapshot's (as copied, and as the live file
    stood under the snapshot's lock), what the updater recorded after its own
    steps, or the new binary. A data file written by someone else after the
    snapshot was taken is "changed", whatever the journal's state (a writer
    seen before the checks ran marks every data file so)."""
    allowed: dict[str, set[str | None]] = {p: {d} for p, d in against.items()}
    snapshot_dir = journal.snapshot_dir
    if snapshot_dir is not None:
        with contextlib.suppress(UpdateError):
            manifest = read_snapshot(snapshot_dir)
            for entry in [manifest["binary"], *manifest["data"]]:
                allowed.setdefault(entry["path"], set()).add(entry["sha256"])
                if "live" in entry:
                    allowed[entry["path"]].add(entry["live"]["state"])
    binary = str(journal.record.get("binary", ""))
    if journal.record.get("new_binary_sha256"):
        allowed.setdefault(binary, set()).add(journal.record["new_binary_sha256"])
    moved = set(journal.record.get("written_after_snapshot", []))
    changed = []
    for path, now in journal.live().items():
        if path in moved or (path in against and now not in allowed[path]):
            changed.append(Path(path).name)
    return changed


def stuck_error(journal: Journal) -> UpdateError:
    record = journal.record
    snapshot_dir = journal.snapshot_dir
    created = ""
    if snapshot_dir is not None:
        with contextlib.suppress(UpdateError):
            created = f" (taken {read_snapshot(snapshot_dir)['created']})"
    changed = changed_since(journal, record.get("live", {}))
    since = f"; {', '.join(changed)} changed since, and --force would discard that" if changed else ""
    command = recover_hint(journal)
    data = [str(p) for p in record.get("data_files", [])]
    kept = f"the live data ({', '.join(data)}) is kept" if data else "no data files are declared"
    where = f", and so is the snapshot {snapshot_dir}" if snapshot_dir is not None else ""
    return UpdateError(
        f"the update of {record.get('binary', '?')} is stuck: {record.get('stuck_reason', '?')}; "
        f"updates are blocked until you decide{since}; {kept}{where}",
        hint=f"run `{command} --force` to restore the snapshot{created} over the current files, "
        f"or `{command} --abandon` to keep the current files",
    )


def refuse_if_stuck(state_dir: Path) -> None:
    journal = Journal.read(state_dir)
    if journal is not None and journal.state == "stuck":
        raise stuck_error(journal)


def clean_leftovers(state_dir: Path, journal: Journal | None) -> list[Path]:
    """Partial files and scratch folders of updaters that were killed."""
    record = journal.record if journal else {}
    binary = Path(str(record.get("binary", ""))) if record.get("binary") else None
    places: list[tuple[Path, str]] = [(state_dir, JOURNAL)]
    if binary is None and state_dir.name.startswith(".") and state_dir.name.endswith("-update"):
        binary = state_dir.parent / state_dir.name[1 : -len("-update")]
    if binary is not None:
        places.append((binary.parent, binary.name))
    places += [(Path(p).parent, Path(p).name) for p in [*record.get("data_files", []), record.get("receipt")] if p]
    removed = []
    for folder, name in places:
        pattern = re.compile(rf"^\.\.?{re.escape(name)}\.(?:new\.)?(\d+)(?:\.\d+)?\.partial$")
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                match = pattern.match(path.name)
                if match and not pid_alive(int(match.group(1))):
                    path.unlink(missing_ok=True)
                    removed.append(path)
    scratch_dirs = [Path(record["scratch"])] if record.get("scratch") else []
    with contextlib.suppress(OSError):
        scratch_dirs += list(Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"))
    for scratch in set(scratch_dirs):
        match = re.match(rf"^{SCRATCH_PREFIX}(\d+)-", scratch.name)
        owner = scratch / "owner"
        if not match or pid_alive(int(match.group(1))) or not owner.is_file():
            continue
        with contextlib.suppress(OSError):
            if owner.read_text() == str(state_dir):
                shutil.rmtree(scratch)
                removed.append(scratch)
    return removed
