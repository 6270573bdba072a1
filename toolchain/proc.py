"""The one way the toolkit runs a subprocess.

Argument lists only (never a shell string), every call logged as `+ cmd`.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from toolchain.errors import MissingToolError, ToolchainError
from toolchain.log import log

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    tee_stderr: bool = False,
    check: bool = True,
    error: type[ToolchainError] = ToolchainError,
    what: str | None = None,
    quiet: bool = False,
    timeout: float | None = None,
    no_input: bool = False,
) -> Result:
    """Run argv; return its output.

    capture: keep stdout (and stderr) instead of letting them reach the user.
    tee_stderr: show stderr live (cargo's progress and errors) and also keep
        it, so a failure can quote the tool's own first error line.
    env: variables added to (not replacing) the current environment.
    check: on a non-zero exit raise `error` naming `what` failed.
    no_input: its input is empty (/dev/null), not this process's terminal or pipe.
    """
    if isinstance(argv, str):
        raise TypeError("proc.run takes an argument list, never a shell string")
    args = [str(a) for a in argv]
    if not quiet:
        log.command(args, dict(env) if env else None)
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        if tee_stderr:
            stdout, stderr_text, returncode = _tee(args, cwd, full_env, capture, no_input)
        else:
            completed = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                capture_output=capture,
                stdin=subprocess.DEVNULL if no_input else None,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
            )
            stdout, stderr_text, returncode = (
                completed.stdout or "",
                completed.stderr or "",
                completed.returncode,
            )
    except FileNotFoundError as exc:
        if cwd is not None and not Path(cwd).is_dir():
            raise error(f"cannot run {Path(args[0]).name}: the folder {cwd} does not exist") from exc
        raise MissingToolError(
            f"'{args[0]}' is not installed or not on PATH",
            hint="run `invoke doctor` to see what is missing and how to install it",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what or args[0]} did not finish within {timeout} s") from exc
    result = Result(tuple(args), returncode, stdout, stderr_text)
    if check:
        require_success(result, error=error, what=what, tee_stderr=tee_stderr)
    return result


def require_success(
    result: Result, *, error: type[ToolchainError] = ToolchainError, what: str | None = None, tee_stderr: bool = False
) -> None:
    """Raise `error` naming what failed and the tool's own first error line, unless it exited 0."""
    if result.returncode == 0:
        return
    first = first_error_line(result.stderr) or first_error_line(result.stdout)
    detail = f": {first}" if first else ""
    raise error(
        f"{what or result.argv[0]} failed with exit code {result.returncode}{detail}",
        hint="see its output above" if tee_stderr else None,
    )


def output(argv: Sequence[str | Path], *, timeout: float | None = None) -> str | None:
    """What a command prints, stripped, when it succeeds; None when it fails.
    For asking a tool something (its version, a path, a commit): unlogged."""
    result = run(argv, check=False, quiet=True, timeout=timeout)
    return result.stdout.strip() if result.returncode == 0 else None


def run_to(
    argv: Sequence[str | Path], stdout: BinaryIO, *, error: type[ToolchainError] = ToolchainError, what: str
) -> None:
    """Run argv with its standard output going to an open binary file (a
    compressor's stream); its error output is kept for the one-line error."""
    args = [str(a) for a in argv]
    log.command(args, None)
    try:
        completed = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE, check=False)
    except FileNotFoundError as exc:
        raise MissingToolError(f"'{args[0]}' is not installed or not on PATH", hint="run `invoke doctor`") from exc
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        raise error(f"{what} failed with exit code {completed.returncode}" + (f": {message[0]}" if message else ""))


def _tee(
    argv: list[str], cwd: Path | None, env: Mapping[str, str] | None, capture: bool, no_input: bool = False
) -> tuple[str, str, int]:
    """Run argv showing its error output line by line as it comes (cargo's progress) while
    keeping it; its standard output (when `capture`), error output and exit code. Standard
    output is read on a thread of its own, so neither pipe can fill and stall the tool."""
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if no_input else None,
        text=True,
        errors="replace",
    )
    kept: list[str] = []
    reader = None
    if capture:
        assert popen.stdout is not None
        stdout = popen.stdout
        reader = threading.Thread(target=lambda: kept.append(stdout.read()), name="toolchain-tee-out", daemon=True)
        reader.start()
    shown: list[str] = []
    assert popen.stderr is not None
    with popen:
        for line in popen.stderr:
            shown.append(line)
            log.tool_output(line)
        popen.wait()
        if reader is not None:
            reader.join()
    return "".join(kept), "".join(shown), popen.returncode


def first_error_line(text: str) -> str | None:
    """The tool's own first `error...` line, for a one-line summary."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("error"):
            return stripped[:300]
    return None


def which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def soon(function: Callable[[], T], name: str) -> Future[T]:
    """function() on a daemon thread of its own, started now (a tool asked something while
    other work runs); its result, or its exception, when the Future is asked."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
