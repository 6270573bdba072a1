"""What a build's output depends on beyond the bytes of its inputs: the UTC day.

latest.json carries `released` and `expires`, so a release folder that holds it is
written for one UTC day. Both caches that decide whether to redo a build's work use
this one model: the release folder's stamp (release/folder.py) records the day its
dated files were written for (None when it has none) and makes them again on another
day; the fresh check (compile/fresh.py) keeps the stamp's day in its fingerprint and is
not fresh on another day, so a no-op build the next day reaches the stamp and renews
them. Its own module: the fresh check imports nothing heavier than this.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

# The files of a release folder whose contents follow the day they were written on.
DATED_FILES = frozenset({"latest.json"})


def utc_day() -> str:
    """Today, in UTC, as YYYY-MM-DD."""
    return datetime.now(UTC).date().isoformat()


def day_of(names: Iterable[str]) -> str | None:
    """The day files with these names depend on: today when one of them is dated, else None."""
    return utc_day() if DATED_FILES.intersection(names) else None
