"""Inspection speed on a 100 MB executable, against `readelf -a` on the
same file in the same run. Goal: under a second.

    python3 bench/inspection.py [--megabytes 100] [--runs 5]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        binary = make_binary(Path(scratch), options.megabytes)
        started = time.perf_counter()
        import lief  # noqa: F401  (timed on its own: its native module's start-up)

        import_seconds = time.perf_counter() - started
        ours, readelf = [], []
        for _ in range(options.runs):
            started = time.perf_counter()
            info = inspect_binary(binary)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["readelf", "-a", "-W", binary], check=True, stdout=subprocess.DEVNULL)
            readelf.append(time.perf_counter() - started)
        size = binary.stat().st_size
    ours_median, readelf_median = statistics.median(ours), statistics.median(readelf)
    print(f"binary: {size / 1e6:.1f} MB ELF, {info.sections[0].name} {info.sections[0].size / 1e6:.1f} MB")
    print(f"import lief (once per process): {import_seconds:.3f} s")
    print(f"inspect_binary median {ours_median:.3f} s (goal < 1 s)   readelf -a median {readelf_median:.3f} s")
    print(f"ratio inspect / readelf: {ours_median / readelf_median:.2f}x")


if __name__ == "__main__":
    main()
