"""`toolchain symbolicate`: addresses from a crash of a release binary, mapped
to function, file and line with the debug info the release shipped beside
its archives (compile/debuginfo.py split it off; its archive is the manifest's
`debug-symbols` artifact of the target).

Accepted address forms (docs/debug-symbols.md):
- `BIN+0xOFF` and `BIN(+0xOFF)` (glibc's backtrace_symbols, perf, most crash
  reporters): an offset from the binary's load base;
- `0xADDR`: an address as the binary's headers lay it out (what nm and objdump
  print; for a PIE it equals the offset from the load base);
- `0xADDR` with `--load-base 0xBASE`: a runtime address (a Rust backtrace of a
  stripped binary, `N: 0x55d4c3e0a1b2 - <unknown>`) and where the binary was
  mapped (/proc/PID/maps, or the crash report's image list);
- `0xOFF` with `--file-offset`: an offset into the binary's file.

The DWARF is read by llvm-symbolizer (ELF, PE and Mach-O alike, inlined frames
included); Rust's legacy mangled names are demangled by binutils' c++filt."""

from __future__ import annotations

import json
import re
import shutil
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.compile.debuginfo import DEBUG_SUFFIX, DSYM_SUFFIX, llvm_tool
from toolchain.digest import sha256_file
from toolchain.errors import MissingToolError, ReleaseCheckError, UsageError

SCHEMA = "toolchain.symbolicate/v1"
DEBUG_KIND = "debug-symbols"  # the manifest's kind of a debug archive (release/folder.py)
MANIFEST = "manifest.json"
# The legacy mangling's hash and v0's crate disambiguators (`core[e831682f6eada0aa]`): noise in a backtrace.
_HASH = re.compile(r"::h[0-9a-f]{16}$|\[[0-9a-f]{1,16}\](?=::|>| as |$)")
# `tool(+0x1a2b)`, `tool+0x1a2b`: an offset from the binary's load base
_OFFSET = re.compile(r"(?P<binary>[^\s()\[\]]*?)\(?\+0x(?P<number>[0-9a-fA-F]+)\)?")
NO_ADDRESS = "no address on this line"
_ADDRESS = re.compile(r"(?<![\w+])0x(?P<number>[0-9a-fA-F]+)\b")


@dataclass(frozen=True)
class Location:
    function: str
    file: str | None
    line: int | None
    column: int | None
    inlined: bool  # inlined into the next location of the frame

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Frame:
    """One address of the input, resolved or with why not."""

    text: str  # the input line (or the address given)
    binary: str | None = None
    address: int | None = None  # as the binary's headers lay it out
    locations: tuple[Location, ...] = ()  # innermost first; the last is the function the address is in
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.text,
            "binary": self.binary,
            "address": f"0x{self.address:x}" if self.address is not None else None,
            "locations": [loc.to_dict() for loc in self.locations],
            "error": self.error,
        }


@dataclass(frozen=True)
class Image:
    """One binary's debug info, and the layout its addresses are read in."""

    name: str
    dwarf: Path
    base: int  # the lowest address its headers map (ELF: first PT_LOAD; Mach-O: __TEXT; PE: ImageBase)
    ranges: tuple[tuple[int, int], ...] = field(default=())  # mapped [start, end) address ranges
    offsets: tuple[tuple[int, int, int], ...] = field(default=())  # (file offset, size, address)

    def contains(self, address: int) -> bool:
        return any(start <= address < end for start, end in self.ranges)

    def from_file_offset(self, offset: int) -> int | None:
        for start, size, address in self.offsets:
            if start <= offset < start + size:
                return address + offset - start
        return None


def symbolicate(
    folder: Path,
    target: str,
    lines: Sequence[str],
    *,
    binary: str | None = None,
    load_base: int | None = None,
    file_offset: bool = False,
    backtrace: bool = False,
) -> list[Frame]:
    """Resolve every address found in `lines` (one per line: a backtrace's frame,
    or an address on its own) with the release's debug info for `target`.

    backtrace: the lines are a pasted backtrace: a line with no address is left out,
    and each address is a return address, looked up one byte back (in the call
    instruction, so the line is the call's, as debuggers and Rust's own
    backtraces do). Addresses given on their own are looked up as they are."""
    archives = debug_archives(folder, target)
    back = 1 if backtrace else 0
    with unpacked(archives) as found:
        images = {name: image_of(name, path) for name, path in found.items()}
        frames = [_locate(line, images, binary, load_base, file_offset) for line in lines if line.strip()]
        if backtrace:
            frames = [f for f in frames if f.error != NO_ADDRESS]
        wanted: dict[str, list[int]] = {}
        for frame in frames:
            if frame.error is None and frame.binary is not None and frame.address is not None:
                wanted.setdefault(frame.binary, []).append(frame.address - back)
        resolved = {name: _symbolize(images[name].dwarf, addresses) for name, addresses in wanted.items()}
    return [
        Frame(f.text, f.binary, f.address, resolved[f.binary].get(f.address - back, ()), f.error)
        if f.error is None and f.binary is not None and f.address is not None
        else f
        for f in frames
    ]


def debug_archives(folder: Path, target: str) -> list[Path]:
    """The target's debug archives the folder's manifest lists, checked against their digests."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except OSError:
        raise UsageError(
            f"no {MANIFEST} in {folder}", hint="pass --release-folder (a release made by `toolchain build`)"
        ) from None
    except ValueError:
        raise ReleaseCheckError(f"{manifest_path} is not JSON", hint="use the release's own files") from None
    entries = [a for a in manifest.get("artifacts", []) if a.get("kind") == DEBUG_KIND and a.get("target") == target]
    if not entries:
        targets = sorted({a.get("target") for a in manifest.get("artifacts", []) if a.get("kind") == DEBUG_KIND})
        shown = f" (it has them for {', '.join(targets)})" if targets else ""
        raise UsageError(
            f"{folder} has no debug symbols for {target}{shown}",
            hint='build with a profile that keeps debug info ([profile.release] debug = 1 or "line-tables-only")',
        )
    paths = []
    for entry in entries:
        path = folder / entry["name"]
        if not path.is_file():
            raise UsageError(f"{entry['name']} is listed in {MANIFEST} but missing", hint="download it beside it")
        if sha256_file(path) != entry["sha256"]:
            raise ReleaseCheckError(
                f"{entry['name']}: SHA-256 does not match {MANIFEST}", hint="use the release's own files"
            )
        paths.append(path)
    return paths


@contextmanager
def unpacked(archives: Sequence[Path]) -> Iterator[dict[str, Path]]:
    """Binary name (without .exe) -> the file holding its DWARF, unpacked into a folder removed after."""
    with tempfile.TemporaryDirectory(prefix="toolchain-symbols-") as work:
        root = Path(work)
        for index, archive in enumerate(archives):
            _unpack(archive, root / str(index))
        found: dict[str, Path] = {}
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            if path.name.endswith(DEBUG_SUFFIX):
                found[path.name.removesuffix(DEBUG_SUFFIX).removesuffix(".exe")] = path
            elif path.parent.name == "DWARF" and any(p.name.endswith(DSYM_SUFFIX) for p in path.parents):
                found[path.name] = path
        yield found


def _unpack(archive: Path, into: Path) -> None:
    # The archive's digest was checked against the manifest; the filters refuse links and paths
    # that leave the folder all the same.
    into.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    target = (into / info.filename).resolve()
                    if not target.is_relative_to(into.resolve()):
                        raise ReleaseCheckError(f"{archive.name}: unsafe member {info.filename!r}", hint="re-download")
                zipped.extractall(into)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ReleaseCheckError(f"{archive.name} cannot be unpacked ({exc})", hint="re-download it") from exc


def image_of(name: str, dwarf: Path) -> Image:
    """The address layout of a debug file (it keeps its binary's headers)."""
    with dwarf.open("rb") as handle:
        head = handle.read(2)
    if head == b"MZ":
        return _pe_image(name, dwarf)
    import lief

    lief.logging.disable()  # a debug-only ELF's empty PT_DYNAMIC is reported, harmlessly
    parsed = lief.parse(str(dwarf))
    if parsed is None:
        raise ReleaseCheckError(f"{dwarf.name} is not a debug file LIEF can read", hint="re-download the release")
    if isinstance(parsed, lief.MachO.FatBinary):
        parsed = parsed.at(0)
    ranges: list[tuple[int, int]] = []
    offsets: list[tuple[int, int, int]] = []
    if isinstance(parsed, lief.ELF.Binary):
        for segment in parsed.segments:
            if segment.type == lief.ELF.Segment.TYPE.LOAD:
                ranges.append((segment.virtual_address, segment.virtual_address + segment.virtual_size))
                offsets.append((segment.file_offset, segment.physical_size, segment.virtual_address))
        base = min((start for start, _ in ranges), default=0)
    elif isinstance(parsed, lief.MachO.Binary):
        for command in parsed.segments:
            if command.name == "__PAGEZERO" or command.virtual_size == 0:
                continue
            ranges.append((command.virtual_address, command.virtual_address + command.virtual_size))
            offsets.append((command.file_offset, command.file_size, command.virtual_address))
        base = min((start for start, _ in ranges), default=0)
    else:
        raise ReleaseCheckError(f"{dwarf.name} is no ELF, PE or Mach-O file", hint="re-download the release")
    return Image(name, dwarf, base, tuple(ranges), tuple(offsets))


def _pe_image(name: str, path: Path) -> Image:
    """A PE file's ImageBase and section table, read from its headers: LIEF gives up on
    a debug-only PE (its data directories point at sections left without data)."""
    data = path.read_bytes()
    try:
        (pe,) = struct.unpack_from("<I", data, 0x3C)
        if data[pe : pe + 4] != b"PE\0\0":
            raise ValueError("no PE signature")
        sections, optional_size = struct.unpack_from("<2xH12xH", data, pe + 4)
        optional = pe + 24
        (magic,) = struct.unpack_from("<H", data, optional)
        base = (
            struct.unpack_from("<Q", data, optional + 24)[0]
            if magic == 0x20B
            else struct.unpack_from("<I", data, optional + 28)[0]
        )
        ranges, offsets = [], []
        for index in range(sections):
            entry = optional + optional_size + 40 * index
            virtual_size, virtual_address, raw_size, raw_offset = struct.unpack_from("<4I", data, entry + 8)
            start = base + virtual_address
            ranges.append((start, start + max(virtual_size, raw_size)))
            offsets.append((raw_offset, raw_size, start))
    except (struct.error, ValueError) as exc:
        raise ReleaseCheckError(
            f"{path.name} is not a readable PE file ({exc})", hint="re-download the release"
        ) from None
    return Image(name, path, base, tuple(ranges), tuple(offsets))


def _locate(line: str, images: dict[str, Image], binary: str | None, load_base: int | None, file_offset: bool) -> Frame:
    """Which binary and address a line names (not yet resolved)."""
    text = line.strip()
    offset = _OFFSET.search(text)
    if offset is not None:
        named = Path(offset.group("binary").replace("\\", "/")).name.removesuffix(".exe")
        image, error = _image(images, named or binary)
        if image is None:
            return Frame(text, named or None, error=error)
        return Frame(text, image.name, image.base + int(offset.group("number"), 16))
    found = _ADDRESS.search(text)
    if found is None:
        return Frame(text, error=NO_ADDRESS)
    image, error = _image(images, binary)
    if image is None:
        return Frame(text, error=error)
    number = int(found.group("number"), 16)
    if file_offset:
        address = image.from_file_offset(number)
        if address is None:
            return Frame(text, image.name, error=f"file offset 0x{number:x} is in no loaded part of {image.name}")
    elif load_base is not None:
        address = image.base + number - load_base
    else:
        address = number
    if not image.contains(address):
        return Frame(
            text,
            image.name,
            address,
            error=f"0x{address:x} is outside {image.name}'s image: for a runtime address pass --load-base",
        )
    return Frame(text, image.name, address)


def _image(images: dict[str, Image], name: str | None) -> tuple[Image | None, str | None]:
    if name:
        found = images.get(name.removesuffix(".exe"))
        if found is None:
            return None, f"no debug symbols for {name} in this release (it has {', '.join(sorted(images))})"
        return found, None
    if len(images) == 1:
        return next(iter(images.values())), None
    return None, f"several binaries ({', '.join(sorted(images))}): pass --binary"


def _symbolize(dwarf: Path, addresses: list[int]) -> dict[int, tuple[Location, ...]]:
    symbolizer = llvm_tool("llvm-symbolizer")
    if symbolizer is None:
        raise MissingToolError(
            "llvm-symbolizer is not installed: it reads the debug info",
            hint="install LLVM (apt-get install rust-web-llvm, or llvm)",
        )
    unique = sorted(set(addresses))
    argv = [symbolizer, "--output-style=JSON", "--no-demangle", "--inlining", f"--obj={dwarf}"]
    result = proc.run([*argv, *(f"0x{a:x}" for a in unique)], error=ReleaseCheckError, what="llvm-symbolizer")
    answers = json.loads(result.stdout)
    names = demangle([s.get("FunctionName", "") for answer in answers for s in answer.get("Symbol", [])])
    found: dict[int, tuple[Location, ...]] = {}
    for address, answer in zip(unique, answers, strict=True):
        symbols = answer.get("Symbol", [])
        locations = []
        for index, symbol in enumerate(symbols):
            function = names.get(symbol.get("FunctionName", ""), "")
            if not function or function == "??":
                continue
            locations.append(
                Location(
                    function,
                    symbol.get("FileName") or None,
                    symbol.get("Line") or None,
                    symbol.get("Column") or None,
                    inlined=index < len(symbols) - 1,
                )
            )
        found[address] = tuple(locations)
    return found


def demangle(names: list[str]) -> dict[str, str]:
    """Mangled -> readable, through binutils' c++filt (Rust legacy and v0, C++), the hash dropped."""
    unique = sorted({n for n in names if n})
    tool = shutil.which("c++filt")
    readable = unique
    if tool is not None and unique:
        result = proc.run([tool, *unique], check=False, quiet=True)
        lines = result.stdout.splitlines()
        if result.returncode == 0 and len(lines) == len(unique):
            readable = lines
    return {name: _HASH.sub("", shown) for name, shown in zip(unique, readable, strict=True)}


def parse_number(value: str, option: str) -> int:
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a number", hint=f"pass {option} 0x7f0000 (hex) or decimal"
        ) from None
