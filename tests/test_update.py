"""Safe update with real binaries, real SQLite files and real kill -9.

Two versions of the demo app are built from the same source: 0.1.0 at
schema level 1 (installed) and 0.2.0 at level 3 (the update)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_contract, run_invoke

from toolchain import REPO_ROOT
from toolchain.errors import UpdateError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.signing import SecretKey, generate
from toolchain.release.version import set_version
from toolchain.update.journal import CRASH_ENV, exclusive_lock
from toolchain.update.snapshot import snapshot
from toolchain.update.updater import UpdateResult, update

DEMO = REPO_ROOT / "demo"


@dataclass(frozen=True)
class Release:
    old_binary: Path
    new_binary: Path
    folder: Path  # signed release folder of 0.2.0
    public_key: str
    archive: Path
    foreign_archive: Path
    key: SecretKey  # signs crafted releases (tests/test_update_hardening.py)
    foreign_binary: Path  # the aarch64 build of 0.2.0


def build_version(root: Path, version: str, level: str, targets: tuple[str, ...]) -> Path:
    crate = root / f"tally-{version}"
    shutil.copytree(DEMO, crate, ignore=shutil.ignore_patterns("target"))
    manifest = crate / "Cargo.toml"
    set_version(manifest, "tally", "0.1.0", version)
    os.environ["TALLY_SCHEMA_LEVEL"] = level
    try:
        build(BuildOptions(manifest_path=manifest, targets=targets, out_dir=root / f"dist-{version}"))
    finally:
        del os.environ["TALLY_SCHEMA_LEVEL"]
    return root / f"dist-{version}"


_BUILT: dict[str, tuple[Path, Path]] = {}


def built_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two builds, made once per test process for every update test module."""
    if "versions" not in _BUILT:
        root = tmp_path_factory.mktemp("versions")
        old = build_version(root, "0.1.0", "1", ("x86_64-unknown-linux-gnu",))
        new = build_version(root, "0.2.0", "3", ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"))
        _BUILT["versions"] = (old, new)
    return _BUILT["versions"]


def make_release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """A freshly signed copy of the 0.2.0 release (every module gets its own key)."""
    old, built = built_versions(tmp_path_factory)
    new = tmp_path_factory.mktemp("release") / built.name
    shutil.copytree(built, new, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
    key = generate()
    package_release(new, key, "", REPO_ROOT, **demo_contract())

    def binary_of(folder: Path, target: str = "x86_64-unknown-linux-gnu") -> Path:
        record = json.loads((folder / "build-record.json").read_text())
        return Path(record["targets"][target]["binaries"][0]["path"])

    return Release(
        old_binary=binary_of(old),
        new_binary=binary_of(new),
        folder=new,
        public_key=key.public_key().render(),
        archive=new / "tally-x86_64-unknown-linux-gnu.tar.xz",
        foreign_archive=new / "tally-aarch64-unknown-linux-gnu.tar.xz",
        key=key,
        foreign_binary=binary_of(new, "aarch64-unknown-linux-gnu"),
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(tmp_path_factory)


@dataclass(frozen=True)
class Install:
    binary: Path
    data: Path
    database: Path
    env: dict[str, str]

    def run(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, **(extra or {})}
        return subprocess.run([self.binary, *args], capture_output=True, text=True, env=env, check=False)

    def dump(self) -> list[str]:
        # closed, not just committed (sqlite3's `with`): an open handle counts as a live writer to the updater
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as connection:
            return list(connection.iterdump())

    def digest(self) -> str:
        return hashlib.sha256(self.binary.read_bytes()).hexdigest()


def make_install(release: Release, tmp_path: Path) -> Install:
    """0.1.0 installed in tmp_path/bin with two counters in tmp_path/data/tally.db."""
    (tmp_path / "bin").mkdir()
    binary = tmp_path / "bin" / "tally"
    shutil.copy2(release.old_binary, binary)
    installed = Install(
        binary, tmp_path / "data", tmp_path / "data" / "tally.db", {"TALLY_HOME": str(tmp_path / "data")}
    )
    assert installed.run("migrate").returncode == 0
    assert installed.run("add", "apples", "5").returncode == 0
    assert installed.run("add", "pears").returncode == 0
    return installed


@pytest.fixture
def install(release: Release, tmp_path: Path) -> Install:
    return make_install(release, tmp_path)


def do_update(release: Release, install: Install, **kwargs: Any) -> UpdateResult:
    return update(
        install.binary, str(release.archive), release.public_key, [install.database], env=install.env, **kwargs
    )


def updater_code(release: Release, install: Install, env: dict[str, str], wait: float = 0) -> str:
    """A Python one-liner that runs the library's update in its own process."""
    key = release.folder / "key.pub"
    key.write_text(release.public_key)
    return (
        "from pathlib import Path; from toolchain.update import update; "
        f"update(Path({str(install.binary)!r}), {str(release.archive)!r}, Path({str(key)!r}).read_text(), "
        f"[Path({str(install.database)!r})], env={env!r}, wait={wait})"
    )


def test_successful_update_migrates_and_keeps_data(release: Release, install: Install) -> None:
    result = do_update(release, install)
    assert install.run("--version").stdout.strip() == "tally 0.2.0"
    assert install.run("schema").stdout.strip() == "database 3 binary 3"
    assert install.run("list").stdout == "apples = 5\npears = 1\n"
    assert install.run("doctor").returncode == 0
    assert result.steps[-1] == "done"
    journal = json.loads((install.binary.parent / ".tally-update" / "journal.json").read_text())
    assert journal["state"] == "done" and journal["old_version"] == "tally 0.1.0"


def test_forced_migration_failure_restores_binary_and_data(release: Release, install: Install) -> None:
    before_binary, before_dump = install.digest(), install.dump()
    with pytest.raises(UpdateError) as caught:
        update(install.binary, str(release.archive), release.public_key, [install.database],
               env={**install.env, "TALLY_FAIL_MIGRATION": "3"})  # fmt: skip
    message = str(caught.value)
    assert "migrate` failed with exit code 3" in message and "rolled back" in message
    assert "migration 3 failed: injected failure after changing data" in message
    assert install.digest() == before_binary
    assert install.dump() == before_dump
    assert install.run("list").stdout == "apples = 5\npears = 1\n"


def test_tampered_artifact_is_refused_before_anything_is_touched(
    release: Release, install: Install, tmp_path: Path
) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(release.folder, folder)
    archive = folder / release.archive.name
    archive.write_bytes(archive.read_bytes() + b"x")
    before_binary, before_dump = install.digest(), install.dump()
    with pytest.raises(UpdateError, match="SHA-256 does not match"):
        update(install.binary, str(archive), release.public_key, [install.database], env=install.env)
    assert install.digest() == before_binary and install.dump() == before_dump
    assert not (install.binary.parent / ".tally-update").exists()


def test_bad_signature_is_refused(release: Release, install: Install) -> None:
    other_key = generate().public_key().render()
    with pytest.raises(UpdateError, match="not signed by your key"):
        update(install.binary, str(release.archive), other_key, [install.database], env=install.env)
    assert not (install.binary.parent / ".tally-update").exists()


def test_foreign_target_is_refused(release: Release, install: Install) -> None:
    with pytest.raises(UpdateError, match="built for aarch64-unknown-linux-gnu, which does not run on this"):
        update(install.binary, str(release.foreign_archive), release.public_key, [install.database], env=install.env)


def test_not_enough_disk_space_refuses_before_the_swap(release: Release, install: Install) -> None:
    before = install.digest()
    with pytest.raises(UpdateError, match="not enough disk space in .*nothing was changed"):
        do_update(release, install, free_space=lambda _: 4096)
    assert install.digest() == before
    assert not list((install.binary.parent / ".tally-update").glob("snapshots/*"))


def test_second_update_at_once_fails_clearly(release: Release, install: Install) -> None:
    state_dir = install.binary.parent / ".tally-update"
    busy = r"another update of this installation is running \(pid \d+\)"
    with exclusive_lock(state_dir, 0), pytest.raises(UpdateError, match=busy):
        do_update(release, install, wait=0.3)
    assert install.run("--version").stdout.strip() == "tally 0.1.0"


def test_two_updaters_racing_leave_a_consistent_install(release: Release, install: Install) -> None:
    code = updater_code(release, install, install.env, wait=60)
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stderr=subprocess.PIPE) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in runs]
    assert codes == [0, 0], [p.stderr.read() if p.stderr else b"" for p in runs]
    assert install.run("--version").stdout.strip() == "tally 0.2.0"
    assert install.run("list").stdout == "apples = 5\npears = 1\n"


def test_snapshot_is_consistent_under_a_concurrent_writer(tmp_path: Path) -> None:
    database = tmp_path / "busy.db"
    with sqlite3.connect(database) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE pairs (tx INTEGER, half INTEGER, payload BLOB)")
        setup.executemany("INSERT INTO pairs VALUES (?, ?, randomblob(2000))", [(i // 2, i % 2) for i in range(20000)])
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        connection = sqlite3.connect(database, timeout=30, isolation_level=None)
        tx = 10**6
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO pairs VALUES (?, 0, randomblob(2000))", (tx,))
            connection.execute("INSERT INTO pairs VALUES (?, 1, randomblob(2000))", (tx,))
            connection.execute("COMMIT")
            tx += 1
            writes += 1
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while writes < 20:
            pass
        binary = tmp_path / "app"
        binary.write_bytes(b"binary")
        manifest = snapshot(binary, [database], tmp_path / "snap")
    finally:
        stop.set()
        thread.join()
    copy = tmp_path / "snap" / "data" / manifest["data"][0]["copy"]
    with sqlite3.connect(copy) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        halves = check.execute("SELECT COUNT(*) FROM pairs GROUP BY tx HAVING COUNT(*) != 2").fetchall()
        assert halves == [], "a transaction was copied half-way"
        assert check.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] > 20000
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == manifest["data"][0]["sha256"]


CRASH_POINTS = [
    "verified",
    "snapshotting",
    "snapshotted",
    "swapping",
    "swapped",
    "migrating",
    "migrated",
    "checked",
    "committed",
]


@pytest.mark.parametrize("state", [*CRASH_POINTS, "rolling-back"])
def test_kill_9_at_each_step_then_recover(release: Release, install: Install, state: str) -> None:
    before_binary, before_dump = install.digest(), install.dump()
    env = dict(install.env)
    if state == "rolling-back":
        env["TALLY_FAIL_MIGRATION"] = "3"  # reach the rollback path, then die in it
    code = updater_code(release, install, env)
    killed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ, CRASH_ENV: state},
                            capture_output=True, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    recovered = run_invoke("recover", "--binary", str(install.binary))
    assert recovered.returncode == 0, recovered.stderr
    if state == "committed":
        assert install.run("--version").stdout.strip() == "tally 0.2.0"
        assert install.run("schema").stdout.strip() == "database 3 binary 3"
        assert install.run("list").stdout == "apples = 5\npears = 1\n"
    else:
        assert install.digest() == before_binary, f"binary not restored after a crash at {state}"
        assert install.dump() == before_dump, f"data not restored after a crash at {state}"
    assert install.run("doctor").returncode == 0
    journal = json.loads((install.binary.parent / ".tally-update" / "journal.json").read_text())
    assert journal["state"] in ("done", "rolled-back")


def test_rollback_by_hand_and_snapshot_list(release: Release, install: Install) -> None:
    before_binary, before_dump = install.digest(), install.dump()
    do_update(release, install)
    # The old binary refuses the migrated database.
    old = Install(install.binary.with_name("old-tally"), install.data, install.database, install.env)
    shutil.copy2(release.old_binary, old.binary)
    refused = old.run("list")
    assert refused.returncode == 3 and "newer than this tally's 1" in refused.stderr
    listing = run_invoke("snapshots", "--binary", str(install.binary), "--json")
    assert listing.returncode == 0 and len(json.loads(listing.stdout)) == 1
    result = run_invoke("rollback", "--binary", str(install.binary), "--yes")
    assert result.returncode == 0, result.stderr
    assert install.digest() == before_binary and install.dump() == before_dump


def test_update_cli_needs_a_public_key(install: Install, release: Release) -> None:
    config = install.data / "empty.toml"  # no [sign] public-key-file
    config.write_text("")
    result = run_invoke("update", "--artifact", str(release.archive), "--binary", str(install.binary),
                        env={"TOOLCHAIN_CONFIG": str(config)})  # fmt: skip
    assert result.returncode == 2 and "no public key to check signatures with" in result.stderr


@pytest.mark.parametrize("key_given_as", ["file", "key"])
def test_update_cli_end_to_end(install: Install, release: Release, key_given_as: str) -> None:
    key_file = release.folder.parent / "release.pub"
    key_file.write_text(release.public_key)
    # --public-key takes the key's file or the key itself (its base64 line, as minisign -P does).
    key = str(key_file) if key_given_as == "file" else release.public_key.strip().splitlines()[-1]
    args = ["--artifact", str(release.archive), "--binary", str(install.binary), "--public-key", key]
    result = run_invoke("update", *args, "--data", str(install.database), "--json", env=install.env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["new_version"] == "0.2.0" and document["ok"] is True
