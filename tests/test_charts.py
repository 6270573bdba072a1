"""The charts (matplotlib): size history, code size by crate and the build
timeline, rendered from a recorded history of several commits, five targets
and one regression, and the self-contained HTML pages around them."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.errors import MissingToolError, UsageError
from toolchain.records.build_record import BuildRecord, TargetEntry, load_record, save_record
from toolchain.release.ci import WORKFLOW_NAME, workflow
from toolchain.verify.bloat import Attribution, load_attributions, save_attributions
from toolchain.verify.inspection import CrateSize
from toolchain.verify.size import (
    BASELINE_CRATES,
    GrowthLimit,
    SizeRow,
    baseline_crates,
    baseline_sizes,
    load_baseline,
    read_history,
    write_baseline,
    write_baseline_crates,
)

matplotlib = pytest.importorskip("matplotlib", reason="the `report` extra (pip install 'toolchain[report]')")
import numpy  # noqa: E402 - numpy and Pillow come with matplotlib
from PIL import Image  # noqa: E402

from toolchain.report import charts, pages  # noqa: E402
from toolchain.report.cargo_timings import keep_cargo_timings  # noqa: E402

TARGETS = {
    "x86_64-unknown-linux-gnu": 1_153_320,
    "aarch64-unknown-linux-gnu": 1_048_904,
    "x86_64-apple-darwin": 982_216,
    "aarch64-apple-darwin": 947_480,
    "x86_64-pc-windows-gnu": 1_305_600,
}
COMMITS = ["3f9c2e1a", "8b41d07c", "c02aa913", "5de7f0b2", "91e3c4d8", "e7a0b655"]
REGRESSED = "x86_64-pc-windows-gnu"
LIMIT = GrowthLimit(5.0, 8192)


def recorded_history(out_dir: Path) -> Path:
    """size-history.jsonl as builds write it: six commits, five targets; the last
    commit grows the Windows binary by 9% (past the gate), the others drift a little."""
    lines = []
    for n, commit in enumerate(COMMITS):
        for target, size in TARGETS.items():
            grown = size + 1536 * n
            if target == REGRESSED and n == len(COMMITS) - 1:
                grown = int(size * 1.09)
            lines.append(
                json.dumps(
                    {
                        "time": f"2026-11-{10 + n:02d}T09:30:00+00:00",
                        "commit": commit * 5,
                        "dirty": False,
                        "target": target,
                        "profile": "dist",
                        "binary": "tally",
                        "size": grown,
                        "archive_size": grown // 2,
                    }
                )
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "size-history.jsonl").write_text("\n".join(lines) + "\n")
    return out_dir


def baselines() -> dict[tuple[str, str], int]:
    """The baseline was taken at the second commit."""
    return {(target, "tally"): size + 1536 for target, size in TARGETS.items()}


def attributions(grow: str = "rusqlite") -> list[Attribution]:
    crates = (
        ("std", 310_000),
        ("libsqlite3_sys", 240_000),
        ("rusqlite", 52_000),
        ("core", 48_000),
        ("alloc", 21_000),
        ("tally", 9_500),
        ("hashbrown", 7_200),
        ("[C/other]", 6_100),
        ("memchr", 4_800),
        ("smallvec", 2_300),
        ("fallible_iterator", 1_100),
        ("adler", 900),
    )
    return [
        Attribution(
            target,
            Path(f"/t/{target}/tally"),
            tuple(CrateSize(name, size + (30_000 if name == grow else 0), size // 100) for name, size in crates),
            "tally",
        )
        for target in sorted(TARGETS)
    ]


def crate_baselines() -> dict[tuple[str, str], dict[str, int]]:
    return {
        (a.target, a.name): {c.crate: c.size - (30_000 if c.crate == "rusqlite" else 0) for c in a.crates}
        for a in attributions()
    }


def timings_record() -> BuildRecord:
    entries = []
    for n, target in enumerate(sorted(TARGETS)):
        cargo = 40.0 + 25 * n
        phases = (("cargo", cargo), ("verify", 1.2 + n / 10), ("package", 3.5), ("sign", 0.4))
        entries.append(
            TargetEntry(target, True, sum(s for _, s in phases), started=f"2026-11-27T12:0{n}:00+00:00", phases=phases)
        )
    return BuildRecord().merged(entries)


def assert_png(chart: charts.RenderedChart, width: int, height: int) -> None:
    image = Image.open(io.BytesIO(chart.png))
    assert image.size == (width, height) == (chart.width, chart.height)
    grey = numpy.asarray(image.convert("L"), dtype=float)
    assert grey.var() > 200, f"{chart.name}.png looks blank (pixel variance {grey.var():.0f})"
    assert (grey < 128).mean() > 0.01, f"{chart.name}.png has almost no ink"


def svg_texts(svg: str) -> list[str]:
    """The text of every <text> element (labels stay text: svg.fonttype none)."""
    return [
        re.sub(r"<[^>]+>", "", t).replace("&#215;", "x").strip()
        for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    ]


def assert_self_contained(page: str) -> None:
    urls = re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page))
    namespaces = {"//www.w3.org/2000/svg", "//www.w3.org/1999/xlink"}
    assert {u.removeprefix("http:").removeprefix("https:") for u in urls} <= namespaces, urls
    assert not re.search(r"<(script|link|iframe)\b|@import|src=['\"](?!data:)", page)


def test_size_history_marks_the_regression_with_its_delta(tmp_path: Path) -> None:
    samples = read_history(recorded_history(tmp_path))
    assert len(samples) == len(COMMITS) * len(TARGETS)
    figure = charts.size_history(samples, baselines(), LIMIT)
    chart = charts.render(figure, "size-history", "Size history")
    assert_png(chart, 1100, 560)
    assert chart.clipped == ()
    # The legend sits outside the plot, to its right (its box's padding may touch the frame).
    (legend,) = figure.legends
    assert legend.get_window_extent().x0 >= figure.axes[0].get_window_extent().x1 - 4
    texts = svg_texts(chart.svg)
    for target in TARGETS:
        assert any(t.startswith(target) for t in texts), f"{target} is not in the SVG in full"
    # The one regression, and only it, carries its growth against the baseline.
    base = baselines()[(REGRESSED, "tally")]
    grown = int(TARGETS[REGRESSED] * 1.09)
    delta = grown - base
    label = f"+{charts.human(delta)} (+{100.0 * delta / base:.1f}%)"
    assert [t for t in texts if t.startswith("+") and "%" in t] == [label]
    # x is the commit and its date; y ticks are in KiB or MiB.
    assert any(t.startswith("e7a0b65") for t in texts) and any("2026-11-15" in t for t in texts)
    assert any(re.fullmatch(r"[\d.]+ (KiB|MiB)", t) for t in texts)
    assert "baseline" in texts and "allowed growth" in texts and "past the gate" in texts


def test_a_growth_inside_the_gate_is_not_marked(tmp_path: Path) -> None:
    samples = [s for s in read_history(recorded_history(tmp_path)) if s.commit != COMMITS[-1] * 5]
    chart = charts.render(charts.size_history(samples, baselines(), LIMIT), "size-history", "Size history")
    assert not [t for t in svg_texts(chart.svg) if t.startswith("+") and "%" in t]
    assert "past the gate" not in svg_texts(chart.svg)


def test_crate_chart_shows_shares_and_the_crate_that_grew() -> None:
    rows = [
        charts.CrateChartRow(a.target, a.name, a.crates, crate_baselines()[(a.target, a.name)]) for a in attributions()
    ]
    chart = charts.render(charts.crate_sizes(rows), "crate-sizes", "Code size by crate")
    assert_png(chart, 1200, round((0.5 + 3.4 * 5) * 100))
    assert chart.clipped == ()
    texts = svg_texts(chart.svg)
    for target in TARGETS:
        assert (
            f"{target}  tally: top crates of {charts.human(sum(c.size for c in attributions()[0].crates))} code"
            in texts
        )
    total = sum(c.size for c in attributions()[0].crates)
    assert f"{charts.human(310_000)}  {100.0 * 310_000 / total:.1f}%" in texts
    assert texts.count("+29.3 KiB") == len(TARGETS)  # rusqlite grew by 30,000 bytes in each
    # The top crates only: the smallest are left out.
    assert "adler" not in texts


def test_crate_chart_without_a_baseline_says_how_to_record_one() -> None:
    rows = [charts.CrateChartRow(a.target, a.name, a.crates) for a in attributions()[:1]]
    chart = charts.render(charts.crate_sizes(rows), "crate-sizes", "Code size by crate")
    assert "(invoke size --crates --update-baseline)" in svg_texts(chart.svg)
    assert chart.clipped == ()


def test_build_timeline_splits_each_target_into_phases() -> None:
    chart = charts.render(charts.build_timeline(timings_record()), "build-timeline", "Build timeline")
    assert_png(chart, 1100, round((1.4 + 0.55 * 5) * 100))
    assert chart.clipped == ()
    texts = svg_texts(chart.svg)
    assert set(TARGETS) <= set(texts)
    assert {"cargo", "verify", "package", "sign"} <= set(texts)
    longest = timings_record().targets["x86_64-unknown-linux-gnu"]
    # Each phase has its seconds: inside a bar wide enough, else after the bar with the total.
    assert "cargo 140.0 s" in texts
    assert f"{longest.seconds:.1f} s  (verify 1.6, package 3.5, sign 0.4)" in texts


def test_size_report_page_is_one_self_contained_file(tmp_path: Path) -> None:
    recorded_history(tmp_path)
    save_attributions(tmp_path, attributions())
    page_path = pages.write_size_report(
        tmp_path, read_history(tmp_path), baselines(), LIMIT, load_attributions(tmp_path), crate_baselines()
    )
    page = page_path.read_text()
    assert_self_contained(page)
    assert page.count("<svg") == 2 and page.count("data:image/png;base64,") == 2
    assert "past the gate" in page
    assert {p.name for p in (tmp_path / "charts").iterdir()} == {"size-history.png", "crate-sizes.png"}


def test_timings_page_links_cargo_s_own_timings(tmp_path: Path) -> None:
    cargo_dir = tmp_path / "target" / "cargo-timings"
    cargo_dir.mkdir(parents=True)
    (cargo_dir / "cargo-timing-20261127T120000Z-1.html").write_text("<html>cargo</html>")
    kept = keep_cargo_timings(tmp_path / "target", "x86_64-pc-windows-gnu", 0.0, tmp_path / "out")
    assert kept == [tmp_path / "out" / "cargo-timings" / "x86_64-pc-windows-gnu.html"]
    save_record(tmp_path / "out", timings_record())
    page = pages.write_timings_report(tmp_path / "out", timings_record()).read_text()
    assert_self_contained(page)
    assert "href='cargo-timings/x86_64-pc-windows-gnu.html'" in page
    assert page.count("not kept (build with --timings)") == len(TARGETS) - 1


def test_without_matplotlib_the_error_names_the_install_command() -> None:
    # A child interpreter where importing matplotlib fails, as without the extra.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from toolchain.report import charts\n"
        "try:\n    charts.require_matplotlib()\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc.exit_code, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == (
        f"{MissingToolError.__name__} 5 matplotlib is not installed (the charts need it); {charts.INSTALL_HINT}"
    )
    assert "toolchain[report]" in charts.INSTALL_HINT


def test_build_timings_keeps_cargo_s_page_and_prints_the_report(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "crate", "timed")
    (tmp_path / "toolchain.toml").write_text(
        f'[build]\nmanifest-path = "{manifest}"\nout-dir = "out"\nprofile = "fast"\n'
    )
    env = {"TOOLCHAIN_CONFIG": str(tmp_path / "toolchain.toml"), "CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--timings", "--json", env=env)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    page_path = out / "build-timings.html"
    assert json.loads(result.stdout)["timings_report"] == str(page_path)
    assert f"build timings: {page_path}" in result.stderr
    kept = out / "cargo-timings" / "x86_64-unknown-linux-gnu.html"
    assert "timed" in kept.read_text()  # cargo's own page, of this build
    page = page_path.read_text()
    assert_self_contained(page)
    assert "href='cargo-timings/x86_64-unknown-linux-gnu.html'" in page
    phases = [name for name, _ in load_record(out).targets["x86_64-unknown-linux-gnu"].phases]
    chart = svg_texts(page)
    assert "x86_64-unknown-linux-gnu" in chart and set(phases) <= {t.split()[0] for t in chart if t}
    assert_png_file(out / "charts" / "build-timeline.png")


def assert_png_file(path: Path) -> None:
    image = Image.open(path)
    assert image.size == (1100, round((1.4 + 0.55) * 100))


def test_ci_uploads_the_build_timings() -> None:
    document = yaml.safe_load(workflow(WORKFLOW_NAME))
    steps = document["jobs"]["build"]["steps"]
    build_step = next(s for s in steps if "invoke build" in s.get("run", ""))
    assert "--timings" in build_step["run"]
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert "report" in install["run"]
    upload = next(s for s in steps if s.get("with", {}).get("name", "").startswith("timings-"))
    assert "build-timings.html" in upload["with"]["path"] and "cargo-timings/" in upload["with"]["path"]
    # The package job merges build folders only, not the timings.
    download = next(s for s in document["jobs"]["package"]["steps"] if "download-artifact" in s.get("uses", ""))
    assert not fnmatch.fnmatch(upload["with"]["name"], download["with"]["pattern"])


def test_crate_sizes_are_kept_for_the_report_and_the_baseline(tmp_path: Path) -> None:
    first, second = attributions()[:2]
    save_attributions(tmp_path, [first])
    save_attributions(tmp_path, [second])  # another target joins the first, not replacing it
    assert load_attributions(tmp_path) == sorted([first, second], key=lambda a: (a.target, a.name))
    path = tmp_path / "baseline.json"
    write_baseline_crates(path, {(first.target, first.name): {c.crate: c.size for c in first.crates}})
    # A later size update keeps the crates it does not write.
    write_baseline(path, [SizeRow(first.target, "tally", 1000, 500, {}, None, None)])
    recorded = load_baseline(path)
    assert baseline_sizes(recorded) == {(first.target, "tally"): 1000}
    kept = baseline_crates(recorded)[(first.target, "tally")]
    assert len(kept) == BASELINE_CRATES if len(first.crates) > BASELINE_CRATES else len(first.crates)
    assert kept["std"] == 310_000
    (tmp_path / "crate-sizes.json").write_text('{"schema": "something else"}')
    with pytest.raises(UsageError, match="crate-sizes.json is not a toolchain.crate-sizes/v1 file"):
        load_attributions(tmp_path)


def test_doctor_names_the_charts_extra() -> None:
    result = run_invoke("doctor", "--json")
    assert result.returncode == 0, result.stderr
    tools = {t["name"]: t for t in json.loads(result.stdout)["tools"]}
    assert tools["matplotlib (charts)"] == {
        "name": "matplotlib (charts)",
        "ok": True,
        "detail": f"matplotlib {matplotlib.__version__}",
        "fix": None,
    }
