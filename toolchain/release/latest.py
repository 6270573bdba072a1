"""latest.json: the signed pointer an update channel serves.

It names the release (app, version), its archives (name, digest, size,
target, binaries) and when it was made and `expires`. It is signed like
every file of the release, so an updater can refuse metadata that is
unsigned, tampered, signed by another key, or stale (a mirror frozen at an
old release, or an old pointer replayed): `expires` is [update]
metadata-days after the release.

The release folder holds one (listed in sha256.sum, so `invoke verify`
checks it); publish uploads it with the release and, for S3, as the
pointer {prefix}/{app}/latest.json, whose archives are then in {version}/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolchain.atomic import write_json

LATEST_NAME = "latest.json"
LATEST_SCHEMA = "toolchain.latest/v1"


@dataclass(frozen=True)
class LatestFile:
    name: str
    sha256: str
    size: int
    target: str
    binaries: tuple[str, ...]


@dataclass(frozen=True)
class Latest:
    app: str
    version: str
    released: datetime
    expires: datetime
    files: tuple[LatestFile, ...]
    rollout: int = 100  # percent of installed copies that take this release (0 pauses)
    withdrawn: tuple[str, ...] = ()  # versions pulled back: updaters skip them, copies running them are told

    def expiry_problem(self, min_validity_days: int, now: datetime | None = None) -> str:
        """Why this channel must not be published ("" when it is fresh enough)."""
        moment = now or datetime.now(UTC)
        if moment >= self.expires:
            return f"expired at {self.expires.isoformat()}"
        if moment + timedelta(days=min_validity_days) > self.expires:
            left = self.expires - moment
            return (
                f"expires at {self.expires.isoformat()}, in {left.days} days {left.seconds // 3600} hours, "
                f"within [update] min-validity ({min_validity_days} days)"
            )
        return ""


def write_latest(folder: Path, app: str, version: str, files: list[LatestFile], metadata_days: int,
                 now: datetime | None = None) -> Path:  # fmt: skip
    released = (now or datetime.now(UTC)).replace(microsecond=0)
    document = {
        "schema": LATEST_SCHEMA,
        "app": app,
        "version": version,
        "released": released.isoformat(),
        "expires": (released + timedelta(days=metadata_days)).isoformat(),
        "files": [
            {"name": f.name, "sha256": f.sha256, "size": f.size, "target": f.target, "binaries": list(f.binaries)}
            for f in files
        ],
    }
    return write_json(folder / LATEST_NAME, document)


def _field(document: Any, key: str, kind: type) -> Any:
    if not isinstance(document, dict) or not isinstance(document.get(key), kind):
        raise ValueError(f"has no {kind.__name__} {key!r}")
    return document[key]


def _time(document: Any, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_field(document, key, str))
    except ValueError:
        raise ValueError(f"has a malformed {key!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"has {key!r} without a time zone")
    return moment


def parse_latest(text: bytes) -> Latest:
    """The document, or ValueError naming what is wrong with it."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError("is not JSON") from None
    if _field(document, "schema", str) != LATEST_SCHEMA:
        raise ValueError(f"is not a {LATEST_SCHEMA} document")
    files = []
    for raw in _field(document, "files", list):
        binaries = _field(raw, "binaries", list)
        files.append(
            LatestFile(
                _field(raw, "name", str),
                _field(raw, "sha256", str),
                _field(raw, "size", int),
                _field(raw, "target", str),
                tuple(str(b) for b in binaries),
            )
        )
    return Latest(
        _field(document, "app", str),
        _field(document, "version", str),
        _time(document, "released"),
        _time(document, "expires"),
        tuple(files),
        _rollout(document),
        tuple(str(v) for v in document.get("withdrawn", []) if isinstance(v, str)),
    )


def _rollout(document: dict[str, Any]) -> int:
    share = document.get("rollout", 100)
    if not isinstance(share, int) or isinstance(share, bool) or not 0 <= share <= 100:
        raise ValueError("has a 'rollout' that is not a whole percent from 0 to 100")
    return share


def read_latest(folder: Path) -> Latest:
    """The release folder's latest.json, or ValueError naming what is wrong."""
    path = folder / LATEST_NAME
    try:
        return parse_latest(path.read_bytes())
    except OSError:
        raise ValueError(f"{path} is missing") from None
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None


def stale_channel(folder: Path, min_validity_days: int, now: datetime | None = None) -> str:
    """What is wrong with the freshness of the folder's channel, as one clause naming the
    date ("" when it is fresh, or the folder has no channel: several apps)."""
    if not (folder / LATEST_NAME).is_file():
        return ""
    latest = read_latest(folder)
    problem = latest.expiry_problem(min_validity_days, now)
    return f"{folder / LATEST_NAME} ({latest.app} {latest.version}) {problem}" if problem else ""


RENEW_HINT = "renew it with `invoke renew` (re-signs latest.json with a fresh expiry, no rebuild)"


def rewritten(text: bytes, *, expires: datetime | None = None, rollout: int | None = None,
              withdrawn: tuple[str, ...] | None = None) -> bytes:  # fmt: skip
    """latest.json's bytes with these fields set and every other field as it was
    (written as write_json writes every JSON file)."""
    document = json.loads(text)
    if expires is not None:
        document["expires"] = expires.replace(microsecond=0).isoformat()
    if rollout is not None:
        document["rollout"] = rollout
    if withdrawn is not None:
        document["withdrawn"] = sorted(set(withdrawn))
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
