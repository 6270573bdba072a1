"""invoke publish, release"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.tasks import task

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.publish import Action, plan, publish, release_info
from toolchain.settings import Settings, load_settings
from toolchain.signing import public_key_text
from toolchain.tasks import entry


def _destinations(settings: Settings, github: bool, s3: bool) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    if not github and not s3:
        github, s3 = bool(settings.github.get("repository")), bool(settings.s3.get("bucket"))
    if not github and not s3:
        raise UsageError("nowhere to publish", hint="pass --github/--s3 or set [github] repository / [s3] bucket")
    return (settings.github if github else None), (settings.s3 if s3 else None)


def _show(actions: list[Action], title: str, json: bool) -> None:
    if json:
        log.json({"schema": "toolchain.publish/v1", "actions": [a.__dict__ for a in actions]})
    else:
        log.table(
            title,
            ["destination", "file", "action", "where"],
            [[a.destination, a.name, a.action, a.where] for a in actions],
        )


@task(
    help={
        "out-dir": "the verified release folder; default: dist",
        "public-key": "minisign public key the folder must be signed with (else [sign] public-key-file)",
        "github": "publish to GitHub Releases ([github] settings; token from $GITHUB_TOKEN)",
        "s3": "publish to S3 ([s3] settings; the standard AWS credential chain)",
        "replace": "replace release assets that exist with a different digest",
        "dry-run": "verify and print what would be uploaded where; upload nothing",
        "json": "print the actions as JSON on stdout",
    },
    name="publish",
)
@entry
def publish_task(
    c: Context,
    out_dir: str = "",
    public_key: str = "",
    github: bool = False,
    s3: bool = False,
    replace: bool = False,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Publish a verified release folder (refuses anything unverified)."""
    settings = load_settings()
    folder = Path(out_dir) if out_dir else settings.out_dir
    key = public_key_text(public_key, settings.public_key_file)
    github_settings, s3_settings = _destinations(settings, github, s3)
    if dry_run:
        _show(plan(release_info(folder, key), github_settings, s3_settings), "Publish plan (dry run)", json)
        return
    actions = publish(folder, key, github=github_settings, s3=s3_settings, replace=replace, repo=Path.cwd())
    _show(actions, "Published", json)


@task(
    help={
        "dry-run": "build, verify, package and sign, then print the publish plan; upload nothing",
        "out-dir": "the release folder; default: dist",
        "public-key": "minisign public key (else [sign] public-key-file)",
        "json": "print the plan or actions as JSON on stdout",
    },
    name="release",
)
@entry
def release_task(
    c: Context, dry_run: bool = False, out_dir: str = "", public_key: str = "", json: bool = False
) -> None:
    """Build every target this host can, verify, package, sign, then publish (or plan)."""
    from toolchain.build import BuildOptions, build
    from toolchain.signing import configured_secret_key

    settings = load_settings()
    if configured_secret_key(settings.secret_key_file) is None:
        raise UsageError("a release must be signed", hint="set [sign] secret-key-file or $TOOLCHAIN_SECRET_KEY")
    folder = Path(out_dir) if out_dir else settings.out_dir
    build(BuildOptions(all_targets=True, out_dir=folder))
    key = public_key_text(public_key, settings.public_key_file)
    github = settings.github if settings.github.get("repository") or dry_run else None
    s3 = settings.s3 if settings.s3.get("bucket") or dry_run else None
    if dry_run:
        _show(plan(release_info(folder, key), github, s3), "Publish plan (dry run: nothing uploaded)", json)
        return
    if github is None and s3 is None:
        raise UsageError("nowhere to publish", hint="set [github] repository and/or [s3] bucket")
    _show(publish(folder, key, github=github, s3=s3, repo=Path.cwd()), "Published", json)


TASKS = (publish_task, release_task)
