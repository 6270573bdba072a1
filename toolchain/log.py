"""The one logger: rich on a terminal, plain lines elsewhere.

Progress and commands go to stderr; results (tables, JSON) go to stdout so
`--json` output can be piped. Plain mode is used when stderr is not a TTY,
when NO_COLOR is set, or under CI; GitHub Actions also gets `::group::`
folding around long steps.

A multi-target build shows one line per target (`progress`): live lines
in rich mode, one plain line per change of state elsewhere. Work done on a
helper thread can hold its lines (`held`) for the main thread to print as
one block, so they never land inside another step's output or group.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live


def env_flag(name: str) -> bool:
    """Whether an on/off variable (CI, NO_COLOR) is on: set to anything but empty, 0, false or no."""
    return os.environ.get(name, "").lower() not in ("", "0", "false", "no")


# cargo's status lines ("   Compiling serde v1.0.2"): the verb is right-aligned in 12 columns.
_CARGO_STATUS = re.compile(r"^\s{0,11}(Compiling|Checking|Building|Fresh|Finished|Downloading|Downloaded|Locking|"
                           r"Updating|Blocking|Adding|Unpacking)\s")  # fmt: skip

STATES = ("queued", "building", "verifying", "packaging", "done", "failed")
_MARKS = {"queued": "·", "done": "✓", "failed": "✗"}  # the active states get "⠿"


@dataclass
class _Line:
    """One target's line: its state, what it is doing, and when it started."""

    name: str
    state: str = "queued"
    detail: str = ""
    started: float | None = None
    seconds: float | None = None  # set when done or failed
    compiled: int = 0  # crates cargo has compiled so far


@dataclass
class Held:
    """Output lines kept back by one thread: (rich markup or None, plain text)."""

    lines: list[tuple[str | None, str]] = field(default_factory=list)

    def replay(self) -> None:
        for rich_text, plain in self.lines:
            log._emit(plain, rich_text)
        self.lines.clear()


class Progress:
    """One line per target. States move queued → building → verifying →
    packaging → done, or to failed from any of them."""

    def __init__(
        self, logger: Logger, names: Sequence[str], show: bool, on_compiling: Callable[[], None] | None = None
    ) -> None:
        self._logger = logger
        self._on_compiling = on_compiling
        self._lines = [_Line(name) for name in names]
        self._show = show
        self._lock = threading.Lock()
        self.live: Live | None = None
        self._drawn = 0.0

    def update(self, index: int, state: str, detail: str = "") -> None:
        """Move target `index` (its position in the build) to `state`."""
        if state not in STATES:
            raise ValueError(f"unknown progress state {state!r}")
        with self._lock:
            line = self._lines[index]
            now = time.monotonic()
            if line.started is None and state != "queued":
                line.started = now
            line.state, line.detail = state, detail
            if state in ("done", "failed"):
                line.seconds = now - (line.started or now)
            shown = self._plain_line(index, line)
        if self.live is not None:
            self._refresh(force=True)
        elif self._show:
            # Plain lines show the change when it happens, even from a thread that holds
            # its output; under GitHub they wait with it, out of another step's group.
            self._logger._emit(shown, now=not self._logger.github)

    def cargo_line(self, text: str) -> bool:
        """Show a cargo status line on the building target's line; True if taken."""
        match = _CARGO_STATUS.match(text)
        if match is None:
            return False
        with self._lock:
            building = [line for line in self._lines if line.state == "building"]
            if not building:
                return False
            line = building[0]
            compiling = match.group(1) == "Compiling"
            line.compiled += compiling
            line.detail = text.strip()
        if compiling and self._on_compiling is not None:
            self._on_compiling()
        if self.live is not None:
            self._refresh(force=False)
        # Plain mode keeps cargo's own lines in the log; rich mode shows them on the live line.
        return self._show and self.live is not None

    def _refresh(self, force: bool) -> None:
        # A change of state and the first cargo line after it are drawn at once;
        # further cargo lines at most 4 times a second.
        now = time.monotonic()
        if self.live is not None and (force or now - self._drawn > 0.25):
            self._drawn = 0.0 if force else now
            self.live.refresh()

    def states(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(line.name, line.state) for line in self._lines]

    def _plain_line(self, index: int, line: _Line) -> str:
        text = f"[{index + 1}/{len(self._lines)}] {line.name}: {line.state}"
        if line.detail:
            text += f" ({line.detail})"
        if line.seconds is not None:
            text += f" in {line.seconds:.1f} s"
        return text

    def render(self) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        colours = {"queued": "dim", "done": "green", "failed": "bold red"}
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        with self._lock:
            for line in self._lines:
                seconds = line.seconds if line.seconds is not None else (now - line.started if line.started else None)
                mark = _MARKS.get(line.state, "⠿")
                detail = line.detail
                if line.state == "building" and line.compiled:
                    detail = f"{detail} [{line.compiled} compiled]"
                table.add_row(
                    Text(mark, style=colours.get(line.state, "cyan")),
                    Text(line.name, style="bold"),
                    Text(line.state, style=colours.get(line.state, "cyan")),
                    Text("" if seconds is None else f"{seconds:5.1f} s", style="dim"),
                    Text(detail, style="dim", overflow="ellipsis", no_wrap=True),
                )
        return table


class Logger:
    def __init__(self) -> None:
        self.quiet = False
        self._console: Console | None = None
        self._out_console: Console | None = None
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._progress: Progress | None = None

    # Decided at each call, not at import: tests and tasks change the env.
    @property
    def fancy(self) -> bool:
        return sys.stderr.isatty() and not env_flag("NO_COLOR") and not env_flag("CI")

    @property
    def github(self) -> bool:
        return os.environ.get("GITHUB_ACTIONS") == "true"

    def _err_console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def _stdout_console(self) -> Console:
        if self._out_console is None:
            from rich.console import Console

            self._out_console = Console(highlight=False)
        return self._out_console

    def _emit(self, plain: str, rich_text: str | None = None, now: bool = False) -> None:
        """Write one line: `rich_text` (markup) on a terminal, `plain` elsewhere.
        A thread that holds its output keeps the line instead, unless `now`."""
        held: Held | None = getattr(self._local, "held", None)
        if held is not None and not now:
            held.lines.append((rich_text, plain))
            return
        if self.fancy:
            if rich_text is None:
                self._err_console().print(plain, markup=False)
            else:
                self._err_console().print(rich_text)
            return
        with self._write_lock:  # one write per line: threads never split a line
            sys.stderr.write(plain + "\n")
            sys.stderr.flush()

    def _plain(self, line: str) -> None:
        self._emit(line)

    def info(self, message: str) -> None:
        if self.quiet:
            return
        self._emit(message)

    def step(self, message: str) -> None:
        """A headline for one stage of the pipeline."""
        if self.quiet:
            return
        self._emit(f"==> {message}", f"[bold cyan]==>[/] [bold]{_escape(message)}[/]" if self.fancy else None)

    def warn(self, message: str) -> None:
        if self.github:
            self._plain(f"::warning::{message}")
        else:
            self._emit(f"warning: {message}", f"[yellow]warning:[/] {_escape(message)}" if self.fancy else None)

    def error(self, message: str) -> None:
        if self.github:
            self._plain(f"::error::{message}")
        else:
            self._emit(f"error: {message}", f"[bold red]error:[/] {_escape(message)}" if self.fancy else None)

    def command(self, argv: Sequence[str | Path], env: dict[str, str] | None = None) -> None:
        """Log a subprocess the way a shell trace does: `+ cmd args`."""
        if self.quiet:
            return
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        line = "+ " + (prefix + " " if prefix else "") + shlex.join(str(a) for a in argv)
        self._emit(line, f"[dim]{_escape(line)}[/]" if self.fancy else None)

    def tool_output(self, line: str) -> None:
        """One line of a tool's live error output (cargo's progress and diagnostics)."""
        progress = self._progress
        if progress is not None and getattr(self._local, "held", None) is None and progress.cargo_line(line):
            return
        if self.quiet:
            return
        if self.fancy and getattr(self._local, "held", None) is None:
            # As the tool wrote it: no emoji codes, no wrapping inside paths (above live lines, if any).
            self._err_console().print(line.rstrip("\n"), markup=False, emoji=False, highlight=False, soft_wrap=True)
        else:
            self._emit(line.rstrip("\n"))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Fold a long step in GitHub's log; a headline elsewhere."""
        started = time.monotonic()
        if self.github and not self.quiet:
            self._plain(f"::group::{title}")
        else:
            self.step(title)
        try:
            yield
        finally:
            if self.github and not self.quiet:
                self._plain("::endgroup::")
            elif not self.quiet and time.monotonic() - started > 2:
                self.info(f"    ({title}: {time.monotonic() - started:.1f} s)")

    @contextmanager
    def held(self, into: Held | None = None) -> Iterator[Held]:
        """Keep this thread's output lines (in `into`, or a new Held) instead of
        writing them; the caller replays them on the main thread (`Held.replay`)."""
        kept = into if into is not None else Held()
        previous = getattr(self._local, "held", None)
        self._local.held = kept
        try:
            yield kept
        finally:
            self._local.held = previous

    @contextmanager
    def progress(
        self, names: Sequence[str], show: bool = True, on_compiling: Callable[[], None] | None = None
    ) -> Iterator[Progress]:
        """One line per target for the length of a build: live lines on a
        terminal, a plain line per change of state elsewhere (none if not `show`).
        `on_compiling` is called on each line in which cargo starts compiling a crate."""
        shown = show and not self.quiet
        progress = Progress(self, names, shown, on_compiling)
        live = None
        if shown and self.fancy and self._progress is None:
            from rich.live import Live

            live = Live(console=self._err_console(), get_renderable=progress.render, refresh_per_second=4)
            progress.live = live
        self._progress = progress
        try:
            if live is not None:
                with live:
                    yield progress
            else:
                for index in range(len(names)):
                    progress.update(index, "queued")
                yield progress
        finally:
            self._progress = None

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal while a quiet step runs; one line elsewhere."""
        # rich shows one live display at a time: under progress lines, a plain line.
        if self.fancy and not self.quiet and self._progress is None:
            with self._err_console().status(message):
                yield
        else:
            self.info(message)
            yield

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A result table on stdout."""
        cells = [[("" if c is None else str(c)) for c in row] for row in rows]
        if sys.stdout.isatty() and not env_flag("NO_COLOR") and not env_flag("CI"):
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for column in columns:
                table.add_column(column)
            for row in cells:
                table.add_row(*row, end_section=False)
            self._stdout_console().print(table)
            return
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        print("  ".join("-" * w for w in widths))
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.flush()

    def json(self, document: Any) -> None:
        """A machine-readable result on stdout, nothing else on that stream."""
        print(json.dumps(document, indent=2, sort_keys=True))
        sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


log = Logger()
