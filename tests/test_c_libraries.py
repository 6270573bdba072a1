"""A -sys crate that links the build machine's C library (openssl-sys without
`vendored`, libsqlite3-sys without `bundled`) stops the build before cargo.

zig's sysroot and the cross targets have no such library: openssl-sys's build
script failed once cargo reached it ("Could not find directory of OpenSSL
installation", or with pkg-config pointed at the machine, "'openssl/opensslconf.h'
file not found"), exit 6. The real crates from the registry, their real
features; the check reads the graph cargo would build for each target."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain.compile import c_libraries
from toolchain.compile.c_libraries import require_c_libraries
from toolchain.compile.cargo import load_project, select
from toolchain.config.settings import load_settings
from toolchain.errors import MissingToolError

LINUX = "x86_64-unknown-linux-gnu"
ARM = "aarch64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-gnu"
MAC = "x86_64-apple-darwin"
HOST = "linux-x86_64"
OPENSSL_SYS = 'openssl-sys = "=0.9.118"\n'
SQLITE_SYS = 'libsqlite3-sys = { version = "=0.35.0", features = ["bundled-windows"] }\n'


def _app(root: Path, dependencies: str, settings_toml: str = "") -> Path:
    manifest = make_crate(root / "app", "app", manifest_extra=dependencies)
    if settings_toml:
        (root / "app" / "toolchain.toml").write_text(settings_toml)
    return manifest


def _check(manifest: Path, triple: str, runner: str = "zig") -> None:
    settings = load_settings(manifest.parent)
    project = load_project(manifest)
    selections = select(project, None, [], settings.build)
    require_c_libraries(target := settings.catalog.target(triple), project, selections, settings, runner, HOST)
    assert target.triple == triple


def test_the_build_stops_before_cargo_naming_the_chain_and_the_feature(tmp_path: Path) -> None:
    manifest = _app(tmp_path, OPENSSL_SYS)
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--target", LINUX, "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent, env=env)
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "app -> openssl-sys links the build machine's OpenSSL (openssl-sys's feature vendored is off)" in line
    assert "--features openssl/vendored" in line and "OPENSSL_DIR" in line, line
    assert "Compiling" not in result.stderr
    assert not (tmp_path / "target" / LINUX).exists()


@pytest.mark.parametrize("triple", [LINUX, ARM, MAC, WINDOWS])
def test_every_target_without_the_feature_is_stopped_and_with_it_is_not(tmp_path: Path, triple: str) -> None:
    with pytest.raises(MissingToolError, match="openssl-sys's feature vendored is off"):
        _check(_app(tmp_path / "off", OPENSSL_SYS), triple)
    _check(_app(tmp_path / "on", OPENSSL_SYS, '[build]\nfeatures = ["openssl-sys/vendored"]\n'), triple)


def test_a_library_built_for_the_target_is_taken_from_its_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _app(tmp_path, OPENSSL_SYS)
    monkeypatch.setenv("X86_64_UNKNOWN_LINUX_GNU_OPENSSL_DIR", str(tmp_path / "openssl-for-x86_64"))
    _check(manifest, LINUX)
    with pytest.raises(MissingToolError):
        _check(manifest, ARM)  # the prefix names one target only
    monkeypatch.setenv("OPENSSL_LIB_DIR", str(tmp_path / "openssl-lib"))
    _check(manifest, ARM)


def test_cargo_building_for_this_machine_reaches_its_libraries(tmp_path: Path) -> None:
    manifest = _app(tmp_path, OPENSSL_SYS)
    _check(manifest, LINUX, runner="native")  # left to cargo, then to the policy's libraries rule
    with pytest.raises(MissingToolError):
        _check(manifest, WINDOWS, runner="native")  # mingw's linker: another machine's libraries
    _check(manifest, ARM, runner="cross")  # the image decides


def test_a_feature_that_builds_from_source_on_one_os_only_counts_there(tmp_path: Path) -> None:
    manifest = _app(tmp_path, SQLITE_SYS)
    _check(manifest, WINDOWS)
    with pytest.raises(MissingToolError, match=r"app -> libsqlite3-sys links the build machine's SQLite .*bundled"):
        _check(manifest, LINUX)


def test_a_lock_file_without_those_crates_ends_the_check_before_the_graph_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _app(tmp_path, "")
    (manifest.parent / "Cargo.lock").write_text('version = 4\n\n[[package]]\nname = "app"\nversion = "0.3.1"\n')

    def no_graph(*_: object) -> None:
        raise AssertionError("the crate graph was read")

    monkeypatch.setattr(c_libraries, "target_metadata", no_graph)
    _check(manifest, LINUX)
    (manifest.parent / "Cargo.lock").write_text(
        'version = 4\n\n[[package]]\nname = "app"\nversion = "0.3.1"\n\n'
        '[[package]]\nname = "openssl-sys"\nversion = "0.9.118"\n'
    )
    with pytest.raises(AssertionError, match="the crate graph was read"):
        _check(manifest, LINUX)
