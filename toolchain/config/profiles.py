"""Build profiles (data in profiles/*.toml, see toolchain.config.catalog), applied
with `--config`.

The user's Cargo.toml is never edited: a profile is defined on cargo's
command line (`--config profile.NAME.KEY=VALUE`), which cargo supports for
custom profiles. A profile of the same name already in the user's manifest
wins unless forced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.config.schema import Key, Table, load_toml, validate

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


def profile_from_document(name: str, document: dict[str, Any], path: Path, origins: tuple[str, ...] = ()) -> Profile:
    return Profile(
        name=name,
        description=document["description"],
        settings=tuple(document["cargo"].items()),
        source=path,
        origins=origins or (str(path),),
    )


def load_profile_file(path: Path) -> Profile:
    """One profile file on its own (tests and tools; builds use the catalog)."""
    document = load_toml(path)
    validate(document, PROFILE_SCHEMA, path)
    return profile_from_document(path.stem, document, path)


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
