"""A crate's `rust-version` read before std is built from source.

cargo refuses a package whose `rust-version` is newer than the compiler, but only
once it starts the build, and on a build-std route std comes first: without this
check a crate that needs a newer rustc fails after minutes of compiling std
instead of in seconds. Other routes are left to cargo, which says the same in
seconds. The graph is the one cargo would build for the target (normal and build
dependencies, the build's features and lock file)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolchain.compile.cargo import Project, Selection, chain_to, reachable, target_metadata
from toolchain.compile.context import too_old_error
from toolchain.compile.routes import Route, rustc_version
from toolchain.config.settings import Settings
from toolchain.config.targets import Target

_NUMBERS = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def version_numbers(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "1.95", "1.95.0" or "rustc 1.96.0-nightly (...)"; a missing
    part is 0 and a pre-release is ignored, as cargo compares them."""
    found = _NUMBERS.search(text.removeprefix("rustc").strip())
    if found is None:
        return None
    major, minor, patch = (int(part) if part else 0 for part in found.groups())
    return major, minor, patch


@dataclass(frozen=True)
class TooNew:
    """A package of the graph whose rust-version is newer than the compiler."""

    chain: tuple[str, ...]  # package names, from the built member down to it
    version: str
    rust_version: str


def too_new(
    target: Target, project: Project, selections: list[Selection], settings: Settings, rustc: str
) -> list[TooNew]:
    """Every package of the target's graph that needs a newer rustc, shortest chain first."""
    compiler = version_numbers(rustc)
    if compiler is None:
        return []
    metadata = target_metadata(project, target.triple, settings)
    packages = {p["id"]: p for p in metadata["packages"]}
    parent = reachable(metadata, {s.package.name for s in selections}, build_dependencies=True)
    found = []
    for pid in parent:
        wanted = packages[pid].get("rust_version")
        needed = version_numbers(wanted) if wanted else None
        if needed is not None and needed > compiler:
            found.append(TooNew(chain_to(pid, parent, metadata), packages[pid]["version"], wanted))
    return sorted(found, key=lambda t: (len(t.chain), t.chain))


def require_rust_version(
    target: Target, project: Project, selections: list[Selection], settings: Settings, route: Route
) -> None:
    """Stop before a std build when a package of the graph needs a newer rustc than the route's."""
    if not any(arg.startswith("-Zbuild-std") for arg in route.cargo_args):
        return
    rustc = dict(route.versions).get("rustc") or rustc_version(route.rustc, project.context) or ""
    found = too_new(target, project, selections, settings, rustc)
    if not found:
        return
    dependencies = [t for t in found if len(t.chain) > 1]  # a member's own rust-version is its author's call
    hold_back = None
    if dependencies:
        first = dependencies[0]
        hold_back = f"or pick an older dependency: `cargo update {first.chain[-1]}@{first.version} --precise OLDER`"
    needs = [(" -> ".join(t.chain), t.version, t.rust_version) for t in found]
    compiler = f"{target.triple}: {rustc.split(' (')[0]} ({route.name} route)"
    raise too_old_error(compiler, needs, hold_back=hold_back)
