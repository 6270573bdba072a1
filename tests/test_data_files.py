"""Every data file is valid; the models reject what they should."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.config.catalog import load_catalog, packaged
from toolchain.config.profiles import load_profile_file
from toolchain.config.schema import load_toml
from toolchain.config.settings import DEFAULTS_FILE, load_settings
from toolchain.config.targets import load_target_file
from toolchain.errors import ConfigError, UsageError

TARGETS_DIR = packaged("targets")
PROFILES_DIR = packaged("profiles")

RELEASE_TARGETS = {
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
}


@pytest.mark.parametrize("path", sorted(TARGETS_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_target_file_is_valid_and_consistent(path: Path) -> None:
    target = load_target_file(path)
    assert target.triple == path.stem
    expected_format = {"linux": "elf", "macos": "macho", "windows": "pe"}[target.os]
    assert target.binary.format == expected_format
    assert target.binary.machine == target.arch
    assert target.binary.bits == 64
    assert target.triple.startswith(target.arch)
    if target.os == "windows":
        assert (target.binary.exe_suffix, target.archive.format) == (".exe", "zip")
    else:
        assert (target.binary.exe_suffix, target.archive.format) == ("", "tar.xz")
    if target.os == "linux":
        assert target.compat.glibc is not None and target.compat.macos is None
    if target.os == "macos":
        assert target.compat.macos is not None and target.compat.glibc is None
    assert target.runners, "every target names the runners that can build it"


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_profile_file_is_valid(path: Path) -> None:
    profile = load_profile_file(path)
    assert dict(profile.settings)["inherits"] in ("release", "dev")
    assert profile.config_args(), "a profile file defines at least inherits"


def test_the_release_targets_and_windows_gnu_are_all_there() -> None:
    targets = load_catalog().targets
    assert set(targets) >= RELEASE_TARGETS
    assert {t for t, v in targets.items() if v.release} == RELEASE_TARGETS
    assert "x86_64-pc-windows-gnu" in targets


def test_required_profiles_have_the_settings_the_design_names() -> None:
    dist = dict(load_catalog().profile("dist").settings)
    assert dist == {"inherits": "release", "lto": "thin", "strip": "symbols", "codegen-units": 1}
    size = dict(load_catalog().profile("size").settings)
    assert size["opt-level"] == "z" and size["lto"] == "fat" and size["panic"] == "abort"
    assert dict(load_catalog().profile("fast").settings)["lto"] is False
    # No UPX anywhere: no data file mentions it.
    for path in [*PROFILES_DIR.glob("*.toml"), *TARGETS_DIR.glob("*.toml"), DEFAULTS_FILE]:
        assert "upx" not in path.read_text().lower()


def test_profile_config_args_are_valid_cargo_config() -> None:
    args = load_catalog().profile("dist").config_args()
    assert args == [
        "--config", 'profile.dist.inherits="release"',
        "--config", 'profile.dist.lto="thin"',
        "--config", 'profile.dist.strip="symbols"',
        "--config", "profile.dist.codegen-units=1",
    ]  # fmt: skip


def test_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    bad = tmp_path / "dist.toml"
    bad.write_text('description = "x"\n\n[cargo]\ninherits = "release"\nlt0 = "thin"\n')
    with pytest.raises(ConfigError) as caught:
        load_profile_file(bad)
    message = str(caught.value)
    assert f"{bad}:5" in message
    assert "unknown key 'cargo.lt0'" in message and "did you mean 'lto'?" in message


def test_wrong_value_names_the_allowed_ones(tmp_path: Path) -> None:
    bad = tmp_path / "dist.toml"
    bad.write_text('description = "x"\n[cargo]\ninherits = "release"\nlto = "thn"\n')
    with pytest.raises(ConfigError, match=r"'cargo.lto' is 'thn' \(did you mean 'thin'\?\)"):
        load_profile_file(bad)


def test_wrong_type_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "dist.toml"
    bad.write_text('description = "x"\n[cargo]\ninherits = "release"\ncodegen-units = "1"\n')
    with pytest.raises(ConfigError, match=r"'cargo.codegen-units' must be an integer"):
        load_profile_file(bad)


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "x86_64-unknown-linux-gnu.toml"
    bad.write_text('triple = "x86_64-unknown-linux-gnu"\ndescription = "oops\nos = "linux"\n')
    with pytest.raises(ConfigError) as caught:
        load_toml(bad)
    assert f"{bad}:2: malformed TOML" in str(caught.value)


def test_target_runner_names_are_checked(tmp_path: Path) -> None:
    source = (TARGETS_DIR / "x86_64-unknown-linux-gnu.toml").read_text()
    bad = tmp_path / "x86_64-unknown-linux-gnu.toml"
    bad.write_text(source.replace('["zig", "native", "cross"]', '["natve"]'))
    with pytest.raises(ConfigError, match=r"unknown runner 'natve'.*did you mean 'native'"):
        load_target_file(bad)


def test_target_host_keys_are_checked(tmp_path: Path) -> None:
    source = (TARGETS_DIR / "aarch64-unknown-linux-gnu.toml").read_text()
    bad = tmp_path / "aarch64-unknown-linux-gnu.toml"
    bad.write_text(source.replace("linux-aarch64 = [", "linux-arm64 = ["))
    with pytest.raises(ConfigError, match=r"unknown key 'runners.linux-arm64'; did you mean 'linux-aarch64'"):
        load_target_file(bad)


def test_missing_required_key(tmp_path: Path) -> None:
    source = (TARGETS_DIR / "x86_64-apple-darwin.toml").read_text()
    bad = tmp_path / "x86_64-apple-darwin.toml"
    bad.write_text(source.replace('exe-suffix = ""\n', ""))
    with pytest.raises(ConfigError, match=r"required key 'binary.exe-suffix' is missing"):
        load_target_file(bad)


def test_unknown_target_and_profile_suggest_the_nearest() -> None:
    with pytest.raises(UsageError, match="did you mean 'aarch64-apple-darwin'"):
        load_catalog().target("aarch64-apple-darwn")
    with pytest.raises(UsageError, match="did you mean 'size'"):
        load_catalog().profile("sise")


def test_project_settings_override_defaults_and_are_validated(tmp_path: Path) -> None:
    (tmp_path / "toolchain.toml").write_text('[build]\nprofile = "size"\nout-dir = "artifacts"\n')
    settings = load_settings(tmp_path)
    assert settings.build.profile == "size"
    assert settings.out_dir == tmp_path / "artifacts"
    assert settings.build.runner == "auto"  # still the default
    (tmp_path / "toolchain.toml").write_text('[build]\nprofle = "size"\n')
    with pytest.raises(ConfigError, match="did you mean 'profile'"):
        load_settings(tmp_path)
