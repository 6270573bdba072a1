"""Reproducible archives and their SHA-256 checksums.

Same inputs, same bytes: entries sorted, one fixed mtime (SOURCE_DATE_EPOCH,
else the last commit's time), uid/gid 0 with no user names, fixed modes.
Archives are written to a temporary name and renamed into place, so a
failure never leaves a half-written archive behind.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from toolchain import __version__, proc
from toolchain.atomic import write_atomic
from toolchain.digest import sha256_file
from toolchain.errors import PackagingError
from toolchain.records.build_record import Member

ZIP_EPOCH_FLOOR = 315532800  # 1980-01-01: the earliest time a zip can hold
EXEC_MODE = 0o755
FILE_MODE = 0o644
CHUNK = 1 << 20  # bytes read at a time from a file going into an archive


@dataclass(frozen=True)
class ArchiveEntry:
    """A file to put in an archive, under `name` inside the top folder."""

    name: str
    source: Path
    executable: bool


@dataclass(frozen=True)
class Artifact:
    package: str
    path: Path
    checksum_path: Path
    sha256: str
    size: int
    reused: bool  # inputs unchanged: the existing archive was kept
    members: tuple[Member, ...] = ()  # its regular files, as written: the manifest lists them without unpacking


def source_date_epoch(repo: Path) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else the zip floor."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        try:
            return max(int(value), ZIP_EPOCH_FLOOR)
        except ValueError as exc:
            raise PackagingError(
                f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds", hint="unset or fix it"
            ) from exc
    committed = proc.output(["git", "-C", repo, "log", "-1", "--format=%ct"])
    if committed is not None and committed.isdigit():
        return max(int(committed), ZIP_EPOCH_FLOOR)
    return ZIP_EPOCH_FLOOR


def archive_name(app: str, triple: str, archive_format: str) -> str:
    return f"{app}-{triple}.{archive_format}"


DEBUG_ARCHIVE_TAG = "-debug"


def debug_archive_name(app: str, triple: str, archive_format: str) -> str:
    """The archive of the debug info split off an app's binaries (compile/debuginfo.py)."""
    return f"{app}-{triple}{DEBUG_ARCHIVE_TAG}.{archive_format}"


# xz's multi-threaded encoder cuts the input into blocks of this size and
# writes the same bytes whatever the thread count (its single-threaded encoder,
# and Python's lzma, write other bytes): archives are the same on every machine.
XZ_BLOCK_SIZE = 16 << 20
# Below two blocks of this, one block: a smaller one costs more ratio than a second thread saves.
XZ_MIN_BLOCK_SIZE = 256 << 10
XZ_PRESET_DICTIONARY = 8 << 20  # what `xz -6` uses
# Release archives: xz -6 (zip: zlib's default deflate), what users download. Debug-symbols
# archives: xz -1 (deflate 1). They are fetched only to symbolicate a crash, and their DWARF is 4x the binary:
# on ripgrep's (16.7 MB of tar) -6 took 8.8 s of CPU and -1 1.8 s, for a file 25 % larger.
RELEASE_LEVEL = 6
DEBUG_LEVEL = 1


def xz_block_size(size: int) -> int:
    """The block size for an input of `size` bytes: from the size alone (never the
    thread count, so the bytes do not depend on the machine), two blocks at least
    from 512 KiB, so a small archive is compressed on two cores too."""
    half = -(-size // 2)
    return min(XZ_BLOCK_SIZE, max(XZ_MIN_BLOCK_SIZE, -(-half // 4096) * 4096))


def xz_dictionary(block_size: int) -> int:
    """LZMA2's dictionary for blocks of `block_size`: preset 6's 8 MiB, or the block when
    smaller. A block is compressed alone, so a larger dictionary holds nothing more:
    it only costs the encoder time (0.14 s against 0.09 s on a 0.5 MB tar) and every
    decompressor memory."""
    return min(XZ_PRESET_DICTIONARY, block_size)


def xz_compress(
    source: Path, out: Path, *, threads: int | None = None, block_size: int = XZ_BLOCK_SIZE, level: int = RELEASE_LEVEL
) -> None:
    """`xz -LEVEL` with the multi-threaded encoder in fixed blocks (`-T+1` is that
    encoder with one thread). Python's lzma has no threads, hence the tool."""
    count = threads or min(os.cpu_count() or 1, 8)
    argv: list[str | Path] = [
        "xz",
        f"--lzma2=preset={level},dict={xz_dictionary(block_size)}",
        f"--threads={count if count > 1 else '+1'}",
        f"--block-size={block_size}",
        "--stdout",
        source,
    ]
    with out.open("wb") as handle:
        proc.run_to(argv, handle, error=PackagingError, what=f"xz of {source.name}")


def _tar_xz(entries: list[ArchiveEntry], top: str, mtime: int, out: Path, level: int) -> list[Member]:
    def info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        item = tarfile.TarInfo(name)
        item.size, item.mode, item.mtime, item.type = size, mode, mtime, kind
        item.uid = item.gid = 0
        item.uname = item.gname = ""
        return item

    plain = out.with_name(out.name + ".tar")
    members = []
    try:
        # PAX headers would carry host-specific atime/ctime; GNU format does not.
        with tarfile.open(plain, mode="w", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(info(top + "/", 0, EXEC_MODE, tarfile.DIRTYPE))
            for entry in entries:
                mode = EXEC_MODE if entry.executable else FILE_MODE
                with entry.source.open("rb") as data:
                    size = os.fstat(data.fileno()).st_size
                    hashed = _Hashing(data)
                    tar.addfile(info(f"{top}/{entry.name}", size, mode), hashed)
                members.append(Member(f"{top}/{entry.name}", size, hashed.digest.hexdigest()))
        xz_compress(plain, out, block_size=xz_block_size(plain.stat().st_size), level=level)
    finally:
        plain.unlink(missing_ok=True)
    return members


class _Hashing:
    """A reader that hashes what it hands on: a member's digest is of the bytes the archive got."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.digest.update(chunk)
        return chunk


def write_zip(entries: list[ArchiveEntry], top: str, mtime: int, out: Path, level: int = RELEASE_LEVEL) -> list[Member]:
    import time

    stamp = time.gmtime(mtime)[:6]
    members = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            item = zipfile.ZipInfo(f"{top}/{entry.name}", date_time=stamp)
            item.create_system = 3  # unix, so the mode bits below are honoured
            item.external_attr = ((EXEC_MODE if entry.executable else FILE_MODE) | 0o100000) << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            if level != RELEASE_LEVEL:  # zlib's default (6) for release archives, as they always were
                # A ZipInfo opened for writing takes its own level (`compress_level` from Python 3.13).
                setattr(item, "compress_level" if hasattr(item, "compress_level") else "_compresslevel", 1)
            # Streamed in chunks, not read whole: a 150 MB binary would be 150 MB of this process.
            # writestr() does the same open(mode="w") with file_size set: the same bytes.
            digest = hashlib.sha256()
            with entry.source.open("rb") as source:
                item.file_size = os.fstat(source.fileno()).st_size
                with archive.open(item, mode="w") as member:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        member.write(chunk)
            members.append(Member(item.filename, item.file_size, digest.hexdigest()))
    return members


def _stamp(entries: list[ArchiveEntry], mtime: int, digests: dict[str, str], level: int) -> str:
    return json.dumps(
        {
            "toolkit": __version__,
            "mtime": mtime,
            "level": level,
            # another choice of blocks or dictionary writes other bytes
            "xz_blocks": [XZ_MIN_BLOCK_SIZE, XZ_BLOCK_SIZE, XZ_PRESET_DICTIONARY, "dictionary<=block"],
            "entries": [[e.name, e.executable, digests[e.name]] for e in entries],
        },
        sort_keys=True,
    )


def write_archive(
    package: str, entries: list[ArchiveEntry], out_dir: Path, name: str, mtime: int, level: int = RELEASE_LEVEL
) -> Artifact:
    """Write `name` (tar.xz or zip) into out_dir, plus `name.sha256`; `level`: RELEASE_LEVEL,
    or DEBUG_LEVEL for a debug-symbols archive.

    Skipped when the same inputs already produced the archive on disk.
    """
    entries = sorted(entries, key=lambda e: e.name)
    top = name.removesuffix(".tar.xz").removesuffix(".zip")
    out = out_dir / name
    checksum_path = out_dir / f"{name}.sha256"
    stamp_path = out_dir / ".stamps" / f"{name}.json"
    digests = {e.name: sha256_file(e.source) for e in entries}
    stamp = _stamp(entries, mtime, digests, level)
    if out.is_file() and checksum_path.is_file() and stamp_path.is_file():
        recorded = checksum_path.read_text().split()[0] if checksum_path.read_text().strip() else ""
        if stamp_path.read_text() == stamp and recorded == sha256_file(out):
            # Made from files with these digests: its members are these.
            members = [Member(f"{top}/{e.name}", e.source.stat().st_size, digests[e.name]) for e in entries]
            return Artifact(package, out, checksum_path, recorded, out.stat().st_size, True, _sorted(members))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp_path.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise PackagingError(f"cannot create {out_dir}: {exc.strerror}", hint="choose a writable --out-dir") from exc
    partial = out.with_name(f".{name}.partial")
    try:
        if name.endswith(".zip"):
            members = write_zip(entries, top, mtime, partial, level)
        else:
            members = _tar_xz(entries, top, mtime, partial, level)
        digest = sha256_file(partial)
        os.replace(partial, out)
        write_atomic(checksum_path, f"{digest}  {name}\n")
        write_atomic(stamp_path, stamp)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise PackagingError(f"cannot write {out}: {exc.strerror}", hint="check the disk and --out-dir") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Artifact(package, out, checksum_path, digest, out.stat().st_size, False, _sorted(members))


def _sorted(members: list[Member]) -> tuple[Member, ...]:
    return tuple(sorted(members, key=lambda member: member.path))  # as archive_members lists them


def remove_artifact(out_dir: Path, name: str) -> None:
    """Remove an archive and its checksum (used when a later check fails)."""
    for path in (out_dir / name, out_dir / f"{name}.sha256", out_dir / ".stamps" / f"{name}.json"):
        path.unlink(missing_ok=True)


def unsafe_member_path(name: str) -> bool:
    """A path that would land outside the folder an archive is unpacked into."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts


def archive_members(archive: Path) -> list[Member]:
    """Every regular file of an archive, streamed (no member is held in memory).
    A member that is a link or device, or whose path leaves the archive's
    folder, is an error: the toolkit's archives have none, so one found is a
    tampered or foreign archive."""
    found = []
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    kind = (info.external_attr >> 16) & 0o170000
                    if unsafe_member_path(info.filename) or kind not in (0, 0o100000, 0o040000):
                        raise PackagingError(f"{archive.name}: unsafe member {info.filename!r}", hint=REFUSED_HINT)
                    if not info.is_dir():
                        with zipped.open(info) as member:
                            found.append(Member(info.filename, info.file_size, _digest(member)))
        else:
            with tarfile.open(archive) as tarred:
                for item in tarred:
                    if unsafe_member_path(item.name) or not (item.isfile() or item.isdir()):
                        raise PackagingError(f"{archive.name}: unsafe member {item.name!r}", hint=REFUSED_HINT)
                    data = tarred.extractfile(item) if item.isfile() else None
                    if data is not None:
                        found.append(Member(item.name, item.size, _digest(data)))
    except (tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, EOFError, OSError) as exc:
        raise PackagingError(f"{archive.name} is truncated or corrupt ({exc})", hint=REFUSED_HINT) from exc
    return sorted(found, key=lambda member: member.path)


REFUSED_HINT = "use the release's own files (rebuild the archive if it is yours)"


def _digest(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()
