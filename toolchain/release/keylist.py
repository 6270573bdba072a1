"""Signing keys with a root: a small, versioned key list signed by an offline root.

An installed copy pins the root (or, before it knew of roots, one release
key). Each list names:
- `roots`: the public keys that sign the NEXT list, and `threshold`, how many
  of them must (k of n);
- `keys`: the online keys, each with a `role` ("release": signs releases and
  their channel; "channel": may only re-sign the channel, e.g. a scheduled
  renewal) and an `expires` date after which it is refused;
- `revoked`: key ids refused from this list on, whatever signed them.

List N+1 is accepted when `threshold` of list N's roots signed it; a list
that changes the roots must also be signed by `threshold` of its own roots
(a root rotation needs the old and the new). A copy that pinned one key
treats it as its root: the first list is signed by that key (and by the
new root), so existing installs move to the scheme on their next update.

Files: `keys/N.json` and one minisign signature per signer,
`keys/N.json.KEYID.minisig` (`minisign -V -m keys/N.json -x
keys/N.json.KEYID.minisig -p root.pub` checks one). A release downloaded from
GitHub holds them flat, `keys-N.json` and `keys-N.json.KEYID.minisig`
(GitHub's assets have no folders): a release folder is read in either layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain.atomic import write_json
from toolchain.errors import SignatureError
from toolchain.release.signing import PublicKey, SecretKey, parse_public_key, sign_file, verify_file

KEYS_DIR = "keys"
FLAT_PREFIX = f"{KEYS_DIR}-"  # a list's file name among a GitHub release's assets: keys-N.json
KEYLIST_SCHEMA = "toolchain.keys/v1"
ROLES = ("release", "channel")


def key_id_hex(key_id: bytes) -> str:
    """A key id as minisign prints it."""
    return key_id[::-1].hex().upper()


def public_line(key: PublicKey) -> str:
    """The key's one base64 line (what a list stores)."""
    return key.render().splitlines()[1]


def public_from_line(line: str) -> PublicKey:
    return parse_public_key(f"untrusted comment: key list entry\n{line}\n", "key list entry")


@dataclass(frozen=True)
class ListedKey:
    key: PublicKey
    role: str
    expires: datetime

    @property
    def id(self) -> str:
        return key_id_hex(self.key.key_id)


@dataclass(frozen=True)
class KeyList:
    version: int
    roots: tuple[PublicKey, ...]
    threshold: int
    keys: tuple[ListedKey, ...]
    revoked: tuple[str, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "schema": KEYLIST_SCHEMA,
            "version": self.version,
            "roots": [public_line(r) for r in self.roots],
            "threshold": self.threshold,
            "keys": [
                {"id": k.id, "public": public_line(k.key), "role": k.role, "expires": k.expires.isoformat()}
                for k in self.keys
            ],
            "revoked": sorted(self.revoked),
        }

    @property
    def root_ids(self) -> frozenset[str]:
        return frozenset(key_id_hex(r.key_id) for r in self.roots)


def legacy_list(pinned: PublicKey) -> KeyList:
    """What a copy that pinned one key trusts: that key as root and as its release key (list 0)."""
    return KeyList(0, (pinned,), 1, (ListedKey(pinned, "release", datetime.max.replace(tzinfo=UTC)),), ())


def root_list(root: PublicKey) -> KeyList:
    """What a fresh install that pinned a root trusts before it has read any list (list 0)."""
    return KeyList(0, (root,), 1, (), ())


def parse_keylist(text: bytes, what: str) -> KeyList:
    """The list, or SignatureError naming what is wrong with it."""
    try:
        document = json.loads(text)
        if document.get("schema") != KEYLIST_SCHEMA:
            raise ValueError(f"is not a {KEYLIST_SCHEMA} document")
        version, threshold = document["version"], document["threshold"]
        roots = tuple(public_from_line(line) for line in document["roots"])
        if not isinstance(version, int) or not isinstance(threshold, int) or not 1 <= threshold <= len(roots):
            raise ValueError("has a bad version or threshold")
        keys = []
        for entry in document["keys"]:
            if entry["role"] not in ROLES:
                raise ValueError(f"names an unknown role {entry['role']!r}")
            expires = datetime.fromisoformat(entry["expires"])
            keys.append(ListedKey(public_from_line(entry["public"]), entry["role"], expires))
        revoked = tuple(str(r) for r in document["revoked"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(
            f"{what} is not a key list ({exc})", hint="publish lists written by `invoke rotate-key`"
        ) from None
    return KeyList(version, roots, threshold, tuple(keys), revoked)


def signature_name(list_path: Path, signer: bytes) -> Path:
    return list_path.with_name(f"{list_path.name}.{key_id_hex(signer)}.minisig")


def write_keylist(folder: Path, keylist: KeyList, signers: list[SecretKey]) -> Path:
    """keys/N.json and one minisign signature per signer."""
    directory = folder / KEYS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = write_json(directory / f"{keylist.version}.json", keylist.to_document())
    for signer in signers:
        made = sign_file(path, signer, f"keylist:{keylist.version}")
        os.replace(made, signature_name(path, signer.key_id))
    return path


def signed_by(path: Path, roots: tuple[PublicKey, ...]) -> set[str]:
    """The ids of the roots whose signature of `path` beside it is valid."""
    valid = set()
    for root in roots:
        signature = signature_name(path, root.key_id)
        if not signature.is_file():
            continue
        try:
            verify_file(path, signature, root)
        except SignatureError:
            continue
        valid.add(key_id_hex(root.key_id))
    return valid


def folder_key_files(folder: Path) -> dict[str, Path]:
    """A release folder's key list files by their name in keys/ (`1.json`, `1.json.KEYID.minisig`):
    its keys/ folder, and any flat keys-* files (a release downloaded from GitHub)."""
    found = {p.name[len(FLAT_PREFIX) :]: p for p in folder.glob(f"{FLAT_PREFIX}*") if p.is_file()}
    directory = folder / KEYS_DIR
    if directory.is_dir():
        found.update({p.name: p for p in directory.iterdir() if p.is_file()})
    return dict(sorted(found.items()))


def latest_list(folder: Path) -> KeyList | None:
    """The newest list in the folder (None: there is none yet)."""
    files = folder_key_files(folder)
    versions = sorted(int(name[:-5]) for name in files if name.endswith(".json") and name[:-5].isdigit())
    if not versions:
        return None
    path = files[f"{versions[-1]}.json"]
    return parse_keylist(path.read_bytes(), str(path))


def authorised_key(keylist: KeyList, key_id: bytes, roles: tuple[str, ...], now: datetime, what: str) -> PublicKey:
    """The listed key with this id, if it may sign `what` now; else SignatureError saying why not."""
    name = key_id_hex(key_id)
    if name in keylist.revoked:
        raise SignatureError(f"{what} is signed by key {name}, which key list {keylist.version} revokes",
                             hint="refusing it: the key may have leaked")  # fmt: skip
    for listed in keylist.keys:
        if listed.id != name or listed.role not in roles:
            continue
        if now >= listed.expires:
            raise SignatureError(f"{what} is signed by key {name}, which expired at {listed.expires.isoformat()}",
                                 hint="the publisher must sign with a current key")  # fmt: skip
        return listed.key
    raise SignatureError(
        f"{what} is signed by key {name}, which key list {keylist.version} does not name for {'/'.join(roles)}",
        hint="refusing a key your pinned root never approved",
    )


def signer_id(signature_path: Path) -> bytes:
    """The key id a minisign signature names (not yet trusted)."""
    import base64

    try:
        blob = base64.b64decode(signature_path.read_text().splitlines()[1], validate=True)
    except (OSError, IndexError, ValueError):
        raise SignatureError(f"{signature_path.name} is not a minisign signature", hint="re-sign the file") from None
    return blob[2:10]


@dataclass(frozen=True)
class Trust:
    keylist: KeyList
    followed: tuple[int, ...] = ()  # the list versions this read moved through


def require_quorum(path: Path, roots: KeyList, what: str) -> None:
    valid = signed_by(path, roots.roots)
    if len(valid) < roots.threshold:
        ids = ", ".join(sorted(roots.root_ids))
        raise SignatureError(
            f"{what} is signed by {len(valid)} of the roots you trust ({ids}); {roots.threshold} needed",
            hint="refusing a key list signed by an unknown root; nothing was changed",
        )


def follow(current: KeyList, fetch: Callable[[int], tuple[Path, str] | None]) -> Trust:
    """Move from `current` through every newer list `fetch` finds (N+1, N+2, ...)."""
    followed = []
    while (found := fetch(current.version + 1)) is not None:
        path, what = found
        candidate = parse_keylist(path.read_bytes(), what)
        if candidate.version != current.version + 1:
            raise SignatureError(f"{what} says it is version {candidate.version}",
                                 hint="the channel's key lists are mixed up; nothing was changed")  # fmt: skip
        require_quorum(path, current, what)
        if candidate.root_ids != current.root_ids:
            require_quorum(path, candidate, f"{what} (a root rotation: its new roots must sign it too)")
        current = candidate
        followed.append(current.version)
    return Trust(current, tuple(followed))


def folder_lists(folder: Path) -> Callable[[int], tuple[Path, str] | None]:
    """follow()'s source for a release folder's own lists (signatures beside each list, in either layout)."""

    def found(version: int) -> tuple[Path, str] | None:
        path = folder_key_files(folder).get(f"{version}.json")
        return (path, f"key list {version} ({path})") if path is not None else None

    return found


def channel_signer(
    folder: Path, release_key: PublicKey, key_id: bytes, now: datetime, root: PublicKey | None = None
) -> PublicKey:
    """The key with this id that may re-sign the folder's channel (latest.json and sha256.sum): a
    channel key of the folder's key lists, followed from `root`, else from the release key (which
    signs list 1 when installed copies that pinned it move to a root). SignatureError if none."""
    anchor = root_list(root) if root is not None else legacy_list(release_key)
    trust = follow(anchor, folder_lists(folder))
    return authorised_key(trust.keylist, key_id, ("channel",), now, f"the channel of {folder}")
