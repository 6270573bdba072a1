"""The update itself, and rollback and recovery around it.

verify the artifact → lock → unpack the new binary beside the old one →
journal → snapshot → atomic swap → the new binary's upgrade checks (the
signed manifest's [update] upgrade-checks, e.g. `migrate` then `doctor`) →
commit and prune, or restore everything from the snapshot. `recover` finishes or
undoes an update that was interrupted; `rollback` restores the newest
snapshot by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain.atomic import fsync_dir, write_atomic
from toolchain.digest import sha256_file
from toolchain.errors import ToolchainError, UpdateError, UsageError
from toolchain.log import log
from toolchain.release.version import semver_key
from toolchain.update.artifact import Artifact, check_installed_kind, check_same_kind, extract_binary, verify_artifact
from toolchain.update.channel import read_channel
from toolchain.update.files import apply_ownership, os_reason, ownership, state_digest
from toolchain.update.journal import (
    FINISHED,
    SCRATCH_PREFIX,
    UNTOUCHED,
    Journal,
    changed_since,
    clean_leftovers,
    default_state_dir,
    exclusive_lock,
    recover_hint,
    refuse_if_stuck,
    stuck_error,
)
from toolchain.update.liveness import check_wait, wait_until_idle
from toolchain.update.snapshot import (
    SNAPSHOTS,
    check_keep,
    check_space,
    list_snapshots,
    private_dir,
    prune,
    restore,
    restored_what,
    snapshot,
)

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class UpdateResult:
    ok: bool
    state: str
    old_version: str | None
    new_version: str
    snapshot: Path | None  # None when --keep 0 pruned it
    output: str = ""
    steps: tuple[str, ...] = field(default_factory=tuple)
    artifact_sha256: str = ""


def _check_data_file(path: Path) -> None:
    """A data file is a SQLite database (or does not exist yet), never a folder."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.db"))
        example = path / (inside[0] if inside else "NAME.db")
        raise UsageError(f"data file {path} is a folder, not a SQLite file", hint=f"pass the database in it: {example}")
    if not path.exists():
        return
    if not path.is_file():
        raise UsageError(f"data file {path} is not a regular file", hint="pass the app's SQLite database")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read data file {path}: {exc.strerror}", hint="check its permissions") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(
            f"data file {path} is not a SQLite database",
            hint="pass the app's SQLite file (--data / [update] data-files)",
        )


def _roll_back(journal: Journal, snapshot_dir: Path, **details: Any) -> int:
    """Restore the snapshot under the journal; return how many data files it
    put back. The live digests are recorded first, so a recovery can tell the
    files were changed after an interruption. A restore that fails leaves the
    journal `stuck` (and raises its message)."""
    with contextlib.suppress(OSError):  # a journal we cannot write still says "restore"
        journal.advance("rolling-back", live=journal.live(), **details)
    try:
        restored = restore(snapshot_dir)
    except (ToolchainError, OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            journal.advance(
                "stuck", stuck_reason=f"it could not be rolled back ({os_reason(exc)})", live=journal.live()
            )
        raise stuck_error(journal) from None
    _settle_receipt(journal)
    try:
        journal.advance("rolled-back")
    except OSError:
        return restored  # the snapshot stays: a recovery sees the files restored and finishes
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    return restored


def _settle_receipt(journal: Journal) -> bool:
    """Make the install receipt name the binary that is installed: the
    receipt as it was when the old binary is there, as the update wrote it
    when the new one is. True when it had to be rewritten."""
    record = journal.record
    if not record.get("receipt"):
        return False
    path = Path(record["receipt"])
    installed = state_digest(Path(record["binary"]))
    if installed == record.get("new_binary_sha256"):
        wanted = record.get("receipt_after")
    elif installed == record.get("old_binary_sha256"):
        wanted = record.get("receipt_before")
    else:
        return False  # neither binary: the stuck message asks the user to choose
    if wanted is None or (path.is_file() and path.read_text() == wanted):
        return False
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    write_atomic(path, wanted, mode, durable=True)
    return True


def _receipt_after(receipt: Path, version: str, source: str, sha256: str) -> str:
    """The receipt naming the new release (its other keys, the pinned policy
    among them, as they were)."""
    document = json.loads(receipt.read_text())
    document.update(version=version, source=source, sha256=sha256)
    return json.dumps(document, indent=2) + "\n"


# Where a recovery may finish an update forward: the new binary was swapped in
# (or is being), so whatever ran since ran it on the data.
FORWARD = {"swapping", "swapped", "migrating", "migrated", "checked"}


def _checks_pass(journal: Journal, binary: Path) -> tuple[bool, str]:
    """Run the update's checks (as recorded from its signed manifest) again on
    the live data with the binary that is installed."""
    checks = journal.record.get("checks") or [["--version"]]
    env = journal.record.get("check_env", {})
    for check in checks:
        code, output = _run(binary, list(check), env)
        if code != 0:
            last = output.splitlines()[-1] if output else "no output"
            return False, f"`{binary.name} {' '.join(check)}` failed with exit code {code}: {last}"
    return True, ""


def _keep_changed(journal: Journal, changed: list[str]) -> str:
    """Data was written after the snapshot: it is kept, never restored over.
    Finish forward where the new binary already runs on it and passes its
    checks; close the journal where the old binary never left; else stuck."""
    record = journal.record
    binary = Path(record["binary"])
    data = [Path(p) for p in record.get("data_files", [])]
    snapshot_dir = journal.snapshot_dir
    installed = state_digest(binary)
    names = ", ".join(changed)
    if installed == record.get("new_binary_sha256") and journal.state in FORWARD:
        passed, why = _checks_pass(journal, binary)
        if passed:
            journal.advance("checked", live=journal.live(*data), reason=f"finished forward: {names} changed since")
            _commit_receipt(journal)
            journal.advance("committed")
            journal.advance("done")  # no prune: nothing is deleted when data was written since
            log.info(
                f"recovered: kept {names} as written since the snapshot; the new {binary.name} "
                f"{record.get('new_version', '')} runs on it and passed its checks, so the update is complete "
                f"(the snapshot stays in {snapshot_dir})"
            )
            return "finished forward"
        reason = f"it was interrupted at {journal.state}, {names} changed since, and the new binary fails on it ({why})"
    elif installed == record.get("old_binary_sha256") and journal.state not in FORWARD - {"swapping"}:
        _settle_receipt(journal)
        journal.advance("rolled-back", reason=f"the old binary is in place; kept {names} as written since")
        log.info(
            f"recovered: {binary.name} is the old {record.get('old_version', '')} as before, and {names} is kept as "
            f"written since the snapshot (the snapshot stays in {snapshot_dir})"
        )
        return "kept"
    else:
        reason = f"it was interrupted at {journal.state}, and {names} changed since"
    journal.advance("stuck", stuck_reason=reason, live=journal.live())
    raise stuck_error(journal)


def _commit_receipt(journal: Journal) -> None:
    """Write the receipt naming the new release: part of the commit, so it
    happens before the journal says `committed` and a rollback puts the old one back."""
    if journal.record.get("receipt") and journal.record.get("receipt_after") is not None:
        path = Path(journal.record["receipt"])
        try:
            write_atomic(path, journal.record["receipt_after"], path.stat().st_mode & 0o7777, durable=True)
        except OSError as exc:
            raise UpdateError(
                f"cannot rewrite the install receipt {path}: {os_reason(exc)}", hint="fix its folder's permissions"
            ) from None


def recover(state_dir: Path, *, force: bool = False, abandon: bool = False, wait: float = 0.0) -> str | None:
    """Finish or undo an update that was interrupted; return what was done.

    Nothing is restored under a process that runs the app or holds its data
    (waiting up to `wait` seconds for it, as an update does), nor over data
    written after the snapshot: that is kept, and the update finished forward
    where the new binary runs on it. A stuck journal (a restore that failed,
    or an interrupted one whose files changed since) raises until `force`
    (restore anyway) or `abandon` (keep the current files and close the journal)."""
    deadline = time.monotonic() + check_wait(wait)
    if force and abandon:
        raise UsageError("--force and --abandon contradict each other", hint="pass one of them")
    journal = Journal.read(state_dir)
    removed = clean_leftovers(state_dir, journal)
    if removed:
        log.info(f"removed {len(removed)} leftover(s) of a killed updater: {', '.join(p.name for p in removed)}")
    if journal is None or journal.state in FINISHED:
        if force or abandon:
            raise UsageError(
                f"no unfinished update in {state_dir} to {'--force' if force else '--abandon'}", hint="nothing to do"
            )
        return None
    snapshot_dir = journal.snapshot_dir
    if abandon:
        journal.advance("abandoned", reason=f"abandoned by hand at {journal.state}; the current files were kept")
        _settle_receipt(journal)
        kept = f"; the snapshot stays in {snapshot_dir}" if snapshot_dir and snapshot_dir.exists() else ""
        log.info(f"closed the journal and kept the current files{kept}")
        return "abandoned"
    if journal.state == "stuck" and not force:
        raise stuck_error(journal)
    if journal.state == "committed":
        _commit_receipt(journal)  # the crash may have come between the commit and the receipt's rename
        keep = int(journal.record.get("keep", 3))
        if keep >= 0:  # a journal from before negative keeps were refused: prune nothing
            prune(state_dir, keep)
        journal.advance("done")
        log.info("recovered: the interrupted update had passed its checks; it is now complete")
        return "completed"
    if journal.state in UNTOUCHED or snapshot_dir is None:
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
        journal.advance("rolled-back", reason="interrupted before anything was changed")
        log.info("recovered: the interrupted update had not changed anything")
        return "nothing to undo"
    binary = Path(str(journal.record.get("binary", "")))
    data = [Path(p) for p in journal.record.get("data_files", [])]
    wait_until_idle(
        binary, data, deadline,
        risk="restoring or finishing the interrupted update under it would lose its later writes",
        hint=f"stop it first, or pass --wait SECONDS; nothing was changed (run `{recover_hint(journal)}` again then)",
    )  # fmt: skip
    if not force:
        changed = changed_since(journal, journal.record.get("live", {}))
        if changed:
            return _keep_changed(journal, changed)
    reason = "restored by hand (--force)" if force else f"interrupted at {journal.state}"
    restored = _roll_back(journal, snapshot_dir, reason=reason)
    log.info(f"recovered: restored {restored_what(binary.name, restored)} from {snapshot_dir}")
    return "restored"


def _run(binary: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    log.command([binary, *args])
    try:
        completed = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600, check=False
        )
    except OSError as exc:
        raise UpdateError(f"cannot run {binary}: {os_reason(exc)}", hint="check the binary") from None
    except subprocess.TimeoutExpired:
        raise UpdateError(f"`{binary.name} {' '.join(args)}` did not finish in 600 s", hint="check the app") from None
    return completed.returncode, (completed.stdout + completed.stderr).strip()


def _make_scratch(state_dir: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    (scratch / "owner").write_text(str(state_dir))  # lets a recovery clean it up after a kill -9
    return scratch


def _version_of(output: str) -> str:
    """The SemVer in `APP --version`'s output ("tally 0.1.0"), or ""."""
    for word in reversed(output.split()):
        with contextlib.suppress(ValueError):
            semver_key(word.removeprefix("v"))
            return word.removeprefix("v")
    return ""


def _refuse_downgrade(binary: Path, new_version: str, env: dict[str, str]) -> None:
    """A validly signed older release is still refused: replaying one would
    bring back the bugs it fixed. Unknown versions count as a downgrade."""
    _, output = _run(binary, ["--version"], env)
    installed = _version_of(output)
    if not installed or not new_version:
        which = f"{binary.name}'s installed version ({output!r})" if not installed else "the new release's version"
        raise UpdateError(
            f"cannot tell {which}, so this may be a downgrade", hint="pass --allow-downgrade if it is meant"
        )
    if semver_key(new_version) < semver_key(installed):
        raise UpdateError(
            f"{new_version} is older than the installed {binary.name} {installed}: refusing a downgrade",
            hint="pass --allow-downgrade if it is meant; nothing was changed",
        )


def update(
    binary: Path,
    source: str,
    public_key_text: str,
    data_files: list[Path],
    *,
    state_dir: Path | None = None,
    keep: int = 3,
    wait: float = 0.0,
    env: dict[str, str] | None = None,
    free_space: Callable[[Path], int] | None = None,
    allow_downgrade: bool = False,
    channel: str = "",
    receipt: Path | None = None,
) -> UpdateResult:
    """Update `binary` from the archive at `source` (path or URL), or from the
    release a channel's signed latest.json names (`channel`, with source ""), safely.

    wait: seconds to wait for the running app (or a holder of its data) to
    go away, and for another update to finish. receipt: the install receipt
    to rewrite for the new release, in the same transaction as the binary
    (snapshotted with it, put back with it)."""
    deadline = time.monotonic() + check_wait(wait)
    binary = binary.resolve()
    if not binary.is_file():
        raise UpdateError(f"{binary} is not an installed binary", hint="pass the installed executable or its receipt")
    if bool(source) == bool(channel):
        raise UsageError("update from an archive or from a channel?", hint="pass one of --artifact and --channel")
    check_keep(keep)
    data_files = list(dict.fromkeys(p.resolve() for p in data_files))
    for database in data_files:
        _check_data_file(database)
    state_dir = state_dir or default_state_dir(binary)
    refuse_if_stuck(state_dir)
    env = env or {}
    recorded_source = channel or (source if "://" in source else str(Path(source).resolve()))
    wait_until_idle(binary, data_files, deadline)  # before any download: a running app is the likeliest refusal
    scratch = _make_scratch(state_dir)
    try:
        expected = None
        if channel:
            with log.status(f"reading the channel {channel}"):
                pointed = read_channel(channel, public_key_text, binary.name, scratch)
            source, expected = pointed.source, pointed.file.sha256
        with log.status("verifying the new artifact"):
            artifact = verify_artifact(source, public_key_text, scratch)
        if expected is not None and (artifact.sha256 != expected or artifact.version != pointed.latest.version):
            raise UpdateError(
                f"{artifact.archive.name} is not the archive the channel's latest.json names "
                f"({pointed.latest.version}, {expected[:16]}...)",
                hint="the channel's files are mixed up; nothing was changed",
            )
        if binary.name not in artifact.binaries:
            raise UpdateError(f"{artifact.archive.name} has no {binary.name}", hint="pick the archive of this app")
        member = artifact.member(binary.name)
        kind = check_installed_kind(binary, artifact.target, scratch)
        if not allow_downgrade:
            _refuse_downgrade(binary, artifact.version, env)
        with exclusive_lock(state_dir, max(0.0, deadline - time.monotonic())):
            # Again under the lock, before a recovery may restore anything and right before the snapshot.
            wait_until_idle(binary, data_files, deadline)
            recover(state_dir)
            check_space(binary, data_files, state_dir, member.size,
                        free_space or (lambda p: shutil.disk_usage(p).free))  # fmt: skip
            staged = binary.with_name(f".{binary.name}.new.{os.getpid()}.partial")
            try:
                after = _receipt_after(receipt, artifact.version, recorded_source, artifact.sha256) if receipt else None
                return _apply(binary, artifact, data_files, state_dir, staged, kind, keep, env, scratch,
                              (receipt, after) if receipt and after else None, deadline)  # fmt: skip
            finally:
                staged.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _close_untouched(journal: Journal, reason: str) -> None:
    """Close the journal of an update that changed nothing; where even that
    cannot be written (a full disk), remove it: there is nothing to recover."""
    try:
        journal.advance("rolled-back", reason=reason)
    except OSError:
        journal.path.unlink(missing_ok=True)


def _apply(
    binary: Path,
    artifact: Artifact,
    data_files: list[Path],
    state_dir: Path,
    staged: Path,
    kind: tuple[str, str],
    keep: int,
    env: dict[str, str],
    scratch: Path,
    receipt: tuple[Path, str] | None,
    deadline: float,
) -> UpdateResult:
    member = artifact.member(binary.name)
    try:
        extract_binary(artifact, binary.name, staged)
        apply_ownership(staged, ownership(binary))
    except OSError as exc:
        raise UpdateError(
            f"cannot unpack the new {binary.name} into {binary.parent}: {os_reason(exc)}",
            hint="free some space there (or fix its permissions); nothing was changed",
        ) from None
    check_same_kind(staged, kind, binary.name)
    _, old_version = _run(binary, ["--version"], env)
    ident = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    for suffix in range(2, 100):  # a second update by this process within the same second
        if not (state_dir / SNAPSHOTS / ident).exists():
            break
        ident = f"{ident.rsplit('.', 1)[0]}.{suffix}"
    snapshot_dir = state_dir / SNAPSHOTS / ident
    journal = Journal(state_dir, {"id": ident, "binary": str(binary), "keep": keep, "steps": []})
    try:
        journal.advance(
            "verified",
            artifact=artifact.archive.name,
            new_sha256=artifact.sha256,
            new_binary_sha256=member.sha256,
            new_version=artifact.version,
            old_version=old_version,
            data_files=[str(p) for p in data_files],
            staged=str(staged),
            scratch=str(scratch),
            old_binary_sha256=sha256_file(binary),
            # what a recovery runs to finish forward: the signed checks, with the
            # caller's extra environment (the journal is private, 0600)
            checks=[list(check) for check in artifact.upgrade_checks],
            check_env=env,
            **(
                {"receipt": str(receipt[0]), "receipt_before": receipt[0].read_text(), "receipt_after": receipt[1]}
                if receipt
                else {}
            ),
        )
        journal.advance("snapshotting", snapshot=str(snapshot_dir))
    except OSError as exc:
        _close_untouched(journal, f"the journal could not be written: {os_reason(exc)}")
        raise UpdateError(
            f"cannot write the update journal in {state_dir}: {os_reason(exc)}",
            hint="free some space there (or fix its permissions); nothing was changed",
        ) from None
    try:
        with log.status(f"snapshotting {binary.name} and {len(data_files)} data file(s)"):
            private_dir(state_dir / SNAPSHOTS)
            taken = snapshot(binary, data_files, snapshot_dir, receipt=receipt[0] if receipt else None)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # an empty snapshots/ made just now is not left behind either
            (state_dir / SNAPSHOTS).rmdir()
        _close_untouched(journal, f"snapshot failed: {os_reason(exc)}")
        raise UpdateError(
            f"cannot snapshot {binary.name} and its data into {state_dir}: {os_reason(exc)}",
            hint="free some space there; nothing was changed",
        ) from None
    output = ""
    try:
        # The data as the snapshot's lock saw it: a write since then is not the updater's.
        journal.advance("snapshotted", live={**journal.live(binary),
                                             **{e["path"]: e["live"]["state"] for e in taken["data"]}})  # fmt: skip
        journal.advance("swapping")
        if os.name == "nt":  # a running exe can be renamed, not replaced
            os.replace(binary, binary.with_name(binary.name + ".old"))
        os.replace(staged, binary)
        fsync_dir(binary.parent)
        journal.advance("swapped", live=journal.live(binary))
        recorded = journal.record["live"]
        written = [p for p, now in journal.live(*data_files).items() if now != recorded.get(p)]
        journal.advance("migrating", written_after_snapshot=written)
        # The publisher's [update] upgrade-checks from the signed manifest: the first is
        # the app's migration (when it has one), the rest check the migrated data.
        output = ""
        done: list[str] = []
        for index, check in enumerate(artifact.upgrade_checks):
            code, check_output = _run(binary, list(check), env)
            output = f"{output}\n{check_output}".strip()
            command = f"`{binary.name} {' '.join(check)}`"
            if code != 0:
                last = check_output.splitlines()[-1] if check_output else "no output"
                after = f" after {', '.join(done)}" if done else ""
                raise UpdateError(f"{command} failed with exit code {code}{after}: {last}")
            done.append(command)
            if index == 0:
                journal.advance("migrated", live=journal.live(*data_files))
        if not done:
            journal.advance("migrated", live=journal.live(*data_files))
        journal.advance("checked", live=journal.live(*data_files))
        _commit_receipt(journal)
        journal.advance("committed")
    except BaseException as failure:
        reason = os_reason(failure) if isinstance(failure, ToolchainError | OSError) else repr(failure)
        _refuse_restore_over_live_data(journal, binary, data_files, deadline, reason)
        restored = _roll_back(journal, snapshot_dir, reason=reason, output=output)
        if isinstance(failure, ToolchainError | OSError):
            raise UpdateError(
                f"{reason}; rolled back {restored_what(binary.name, restored)} to {old_version}",
                hint=f"the migration said: {output[-500:]}" if output else "see the output above",
            ) from None
        raise
    with contextlib.suppress(OSError):  # the update is in; a recovery finishes these
        prune(state_dir, keep)
        journal.advance("done")
    return UpdateResult(
        True,
        journal.state,
        old_version,
        artifact.version,
        snapshot_dir if snapshot_dir.exists() else None,
        output,
        tuple(s[0] for s in journal.record["steps"]),
        artifact.sha256,
    )


def _refuse_restore_over_live_data(
    journal: Journal, binary: Path, data_files: list[Path], deadline: float, reason: str
) -> None:
    """Before the rollback of a failed update: the same liveness check as
    before the snapshot, and data written after it by someone else stays.
    Either leaves the journal stuck (exit 13), the data and snapshot kept."""
    try:
        wait_until_idle(binary, data_files, deadline, risk="restoring the snapshot under it would lose its writes")
    except UpdateError as held:
        why = f"it failed ({reason}), and it was not rolled back because {held.message}"
    else:
        written = journal.record.get("written_after_snapshot") or []
        if not written:
            return
        why = f"it failed ({reason}), and {', '.join(Path(p).name for p in written)} was written after the snapshot"
    with contextlib.suppress(OSError):
        journal.advance("stuck", stuck_reason=why, live=journal.live())
    raise stuck_error(journal) from None


def rollback(state_dir: Path, wait: float = 0.0, *, yes: bool = False) -> tuple[Path, int]:
    """Restore the newest snapshot by hand; return it and how many data files
    it put back. Without `yes` it only says what would be lost (UsageError)."""
    deadline = time.monotonic() + check_wait(wait)
    if not (state_dir / SNAPSHOTS).is_dir():
        raise UpdateError(f"no snapshots in {state_dir / SNAPSHOTS}", hint="nothing to roll back to")
    with exclusive_lock(state_dir, wait):
        journal = Journal.read(state_dir)
        if journal is not None and journal.state == "stuck":
            raise stuck_error(journal)
        if journal is not None and journal.state not in FINISHED:
            raise UpdateError(
                f"an interrupted update of {journal.record.get('binary', '?')} is not finished",
                hint=f"run `{recover_hint(journal)}` first",
            )
        snapshots = list_snapshots(state_dir)
        if not snapshots:
            raise UpdateError(f"no snapshots in {state_dir / SNAPSHOTS}", hint="nothing to roll back to")
        folder, manifest = snapshots[-1]
        data = [Path(e["path"]) for e in manifest["data"]]
        # a restore under a live writer would lose its writes too
        wait_until_idle(Path(manifest["binary"]["path"]), data, deadline)
        names = ", ".join(p.name for p in data) or "no data files"
        if not yes:
            raise UsageError(
                f"rolling back puts {Path(manifest['binary']['path']).name} and {names} back as they were at "
                f"{manifest['created']} (snapshot {folder.name}): everything written to them since is lost",
                hint="pass --yes to roll back",
            )
        record = {
            "id": f"rollback-{folder.name}",
            "binary": manifest["binary"]["path"],
            "data_files": [str(p) for p in data],
            "snapshot": str(folder),
            "steps": [],
        }
        return folder, _roll_back(Journal(state_dir, record), folder, reason="rollback by hand")
