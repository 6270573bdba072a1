"""What one build is asked for: the options of `invoke build` (and of every caller of
`pipeline.build`), in a module that imports nothing heavy, so the fresh check can key on
them before the pipeline is imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuildOptions:
    targets: tuple[str, ...] = ()  # empty: settings, else this host's target
    all_targets: bool = False
    profile: str | None = None
    manifest_path: Path | None = None
    package: str | None = None
    binaries: tuple[str, ...] = ()
    runner: str | None = None
    force_profile: bool = False
    out_dir: Path | None = None
    keep_going: bool = False
    package_artifacts: bool = True
    allow: tuple[str, ...] = ()  # policy rules overridden on purpose (recorded)
    features: tuple[str, ...] = ()  # added to [build] features
    all_features: bool | None = None  # None: [build] all-features
    no_default_features: bool | None = None  # None: [build] no-default-features
    locked: bool | None = None  # None: [build] locked
    demo: bool = False  # build the bundled demo (a source checkout only)
    clean: bool = False  # remove release files of the folder that this build record did not make
    cache: str | None = None  # compile cache backend; None: [cache] backend
    timings: bool | None = None  # None: [build] timings (keep cargo's timings page per target)
