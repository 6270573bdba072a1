"""Auditable binaries, for real: a corpus crate built for aarch64 with the zig
runner through cargo-auditable; the list LIEF reads back from the binary is
`cargo tree` for that target, and it reaches the record, the release
manifest and `invoke inspect`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest
from conftest import on_ci, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile import auditable
from toolchain.config.settings import load_settings
from toolchain.errors import MissingToolError, UsageError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.release.folder import package_release

TRIPLE = "aarch64-unknown-linux-gnu"

try:
    auditable.cargo_auditable()
    MISSING = ""
except MissingToolError as exc:
    MISSING = str(exc)
needs_tool = pytest.mark.skipif(bool(MISSING) and not on_ci(), reason=MISSING)


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auditable") / "cli"
    shutil.copytree(REPO_ROOT / "tests" / "corpus" / "cli", root, ignore=shutil.ignore_patterns("target"))
    return root


@pytest.fixture(scope="module")
def report(crate: Path) -> BuildReport:
    # A target dir of its own: the corpus tests build this package into the shared one.
    settings = load_settings()
    settings = msgspec.structs.replace(settings, build=msgspec.structs.replace(settings.build, auditable=True))
    options = BuildOptions(
        targets=(TRIPLE,), runner="zig", profile="fast", manifest_path=crate / "Cargo.toml", out_dir=crate / "dist"
    )
    return build(options, settings)


def _cargo_tree(crate: Path) -> set[tuple[str, str]]:
    listed = subprocess.run(
        ["cargo", "tree", "--locked", "--target", TRIPLE, "-e", "normal", "--prefix", "none"],
        cwd=crate,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(line.split()[0], line.split()[1].lstrip("v")) for line in listed.splitlines() if line.strip()}


@needs_tool
def test_the_embedded_list_is_cargo_tree_for_the_target(report: BuildReport, crate: Path) -> None:
    (result,) = report.results
    assert result.entry.runner == "zig" and result.ok
    (binary,) = result.binaries
    embedded = {(p.name, p.version) for p in binary.info.dependencies}
    assert embedded, "no .dep-v0 section: the build did not go through cargo-auditable"
    assert embedded == _cargo_tree(crate)
    kinds = {p.name: p.kind for p in binary.info.dependencies}
    assert kinds["clap"] == "runtime" and kinds["clap_derive"] == "build"  # a proc-macro runs at build time


@needs_tool
def test_the_list_reaches_the_manifest_and_inspect(report: BuildReport, crate: Path) -> None:
    out_dir = crate / "dist"
    package_release(out_dir, None, "https://example.invalid/releases", crate, formats=("sbom",))
    manifest = json.loads((out_dir / "manifest.json").read_text())
    (archive,) = [a for a in manifest["artifacts"] if a["kind"] == "archive"]
    names = {p["name"] for p in archive["dependencies"]["corpus-cli"]}
    assert {"clap", "serde_json", "anyhow"} <= names
    # The SBOM carries the binary's own account: every embedded package, marked with its kind.
    sbom = json.loads((out_dir / f"{archive['name']}.cdx.json").read_text())
    properties = {
        (c["name"], c["version"]): {p["name"]: p["value"] for p in c.get("properties", ())} for c in sbom["components"]
    }
    marked = {key: found["toolchain:auditable"] for key, found in properties.items() if "toolchain:auditable" in found}
    embedded = {(p.name, p.version): p.kind for p in report.results[0].binaries[0].info.dependencies}
    embedded.pop(("corpus-cli", "0.1.0"))  # the app itself is the SBOM's subject
    assert marked == embedded
    binary = report.results[0].binaries[0].path
    shown = run_invoke("inspect", "--path", str(binary))
    assert shown.returncode == 0, shown.stderr
    assert "packages (cargo-auditable)" in shown.stdout
    document = json.loads(run_invoke("inspect", "--path", str(binary), "--json").stdout)
    assert {"name": "clap", "version": "4.6.9", "source": "crates.io", "kind": "runtime"} in document["binaries"][0][
        "dependencies"
    ]


def test_runners_whose_image_has_no_cargo_auditable_are_refused_in_one_line() -> None:
    for runner, argv in (("cross", ("cross", "build", "--release")), ("container", ("docker", "run", "img"))):
        with pytest.raises(UsageError, match=f"cannot wrap the {runner} runner"):
            auditable.auditable_command(argv, {}, runner)


def test_the_zig_runner_is_wrapped_with_cargo_pointing_at_cargo_zigbuild(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditable, "cargo_auditable", lambda: "/opt/auditable/bin/cargo-auditable")
    argv, env = auditable.auditable_command(("cargo-zigbuild", "zigbuild", "--target", "x"), {"A": "1"}, "zig")
    assert argv == ("/opt/auditable/bin/cargo-auditable", "auditable", "build", "--target", "x")
    assert env["A"] == "1" and Path(env["CARGO"]).name == "cargo-zigbuild"


def test_a_missing_cargo_auditable_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(auditable, "INSTALL_ROOTS", (tmp_path,))
    with pytest.raises(MissingToolError, match="cargo install --locked cargo-auditable"):
        auditable.cargo_auditable()
