"""invoke doctor"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from invoke.context import Context

from toolchain.errors import MissingToolError
from toolchain.log import log
from toolchain.tasks.base import target_list, task

if TYPE_CHECKING:
    from toolchain.doctor import Check, StdCacheStatus


@task(
    help={
        "target": "only these target triple(s), comma-separated; exit non-zero if one cannot be built",
        "json": "print the report as a JSON document on stdout",
    },
    name="doctor",
)
def doctor_task(c: Context, target: str = "", json: bool = False) -> None:
    """Show what this machine has for each target, and how to fix what is missing."""
    from toolchain.config.settings import load_settings
    from toolchain.doctor import diagnose, signing_checks

    settings = load_settings()
    requested = [settings.catalog.target(triple).triple for triple in target_list(target)]
    signing = signing_checks(settings.authenticode, settings.macos_signing, settings.notary)
    report = diagnose(settings.catalog, requested or None, settings.cache, signing, settings.build.std_cache_dir)
    if json:
        log.json(report.to_dict())
    else:
        log.table(
            f"Tools on this {report.host} host",
            ["tool", "status", "found", "fix"],
            [[c.name, "ok" if c.ok else "missing", c.detail, c.fix or ""] for c in report.tools],
        )
        log.table(
            "Targets",
            ["target", "buildable", "runner", "route", "runs here", "problem / fix"],
            [
                [
                    t.triple,
                    "yes" if t.buildable else "no",
                    t.runner or "-",
                    t.route or "-",
                    t.runs_here,
                    t.problem or "",
                ]
                for t in report.targets
            ],
        )
        if report.cache is not None:
            store = report.cache
            state = "off" if store.backend == "none" else "reachable" if store.ok else "NOT reachable"
            log.table(
                "Compile cache ([cache])",
                ["backend", "store", "status", "fix"],
                [[store.backend, store.where, f"{state}: {store.detail}", store.fix or ""]],
            )
        if report.std_cache is not None:
            _print_std_cache(report.std_cache)
        log.table(
            "Platform signing ([sign], [notarize])",
            ["tool / identity", "status", "found", "fix"],
            [[c.name, _state(c), c.detail, c.fix or ""] for c in report.signing],
        )
        log.table(
            "Data in force (packaged, then the project's overrides)",
            ["kind", "name", "from"],
            [[d.kind, d.name, "\n".join(d.origins)] for d in report.data],
        )
    # Without --target, what must work is the host's own target.
    required = set(requested) if requested else {settings.catalog.host_triple()}
    failing = [t.triple for t in report.targets if t.triple in required and not t.buildable]
    if failing:
        raise MissingToolError(f"cannot build {', '.join(failing)} on this machine", hint="see the fix column above")


def _print_std_cache(status: StdCacheStatus) -> None:
    from toolchain.doctor import PRUNE_COMMAND
    from toolchain.report.charts import human as human_size

    rows = [
        [e.name, e.target, human_size(e.size), datetime.fromtimestamp(e.last_used, UTC).strftime("%Y-%m-%d %H:%M")]
        for e in status.entries
    ]
    log.table(
        f"std built from source ([build] std-cache): {human_size(status.size)} in {status.root}"
        f" (prune: `{PRUNE_COMMAND}`)",
        ["entry", "target", "size", "last used (UTC)"],
        rows or [["(empty)", "", "", ""]],
    )


def _state(check: Check) -> str:
    return "ok" if check.ok else "missing" if check.detail == "not found" else "PROBLEM"


TASK = doctor_task
