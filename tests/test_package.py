"""Archives: xz's multi-threaded encoder in fixed-size blocks writes the same
bytes whatever the thread count, so archives are the same on every machine."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from toolchain.release.package import xz_compress


@pytest.fixture(scope="module")
def machine_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 6 MB of real machine code (this machine's shared libraries)."""
    out = tmp_path_factory.mktemp("input") / "code.bin"
    with out.open("wb") as handle:
        for library in sorted(Path("/usr/lib/x86_64-linux-gnu").glob("lib*.so.*"))[:400]:
            if library.is_file() and not library.is_symlink():
                handle.write(library.read_bytes()[: 1 << 20])
            if handle.tell() > 6 << 20:
                break
    return out


def test_the_same_bytes_with_one_or_two_threads(machine_code: Path, tmp_path: Path) -> None:
    outputs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.xz"
        xz_compress(machine_code, out, threads=threads, block_size=1 << 20)  # several blocks
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert lzma.decompress(outputs[0]) == machine_code.read_bytes()
    assert len(outputs[0]) < machine_code.stat().st_size


def test_without_xz_packaging_says_what_to_install(
    machine_code: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolchain.errors import MissingToolError

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(MissingToolError, match="'xz' is not installed"):
        xz_compress(machine_code, tmp_path / "out.xz")
    assert shutil.which("xz") is None
