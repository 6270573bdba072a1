"""The invoke Collection, built from the task modules of this package.

`entry` is the one place a ToolchainError is caught: it prints the one-line
message and exits with the error's code.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task

from toolchain.errors import ToolchainError
from toolchain.log import log

F = TypeVar("F", bound=Callable[..., Any])


def entry(function: F) -> F:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ToolchainError as exc:
            log.error(str(exc))
            raise Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            log.error("interrupted")
            raise Exit(code=130) from None
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise Exit(code=141) from None

    return wrapper  # type: ignore[return-value]


class _OptionalPositional(Argument):
    """A positional argument that may be left out.

    invoke has only required positionals. The parser asks whether one is
    still missing twice: to decide whether a token fills it (yes: keep it
    missing so `inspect PATH` works) and, when the task's tokens end, to
    complain about an absent one (no: it is optional).
    """

    @property
    def value(self) -> Any:
        value = super().value
        if value is None:
            handling = _caller_frame("handle")
            if handling is not None and str(handling.f_locals.get("token", "")).startswith("-"):
                return ""  # a flag such as --help is never the positional
            if _caller_frame("complete_context") is not None:
                return ""
        return value

    @value.setter
    def value(self, arg: Any) -> None:
        self.set_value(arg, cast=True)


def _caller_frame(function_name: str, depth: int = 6) -> FrameType | None:
    frame: FrameType | None = sys._getframe(2)
    for _ in range(depth):
        if frame is None or frame.f_code.co_name == function_name:
            return frame
        frame = frame.f_back
    return None


class ToolkitTask(Task[Any]):
    """A task whose positional arguments with a None default are optional."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        for argument in arguments:
            if argument.positional:
                argument.__class__ = _OptionalPositional
        return arguments


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
