"""Build profiles, loaded from profiles/*.toml and applied with `--config`.

The user's Cargo.toml is never edited: a profile is defined on cargo's
command line (`--config profile.NAME.KEY=VALUE`), which cargo supports for
custom profiles. A profile of the same name already in the user's manifest
wins unless forced.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import REPO_ROOT
from toolchain.errors import UsageError
from toolchain.schema import Key, Table, did_you_mean, load_toml, validate

PROFILES_DIR = REPO_ROOT / "profiles"

# Cargo's own profiles need no data file: they are passed through as-is.
CARGO_BUILTIN_PROFILES = ("release", "dev")

CARGO_PROFILE_SCHEMA = Table(
    keys={
        "inherits": Key((str,), required=True, choices=CARGO_BUILTIN_PROFILES),
        "opt-level": Key((int, str), choices=(0, 1, 2, 3, "s", "z")),
        "debug": Key((bool, int, str), choices=(True, False, 0, 1, 2, "none", "line-tables-only", "limited", "full")),
        "split-debuginfo": Key((str,), choices=("off", "packed", "unpacked")),
        "strip": Key((bool, str), choices=(True, False, "none", "debuginfo", "symbols")),
        "debug-assertions": Key((bool,)),
        "overflow-checks": Key((bool,)),
        "lto": Key((bool, str), choices=(True, False, "thin", "fat", "off")),
        "panic": Key((str,), choices=("unwind", "abort")),
        "incremental": Key((bool,)),
        "codegen-units": Key((int,)),
        "rpath": Key((bool,)),
    },
    required=True,
)

PROFILE_SCHEMA = Table(
    keys={
        "description": Key((str,), required=True),
        "cargo": CARGO_PROFILE_SCHEMA,
    }
)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    settings: tuple[tuple[str, Any], ...]  # cargo profile keys, in file order
    source: Path | None  # None for cargo's built-in profiles

    @property
    def builtin(self) -> bool:
        return self.source is None

    def config_args(self) -> list[str]:
        """cargo arguments that define this profile on the command line."""
        args: list[str] = []
        for key, value in self.settings:
            args += ["--config", f"profile.{self.name}.{key}={_toml_value(value)}"]
        return args

    def dir_name(self) -> str:
        """The folder cargo writes this profile's output into."""
        return "debug" if self.name == "dev" else self.name


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string is a JSON string here


def load_profile_file(path: Path) -> Profile:
    document = load_toml(path)
    validate(document, PROFILE_SCHEMA, path)
    return Profile(
        name=path.stem,
        description=document["description"],
        settings=tuple(document["cargo"].items()),
        source=path,
    )


@functools.cache
def all_profiles(directory: Path = PROFILES_DIR) -> dict[str, Profile]:
    profiles = {name: Profile(name, f"cargo's built-in {name} profile", (), None) for name in CARGO_BUILTIN_PROFILES}
    for path in sorted(directory.glob("*.toml")):
        profile = load_profile_file(path)
        profiles[profile.name] = profile
    return profiles


def get_profile(name: str) -> Profile:
    profiles = all_profiles()
    if name in profiles:
        return profiles[name]
    raise UsageError(
        f"unknown profile '{name}'; {did_you_mean(name, list(profiles))}",
        hint=f"profiles live in {PROFILES_DIR}",
    )
