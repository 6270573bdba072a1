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

import itertools
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.compile.cargo import Project, Selection, reachable, target_metadata
from toolchain.compile.links import LinkLine, ScanCache, evaluate, selects_target
from toolchain.compile.routes import default_rustc
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError
from toolchain.log import log

SDK_NAMES = {"macos": "the macOS SDK (MacOSX.sdk, from Xcode or the Command Line Tools)"}
SDK_HINT = (
    "set SDKROOT to an unpacked MacOSX.sdk folder (e.g. SDKROOT=$HOME/sdk/MacOSX14.sdk), "
    "or build this target on a macOS runner"
)


@dataclass(frozen=True)
class SdkNeed:
    """One package of the graph that links what only the SDK has, and how it is reached."""

    chain: tuple[str, ...]  # package names, from the built package to the linking one
    libraries: tuple[str, ...]  # as a user knows them: "libobjc", "Foundation"
    optional: tuple[str, ...] = ()  # edges of the chain a feature choice would drop
    certain: bool = True  # False: only compiling would tell (a build script's line, an unknown cfg)


def target_cfg(target: Target, project: Project) -> tuple[dict[str, set[str]], set[str]]:
    """rustc's cfg values for the target (`key="value"` pairs and bare names); empty when
    rustc cannot say (every predicate on the target is then taken as unknown)."""
    text = project.context.output([default_rustc(), "--print", "cfg", "--target", target.triple]) or ""
    pairs: dict[str, set[str]] = {}
    bare: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs.setdefault(key.strip(), set()).add(value.strip().strip('"'))
        elif line.strip():
            bare.add(line.strip())
    return pairs, bare


def _checksums(lockfile: Path) -> dict[tuple[str, str, str], str]:
    try:
        lock = tomllib.loads(lockfile.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {
        (p["name"], p["version"], p.get("source", "")): p["checksum"]
        for p in lock.get("package", [])
        if isinstance(p, dict) and "checksum" in p and "name" in p and "version" in p
    }


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


def _optional_edges(chain: list[str], packages: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """For each edge of the chain that is an optional dependency, which feature turns it on."""
    notes = []
    for parent_id, child_id in itertools.pairwise(chain):
        parent, child = packages[parent_id], packages[child_id]
        for dep in parent.get("dependencies", []):
            if dep.get("name") != child["name"] or not dep.get("optional"):
                continue
            key = dep.get("rename") or dep["name"]
            features = parent.get("features") or {}
            enabling = sorted(
                feature
                for feature, items in features.items()
                if feature != "default"
                and any(i in (key, f"dep:{key}") or i.startswith((f"{key}/", f"{key}?/")) for i in items)
            )
            defaults = set(features.get("default", []))
            shown = ", ".join(f"'{f}'" + (" (on by default)" if f in defaults else "") for f in enabling)
            notes.append(f"{parent['name']} -> {child['name']} is optional, behind {parent['name']}'s feature {shown}")
            break
    return tuple(notes)


def sdk_needs(target: Target, project: Project, selections: list[Selection], settings: Settings) -> list[SdkNeed]:
    """Every package cargo would build for the target that links what only the SDK has,
    with the shortest chain from a selected package to it."""
    started = time.monotonic()
    metadata = target_metadata(project, target.triple, settings)
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in (metadata.get("resolve") or {}).get("nodes", [])}
    # Normal edges only: build-dependencies run on the build machine. Another member's deps do not count.
    parent = reachable(metadata, {s.package.name for s in selections}, build_dependencies=False)
    cfg, bare = target_cfg(target, project)
    checksums = _checksums(Path(metadata["workspace_root"]) / "Cargo.lock")
    cache = ScanCache()
    needs = []
    for pid in parent:
        package = packages[pid]
        checksum = checksums.get((package["name"], package["version"], package.get("source") or ""))
        features = set(nodes[pid].get("features", []))
        found: dict[bool, list[str]] = {True: [], False: []}  # certain -> libraries
        for line in cache.lines(package, checksum):
            verdict = _needs_sdk(line, target, features, cfg, bare)
            if verdict is False:
                continue
            shown = line.name if line.kind == "framework" else f"lib{line.name}"
            if shown not in found[verdict is True]:
                found[verdict is True].append(shown)
        for certain, libraries in found.items():
            if not libraries or (not certain and found[True]):
                continue
            chain = [pid]
            while (up := parent[chain[-1]]) is not None:
                chain.append(up)
            chain.reverse()
            names = tuple(packages[p]["name"] for p in chain)
            needs.append(SdkNeed(names, tuple(libraries), _optional_edges(chain, packages), certain))
    cache.save()
    seconds = time.monotonic() - started
    log.info(f"{target.triple}: {len(parent)} packages checked for what only the SDK links, in {seconds:.2f} s")
    return sorted(needs, key=lambda n: (len(n.chain), n.chain))


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
