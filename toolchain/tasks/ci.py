"""invoke ci.matrix, ci.workflow"""

from __future__ import annotations

import json as json_lib
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import task


@task(
    help={"json": "print the matrix as a JSON list on stdout", "compact": "one line of JSON (for $GITHUB_OUTPUT)"},
    name="matrix",
)
def matrix_task(c: Context, json: bool = False, compact: bool = False) -> None:
    """The CI build matrix: one entry per release target, with its runner OS and runner."""
    from toolchain.config.settings import load_settings
    from toolchain.release.ci import matrix

    entries = [e.to_dict() for e in matrix(load_settings().catalog)]
    if compact:
        print(json_lib.dumps(entries, separators=(",", ":")))
    elif json:
        log.json(entries)
    else:
        log.table("CI build matrix", ["target", "host", "GitHub runner", "runner"], [list(e.values()) for e in entries])


@task(
    help={
        "path": "where to write the release workflow (audit.yml and renew.yml go beside it); "
        "default: .github/workflows/release.yml"
    },
    name="workflow",
)
def workflow_task(c: Context, path: str = ".github/workflows/release.yml") -> None:
    """Write GitHub Actions workflows: the release (build matrix, sign, attest, publish on tags), a scheduled
    audit and a scheduled renewal of the channel."""
    from toolchain.release.ci import AUDIT_WORKFLOW_NAME, RENEW_WORKFLOW_NAME, WORKFLOW_NAME, workflow

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(workflow(WORKFLOW_NAME))
    written = [out]
    for name in (AUDIT_WORKFLOW_NAME, RENEW_WORKFLOW_NAME):
        beside = out.with_name(name)
        beside.write_text(workflow(name))
        written.append(beside)
    log.info(f"wrote {', '.join(map(str, written))}")


COLLECTION = Collection("ci", matrix_task, workflow_task)
