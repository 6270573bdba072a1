"""The generated installers, run for real: the shell installer under dash,
bash and busybox sh against a local HTTP server on 127.0.0.1 serving a
packaged release (and against a server that stalls, and serving crafted
archives); the PowerShell installer parsed with tree-sitter (no PowerShell
runtime exists here) and checked structurally: the calls that make it safe
are there, in the right order."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import json
import lzma
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import demo_contract, serving

from toolchain import REPO_ROOT
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.installers import ReleaseFile, render_installers
from toolchain.release.signing import generate

if TYPE_CHECKING:
    from tree_sitter import Node

SHELLS = {
    "dash": [shutil.which("dash") or "/bin/dash"],
    "bash": [shutil.which("bash") or "/bin/bash"],
    "busybox": [shutil.which("busybox") or "/bin/busybox", "sh"],
}
HOST_ARCHIVE = "tally-x86_64-unknown-linux-gnu.tar.xz"
HOST_TOP = HOST_ARCHIVE.removesuffix(".tar.xz")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    package_release(folder, generate(), "", REPO_ROOT, **demo_contract())
    return folder


def serve(folder: Path) -> Iterator[str]:
    with serving(functools.partial(QuietHandler, directory=str(folder))) as url:
        yield url


@pytest.fixture(scope="module")
def server(release: Path) -> Iterator[str]:
    yield from serve(release)


@pytest.fixture
def tampered(release: Path, tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "tampered"
    shutil.copytree(release, folder)
    archive = folder / HOST_ARCHIVE
    archive.write_bytes(archive.read_bytes() + b"extra")
    yield from serve(folder)


def run_installer(
    release: Path,
    shell: str,
    home: Path,
    url: str,
    *args: str,
    env: dict[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the release's installer; `env` adds variables, or removes them with None.

    Its temporary folder goes to `installer-tmp` next to `home` (empty again after
    every run). The whole process group is killed if it runs past `timeout`."""
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TMPDIR": str(home.parent / "installer-tmp"),
        "TALLY_DOWNLOAD_URL": url,
        "TALLY_INSTALL_DIR": str(home / "bin"),
    }
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    home.mkdir(parents=True, exist_ok=True)
    (home.parent / "installer-tmp").mkdir(exist_ok=True)
    command = [*SHELLS[shell], str(release / "tally-installer.sh"), *args]
    with subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"the installer was still running after {timeout}s; stderr: {stderr[-2000:]}")
    assert not any((home.parent / "installer-tmp").iterdir()), "the installer left its temporary folder behind"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def restricted_path(
    tmp_path: Path, leave_out: set[str], fakes: dict[str, str] | None = None, links: dict[str, str] | None = None
) -> str:
    """A PATH of symlinks to the tools the installer uses, minus some, plus fake ones and other links."""
    folder = tmp_path / "restricted-bin"
    folder.mkdir()
    needed = "uname awk mktemp curl wget tar xz mkdir cp chmod mv rm tr sed date cat getconf ldd grep head sh"
    needed += " sleep wc sha256sum shasum openssl ls sort rmdir id"
    for tool in needed.split():
        found = shutil.which(tool)
        if found and tool not in leave_out:
            (folder / tool).symlink_to(found)
    for name, script in (fakes or {}).items():
        (folder / name).write_text(f"#!/bin/sh\n{script}\n")
        (folder / name).chmod(0o755)
    for name, target in (links or {}).items():
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(target)
    return str(folder)


def tree(root: Path) -> set[str]:
    """Every path under root (what a refusal must leave exactly as it was)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_installs_and_writes_a_receipt(release: Path, server: str, tmp_path: Path, shell: str) -> None:
    home = tmp_path / "home"
    result = run_installer(release, shell, home, server)
    assert result.returncode == 0, result.stderr
    binary = home / "bin" / "tally"
    assert subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout == "tally 0.1.0\n"
    receipt = json.loads((home / ".config" / "tally" / "install-receipt.json").read_text())
    assert receipt["version"] == "0.1.0" and receipt["binaries"] == ["tally"]
    assert receipt["install_dir"] == str(home / "bin") and receipt["target"] == "x86_64-unknown-linux-gnu"
    assert receipt["source"] == f"{server}/{HOST_ARCHIVE}"
    assert f'export PATH="{home / "bin"}:$PATH"' in (home / ".profile").read_text()
    assert sorted(p.name for p in (home / "bin").iterdir()) == ["tally"], "no staging files left behind"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_refuses_a_tampered_archive(release: Path, tampered: str, tmp_path: Path, shell: str) -> None:
    home = tmp_path / "home"
    result = run_installer(release, shell, home, tampered)
    assert result.returncode == 1
    assert f"ERROR: checksum mismatch for {HOST_ARCHIVE}" in result.stderr
    assert not (home / "bin").exists()


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_refuses_without_a_hash_tool(release: Path, server: str, tmp_path: Path, shell: str) -> None:
    path = restricted_path(tmp_path, {"sha256sum", "shasum", "openssl"})
    result = run_installer(release, shell, tmp_path / "home", server, env={"PATH": path})
    assert result.returncode == 1
    assert "ERROR: no sha256sum, shasum or openssl found" in result.stderr
    assert not (tmp_path / "home" / "bin").exists()


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_refuses_an_unsupported_platform(release: Path, server: str, tmp_path: Path, shell: str) -> None:
    fake_uname = 'case "$1" in -s) echo Linux ;; -m) echo riscv64 ;; esac'
    path = restricted_path(tmp_path, {"uname"}, {"uname": fake_uname})
    result = run_installer(release, shell, tmp_path / "home", server, env={"PATH": path})
    assert result.returncode == 1
    assert "ERROR: unsupported platform: Linux riscv64 (this release has: " in result.stderr
    assert "x86_64-unknown-linux-gnu" in result.stderr and "windows" not in result.stderr


def test_refuses_an_old_glibc_before_downloading(release: Path, tmp_path: Path) -> None:
    path = restricted_path(tmp_path, {"getconf"}, {"getconf": "echo glibc 2.12"})
    # An unreachable URL: the glibc check must fail first, before any download.
    result = run_installer(release, "dash", tmp_path / "home", "http://127.0.0.1:9", env={"PATH": path})
    assert result.returncode == 1
    assert "ERROR: this system has glibc 2.12; tally 0.1.0 needs glibc 2.17 or newer" in result.stderr


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_unreachable_server(release: Path, tmp_path: Path, shell: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_installer(release, shell, tmp_path / "home", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"ERROR: download failed: http://127.0.0.1:{port}/{HOST_ARCHIVE}" in result.stderr


def test_existing_install_is_replaced_and_path_left_alone(release: Path, server: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "tally").write_text("old")
    result = run_installer(release, "bash", home, server, "--no-modify-path", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "-q prints nothing but errors"
    assert (home / "bin" / "tally").read_bytes().startswith(b"\x7fELF")
    assert not (home / ".profile").exists()
    again = run_installer(release, "dash", home, server, env={"TALLY_NO_MODIFY_PATH": "1"})
    assert again.returncode == 0 and not (home / ".profile").exists()
    assert sorted(p.name for p in (home / "bin").iterdir()) == ["tally"]


def test_help_and_bad_option(release: Path, tmp_path: Path) -> None:
    helptext = run_installer(release, "dash", tmp_path / "home", "", "--help")
    assert helptext.returncode == 0 and "Usage:" in helptext.stdout and "TALLY_INSTALL_DIR" in helptext.stdout
    bad = run_installer(release, "dash", tmp_path / "home", "", "--bogus")
    assert bad.returncode == 1 and "ERROR: unknown option: --bogus" in bad.stderr


def test_no_url_at_all(release: Path, tmp_path: Path) -> None:
    result = run_installer(release, "dash", tmp_path / "home", "")
    assert result.returncode == 1 and "ERROR: no download URL: set TALLY_DOWNLOAD_URL" in result.stderr


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ERROR line a refusal prints, last on stderr."""
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("ERROR: "), result.stderr
    assert sum(line.startswith("ERROR: ") for line in lines) == 1, result.stderr
    return lines[-1]


def fresh_home(tmp_path: Path) -> Path:
    """The home and temporary folders run_installer uses, made before a `tree` snapshot."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "installer-tmp").mkdir()
    return home


# --- downloads that stall -------------------------------------------------------------------

DOWNLOADERS = ("curl", "wget", "busybox-wget")


def downloader_env(tmp_path: Path, downloader: str) -> dict[str, str | None]:
    """A PATH where the installer finds that downloader first."""
    if downloader == "curl":
        assert shutil.which("curl"), "curl is on this machine's PATH"
        return {}
    if downloader == "wget":
        return {"PATH": restricted_path(tmp_path, {"curl"})}
    return {"PATH": restricted_path(tmp_path, {"curl", "wget"}, links={"wget": BUSYBOX})}


def slow_server(data: bytes, trickle: bool) -> Iterator[str]:
    """Sends the headers and the first 1 KB of `data`, then nothing (or one byte every 0.2s)."""
    let_go = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:1024])
            self.wfile.flush()
            for byte in data[1024:] if trickle else b"":
                if let_go.wait(0.2):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            let_go.wait(120)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    with serving(Slow) as url:
        try:
            yield url
        finally:
            let_go.set()  # before the server stops: its handlers are waiting on it


@pytest.fixture
def stalled(release: Path) -> Iterator[str]:
    yield from slow_server((release / HOST_ARCHIVE).read_bytes(), trickle=False)


@pytest.fixture
def trickling(release: Path) -> Iterator[str]:
    yield from slow_server((release / HOST_ARCHIVE).read_bytes(), trickle=True)


@pytest.mark.parametrize("downloader", DOWNLOADERS)
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_stalled_download_times_out(release: Path, stalled: str, tmp_path: Path, shell: str, downloader: str) -> None:
    env = {"TALLY_DOWNLOAD_TIMEOUT": "1", **downloader_env(tmp_path, downloader)}
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    result = run_installer(release, shell, home, stalled, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith(f"ERROR: download failed: {stalled}/{HOST_ARCHIVE} timed out (limit: 1s without progress"), (
        line
    )
    assert "set TALLY_DOWNLOAD_TIMEOUT" in line, line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_a_trickling_download_stops_at_ten_times_the_timeout(
    release: Path, trickling: str, tmp_path: Path, downloader: str
) -> None:
    """Never stalled (a byte every 0.2s), so only the cap on the whole download (retries included) ends it."""
    env = {"TALLY_DOWNLOAD_TIMEOUT": "1", **downloader_env(tmp_path, downloader)}
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    result = run_installer(release, "dash", home, trickling, env=env, timeout=18)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith(
        f"ERROR: download failed: {trickling}/{HOST_ARCHIVE} timed out (limit: 1s without progress, 10s in all)"
    )
    assert tree(tmp_path) == before


@pytest.mark.parametrize("downloader", DOWNLOADERS)
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_installs_with_each_downloader_and_a_short_timeout(
    release: Path, server: str, tmp_path: Path, shell: str, downloader: str
) -> None:
    env = {"TALLY_DOWNLOAD_TIMEOUT": "1", **downloader_env(tmp_path, downloader)}
    home = tmp_path / "home"
    result = run_installer(release, shell, home, server, "--no-modify-path", env=env)
    assert result.returncode == 0, result.stderr
    version = subprocess.run([home / "bin" / "tally", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == "tally 0.1.0\n"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_download_watchdog_stopped_early_leaves_the_installer_alone(
    release: Path, server: str, tmp_path: Path, shell: str
) -> None:
    # Each download's watchdog runs in the background and is stopped with TERM when the download
    # ends. bash forks it with the installer's traps, and under load the TERM can come before the
    # watchdog resets them: cleanup then ran in the watchdog and deleted the live installer's
    # temporary folder and lock (a CI run: "download failed" after awk could not open a file of
    # the deleted folder). The test hook runs cleanup in every watchdog, as that race does.
    home = tmp_path / "home"
    result = run_installer(release, shell, home, server, env={"TALLY_INSTALLER_TEST_CLEANUP_IN_WATCHDOG": "1"})
    assert result.returncode == 0, result.stderr
    version = subprocess.run([home / "bin" / "tally", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == "tally 0.1.0\n"
    assert not (home / ".config" / "tally" / "install.lock").exists()


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "030", "100000"])
def test_refuses_a_bad_download_timeout(release: Path, server: str, tmp_path: Path, value: str) -> None:
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    result = run_installer(release, "dash", home, server, env={"TALLY_DOWNLOAD_TIMEOUT": value})
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(
        f"ERROR: TALLY_DOWNLOAD_TIMEOUT must be a whole number of seconds from 1 to 99999, not '{value}'"
    )
    assert tree(tmp_path) == before


# --- preconditions before the first write ---------------------------------------------------


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_without_home_refuses_before_writing_anything(release: Path, server: str, tmp_path: Path, shell: str) -> None:
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    env = {"HOME": None, "TALLY_INSTALL_DIR": str(tmp_path / "opt" / "bin")}
    result = run_installer(release, shell, home, server, env=env)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith("ERROR: HOME is not set, so the install receipt has no place: set HOME, or XDG_CONFIG_HOME")
    assert line.endswith("nothing was installed"), line
    assert tree(tmp_path) == before, "no binary, no receipt, no profile"


def test_without_home_or_install_dir_refuses_before_writing_anything(
    release: Path, server: str, tmp_path: Path
) -> None:
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    result = run_installer(release, "dash", home, server, env={"HOME": None, "TALLY_INSTALL_DIR": None})
    assert result.returncode == 1, result.stderr
    assert error_line(result).startswith(
        "ERROR: HOME is not set, so the binaries have no place: set HOME, or TALLY_INSTALL_DIR"
    )
    assert tree(tmp_path) == before


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_without_home_installs_where_it_is_told(release: Path, server: str, tmp_path: Path, shell: str) -> None:
    env = {"HOME": None, "TALLY_INSTALL_DIR": str(tmp_path / "opt" / "bin"), "XDG_CONFIG_HOME": str(tmp_path / "conf")}
    result = run_installer(release, shell, tmp_path / "home", server, "--no-modify-path", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "opt" / "bin" / "tally").read_bytes().startswith(b"\x7fELF")
    receipt = json.loads((tmp_path / "conf" / "tally" / "install-receipt.json").read_text())
    assert receipt["install_dir"] == str(tmp_path / "opt" / "bin")


def test_without_home_editing_path_is_refused_before_writing(release: Path, server: str, tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    env = {"HOME": None, "TALLY_INSTALL_DIR": str(tmp_path / "opt" / "bin"), "XDG_CONFIG_HOME": str(tmp_path / "conf")}
    result = run_installer(release, "dash", home, server, env=env)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith("ERROR: HOME is not set, so no shell profile can put ") and "--no-modify-path" in line
    assert tree(tmp_path) == before


def test_help_documents_what_happens_without_home(release: Path, tmp_path: Path) -> None:
    helptext = run_installer(release, "dash", tmp_path / "home", "", "--help").stdout
    assert "Without HOME, set TALLY_INSTALL_DIR and XDG_CONFIG_HOME" in helptext
    assert "TALLY_DOWNLOAD_TIMEOUT" in helptext and "XDG_CONFIG_HOME" in helptext


UNREACHABLE = "http://127.0.0.1:9"  # a refusal that names a folder proves it came before the download


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_an_install_folder_that_cannot_be_made_is_refused_first(release: Path, tmp_path: Path, shell: str) -> None:
    home = fresh_home(tmp_path)
    (tmp_path / "a-file").write_text("x")
    before = tree(tmp_path)
    result = run_installer(
        release, shell, home, UNREACHABLE, env={"TALLY_INSTALL_DIR": str(tmp_path / "a-file" / "bin")}
    )
    assert result.returncode == 1
    assert error_line(result).startswith(f"ERROR: cannot create {tmp_path / 'a-file' / 'bin'}: ")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_receipt_folder_that_cannot_be_made_is_refused_first(release: Path, tmp_path: Path, shell: str) -> None:
    home = fresh_home(tmp_path)
    (tmp_path / "a-file").write_text("x")
    before = tree(tmp_path)
    result = run_installer(release, shell, home, UNREACHABLE, env={"XDG_CONFIG_HOME": str(tmp_path / "a-file")})
    assert result.returncode == 1
    assert error_line(result).startswith(
        f"ERROR: cannot write the install receipt into {tmp_path / 'a-file' / 'tally'}: "
    )
    assert tree(tmp_path) == before


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_profile_that_cannot_be_written_is_refused_first(release: Path, tmp_path: Path, shell: str) -> None:
    home = fresh_home(tmp_path)
    (home / ".profile").mkdir()
    before = tree(tmp_path)
    result = run_installer(release, shell, home, UNREACHABLE)
    assert result.returncode == 1
    line = error_line(result)
    assert (
        line.startswith(f"ERROR: cannot write {home / '.profile'} to put {home / 'bin'} on PATH: ")
        and "--no-modify-path" in line
    )
    assert tree(tmp_path) == before


# --- crafted archives -----------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]
CRAFTED_BINARY = b"#!/bin/sh\necho crafted\n"


def member(name: str, kind: str = "file", data: bytes = CRAFTED_BINARY, target: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.mode = 0o755
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        return info, None
    if kind in ("symlink", "hardlink"):
        info.type, info.linkname = (tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE), target
        return info, None
    info.size = len(data)
    return info, data


def crafted_release(folder: Path, members: list[Member]) -> Path:
    """A release folder holding a crafted host archive and an installer with its digest baked in."""
    folder.mkdir()
    archive = folder / HOST_ARCHIVE
    with (
        archive.open("wb") as raw,
        lzma.open(raw, "wb") as xz,
        tarfile.open(fileobj=xz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    entry = ReleaseFile(HOST_ARCHIVE, "archive", "tally", "x86_64-unknown-linux-gnu", archive.stat().st_size, digest,
                        ("tally",))  # fmt: skip
    (folder / "tally-installer.sh").write_text(render_installers("tally", "0.1.0", [entry], "")["tally-installer.sh"])
    return folder


TOP_DIR = member(f"{HOST_TOP}/", "dir")
UNSAFE: dict[str, tuple[Callable[[Path], list[Member]], str]] = {
    # a symlink named like the binary, to a file that must never be installed
    "symlink": (lambda tmp: [TOP_DIR, member(f"{HOST_TOP}/tally", "symlink", target=str(tmp / "secret"))],
                "is a link or special file"),
    "hardlink": (lambda tmp: [TOP_DIR, member(f"{HOST_TOP}/tally", "hardlink", target=str(tmp / "secret"))],
                 "is a link or special file"),
    # from the installer's unpack folder, four levels up is tmp_path
    "dotdot": (lambda tmp: [TOP_DIR, member(f"{HOST_TOP}/tally"), member(f"{HOST_TOP}/../../../../escaped-dotdot")],
               "unsafe path"),
    "absolute": (lambda tmp: [TOP_DIR, member(f"{HOST_TOP}/tally"), member(str(tmp / "escaped-absolute"))],
                 "unsafe path"),
    "outside": (lambda tmp: [TOP_DIR, member(f"{HOST_TOP}/tally"), member("elsewhere/tally")], "unsafe path"),
}  # fmt: skip
# GNU and BusyBox tar, and each wrapped so that it says nothing when it rewrites a name
# (BusyBox tar even lists "tmp/evil" for "/tmp/evil"): the installer's own name check must hold.
TARS = ("gnu-tar", "busybox-tar", "gnu-tar-silent", "busybox-tar-silent")


def tar_env(tmp_path: Path, tar: str) -> dict[str, str | None]:
    real = {"gnu": shutil.which("tar") or "/bin/tar", "busybox": f"{BUSYBOX} tar"}[tar.split("-")[0]]
    if tar == "gnu-tar":
        return {}
    if tar == "busybox-tar":
        return {"PATH": restricted_path(tmp_path, set(), links={"tar": BUSYBOX})}
    # Silent towards the installer; what tar said is kept beside, for a failure to explain itself.
    said = silent_tar_log(tmp_path)
    return {"PATH": restricted_path(tmp_path, {"tar"}, {"tar": f'exec {real} "$@" 2>>"{said}"'})}


def silent_tar_log(tmp_path: Path) -> Path:
    """Outside tmp_path, whose tree the refusal tests compare before and after."""
    return tmp_path.parent / f"{tmp_path.name}.silent-tar.stderr"


def tar_said(tmp_path: Path) -> str:
    said = silent_tar_log(tmp_path)
    return f"; the silent tar said: {said.read_text()!r}" if said.is_file() else ""


@pytest.mark.parametrize("tar", TARS)
@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("kind", sorted(UNSAFE))
def test_refuses_an_unsafe_archive_member(tmp_path: Path, shell: str, tar: str, kind: str) -> None:
    make_members, reason = UNSAFE[kind]
    (tmp_path / "secret").write_text("SECRET\n")
    folder = crafted_release(tmp_path / "crafted", make_members(tmp_path))
    env = tar_env(tmp_path, tar)
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    with contextlib.contextmanager(serve)(folder) as url:
        result = run_installer(folder, shell, home, url, env=env)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith(f"ERROR: refusing {HOST_ARCHIVE}: member ") and reason in line, line
    assert line.endswith("nothing was installed: report this to the publisher"), line
    assert tree(tmp_path) == before, "nothing installed, nothing escaped the temporary folder"
    assert (tmp_path / "secret").read_text() == "SECRET\n"


@pytest.mark.parametrize("tar", TARS)
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_installs_a_crafted_archive_of_plain_files(tmp_path: Path, shell: str, tar: str) -> None:
    """The control for the refusals above: the same crafting, with nothing unsafe in it, installs."""
    folder = crafted_release(tmp_path / "crafted", [TOP_DIR, member(f"{HOST_TOP}/tally")])
    home = tmp_path / "home"
    with contextlib.contextmanager(serve)(folder) as url:
        result = run_installer(folder, shell, home, url, env=tar_env(tmp_path, tar))
    assert result.returncode == 0, result.stderr + tar_said(tmp_path)
    assert (home / "bin" / "tally").read_bytes() == CRAFTED_BINARY
    assert not (home / "bin" / "tally").is_symlink()


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_refuses_a_binary_that_unpacks_as_a_link(tmp_path: Path, shell: str) -> None:
    """A tar whose listing and unpacking disagree: the check after unpacking still refuses a symlink."""
    (tmp_path / "secret").write_text("SECRET\n")
    plain = crafted_release(tmp_path / "plain", [TOP_DIR, member(f"{HOST_TOP}/tally")])
    folder = crafted_release(tmp_path / "crafted", UNSAFE["symlink"][0](tmp_path))
    real_tar = shutil.which("tar")
    lying_tar = f'case "$1" in -t*) exec {real_tar} "$1" {plain / HOST_ARCHIVE} ;; *) exec {real_tar} "$@" ;; esac'
    env: dict[str, str | None] = {"PATH": restricted_path(tmp_path, {"tar"}, {"tar": lying_tar})}
    home = fresh_home(tmp_path)
    before = tree(tmp_path)
    with contextlib.contextmanager(serve)(folder) as url:
        result = run_installer(folder, shell, home, url, env=env)
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith(f"ERROR: refusing {HOST_ARCHIVE}: tally is not a plain file after unpacking; "), line
    assert line.endswith("nothing was installed: report this to the publisher"), line
    assert tree(tmp_path) == before


def test_shellcheck_passes(release: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-s", "sh", str(release / "tally-installer.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def powershell_errors(source: bytes) -> list[str]:
    import tree_sitter_powershell
    from tree_sitter import Language, Parser

    tree = Parser(Language(tree_sitter_powershell.language())).parse(source)
    problems: list[str] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            problems.append(f"{node.type} at {node.start_point}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return problems


def test_powershell_installer_parses(release: Path) -> None:
    source = (release / "tally-installer.ps1").read_bytes()
    assert powershell_errors(source) == []
    # The parser does find errors when there are some.
    assert powershell_errors(source.replace(b"foreach ($name in $wanted) {", b"foreach ($name in $wanted {"))


@dataclass(frozen=True)
class PsCall:
    """One command in a PowerShell script: its name, where it is, its -Parameter arguments."""

    name: str  # lower case
    start: int
    args: dict[str, str]  # lower-case "-parameter" -> the argument's text ("" for a switch)
    positional: tuple[str, ...]


class PsScript:
    """A PowerShell script parsed with tree-sitter, with the questions the checks below ask."""

    def __init__(self, source: bytes) -> None:
        import tree_sitter_powershell
        from tree_sitter import Language, Parser

        self.source = source
        self.root = Parser(Language(tree_sitter_powershell.language())).parse(source).root_node
        self.functions = {
            self.text(self.child(node, "function_name")).lower(): node
            for node in self.nodes(self.root)
            if node.type == "function_statement"
        }

    def text(self, node: Node | None) -> str:
        return "" if node is None else self.source[node.start_byte : node.end_byte].decode()

    @staticmethod
    def child(node: Node, kind: str) -> Node | None:
        return next((c for c in node.children if c.type == kind), None)

    def nodes(self, node: Node) -> Iterator[Node]:
        yield node
        for child in node.children:
            yield from self.nodes(child)

    def calls(self, node: Node) -> list[PsCall]:
        found = []
        for command in (n for n in self.nodes(node) if n.type == "command"):
            elements = self.child(command, "command_elements")
            items = [c for c in (elements.children if elements else []) if c.type != "command_argument_sep"]
            args: dict[str, str] = {}
            positional: list[str] = []
            index = 0
            while index < len(items):
                item = items[index]
                if item.type != "command_parameter":
                    positional.append(self.text(item))
                elif index + 1 < len(items) and items[index + 1].type != "command_parameter":
                    args[self.text(item).lower()] = self.text(items[index + 1])
                    index += 1
                else:
                    args[self.text(item).lower()] = ""  # a switch
                index += 1
            name = self.text(self.child(command, "command_name")).lower()
            found.append(PsCall(name, command.start_byte, args, tuple(positional)))
        return found

    def function_calls(self, function: str) -> list[PsCall]:
        return self.calls(self.functions[function])

    def has(self, function: str, kind: str, text: str) -> bool:
        return any(n.type == kind and self.text(n) == text for n in self.nodes(self.functions[function]))


PS_CHECKERS = ("install-app", "get-downloadtimeout", "assert-sha256", "assert-safezip", "assert-plainfile")
PS_WRITES = ("copy-item", "move-item", "set-content", "add-topath", "remove-item")


def ps1_safety_problems(source: bytes) -> list[str]:
    """What keeps the PowerShell installer from being as safe as the shell one ([] when nothing)."""
    ps = PsScript(source)
    missing = [name for name in PS_CHECKERS if name not in ps.functions]
    if missing:
        return [f"no function {name}" for name in missing]
    problems = []
    # The checking functions check, and refuse.
    for name in PS_CHECKERS[1:]:
        if not any(c.name == "stop-install" for c in ps.function_calls(name)):
            problems.append(f"{name} never calls Stop-Install")
    if not any(
        c.name == "get-filehash" and c.args.get("-algorithm") == "SHA256" for c in ps.function_calls("assert-sha256")
    ):
        problems.append("assert-sha256 does not call Get-FileHash -Algorithm SHA256")
    mismatch = [
        n
        for n in ps.nodes(ps.functions["assert-sha256"])
        if n.type == "if_statement" and "-ne $Expected" in ps.text(ps.child(n, "pipeline"))
    ]
    if not any(c.name == "stop-install" for n in mismatch for c in ps.calls(n)):
        problems.append("assert-sha256 does not refuse when the digest is not the expected one")
    if not ps.has("get-downloadtimeout", "variable", "$env:TALLY_DOWNLOAD_TIMEOUT"):
        problems.append("get-downloadtimeout does not read $env:TALLY_DOWNLOAD_TIMEOUT")
    for kind, text in (("member_name", "Entries"), ("member_name", "IsPathRooted"), ("string_literal", "'..'")):
        if not ps.has("assert-safezip", kind, text):
            problems.append(f"assert-safezip does not look at {text}")
    for text in ("PSIsContainer", "ReparsePoint"):
        if not ps.has("assert-plainfile", "member_name", text):
            problems.append(f"assert-plainfile does not look at {text}")

    # Install-App calls them, in the right order: every check before the first write.
    calls = ps.function_calls("install-app")

    def first(name: str, **args: str) -> int | None:
        found = [c.start for c in calls if c.name == name and all(c.args.get(f"-{k}") == v for k, v in args.items())]
        return min(found) if found else None

    writes = [c.start for c in calls if c.name in PS_WRITES]
    writes += [c.start for c in calls if c.name == "new-item" and c.args.get("-path") != "$temp"]
    first_write = min(writes, default=None)
    download = first("invoke-webrequest", timeoutsec="$timeout", outfile="$download")
    sha = first("assert-sha256", path="$download")
    safe_zip = first("assert-safezip", path="$download")
    expand = first("expand-archive", literalpath="$download")
    plain = [c.start for c in calls if c.name == "assert-plainfile"]
    copy = first("copy-item")
    timeout_from = [
        n.start_byte
        for n in ps.nodes(ps.functions["install-app"])
        if n.type == "assignment_expression"
        and ps.text(n).split("=")[0].strip() == "$timeout"
        and any(c.name == "get-downloadtimeout" for c in ps.calls(n))
    ]
    if first_write is None or expand is None or copy is None:
        return [*problems, "install-app writes nothing, or unpacks nothing"]
    if download is None:
        problems.append("install-app does not call Invoke-WebRequest -OutFile $download -TimeoutSec $timeout")
    elif not timeout_from or min(timeout_from) > download:
        problems.append("install-app does not set $timeout from Get-DownloadTimeout before the download")
    if sha is None or download is None or not download < sha < min(first_write, expand):
        problems.append("install-app does not call Assert-Sha256 -Path $download after the download, before unpacking")
    if safe_zip is None or not safe_zip < expand:
        problems.append("install-app does not call Assert-SafeZip -Path $download before Expand-Archive")
    if not plain or not expand < max(plain) < copy:
        problems.append("install-app does not call Assert-PlainFile between unpacking and copying")
    checks = [c.start for c in calls if c.name.startswith("assert-") or c.name in ("get-target", "get-downloadtimeout")]
    if max(checks) > first_write:
        problems.append("install-app writes before all its checks have passed")
    localappdata = [
        n.start_byte
        for n in ps.nodes(ps.functions["install-app"])
        if n.type == "if_statement"
        and "-not $env:LOCALAPPDATA" in ps.text(ps.child(n, "pipeline"))
        and any(c.name == "stop-install" for c in ps.calls(n))
    ]
    if not localappdata or min(localappdata) > first_write:
        problems.append("install-app does not refuse a missing LOCALAPPDATA before writing")
    timed_out = [
        c for c in calls if c.name == "stop-install" and "$url" in str(c.positional) and "timeout" in str(c.positional)
    ]
    if not timed_out:
        problems.append("install-app has no refusal naming the URL and the timeout")
    return problems


def test_powershell_installer_makes_the_same_checks_as_the_shell_one(release: Path) -> None:
    assert ps1_safety_problems((release / "tally-installer.ps1").read_bytes()) == []


PS1_BREAKAGES = {
    "no checksum check": (
        "        Assert-Sha256 -Path $download -Expected $artifact.Sha256 -Name $artifact.Archive\n",
        "",
    ),
    "checksum mismatch not refused": ('Stop-Install "checksum mismatch', 'Write-Say "checksum mismatch'),
    "no download timeout": (" -TimeoutSec $timeout", ""),
    "timeout not from the environment": ("$timeout = Get-DownloadTimeout", "$timeout = 30"),
    "no entry check": ("        Assert-SafeZip -Path $download -Top $top -Name $artifact.Archive\n", ""),
    "no rooted-path check": ("[System.IO.Path]::IsPathRooted($entryName) -or ", ""),
    "no plain-file check": (
        "Assert-PlainFile -Path (Join-Path (Join-Path $unpacked $top) $binary)",
        "Write-Debug2 -Message",
    ),
    "no LOCALAPPDATA check": ("if (-not $env:LOCALAPPDATA) { Stop-Install", "if (-not $env:LOCALAPPDATA) { Write-Say"),
}


@pytest.mark.parametrize("breakage", sorted(PS1_BREAKAGES))
def test_the_powershell_checks_notice_a_missing_call(release: Path, breakage: str) -> None:
    """The structural check above fails when any one of the calls it protects is taken out."""
    old, new = PS1_BREAKAGES[breakage]
    text = (release / "tally-installer.ps1").read_text()
    assert text.count(old) == 1, f"the installer no longer holds {old!r}: update PS1_BREAKAGES"
    broken = text.replace(old, new).encode()
    assert powershell_errors(broken) == [], "the broken script still parses: only its structure changed"
    assert ps1_safety_problems(broken) != []


PS_UPGRADE = ("update-app", "new-snapshot", "restore-snapshot", "write-journal", "repair-upgrade", "invoke-checks",
              "enter-lock", "read-policy", "assert-policy", "assert-signature", "wait-forapp")  # fmt: skip


def ps1_upgrade_problems(source: bytes) -> list[str]:
    """What keeps the PowerShell installer's upgrade from being as safe as the shell one's ([] when nothing)."""
    ps = PsScript(source)
    missing = [name for name in PS_UPGRADE if name not in ps.functions]
    if missing:
        return [f"no function {name}" for name in missing]
    problems = []

    def starts(function: str, name: str, **args: str) -> list[int]:
        return [
            c.start
            for c in ps.function_calls(function)
            if c.name == name and all(c.args.get(f"-{k}") == v for k, v in args.items())
        ]

    # Update-App: wait, snapshot, journal, swap, checks, then commit (journal and receipt together).
    wait, snap = starts("update-app", "wait-forapp"), starts("update-app", "new-snapshot")
    swapping = starts("update-app", "write-journal", state="'swapping'")
    swap = starts("update-app", "move-item", destination="$destination")
    checks = starts("update-app", "invoke-checks")
    commit = starts("update-app", "complete-upgrade")
    order = [wait, snap, swapping, swap, checks, commit]
    if not all(order) or [min(x) for x in order] != sorted(min(x) for x in order):
        problems.append("update-app does not wait, snapshot, journal, swap, check and commit in order")
    early_receipt = [
        c.start
        for c in ps.function_calls("update-app")
        if (c.name == "move-item" and c.args.get("-destination") == "$ReceiptPath") or c.name == "set-receipt"
    ]
    if checks and any(start < min(checks) for start in early_receipt):
        problems.append("update-app writes the receipt before the checks passed")
    # The receipt is in the committed transaction: the journal says committed, then the receipt.
    committed = starts("complete-upgrade", "write-journal", state="'committed'")
    if not committed or not starts("complete-upgrade", "complete-commit"):
        problems.append("complete-upgrade does not journal 'committed' and then complete the commit")
    receipt = starts("complete-commit", "set-receipt")
    kept = starts("complete-commit", "move-item", destination="(Join-Path $ReceiptDir 'previous')")
    if not receipt or not kept or min(receipt) > min(kept):
        problems.append("complete-commit does not write the new receipt before keeping the snapshot")
    # The snapshot records the live data (size, mtime, digest) to compare before any restore.
    saved = [c.args.get("-path", "") for c in ps.function_calls("new-snapshot") if c.name == "save-datarecord"]
    if not starts("new-snapshot", "get-datarecord") or not any("'data.record'" in path for path in saved):
        problems.append("new-snapshot does not record the live data files")
    record = ps.text(ps.functions["get-datarecord"])
    if not all(word in record for word in ("Get-FileHash", "LastWriteTimeUtc", "Length", "-wal", "-shm")):
        problems.append("get-datarecord does not record size, mtime and digest of the file, -wal and -shm")
    # Resolve-Upgrade: the snapshot goes back only when the data is as the installer left it.
    compared = starts("resolve-upgrade", "get-changeddata")
    guarded = [
        n
        for n in ps.nodes(ps.functions["resolve-upgrade"])
        if n.type == "if_statement"
        and "$changed.Count -eq 0" in ps.text(ps.child(n, "pipeline"))
        and any(c.name == "restore-snapshot" for c in ps.calls(n))
    ]
    restores = starts("resolve-upgrade", "restore-snapshot")
    if not compared or not guarded or len(restores) != 1 or min(compared) > min(restores):
        problems.append("resolve-upgrade restores the snapshot without comparing the live data with it first")
    if not starts("resolve-upgrade", "invoke-checks") or not starts("resolve-upgrade", "stop-upgrade"):
        problems.append("resolve-upgrade does not carry changed data forward (or stop) instead of restoring")
    if "exit 13" not in ps.text(ps.functions["stop-conflict"]) or not starts("stop-upgrade", "stop-conflict"):
        problems.append("stop-upgrade does not stop with exit code 13")
    if not starts("stop-upgrade", "set-receipt"):
        problems.append("stop-upgrade leaves a receipt that does not name the installed binary")
    # A failed upgrade: liveness, then the installer's own changes recorded, then the rule.
    failure = [
        n
        for n in ps.nodes(ps.functions["update-app"])
        if n.type == "if_statement" and ps.text(ps.child(n, "pipeline")).strip() == "$failed"
    ]
    if not failure:
        problems.append("update-app does not settle the upgrade (and refuse) when the swap or checks failed")
    else:
        inside = ps.calls(failure[0])
        names = [c.name for c in inside]
        if not (
            "wait-forapp" in names
            and "save-datarecord" in names
            and "resolve-upgrade" in names
            and names.index("wait-forapp") < names.index("save-datarecord") < names.index("resolve-upgrade")
            and "stop-install" in names
        ):
            problems.append("update-app does not check liveness and record its own changes before settling a failure")
    # Repair-Upgrade: liveness exactly as an upgrade checks it, before anything goes back.
    repair_wait, repair_resolve = starts("repair-upgrade", "wait-forapp"), starts("repair-upgrade", "resolve-upgrade")
    if not repair_wait or not repair_resolve or min(repair_wait) > min(repair_resolve):
        problems.append("repair-upgrade does not check liveness before settling an interrupted upgrade")
    if not starts("repair-upgrade", "complete-commit"):
        problems.append("repair-upgrade does not finish a committed upgrade's receipt")
    if not starts("read-policy", "get-installedversion") or not starts("get-installedversion", "get-filehash"):
        problems.append("read-policy does not go by the installed binary's digest")
    # Invoke-Checks runs each baked-in upgrade check, its tab-separated words splatted as arguments.
    loops = [n for n in ps.nodes(ps.functions["invoke-checks"]) if n.type == "foreach_statement"]
    if not any(
        "$UpgradeChecks" in ps.text(n) and any(m.type == "variable" and ps.text(m) == "@words" for m in ps.nodes(n))
        for n in loops
    ):
        problems.append("invoke-checks does not run the baked-in upgrade checks")
    baked = [
        ps.text(n)
        for n in ps.nodes(ps.root)
        if n.type == "assignment_expression" and ps.text(n).startswith("$UpgradeChecks = ")
    ]
    if baked != ["$UpgradeChecks = @('migrate', 'doctor')"]:
        problems.append(f"the demo's upgrade checks are not baked in: {baked}")

    # Assert-Policy: the pinned key, the environment only tightening, the downgrade refusal.
    for variable in ("$env:TALLY_REQUIRE_SIGNATURE", "$env:TALLY_ALLOW_DOWNGRADE", "$PublicKey"):
        if not ps.has("assert-policy", "variable", variable):
            problems.append(f"assert-policy does not look at {variable}")
    guarded_refusals = {  # the refusal's words: what its if's condition must test
        "different key": ("-ne $PublicKey",),
        "minisign is not installed": ("Get-Command minisign",),
        "refusing to downgrade": ("Test-VersionOlder", "-not $allowed"),
    }
    for words, condition in guarded_refusals.items():
        if not any(
            all(part in ps.text(ps.child(n, "pipeline")) for part in condition)
            and any(c.name == "stop-install" and words in str(c.positional) for c in ps.calls(n))
            for n in ps.nodes(ps.functions["assert-policy"])
            if n.type == "if_statement"
        ):
            problems.append(f"assert-policy does not refuse {words!r} when {' and '.join(condition)}")
    # What is pinned stays required: the environment can only add to it.
    required = [
        ps.text(n)
        for n in ps.nodes(ps.functions["assert-policy"])
        if n.type == "assignment_expression" and ps.text(n).startswith("$required =")
    ]
    if required != ["$required = $policy.require_signature -or ($env:TALLY_REQUIRE_SIGNATURE -eq '1')"]:
        problems.append(
            "assert-policy lets something other than the environment's '1' change the pinned signature rule"
        )
    if not any(c.args.get("-p") == "$PublicKey" for c in ps.function_calls("assert-signature")):
        problems.append("assert-signature does not run minisign -P $PublicKey")

    # Install-App: policy refused before the download; signature after the digest; lock, repair, policy again.
    calls = ps.function_calls("install-app")

    def first(name: str) -> int:
        return min((c.start for c in calls if c.name == name), default=-1)

    policy = sorted(c.start for c in calls if c.name == "assert-policy")
    download, sha, signature = first("invoke-webrequest"), first("assert-sha256"), first("assert-signature")
    lock, repair, update = first("enter-lock"), first("repair-upgrade"), first("update-app")
    if len(policy) < 2 or not policy[0] < download:
        problems.append("install-app does not refuse by the pinned policy before downloading")
    if not 0 <= sha < signature < first("expand-archive"):
        problems.append("install-app does not check the signature after the digest, before unpacking")
    if not (0 <= lock < repair < policy[-1] < update):
        problems.append("install-app does not lock, repair, re-check the policy, then upgrade")
    return problems


def test_powershell_installer_upgrades_like_the_shell_one(release: Path) -> None:
    assert ps1_upgrade_problems((release / "tally-installer.ps1").read_bytes()) == []


PS1_UPGRADE_BREAKAGES = {
    "no restore": (
        "        if (-not (Restore-Snapshot -Folder $snapshot -InstallDir $InstallDir)) { return '' }\n"
        "        Remove-Item",
        "        Remove-Item",
    ),
    "no journal": (
        "    try { Write-Journal -ReceiptDir $ReceiptDir -State 'swapping' -From $Installed -To $Version }",
        "    try { }",
    ),
    "no repair": (
        "        Repair-Upgrade -ReceiptDir $receiptDir -InstallDir $installDir -Binaries $artifact.Binaries\n",
        "",
    ),
    "restore without comparing": ("    if ($changed.Count -eq 0) {", "    if ($true) {"),
    "no record": (
        "    Save-DataRecord -Record $record -Path (Join-Path $Folder 'data.record')\n",
        "",
    ),
    "repair before liveness": (
        "    Wait-ForApp -InstallDir $InstallDir -Binaries $Binaries -DataPaths $dataPaths -Outcome",
        "    Write-Debug2 -InstallDir $InstallDir -Binaries $Binaries -DataPaths $dataPaths -Outcome",
    ),
    "rollback without liveness": (
        "        Wait-ForApp -InstallDir $InstallDir -Binaries $Artifact.Binaries -DataPaths $DataPaths -Outcome",
        "        Write-Debug2 -InstallDir $InstallDir -Binaries $Artifact.Binaries -DataPaths $DataPaths -Outcome",
    ),
    "receipt outside the commit": (
        "        Set-Receipt -From (Join-Path $snapshot 'new-receipt.json') -ReceiptPath (Join-Path $ReceiptDir "
        "'install-receipt.json')\n        Remove-Item",
        "        Remove-Item",
    ),
    "not exit 13": ("    exit 13", "    exit 1"),
    "downgrade by the receipt only": (
        "        $installed = Get-InstalledVersion -Receipt $receipt -Recorded $installed\n",
        "",
    ),
    "no lock": ("        $lock = Enter-Lock -ReceiptDir $receiptDir\n", ""),
    "no doctor": ("$UpgradeChecks = @('migrate', 'doctor')", "$UpgradeChecks = @('migrate')"),
    "no downgrade refusal": ("-and -not $allowed) {", "-and $false) {"),
    "environment cannot tighten": ("($env:TALLY_REQUIRE_SIGNATURE -eq '1')\n    if", "$false\n    if"),
    "environment loosens": (
        "$required = $policy.require_signature -or",
        "$required = ($env:TALLY_REQUIRE_SIGNATURE -ne '0') -and $policy.require_signature -or",
    ),
    "no key check": ("if ($policy.public_key -and $policy.public_key -ne $PublicKey) {", "if ($false) {"),
    "no signature check": (
        "        Assert-Signature -Path $download -Url $url -Name $artifact.Archive -Timeout $timeout "
        "-Channel $channel\n",
        "",
    ),
    "checks without their arguments": (
        "$output = & (Join-Path $InstallDir $main) @words 2>&1",
        "$output = & (Join-Path $InstallDir $main) 2>&1",
    ),
    "checks not run": ("foreach ($check in $UpgradeChecks)", "foreach ($check in @())"),
    "receipt before checks": (
        "        $failed = Invoke-Checks -InstallDir $InstallDir -Binaries $Artifact.Binaries\n",
        "        Move-Item -LiteralPath 'x' -Destination $ReceiptPath\n"
        "        $failed = Invoke-Checks -InstallDir $InstallDir -Binaries $Artifact.Binaries\n",
    ),
}


@pytest.mark.parametrize("breakage", sorted(PS1_UPGRADE_BREAKAGES))
def test_the_powershell_upgrade_checks_notice_a_missing_step(release: Path, breakage: str) -> None:
    old, new = PS1_UPGRADE_BREAKAGES[breakage]
    text = (release / "tally-installer.ps1").read_text()
    assert text.count(old) == 1, f"the installer no longer holds {old!r}: update PS1_UPGRADE_BREAKAGES"
    broken = text.replace(old, new).encode()
    assert powershell_errors(broken) == [], "the broken script still parses: only its structure changed"
    assert ps1_upgrade_problems(broken) != []


def test_powershell_installer_carries_the_windows_archives() -> None:
    windows = ReleaseFile("tally-x86_64-pc-windows-gnu.zip", "archive", "tally", "x86_64-pc-windows-gnu", 10,
                          "ab" * 32, ("tally.exe",))  # fmt: skip
    linux = ReleaseFile("tally-x86_64-unknown-linux-gnu.tar.xz", "archive", "tally", "x86_64-unknown-linux-gnu", 10,
                        "cd" * 32, ("tally",))  # fmt: skip
    rendered = render_installers("tally", "0.1.0", [windows, linux], "https://example.invalid/dl")
    ps1, sh = rendered["tally-installer.ps1"], rendered["tally-installer.sh"]
    assert "Target = 'x86_64-pc-windows-gnu'; Archive = 'tally-x86_64-pc-windows-gnu.zip'" in ps1
    assert "ab" * 32 in ps1 and "cd" * 32 not in ps1
    assert "cd" * 32 in sh and "ab" * 32 not in sh
    assert powershell_errors(ps1.encode()) == []
