"""The Rust project as cargo sees it: packages and binaries from
`cargo metadata`, never from guessing at folder layouts."""

from __future__ import annotations

import json
import os
import tomllib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.compile.context import CargoContext
from toolchain.compile.routes import ProjectSources
from toolchain.compile.vendor import project_sources
from toolchain.config.schema import did_you_mean, load_toml
from toolchain.config.settings import BuildSettings, Settings
from toolchain.errors import ProjectError, UsageError
from toolchain.log import log


def cargo_program() -> str:
    return os.environ.get("CARGO", "cargo")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    manifest_path: Path
    binaries: tuple[str, ...]
    license_files: tuple[Path, ...]
    readme: Path | None
    # [features] table (feature -> what it turns on) and each binary's required-features, both as
    # cargo metadata gives them; binaries without required features are not listed.
    features: tuple[tuple[str, tuple[str, ...]], ...] = ()
    required_features: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # one of the members a plain `cargo build` in the workspace builds: default-members, or the
    # root package of a workspace that has one, or every member of a virtual workspace
    default_member: bool = True

    @property
    def root(self) -> Path:
        return self.manifest_path.parent


@dataclass(frozen=True)
class Project:
    manifest_path: Path
    workspace_root: Path
    target_directory: Path
    packages: tuple[Package, ...]  # workspace members that have binaries
    manifest_profiles: dict[str, dict[str, Any]]  # [profile.*] tables of the workspace's Cargo.toml
    registry_dependencies: tuple[str, ...] = ()  # crates.io (or other registry) deps of members
    sources: ProjectSources = field(default_factory=ProjectSources)  # offline? vendored? (what build-std needs to know)
    member_manifests: tuple[Path, ...] = ()  # every workspace member's Cargo.toml, libraries too
    build_script_roots: tuple[Path, ...] = ()  # members with a build script (their folders)

    @property
    def lockfile(self) -> Path:
        return self.workspace_root / "Cargo.lock"

    @property
    def context(self) -> CargoContext:
        """Where every cargo and rustc command for this project runs (its Cargo.toml's folder)."""
        return CargoContext.of(self.manifest_path)


@dataclass(frozen=True)
class Selection:
    package: Package
    binaries: tuple[str, ...]


# `cargo metadata` answers asked ahead (ask_metadata_ahead), by resolved Cargo.toml.
_ahead: dict[Path, Future[proc.Result]] = {}


def resolution_args(
    project: Project, features: tuple[str, ...], all_features: bool, no_default_features: bool, locked: bool
) -> list[str]:
    """The flags that decide the crate graph, the same for every cargo command of a build (its
    compile, and the metadata that finds what it links): features, and the committed lock file."""
    args = ["--features", ",".join(features)] if features else []
    if all_features:
        args.append("--all-features")
    if no_default_features:
        args.append("--no-default-features")
    if locked and project.lockfile.is_file():
        # A release is built from the committed lock file, never a fresh resolve.
        args.append("--locked")
    return args


def files_state(*paths: Path) -> tuple[object, ...]:
    """What tells that files changed (mtime, size, inode; None when missing): an answer read
    from them is used again only while this is the same."""

    def one(path: Path) -> object:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    return tuple(one(path) for path in paths)


# The crate graph for one target, by (Cargo.toml, target, resolution flags), with the state of
# Cargo.toml and Cargo.lock before it was asked: asked once per build by whichever pre-cargo
# check needs it first (the SDK check, the rust-version check), and taken by the SBOMs after cargo.
_target_graphs: dict[tuple[Path, str, tuple[str, ...]], tuple[Path, tuple[object, ...], dict[str, Any]]] = {}


def target_metadata(project: Project, triple: str, settings: Settings) -> dict[str, Any]:
    """`cargo metadata` with dependencies, filtered to what cargo would build for the target,
    with the build's own features and lock file."""
    build = settings.build
    resolution = resolution_args(project, build.features, build.all_features, build.no_default_features, build.locked)
    known = known_target_metadata(project.manifest_path, triple, resolution)
    if known is not None:
        return known
    state = files_state(project.manifest_path, project.lockfile)
    argv: list[str | Path] = [
        cargo_program(), "metadata", "--format-version", "1",
        "--manifest-path", project.manifest_path, "--filter-platform", triple, *resolution,
    ]  # fmt: skip
    result = project.context.run(argv, error=ProjectError, what=f"cargo metadata for {triple}", quiet=True)
    document: dict[str, Any] = json.loads(result.stdout)
    _target_graphs[(project.manifest_path, triple, tuple(resolution))] = (project.lockfile, state, document)
    return document


def known_target_metadata(manifest_path: Path, triple: str, resolution: list[str]) -> dict[str, Any] | None:
    """The target's crate graph this process already asked for with these flags, while
    Cargo.toml and Cargo.lock are as they were when it asked; None otherwise."""
    found = _target_graphs.get((manifest_path, triple, tuple(resolution)))
    if found is None:
        return None
    lockfile, state, document = found
    return document if files_state(manifest_path, lockfile) == state else None


def reachable(metadata: dict[str, Any], chosen: set[str], *, build_dependencies: bool) -> dict[str, str | None]:
    """Every package the chosen members pull in, breadth first, each with the package that first
    reached it (None for a chosen member). Dev-dependencies never count (not in a release binary);
    build-dependencies only when asked (they are compiled, but run on the build machine)."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in (metadata.get("resolve") or {}).get("nodes", [])}
    members = set(metadata.get("workspace_members", []))
    roots = sorted(pid for pid in members if pid in nodes and packages[pid]["name"] in chosen)
    kinds = {None, "build"} if build_dependencies else {None}
    parent: dict[str, str | None] = {pid: None for pid in roots}
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        for dep in nodes[node].get("deps", []):
            if dep["pkg"] in parent:
                continue
            if any(kind.get("kind") in kinds for kind in dep.get("dep_kinds", [{"kind": None}])):
                parent[dep["pkg"]] = node
                queue.append(dep["pkg"])
    return parent


def chain_to(package_id: str, parent: dict[str, str | None], metadata: dict[str, Any]) -> tuple[str, ...]:
    """Package names from a chosen member down to this package, along reachable()'s parents."""
    names = {p["id"]: p["name"] for p in metadata["packages"]}
    chain = [package_id]
    while (up := parent[chain[-1]]) is not None:
        chain.append(up)
    return tuple(names[p] for p in reversed(chain))


@dataclass(frozen=True)
class LockedPackage:
    """One [[package]] of Cargo.lock."""

    name: str
    version: str
    source: str | None  # None: a path package
    checksum: str | None  # registry packages


_locks: dict[Path, tuple[tuple[object, ...], tuple[LockedPackage, ...]]] = {}


def read_lock(lockfile: Path) -> tuple[LockedPackage, ...]:
    """Cargo.lock's packages, parsed once a process while the file is unchanged (the pre-cargo
    checks, the link-line scan and the SBOMs all read it). Raises OSError, UnicodeDecodeError
    or tomllib.TOMLDecodeError."""
    state = files_state(lockfile)
    found = _locks.get(lockfile)
    if found is not None and found[0] == state:
        return found[1]
    lock = tomllib.loads(lockfile.read_text(encoding="utf-8"))
    packages = tuple(
        LockedPackage(p["name"], p["version"], p.get("source"), p.get("checksum"))
        for p in lock.get("package", [])
        if isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("version"), str)
    )
    _locks[lockfile] = (state, packages)
    return packages


def locked_names(lockfile: Path) -> set[str]:
    """The package names a Cargo.lock holds (empty when it cannot be read): a check that
    needs the crate graph only when one of a few crates is in it asks this first."""
    try:
        return {p.name for p in read_lock(lockfile)}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()


def _manifest_file(manifest_path: Path) -> Path:
    manifest_path = manifest_path.resolve()
    return manifest_path / "Cargo.toml" if manifest_path.is_dir() else manifest_path


def _metadata(manifest_path: Path) -> proc.Result:
    return CargoContext.of(manifest_path).run(
        [cargo_program(), "metadata", "--format-version", "1", "--no-deps", "--manifest-path", manifest_path],
        error=ProjectError,
        what="cargo metadata",
        quiet=True,
    )


def ask_metadata_ahead(manifest_path: Path) -> None:
    """Start `cargo metadata` for this Cargo.toml on a thread: it runs while the build's
    other modules load (about as long), and load_project takes the answer."""
    manifest_path = _manifest_file(manifest_path)
    if not manifest_path.is_file() or manifest_path in _ahead:
        return
    _ahead[manifest_path] = proc.soon(lambda: _metadata(manifest_path), "toolchain-metadata-ahead")


def load_project(manifest_path: Path) -> Project:
    manifest_path = _manifest_file(manifest_path)
    if not manifest_path.is_file():
        raise ProjectError(
            f"no Cargo.toml at {manifest_path}",
            hint="pass --manifest-path pointing at a crate's or workspace's Cargo.toml",
        )
    asked = _ahead.pop(manifest_path, None)
    result = asked.result() if asked is not None else _metadata(manifest_path)
    metadata = json.loads(result.stdout)
    members = set(metadata["workspace_members"])
    # cargo 1.71 and later; from a member's own Cargo.toml, cargo names that member
    defaults = set(metadata.get("workspace_default_members") or members)
    packages = []
    registry_dependencies = set()
    member_manifests, build_script_roots = [], []
    for raw in metadata["packages"]:
        if raw["id"] not in members:
            continue
        member_manifests.append(Path(raw["manifest_path"]))
        if any("custom-build" in t["kind"] for t in raw["targets"]):
            build_script_roots.append(Path(raw["manifest_path"]).parent)
        registry_dependencies |= {
            d["name"] for d in raw["dependencies"] if (d.get("source") or "").startswith(("registry+", "sparse+"))
        }
        binaries = tuple(t["name"] for t in raw["targets"] if "bin" in t["kind"])
        if not binaries:
            continue
        root = Path(raw["manifest_path"]).parent
        packages.append(
            Package(
                name=raw["name"],
                version=raw["version"],
                manifest_path=Path(raw["manifest_path"]),
                binaries=binaries,
                license_files=_license_files(root, raw.get("license_file")),
                readme=(root / raw["readme"]) if raw.get("readme") else _first_existing(root, ("README.md", "README")),
                features=tuple((name, tuple(items)) for name, items in sorted(raw.get("features", {}).items())),
                required_features=tuple(
                    (t["name"], tuple(t["required-features"]))
                    for t in raw["targets"]
                    if "bin" in t["kind"] and t.get("required-features")
                ),
                default_member=raw["id"] in defaults,
            )
        )
    if not packages:
        raise ProjectError(
            f"{manifest_path} has no binary target (only libraries)",
            hint="point --manifest-path at a crate with a [[bin]] or src/main.rs",
        )
    workspace_root = Path(metadata["workspace_root"])
    root_manifest = load_toml(workspace_root / "Cargo.toml")
    target_directory = Path(metadata["target_directory"])
    dependencies = tuple(sorted(registry_dependencies))
    return Project(
        manifest_path=manifest_path,
        workspace_root=workspace_root,
        target_directory=target_directory,
        packages=tuple(sorted(packages, key=lambda p: p.name)),
        manifest_profiles={k: dict(v) for k, v in root_manifest.get("profile", {}).items() if isinstance(v, dict)},
        registry_dependencies=dependencies,
        sources=project_sources(manifest_path.parent, dependencies, target_directory),
        member_manifests=tuple(sorted(member_manifests)),
        build_script_roots=tuple(sorted(build_script_roots)),
    )


def _first_existing(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


def _license_files(root: Path, declared: str | None) -> tuple[Path, ...]:
    found = [root / declared] if declared else []
    found += sorted(p for p in root.glob("LICEN[CS]E*") if p.is_file() and p not in found)
    return tuple(found)


def select(
    project: Project, package: str | None, binaries: list[str], build: BuildSettings | None = None
) -> list[Selection]:
    """Which packages and binaries to build: by default every binary of the members a plain
    `cargo build` builds (the workspace's default members; all members when none of those has
    a binary), but for a binary whose required-features the build's features (`build`, None:
    cargo's defaults) leave off, which cargo would refuse to build by name. A binary named
    with `--bin` is looked for in every member."""
    packages = list(project.packages)
    if package:
        names = [p.name for p in packages]
        if package not in names:
            raise UsageError(
                f"package '{package}' has no binary in this workspace; {did_you_mean(package, names)}",
                hint="pass one of the workspace's binary packages to --package",
            )
        packages = [p for p in packages if p.name == package]
    known = sorted({b for p in packages for b in p.binaries})
    for name in binaries:
        if name not in known:
            raise UsageError(
                f"no binary named '{name}'; {did_you_mean(name, known)}",
                hint="pass a binary of the selected package(s) to --bin",
            )
    if not package and not binaries and any(p.default_member for p in packages):
        # as a plain `cargo build` in the workspace: its default members (an xtask stays home)
        others = ", ".join(sorted(p.name for p in packages if not p.default_member))
        if others:
            log.info(f"not built, not a default member of the workspace: {others} (--package NAME builds one)")
        packages = [p for p in packages if p.default_member]
    selections, left_off = [], []
    for p in packages:
        missing = _missing_features(p, build)
        for name in binaries:
            if name in missing and name in p.binaries:
                raise UsageError(
                    f"binary '{name}' of {p.name} needs the feature {', '.join(missing[name])}, "
                    "which this build does not turn on",
                    hint=f'pass --features {missing[name][0]}, or set [build] features = ["{missing[name][0]}"] '
                    "in toolchain.toml",
                )
        wanted = [b for b in p.binaries if (b in binaries if binaries else True)]
        chosen = tuple(b for b in wanted if b not in missing)
        left_off += [(p.name, b, missing[b]) for b in wanted if b in missing]
        if chosen:
            selections.append(Selection(p, chosen))
    if not selections:
        gated = "; ".join(f"{b} needs {', '.join(f)}" for _, b, f in left_off)
        raise UsageError(
            f"no binary of {', '.join(p.name for p in packages)} is built with this build's features ({gated})",
            hint=f'turn one on: --features {left_off[0][2][0]}, or [build] features = ["{left_off[0][2][0]}"] '
            "in toolchain.toml",
        )
    for package_name, binary, features in left_off:
        log.info(f"{package_name}: binary {binary} is not built: it needs the feature {', '.join(features)}")
    return unique_binaries(selections)


def _missing_features(package: Package, build: BuildSettings | None) -> dict[str, tuple[str, ...]]:
    """Binary -> the required features the build leaves off, for each such binary."""
    if not package.required_features:
        return {}
    if build is not None and build.all_features:
        return {}
    enabled = enabled_features(package, build)
    table = dict(package.features)
    missing = {}
    for binary, required in package.required_features:
        # "dep/feature": cargo wants the dependency on; an optional one is a feature of this package.
        off = tuple(f for f in required if (f.split("/")[0] if "/" in f else f) in table.keys() - enabled)
        off += tuple(f for f in required if "/" not in f and f not in table)  # not a feature at all
        if off:
            missing[binary] = off
    return missing


def enabled_features(package: Package, build: BuildSettings | None) -> set[str]:
    """The package's features that cargo turns on for a build of it: the default ones (unless
    no-default-features), the requested ones (`name` or `package/name`), and what those turn on."""
    table = dict(package.features)
    requested: list[str] = []
    if build is None or not build.no_default_features:
        requested.append("default")
    for item in build.features if build is not None else ():
        for name in item.replace(",", " ").split():
            owner, _, feature = name.rpartition("/")
            if not owner or owner == package.name:
                requested.append(feature)
            else:
                requested.append(owner)  # dependency/feature: turns the (optional) dependency on
    enabled: set[str] = set()
    while requested:
        name = requested.pop()
        if name in enabled or name not in table:
            continue
        enabled.add(name)
        for item in table[name]:
            if item.startswith("dep:"):
                continue  # a dependency, not a feature of this package
            if "/" in item:
                owner = item.split("/")[0]
                if not owner.endswith("?"):  # "dep?/feature" leaves the dependency as it is
                    requested.append(owner)
            else:
                requested.append(item)
    return enabled


def unique_binaries(selections: list[Selection]) -> list[Selection]:
    """The selections, refused when two packages have a binary of the same name: cargo
    writes both to one file in the target folder (and only warns of the collision)."""
    owners: dict[str, str] = {}
    for selection in selections:
        for binary in selection.binaries:
            other = owners.setdefault(binary, selection.package.name)
            if other != selection.package.name:
                raise UsageError(
                    f"packages {other} and {selection.package.name} both have a binary named '{binary}', "
                    "which cargo would write to one file",
                    hint=f"build one package at a time: --package {other}, then --package {selection.package.name}",
                )
    return selections
