"""Downgrade and freeze protection, the pinned policy, and a running app.

Real builds of the demo app (0.1.0 and 0.2.0, tests/test_update.py's
helpers), each packaged and signed with the same key, so the older one is a
validly signed release; real latest.json files over a loopback HTTP server;
a real non-root user (nobody, through setpriv) editing the receipt; a real
running tally and a real sqlite3 writer holding the database."""

from __future__ import annotations

import functools
import gc
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import demo_contract, run_invoke
from test_update import Install, built_versions, make_install

from toolchain import REPO_ROOT
from toolchain.errors import UpdateError, UsageError
from toolchain.release.folder import package_release
from toolchain.release.latest import LatestFile, parse_latest, write_latest
from toolchain.release.signing import SecretKey, generate, sign_file
from toolchain.update.updater import update

HOST = "x86_64-unknown-linux-gnu"


@dataclass(frozen=True)
class Releases:
    old: Path  # signed release folder of 0.1.0
    new: Path  # signed release folder of 0.2.0
    key: SecretKey
    public_key: str
    key_file: Path
    old_binary: Path
    new_binary: Path

    def archive(self, folder: Path) -> Path:
        return folder / f"tally-{HOST}.tar.xz"


def _signed_copy(built: Path, into: Path, key: SecretKey) -> Path:
    shutil.copytree(built, into, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
    package_release(into, key, "", REPO_ROOT, **demo_contract())
    return into


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    old, new = built_versions(tmp_path_factory)
    root = tmp_path_factory.mktemp("signed")
    key = generate()
    key_file = root / "release.pub"
    key_file.write_text(key.public_key().render())

    def binary(folder: Path) -> Path:
        return Path(json.loads((folder / "build-record.json").read_text())["targets"][HOST]["binaries"][0]["path"])

    return Releases(_signed_copy(old, root / "0.1.0", key), _signed_copy(new, root / "0.2.0", key), key,
                    key.public_key().render(), key_file, binary(old), binary(new))  # fmt: skip


@pytest.fixture
def old_install(releases: Releases, tmp_path: Path) -> Install:
    """0.1.0 installed with data (make_install wants a test_update.Release: it only reads old_binary)."""
    return make_install(releases, tmp_path)  # type: ignore[arg-type]


@pytest.fixture
def new_install(releases: Releases, tmp_path: Path) -> Install:
    """0.2.0 installed, no data yet."""
    (tmp_path / "bin").mkdir()
    binary = tmp_path / "bin" / "tally"
    shutil.copy2(releases.new_binary, binary)
    return Install(binary, tmp_path / "data", tmp_path / "data" / "tally.db", {"TALLY_HOME": str(tmp_path / "data")})


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The error lines (progress lines aside): a refusal is exactly one, and it comes last."""
    lines = result.stderr.strip().splitlines()
    found = [line for line in lines if line.startswith("error:")]
    assert not found or lines[-1] == found[-1], lines
    return found


def untouched(install: Install, digest: str) -> bool:
    return install.digest() == digest and not (install.binary.parent / ".tally-update").exists()


# --- 2. Downgrade -------------------------------------------------------------------------------


def test_a_validly_signed_older_release_is_refused_unless_allowed(releases: Releases, new_install: Install) -> None:
    before = new_install.digest()
    archive = str(releases.archive(releases.old))
    with pytest.raises(UpdateError, match=r"0\.1\.0 is older than the installed tally 0\.2\.0: refusing a downgrade"):
        update(new_install.binary, archive, releases.public_key, [], env=new_install.env)
    assert untouched(new_install, before)
    result = update(new_install.binary, archive, releases.public_key, [], env=new_install.env, allow_downgrade=True)
    assert result.ok and new_install.run("--version").stdout.strip() == "tally 0.1.0"


def test_downgrade_refusal_through_the_cli_is_one_line(releases: Releases, new_install: Install) -> None:
    args = ["update", "--binary", str(new_install.binary), "--public-key", str(releases.key_file)]
    result = run_invoke(*args, "--artifact", str(releases.archive(releases.old)), env=new_install.env)
    assert result.returncode == 13, result.stderr
    lines = errors(result)
    assert len(lines) == 1 and "refusing a downgrade" in lines[0] and "--allow-downgrade" in lines[0], lines
    allowed = run_invoke(*args, "--artifact", str(releases.archive(releases.old)), "--allow-downgrade",
                         env=new_install.env)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert new_install.run("--version").stdout.strip() == "tally 0.1.0"


# --- 2. Signed latest.json with expires -------------------------------------------------------


def test_the_release_folder_has_a_signed_latest_json_that_expires(releases: Releases) -> None:
    latest = parse_latest((releases.new / "latest.json").read_bytes())
    assert (latest.app, latest.version) == ("tally", "0.2.0")
    assert latest.expires - latest.released == timedelta(days=30)
    assert {f.target for f in latest.files} == {HOST, "aarch64-unknown-linux-gnu"}
    assert "latest.json" in (releases.new / "sha256.sum").read_text()
    minisign = shutil.which("minisign")
    if minisign:  # the real tool agrees, where it is installed
        check = [minisign, "-V", "-p", str(releases.key_file), "-m", str(releases.new / "latest.json")]
        assert subprocess.run(check, capture_output=True, check=False).returncode == 0


def test_metadata_days_setting_sets_expires(releases: Releases, tmp_path: Path) -> None:
    folder = tmp_path / "release"
    shutil.copytree(releases.new, folder, ignore=shutil.ignore_patterns("*.minisig", "manifest.json", "sha256.sum"))
    config = tmp_path / "toolchain.toml"
    config.write_text("[update]\nmetadata-days = 10\n")
    result = run_invoke("package", "--out-dir", str(folder), env={"TOOLCHAIN_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    latest = parse_latest((folder / "latest.json").read_bytes())
    assert latest.expires - latest.released == timedelta(days=10)
    config.write_text("[update]\nmetadata-days = 0\n")
    refused = run_invoke("package", "--out-dir", str(folder), env={"TOOLCHAIN_CONFIG": str(config)})
    assert refused.returncode == 3 and "metadata-days" in refused.stderr, refused.stderr


@pytest.fixture
def served(releases: Releases, tmp_path: Path) -> Iterator[str]:
    """S3's layout over loopback HTTP: {app}/latest.json(.minisig) and {app}/{version}/ files."""
    root = tmp_path / "www" / "tally"
    shutil.copytree(releases.new, root / "0.2.0")
    for name in ("latest.json", "latest.json.minisig"):
        shutil.copy2(releases.new / name, root / name)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tally/latest.json"
    server.shutdown()
    server.server_close()


def test_update_from_a_channel_over_http(releases: Releases, old_install: Install, served: str) -> None:
    result = update(old_install.binary, "", releases.public_key, [old_install.database], env=old_install.env,
                    channel=served)  # fmt: skip
    assert result.ok and result.new_version == "0.2.0"
    assert old_install.run("list").stdout == "apples = 5\npears = 1\n"


def test_update_from_a_release_folders_latest_json_through_the_cli(releases: Releases, old_install: Install) -> None:
    result = run_invoke("update", "--binary", str(old_install.binary), "--channel", str(releases.new / "latest.json"),
                        "--public-key", str(releases.key_file), "--data", str(old_install.database),
                        env=old_install.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert old_install.run("--version").stdout.strip() == "tally 0.2.0"


def _channel_copy(releases: Releases, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(releases.new, folder)
    return folder / "latest.json"


def _rewrite(pointer: Path, key: SecretKey | None, *, now: datetime, days: int = 30) -> None:
    latest = parse_latest(pointer.read_bytes())
    files = [LatestFile(f.name, f.sha256, f.size, f.target, f.binaries) for f in latest.files]
    write_latest(pointer.parent, latest.app, latest.version, files, days, now=now)
    if key is not None:
        sign_file(pointer, key, "file:latest.json")


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        ("expired", r"expired at .*metadata is stale, so the channel may be frozen at an old release"),
        ("unsigned", r"is unsigned \(latest.json.minisig is missing\)"),
        ("tampered", r"latest.json: signature does not match its content"),
        ("other key", r"latest.json.minisig was made by key [0-9A-F]+, not [0-9A-F]+"),
    ],
)
def test_bad_channel_metadata_is_refused(
    releases: Releases, old_install: Install, tmp_path: Path, case: str, refusal: str
) -> None:
    pointer = _channel_copy(releases, tmp_path, "channel")
    before = old_install.digest()
    if case == "expired":  # validly signed, but 31 days old
        _rewrite(pointer, releases.key, now=datetime.now(UTC) - timedelta(days=31))
    elif case == "unsigned":
        pointer.with_name("latest.json.minisig").unlink()
    elif case == "tampered":
        pointer.write_text(pointer.read_text().replace('"version": "0.2.0"', '"version": "0.9.0"'))
    else:  # validly signed, by another key
        _rewrite(pointer, generate(), now=datetime.now(UTC))
    with pytest.raises(UpdateError, match=refusal):
        update(old_install.binary, "", releases.public_key, [old_install.database], env=old_install.env,
               channel=str(pointer))  # fmt: skip
    assert untouched(old_install, before)


def test_a_fresh_signed_channel_naming_an_older_release_is_refused(releases: Releases, new_install: Install) -> None:
    before = new_install.digest()
    with pytest.raises(UpdateError, match=r"0\.1\.0 is older than the installed tally 0\.2\.0: refusing a downgrade"):
        update(new_install.binary, "", releases.public_key, [], env=new_install.env,
               channel=str(releases.old / "latest.json"))  # fmt: skip
    assert untouched(new_install, before)


def test_an_expired_channel_through_the_cli_is_one_line_exit_13(
    releases: Releases, old_install: Install, tmp_path: Path
) -> None:
    pointer = _channel_copy(releases, tmp_path, "channel")
    _rewrite(pointer, releases.key, now=datetime.now(UTC) - timedelta(days=2), days=1)
    result = run_invoke("update", "--binary", str(old_install.binary), "--channel", str(pointer),
                        "--public-key", str(releases.key_file), env=old_install.env)  # fmt: skip
    assert result.returncode == 13
    lines = errors(result)
    assert len(lines) == 1 and "expired at" in lines[0] and "nothing was changed" in lines[0], lines


# --- 3. The pinned policy -------------------------------------------------------------------


@dataclass(frozen=True)
class Pinned:
    install: Install
    receipt: Path
    config_home: Path


def _receipt(install: Install, releases: Releases, config_home: Path, **policy: object) -> Path:
    folder = config_home / "tally"
    folder.mkdir(parents=True, exist_ok=True)
    key_line = releases.public_key.splitlines()[1]  # the installers pin the key's base64 line
    document = {
        "app": "tally",
        "version": "0.2.0",
        "target": HOST,
        "install_dir": str(install.binary.parent),
        "source": "",
        "sha256": "",
        "binaries": ["tally"],
        "data_files": [],
        "policy": {"public_key": key_line, "channel": "", "allow_downgrade": False, "require_signature": True} | policy,
    }
    receipt = folder / "install-receipt.json"
    receipt.write_text(json.dumps(document, indent=2) + "\n")
    receipt.chmod(0o644)
    return receipt


@pytest.fixture
def pinned(releases: Releases, new_install: Install) -> Iterator[Pinned]:
    """0.2.0 installed by root, its receipt (root's, 0644) pinning the release key and no downgrades.
    The config home is outside pytest's private tmp folders, so `nobody` can reach it."""
    config_home = Path(tempfile.mkdtemp(prefix="toolchain-receipt-"))
    config_home.chmod(0o755)
    try:
        yield Pinned(new_install, _receipt(new_install, releases, config_home), config_home)
    finally:
        shutil.rmtree(config_home)


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _loosen_as_nobody(receipt: Path) -> subprocess.CompletedProcess[str]:
    """The app's (non-root) user rewrites the pinned policy to allow downgrades."""
    code = (
        f"import json, pathlib; p = pathlib.Path({str(receipt)!r}); d = json.loads(p.read_text()); "
        "d['policy']['allow_downgrade'] = True; d['policy']['require_signature'] = False; "
        "p.write_text(json.dumps(d))"
    )
    return _as_nobody(code)


def _refused(result: subprocess.CompletedProcess[str], install: Install, before: str, words: str) -> None:
    lines = errors(result)
    assert result.returncode != 0, f"not refused: {result.stdout}{result.stderr}"
    assert len(lines) == 1 and words in lines[0], lines
    assert untouched(install, before)


def test_every_bypass_of_the_pinned_policy_is_refused(releases: Releases, pinned: Pinned, tmp_path: Path) -> None:
    install, receipt = pinned.install, pinned.receipt
    before = install.digest()
    old = str(releases.archive(releases.old))
    base = ["update", "--receipt", str(receipt)]
    env = {**install.env, "XDG_CONFIG_HOME": str(pinned.config_home)}

    # The baseline: the pinned policy refuses the (validly signed) older release.
    _refused(run_invoke(*base, "--artifact", old, env=env), install, before, "refusing a downgrade")
    # Flags: --allow-downgrade against a policy that forbids it; a flag that turns verification off does not exist.
    _refused(run_invoke(*base, "--artifact", old, "--allow-downgrade", env=env), install, before,
             "forbids downgrades")  # fmt: skip
    no_verify = run_invoke(*base, "--artifact", old, "--no-verify", env=env)
    assert no_verify.returncode != 0 and "--no-verify" in no_verify.stderr and untouched(install, before)
    # Environment variables an attacker might guess: none of them is read.
    guesses = {"TALLY_ALLOW_DOWNGRADE": "1", "TOOLCHAIN_ALLOW_DOWNGRADE": "1", "TALLY_REQUIRE_SIGNATURE": "0",
               "TOOLCHAIN_NO_VERIFY": "1", "TOOLCHAIN_INSECURE": "1", "TALLY_NO_VERIFY": "1"}  # fmt: skip
    _refused(run_invoke(*base, "--artifact", old, env={**env, **guesses}), install, before, "refusing a downgrade")

    # A different key: a release signed by another key, offered with that key on the command line...
    forged_key = generate()
    foreign = _signed_copy(releases.new, tmp_path / "forged", forged_key)
    foreign_key = tmp_path / "forged.pub"
    foreign_key.write_text(forged_key.public_key().render())
    forged = str(releases.archive(foreign))
    _refused(run_invoke(*base, "--artifact", forged, "--public-key", str(foreign_key), env=env), install, before,
             "pins key")  # fmt: skip
    # ...or through the project's config ([sign] public-key-file): the pinned key still decides.
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[sign]\npublic-key-file = "{foreign_key}"\n')
    _refused(run_invoke(*base, "--artifact", forged, env={**env, "TOOLCHAIN_CONFIG": str(config)}), install, before,
             "not signed by your key")  # fmt: skip
    # An unsigned release, whatever the environment says about signatures.
    unsigned = tmp_path / "unsigned"
    shutil.copytree(releases.new, unsigned, ignore=shutil.ignore_patterns("*.minisig"))
    _refused(run_invoke(*base, "--artifact", str(releases.archive(unsigned)), env={**env, **guesses}), install,
             before, "tar.xz.minisig is missing")  # fmt: skip

    # A channel other than the pinned one.
    channel = str(releases.new / "latest.json")
    pinned_channel = _receipt(
        install, releases, pinned.config_home, channel="https://releases.example/tally/latest.json"
    )
    _refused(run_invoke(*base, "--channel", channel, env=env), install, before, "is not the channel pinned")
    assert pinned_channel == receipt

    # Hiding the receipt: --binary instead of --receipt, with XDG_CONFIG_HOME pointing elsewhere. The
    # receipt is found in the user's home from the user database (root's ~/.config is swapped for
    # a scratch folder in a private mount namespace, so the machine's own is left alone).
    _receipt(install, releases, pinned.config_home)
    hidden = ["update", "--binary", str(install.binary), "--artifact", old, "--allow-downgrade",
              "--public-key", str(releases.key_file)]  # fmt: skip
    script = 'mount --bind "$1" /root/.config && shift && exec "$@"'
    argv = ["unshare", "-m", "sh", "-c", script, "sh", str(pinned.config_home), sys.executable, "-m", "invoke",
            "--search-root", str(REPO_ROOT), *hidden]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False,
                            env={**os.environ, **install.env, "XDG_CONFIG_HOME": str(tmp_path / "empty")})  # fmt: skip
    _refused(result, install, before, "forbids downgrades")
    # The control: without the pinned receipt, the same command downgrades (so the refusal above was the pin's).
    control = run_invoke(*hidden, env={**install.env, "XDG_CONFIG_HOME": str(tmp_path / "empty")})
    assert control.returncode == 0, control.stderr
    assert install.run("--version").stdout.strip() == "tally 0.1.0"


def test_a_receipt_edited_by_a_non_root_user_is_refused(releases: Releases, pinned: Pinned) -> None:
    install, receipt = pinned.install, pinned.receipt
    before = install.digest()
    old = ["update", "--receipt", str(receipt), "--artifact", str(releases.archive(releases.old)), "--allow-downgrade"]
    # Root's 0644 receipt: the app's user cannot edit it at all.
    denied = _loosen_as_nobody(receipt)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert json.loads(receipt.read_text())["policy"]["allow_downgrade"] is False
    # A receipt left writable by others: nobody edits it, and the updater no longer trusts it.
    receipt.chmod(0o666)
    assert _loosen_as_nobody(receipt).returncode == 0
    assert json.loads(receipt.read_text())["policy"]["allow_downgrade"] is True
    _refused(run_invoke(*old, env=install.env), install, before, "is writable by group or others")
    # A receipt that belongs to the app's user while root owns the install: nobody edits their own file.
    receipt.chmod(0o644)
    os.chown(receipt, 65534, 65534)
    assert _loosen_as_nobody(receipt).returncode == 0
    _refused(run_invoke(*old, env=install.env), install, before, "belongs to nobody but")
    # Also when the folder it sits in is theirs (they could swap the file), and when it is a symlink.
    os.chown(receipt, 0, 0)
    os.chown(receipt.parent, 65534, 65534)
    _refused(run_invoke(*old, env=install.env), install, before, "folder of the install receipt")
    os.chown(receipt.parent, 0, 0)
    link = receipt.with_name("link.json")
    link.symlink_to(receipt)
    _refused(run_invoke(*old[:2], str(link), *old[3:], env=install.env), install, before, "is a symlink")


def test_a_pinned_policy_that_allows_downgrades_lets_the_flag_through(releases: Releases, pinned: Pinned) -> None:
    _receipt(pinned.install, releases, pinned.config_home, allow_downgrade=True)
    result = run_invoke("update", "--receipt", str(pinned.receipt), "--artifact", str(releases.archive(releases.old)),
                        "--allow-downgrade", env=pinned.install.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pinned.install.run("--version").stdout.strip() == "tally 0.1.0"
    assert json.loads(pinned.receipt.read_text())["version"] == "0.1.0"
    assert json.loads(pinned.receipt.read_text())["policy"]["allow_downgrade"] is True  # the pin survives


def test_the_pinned_channel_is_used_when_none_is_given(releases: Releases, old_install: Install) -> None:
    config_home = old_install.binary.parent.parent / "config"
    receipt = _receipt(old_install, releases, config_home, channel=str(releases.new / "latest.json"))
    result = run_invoke("update", "--receipt", str(receipt), "--data", str(old_install.database), env=old_install.env)
    assert result.returncode == 0, result.stderr
    assert old_install.run("--version").stdout.strip() == "tally 0.2.0"


# --- 6. A running app ----------------------------------------------------------------------------

HOLD = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
connection.execute("INSERT INTO counters (name, value) VALUES ('held', 1)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def _writer(database: Path, seconds: float) -> subprocess.Popen[str]:
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(database), str(seconds)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "holding"
    return writer


def test_a_writer_holding_the_database_is_refused_in_one_line(releases: Releases, old_install: Install) -> None:
    before, dump = old_install.digest(), old_install.dump()
    gc.collect()  # dump()'s connection is not closed by its `with`: this process would hold the database too
    writer = _writer(old_install.database, 60)
    try:
        result = run_invoke("update", "--binary", str(old_install.binary), "--artifact",
                            str(releases.archive(releases.new)), "--public-key", str(releases.key_file),
                            "--data", str(old_install.database), env=old_install.env)  # fmt: skip
        _refused(result, old_install, before, f"tally is in use: pid {writer.pid} (python")
        assert "has tally.db open" in result.stderr and "--wait SECONDS" in result.stderr
    finally:
        writer.kill()
        writer.wait()
    assert old_install.dump() == dump


def test_the_running_app_is_refused(releases: Releases, old_install: Install) -> None:
    before = old_install.digest()
    writer = _writer(old_install.database, 60)  # makes tally wait on the lock: a real tally, running
    app = subprocess.Popen([old_install.binary, "add", "plums"], env={**os.environ, **old_install.env})
    try:
        time.sleep(0.3)
        assert app.poll() is None, "tally should be waiting for the database"
        running = rf"tally is in use: pid {app.pid} \(tally\) runs {re.escape(str(old_install.binary))}"
        with pytest.raises(UpdateError, match=running):
            update(old_install.binary, str(releases.archive(releases.new)), releases.public_key, [],
                   env=old_install.env)  # fmt: skip
    finally:
        writer.kill()
        writer.wait()
        app.wait()
    assert untouched(old_install, before)


def test_wait_outlasts_a_writer_that_finishes(releases: Releases, old_install: Install) -> None:
    writer = _writer(old_install.database, 2)
    app = subprocess.Popen([old_install.binary, "add", "plums"], env={**os.environ, **old_install.env})
    started = time.monotonic()
    result = update(old_install.binary, str(releases.archive(releases.new)), releases.public_key,
                    [old_install.database], env=old_install.env, wait=60)  # fmt: skip
    waited = time.monotonic() - started
    assert writer.wait() == 0 and app.wait() == 0
    assert result.ok and waited >= 1.5, waited
    # Both writes happened before the snapshot, so both are in the migrated database.
    assert old_install.run("list").stdout == "apples = 5\nheld = 1\npears = 1\nplums = 1\n"


def test_wait_is_bounded(releases: Releases, old_install: Install) -> None:
    before = old_install.digest()  # taken before the refused updates: they must leave the binary alone
    for bad in (-1, 10**9):
        with pytest.raises(UsageError, match=r"--wait .* is out of range; pass 0 to 86400 seconds"):
            update(old_install.binary, str(releases.archive(releases.new)), releases.public_key, [], wait=bad)
    assert untouched(old_install, before)


def test_a_pinned_download_folder_names_the_channel_the_installer_read(tmp_path: Path) -> None:
    """Installers pin the folder they downloaded from: its channel is S3's pointer above it when
    there is one, else the folder's own latest.json; a pointer is itself."""
    from toolchain.update.channel import channel_pointer

    folder = tmp_path / "tally" / "0.2.0"
    folder.mkdir(parents=True)
    (folder / "latest.json").write_text("{}")
    assert channel_pointer(str(folder)) == f"{folder}/latest.json"
    (folder.parent / "latest.json").write_text("{}")
    assert channel_pointer(str(folder) + "/") == f"{folder.parent}/latest.json"
    assert channel_pointer(f"{folder}/latest.json") == f"{folder}/latest.json"
