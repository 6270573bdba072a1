"""What a fresh checkout of the repository holds: a size baseline that matches what its
code builds, and no build output under version control (a build leaves `git status` clean).

The first two reuse the session's demo build (conftest.demo_build): no build of their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import on_ci

from toolchain import REPO_ROOT
from toolchain.config.settings import load_settings
from toolchain.pipeline.targets import BuildReport
from toolchain.records.build_record import load_record
from toolchain.verify.size import GrowthLimit, load_baseline, rows_from_record

DEMO = REPO_ROOT / "demo"


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode == 128:
        assert not on_ci(), f"CI runs on a clean clone: {done.stderr.strip()}"
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    return done.stdout


def test_the_committed_size_baseline_matches_what_the_demo_builds(demo_build: BuildReport) -> None:
    """`invoke size` right after a build of the checkout passes: the host binary and archive
    are within the demo's own gate of the committed baseline, in both directions (a baseline
    far above what is built would let any growth through)."""
    settings = load_settings(DEMO)
    limit = GrowthLimit(settings.size.max_growth_percent, settings.size.max_growth_bytes)
    baseline = load_baseline(DEMO / "size-baseline.json")
    rows = rows_from_record(load_record(demo_build.out_dir), baseline, [])
    assert rows
    for row in rows:
        for label, built, committed in (
            ("binary", row.size, row.baseline_size),
            ("archive", row.archive_size, row.baseline_archive),
        ):
            assert built is not None and committed, f"{row.target} {row.binary}: no committed {label} size"
            assert not limit.exceeded(built, committed) and not limit.exceeded(committed, built), (
                f"{row.target} {row.binary} {label}: built {built:,} bytes, demo/size-baseline.json says "
                f"{committed:,}: run `invoke build --all --demo` and `invoke size --update-baseline --demo`"
            )


def test_no_build_output_is_tracked_and_a_build_in_the_checkout_is_ignored(demo_build: BuildReport) -> None:
    """Every file the demo's build writes to its output folder is ignored where a build in the
    checkout puts it (demo/dist/ and dist/), and nothing there is tracked: a build leaves the
    checkout clean, so the next build's provenance does not record a dirty tree."""
    written = sorted(p.relative_to(demo_build.out_dir) for p in demo_build.out_dir.rglob("*") if p.is_file())
    assert any(p.name == "build-record.json" for p in written) and any(p.suffix == ".xz" for p in written)
    for folder in ("demo/dist", "dist"):
        assert git("ls-files", folder) == "", f"{folder} holds tracked build output"
        paths = [f"{folder}/{p}" for p in written]
        ignored = set(git("check-ignore", "--no-index", *paths).splitlines())
        assert ignored == set(paths), f"not ignored: {sorted(set(paths) - ignored)[:5]}"


def test_the_charts_data_is_kept_where_no_build_writes() -> None:
    """The build record and size history the docs' charts were drawn from stay in docs/data."""
    data = REPO_ROOT / "docs" / "data"
    record = json.loads((data / "demo-build-record.json").read_text())
    assert record["schema"].startswith("toolchain.build-record")
    lines = (data / "demo-size-history.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["binary"] for line in lines)
    tracked = set(git("ls-files", str(Path("docs") / "data")).split())
    assert {"docs/data/demo-build-record.json", "docs/data/demo-size-history.jsonl"} <= tracked
