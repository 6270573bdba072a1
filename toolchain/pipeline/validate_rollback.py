"""Rollback validation (guardrail 3), the run: install the previous release in a sandbox, make
data with it, run the real updater (toolchain.update) to this release with a forced migration
failure, check that binary and data were put back exactly (bytes, and SQL dumps), then run a
clean update. The result is recorded in the release folder
(toolchain.release.rollback_validation), which publish requires."""

from __future__ import annotations

import json
import platform
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from toolchain import proc
from toolchain.digest import sha256_file
from toolchain.errors import (
    ConfigError,
    RollbackValidationError,
    SignatureError,
    ToolchainError,
    UpdateError,
    UsageError,
)
from toolchain.log import log
from toolchain.release.folder import MANIFEST_NAME, SUMS_NAME, verify_release
from toolchain.release.installers import env_prefix
from toolchain.release.rollback_validation import (
    SQLITE_MAGIC,
    VALIDATION_NAME,
    VALIDATION_SCHEMA,
    AppRelease,
    Check,
    ValidationReport,
    record_validation,
    verified_manifest,
)
from toolchain.release.schema import ArchiveRef, parse_level, runnable_first, sandbox, sandbox_env
from toolchain.release.signing import SecretKey, parse_public_key


@dataclass(frozen=True)
class RollbackOptions:
    """The [update] settings validation needs, read once."""

    schema_command: tuple[str, ...] = ()
    fail_migration_env: str = "{APP}_FAIL_MIGRATION"
    seed_commands: tuple[tuple[str, ...], ...] = ()

    def fail_env(self, app: str) -> str:
        return self.fail_migration_env.replace("{APP}", env_prefix(app))


def _dumps(files: Sequence[Path]) -> dict[str, list[str]]:
    """Each database's content as SQL (the same rows give the same dump)."""
    out = {}
    for path in files:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            out[path.name] = list(connection.iterdump())
        connection.close()
    return out


def _sqlite_files(home: Path) -> list[Path]:
    """The data the app made: every SQLite file in its sandbox (the sandbox
    holds nothing else, so this finds them without the project naming them)."""
    found = []
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                    found.append(path)
    return found


def _binary_name(archive: ArchiveRef, app: str) -> str:
    return archive.binaries[0] if archive.binaries else app


def _archive_source(source: str, name: str) -> str:
    return f"{source.rstrip('/')}/{name}" if "://" in source else str(Path(source) / name)


def validate_rollback(
    folder: Path,
    previous: str,
    public_key_text: str,
    key: SecretKey | None,
    options: RollbackOptions,
) -> ValidationReport:
    """Prove that updating from `previous` to the release in `folder` rolls back
    cleanly on a failed migration and succeeds without one; record it in the folder."""
    from toolchain.update import update
    from toolchain.update.artifact import extract_binary, verify_artifact
    from toolchain.update.journal import Journal

    verify_release(folder, public_key_text)
    signed = (folder / f"{SUMS_NAME}.minisig").is_file()
    if signed and key is None:
        raise UsageError(
            f"{folder} is signed, and adding {VALIDATION_NAME} to it needs the signing key",
            hint="set [sign] secret-key-file or $TOOLCHAIN_SECRET_KEY",
        )
    if key is not None and key.public_key() != parse_public_key(public_key_text):
        raise SignatureError(
            "the secret key does not belong to the public key the release is checked with",
            hint="pass the release's own key pair",
        )
    this = AppRelease.from_manifest(json.loads((folder / MANIFEST_NAME).read_text()), str(folder))
    native = [a for a, how in runnable_first(this.archives) if how == "native"]
    if not native:
        raise UsageError(
            f"no archive of {this.app} in {folder} runs natively on this machine",
            hint="run validate-rollback on a machine of one of the release's targets",
        )
    archive = native[0]
    if this.schema_level is None:
        raise ConfigError(
            f"{folder}/{MANIFEST_NAME} records no schema level for {this.app}",
            hint="set [update] schema-command to the app's schema report and re-run `invoke package`",
        )
    fail_env = options.fail_env(this.app)
    checks: list[Check] = []
    with sandbox("toolchain-rollback-") as work:
        (work / "download").mkdir()
        before = AppRelease.from_manifest(verified_manifest(previous, public_key_text, work / "download"), previous)
        if before.app != this.app:
            raise UsageError(
                f"{previous} is a release of {before.app}, not {this.app}", hint="pass the previous release"
            )
        old = next((a for a in before.archives if a.target == archive.target), None)
        if old is None:
            raise UsageError(
                f"{previous} has no {archive.target} archive", hint="pass a release built for this machine"
            )
        name = _binary_name(archive, this.app)
        log.step(f"installing {this.app} {before.version} in {work}")
        artifact = verify_artifact(_archive_source(previous, old.name), public_key_text, work / "download")
        (work / "bin").mkdir()
        binary = work / "bin" / name
        extract_binary(artifact, name, binary)
        binary.chmod(0o755)
        home = work / "home"
        env = sandbox_env(this.app, home)
        for command in options.seed_commands:
            result = proc.run([binary, *command], env=env, check=False, timeout=120)
            if result.returncode != 0:
                last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
                raise ConfigError(
                    f"`{name} {' '.join(command)}` (seed-commands) exited {result.returncode}: {last[0]}",
                    hint="fix [update] seed-commands to commands the previous release accepts",
                )
        data = _sqlite_files(home)
        if not data:
            raise ConfigError(
                f"{this.app} {before.version} made no SQLite file with [update] seed-commands",
                hint='set seed-commands to commands that write the app\'s data (e.g. [["migrate"]])',
            )
        binary_before, dump_before = sha256_file(binary), _dumps(data)
        checks.append(Check("data made", True, f"{len(data)} SQLite file(s) by {before.version}"))
        step = str(this.schema_level)
        state = work / "state"
        log.step(f"update {before.version} -> {this.version} with {fail_env}={step} (must roll back)")
        try:
            update(binary, str(folder / archive.name), public_key_text, data, state_dir=state, keep=1,
                   env={**env, fail_env: step})  # fmt: skip
            checks.append(Check("forced failure refused", False, f"the update succeeded despite {fail_env}={step}"))
        except UpdateError as exc:
            journal = Journal.read(state)
            steps = [s[0] for s in journal.record.get("steps", [])] if journal else []
            migrated = "migrating" in steps and journal is not None and journal.state == "rolled-back"
            checks.append(Check("forced failure refused", migrated, exc.message[:300]))
        checks.append(Check("binary restored", sha256_file(binary) == binary_before, f"sha256 {binary_before[:16]}"))
        restored = _dumps(data) == dump_before
        checks.append(Check("data restored", restored, "same SQL dump" if restored else "the SQL dump differs"))
        log.step(f"update {before.version} -> {this.version} (must succeed)")
        try:
            result_ok = update(
                binary, str(folder / archive.name), public_key_text, data, state_dir=state, keep=1, env=env
            )
            report = proc.run([binary, *options.schema_command], env=env, check=False, timeout=120)
            level = parse_level(report.stdout)
            checks.append(
                Check(
                    "clean update",
                    result_ok.ok and level == this.schema_level,
                    f"{result_ok.old_version} -> {result_ok.new_version}, schema level {level}",
                )
            )
        except ToolchainError as exc:
            checks.append(Check("clean update", False, exc.message[:300]))
    passed = all(c.ok for c in checks)
    document = {
        "schema": VALIDATION_SCHEMA,
        "app": this.app,
        "version": this.version,
        "schema_level": this.schema_level,
        "previous": {
            "source": previous,
            "version": before.version,
            "schema_level": before.schema_level,
            "archive": old.name,
            "sha256": old.sha256,
        },
        "exercised": {"archive": archive.name, "target": archive.target, "sha256": archive.sha256},
        "forced_failure": {"env": fail_env, "value": step},
        "seed_commands": [list(c) for c in options.seed_commands],
        "artifacts": this.digests,
        "checks": [asdict(c) for c in checks],
        "result": "pass" if passed else "fail",
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{platform.system()}-{platform.machine()}",
    }
    path = record_validation(folder, document, key)
    report_out = ValidationReport(
        path, passed, tuple(checks), before.version, this.version, before.schema_level, this.schema_level, this.digests
    )
    if not passed:
        failed = next(c for c in checks if not c.ok)
        raise RollbackValidationError(
            f"rollback validation of {this.app} {before.version} -> {this.version} failed: {failed.name} "
            f"({failed.detail})",
            hint=f"fix the update path; {path.name} records the failure and publish will refuse the release",
        )
    return report_out
