"""The suite cleans up after itself: a machine that runs it again and again (a CI runner,
a developer's laptop) does not fill its disk. A run on 2026-12-07 stopped with errors
once the disk was full: 192 demo copies (3.3 GB) and every passed test's tmp folder
(4.5 GB a run) were left in the temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from toolchain import REPO_ROOT

QUICK_TEST = "tests/test_config_model.py::test_every_layer_is_checked_and_blamed"


def run_pytest_in(temp_root: Path) -> subprocess.CompletedProcess[str]:
    """One quick real test that writes into its tmp_path, run with its own temp folder."""
    env = {**os.environ, "TMPDIR": str(temp_root)}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", QUICK_TEST],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_run_leaves_no_demo_copy_and_no_passed_tests_folders(tmp_path: Path) -> None:
    result = run_pytest_in(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert not [name for name in left if "toolchain-tests-demo-" in name], "the demo copy was left behind"
    assert not [name for name in left if name.startswith("pytest-of-")], f"a passed test's files were kept: {left}"
