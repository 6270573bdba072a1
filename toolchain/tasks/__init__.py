"""The invoke Collection, built from the task modules of this package.

ToolkitTask (made by this module's `task` decorator) is the one place a
ToolchainError is caught: it prints the one-line message and exits with
the error's code.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from toolchain.errors import BROKEN_PIPE, INTERRUPTED, ToolchainError, UsageError
from toolchain.log import log

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


def task(**options: Any) -> Callable[[F], ToolkitTask]:
    """invoke's @task with the toolkit's task class."""

    def decorate(function: F) -> ToolkitTask:
        made: ToolkitTask = invoke_task(klass=ToolkitTask, **options)(function)
        return made

    return decorate


def entry(function: F) -> F:
    """For task modules not yet on ToolkitTask: the same error handling."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _run_reporting_errors(function, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def target_list(*values: str) -> tuple[str, ...]:
    """Items of `--target a,b --target c` (the one parser of comma lists: targets, features)."""
    return tuple(t.strip() for value in values for t in value.split(",") if t.strip())


def required(value: str, option: str) -> str:
    """An option a task cannot run without (invoke's only required form is a positional,
    which swallows --help)."""
    if not value:
        raise UsageError(f"{option} is required", hint=f"pass {option} (see --help)")
    return value


def build_namespace() -> Collection:
    from toolchain.tasks import (
        build,
        ci,
        doctor,
        image,
        inspect,
        publish,
        release,
        size,
        smoke,
        toolchain,
        update,
        version,
    )

    namespace = Collection()
    for module in (build, doctor, inspect, size, smoke):
        namespace.add_task(module.TASK)
    for task in (*release.TASKS, *update.TASKS, *publish.TASKS):
        namespace.add_task(task)
    namespace.add_collection(toolchain.COLLECTION)
    namespace.add_collection(ci.COLLECTION)
    namespace.add_collection(version.COLLECTION)
    namespace.add_collection(image.COLLECTION)
    return namespace


# The collection a project's own tasks.py imports (`from toolchain.tasks import namespace`).
namespace = build_namespace()
