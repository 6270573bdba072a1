"""invoke update, rollback, recover, snapshots"""

from __future__ import annotations

import json as json_lib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context

from toolchain.errors import SignatureError, UpdateError, UsageError, require_file
from toolchain.log import log
from toolchain.tasks.base import required, task

if TYPE_CHECKING:
    from toolchain.release.keylist import KeyList
    from toolchain.release.latest import Latest
    from toolchain.update.rollout import ChannelStatus


def _read_receipt(receipt: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json_lib.loads(Path(receipt).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{receipt} is not an install receipt", hint="pass --binary PATH instead") from exc
    binaries = document.get("binaries") if isinstance(document, dict) else None
    if not isinstance(binaries, list) or not binaries or "install_dir" not in document:
        raise UsageError(f"{receipt} is not an install receipt", hint="pass --binary PATH instead")
    return document


def _binary(binary: str, receipt: str) -> Path:
    """The installed executable, which must exist."""
    if binary:
        path = Path(binary)
    elif receipt:
        document = _read_receipt(receipt)
        path = Path(str(document["install_dir"])) / str(document["binaries"][0])
    else:
        raise UsageError("which installation?", hint="pass --binary PATH or --receipt install-receipt.json")
    return require_file(
        path, UsageError, "{path} is {what}, not an installed binary",
        hint="pass the installed executable with --binary (or its install receipt with --receipt)",
    )  # fmt: skip


def _state_dir(binary: str, receipt: str, state_dir: str) -> Path:
    from toolchain.update.journal import default_state_dir

    if state_dir:
        if not Path(state_dir).is_dir():
            raise UsageError(f"--state-dir {state_dir} is not a folder", hint="pass the .NAME-update folder")
        return Path(state_dir)
    return default_state_dir(_binary(binary, receipt).resolve())


def _keep(keep: str, configured: int) -> int:
    if not keep:
        return configured
    try:
        return int(keep)
    except ValueError:
        raise UsageError(f"--keep {keep} is not a whole number", hint="pass --keep 0 or more") from None


def _name_install_id(receipt: Path, install_id: str) -> None:
    """The receipt keeps the copy's install id (the staged rollout's sample is drawn from it).
    Written once, before the update; the update's own receipt rewrite keeps it."""
    from toolchain.atomic import write_atomic

    document = _read_receipt(str(receipt))
    if not install_id or document.get("install_id"):
        return
    document["install_id"] = install_id
    try:
        write_atomic(receipt, json_lib.dumps(document, indent=2) + "\n", receipt.stat().st_mode & 0o7777, durable=True)
    except OSError as exc:
        raise UsageError(f"cannot rewrite {receipt}: {exc.strerror}", hint="fix its folder's permissions") from None


@dataclass(frozen=True)
class _Offer:
    latest: Latest
    source: str  # the archive to update from when key lists chose the key ("": the updater reads the channel)
    public_key: str  # the key that must have signed the release


def _read_offer(
    channel: str, public_key: str, binary: Path, state_dir: Path, root: str, receipt: dict[str, Any] | None = None
) -> _Offer:
    """The verified channel. With key lists (published beside it, or followed before), the copy follows
    them from its saved trust, else from the list its installer pinned in the receipt, else from its
    pinned root or key, and keeps the newest it accepted."""
    import tempfile

    from toolchain.update.channel import read_channel
    from toolchain.update.trust import (
        TRUST_NAME,
        has_key_lists,
        load_trust,
        pinned_trust,
        read_trusted_channel,
        save_trust,
    )

    saved = load_trust(state_dir / TRUST_NAME) or _installer_trust(receipt)
    with tempfile.TemporaryDirectory(prefix="toolchain-check-") as work:
        if saved is None and not root and not has_key_lists(channel):
            return _Offer(read_channel(channel, public_key, binary.name, Path(work)).latest, "", public_key)
        trusted = saved or pinned_trust(root or public_key, root=bool(root))
        release, trust, key = read_trusted_channel(channel, trusted, binary.name, Path(work))
    state_dir.mkdir(parents=True, exist_ok=True)
    save_trust(state_dir / TRUST_NAME, trust.keylist)
    if trust.followed:
        log.info(f"followed key list(s) {', '.join(map(str, trust.followed))} of {channel}")
    return _Offer(release.latest, release.source, key.render())


def _installer_trust(receipt: dict[str, Any] | None) -> KeyList | None:
    """The key list an installer pinned in the receipt ("trust"), as the updater's own trust state."""
    from toolchain.release.keylist import parse_keylist

    document = (receipt or {}).get("trust")
    if not isinstance(document, dict):
        return None
    try:
        return parse_keylist(json_lib.dumps(document).encode(), "the install receipt's trust")
    except SignatureError as exc:
        raise UpdateError(exc.message, hint="reinstall with the release's installer; nothing was changed") from None


def _channel_status(offer: _Offer, binary: Path, receipt: dict[str, Any] | None, state_dir: Path
                    ) -> tuple[ChannelStatus, str]:  # fmt: skip
    """What the verified channel offers this copy, and the copy's install id."""
    import subprocess

    from toolchain.update.rollout import channel_status, install_id, version_in

    running = str(receipt.get("version", "")) if receipt else ""
    if not running:
        try:
            output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise UpdateError(f"cannot run {binary} --version: {exc}", hint="check the installed binary") from None
        running = version_in(output)
    copy = install_id(receipt, state_dir)
    return channel_status(offer.latest, running, copy), copy


LOCATION_HELP = {
    "binary": "the installed executable",
    "receipt": "the install receipt the installer wrote (instead of --binary)",
    "state-dir": "where the lock, journal and snapshots live; default: .NAME-update beside the binary",
}


def _key_file(path: Path | None, what: str) -> str:
    if path is None:
        return ""
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}", hint="check the path") from None


@task(
    help={
        **LOCATION_HELP,
        "artifact": "the new archive: a path or URL with its .sha256, .minisig and manifest.json beside it",
        "channel": "a release channel's signed latest.json (path or URL): update to the release it names",
        "public-key": "minisign public key the release is signed with, the key itself or its file "
        "(else the receipt's pinned key, else [sign] public-key-file); another key than a pinned one is refused",
        "allow-downgrade": "accept a release older than the installed one (refused if the receipt pins no downgrades)",
        "data": "a SQLite file to snapshot and restore with the binary (repeatable; also [update] data-files)",
        "keep": "snapshots to keep after success (0 or more); default: [update] keep",
        "wait": "seconds to wait for the running app, a process holding its data, or another update; default: 0",
        "json": "print the result as JSON on stdout",
        "check": "with a channel: say what it offers this copy (rollout, withdrawal) and change nothing",
        "root": "root public key to pin for a channel with key lists (else the copy's pinned key counts as its root)",
    },
    iterable=["data"],
    name="update",
)
def update_task(
    c: Context,
    artifact: str = "",
    channel: str = "",
    binary: str = "",
    receipt: str = "",
    public_key: str = "",
    allow_downgrade: bool = False,
    data: list[str] | None = None,
    state_dir: str = "",
    keep: str = "",
    wait: float = 0.0,
    json: bool = False,
    check: bool = False,
    root: str = "",
) -> None:
    """Verify, snapshot, swap, migrate and check; roll everything back on failure."""
    from toolchain.config.settings import load_settings
    from toolchain.release.signing import public_key_text
    from toolchain.update.receipt import decide, find_receipt, read_receipt
    from toolchain.update.updater import update

    if artifact and channel:
        raise UsageError("--artifact and --channel both given", hint="pass one of them")
    if not (channel or receipt):  # a receipt may pin the channel
        required(artifact, "--artifact")
    settings = load_settings()
    target = _binary(binary, receipt)
    # The pinned policy: from the receipt the installer wrote for this binary
    # (found whatever --binary/--receipt say), else from --receipt.
    pinned = find_receipt(target.resolve()) or (read_receipt(Path(receipt)) if receipt else None)
    if pinned is not None and pinned.pins is not None and pinned.pins.channel:
        from dataclasses import replace

        from toolchain.update.channel import channel_pointer

        # An installer pins the folder it downloaded from: the channel is the latest.json it read.
        pinned = replace(pinned, pins=replace(pinned.pins, channel=channel_pointer(pinned.pins.channel)))
    decision = decide(
        pinned.pins if pinned else None,
        pinned.path if pinned else None,
        given_key=public_key_text(public_key, None) if public_key else "",  # the key itself, or its file
        configured_key=_key_file(settings.public_key_file, "public key"),
        channel=channel,
        allow_downgrade=allow_downgrade,
    )
    if not decision.public_key:
        raise UsageError(
            "no public key to check signatures with", hint="pass --public-key or set [sign] public-key-file"
        )
    if not artifact and not decision.channel:
        raise UsageError("update from what?", hint="pass --artifact ARCHIVE or --channel LATEST_JSON")
    data_files = [
        *settings.update_data_files,
        *(Path(d) for d in data or []),
        *(p.expanduser() for p in (pinned.data_files if pinned else ())),
    ]
    copy_id = ""
    offer: _Offer | None = None
    if decision.channel and not artifact:
        # A staged rollout, a pause or a withdrawal can mean "not now": that needs no lock or snapshot.
        from toolchain.update.journal import default_state_dir

        state = Path(state_dir) if state_dir else default_state_dir(target.resolve())
        document = _read_receipt(str(pinned.path)) if pinned else (_read_receipt(receipt) if receipt else None)
        offer = _read_offer(decision.channel, decision.public_key, target, state, _key_file(Path(root), "root key")
                            if root else "", document)  # fmt: skip
        status, copy_id = _channel_status(offer, target, document, state)
        if check or status.action != "update":
            if json:
                log.json({"schema": "toolchain.update-check/v1", **status.__dict__})
            else:
                log.info(status.message + ("" if check else "; nothing was changed"))
            if check or status.action in ("wait", "paused", "skip-withdrawn"):
                return
    elif check:
        raise UsageError("--check reads a channel", hint="pass --channel LATEST_JSON (or pin one in the receipt)")
    if receipt and not binary and not os.access(Path(receipt).parent, os.W_OK):
        raise UsageError(f"cannot rewrite {receipt} after the update (its folder is not writable)",
                         hint="fix its permissions, or pass --binary instead of --receipt")  # fmt: skip
    # The receipt is rewritten in the update's own transaction (journal, snapshot, rollback):
    # --receipt's, else the one the installer wrote for this binary where it can be written.
    rewrite = Path(receipt) if receipt and not binary else pinned.path if pinned else None
    if rewrite is not None and rewrite != (Path(receipt) if receipt else None):
        rewrite = rewrite if os.access(rewrite.parent, os.W_OK) else None
    if rewrite is not None:
        _read_receipt(str(rewrite))
        _name_install_id(rewrite, copy_id)
    listed = offer is not None and bool(offer.source)  # key lists chose the key: update from the archive
    result = update(
        target,
        offer.source if offer is not None and listed else "" if decision.channel and not artifact else artifact,
        offer.public_key if offer is not None and listed else decision.public_key,
        [p.resolve() for p in data_files],
        state_dir=Path(state_dir) if state_dir else None,
        keep=_keep(keep, settings.update.keep),
        wait=wait,
        allow_downgrade=decision.allow_downgrade,
        channel="" if artifact or listed else decision.channel,
        receipt=rewrite,
    )
    if json:
        log.json(
            {
                "schema": "toolchain.update/v1",
                **{k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()},
            }
        )
        return
    kept = f"snapshot {result.snapshot}" if result.snapshot else "no snapshot kept"
    log.info(f"updated {target}: {result.old_version} -> {result.new_version} ({kept})")


@task(
    help={
        **LOCATION_HELP,
        "wait": "seconds to wait for a running update; default: 0",
        "yes": "really roll back: everything written to the data since the snapshot is lost",
    },
    name="rollback",
)
def rollback_task(
    c: Context, binary: str = "", receipt: str = "", state_dir: str = "", wait: float = 0.0, yes: bool = False
) -> None:
    """Restore the binary and data of the newest snapshot (asks for --yes)."""
    from toolchain.update.snapshot import restored_what
    from toolchain.update.updater import rollback

    folder, restored = rollback(_state_dir(binary, receipt, state_dir), wait, yes=yes)
    log.info(f"restored {restored_what(_binary(binary, receipt).name, restored)} from {folder}")


@task(
    help={
        **LOCATION_HELP,
        "force": "finish a stuck rollback anyway: restore the snapshot over the current files",
        "abandon": "close a stuck update's journal and keep the current files (the snapshot stays)",
        "wait": "seconds to wait for the app, or a process holding its data, to stop; default: 0",
    },
    name="recover",
)
def recover_task(
    c: Context,
    binary: str = "",
    receipt: str = "",
    state_dir: str = "",
    force: bool = False,
    abandon: bool = False,
    wait: float = 0.0,
) -> None:
    """Finish or undo an update that was interrupted (fully old or fully new)."""
    from toolchain.update.journal import exclusive_lock
    from toolchain.update.updater import recover

    folder = _state_dir(binary, receipt, state_dir)
    if not folder.is_dir():
        if force or abandon:
            raise UsageError(f"no update was ever run here ({folder} does not exist)", hint="nothing to recover")
        log.info("no interrupted update")
        return
    with exclusive_lock(folder, 0):
        outcome = recover(folder, force=force, abandon=abandon, wait=wait)
    log.info(outcome or "no interrupted update")


@task(help={**LOCATION_HELP, "json": "print the list as JSON on stdout"}, name="snapshots")
def snapshots_task(c: Context, binary: str = "", receipt: str = "", state_dir: str = "", json: bool = False) -> None:
    """List the pre-update snapshots of an installation."""
    from toolchain.update.snapshot import list_snapshots

    folder = _state_dir(binary, receipt, state_dir)
    found = list_snapshots(folder)
    if json:
        log.json([{"path": str(folder), **manifest} for folder, manifest in found])
        return
    if not found:
        log.info(f"no snapshots in {folder} (they are taken by `invoke update`)")
        return
    log.table(
        "Snapshots (newest last)",
        ["snapshot", "created", "binary sha256", "data files"],
        [[f.name, m["created"], m["binary"]["sha256"][:16], len(m["data"])] for f, m in found],
    )


TASKS = (update_task, rollback_task, recover_task, snapshots_task)
