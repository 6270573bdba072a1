"""Snapshot speed: back up a 1 GB SQLite database through the online
backup API (what `invoke update` does) against `cp` of the same file, in
the same run. Goal: at most 1.5x. Also times a whole update of the demo
app (verify, snapshot, swap, migrate, doctor) on a small database.

    python3 bench/snapshot.py [--megabytes 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
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
from toolchain.build.pipeline import BuildOptions, build
from toolchain.log import log
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as scratch:
        work = Path(scratch)
        database = work / "big.db"
        started = time.perf_counter()
        make_database(database, options.megabytes)
        print(f"made a {database.stat().st_size / 1e9:.2f} GB database in {time.perf_counter() - started:.1f} s")
        binary = work / "app"
        binary.write_bytes(b"\0" * 1024)
        ours, copies = [], []
        for run in range(options.runs):
            started = time.perf_counter()
            snapshot(binary, [database], work / f"snap-{run}")
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["cp", database, work / f"copy-{run}.db"], check=True)
            subprocess.run(["sync", "-f", work / f"copy-{run}.db"], check=True)
            copies.append(time.perf_counter() - started)
            (work / f"copy-{run}.db").unlink()
            for leftover in (work / f"snap-{run}" / "data").iterdir():
                leftover.unlink()
    ours_median, copy_median = statistics.median(ours), statistics.median(copies)
    print(f"snapshot (backup API + fsync) median {ours_median:.2f} s   cp + sync median {copy_median:.2f} s")
    print(f"ratio {ours_median / copy_median:.2f}x (goal <= 1.5x)")
    with tempfile.TemporaryDirectory() as scratch:
        updates = time_update(Path(scratch), options.runs)
    median = statistics.median(updates)
    print(f"whole update of the demo app (verify, snapshot, swap, migrate, doctor): median {median:.2f} s")


if __name__ == "__main__":
    main()
