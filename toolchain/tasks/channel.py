"""invoke renew, rollout, withdraw: re-sign a release folder's channel (latest.json)
without rebuilding, and publish it when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context

from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.tasks.base import out_folder, required, task

if TYPE_CHECKING:
    from toolchain.release.publish import Action
    from toolchain.release.renew import Renewal

COMMON_HELP = {
    "out-dir": "the release folder whose channel to re-sign; default: dist",
    "secret-key": "minisign secret key (else [sign] secret-key-file, $TOOLCHAIN_SECRET_KEY(_FILE))",
    "public-key": "minisign public key the folder is signed with (else [sign] public-key-file)",
    "github": "upload the re-signed files to the version's GitHub release ([github] settings)",
    "s3": "upload them to S3 and move the pointer ([s3] settings)",
    "json": "print the result as JSON on stdout",
    "root": "root public key the folder's key lists follow from, when --secret-key is a channel key "
    "(default: the release key, which signs list 1)",
}


def resign_channel(
    out_dir: str,
    secret_key: str,
    public_key: str,
    *,
    github: bool,
    s3: bool,
    json: bool,
    rollout: int | None = None,
    withdraw: str = "",
    root: str = "",
) -> None:
    """The one path of renew, rollout and withdraw: re-sign, then publish what changed. The secret
    key is the release key or a channel key of the folder's key lists."""
    from toolchain.config.settings import load_settings
    from toolchain.release.github import GitHubTarget
    from toolchain.release.publish import publish_github, publish_s3, release_info
    from toolchain.release.renew import RENEWED_NAMES, renew_channel
    from toolchain.release.s3 import S3Target
    from toolchain.release.signing import load_secret_key, public_key_text

    settings = load_settings()
    folder = out_folder(out_dir, settings)
    key_text = public_key_text(public_key, settings.public_key_file)
    key = load_secret_key(Path(secret_key) if secret_key else settings.secret_key_file)
    # Settings first: a bad [github]/[s3] value fails before the folder changes.
    github_target = GitHubTarget.from_settings(settings.github) if github else None
    s3_target = S3Target.from_settings(settings.s3) if s3 else None
    root_text = public_key_text(root, None) if root else ""
    renewal = renew_channel(
        folder, key, key_text, settings.update.metadata_days, rollout=rollout, withdraw=withdraw, root_text=root_text
    )
    actions: list[Action] = []
    # A withdrawal points the channel back at this (older) release on purpose.
    if github_target is not None or s3_target is not None:
        info = release_info(folder, key_text, min_validity_days=settings.update.min_validity, root_text=root_text)
        if github_target is not None:
            actions += publish_github(info, github_target, replace=False, notes="", replace_names=RENEWED_NAMES,
                                      force_latest=bool(withdraw))  # fmt: skip
        if s3_target is not None:
            actions += publish_s3(info, s3_target, replace_names=RENEWED_NAMES, force_latest=bool(withdraw))
    _show(renewal, actions, json)


def _show(renewal: Renewal, actions: list[Action], json: bool) -> None:
    after = renewal.after
    if json:
        document: dict[str, Any] = {
            "schema": "toolchain.channel/v1",
            "app": after.app,
            "version": after.version,
            "expires": after.expires.isoformat(),
            "previous_expires": renewal.before.expires.isoformat(),
            "rollout": after.rollout,
            "withdrawn": list(after.withdrawn),
            "actions": [a.__dict__ for a in actions],
        }
        log.json(document)
        return
    withdrawn = ", ".join(after.withdrawn) or "-"
    log.table(
        f"Channel {after.app} {after.version} re-signed",
        ["expires", "was", "rollout", "withdrawn"],
        [[after.expires.isoformat(), renewal.before.expires.isoformat(), f"{after.rollout}%", withdrawn]],
    )
    for action in actions:
        log.info(f"{action.destination}: {action.action} {action.name} ({action.where})")


@task(help=COMMON_HELP, name="renew")
def renew_task(
    c: Context,
    out_dir: str = "",
    secret_key: str = "",
    public_key: str = "",
    github: bool = False,
    s3: bool = False,
    json: bool = False,
    root: str = "",
) -> None:
    """Re-sign the channel (latest.json) with a fresh expiry, no rebuild; publish it with --s3/--github."""
    resign_channel(out_dir, secret_key, public_key, github=github, s3=s3, json=json, root=root)


def percent(value: str, option: str) -> int:
    """A whole percent from 0 to 100 (invoke passes options as text when given)."""
    try:
        share = int(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a whole number", hint=f"pass {option} 0..100") from None
    if not 0 <= share <= 100:
        raise UsageError(f"{option} {share} is not a share of installs", hint=f"pass {option} 0..100 (0 pauses)")
    return share


@task(help={**COMMON_HELP, "percent": "share of installed copies that take this release, 0..100 (0 pauses)"},
      name="rollout")  # fmt: skip
def rollout_task(
    c: Context,
    percent_: str = "",
    out_dir: str = "",
    secret_key: str = "",
    public_key: str = "",
    github: bool = False,
    s3: bool = False,
    json: bool = False,
    root: str = "",
) -> None:
    """Set the share of installed copies that update to the channel's release (0 pauses); re-signs the channel."""
    share = percent(required(percent_, "--percent"), "--percent")
    resign_channel(out_dir, secret_key, public_key, github=github, s3=s3, json=json, rollout=share, root=root)


@task(
    help={
        **COMMON_HELP,
        "version": "the version to withdraw (the bad release)",
        "out-dir": "the folder of the newest GOOD release: its channel becomes the pointer; default: dist",
        "s3": "upload it to S3 and point the channel back at the good release ([s3] settings)",
    },
    name="withdraw",
)
def withdraw_task(
    c: Context,
    version: str = "",
    out_dir: str = "",
    secret_key: str = "",
    public_key: str = "",
    github: bool = False,
    s3: bool = False,
    json: bool = False,
    root: str = "",
) -> None:
    """Point the channel back at the newest good release and mark VERSION withdrawn (updaters skip it)."""
    resign_channel(
        out_dir, secret_key, public_key, github=github, s3=s3, json=json, withdraw=required(version, "--version"),
        root=root,
    )  # fmt: skip


TASKS = (renew_task, rollout_task, withdraw_task)
