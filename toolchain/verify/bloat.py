"""Which crates contribute most code: build once more without stripping
(same profile otherwise, its own output folder) and attribute symbol sizes
to crates, as cargo-bloat does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.build.cargo import load_project, select
from toolchain.build.pipeline import compile_target
from toolchain.config.profiles import Profile
from toolchain.config.settings import load_settings
from toolchain.log import log
from toolchain.verify.inspection import CrateSize, code_size_by_crate


@dataclass(frozen=True)
class Attribution:
    target: str
    binary: Path
    crates: tuple[CrateSize, ...]


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
    profile = unstripped(settings.catalog.profile(profile_name or settings.profile))
    project = load_project(manifest_path or settings.manifest())
    selections = select(project, None, [])
    compiled = compile_target(project, selections, target, profile, settings, force_profile=True)
    results = []
    for name, path in sorted(compiled.executables.items()):
        with log.status(f"attributing {name}'s symbols to crates"):
            results.append(Attribution(target.triple, path, code_size_by_crate(path)))
    return results
