"""The per-target progress lines of a multi-target build: plain lines (not a
TTY, or CI), held lines under GitHub Actions, and live lines on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from toolchain import REPO_ROOT
from toolchain.log import log

WITHOUT_SECONDS = re.compile(r" in \d+\.\d s$")


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's own CI variables off (GitHub Actions holds progress lines, CI and
    NO_COLOR change colour): each test sets the one it is about."""
    for name in ("CI", "GITHUB_ACTIONS", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def lines(text: str) -> list[str]:
    return [WITHOUT_SECONDS.sub(" in N s", line) for line in text.splitlines()]


def test_plain_lines_follow_each_state_change(capsys: pytest.CaptureFixture[str]) -> None:
    with log.progress(["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]) as progress:
        progress.update(0, "building")
        progress.update(0, "verifying")
        progress.update(1, "building")
        progress.update(0, "packaging")
        progress.update(0, "done")
        progress.update(1, "failed")
    assert lines(capsys.readouterr().err) == [
        "[1/2] x86_64-unknown-linux-gnu: queued",
        "[2/2] aarch64-unknown-linux-gnu: queued",
        "[1/2] x86_64-unknown-linux-gnu: building",
        "[1/2] x86_64-unknown-linux-gnu: verifying",
        "[2/2] aarch64-unknown-linux-gnu: building",
        "[1/2] x86_64-unknown-linux-gnu: packaging",
        "[1/2] x86_64-unknown-linux-gnu: done in N s",
        "[2/2] aarch64-unknown-linux-gnu: failed in N s",
    ]
    assert progress.states() == [("x86_64-unknown-linux-gnu", "done"), ("aarch64-unknown-linux-gnu", "failed")]


def test_a_single_target_shows_no_progress_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with log.progress(["x86_64-unknown-linux-gnu"], show=False) as progress:
        progress.update(0, "building")
        progress.update(0, "done")
    assert capsys.readouterr().err == ""
    assert progress.states() == [("x86_64-unknown-linux-gnu", "done")]


def test_an_unknown_state_is_refused() -> None:
    with log.progress(["a", "b"], show=False) as progress, pytest.raises(ValueError, match="'compiling'"):
        progress.update(0, "compiling")


def test_plain_mode_keeps_cargos_own_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with log.progress(["a", "b"]) as progress:
        progress.update(0, "building")
        log.tool_output("   Compiling serde v1.0.200\n")
        log.tool_output("warning: unused variable: `x`\n")
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == ["   Compiling serde v1.0.200", "warning: unused variable: `x`"]


def in_a_holding_thread(work: Callable[[], None]) -> list[str]:
    """Run `work` on a thread that holds its output; return what the thread held."""
    kept: list[str] = []

    def body() -> None:
        with log.held() as held:
            work()
            kept.extend(plain for _, plain in held.lines)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return kept


def test_plain_progress_lines_are_written_at_once_even_from_a_holding_thread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with log.progress(["a", "b"]) as progress:
        capsys.readouterr()

        def work() -> None:
            progress.update(0, "verifying")
            log.info("checked a")

        kept = in_a_holding_thread(work)
        assert capsys.readouterr().err.splitlines() == ["[1/2] a: verifying"]
    assert kept == ["checked a"]


def test_under_github_progress_lines_wait_with_the_threads_other_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written at once they would land inside the ::group:: of the cargo run on the main thread.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with log.progress(["a", "b"]) as progress:
        capsys.readouterr()

        def work() -> None:
            with log.group("verify a"):
                progress.update(0, "verifying")
                log.info("checked a")

        kept = in_a_holding_thread(work)
        assert capsys.readouterr().err == ""
    assert kept == ["::group::verify a", "[1/2] a: verifying", "checked a", "::endgroup::"]


LIVE_SCRIPT = """
from toolchain.log import log
with log.progress(["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]) as progress:
    progress.update(0, "building")
    log.tool_output("   Compiling serde v1.0.200\\n")
    log.tool_output("warning: unused variable :warning: in a/very/long/path/" + "x" * 150 + "\\n")
    progress.update(0, "verifying")
    with log.status("a quiet step"):  # rich allows one live display: this must not start a second
        log.info("inspected")
    progress.update(0, "packaging")
    progress.update(0, "done")
    progress.update(1, "building")
    progress.update(1, "failed")
"""


def test_live_lines_on_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "GITHUB_ACTIONS")}
    env.update(PYTHONPATH=str(REPO_ROOT), TERM="xterm", COLUMNS="100")
    child = subprocess.Popen([sys.executable, "-c", LIVE_SCRIPT], stderr=follower, env=env, cwd=tmp_path)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the child is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    text = b"".join(chunks).decode(errors="replace")
    # Colours go; the cursor moves and line erases that redraw the live lines become line breaks.
    screen = re.sub(r"\x1b\[[0-9;?]*[A-LN-Za-z]", "\n", re.sub(r"\x1b\[[0-9;]*m", "", text)).replace("\r", "\n")
    shown = [line.rstrip() for line in screen.splitlines() if line.strip()]
    # The last frame: one line per target with its state and seconds.
    assert re.fullmatch(r"✓\s+x86_64-unknown-linux-gnu\s+done\s+\d+\.\d s", shown[-2]), shown
    assert re.fullmatch(r"✗\s+aarch64-unknown-linux-gnu\s+failed\s+\d+\.\d s", shown[-1]), shown
    # cargo's status line is shown on the target's live line, not printed above it;
    # its other lines and the toolkit's own are printed above.
    compiling = [line for line in shown if "Compiling serde" in line]
    assert compiling and all("x86_64-unknown-linux-gnu" in line and "building" in line for line in compiling)
    # cargo's own lines as cargo wrote them: no emoji for :warning:, not wrapped.
    assert "warning: unused variable :warning: in a/very/long/path/" + "x" * 150 in shown
    assert "inspected" in shown and "a quiet step" in shown


def test_on_compiling_is_called_for_each_crate_cargo_compiles(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[int] = []
    with log.progress(["a", "b"], on_compiling=lambda: calls.append(1)) as progress:
        progress.update(0, "building")
        log.tool_output("    Finished `dist` profile [optimized] target(s) in 0.06s\n")
        assert calls == []
        log.tool_output("   Compiling serde v1.0.200\n")
        log.tool_output("   Compiling app v0.1.0 (/src/app)\n")
    assert len(calls) == 2
