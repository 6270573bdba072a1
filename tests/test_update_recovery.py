"""No acknowledged write is lost when an update is interrupted, and the
install receipt always names the binary that is installed (issue 26, the
updater's side).

Real demo builds (0.1.0 installed, 0.2.0 the signed update, as in
tests/test_update.py), a real kill -9 of the updater's own process at each
journal state (the TOOLCHAIN_UPDATE_CRASH_AT hook SIGKILLs it), real SQLite
writers in child processes holding the database open, the real CLI for
`recover` and `update`, and a real tmpfs for the full disk."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import demo_contract, run_invoke
from test_update import Install, Release, built_versions, make_install, make_release

from toolchain import REPO_ROOT
from toolchain.errors import UpdateError
from toolchain.release.folder import package_release
from toolchain.update import updater as updater_module
from toolchain.update.artifact import Artifact, verify_artifact
from toolchain.update.journal import CRASH_ENV, SCRATCH_PREFIX, STATES
from toolchain.update.updater import update

HOST = "x86_64-unknown-linux-gnu"
# Every state the updater writes on its way (the hook fires right after each).
CRASH_POINTS = ["verified", "snapshotting", "snapshotted", "swapping", "swapped",
                "migrating", "migrated", "checked", "committed", "rolling-back"]  # fmt: skip


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(tmp_path_factory)


@pytest.fixture(scope="module")
def new_binary_sha256(release: Release, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The signed manifest's entry for tally in the 0.2.0 archive."""
    work = tmp_path_factory.mktemp("verify")
    return verify_artifact(str(release.archive), release.public_key, work).member("tally").sha256


@dataclass
class Case:
    """One installation with a receipt, and every write that was acknowledged to it."""

    install: Install
    receipt: Path
    tmp: Path  # TMPDIR of every process here: the updater's scratch folders land in it
    acknowledged: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**self.install.env, "TMPDIR": str(self.tmp)}

    @property
    def state_dir(self) -> Path:
        return self.install.binary.parent / ".tally-update"

    def journal(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "journal.json").read_text())
        return document

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_invoke(*args, env={**self.env, **extra})

    def recover(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("recover", "--receipt", str(self.receipt), *extra)

    def update(self, release: Release) -> subprocess.CompletedProcess[str]:
        key = release.folder.parent / "release.pub"
        key.write_text(release.public_key)
        return self.cli("update", "--receipt", str(self.receipt), "--artifact", str(release.archive),
                        "--public-key", str(key), "--data", str(self.install.database))  # fmt: skip


def make_case(release: Release, tmp_path: Path) -> Case:
    tmp_path.mkdir(parents=True, exist_ok=True)
    install = make_install(release, tmp_path)
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    receipt = config / "install-receipt.json"
    receipt.write_text(json.dumps({
        "app": "tally", "version": "0.1.0", "target": HOST, "install_dir": str(install.binary.parent),
        "source": "https://example.invalid/tally-0.1.0.tar.xz", "sha256": "0" * 64, "binaries": ["tally"],
        "installed_at": "2026-01-01T00:00:00Z",
    }, indent=2) + "\n")  # fmt: skip
    receipt.chmod(0o644)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    case = Case(install, receipt, scratch)
    case.acknowledged += ["counter apples", "counter pears"]
    return case


@pytest.fixture
def case(release: Release, tmp_path: Path) -> Case:
    return make_case(release, tmp_path)


def crash(release: Release, case: Case, state: str, env: dict[str, str] | None = None) -> None:
    """Run the library's update, with the receipt, in its own process, killed by SIGKILL right after `state`."""
    key = release.folder / "key.pub"
    key.write_text(release.public_key)
    run_env = {**case.install.env, **(env or {})}
    code = (
        "from pathlib import Path; from toolchain.update import update; "
        f"update(Path({str(case.install.binary)!r}), {str(release.archive)!r}, Path({str(key)!r}).read_text(), "
        f"[Path({str(case.install.database)!r})], env={run_env!r}, "
        f"receipt=Path({str(case.receipt)!r}))"
    )
    killed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                            env={**os.environ, **case.env, CRASH_ENV: state})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr


# A writer of its own, as a user's sqlite3 session is: it opens the database
# at once and keeps it open; each line on stdin is one committed row, echoed
# only once its commit returned (that echo is the acknowledgement).
WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
print("open", flush=True)
for line in sys.stdin:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("CREATE TABLE IF NOT EXISTS writer_notes (note TEXT)")
    connection.execute("INSERT INTO writer_notes VALUES (?)", (line.strip(),))
    connection.execute("COMMIT")
    print(line.strip(), flush=True)
connection.close()
"""


class Writer:
    def __init__(self, database: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, str(database)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "open"

    def write(self, note: str) -> bool:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(note + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip() == note

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def on_disk(database: Path) -> set[str]:
    """Every row a fresh reader of the file on disk sees (counters and the writer's notes)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        found = {f"counter {name}" for (name,) in connection.execute("SELECT name FROM counters")}
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "writer_notes" in tables:
            found |= {f"note {note}" for (note,) in connection.execute("SELECT note FROM writer_notes")}
    return found


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    last = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == code, f"exit {result.returncode}, not {code}: {last[0]}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_consistent(release: Release, case: Case, new_binary_sha256: str, old_receipt: dict[str, Any]) -> str:
    """receipt = binary = manifest entry, every acknowledged write on disk, no
    leftovers, the journal finished; returns which version is installed."""
    binary = digest(case.install.binary)
    receipt = json.loads(case.receipt.read_text())
    if binary == new_binary_sha256:
        installed = "0.2.0"
        assert receipt["version"] == "0.2.0", f"receipt {receipt['version']} over the 0.2.0 binary"
        assert receipt["sha256"] == digest(release.archive) and receipt["source"] == str(release.archive)
    else:
        installed = "0.1.0"
        assert binary == digest(release.old_binary), "the binary is neither release"
        assert receipt == old_receipt, f"receipt {receipt['version']} over the 0.1.0 binary"
    assert case.install.run("--version").stdout.strip() == f"tally {installed}"
    missing = set(case.acknowledged) - on_disk(case.install.database)
    assert not missing, f"acknowledged writes lost: {sorted(missing)}"
    folders = (case.install.binary.parent, case.receipt.parent, case.install.data, case.state_dir)
    leftovers = [p.name for folder in folders for p in folder.iterdir() if p.name.endswith(".partial")]
    assert not leftovers, leftovers
    assert not [p for p in case.tmp.iterdir() if p.name.startswith(SCRATCH_PREFIX)], list(case.tmp.iterdir())
    for folder in (case.state_dir / "snapshots").glob("*"):
        assert (folder / "snapshot.json").is_file(), f"a half-taken snapshot is left: {folder}"
    assert case.journal()["state"] in ("done", "rolled-back", "abandoned")
    return installed


# --- issue 26, item 2: recover under a writer that holds the database ----------------------


def test_recover_never_restores_under_a_writer_holding_the_database(release: Release, case: Case) -> None:
    crash(release, case, "migrating")
    writer = Writer(case.install.database)
    try:
        held = case.recover()
        late = writer.write("late-write")  # after the recover: into the file, or into a replaced inode?
    finally:
        writer.close()
    assert late
    assert "note late-write" in on_disk(case.install.database), "late-write went into a file that was replaced"
    message = one_error(held, 13)
    assert "tally is in use: pid" in message and "has tally.db open" in message
    assert "nothing was changed" in message and f"recover --binary {case.install.binary}" in message
    # The writer gone: its rows were written after the snapshot, so they are kept, and the new
    # binary already runs on them (it passes its checks), so the update is finished forward.
    done = case.recover()
    assert done.returncode == 0, done.stderr
    assert "kept tally.db as written since the snapshot" in done.stderr and "passed its checks" in done.stderr
    assert {"note late-write", "counter apples"} <= on_disk(case.install.database)
    assert case.install.run("list").stdout == "apples = 5\npears = 1\n"
    assert case.journal()["state"] == "done" and Path(case.journal()["snapshot"]).is_dir()


def test_update_waits_for_the_app_before_it_recovers(
    release: Release, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update() recovers an earlier interrupted update under its lock: never under a holder of the
    data. The app starts while the new release is fetched (after update()'s first look), so only the
    check under the lock can see it."""
    crash(release, case, "migrated")
    started: list[Writer] = []
    verify = updater_module.verify_artifact  # type: ignore[attr-defined]

    def verify_then_start_the_app(source: str, key: str, work: Path) -> Artifact:
        artifact = verify(source, key, work)  # the real verification, then the app starts
        started.append(Writer(case.install.database))
        return artifact

    monkeypatch.setattr(updater_module, "verify_artifact", verify_then_start_the_app)
    try:
        with pytest.raises(UpdateError) as refused:
            update(case.install.binary, str(release.archive), release.public_key, [case.install.database],
                   env=case.install.env, receipt=case.receipt)  # fmt: skip
        assert started and started[0].write("late-write")
    finally:
        for writer in started:
            writer.close()
    assert "tally is in use" in str(refused.value) and "has tally.db open" in str(refused.value)
    assert "note late-write" in on_disk(case.install.database), "late-write went into a file that was replaced"
    assert case.journal()["state"] == "migrated", "the interrupted update was recovered under the writer"


# --- issue 26, item 3: the receipt and the binary in one transaction ----------------------


def test_recover_after_a_crash_at_committed_leaves_the_receipt_naming_the_binary(
    release: Release, case: Case, new_binary_sha256: str
) -> None:
    old_receipt = json.loads(case.receipt.read_text())
    crash(release, case, "committed")
    recovered = case.recover()
    assert recovered.returncode == 0, recovered.stderr
    assert assert_consistent(release, case, new_binary_sha256, old_receipt) == "0.2.0"


def test_a_rolled_back_update_puts_the_old_receipt_back(release: Release, case: Case) -> None:
    old_receipt = case.receipt.read_text()
    env = {"TALLY_FAIL_MIGRATION": "3"}
    key = release.public_key
    with pytest.raises(UpdateError) as failed:
        update(case.install.binary, str(release.archive), key, [case.install.database],
               env={**case.install.env, **env}, receipt=case.receipt)  # fmt: skip
    assert "rolled back tally and 1 data file to tally 0.1.0" in str(failed.value)
    assert case.receipt.read_text() == old_receipt
    assert digest(case.install.binary) == digest(release.old_binary)


def test_the_downgrade_check_asks_the_installed_binary_not_the_receipt(
    release: Release, case: Case, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A receipt left at 0.1.0 over a 0.2.0 binary (as issue 26 found after a crash) does not let
    the signed 0.1.0 release in: the version compared is what the installed binary says."""
    old_dist, _ = built_versions(tmp_path_factory)
    folder = tmp_path_factory.mktemp("old-release") / old_dist.name
    shutil.copytree(old_dist, folder, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
    package_release(folder, release.key, "", REPO_ROOT, **demo_contract())
    shutil.copy2(release.new_binary, case.install.binary)
    assert case.install.run("migrate").returncode == 0
    assert json.loads(case.receipt.read_text())["version"] == "0.1.0"
    key = release.folder.parent / "release.pub"
    key.write_text(release.public_key)
    refused = case.cli("update", "--receipt", str(case.receipt), "--artifact", str(folder / f"tally-{HOST}.tar.xz"),
                       "--public-key", str(key), "--data", str(case.install.database))  # fmt: skip
    message = one_error(refused, 13)
    assert "0.1.0 is older than the installed tally 0.2.0: refusing a downgrade" in message
    assert digest(case.install.binary) == digest(release.new_binary)


# --- item 4 of the brief: messages never claim data that was not snapshotted ---------------


def test_a_rollback_without_data_files_says_none_are_declared(release: Release, case: Case) -> None:
    with pytest.raises(UpdateError) as failed:
        update(case.install.binary, str(release.archive), release.public_key, [],
               env={**case.install.env, "TALLY_FAIL_MIGRATION": "3"})  # fmt: skip
    message = str(failed.value)
    assert "rolled back tally (no data files are declared, so no data was restored) to tally 0.1.0" in message
    assert "and its data" not in message and "binary and data" not in message


# --- the crash matrix: every journal state, then new data, then a writer through recover --


def run_scenario(release: Release, case: Case, state: str, write_after: bool, hold: bool) -> str:
    """Crash at `state`; (a) the user goes on with whatever binary is on disk;
    (b) a writer holds the database through a recover and commits after it;
    then recover. Returns the outcome: the last recover's, in a word."""
    env = {"TALLY_FAIL_MIGRATION": "3"} if state == "rolling-back" else {}
    crash(release, case, state, env)
    if write_after:
        case.install.run("migrate")  # as a user told "run tally migrate" would
        if case.install.run("add", "after-kill").returncode == 0:
            case.acknowledged.append("counter after-kill")
    journal_state = case.journal()["state"]
    if hold:
        writer = Writer(case.install.database)
        try:
            assert writer.write("writer")
            case.acknowledged.append("note writer")
            held = case.recover()
            assert writer.write("late-write")
            case.acknowledged.append("note late-write")
        finally:
            writer.close()
        if journal_state in ("verified", "snapshotting", "committed"):  # nothing to restore: no wait needed
            assert held.returncode == 0, held.stderr
        else:
            message = one_error(held, 13)
            assert "tally is in use" in message and "has tally.db open" in message
            assert case.journal()["state"] == journal_state, "recover changed something under the writer"
    result = case.recover()
    if result.returncode == 13:
        message = one_error(result, 13)
        snapshot = case.journal()["snapshot"]
        assert "is stuck" in message and "tally.db changed since" in message
        assert f"the live data ({case.install.database}) is kept, and so is the snapshot {snapshot}" in message
        assert f"recover --binary {case.install.binary} --force" in message and "--abandon" in message
        kept = case.recover("--abandon")
        assert kept.returncode == 0, kept.stderr
        return "stuck, then abandoned"
    assert result.returncode == 0, result.stderr
    for outcome in ("finished forward", "completed", "restored", "nothing to undo", "kept"):
        if result.stderr.strip().endswith(outcome):
            return outcome
    return "no interrupted update"


def expected_outcome(state: str, write_after: bool, hold: bool) -> set[str]:
    if state in ("verified", "snapshotting"):
        return {"nothing to undo", "no interrupted update"}
    if state == "committed":
        return {"completed", "no interrupted update"}
    if not (write_after or hold):
        return {"restored"}
    if state in ("snapshotted", "swapping"):  # the old binary never left: the data written since is kept
        return {"kept"}
    if state == "rolling-back":  # the update had failed: the user chooses
        return {"stuck, then abandoned"}
    return {"finished forward"}  # the new binary runs on the data written since and passes its checks


def assert_updates_again(release: Release, case: Case, new_binary_sha256: str, old: dict[str, Any]) -> None:
    again = case.update(release)
    assert again.returncode == 0, again.stderr
    assert assert_consistent(release, case, new_binary_sha256, old) == "0.2.0"


@pytest.mark.parametrize("state", CRASH_POINTS)
def test_crash_matrix(release: Release, case: Case, new_binary_sha256: str, state: str) -> None:
    assert state in STATES
    old_receipt = json.loads(case.receipt.read_text())
    outcome = run_scenario(release, case, state, write_after=True, hold=True)
    assert outcome in expected_outcome(state, True, True), f"crash at {state}: {outcome}"
    assert_consistent(release, case, new_binary_sha256, old_receipt)
    assert_updates_again(release, case, new_binary_sha256, old_receipt)


def test_crash_points_cover_every_state_the_updater_passes() -> None:
    """The matrix is enumerated: a new journal state on the update's way must be added to it."""
    terminal = {"done", "rolled-back", "stuck", "abandoned"}
    assert set(CRASH_POINTS) == set(STATES) - terminal


def test_random_soak(release: Release, new_binary_sha256: str, tmp_path: Path) -> None:
    """N crashes at random journal states, each with a random mix of later
    writes and a writer holding the database through the recover (seeded:
    TOOLCHAIN_SOAK_SEED, TOOLCHAIN_SOAK_ROUNDS)."""
    seed = int(os.environ.get("TOOLCHAIN_SOAK_SEED", "26"))
    rounds = int(os.environ.get("TOOLCHAIN_SOAK_ROUNDS", "6"))
    chooser = random.Random(seed)
    counts: Counter[str] = Counter()
    for index in range(rounds):
        state = chooser.choice(CRASH_POINTS)
        write_after, hold = chooser.random() < 0.5, chooser.random() < 0.5
        case = make_case(release, tmp_path / f"round-{index}")
        old_receipt = json.loads(case.receipt.read_text())
        outcome = run_scenario(release, case, state, write_after, hold)
        assert outcome in expected_outcome(state, write_after, hold), f"round {index}, crash at {state}: {outcome}"
        assert_consistent(release, case, new_binary_sha256, old_receipt)
        counts[outcome] += 1
        counts["acknowledged writes kept"] += len(case.acknowledged)
        shutil.rmtree(tmp_path / f"round-{index}")
    print(f"soak seed {seed}: {rounds} crashes; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    assert sum(v for k, v in counts.items() if k != "acknowledged writes kept") == rounds


# --- item 5 of the brief: a full disk leaves nothing half-written --------------------------


@pytest.mark.parametrize("size", [8 << 10, 64 << 10, 256 << 10])
def test_disk_full_during_the_update_leaves_no_temporary_files(
    release: Release, case: Case, small_fs: Callable[[str, int], Path], size: int
) -> None:
    """The state folder on a tmpfs too small for the snapshot (the journal fits
    at 64 KiB and up, at 8 KiB not even it): the update fails with one line,
    and no journal or snapshot temporary file is left, whatever write failed."""
    state = small_fs("state", size)
    before = digest(case.install.binary), on_disk(case.install.database), case.receipt.read_text()
    with pytest.raises(UpdateError) as failed:
        update(case.install.binary, str(release.archive), release.public_key, [case.install.database],
               env=case.install.env, state_dir=state, free_space=lambda _: 1 << 40, receipt=case.receipt)  # fmt: skip
    assert "no space left on the device" in str(failed.value) and "\n" not in str(failed.value)
    assert (digest(case.install.binary), on_disk(case.install.database), case.receipt.read_text()) == before
    left = sorted(str(p.relative_to(state)) for p in state.rglob("*"))
    assert set(left) <= {"journal.json", "update.lock"}, left
    if "journal.json" in left:
        assert json.loads((state / "journal.json").read_text())["state"] == "rolled-back"
    assert not [p for p in case.install.binary.parent.iterdir() if p.name.endswith(".partial")]
