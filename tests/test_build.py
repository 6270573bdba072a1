"""The pipeline end to end on the host target, with real cargo builds."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import HELLO_MAIN, make_crate, run_invoke

from toolchain.compile.cargo import ask_metadata_ahead, load_project, select
from toolchain.config.settings import load_settings
from toolchain.errors import BuildError, ProjectError, UsageError, VerificationError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build

HOST = "x86_64-unknown-linux-gnu"


def test_demo_build_writes_archive_checksum_and_record(demo_build: BuildReport) -> None:
    (result,) = demo_build.results
    assert result.ok and result.triple == HOST and result.entry.runner == "zig"
    (artifact,) = result.artifacts
    assert artifact.path.name == "tally-x86_64-unknown-linux-gnu.tar.xz"
    digest = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert artifact.checksum_path.read_text() == f"{digest}  {artifact.path.name}\n"
    # sha256sum itself accepts the checksum file.
    check = subprocess.run(["sha256sum", "-c", artifact.checksum_path.name], cwd=artifact.path.parent, check=False)
    assert check.returncode == 0
    record = json.loads((demo_build.out_dir / "build-record.json").read_text())
    entry = record["targets"][HOST]
    assert entry["profile"] == "dist" and entry["runner"] == "zig"
    assert entry["toolchain"]["rustc"].startswith("rustc ")
    assert entry["binaries"][0]["sha256"] == result.binaries[0].sha256


def test_archive_holds_one_top_folder_with_binary_and_docs(demo_build: BuildReport, tmp_path: Path) -> None:
    artifact = demo_build.results[0].artifacts[0]
    with tarfile.open(artifact.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = "tally-x86_64-unknown-linux-gnu"
        assert set(members) == {top, *(f"{top}/{n}" for n in ("tally", "README.md", "LICENSE", "CHANGELOG.md"))}
        binary = members[f"{top}/tally"]
        assert binary.mode == 0o755 and binary.uid == 0 and binary.gid == 0 and binary.uname == ""
        assert len({m.mtime for m in members.values()}) == 1
        tar.extractall(tmp_path, filter="data")
    run = subprocess.run([tmp_path / top / "tally", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "tally 0.1.0"
    assert subprocess.run([tmp_path / top / "tally", "doctor"], capture_output=True, check=False).returncode == 0


def test_dist_binary_is_stripped_and_matches_target(demo_build: BuildReport) -> None:
    binary = demo_build.results[0].binaries[0]
    assert binary.info.stripped and binary.info.format == "elf" and binary.info.machine == "x86_64"
    assert not [v for v in binary.verdicts if v.blocking]


def test_noop_rebuild_reuses_the_archive(demo_build: BuildReport) -> None:
    again = build(BuildOptions(out_dir=demo_build.out_dir))
    assert again.results[0].artifacts[0].reused
    assert again.results[0].artifacts[0].sha256 == demo_build.results[0].artifacts[0].sha256


def test_packaging_is_byte_for_byte_reproducible(demo_build: BuildReport, tmp_path: Path) -> None:
    first = demo_build.results[0].artifacts[0].path.read_bytes()
    again = build(BuildOptions(out_dir=tmp_path))
    assert again.results[0].artifacts[0].path.read_bytes() == first


def test_any_crate_by_manifest_path(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "hello", "hello-tool")
    report = build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "out", profile="fast"))
    artifact = report.results[0].artifacts[0]
    assert artifact.path.name == "hello-tool-x86_64-unknown-linux-gnu.tar.xz"
    out = subprocess.run([report.results[0].binaries[0].path], capture_output=True, text=True, check=True)
    assert out.stdout == "hello 0.3.1\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["alpha", "beta", "shared"]\nresolver = "2"\n')
    make_crate(root / "alpha", "alpha", bins={"alpha-extra": HELLO_MAIN})
    make_crate(root / "beta", "beta")
    make_crate(root / "shared", "shared", main_rs=None, lib_rs="pub fn x() {}\n")
    return root / "Cargo.toml"


def test_workspace_binaries_come_from_cargo_metadata(workspace: Path) -> None:
    project = load_project(workspace)
    assert [(p.name, sorted(p.binaries)) for p in project.packages] == [
        ("alpha", ["alpha", "alpha-extra"]),
        ("beta", ["beta"]),
    ]
    assert [s.package.name for s in select(project, "beta", [])] == ["beta"]
    assert [(s.package.name, s.binaries) for s in select(project, None, ["alpha-extra"])] == [
        ("alpha", ("alpha-extra",))
    ]
    with pytest.raises(UsageError, match="did you mean 'alpha'"):
        select(project, "alpah", [])
    with pytest.raises(UsageError, match="no binary named 'gamma'"):
        select(project, None, ["gamma"])


def test_cargo_metadata_asked_ahead_gives_the_same_project_and_the_same_errors(workspace: Path, tmp_path: Path) -> None:
    """The build task asks `cargo metadata` on a thread while its modules load: the
    project, and a broken Cargo.toml's error, are what asking in place gives; an answer
    is used once, so a later load asks again."""
    ask_metadata_ahead(workspace)
    assert load_project(workspace) == load_project(workspace)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Cargo.toml").write_text("[package\n")
    ask_metadata_ahead(broken / "Cargo.toml")
    with pytest.raises(ProjectError, match="cargo metadata failed") as ahead:
        load_project(broken)
    with pytest.raises(ProjectError, match="cargo metadata failed") as in_place:
        load_project(broken)
    assert ahead.value.message == in_place.value.message


def test_workspace_build_one_package(workspace: Path, tmp_path: Path) -> None:
    report = build(BuildOptions(manifest_path=workspace, package="alpha", out_dir=tmp_path, profile="fast"))
    assert sorted(b.name for b in report.results[0].binaries) == ["alpha", "alpha-extra"]
    (artifact,) = report.results[0].artifacts
    with tarfile.open(artifact.path) as tar:
        names = sorted(tar.getnames())
    assert names == ["alpha-x86_64-unknown-linux-gnu", "alpha-x86_64-unknown-linux-gnu/alpha",
                     "alpha-x86_64-unknown-linux-gnu/alpha-extra"]  # fmt: skip


def test_library_only_crate_is_refused(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "lib", "justalib", main_rs=None, lib_rs="pub fn f() {}\n")
    with pytest.raises(ProjectError, match="has no binary target"):
        build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no Cargo.toml at"):
        build(BuildOptions(manifest_path=tmp_path / "nope" / "Cargo.toml", out_dir=tmp_path / "out"))


def test_cargo_failure_shows_cargos_error_and_writes_nothing(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "broken", "broken", main_rs='fn main() { let x: u32 = "no"; }\n')
    with pytest.raises(BuildError) as caught:
        build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "out"))
    assert "cargo build for x86_64-unknown-linux-gnu failed" in str(caught.value)
    assert "error[E0308]: mismatched types" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_wrong_architecture_binary_is_refused_before_packaging(tmp_path: Path) -> None:
    # The project's own target data says aarch64 Linux binaries are x86_64: the
    # real aarch64 build then breaks the target's policy, and the pipeline must
    # stop before an archive is written.
    manifest = make_crate(tmp_path / "crate", "wrongarch")
    (tmp_path / "crate" / "toolchain.toml").write_text(
        '[targets.aarch64-unknown-linux-gnu.binary]\nmachine = "x86_64"\n'
    )
    settings = load_settings(tmp_path / "crate")
    options = BuildOptions(
        manifest_path=manifest, targets=("aarch64-unknown-linux-gnu",), profile="fast", out_dir=tmp_path / "out"
    )
    with pytest.raises(
        VerificationError, match=r"breaks rule 'machine' of \S+linux\.toml: found aarch64, expected x86_64"
    ):
        build(options, settings)
    assert not list((tmp_path / "out").glob("*.tar.xz")) if (tmp_path / "out").exists() else True
    assert not (tmp_path / "out" / "build-record.json").exists()


def test_user_profile_wins_unless_forced(tmp_path: Path) -> None:
    # The crate defines its own [profile.dist] that keeps symbols.
    manifest = make_crate(
        tmp_path / "own", "ownprofile", manifest_extra='\n[profile.dist]\ninherits = "release"\nstrip = false\n'
    )
    kept = build(
        BuildOptions(manifest_path=manifest, out_dir=tmp_path / "a", package_artifacts=False, allow=("stripped",))
    )
    assert not kept.results[0].binaries[0].info.stripped
    assert "Cargo.toml" in (kept.results[0].entry.profile_source or "")
    forced = build(BuildOptions(manifest_path=manifest, out_dir=tmp_path / "b", force_profile=True))
    assert forced.results[0].binaries[0].info.stripped
    assert forced.results[0].entry.profile_source.endswith("profiles/dist.toml")  # type: ignore[union-attr]
    assert "strip = false" in manifest.read_text(), "the user's Cargo.toml is never edited"


def test_files_of_another_build_in_the_folder_are_named_and_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = make_crate(tmp_path / "first", "firstapp")
    second = make_crate(tmp_path / "second", "secondapp")
    for manifest in (first, second):
        built = run_invoke("build", "--manifest-path", str(manifest), "--profile", "fast", "--out-dir", str(out))
        assert built.returncode == 0, built.stderr
    assert "held a build of another project" in built.stderr
    (warning,) = [line for line in built.stderr.splitlines() if "holds files no build in its record made" in line]
    assert f"firstapp-{HOST}.tar.xz" in warning and "firstapp-installer.sh" in warning and "secondapp" not in warning
    record = json.loads((out / "build-record.json").read_text())
    assert {b["package"] for e in record["targets"].values() for b in e["binaries"]} == {"secondapp"}
    keys = tmp_path / "keys"
    assert run_invoke("keygen", "--out-dir", str(keys)).returncode == 0
    env = {"TOOLCHAIN_SECRET_KEY_FILE": str(keys / "minisign.key")}
    assert run_invoke("package", "--out-dir", str(out), env=env).returncode == 0
    verified = run_invoke("verify", "--path", str(out), "--public-key", str(keys / "minisign.pub"))
    assert verified.returncode == 12
    # The archive and its SBOM ([package] formats has "sbom" by default).
    archive = f"firstapp-{HOST}.tar.xz"
    unlisted = f"{archive}, {archive}.cdx.json are in the release folder but not in sha256.sum"
    assert unlisted in verified.stderr
    assert "invoke package --clean" in verified.stderr
    cleaned = run_invoke("package", "--out-dir", str(out), "--clean", env=env)
    assert cleaned.returncode == 0 and "removed files of other builds" in cleaned.stderr
    assert not list(out.glob("firstapp*"))
    verified = run_invoke("verify", "--path", str(out), "--public-key", str(keys / "minisign.pub"))
    assert verified.returncode == 0, verified.stderr
