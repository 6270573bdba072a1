"""The release channels' names: which formats exist, what each is called in
the release folder, and how a target's architecture is spelled by each
packaging system. No imports beyond the standard library: the settings
model reads Format."""

from __future__ import annotations

import re
from typing import Literal, get_args

SBOM = "sbom"
LINUX_PACKAGES = ("deb", "rpm", "apk")
Format = Literal["sbom", "deb", "rpm", "apk", "msi", "homebrew", "scoop"]
FORMATS: tuple[str, ...] = get_args(Format)
SBOM_SUFFIX = ".cdx.json"

# The release-folder file patterns of the channels (stale-file detection and `invoke verify`).
PATTERNS = ("*.deb", "*.rpm", "*.apk", "*.msi", f"*{SBOM_SUFFIX}", "*.rb", "*.json")

# nfpm takes Go's architecture names and spells them per packager (amd64 in a
# .deb, x86_64 in an .rpm and an .apk); an MSI's Template names x64 or Arm64.
NFPM_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
FILE_ARCH = {
    "deb": {"x86_64": "amd64", "aarch64": "arm64"},
    "rpm": {"x86_64": "x86_64", "aarch64": "aarch64"},
    "apk": {"x86_64": "x86_64", "aarch64": "aarch64"},
    "msi": {"x86_64": "x64", "aarch64": "arm64"},
}
RPM_RELEASE = "1"


def package_name(app: str) -> str:
    """Debian, RPM and Alpine package names allow no underscore: cargo's `_` becomes `-`."""
    return re.sub(r"[^a-z0-9+.-]", "-", app.lower())


def file_name(fmt: str, app: str, version: str, arch: str) -> str:
    """The release-folder name of one package (each system's own convention)."""
    name, machine = package_name(app), FILE_ARCH[fmt][arch]
    if fmt == "deb":
        return f"{name}_{version.replace('-', '~')}_{machine}.deb"
    if fmt == "rpm":
        return f"{name}-{version.replace('-', '~')}-{RPM_RELEASE}.{machine}.rpm"
    if fmt == "apk":
        return f"{name}-{version.replace('-', '_')}-r0.{machine}.apk"
    if fmt == "msi":
        return f"{app}-{version}-{machine}.msi"
    raise ValueError(fmt)


def manifest_names(app: str) -> dict[str, str]:
    """The Homebrew formula and the Scoop manifest of an app (each tool takes the app's name from it)."""
    return {"homebrew": f"{app}.rb", "scoop": f"{app}.json"}


def sbom_name(artifact: str) -> str:
    return f"{artifact}{SBOM_SUFFIX}"


def expected_names(app: str, version: str, os: str, arch: str, archive: str) -> set[str]:
    """Every channel file a target's build can give rise to (whatever formats are on)."""
    names = {sbom_name(archive), *manifest_names(app).values()}
    formats = LINUX_PACKAGES if os == "linux" else ("msi",) if os == "windows" else ()
    for fmt in formats:
        if arch in FILE_ARCH[fmt]:
            package = file_name(fmt, app, version, arch)
            names |= {package, sbom_name(package)}
    return names
