"""invoke notarize"""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from toolchain.tasks.base import required, task


@task(
    help={
        "target": "the macOS target whose last build to notarize (e.g. aarch64-apple-darwin)",
        "out-dir": "where the last build wrote its record; default: dist",
        "dry-run": "build the request (zip, body, signed token) and show it; send nothing",
        "request-out": "also write the whole request, token included, to this file (mode 0600)",
        "wait": "poll until Apple accepts or rejects the submission (default: on)",
        "json": "print the request and the submission as JSON on stdout",
    },
    name="notarize",
)
def notarize_task(
    c: Context,
    target: str = "",
    out_dir: str = "",
    dry_run: bool = False,
    request_out: str = "",
    wait: bool = True,
    json: bool = False,
) -> None:
    """Submit a macOS target's Developer ID-signed binaries to Apple's notary service."""
    from toolchain.config.settings import load_settings
    from toolchain.log import log
    from toolchain.release.notary import notarize_target
    from toolchain.release.package import source_date_epoch

    settings = load_settings()
    triple = settings.catalog.target(required(target, "--target")).triple
    folder = Path(out_dir) if out_dir else settings.out_dir
    outcome = notarize_target(
        folder,
        triple,
        settings.notary,
        dry_run=dry_run,
        wait=wait,
        request_out=Path(request_out) if request_out else None,
        mtime=source_date_epoch(settings.project_dir or Path.cwd()),
    )
    if json:
        log.json(outcome.to_dict())
        return
    shown = outcome.request.shown()
    result = outcome.result
    log.table(
        f"notary request for {triple}{' (dry run: not sent)' if dry_run else ''}",
        ["field", "value"],
        [
            ["POST", shown["url"]],
            ["body", str(shown["body"])],
            ["key ID / issuer", f"{shown['jwt_header']['kid']} / {shown['jwt_claims']['iss']}"],
            ["archive", f"{shown['archive']} ({shown['archive_sha256'][:16]}...)"],
        ]
        + ([] if result is None else [["submission", f"{result.submission_id}: {result.status}"]]),
    )


TASK = notarize_task
