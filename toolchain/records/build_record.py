"""The build record: build-record.json in the output folder, one entry per
target (runner, route, profile and where its settings came from, toolchain
versions, every binary with its checks, every archive). This module is the
only one that reads or writes it; everything else gets typed entries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolchain.atomic import write_json
from toolchain.digest import sha256_file
from toolchain.errors import BuildError

RECORD_NAME = "build-record.json"
RECORD_SCHEMA = "toolchain.build-record/v1"


@dataclass(frozen=True)
class CacheStats:
    """What the compile cache did for one target's build."""

    backend: str
    hits: int = 0
    misses: int = 0
    errors: int = 0  # store reads/writes that failed (those crates were compiled)
    not_cacheable: int = 0  # binaries, proc macros, build-script runs, rustc probes
    fallback: str | None = None  # why the build ran without the cache, when it did

    @property
    def cacheable(self) -> int:
        return self.hits + self.misses + self.errors

    @property
    def hit_rate(self) -> float:
        return self.hits / self.cacheable if self.cacheable else 0.0

    def summary(self) -> str:
        if self.fallback:
            return "off (fallback)"
        return f"{self.hits} hit / {self.misses} miss / {self.errors} err"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "hit_rate": round(self.hit_rate, 3)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CacheStats:
        return cls(
            backend=str(raw.get("backend", "none")),
            hits=int(raw.get("hits", 0)),
            misses=int(raw.get("misses", 0)),
            errors=int(raw.get("errors", 0)),
            not_cacheable=int(raw.get("not_cacheable", 0)),
            fallback=raw.get("fallback"),
        )

    @classmethod
    def from_sccache(cls, backend: str, document: Mapping[str, Any]) -> CacheStats:
        """From `sccache --show-stats --stats-format json`."""
        stats = document.get("stats", {})

        def total(name: str) -> int:
            return sum(int(n) for n in stats.get(name, {}).get("counts", {}).values())

        errors = total("cache_errors") + int(stats.get("cache_write_errors", 0)) + int(stats.get("cache_timeouts", 0))
        return cls(
            backend=backend,
            hits=total("cache_hits"),
            misses=total("cache_misses"),
            errors=errors,
            not_cacheable=int(stats.get("requests_not_cacheable", 0)),
        )


@dataclass(frozen=True)
class DebugFile:
    """The debug info split off a binary (compile/debuginfo.py): the file holding its
    DWARF (NAME.debug, or the one DWARF file inside NAME.dSYM) and how the stripped
    binary names it."""

    path: Path
    sha256: str
    size: int
    kind: str  # "debuglink" (ELF, PE) or "dsym" (Mach-O)
    build_id: str | None = None  # ELF's build-id, Mach-O's UUID
    bundle: Path | None = None  # the NAME.dSYM folder, for a dsym

    @classmethod
    def of(cls, split: Any) -> DebugFile:
        """From a toolchain.compile.debuginfo.SplitBinary."""
        dwarf = split.dwarf
        bundle = split.debug if split.debug.is_dir() else None
        return cls(dwarf, sha256_file(dwarf), dwarf.stat().st_size, split.kind, split.build_id, bundle)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path), "bundle": str(self.bundle) if self.bundle else None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DebugFile:
        bundle = raw.get("bundle")
        return cls(
            Path(raw["path"]),
            str(raw["sha256"]),
            int(raw["size"]),
            str(raw["kind"]),
            raw.get("build_id"),
            Path(bundle) if bundle else None,
        )


@dataclass(frozen=True)
class BinaryEntry:
    package: str
    version: str
    name: str
    path: Path
    sha256: str
    size: int
    format: str
    machine: str
    stripped: bool
    sections: dict[str, int] = field(default_factory=dict)
    verdicts: tuple[dict[str, Any], ...] = ()  # toolchain.verify.policy.RuleVerdict as written
    # cargo-auditable's embedded list, as toolchain.verify.inspection.AuditedPackage dicts
    dependencies: tuple[dict[str, str], ...] = ()
    debug: DebugFile | None = None  # its debug info, split off when the profile kept it

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "path": str(self.path),
            "verdicts": list(self.verdicts),
            "dependencies": list(self.dependencies),
            "debug": self.debug.to_dict() if self.debug else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BinaryEntry:
        return cls(
            package=raw["package"],
            version=raw.get("version", ""),
            name=raw["name"],
            path=Path(raw["path"]),
            sha256=raw["sha256"],
            size=int(raw["size"]),
            format=raw.get("format", ""),
            machine=raw.get("machine", ""),
            stripped=bool(raw.get("stripped", False)),
            sections={str(k): int(v) for k, v in raw.get("sections", {}).items()},
            verdicts=tuple(raw.get("verdicts", ())),
            dependencies=tuple(raw.get("dependencies", ())),
            debug=DebugFile.from_dict(raw["debug"]) if raw.get("debug") else None,
        )


@dataclass(frozen=True)
class Member:
    """A regular file inside an archive, as manifest.json lists it."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, str | int]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class ArtifactEntry:
    package: str
    path: Path
    sha256: str
    size: int
    checksum: Path
    # The archive's regular files as packaging wrote them; empty in a record from before
    # they were kept (the release folder then reads them from the archive).
    members: tuple[Member, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        document = {**self.__dict__, "path": str(self.path), "checksum": str(self.checksum)}
        document["members"] = [m.to_dict() for m in self.members]
        return document

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ArtifactEntry:
        members = tuple(Member(str(m["path"]), int(m["size"]), str(m["sha256"])) for m in raw.get("members", ()))
        return cls(raw["package"], Path(raw["path"]), raw["sha256"], int(raw["size"]), Path(raw["checksum"]), members)


@dataclass(frozen=True)
class TargetEntry:
    target: str
    ok: bool
    seconds: float
    runner: str | None = None
    runner_reason: str | None = None
    route: str | None = None
    profile_source: str | None = None
    profile_settings: tuple[dict[str, Any], ...] = ()  # toolchain.config.profiles.SettingSource as written
    toolchain: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None
    allowed_rules: tuple[str, ...] = ()
    started: str = ""
    binaries: tuple[BinaryEntry, ...] = ()
    artifacts: tuple[ArtifactEntry, ...] = ()
    # The archives of the debug info split off the binaries, released beside `artifacts`.
    debug_artifacts: tuple[ArtifactEntry, ...] = ()
    # Set when the entry is written into a record.
    finished: str = ""
    profile: str = ""
    manifest_path: Path | None = None
    cargo_lock_sha256: str | None = None
    # (phase, seconds) in the order they ran: cargo, verify, package (and sign, when signed).
    phases: tuple[tuple[str, float], ...] = ()
    # The compile cache's hits, misses and errors for this target; None: the cache was off.
    cache: CacheStats | None = None
    # The cargo feature selection the build used (the SBOM resolves the same one).
    features: tuple[str, ...] = ()
    all_features: bool = False
    no_default_features: bool = False

    def binaries_of(self, package: str) -> tuple[BinaryEntry, ...]:
        return tuple(b for b in self.binaries if b.package == package)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "seconds": round(self.seconds, 3),
            "profile_settings": list(self.profile_settings),
            "allowed_rules": list(self.allowed_rules),
            "binaries": [b.to_dict() for b in self.binaries],
            "artifacts": [a.to_dict() for a in self.artifacts],
            "debug_artifacts": [a.to_dict() for a in self.debug_artifacts],
            "manifest_path": str(self.manifest_path) if self.manifest_path else None,
            "phases": [[name, round(seconds, 3)] for name, seconds in self.phases],
            "cache": self.cache.to_dict() if self.cache else None,
            "features": list(self.features),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TargetEntry:
        return cls(
            target=raw["target"],
            ok=bool(raw.get("ok", True)),
            seconds=float(raw.get("seconds", 0.0)),
            runner=raw.get("runner"),
            runner_reason=raw.get("runner_reason"),
            route=raw.get("route"),
            profile_source=raw.get("profile_source"),
            profile_settings=tuple(raw.get("profile_settings", ())),
            toolchain=dict(raw.get("toolchain", {})),
            error=raw.get("error"),
            allowed_rules=tuple(raw.get("allowed_rules", ())),
            started=raw.get("started", ""),
            binaries=tuple(BinaryEntry.from_dict(b) for b in raw.get("binaries", ())),
            artifacts=tuple(ArtifactEntry.from_dict(a) for a in raw.get("artifacts", ())),
            debug_artifacts=tuple(ArtifactEntry.from_dict(a) for a in raw.get("debug_artifacts", ())),
            finished=raw.get("finished", ""),
            profile=raw.get("profile", ""),
            manifest_path=Path(raw["manifest_path"]) if raw.get("manifest_path") else None,
            cargo_lock_sha256=raw.get("cargo_lock_sha256"),
            phases=tuple((str(name), float(seconds)) for name, seconds in raw.get("phases", ())),
            cache=CacheStats.from_dict(raw["cache"]) if raw.get("cache") else None,
            features=tuple(str(f) for f in raw.get("features", ())),
            all_features=bool(raw.get("all_features", False)),
            no_default_features=bool(raw.get("no_default_features", False)),
        )


@dataclass(frozen=True)
class BuildRecord:
    targets: dict[str, TargetEntry] = field(default_factory=dict)

    def merged(self, entries: list[TargetEntry]) -> BuildRecord:
        """This record with `entries` added or replacing the same targets."""
        return replace(self, targets={**self.targets, **{e.target: e for e in entries}})

    def entry(self, triple: str) -> TargetEntry | None:
        return self.targets.get(triple)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": RECORD_SCHEMA, "targets": {t: e.to_dict() for t, e in sorted(self.targets.items())}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BuildRecord:
        return cls({t: TargetEntry.from_dict(e) for t, e in raw.get("targets", {}).items()})


def load_record(out_dir: Path) -> BuildRecord:
    """The record of the builds in `out_dir`; an error when there is none."""
    path = out_dir / RECORD_NAME
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise BuildError(f"no build record at {path}", hint="run `invoke build` first") from exc
    except ValueError as exc:
        raise BuildError(f"{path} is not JSON", hint="delete it and run `invoke build` again") from exc
    if raw.get("schema") != RECORD_SCHEMA:
        raise BuildError(f"{path} is not a {RECORD_SCHEMA} record", hint="delete it and run `invoke build` again")
    try:
        return BuildRecord.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise BuildError(f"{path} lacks {exc}", hint="delete it and run `invoke build` again") from exc


def load_record_or_empty(out_dir: Path) -> BuildRecord:
    """The record to add builds to: an unreadable or foreign one starts afresh."""
    try:
        return load_record(out_dir)
    except BuildError:
        return BuildRecord()


def save_record(out_dir: Path, record: BuildRecord) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RECORD_NAME
    write_json(path, record.to_dict())
    return path
