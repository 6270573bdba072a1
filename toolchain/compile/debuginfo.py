"""Debug info split off the shipped binary, for crash reports.

When a build's profile keeps debug info (ripgrep's `[profile.release]
debug = 1`, inherited by the dist profile), the toolkit links without
stripping, then splits each binary in two: the shipped binary, stripped as
the profile asks, and its debug file, archived and released beside it.

- ELF and PE (windows-gnu's DWARF): `llvm-objcopy --only-keep-debug` writes
  NAME.debug, and the stripped copy gets a GNU debuglink (file name + CRC32)
  to it; an ELF binary's build-id note stays in both.
- Mach-O: `dsymutil` links the DWARF that the debug map of the binary names
  into NAME.dSYM (matched by LC_UUID), then the copy is stripped.

Split after the link rather than with cargo's `split-debuginfo`: on Linux
rustc splits only the crates this build compiles (std's DWARF stays in the
binary), and windows-gnu has no split at all, while one post-link step treats
every byte of DWARF the linker wrote, alike on all five targets.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from toolchain import proc
from toolchain.config.profiles import CARGO_BUILTIN_PROFILES, Profile
from toolchain.errors import BuildError, MissingToolError

SPLIT_DIR = "split-debug"  # beside cargo's output: the stripped copies and their debug files
DEBUG_SUFFIX = ".debug"
DSYM_SUFFIX = ".dSYM"
# cargo's profile `debug` values that keep no debug info
_NO_DEBUG = {0, "none"}  # False == 0
# what cargo uses when no profile sets `debug`
_BUILTIN_DEBUG = {"release": 0, "dev": 2}
_TOOL_HINT = "install LLVM (apt-get install rust-web-llvm, or llvm), or build with a profile that sets debug = 0"


def effective_debug(
    profile: Profile, manifest_profiles: dict[str, dict[str, Any]], define: bool, skip: frozenset[str]
) -> Any:
    """The `debug` value cargo builds `profile` with: ours when the toolkit defines
    the profile and sets it, else the manifest's, following `inherits` down to
    cargo's built-in profiles."""
    ours = dict(profile.settings)
    if define and "debug" in ours and "debug" not in skip:
        return ours["debug"]
    name = str(ours.get("inherits", profile.name)) if define else profile.name
    seen: set[str] = set()
    while name not in seen:
        seen.add(name)
        table = manifest_profiles.get(name, {})
        if "debug" in table:
            return table["debug"]
        if name in CARGO_BUILTIN_PROFILES:
            break
        name = str(table.get("inherits", "release"))
    return _BUILTIN_DEBUG.get(name, 0)


def keeps_debug(value: Any) -> bool:
    return value not in _NO_DEBUG


def strips_symbols(profile: Profile, manifest_profiles: dict[str, dict[str, Any]], define: bool) -> bool:
    """Whether the profile asks for its symbol table gone (strip = true / "symbols"),
    not only its debug info: the split copy is stripped as far."""
    ours = dict(profile.settings)
    value = ours.get("strip") if define and "strip" in ours else None
    name = str(ours.get("inherits", profile.name)) if define else profile.name
    if value is None:
        value = manifest_profiles.get(name, {}).get("strip", False)
    return value in (True, "symbols")


@dataclass(frozen=True)
class SplitBinary:
    """One binary after the split: the copy to ship and its debug info."""

    stripped: Path
    debug: Path  # NAME.debug, or NAME.dSYM (a folder)
    kind: str  # "debuglink" (ELF, PE) or "dsym" (Mach-O)
    build_id: str | None  # ELF's NT_GNU_BUILD_ID, Mach-O's LC_UUID; None for PE

    def debug_files(self) -> list[tuple[str, Path]]:
        """(name inside the debug archive, file) for every file of the debug info."""
        if self.debug.is_dir():
            base = self.debug.parent
            return sorted((str(p.relative_to(base)), p) for p in self.debug.rglob("*") if p.is_file())
        return [(self.debug.name, self.debug)]

    @property
    def dwarf(self) -> Path:
        """The file holding the DWARF (inside a dSYM, its one DWARF file)."""
        if self.debug.is_dir():
            found = sorted((self.debug / "Contents" / "Resources" / "DWARF").glob("*"))
            if found:
                return found[0]
        return self.debug


class Splitter(Protocol):
    """Splits one binary format's debug info off a linked binary."""

    def split(self, binary: Path, out_dir: Path, strip_symbols: bool) -> SplitBinary: ...


def llvm_tool(name: str) -> str | None:
    """The newest of the distribution's LLVM copies of `name` (rustc-web brings LLVM 22
    through rust-web-llvm, whose llvm-objcopy also redoes an arm64 Mach-O's ad hoc
    signature), else one on PATH."""
    candidates = sorted(
        Path("/usr/lib").glob(f"llvm-*/bin/{name}"),
        key=lambda p: int(p.parts[3][5:]) if p.parts[3][5:].isdigit() else 0,
    )
    return str(candidates[-1]) if candidates else shutil.which(name)


def _tool(name: str) -> str:
    found = llvm_tool(name)
    if found is None:
        raise MissingToolError(
            f"{name} is not installed: it splits off the debug info this profile keeps", hint=_TOOL_HINT
        )
    return found


class DebuglinkSplitter:
    """ELF and PE: the debug sections into NAME.debug, a GNU debuglink in the copy."""

    def split(self, binary: Path, out_dir: Path, strip_symbols: bool) -> SplitBinary:
        objcopy = _tool("llvm-objcopy")
        debug = out_dir / f"{binary.name}{DEBUG_SUFFIX}"
        stripped = out_dir / binary.name
        for path in (debug, stripped):
            path.unlink(missing_ok=True)
        what = f"splitting the debug info of {binary.name}"
        proc.run([objcopy, "--only-keep-debug", binary, debug], error=BuildError, what=what, quiet=True)
        strip = "--strip-all" if strip_symbols else "--strip-debug"
        # The debuglink names the file (no folder) and holds its CRC32: a debugger finds it beside
        # the binary or in its debug folders; `toolchain symbolicate` reads it directly.
        proc.run(
            [objcopy, strip, f"--add-gnu-debuglink={debug}", binary, stripped], error=BuildError, what=what, quiet=True
        )
        return SplitBinary(stripped, debug, "debuglink", elf_build_id(stripped))


class DsymSplitter:
    """Mach-O: dsymutil links the DWARF its debug map names into NAME.dSYM."""

    def split(self, binary: Path, out_dir: Path, strip_symbols: bool) -> SplitBinary:
        dsymutil = _tool("dsymutil")
        objcopy = _tool("llvm-objcopy")
        bundle = out_dir / f"{binary.name}{DSYM_SUFFIX}"
        stripped = out_dir / binary.name
        shutil.rmtree(bundle, ignore_errors=True)
        stripped.unlink(missing_ok=True)
        what = f"writing the dSYM of {binary.name}"
        proc.run([dsymutil, binary, "-o", bundle], error=BuildError, what=what, quiet=True)
        strip = "--strip-all" if strip_symbols else "--strip-debug"
        proc.run([objcopy, strip, binary, stripped], error=BuildError, what=what, quiet=True)
        return SplitBinary(stripped, bundle, "dsym", macho_uuid(stripped))


SPLITTERS: dict[str, Splitter] = {"ELF": DebuglinkSplitter(), "PE": DebuglinkSplitter(), "MachO": DsymSplitter()}


def has_dwarf(binary: Path) -> bool:
    """Whether the linked binary carries DWARF to split (ELF/PE sections) or a
    debug map naming it (Mach-O's N_OSO stabs, read by dsymutil)."""
    if format_of(binary) == "MachO":
        return any(name.startswith("__debug") for name in section_names(binary)) or _has_debug_map(binary)
    return bool({".debug_info", ".zdebug_info"} & section_names(binary))


def section_names(binary: Path) -> set[str]:
    """The names of a binary's sections, as llvm-objdump reads them (a PE's long
    names resolved through its string table, which LIEF shows as `/N`)."""
    listed = proc.run([_tool("llvm-objdump"), "--section-headers", binary], error=BuildError, quiet=True).stdout
    return {line.split()[1] for line in listed.splitlines() if re.match(r"\s*\d+ \S", line)}


def _has_debug_map(binary: Path) -> bool:
    result = proc.run([_tool("dsymutil"), "--dump-debug-map", binary], check=False, quiet=True)
    return result.returncode == 0 and "filename:" in result.stdout  # one per object the map names


def format_of(binary: Path) -> str:
    head = binary.read_bytes()[:4]
    if head == b"\x7fELF":
        return "ELF"
    if head[:2] == b"MZ":
        return "PE"
    return "MachO"


def split_binary(binary: Path, strip_symbols: bool) -> SplitBinary | None:
    """Split `binary`'s debug info into SPLIT_DIR beside it; None when it has none."""
    if not has_dwarf(binary):
        return None
    out_dir = binary.parent / SPLIT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    return SPLITTERS[format_of(binary)].split(binary, out_dir, strip_symbols)


def elf_build_id(path: Path) -> str | None:
    if format_of(path) != "ELF":
        return None
    lief = _lief()
    parsed = lief.ELF.parse(str(path))
    for note in parsed.notes if parsed is not None else ():
        if note.type == lief.ELF.Note.TYPE.GNU_BUILD_ID:
            return bytes(note.description).hex()
    return None


def macho_uuid(path: Path) -> str | None:
    lief = _lief()
    parsed = lief.MachO.parse(str(path))
    if parsed is None:
        return None
    binary = parsed.at(0)
    if binary.has_uuid:
        return bytes(binary.uuid.uuid).hex()
    return None


def gnu_debuglink(path: Path) -> tuple[str, int] | None:
    """The debuglink of an ELF or PE binary: the debug file's name and its CRC32. Read with
    llvm-objcopy, which resolves a PE's long section names (LIEF shows them as `/N`)."""
    with tempfile.TemporaryDirectory(prefix="toolchain-debuglink-") as work:
        dumped = Path(work) / "debuglink"
        argv: list[str | Path] = [
            _tool("llvm-objcopy"),
            f"--dump-section=.gnu_debuglink={dumped}",
            path,
            Path(work) / "copy",
        ]
        if proc.run(argv, check=False, quiet=True).returncode != 0 or not dumped.is_file():
            return None
        data = dumped.read_bytes()
    name, _, rest = data.partition(b"\0")
    # the name's NUL, then padding to a multiple of four, then the CRC32
    padding = -(len(name) + 1) % 4
    return name.decode(), int.from_bytes(rest[padding : padding + 4], "little")


def _lief() -> Any:
    import lief  # imported on a thread while cargo compiles (pipeline.warm_up_inspection)

    return lief
