"""Archives: xz's multi-threaded encoder in fixed-size blocks writes the same
bytes whatever the thread count, so archives are the same on every machine."""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolchain.release.package import (
    DEBUG_LEVEL,
    RELEASE_LEVEL,
    XZ_BLOCK_SIZE,
    XZ_MIN_BLOCK_SIZE,
    ArchiveEntry,
    archive_members,
    write_archive,
    xz_block_size,
    xz_compress,
)


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


def test_a_small_archive_is_two_blocks_with_the_same_bytes_on_one_or_two_threads(
    machine_code: Path, tmp_path: Path
) -> None:
    """About the size of a small CLI's tar (1.1 MB): cut in two blocks by its size alone."""
    small = tmp_path / "small.tar"
    small.write_bytes(machine_code.read_bytes()[:1_100_000])
    block = xz_block_size(small.stat().st_size)
    outputs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.xz"
        xz_compress(small, out, threads=threads, block_size=block)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert lzma.decompress(outputs[0]) == small.read_bytes()
    listed = subprocess.run(["xz", "--robot", "--list", tmp_path / "t2.xz"], capture_output=True, text=True, check=True)
    totals = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith("totals"))
    assert totals[2] == "2", listed.stdout  # the blocks column
    # Each block's dictionary is no larger than the block (preset 6's 8 MiB would only cost time and memory).
    detail = subprocess.run(["xz", "--robot", "--list", "-vv", tmp_path / "t2.xz"], capture_output=True, text=True)
    filters = {line.split("\t")[-1] for line in detail.stdout.splitlines() if line.startswith("block")}
    (only,) = filters
    recorded = int(only.removeprefix("--lzma2=dict=").removesuffix("KiB")) << 10  # rounded up to 2^n or 3*2^(n-1)
    assert block <= recorded <= block * 3 // 2 < 8 << 20, detail.stdout
    assert xz_block_size(100_000) == XZ_MIN_BLOCK_SIZE  # one block: too small to split
    assert xz_block_size(200 << 20) == XZ_BLOCK_SIZE


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


@pytest.mark.parametrize("archive_format", ["tar.xz", "zip"])
def test_packaging_lists_the_members_it_wrote_as_the_archive_holds_them(
    archive_format: str, machine_code: Path, tmp_path: Path
) -> None:
    """The release folder's manifest lists each archive's members from what packaging
    wrote, not by unpacking the archive again: they must be what the archive holds,
    for a new archive and for one kept because its inputs did not change."""
    readme = tmp_path / "README.md"
    readme.write_text("the app\n")
    entries = [ArchiveEntry("app", machine_code, True), ArchiveEntry("README.md", readme, False)]
    name = f"app-x86_64-unknown-linux-gnu.{archive_format}"
    made = write_archive("app", entries, tmp_path / "out", name, 1_700_000_000)
    kept = write_archive("app", entries, tmp_path / "out", name, 1_700_000_000)
    assert (made.reused, kept.reused) == (False, True)
    held = tuple(archive_members(tmp_path / "out" / name))
    assert [m.path for m in held] == ["app-x86_64-unknown-linux-gnu/README.md", "app-x86_64-unknown-linux-gnu/app"]
    assert made.members == kept.members == held


@pytest.mark.parametrize("archive_format", ["tar.xz", "zip"])
def test_a_debug_archive_is_compressed_fast_and_its_level_is_part_of_its_inputs(
    machine_code: Path, tmp_path: Path, archive_format: str
) -> None:
    """A debug-symbols archive (DEBUG_LEVEL) trades size for time; the same members at the
    release level are another archive, never one reused for the other."""
    entries = [ArchiveEntry("app.debug", machine_code, False)]
    name = f"app-x86_64-unknown-linux-gnu-debug.{archive_format}"
    fast = write_archive("app", entries, tmp_path / "fast", name, 1_700_000_000, DEBUG_LEVEL)
    small = write_archive("app", entries, tmp_path / "small", name, 1_700_000_000, RELEASE_LEVEL)
    assert fast.size > small.size and fast.sha256 != small.sha256
    assert fast.members == small.members == tuple(archive_members(fast.path))
    # The same folder at the other level: written again, not kept.
    again = write_archive("app", entries, tmp_path / "fast", name, 1_700_000_000, RELEASE_LEVEL)
    assert not again.reused and again.sha256 == small.sha256


def test_a_zip_is_streamed_with_the_bytes_a_whole_read_made(machine_code: Path, tmp_path: Path) -> None:
    # The member is fed to the archive in chunks; the bytes are what zipfile.writestr of
    # the whole file wrote (the zip stays reproducible), and its digest is of that file.
    import hashlib
    import time
    import zipfile

    artifact = write_archive("app", [ArchiveEntry("app", machine_code, True)], tmp_path, "app-x.zip", 1700000000)
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        item = zipfile.ZipInfo("app-x/app", date_time=time.gmtime(1700000000)[:6])
        item.create_system = 3
        item.external_attr = 0o100755 << 16
        item.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(item, machine_code.read_bytes())
    assert artifact.path.read_bytes() == whole.read_bytes()
    (member,) = archive_members(artifact.path)
    assert member.sha256 == hashlib.sha256(machine_code.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".zip", ".tar.xz"])
def test_packaging_a_large_binary_does_not_hold_it_in_memory(tmp_path: Path, suffix: str) -> None:
    # 120 MB in, peak RSS of the packaging process must grow far less than that.
    big = tmp_path / "big"
    with big.open("wb") as handle:
        for _ in range(120):
            handle.write(os.urandom(1 << 20))
    code = (
        "import resource, sys; from pathlib import Path; "
        "from toolchain.release.package import ArchiveEntry, write_archive; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
        f"write_archive('app', [ArchiveEntry('app', Path({str(big)!r}), True)], Path({str(tmp_path)!r}), "
        f"'app-x{suffix}', 1700000000); "
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)"
    )
    grown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(grown.stdout) < 40, f"packaging 120 MB grew the process by {grown.stdout.strip()} MB"
