"""How much does `invoke build` add to the cargo builds it runs?

In one run, on a generated zero-dependency crate:

1. One target (this host's), from clean: the bare cargo command the toolkit
   runs against `invoke build`, alternating. Goal: fixed overhead <= 0.5 s.
2. No-op rebuilds of both. Goal: `invoke build` <= 0.3 s in all.
3. Every release target (`invoke build --all`, five on Linux) against the sum
   of the five bare cargo builds, each after the crate's source changed (std
   and the build scripts stay built, as in a real edit-and-release). Goal:
   ratio <= 1.02x: verifying and packaging one target overlap cargo's build
   of the next.

Wall seconds are medians. CPU seconds (user + system of the whole process
tree) are printed beside them: on a shared machine they move far less.

The one-target part runs the toolkit two ways, alternating: as a user installs
it (its wheel, built from this checkout, in a new venv with its `zig` extra:
the interpreter starts with nothing but what the toolkit needs), and from this
checkout with the interpreter running the bench (whatever that interpreter's
site loads: an editable install's finder, other packages' .pth files).

    python3 bench/overhead.py [--modules 12] [--runs 3] [--all-modules 6] [--all-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import write_crate

from toolchain import REPO_ROOT
from toolchain.compile.cargo import Project, load_project, select
from toolchain.compile.routes import VENDORED_STD_SOURCES
from toolchain.compile.runners import BuildJob, CommandRunner, choose_runner
from toolchain.compile.rustflags import encoded_rustflags
from toolchain.compile.target import profile_is_defined_by_toolkit
from toolchain.config.settings import Settings, load_settings
from toolchain.config.targets import Target, host_platform
from toolchain.pipeline.targets import BuildOptions, resolve_targets
from toolchain.records.build_record import RECORD_NAME


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float  # user + system seconds of the child and everything it waited for


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None, keep: list[bytes] | None = None) -> Timed:
    """Run argv; its wall and CPU seconds (its standard output appended to `keep` if given)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.PIPE if keep is not None else subprocess.DEVNULL
    done = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed ({done.returncode}):\n{done.stderr.decode(errors='replace')[-3000:]}")
    if keep is not None:
        keep.append(done.stdout)
    return Timed(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def bare_command(
    project: Project, target: Target, profile_name: str, settings: Settings, runner_name: str = "auto"
) -> tuple[list[str], dict[str, str]]:
    """The cargo command and environment `invoke build` runs for one target (the runner it picks)."""
    profile = settings.catalog.profile(profile_name)
    runner = choose_runner(runner_name, target, host_platform()).runner
    assert isinstance(runner, CommandRunner), f"{runner.name} is not one command"
    route = runner.route(target, project)
    define, _ = profile_is_defined_by_toolkit(profile, project, False)
    job = BuildJob(project, tuple(select(project, None, [])), target, profile, define, route, settings)
    invocation = runner.invocation(job)
    env = dict(invocation.env)
    # As CommandRunner.build adds it: the same flags, so neither side rebuilds what the other built.
    if runner.remaps_host_paths and not route.trim_paths:
        std = VENDORED_STD_SOURCES.parent.parent if route.name == "build-std" else None
        env["CARGO_ENCODED_RUSTFLAGS"] = encoded_rustflags(
            project.workspace_root, project.target_directory, target.triple, project.sources.vendor_dir, std
        )
    return list(invocation.argv), env


def install_from_wheel(venv: Path) -> Path:
    """A new venv holding the toolkit as a user installs it: its wheel, built from this
    checkout, with the `zig` extra (dependencies from pip's index or cache). Its interpreter."""
    started = time.perf_counter()
    wheels = venv.parent / "wheel"
    build_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO_ROOT)]
    subprocess.run(build_wheel, stdout=subprocess.DEVNULL, check=True)
    (wheel,) = wheels.glob("toolchain-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirement = f"toolchain[zig] @ {wheel.as_uri()}"
    subprocess.run([str(python), "-m", "pip", "install", "-q", requirement], stdout=subprocess.DEVNULL, check=True)
    print(f"installed the toolkit's wheel in {venv} ({time.perf_counter() - started:.0f} s, not counted)", flush=True)
    return python


def phase_seconds(out_dir: Path, triple: str) -> dict[str, float]:
    """The phases (prepare, cargo, verify, package) of the last build's record for `triple`."""
    record = json.loads((out_dir / RECORD_NAME).read_text())
    return {name: float(seconds) for name, seconds in record["targets"][triple]["phases"]}


def median(values: list[Timed]) -> Timed:
    return Timed(statistics.median(v.wall for v in values), statistics.median(v.cpu for v in values))


def show(label: str, value: Timed) -> str:
    return f"{label} {value.wall:7.2f} s wall ({value.cpu:6.2f} s CPU)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--modules", type=int, default=12, help="size of the one-target crate")
    parser.add_argument("--runs", type=int, default=3, help="fresh one-target builds of each kind")
    parser.add_argument("--noop-runs", type=int, default=5, help="no-op rebuilds of each kind")
    parser.add_argument("--all-modules", type=int, default=6, help="size of the crate built for every target")
    parser.add_argument("--all-runs", type=int, default=1, help="rounds of five bare builds against build --all")
    # Not "fast": it is incremental, so the comment edit costs cargo half a second per target.
    parser.add_argument("--all-profile", default="dist", help="profile of the every-target part")
    parser.add_argument("--skip-all", action="store_true", help="only the one-target part")
    parser.add_argument("--skip-one", action="store_true", help="only the every-target part")
    parser.add_argument("--all-targets", default="", help="comma-separated: these instead of every release target")
    parser.add_argument(
        "--all-target-dir",
        default="",
        help="the every-target part's cargo target folder; default: the tests' shared one (std built once); "
        "a private one avoids waiting on other builds' locks there",
    )
    parser.add_argument("--runner", default="auto", help="the one-target part's runner (auto, native, zig)")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        help="a policy rule invoke build may break (--runner native: glibc-floor)",
    )
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    # The checkout's bytecode is compiled first, as pip compiles an installed package's. invoke
    # sets sys.dont_write_bytecode (unless --write-pyc), so runs through it never write any.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "toolchain")], check=True)
    base_env = dict(os.environ)
    base_env["CI"] = "true"
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), "build"]
    installed_python = None if options.skip_one else install_from_wheel(work / "venv")
    if installed_python is not None:
        # One cargo-zigbuild and one zig for every side (the bare command this process builds, the
        # checkout's toolkit, the installed one): the venv's. Another zig or cargo-zigbuild means
        # other linker wrappers, and cargo would rebuild all that the last side built.
        os.environ["PATH"] = f"{installed_python.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        ask_zig = "from toolchain.compile.runners.zig import zig_program; print(zig_program())"
        zig = subprocess.run([str(installed_python), "-c", ask_zig], capture_output=True, text=True, check=True)
        os.environ["CARGO_ZIGBUILD_ZIG_COMMAND"] = zig.stdout.strip()  # the toolkit keeps a value set here
        base_env.update(PATH=os.environ["PATH"], CARGO_ZIGBUILD_ZIG_COMMAND=os.environ["CARGO_ZIGBUILD_ZIG_COMMAND"])
    settings = load_settings()
    try:
        if not options.skip_one:
            # 1 and 2: one target.
            manifest = write_crate(work / "crate", options.modules)
            project = load_project(manifest)
            host = settings.catalog.target(settings.catalog.host_triple())
            bare, bare_env = bare_command(project, host, "dist", settings, options.runner)
            env = {**base_env, **bare_env}
            build_args = ["--manifest-path", str(manifest), "--out-dir", str(work / "dist")]
            build_args += ["--runner", options.runner, *(f"--allow={rule}" for rule in options.allow)]
            toolkit = [*invoke, *build_args]
            # The installed toolkit's console script, run by the venv's interpreter (no shebang lookup).
            assert installed_python is not None
            installed = [str(installed_python), str(installed_python.parent / "toolchain"), "build", *build_args]

            def clean() -> None:
                shutil.rmtree(project.target_directory, ignore_errors=True)
                shutil.rmtree(work / "dist", ignore_errors=True)

            fresh: dict[str, list[Timed]] = {"bare": [], "installed": [], "checkout": []}
            # A toolkit run's wall seconds outside its own cargo phase, and its phases after cargo.
            outside: dict[str, list[float]] = {"installed": [], "checkout": []}
            after_cargo: dict[str, list[float]] = {"prepare": [], "verify": [], "package": []}
            for run in range(options.runs):
                # Rotate the order so no side always gets a warmer cache.
                order = [("bare", bare, env), ("installed", installed, base_env), ("checkout", toolkit, base_env)]
                for kind, argv, run_env in order[run % 3 :] + order[: run % 3]:
                    clean()
                    fresh[kind].append(timed(argv, run_env))
                    extra = ""
                    if kind != "bare":
                        phases = phase_seconds(work / "dist", host.triple)
                        outside[kind].append(fresh[kind][-1].wall - phases["cargo"])
                        if kind == "installed":
                            for name, kept in after_cargo.items():
                                kept.append(phases.get(name, 0.0))
                        extra = f"  ({outside[kind][-1]:.2f} s outside its cargo phase)"
                    print(f"fresh {kind:9} run {run + 1}: {show('', fresh[kind][-1])}{extra}", flush=True)
            noop_bare = [timed(bare, env) for _ in range(options.noop_runs)]
            # What any task costs before it does anything: the interpreter and invoke starting.
            listing = [timed([*installed[:2], "--list"], base_env) for _ in range(options.noop_runs)]
            noop_toolkit: dict[str, list[Timed]] = {}
            for kind, argv in (("installed", installed), ("checkout", toolkit)):
                # With --json, to see which runs took the fresh check's fast path (the first after a
                # fresh build does not: that build made dist/ and target/ in a folder it had listed).
                documents: list[bytes] = []
                noop_toolkit[kind] = [
                    timed([*argv, "--json"], base_env, keep=documents) for _ in range(options.noop_runs)
                ]
                for run, (value, document) in enumerate(zip(noop_toolkit[kind], documents, strict=True)):
                    path = "fresh check" if json.loads(document).get("fresh") else "a real no-op build"
                    print(f"no-op {kind:9} run {run + 1}: {show('', value)} ({path})", flush=True)

            bare_fresh = median(fresh["bare"])
            print()
            print(f"crate: {options.modules} generated modules, dist profile, {host.triple}, runner {bare[0]}")
            print(f"fresh build   {show('bare cargo', bare_fresh)}")
            for kind, label in (("installed", "installed (venv from its wheel)"), ("checkout", "this checkout")):
                toolkit_fresh = median(fresh[kind])
                print(f"  toolkit, {label}: {show('', toolkit_fresh)}")
                print(
                    f"    fixed overhead of a fresh build: {toolkit_fresh.wall - bare_fresh.wall:+.2f} s wall, "
                    f"{toolkit_fresh.cpu - bare_fresh.cpu:+.2f} s CPU (goal <= 0.5 s)"
                )
                print(
                    f"    the same from the toolkit's own record (its wall time outside its cargo phase, "
                    f"immune to cargo's run-to-run spread): {statistics.median(outside[kind]):+.2f} s "
                    f"(runs: {', '.join(f'{v:.2f}' for v in outside[kind])}; goal <= 0.5 s)"
                )
            start, verify = median(listing).wall, statistics.median(after_cargo["verify"])
            package, prepare = statistics.median(after_cargo["package"]), statistics.median(after_cargo["prepare"])
            rest = statistics.median(outside["installed"]) - verify - package - prepare
            print(
                f"  installed, of which before cargo, once the crate graph is known: prepare {prepare:.2f} s (runner, "
                f"pre-cargo checks, route, profile); after cargo: verify {verify:.2f} s, package {package:.2f} s "
                f"(tar, xz -6, checksums); the rest {rest:.2f} s (Python and invoke starting, the fresh check, "
                "the release folder, settings, cargo metadata, the pipeline's modules, fingerprint, exit)"
            )
            print(f"  for reference, installed `toolchain --list` (Python, invoke, the task modules): {start:.2f} s")
            print(f"no-op rebuild {show('bare cargo', median(noop_bare))}")
            for kind, runs in noop_toolkit.items():
                print(
                    f"  toolkit, {kind}: {show('', median(runs))}, {median(runs).wall - median(noop_bare).wall:+.2f} s "
                    f"(goal <= +0.15 s); the slowest after the first: {max(v.wall for v in runs[1:] or runs):.2f} s",
                    flush=True,
                )

        if options.skip_all:
            return
        # 3: every release target. A fixed path and the tests' shared target folder:
        # std built from source for a target is then built once, not per run.
        root = Path(tempfile.gettempdir()) / f"toolchain-bench-{os.getuid()}" / "overheadall"
        manifest = write_crate(root, options.all_modules, name="overheadall")
        shared = Path(tempfile.gettempdir()) / f"toolchain-tests-{os.getuid()}" / "target"
        target_dir = Path(options.all_target_dir).resolve() if options.all_target_dir else shared
        all_env = {**base_env, "CARGO_TARGET_DIR": str(target_dir)}
        os.environ["CARGO_TARGET_DIR"] = str(target_dir)  # load_project reads it, as cargo does
        project = load_project(manifest)
        chosen = tuple(t for t in options.all_targets.split(",") if t)
        targets = resolve_targets(BuildOptions(targets=chosen, all_targets=not chosen), settings)
        commands = [bare_command(project, t, options.all_profile, settings) for t in targets]
        every = [*invoke, "--target", ",".join(chosen)] if chosen else [*invoke, "--all"]
        every += ["--profile", options.all_profile, "--manifest-path", str(manifest)]
        every += ["--out-dir", str(work / "dist-all")]
        main_rs = root / "src" / "main.rs"

        def edit() -> None:
            # A changed source (a comment toggled): cargo recompiles the crate, only, for each target.
            text = main_rs.read_text()
            main_rs.write_text(text[: -len("// edit\n")] if text.endswith("// edit\n") else text + "// edit\n")

        print(f"\nwarming up: every target once ({', '.join(t.triple for t in targets)})", flush=True)
        timed(every, all_env)
        bare_sums: list[Timed] = []
        toolkit_all: list[Timed] = []
        # The toolkit's wall time outside its cargo phases (the record's): its fixed and per-target
        # costs, free of cargo's run-to-run spread, which on a shared machine is larger than the goal.
        outside_all: list[float] = []
        for run in range(options.all_runs):
            sides = ["bare", "toolkit"] if run % 2 == 0 else ["toolkit", "bare"]
            for side in sides:
                if side == "bare":
                    parts = []
                    for target, (argv, target_env) in zip(targets, commands, strict=True):
                        edit()
                        parts.append(timed(argv, {**all_env, **target_env}))
                        print(f"  bare {target.triple:28} {show('', parts[-1])}", flush=True)
                    bare_sums.append(Timed(sum(p.wall for p in parts), sum(p.cpu for p in parts)))
                    print(f"bare sum run {run + 1}: {show('', bare_sums[-1])}", flush=True)
                else:
                    edit()
                    toolkit_all.append(timed(every, all_env))
                    cargo = {t.triple: phase_seconds(work / "dist-all", t.triple)["cargo"] for t in targets}
                    outside_all.append(toolkit_all[-1].wall - sum(cargo.values()))
                    for triple, seconds in cargo.items():
                        print(f"  toolkit {triple:25} {seconds:7.2f} s wall in its cargo phase", flush=True)
                    print(
                        f"build --all run {run + 1}: {show('', toolkit_all[-1])}  "
                        f"({outside_all[-1]:.2f} s outside its cargo phases)",
                        flush=True,
                    )
        bare_sum, toolkit_sum = median(bare_sums), median(toolkit_all)
        print()
        print(f"every target: {len(targets)} targets, {options.all_modules} modules, {options.all_profile} profile")
        print(f"  {show('sum of bare cargo builds', bare_sum)}")
        print(f"  {show('invoke build --all      ', toolkit_sum)}")
        print(
            f"  ratio {toolkit_sum.wall / bare_sum.wall:.3f}x wall, {toolkit_sum.cpu / bare_sum.cpu:.3f}x CPU "
            f"(goal <= 1.02x)"
        )
        own = statistics.median(outside_all)
        print(
            f"  the toolkit's own time outside its cargo phases: {own:.2f} s; with cargo as fast as bare, "
            f"the ratio would be {(bare_sum.wall + own) / bare_sum.wall:.3f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
