"""LIEF inspection of real files, and the digest-keyed cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.errors import InspectionError
from toolchain.pipeline.targets import BuildReport
from toolchain.verify.cache import inspect_cached
from toolchain.verify.inspection import BinaryInfo, inspect_binary


def test_truncated_elf_is_an_inspection_error(demo_build: BuildReport, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated"
    truncated.write_bytes(demo_build.results[0].binaries[0].path.read_bytes()[:64])
    with pytest.raises(InspectionError, match="truncated"):
        inspect_binary(truncated)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InspectionError, match="cannot read"):
        inspect_binary(tmp_path / "nope")


def test_unstripped_binary_says_what_is_left(tmp_path: Path) -> None:
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g", "-o", tmp_path / "hello", source], check=True)
    info = inspect_binary(tmp_path / "hello")
    assert not info.stripped
    assert ".symtab" in info.leftover_symbols and ".debug_info" in info.leftover_symbols
    assert info.glibc_required is not None and info.needed_libraries == ("libc.so.6",)


def test_cache_round_trips_and_spares_lief(demo_build: BuildReport, tmp_path: Path) -> None:
    binary = demo_build.results[0].binaries[0]
    copy = tmp_path / "tally"
    shutil.copy(binary.path, copy)
    first = inspect_cached(copy, binary.sha256, tmp_path / "cache")
    assert first == inspect_binary(copy)
    assert BinaryInfo.from_dict(first.to_dict()) == first
    # A second process with a warm cache never imports LIEF.
    code = (
        "import sys; from pathlib import Path; from toolchain.verify.cache import inspect_cached; "
        f"inspect_cached(Path({str(copy)!r}), {binary.sha256!r}, Path({str(tmp_path / 'cache')!r})); "
        "print('lief' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cc(folder: Path, name: str, *flags: str, source: str = "") -> Path:
    """A real gcc build; the buffer and strcpy make gcc guard main."""
    code = folder / f"{name}.c"
    code.write_text(
        source or "#include <string.h>\nint main(int c, char **v) { char b[64]; strcpy(b, v[0]); return b[c]; }\n"
    )
    subprocess.run(["gcc", *flags, "-o", folder / name, code], check=True)
    return folder / name


def _without_section_headers(binary: Path) -> Path:
    """The same ELF64 with e_shoff and e_shnum zeroed, as sstrip leaves one."""
    data = bytearray(binary.read_bytes())
    data[0x28:0x30] = bytes(8)
    data[0x3C:0x40] = bytes(4)
    out = binary.with_name(binary.name + "-noshdr")
    out.write_bytes(data)
    return out


def test_stack_protector_is_the_imported_guard(tmp_path: Path) -> None:
    guarded = _cc(tmp_path, "guarded", "-fstack-protector-all")
    assert inspect_binary(guarded).stack_protector is True
    assert inspect_binary(_cc(tmp_path, "bare", "-fno-stack-protector")).stack_protector is False
    # Without section headers the dynamic table is found another way.
    assert inspect_binary(_without_section_headers(guarded)).stack_protector is True
    # A library that defines (exports) the name does not import it.
    defines = "void __stack_chk_fail(void) {}\nint value(void) { return 1; }\n"
    library = _cc(tmp_path, "libguard.so", "-shared", "-fPIC", "-fno-stack-protector", source=defines)
    assert inspect_binary(library).stack_protector is False


def _real_elf_files() -> list[Path]:
    """ELF files this machine has: executables, the Rust toolchains' shared libraries
    (librustc_driver among them), another architecture's libraries when installed."""
    found = [Path("/usr/bin/ls"), Path("/usr/bin/readelf"), Path(sys.executable).resolve()]
    rustc = shutil.which("rustc")
    if rustc is not None:
        sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, check=True).stdout
        found += sorted((Path(sysroot.strip()) / "lib").glob("*.so"))
    found += sorted(Path("/usr/lib/x86_64-linux-gnu").glob("librustc_driver-*.so"))
    found += sorted(Path("/usr/aarch64-linux-gnu/lib").glob("libc.so.*"))
    return [p for p in found if p.is_file() and _starts_with(p, b"\x7fELF")]


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic  # libLLVM's .so is a linker script


def test_elf_read_from_a_map_matches_liefs_full_parse(demo_build: BuildReport, tmp_path: Path) -> None:
    # The fast reader must say exactly what LIEF says, on real files: gcc builds with
    # and without hardening, the demo, the toolchain's own large libraries.
    built = [
        _cc(tmp_path, "hardened", "-fstack-protector-all", "-Wl,-z,relro,-z,now", "-pie", "-fPIE"),
        _cc(tmp_path, "plain", "-fno-stack-protector", "-Wl,-z,norelro", "-no-pie", "-Wl,-z,execstack"),
        demo_build.results[0].binaries[0].path,
    ]
    files = built + _real_elf_files()
    assert any(p.name.startswith("librustc_driver") for p in files)
    for path in files:
        assert inspect_binary(path) == inspect_binary(path, lief_only=True), path


def test_an_elf_file_is_inspected_without_lief() -> None:
    # The memory-map reader answers for ELF: LIEF (a second of start-up) is not even imported.
    code = (
        "import sys; from pathlib import Path; from toolchain.verify.inspection import inspect_binary; "
        "info = inspect_binary(Path('/usr/bin/ls')); print(info.format, 'lief' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "elf False"
