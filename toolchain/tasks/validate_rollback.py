"""invoke validate-rollback"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import out_folder, required, task


@task(
    help={
        "from": "the previous release: a release folder or the URL of one (its manifest.json is fetched from there)",
        "out-dir": "this release's signed folder; default: dist",
        "public-key": "minisign public key both releases are signed with (else [sign] public-key-file)",
        "secret-key": "key to sign rollback-validation.json with (else [sign] secret-key-file, $TOOLCHAIN_SECRET_KEY)",
        "json": "print the result as JSON on stdout",
    },
    name="validate-rollback",
)
def validate_rollback_task(
    c: Context, from_: str = "", out_dir: str = "", public_key: str = "", secret_key: str = "", json: bool = False
) -> None:
    """Install the previous release, fail its update on purpose, check the restore, then update cleanly."""
    from toolchain.config.settings import load_settings
    from toolchain.pipeline.validate_rollback import RollbackOptions, validate_rollback
    from toolchain.release.signing import configured_secret_key, public_key_text

    previous = required(from_, "--from")
    settings = load_settings()
    folder = out_folder(out_dir, settings)
    key_text = public_key_text(public_key, settings.public_key_file)
    key = configured_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
    options = RollbackOptions(
        settings.update.schema_command, settings.update.fail_migration_env, settings.update.seed_commands
    )
    report = validate_rollback(folder, previous, key_text, key, options)
    if json:
        log.json(
            {
                "schema": "toolchain.validate-rollback/v1",
                "path": str(report.path),
                "passed": report.passed,
                "previous": report.previous_version,
                "version": report.version,
                "schema_levels": [report.previous_level, report.level],
                "checks": [c.__dict__ for c in report.checks],
            }
        )
        return
    log.table(
        f"Rollback validation {report.previous_version} -> {report.version} "
        f"(schema {report.previous_level} -> {report.level})",
        ["check", "result", "detail"],
        [[c.name, "ok" if c.ok else "FAIL", c.detail] for c in report.checks],
    )
    log.info(f"wrote {report.path}")


TASKS = (validate_rollback_task,)
