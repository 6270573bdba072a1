"""Binary inspection: the only module that imports LIEF.

Pure functions from a file to frozen dataclasses. LIEF is imported inside
the function that parses, so commands that hit the inspection cache never
pay its start-up cost (0.6 to 1 s).
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import InspectionError
from toolchain.verify.macho_signature import MachOSignature, read_signature

SCHEMA_VERSION = 3  # 3: `stripped` counts only what strip removes
LARGEST_SECTIONS = 8


def import_lief() -> None:
    """Import LIEF now (about a second), e.g. on a thread while cargo compiles."""
    import lief  # noqa: F401


def quiet_about_kept_objects() -> None:
    """A process that ends without freeing its objects (gc.freeze) leaves LIEF's
    alive: without this LIEF's bindings report each as a leak on stderr."""
    lief = sys.modules.get("lief")
    disable = getattr(lief, "disable_leak_warning", None)  # None too while a thread still imports it
    if disable is not None:
        disable()


@dataclass(frozen=True)
class Section:
    name: str
    size: int


@dataclass(frozen=True)
class MachOSlice:
    machine: str
    macos_min: str | None
    code_signature: bool
    signature: MachOSignature | None = None  # read and checked; None when unsigned


@dataclass(frozen=True)
class CrateSize:
    crate: str
    size: int
    symbols: int


@dataclass(frozen=True)
class AuditedPackage:
    """One entry of the dependency list cargo-auditable embeds."""

    name: str
    version: str
    source: str  # crates.io | local | git | registry
    kind: str  # runtime | build


@dataclass(frozen=True)
class Authenticode:
    """A PE's Authenticode signature as LIEF reads it (the first one)."""

    status: str  # "OK", or LIEF's verification flags (BAD_DIGEST, ...) when the signed bytes changed
    signer_sha256: str  # SHA-256 of the signer certificate (DER)
    signer_subject: str


@dataclass(frozen=True)
class BinaryInfo:
    """What one executable is. Fields that do not apply to a format are None."""

    format: str  # elf | macho | pe
    machine: str  # x86_64 | aarch64 | the raw name of anything else
    bits: int
    endianness: str  # little | big
    size: int
    stripped: bool
    leftover_symbols: tuple[str, ...]  # what keeps it from being stripped
    sections: tuple[Section, ...]  # largest first
    architectures: tuple[str, ...] = ()  # every slice of a fat Mach-O
    # ELF
    glibc_required: str | None = None
    needed_libraries: tuple[str, ...] = ()
    pie: bool | None = None
    nx: bool | None = None
    relro: str | None = None  # full | partial | none
    stack_protector: bool | None = None
    # Mach-O
    macos_min: str | None = None
    code_signature: bool | None = None
    slices: tuple[MachOSlice, ...] = ()
    # PE
    subsystem: str | None = None
    imports: tuple[str, ...] = field(default_factory=tuple)
    aslr: bool | None = None
    high_entropy_va: bool | None = None
    authenticode: Authenticode | None = None
    # cargo-auditable's embedded list (empty when the binary is not auditable)
    dependencies: tuple[AuditedPackage, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinaryInfo:
        values = dict(data)
        values["sections"] = tuple(Section(**s) for s in data["sections"])
        values["slices"] = tuple(
            MachOSlice(**{**s, "signature": MachOSignature(**s["signature"]) if s.get("signature") else None})
            for s in data.get("slices", ())
        )
        values["dependencies"] = tuple(AuditedPackage(**d) for d in data.get("dependencies", ()))
        if data.get("authenticode"):
            values["authenticode"] = Authenticode(**data["authenticode"])
        for key in ("leftover_symbols", "architectures", "needed_libraries", "imports"):
            values[key] = tuple(data.get(key, ()))
        return cls(**values)


_MACHINES = {
    "X86_64": "x86_64",
    "AARCH64": "aarch64",
    "ARM64": "aarch64",
    "AMD64": "x86_64",
    "I386": "x86",
    "X86": "x86",
    "ARM": "arm",
}


def _machine(raw: Any) -> str:
    name = str(raw).rsplit(".", 1)[-1]
    return _MACHINES.get(name, name.lower())


def inspect_binary(path: Path, *, lief_only: bool = False) -> BinaryInfo:
    """Parse an executable (ELF, Mach-O, fat Mach-O or PE). An ELF file is read from a
    memory map, only the headers, sections and dynamic entries the rules need (LIEF
    reads all of them); lief_only: LIEF's full parse, the reference it is checked against."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InspectionError(f"cannot read {path}: {exc.strerror}", hint="check the path") from exc
    if size == 0:
        raise InspectionError(f"{path} is empty, not an executable", hint="rebuild it")
    if not lief_only:
        fast = _elf_from_map(path, size)
        if fast is not None:
            return fast

    import lief

    lief.logging.disable()
    name = str(path)
    if lief.is_elf(name):
        elf = lief.ELF.parse(name, _elf_config(lief))
        if elf is None:
            raise _unparsable(path, "ELF")
        header = elf.header
        ends = [header.section_header_offset + header.numberof_sections * header.section_header_size]
        ends += [seg.file_offset + seg.physical_size for seg in elf.segments]
        _require_complete(path, size, ends, "ELF")
        return _with_dependencies(_elf(elf, size, path), elf.sections)
    if lief.is_macho(name):
        fat = lief.MachO.parse(name)
        if fat is None or fat.size == 0:
            raise _unparsable(path, "Mach-O")
        for index in range(fat.size):
            binary = fat.at(index)
            if binary is None:
                raise _unparsable(path, "Mach-O")
            base = binary.fat_offset if fat.size > 1 else 0
            _require_complete(path, size, [base + seg.file_offset + seg.file_size for seg in binary.segments], "Mach-O")
        first = fat.at(0)
        assert first is not None  # checked above
        return _with_dependencies(_macho(fat, size, path), first.sections)
    if lief.is_pe(name):
        pe = lief.PE.parse(name)
        if pe is None:
            raise _unparsable(path, "PE")
        _require_complete(path, size, [s.pointerto_raw_data + s.sizeof_raw_data for s in pe.sections], "PE")
        return _with_dependencies(_pe(pe, size), pe.sections)
    raise InspectionError(
        f"{path} is not an executable LIEF can read (not ELF, Mach-O or PE)",
        hint="pass the path of a built binary",
    )


def _elf_config(lief: Any) -> Any:
    """Parse only what a rule reads: on a 150 MB shared library the symbol
    tables and relocations are most of LIEF's time and no rule needs them."""
    config = lief.ELF.ParserConfig()
    config.parse_relocations = False
    config.parse_symtab_symbols = False  # "stripped" looks at the section headers only
    config.parse_dyn_symbols = False  # the one name needed is read by _imports_symbol
    config.parse_notes = False
    config.parse_overlay = False
    config.parse_symbol_versions = True  # the glibc floor (DT_VERNEED)
    return config


def _require_complete(path: Path, size: int, ends: list[int], kind: str) -> None:
    """LIEF parses a cut-off file leniently; the headers say how long it must be."""
    needed = max(ends, default=0)
    if needed > size:
        raise InspectionError(
            f"{path} is a truncated {kind} file ({size} bytes, its headers need {needed})", hint="rebuild it"
        )


def _unparsable(path: Path, kind: str) -> InspectionError:
    return InspectionError(f"{path} looks like {kind} but cannot be parsed (truncated?)", hint="rebuild it")


def _largest(sections: list[Section]) -> tuple[Section, ...]:
    return tuple(sorted(sections, key=lambda s: (-s.size, s.name))[:LARGEST_SECTIONS])


def _elf(binary: Any, size: int, path: Path) -> BinaryInfo:
    import lief

    header = binary.header
    leftovers = _elf_leftovers(binary)
    glibc: tuple[int, ...] | None = None
    for requirement in binary.symbols_version_requirement:
        for aux in requirement.get_auxiliary_symbols():
            match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)*)", aux.name)
            if match:
                version = tuple(int(p) for p in match.group(1).split("."))
                glibc = max(glibc, version) if glibc else version
    relro = "none"
    if binary.has(lief.ELF.Segment.TYPE.GNU_RELRO):
        relro = "full" if _elf_bind_now(binary) else "partial"
    return BinaryInfo(
        format="elf",
        machine=_machine(header.machine_type),
        bits=64 if header.identity_class == lief.ELF.Header.CLASS.ELF64 else 32,
        endianness="little" if header.identity_data == lief.ELF.Header.ELF_DATA.LSB else "big",
        size=size,
        stripped=not leftovers,
        leftover_symbols=tuple(leftovers),
        sections=_largest([Section(s.name, s.size) for s in binary.sections if s.name]),
        glibc_required=".".join(map(str, glibc)) if glibc else None,
        needed_libraries=tuple(binary.libraries),
        pie=bool(binary.is_pie),
        nx=bool(binary.has_nx),
        relro=relro,
        stack_protector=_imports_symbol(binary, path, "__stack_chk_fail"),
    )


# DWARF section names (.zdebug_* is the old compressed spelling). Only the
# ones the loader does not map are debug info: rustc also emits an allocated
# .debug_gdb_scripts (a pointer for gdb, kept by `strip`) when a profile keeps
# `debug` on, and that is part of the program.
DEBUG_PREFIXES = (".debug_", ".zdebug_")


def _string_offsets(strings: bytes, name: str) -> set[int]:
    """Every offset in a string table at which `name` ends a string (linkers share string tails)."""
    wanted = name.encode() + b"\0"
    offsets = set()
    start = strings.find(wanted)
    while start != -1:
        offsets.add(start)
        start = strings.find(wanted, start + 1)
    return offsets


def _elf_leftovers(binary: Any) -> list[str]:
    """What `strip` would still remove: the symbol table and unmapped debug sections."""
    import lief

    symtab, alloc = lief.ELF.Section.TYPE.SYMTAB, lief.ELF.Section.FLAGS.ALLOC
    leftovers = []
    for section in binary.sections:
        if section.type == symtab:
            leftovers.append(section.name or "symbol table")
        elif section.name.startswith(DEBUG_PREFIXES) and not section.has(alloc):
            leftovers.append(section.name)
    return leftovers


def _imports_symbol(binary: Any, path: Path, name: str) -> bool:
    """Whether the dynamic symbol table has `name` undefined (imported).

    Read from the raw .dynsym, since LIEF's parse of every dynamic symbol
    costs more than all the rest on a large library and one name is needed."""
    import lief

    header = binary.header
    dynsym = next((s for s in binary.sections if s.type == lief.ELF.Section.TYPE.DYNSYM), None)
    if dynsym is None:
        if binary.has(lief.ELF.DynamicEntry.TAG.SYMTAB):
            # No section headers to find it by: let LIEF parse the symbols.
            config = _elf_config(lief)
            config.parse_dyn_symbols = True
            full = lief.ELF.parse(str(path), config)
            return full is not None and any(sym.name == name for sym in full.imported_symbols)
        return False  # statically linked: nothing is imported
    strings = bytes(binary.sections[dynsym.link].content)
    offsets = _string_offsets(strings, name)
    if not offsets:
        return False
    order = "<" if header.identity_data == lief.ELF.Header.ELF_DATA.LSB else ">"
    is64 = header.identity_class == lief.ELF.Header.CLASS.ELF64
    # Elf64_Sym: name, info, other, shndx, value, size; Elf32_Sym: name, value, size, info, other, shndx.
    layout, shndx = (order + "IBBHQQ", 3) if is64 else (order + "IIIBBH", 5)
    table = bytes(dynsym.content)
    entry = struct.calcsize(layout)
    table = table[: len(table) - len(table) % entry]
    return any(sym[0] in offsets and sym[shndx] == 0 for sym in struct.iter_unpack(layout, table))


DF_BIND_NOW = 0x8
DF_1_NOW = 0x1

# ELF constants the fast reader needs (elf.h).
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP, _PT_GNU_STACK, _PT_GNU_RELRO = 1, 2, 3, 0x6474E551, 0x6474E552
_PF_X = 1
_SHT_SYMTAB, _SHT_NOBITS, _SHT_DYNSYM = 2, 8, 11
_SHF_ALLOC = 0x2
_DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_FLAGS, _DT_BIND_NOW = 1, 5, 10, 30, 24
_DT_FLAGS_1, _DT_VERNEED, _DT_VERNEEDNUM = 0x6FFFFFFB, 0x6FFFFFFE, 0x6FFFFFFF
_ET_DYN = 3
_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "x86", 40: "arm", 243: "riscv", 8: "mips", 21: "ppc64", 20: "ppc"}


class _NotSimple(Exception):
    """An ELF file the fast reader leaves to LIEF (no section headers, odd layouts)."""


def _elf_from_map(path: Path, size: int) -> BinaryInfo | None:
    """An ELF file's facts from a memory map (None: not ELF, or one to leave to LIEF).
    On a 150 MB library LIEF's parse is mostly work no rule reads; here only the
    ELF header, program headers, section headers, the dynamic table and the few
    tables it points at are touched."""
    import mmap

    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"\x7fELF":
                return None
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _elf_facts(path, data, size)
    except _NotSimple:
        return None


def _elf_facts(path: Path, data: Any, size: int) -> BinaryInfo:
    if size < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise _NotSimple
    is64, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        e_type, e_machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
            order + "HHIQQQIHHHHHH", data, 16
        )
    else:
        e_type, e_machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
            order + "HHIIIIIHHHHHH", data, 16
        )
    if shnum == 0 or shoff == 0 or shstrndx == 0 or shstrndx >= shnum:
        raise _NotSimple  # LIEF finds sections another way; so does _imports_symbol's fallback
    ends = [shoff + shnum * shentsize, phoff + phnum * phentsize]
    _require_complete(path, size, ends, "ELF")
    # Program headers: (type, flags, offset, vaddr, filesz).
    segments = []
    for index in range(phnum):
        at = phoff + index * phentsize
        if is64:
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(order + "IIQQQQQQ", data, at)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags, _ = struct.unpack_from(order + "IIIIIIII", data, at)
        segments.append((p_type, p_flags, p_offset, p_vaddr, p_filesz))
    _require_complete(path, size, [offset + filesz for _, _, offset, _, filesz in segments], "ELF")
    # Section headers: (name, type, offset, size, link).
    raw_sections = []
    raw_flags: list[int] = []
    for index in range(shnum):
        at = shoff + index * shentsize
        if is64:
            sh_name, sh_type, sh_flags, _, sh_offset, sh_size, sh_link = struct.unpack_from(order + "IIQQQQI", data, at)
        else:
            sh_name, sh_type, sh_flags, _, sh_offset, sh_size, sh_link = struct.unpack_from(order + "IIIIIII", data, at)
        raw_sections.append((sh_name, sh_type, sh_offset, sh_size, sh_link))
        raw_flags.append(sh_flags)
    names_offset = raw_sections[shstrndx][2]
    sections = [(_c_string(data, names_offset + n), t, o, sz, link) for n, t, o, sz, link in raw_sections]

    def file_offset(address: int) -> int:
        for p_type, _, offset, vaddr, filesz in segments:
            if p_type == _PT_LOAD and vaddr <= address < vaddr + filesz:
                return int(offset + address - vaddr)
        raise _NotSimple

    dynamic: list[tuple[int, int]] = []
    for p_type, _, offset, _, filesz in segments:
        if p_type == _PT_DYNAMIC:
            layout = order + ("qQ" if is64 else "iI")
            step = struct.calcsize(layout)
            for at in range(offset, offset + filesz - step + 1, step):
                tag, value = struct.unpack_from(layout, data, at)
                if tag == 0:
                    break
                dynamic.append((tag, value))
            break
    tags = dict(dynamic)  # the last of a repeated tag; only single ones are read from it
    needed: list[str] = []
    glibc: tuple[int, ...] | None = None
    if _DT_STRTAB in tags:
        strtab = file_offset(tags[_DT_STRTAB])
        needed = [_c_string(data, strtab + value) for tag, value in dynamic if tag == _DT_NEEDED]
        if _DT_VERNEED in tags:
            at = file_offset(tags[_DT_VERNEED])
            for _ in range(tags.get(_DT_VERNEEDNUM, 0)):
                _, count, _, aux, following = struct.unpack_from(order + "HHIII", data, at)
                aux_at = at + aux
                for _ in range(count):
                    _, _, _, name, aux_next = struct.unpack_from(order + "IHHII", data, aux_at)
                    match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)*)", _c_string(data, strtab + name))
                    if match:
                        version = tuple(int(p) for p in match.group(1).split("."))
                        glibc = max(glibc, version) if glibc else version
                    if aux_next == 0:
                        break
                    aux_at += aux_next
                if following == 0:
                    break
                at += following
    bind_now = any(
        tag == _DT_BIND_NOW or (tag == _DT_FLAGS and value & DF_BIND_NOW) or (tag == _DT_FLAGS_1 and value & DF_1_NOW)
        for tag, value in dynamic
    )
    types = {p_type for p_type, *_ in segments}
    relro = ("full" if bind_now else "partial") if _PT_GNU_RELRO in types else "none"
    stack = [flags for p_type, flags, *_ in segments if p_type == _PT_GNU_STACK]
    # What `strip` would still remove: the symbol table and the debug sections the loader does not map.
    leftovers = [
        name or "symbol table"
        for (name, sh_type, *_), flags in zip(sections, raw_flags, strict=True)
        if sh_type == _SHT_SYMTAB or (name.startswith(DEBUG_PREFIXES) and not flags & _SHF_ALLOC)
    ]
    info = BinaryInfo(
        format="elf",
        machine=_ELF_MACHINES.get(e_machine, str(e_machine)),
        bits=64 if is64 else 32,
        endianness="little" if order == "<" else "big",
        size=size,
        stripped=not leftovers,
        leftover_symbols=tuple(leftovers),
        sections=_largest([Section(name, sz) for name, _, _, sz, _ in sections if name]),
        glibc_required=".".join(map(str, glibc)) if glibc else None,
        needed_libraries=tuple(needed),
        pie=e_type == _ET_DYN and _PT_INTERP in types,
        nx=bool(stack) and not stack[0] & _PF_X,
        relro=relro,
        stack_protector=_map_imports_symbol(data, sections, order, is64, "__stack_chk_fail"),
    )
    for name, sh_type, offset, sz, _ in sections:
        if name in AUDIT_SECTIONS and sh_type != _SHT_NOBITS:
            return _with_audit_data(info, name, bytes(data[offset : offset + sz]))
    return info


def _c_string(data: Any, offset: int) -> str:
    end = data.find(b"\0", offset)
    return bytes(data[offset : end if end >= 0 else len(data)]).decode("utf-8", "replace")


def _map_imports_symbol(
    data: Any, sections: list[tuple[str, int, int, int, int]], order: str, is64: bool, name: str
) -> bool:
    """Whether .dynsym has `name` undefined (imported), as _imports_symbol reads it."""
    dynsym = next((s for s in sections if s[1] == _SHT_DYNSYM), None)
    if dynsym is None:
        raise _NotSimple  # LIEF may still find dynamic symbols without the section
    _, _, table_offset, table_size, link = dynsym
    _, _, strings_offset, strings_size, _ = sections[link]
    strings = data[strings_offset : strings_offset + strings_size]
    offsets = _string_offsets(strings, name)
    if not offsets:
        return False
    layout, shndx = (order + "IBBHQQ", 3) if is64 else (order + "IIIBBH", 5)
    entry = struct.calcsize(layout)
    table = data[table_offset : table_offset + table_size - table_size % entry]
    return any(sym[0] in offsets and sym[shndx] == 0 for sym in struct.iter_unpack(layout, table))


def _elf_bind_now(binary: Any) -> bool:
    for entry in binary.dynamic_entries:
        tag = str(entry.tag).rsplit(".", 1)[-1]
        if tag == "BIND_NOW":
            return True
        if tag == "FLAGS" and entry.value & DF_BIND_NOW:
            return True
        if tag == "FLAGS_1" and entry.value & DF_1_NOW:
            return True
    return False


def _macho_slice(binary: Any) -> tuple[str, int, list[str], str | None]:
    import lief

    cpu = _machine(binary.header.cpu_type)
    bits = 64 if binary.header.magic in (lief.MachO.MACHO_TYPES.MAGIC_64, lief.MachO.MACHO_TYPES.CIGAM_64) else 32
    leftovers = []
    if binary.has_dynamic_symbol_command and binary.dynamic_symbol_command.nb_local_symbols:
        leftovers.append(f"{binary.dynamic_symbol_command.nb_local_symbols} local symbols")
    leftovers += [s.name for s in binary.sections if s.segment_name == "__DWARF"]
    minos = None
    if binary.has_build_version:
        minos = ".".join(str(p) for p in binary.build_version.minos[:2])
    elif binary.has_version_min:
        minos = ".".join(str(p) for p in binary.version_min.version[:2])
    return cpu, bits, leftovers, minos


def _slice_signature(binary: Any, data: bytes, fat: bool) -> MachOSignature | None:
    if not binary.has_code_signature:
        return None
    start = binary.fat_offset if fat else 0
    return read_signature(bytes(binary.code_signature.content), data[start:])


def _macho(fat: Any, size: int, path: Path) -> BinaryInfo:
    slices = [fat.at(i) for i in range(fat.size)]
    data = path.read_bytes()  # the code pages, to check each signature's hashes
    first = slices[0]
    cpu, bits, leftovers, minos = _macho_slice(first)
    for other in slices[1:]:
        leftovers += _macho_slice(other)[2]
    sections = [Section(f"{s.segment_name},{s.name}", s.size) for s in first.sections]
    return BinaryInfo(
        format="macho",
        machine=cpu,
        bits=bits,
        endianness="little",
        size=size,
        stripped=not leftovers,
        leftover_symbols=tuple(leftovers),
        sections=_largest(sections),
        architectures=tuple(_machine(s.header.cpu_type) for s in slices),
        needed_libraries=tuple(sorted({lib.name for s in slices for lib in s.libraries})),
        pie=all(bool(s.is_pie) for s in slices),
        nx=all(bool(s.has_nx) for s in slices),
        macos_min=minos,
        code_signature=all(bool(s.has_code_signature) for s in slices),
        slices=tuple(
            MachOSlice(
                _machine(s.header.cpu_type),
                _macho_slice(s)[3],
                bool(s.has_code_signature),
                _slice_signature(s, data, len(slices) > 1),
            )
            for s in slices
        ),
    )


def _pe(binary: Any, size: int) -> BinaryInfo:
    import lief

    header = binary.header
    leftovers = []
    if header.numberof_symbols:
        leftovers.append(f"{header.numberof_symbols} COFF symbols")
    # The debug directory is not counted: `strip` keeps it, and it only names
    # a separate symbol file (CodeView/PDB) or a build id, as every MSVC release has.
    leftovers += [s.name for s in binary.sections if s.name.startswith(DEBUG_PREFIXES)]
    optional = binary.optional_header
    return BinaryInfo(
        format="pe",
        machine=_machine(header.machine),
        bits=64 if optional.magic == lief.PE.PE_TYPE.PE32_PLUS else 32,
        endianness="little",
        size=size,
        stripped=not leftovers,
        leftover_symbols=tuple(leftovers),
        sections=_largest([Section(s.name, s.size) for s in binary.sections]),
        subsystem=str(optional.subsystem).rsplit(".", 1)[-1].lower(),
        imports=tuple(sorted(i.name.lower() for i in binary.imports)),
        nx=bool(binary.has_nx),
        aslr=bool(optional.has(lief.PE.OptionalHeader.DLL_CHARACTERISTICS.DYNAMIC_BASE)),
        high_entropy_va=bool(optional.has(lief.PE.OptionalHeader.DLL_CHARACTERISTICS.HIGH_ENTROPY_VA)),
        authenticode=_authenticode(binary),
    )


AUDIT_SECTIONS = (".dep-v0", "__dep_v0")  # ELF and PE; Mach-O (section names are 16 bytes there)


def _with_dependencies(info: BinaryInfo, sections: Any) -> BinaryInfo:
    for section in sections:
        if section.name in AUDIT_SECTIONS:
            return _with_audit_data(info, section.name, bytes(section.content))
    return info


def _with_audit_data(info: BinaryInfo, name: str, content: bytes) -> BinaryInfo:
    """Read cargo-auditable's section: zlib-compressed JSON, {"packages": [...]}."""
    import json
    import zlib
    from dataclasses import replace

    try:
        document = json.loads(zlib.decompress(content))
        packages = tuple(
            AuditedPackage(p["name"], p["version"], p.get("source", "crates.io"), p.get("kind", "runtime"))
            for p in document["packages"]
        )
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise InspectionError(
            f"the {name} section (cargo-auditable's dependency list) cannot be read: {exc}",
            hint="rebuild the binary; it was changed after it was built",
        ) from exc
    return replace(info, dependencies=packages)


def _authenticode(binary: Any) -> Authenticode | None:
    import hashlib

    if not binary.has_signatures:
        return None
    signature = binary.signatures[0]
    signer = signature.signers[0].cert if signature.signers else None
    status = str(binary.verify_signature()).rsplit(".", 1)[-1]
    if signer is None:
        return Authenticode(status, "", "")
    return Authenticode(status, hashlib.sha256(bytes(signer.raw)).hexdigest(), str(signer.subject))


_LEGACY_PART = re.compile(r"(\d+)")
_V0_CRATE = re.compile(r"C(?:s[0-9A-Za-z]*_)?(\d+)([A-Za-z_][0-9A-Za-z_]*)")


def crate_of_symbol(name: str) -> str | None:
    """The crate a Rust symbol belongs to, from its mangled name."""
    name = name.lstrip("_") if name.startswith("__Z") or name.startswith("__R") else name
    if name.startswith("_ZN"):
        # Legacy mangling: _ZN <len><ident> <len><ident> ... E
        match = _LEGACY_PART.match(name, 3)
        if match:
            length = int(match.group(1))
            ident = name[match.end() : match.end() + length]
            if "$LT$" in ident[:6] or ident.startswith("_<"):
                return "<generic impls>"
            return ident
        return None
    if name.startswith("_R"):
        match = _V0_CRATE.search(name)
        if match:
            return match.group(2)[: int(match.group(1))]
    return None


def code_size_by_crate(path: Path) -> tuple[CrateSize, ...]:
    """Which crates contribute most code, from an unstripped binary's symbols
    (as cargo-bloat does). Symbols that are not Rust count as "[C/other]"."""
    import lief

    lief.logging.disable()
    binary = lief.parse(str(path))
    if binary is None:
        raise InspectionError(f"{path} cannot be parsed", hint="pass an executable")
    sizes: dict[str, list[int]] = {}
    seen: set[tuple[int, str]] = set()
    for symbol in binary.symbols:
        size = int(getattr(symbol, "size", 0) or 0)
        if size <= 0 or not symbol.name:
            continue
        name = str(symbol.name)
        key = (int(symbol.value), name)
        if key in seen:
            continue
        seen.add(key)
        crate = crate_of_symbol(name) or "[C/other]"
        totals = sizes.setdefault(crate, [0, 0])
        totals[0] += size
        totals[1] += 1
    if not sizes:
        raise InspectionError(f"{path} has no symbols to attribute", hint="build it without stripping")
    ranked = sorted(sizes.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(CrateSize(crate, total, count) for crate, (total, count) in ranked)
