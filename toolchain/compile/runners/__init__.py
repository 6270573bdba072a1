"""Runners: how cargo is invoked for a target (natively, through zig, in a
container...). One module per runner behind the Runner protocol (base.py),
registered in RUNNERS; `choose_runner` picks one from the target's
preference list."""

from __future__ import annotations

from dataclasses import dataclass

from toolchain.compile.runners.base import BuildJob, CargoInvocation, CommandRunner, Runner, cargo_build_args
from toolchain.compile.runners.container import ContainerRunner
from toolchain.compile.runners.cross import CrossRunner
from toolchain.compile.runners.native import NativeRunner
from toolchain.compile.runners.zig import ZigRunner
from toolchain.config.schema import did_you_mean
from toolchain.config.targets import RUNNER_NAMES, Target
from toolchain.errors import MissingToolError, UsageError

__all__ = [
    "RUNNERS",
    "BuildJob",
    "CargoInvocation",
    "CommandRunner",
    "RunnerChoice",
    "cargo_build_args",
    "choose_runner",
]

RUNNERS: dict[str, Runner] = {
    "native": NativeRunner(),
    "zig": ZigRunner(),
    "cross": CrossRunner(),
    "container": ContainerRunner(),
}


@dataclass(frozen=True)
class RunnerChoice:
    runner: Runner
    reason: str


def choose_runner(requested: str, target: Target, host: str) -> RunnerChoice:
    """The runner to use: the one asked for, or the first usable preference."""
    if requested != "auto":
        if requested not in RUNNER_NAMES:
            raise UsageError(
                f"unknown runner '{requested}'; {did_you_mean(requested, ['auto', *RUNNER_NAMES])}",
                hint="pass --runner auto, native, zig, cross or container",
            )
        runner = RUNNERS.get(requested)
        if runner is None:
            raise MissingToolError(
                f"the {requested} runner is not available in this version of the toolkit",
                hint="use --runner native",
            )
        problem = runner.problem(target, host)
        if problem:
            raise MissingToolError(f"the {requested} runner cannot build {target.triple} here: {problem}")
        return RunnerChoice(runner, "asked for with --runner")
    preference = target.runner_preference(host)
    if not preference:
        raise UsageError(
            f"{target.triple} cannot be built on a {host} host ({target.source.name} lists no runner for it)",
            hint=_other_host_hint(target),
        )
    problems = []
    for name in preference:
        runner = RUNNERS.get(name)
        if runner is None:
            problems.append(f"{name}: not available in this version")
            continue
        problem = runner.problem(target, host)
        if problem is None:
            return RunnerChoice(runner, f"first usable of {', '.join(preference)} for a {host} host")
        problems.append(f"{name}: {problem}")
    raise MissingToolError(f"no runner can build {target.triple} here ({'; '.join(problems)})")


def _other_host_hint(target: Target) -> str:
    hosts = ", ".join(target.runners)
    if target.triple.endswith("windows-msvc"):
        return f"build it on a Windows host ({hosts}); from Linux build x86_64-pc-windows-gnu instead"
    return f"build it on one of: {hosts}"
