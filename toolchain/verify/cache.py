"""Inspection results cached by the binary's SHA-256.

A no-op rebuild then never imports LIEF: the digest is needed for the
checksum anyway, and a hit costs one small JSON read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.verify.inspection import SCHEMA_VERSION, BinaryInfo, MachOSlice, inspect_binary
from toolchain.verify.macho_signature import MachOSignature


def _layout() -> str:
    """A short digest of the inspection records' fields: a new field means a new cache."""
    names = ",".join(f.name for kind in (BinaryInfo, MachOSlice, MachOSignature) for f in dataclasses.fields(kind))
    return hashlib.sha256(names.encode()).hexdigest()[:8]


def inspect_cached(path: Path, sha256: str, cache_dir: Path) -> BinaryInfo:
    entry = cache_dir / f"inspect-v{SCHEMA_VERSION}-{_layout()}" / f"{sha256}.json"
    try:
        return BinaryInfo.from_dict(json.loads(entry.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        pass  # a miss or an unreadable entry: inspect afresh
    info = inspect_binary(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(entry, json.dumps(info.to_dict()))
    except OSError:
        pass  # the cache is an optimisation; a read-only target dir is fine
    return info
