"""What every task module uses: the task class and decorator, and the
parsers of the option forms invoke lacks.

ToolkitTask (made by this module's `task` decorator) is the one place a
ToolchainError is caught: it prints the one-line message and exits with
the error's code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from toolchain.errors import BROKEN_PIPE, INTERRUPTED, ToolchainError, UsageError
from toolchain.log import log

if TYPE_CHECKING:
    from toolchain.config.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _run_reporting_errors(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The one place a ToolchainError becomes its one-line message and exit code."""
    try:
        return function(*args, **kwargs)
    except ToolchainError as exc:
        log.error(str(exc))
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        log.error("interrupted")
        raise Exit(code=INTERRUPTED) from None
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise Exit(code=BROKEN_PIPE) from None


class ToolkitTask(Task[Any]):
    """Every toolkit task: errors end as one line and their exit code."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _run_reporting_errors(super().__call__, *args, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        # `-h` stays invoke's help after a task name: no option gets it as its short flag.
        return super().arg_opts(name, default, {*taken_names, "h"})


def task(**options: Any) -> Callable[[F], ToolkitTask]:
    """invoke's @task with the toolkit's task class."""

    def decorate(function: F) -> ToolkitTask:
        made: ToolkitTask = invoke_task(klass=ToolkitTask, **options)(function)
        return made

    return decorate


def target_list(*values: str) -> tuple[str, ...]:
    """Items of `--target a,b --target c` (the one parser of comma lists: targets, features)."""
    return tuple(t.strip() for value in values for t in value.split(",") if t.strip())


def out_folder(given: str, settings: Settings) -> Path:
    """The folder a task works in: the one given (--out-dir, --path), else [build] out-dir."""
    return Path(given) if given else settings.out_dir


def required(value: str, option: str) -> str:
    """An option a task cannot run without (invoke's only required form is a positional,
    which swallows --help)."""
    if not value:
        raise UsageError(f"{option} is required", hint=f"pass {option} (see --help)")
    return value
