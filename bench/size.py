"""Binary size per profile: the project's own release profile against the
toolkit's dist and size profiles, built in the same run.

Goals on the demo: dist at most 0.78x and size at most 0.66x of release;
on any crate, dist at most 1.0x of its own release profile.

    python3 bench/size.py [--manifest-path PATH] [--target TRIPLE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.log import log
from toolchain.pipeline.targets import BuildOptions, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest-path", type=Path, default=None, help="crate to measure (default: the demo)")
    parser.add_argument("--target", default="", help="target triple (default: this host's)")
    # Same runner for all three; zig's linker already drops the symbol table
    # from plain release builds, which hides what the profiles do.
    parser.add_argument("--runner", default="native", help="runner (default: native)")
    options = parser.parse_args()
    log.quiet = True
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for profile in ("release", "dist", "size"):
            report = build(
                BuildOptions(
                    targets=(options.target,) if options.target else (),
                    profile=profile,
                    manifest_path=options.manifest_path,
                    runner=options.runner,
                    out_dir=Path(scratch) / profile,
                    package_artifacts=False,
                    # The project's release profile may keep symbols: measure, don't judge.
                    allow=("stripped", "glibc-floor"),
                )
            )
            sizes[profile] = sum(b.info.size for r in report.results for b in r.binaries)
    release = sizes["release"]
    print(f"{'profile':8} {'bytes':>10} {'vs release':>10}")
    for profile, size in sizes.items():
        print(f"{profile:8} {size:>10,} {size / release:>9.3f}x")
    print(f"dist {sizes['dist'] / release:.3f}x (goal <= 0.78x on the demo, <= 1.0x on any crate)")
    print(f"size {sizes['size'] / release:.3f}x (goal <= 0.66x on the demo)")


if __name__ == "__main__":
    main()
