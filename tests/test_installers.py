"""The generated installers, run for real: the shell installer under dash,
bash and busybox sh against a local HTTP server on 127.0.0.1 serving a
packaged release; the PowerShell installer parsed with tree-sitter (no
PowerShell runtime exists here) and checked to mirror the shell one."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain import REPO_ROOT
from toolchain.build import BuildOptions, build
from toolchain.release import ReleaseFile, package_release, render_installers
from toolchain.signing import generate

SHELLS = {
    "dash": [shutil.which("dash") or "/bin/dash"],
    "bash": [shutil.which("bash") or "/bin/bash"],
    "busybox": [shutil.which("busybox") or "/bin/busybox", "sh"],
}
HOST_ARCHIVE = "tally-x86_64-unknown-linux-gnu.tar.xz"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("release")
    build(BuildOptions(out_dir=folder))
    package_release(folder, generate(), "", REPO_ROOT)
    return folder


def serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
    release: Path, shell: str, home: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TALLY_DOWNLOAD_URL": url,
        "TALLY_INSTALL_DIR": str(home / "bin"),
    }
    full_env.update(env or {})
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*SHELLS[shell], str(release / "tally-installer.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def restricted_path(tmp_path: Path, leave_out: set[str], fakes: dict[str, str] | None = None) -> str:
    """A PATH of symlinks to the tools the installer uses, minus some, plus fake ones."""
    folder = tmp_path / "restricted-bin"
    folder.mkdir()
    needed = "uname awk mktemp curl wget tar xz mkdir cp chmod mv rm tr sed date cat getconf ldd grep head sh"
    needed += " sha256sum shasum openssl"
    for tool in needed.split():
        found = shutil.which(tool)
        if found and tool not in leave_out:
            (folder / tool).symlink_to(found)
    for name, script in (fakes or {}).items():
        (folder / name).write_text(f"#!/bin/sh\n{script}\n")
        (folder / name).chmod(0o755)
    return str(folder)


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


def test_shellcheck_passes(release: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-s", "sh", str(release / "tally-installer.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def powershell_errors(source: bytes) -> list[str]:
    import tree_sitter_powershell
    from tree_sitter import Language, Node, Parser

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


def test_powershell_installer_mirrors_the_shell_one(release: Path) -> None:
    text = (release / "tally-installer.ps1").read_text()
    needles = ["TALLY_DOWNLOAD_URL", "TALLY_INSTALL_DIR", "TALLY_NO_MODIFY_PATH", "Get-FileHash", "checksum mismatch"]
    needles += ["unsupported platform", "install-receipt.json", "Move-Item", "ERROR: "]
    for needle in needles:
        assert needle in text, needle


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
