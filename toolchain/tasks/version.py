"""invoke version.bump"""

from __future__ import annotations

from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import task


@task(
    help={
        "manifest-path": "the crate's Cargo.toml; default: the configured project",
        "dry-run": "print the new version; change nothing",
        "json": "print the result as JSON on stdout",
    },
    name="bump",
)
def bump_task(c: Context, manifest_path: str = "", dry_run: bool = False, json: bool = False) -> None:
    """Bump the crate version from conventional commits and update CHANGELOG.md (git-cliff)."""
    from toolchain.config.settings import load_settings
    from toolchain.release.version import bump

    result = bump(Path(manifest_path) if manifest_path else load_settings().manifest(), dry_run=dry_run)
    if json:
        log.json({"old": result.old, "new": result.new, "level": result.level, "commits": list(result.commits)})
        return
    verb = "would bump" if dry_run else "bumped"
    log.info(f"{verb} {result.old} -> {result.new} ({result.level}, {len(result.commits)} commits)")


COLLECTION = Collection("version", bump_task)
