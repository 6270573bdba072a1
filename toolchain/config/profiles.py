"""Build profiles (data in profiles/*.toml, see toolchain.config.catalog), applied
with `--config`.

The user's Cargo.toml is never edited: a profile is defined on cargo's
command line (`--config profile.NAME.KEY=VALUE`), which cargo supports for
custom profiles. A profile of the same name already in the user's manifest
wins unless forced.
"""

# No `from __future__ import annotations` here: msgspec gets the field types as objects
# instead of strings it would evaluate when the first file is read.
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from toolchain.config.schema import Layer, Model, decode, load_record

# Cargo's own profiles need no data file: they are passed through as-is.
CargoBuiltin = Literal["release", "dev"]
CARGO_BUILTIN_PROFILES: tuple[str, ...] = get_args(CargoBuiltin)


class CargoProfile(Model, frozen=True):
    """[cargo]: cargo's profile keys (a key left out is cargo's default)."""

    inherits: CargoBuiltin
    opt_level: Literal[0, 1, 2, 3, "s", "z"] | UnsetType = UNSET
    debug: bool | Literal[0, 1, 2, "none", "line-tables-only", "limited", "full"] | UnsetType = UNSET
    split_debuginfo: Literal["off", "packed", "unpacked"] | UnsetType = UNSET
    strip: bool | Literal["none", "debuginfo", "symbols"] | UnsetType = UNSET
    debug_assertions: bool | UnsetType = UNSET
    overflow_checks: bool | UnsetType = UNSET
    lto: bool | Literal["thin", "fat", "off"] | UnsetType = UNSET
    panic: Literal["unwind", "abort"] | UnsetType = UNSET
    incremental: bool | UnsetType = UNSET
    codegen_units: int | UnsetType = UNSET
    rpath: bool | UnsetType = UNSET


class ProfileFile(Model, frozen=True):
    """A profiles/NAME.toml document."""

    description: str
    cargo: CargoProfile


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    settings: tuple[tuple[str, Any], ...]  # cargo profile keys, in file order
    source: Path | None  # None for cargo's built-in profiles
    origins: tuple[str, ...] = ()  # every file (or table) its values came from, lowest first

    @property
    def builtin(self) -> bool:
        return self.source is None

    def config_args(self, skip: frozenset[str] = frozenset()) -> list[str]:
        """cargo arguments that define this profile on the command line."""
        args: list[str] = []
        for key, value in self.settings:
            if key not in skip:
                args += ["--config", f"profile.{self.name}.{key}={_toml_value(value)}"]
        return args

    @property
    def inherits_release(self) -> bool:
        return dict(self.settings).get("inherits") == "release"

    def dir_name(self) -> str:
        """The folder cargo writes this profile's output into."""
        return "debug" if self.name == "dev" else self.name


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string is a JSON string here


def profile_from_layers(name: str, layers: list[Layer]) -> Profile:
    document = decode(ProfileFile, layers)
    # The keys set, as cargo spells them, in the order the files list them.
    order = [key for layer in layers for key in layer.document.get("cargo", {})]
    settings = sorted(msgspec.to_builtins(document.cargo).items(), key=lambda item: order.index(item[0]))
    return Profile(
        name=name,
        description=document.description,
        settings=tuple(settings),
        source=layers[-1].path,
        origins=tuple(layer.origin for layer in layers),
    )


def load_profile_file(path: Path) -> Profile:
    """One profile file on its own (tests and tools; builds use the catalog)."""
    return load_record(path, profile_from_layers)


# How much each value shrinks a binary, per key, higher = tighter. Keys not
# here (incremental, overflow-checks...) do not affect size: ours win.
# TOML booleans are spelled "true"/"false" here: in Python True == 1.
_TIGHTNESS: dict[str, dict[Any, int]] = {
    "lto": {"false": 0, "off": 0, "thin": 1, "true": 2, "fat": 2},
    "strip": {"false": 0, "none": 0, "debuginfo": 1, "true": 2, "symbols": 2},
    "panic": {"unwind": 0, "abort": 1},
    "opt-level": {0: 0, 1: 1, 2: 2, 3: 2, "s": 3, "z": 4},
    "debug": {"true": 0, 2: 0, "full": 0, 1: 1, "limited": 1, "line-tables-only": 2, "false": 3, 0: 3, "none": 3},
}


def _rank_key(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _tighter(key: str, theirs: Any, ours: Any) -> bool:
    if key == "codegen-units":
        return isinstance(theirs, int) and isinstance(ours, int) and theirs < ours
    ranks = _TIGHTNESS.get(key, {})
    theirs_rank, ours_rank = ranks.get(_rank_key(theirs)), ranks.get(_rank_key(ours))
    return theirs_rank is not None and ours_rank is not None and theirs_rank > ours_rank


@dataclass(frozen=True)
class SettingSource:
    key: str
    value: Any
    source: str


def effective_settings(
    profile: Profile, user_release: dict[str, Any], manifest: Path, force: bool = False
) -> tuple[frozenset[str], tuple[SettingSource, ...]]:
    """Which of our keys to leave out because the project's own
    [profile.release] is already tighter (it then applies through
    `inherits`), and where every effective setting comes from."""
    skipped = set()
    sources = []
    ours = dict(profile.settings)
    for key, value in profile.settings:
        if key == "inherits":
            continue
        theirs = user_release.get(key)
        if not force and profile.inherits_release and theirs is not None and _tighter(key, theirs, value):
            skipped.add(key)
            sources.append(SettingSource(key, theirs, f"[profile.release] in {manifest} (tighter than ours)"))
        else:
            sources.append(SettingSource(key, value, str(profile.source)))
    if profile.inherits_release:
        for key, value in user_release.items():
            if key not in ours and key != "inherits":
                sources.append(SettingSource(key, value, f"[profile.release] in {manifest} (inherited)"))
    return frozenset(skipped), tuple(sorted(sources, key=lambda s: s.key))
