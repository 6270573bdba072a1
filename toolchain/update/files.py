"""The file primitives every step of an update uses: private (0600/0700)
durable copies, the digest of a live file with its SQLite WAL, a file's mode
and owner carried over to its replacement, and one line for an OS error."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from toolchain.errors import ToolchainError
from toolchain.log import log

CHUNK = 1 << 20
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def os_reason(exc: BaseException) -> str:
    """One line for an OSError or SQLite error (disk full said plainly)."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the device{where}"
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, ToolchainError):
        return exc.message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return True  # no cheap liveness check: leave the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def copy_private(source: Path, destination: Path) -> None:
    """Stream a file into a new 0600 file, durably."""
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
            shutil.copyfileobj(handle, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(destination, PRIVATE_FILE)  # noqa: PTH101 - exact mode, whatever the umask
    except BaseException:
        destination.unlink(missing_ok=True)
        raise


def existing_ancestor(path: Path) -> Path:
    """The path, or its nearest existing parent (where a file will be created)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def state_digest(path: Path) -> str | None:
    """SHA-256 of a file and, for a SQLite file, its WAL (committed data may live
    only there); None when the file does not exist."""
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size:
            with wal.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return None


def ownership(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"mode": info.st_mode & 0o7777, "uid": info.st_uid, "gid": info.st_gid}


def apply_ownership(path: Path, entry: dict[str, Any]) -> None:
    """Give a file the mode, owner and group of the one it replaces."""
    if "uid" in entry:
        info = path.stat()
        if (info.st_uid, info.st_gid) != (entry["uid"], entry["gid"]):
            try:
                os.chown(path, entry["uid"], entry["gid"])
            except PermissionError:
                log.warn(f"cannot give {path} back to uid {entry['uid']} gid {entry['gid']}: not permitted")
    if "mode" in entry:
        os.chmod(path, entry["mode"])  # noqa: PTH101 - after chown, which clears set-id bits
