"""A rebuild with nothing changed: what it reuses (the inspection stored by the
binary's SHA-256, the archive, the release folder, cargo-zigbuild's zig) and
that a changed policy file, setting, binary, project file or output makes it
redo that part. Real builds of one small crate through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke, unless_the_day_turned

from toolchain.digest import sha256_file
from toolchain.verify.cache import inspect_cached
from toolchain.verify.inspection import inspect_binary

HOST = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crate, built once (fast profile) into its release folder `dist`."""
    root = tmp_path_factory.mktemp("noop") / "noopapp"
    make_crate(root, "noopapp", manifest_extra="")
    manifest = root / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace('edition = "2021"', 'edition = "2021"\ndescription = "first"'))
    built = build(root)
    assert built.returncode == 0, built.stderr
    return root


def build(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # --force: past the fresh check (tests/test_fresh_build.py), to the reuse inside a real build.
    return run_invoke(
        "build", "--profile", "fast", "--manifest-path", str(root / "Cargo.toml"), "--out-dir", str(root / "dist"),
        "--force", cwd=root, env=env,
    )  # fmt: skip


@pytest.fixture
def project_file(crate: Path) -> Iterator[Path]:
    """toolchain.toml beside the crate's Cargo.toml, removed (with policies/) afterwards."""
    path = crate / "toolchain.toml"
    path.write_text("")
    yield path
    path.unlink()
    shutil.rmtree(crate / "policies", ignore_errors=True)
    assert build(crate).returncode == 0


def test_noop_rebuild_imports_no_lief_and_keeps_the_release_folder(crate: Path) -> None:
    manifest = crate / "dist" / "manifest.json"
    before = 0  # the manifest's mtime before the build that counts

    def build_again() -> subprocess.CompletedProcess[str]:
        nonlocal before
        before = manifest.stat().st_mtime_ns
        return build(crate, env={"PYTHONPROFILEIMPORTTIME": "1"})

    again = unless_the_day_turned(build_again)
    assert again.returncode == 0, again.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in again.stderr.splitlines() if line.startswith("import time:")}
    assert "toolchain.pipeline.targets" in imported  # the import report is there
    assert "lief" not in imported
    assert f"release folder {crate / 'dist'} unchanged" in again.stderr
    assert manifest.stat().st_mtime_ns == before
    assert "holds files no build in its record made" not in again.stderr  # the installers' checksums are its own


def test_a_changed_policy_file_applies_to_an_unchanged_binary(crate: Path, project_file: Path) -> None:
    (crate / "policies").mkdir()
    (crate / "policies" / "linux.toml").write_text('[rules]\nstack-protector = "error"\n')
    failed = build(crate)
    assert failed.returncode != 0
    assert f"breaks rule 'stack-protector' of {crate / 'policies' / 'linux.toml'}" in failed.stderr
    (crate / "policies" / "linux.toml").write_text('[rules]\nstack-protector = "report"\n')
    assert build(crate).returncode == 0


def test_a_changed_setting_applies_to_an_unchanged_binary(crate: Path, project_file: Path) -> None:
    project_file.write_text('[policies.linux.rules]\nstack-protector = "error"\n')
    failed = build(crate)
    assert failed.returncode != 0 and "breaks rule 'stack-protector'" in failed.stderr
    project_file.write_text("")
    assert build(crate).returncode == 0


def test_a_changed_binary_is_inspected_afresh(crate: Path, tmp_path: Path) -> None:
    built = crate / "target" / HOST / "fast" / "noopapp"
    path = tmp_path / "app"
    shutil.copy(built, path)
    first = inspect_cached(path, sha256_file(path), tmp_path / "cache")
    assert first.stripped
    # Another binary at the same path: unstripped, from gcc.
    source = tmp_path / "main.c"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g", "-o", path, source], check=True)
    second = inspect_cached(path, sha256_file(path), tmp_path / "cache")
    assert second == inspect_binary(path)
    assert not second.stripped and second.size != first.size


def test_the_release_folder_is_made_again_when_an_input_or_a_file_changes(crate: Path, project_file: Path) -> None:
    dist = crate / "dist"
    unchanged = f"release folder {dist} unchanged"
    # A setting the installers bake in.
    project_file.write_text('[release]\ndownload-url = "https://downloads.example/noop"\n')
    remade = build(crate)
    assert remade.returncode == 0 and unchanged not in remade.stderr
    assert "https://downloads.example/noop" in (dist / "noopapp-installer.sh").read_text()
    assert unchanged in unless_the_day_turned(lambda: build(crate)).stderr
    # A file of the folder edited by hand.
    installer = dist / "noopapp-installer.sh"
    installer.write_text(installer.read_text() + "# edited\n")
    assert unchanged not in build(crate).stderr
    assert not installer.read_text().endswith("# edited\n")
    # The project's Cargo.toml (the SBOM and packages read its metadata).
    manifest = crate / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace('description = "first"', 'description = "second"'))
    try:
        assert unchanged not in build(crate).stderr
    finally:
        manifest.write_text(manifest.read_text().replace('description = "second"', 'description = "first"'))


def test_cargo_zigbuild_runs_zig_itself_not_through_python(crate: Path, tmp_path: Path) -> None:
    """cargo-zigbuild looks for `python3 -m ziglang` first: with the zig the toolkit names,
    no interpreter starts for its probes or for any compiler or linker call."""
    calls = tmp_path / "python-calls"
    python = tmp_path / "python3"
    python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    main = crate / "src" / "main.rs"
    text = main.read_text()
    main.write_text(text + "// relinked\n")  # cargo compiles and links again
    try:
        built = build(crate, env={"CARGO_ZIGBUILD_PYTHON_PATH": str(python), "PATH": os.environ["PATH"]})
    finally:
        main.write_text(text)
    assert built.returncode == 0, built.stderr
    assert "Compiling noopapp" in built.stderr and "runner: zig" in built.stderr
    assert not calls.exists(), calls.read_text()
