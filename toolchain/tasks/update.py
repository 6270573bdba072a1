"""invoke update, rollback, recover, snapshots"""

from __future__ import annotations

import json as json_lib
from pathlib import Path

from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.settings import load_settings
from toolchain.signing import public_key_text
from toolchain.tasks import required, task
from toolchain.update import default_state_dir, list_snapshots, recover, rollback, update


def _binary(binary: str, receipt: str) -> Path:
    if binary:
        return Path(binary)
    if receipt:
        try:
            document = json_lib.loads(Path(receipt).read_text())
            return Path(str(document["install_dir"])) / str(document["binaries"][0])
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise UsageError(f"{receipt} is not an install receipt", hint="pass --binary PATH instead") from exc
    raise UsageError("which installation?", hint="pass --binary PATH or --receipt install-receipt.json")


def _state_dir(binary: str, receipt: str, state_dir: str) -> Path:
    return Path(state_dir) if state_dir else default_state_dir(_binary(binary, receipt).resolve())


LOCATION_HELP = {
    "binary": "the installed executable",
    "receipt": "the install receipt the installer wrote (instead of --binary)",
    "state-dir": "where the lock, journal and snapshots live; default: .NAME-update beside the binary",
}


@task(
    help={
        **LOCATION_HELP,
        "artifact": "the new archive: a path or URL with its .sha256, .minisig and manifest.json beside it",
        "public-key": "minisign public key the release is signed with (else [sign] public-key-file)",
        "data": "a SQLite file to snapshot and restore with the binary (repeatable; also [update] data-files)",
        "keep": "snapshots to keep after success; default: [update] keep",
        "wait": "seconds to wait for another update to finish; default: 0",
        "json": "print the result as JSON on stdout",
    },
    iterable=["data"],
    name="update",
)
def update_task(
    c: Context,
    artifact: str = "",
    binary: str = "",
    receipt: str = "",
    public_key: str = "",
    data: list[str] | None = None,
    state_dir: str = "",
    keep: int = -1,
    wait: float = 0.0,
    json: bool = False,
) -> None:
    """Verify, snapshot, swap, migrate and check; roll everything back on failure."""
    required(artifact, "--artifact")
    settings = load_settings()
    key_text = public_key_text(public_key, settings.public_key_file)
    data_files = [*settings.update_data_files, *(Path(d) for d in data or [])]
    target = _binary(binary, receipt)
    result = update(
        target,
        artifact,
        key_text,
        [p.resolve() for p in data_files],
        state_dir=Path(state_dir) if state_dir else None,
        keep=keep if keep >= 0 else settings.update_keep,
        wait=wait,
    )
    if json:
        log.json(
            {
                "schema": "toolchain.update/v1",
                **{k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()},
            }
        )
        return
    log.info(f"updated {target}: {result.old_version} -> {result.new_version} (snapshot {result.snapshot})")


@task(help={**LOCATION_HELP, "wait": "seconds to wait for a running update; default: 0"}, name="rollback")
def rollback_task(c: Context, binary: str = "", receipt: str = "", state_dir: str = "", wait: float = 0.0) -> None:
    """Restore the binary and data of the newest snapshot."""
    folder = rollback(_state_dir(binary, receipt, state_dir), wait)
    log.info(f"restored binary and data from {folder}")


@task(help=LOCATION_HELP, name="recover")
def recover_task(c: Context, binary: str = "", receipt: str = "", state_dir: str = "") -> None:
    """Finish or undo an update that was interrupted (fully old or fully new)."""
    from toolchain.update import exclusive_lock

    folder = _state_dir(binary, receipt, state_dir)
    with exclusive_lock(folder, 0):
        outcome = recover(folder)
    log.info(outcome or "no interrupted update")


@task(help={**LOCATION_HELP, "json": "print the list as JSON on stdout"}, name="snapshots")
def snapshots_task(c: Context, binary: str = "", receipt: str = "", state_dir: str = "", json: bool = False) -> None:
    """List the pre-update snapshots of an installation."""
    found = list_snapshots(_state_dir(binary, receipt, state_dir))
    if json:
        log.json([{"path": str(folder), **manifest} for folder, manifest in found])
        return
    log.table(
        "Snapshots (newest last)",
        ["snapshot", "created", "binary sha256", "data files"],
        [[f.name, m["created"], m["binary"]["sha256"][:16], len(m["data"])] for f, m in found],
    )


TASKS = (update_task, rollback_task, recover_task, snapshots_task)
