"""Re-signing a release folder's channel (latest.json) without rebuilding.

A channel expires ([update] metadata-days) so a frozen mirror or a replayed
pointer is refused; a project that does not release for that long must renew
it. Renewal writes a fresh `expires` (and, for a rollout or a withdrawal, the
share of installed copies that take the release, or the versions pulled
back), keeps every other field of latest.json as it was, and re-signs
latest.json and sha256.sum (which lists it). Nothing else in the folder
changes: the archives, manifest and provenance keep their bytes. The key may be
the release key or a channel key the folder's key lists name (`invoke rotate-key
--channel-key`): a scheduled renewal then holds only that key, and the release
key stays offline with the root.

The new files are made in a scratch folder beside the release and moved in
one by one, each with os.replace: a reader sees the old or the new file,
never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolchain.atomic import write_atomic
from toolchain.digest import sha256_file
from toolchain.errors import ReleaseCheckError, SignatureError, UsageError
from toolchain.log import log
from toolchain.release.folder import RELEASE_STAMP, SUMS_NAME, parse_sums, verify_release
from toolchain.release.keylist import channel_signer, key_id_hex
from toolchain.release.latest import LATEST_NAME, Latest, parse_latest, rewritten
from toolchain.release.signing import SecretKey, parse_public_key, sign_file

# What a renewal rewrites: a publish of a renewed folder may replace exactly these.
RENEWED_NAMES = frozenset(
    {LATEST_NAME, f"{LATEST_NAME}.minisig", f"{LATEST_NAME}.sha256", SUMS_NAME, f"{SUMS_NAME}.minisig"}
)


@dataclass(frozen=True)
class Renewal:
    before: Latest
    after: Latest


def renew_channel(
    folder: Path,
    key: SecretKey,
    public_key_text: str,
    metadata_days: int,
    *,
    now: datetime | None = None,
    rollout: int | None = None,
    withdraw: str = "",
    root_text: str = "",
) -> Renewal:
    """Re-sign the folder's latest.json valid for metadata_days from now (with
    this rollout share, and `withdraw` added to its withdrawn versions). `key` is the
    release key, or a channel key of the folder's key lists (followed from `root_text`,
    else from the release key): the one an unattended renewal holds."""
    public = parse_public_key(public_key_text)
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    if public.key_id != key.key_id:
        root = parse_public_key(root_text, "--root") if root_text else None
        try:
            channel_signer(folder, public, key.key_id, moment, root)
        except SignatureError as exc:
            raise UsageError(
                f"the signing key {key_id_hex(key.key_id)} is not the release's key {key_id_hex(public.key_id)} "
                f"nor a channel key of its key lists ({exc.message})",
                hint="renew with the release key, or name this key with `invoke rotate-key --channel-key` first",
            ) from None
    if rollout is not None and not 0 <= rollout <= 100:
        raise UsageError(f"rollout {rollout}% is not a share", hint="pass a whole percent from 0 to 100")
    verify_release(folder, public_key_text, root_text)  # renew only a sound release: its digests are re-listed
    if not (folder / LATEST_NAME).is_file():
        raise ReleaseCheckError(
            f"{folder} has no {LATEST_NAME}", hint="a channel is one app's release folder: package one app"
        )
    text = (folder / LATEST_NAME).read_bytes()
    before = parse_latest(text)
    if withdraw and withdraw == before.version:
        raise UsageError(
            f"the channel in {folder} points at {withdraw} itself",
            hint="withdraw from the folder of the newest good release: its channel points back to it",
        )
    withdrawn = (*before.withdrawn, withdraw) if withdraw else None
    new_text = rewritten(text, expires=moment + timedelta(days=metadata_days), rollout=rollout, withdrawn=withdrawn)
    after = parse_latest(new_text)
    sums = parse_sums(folder / SUMS_NAME)
    scratch = Path(tempfile.mkdtemp(prefix=".renew-", dir=folder))
    try:
        (scratch / LATEST_NAME).write_bytes(new_text)
        sums[LATEST_NAME] = sha256_file(scratch / LATEST_NAME)
        (scratch / SUMS_NAME).write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
        for name in (LATEST_NAME, SUMS_NAME):
            sign_file(scratch / name, key, f"file:{name}")
        if (folder / f"{LATEST_NAME}.sha256").is_file():
            (scratch / f"{LATEST_NAME}.sha256").write_text(f"{sums[LATEST_NAME]}  {LATEST_NAME}\n")
        # The signature before its file: a reader in between sees a mismatch, never an unsigned change.
        order = [f"{LATEST_NAME}.minisig", LATEST_NAME, f"{LATEST_NAME}.sha256", f"{SUMS_NAME}.minisig", SUMS_NAME]
        for name in order:
            if (scratch / name).is_file():
                os.replace(scratch / name, folder / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _restamp(folder)
    verify_release(folder, public_key_text, root_text)
    log.info(f"renewed {folder / LATEST_NAME} ({after.app} {after.version}): expires {after.expires.isoformat()}")
    return Renewal(before, after)


def _restamp(folder: Path) -> None:
    """The release-folder stamp lists its outputs' digests: the renewed ones are
    recorded, so a later `invoke package` with nothing changed keeps the folder."""
    stamp_path = folder / RELEASE_STAMP
    try:
        stamp: dict[str, Any] = json.loads(stamp_path.read_text())
        outputs = stamp["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no stamp (a downloaded release): nothing to keep in step
    for name in RENEWED_NAMES:
        if name in outputs and (folder / name).is_file():
            outputs[name] = sha256_file(folder / name)
    write_atomic(stamp_path, json.dumps(stamp, sort_keys=True, default=str))
