"""A binary behind `required-features` is built only when the build enables them.

`cargo build` skips such a binary by itself, but a build that names its binaries
(`--bin a --bin b`, as the toolkit's does) fails on the first one whose features
are off: "target `extra` in package `app` requires the features: `extra`"
(sccache's `sccache-dist`, a feature-gated server binary, is the common shape).
The selection reads each binary's required features from cargo metadata and
the build's features from the settings, as cargo resolves them for a member."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import host_build, make_crate

from toolchain.compile.cargo import load_project, select
from toolchain.config.settings import load_settings
from toolchain.errors import UsageError

LINUX = "x86_64-unknown-linux-gnu"
MAIN = 'fn main() { println!("hi"); }\n'

MANIFEST_EXTRA = """
[features]
default = ["std"]
std = []
extra = []
full = ["extra"]
net = ["dep:helper"]

[[bin]]
name = "app"
path = "src/main.rs"

[[bin]]
name = "extra"
path = "src/bin/extra.rs"
required-features = ["extra"]

[[bin]]
name = "needs-std"
path = "src/bin/needs-std.rs"
required-features = ["std"]

[[bin]]
name = "both"
path = "src/bin/both.rs"
required-features = ["extra", "std"]
"""


def _crate(root: Path, settings_toml: str = "") -> Path:
    (root / "helper" / "src").mkdir(parents=True)
    (root / "helper" / "src" / "lib.rs").write_text("pub fn help() {}\n")
    (root / "helper" / "Cargo.toml").write_text('[package]\nname = "helper"\nversion = "0.1.0"\nedition = "2021"\n')
    manifest = make_crate(
        root / "app",
        "app",
        main_rs=MAIN,
        bins={"extra": MAIN, "needs-std": MAIN, "both": MAIN},
        manifest_extra='helper = { path = "../helper", optional = true }\n' + MANIFEST_EXTRA,
    )
    if settings_toml:
        (root / "app" / "toolchain.toml").write_text(settings_toml)
    return manifest


def _chosen(manifest: Path, binaries: list[str] | None = None) -> list[str]:
    settings = load_settings(manifest.parent)
    selections = select(load_project(manifest), None, binaries or [], settings.build)
    return sorted(b for s in selections for b in s.binaries)


@pytest.mark.parametrize(
    ("settings_toml", "built"),
    [
        ("", ["app", "needs-std"]),
        ('[build]\nfeatures = ["extra"]\n', ["app", "both", "extra", "needs-std"]),
        ('[build]\nfeatures = ["full"]\n', ["app", "both", "extra", "needs-std"]),  # full turns extra on
        ('[build]\nfeatures = ["app/extra"]\n', ["app", "both", "extra", "needs-std"]),
        ('[build]\nno-default-features = true\nfeatures = ["extra"]\n', ["app", "extra"]),
        ("[build]\nno-default-features = true\n", ["app"]),
        ("[build]\nall-features = true\n", ["app", "both", "extra", "needs-std"]),
    ],
)
def test_a_binary_is_chosen_when_the_build_enables_its_features(
    tmp_path: Path, settings_toml: str, built: list[str]
) -> None:
    assert _chosen(_crate(tmp_path, settings_toml)) == built


def test_a_binary_named_on_the_command_line_whose_features_are_off_is_refused(tmp_path: Path) -> None:
    manifest = _crate(tmp_path)
    with pytest.raises(UsageError) as refused:
        _chosen(manifest, ["extra"])
    assert "binary 'extra' of app needs the feature extra" in str(refused.value)
    assert 'features = ["extra"]' in (refused.value.hint or "")


def test_a_crate_whose_every_binary_is_off_says_which_features_would_build_one(tmp_path: Path) -> None:
    manifest = make_crate(
        tmp_path / "server",
        "server",
        main_rs=None,
        bins={"serve": MAIN},
        manifest_extra='\n[features]\ndist-server = []\n\n[[bin]]\nname = "serve"\n'
        'required-features = ["dist-server"]\n',
    )
    with pytest.raises(UsageError) as refused:
        _chosen(manifest)
    assert "no binary of server is built with this build's features" in str(refused.value)
    assert "serve needs dist-server" in str(refused.value)


@pytest.mark.slow
def test_the_cli_builds_the_crate_without_its_gated_binaries(tmp_path: Path) -> None:
    log, binaries, archived = host_build(_crate(tmp_path), tmp_path / "dist")
    assert "extra is not built: it needs the feature extra" in log
    assert binaries == ["app", "needs-std"]
    assert "extra" not in archived and {"app", "needs-std"} <= set(archived)
