"""The HTML pages: the size report (`invoke size --report`) and the build
timings (`invoke build --timings`). Each page carries its charts inline (SVG,
and the PNG as a data: link), so it is one file that opens anywhere; the PNGs
are also written beside it under charts/."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.log import log
from toolchain.records.build_record import BuildRecord
from toolchain.report import charts
from toolchain.report.cargo_timings import CARGO_TIMINGS_DIR
from toolchain.verify.bloat import Attribution
from toolchain.verify.size import GrowthLimit, SizeSample

SIZE_REPORT = "size-report.html"
TIMINGS_REPORT = "build-timings.html"
CHARTS_DIR = "charts"

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1250px}"
    "svg{max-width:100%;height:auto}td,th{padding:2px 10px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.note{color:#555}"
)


def _page(title: str, body: Sequence[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _figure(chart: charts.RenderedChart) -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    return (
        f"<section id='{chart.name}'><h2>{html.escape(chart.title)}</h2>\n{chart.svg}\n"
        f"<p class='note'><a download='{chart.name}.png' href='data:image/png;base64,{data}'>PNG</a> "
        f"({chart.width}&#215;{chart.height})</p></section>"
    )


def _write_png(out_dir: Path, chart: charts.RenderedChart) -> Path:
    if chart.clipped:
        # Constrained layout should prevent it; say so rather than ship a cut label silently.
        log.warn(f"{chart.name}: text cut at the figure's edge: {', '.join(chart.clipped)}")
    folder = out_dir / CHARTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return write_atomic(folder / f"{chart.name}.png", chart.png)


def size_charts(
    samples: Sequence[SizeSample],
    baselines: dict[tuple[str, str], int],
    limit: GrowthLimit,
    attributions: Sequence[Attribution],
    crate_baselines: dict[tuple[str, str], dict[str, int]],
) -> list[charts.RenderedChart]:
    rendered = [
        charts.render(charts.size_history(samples, baselines, limit), "size-history", "Size history"),
    ]
    if attributions:
        rows = [
            charts.CrateChartRow(a.target, a.name or a.binary.name, a.crates, crate_baselines.get((a.target, a.name)))
            for a in sorted(attributions, key=lambda a: (a.target, a.name))
        ]
        rendered.append(charts.render(charts.crate_sizes(rows), "crate-sizes", "Code size by crate"))
    return rendered


def write_size_report(
    out_dir: Path,
    samples: Sequence[SizeSample],
    baselines: dict[tuple[str, str], int],
    limit: GrowthLimit,
    attributions: Sequence[Attribution] = (),
    crate_baselines: dict[tuple[str, str], dict[str, int]] | None = None,
) -> Path:
    rendered = size_charts(samples, baselines, limit, attributions, crate_baselines or {})
    body = [_figure(rendered[0]), _size_table(samples, baselines, limit)]
    if len(rendered) > 1:
        body.append(_figure(rendered[1]))
    else:
        body.append("<p class='note'>Code size by crate: run <code>invoke size --crates</code> to add it.</p>")
    for chart in rendered:
        _write_png(out_dir, chart)
    return write_atomic(out_dir / SIZE_REPORT, _page("Binary size report", body))


def _size_table(samples: Sequence[SizeSample], baselines: dict[tuple[str, str], int], limit: GrowthLimit) -> str:
    latest: dict[tuple[str, str], SizeSample] = {}
    first: dict[tuple[str, str], SizeSample] = {}
    for sample in samples:
        key = (sample.target, sample.binary)
        first.setdefault(key, sample)
        latest[key] = sample
    rows = []
    for key in sorted(latest):
        base = baselines.get(key)
        size = latest[key].size
        if base:
            change = f"{size - base:+,} ({100.0 * (size - base) / base:+.1f}%)"
            state = "<b style='color:#d62728'>past the gate</b>" if limit.exceeded(size, base) else "ok"
        else:
            change, state = "-", "no baseline"
        rows.append(
            f"<tr><td>{html.escape(key[0])}</td><td>{html.escape(key[1])}</td><td>{first[key].size:,}</td>"
            f"<td>{size:,}</td><td>{base or 0:,}</td><td>{change}</td><td>{state}</td></tr>"
        )
    return (
        "<table><tr><th>target</th><th>binary</th><th>first</th><th>latest</th><th>baseline</th>"
        "<th>change</th><th>gate</th></tr>" + "".join(rows) + "</table>"
    )


def write_timings_report(out_dir: Path, record: BuildRecord) -> Path:
    chart = charts.render(charts.build_timeline(record), "build-timeline", "Build timeline")
    _write_png(out_dir, chart)
    links = []
    for triple in sorted(record.targets):
        pages = sorted((out_dir / CARGO_TIMINGS_DIR).glob(f"{triple}*.html"))
        pages = [p for p in pages if p.stem == triple or p.stem.removeprefix(triple + "-").isdigit()]
        entry = record.targets[triple]
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in entry.phases) or "-"
        cell = " ".join(f"<a href='{CARGO_TIMINGS_DIR}/{html.escape(p.name)}'>{html.escape(p.name)}</a>" for p in pages)
        links.append(
            f"<tr><td>{html.escape(triple)}</td><td>{entry.seconds:.1f}</td><td>{html.escape(phases)}</td>"
            f"<td>{cell or 'not kept (build with --timings)'}</td></tr>"
        )
    table = (
        "<table><tr><th>target</th><th>seconds</th><th>phases</th><th>cargo's own timings</th></tr>"
        + "".join(links)
        + "</table>"
    )
    return write_atomic(out_dir / TIMINGS_REPORT, _page("Build timings", [_figure(chart), table]))
