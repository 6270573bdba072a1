"""A crate graph that needs a newer rustc stops before std is built from source.

On a build-std route (windows-gnu and macOS here) std is compiled before cargo
reaches the point where it checks `rust-version`: hyperfine 2.0.0's graph failed
after 107 s of std on windows-gnu. The check reads the graph cargo would build."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain.compile.cargo import load_project, select
from toolchain.compile.rust_version import too_new, version_numbers
from toolchain.config.settings import load_settings

WINDOWS = "x86_64-pc-windows-gnu"


def _library(root: Path, name: str, rust_version: str) -> None:
    (root / "src").mkdir(parents=True)
    (root / "src" / "lib.rs").write_text("pub fn answer() -> u32 { 42 }\n")
    (root / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "0.2.0"\nedition = "2021"\nrust-version = "{rust_version}"\n'
    )


def _app(tmp_path: Path) -> Path:
    """app -> middle -> newer (rust-version 1.250); a build-dependency and a dev-dependency
    that need newer still."""
    _library(tmp_path / "newer", "newer", "1.250")
    _library(tmp_path / "builder", "builder", "1.251")
    _library(tmp_path / "tester", "tester", "1.999")
    _library(tmp_path / "middle", "middle", "1.60")
    with (tmp_path / "middle" / "Cargo.toml").open("a") as middle:
        middle.write('\n[dependencies]\nnewer = { path = "../newer" }\n')
    deps = 'middle = { path = "../middle" }\n\n[build-dependencies]\nbuilder = { path = "../builder" }\n'
    deps += '\n[dev-dependencies]\ntester = { path = "../tester" }\n'
    manifest = make_crate(tmp_path / "app", "app", manifest_extra=deps)
    (tmp_path / "app" / "build.rs").write_text("fn main() {}\n")
    return manifest


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("1.95", (1, 95, 0)),
        ("1.95.1", (1, 95, 1)),
        ("1", (1, 0, 0)),
        ("rustc 1.96.0-nightly (abc 2026-05-01)", (1, 96, 0)),
        ("rustc 1.95.0 (59807616e 2026-04-14)", (1, 95, 0)),
        ("not a version", None),
    ],
)
def test_versions_compare_as_cargo_does(text: str, numbers: tuple[int, int, int] | None) -> None:
    assert version_numbers(text) == numbers


def test_the_graph_cargo_builds_is_read_dev_dependencies_are_not(tmp_path: Path) -> None:
    manifest = _app(tmp_path)
    settings = load_settings(manifest.parent)
    project = load_project(manifest)
    target = settings.catalog.target(WINDOWS)
    found = too_new(target, project, select(project, None, []), settings, "rustc 1.95.0 (x 2026-04-14)")
    assert [(t.chain, t.rust_version) for t in found] == [
        (("app", "builder"), "1.251"),
        (("app", "middle", "newer"), "1.250"),
    ]
    assert too_new(target, project, select(project, None, []), settings, "rustc 1.999.0") == []


@pytest.mark.slow
def test_a_build_std_target_stops_in_seconds_naming_the_package(tmp_path: Path) -> None:
    manifest = _app(tmp_path)
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--target", WINDOWS, "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent, env=env)
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "app -> middle -> newer 0.2.0 needs rustc 1.250" in line, line
    assert "app -> builder 0.2.0 needs rustc 1.251" in line, line
    assert "tester" not in line
    assert "cargo update builder@0.2.0 --precise OLDER" in line, line
    assert "Compiling" not in result.stderr
    assert not (tmp_path / "target" / WINDOWS).exists()


def test_a_members_own_rust_version_is_named_without_a_cargo_update_hint(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "app", "app")
    manifest.write_text(manifest.read_text().replace('edition = "2021"', 'edition = "2021"\nrust-version = "1.300"'))
    result = run_invoke("build", "--target", WINDOWS, "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent)
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "older than the crate graph needs: app 0.3.1 needs rustc 1.300" in line, line
    assert "cargo update" not in line


def test_on_a_route_that_leaves_it_to_cargo_its_refusal_is_one_line_and_exit_5(tmp_path: Path) -> None:
    """The host's route has no std to build first, so cargo's own rust-version check runs (in
    about a second); its refusal lists the packages on the lines after `error:`, which the
    one-line summary used to cut off (hyperfine 2.0.0 on x86_64 and aarch64 Linux, exit 6)."""
    manifest = _app(tmp_path)
    # the member needs a newer rustc too: cargo lists it once for its build script, once for its binary
    manifest.write_text(manifest.read_text().replace('edition = "2021"', 'edition = "2021"\nrust-version = "1.300"'))
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent, env=env)
    assert result.returncode == 5, result.stderr[-2000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")][-1]  # cargo's own comes first
    assert "older than the crate graph needs" in line, line
    assert "newer 0.2.0 needs rustc 1.250" in line, line
    assert "builder 0.2.0 needs rustc 1.251" in line, line
    assert "cargo update NAME@VERSION --precise OLDER" in line, line
    assert line.count("app 0.3.1 needs rustc 1.300") == 1, line  # cargo lists a package once per unit
