"""`invoke update --channel URL`: read a release channel's latest.json and
say which archive to update to.

The pointer must be signed by the trusted key (an unsigned, tampered or
foreign-signed one is refused) and not past its `expires` (a stale mirror or
a replayed old pointer is refused). Its archive is then verified like any
other (digest, signature, signed manifest) and must have the digest the
pointer names.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolchain.config import catalog
from toolchain.errors import SignatureError, UpdateError
from toolchain.release.channel_layout import pointer_candidates
from toolchain.release.latest import LATEST_NAME, Latest, LatestFile, parse_latest
from toolchain.release.signing import parse_public_key, verify_file
from toolchain.update.artifact import fetch


@dataclass(frozen=True)
class ChannelRelease:
    latest: Latest
    file: LatestFile
    source: str  # path or URL of the archive to update from


def _fetch_pointer(channel: str, work: Path) -> tuple[Path, Path]:
    name = channel.rstrip("/").rsplit("/", 1)[-1]
    if "://" not in channel and not Path(channel).is_file():
        raise UpdateError(
            f"channel {channel} does not exist", hint=f"pass the path or URL of a release's {LATEST_NAME}"
        )
    pointer = fetch(channel, name, work)
    try:
        signature = fetch(channel, f"{name}.minisig", work)
    except UpdateError:
        raise UpdateError(
            f"channel {channel} is unsigned ({name}.minisig is missing)",
            hint="refusing release metadata that is not signed; publish a release packaged and signed by this toolkit",
        ) from None
    return pointer, signature


def channel_pointer(channel: str) -> str:
    """The latest.json a pinned channel names. The installers pin the folder they downloaded from
    (…/VERSION): its channel is S3's pointer one folder above it, or GitHub's latest release for
    a GitHub release folder, when there is one; else the folder's own latest.json, as the
    installers read it. A pointer (…/latest.json) is itself."""
    if not channel or channel.endswith(".json"):
        return channel
    *better, own = pointer_candidates(channel)
    return next((candidate for candidate in better if exists(candidate)), own)


def exists(source: str) -> bool:
    """Whether a file of a channel is there: a path, or a URL that answers a HEAD request."""
    if "://" not in source:
        return Path(source).is_file()
    try:
        with urllib.request.urlopen(urllib.request.Request(source, method="HEAD"), timeout=60):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _beside(channel: str, name: str) -> bool:
    """Whether `name` sits beside the pointer (a release folder) rather than in
    {version}/ under it (S3's pointer). Either way the archive is verified."""
    return exists(f"{channel.rsplit('/', 1)[0]}/{name}")


def read_channel(channel: str, public_key_text: str, binary_name: str, work: Path,
                 now: datetime | None = None) -> ChannelRelease:  # fmt: skip
    """The verified pointer and the archive of this host for `binary_name`."""
    pointer, signature = _fetch_pointer(channel, work)
    try:
        verify_file(pointer, signature, parse_public_key(public_key_text))
    except SignatureError as exc:
        raise UpdateError(
            f"channel {channel}: {exc.message}", hint="refusing release metadata that is not signed by your key"
        ) from None
    try:
        latest = parse_latest(pointer.read_bytes())
    except ValueError as exc:
        raise UpdateError(f"channel {channel} {exc}", hint=f"publish a {LATEST_NAME} written by this toolkit") from None
    moment = now or datetime.now(UTC)
    if moment >= latest.expires:
        raise UpdateError(
            f"channel {channel} expired at {latest.expires.isoformat()} ({latest.app} {latest.version}): its "
            "metadata is stale, so the channel may be frozen at an old release",
            hint="ask the publisher to release (or re-sign the channel); nothing was changed",
        )
    host = catalog.current().host_triple()
    wanted = [f for f in latest.files if f.target == host and binary_name in f.binaries]
    if not wanted:
        raise UpdateError(
            f"channel {channel} ({latest.app} {latest.version}) has no archive of {binary_name} for {host}",
            hint="check the channel is this app's",
        )
    chosen = wanted[0]
    base = channel.rsplit("/", 1)[0] if "://" in channel else str(Path(channel).parent)
    folder = base if _beside(channel, chosen.name) else f"{base}/{latest.version}"
    return ChannelRelease(latest, chosen, f"{folder}/{chosen.name}")
