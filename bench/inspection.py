"""Inspection speed against `readelf -a -W` on the same file, in the same run,
on two files: the installed toolchain's librustc_driver shared library (a
real 150 MB Rust binary) and a synthetic 100 MB executable. Goal: at most
0.5x readelf in every run (the worst run is printed), LIEF's import excluded
(printed on its own). LIEF's full parse of the same file is printed beside it:
ELF files are read from a memory map, LIEF is the reference.

    python3 bench/inspection.py [--megabytes 100] [--runs 5] [--library PATH]

(Not bench/inspect.py: that name would shadow the standard library's
`inspect` module for every script in this folder.)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.verify.inspection import inspect_binary

GOAL = 0.5


def make_binary(folder: Path, megabytes: int) -> Path:
    """A real ELF executable with a large initialised data section and many symbols."""
    source = folder / "big.c"
    functions = "\n".join(f"int f{i}(int x) {{ return x * {i} + {i % 7}; }}" for i in range(5000))
    source.write_text(
        f"{functions}\n"
        f"char payload[{megabytes} * 1024 * 1024] = {{1}};\n"
        "int main(int argc, char **argv) { (void)argv; return payload[argc] + f1(argc); }\n"
    )
    out = folder / "big"
    subprocess.run(["gcc", "-O0", "-o", out, source], check=True)
    return out


def rustc_driver() -> Path | None:
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True)
    found = sorted((Path(sysroot.stdout.strip()) / "lib").glob("librustc_driver-*.so"))
    return found[0] if found else None


def measure(binary: Path, runs: int) -> tuple[float, float, float, float]:
    """Medians of inspect_binary, readelf and LIEF's full parse, alternated so all see the
    same load, and the worst run's ratio of inspect_binary to readelf."""
    subprocess.run(["readelf", "-a", "-W", binary], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    ours, readelf, full = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        inspect_binary(binary)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(["readelf", "-a", "-W", binary], check=True, stdout=subprocess.DEVNULL)
        readelf.append(time.perf_counter() - started)
        started = time.perf_counter()
        inspect_binary(binary, lief_only=True)
        full.append(time.perf_counter() - started)
    worst = max(a / b for a, b in zip(ours, readelf, strict=True))
    return statistics.median(ours), statistics.median(readelf), statistics.median(full), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--library", type=Path, help="a large ELF file (default: librustc_driver of `rustc`)")
    options = parser.parse_args()
    started = time.perf_counter()
    import lief  # noqa: F401  (timed on its own: its native module's start-up)

    import_seconds = time.perf_counter() - started
    rows = []
    library = options.library or rustc_driver()
    if library is None:
        print("no librustc_driver-*.so in `rustc --print sysroot`/lib: pass --library")
    else:
        rows.append((library.name, library.stat().st_size, *measure(library, options.runs)))
    with tempfile.TemporaryDirectory() as scratch:
        binary = make_binary(Path(scratch), options.megabytes)
        rows.append((f"synthetic {options.megabytes} MB (gcc)", binary.stat().st_size, *measure(binary, options.runs)))
    print(f"import lief (once per process, not in the figures below): {import_seconds:.3f} s")
    print(f"medians of {options.runs} runs; goal: inspect / readelf <= {GOAL:.1f}x in every run\n")
    print("| file | MB | inspect_binary s | readelf -a -W s | ratio | worst run | LIEF full parse s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, size, ours, theirs, full, worst in rows:
        ratio = ours / theirs
        print(f"| {name} | {size / 1e6:.1f} | {ours:.4f} | {theirs:.3f} | {ratio:.3f}x | {worst:.3f}x | {full:.3f} |")


if __name__ == "__main__":
    main()
