"""Flags for rustc that keep the build machine out of the binary.

Panic locations and debug info carry absolute source paths: the cargo home's
registry (`/home/NAME/.cargo/registry/src/...`), the project's checkout, a
vendor folder, std's sources for build-std. They leak the machine's layout
and make two machines produce different bytes. Each such prefix is remapped
to a fixed, neutral one with `--remap-path-prefix`.

cargo reads rustflags from one place only (CARGO_ENCODED_RUSTFLAGS, else
RUSTFLAGS, else target.TRIPLE.rustflags, else build.rustflags in its config
files), so the user's own flags are read from where cargo would take them
and ours are appended; the result goes to cargo as CARGO_ENCODED_RUSTFLAGS.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from pathlib import Path
from typing import Any

from toolchain.compile.vendor import cargo_config_files

SEPARATOR = "\x1f"  # CARGO_ENCODED_RUSTFLAGS separates flags with ASCII unit separator
CARGO_HOME_AS = "/cargo"
PROJECT_AS = "/project"
TARGET_AS = "/target"
RUST_SOURCE_AS = "/rustc/src"


def _as_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def user_rustflags(folder: Path, triple: str, environ: dict[str, str] | None = None) -> list[str]:
    """The flags cargo would use for this target without us, from where cargo reads them."""
    environ = dict(os.environ) if environ is None else environ
    encoded = environ.get("CARGO_ENCODED_RUSTFLAGS")
    if encoded is not None:
        return [f for f in encoded.split(SEPARATOR) if f]
    if "RUSTFLAGS" in environ:
        return environ["RUSTFLAGS"].split()
    target_flags: list[str] | None = None
    build_flags: list[str] | None = None
    # Most specific file first; cargo joins arrays from all of them (lower precedence first).
    for path in reversed(cargo_config_files(folder)):
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # cargo itself reports a broken config file
        found = _as_list(config.get("target", {}).get(triple, {}).get("rustflags"))
        if found is not None:
            target_flags = (target_flags or []) + found
        found = _as_list(config.get("build", {}).get("rustflags"))
        if found is not None:
            build_flags = (build_flags or []) + found
    return target_flags if target_flags is not None else build_flags or []


def remap_flags(prefixes: list[tuple[Path, str]]) -> list[str]:
    """`--remap-path-prefix` for each (real prefix, neutral prefix); rustc
    applies the last match, so the most specific prefixes come last."""
    ordered = sorted({(str(real), neutral) for real, neutral in prefixes}, key=lambda pair: len(pair[0]))
    return [f"--remap-path-prefix={real}={neutral}" for real, neutral in ordered]


def build_machine_prefixes(
    workspace_root: Path, target_directory: Path, vendor_dir: Path | None, rust_source: Path | None
) -> list[tuple[Path, str]]:
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    prefixes = [(cargo_home, CARGO_HOME_AS), (workspace_root, PROJECT_AS), (target_directory, TARGET_AS)]
    if vendor_dir is not None:
        prefixes.append((vendor_dir, f"{PROJECT_AS}/vendor"))
    if rust_source is not None:
        prefixes.append((rust_source, RUST_SOURCE_AS))
    # The same folders as the kernel resolves them (a symlinked home or /tmp).
    prefixes += [(real.resolve(), neutral) for real, neutral in prefixes if real.resolve() != real]
    return prefixes


def encoded_rustflags(
    workspace_root: Path,
    target_directory: Path,
    triple: str,
    vendor_dir: Path | None = None,
    rust_source: Path | None = None,
    config_folder: Path | None = None,
) -> str:
    """config_folder: where cargo runs (the project's context), whose config files it reads."""
    flags = user_rustflags(config_folder or workspace_root, triple)
    flags += remap_flags(build_machine_prefixes(workspace_root, target_directory, vendor_dir, rust_source))
    return SEPARATOR.join(flags)
