"""The new artifact, checked before anything is touched: fetched from a
folder or URL with its .sha256, .minisig and the signed manifest.json;
digest, signatures, target and the signed member list verified; every
archive member checked from its header and streamed (capped, digest-checked)
without extracting; the one binary extracted; and the installed and staged
binaries checked to be executables of the archive's kind."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from toolchain.config import catalog
from toolchain.config.targets import host_platform
from toolchain.digest import sha256_file
from toolchain.errors import SignatureError, UpdateError, UsageError
from toolchain.records.build_record import Member
from toolchain.release.signing import HASHED_SIG_ALG, PublicKey, parse_public_key, verify_file
from toolchain.update.files import CHUNK, PRIVATE_DIR, os_reason

# A manifest from before [update] upgrade-checks: the toolkit then always ran
# `APP migrate` and `APP doctor` after the swap, and its apps count on the migration.
LEGACY_UPGRADE_CHECKS: tuple[tuple[str, ...], ...] = (("migrate",), ("doctor",))


@dataclass(frozen=True)
class Artifact:
    archive: Path
    sha256: str
    target: str
    version: str
    binaries: tuple[str, ...]
    members: tuple[Member, ...] = ()
    upgrade_checks: tuple[tuple[str, ...], ...] = (("--version",),)  # the signed manifest's, run after the swap

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


def download(url: str, out: Path) -> Path:
    """One URL's bytes into `out`."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, out.open("wb") as handle:
            shutil.copyfileobj(response, handle, CHUNK)
    except (urllib.error.URLError, OSError) as exc:
        raise UpdateError(f"cannot download {url}: {exc}", hint="check the artifact URL") from exc
    return out


def fetch(source: str, name: str, into: Path) -> Path:
    """A sibling file of the artifact: from a folder, or from a URL's folder."""
    if "://" in source:
        return download(source.rsplit("/", 1)[0] + "/" + name, into / name)
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


def _upgrade_checks(manifest: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """What the publisher declared the new binary runs after the swap ([update] upgrade-checks)."""
    if "upgrade_checks" not in manifest:
        return LEGACY_UPGRADE_CHECKS
    checks = _field(manifest, "upgrade_checks", list, "")
    if not all(isinstance(c, list) and c and all(isinstance(w, str) and w for w in c) for c in checks):
        raise _manifest_error("has a malformed 'upgrade_checks'")
    return tuple(tuple(c) for c in checks)


def _parse_manifest(
    path: Path, name: str
) -> tuple[dict[str, Any], str, tuple[Member, ...], tuple[tuple[str, ...], ...]]:
    """The archive's manifest entry, the app's version, its members and the upgrade checks."""
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
    return entry, version, tuple(members), _upgrade_checks(manifest)


def verify_artifact(source: str, public_key_text: str, work: Path) -> Artifact:
    """Digest, signature, target and member list of the new archive, before anything is touched."""
    _refuse_a_folder(source)
    name = source.rsplit("/", 1)[-1]
    archive = fetch(source, name, work)
    checksum = fetch(source, f"{name}.sha256", work).read_text(errors="replace").split()
    digest = sha256_file(archive)
    if not checksum or checksum[0] != digest:
        raise UpdateError(f"{name}: SHA-256 does not match {name}.sha256", hint="the download is corrupt or tampered")
    public = parse_public_key(public_key_text)
    _verify_signature(archive, fetch(source, f"{name}.minisig", work), public, name)
    manifest_path = fetch(source, "manifest.json", work)
    _verify_signature(manifest_path, fetch(source, "manifest.json.minisig", work), public, "manifest.json")
    entry, version, members, checks = _parse_manifest(manifest_path, name)
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
    artifact = Artifact(archive, digest, target, version, tuple(str(b) for b in entry["binaries"]), members, checks)
    check_members(artifact)
    return artifact


# --- reading the archive -----------------------------------------------------------------


def _corrupt(archive: Path, exc: BaseException) -> UpdateError:
    return UpdateError(f"{archive.name} is truncated or corrupt ({os_reason(exc)})", hint="download the release again")


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


def check_installed_kind(binary: Path, target: str, scratch: Path) -> tuple[str, str]:
    """The installed binary is an executable of the kind the archive's target
    makes. Checked on a copy read through one open file (another updater may
    swap the binary meanwhile: this runs before the lock)."""
    from toolchain.errors import InspectionError
    from toolchain.verify.inspection import inspect_binary

    copy = scratch / "installed"
    try:
        shutil.copyfile(binary, copy)
        info = inspect_binary(copy)
    except OSError as exc:
        raise UpdateError(
            f"cannot read {binary}: {os_reason(exc)}", hint="check the path and its permissions"
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


def check_same_kind(staged: Path, installed: tuple[str, str], name: str) -> None:
    from toolchain.errors import InspectionError
    from toolchain.verify.inspection import inspect_binary

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
