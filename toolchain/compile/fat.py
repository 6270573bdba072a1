"""Join thin Mach-O executables into one fat (universal) Mach-O, as lipo does.

Why not cargo-zigbuild's own `--target universal2-apple-darwin`: it builds
both slices again in one cargo run under one MACOSX_DEPLOYMENT_TARGET, so
the x86_64 slice loses its own minimum (10.12) and neither slice reuses the
thin builds (with std from source, minutes each); and it reports no
executable in cargo's messages. Joining the thin builds that were already
verified is fifty lines, and each slice stays byte-identical to its thin
binary (tested).

The format: a big-endian header (magic, count) and one record per slice
(cputype, cpusubtype, offset, size, alignment as a power of two), then each
slice at its aligned offset.
"""

from __future__ import annotations

import struct
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.errors import PackagingError

FAT_MAGIC = 0xCAFEBABE
THIN_MAGIC_64_LE = b"\xcf\xfa\xed\xfe"
CPU_TYPE_ARM64 = 0x0100000C
# Pages are 16 KiB on Apple silicon and 4 KiB on Intel: slices start there.
ALIGN_BY_CPU = {CPU_TYPE_ARM64: 14}
DEFAULT_ALIGN = 12


def _thin_header(data: bytes, path: Path) -> tuple[int, int]:
    if data[:4] != THIN_MAGIC_64_LE:
        raise PackagingError(f"{path} is not a thin 64-bit Mach-O", hint="pass the per-arch darwin binaries")
    cputype, cpusubtype = struct.unpack_from("<iI", data, 4)
    return cputype, cpusubtype


def join_fat(slices: list[Path], out: Path) -> Path:
    """Write a fat Mach-O of `slices` to `out` (atomically)."""
    blobs = [p.read_bytes() for p in slices]
    headers = [_thin_header(blob, path) for blob, path in zip(blobs, slices, strict=True)]
    if len({cpu for cpu, _ in headers}) != len(headers):
        raise PackagingError("two slices have the same CPU type", hint="join one binary per architecture")
    records = []
    offset = 8 + 20 * len(blobs)
    for blob, (cputype, cpusubtype) in zip(blobs, headers, strict=True):
        align = ALIGN_BY_CPU.get(cputype, DEFAULT_ALIGN)
        offset = (offset + (1 << align) - 1) & ~((1 << align) - 1)
        records.append((cputype, cpusubtype, offset, len(blob), align))
        offset += len(blob)
    fat = bytearray(struct.pack(">II", FAT_MAGIC, len(records)))
    for cputype, cpusubtype, start, size, align in records:
        fat += struct.pack(">iIIII", cputype, cpusubtype, start, size, align)
    for blob, (_, _, start, _, _) in zip(blobs, records, strict=True):
        fat += b"\0" * (start - len(fat))
        fat += blob
    return write_atomic(out, bytes(fat), 0o755)
