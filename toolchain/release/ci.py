"""CI for a release: the build matrix from the target data, and a GitHub
Actions workflow (plan → build per target → package/sign/verify → publish
on tags; a dry run with a throwaway key on pull requests)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from toolchain.config.catalog import Catalog
from toolchain.config.targets import Target
from toolchain.errors import ConfigError


@dataclass(frozen=True)
class MatrixEntry:
    target: str
    host: str
    os: str  # GitHub runner label
    runner: str  # the toolkit's runner

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "host": self.host, "os": self.os, "runner": self.runner}


def build_host(target: Target) -> str:
    """Where CI builds a target: Linux targets on x86_64 Linux (zig pins the
    glibc floor); the others on a host that runs them, so they can be smoke-run."""
    if target.os == "linux" and "linux-x86_64" in target.runners:
        return "linux-x86_64"
    for host, how in target.run.items():
        if how == "native" and host in target.runners:
            return host
    return next(iter(target.runners))


def matrix(known: Catalog) -> list[MatrixEntry]:
    entries = []
    for target in sorted(known.targets.values(), key=lambda t: t.triple):
        if not target.release:
            continue
        host = build_host(target)
        if not target.ci.github_runs_on:
            raise ConfigError(
                f"{target.source}: release target {target.triple} names no CI runner",
                hint='add [ci] github-runs-on = "LABEL" (the GitHub Actions runner that builds it)',
            )
        entries.append(MatrixEntry(target.triple, host, target.ci.github_runs_on, target.runners[host][0]))
    return entries


WORKFLOW_NAME = "release.yml"
# Beside the release workflow, not in it: a schedule there would run the
# whole release pipeline. Secrets are named there; their values stay in GitHub.
AUDIT_WORKFLOW_NAME = "audit.yml"
# Likewise: the channel's scheduled renewal re-signs, it does not rebuild.
RENEW_WORKFLOW_NAME = "renew.yml"


def workflow(name: str) -> str:
    """A GitHub Actions workflow as the toolkit ships it (data/templates/NAME)."""
    return resources.files("toolchain").joinpath("data", "templates", name).read_text(encoding="utf-8")
