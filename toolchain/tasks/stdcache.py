"""invoke cache.prune-std"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.tasks.base import task


@task(
    help={
        "older-than-days": "remove entries no build has used for this many days (default 30)",
        "everything": "remove every entry (a build holding one is left alone)",
        "json": "print what was removed and kept as JSON on stdout",
    },
    name="prune-std",
)
def prune_std_task(c: Context, older_than_days: float = 30.0, everything: bool = False, json: bool = False) -> None:
    """Trim the machine's cache of std built from source ([build] std-cache-dir): entries
    unused for a while, broken ones and leftovers of interrupted builds."""
    from toolchain.compile.stdcache import cache_root, prune
    from toolchain.config.settings import load_settings

    if older_than_days < 0:
        raise UsageError(f"--older-than-days {older_than_days:g} is negative", hint="pass 0 or more days")
    root = cache_root(load_settings().build.std_cache_dir)
    result = prune(root, older_than_days, everything=everything)
    if json:
        log.json(
            {
                "schema": "toolchain.std-cache-prune/v1",
                "root": str(root),
                "removed": list(result.removed),
                "kept": list(result.kept),
                "in_use": list(result.in_use),
                "freed": result.freed,
            }
        )
        return
    for name in result.in_use:
        log.info(f"kept {name}: a build is using it")
    log.info(f"removed {len(result.removed)} of the std cache's entries in {root} ({result.freed} bytes freed)")


COLLECTION = Collection("cache", prune_std_task)
