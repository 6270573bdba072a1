"""What each runner would run: the argument lists and environment.

The cross runner is checked here by the command it builds and by its
refusals, and built for real (a local image, the docker engine) in
test_cross_runner.py; zig and native are also built for real in
test_cross_targets.py."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

import pytest
from conftest import on_ci

from toolchain.compile.cargo import load_project, select
from toolchain.compile.routes import VENDORED_STD_SOURCES, ProjectSources, Route, build_std_route
from toolchain.compile.runners import RUNNERS, BuildJob, choose_runner
from toolchain.compile.runners.container import ContainerRunner
from toolchain.compile.runners.cross import CrossRunner, image_variable
from toolchain.compile.runners.native import NativeRunner
from toolchain.compile.runners.zig import ZigRunner, zig_program
from toolchain.compile.vendor import merge_sources, project_sources
from toolchain.config.catalog import load_catalog
from toolchain.config.settings import load_settings
from toolchain.errors import ProjectError

TARGETS = load_catalog()
HOST_TRIPLE = "x86_64-unknown-linux-gnu"


def job_for(triple: str, route: Route | None = None) -> BuildJob:
    project = load_project(load_settings().manifest())
    return BuildJob(
        project, tuple(select(project, None, [])), load_catalog().target(triple), load_catalog().profile("dist"), True,
        route or Route("distro", "/usr/bin/rustc", {"RUSTC": "/usr/bin/rustc"}), load_settings(),
    )  # fmt: skip


def test_zig_pins_glibc_and_macos_minimum() -> None:
    linux = ZigRunner().invocation(job_for("aarch64-unknown-linux-gnu"))
    assert Path(linux.argv[0]).name == "cargo-zigbuild" and linux.argv[1] == "zigbuild"
    assert linux.argv[linux.argv.index("--target") + 1] == "aarch64-unknown-linux-gnu.2.17"
    assert linux.env == {
        "RUSTC": "/usr/bin/rustc",
        "CARGO_ZIGBUILD_ZIG_COMMAND": zig_program(),
        "PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu": "",  # zig's sysroot, not the machine's libraries
    }
    # Inside a container the image's own zig is found, not this host's.
    assert "CARGO_ZIGBUILD_ZIG_COMMAND" not in ContainerRunner().environment(job_for(HOST_TRIPLE))
    mac = ZigRunner().invocation(job_for("x86_64-apple-darwin"))
    assert mac.argv[mac.argv.index("--target") + 1] == "x86_64-apple-darwin"
    assert mac.env["MACOSX_DEPLOYMENT_TARGET"] == "10.12"


def test_zig_keeps_a_pkg_config_search_path_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PKG_CONFIG_SYSROOT_DIR", "TARGET_PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR_aarch64-unknown-linux-gnu"):
        with monkeypatch.context() as patch:
            patch.setenv(name, "/sysroots/aarch64")
            env = ZigRunner().invocation(job_for("aarch64-unknown-linux-gnu")).env
            assert not [k for k in env if k.startswith("PKG_CONFIG")], name


def test_zig_runs_cargo_zigbuild_beside_this_python_rather_than_through_pyenvs_shim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = Path(sysconfig.get_path("scripts")) / "cargo-zigbuild"
    if not os.access(beside, os.X_OK):
        assert not on_ci(), f"setup installs cargo-zigbuild into this Python: {beside} is missing"
        pytest.skip("cargo-zigbuild is not installed beside this Python")
    shims = tmp_path / "pyenv" / "shims"
    other = tmp_path / "bin"
    for folder in (shims, other):
        folder.mkdir(parents=True)
        (folder / "cargo-zigbuild").write_text("#!/bin/sh\nexit 1\n")
        (folder / "cargo-zigbuild").chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    assert ZigRunner().invocation(job_for(HOST_TRIPLE)).argv[0] == str(beside)
    # Inside a container the image's own, by name.
    assert ContainerRunner().inner_invocation(job_for(HOST_TRIPLE)).argv[0] == "cargo-zigbuild"
    # Another cargo-zigbuild first on PATH is the user's choice: found by name, as cargo would.
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{shims}{os.pathsep}{os.environ['PATH']}")
    assert ZigRunner().invocation(job_for(HOST_TRIPLE)).argv[0] == "cargo-zigbuild"


def test_native_adds_the_cross_linker_only_for_foreign_targets() -> None:
    foreign = NativeRunner().invocation(job_for("aarch64-unknown-linux-gnu"))
    assert 'target.aarch64-unknown-linux-gnu.linker="aarch64-linux-gnu-gcc"' in foreign.argv
    host = NativeRunner().invocation(job_for("x86_64-unknown-linux-gnu"))
    assert not any(a.startswith("target.") for a in host.argv)


def test_windows_gnu_links_mingws_cxx_runtime_into_the_exe_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cc-rs links C++ sources with -lstdc++, a DLL no Windows has (libstdc++-6.dll); the
    target's build-env asks cc-rs for the static library instead (tests/test_corpus.py runs
    corpus-cpp under wine). A CXXSTDLIB the user set, in any spelling cc-rs reads, is kept."""
    env = NativeRunner().invocation(job_for("x86_64-pc-windows-gnu")).env
    assert env["CXXSTDLIB_x86_64_pc_windows_gnu"] == "static:-bundle=stdc++"
    assert not [k for k in NativeRunner().invocation(job_for("aarch64-unknown-linux-gnu")).env if "CXXSTDLIB" in k]
    for name in ("CXXSTDLIB", "TARGET_CXXSTDLIB", "CXXSTDLIB_x86_64-pc-windows-gnu", "CXXSTDLIB_x86_64_pc_windows_gnu"):
        with monkeypatch.context() as patch:
            patch.setenv(name, "c++")
            assert not [k for k in NativeRunner().invocation(job_for("x86_64-pc-windows-gnu")).env if "CXX" in k]


def test_the_distros_rustc_is_driven_by_the_distros_cargo() -> None:
    """What cargo hands rustc changes between releases: with ouch 0.8.3's rust-toolchain.toml
    (1.93.0), rustup's cargo 1.93 passed -Zremap-path-scope to Debian's rustc 1.96, which no
    longer knows it ("unknown unstable option"), on the build-std route for windows-gnu."""
    from toolchain.compile.routes import DISTRO_CARGO, DISTRO_RUSTC, candidate_routes

    if not (DISTRO_RUSTC.is_file() and DISTRO_CARGO.is_file()):
        assert not on_ci(), "setup installs rustc-web and cargo-web"
        pytest.skip("no distribution Rust here")
    windows = load_catalog().target("x86_64-pc-windows-gnu")
    build_std = next(r for r in candidate_routes(windows) if r.name == "build-std")
    assert build_std.env["CARGO"] == str(DISTRO_CARGO)
    assert NativeRunner().invocation(job_for(windows.triple, build_std)).argv[0] == str(DISTRO_CARGO)
    mac = load_catalog().target("x86_64-apple-darwin")
    mac_route = next(r for r in candidate_routes(mac) if r.name == "build-std")
    # cargo-zigbuild runs the CARGO it is given
    assert ZigRunner().invocation(job_for(mac.triple, mac_route)).env["CARGO"] == str(DISTRO_CARGO)
    from toolchain import proc
    from toolchain.compile.target import toolchain_versions

    # the build record names the cargo that ran
    assert toolchain_versions(build_std)["cargo"] == proc.output([str(DISTRO_CARGO), "--version"])


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
    assert "no macOS images" in (cross.problem(TARGETS.target("aarch64-apple-darwin"), "linux-x86_64") or "")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "cargo install cross" in (cross.problem(TARGETS.target("aarch64-unknown-linux-gnu"), "linux-x86_64") or "")


def test_cross_image_route_keeps_cross_away_from_rustup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "toolchain.toml"
    config.write_text('[cross.images]\n"aarch64-unknown-linux-gnu" = "local/cross:aarch64-unknown-linux-gnu"\n')
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(config))
    job = job_for("aarch64-unknown-linux-gnu", Route("cross-image", "/usr/bin/rustc"))
    invocation = CrossRunner().invocation(job)
    argv = list(invocation.argv)
    # cross mounts the workspace at /project: the manifest path is relative.
    assert not Path(argv[argv.index("--manifest-path") + 1]).is_absolute()
    assert argv[argv.index("--target-dir") + 1] == str(job.project.target_directory / "cross")
    env = invocation.env
    assert env["CROSS_CUSTOM_TOOLCHAIN"] == "1" and env["RUSTC"] == "/usr/bin/rustc"
    assert env["RUSTUP_HOME"] == str(job.project.target_directory / "cross-host" / "rustup")
    assert env["RUSTUP_TOOLCHAIN"] == ""
    assert env["PATH"].startswith(str(job.project.target_directory / "cross-host" / "bin"))


def test_auto_choice_follows_the_target_data_per_host() -> None:
    assert choose_runner("auto", TARGETS.target("aarch64-unknown-linux-gnu"), "linux-x86_64").runner.name == "zig"
    assert choose_runner("auto", TARGETS.target("x86_64-unknown-linux-gnu"), "linux-x86_64").runner.name == "zig"
    assert choose_runner("auto", TARGETS.target("x86_64-pc-windows-gnu"), "linux-x86_64").runner.name == "native"
    choice = choose_runner("auto", TARGETS.target("x86_64-apple-darwin"), "linux-x86_64")
    assert choice.runner.name == "zig" and "linux-x86_64" in choice.reason


def test_missing_zig_falls_through_to_the_next_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    # With no cargo-zigbuild on PATH, aarch64 falls back to native + GNU linker.
    monkeypatch.setenv("PATH", "/usr/bin:/bin:" + str(Path.home() / ".cargo" / "bin"))
    choice = choose_runner("auto", TARGETS.target("aarch64-unknown-linux-gnu"), "linux-x86_64")
    assert choice.runner.name == "native"


def _vendored_crate(root: Path, name: str, version: str, digest: str) -> Path:
    folder = root / f"{name}-{version}"
    folder.mkdir(parents=True)
    (folder / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "{version}"\n')
    (folder / ".cargo-checksum.json").write_text(json.dumps({"files": {}, "package": digest}))
    return folder


ENV = {"RUSTC": "/usr/bin/rustc", "RUSTC_BOOTSTRAP": "1"}


def test_build_std_route_without_registry_crates_uses_std_vendored_crates() -> None:
    route = build_std_route(ENV, ProjectSources())
    assert route.cargo_args[0] == "-Zbuild-std=std,panic_abort"
    assert 'source.crates-io.replace-with="vendored-std"' in route.cargo_args
    assert route.merge is None


def test_build_std_route_with_registry_crates_online_resolves_from_the_registry() -> None:
    route = build_std_route(ENV, ProjectSources(registry_dependencies=("serde",)))
    assert route.cargo_args == ("-Zbuild-std=std,panic_abort",)
    assert "registry" in route.detail


def test_build_std_route_for_a_vendored_project_merges_both_sources(tmp_path: Path) -> None:
    sources = ProjectSources(("serde",), vendor_dir=tmp_path / "vendor", offline=True, merge_dir=tmp_path / "m")
    route = build_std_route(ENV, sources)
    assert route.merge == (VENDORED_STD_SOURCES, tmp_path / "vendor", tmp_path / "m")
    assert f'source.toolchain-merged.directory="{tmp_path / "m"}"' in route.cargo_args


def test_project_sources_reads_cargo_vendor_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    (tmp_path / "app" / ".cargo").mkdir(parents=True)
    (tmp_path / "app" / ".cargo" / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n'
    )
    sources = project_sources(tmp_path / "app", ("serde",), tmp_path / "app" / "target")
    assert sources.vendor_dir == tmp_path / "app" / "vendor"
    assert sources.offline
    monkeypatch.delenv("CARGO_NET_OFFLINE")
    assert not project_sources(tmp_path / "app", ("serde",), tmp_path / "t").offline


def test_merged_source_links_both_and_keeps_identical_duplicates_once(tmp_path: Path) -> None:
    std, app = tmp_path / "std", tmp_path / "app"
    _vendored_crate(std, "cfg-if", "1.0.0", "aa")
    _vendored_crate(std, "libc", "0.2.1", "bb")
    _vendored_crate(app, "libc", "0.2.1", "bb")  # the same release: kept once
    _vendored_crate(app, "serde", "1.0.0", "cc")
    assert merge_sources(std, app, tmp_path / "merged") == 3
    linked = sorted(p.name for p in (tmp_path / "merged").iterdir())
    assert linked == ["app-serde-1.0.0", "std-cfg-if-1.0.0", "std-libc-0.2.1"]
    assert all((tmp_path / "merged" / name).is_symlink() for name in linked)


def test_merged_source_conflict_names_both_folders_and_exits_4(tmp_path: Path) -> None:
    std, app = tmp_path / "std", tmp_path / "app"
    first = _vendored_crate(std, "libc", "0.2.1", "bb")
    second = _vendored_crate(app, "libc", "0.2.1", "patched")
    with pytest.raises(ProjectError) as caught:
        merge_sources(std, app, tmp_path / "merged")
    assert caught.value.exit_code == 4
    assert str(first) in str(caught.value) and str(second) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "merged").exists()


def test_every_cargo_command_of_a_build_resolves_the_same_crate_graph(tmp_path: Path) -> None:
    """The compile and the SDK scan's cargo metadata pass the same features, and --locked only
    where a committed lock file exists (compile.cargo.resolution_args)."""
    from conftest import make_crate

    from toolchain import REPO_ROOT
    from toolchain.compile.cargo import resolution_args

    demo = load_project(REPO_ROOT / "demo" / "Cargo.toml")
    assert resolution_args(demo, ("a", "b"), True, True, True) == [
        "--features", "a,b", "--all-features", "--no-default-features", "--locked",
    ]  # fmt: skip
    assert resolution_args(demo, (), False, False, False) == []
    unlocked = load_project(make_crate(tmp_path / "unlocked", "unlocked"))
    assert not unlocked.lockfile.is_file()
    assert resolution_args(unlocked, (), False, False, True) == []
