"""What each runner would run: the argument lists and environment.

The cross CLI cannot be installed here (it comes from crates.io and pulls
images from a registry), so the cross runner is checked by the command it
builds and by its refusals; zig and native are also built for real in
test_cross_targets.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.cargo import load_project, select
from toolchain.profiles import get_profile
from toolchain.routes import Route
from toolchain.runners import RUNNERS, BuildJob, choose_runner
from toolchain.runners.cross import CrossRunner, image_variable
from toolchain.runners.native import NativeRunner
from toolchain.runners.zig import ZigRunner
from toolchain.settings import load_settings
from toolchain.targets import get_target


def job_for(triple: str, route: Route | None = None) -> BuildJob:
    project = load_project(load_settings().manifest_path)
    return BuildJob(
        project, tuple(select(project, None, [])), get_target(triple), get_profile("dist"), True,
        route or Route("distro", "/usr/bin/rustc", {"RUSTC": "/usr/bin/rustc"}),
    )  # fmt: skip


def test_zig_pins_glibc_and_macos_minimum() -> None:
    linux = ZigRunner().invocation(job_for("aarch64-unknown-linux-gnu"))
    assert linux.argv[:2] == ("cargo-zigbuild", "zigbuild")
    assert linux.argv[linux.argv.index("--target") + 1] == "aarch64-unknown-linux-gnu.2.17"
    assert linux.env == {"RUSTC": "/usr/bin/rustc"}
    mac = ZigRunner().invocation(job_for("x86_64-apple-darwin"))
    assert mac.argv[mac.argv.index("--target") + 1] == "x86_64-apple-darwin"
    assert mac.env["MACOSX_DEPLOYMENT_TARGET"] == "10.12"


def test_native_adds_the_cross_linker_only_for_foreign_targets() -> None:
    foreign = NativeRunner().invocation(job_for("aarch64-unknown-linux-gnu"))
    assert 'target.aarch64-unknown-linux-gnu.linker="aarch64-linux-gnu-gcc"' in foreign.argv
    host = NativeRunner().invocation(job_for("x86_64-unknown-linux-gnu"))
    assert not any(a.startswith("target.") for a in host.argv)


def test_build_std_route_arguments_reach_cargo() -> None:
    route = Route("build-std", "/usr/bin/rustc", {"RUSTC_BOOTSTRAP": "1"}, ("-Zbuild-std=std,panic_abort",))
    invocation = NativeRunner().invocation(job_for("x86_64-pc-windows-gnu", route))
    assert "-Zbuild-std=std,panic_abort" in invocation.argv
    assert invocation.env["RUSTC_BOOTSTRAP"] == "1"


def test_cross_passes_the_image_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "toolchain.toml"
    config.write_text('[cross.images]\n"aarch64-unknown-linux-gnu" = "registry.example/cross:aarch64"\n')
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(config))
    invocation = CrossRunner().invocation(job_for("aarch64-unknown-linux-gnu"))
    assert invocation.argv[:2] == ("cross", "build")
    assert invocation.env == {"CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE": "registry.example/cross:aarch64"}
    assert image_variable("x86_64-pc-windows-gnu") == "CROSS_TARGET_X86_64_PC_WINDOWS_GNU_IMAGE"


def test_cross_refusals_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    cross = RUNNERS["cross"]
    assert "no macOS images" in (cross.problem(get_target("aarch64-apple-darwin"), "linux-x86_64") or "")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "cargo install cross" in (cross.problem(get_target("aarch64-unknown-linux-gnu"), "linux-x86_64") or "")


def test_auto_choice_follows_the_target_data_per_host() -> None:
    assert choose_runner("auto", get_target("aarch64-unknown-linux-gnu"), "linux-x86_64").runner.name == "zig"
    assert choose_runner("auto", get_target("x86_64-unknown-linux-gnu"), "linux-x86_64").runner.name == "zig"
    assert choose_runner("auto", get_target("x86_64-pc-windows-gnu"), "linux-x86_64").runner.name == "native"
    choice = choose_runner("auto", get_target("x86_64-apple-darwin"), "linux-x86_64")
    assert choice.runner.name == "zig" and "linux-x86_64" in choice.reason


def test_missing_zig_falls_through_to_the_next_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    # With no cargo-zigbuild on PATH, aarch64 falls back to native + GNU linker.
    monkeypatch.setenv("PATH", "/usr/bin:/bin:" + str(Path.home() / ".cargo" / "bin"))
    choice = choose_runner("auto", get_target("aarch64-unknown-linux-gnu"), "linux-x86_64")
    assert choice.runner.name == "native"


def test_build_std_route_refuses_crates_with_registry_dependencies(tmp_path: Path) -> None:
    from conftest import make_crate

    from toolchain.build import BuildOptions, build
    from toolchain.errors import MissingToolError

    manifest = make_crate(tmp_path / "withdeps", "withdeps", manifest_extra='serde = "1"\n')
    with pytest.raises(MissingToolError, match=r"cannot fetch this project's dependencies \(serde\)"):
        build(BuildOptions(manifest_path=manifest, targets=("x86_64-apple-darwin",), out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
