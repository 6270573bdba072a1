"""The installers of a release: for each app, a shell and a PowerShell
script rendered from the package's templates (data/templates/), with the
archives' targets, names and SHA-256 digests baked in, and what an upgrade
needs (the app's data files, its backup command, the signing key: see
InstallerUpdate). ReleaseFile is one file of the release folder as the
manifest lists it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from toolchain.config import catalog
from toolchain.config.settings import UpdateSettings, installer_data_pattern
from toolchain.errors import PackagingError
from toolchain.log import log
from toolchain.release.keylist import latest_list


@dataclass(frozen=True)
class ReleaseFile:
    name: str
    kind: str  # archive | installer | provenance
    app: str | None
    target: str | None
    size: int
    sha256: str
    binaries: tuple[str, ...] = ()
    verdicts: tuple[dict[str, Any], ...] = ()
    dependencies: dict[str, list[dict[str, str]]] | None = None  # per binary, from cargo-auditable

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"dependencies": self.dependencies} if self.dependencies else {}
        return extra | {
            "name": self.name,
            "kind": self.kind,
            "app": self.app,
            "target": self.target,
            "size": self.size,
            "sha256": self.sha256,
            "binaries": list(self.binaries),
            "verdicts": list(self.verdicts),
        }


@dataclass(frozen=True)
class InstallerUpdate:
    """What the installers bake in for an upgrade over an existing install."""

    data_files: tuple[str, ...] = ()  # [update] data-files patterns (~, $XDG_DATA_HOME, %LOCALAPPDATA%)
    backup_command: tuple[str, ...] = ()  # [update] backup-command; "{dir}" is the folder to write into
    public_key: str = ""  # the minisign public key line the release is signed with ("" when unsigned)
    checks: tuple[tuple[str, ...], ...] = (("--version",),)  # [update] upgrade-checks, run after the swap
    # The key list in force when the release was packaged (keys/N.json's text, "" when none): a
    # fresh install starts its trust from it (its roots), as the updater's --root does.
    keylist: str = ""

    @classmethod
    def from_settings(cls, update: UpdateSettings) -> InstallerUpdate:
        return cls(update.data_files, update.backup_command, checks=update.upgrade_checks)

    def installer_patterns(self) -> tuple[str, ...]:
        """The patterns an installer can place on an end user's machine (relative ones cannot)."""
        kept = []
        for pattern in self.data_files:
            canonical = installer_data_pattern(pattern)
            if canonical is None:
                log.warn(f"[update] data-files entry {pattern!r} is relative: the installers leave it out (use ~/...)")
            else:
                kept.append(canonical)
        return tuple(kept)


def baked_keylist(folder: Path) -> str:
    """The newest key list in the release folder's keys/ ("" when it has none), for the installers
    to bake in: write the lists (`invoke rotate-key`) before packaging the release they sign."""
    newest = latest_list(folder)
    return "" if newest is None else json.dumps(newest.to_document(), sort_keys=True)


def env_prefix(app: str) -> str:
    """The app's environment prefix, as the installers spell it (TALLY for tally)."""
    return re.sub(r"[^A-Z0-9]", "_", app.upper())


def _template(name: str) -> str:
    return resources.files("toolchain").joinpath("data", "templates", name).read_text(encoding="utf-8")


def render_installers(
    app: str, version: str, archives: list[ReleaseFile], base_url: str, update: InstallerUpdate | None = None
) -> dict[str, str]:
    """The shell and PowerShell installers for one app, with digests baked in."""
    update = update or InstallerUpdate()
    unix_lines, ps_lines = [], []
    for archive in sorted(archives, key=lambda a: a.target or ""):
        target = catalog.current().target(archive.target or "")
        if target.os == "windows":
            binaries = ", ".join(f"'{b}'" for b in archive.binaries)
            ps_lines.append(
                f"    [pscustomobject]@{{ Target = '{target.triple}'; Archive = '{archive.name}'; "
                f"Sha256 = '{archive.sha256}'; Binaries = @({binaries}) }}"
            )
        else:
            floor = target.compat.glibc if target.os == "linux" and target.compat.glibc else "-"
            unix_lines.append(f"{target.triple} {archive.name} {archive.sha256} {floor} {','.join(archive.binaries)}")
    patterns = update.installer_patterns()
    if any(not check for check in update.checks):
        raise PackagingError("[update] upgrade-checks has an empty command", hint="give each one its arguments")
    for word in (*patterns, *update.backup_command, *(w for check in update.checks for w in check)):
        if "\n" in word or "'" in word or "\t" in word or not word:
            raise PackagingError(
                f"[update] entry {word!r} is empty or contains a quote, tab or line break", hint="change it"
            )
    key_line = update.public_key.strip().splitlines()[-1] if update.public_key.strip() else ""
    # One line, so that it fits a quoted shell word (a list's JSON holds no quote of its own).
    keylist = json.dumps(json.loads(update.keylist), sort_keys=True) if update.keylist else ""
    values = {
        "@APP@": app,
        "@VERSION@": version,
        "@BASE_URL@": base_url,
        "@ENV@": env_prefix(app),
        "@PUBLIC_KEY@": key_line,
        "@KEYLIST@": keylist,
        "@DATA_FILES@": "\n".join(patterns),
        "@BACKUP_COMMAND@": "\n".join(update.backup_command),
        # one command a line, its words separated by tabs (the shell splits on them)
        "@UPGRADE_CHECKS@": "\n".join("\t".join(check) for check in update.checks),
        "@PS_UPGRADE_CHECKS@": ", ".join("'" + "\t".join(check) + "'" for check in update.checks),
        "@PS_DATA_FILES@": ", ".join(f"'{p}'" for p in patterns),
        "@PS_BACKUP_COMMAND@": ", ".join(f"'{w}'" for w in update.backup_command),
    }
    out = {}
    for name, template, table_key, table in (
        (f"{app}-installer.sh", "installer.sh.in", "@ARTIFACTS@", "\n".join(unix_lines)),
        (f"{app}-installer.ps1", "installer.ps1.in", "@PS_ARTIFACTS@", ",\n".join(ps_lines)),
    ):
        text = _template(template).replace(table_key, table)
        for key, value in values.items():
            if "'" in value and not key.startswith("@PS_"):
                raise PackagingError(f"{key.strip('@').lower()} {value!r} contains a quote", hint="change it")
            text = text.replace(key, value)
        out[name] = text
    return out
