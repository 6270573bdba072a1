"""The shell installer killed at each of its pause points, then the user's data changed or held
open, then the installer run again (issue 26): no acknowledged write is ever lost, the receipt
always names the binary that is installed, and nothing the installer stages is left behind.

Real parts: the demo at 0.1.0 and 0.2.0 (built once per test process), dash, bash and busybox
sh, a loopback HTTP server, kill -9 of the installer's process group, and real SQLite writers
(the installed tally, and a Python sqlite3 connection that holds the database open)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_installer_upgrade import Machine, Releases, new_machine, served_releases
from test_installers import HOST_ARCHIVE, HOST_TOP, error_line


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    yield from served_releases(tmp_path_factory)


@pytest.fixture
def machine(releases: Releases, tmp_path: Path, request: pytest.FixtureRequest) -> Machine:
    return new_machine(releases, tmp_path, request)


# Each pause point of the sh installer's upgrade (TALLY_INSTALLER_TEST_PAUSE_AT, i.e.
# <APP>_INSTALLER_TEST_PAUSE_AT) -> the journal state a kill there leaves.
POINTS = {
    "swap": "swapping",  # journal written, nothing swapped yet
    "migrate": "checking",  # the new binary in place, no check run yet
    "commit": "checking",  # the checks passed (the data is migrated), not committed
    "restore": "restoring",  # the checks failed (migration 3 made to fail), the rollback not done
    "committed": "committed",  # committed, the receipt not renamed yet
    "previous": "committed",  # the receipt renamed, the snapshot not kept as previous/ yet
}
# What the next run says it did, for data changed after the kill (the snapshot is out of date).
SETTLED = {
    "swap": "repaired an interrupted upgrade of tally from 0.1.0 to 0.2.0: put back tally 0.1.0 and kept its data",
    "migrate": "finished the interrupted upgrade of tally from 0.1.0 to 0.2.0 forward: its data changed",
    "commit": "finished the interrupted upgrade of tally from 0.1.0 to 0.2.0 forward: its data changed",
    "restore": "finished the interrupted upgrade of tally from 0.1.0 to 0.2.0 forward: its data changed",
    "committed": "finished the interrupted upgrade of tally from 0.1.0 to 0.2.0\n",
    "previous": "finished the interrupted upgrade of tally from 0.1.0 to 0.2.0\n",
}

WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=30)
connection.execute("select count(*) from counters").fetchall()
print("open", flush=True)
for line in sys.stdin:
    name = line.strip()
    if not name:
        break
    connection.execute("insert into counters (name, value) values (?, 1)", (name,))
    connection.commit()
    print("committed", name, flush=True)
connection.close()
"""


class Writer:
    """A real SQLite writer holding the database open; each write() is acknowledged once committed."""

    def __init__(self, database: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == "open\n"

    def write(self, name: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == f"committed {name}\n"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0


def rows(machine: Machine) -> set[str]:
    with contextlib.closing(sqlite3.connect(machine.database)) as connection:
        return {name for (name,) in connection.execute("select name from counters")}


def killed_at(machine: Machine, point: str) -> None:
    """Start the 0.2.0 installer over 0.1.0, stop it at `point`, then kill -9 its process group."""
    env = {"TALLY_INSTALLER_TEST_PAUSE_AT": point}
    if point == "restore":
        env["TALLY_FAIL_MIGRATION"] = "3"
    paused = machine.start("0.2.0", env)
    marker = machine.config / f"paused-at-{point}"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert paused.poll() is None, paused.communicate()
            assert time.monotonic() < deadline, f"the installer never reached {point}"
            time.sleep(0.05)
    finally:
        os.killpg(paused.pid, signal.SIGKILL)
        paused.communicate()
    marker.unlink()


def binary_of(releases: Releases, release: str) -> str:
    with tarfile.open(releases.folder(release) / HOST_ARCHIVE) as archive:
        member = archive.extractfile(f"{HOST_TOP}/tally")
        assert member is not None
        return hashlib.sha256(member.read()).hexdigest()


def assert_consistent(machine: Machine, release: str, acknowledged: set[str]) -> None:
    """receipt = binary = manifest entry; every acknowledged write is live; nothing staged is left."""
    receipt = machine.receipt()
    manifest = json.loads((machine.releases.folder(release) / "manifest.json").read_text())
    entry = next(f for f in manifest["artifacts"] if f["name"] == HOST_ARCHIVE)
    member = next(m for m in entry["members"] if m["path"] == f"{HOST_TOP}/tally")
    assert receipt["version"] == manifest["apps"][0]["version"] == release.split("-")[0]
    assert receipt["sha256"] == entry["sha256"], "the receipt names the manifest's archive"
    assert machine.digest() == member["sha256"] == binary_of(machine.releases, release), "the binary is its"
    assert receipt["binary_sha256"] == {"tally": machine.digest()}
    assert acknowledged <= rows(machine), f"lost writes: {acknowledged - rows(machine)}"
    assert sorted(p.name for p in machine.binary.parent.iterdir()) == ["tally"]
    left = {p.name for p in machine.config.iterdir()} - {"install-receipt.json", "previous"}
    assert not left, f"left behind: {left}"
    assert not list(machine.database.parent.glob("tally.db.*")), "no staging file beside the database"


def test_the_issue_reproduction_keeps_every_write(machine: Machine) -> None:
    """Issue 26, item 1: killed after the swap; the user migrates and adds with the new binary
    while a sqlite3 session holds the database; the next run must keep all of it."""
    machine.with_data()
    killed_at(machine, "migrate")
    assert machine.tally("migrate").returncode == 0
    assert machine.tally("add", "after-kill", "1").returncode == 0
    writer = Writer(machine.database)
    writer.write("writer")
    refused = machine.install("0.2.0")
    assert refused.returncode == 1
    assert error_line(refused).startswith(f"ERROR: tally is running or its data is open (pid {writer.process.pid})")
    assert "nothing was changed" in error_line(refused)
    assert "repaired" not in refused.stdout
    writer.write("writer2")  # after the refused repair: still the live file
    writer.close()
    again = machine.install("0.2.0")
    assert again.returncode == 0, again.stderr
    assert SETTLED["migrate"] in again.stdout
    assert_consistent(machine, "0.2.0", {"apples", "pears", "after-kill", "writer", "writer2"})


def test_the_receipt_is_committed_with_the_binary(machine: Machine) -> None:
    """Issue 26, item 3: killed between the committed journal and the receipt's rename."""
    machine.with_data()
    killed_at(machine, "committed")
    assert machine.receipt()["version"] == "0.1.0" and machine.tally("--version").stdout == "tally 0.2.0\n"
    # The older installer goes by what is installed, not by the receipt alone: a downgrade.
    older = machine.install("0.1.0", alone=False)  # refused before the lock: the killed one's stays
    assert older.returncode == 1
    assert error_line(older).startswith("ERROR: tally 0.2.0 is installed and 0.1.0 is older: refusing to downgrade")
    again = machine.install("0.2.0")
    assert again.returncode == 0, again.stderr
    assert SETTLED["committed"] in again.stdout
    assert_consistent(machine, "0.2.0", {"apples", "pears"})


def test_a_receipt_that_disagrees_with_the_binary_does_not_allow_a_downgrade(machine: Machine) -> None:
    """An old receipt put back over a newer install (from a backup, by hand): the binary decides."""
    assert machine.install("0.1.0").returncode == 0
    receipt = machine.config / "install-receipt.json"
    old = receipt.read_text()
    assert machine.install("0.2.0").returncode == 0
    receipt.write_text(old)
    refused = machine.install("0.1.0")
    assert refused.returncode == 1
    assert error_line(refused).startswith("ERROR: tally 0.2.0 is installed and 0.1.0 is older")


@pytest.mark.parametrize("choice", ["keep-live-data", "restore-snapshot"])
def test_changed_data_the_new_version_cannot_take_stops_with_13(machine: Machine, choice: str) -> None:
    machine.with_data()
    killed_at(machine, "restore")  # migration 3 failed: the data is at level 2
    writer = Writer(machine.database)
    writer.write("late")
    writer.close()
    stopped = machine.install("0.2.0", env={"TALLY_FAIL_MIGRATION": "3"})
    assert stopped.returncode == 13, stopped.stderr
    snapshot = machine.config / "snapshot"
    assert error_line(stopped) == (
        "ERROR: tally's data changed after the snapshot of tally 0.1.0 was taken and tally 0.2.0 fails "
        f"'tally migrate' on it, so nothing was rolled back or deleted: the live data is {machine.database} "
        f"(with tally 0.2.0), the snapshot is kept in {snapshot}; choose one by running this installer again "
        "with --keep-live-data or --restore-snapshot"
    )
    # The receipt names what is installed; the live data and the snapshot are both there.
    assert machine.receipt()["version"] == "0.2.0" and machine.tally("--version").stdout == "tally 0.2.0\n"
    assert "late" in rows(machine) and (snapshot / "data" / "1").is_file()
    again = machine.install("0.2.0")
    assert again.returncode == 13 and "choose one by running this installer again" in error_line(again)

    chosen = machine.install("0.2.0", f"--{choice}")
    assert chosen.returncode == 0, chosen.stderr
    previous = machine.config / "previous"
    assert not snapshot.exists() and not (machine.config / "upgrade-journal").exists()
    if choice == "keep-live-data":
        assert "kept the live data with tally 0.2.0" in chosen.stdout
        assert machine.receipt()["version"] == "0.2.0" and "late" in rows(machine)
    else:
        assert f"the data it replaced is in {previous}/live-data" in chosen.stdout
        assert machine.receipt()["version"] == "0.1.0" and machine.tally("--version").stdout == "tally 0.1.0\n"
        assert rows(machine) == {"apples", "pears"}
        with contextlib.closing(sqlite3.connect(previous / "live-data" / "tally.db")) as kept:
            assert ("late",) in kept.execute("select name from counters").fetchall(), "nothing is deleted"
    nothing = machine.install("0.2.0", f"--{choice}")
    assert nothing.returncode == 1 and "no upgrade of tally is stopped here" in error_line(nothing)


# The full matrix under dash; under bash and busybox the cases that run each shell through a
# different repair path (binary put back, forward, committed; the writer held through a wait),
# since their full cross-product would add minutes for the same shell code paths.
MATRIX = [("dash", point, action) for point in POINTS for action in ("write", "hold")] + [
    (shell, point, action)
    for shell in ("bash", "busybox")
    for point, action in (("swap", "write"), ("migrate", "hold"), ("committed", "write"), ("restore", "hold"))
]


@pytest.mark.parametrize(("machine", "point", "action"), MATRIX, indirect=["machine"])
def test_crash_matrix(machine: Machine, point: str, action: str) -> None:
    machine.with_data()
    killed_at(machine, point)
    assert (machine.config / "upgrade-journal").read_text().startswith(f"state={POINTS[point]}\n")
    acknowledged = {"apples", "pears"}
    if action == "write":
        # Whatever binary is on disk: 0.2.0 migrates first, as a user would be told to.
        assert machine.tally("migrate").returncode == 0
        assert machine.tally("add", "after-kill", "2").returncode == 0
        acknowledged.add("after-kill")
        again = machine.install("0.2.0")
    else:
        writer = Writer(machine.database)
        run = subprocess.Popen(  # the installer waits for the writer, which commits meanwhile
            [*machine_command(machine, "0.2.0"), "--wait=60"], env=machine_env(machine, "0.2.0"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert run.stdout is not None
        seen = ""
        while "waiting up to 60s" not in seen:
            line = run.stdout.readline()
            assert line, (seen, run.communicate())
            seen += line
        writer.write("writer")
        acknowledged.add("writer")
        writer.close()
        out, err = run.communicate(timeout=120)
        again = subprocess.CompletedProcess(run.args, run.returncode, seen + out, err)
    assert again.returncode == 0, again.stderr
    assert SETTLED[point] in again.stdout, again.stdout
    assert_consistent(machine, "0.2.0", acknowledged)


@pytest.mark.parametrize("installed", [True, False], ids=["upgrade", "first-install"])
def test_a_kill_before_the_journal_leaves_nothing_behind(machine: Machine, installed: bool) -> None:
    """Killed after staging its files, before any journal names them: the next run sweeps them."""
    acknowledged = {"apples", "pears"}
    if installed:
        machine.with_data()
    killed_at(machine, "staged")
    assert any(p.name.startswith(".tally.tmp.") for p in machine.binary.parent.iterdir())
    assert not (machine.config / "upgrade-journal").exists()
    again = machine.install("0.2.0")
    assert again.returncode == 0, again.stderr
    if not installed:
        assert machine.tally("add", "apples", "5").returncode == 0
        assert machine.tally("add", "pears").returncode == 0
    assert_consistent(machine, "0.2.0", acknowledged)


def machine_command(machine: Machine, release: str) -> list[str]:
    from test_installers import SHELLS

    return [*SHELLS[machine.shell], str(machine.releases.folder(release) / "tally-installer.sh")]


def machine_env(machine: Machine, release: str) -> dict[str, str]:
    (machine.home.parent / "installer-tmp").mkdir(exist_ok=True)
    return machine.env({"TALLY_DOWNLOAD_URL": f"{machine.releases.url}/{release}"})


SOAK_KILLS = int(os.environ.get("TOOLCHAIN_SOAK_KILLS", "10"))
SOAK_SEED = int(os.environ.get("TOOLCHAIN_SOAK_SEED", str(random.SystemRandom().randrange(1 << 30))))


def journal_text(machine: Machine) -> str:
    with contextlib.suppress(FileNotFoundError):
        return (machine.config / "upgrade-journal").read_text()
    return ""


def test_random_kills_with_a_concurrent_writer(machine: Machine) -> None:
    """A bounded soak: the installer killed at random moments while a writer adds rows between
    runs; then a last run without a kill. Prints its counts (and the seed to replay it)."""
    chance = random.Random(SOAK_SEED)
    machine.with_data()
    acknowledged = {"apples", "pears"}
    counts: Counter[str] = Counter()
    # How long an upgrade runs here from its journal on: the kills spread over that window.
    first = machine.start("0.2.0", {})
    while not (machine.config / "upgrade-journal").exists() and first.poll() is None:
        time.sleep(0.002)
    began = time.monotonic()
    assert first.wait(timeout=120) == 0, first.communicate()
    window = time.monotonic() - began
    for kill in range(SOAK_KILLS):
        run = machine.start(chance.choice(["0.2.0", "0.1.0"]), {"TALLY_ALLOW_DOWNGRADE": "1"})
        # A random moment of the upgrade itself (the download before it holds no state): from
        # its own journal on. Not a timing assertion: any moment must be safe.
        while f"pid={run.pid}\n" not in journal_text(machine) and run.poll() is None:
            time.sleep(0.002)
        time.sleep(chance.uniform(0.0, window))
        finished = run.poll() is not None
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        journal = machine.config / "upgrade-journal"
        if finished:
            counts["finished before its kill"] += 1
        else:
            counts["killed in " + (journal.read_text().split("\n")[0] if journal.exists() else "no journal")] += 1
        writer = Writer(machine.database)
        writer.write(f"soak-{kill}")
        acknowledged.add(f"soak-{kill}")
        writer.close()
        # A 0.2.0 on a level-1 database refuses to write until migrated, as the user would; a
        # 0.1.0 left on level-3 data refuses to write at all: no write is acknowledged then.
        added = machine.tally("add", f"tally-{kill}")
        if added.returncode != 0 and machine.tally("migrate").returncode == 0:
            added = machine.tally("add", f"tally-{kill}")
        if added.returncode == 0:
            acknowledged.add(f"tally-{kill}")
        else:
            counts[f"the user's tally refused to write ({added.stderr.strip()[:60]})"] += 1
    final = machine.install("0.2.0", "--allow-downgrade")
    counts[f"final run exit {final.returncode}"] += 1
    print(f"soak seed {SOAK_SEED}: {SOAK_KILLS} kills over {window:.2f}s, {dict(sorted(counts.items()))}")
    assert final.returncode == 0, final.stderr
    assert_consistent(machine, "0.2.0", acknowledged)
