"""The one way the toolkit runs a subprocess.

Argument lists only (never a shell string), every call logged as `+ cmd`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
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
    early: bool = False,
) -> Result:
    """Run argv; return its output.

    capture: keep stdout (and stderr) instead of letting them reach the user.
    tee_stderr: show stderr live (cargo's progress and errors) and also keep
        it, so a failure can quote the tool's own first error line.
    env: variables added to (not replacing) the current environment.
    check: on a non-zero exit raise `error` naming `what` failed.
    early: (with tee_stderr) a command that may be started ahead next time: the first
        such run of the process is kept (first_launch) for the next identical command.
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
    global _first_launch
    if early and tee_stderr and _first_launch is None:
        _first_launch = Launch(tuple(args), dict(env or {}), str(cwd) if cwd is not None else None)
    try:
        if tee_stderr:
            teed = _take_ahead(args, cwd, full_env) or _Teed(args, cwd, full_env, capture=capture)
            stdout, stderr_text, returncode = teed.follow()
        else:
            completed = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                capture_output=capture,
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
        raise MissingToolError(
            f"'{args[0]}' is not installed or not on PATH",
            hint="run `invoke doctor` to see what is missing and how to install it",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what or args[0]} did not finish within {timeout} s") from exc
    result = Result(tuple(args), returncode, stdout, stderr_text)
    if check and returncode != 0:
        first = first_error_line(stderr_text) or first_error_line(stdout)
        detail = f": {first}" if first else ""
        raise error(
            f"{what or args[0]} failed with exit code {returncode}{detail}",
            hint="see its output above" if tee_stderr else None,
        )
    return result


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


@dataclass(frozen=True)
class Launch:
    """One command as started: what a later identical `run` may adopt."""

    argv: tuple[str, ...]
    env: dict[str, str]  # added to the current environment
    cwd: str | None


class _Teed:
    """A command whose error output is shown line by line as it comes (cargo's progress)
    while both streams are kept. Started ahead (see start_ahead), it has its own process
    group, so stopping it stops its children too (cargo's rustc), and its lines wait in
    the queue until a run adopts it and follows it."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path | str | None,
        env: Mapping[str, str] | None,
        *,
        capture: bool = True,
        ahead: bool = False,
    ) -> None:
        self.argv = tuple(argv)
        self.cwd = str(cwd) if cwd is not None else None
        self.full_env = dict(env if env is not None else os.environ)
        self.ahead = ahead
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            list(self.argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL if ahead else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            process_group=0 if ahead else None,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read_stderr, name="toolchain-tee-err", daemon=True)]
        if capture:
            self._readers.append(threading.Thread(target=self._read_stdout, name="toolchain-tee-out", daemon=True))
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        self.stdout.append(self.popen.stdout.read())

    def matches(self, argv: list[str], cwd: Path | None, full_env: Mapping[str, str] | None) -> bool:
        return (
            tuple(argv) == self.argv
            and (str(cwd) if cwd is not None else None) == self.cwd
            and dict(full_env if full_env is not None else os.environ) == self.full_env
        )

    def follow(self) -> tuple[str, str, int]:
        """Show its error output (what it wrote so far, then the rest live); its standard
        output, error output and exit code once it ends. Interrupted, one started ahead is
        stopped: Ctrl-C reaches only the terminal's process group, not its own."""
        shown: list[str] = []
        try:
            while (line := self.lines.get()) is not None:
                shown.append(line)
                log.tool_output(line)
            self.popen.wait()
            for reader in self._readers:
                reader.join()
        except BaseException:
            if self.ahead:
                self.stop()
            raise
        return "".join(self.stdout), "".join(shown), self.popen.returncode

    def stop(self) -> None:
        """Interrupt its process group as Ctrl-C would, then kill what is left; wait for it."""
        if self.popen.poll() is None:
            with _suppress_gone():
                os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with _suppress_gone():
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        with _suppress_gone():
            os.killpg(self.popen.pid, signal.SIGKILL)  # a child that outlived its parent
        for reader in self._readers:
            reader.join(timeout=5)


def _suppress_gone() -> contextlib.suppress:
    return contextlib.suppress(ProcessLookupError, PermissionError)


_ahead: _Teed | None = None
_adopted_at: float | None = None  # time.monotonic() at which the last adopted command started
_first_launch: Launch | None = None


def first_launch(forget: bool = False) -> Launch | None:
    """The first command run with early=True since the last forget."""
    global _first_launch
    launch = _first_launch
    if forget:
        _first_launch = None
    return launch


def start_ahead(launch: Launch) -> None:
    """Start `launch` now, before the code that decides the real command has run: the first
    `run(..., tee_stderr=True)` of the identical command (argument list, folder and whole
    environment) adopts it; any other such run, or stop_ahead(), stops it first. POSIX only
    (its own process group); elsewhere, and when it cannot start, nothing is started."""
    global _ahead
    stop_ahead()
    if os.name != "posix":
        return
    try:
        _ahead = _Teed(launch.argv, launch.cwd, {**os.environ, **launch.env}, ahead=True)
    except OSError:
        _ahead = None  # the real run will say what is missing


def stop_ahead() -> bool:
    """Stop a command started ahead that no run adopted; whether there was one."""
    global _ahead
    ahead, _ahead = _ahead, None
    if ahead is None:
        return False
    ahead.stop()
    return True


def adopted_at() -> float | None:
    """When (time.monotonic()) the last command `run` adopted had started, once; else None."""
    global _adopted_at
    started, _adopted_at = _adopted_at, None
    return started


def _take_ahead(argv: list[str], cwd: Path | None, full_env: Mapping[str, str] | None) -> _Teed | None:
    global _ahead, _adopted_at
    ahead = _ahead
    if ahead is None:
        return None
    if ahead.matches(argv, cwd, full_env):
        _ahead, _adopted_at = None, ahead.started
        name = Path(argv[0]).name
        log.info(f"{name} was started ahead {time.monotonic() - ahead.started:.2f} s ago: the same command, kept")
        return ahead
    log.info(f"stopped {Path(ahead.argv[0]).name} started ahead: this build runs another command")
    stop_ahead()
    return None


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
