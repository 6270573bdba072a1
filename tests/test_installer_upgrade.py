"""The shell installer over an existing install, run for real under dash, bash
and busybox sh against a loopback HTTP server: two builds of the demo app
(0.1.0 at schema level 1, 0.2.0 at level 3), real SQLite data, a migration
made to fail (TALLY_FAIL_MIGRATION), a real kill -9 half-way through, the
pinned policy in the receipt, and a process holding the database open."""

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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_TARGET, demo_contract
from test_installers import (
    HOST_ARCHIVE,
    HOST_TOP,
    SHELLS,
    TOP_DIR,
    crafted_release,
    error_line,
    member,
    run_installer,
    serve,
)
from test_update import build_version

from toolchain import REPO_ROOT
from toolchain.config.settings import expand_data_pattern, load_settings
from toolchain.errors import ConfigError
from toolchain.release.folder import package_release
from toolchain.release.installers import InstallerUpdate, ReleaseFile, render_installers
from toolchain.release.signing import SecretKey, generate

DATA_PATTERN = "$XDG_DATA_HOME/tally/tally.db"
BACKUP = ("tally", "backup", "--to", "{dir}")


@dataclass(frozen=True)
class Releases:
    root: Path  # served: one folder per release below
    url: str
    key: SecretKey

    def folder(self, name: str) -> Path:
        return self.root / name


def packaged(built: Path, folder: Path, key: SecretKey | None, update: InstallerUpdate) -> None:
    shutil.copytree(built, folder, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
    package_release(folder, key, "", REPO_ROOT, schema_command=demo_contract()["schema_command"], update=update)


_HOST_BUILDS: dict[str, tuple[Path, Path]] = {}


def host_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo at 0.1.0 (schema level 1) and 0.2.0 (level 3) for this host, built once per test
    process for every installer module."""
    if "host" not in _HOST_BUILDS:
        builds = tmp_path_factory.mktemp("builds")
        saved = os.environ.get("CARGO_TARGET_DIR")
        os.environ["CARGO_TARGET_DIR"] = str(SHARED_TARGET)
        try:
            old = build_version(builds, "0.1.0", "1", ("x86_64-unknown-linux-gnu",))
            new = build_version(builds, "0.2.0", "3", ("x86_64-unknown-linux-gnu",))
        finally:
            os.environ.pop("CARGO_TARGET_DIR", None)
            if saved is not None:
                os.environ["CARGO_TARGET_DIR"] = saved
        _HOST_BUILDS["host"] = (old, new)
    return _HOST_BUILDS["host"]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    yield from served_releases(tmp_path_factory)


def served_releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    """The demo's releases, packaged and served (for a module's `releases` fixture)."""
    old, new = host_builds(tmp_path_factory)
    root = tmp_path_factory.mktemp("served")
    key, other = generate(), generate()
    checks = demo_contract()["update"].checks
    with_backup = InstallerUpdate((DATA_PATTERN,), BACKUP, checks=checks)
    packaged(old, root / "0.1.0", key, with_backup)
    packaged(new, root / "0.2.0", key, with_backup)
    # Without a backup command: the installer falls back to sqlite3's .backup, or a plain copy.
    packaged(new, root / "0.2.0-no-backup-command", key, InstallerUpdate((DATA_PATTERN,), checks=checks))
    packaged(new, root / "0.2.0-other-key", other, with_backup)
    packaged(new, root / "0.2.0-unsigned", None, with_backup)
    # Signed by another key than the one its installer carries.
    shutil.copytree(root / "0.2.0", root / "0.2.0-bad-signature")
    shutil.copy(root / "0.2.0-other-key" / f"{HOST_ARCHIVE}.minisig", root / "0.2.0-bad-signature")
    with _served(root) as url:
        yield Releases(root, url, key)


_served = contextlib.contextmanager(serve)


@dataclass
class Machine:
    """One user's machine: HOME, the install folder, the data, the receipt folder."""

    home: Path
    releases: Releases
    shell: str

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "tally"

    @property
    def database(self) -> Path:
        return self.home / "data" / "tally" / "tally.db"

    @property
    def config(self) -> Path:
        return self.home / ".config" / "tally"

    def env(self, extra: dict[str, str] | None = None, path: str | None = None) -> dict[str, str]:
        return {
            "PATH": path or os.environ["PATH"],
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / "data"),
            "TMPDIR": str(self.home.parent / "installer-tmp"),
            "TALLY_INSTALL_DIR": str(self.home / "bin"),
            "TALLY_NO_MODIFY_PATH": "1",
            **(extra or {}),
        }

    def install(
        self, release: str, *args: str, env: dict[str, str] | None = None, path: str | None = None, alone: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run an installer to the end (`alone`: no other one holds the lock meanwhile)."""
        (self.home.parent / "installer-tmp").mkdir(parents=True, exist_ok=True)
        full_env = self.env({"TALLY_DOWNLOAD_URL": f"{self.releases.url}/{release}", **(env or {})}, path)
        command = [*SHELLS[self.shell], str(self.releases.folder(release) / "tally-installer.sh"), *args]
        result = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=180, check=False)
        assert not any((self.home.parent / "installer-tmp").iterdir()), "the installer left its temporary folder"
        assert not alone or not (self.config / "install.lock").exists(), "the installer left its lock behind"
        return result

    def start(self, release: str, env: dict[str, str]) -> subprocess.Popen[str]:
        """An installer in the background (its own temporary folder: a killed one leaves it)."""
        (self.home.parent / "killed-tmp").mkdir(exist_ok=True)
        full_env = self.env(
            {"TALLY_DOWNLOAD_URL": f"{self.releases.url}/{release}", **env,
             "TMPDIR": str(self.home.parent / "killed-tmp")}
        )  # fmt: skip
        command = [*SHELLS[self.shell], str(self.releases.folder(release) / "tally-installer.sh")]
        return subprocess.Popen(
            command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )

    def tally(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, *args], env=self.env(env), capture_output=True, text=True, check=False)

    def dump(self) -> list[str]:
        # Closed at once: the installer refuses while any process (this one too) holds the database.
        # Read-write, so that closing the last connection removes the -wal and -shm files again.
        with contextlib.closing(sqlite3.connect(self.database)) as connection:
            return list(connection.iterdump())

    def digest(self) -> str:
        return hashlib.sha256(self.binary.read_bytes()).hexdigest()

    def receipt(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.config / "install-receipt.json").read_text())
        return loaded

    def with_data(self) -> Machine:
        """0.1.0 installed, with two counters in its database."""
        result = self.install("0.1.0")
        assert result.returncode == 0, result.stderr
        assert self.tally("add", "apples", "5").returncode == 0
        assert self.tally("add", "pears").returncode == 0
        return self


@pytest.fixture
def machine(releases: Releases, tmp_path: Path, request: pytest.FixtureRequest) -> Machine:
    return new_machine(releases, tmp_path, request)


def new_machine(releases: Releases, tmp_path: Path, request: pytest.FixtureRequest) -> Machine:
    """A fresh machine, under the shell a test's parameter names (dash by default)."""
    shell = getattr(request, "param", "dash")
    (tmp_path / "home").mkdir()
    return Machine(tmp_path / "home", releases, shell)


def path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH holding links to every tool of this one except `tools`."""
    folder = tmp_path / "path-without"
    folder.mkdir()
    for entry in map(Path, os.environ["PATH"].split(os.pathsep)):
        for tool in entry.iterdir() if entry.is_dir() else ():
            if tool.name not in tools and not (folder / tool.name).exists() and os.access(tool, os.X_OK):
                (folder / tool.name).symlink_to(tool)
    return str(folder)


def assert_untouched(machine: Machine, digest: str, dump: list[str], version: str = "0.1.0") -> None:
    assert machine.digest() == digest, "the binary is byte for byte the one before"
    assert machine.dump() == dump, "the database holds the same rows and schema"
    assert machine.receipt()["version"] == version
    assert not (machine.config / "upgrade-journal").exists()
    assert not (machine.config / "snapshot").exists()
    assert sorted(p.name for p in machine.binary.parent.iterdir()) == ["tally"]
    assert not list(machine.database.parent.glob("tally.db?*")), "no -wal, -shm or staging file beside the database"


SNAPSHOTS = {  # how: the release, the tools taken off PATH, what -v says
    "backup-command": ("0.2.0", (), "the app's backup command"),
    "sqlite3": ("0.2.0-no-backup-command", (), "sqlite3 .backup"),
    "plain-copy": ("0.2.0-no-backup-command", ("sqlite3",), "a plain copy (nothing holds it open)"),
}


@pytest.mark.parametrize("machine", sorted(SHELLS), indirect=True)
@pytest.mark.parametrize("snapshot", sorted(SNAPSHOTS))
def test_a_failed_migration_restores_then_a_clean_upgrade_keeps_the_data(
    machine: Machine, tmp_path: Path, snapshot: str
) -> None:
    release, missing, how = SNAPSHOTS[snapshot]
    path = path_without(tmp_path, *missing) if missing else None
    machine.with_data()
    digest, dump = machine.digest(), machine.dump()

    failed = machine.install(release, "-v", env={"TALLY_FAIL_MIGRATION": "3"}, path=path)
    assert failed.returncode != 0
    assert f"debug: snapshot of {machine.database}: {how}\n" in failed.stderr
    line = error_line(failed)
    assert line.startswith("ERROR: upgrade of tally from 0.1.0 to 0.2.0 failed ('tally migrate' failed); "), line
    assert "restored tally 0.1.0 and its 1 data file as they were" in line, line
    assert "migration 3 failed" in failed.stderr, "the app's own words are shown"
    assert_untouched(machine, digest, dump)

    clean = machine.install(release, path=path)
    assert clean.returncode == 0, clean.stderr
    assert "tally upgraded from 0.1.0 to 0.2.0" in clean.stdout
    assert machine.tally("--version").stdout == "tally 0.2.0\n"
    listed = machine.tally("list").stdout
    assert "apples" in listed and "5" in listed and "pears" in listed
    assert machine.tally("schema").returncode == 0 and machine.receipt()["version"] == "0.2.0"
    # The previous version is kept for a rollback by hand.
    assert hashlib.sha256((machine.config / "previous" / "bin" / "tally").read_bytes()).hexdigest() == digest
    assert not (machine.config / "upgrade-journal").exists()


@pytest.mark.parametrize("machine", sorted(SHELLS), indirect=True)
def test_an_installer_killed_mid_swap_is_repaired_by_the_next_run(machine: Machine) -> None:
    machine.with_data()
    digest, dump = machine.digest(), machine.dump()
    paused = machine.start("0.2.0", {"TALLY_INSTALLER_TEST_PAUSE_AT": "migrate"})
    try:
        deadline = time.monotonic() + 60
        while not (machine.config / "paused-at-migrate").exists():
            assert paused.poll() is None, paused.communicate()
            assert time.monotonic() < deadline, "the installer never reached the swap"
            time.sleep(0.1)
        # Another installer meanwhile is refused: the lock is held.
        second = machine.install("0.2.0", alone=False)
        assert second.returncode == 1
        assert error_line(second).startswith(f"ERROR: another tally installer (pid {paused.pid}) is running")
    finally:
        os.killpg(paused.pid, signal.SIGKILL)
        paused.communicate()
    (machine.config / "paused-at-migrate").unlink()
    assert machine.tally("--version").stdout == "tally 0.2.0\n", "killed with the new binary in place"
    assert (machine.config / "upgrade-journal").exists() and (machine.config / "install.lock").exists()

    # The next run (made to fail, so that what it restores is what the repair left) repairs first.
    again = machine.install("0.2.0", env={"TALLY_FAIL_MIGRATION": "3"})
    assert again.returncode == 1
    repaired = "repaired an interrupted upgrade of tally from 0.1.0 to 0.2.0: restored 0.1.0 and its 1 data file"
    assert repaired in again.stdout
    assert_untouched(machine, digest, dump)

    clean = machine.install("0.2.0")
    assert clean.returncode == 0, clean.stderr
    assert machine.tally("--version").stdout == "tally 0.2.0\n" and "apples" in machine.tally("list").stdout


@pytest.mark.parametrize("machine", sorted(SHELLS), indirect=True)
def test_a_downgrade_is_refused_unless_allowed(machine: Machine) -> None:
    assert machine.install("0.2.0").returncode == 0
    digest = machine.digest()
    refused = machine.install("0.1.0")
    assert refused.returncode == 1
    assert error_line(refused) == (
        "ERROR: tally 0.2.0 is installed and 0.1.0 is older: refusing to downgrade; pass --allow-downgrade "
        "(or set TALLY_ALLOW_DOWNGRADE=1) to do it anyway; nothing was installed"
    )
    assert machine.digest() == digest and machine.receipt()["version"] == "0.2.0"

    allowed = machine.install("0.1.0", env={"TALLY_ALLOW_DOWNGRADE": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert machine.tally("--version").stdout == "tally 0.1.0\n" and machine.receipt()["version"] == "0.1.0"
    assert machine.install("0.2.0").returncode == 0
    machine.database.unlink()  # 0.1.0 cannot open a database at 0.2.0's schema level: this one's migrate refuses
    flag = machine.install("0.1.0", "--allow-downgrade")
    assert flag.returncode == 0, flag.stderr
    assert machine.receipt()["policy"] == {  # the env var and flag are for one run: not pinned
        "public_key": machine.releases.key.public_key().render().splitlines()[1],
        "channel": f"{machine.releases.url}/0.2.0",
        "allow_downgrade": False,
        "require_signature": False,
    }


def test_the_policy_is_pinned_at_the_first_install(machine: Machine, tmp_path: Path) -> None:
    first = machine.install("0.1.0", env={"TALLY_REQUIRE_SIGNATURE": "1"})
    assert first.returncode == 0, first.stderr
    receipt = machine.receipt()
    key_line = machine.releases.key.public_key().render().splitlines()[1]
    assert receipt["policy"] == {
        "public_key": key_line,
        "channel": f"{machine.releases.url}/0.1.0",
        "allow_downgrade": False,
        "require_signature": True,
    }
    assert receipt["data_files"] == [str(machine.database)]
    # Installed by root: the receipt is root's, readable by the app's user, whatever the umask.
    mode = (machine.config / "install-receipt.json").stat()
    assert (mode.st_uid, mode.st_mode & 0o777) == (0, 0o644)
    digest = machine.digest()
    no_minisign = path_without(tmp_path, "minisign")

    refusals = {
        # The environment cannot loosen what was pinned.
        "0.2.0": ({"TALLY_REQUIRE_SIGNATURE": "0"}, no_minisign,
                  "ERROR: a signature is required but minisign is not installed: install minisign and run this again"),
        "0.2.0-other-key": ({}, None, "ERROR: tally 0.2.0 is signed with a different key ("),
        "0.2.0-unsigned": ({}, None, "ERROR: tally 0.2.0 is signed with a different key (none)"),
        "0.2.0-bad-signature": ({}, None, f"ERROR: bad signature for {HOST_ARCHIVE}: it was not signed by the key"),
    }  # fmt: skip
    for release, (env, path, message) in refusals.items():
        result = machine.install(release, env=env, path=path)
        assert result.returncode == 1, (release, result.stderr)
        assert error_line(result).startswith(message), (release, result.stderr)
        assert machine.digest() == digest and machine.receipt() == receipt, release

    upgraded = machine.install("0.2.0")
    assert upgraded.returncode == 0, upgraded.stderr
    assert machine.receipt()["policy"] == receipt["policy"], "an upgrade keeps the pinned policy"


def test_the_environment_can_tighten_the_policy(machine: Machine, tmp_path: Path) -> None:
    assert machine.install("0.1.0").returncode == 0
    assert machine.receipt()["policy"]["require_signature"] is False  # type: ignore[index]
    result = machine.install("0.2.0", env={"TALLY_REQUIRE_SIGNATURE": "1"}, path=path_without(tmp_path, "minisign"))
    assert result.returncode == 1
    assert error_line(result).startswith("ERROR: a signature is required but minisign is not installed")
    # Without minisign and nothing required, the baked SHA-256 is the check; without
    # TALLY_INSTALL_DIR the upgrade goes where the receipt says the install is.
    upgraded = machine.install("0.2.0", path=str(tmp_path / "path-without"), env={"TALLY_INSTALL_DIR": ""})
    assert upgraded.returncode == 0, upgraded.stderr
    assert machine.tally("--version").stdout == "tally 0.2.0\n" and not (machine.home / ".local").exists()


HOLD = "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); c.execute('select 1'); print(1, flush=True); "


@pytest.mark.parametrize("machine", sorted(SHELLS), indirect=True)
def test_a_process_holding_the_database_is_waited_for_or_refused(machine: Machine) -> None:
    machine.with_data()
    digest, dump = machine.digest(), machine.dump()
    with subprocess.Popen(
        [sys.executable, "-c", HOLD + "time.sleep(60)", str(machine.database)], stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline()
        refused = machine.install("0.2.0")
        holder.kill()
    assert refused.returncode == 1
    assert error_line(refused) == (
        f"ERROR: tally is running or its data is open (pid {holder.pid}): close it and run this again, "
        "or pass --wait; nothing was changed"
    )
    assert_untouched(machine, digest, dump)

    with subprocess.Popen(
        [sys.executable, "-c", HOLD + "time.sleep(3)", str(machine.database)], stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline()
        waited = machine.install("0.2.0", "--wait=30")
    assert waited.returncode == 0, waited.stderr
    assert "waiting up to 30s for tally" in waited.stdout
    assert machine.tally("--version").stdout == "tally 0.2.0\n" and "apples" in machine.tally("list").stdout


def test_the_manifest_and_installers_carry_the_data_files(releases: Releases) -> None:
    manifest = json.loads((releases.folder("0.2.0") / "manifest.json").read_text())
    assert manifest["data_files"] == [DATA_PATTERN]
    sh = (releases.folder("0.2.0") / "tally-installer.sh").read_text()
    assert f"DATA_FILES='{DATA_PATTERN}'" in sh and "BACKUP_COMMAND='tally\nbackup\n--to\n{dir}'" in sh


PATTERNS = (
    "~/notes/a b.db",  # a space in the path
    "$HOME/.tally/home.db",
    "${XDG_DATA_HOME}/tally/tally.db",
    "%LOCALAPPDATA%\\tally\\tally.db",  # Windows only: the shell installer leaves it out
    "/srv/tally/shared.db",
    "relative/left-out.db",  # no place on a user's machine: left out, with a warning
)


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("xdg", [True, False])
def test_data_file_patterns_are_placed_on_the_machine(tmp_path: Path, shell: str, xdg: bool) -> None:
    folder = crafted_release(tmp_path / "crafted", [TOP_DIR, member(f"{HOST_TOP}/tally")])
    archive = folder / HOST_ARCHIVE
    entry = ReleaseFile(HOST_ARCHIVE, "archive", "tally", "x86_64-unknown-linux-gnu", archive.stat().st_size,
                        hashlib.sha256(archive.read_bytes()).hexdigest(), ("tally",))  # fmt: skip
    rendered = render_installers("tally", "0.1.0", [entry], "", InstallerUpdate(PATTERNS))
    (folder / "tally-installer.sh").write_text(rendered["tally-installer.sh"])
    home = tmp_path / "home"
    env: dict[str, str | None] = {"XDG_DATA_HOME": str(tmp_path / "xdg") if xdg else None}
    with _served(folder) as url:
        result = run_installer(folder, shell, home, url, "--no-modify-path", env=env)
    assert result.returncode == 0, result.stderr
    receipt = json.loads((home / ".config" / "tally" / "install-receipt.json").read_text())
    data_home = tmp_path / "xdg" if xdg else home / ".local" / "share"
    assert receipt["data_files"] == [
        f"{home}/notes/a b.db",
        f"{home}/.tally/home.db",
        f"{data_home}/tally/tally.db",
        "/srv/tally/shared.db",
    ]


def test_the_python_side_places_patterns_as_the_installer_does() -> None:
    env = {"HOME": "/home/u", "XDG_DATA_HOME": "/data"}
    assert [expand_data_pattern(p, env) for p in PATTERNS] == [
        "/home/u/notes/a b.db", "/home/u/.tally/home.db", "/data/tally/tally.db", None, "/srv/tally/shared.db",
        "relative/left-out.db",  # invoke update: relative to the project, as before
    ]  # fmt: skip
    assert expand_data_pattern("$XDG_DATA_HOME/t.db", {"HOME": "/home/u"}) == "/home/u/.local/share/t.db"
    assert InstallerUpdate(PATTERNS).installer_patterns() == (
        "~/notes/a b.db", "$HOME/.tally/home.db", "$XDG_DATA_HOME/tally/tally.db", "%LOCALAPPDATA%\\tally\\tally.db",
        "/srv/tally/shared.db",
    )  # fmt: skip


def test_update_settings_are_read_from_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toolchain.toml").write_text(
        '[update]\ndata-files = ["~/app.db", "local.db"]\nbackup-command = ["app", "backup", "--to", "{dir}"]\n'
    )
    monkeypatch.setenv("HOME", "/home/u")
    settings = load_settings(tmp_path)
    assert settings.update.backup_command == ("app", "backup", "--to", "{dir}")
    assert settings.update.data_files == ("~/app.db", "local.db")
    assert settings.update_data_files == (Path("/home/u/app.db"), tmp_path / "local.db")
    (tmp_path / "toolchain.toml").write_text('[update]\nbackup-command = "app backup"\n')
    with pytest.raises(ConfigError, match="backup-command"):
        load_settings(tmp_path)
