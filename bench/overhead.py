"""How much does `invoke build` add to the cargo build it runs?

Builds a generated crate (about 25 s for a release build on 2 cores) from
clean, alternately with the bare cargo command the toolkit runs and with
`invoke build`, then times no-op rebuilds of both. Prints medians, the
ratio and the fixed overhead in seconds. Goals: ratio at most 1.05x, fixed
overhead of a fresh build at most 1.5 s, no-op rebuild at most 0.5 s.

    python3 bench/overhead.py [--modules 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import write_crate

from toolchain import REPO_ROOT
from toolchain.build.cargo import load_project, select
from toolchain.build.routes import resolve_route
from toolchain.build.runners import BuildJob, CommandRunner, choose_runner
from toolchain.config.catalog import load_catalog
from toolchain.config.settings import load_settings
from toolchain.config.targets import host_platform


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=30, help="size of the generated crate")
    parser.add_argument("--runs", type=int, default=3, help="fresh builds of each kind")
    parser.add_argument("--noop-runs", type=int, default=7, help="no-op rebuilds of each kind")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    try:
        manifest = write_crate(work / "crate", options.modules)
        project = load_project(manifest)
        target = load_catalog().target(load_catalog().host_triple())
        selections = tuple(select(project, None, []))
        route = resolve_route(target, project.sources)
        job = BuildJob(project, selections, target, load_catalog().profile("dist"), True, route, load_settings())
        # The same runner `invoke build` picks (zig on Linux: it pins glibc).
        runner = choose_runner("auto", target, host_platform()).runner
        assert isinstance(runner, CommandRunner)
        invocation = runner.invocation(job)
        bare = list(invocation.argv)
        env = {**os.environ, **invocation.env, "CI": "true"}
        toolkit = [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), "build", "--runner", runner.name]
        toolkit += ["--manifest-path", str(manifest), "--out-dir", str(work / "dist")]

        def clean() -> None:
            shutil.rmtree(project.target_directory, ignore_errors=True)
            shutil.rmtree(work / "dist", ignore_errors=True)

        fresh_bare: list[float] = []
        fresh_toolkit: list[float] = []
        for run in range(options.runs):
            # Alternate the order so neither side always gets a warmer cache.
            order = [("bare", bare), ("toolkit", toolkit)]
            for kind, argv in order if run % 2 == 0 else order[::-1]:
                clean()
                seconds = timed(argv, env)
                (fresh_bare if kind == "bare" else fresh_toolkit).append(seconds)
                print(f"fresh {kind:8} run {run + 1}: {seconds:6.2f} s", flush=True)
        noop_bare = [timed(bare, env) for _ in range(options.noop_runs)]
        noop_toolkit = [timed(toolkit, env) for _ in range(options.noop_runs)]

        bare_median, toolkit_median = statistics.median(fresh_bare), statistics.median(fresh_toolkit)
        print()
        print(f"crate: {options.modules} generated modules, dist profile, {target.triple}")
        print(f"fresh build  bare cargo {bare_median:6.2f} s   invoke build {toolkit_median:6.2f} s   "
              f"ratio {toolkit_median / bare_median:.3f}x (goal <= 1.05x)")  # fmt: skip
        print(f"fixed overhead of a fresh build: {toolkit_median - bare_median:+.2f} s (goal <= 1.5 s)")
        print(f"no-op rebuild bare cargo {statistics.median(noop_bare):.3f} s   "
              f"invoke build {statistics.median(noop_toolkit):.3f} s (goal <= 0.5 s in all)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
