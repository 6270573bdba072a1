"""The size gate, the size history and report, crate attribution, and the
rule that dist never quietly undoes a tighter release profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain.pipeline.targets import BuildOptions, build


@pytest.fixture
def sized(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh build of a small crate with its own toolchain.toml."""
    manifest = make_crate(tmp_path / "crate", "sizer")
    (tmp_path / "toolchain.toml").write_text(
        f'[build]\nmanifest-path = "{manifest}"\nout-dir = "out"\nprofile = "fast"\n\n'
        '[size]\nbaseline = "baseline.json"\nmax-growth-percent = 5\nmax-growth-bytes = 1000\n'
    )
    env = {"TOOLCHAIN_CONFIG": str(tmp_path / "toolchain.toml")}
    result = run_invoke("build", env=env)
    assert result.returncode == 0, result.stderr
    return tmp_path, env


def test_size_gate_passes_within_and_fails_past_the_threshold(sized: tuple[Path, dict[str, str]]) -> None:
    root, env = sized
    first = run_invoke("size", "--update-baseline", env=env)
    assert first.returncode == 0, first.stderr
    baseline = json.loads((root / "baseline.json").read_text())
    entry = baseline["targets"]["x86_64-unknown-linux-gnu"]["sizer"]
    assert entry["size"] > 0 and entry["archive_size"] > 0
    unchanged = run_invoke("size", "--json", env=env)
    assert unchanged.returncode == 0 and json.loads(unchanged.stdout)["regressions"] == []
    # Pretend the baseline was 20% smaller: the binary "grew" past both limits.
    entry["size"] = int(entry["size"] * 0.8)
    (root / "baseline.json").write_text(json.dumps(baseline))
    grown = run_invoke("size", env=env)
    assert grown.returncode == 10
    assert "size regression: x86_64-unknown-linux-gnu sizer binary grew" in grown.stderr
    assert "--update-baseline" in grown.stderr
    # A small growth (under 1000 bytes) passes even though it is over 5% of nothing much.
    entry["size"] = json.loads(unchanged.stdout)["rows"][0]["size"] - 500
    (root / "baseline.json").write_text(json.dumps(baseline))
    assert run_invoke("size", env=env).returncode == 0


def test_history_grows_per_build_and_renders(sized: tuple[Path, dict[str, str]]) -> None:
    root, env = sized
    assert run_invoke("build", env=env).returncode == 0
    history = [json.loads(line) for line in (root / "out" / "size-history.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert {h["target"] for h in history} == {"x86_64-unknown-linux-gnu"}
    assert all(h["size"] > 0 and h["archive_size"] > 0 for h in history)
    report = run_invoke("size", "--report", env=env)
    assert report.returncode == 0, report.stderr
    assert f"size report: {root / 'out' / 'size-report.html'}" in report.stderr
    page = (root / "out" / "size-report.html").read_text()
    # The size-history chart (more is checked in test_charts.py), its legend naming the target binary.
    assert "<svg" in page and "x86_64-unknown-linux-gnu  sizer" in page


def test_crate_attribution_from_an_unstripped_build() -> None:
    result = run_invoke("size", "--crates", "--json")
    assert result.returncode == 0, result.stderr
    (binary,) = json.loads(result.stdout)["binaries"]
    crates = {c["crate"]: c["size"] for c in binary["crates"]}
    assert {"std", "core", "tally"} <= set(crates)
    assert crates["std"] > crates["tally"] > 0


def test_a_tighter_release_profile_is_kept(tmp_path: Path) -> None:
    tight = '\n[profile.release]\nlto = "fat"\ncodegen-units = 1\nopt-level = "z"\npanic = "abort"\n'
    manifest = make_crate(tmp_path / "tight", "tight", manifest_extra=tight)
    release = build(
        BuildOptions(manifest_path=manifest, profile="release", out_dir=tmp_path / "r", allow=("stripped",))
    )
    dist = build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "d"))
    sources = {s.key: s for s in dist.results[0].profile_settings}
    assert sources["lto"].value == "fat" and "[profile.release]" in sources["lto"].source
    assert sources["opt-level"].value == "z" and "inherited" in sources["opt-level"].source
    assert sources["strip"].value == "symbols" and sources["strip"].source.endswith("dist.toml")
    assert dist.results[0].binaries[0].info.size <= release.results[0].binaries[0].info.size
    forced = build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "f", force_profile=True))
    assert {s.key: s.value for s in forced.results[0].profile_settings}["lto"] == "thin"
