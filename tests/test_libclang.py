"""A crate graph that runs bindgen needs libclang on the build machine: without one the build
stops before cargo, naming the chain (ouch 0.8.3 -> libbzip3-sys -> bindgen failed after 151 s
with the build script's panic). tests/corpus/bindgen runs bindgen in its build script."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile import libclang

CRATE = REPO_ROOT / "tests" / "corpus" / "bindgen"


def test_libclang_is_looked_for_as_clang_sys_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty, holding, cpp_only = tmp_path / "empty", tmp_path / "holding", tmp_path / "cpp"
    for folder in (empty, holding, cpp_only):
        folder.mkdir()
    (holding / "libclang-19.so.1").write_bytes(b"")
    (cpp_only / "libclang-cpp.so.19").write_bytes(b"")  # another library: not libclang
    monkeypatch.setenv("LIBCLANG_PATH", str(empty))
    assert not libclang.libclang_found()
    monkeypatch.setenv("LIBCLANG_PATH", str(cpp_only))
    assert not libclang.libclang_found()
    monkeypatch.setenv("LIBCLANG_PATH", str(holding))
    assert libclang.libclang_found()
    monkeypatch.setenv("LIBCLANG_PATH", str(holding / "libclang-19.so.1"))
    assert libclang.libclang_found()


@pytest.mark.parametrize("triple", ["x86_64-unknown-linux-gnu", "x86_64-pc-windows-gnu"])
def test_a_graph_that_runs_bindgen_stops_before_cargo_without_libclang(tmp_path: Path, triple: str) -> None:
    crate = tmp_path / "crate"
    shutil.copytree(CRATE, crate)
    env = {"LIBCLANG_PATH": str(tmp_path), "CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--target", triple, "--out-dir", str(tmp_path / "dist"), cwd=crate, env=env)
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "needs libclang" in line and "corpus-bindgen -> bindgen" in line, line
    assert "apt-get install libclang-dev" in line and "LIBCLANG_PATH" in line, line
    assert "Compiling" not in result.stderr
    assert not (tmp_path / "target" / triple).exists()


def test_a_graph_without_bindgen_is_not_asked_for_libclang(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "plain", "plain")
    env = {"LIBCLANG_PATH": str(tmp_path), "CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--profile", "fast", "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
