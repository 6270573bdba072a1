"""invoke publish, release"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.tasks.base import out_folder, task

if TYPE_CHECKING:
    from toolchain.config.settings import Settings
    from toolchain.release.github import GitHubTarget
    from toolchain.release.publish import Action
    from toolchain.release.s3 import S3Target


def _destinations(settings: Settings, github: bool, s3: bool) -> tuple[GitHubTarget | None, S3Target | None]:
    from toolchain.release.github import GitHubTarget
    from toolchain.release.s3 import S3Target

    if not github and not s3:
        github, s3 = bool(settings.github.repository), bool(settings.s3.bucket)
    if not github and not s3:
        raise UsageError("nowhere to publish", hint="pass --github/--s3 or set [github] repository / [s3] bucket")
    return (
        GitHubTarget.from_settings(settings.github) if github else None,
        S3Target.from_settings(settings.s3) if s3 else None,
    )


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
        "replace": "replace GitHub release assets and S3 objects that exist with a different digest",
        "force-latest": "point S3's latest.json at this version even when it names a newer one",
        "dry-run": "verify and print what would be uploaded where; upload nothing",
        "json": "print the actions as JSON on stdout",
        "previous": "the release this one follows (folder or URL) for the schema check; default: the latest published",
        "rollout": "share of installed copies that take this release, 0..100 (re-signs the channel)",
        "secret-key": "with --rollout: the key that re-signs the channel (else [sign] secret-key-file)",
        "root": "root public key the folder's key lists follow from, for a channel re-signed by a channel key "
        "(default: the release key, which signs list 1)",
    },
    name="publish",
)
def publish_task(
    c: Context,
    out_dir: str = "",
    public_key: str = "",
    github: bool = False,
    s3: bool = False,
    replace: bool = False,
    force_latest: bool = False,
    dry_run: bool = False,
    json: bool = False,
    previous: str = "",
    rollout: str = "",
    secret_key: str = "",
    root: str = "",
) -> None:
    """Publish a verified release folder (refuses anything unverified, and schema changes not rollback-validated)."""
    from toolchain.config.settings import load_settings
    from toolchain.release.publish import plan, publish, release_info
    from toolchain.release.signing import public_key_text

    settings = load_settings()
    folder = out_folder(out_dir, settings)
    key = public_key_text(public_key, settings.public_key_file)
    github_target, s3_target = _destinations(settings, github, s3)
    root_text = public_key_text(root, None) if root else ""
    if rollout:
        from toolchain.release.renew import renew_channel
        from toolchain.release.signing import load_secret_key
        from toolchain.tasks.channel import percent

        share = percent(rollout, "--rollout")
        signer = load_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
        renew_channel(folder, signer, key, settings.update.metadata_days, rollout=share, root_text=root_text)
    if dry_run:
        info = release_info(folder, key, min_validity_days=settings.update.min_validity, root_text=root_text)
        _show(plan(info, github_target, s3_target), "Publish plan (dry run)", json)
        return
    actions = publish(folder, key, github=github_target, s3=s3_target, replace=replace, force_latest=force_latest,
                      repo=Path.cwd(), previous=previous, min_validity_days=settings.update.min_validity,
                      root_text=root_text)  # fmt: skip
    _show(actions, "Published", json)


@task(
    help={
        "dry-run": "build, verify, package and sign, then print the publish plan; upload nothing",
        "out-dir": "the release folder; default: dist",
        "public-key": "minisign public key (else [sign] public-key-file)",
        "force-latest": "point S3's latest.json at this version even when it names a newer one",
        "json": "print the plan or actions as JSON on stdout",
    },
    name="release",
)
def release_task(
    c: Context,
    dry_run: bool = False,
    out_dir: str = "",
    public_key: str = "",
    force_latest: bool = False,
    json: bool = False,
) -> None:
    """Build every target this host can, verify, package, sign, then publish (or plan)."""
    from toolchain.config.settings import load_settings
    from toolchain.pipeline.command import package_built
    from toolchain.pipeline.targets import BuildOptions, build
    from toolchain.release.github import GitHubTarget
    from toolchain.release.publish import plan, publish, release_info
    from toolchain.release.s3 import S3Target
    from toolchain.release.signing import configured_secret_key, public_key_text

    settings = load_settings()
    if configured_secret_key(settings.secret_key_file) is None:
        raise UsageError("a release must be signed", hint="set [sign] secret-key-file or $TOOLCHAIN_SECRET_KEY")
    folder = out_folder(out_dir, settings)
    # Settings first: a bad [github]/[s3] value fails before minutes of building.
    github = GitHubTarget.from_settings(settings.github) if settings.github.repository or dry_run else None
    s3 = S3Target.from_settings(settings.s3) if settings.s3.bucket or dry_run else None
    if not dry_run and github is None and s3 is None:
        raise UsageError("nowhere to publish", hint="set [github] repository and/or [s3] bucket")
    package_built(build(BuildOptions(all_targets=True, out_dir=folder), settings), settings)
    key = public_key_text(public_key, settings.public_key_file)
    if dry_run:
        info = release_info(folder, key, min_validity_days=settings.update.min_validity)
        _show(plan(info, github, s3), "Publish plan (dry run: nothing uploaded)", json)
        return
    actions = publish(folder, key, github=github, s3=s3, force_latest=force_latest, repo=Path.cwd(),
                      min_validity_days=settings.update.min_validity)  # fmt: skip
    _show(actions, "Published", json)


TASKS = (publish_task, release_task)
