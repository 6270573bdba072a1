"""Staged rollout and withdrawal, as an installed copy sees them.

The signed channel names the share of installed copies that take its
release (`rollout`, a percent; 0 pauses) and the versions withdrawn. Each
copy has a random install id; its bucket for a version is a stable hash of
the id and the version, a number in [0, 100). It updates when its bucket
falls under the share, so raising the share only adds copies (a copy once
selected stays selected), and a new version draws a new sample of copies.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.release.latest import Latest
from toolchain.release.version import semver_key

INSTALL_ID_NAME = "install-id"


def version_in(output: str) -> str:
    """The SemVer in `APP --version`'s output ("tally 0.1.0"), or ""."""
    for word in reversed(output.split()):
        try:
            semver_key(word.removeprefix("v"))
        except (ValueError, TypeError):
            continue
        return word.removeprefix("v")
    return ""


def new_install_id() -> str:
    return secrets.token_hex(16)


def install_id(receipt: dict[str, object] | None, state_dir: Path) -> str:
    """The copy's install id: its receipt's, else one kept in its update state folder (made once)."""
    if receipt and isinstance(receipt.get("install_id"), str) and receipt["install_id"]:
        return str(receipt["install_id"])
    path = state_dir / INSTALL_ID_NAME
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    state_dir.mkdir(parents=True, exist_ok=True)
    made = new_install_id()
    write_atomic(path, made + "\n", 0o600)
    return made


def bucket(install: str, version: str) -> float:
    """A stable number in [0, 100) for this install and version."""
    digest = hashlib.sha256(f"{install}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def selected(install: str, version: str, share: int) -> bool:
    return bucket(install, version) < share


@dataclass(frozen=True)
class ChannelStatus:
    running: str
    offered: str
    action: str  # update | wait | paused | current | skip-withdrawn
    message: str
    running_withdrawn: bool


def channel_status(latest: Latest, running: str, install: str) -> ChannelStatus:
    """What this copy does with the channel, and what to tell its user."""
    withdrawn = running in latest.withdrawn
    warning = (
        f"; {running}, which this copy runs, was WITHDRAWN by the publisher: update, or roll back with "
        "`invoke rollback --yes` (its snapshot)"
        if withdrawn
        else ""
    )
    newer = bool(running) and semver_key(latest.version) > semver_key(running)
    if latest.version in latest.withdrawn:
        action, what = "skip-withdrawn", f"{latest.version} is withdrawn: not taken"
    elif not newer and latest.version == running:
        action, what = "current", f"{running} is the channel's release"
    elif not newer:
        action, what = "current", f"the channel offers {latest.version}, not newer than {running}"
    elif latest.rollout == 0:
        action, what = "paused", f"{latest.version} is available but its rollout is paused (0%)"
    elif selected(install, latest.version, latest.rollout):
        action, what = "update", f"{latest.version} is available ({latest.rollout}% rollout, this copy included)"
    else:
        action, what = "wait", f"{latest.version} is rolling out to {latest.rollout}% of copies, not yet this one"
    return ChannelStatus(running, latest.version, action, what + warning, withdrawn)
