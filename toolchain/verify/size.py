"""Binary-size tracking: a committed baseline with a growth gate, a size
history (one JSON line per build) rendered as a chart, and attribution of
code size to crates."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.atomic import write_atomic
from toolchain.build.record import BuildRecord, TargetEntry
from toolchain.errors import UsageError

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


def git_commit(repo: Path) -> tuple[str | None, bool]:
    head = proc.run(["git", "-C", repo, "rev-parse", "HEAD"], check=False, quiet=True)
    if head.returncode != 0:
        return None, False
    status = proc.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"], check=False, quiet=True)
    return head.stdout.strip(), bool(status.stdout.strip())


def append_history(out_dir: Path, repo: Path, profile: str, targets: list[TargetEntry]) -> Path:
    """One line per built binary: when, which commit, how big."""
    commit, dirty = git_commit(repo)
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


def read_history(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / HISTORY_NAME
    if not path.is_file():
        raise UsageError(f"no size history at {path}", hint="run `invoke build` first")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not a JSON line", hint="remove the broken line") from exc
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
    problems = []
    for row in rows:
        for label, current, base in (
            ("binary", row.size, row.baseline_size),
            ("archive", row.archive_size, row.baseline_archive),
        ):
            growth = row.growth(current, base)
            if growth and growth[0] > max_bytes and growth[1] > max_percent:
                problems.append(
                    f"{row.target} {row.binary} {label} grew {growth[0]:+,} bytes ({growth[1]:+.1f}%) to {current:,}"
                )
    return problems


def write_baseline(path: Path, rows: list[SizeRow]) -> Path:
    document: dict[str, Any] = {"schema": BASELINE_SCHEMA, "targets": {}}
    previous = load_baseline(path)
    document["targets"].update(previous)
    for row in rows:
        document["targets"].setdefault(row.target, {})[row.binary] = {
            "size": row.size,
            "archive_size": row.archive_size,
            "sections": row.sections,
        }
    return write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def render_report(records: list[dict[str, Any]], out: Path) -> Path:
    """A self-contained HTML page with one SVG line chart: size per target over builds."""
    series: dict[str, list[tuple[int, int, str]]] = {}
    for index, record in enumerate(records):
        label = (record.get("commit") or "no-git")[:8] + ("+" if record.get("dirty") else "")
        series.setdefault(f"{record['target']} {record['binary']}", []).append((index, record["size"], label))
    width, height, pad = 900, 420, 60
    top = max(int(r["size"]) for r in records)
    count = max(len(records) - 1, 1)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * i / count

    def y(size: int) -> float:
        return height - pad - (height - 2 * pad) * size / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="binary size per target over builds">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
        f'<text x="{pad}" y="{pad - 10}" font-size="12">{top:,} bytes</text>',
    ]
    rows_html = []
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = palette[n % len(palette)]
        path = " ".join(f"{x(i):.1f},{y(size):.1f}" for i, size, _ in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for i, size, label in points:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(size):.1f}" r="3" fill="{colour}">'
                f"<title>{html.escape(name)} @ {html.escape(label)}: {size:,} bytes</title></circle>"
            )
        parts.append(f'<text x="{width - pad + 4}" y="{y(points[-1][1]):.1f}" font-size="11" fill="{colour}">'
                     f"{html.escape(name)}</text>")  # fmt: skip
        rows_html.append(
            f"<tr><td style='color:{colour}'>{html.escape(name)}</td><td>{points[0][1]:,}</td>"
            f"<td>{points[-1][1]:,}</td><td>{len(points)}</td></tr>"
        )
    parts.append("</svg>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Binary size history</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}</style>"
        "</head><body><h1>Binary size history</h1>"
        + "".join(parts)
        + "<table><tr><th>target binary</th><th>first</th><th>last</th><th>builds</th></tr>"
        + "".join(rows_html)
        + "</table></body></html>\n"
    )
    out.write_text(page, encoding="utf-8")
    return out
