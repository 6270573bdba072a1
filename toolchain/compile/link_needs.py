"""Which packages of a target's crate graph link a library, and the chain of dependencies
that pulls each one in. It is read from the graph cargo would build for the target
(`cargo metadata --filter-platform`) and from each package's sources (compile/links.py),
without compiling. compile/sdk.py asks it before cargo, for what only Apple's SDK has;
compile/missing_library.py asks it after a link fails, for the library the linker could
not find."""

from __future__ import annotations

import itertools
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toolchain.compile.cargo import Project, Selection, reachable, read_lock, target_metadata
from toolchain.compile.links import LinkLine, ScanCache
from toolchain.compile.routes import default_rustc
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.log import log

# (a link line, its package's enabled features, rustc's cfg pairs and bare names for the target)
# -> True: it links for this target; False: it does not; None: only compiling would tell.
Verdict = Callable[[LinkLine, set[str], dict[str, set[str]], set[str]], bool | None]


def user_name(line: LinkLine) -> str:
    """A library as its users know it: a framework by its name, a library as libNAME."""
    return line.name if line.kind == "framework" else f"lib{line.name}"


@dataclass(frozen=True)
class LinkNeed:
    """One package of the graph that links libraries a caller asked about, and how it is reached."""

    chain: tuple[str, ...]  # package names, from the built package to the linking one
    libraries: tuple[str, ...]  # as a user knows them: "libobjc", "Foundation", "Packet"
    optional: tuple[str, ...] = ()  # edges of the chain a feature choice would drop
    certain: bool = True  # False: only compiling would tell (a build script's line, an unknown cfg)


def target_cfg(target: Target, project: Project) -> tuple[dict[str, set[str]], set[str]]:
    """rustc's cfg values for the target (`key="value"` pairs and bare names); empty when
    rustc cannot say (every predicate on the target is then taken as unknown)."""
    return rustc_cfg(project, target.triple)


def rustc_cfg(project: Project, triple: str | None) -> tuple[dict[str, set[str]], set[str]]:
    """rustc's cfg values for a triple, or for the machine rustc runs on (None): what a build
    script's own `cfg!` sees."""
    chosen = ["--target", triple] if triple else []
    text = project.context.output([default_rustc(), "--print", "cfg", *chosen]) or ""
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
        packages = read_lock(lockfile)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {(p.name, p.version, p.source or ""): p.checksum for p in packages if p.checksum}


def chain_to(package_id: str, parent: dict[str, str | None], packages: dict[str, dict[str, Any]]) -> LinkNeed:
    """The shortest chain of dependencies from a selected package to this one (`reachable`'s
    parents), with the edges a feature choice would drop; no libraries yet."""
    chain = [package_id]
    while (up := parent.get(chain[-1])) is not None:
        chain.append(up)
    chain.reverse()
    return LinkNeed(tuple(packages[p]["name"] for p in chain), (), _optional_edges(chain, packages))


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


def link_needs(
    target: Target,
    project: Project,
    selections: list[Selection],
    settings: Settings,
    verdict: Verdict,
    purpose: str,
    shown: Callable[[LinkLine], str] = user_name,
) -> list[LinkNeed]:
    """Every package cargo would build for the target with a link line the verdict takes
    (True: links it; None: only compiling would tell), with the shortest chain from a selected
    package to it. purpose: what was looked for, for the log line."""
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
            taken = verdict(line, features, cfg, bare)
            if taken is False:
                continue
            name = shown(line)
            if name not in found[taken is True]:
                found[taken is True].append(name)
        for certain, libraries in found.items():
            if not libraries or (not certain and found[True]):
                continue
            needs.append(replace(chain_to(pid, parent, packages), libraries=tuple(libraries), certain=certain))
    cache.save()
    seconds = time.monotonic() - started
    log.info(f"{target.triple}: {len(parent)} packages checked for {purpose}, in {seconds:.2f} s")
    return sorted(needs, key=lambda n: (len(n.chain), n.chain))
