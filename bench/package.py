"""Packaging speed: archive + checksum a 50 MB binary with the toolkit,
against `tar cJf` + `sha256sum` on the same file in the same run.
Goal: at most 0.7x (xz in fixed blocks on every core against single-threaded
`tar cJf`). Also the peak memory (RSS) of the toolkit's own process while it
packages, tar.xz and zip, and of its child processes (xz) apart; goal <= 150 MB.

    python3 bench/package.py [--megabytes 50] [--runs 3] [--binary PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.release.package import ArchiveEntry, write_archive


def make_binary(path: Path, megabytes: int) -> None:
    """Real machine code: this machine's shared libraries, concatenated to size."""
    sources = sorted(Path("/usr/lib/x86_64-linux-gnu").glob("*.so*")) + sorted(Path("/usr/bin").iterdir())
    wanted, written = megabytes << 20, 0
    with path.open("wb") as handle:
        for source in sources:
            if written >= wanted:
                break
            if source.is_file() and not source.is_symlink():
                with source.open("rb") as part:  # only what is needed: the RSS figure is the toolkit's
                    data = part.read(wanted - written)
                handle.write(data)
                written += len(data)
    path.chmod(0o755)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", type=Path, help="a real binary to package instead (e.g. librustc_driver)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        binary = work / "app"
        if options.binary:
            shutil.copy(options.binary, binary)
            options.megabytes = binary.stat().st_size >> 20
        else:
            make_binary(binary, options.megabytes)
        before = peak_rss_mb(resource.RUSAGE_SELF)
        ours, baseline = [], []
        for run in range(options.runs):
            out = work / f"ours-{run}"
            out.mkdir()
            started = time.perf_counter()
            artifact = write_archive("app", [ArchiveEntry("app", binary, True)], out, "app-x.tar.xz", 1700000000)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            archive = work / f"plain-{run}.tar.xz"
            subprocess.run(["tar", "cJf", archive, "-C", work, "app"], check=True, env={**os.environ, "XZ_OPT": ""})
            subprocess.run(["sha256sum", archive], check=True, stdout=subprocess.DEVNULL)
            baseline.append(time.perf_counter() - started)
            plain_size = archive.stat().st_size
        write_archive("app", [ArchiveEntry("app", binary, True)], work / "ours-0", "app-x.zip", 1700000000)
        peak, children = peak_rss_mb(resource.RUSAGE_SELF), peak_rss_mb(resource.RUSAGE_CHILDREN)
    ours_median, base_median = statistics.median(ours), statistics.median(baseline)
    print(
        f"input: {options.megabytes} MB; archive: ours {artifact.size / 1e6:.1f} MB, tar cJf {plain_size / 1e6:.1f} MB"
    )
    print(f"toolkit package+checksum median {ours_median:.2f} s   tar cJf + sha256sum median {base_median:.2f} s")
    print(f"ratio {ours_median / base_median:.2f}x (goal <= 0.7x)")
    print(
        f"peak RSS of this process {peak:.0f} MB ({before:.0f} MB before packaging; goal <= {RSS_GOAL_MB} MB); "
        f"largest child (xz, tar, sha256sum) {children:.0f} MB"
    )


RSS_GOAL_MB = 150


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


if __name__ == "__main__":
    main()
