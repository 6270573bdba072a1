"""Papercuts of issue 26, each in real shells or a real install: a full disk leaves nothing
behind, a receipt rewritten as one-line JSON is read, prerelease versions are ordered as
semver orders them, --public-key takes the key itself, and the demo ignores an invalid
XDG_DATA_HOME as the installer does."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import on_ci
from test_installer_crash import killed_at
from test_installer_upgrade import Machine, Releases, new_machine, served_releases
from test_installers import SHELLS, error_line

from toolchain.release.installers import InstallerUpdate, render_installers
from toolchain.release.signing import generate, parse_public_key, public_key_text


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Releases]:
    yield from served_releases(tmp_path_factory)


@pytest.fixture
def machine(releases: Releases, tmp_path: Path, request: pytest.FixtureRequest) -> Machine:
    return new_machine(releases, tmp_path, request)


def installer_function(name: str) -> str:
    """One function of the rendered sh installer, to run on its own in a real shell."""
    text = render_installers("tally", "1.0.0", [], "", InstallerUpdate())["tally-installer.sh"]
    found = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.M | re.S)
    assert found, name
    return found.group(0)


# Each pair is (older, newer), in the order of the semver 2.0.0 specification's example and more.
SEMVER = [
    ("1.0.0-alpha", "1.0.0-alpha.1"),
    ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
    ("1.0.0-alpha.beta", "1.0.0-beta"),
    ("1.0.0-beta", "1.0.0-beta.2"),
    ("1.0.0-beta.2", "1.0.0-beta.11"),
    ("1.0.0-beta.11", "1.0.0-rc.1"),
    ("1.0.0-rc.1", "1.0.0"),
    ("1.0.0-alpha.9", "1.0.0-alpha.10"),
    ("0.9.0", "0.10.0"),
    ("1.0.0", "1.0.1-alpha"),
]


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_prerelease_versions_are_ordered_as_semver_orders_them(shell: str) -> None:
    script = installer_function("version_older") + "\n".join(
        f'version_older "{a}" "{b}" && printf "%s" y || printf "%s" n; version_older "{b}" "{a}" && printf "%s\\n" y '
        '|| printf "%s\\n" n'
        for a, b in [*SEMVER, ("1.0.0+build.1", "1.0.0+build.2")]
    )
    out = subprocess.run([*SHELLS[shell], "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["yn"] * len(SEMVER) + ["nn"], "older first, never both; +build is ignored"


ONE_LINE = {"app": "tally", "version": "0.1.0", "install_dir": "/opt/a, b", "binaries": ["tally"],
            "binary_sha256": {"tally": "ab" * 32}, "data_files": [],
            "policy": {"public_key": 'RWQ"x', "channel": "http://h/x", "allow_downgrade": True,
                       "require_signature": False}}  # fmt: skip


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_receipt_reader_takes_one_line_json(shell: str, tmp_path: Path) -> None:
    receipt = tmp_path / "install-receipt.json"
    receipt.write_text(json.dumps(ONE_LINE))
    script = "tab=$(printf '\\t')\n" + installer_function("json_fields") + f'json_fields "{receipt}"'
    out = subprocess.run([*SHELLS[shell], "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "app\ttally", "version\t0.1.0", "install_dir\t/opt/a, b", "binaries[]\ttally",
        f"binary_sha256.tally\t{'ab' * 32}",
        'policy.public_key\tRWQ"x', "policy.channel\thttp://h/x", "policy.allow_downgrade\ttrue",
        "policy.require_signature\tfalse",
    ]  # fmt: skip


def test_an_upgrade_reads_a_receipt_rewritten_on_one_line(machine: Machine) -> None:
    machine.with_data()
    path = machine.config / "install-receipt.json"
    pinned = machine.receipt()
    path.write_text(json.dumps(pinned, separators=(",", ":")))
    upgraded = machine.install("0.2.0")
    assert upgraded.returncode == 0, upgraded.stderr
    assert machine.receipt()["policy"] == pinned["policy"], "the pinned policy was read from the one line"
    assert machine.receipt()["version"] == "0.2.0"


@contextlib.contextmanager
def tmpfs(point: Path, size: int) -> Iterator[None]:
    """A real tmpfs of `size` bytes mounted at `point` (root only), unmounted afterwards."""
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        # Mounting needs root; CI runs as root, so there the disk-full test must run.
        assert not on_ci(), f"cannot mount a tmpfs: {done.stderr.decode().strip()}"
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def used(point: Path) -> int:
    stat = os.statvfs(point)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def test_a_full_disk_leaves_nothing_behind(machine: Machine, tmp_path: Path) -> None:
    """The receipt's folder on a tmpfs just too small for what the upgrade writes there before
    its journal (found by a run paused right after it): each refusal leaves the install as it
    was, and no journal or snapshot behind."""
    machine.with_data()
    saved = tmp_path / "config-copy"
    shutil.copytree(machine.config.parent, saved)
    shutil.rmtree(machine.config.parent)
    dump = machine.dump()
    with tmpfs(machine.config.parent, 64 << 20):
        shutil.copytree(saved, machine.config.parent, dirs_exist_ok=True)
        killed_at(machine, "swap")  # the snapshot and the journal written, nothing swapped
        needed = used(machine.config.parent)
    assert machine.tally("--version").stdout == "tally 0.1.0\n"
    for pages_short in (1, 2, 3, 4, 300):  # the journal, the new receipt, the new binary's copy, ...
        with tmpfs(machine.config.parent, needed - pages_short * 4096):
            shutil.copytree(saved, machine.config.parent, dirs_exist_ok=True)
            result = machine.install("0.2.0")
            assert result.returncode == 1, (pages_short, result.stdout)
            assert error_line(result).endswith("nothing was changed"), result.stderr
            left = sorted(p.name for p in machine.config.iterdir())
            assert left == ["install-receipt.json"], f"left behind {pages_short} pages short: {left}"
            assert machine.receipt()["version"] == "0.1.0" and machine.tally("--version").stdout == "tally 0.1.0\n"
            assert machine.dump() == dump


def test_public_key_takes_the_key_or_a_file(tmp_path: Path) -> None:
    key = generate().public_key()
    rendered = key.render()
    line = rendered.splitlines()[1]
    (tmp_path / "release.pub").write_text(rendered)
    for given in (line, rendered, str(tmp_path / "release.pub")):
        assert parse_public_key(public_key_text(given, None)) == key, given
    with pytest.raises(Exception, match="cannot read public key"):
        public_key_text(str(tmp_path / "missing.pub"), None)


def test_the_demo_ignores_an_invalid_xdg_data_home(machine: Machine, tmp_path: Path) -> None:
    """Issue 26, item 5: an empty or relative XDG_DATA_HOME is ignored by tally and by the
    installer alike, so the upgrade checks migrate the database the snapshot covered."""
    work = tmp_path / "work"
    work.mkdir()
    home_db = machine.home / ".local" / "share" / "tally" / "tally.db"
    assert machine.install("0.1.0", env={"XDG_DATA_HOME": ""}).returncode == 0
    for value in ("", "relative"):
        env = machine.env({"XDG_DATA_HOME": value})
        done = subprocess.run([machine.binary, "add", f"in-{value or 'empty'}"], env=env, cwd=work,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert home_db.is_file() and not list(work.rglob("*.db")), "the data is in ~/.local/share, not the folder"
    upgraded = machine.install("0.2.0", env={"XDG_DATA_HOME": "relative"})
    assert upgraded.returncode == 0, upgraded.stderr
    assert "the previous version and its 1 data file are in" in upgraded.stdout
    with contextlib.closing(sqlite3.connect(home_db)) as connection:
        assert connection.execute("select max(version) from schema_version").fetchone() == (3,)
    assert not list(work.rglob("*.db")) and not (Path.cwd() / "relative").exists(), "no stray database"


def test_the_demo_declares_its_database_and_messages_count_it(tmp_path: Path) -> None:
    from conftest import demo_contract

    update = demo_contract()["update"]
    assert update.data_files == ("$XDG_DATA_HOME/tally/tally.db",)
    assert update.backup_command == ("tally", "backup", "--to", "{dir}")
    none = render_installers("app", "1.0.0", [], "", InstallerUpdate())["app-installer.sh"]
    script = none.replace('\nmain "$@"', "\ndata_text")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["sh", "-c", script, "sh"], capture_output=True, text=True, env=env, check=True).stdout
    assert out == "no data files (the release declares none)\n"
