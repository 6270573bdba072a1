"""All five release targets (plus windows-gnu and universal2) from this Linux
host, for real: zig, mingw and build-std, checked with LIEF, and run under
qemu and wine where they can run. Slow: std is built from source for three
targets (cached in the demo's target dir for the rest of the run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_invoke

from toolchain.config.catalog import load_catalog
from toolchain.config.settings import load_settings
from toolchain.errors import MissingToolError, UsageError
from toolchain.pipeline.targets import BuildOptions, BuildReport, TargetResult, build
from toolchain.verify.smoke import smoke_binary

pytestmark = pytest.mark.slow

ALL_ON_LINUX = {
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-gnu",  # stands in for windows-msvc on a Linux host
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> BuildReport:
    # The fast profile: nothing here measures size (std from source is shared with the corpus tests).
    return build(BuildOptions(all_targets=True, profile="fast", out_dir=tmp_path_factory.mktemp("matrix")))


def result_for(report: BuildReport, triple: str) -> TargetResult:
    return next(r for r in report.results if r.triple == triple)


def test_all_builds_every_target_this_host_can_build(matrix: BuildReport) -> None:
    assert {r.triple for r in matrix.results} == ALL_ON_LINUX
    assert matrix.ok
    for result in matrix.results:
        (binary,) = result.binaries
        target = load_catalog().target(result.triple)
        assert binary.info.format == target.binary.format
        assert binary.info.machine == target.binary.machine
        assert binary.info.stripped, f"{result.triple}: {binary.info.leftover_symbols}"
        assert not [v for v in binary.verdicts if v.blocking], binary.verdicts
        (artifact,) = result.artifacts
        assert artifact.path.name == f"tally-{result.triple}.{target.archive.format}"


def test_runner_and_route_per_target(matrix: BuildReport) -> None:
    chosen = {r.triple: (r.entry.runner, r.entry.route) for r in matrix.results}
    assert chosen["x86_64-unknown-linux-gnu"] == ("zig", "rustup")
    assert chosen["aarch64-unknown-linux-gnu"] == ("zig", "distro")
    assert chosen["x86_64-apple-darwin"] == ("zig", "build-std")
    assert chosen["aarch64-apple-darwin"] == ("zig", "build-std")
    assert chosen["x86_64-pc-windows-gnu"] == ("native", "build-std")
    record = json.loads((matrix.out_dir / "build-record.json").read_text())
    for triple, (runner, route) in chosen.items():
        entry = record["targets"][triple]
        assert (entry["runner"], entry["toolchain"]["route"]) == (runner, route)
        assert entry["toolchain"]["rustc"].startswith("rustc ")


def test_aarch64_linux_keeps_the_glibc_floor(matrix: BuildReport) -> None:
    info = result_for(matrix, "aarch64-unknown-linux-gnu").binaries[0].info
    assert info.glibc_required is not None
    assert tuple(map(int, info.glibc_required.split("."))) <= (2, 17)


@pytest.mark.parametrize("triple", ["x86_64-apple-darwin", "aarch64-apple-darwin"])
def test_macos_minimum_comes_from_the_target_file(matrix: BuildReport, triple: str) -> None:
    info = result_for(matrix, triple).binaries[0].info
    assert info.macos_min == load_catalog().target(triple).compat.macos


def test_arm64_macos_binary_is_signed(matrix: BuildReport) -> None:
    assert result_for(matrix, "aarch64-apple-darwin").binaries[0].info.code_signature


def test_windows_binary_is_a_console_pe(matrix: BuildReport) -> None:
    info = result_for(matrix, "x86_64-pc-windows-gnu").binaries[0].info
    assert info.subsystem == "windows_cui"


@pytest.mark.parametrize(
    ("triple", "how"),
    [("x86_64-unknown-linux-gnu", "native"), ("aarch64-unknown-linux-gnu", "qemu"), ("x86_64-pc-windows-gnu", "wine")],
)
def test_smoke_runs_where_it_can(matrix: BuildReport, triple: str, how: str) -> None:
    binary = result_for(matrix, triple).binaries[0]
    result = smoke_binary(load_catalog().target(triple), binary.path, binary.version, load_settings().smoke.checks)
    assert result.how == how and result.ran
    assert [c.args for c in result.checks] == [("--version",), ("doctor",)]
    assert result.ok, result.checks
    assert "tally 0.1.0" in result.checks[0].output


def test_macos_binaries_are_not_run_here(matrix: BuildReport) -> None:
    binary = result_for(matrix, "aarch64-apple-darwin").binaries[0]
    result = smoke_binary(load_catalog().target("aarch64-apple-darwin"), binary.path, binary.version, [["doctor"]])
    assert not result.ran and result.checks == ()


def test_smoke_catches_a_wrong_version(matrix: BuildReport) -> None:
    binary = result_for(matrix, "aarch64-unknown-linux-gnu").binaries[0]
    result = smoke_binary(load_catalog().target("aarch64-unknown-linux-gnu"), binary.path, "9.9.9", [])
    assert not result.ok and result.checks[0].exit_code == 0


def test_universal2_joins_both_slices(matrix: BuildReport, tmp_path: Path) -> None:
    report = build(BuildOptions(targets=("universal2-apple-darwin",), profile="fast", out_dir=tmp_path))
    (result,) = report.results
    info = result.binaries[0].info
    assert info.format == "macho" and sorted(info.architectures) == ["aarch64", "x86_64"]
    assert not [v for v in result.binaries[0].verdicts if v.blocking]
    # Each slice is byte-identical to the thin binary it came from.
    fat = result.binaries[0].path.read_bytes()
    for triple in ("x86_64-apple-darwin", "aarch64-apple-darwin"):
        thin = result_for(matrix, triple).binaries[0].path.read_bytes()
        assert thin in fat


def test_std_is_not_rebuilt_when_only_the_app_changes(matrix: BuildReport, tmp_path: Path) -> None:
    main_rs = load_settings().manifest().parent / "src" / "main.rs"
    main_rs.touch()
    result = run_invoke(
        "build", "--target", "x86_64-apple-darwin", "--profile", "fast", "--out-dir", str(tmp_path),
        env={"CARGO_TARGET_DIR": os.environ["CARGO_TARGET_DIR"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Compiling tally" in result.stderr
    assert "Compiling std" not in result.stderr and "Compiling core" not in result.stderr


def test_keep_going_reports_every_target(tmp_path: Path) -> None:
    result = run_invoke(
        "build", "--target", "x86_64-pc-windows-msvc,x86_64-unknown-linux-gnu", "--keep-going",
        "--out-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.returncode == 1
    document = json.loads(result.stdout)
    verdicts = {t["target"]: t["ok"] for t in document["targets"]}
    assert verdicts == {"x86_64-pc-windows-msvc": False, "x86_64-unknown-linux-gnu": True}
    msvc = next(t for t in document["targets"] if t["target"] == "x86_64-pc-windows-msvc")
    assert "x86_64-pc-windows-gnu" in msvc["error"]
    assert (tmp_path / "tally-x86_64-unknown-linux-gnu.tar.xz").is_file()


def test_without_keep_going_the_first_failure_stops() -> None:
    result = run_invoke("build", "--target", "x86_64-pc-windows-msvc,x86_64-unknown-linux-gnu")
    assert result.returncode == 2
    assert "build it on a Windows host" in result.stderr and "x86_64-pc-windows-gnu" in result.stderr


def test_a_runner_that_cannot_do_the_target_says_why(tmp_path: Path) -> None:
    options = BuildOptions(targets=("x86_64-pc-windows-gnu",), runner="zig", out_dir=tmp_path)
    with pytest.raises(MissingToolError, match="zig cannot link Windows targets here"):
        build(options)
    with pytest.raises(MissingToolError, match="cross has no macOS images"):
        build(BuildOptions(targets=("x86_64-apple-darwin",), runner="cross", out_dir=tmp_path))
    with pytest.raises(UsageError, match="unknown runner 'zgi'; did you mean 'zig'"):
        build(BuildOptions(runner="zgi", out_dir=tmp_path))


def test_toolchain_install_reports_the_route() -> None:
    result = run_invoke("toolchain.install", "--target", "aarch64-unknown-linux-gnu,x86_64-apple-darwin", "--json")
    assert result.returncode == 0, result.stderr
    routes = {d["target"]: (d["route"], d["action"]) for d in json.loads(result.stdout)}
    assert routes == {
        "aarch64-unknown-linux-gnu": ("distro", "already present"),
        "x86_64-apple-darwin": ("build-std", "already present"),
    }


def test_build_log_names_runner_route_and_reason(tmp_path: Path) -> None:
    result = run_invoke("build", "--target", "aarch64-unknown-linux-gnu", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "runner: zig (first usable of zig, native, cross for a linux-x86_64 host)" in result.stderr
    assert "toolchain route: distro" in result.stderr
    assert "--target aarch64-unknown-linux-gnu.2.17" in result.stderr
