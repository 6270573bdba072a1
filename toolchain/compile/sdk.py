"""Platform SDKs: a crate graph that links a macOS framework (Foundation,
CoreFoundation, Security...) or an SDK library (libobjc) cannot be linked
without Apple's SDK, which cannot be shipped or downloaded here. Whether it
does is read from the graph itself before cargo runs: every package cargo
would build for the target (`cargo metadata --filter-platform`), scanned for
what it links (toolchain.compile.links). Without SDKROOT the build stops in
seconds, naming the chain that pulls the library in, instead of failing in
the linker after the whole graph compiled. With SDKROOT set, cargo and the
linker get it from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.compile.cargo import Project, Selection
from toolchain.compile.link_needs import LinkNeed, link_needs
from toolchain.compile.links import LinkLine, evaluate, selects_target
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError
from toolchain.log import log

SDK_NAMES = {"macos": "the macOS SDK (MacOSX.sdk, from Xcode or the Command Line Tools)"}
SDK_HINT = (
    "set SDKROOT to an unpacked MacOSX.sdk folder (e.g. SDKROOT=$HOME/sdk/MacOSX14.sdk), "
    "or build this target on a macOS runner"
)


def _needs_sdk(
    line: LinkLine, target: Target, features: set[str], cfg: dict[str, set[str]], bare: set[str]
) -> bool | None:
    """Whether this link line is compiled for the target and names what only the SDK has:
    True, False, or None when only compiling would tell (a build script's line, whose guard is
    read at run time, or a condition on a build script's own cfg)."""
    values = [evaluate(p, cfg, bare, features) for p in line.predicates]
    if False in values:
        return False
    if line.kind == "framework":
        sure = None not in values and not line.from_build_script
        return True if sure else None  # frameworks exist only on Apple platforms: each is the SDK's
    if line.kind not in ("dylib", "") or line.name in target.toolchain.sdk_free_libraries:
        return False
    # A module file may be compiled for another OS only (its `mod` line's cfg is not read): its
    # line counts when its own guard names this target.
    if not (line.in_root or any(selects_target(p, cfg, bare) for p in line.predicates)):
        return False
    return True if None not in values else None


def sdk_needs(target: Target, project: Project, selections: list[Selection], settings: Settings) -> list[LinkNeed]:
    """Every package cargo would build for the target that links what only the SDK has,
    with the shortest chain from a selected package to it."""

    def verdict(line: LinkLine, features: set[str], cfg: dict[str, set[str]], bare: set[str]) -> bool | None:
        return _needs_sdk(line, target, features, cfg, bare)

    return link_needs(target, project, selections, settings, verdict, "what only the SDK links")


def require_sdk(target: Target, project: Project, selections: list[Selection], settings: Settings) -> None:
    """Stop before cargo when the target needs its SDK and SDKROOT does not point at one."""
    if not target.toolchain.sdk:
        return
    sdkroot = os.environ.get("SDKROOT", "")
    if sdkroot:
        if not Path(sdkroot).is_dir():
            raise MissingToolError(
                f"SDKROOT is {sdkroot}, which is not a folder", hint="point SDKROOT at an unpacked MacOSX.sdk"
            )
        return
    found = sdk_needs(target, project, selections, settings)
    maybe = [n for n in found if not n.certain]
    if maybe:
        shown = "; ".join(f"{' -> '.join(n.chain)}: {', '.join(n.libraries)}" for n in maybe[:3])
        log.warn(
            f"{target.triple}: a build script or a condition only compiling tells may link what only the SDK has "
            f"({shown}); building without SDKROOT, the linker says if it does"
        )
    needs = [n for n in found if n.certain]
    if not needs:
        return
    shown = "; ".join(f"{' -> '.join(n.chain)}: links {', '.join(n.libraries)}" for n in needs[:3])
    more = f" (and {len(needs) - 3} more)" if len(needs) > 3 else ""
    optional = sorted({note for n in needs for note in n.optional})
    avoid = f"; or avoid it: {'; '.join(optional)}" if optional else ""
    raise MissingToolError(
        f"{target.triple} needs {SDK_NAMES.get(target.toolchain.sdk, target.toolchain.sdk)}: {shown}{more}",
        hint=f"{SDK_HINT}{avoid}",
    )
