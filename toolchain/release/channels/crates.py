"""What cargo says went into one app for one target: the app's own Cargo.toml
fields (the packages' metadata) and the crates it depends on for that
triple, with the same feature selection as the build (`cargo metadata
--filter-platform`), their licenses and the checksums Cargo.lock pins."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.build.cargo import cargo_program
from toolchain.build.record import TargetEntry
from toolchain.errors import PackagingError


@dataclass(frozen=True)
class Crate:
    name: str
    version: str
    source: str | None  # None: a path crate of the workspace
    license: str | None
    checksum: str | None  # SHA-256 from Cargo.lock (registry crates)
    features: tuple[str, ...]
    proc_macro: bool
    dependencies: tuple[str, ...]  # keys of the crates this one uses (normal edges)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AppInfo:
    """One binary package as its Cargo.toml describes it."""

    name: str
    version: str
    description: str | None
    license: str | None
    homepage: str | None
    repository: str | None
    authors: tuple[str, ...]
    maintainer: str | None  # [package.metadata.deb] maintainer, else the first author
    manifest_path: Path


@dataclass(frozen=True)
class Resolve:
    """An app and the crates it is built from for one target."""

    app: AppInfo
    root: Crate
    crates: tuple[Crate, ...]  # every crate reached through normal dependencies, root excluded
    target: str


def feature_args(entry: TargetEntry) -> list[str]:
    args = ["--features", ",".join(entry.features)] if entry.features else []
    if entry.all_features:
        args.append("--all-features")
    if entry.no_default_features:
        args.append("--no-default-features")
    return args


def _lock_checksums(lockfile: Path) -> dict[tuple[str, str, str | None], str]:
    try:
        lock = tomllib.loads(lockfile.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PackagingError(f"cannot read {lockfile}: {exc}", hint="run `cargo generate-lockfile`") from exc
    return {
        (p["name"], p["version"], p.get("source")): p["checksum"] for p in lock.get("package", []) if "checksum" in p
    }


def _app_info(raw: dict[str, Any]) -> AppInfo:
    metadata = raw.get("metadata") or {}
    deb = metadata.get("deb")
    deb = deb if isinstance(deb, dict) else {}
    authors = tuple(raw.get("authors") or ())
    maintainer = deb.get("maintainer") if isinstance(deb.get("maintainer"), str) else None
    return AppInfo(
        name=raw["name"],
        version=raw["version"],
        description=(raw.get("description") or "").strip() or None,
        license=raw.get("license"),
        homepage=raw.get("homepage"),
        repository=raw.get("repository"),
        authors=authors,
        maintainer=maintainer or (authors[0] if authors else None),
        manifest_path=Path(raw["manifest_path"]),
    )


def resolve(manifest: Path, app: str, triple: str, entry: TargetEntry) -> Resolve:
    """The crates `app` is built from for `triple`: its normal dependencies, transitively."""
    if not manifest.is_file():
        raise PackagingError(
            f"{manifest} (the Cargo.toml the build record names) does not exist",
            hint="run `invoke package` in the checkout that built the release",
        )
    argv: list[str | Path] = [cargo_program(), "metadata", "--format-version", "1", "--locked"]
    argv += ["--manifest-path", manifest, "--filter-platform", triple, *feature_args(entry)]
    metadata = json.loads(proc.run(argv, error=PackagingError, what="cargo metadata", quiet=True).stdout)
    packages = {p["id"]: p for p in metadata["packages"]}
    members = set(metadata["workspace_members"])
    root_ids = [i for i in members if packages[i]["name"] == app]
    if not root_ids:
        raise PackagingError(f"{manifest} has no package {app}", hint="rebuild: the build record is of another project")
    checksums = _lock_checksums(Path(metadata["workspace_root"]) / "Cargo.lock")
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}

    def normal_deps(node_id: str) -> list[str]:
        # dev- and build-dependencies are not part of the binary (as `cargo tree -e normal`).
        return sorted(
            d["pkg"] for d in nodes[node_id]["deps"] if any(k["kind"] is None for k in d.get("dep_kinds", ()))
        )

    crates: dict[str, Crate] = {}
    queue = [root_ids[0]]
    while queue:
        node_id = queue.pop()
        if node_id in crates:
            continue
        raw, deps = packages[node_id], normal_deps(node_id)
        source = raw.get("source")
        crates[node_id] = Crate(
            name=raw["name"],
            version=raw["version"],
            source=source,
            license=raw.get("license"),
            checksum=checksums.get((raw["name"], raw["version"], source)),
            features=tuple(sorted(nodes[node_id].get("features", ()))),
            proc_macro=any("proc-macro" in t["kind"] for t in raw["targets"]),
            dependencies=tuple(f"{packages[d]['name']}@{packages[d]['version']}" for d in deps),
        )
        queue += deps
    root = crates.pop(root_ids[0])
    ordered = tuple(sorted(crates.values(), key=lambda c: (c.name, c.version)))
    return Resolve(_app_info(packages[root_ids[0]]), root, ordered, triple)
