"""Binary-size tracking: a committed baseline with a growth gate, a size
history (one JSON line per build) rendered as a chart, and attribution of
code size to crates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.atomic import write_json
from toolchain.errors import UsageError
from toolchain.records.build_record import BuildRecord, TargetEntry

HISTORY_NAME = "size-history.jsonl"
BASELINE_SCHEMA = "toolchain.size-baseline/v1"
REPORT_NAME = "size-report.html"


@dataclass(frozen=True)
class SizeRow:
    target: str
    binary: str
    size: int
    archive_size: int | None
    sections: dict[str, int]
    baseline_size: int | None
    baseline_archive: int | None

    def growth(self, current: int | None, baseline: int | None) -> tuple[int, float] | None:
        if current is None or not baseline:
            return None
        return current - baseline, 100.0 * (current - baseline) / baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "binary": self.binary,
            "size": self.size,
            "archive_size": self.archive_size,
            "sections": self.sections,
            "baseline_size": self.baseline_size,
            "baseline_archive_size": self.baseline_archive,
        }


@dataclass(frozen=True)
class GrowthLimit:
    """The size gate: a growth past BOTH the percentage and the byte count fails."""

    percent: float
    bytes: int

    def exceeded(self, current: int, baseline: int) -> bool:
        growth = current - baseline
        return growth > self.bytes and 100.0 * growth / baseline > self.percent

    def ceiling(self, baseline: int) -> float:
        """The largest size that still passes: the looser of the two allowances."""
        return baseline + max(float(self.bytes), baseline * self.percent / 100.0)


@dataclass(frozen=True)
class SizeSample:
    """One line of the size history: one binary of one build."""

    time: str
    commit: str | None
    dirty: bool
    target: str
    profile: str
    binary: str
    size: int
    archive_size: int | None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SizeSample:
        archive = raw.get("archive_size")
        return cls(
            time=str(raw.get("time", "")),
            commit=raw.get("commit"),
            dirty=bool(raw.get("dirty", False)),
            target=str(raw["target"]),
            profile=str(raw.get("profile", "")),
            binary=str(raw["binary"]),
            size=int(raw["size"]),
            archive_size=int(archive) if archive is not None else None,
        )


def git_commit(repo: Path) -> tuple[str | None, bool]:
    head = proc.output(["git", "-C", repo, "rev-parse", "HEAD"])
    if head is None:
        return None, False
    return head, bool(proc.output(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]))


def append_history(
    out_dir: Path, repo: Path, profile: str, targets: list[TargetEntry], source: tuple[str | None, bool] | None = None
) -> Path:
    """One line per built binary: when, which commit, how big (`source`: the commit and
    whether the tree is dirty, when the caller knows them; else asked of git)."""
    commit, dirty = source or git_commit(repo)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    path = out_dir / HISTORY_NAME
    lines = []
    for entry in targets:
        archives = {a.package: a.size for a in entry.artifacts}
        for binary in entry.binaries:
            record = {
                "time": now,
                "commit": commit,
                "dirty": dirty,
                "target": entry.target,
                "profile": profile,
                "binary": binary.name,
                "size": binary.size,
                "archive_size": archives.get(binary.package),
            }
            lines.append(json.dumps(record, sort_keys=True) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Appends of whole lines under O_APPEND do not interleave between builds.
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))
    return path


def read_history(out_dir: Path) -> list[SizeSample]:
    path = out_dir / HISTORY_NAME
    if not path.is_file():
        raise UsageError(f"no size history at {path}", hint="run `invoke build` first")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(SizeSample.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}:{number}: not a size-history line", hint="remove the broken line") from exc
    return records


def load_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON", hint="fix it or rerun with --update-baseline") from exc
    if document.get("schema") != BASELINE_SCHEMA:
        raise UsageError(f"{path} is not a size baseline ({BASELINE_SCHEMA})", hint="rerun with --update-baseline")
    targets: dict[str, Any] = document.get("targets", {})
    return targets


def rows_from_record(record: BuildRecord, baseline: dict[str, Any], triples: list[str]) -> list[SizeRow]:
    rows = []
    for triple, entry in sorted(record.targets.items()):
        if triples and triple not in triples:
            continue
        archives = {a.package: a.size for a in entry.artifacts}
        for binary in entry.binaries:
            base = baseline.get(triple, {}).get(binary.name, {})
            rows.append(
                SizeRow(
                    target=triple,
                    binary=binary.name,
                    size=binary.size,
                    archive_size=archives.get(binary.package),
                    sections=dict(sorted(binary.sections.items(), key=lambda kv: -kv[1])),
                    baseline_size=base.get("size"),
                    baseline_archive=base.get("archive_size"),
                )
            )
    if not rows:
        raise UsageError("no built targets to report on", hint="run `invoke build` first")
    return rows


def regressions(rows: list[SizeRow], max_percent: float, max_bytes: int) -> list[str]:
    """Growths over both thresholds, as one-line descriptions."""
    limit = GrowthLimit(max_percent, max_bytes)
    problems = []
    for row in rows:
        for label, current, base in (
            ("binary", row.size, row.baseline_size),
            ("archive", row.archive_size, row.baseline_archive),
        ):
            growth = row.growth(current, base)
            if growth and current is not None and base and limit.exceeded(current, base):
                problems.append(
                    f"{row.target} {row.binary} {label} grew {growth[0]:+,} bytes ({growth[1]:+.1f}%) to {current:,}"
                )
    return problems


def write_baseline(path: Path, rows: list[SizeRow]) -> Path:
    document: dict[str, Any] = {"schema": BASELINE_SCHEMA, "targets": {}}
    previous = load_baseline(path)
    document["targets"].update(previous)
    for row in rows:
        entry = document["targets"].setdefault(row.target, {}).setdefault(row.binary, {})
        # Crate sizes are written only by `--crates --update-baseline`; a size update keeps them.
        entry.update({"size": row.size, "archive_size": row.archive_size, "sections": row.sections})
    return write_json(path, document)


# Enough crates to explain a growth; the rest of a large dependency tree is noise in a baseline.
BASELINE_CRATES = 40


def write_baseline_crates(path: Path, crates: dict[tuple[str, str], dict[str, int]]) -> Path:
    """Record code size per crate of (target, binary) in the baseline, beside its sizes."""
    document: dict[str, Any] = {"schema": BASELINE_SCHEMA, "targets": load_baseline(path)}
    for (target, binary), sizes in crates.items():
        top = dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:BASELINE_CRATES])
        document["targets"].setdefault(target, {}).setdefault(binary, {})["crates"] = top
    return write_json(path, document)


def baseline_sizes(baseline: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(target, binary) -> baseline size in bytes, from a loaded baseline."""
    return {
        (target, binary): int(entry["size"])
        for target, binaries in baseline.items()
        for binary, entry in binaries.items()
        if entry.get("size")
    }


def baseline_crates(baseline: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    """(target, binary) -> {crate: bytes}, where a baseline recorded them."""
    return {
        (target, binary): {str(k): int(v) for k, v in entry["crates"].items()}
        for target, binaries in baseline.items()
        for binary, entry in binaries.items()
        if entry.get("crates")
    }
