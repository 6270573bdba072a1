"""Writing files so that a reader (or a crash) never sees half of one:
write a temporary sibling, then rename it over the target."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename in this folder durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644, *, durable: bool = False) -> Path:
    """Replace `path` with `data` in one rename; `mode` applies from creation
    (a secret key is never readable by others, even briefly). `durable`
    also fsyncs the file and its folder, for journals and snapshots."""
    payload = data.encode() if isinstance(data, str) else data
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(partial, mode)  # noqa: PTH101 - exact mode, whatever the umask
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def write_json(path: Path, document: Any, mode: int = 0o644, *, durable: bool = False) -> Path:
    """`document` as the toolkit writes every JSON file (indented, keys sorted,
    a final newline), replacing `path` atomically as write_atomic does."""
    return write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n", mode, durable=durable)
