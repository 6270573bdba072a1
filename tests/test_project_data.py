"""A project's own targets, profiles and policies over the packaged ones,
toolchain.toml found as cargo finds Cargo.toml, and the default manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.config.catalog import load_catalog, packaged
from toolchain.config.settings import default_manifest, load_settings
from toolchain.errors import ConfigError, ProjectError


def test_packaged_data_is_read_from_the_package() -> None:
    known = load_catalog()
    linux = known.policies["linux"]
    assert linux.origins == (str(packaged("policies", "linux.toml")),)
    assert "toolchain/data/policies" in linux.origins[0]
    assert known.profile("dist").origins == (str(packaged("profiles", "dist.toml")),)


def test_project_folder_overrides_one_key_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "linux.toml").write_text('[rules]\npie = "error"\n')
    known = load_catalog(tmp_path)
    linux = known.policies["linux"]
    assert linux.rules["pie"] == "error"
    assert linux.rules["glibc-floor"] == "error", "keys not overridden keep the packaged value"
    assert linux.origins == (str(packaged("policies", "linux.toml")), str(tmp_path / "policies" / "linux.toml"))
    assert load_catalog().policies["linux"].rules["pie"] == "warn", "the packaged data is unchanged"


def test_toolchain_toml_tables_add_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toolchain.toml").write_text(
        '[profiles.tiny]\ndescription = "smallest"\n[profiles.tiny.cargo]\ninherits = "release"\nopt-level = "z"\n\n'
        '[targets.aarch64-unknown-linux-gnu.compat]\nglibc = "2.28"\n'
    )
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found in a folder above, as cargo finds Cargo.toml
    monkeypatch.delenv("TOOLCHAIN_CONFIG", raising=False)
    settings = load_settings()
    assert dict(settings.catalog.profile("tiny").settings)["opt-level"] == "z"
    aarch64 = settings.catalog.target("aarch64-unknown-linux-gnu")
    assert aarch64.compat.glibc == "2.28"
    assert aarch64.origins[-1] == f"{tmp_path / 'toolchain.toml'} [targets.aarch64-unknown-linux-gnu]"


def test_unknown_key_in_a_project_override_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "x86_64-unknown-linux-gnu.toml").write_text('[compat]\nglibcc = "2.28"\n')
    with pytest.raises(ConfigError, match=r"x86_64-unknown-linux-gnu.toml:2: unknown key 'compat.glibcc'; did you"):
        load_catalog(tmp_path)


def test_a_new_project_target_must_be_complete(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "riscv64gc-unknown-linux-gnu.toml").write_text('triple = "riscv64gc-unknown-linux-gnu"\n')
    with pytest.raises(ConfigError, match="required key 'description' is missing"):
        load_catalog(tmp_path)


def test_toolchain_config_naming_a_missing_file_or_a_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="TOOLCHAIN_CONFIG names .*nope.toml, which is missing"):
        load_settings(tmp_path)
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match="which is a folder"):
        load_settings(tmp_path)


def test_non_utf8_toolchain_toml_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toolchain.toml").write_bytes(b'[build]\nprofile = "\xff"\n')
    monkeypatch.delenv("TOOLCHAIN_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(tmp_path)


def test_default_manifest_walks_up_like_cargo(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    assert default_manifest(tmp_path / "src" / "deep") == tmp_path / "Cargo.toml"


def test_no_manifest_outside_a_crate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no Cargo.toml in .* or any folder above it") as caught:
        default_manifest(tmp_path)
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[size]\nmax-growth-percent = nan\n", "'size.max-growth-percent' is nan"),
        ("[size]\nmax-growth-percent = inf\n", "'size.max-growth-percent' is inf"),
        ("[update]\nkeep = -3\n", "'update.keep' is -3, below 0"),
        ("[build]\nprofile = 3\n", "'build.profile' must be a string"),
    ],
)
def test_settings_out_of_range_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    (tmp_path / "toolchain.toml").write_text(line)
    monkeypatch.delenv("TOOLCHAIN_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(tmp_path)


def test_keygen_with_an_empty_out_dir_writes_nothing(tmp_path: Path) -> None:
    from conftest import run_invoke

    result = run_invoke("keygen", "--out-dir", "", cwd=tmp_path)
    assert result.returncode == 2 and "--out-dir is required" in result.stderr
    assert list(tmp_path.iterdir()) == []
