"""What cargo says went into one app for one target: the app's own Cargo.toml
fields (the packages' metadata) and the crates it depends on for that
triple, with the same feature selection as the build (`cargo metadata
--filter-platform`), their licenses and the checksums Cargo.lock pins."""

from __future__ import annotations

import json
import threading
import tomllib
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.compile.cargo import cargo_program, files_state, known_target_metadata, read_lock
from toolchain.compile.context import CargoContext
from toolchain.errors import PackagingError, ToolchainError
from toolchain.records.build_record import TargetEntry


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
    return _feature_args(entry.features, entry.all_features, entry.no_default_features)


def _feature_args(features: tuple[str, ...], all_features: bool, no_default_features: bool) -> list[str]:
    args = ["--features", ",".join(features)] if features else []
    if all_features:
        args.append("--all-features")
    if no_default_features:
        args.append("--no-default-features")
    return args


def _metadata_argv(manifest: Path, triple: str, features: list[str]) -> tuple[str, ...]:
    argv = [cargo_program(), "metadata", "--format-version", "1", "--locked", "--manifest-path", str(manifest)]
    return (*argv, "--filter-platform", triple, *features)


def _run_metadata(argv: tuple[str, ...], manifest: Path) -> proc.Result:
    # In the project's cargo context: its .cargo/config.toml (a vendored source) applies, as in the build.
    return CargoContext.of(manifest).run(argv, error=PackagingError, what="cargo metadata", quiet=True)


# Queries resolve() will make, run ahead while cargo compiles: argv -> (what they read, as it was; the answer).
_ahead: dict[tuple[str, ...], tuple[tuple[object, ...], Future[str]]] = {}
_ahead_lock = threading.Lock()


def prefetch(
    manifest: Path,
    lockfile: Path,
    triples: list[str],
    features: tuple[str, ...],
    all_features: bool,
    no_default_features: bool,
) -> None:
    """Run the `cargo metadata` queries resolve() will make for these triples on a
    thread, now: called while cargo compiles, the SBOMs then wait for none of them.
    An answer is used once, and only if Cargo.toml and Cargo.lock are as they were.
    A triple whose graph a pre-cargo check already asked for is not asked again."""
    chosen = _feature_args(features, all_features, no_default_features)
    jobs = []
    with _ahead_lock:
        for triple in triples:
            if known_target_metadata(manifest, triple, [*chosen, "--locked"]) is not None:
                continue
            argv = _metadata_argv(manifest, triple, chosen)
            future: Future[str] = Future()
            _ahead[argv] = (files_state(manifest, lockfile), future)
            jobs.append((argv, future))
    if not jobs:
        return

    def run() -> None:
        for argv, future in jobs:
            try:
                future.set_result(_run_metadata(argv, manifest).stdout)
            except BaseException as exc:  # handed to resolve(), which asks again
                future.set_exception(exc)

    threading.Thread(target=run, name="toolchain-metadata", daemon=True).start()


def _metadata(manifest: Path, triple: str, features: list[str]) -> dict[str, Any]:
    """The graph resolve() reads: the build's own (same flags, files unchanged), else the
    answer asked ahead, else asked now."""
    known = known_target_metadata(manifest, triple, [*features, "--locked"])
    if known is not None:
        return known
    argv = _metadata_argv(manifest, triple, features)
    with _ahead_lock:
        ahead = _ahead.pop(argv, None)
    if ahead is not None:
        state, future = ahead
        try:
            text = future.result()
            document: dict[str, Any] = json.loads(text)
            lockfile = Path(document["workspace_root"]) / "Cargo.lock"
            if files_state(manifest, lockfile) == state:
                return document
        except (ToolchainError, ValueError, KeyError, TypeError):
            pass  # asked again below: a failure is reported from there
    result: dict[str, Any] = json.loads(_run_metadata(argv, manifest).stdout)
    return result


def _lock_checksums(lockfile: Path) -> dict[tuple[str, str, str | None], str]:
    try:
        packages = read_lock(lockfile)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackagingError(f"cannot read {lockfile}: {exc}", hint="run `cargo generate-lockfile`") from exc
    return {(p.name, p.version, p.source): p.checksum for p in packages if p.checksum}


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
    metadata = _metadata(manifest, triple, feature_args(entry))
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
