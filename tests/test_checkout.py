"""What a fresh checkout of the repository holds: no build output under version control (a build leaves `git status` clean).

Both reuse the session's demo build (conftest.demo_build): no build of their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from toolchain import REPO_ROOT
from toolchain.build.pipeline import BuildReport


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    return done.stdout


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
    assert git("ls-files", str(Path("docs") / "data")).split() == [
        "docs/data/demo-build-record.json",
        "docs/data/demo-size-history.jsonl",
    ]
