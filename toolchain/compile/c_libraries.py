"""C libraries of the build machine that a release build cannot link, found before cargo.

Some -sys crates link a C library found on the build machine unless a feature of
theirs builds it from source (openssl-sys's `vendored`, libsqlite3-sys's
`bundled`). zig's sysroot and every cross target have no such library, so
without the feature the build script fails once cargo reaches it (openssl-sys:
"Could not find directory of OpenSSL installation") or the link fails at the
end. The crates, their features and variables are data (data/c-libraries.toml).
Cheap first: none of them in Cargo.lock ends the check in milliseconds; only
then is the target's graph read, with the build's features, for the chain."""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass

from toolchain.compile.cargo import Project, Selection, chain_to, locked_names, reachable, target_metadata
from toolchain.config.catalog import packaged
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError


@dataclass(frozen=True)
class MachineLibrary:
    """A -sys crate that links the build machine's copy of a C library by default."""

    crate: str
    library: str
    from_source: tuple[tuple[str, str], ...]  # (feature, target OS or "any")
    environment: tuple[str, ...]
    fix: str

    def builds_from_source(self, features: set[str], os_name: str) -> bool:
        return any(f in features and where in ("any", os_name) for f, where in self.from_source)

    def pointed_at(self, triple: str) -> bool:
        """A library built for the target named by the crate's variables (plain or with the target's prefix)."""
        prefix = triple.upper().replace("-", "_")
        return any(os.environ.get(name) or os.environ.get(f"{prefix}_{name}") for name in self.environment)


@functools.cache
def machine_libraries() -> tuple[MachineLibrary, ...]:
    table = tomllib.loads(packaged("c-libraries.toml").read_text(encoding="utf-8"))
    return tuple(
        MachineLibrary(
            crate,
            entry["library"],
            tuple(sorted(entry["from-source"].items())),
            tuple(entry["environment"]),
            entry["fix"],
        )
        for crate, entry in sorted(table.items())
    )


def reaches_machine_libraries(runner: str, target: Target, host: str) -> bool:
    """Whether the build's C side can see this machine's libraries: only cargo's own build
    for this machine's OS and architecture (host: e.g. linux-x86_64) does; the container
    and cross runners' images have their own, left to them."""
    if runner in ("container", "cross"):
        return True
    return runner == "native" and f"{target.os}-{target.arch}" == host


def require_c_libraries(
    target: Target, project: Project, selections: list[Selection], settings: Settings, runner: str, host: str
) -> None:
    """Stop before cargo when the target's graph links a C library of the build machine that
    this build cannot reach, with no feature building it from source and no variable
    pointing at one built for the target."""
    if reaches_machine_libraries(runner, target, host):
        return
    wanted = {m.crate: m for m in machine_libraries() if not m.pointed_at(target.triple)}
    if not wanted or (project.lockfile.is_file() and not wanted.keys() & locked_names(project.lockfile)):
        return
    metadata = target_metadata(project, target.triple, settings)
    parent = reachable(metadata, {s.package.name for s in selections}, build_dependencies=True)
    names = {p["id"]: p["name"] for p in metadata["packages"]}
    features = {node["id"]: set(node.get("features", ())) for node in metadata["resolve"]["nodes"]}
    found = []
    for pid in parent:
        library = wanted.get(names[pid])
        if library is not None and not library.builds_from_source(features.get(pid, set()), target.os):
            found.append((chain_to(pid, parent, metadata), library))
    if not found:
        return
    found.sort(key=lambda f: (len(f[0]), f[0]))
    chain, library = found[0]
    switches = [f for f, where in library.from_source if where in ("any", target.os)]
    off = f"feature {switches[0]} is off" if len(switches) == 1 else f"features {', '.join(switches)} are off"
    variables = " or ".join(library.environment)
    raise MissingToolError(
        f"{target.triple}: {' -> '.join(chain)} links the build machine's {library.library} ({library.crate}'s "
        f"{off}), which a release build for {target.triple} cannot link: zig's sysroot and cross "
        "targets have none",
        hint=f"{library.fix}; or set {variables} to {library.library} built for {target.triple}",
    )
