"""Safe in-place update of an installed binary and its SQLite data.

verify the artifact (signatures, digests, and every archive member against
the signed manifest) → lock → unpack the new binary beside the old one
(streamed, capped, digest-checked) → journal → snapshot (binary + every
SQLite file, through SQLite's online backup API) → atomic swap → the new
binary's upgrade checks (from the signed manifest: the app's migration and
self-check, `--version` when it declares none) → commit and prune, or
restore everything from the snapshot. Every step is written to a journal first, so an updater
killed at any point is finished or undone by the next `update` or
`recover`: the result is fully old or fully new, never a mix.

A restore that cannot finish, or an interrupted one whose files changed
since, leaves the journal `stuck`: every later update, recover and rollback
stops with one line until `recover --force` (restore anyway) or
`recover --abandon` (keep the current files). Nothing is ever restored
silently over data written after the failure.

`update()` is the library entry point an app's own `self-update` can call:
`from toolchain.update import update`. The steps live in artifact.py (fetch
and verify the archive, check and extract members), journal.py (the journal,
its states and the lock), snapshot.py (snapshot, restore, prune) and
updater.py (update, rollback and recover), over files.py's file primitives.
"""

from toolchain.update.updater import UpdateResult, recover, rollback, update

__all__ = ["UpdateResult", "recover", "rollback", "update"]
