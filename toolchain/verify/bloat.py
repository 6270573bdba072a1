"""Which crates contribute most code: build once more without stripping
(same profile otherwise, its own output folder) and attribute symbol sizes
to crates, as cargo-bloat does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.atomic import write_atomic
from toolchain.compile.cargo import load_project, select
from toolchain.compile.target import compile_target
from toolchain.config.profiles import Profile
from toolchain.config.settings import load_settings
from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.verify.inspection import CrateSize, code_size_by_crate

CRATES_NAME = "crate-sizes.json"
CRATES_SCHEMA = "toolchain.crate-sizes/v1"


@dataclass(frozen=True)
class Attribution:
    target: str
    binary: Path
    crates: tuple[CrateSize, ...]
    name: str = ""  # the binary's name as cargo and the build record call it (no .exe)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "binary": str(self.binary),
            "name": self.name or self.binary.name,
            "crates": [{"crate": c.crate, "size": c.size, "symbols": c.symbols} for c in self.crates],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Attribution:
        crates = tuple(CrateSize(str(c["crate"]), int(c["size"]), int(c["symbols"])) for c in raw["crates"])
        return cls(str(raw["target"]), Path(raw["binary"]), crates, str(raw.get("name", "")))


def save_attributions(out_dir: Path, results: list[Attribution]) -> Path:
    """Keep the latest attribution of each target's binaries in the output folder
    (for the size report), beside those of other targets."""
    kept = {(a.target, a.name): a for a in load_attributions(out_dir)}
    kept.update({(a.target, a.name): a for a in results})
    document = {"schema": CRATES_SCHEMA, "binaries": [kept[key].to_dict() for key in sorted(kept)]}
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_atomic(out_dir / CRATES_NAME, json.dumps(document, indent=2) + "\n")


def load_attributions(out_dir: Path) -> list[Attribution]:
    """The attributions `invoke size --crates` kept; none when it has not run."""
    path = out_dir / CRATES_NAME
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text())
        if document.get("schema") != CRATES_SCHEMA:
            raise ValueError(document.get("schema"))
        return [Attribution.from_dict(raw) for raw in document["binaries"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path} is not a {CRATES_SCHEMA} file", hint="delete it and run `invoke size --crates`"
        ) from exc


def unstripped(profile: Profile) -> Profile:
    settings = [(k, v) for k, v in profile.settings if k not in ("strip", "inherits")]
    inherits = dict(profile.settings).get("inherits", profile.name if profile.builtin else "release")
    return Profile(
        name=f"{profile.name}-unstripped",
        description=f"{profile.name} with symbols kept, for size attribution",
        settings=(("inherits", inherits), *settings, ("strip", "none")),
        source=profile.source or Path(f"<cargo {profile.name}>"),
    )


def attribute(
    triple: str | None = None, profile_name: str | None = None, manifest_path: Path | None = None
) -> list[Attribution]:
    settings = load_settings()
    target = settings.catalog.target(triple or settings.catalog.host_triple())
    profile = unstripped(settings.catalog.profile(profile_name or settings.build.profile))
    project = load_project(manifest_path or settings.manifest())
    selections = select(project, None, [], settings.build)
    compiled = compile_target(project, selections, target, profile, settings, force_profile=True)
    results = []
    for name, path in sorted(compiled.executables.items()):
        with log.status(f"attributing {name}'s symbols to crates"):
            results.append(Attribution(target.triple, path, code_size_by_crate(path), name))
    return results
