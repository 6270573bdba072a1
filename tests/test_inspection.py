"""LIEF inspection of real files, and the digest-keyed cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.build.pipeline import BuildReport
from toolchain.errors import InspectionError
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
