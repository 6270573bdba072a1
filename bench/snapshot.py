"""Snapshot and restore speed on a 1 GB SQLite database (what `invoke
update` does: a copy under SQLite's write lock; a verified put-back) against
`cp` + `sync` of the same file, in the same run, and the peak RSS of a
restore measured in its own process. Goals: both at most 1.2x, restore RSS
at most 64 MB. Also times a whole update of the demo app (verify, snapshot,
swap, migrate, doctor) on a small database.

    python3 bench/snapshot.py [--megabytes 1024] [--runs 3] [--skip-update]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain import REPO_ROOT
from toolchain.log import log
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.signing import generate
from toolchain.release.version import set_version
from toolchain.update.snapshot import snapshot
from toolchain.update.updater import update


def make_database(path: Path, megabytes: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, payload BLOB)")
        rows = megabytes * 256  # 4 KiB each
        for start in range(0, rows, 10000):
            count = min(10000, rows - start)
            connection.executemany("INSERT INTO blobs (payload) VALUES (randomblob(4000))", [()] * count)
            connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def build_demo(work: Path, version: str, level: str) -> Path:
    crate = work / f"tally-{version}"
    shutil.copytree(REPO_ROOT / "demo", crate, ignore=shutil.ignore_patterns("target"))
    manifest = crate / "Cargo.toml"
    set_version(manifest, "tally", "0.1.0", version)
    os.environ["TALLY_SCHEMA_LEVEL"] = level
    report = build(BuildOptions(manifest_path=manifest, out_dir=work / f"dist-{version}"))
    del os.environ["TALLY_SCHEMA_LEVEL"]
    return report.results[0].binaries[0].path


def time_update(work: Path, runs: int) -> list[float]:
    """Whole updates of the demo (0.1.0 at schema 1 -> 0.2.0 at schema 3)."""
    log.quiet = True
    old = build_demo(work, "0.1.0", "1")
    build_demo(work, "0.2.0", "3")
    key = generate()
    package_release(work / "dist-0.2.0", key, "", REPO_ROOT)
    archive = work / "dist-0.2.0" / "tally-x86_64-unknown-linux-gnu.tar.xz"
    seconds = []
    for run in range(runs):
        home = work / f"install-{run}"
        (home / "bin").mkdir(parents=True)
        binary = home / "bin" / "tally"
        shutil.copy2(old, binary)
        env = {"TALLY_HOME": str(home / "data")}
        for args in (["migrate"], ["add", "apples", "5"]):
            subprocess.run([binary, *args], env={**os.environ, **env}, check=True, capture_output=True)
        started = time.perf_counter()
        update(binary, str(archive), key.public_key().render(), [home / "data" / "tally.db"], env=env)
        seconds.append(time.perf_counter() - started)
    return seconds


RESTORE = """
import sys, time
from pathlib import Path
def peak_rss_kib():
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's from before exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from toolchain.update.snapshot import restore
started = time.perf_counter()
restore(Path(sys.argv[1]))
print(time.perf_counter() - started, peak_rss_kib())
"""
SNAPSHOT_GOAL = RESTORE_GOAL = 1.2
RSS_GOAL_MB = 64


def cp_sync(source: Path, destination: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", source, destination], check=True)
    subprocess.run(["sync", "-f", destination], check=True)
    return time.perf_counter() - started


def restore_in_a_process(folder: Path) -> tuple[float, float]:
    """Seconds of restore() alone and the process's peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, "-c", RESTORE, str(folder)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    seconds, rss_kib = out.stdout.split()
    return float(seconds), int(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-update", action="store_true", help="skip the whole-update timing (builds the demo)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as scratch:
        work = Path(scratch)
        database = work / "big.db"
        started = time.perf_counter()
        make_database(database, options.megabytes)
        print(f"made a {database.stat().st_size / 1e9:.2f} GB database in {time.perf_counter() - started:.1f} s")
        binary = work / "app"
        binary.write_bytes(b"\0" * 1024)
        ours, restores, rss, copies = [], [], [], []
        for run in range(options.runs):
            folder = work / f"snap-{run}"
            started = time.perf_counter()
            manifest = snapshot(binary, [database], folder)
            ours.append(time.perf_counter() - started)
            copies.append(cp_sync(database, work / f"copy-{run}.db"))
            (work / f"copy-{run}.db").unlink()
            database.write_bytes(b"changed since")  # what the restore puts right
            seconds, peak = restore_in_a_process(folder)
            restores.append(seconds)
            rss.append(peak)
            assert json.loads((folder / "snapshot.json").read_text()) == manifest
            for leftover in (folder / "data").iterdir():
                leftover.unlink()
    snap, back, copy = statistics.median(ours), statistics.median(restores), statistics.median(copies)
    print(f"medians of {options.runs} runs (alternated)")
    print("| step | seconds | cp + sync | ratio | goal |")
    print("|---|---:|---:|---:|---:|")
    print(f"| snapshot (write lock, checkpoint, kernel copy, fsync, sha256) | {snap:.2f} | {copy:.2f} "
          f"| {snap / copy:.2f}x | <= {SNAPSHOT_GOAL}x |")  # fmt: skip
    print(f"| restore (sha256 check, put back, fsync) | {back:.2f} | {copy:.2f} | {back / copy:.2f}x "
          f"| <= {RESTORE_GOAL}x |")  # fmt: skip
    print(f"peak RSS of the restoring process: {max(rss):.0f} MB (goal <= {RSS_GOAL_MB} MB)")
    if options.skip_update:
        return
    with tempfile.TemporaryDirectory() as scratch:
        updates = time_update(Path(scratch), options.runs)
    median = statistics.median(updates)
    print(f"whole update of the demo app (verify, snapshot, swap, migrate, doctor): median {median:.2f} s")


if __name__ == "__main__":
    main()
