"""The `stripped` and `libraries` rules on real cargo builds of tests/corpus/debuginfo:
a crate that keeps line tables in release (as ripgrep does) and, on Windows,
links combase.dll the way windows-sys does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolchain import REPO_ROOT
from toolchain.config.catalog import load_catalog
from toolchain.errors import VerificationError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.verify.smoke import smoke_binary

LINUX = "x86_64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-gnu"


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("debuginfo") / "debuginfo"
    shutil.copytree(REPO_ROOT / "tests" / "corpus" / "debuginfo", root, ignore=shutil.ignore_patterns("target"))
    return root / "Cargo.toml"


def _build(manifest: Path, triple: str, profile: str, out: Path) -> BuildReport:
    return build(BuildOptions(targets=(triple,), manifest_path=manifest, profile=profile, out_dir=out, locked=True))


def _allocated_sections(path: Path) -> dict[str, bool]:
    import lief

    elf = lief.ELF.parse(str(path))
    assert elf is not None
    return {str(s.name): s.has(lief.ELF.Section.FLAGS.ALLOC) for s in elf.sections}


def test_line_tables_in_release_pass_once_stripped(crate: Path, tmp_path: Path) -> None:
    report = _build(crate, LINUX, "dist", tmp_path / "out")  # dist: strip = "symbols", debug = 1 inherited
    (binary,) = report.results[0].binaries
    sections = _allocated_sections(binary.path)
    assert sections.get(".debug_gdb_scripts") is True, "the crate must keep the section this test is about"
    assert ".symtab" not in sections
    assert binary.info.stripped and binary.info.leftover_symbols == ()
    assert {v.rule: v.ok for v in binary.verdicts}["stripped"]
    assert list((tmp_path / "out").glob("*.tar.xz")), "it was packaged"


def test_a_profile_that_keeps_symbols_is_refused_with_advice_for_that_profile(crate: Path, tmp_path: Path) -> None:
    # The crate's own release profile has debug = 1 and no strip: its DWARF is split off into the
    # debug-symbols artifact (toolchain/compile/debuginfo.py), its symbol table stays.
    with pytest.raises(VerificationError) as caught:
        _build(crate, LINUX, "release", tmp_path / "out")
    message = f"{caught.value} {caught.value.hint}"
    assert "breaks rule 'stripped'" in message and ".symtab" in message
    assert ".debug_gdb_scripts" not in message
    assert f'set strip = "symbols" for the release profile ([profile.release] in {crate})' in message
    assert "--profile release" not in message, "never the profile that just ran"
    assert "--profile dist" in message
    assert not list((tmp_path / "out").glob("*.tar.xz"))


@pytest.mark.slow
def test_windows_system_dll_from_the_data_passes_and_runs(crate: Path, tmp_path: Path) -> None:
    report = _build(crate, WINDOWS, "dist", tmp_path / "out")
    (binary,) = report.results[0].binaries
    assert "combase.dll" in binary.info.imports
    verdicts = {v.rule: v for v in binary.verdicts}
    assert verdicts["libraries"].ok and verdicts["stripped"].ok, verdicts
    target = load_catalog().target(WINDOWS)
    smoke = smoke_binary(target, binary.path, binary.version, [[]])
    assert smoke.ok, smoke
    assert "process known: true" in smoke.checks[-1].output
