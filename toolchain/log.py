"""The one logger: rich on a terminal, plain lines elsewhere.

Progress and commands go to stderr; results (tables, JSON) go to stdout so
`--json` output can be piped. Plain mode is used when stderr is not a TTY,
when NO_COLOR is set, or under CI; GitHub Actions also gets `::group::`
folding around long steps.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").lower() not in ("", "0", "false", "no")


class Logger:
    def __init__(self) -> None:
        self.quiet = False
        self._console: Console | None = None
        self._out_console: Console | None = None

    # Decided at each call, not at import: tests and tasks change the env.
    @property
    def fancy(self) -> bool:
        return sys.stderr.isatty() and not _truthy("NO_COLOR") and not _truthy("CI")

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

    def _plain(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def info(self, message: str) -> None:
        if self.quiet:
            return
        if self.fancy:
            self._err_console().print(message, markup=False)
        else:
            self._plain(message)

    def step(self, message: str) -> None:
        """A headline for one stage of the pipeline."""
        if self.quiet:
            return
        if self.fancy:
            self._err_console().print(f"[bold cyan]==>[/] [bold]{_escape(message)}[/]")
        else:
            self._plain(f"==> {message}")

    def warn(self, message: str) -> None:
        if self.github:
            self._plain(f"::warning::{message}")
        elif self.fancy:
            self._err_console().print(f"[yellow]warning:[/] {_escape(message)}")
        else:
            self._plain(f"warning: {message}")

    def error(self, message: str) -> None:
        if self.github:
            self._plain(f"::error::{message}")
        elif self.fancy:
            self._err_console().print(f"[bold red]error:[/] {_escape(message)}")
        else:
            self._plain(f"error: {message}")

    def command(self, argv: Sequence[str | Path], env: dict[str, str] | None = None) -> None:
        """Log a subprocess the way a shell trace does: `+ cmd args`."""
        if self.quiet:
            return
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        line = "+ " + (prefix + " " if prefix else "") + shlex.join(str(a) for a in argv)
        if self.fancy:
            self._err_console().print(f"[dim]{_escape(line)}[/]")
        else:
            self._plain(line)

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
    def status(self, message: str) -> Iterator[None]:
        """A spinner on a terminal while a quiet step runs; one line elsewhere."""
        if self.fancy and not self.quiet:
            with self._err_console().status(message):
                yield
        else:
            self.info(message)
            yield

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A result table on stdout."""
        cells = [[("" if c is None else str(c)) for c in row] for row in rows]
        if sys.stdout.isatty() and not _truthy("NO_COLOR") and not _truthy("CI"):
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
