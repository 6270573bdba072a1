"""Is the app running, or is its database held open? An update must not
snapshot under a live writer: whatever that writer commits after the
snapshot is lost if the update is rolled back.

Linux only (it reads /proc: every process's executable and open files);
elsewhere there is nothing to look at and the check passes, said in the log.
Processes we may not look into (another user's, without root) are skipped:
the updater can only see what it is allowed to see.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import UpdateError, UsageError
from toolchain.log import log

PROC = Path("/proc")
POLL_SECONDS = 0.2
MAX_WAIT_SECONDS = 24 * 3600  # --wait is bounded: a day is longer than any sane maintenance window
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str  # the process's name, for the message
    what: str  # "runs BINARY" or "has DB open"


def check_wait(wait: float) -> float:
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise UsageError(f"--wait {wait:g} is out of range", hint=f"pass 0 to {MAX_WAIT_SECONDS} seconds")
    return wait


def _link(path: Path) -> str:
    """A /proc symlink's target, without the " (deleted)" the kernel adds for
    a file that was replaced since (an app still running the old binary)."""
    return str(path.readlink()).removesuffix(" (deleted)")


def _command(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text().strip()
    except OSError:
        return "?"


def holders(binary: Path, data_files: list[Path]) -> list[Holder]:
    """Processes (other than this one) running `binary` or holding a data file
    (or its WAL, shared-memory or rollback journal) open."""
    if not PROC.is_dir():
        return []
    exe = str(binary.resolve())
    watched = {str(p.resolve()) + suffix: p.name for p in data_files for suffix in ("", *SQLITE_SIDE_FILES)}
    me = os.getpid()
    found: list[Holder] = []
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == me:
            continue
        pid = int(pid_dir.name)
        try:
            if _link(pid_dir / "exe") == exe:
                found.append(Holder(pid, _command(pid_dir), f"runs {binary}"))
        except OSError:
            pass  # a kernel thread, a process that just ended, or one we may not look into
        if not watched:
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = _link(fd)
            except OSError:
                continue
            if target in watched:
                found.append(Holder(pid, _command(pid_dir), f"has {watched[target]} open"))
                break
    return found


UPDATE_RISK = "a snapshot under a live writer would lose its later writes on a rollback"
UPDATE_HINT = "stop the app first, or pass --wait SECONDS to wait for it; nothing was changed"


def wait_until_idle(
    binary: Path, data_files: list[Path], deadline: float, *, risk: str = UPDATE_RISK, hint: str = UPDATE_HINT
) -> None:
    """Return when nothing runs the app or holds its data; refuse with one line
    (what is at risk, and what to do) once `deadline` (time.monotonic()) has passed."""
    if not PROC.is_dir():
        log.info("no /proc here, so whether the app is running cannot be checked: stop it before updating")
        return
    while True:
        found = holders(binary, data_files)
        if not found:
            return
        if time.monotonic() >= deadline:
            first = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UpdateError(
                f"{binary.name} is in use: pid {first.pid} ({first.command}) {first.what}{more}, and {risk}", hint=hint
            )
        time.sleep(POLL_SECONDS)
