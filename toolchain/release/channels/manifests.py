"""A Homebrew formula and a Scoop manifest per app: each downloads the
release's archives from [release] download-url and checks their SHA-256."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from toolchain import __version__
from toolchain.errors import PackagingError


@dataclass(frozen=True)
class ManifestArchive:
    """One archive a manifest points at."""

    name: str
    sha256: str
    os: str  # linux | macos | windows
    arch: str  # x86_64 | aarch64 | universal
    top: str  # the folder the archive's files are in
    binaries: tuple[str, ...]


@dataclass(frozen=True)
class ManifestApp:
    name: str
    version: str
    description: str
    homepage: str
    license: str | None


def _ruby(text: str) -> str:
    """A Ruby double-quoted string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#") + '"'


def _class_name(app: str) -> str:
    # Homebrew's rule: the formula's file name in CamelCase, `-` and `_` dropped.
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", app) if part)


def _url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}"


def homebrew_formula(app: ManifestApp, archives: list[ManifestArchive], base_url: str) -> str | None:
    """The formula (None when no macOS or Linux archive is released)."""
    blocks = []
    for os_name, block in (("macos", "on_macos"), ("linux", "on_linux")):
        found = {a.arch: a for a in archives if a.os == os_name}
        # A universal macOS archive serves both machines when no archive of one's own exists.
        universal = found.get("universal")
        choices = {"arm": found.get("aarch64") or universal, "intel": found.get("x86_64") or universal}
        inner = []
        for cpu, archive in choices.items():
            if archive is not None:
                inner.append(
                    f"    on_{cpu} do\n      url {_ruby(_url(base_url, archive.name))}\n"
                    f"      sha256 {_ruby(archive.sha256)}\n    end"
                )
        if inner:
            blocks.append(f"  {block} do\n" + "\n".join(inner) + "\n  end")
    if not blocks:
        return None
    binaries = sorted({b for a in archives if a.os != "windows" for b in a.binaries})
    lines = [
        f"# Written by toolchain {__version__} from the release's archives.",
        f"class {_class_name(app.name)} < Formula",
        f"  desc {_ruby(app.description)}",
        f"  homepage {_ruby(app.homepage)}",
        f"  version {_ruby(app.version)}",
        *([f"  license {_ruby(app.license)}"] if app.license else []),
        "",
        "\n\n".join(blocks),
        "",
        "  def install",
        *(f"    bin.install {_ruby(b)}" for b in binaries),
        "  end",
        "",
        "  test do",
        f'    assert_match version.to_s, shell_output("#{{bin}}/{binaries[0]} --version")',
        "  end",
        "end",
    ]
    return "\n".join(lines) + "\n"


SCOOP_ARCH = {"x86_64": "64bit", "aarch64": "arm64"}


def scoop_manifest(app: ManifestApp, archives: list[ManifestArchive], base_url: str) -> str | None:
    """The Scoop manifest (None when no Windows archive is released)."""
    architecture: dict[str, dict[str, str]] = {}
    binaries: set[str] = set()
    for archive in sorted(archives, key=lambda a: a.name):
        key = SCOOP_ARCH.get(archive.arch)
        if archive.os != "windows" or key is None:
            continue
        if key in architecture:
            raise PackagingError(
                f"two Windows archives for {archive.arch} ({architecture[key]['url']} and {archive.name})",
                hint="release one Windows target per architecture (msvc or gnu)",
            )
        architecture[key] = {
            "url": _url(base_url, archive.name),
            "hash": archive.sha256,
            "extract_dir": archive.top,
        }
        binaries |= set(archive.binaries)
    if not architecture:
        return None
    document = {
        "version": app.version,
        "description": app.description,
        "homepage": app.homepage,
        "architecture": architecture,
        "bin": sorted(binaries),
    } | ({"license": app.license} if app.license else {})
    return json.dumps(document, indent=4, sort_keys=True) + "\n"
