"""The subprocess helper and the logger."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from toolchain import proc
from toolchain.errors import BuildError, MissingToolError
from toolchain.log import log


def test_run_logs_the_command_and_returns_output(capsys: pytest.CaptureFixture[str]) -> None:
    result = proc.run(["echo", "hello world"])
    assert result.stdout == "hello world\n"
    assert "+ echo 'hello world'" in capsys.readouterr().err


def test_run_refuses_a_shell_string() -> None:
    with pytest.raises(TypeError, match="argument list"):
        proc.run("echo hi")


def test_failure_raises_the_given_error_with_the_tools_first_error_line() -> None:
    with pytest.raises(BuildError, match=r"demo failed with exit code 3: error: it broke"):
        proc.run(["sh", "-c", "echo noise >&2; echo 'error: it broke' >&2; exit 3"], error=BuildError, what="demo")


def test_missing_program_points_to_doctor() -> None:
    with pytest.raises(MissingToolError, match=r"'no-such-tool-xyz' is not installed.*invoke doctor"):
        proc.run(["no-such-tool-xyz"])


def test_output_is_the_stripped_answer_or_none_when_the_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert proc.output(["sh", "-c", "echo '  1.2.3 '; echo noise >&2"]) == "1.2.3"
    assert proc.output(["sh", "-c", "echo partial; exit 1"]) is None
    assert proc.output(["sh", "-c", "true"]) == ""
    assert "+ sh" not in capsys.readouterr().err  # a question to a tool is not logged as a command
    with pytest.raises(MissingToolError):
        proc.output(["no-such-tool-xyz"])


def test_tee_keeps_stderr_and_shows_it(capsys: pytest.CaptureFixture[str]) -> None:
    result = proc.run(["sh", "-c", "echo out; echo progress >&2"], tee_stderr=True)
    assert result.stdout == "out\n" and result.stderr == "progress\n"
    assert "progress" in capsys.readouterr().err


def test_plain_table_when_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    log.table("Title", ["a", "long column"], [["x", 1], ["yy", None]])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Title", "a   long column", "--  -----------", "x   1", "yy"]


def test_github_group_markers(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with log.group("step one"):
        log.info("inside")
    assert capsys.readouterr().err.splitlines() == ["::group::step one", "inside", "::endgroup::"]


def test_a_missing_folder_is_named_not_the_program(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as caught:
        proc.run(["true"], cwd=tmp_path / "nope", error=BuildError)
    assert not isinstance(caught.value, MissingToolError)
    assert f"{tmp_path / 'nope'} does not exist" in str(caught.value)


def test_the_sysroot_asked_ahead_leaves_its_errors_to_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread only warms a cache: a failure there is the build's to report, on its own path,
    never an unhandled exception in a thread."""
    from toolchain.compile import routes
    from toolchain.compile.context import CargoContext

    unhandled: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", unhandled.append)
    before = set(threading.enumerate())
    routes.ask_sysroot_ahead(CargoContext(tmp_path / "nope"))
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=60)
    assert not unhandled, unhandled[0].exc_value
