"""One cargo context: every cargo command for a project runs in its Cargo.toml's
folder, so the project's .cargo/config.toml (here: a vendored source, offline)
applies to the build and to the release folder's `cargo metadata` (SBOMs)
alike, whichever folder the toolkit was started in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import run_invoke

from toolchain import REPO_ROOT, proc
from toolchain.compile.context import CargoContext

pytestmark = pytest.mark.slow

CORPUS = REPO_ROOT / "tests" / "corpus"


def test_context_runs_in_the_manifests_folder(tmp_path: Path) -> None:
    crate = tmp_path / "app"
    crate.mkdir()
    (crate / "Cargo.toml").write_text("[package]\nname='x'\n")
    assert CargoContext.of(crate / "Cargo.toml").folder == crate.resolve()
    assert CargoContext.of(crate).folder == crate.resolve()
    assert CargoContext.of(crate / "Cargo.toml").output(["pwd"]) == str(crate.resolve())
    with pytest.raises(TypeError):
        CargoContext.of(crate).run(["pwd"], cwd=tmp_path)


def _release_files(out_dir: Path) -> dict[str, bytes]:
    """The archives and SBOMs of a release folder, by name."""
    found = {
        p.name: p.read_bytes()
        for p in out_dir.iterdir()
        if p.name.endswith((".tar.xz", ".tar.gz", ".zip")) or "cdx" in p.name or "sbom" in p.name
    }
    assert any("cdx" in n or "sbom" in n for n in found), sorted(p.name for p in out_dir.iterdir())
    return found


def test_vendored_crate_builds_offline_the_same_from_any_folder(tmp_path: Path) -> None:
    # A vendored workspace (registry crate: itoa). `cargo vendor` without -q prints the
    # [source] lines for .cargo/config.toml; it runs here, while the registry is reachable.
    crate = tmp_path / "app"
    shutil.copytree(CORPUS / "workspace", crate, ignore=shutil.ignore_patterns("target"))
    vendored = proc.run(["cargo", "vendor", "--locked", "vendor"], cwd=crate)
    assert 'directory = "vendor"' in vendored.stdout
    (crate / ".cargo").mkdir()
    (crate / ".cargo" / "config.toml").write_text(vendored.stdout)
    # Offline, with an empty cargo home: the vendored folder is the only source there is.
    empty_home = tmp_path / "empty-cargo-home"
    empty_home.mkdir()
    env = {
        "CARGO_HOME": str(empty_home),
        "CARGO_NET_OFFLINE": "true",
        "CARGO_TARGET_DIR": str(tmp_path / "target"),
        "SOURCE_DATE_EPOCH": "1700000000",
        "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = ("build", "--target", "x86_64-unknown-linux-gnu", "--profile", "fast")
    inside = run_invoke(*common, "--out-dir", str(tmp_path / "dist-inside"), cwd=crate, env=env)
    assert inside.returncode == 0, inside.stderr[-3000:]
    outside = run_invoke(
        *common,
        "--manifest-path",
        str(crate / "Cargo.toml"),
        "--out-dir",
        str(tmp_path / "dist-outside"),
        cwd=elsewhere,
        env=env,
    )
    assert outside.returncode == 0, outside.stderr[-3000:]
    first, second = _release_files(tmp_path / "dist-inside"), _release_files(tmp_path / "dist-outside")
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name] == second[name], f"{name} differs between the two builds"
    # The SBOM lists the vendored crate the build used.
    assert any(b"itoa" in data for name, data in first.items() if "cdx" in name or "sbom" in name)


def test_rustc_probes_follow_the_projects_rust_toolchain_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # rustup reads rust-toolchain.toml from the working folder: a project pinning Debian's
    # toolchain (`path = "/usr"`) gets its routes from that compiler, wherever the toolkit started.
    from toolchain.compile.context import HERE
    from toolchain.compile.routes import DISTRO_RUSTC, candidate_routes, default_rustc, is_rustup_toolchain
    from toolchain.config.catalog import load_catalog

    if not DISTRO_RUSTC.is_file() or "rustup" not in str(HERE.rustc_sysroot(default_rustc())):
        pytest.skip("needs rustup's rustc on PATH and Debian's /usr/bin/rustc")
    monkeypatch.delenv("RUSTUP_TOOLCHAIN", raising=False)
    crate = tmp_path / "pinned"
    crate.mkdir()
    (crate / "rust-toolchain.toml").write_text('[toolchain]\npath = "/usr"\n')
    (crate / "Cargo.toml").write_text('[package]\nname = "pinned"\nversion = "0.1.0"\n')
    context = CargoContext.of(crate / "Cargo.toml")
    assert context.rustc_sysroot(default_rustc()) == Path("/usr")
    assert is_rustup_toolchain(HERE.rustc_sysroot(default_rustc()))
    host = load_catalog().target("x86_64-unknown-linux-gnu")
    assert candidate_routes(host, context=context)[0].detail == "std from /usr"
    assert candidate_routes(host)[0].name == "rustup"


def test_a_pinned_toolchain_rustup_lacks_is_named_with_the_fix(tmp_path: Path) -> None:
    # ouch 0.8.3 ships rust-toolchain.toml with channel = "1.93.0": where rustup has not
    # installed it (and does not install on first use), every cargo command fails.
    crate = tmp_path / "pinned"
    (crate / "src").mkdir(parents=True)
    (crate / "src" / "main.rs").write_text("fn main() {}\n")
    (crate / "Cargo.toml").write_text('[package]\nname = "pinned"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.42.99"\nprofile = "minimal"\n')
    if os.environ.get("RUSTUP_TOOLCHAIN"):
        pytest.skip("RUSTUP_TOOLCHAIN overrides the folder's pin")
    env = {"RUSTUP_AUTO_INSTALL": "0"}
    result = run_invoke(
        "build",
        "--manifest-path",
        str(crate / "Cargo.toml"),
        "--out-dir",
        str(tmp_path / "dist"),
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"{crate / 'rust-toolchain.toml'} pins Rust 1.42.99" in line, line
    assert "rustup toolchain install 1.42.99" in line and "RUSTUP_TOOLCHAIN" in line, line
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("target", ["x86_64-unknown-linux-gnu", "x86_64-apple-darwin"])
def test_a_lock_file_behind_its_cargo_toml_is_named_with_the_fix(tmp_path: Path, target: str) -> None:
    """Releases build --locked, which the user did not type: cargo's "cannot update the lock
    file because --locked was passed" (from the build, or from the metadata a macOS target's
    checks read first) is said as what it means, exit 4."""
    from conftest import make_crate

    (tmp_path / "dep" / "src").mkdir(parents=True)
    (tmp_path / "dep" / "src" / "lib.rs").write_text("pub fn f() {}\n")
    (tmp_path / "dep" / "Cargo.toml").write_text('[package]\nname = "dep"\nversion = "0.1.0"\nedition = "2021"\n')
    manifest = make_crate(tmp_path / "app", "app")
    lock = 'version = 4\n\n[[package]]\nname = "app"\nversion = "0.3.1"\n'
    (manifest.parent / "Cargo.lock").write_text(lock)
    manifest.write_text(manifest.read_text().replace("[dependencies]\n", '[dependencies]\ndep = { path = "../dep" }\n'))
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--target", target, "--out-dir", str(tmp_path / "dist"), cwd=manifest.parent, env=env)
    assert result.returncode == 4, result.stderr[-2000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")][-1]
    assert f"{manifest.parent / 'Cargo.lock'} does not match Cargo.toml" in line, line
    assert "cargo update --workspace" in line and "--no-locked" in line, line
    assert (manifest.parent / "Cargo.lock").read_text() == lock  # left as committed
