"""An installed copy's trust in a channel with key lists (toolchain.release.keylist).

The copy keeps the last key list it accepted (its trust state: at first the
pinned root, or the one key it pinned before roots existed). Before reading
a channel it follows the lists published beside it, one version at a time:
list N+1 must be signed by `threshold` of list N's roots, and a list that
changes the roots also by `threshold` of its own. It never goes back to an
older list. Then the channel and the archive must be signed by a key the
current list names for that role, not revoked and not expired.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

from toolchain.atomic import write_json
from toolchain.errors import SignatureError, UpdateError
from toolchain.release.channel_layout import keys_prefix
from toolchain.release.keylist import (
    KEYS_DIR,
    KeyList,
    Trust,
    authorised_key,
    follow,
    key_id_hex,
    legacy_list,
    parse_keylist,
    root_list,
    signature_name,
    signer_id,
)
from toolchain.release.latest import LATEST_NAME
from toolchain.release.signing import PublicKey, parse_public_key
from toolchain.update.artifact import download, fetch
from toolchain.update.channel import ChannelRelease, exists, read_channel

TRUST_SCHEMA = "toolchain.trust/v1"
TRUST_NAME = "trust.json"  # in the copy's update state folder: the last key list it accepted


def has_key_lists(channel: str) -> bool:
    """Whether the channel publishes key lists (list 1 beside its pointer)."""
    return exists(f"{keys_prefix(channel.rsplit('/', 1)[0])}1.json")


def pinned_trust(public_key_text: str, *, root: bool) -> KeyList:
    """The trust of a copy that pinned this key: as its root, or (before roots) as its one release key."""
    key = parse_public_key(public_key_text)
    return root_list(key) if root else legacy_list(key)


def load_trust(path: Path) -> KeyList | None:
    """The state saved by save_trust (None when there is none yet)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UpdateError(f"cannot read the trust state {path}: {exc}", hint="restore it or reinstall") from None
    return parse_keylist(json.dumps(document["keylist"]).encode(), str(path))


def save_trust(path: Path, keylist: KeyList) -> None:
    write_json(path, {"schema": TRUST_SCHEMA, "keylist": keylist.to_document()}, durable=True)


class _ListFetcher:
    """Key list N (and its signatures) beside a channel, downloaded into work; None when there is none."""

    def __init__(self, channel: str, work: Path) -> None:
        self.prefix = keys_prefix(channel.rsplit("/", 1)[0] if "://" in channel else str(Path(channel).parent))
        self.work = work / KEYS_DIR
        self.work.mkdir(parents=True, exist_ok=True)
        self.local = "://" not in channel

    def _get(self, name: str) -> Path:
        """The file `name` of the lists (N.json, N.json.KEYID.minisig), where it is or downloaded."""
        source = f"{self.prefix}{name}"
        if self.local:
            if not Path(source).is_file():
                raise UpdateError(f"{source} is missing", hint="")
            return Path(source)
        return download(source, self.work / name)

    def __call__(self, version: int) -> tuple[Path, str] | None:
        name = f"{version}.json"
        try:
            path = self._get(name)
        except UpdateError:
            return None
        return path, f"key list {version} ({self.prefix}{name})"

    def signature(self, path: Path, signer: bytes) -> None:
        with contextlib.suppress(UpdateError):  # a missing signature simply does not count
            self._get(signature_name(path, signer).name)


class _SignedListFetcher(_ListFetcher):
    """As _ListFetcher, with the signatures of every root the copy may need beside each list."""

    def __init__(self, channel: str, work: Path, roots: list[PublicKey]) -> None:
        super().__init__(channel, work)
        self.roots = roots

    def __call__(self, version: int) -> tuple[Path, str] | None:
        found = super().__call__(version)
        if found is None:
            return None
        path = found[0]
        listed = parse_keylist(path.read_bytes(), found[1])
        for root in [*self.roots, *listed.roots]:
            self.signature(path, root.key_id)
        self.roots = list(listed.roots)
        return found


def read_trusted_channel(
    channel: str, trusted: KeyList, binary_name: str, work: Path, now: datetime | None = None
) -> tuple[ChannelRelease, Trust, PublicKey]:
    """Follow the channel's key lists from `trusted`, then read its pointer, which must be signed
    by a current release or channel key. Returns the release, the new trust and the release key
    that must have signed the archive (the updater checks it with that key)."""
    moment = now or datetime.now(UTC)
    fetcher = _SignedListFetcher(channel, work, list(trusted.roots))
    try:
        trust = follow(trusted, fetcher)
        pointer_sig = fetch(channel, f"{LATEST_NAME}.minisig", work)
        channel_key = authorised_key(trust.keylist, signer_id(pointer_sig), ("release", "channel"), moment,
                                     f"channel {channel}")  # fmt: skip
    except SignatureError as exc:
        raise UpdateError(exc.message, hint=exc.hint or "nothing was changed") from None
    release = read_channel(channel, channel_key.render(), binary_name, work, now=moment)
    base = release.source.rsplit("/", 1)[0]
    (work / "archive").mkdir(exist_ok=True)
    archive_sig = fetch(f"{base}/{release.file.name}.minisig", f"{release.file.name}.minisig", work / "archive")
    try:
        release_key = authorised_key(trust.keylist, signer_id(archive_sig), ("release",), moment,
                                     f"{release.file.name} ({release.latest.version})")  # fmt: skip
    except SignatureError as exc:
        raise UpdateError(exc.message, hint=exc.hint or "nothing was changed") from None
    return release, trust, release_key


__all__ = [
    "TRUST_NAME",
    "Trust",
    "follow",
    "has_key_lists",
    "key_id_hex",
    "load_trust",
    "pinned_trust",
    "read_trusted_channel",
    "save_trust",
]
