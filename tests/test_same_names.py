"""Two packages of one workspace with binaries of the same name: cargo writes both
to one file (and only warns), so the build is refused before cargo, and
independently every archive's executables are checked against what cargo
reported before anything is written."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from conftest import run_invoke

from toolchain.compile.cargo import Package, Selection
from toolchain.compile.runners.base import parse_executables
from toolchain.config.catalog import load_catalog
from toolchain.errors import BuildError, PackagingError
from toolchain.pipeline.targets import check_members
from toolchain.release.package import ArchiveEntry

LINUX = "x86_64-unknown-linux-gnu"


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["a", "b"]\nresolver = "2"\n')
    for name in ("a", "b"):
        (root / name / "src").mkdir(parents=True)
        (root / name / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[[bin]]\nname = "tool"\npath = "src/main.rs"\n'
        )
        (root / name / "src" / "main.rs").write_text(f'fn main() {{ println!("tool of {name}"); }}\n')
    return root / "Cargo.toml"


def test_same_named_binaries_are_refused_before_cargo(tmp_path: Path) -> None:
    manifest = _workspace(tmp_path / "ws")
    result = run_invoke(
        "build", "--manifest-path", str(manifest), "--target", LINUX, "--out-dir", str(tmp_path / "dist"), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "packages a and b both have a binary named 'tool'" in line
    assert "--package a" in line and "--package b" in line
    assert "Compiling" not in result.stderr
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


@pytest.mark.slow
def test_one_package_of_them_builds_its_own_binary(tmp_path: Path) -> None:
    manifest = _workspace(tmp_path / "ws")
    result = run_invoke(
        "build", "--manifest-path", str(manifest), "--target", LINUX, "--profile", "fast",
        "--package", "b", "--out-dir", str(tmp_path / "dist"), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    (target,) = report["targets"]
    (artifact,) = target["artifacts"]
    with tarfile.open(artifact["path"]) as archive:
        members = [m.name for m in archive.getmembers() if m.isfile()]
    assert [m for m in members if m.endswith("/tool")], members


def _cargo_artifact(package_id: str, name: str, path: str) -> str:
    return json.dumps(
        {
            "reason": "compiler-artifact",
            "package_id": package_id,
            "target": {"name": name, "kind": ["bin"]},
            "executable": path,
        }
    )


def test_cargo_reporting_one_binary_name_for_two_packages_is_an_error() -> None:
    out = "\n".join(
        [
            _cargo_artifact("path+file:///ws/a#0.1.0", "tool", "/t/tool"),
            _cargo_artifact("path+file:///ws/b#0.1.0", "tool", "/t/tool"),
        ]
    )
    with pytest.raises(BuildError, match="two binaries named 'tool'"):
        parse_executables(out)
    # One package reported twice (a rebuild's message) is fine.
    assert parse_executables("\n".join([_cargo_artifact("p#1", "tool", "/t/tool")] * 2)) == {"tool": Path("/t/tool")}


def test_an_archive_missing_its_binary_or_holding_another_is_refused(tmp_path: Path) -> None:
    target = load_catalog().target(LINUX)
    package = Package("a", "0.1.0", tmp_path / "a" / "Cargo.toml", ("tool",), (), None)
    selection = Selection(package, ("tool",))
    binary = ArchiveEntry("tool", tmp_path / "tool", executable=True)
    readme = ArchiveEntry("README.md", tmp_path / "README.md", executable=False)
    check_members(selection, [binary, readme], target, "a.tar.xz")  # as cargo reported: fine
    with pytest.raises(PackagingError, match="a.tar.xz would hold no binary, but cargo built tool for a"):
        check_members(selection, [readme], target, "a.tar.xz")
    other = ArchiveEntry("other", tmp_path / "other", executable=True)
    with pytest.raises(PackagingError, match="would hold other, tool"):
        check_members(selection, [binary, other], target, "a.tar.xz")
