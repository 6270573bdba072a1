"""Platform SDKs: a crate that links a macOS framework (CoreFoundation,
Security...) cannot be linked without Apple's SDK, which cannot be shipped
or downloaded here. Stop before cargo, naming the SDK and SDKROOT, instead
of failing minutes later inside the linker. With SDKROOT set, cargo and the
linker get it from the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from toolchain.build.cargo import Project, Selection, cargo_program
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError, ProjectError

SDK_NAMES = {"macos": "the macOS SDK (MacOSX.sdk, from Xcode or the Command Line Tools)"}


def sdk_crates_in_build(target: Target, project: Project, selections: list[Selection], locked: bool) -> list[str]:
    """The target's SDK-linking crates among what cargo would build for it."""
    argv: list[str | Path] = [
        cargo_program(),
        "metadata",
        "--format-version",
        "1",
        "--manifest-path",
        project.manifest_path,
        "--filter-platform",
        target.triple,
    ]
    if locked and project.lockfile.is_file():
        argv.append("--locked")
    result = project.context.run(argv, error=ProjectError, what=f"cargo metadata for {target.triple}", quiet=True)
    metadata = json.loads(result.stdout)
    names = {p["id"]: p["name"] for p in metadata["packages"]}
    nodes = {n["id"]: n for n in (metadata.get("resolve") or {}).get("nodes", [])}
    # Walk from the selected packages only: another member's macOS deps do not count.
    roots = [pid for pid, name in names.items() if name in {s.package.name for s in selections} and pid in nodes]
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack += [d["pkg"] for d in nodes[node].get("deps", [])]
    wanted = set(target.toolchain.sdk_crates)
    return sorted({names[pid] for pid in seen} & wanted)


def require_sdk(target: Target, project: Project, selections: list[Selection], settings: Settings) -> None:
    if not target.toolchain.sdk or not target.toolchain.sdk_crates:
        return
    sdkroot = os.environ.get("SDKROOT", "")
    if sdkroot:
        if not Path(sdkroot).is_dir():
            raise MissingToolError(
                f"SDKROOT is {sdkroot}, which is not a folder", hint="point SDKROOT at an unpacked MacOSX.sdk"
            )
        return
    crates = sdk_crates_in_build(target, project, selections, settings.build.locked)
    if crates:
        raise MissingToolError(
            f"{target.triple}: {', '.join(crates)} link{'s' if len(crates) == 1 else ''} Apple frameworks, "
            f"which need {SDK_NAMES.get(target.toolchain.sdk, target.toolchain.sdk)}",
            hint="set SDKROOT to an unpacked MacOSX.sdk folder (e.g. SDKROOT=$HOME/sdk/MacOSX14.sdk), "
            "or build this target on a macOS runner",
        )
