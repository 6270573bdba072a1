"""A workspace's default build is what a plain `cargo build` in it builds.

cargo builds a workspace's `default-members`, or its root package when it has
one, or every member of a virtual workspace. The toolkit built every member
with a binary, so a repository with an `xtask` member (or a root package with
plugin members) released its developer tools beside the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import host_build, make_crate

from toolchain.compile.cargo import load_project, select

LINUX = "x86_64-unknown-linux-gnu"


def _member(root: Path, name: str, *, binary: bool = True) -> None:
    make_crate(root / name, name, main_rs='fn main() { println!("hi"); }\n' if binary else None, lib_rs="")


def _root_package_with_xtask(root: Path) -> Path:
    """app (the root package) + xtask (a member with a binary)."""
    manifest = make_crate(root, "app")
    manifest.write_text(manifest.read_text() + '\n[workspace]\nmembers = ["xtask"]\n')
    _member(root, "xtask")
    return manifest


def _virtual(root: Path, default_members: str) -> Path:
    root.mkdir(parents=True)
    for name, binary in (("cli", True), ("xtask", True), ("core", False)):
        _member(root, name, binary=binary)
    (root / "Cargo.toml").write_text(
        f'[workspace]\nmembers = ["cli", "xtask", "core"]\n{default_members}resolver = "2"\n'
    )
    return root / "Cargo.toml"


def _built(manifest: Path, package: str | None = None, binaries: tuple[str, ...] = ()) -> list[str]:
    return sorted(b for s in select(load_project(manifest), package, list(binaries)) for b in s.binaries)


@pytest.mark.parametrize(
    ("default_members", "built"),
    [
        ("", ["cli", "xtask"]),  # a virtual workspace: every member
        ('default-members = ["cli"]\n', ["cli"]),
        ('default-members = ["core"]\n', ["cli", "xtask"]),  # no binary among them: every member's
    ],
)
def test_a_virtual_workspace_builds_its_default_members(tmp_path: Path, default_members: str, built: list[str]) -> None:
    assert _built(_virtual(tmp_path / "ws", default_members)) == built


def test_a_root_package_is_built_without_its_members_unless_one_is_named(tmp_path: Path) -> None:
    manifest = _root_package_with_xtask(tmp_path / "app")
    assert _built(manifest) == ["app"]
    assert _built(manifest, package="xtask") == ["xtask"]
    assert _built(manifest, binaries=("xtask",)) == ["xtask"]  # --bin looks in every member


def test_a_members_own_cargo_toml_builds_that_member(tmp_path: Path) -> None:
    """As `cargo build --manifest-path ws/xtask/Cargo.toml` (or cargo in that folder) does:
    cargo metadata names that member as the default one."""
    manifest = _virtual(tmp_path / "ws", 'default-members = ["cli"]\n')
    assert _built(manifest.parent / "xtask" / "Cargo.toml") == ["xtask"]
    assert _built(manifest.parent / "cli" / "Cargo.toml") == ["cli"]
    root = _root_package_with_xtask(tmp_path / "app")
    assert _built(root.parent / "xtask" / "Cargo.toml") == ["xtask"]


@pytest.mark.slow
def test_the_release_holds_the_root_package_and_the_log_names_what_stayed_home(tmp_path: Path) -> None:
    log, binaries, archived = host_build(_root_package_with_xtask(tmp_path / "app"), tmp_path / "dist")
    assert "not built, not a default member of the workspace: xtask (--package NAME builds one)" in log
    assert binaries == ["app"]
    assert "app" in archived and "xtask" not in archived
