"""Several targets: cargo builds them one at a time while the worker thread
verifies and packages the one before. Real cargo builds of a small crate
whose build script can hold one target's cargo run until a file exists."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile import routes
from toolchain.config.settings import load_settings
from toolchain.config.targets import Target
from toolchain.errors import VerificationError
from toolchain.pipeline import targets as pipeline
from toolchain.pipeline.targets import BuildOptions, BuiltBinary, Plan, build
from toolchain.records.build_record import load_record
from toolchain.release.package import Artifact

HOST = "x86_64-unknown-linux-gnu"
ARM = "aarch64-unknown-linux-gnu"
TARGETS = (HOST, ARM)

# While cargo builds the target named in OVERLAP_WAIT_TARGET, its build script
# first writes OVERLAP_STARTED (saying whether the file OVERLAP_WAIT_FOR, another
# target's archive, existed yet), then waits for that file to appear.
# It gives up after three minutes, so a build without overlap fails instead of hanging
# (longer than any test waits for the other archive before it acts: under a loaded CI
# machine a one-minute patience ran out first).
BUILD_RS = """
use std::{env, fs, path::Path, thread, time::Duration};
fn main() {
    println!("cargo:rerun-if-env-changed=OVERLAP_WAIT_FOR");
    println!("cargo:rerun-if-env-changed=OVERLAP_WAIT_TARGET");
    println!("cargo:rerun-if-env-changed=OVERLAP_STARTED");
    let (Ok(target), Ok(file)) = (env::var("OVERLAP_WAIT_TARGET"), env::var("OVERLAP_WAIT_FOR")) else { return };
    if env::var("TARGET").unwrap() != target { return; }
    if let Ok(started) = env::var("OVERLAP_STARTED") {
        let seen = if Path::new(&file).exists() { "archive-present" } else { "archive-absent" };
        fs::write(started, seen).unwrap();
    }
    for _ in 0..1800 {
        if Path::new(&file).exists() { return; }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("{file} did not appear while cargo built {target}");
}
"""


def overlap_crate(root: Path, name: str, toolchain_toml: str = "") -> Path:
    manifest = make_crate(root, name)
    (root / "build.rs").write_text(BUILD_RS)
    if toolchain_toml:
        (root / "toolchain.toml").write_text(toolchain_toml)
    return manifest


def transitions(stderr: str, triple: str) -> list[str]:
    """The states a target's plain progress lines went through, in order."""
    states = []
    for line in stderr.splitlines():
        if line.startswith("[") and f"] {triple}: " in line:
            states.append(line.split(f"] {triple}: ", 1)[1].split(" ")[0])
    return states


def test_packaging_of_one_target_runs_while_cargo_builds_the_next(
    tmp_path: Path, shared_target_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A rendezvous between the two threads, so the test does not race them:
    # the first target's packaging waits until cargo's run for the second target
    # has begun (its build script wrote `started`), and that run ends only once
    # the first target's archive exists. Built one after the other, the packaging
    # waits in vain, the archive is there before the second run, and `started` says so.
    out = tmp_path / "out"
    started = tmp_path / "started"
    monkeypatch.setenv("OVERLAP_WAIT_TARGET", ARM)
    monkeypatch.setenv("OVERLAP_WAIT_FOR", str(out / f"overlapped-{HOST}.tar.xz"))
    monkeypatch.setenv("OVERLAP_STARTED", str(started))
    package_target = pipeline.package_target

    def package_once_the_next_cargo_runs(plan: Plan, target: Target, binaries: list[BuiltBinary]) -> list[Artifact]:
        deadline = time.monotonic() + 60
        while target.triple == HOST and not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return package_target(plan, target, binaries)

    monkeypatch.setattr(pipeline, "package_target", package_once_the_next_cargo_runs)
    manifest = overlap_crate(tmp_path / "crate", "overlapped")
    report = build(BuildOptions(manifest_path=manifest, targets=TARGETS, profile="fast", out_dir=out))
    assert report.ok
    assert started.read_text() == "archive-absent"
    assert [r.triple for r in report.results] == list(TARGETS)
    assert set(load_record(out).targets) == set(TARGETS)
    for result in report.results:
        assert [name for name, _ in result.entry.phases] == ["prepare", "cargo", "verify", "package"]
        assert (out / f"overlapped-{result.triple}.tar.xz").is_file()
    stderr = capsys.readouterr().err
    for triple in TARGETS:
        assert transitions(stderr, triple) == ["queued", "building", "verifying", "packaging", "done"]
    # The worker's log lines are held and come out as one block, after the cargo run they overlapped.
    assert stderr.index(f"==> build {ARM}") < stderr.index(f"==> verify {HOST}") < stderr.index(f"==> package {HOST}")


WRONG_HOST_MACHINE = f'[targets.{HOST}.binary]\nmachine = "aarch64"\n'


def test_keep_going_reports_a_failed_verify_in_order_and_keeps_the_others(
    tmp_path: Path, shared_target_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first target's binary breaks its policy on the worker thread while cargo builds the second.
    out = tmp_path / "out"
    manifest = overlap_crate(tmp_path / "crate", "overlapbad", WRONG_HOST_MACHINE)
    options = BuildOptions(manifest_path=manifest, targets=TARGETS, profile="fast", out_dir=out, keep_going=True)
    report = build(options, load_settings(tmp_path / "crate"))
    assert [(r.triple, r.ok) for r in report.results] == [(HOST, False), (ARM, True)]
    assert "breaks rule 'machine'" in (report.results[0].entry.error or "")
    assert not (out / f"overlapbad-{HOST}.tar.xz").exists()
    assert (out / f"overlapbad-{ARM}.tar.xz").is_file()
    assert list(load_record(out).targets) == [ARM]
    stderr = capsys.readouterr().err
    assert transitions(stderr, HOST) == ["queued", "building", "verifying", "failed"]
    assert transitions(stderr, ARM) == ["queued", "building", "verifying", "packaging", "done"]
    assert f"error: {HOST}: " in stderr


def test_without_keep_going_a_failed_verify_stops_the_targets_after_it(tmp_path: Path, shared_target_dir: Path) -> None:
    out = tmp_path / "out"
    manifest = overlap_crate(tmp_path / "crate", "overlapbad", WRONG_HOST_MACHINE)
    options = BuildOptions(manifest_path=manifest, targets=TARGETS, profile="fast", out_dir=out)
    with pytest.raises(VerificationError, match=r"breaks rule 'machine'"):
        build(options, load_settings(tmp_path / "crate"))
    assert not list(out.glob("*.tar.xz")) if out.exists() else True
    assert not (out / "build-record.json").exists()


def test_ctrl_c_while_cargo_builds_the_second_target_exits_130(tmp_path: Path, shared_target_dir: Path) -> None:
    out = tmp_path / "out"
    manifest = overlap_crate(tmp_path / "crate", "overlapped")
    env = {
        **os.environ,
        "CI": "true",
        "OVERLAP_WAIT_TARGET": ARM,
        "OVERLAP_WAIT_FOR": str(tmp_path / "never"),
        "CARGO_TARGET_DIR": str(shared_target_dir),
    }
    argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), "build", "--manifest-path", str(manifest)]
    argv += ["--target", ",".join(TARGETS), "--profile", "fast", "--out-dir", str(out)]
    # A terminal's Ctrl-C reaches the whole process group: the toolkit, cargo and the build script.
    child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stderr is not None
    seen = []
    for line in child.stderr:
        seen.append(line)
        if f"[2/2] {ARM}: building" in line:
            break
    # The first target's archive appears while cargo's run for the second waits in its build script.
    archive = out / f"overlapped-{HOST}.tar.xz"
    for _ in range(1200):
        if archive.with_name(archive.name + ".sha256").exists() or child.poll() is not None:
            break
        time.sleep(0.1)
    os.killpg(child.pid, signal.SIGINT)
    rest = child.stderr.read()
    assert child.wait(timeout=120) == 130, "".join(seen) + rest
    assert "error: interrupted" in rest
    assert "Traceback" not in rest
    assert not (out / "build-record.json").exists()
    assert sorted(p.name for p in out.iterdir()) == [".stamps", archive.name, f"{archive.name}.sha256"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in archive.with_name(f"{archive.name}.sha256").read_text()


NOOP_SCRIPT = """
import sys
from pathlib import Path
from toolchain.pipeline import targets as pipeline
from toolchain.pipeline.targets import BuildOptions, BuiltBinary, Plan, build
build(BuildOptions(manifest_path=Path(sys.argv[1]), out_dir=Path(sys.argv[2])))
print("lief" in sys.modules)
"""


def test_lief_is_imported_while_cargo_compiles_and_never_for_a_noop_rebuild(
    tmp_path: Path, shared_target_dir: Path
) -> None:
    manifest = make_crate(tmp_path / "crate", "noopwarm")
    main_rs = tmp_path / "crate" / "src" / "main.rs"
    main_rs.write_text(f'fn main() {{ println!("{tmp_path.name}"); }}\n')
    # Older than the first build: cargo takes a source as new as its build for changed since.
    past = time.time() - 60
    for path in (manifest, main_rs):
        os.utime(path, (past, past))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CARGO_TARGET_DIR": str(shared_target_dir)}
    argv = [sys.executable, "-c", NOOP_SCRIPT, str(manifest), str(tmp_path / "out")]
    fresh = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr
    assert "Compiling noopwarm" in fresh.stderr and fresh.stdout.strip() == "True"
    again = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "Compiling" not in again.stderr and again.stdout.strip() == "False"


def logging_shim(folder: Path, tool: str, log: Path) -> None:
    """`tool` on PATH as a script that notes its arguments, then runs the real one."""
    real = shutil.which(tool)
    assert real, f"{tool} is not installed"
    folder.mkdir(exist_ok=True)
    shim = folder / tool
    shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)


def test_what_every_target_shares_is_asked_once_per_build(
    tmp_path: Path, shared_target_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The archives' timestamp and the source's state (git calls) and cargo's version are
    # the same for every target and for the release folder: one call each per
    # `invoke build`, not one per target or per step.
    calls = tmp_path / "calls.log"
    shims = tmp_path / "shims"
    for tool in ("git", "cargo"):
        logging_shim(shims, tool, calls)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv("CARGO", raising=False)
    crate = tmp_path / "crate"
    manifest = overlap_crate(crate, "overlapshared")
    subprocess.run(["git", "init", "-q", str(crate)], check=True)
    subprocess.run(["git", "-C", str(crate), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(crate), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], check=True
    )
    calls.unlink()
    done = run_invoke(
        "build", "--manifest-path", str(manifest), "--target", ",".join(TARGETS), "--profile", "fast",
        "--out-dir", str(tmp_path / "out"), "--json", cwd=crate,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["targets"]) == 2
    lines = calls.read_text().splitlines()
    for asked in (
        f"git -C {crate} log -1 --format=%ct",
        f"git -C {crate} rev-parse HEAD",
        f"git -C {crate} status --porcelain --untracked-files=no",
        f"git -C {crate} config --get remote.origin.url",
        "cargo --version",
    ):
        assert lines.count(asked) == 1, (asked, lines)
    # Each target records the cargo that ran it: the build's, or the distro cargo that a
    # distro rustc route runs (asked once per build too, outside the shimmed PATH).
    versions = {t["toolchain"]["route"]: t["toolchain"]["cargo"] for t in report["targets"]}
    build_cargo = subprocess.run(["cargo", "--version"], capture_output=True, text=True).stdout.strip()
    for route, version in versions.items():
        driven_by_distro = route in ("distro", "build-std") and routes.DISTRO_CARGO.is_file()
        expected = subprocess.run([str(routes.DISTRO_CARGO), "--version"], capture_output=True, text=True).stdout
        assert version == (expected.strip() if driven_by_distro else build_cargo), (route, version)
    provenance = json.loads((tmp_path / "out" / "provenance.intoto.json").read_text())
    head = subprocess.run(["git", "-C", str(crate), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert json.dumps(provenance).count(head.strip()) >= 1
