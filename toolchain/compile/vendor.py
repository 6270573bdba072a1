"""A project's crate sources as build-std sees them: whether cargo is told to
work offline, whether crates-io is replaced by a vendored directory
(`cargo vendor`), and the one merged directory source that holds both std's
vendored crates and the project's (cargo accepts one replacement for
crates-io, and build-std needs std's crates from the same place)."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

from toolchain.compile.routes import ProjectSources
from toolchain.errors import ProjectError


def _cargo_home() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


def cargo_config_files(start: Path) -> list[Path]:
    """cargo's config files for a cargo run in `start` (the project's context folder),
    most specific first (as cargo merges them)."""
    found = []
    for folder in (start, *start.parents):
        for name in ("config.toml", "config"):
            path = folder / ".cargo" / name
            if path.is_file():
                found.append(path)
                break
    home = _cargo_home()
    for name in ("config.toml", "config"):
        path = home / name
        if path.is_file() and path not in found:
            found.append(path)
            break
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"cannot read cargo config {path}: {exc}", hint="fix or remove that file") from exc


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def project_sources(folder: Path, registry_dependencies: tuple[str, ...], target_dir: Path) -> ProjectSources:
    """folder: where the project's cargo commands run (CargoContext), whose config files cargo reads."""
    offline = _truthy(os.environ.get("CARGO_NET_OFFLINE"))
    replace_with: str | None = None
    directories: dict[str, Path] = {}
    for path in cargo_config_files(folder):
        config = _read(path)
        if not offline and config.get("net", {}).get("offline") is True:
            offline = True
        sources = config.get("source", {})
        if replace_with is None:
            replace_with = sources.get("crates-io", {}).get("replace-with")
        for name, table in sources.items():
            if isinstance(table, dict) and "directory" in table and name not in directories:
                # cargo resolves a relative directory against the folder holding .cargo/.
                directories[name] = (path.parent.parent / str(table["directory"])).resolve()
    vendor_dir = directories.get(replace_with) if replace_with else None
    return ProjectSources(
        registry_dependencies=registry_dependencies,
        vendor_dir=vendor_dir,
        offline=offline,
        merge_dir=target_dir / ".toolchain" / "merged-source",
    )


def _crate_id(folder: Path) -> tuple[str, str] | None:
    try:
        package = tomllib.loads((folder / "Cargo.toml").read_text(encoding="utf-8")).get("package", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name, version = package.get("name"), package.get("version")
    return (name, version) if isinstance(name, str) and isinstance(version, str) else None


def _package_checksum(folder: Path) -> str | None:
    try:
        value = json.loads((folder / ".cargo-checksum.json").read_text()).get("package")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def merge_sources(std_vendor: Path, project_vendor: Path, merged: Path) -> int:
    """Make `merged` a directory source of both folders' crates (symlinks).

    The same crate and version in both is kept once when their contents are
    the same (.cargo-checksum.json's package digest) and is an error naming
    both when they differ. Returns the number of crates linked."""
    if not project_vendor.is_dir():
        raise ProjectError(
            f"the vendored sources folder {project_vendor} does not exist",
            hint="run `cargo vendor` again, or fix [source] in .cargo/config.toml",
        )
    seen: dict[tuple[str, str], Path] = {}
    links: dict[str, Path] = {}
    for prefix, root in (("std", std_vendor), ("app", project_vendor)):
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            crate = _crate_id(folder)
            if crate is None:
                continue
            if crate in seen:
                if _package_checksum(seen[crate]) != _package_checksum(folder):
                    raise ProjectError(
                        f"{crate[0]} {crate[1]} is vendored twice with different contents: {seen[crate]} and {folder}",
                        hint="make both folders hold the same release of it (re-run `cargo vendor`), then build again",
                    )
                continue
            seen[crate] = folder
            links[f"{prefix}-{folder.name}"] = folder.resolve()
    # Rebuilt every time: cheap (symlinks), and never stale after a re-vendor.
    scratch = merged.with_name(merged.name + ".new")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name, folder in links.items():
        (scratch / name).symlink_to(folder, target_is_directory=True)
    shutil.rmtree(merged, ignore_errors=True)
    scratch.rename(merged)
    return len(links)
