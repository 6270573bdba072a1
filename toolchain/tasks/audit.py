"""invoke audit"""

from __future__ import annotations

import os
from pathlib import Path

from invoke.context import Context

from toolchain.errors import AuditError, UsageError
from toolchain.log import log
from toolchain.tasks.base import task


@task(
    help={
        "folder": "audit the release folder(s) under this path",
        "s3": "audit every release in the [s3] bucket (the standard AWS credential chain)",
        "github": "audit every published release of [github] repository (token from $GITHUB_TOKEN)",
        "public-key": "the configured minisign public key every release must be signed with "
        "(else [sign] public-key-file)",
        "json": "print the result as JSON on stdout",
    },
    name="audit",
)
def audit_task(
    c: Context, folder: str = "", s3: bool = False, github: bool = False, public_key: str = "", json: bool = False
) -> None:
    """Download every published release again and re-verify digests, signatures, provenance, installers and key."""
    from toolchain.config.settings import load_settings
    from toolchain.release.audit import audit, summary
    from toolchain.release.github import GitHubClient, GitHubTarget
    from toolchain.release.s3 import S3Target
    from toolchain.release.signing import public_key_text

    settings = load_settings()
    key = public_key_text(public_key, settings.public_key_file)
    if not folder and not s3 and not github:
        github, s3 = bool(settings.github.repository), bool(settings.s3.bucket)
    s3_target = S3Target.from_settings(settings.s3) if s3 else None
    if s3_target is not None and not s3_target.bucket:
        raise UsageError("no S3 bucket to audit", hint="set [s3] bucket")
    client = None
    if github:
        target = GitHubTarget.from_settings(settings.github)
        if not target.repository:
            raise UsageError("no GitHub repository to audit", hint="set [github] repository = OWNER/NAME")
        token = os.environ.get(target.token_env, "")
        if not token:
            raise UsageError(f"${target.token_env} is not set", hint="export a token that can read the releases")
        client = GitHubClient(target.api_url, target.uploads_url, target.repository, token)
    results = audit(key, folder=Path(folder) if folder else None, s3=s3_target, github=client)
    if json:
        log.json({"schema": "toolchain.audit/v1", "ok": all(r.ok for r in results),
                  "releases": [r.to_dict() for r in results]})  # fmt: skip
    else:
        log.table(
            "Release audit",
            ["release", "source", "check", "result", "detail"],
            [[r.release, r.source, ch.check, "ok" if ch.ok else "FAIL", ch.detail] for r in results for ch in r.checks],
        )
    if not all(r.ok for r in results):
        raise AuditError(summary(results), hint="see the table; re-publish or revoke the failing release")
    log.info(summary(results))


TASK = audit_task
