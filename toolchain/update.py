"""Safe in-place update of an installed binary and its SQLite data.

verify the artifact (signatures, digests, and every archive member against
the signed manifest) → lock → unpack the new binary beside the old one
(streamed, capped, digest-checked) → journal → snapshot (binary + every
SQLite file, through SQLite's online backup API) → atomic swap → `new
migrate` and `new doctor` → commit and prune, or restore everything from
the snapshot. Every step is written to a journal first, so an updater
killed at any point is finished or undone by the next `update` or
`recover`: the result is fully old or fully new, never a mix.

A restore that cannot finish, or an interrupted one whose files changed
since, leaves the journal `stuck`: every later update, recover and rollback
stops with one line until `recover --force` (restore anyway) or
`recover --abandon` (keep the current files). Nothing is ever restored
silently over data written after the failure.

`update()` is the library entry point an app's own `self-update` can call.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from toolchain import catalog
from toolchain.atomic import fsync_dir, write_atomic
from toolchain.digest import sha256_file
from toolchain.errors import SignatureError, ToolchainError, UpdateError, UsageError
from toolchain.log import log
from toolchain.signing import HASHED_SIG_ALG, PublicKey, parse_public_key, verify_file
from toolchain.targets import host_platform

JOURNAL = "journal.json"
LOCK = "update.lock"
SNAPSHOTS = "snapshots"
SCRATCH_PREFIX = "toolchain-update-"
SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1 << 20
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
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


@dataclass(frozen=True)
class Member:
    """A regular file of the archive, as the signed manifest describes it."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Artifact:
    archive: Path
    sha256: str
    target: str
    version: str
    binaries: tuple[str, ...]
    members: tuple[Member, ...] = ()

    @property
    def top(self) -> str:
        return self.archive.name.removesuffix(".tar.xz").removesuffix(".zip")

    def member(self, name: str) -> Member:
        wanted = f"{self.top}/{name}"
        found = next((m for m in self.members if m.path == wanted), None)
        if found is None:
            raise UpdateError(
                f"{self.archive.name} has no member {wanted}", hint="pick the archive of this app's release"
            )
        return found


@dataclass(frozen=True)
class UpdateResult:
    ok: bool
    state: str
    old_version: str | None
    new_version: str
    snapshot: Path | None  # None when --keep 0 pruned it
    output: str = ""
    steps: tuple[str, ...] = field(default_factory=tuple)
    artifact_sha256: str = ""


def default_state_dir(binary: Path) -> Path:
    return binary.parent / f".{binary.name}-update"


def _os_reason(exc: BaseException) -> str:
    """One line for an OSError or SQLite error (disk full said plainly)."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the device{where}"
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, ToolchainError):
        return exc.message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _pid_alive(pid: int) -> bool:
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


def _copy_private(source: Path, destination: Path) -> None:
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


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (where a file will be created)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _state_digest(path: Path) -> str | None:
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


def _ownership(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"mode": info.st_mode & 0o7777, "uid": info.st_uid, "gid": info.st_gid}


def _apply_ownership(path: Path, entry: dict[str, Any]) -> None:
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


# --- fetching and verifying the artifact -------------------------------------------------


def _fetch(source: str, name: str, into: Path) -> Path:
    """A sibling file of the artifact: from a folder, or from a URL's folder."""
    out = into / name
    if "://" in source:
        url = source.rsplit("/", 1)[0] + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=60) as response, out.open("wb") as handle:
                shutil.copyfileobj(response, handle, CHUNK)
        except (urllib.error.URLError, OSError) as exc:
            raise UpdateError(f"cannot download {url}: {exc}", hint="check the artifact URL") from exc
        return out
    local = Path(source).parent / name
    if not local.is_file():
        raise UpdateError(
            f"{local} is missing", hint="the archive needs its .sha256, .minisig and manifest.json beside it"
        )
    return local


def _refuse_a_folder(source: str) -> None:
    if "://" in source or not Path(source).is_dir():
        return
    folder = Path(source)
    archives = sorted(p.name for p in folder.iterdir() if p.name.endswith((".tar.xz", ".zip")))
    host = catalog.current().host_triple()
    archives.sort(key=lambda name: host not in name)
    hint = f"pass the archive in it, e.g. {folder / archives[0]}" if archives else "pass a release's .tar.xz or .zip"
    raise UsageError(f"the artifact {folder} is a folder, not an archive", hint=hint)


def _comment_was_edited(path: Path, signature_path: Path, public: PublicKey) -> str | None:
    """The trusted comment, when the file's own signature holds but the one over
    the comment does not (someone edited the comment line)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        lines = signature_path.read_text().splitlines()
        blob = base64.b64decode(lines[1], validate=True)
        comment = lines[2].removeprefix("trusted comment: ")
        if blob[2:10] != public.key_id:
            return None
        if blob[:2] == HASHED_SIG_ALG:
            with path.open("rb") as handle:
                message = hashlib.file_digest(handle, "blake2b").digest()
        else:
            message = path.read_bytes()
        Ed25519PublicKey.from_public_bytes(public.key).verify(blob[10:], message)
    except (OSError, ValueError, IndexError, InvalidSignature):
        return None
    return comment


def _verify_signature(path: Path, signature_path: Path, public: PublicKey, name: str) -> None:
    try:
        verify_file(path, signature_path, public)
    except SignatureError as exc:
        comment = _comment_was_edited(path, signature_path, public)
        if comment is not None:
            raise UpdateError(
                f"{signature_path.name}: its trusted comment {comment!r} is not the one that was signed "
                f"({path.name} itself is intact)",
                hint="the .minisig was edited; use the release's own signature file",
            ) from exc
        raise UpdateError(f"{name}: {exc.message}", hint="refusing an artifact that is not signed by your key") from exc


def _manifest_error(what: str) -> UpdateError:
    return UpdateError(
        f"the signed manifest.json {what}", hint="re-package the release with this toolkit (`invoke package`)"
    )


def _field(document: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(document, dict) or key not in document:
        raise _manifest_error(f"lacks {where}{key!r}")
    value = document[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _manifest_error(f"has a malformed {where}{key!r}")
    return value


def _parse_manifest(path: Path, name: str) -> tuple[dict[str, Any], str, tuple[Member, ...]]:
    """The archive's manifest entry, the app's version, and its members."""
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as exc:
        raise _manifest_error(f"is not valid JSON ({exc})") from None
    artifacts = _field(manifest, "artifacts", list, "")
    apps = _field(manifest, "apps", list, "")
    entry = next((a for a in artifacts if isinstance(a, dict) and a.get("name") == name), None)
    if entry is None:
        raise UpdateError(f"{name} is not in the signed manifest", hint="use the release's own files")
    where = f"{name}'s "
    for key, kind in (("sha256", str), ("target", str), ("app", str), ("binaries", list)):
        _field(entry, key, kind, where)
    if "members" not in entry:
        raise _manifest_error(
            f"lists no members for {name} (it was packaged by an older toolkit, so its contents cannot be checked)"
        )
    members = []
    for raw in _field(entry, "members", list, where):
        members.append(
            Member(
                _field(raw, "path", str, f"{where}member "),
                _field(raw, "size", int, f"{where}member "),
                _field(raw, "sha256", str, f"{where}member "),
            )
        )
    version = ""
    for app in apps:
        if _field(app, "name", str, "an app's ") == entry["app"]:
            version = _field(app, "version", str, "an app's ")
    return entry, version, tuple(members)


def verify_artifact(source: str, public_key_text: str, work: Path) -> Artifact:
    """Digest, signature, target and member list of the new archive, before anything is touched."""
    _refuse_a_folder(source)
    name = source.rsplit("/", 1)[-1]
    archive = _fetch(source, name, work)
    checksum = _fetch(source, f"{name}.sha256", work).read_text(errors="replace").split()
    digest = sha256_file(archive)
    if not checksum or checksum[0] != digest:
        raise UpdateError(f"{name}: SHA-256 does not match {name}.sha256", hint="the download is corrupt or tampered")
    public = parse_public_key(public_key_text)
    _verify_signature(archive, _fetch(source, f"{name}.minisig", work), public, name)
    manifest_path = _fetch(source, "manifest.json", work)
    _verify_signature(manifest_path, _fetch(source, "manifest.json.minisig", work), public, "manifest.json")
    entry, version, members = _parse_manifest(manifest_path, name)
    if entry["sha256"] != digest:
        raise UpdateError(f"{name} is not in the signed manifest with this digest", hint="use the release's own files")
    target = entry["target"]
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
    artifact = Artifact(archive, digest, target, version, tuple(str(b) for b in entry["binaries"]), members)
    check_members(artifact)
    return artifact


# --- reading the archive -----------------------------------------------------------------


def _corrupt(archive: Path, exc: BaseException) -> UpdateError:
    return UpdateError(f"{archive.name} is truncated or corrupt ({_os_reason(exc)})", hint="download the release again")


ARCHIVE_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, EOFError, OSError)
TAR_BLOCK = 512
Entry = tuple[str, str, int, "IO[bytes] | None"]


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in path.parts


def _digest_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class _CappedReader:
    """The decompressed tar stream, refusing to produce more bytes than the
    signed members (with their headers and padding) can take up."""

    def __init__(self, handle: IO[bytes], cap: int, archive: Path) -> None:
        self.handle, self.cap, self.archive, self.total = handle, cap, archive, 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self.handle.read(size if size >= 0 else CHUNK)
        self.total += len(data)
        if self.total > self.cap:
            raise UpdateError(
                f"{self.archive.name} unpacks to more than the {self.cap:,} bytes its signed members take up",
                hint="refusing the archive (a decompression bomb or a tampered release); nothing was extracted",
            )
        return data


def _walk(artifact: Artifact, *, drain: bool) -> Generator[Entry, None, None]:
    """(name, kind, size, data) for each member, streamed front to back. A
    member's data is decompressed only after the caller has looked at its
    header (to read it, or to skip it), and never past what the signed members
    add up to; with `drain`, the rest of the compressed stream is read too, so
    truncation and corruption anywhere are found."""
    archive = artifact.archive
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                mode = info.external_attr >> 16
                if info.is_dir():
                    yield info.filename, "folder", 0, None
                elif stat.S_ISLNK(mode):
                    yield info.filename, "symlink", info.file_size, None
                elif mode and not stat.S_ISREG(mode):
                    yield info.filename, "special file", info.file_size, None
                else:
                    with bundle.open(info) as handle:
                        yield info.filename, "file", info.file_size, handle
        return
    if not archive.name.endswith(".tar.xz"):
        raise UpdateError(f"{archive.name} is neither a .tar.xz nor a .zip archive", hint="pick the release archive")
    headers = TAR_BLOCK * 4 * (len(artifact.members) + 2) + 2 * tarfile.RECORDSIZE
    cap = headers + sum(-(-m.size // TAR_BLOCK) * TAR_BLOCK for m in artifact.members)
    with lzma.open(archive) as raw:
        capped = _CappedReader(raw, cap, archive)
        with tarfile.open(fileobj=capped, mode="r|") as bundle:  # type: ignore[call-overload]
            for item in bundle:
                kind = (
                    "folder" if item.isdir()
                    else "symlink" if item.issym()
                    else "hardlink" if item.islnk()
                    else "file" if item.isfile()
                    else "special file"
                )  # fmt: skip
                yield item.name, kind, item.size, bundle.extractfile(item) if kind == "file" else None
        if drain:
            while capped.read(CHUNK):
                pass


def check_members(artifact: Artifact) -> None:
    """Every member of the archive is the top folder or a regular file the
    signed manifest lists with exactly this size and SHA-256: no links, no
    paths that leave the folder, nothing bigger than what was signed (a
    decompression bomb stops at its header). Streams; writes nothing."""
    expected = {m.path: m for m in artifact.members}
    folders = {artifact.top} | {str(p) for m in artifact.members for p in PurePosixPath(m.path).parents}
    seen: set[str] = set()
    name = artifact.archive.name
    refuse = "refusing the archive; nothing was extracted"
    try:
        with contextlib.closing(_walk(artifact, drain=True)) as walk:
            for member, kind, size, data in walk:
                if _unsafe(member):
                    raise UpdateError(
                        f"{name} has a member with an unsafe path {member!r} (it would land outside its folder)",
                        hint=refuse,
                    )
                if kind in ("symlink", "hardlink", "special file"):
                    raise UpdateError(f"{name}'s member {member} is a {kind}, not a regular file", hint=refuse)
                clean = member.rstrip("/")
                if kind == "folder":
                    if clean not in folders:
                        raise UpdateError(
                            f"{name} has a folder {member} the signed manifest does not list", hint=refuse
                        )
                    continue
                listed = expected.get(clean)
                if listed is None:
                    raise UpdateError(f"{name} has a member {member} the signed manifest does not list", hint=refuse)
                if clean in seen:
                    raise UpdateError(f"{name} has the member {member} twice", hint=refuse)
                if size != listed.size:
                    raise UpdateError(
                        f"{name}'s member {member} is {size:,} bytes, but the signed manifest says {listed.size:,}",
                        hint="refusing the archive before unpacking it (a decompression bomb or a tampered release)",
                    )
                assert data is not None
                if _digest_stream(data) != listed.sha256:
                    raise UpdateError(
                        f"{name}'s member {member} does not match the SHA-256 in the signed manifest", hint=refuse
                    )
                seen.add(clean)
    except ARCHIVE_ERRORS as exc:
        raise _corrupt(artifact.archive, exc) from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise UpdateError(f"{name} has no member {missing[0]}, which the signed manifest lists",
                          hint="the archive is incomplete; download the release again")  # fmt: skip


def extract_binary(artifact: Artifact, name: str, destination: Path) -> None:
    """Stream one member into a new file `destination` (0700 until the swap),
    never more bytes than the signed manifest says, and check its SHA-256."""
    member = artifact.member(name)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_DIR)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, written = hashlib.sha256(), 0
            try:
                with contextlib.closing(_walk(artifact, drain=False)) as walk:
                    for path, kind, _, data in walk:
                        if path != member.path or kind != "file" or data is None:
                            continue
                        while chunk := data.read(min(CHUNK, member.size + 1 - written)):
                            written += len(chunk)
                            if written > member.size:
                                raise UpdateError(
                                    f"{member.path} unpacks to more than the {member.size:,} bytes the manifest says",
                                    hint="refusing the archive",
                                )
                            digest.update(chunk)
                            out.write(chunk)
                        break
            except (tarfile.TarError, lzma.LZMAError, zlib.error, zipfile.BadZipFile, EOFError) as exc:
                raise _corrupt(artifact.archive, exc) from None
            out.flush()
            os.fsync(out.fileno())
        if written != member.size or digest.hexdigest() != member.sha256:
            raise UpdateError(
                f"the unpacked {member.path} does not match the SHA-256 in the signed manifest",
                hint="refusing it; download the release again",
            )
    except BaseException:
        destination.unlink(missing_ok=True)
        raise


def _describe_kind(binary_format: str, machine: str) -> str:
    name = {"elf": "ELF", "pe": "PE", "macho": "Mach-O"}.get(binary_format, binary_format)
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name} executable for {machine}"


def _check_installed_kind(binary: Path, target: str, scratch: Path) -> tuple[str, str]:
    """The installed binary is an executable of the kind the archive's target
    makes. Checked on a copy read through one open file (another updater may
    swap the binary meanwhile: this runs before the lock)."""
    from toolchain.errors import InspectionError
    from toolchain.inspection import inspect_binary

    copy = scratch / "installed"
    try:
        shutil.copyfile(binary, copy)
        info = inspect_binary(copy)
    except OSError as exc:
        raise UpdateError(
            f"cannot read {binary}: {_os_reason(exc)}", hint="check the path and its permissions"
        ) from None
    except InspectionError as exc:
        raise UpdateError(
            f"{binary} is not an executable this update can replace ({exc.message.replace(str(copy), 'it')})",
            hint="pass the installed executable with --binary",
        ) from None
    finally:
        copy.unlink(missing_ok=True)
    expected = catalog.current().target(target).binary
    if info.format != expected.format or expected.machine not in ("universal", info.machine):
        raise UpdateError(
            f"{binary} is {_describe_kind(info.format, info.machine)}, but the update is for {target} "
            f"({_describe_kind(expected.format, expected.machine)})",
            hint="pass the binary this archive is for with --binary, or pick the archive for that machine",
        )
    return info.format, info.machine


def _check_same_kind(staged: Path, installed: tuple[str, str], name: str) -> None:
    from toolchain.errors import InspectionError
    from toolchain.inspection import inspect_binary

    try:
        info = inspect_binary(staged)
    except InspectionError as exc:
        raise UpdateError(f"the new {name} is not an executable ({exc.message})", hint="refusing it") from None
    if (info.format, info.machine) != installed:
        raise UpdateError(
            f"the new {name} is {_describe_kind(info.format, info.machine)}, "
            f"the installed one {_describe_kind(*installed)}",
            hint="refusing to swap in a binary of another architecture",
        )


def _check_data_file(path: Path) -> None:
    """A data file is a SQLite database (or does not exist yet), never a folder."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.db"))
        example = path / (inside[0] if inside else "NAME.db")
        raise UsageError(f"data file {path} is a folder, not a SQLite file", hint=f"pass the database in it: {example}")
    if not path.exists():
        return
    if not path.is_file():
        raise UsageError(f"data file {path} is not a regular file", hint="pass the app's SQLite database")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read data file {path}: {exc.strerror}", hint="check its permissions") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(
            f"data file {path} is not a SQLite database",
            hint="pass the app's SQLite file (--data / [update] data-files)",
        )


# --- lock and journal ----------------------------------------------------------------------


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
        return {str(p): _state_digest(p) for p in (paths or self.paths())}

    def advance(self, state: str, **details: Any) -> None:
        assert state in STATES
        if "live" in details:  # digests of the live files at this step (merged, newest wins)
            details["live"] = {**self.record.get("live", {}), **details["live"]}
        self.record.update(details)
        self.record["state"] = state
        self.record.setdefault("steps", []).append([state, datetime.now(UTC).isoformat(timespec="seconds")])
        write_atomic(self.path, json.dumps(self.record, indent=2, sort_keys=True) + "\n", PRIVATE_FILE, durable=True)
        if os.environ.get(CRASH_ENV) == state:
            os.kill(os.getpid(), signal.SIGKILL)


# --- snapshots -----------------------------------------------------------------------------


def _sidecars(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(folder, PRIVATE_DIR)  # noqa: PTH101 - exact mode, whatever the umask


def snapshot(binary: Path, data_files: list[Path], folder: Path) -> dict[str, Any]:
    """Copy the binary and back up every SQLite file consistently into folder
    (folders 0700, files 0600: a snapshot holds the app's data)."""
    _private_dir(folder)
    _private_dir(folder / "data")
    _copy_private(binary, folder / "binary")
    entries = []
    for index, database in enumerate(data_files):
        copy = folder / "data" / f"{index}-{database.name}"
        if database.exists():
            owner = _ownership(database)
            os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))  # SQLite keeps this mode
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
            os.chmod(copy, PRIVATE_FILE)  # noqa: PTH101
            with copy.open("rb") as handle:
                os.fsync(handle.fileno())
            entries.append(
                {"path": str(database), "copy": copy.name, "existed": True, "sha256": sha256_file(copy), **owner}
            )
        else:
            entries.append({"path": str(database), "copy": None, "existed": False, "sha256": None})
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "binary": {"path": str(binary), "sha256": sha256_file(folder / "binary"), **_ownership(binary)},
        "data": entries,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(folder / "snapshot.json", text, PRIVATE_FILE, durable=True)
    fsync_dir(folder / "data")
    return manifest


def _read_snapshot(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / "snapshot.json").read_text())
        return manifest
    except (OSError, ValueError) as exc:
        raise UpdateError(
            f"the snapshot {folder} is unreadable ({_os_reason(exc)})", hint="it cannot be restored"
        ) from None


def _restore_plan(folder: Path, manifest: dict[str, Any]) -> list[tuple[str, Path, Path | None, dict[str, Any]]]:
    """What restoring takes, checked before anything is touched: each copy is
    there and intact (or was put back already), and there is room for copies
    that cross filesystems."""
    entries = [
        ("file", Path(e["path"]), folder / "data" / e["copy"] if e["copy"] else None, e) for e in manifest["data"]
    ]
    entries.append(("binary", Path(manifest["binary"]["path"]), folder / "binary", manifest["binary"]))
    plan: list[tuple[str, Path, Path | None, dict[str, Any]]] = []
    space: dict[int, tuple[Path, int]] = {}
    for kind, live, copy, entry in entries:
        if kind == "file" and not entry["existed"]:
            plan.append(("remove", live, None, entry))
            continue
        assert copy is not None
        if not copy.exists():
            if _state_digest(live) == entry["sha256"]:
                continue  # put back by an earlier, interrupted restore
            raise UpdateError(
                f"the snapshot copy of {live} is missing from {folder}", hint="it cannot be restored from there"
            )
        if sha256_file(copy) != entry["sha256"]:
            raise UpdateError(
                f"the snapshot copy {copy} of {live} is damaged (its SHA-256 does not match snapshot.json)",
                hint="it cannot be restored from there",
            )
        parent = _existing(live.parent)
        if parent.stat().st_dev != copy.stat().st_dev:
            device = parent.stat().st_dev
            space[device] = (parent, space.get(device, (parent, 0))[1] + copy.stat().st_size)
        plan.append(("put" if kind == "file" else "put-binary", live, copy, entry))
    for parent, needed in space.values():
        free = shutil.disk_usage(parent).free
        if free < needed:
            raise UpdateError(
                f"not enough disk space in {parent} to restore the snapshot: {free:,} bytes free, {needed:,} needed",
                hint="free some space there",
            )
    return plan


def _put_back(copy: Path, live: Path, entry: dict[str, Any]) -> None:
    """Move a snapshot copy over the live file: a rename where both are on one
    filesystem (no space needed), else a durable copy and a rename."""
    if live.parent.stat().st_dev == copy.stat().st_dev:
        _apply_ownership(copy, entry)
        os.replace(copy, live)
    else:
        partial = live.with_name(f".{live.name}.{os.getpid()}.partial")
        try:
            _copy_private(copy, partial)
            _apply_ownership(partial, entry)
            os.replace(partial, live)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    fsync_dir(live.parent)


def restore(folder: Path) -> None:
    """Put back the binary and data of a snapshot, keeping each file's mode,
    owner and group, then prove it by digest. Everything is checked before the
    first file is touched; a second run finishes an interrupted one."""
    manifest = _read_snapshot(folder)
    for action, live, copy, entry in _restore_plan(folder, manifest):
        for sidecar in _sidecars(live) if action != "put-binary" else []:
            sidecar.unlink(missing_ok=True)  # a stale WAL would be replayed onto the old file
        if action == "remove":
            live.unlink(missing_ok=True)
            continue
        assert copy is not None
        _put_back(copy, live, entry)
        if _state_digest(live) != entry["sha256"]:
            raise UpdateError(f"restored {live} does not match its snapshot", hint=f"copy it from {folder} by hand")


def list_snapshots(state_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder in sorted((state_dir / SNAPSHOTS).glob("*")):
        with contextlib.suppress(OSError, ValueError):
            found.append((folder, json.loads((folder / "snapshot.json").read_text())))
    return found


def _check_keep(keep: int) -> None:
    if keep < 0:
        raise UsageError(
            f"keep = {keep} is negative (it would delete every snapshot)",
            hint="pass --keep 0 or more, or set [update] keep to 0 or more",
        )


def prune(state_dir: Path, keep: int) -> None:
    _check_keep(keep)
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
        where = _existing(folder)
        device = where.stat().st_dev
        known = needs.get(device, (where, 0, []))
        needs[device] = (known[0], known[1] + size, [*known[2], what])

    def size_of(database: Path) -> int:
        return sum(p.stat().st_size for p in [database, *_sidecars(database)] if p.exists())

    state_device = _existing(state_dir).stat().st_dev
    binary_size = binary.stat().st_size
    add(binary.parent, new_size, f"the new {binary.name}")
    add(state_dir, binary_size + sum(size_of(d) for d in data_files), "the snapshot")
    if _existing(binary.parent).stat().st_dev != state_device:
        add(binary.parent, binary_size, f"restoring {binary.name}")
    for database in data_files:
        add(database.parent, size_of(database), f"migrating {database.name}")
        if _existing(database.parent).stat().st_dev != state_device:
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


# --- recovery ------------------------------------------------------------------------------


def _recover_hint(journal: Journal) -> str:
    binary = Path(str(journal.record.get("binary", "")))
    if binary.name and default_state_dir(binary) == journal.state_dir:
        where = f"--binary {binary}"
    else:
        where = f"--state-dir {journal.state_dir}"
    return f"invoke recover {where}"


def _changed(journal: Journal, against: dict[str, Any]) -> list[str]:
    """Names of live files whose content is none of the states this update
    could have left them in."""
    allowed: dict[str, set[str | None]] = {p: {d} for p, d in against.items()}
    snapshot_dir = journal.snapshot_dir
    if snapshot_dir is not None:
        with contextlib.suppress(UpdateError):
            manifest = _read_snapshot(snapshot_dir)
            for entry in [manifest["binary"], *manifest["data"]]:
                allowed.setdefault(entry["path"], set()).add(entry["sha256"])
    binary = str(journal.record.get("binary", ""))
    if journal.record.get("new_binary_sha256"):
        allowed.setdefault(binary, set()).add(journal.record["new_binary_sha256"])
    changed = []
    for path, now in journal.live().items():
        if path not in against:
            continue  # nothing was recorded for it
        if journal.state == "migrating" and path != binary:
            continue  # the migration was running: its result is not known
        if now not in allowed[path]:
            changed.append(Path(path).name)
    return changed


def _stuck_error(journal: Journal) -> UpdateError:
    record = journal.record
    snapshot_dir = journal.snapshot_dir
    created = ""
    if snapshot_dir is not None:
        with contextlib.suppress(UpdateError):
            created = f" (taken {_read_snapshot(snapshot_dir)['created']})"
    changed = _changed(journal, record.get("live", {}))
    since = f"; {', '.join(changed)} changed since, and --force would discard that" if changed else ""
    command = _recover_hint(journal)
    return UpdateError(
        f"the update of {record.get('binary', '?')} is stuck: {record.get('stuck_reason', '?')}; "
        f"updates are blocked until you decide{since}",
        hint=f"run `{command} --force` to restore the snapshot{created} over the current files, "
        f"or `{command} --abandon` to keep the current files",
    )


def refuse_if_stuck(state_dir: Path) -> None:
    journal = Journal.read(state_dir)
    if journal is not None and journal.state == "stuck":
        raise _stuck_error(journal)


def _roll_back(journal: Journal, snapshot_dir: Path, **details: Any) -> None:
    """Restore the snapshot under the journal. The live digests are recorded
    first, so a recovery can tell the files were changed after an interruption.
    A restore that fails leaves the journal `stuck` (and raises its message)."""
    with contextlib.suppress(OSError):  # a journal we cannot write still says "restore"
        journal.advance("rolling-back", live=journal.live(), **details)
    try:
        restore(snapshot_dir)
    except (ToolchainError, OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            journal.advance(
                "stuck", stuck_reason=f"it could not be rolled back ({_os_reason(exc)})", live=journal.live()
            )
        raise _stuck_error(journal) from None
    try:
        journal.advance("rolled-back")
    except OSError:
        return  # the snapshot stays: a recovery sees the files restored and finishes
    shutil.rmtree(snapshot_dir, ignore_errors=True)


def _clean_leftovers(state_dir: Path, journal: Journal | None) -> list[Path]:
    """Partial files and scratch folders of updaters that were killed."""
    record = journal.record if journal else {}
    binary = Path(str(record.get("binary", ""))) if record.get("binary") else None
    places: list[tuple[Path, str]] = [(state_dir, JOURNAL)]
    if binary is None and state_dir.name.startswith(".") and state_dir.name.endswith("-update"):
        binary = state_dir.parent / state_dir.name[1 : -len("-update")]
    if binary is not None:
        places.append((binary.parent, binary.name))
    places += [(Path(p).parent, Path(p).name) for p in record.get("data_files", [])]
    removed = []
    for folder, name in places:
        pattern = re.compile(rf"^\.\.?{re.escape(name)}\.(?:new\.)?(\d+)(?:\.\d+)?\.partial$")
        with contextlib.suppress(OSError):
            for path in folder.iterdir():
                match = pattern.match(path.name)
                if match and not _pid_alive(int(match.group(1))):
                    path.unlink(missing_ok=True)
                    removed.append(path)
    scratch_dirs = [Path(record["scratch"])] if record.get("scratch") else []
    with contextlib.suppress(OSError):
        scratch_dirs += list(Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"))
    for scratch in set(scratch_dirs):
        match = re.match(rf"^{SCRATCH_PREFIX}(\d+)-", scratch.name)
        owner = scratch / "owner"
        if not match or _pid_alive(int(match.group(1))) or not owner.is_file():
            continue
        with contextlib.suppress(OSError):
            if owner.read_text() == str(state_dir):
                shutil.rmtree(scratch)
                removed.append(scratch)
    return removed


def recover(state_dir: Path, *, force: bool = False, abandon: bool = False) -> str | None:
    """Finish or undo an update that was interrupted; return what was done.

    A stuck journal (a restore that failed, or an interrupted one whose files
    changed since) raises until `force` (restore anyway) or `abandon` (keep
    the current files and close the journal)."""
    if force and abandon:
        raise UsageError("--force and --abandon contradict each other", hint="pass one of them")
    journal = Journal.read(state_dir)
    removed = _clean_leftovers(state_dir, journal)
    if removed:
        log.info(f"removed {len(removed)} leftover(s) of a killed updater: {', '.join(p.name for p in removed)}")
    if journal is None or journal.state in FINISHED:
        if force or abandon:
            raise UsageError(
                f"no unfinished update in {state_dir} to {'--force' if force else '--abandon'}", hint="nothing to do"
            )
        return None
    snapshot_dir = journal.snapshot_dir
    if abandon:
        journal.advance("abandoned", reason=f"abandoned by hand at {journal.state}; the current files were kept")
        kept = f"; the snapshot stays in {snapshot_dir}" if snapshot_dir and snapshot_dir.exists() else ""
        log.info(f"closed the journal and kept the current files{kept}")
        return "abandoned"
    if journal.state == "stuck" and not force:
        raise _stuck_error(journal)
    if journal.state == "committed":
        keep = int(journal.record.get("keep", 3))
        if keep >= 0:  # a journal from before negative keeps were refused: prune nothing
            prune(state_dir, keep)
        journal.advance("done")
        log.info("recovered: the interrupted update had passed its checks; it is now complete")
        return "completed"
    if journal.state in UNTOUCHED or snapshot_dir is None:
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
        journal.advance("rolled-back", reason="interrupted before anything was changed")
        log.info("recovered: the interrupted update had not changed anything")
        return "nothing to undo"
    if not force:
        changed = _changed(journal, journal.record.get("live", {}))
        if changed:
            journal.advance(
                "stuck",
                stuck_reason=f"it was interrupted at {journal.state}, and {', '.join(changed)} changed since",
                live=journal.live(),
            )
            raise _stuck_error(journal)
    reason = "restored by hand (--force)" if force else f"interrupted at {journal.state}"
    _roll_back(journal, snapshot_dir, reason=reason)
    log.info(f"recovered: restored binary and data from {snapshot_dir}")
    return "restored"


# --- the update ----------------------------------------------------------------------------


def _run(binary: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    log.command([binary, *args])
    try:
        completed = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600, check=False
        )
    except OSError as exc:
        raise UpdateError(f"cannot run {binary}: {_os_reason(exc)}", hint="check the binary") from None
    except subprocess.TimeoutExpired:
        raise UpdateError(f"`{binary.name} {' '.join(args)}` did not finish in 600 s", hint="check the app") from None
    return completed.returncode, (completed.stdout + completed.stderr).strip()


def _make_scratch(state_dir: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    (scratch / "owner").write_text(str(state_dir))  # lets a recovery clean it up after a kill -9
    return scratch


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
    _check_keep(keep)
    data_files = list(dict.fromkeys(p.resolve() for p in data_files))
    for database in data_files:
        _check_data_file(database)
    state_dir = state_dir or default_state_dir(binary)
    refuse_if_stuck(state_dir)
    env = env or {}
    scratch = _make_scratch(state_dir)
    try:
        with log.status("verifying the new artifact"):
            artifact = verify_artifact(source, public_key_text, scratch)
        if binary.name not in artifact.binaries:
            raise UpdateError(f"{artifact.archive.name} has no {binary.name}", hint="pick the archive of this app")
        member = artifact.member(binary.name)
        kind = _check_installed_kind(binary, artifact.target, scratch)
        with exclusive_lock(state_dir, wait):
            recover(state_dir)
            check_space(binary, data_files, state_dir, member.size,
                        free_space or (lambda p: shutil.disk_usage(p).free))  # fmt: skip
            staged = binary.with_name(f".{binary.name}.new.{os.getpid()}.partial")
            try:
                return _apply(binary, artifact, data_files, state_dir, staged, kind, keep, env, scratch)
            finally:
                staged.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _apply(
    binary: Path,
    artifact: Artifact,
    data_files: list[Path],
    state_dir: Path,
    staged: Path,
    kind: tuple[str, str],
    keep: int,
    env: dict[str, str],
    scratch: Path,
) -> UpdateResult:
    member = artifact.member(binary.name)
    try:
        extract_binary(artifact, binary.name, staged)
        _apply_ownership(staged, _ownership(binary))
    except OSError as exc:
        raise UpdateError(
            f"cannot unpack the new {binary.name} into {binary.parent}: {_os_reason(exc)}",
            hint="free some space there (or fix its permissions); nothing was changed",
        ) from None
    _check_same_kind(staged, kind, binary.name)
    _, old_version = _run(binary, ["--version"], env)
    ident = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    for suffix in range(2, 100):  # a second update by this process within the same second
        if not (state_dir / SNAPSHOTS / ident).exists():
            break
        ident = f"{ident.rsplit('.', 1)[0]}.{suffix}"
    snapshot_dir = state_dir / SNAPSHOTS / ident
    journal = Journal(state_dir, {"id": ident, "binary": str(binary), "keep": keep, "steps": []})
    try:
        journal.advance(
            "verified",
            artifact=artifact.archive.name,
            new_sha256=artifact.sha256,
            new_binary_sha256=member.sha256,
            new_version=artifact.version,
            old_version=old_version,
            data_files=[str(p) for p in data_files],
            staged=str(staged),
            scratch=str(scratch),
        )
        journal.advance("snapshotting", snapshot=str(snapshot_dir))
    except OSError as exc:
        raise UpdateError(
            f"cannot write the update journal in {state_dir}: {_os_reason(exc)}",
            hint="free some space there (or fix its permissions); nothing was changed",
        ) from None
    try:
        with log.status(f"snapshotting {binary.name} and {len(data_files)} data file(s)"):
            _private_dir(state_dir / SNAPSHOTS)
            snapshot(binary, data_files, snapshot_dir)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            journal.advance("rolled-back", reason=f"snapshot failed: {_os_reason(exc)}")
        raise UpdateError(
            f"cannot snapshot {binary.name} and its data into {state_dir}: {_os_reason(exc)}",
            hint="free some space there; nothing was changed",
        ) from None
    output = ""
    try:
        journal.advance("snapshotted", live=journal.live())
        journal.advance("swapping")
        if os.name == "nt":  # a running exe can be renamed, not replaced
            os.replace(binary, binary.with_name(binary.name + ".old"))
        os.replace(staged, binary)
        fsync_dir(binary.parent)
        journal.advance("swapped", live=journal.live(binary))
        journal.advance("migrating")
        code, output = _run(binary, ["migrate"], env)
        if code != 0:
            last = output.splitlines()[-1] if output else "no output"
            raise UpdateError(f"`{binary.name} migrate` failed with exit code {code}: {last}")
        journal.advance("migrated", live=journal.live(*data_files))
        code, doctor_output = _run(binary, ["doctor"], env)
        output = f"{output}\n{doctor_output}".strip()
        if code != 0:
            raise UpdateError(f"`{binary.name} doctor` failed with exit code {code} after the migration")
        journal.advance("checked", live=journal.live(*data_files))
        journal.advance("committed")
    except BaseException as failure:
        reason = _os_reason(failure) if isinstance(failure, ToolchainError | OSError) else repr(failure)
        _roll_back(journal, snapshot_dir, reason=reason, output=output)
        if isinstance(failure, ToolchainError | OSError):
            raise UpdateError(
                f"{reason}; rolled back binary and data to {old_version}",
                hint=f"the migration said: {output[-500:]}" if output else "see the output above",
            ) from None
        raise
    with contextlib.suppress(OSError):  # the update is in; a recovery finishes these
        prune(state_dir, keep)
        journal.advance("done")
    return UpdateResult(
        True,
        journal.state,
        old_version,
        artifact.version,
        snapshot_dir if snapshot_dir.exists() else None,
        output,
        tuple(s[0] for s in journal.record["steps"]),
        artifact.sha256,
    )


def rollback(state_dir: Path, wait: float = 0.0, *, yes: bool = False) -> Path:
    """Restore the newest snapshot by hand. Without `yes` it only says what
    would be lost (UsageError)."""
    if not (state_dir / SNAPSHOTS).is_dir():
        raise UpdateError(f"no snapshots in {state_dir / SNAPSHOTS}", hint="nothing to roll back to")
    with exclusive_lock(state_dir, wait):
        journal = Journal.read(state_dir)
        if journal is not None and journal.state == "stuck":
            raise _stuck_error(journal)
        if journal is not None and journal.state not in FINISHED:
            raise UpdateError(
                f"an interrupted update of {journal.record.get('binary', '?')} is not finished",
                hint=f"run `{_recover_hint(journal)}` first",
            )
        snapshots = list_snapshots(state_dir)
        if not snapshots:
            raise UpdateError(f"no snapshots in {state_dir / SNAPSHOTS}", hint="nothing to roll back to")
        folder, manifest = snapshots[-1]
        data = [Path(e["path"]) for e in manifest["data"]]
        names = ", ".join(p.name for p in data) or "no data files"
        if not yes:
            raise UsageError(
                f"rolling back puts {Path(manifest['binary']['path']).name} and {names} back as they were at "
                f"{manifest['created']} (snapshot {folder.name}): everything written to them since is lost",
                hint="pass --yes to roll back",
            )
        record = {
            "id": f"rollback-{folder.name}",
            "binary": manifest["binary"]["path"],
            "data_files": [str(p) for p in data],
            "snapshot": str(folder),
            "steps": [],
        }
        _roll_back(Journal(state_dir, record), folder, reason="rollback by hand")
        return folder
