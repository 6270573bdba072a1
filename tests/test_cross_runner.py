"""The cross runner for real: `cross build` (cargo install cross) against the
local docker engine, with a local image for aarch64-unknown-linux-gnu made by
scripts/make-cross-image.sh from the debootstrap base (no registry is
reachable from the build machines, so cross's ghcr.io images are not used).
A crate with registry dependencies and a C build script (tests/corpus/zstd)
is built through the library, verified like any other runner's binary (with
the glibc floor overridden: see the build call), and run under qemu. The
host's rustup toolchains must come out unchanged: cross 0.2.5 re-installs
the active toolchain when it runs against rustup itself.

Skipped with the reason when cross or a docker engine is missing, except
under CI, where both must be there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import on_ci

from toolchain import REPO_ROOT
from toolchain.compile.container import engine_problem
from toolchain.config.settings import load_settings
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.verify import smoke

TRIPLE = "aarch64-unknown-linux-gnu"
IMAGE = f"local/cross:{TRIPLE}"
# `cargo install cross --root /opt/cross` puts it outside PATH.
CROSS = shutil.which("cross") or shutil.which("cross", path="/opt/cross/bin")
ENGINE_PROBLEM = engine_problem()
MISSING = "the cross CLI is not installed (cargo install cross --locked)" if CROSS is None else ENGINE_PROBLEM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None and not on_ci(), reason=f"cross: {MISSING}"),
]


@pytest.fixture(scope="module")
def image() -> str:
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "make-cross-image.sh"), TRIPLE, IMAGE], check=True)
    return IMAGE


def rustup_state() -> tuple[str, ...]:
    """The toolchains rustup lists and what each one holds."""
    listing = subprocess.run(["rustup", "toolchain", "list"], capture_output=True, text=True, check=True).stdout
    home = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
    components = sorted(
        f"{path.parent.parent.parent.name}: {path.read_text()}"
        for path in home.glob("toolchains/*/lib/rustlib/components")
    )
    return (listing, *components)


def test_cross_builds_a_c_backed_crate_for_aarch64(image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert CROSS is not None
    monkeypatch.setenv("PATH", f"{Path(CROSS).parent}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "zstd"
    shutil.copytree(REPO_ROOT / "tests" / "corpus" / "zstd", project, ignore=shutil.ignore_patterns("target"))
    config = tmp_path / "toolchain.toml"
    config.write_text(f'[cross.images]\n"{TRIPLE}" = "{image}"\n')
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(config))
    settings = load_settings()
    assert settings.cross.images == {TRIPLE: image}
    before = rustup_state()

    report = build(
        BuildOptions(
            manifest_path=project / "Cargo.toml",
            targets=(TRIPLE,),
            runner="cross",
            profile="fast",
            out_dir=tmp_path / "dist",
            # The image links against Debian 12's glibc 2.36, so the binary
            # needs GLIBC_2.34 (Rust std's __libc_start_main): above the
            # target's 2.17 floor. cross 0.2.5 has no zig linking (cross main's
            # `zig = "2.17"`), so the floor is overridden on purpose, and recorded.
            allow=("glibc-floor",),
        ),
        settings,
    )

    (result,) = report.results
    assert result.ok, result.entry.error
    assert result.entry.runner == "cross"
    assert result.entry.route == "cross-image"
    assert result.entry.toolchain["image"] == image
    assert str(result.entry.toolchain["rustc"]).startswith("rustc 1.96")
    assert str(result.entry.toolchain["cross"]).startswith("cross 0.2")
    (binary,) = result.binaries
    assert (binary.info.format, binary.info.machine, binary.info.bits) == ("elf", "aarch64", 64)
    # Built in the container: cargo's /target is the project's target/cross.
    assert binary.path.is_file()
    assert (project / "target" / "cross" / TRIPLE / "fast" / "corpus-zstd").is_file()
    blocking = [v for v in binary.verdicts if v.blocking]
    assert not blocking, blocking
    failed = {v.rule: v for v in binary.verdicts if not v.ok and v.severity == "error"}
    assert set(failed) == {"glibc-floor"} and failed["glibc-floor"].allowed
    assert failed["glibc-floor"].found == "GLIBC_2.34"
    assert result.entry.allowed_rules == ("glibc-floor",)
    assert (tmp_path / "dist" / f"corpus-zstd-{TRIPLE}.tar.xz").is_file()

    ran = smoke.smoke_binary(settings.catalog.target(TRIPLE), binary.path, binary.version, [["selftest"]])
    assert ran.how == "qemu"
    assert all(check.ok for check in ran.checks), ran.checks
    assert ran.checks[-1].output.startswith("ok ")

    # cross never asked rustup to install or update anything.
    assert rustup_state() == before
