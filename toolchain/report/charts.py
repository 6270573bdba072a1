"""The three charts, drawn with matplotlib (the optional `report` extra):
size history per target binary, code size by crate, and the build timeline.

Figures are made with matplotlib's object API (no pyplot: no global state,
no GUI backend) and rendered to PNG bytes and SVG text whose labels stay text.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolchain.errors import MissingToolError
from toolchain.records.build_record import BuildRecord
from toolchain.verify.inspection import CrateSize
from toolchain.verify.size import GrowthLimit, SizeSample

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'toolchain[report]' (or: pip install matplotlib)"
DPI = 100
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
REGRESSION = "#d62728"
SHRINK = "#2ca02c"
PHASE_COLOURS = {"prepare": "#937860", "cargo": "#4c72b0", "verify": "#dd8452", "package": "#55a868", "sign": "#8172b3"}
TOP_CRATES = 10


def require_matplotlib() -> None:
    """Fail early, before any build, when the charts cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingToolError("matplotlib is not installed (the charts need it)", hint=INSTALL_HINT) from exc


def _new_figure(width: float, height: float) -> Figure:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Constrained layout makes room for tick labels, titles, annotations and the outside legend.
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the raster canvas: its renderer measures text extents
    return fig


@dataclass(frozen=True)
class RenderedChart:
    name: str  # file stem: size-history, crate-sizes, build-timeline
    title: str
    png: bytes
    svg: str  # the <svg> element only, ready to inline in HTML
    width: int  # PNG pixels
    height: int
    clipped: tuple[str, ...]  # texts that reach outside the figure (should be none)


def human(size: float) -> str:
    value = abs(size)
    if value >= 1024 * 1024:
        text = f"{value / (1024 * 1024):.2f} MiB"
    elif value >= 1024:
        text = f"{value / 1024:.1f} KiB"
    else:
        text = f"{value:.0f} B"
    return ("-" if size < 0 else "") + text


def _nice_step(span: float) -> float:
    """A 1/2/2.5/5 x 10^k step that cuts `span` into about five parts."""
    if span <= 0:
        return 1.0
    raw = span / 6
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _byte_ticks(axis: Any, low: float, high: float, signed: bool = False) -> None:
    """Ticks at round numbers of KiB or MiB (not of bytes), labelled with the unit."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    top = max(abs(low), abs(high))
    unit, name = (1024 * 1024, "MiB") if top >= 2 * 1024 * 1024 else (1024, "KiB")
    axis.set_major_locator(MultipleLocator(_nice_step((high - low) / unit) * unit))
    sign = "+" if signed else ""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / unit:{sign if v else ''}g} {name}"))


def _byte_axis(ax: Axes, low: float, high: float) -> None:
    margin = (high - low) * 0.12 or high * 0.02 or 1024.0
    ax.set_ylim(max(0.0, low - margin), high + margin)
    _byte_ticks(ax.yaxis, max(0.0, low - margin), high + margin)


def clipped_texts(fig: Figure) -> list[str]:
    """Drawn texts whose extent reaches outside the figure, measured with the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()  # type: ignore[no-untyped-call]
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]
    bounds = fig.bbox
    ticks = set()
    boxes = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            # Tick labels outside the view limits are kept but not drawn: the axis's
            # tight box holds exactly the drawn ones.
            ticks |= {id(t) for t in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)]}
            box = axis.get_tightbbox(renderer)
            if box is not None:
                boxes.append((f"{name} axis of '{ax.get_title(loc='left') or ax.get_title()}'", box))
    for text in fig.findobj(Text):
        if id(text) not in ticks and text.get_visible() and text.get_text().strip():
            boxes.append((text.get_text(), text.get_window_extent(renderer)))
    return [
        name
        for name, box in boxes
        if box.x0 < bounds.x0 - 0.5 or box.y0 < bounds.y0 - 0.5 or box.x1 > bounds.x1 + 0.5 or box.y1 > bounds.y1 + 0.5
    ]


def render(fig: Figure, name: str, title: str) -> RenderedChart:
    """PNG bytes and an inline-ready SVG of one figure; reproducible (no dates, fixed ids)."""
    import matplotlib

    clipped = tuple(clipped_texts(fig))
    png = io.BytesIO()
    svg = io.StringIO()
    # Text stays text in the SVG (searchable, selectable); ids come from a fixed salt.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    text = svg.getvalue()
    # The XML prologue and the RDF metadata name external DTD and vocabulary URLs: not needed inline.
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    return RenderedChart(name, title, png.getvalue(), text, width, height, clipped)


def _build_label(sample: SizeSample) -> str:
    commit = (sample.commit or "no git")[:7] + ("+" if sample.dirty else "")
    return f"{commit}\n{sample.time[:10]}" if sample.time else commit


def size_history(samples: Sequence[SizeSample], baselines: Mapping[tuple[str, str], int], limit: GrowthLimit) -> Figure:
    """One line per target binary over the builds (x: commit and date), each
    with its baseline dashed and the growth the gate allows shaded; a size past
    it is a red point labelled with its growth."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    builds: list[tuple[str | None, bool]] = []
    labels: list[str] = []
    series: dict[tuple[str, str], dict[int, int]] = {}
    for sample in samples:
        key = (sample.commit, sample.dirty)
        if key not in builds:
            builds.append(key)
            labels.append(_build_label(sample))
        # A rebuild of the same commit replaces the earlier size.
        series.setdefault((sample.target, sample.binary), {})[builds.index(key)] = sample.size
    fig = _new_figure(11, 5.6)
    ax = fig.add_subplot()
    values: list[float] = []
    flagged: list[tuple[int, int, str, str]] = []
    for n, name in enumerate(sorted(series)):
        colour = PALETTE[n % len(PALETTE)]
        points = sorted(series[name].items())
        xs = [x for x, _ in points]
        ys = [y for _, y in points]
        values += ys
        ax.plot(xs, ys, marker="o", markersize=4, linewidth=1.8, color=colour, label=f"{name[0]}  {name[1]}")
        base = baselines.get(name)
        if base is None:
            continue
        ceiling = limit.ceiling(base)
        values += [base, ceiling]
        ax.axhline(base, color=colour, linestyle="--", linewidth=1)
        ax.axhspan(base, ceiling, color=colour, alpha=0.07, linewidth=0)
        ax.axhline(ceiling, color=colour, linestyle=":", linewidth=0.9)  # the band's edge, where bands overlap
        for x, size in points:
            if limit.exceeded(size, base):
                delta = size - base
                ax.plot([x], [size], marker="o", markersize=9, color=REGRESSION, zorder=5)
                flagged.append((x, size, f"+{human(delta)} (+{100.0 * delta / base:.1f}%)", colour))
    _byte_axis(ax, min(values), max(values))
    _label_growths(ax, flagged)
    ax.set_xticks(range(len(builds)))
    ax.set_xticklabels(
        labels, fontsize=8, rotation=0 if len(builds) <= 10 else 45, ha="center" if len(builds) <= 10 else "right"
    )
    ax.set_xlim(-0.4, len(builds) - 0.6)
    ax.set_xlabel("build (commit, date; + = uncommitted changes)")
    ax.set_ylabel("binary size")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(
        f"Binary size per target over builds (the gate fails above +{limit.percent:g}% and +{human(limit.bytes)})",
        fontsize=11,
    )
    handles, names = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="#555", linestyle="--", linewidth=1),
        Patch(facecolor="#555", alpha=0.15, edgecolor="none"),
        Line2D([], [], color="#555", linestyle=":", linewidth=0.9),
    ]
    names += ["baseline", "allowed growth", "largest size that passes"]
    if flagged:
        handles.append(Line2D([], [], color=REGRESSION, marker="o", linestyle="", markersize=8))
        names.append("past the gate")
    fig.legend(handles, names, loc="outside right upper", fontsize=9, frameon=False)
    return fig


def _label_growths(ax: Axes, flagged: list[tuple[int, int, str, str]]) -> None:
    """Each growth past the gate labelled beside its point (left of it, or right
    of the first build), labels of one build pushed apart so none overlap, a
    line in the series' colour joining a moved label to its point."""
    gap = 18.0  # pixels between label centres: a 9-point line with room
    placed: dict[int, float] = {}
    for x, size, text, colour in sorted(flagged, key=lambda f: (f[0], f[1])):
        y = float(ax.transData.transform((x, size))[1])
        shown = max(y, placed.get(x, -1e9) + gap)
        placed[x] = shown
        side = 1 if x == 0 else -1
        ax.annotate(
            text,
            (x, size),
            xytext=(14 * side, (shown - y) * 72 / DPI),
            textcoords="offset points",
            ha="left" if side > 0 else "right",
            va="center",
            color=REGRESSION,
            fontsize=9,
            fontweight="bold",
            arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 1, "shrinkA": 1, "shrinkB": 5},
        )


@dataclass(frozen=True)
class CrateChartRow:
    """The latest attribution of one target's binary, and its baseline's when one is recorded."""

    target: str
    binary: str
    crates: tuple[CrateSize, ...]
    baseline: Mapping[str, int] | None = None


def crate_sizes(rows: Sequence[CrateChartRow], top: int = TOP_CRATES) -> Figure:
    """Per binary: the top crates by code size with their share, and beside it,
    on the same rows, each crate's change against the baseline (growth red) when
    one is recorded; a crate outside the top that moved most is added to both."""
    fig = _new_figure(12, 0.5 + 3.4 * len(rows))
    grid = fig.add_gridspec(len(rows), 2, width_ratios=(3, 2))
    for index, row in enumerate(rows):
        total = sum(c.size for c in row.crates) or 1
        current = {c.crate: c.size for c in row.crates}
        shown = [c.crate for c in row.crates[:top]]
        deltas: dict[str, int] = {}
        if row.baseline is not None:
            names = set(current) | set(row.baseline)
            deltas = {name: current.get(name, 0) - row.baseline.get(name, 0) for name in names}
            movers = sorted((n for n in deltas if deltas[n] and n not in shown), key=lambda n: (-abs(deltas[n]), n))
            shown += movers[:3]
        shown.sort(key=lambda n: (-current.get(n, 0), n))
        shown.reverse()  # barh draws from the bottom up
        sizes = [current.get(n, 0) for n in shown]
        ax = fig.add_subplot(grid[index, 0])
        bars = ax.barh(shown, sizes, color=PALETTE[index % len(PALETTE)], height=0.7)
        ax.bar_label(bars, labels=[f"{human(s)}  {100.0 * s / total:.1f}%" for s in sizes], padding=3, fontsize=8)
        high = max(sizes or [1]) * 1.35
        ax.set_xlim(0, high)
        _byte_ticks(ax.xaxis, 0, high)
        ax.tick_params(labelsize=8)
        ax.set_title(f"{row.target}  {row.binary}: top crates of {human(total)} code", fontsize=10, loc="left")
        change = fig.add_subplot(grid[index, 1], sharey=ax)
        change.tick_params(axis="y", labelleft=False)
        change.tick_params(labelsize=8)
        if row.baseline is None:
            change.set_axis_off()
            change.text(
                0.5,
                0.5,
                "no baseline recorded\n(invoke size --crates --update-baseline)",
                ha="center",
                va="center",
                fontsize=9,
                color="#555",
                transform=change.transAxes,
            )
            continue
        values = [deltas.get(n, 0) for n in shown]
        if not any(values):
            change.set_axis_off()
            change.text(0.5, 0.5, "no crate changed size since the baseline", ha="center", va="center",
                        fontsize=9, color="#555", transform=change.transAxes)  # fmt: skip
            continue
        colours = [REGRESSION if d > 0 else SHRINK for d in values]
        bars = change.barh(shown, values, color=colours, height=0.7)
        labels = [("+" if d > 0 else "") + human(d) if d else "0" for d in values]
        change.bar_label(bars, labels=labels, padding=3, fontsize=8)
        reach = max([abs(d) for d in values] + [1024]) * 1.6
        low, high = (-reach if min(values) < 0 else -reach * 0.15), (reach if max(values) > 0 else reach * 0.15)
        change.set_xlim(low, high)
        change.axvline(0, color="#333", linewidth=0.8)
        _byte_ticks(change.xaxis, low, high, signed=True)
        change.grid(axis="x", alpha=0.3)
        change.set_title("change against the baseline", fontsize=10, loc="left")
    return fig


def build_timeline(record: BuildRecord) -> Figure:
    """One bar per target, split into the phases it ran (prepare, cargo, verify,
    package, sign) with their seconds, as cargo's --timings shows units."""
    from matplotlib.patches import Patch

    entries = sorted((e for e in record.targets.values() if e.ok), key=lambda e: (e.started, e.target))
    fig = _new_figure(11, 1.4 + 0.55 * max(len(entries), 1))
    ax = fig.add_subplot()
    longest = max((e.seconds for e in entries), default=1.0) or 1.0
    used: list[str] = []
    for row, entry in enumerate(reversed(entries)):
        phases = list(entry.phases) or [("total", entry.seconds)]
        left = 0.0
        narrow = []
        for phase, seconds in phases:
            colour = PHASE_COLOURS.get(phase, "#999999")
            if phase not in used:
                used.append(phase)
            ax.barh(row, seconds, left=left, color=colour, edgecolor="white", height=0.6)
            if seconds >= longest * 0.18:
                ax.text(left + seconds / 2, row, f"{phase} {seconds:.1f} s", ha="center", va="center", fontsize=8,
                        color="white")  # fmt: skip
            else:
                narrow.append(f"{phase} {seconds:.1f}")  # too thin to hold its label: named after the bar
            left += seconds
        note = f"{entry.seconds:.1f} s" + (f"  ({', '.join(narrow)})" if narrow else "")
        ax.text(max(left, entry.seconds) + longest * 0.01, row, note, va="center", fontsize=8)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([e.target for e in reversed(entries)], fontsize=9)
    ax.set_xlim(0, longest * 1.45)
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Build time per target, by phase", fontsize=11)
    handles = [Patch(color=PHASE_COLOURS.get(p, "#999999")) for p in used]
    fig.legend(handles, used, loc="outside right upper", fontsize=9, frameon=False)
    return fig
