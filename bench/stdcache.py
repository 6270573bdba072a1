"""What a target whose std is built from source costs once the machine has that std.

For one real crate (default: tests/corpus/cli, clap derive + serde from the
registry), in the same run: its first build for x86_64-unknown-linux-gnu (std
prebuilt) and its first build for each std-from-source target, each into an
empty target folder, with the machine's std cache already warm (a warm-up build
per target fills it first and is not counted). `toolchain build` as a user runs
it, defaults except the target. Prints wall seconds and each target's ratio to
the Linux build, alternated round by round so both see the same load.
Goal: <= 1.2x.

The std-from-source route compiles with the distribution's rustc (/usr/bin/rustc: its
rust-src is the one on the machine), while the Linux build uses rustup's; the two compile
at different speeds whatever std costs. So each round also builds for Linux with
/usr/bin/rustc (its prebuilt std), and the table shows the ratio to that build too: the
share that the std cache can still change.

    python3 bench/stdcache.py [--crate cli] [--targets x86_64-apple-darwin,x86_64-pc-windows-gnu] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain import REPO_ROOT
from toolchain.compile.stdcache import cache_root, entries

GOAL = 1.2
HOST = "x86_64-unknown-linux-gnu"
# The `toolchain` command, which writes its own peak RSS (not its children's) as it exits.
TOOLCHAIN = [
    sys.executable,
    "-c",
    "import atexit, resource, sys; from toolchain.cli import program; "
    "atexit.register(lambda: print(f'peak-rss-kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', "
    "file=sys.stderr)); program.run(['toolchain', *sys.argv[1:]])",
]
RSS_GOAL_MB = 150
peaks: list[int] = []  # kilobytes, one per build


DISTRO_RUSTC = "/usr/bin/rustc"
SAME_RUSTC = f"{HOST} with {DISTRO_RUSTC}"  # the Linux build with the std-from-source route's compiler


def build(crate: Path, target: str, target_dir: Path, out: Path, warm: bool = True) -> float:
    """Wall seconds of one `toolchain build --target TARGET` (comma-separated: several;
    SAME_RUSTC: the host target, compiled by the distribution's rustc)."""
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir), "PYTHONPATH": str(REPO_ROOT)}
    if target == SAME_RUSTC:
        target, env["RUSTC"] = HOST, DISTRO_RUSTC
    argv = [*TOOLCHAIN, "build", "--target", target, "--manifest-path", str(crate / "Cargo.toml")]
    argv += ["--out-dir", str(out), "--force"]
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"build for {target} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    peaks.extend(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("peak-rss-kb "))
    if warm and target != HOST and "from the machine's cache" not in result.stderr + result.stdout:
        sys.exit(f"the build for {target} did not take std from the machine's cache")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crate", default="cli", help="a folder of tests/corpus")
    parser.add_argument("--targets", default="x86_64-apple-darwin,x86_64-pc-windows-gnu")
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    targets = [t for t in options.targets.split(",") if t]
    with tempfile.TemporaryDirectory(prefix="bench-stdcache-") as scratch:
        work = Path(scratch)
        crate = work / "crate"
        shutil.copytree(REPO_ROOT / "tests" / "corpus" / options.crate, crate, ignore=shutil.ignore_patterns("target"))
        subprocess.run(["cargo", "fetch", "--manifest-path", str(crate / "Cargo.toml")], check=True)
        for target in targets:  # fills the cache (or finds it warm); not counted
            warm_up = build(crate, target, work / f"warm-{target}", work / "out", warm=False)
            print(f"warm-up {target}: {warm_up:.1f} s", flush=True)
        same = [SAME_RUSTC] if Path(DISTRO_RUSTC).is_file() else []
        seconds: dict[str, list[float]] = {t: [] for t in [HOST, *same, *targets]}
        for round_ in range(options.rounds):
            for target in [HOST, *same, *targets]:
                seconds[target].append(build(crate, target, work / f"t{round_}-{target}", work / "out"))
                print(f"round {round_ + 1} {target}: {seconds[target][-1]:.1f} s", flush=True)
        every = ",".join([HOST, *targets])
        multi = build(crate, every, work / "multi", work / "out-multi")
        print(f"multi-target build ({every}): {multi:.1f} s", flush=True)
        multi_peak = peaks[-1] / 1024
    load = os.getloadavg()[0]
    root = cache_root()  # the default place ([build] std-cache-dir unset)
    size = sum(e.size for e in entries(root))
    print(f"\nload {load:.1f}; std cache {root}: {size / 1e6:.0f} MB; medians of {options.rounds} round(s)")
    print(f"goal: first build of a std-from-source target <= {GOAL}x the {HOST} one\n")
    print(f"peak RSS of the toolkit's own process: {max(peaks) / 1024:.0f} MB over every build, ", end="")
    print(f"{multi_peak:.0f} MB in the multi-target build (goal <= {RSS_GOAL_MB} MB)\n")
    print(f"| target | first build s | ratio to Linux | ratio to Linux with {DISTRO_RUSTC} |")
    print("|---|---:|---:|---:|")
    base = statistics.median(seconds[HOST])
    like = statistics.median(seconds[SAME_RUSTC]) if SAME_RUSTC in seconds else None
    for target, values in seconds.items():
        value = statistics.median(values)
        print(f"| {target} | {value:.1f} | {value / base:.2f}x | {f'{value / like:.2f}x' if like else 'n/a'} |")
    print("\nevery round: " + "; ".join(f"{t} " + ", ".join(f"{v:.1f}" for v in vs) for t, vs in seconds.items()))


if __name__ == "__main__":
    main()
