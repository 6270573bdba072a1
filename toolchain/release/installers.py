"""The installers of a release: for each app, a shell and a PowerShell
script rendered from the package's templates (data/templates/), with the
archives' targets, names and SHA-256 digests baked in. ReleaseFile is one
file of the release folder as the manifest lists it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from toolchain.config import catalog
from toolchain.errors import PackagingError


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


def _env_prefix(app: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", app.upper())


def _template(name: str) -> str:
    return resources.files("toolchain").joinpath("data", "templates", name).read_text(encoding="utf-8")


def render_installers(app: str, version: str, archives: list[ReleaseFile], base_url: str) -> dict[str, str]:
    """The shell and PowerShell installers for one app, with digests baked in."""
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
            floor = target.glibc if target.os == "linux" and target.glibc else "-"
            unix_lines.append(f"{target.triple} {archive.name} {archive.sha256} {floor} {','.join(archive.binaries)}")
    values = {"@APP@": app, "@VERSION@": version, "@BASE_URL@": base_url, "@ENV@": _env_prefix(app)}
    out = {}
    for name, template, table_key, table in (
        (f"{app}-installer.sh", "installer.sh.in", "@ARTIFACTS@", "\n".join(unix_lines)),
        (f"{app}-installer.ps1", "installer.ps1.in", "@PS_ARTIFACTS@", ",\n".join(ps_lines)),
    ):
        text = _template(template).replace(table_key, table)
        for key, value in values.items():
            if "'" in value:
                raise PackagingError(f"{key.strip('@').lower()} {value!r} contains a quote", hint="change it")
            text = text.replace(key, value)
        out[name] = text
    return out
