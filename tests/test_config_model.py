"""The one declaration of each TOML file type (msgspec Structs in toolchain.config
and toolchain.verify.policy): unknown keys, wrong types and values are one-line
ConfigErrors naming the file, the line and the key, in whichever layer they are."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec
import pytest
from conftest import run_invoke

from toolchain import REPO_ROOT
from toolchain.config.catalog import load_catalog
from toolchain.config.policies import PolicyFile
from toolchain.config.profiles import ProfileFile
from toolchain.config.schema import Layer, decode, load_toml
from toolchain.config.settings import DEFAULTS_FILE, SettingsFile, load_settings
from toolchain.config.targets import TargetFile
from toolchain.errors import ConfigError

LINUX = "x86_64-unknown-linux-gnu"

# (file beside toolchain.toml or toolchain.toml itself, its text, the message after "FILE:")
CASES = [
    # settings: toolchain.toml over the packaged defaults.toml
    ("toolchain.toml", '[build]\nprofile = "dist"\nrunnr = "zig"\n',
     "3: unknown key 'build.runnr'; did you mean 'runner'?"),
    ("toolchain.toml", '[build]\n\nlocked = "yes"\n', "3: 'build.locked' must be true/false, not 'yes'"),
    ("toolchain.toml", '[build]\nrunner = "zgi"\n',
     "2: 'build.runner' is 'zgi' (did you mean 'zig'?); allowed values: 'auto', 'native', 'zig', 'cross', 'container'"),
    ("toolchain.toml", "[s3]\nmultipart-chunk = 1024\n", "2: 's3.multipart-chunk' is 1024, below 5242880"),
    ("toolchain.toml", '[github]\napi-url = "ftp://x"\n',
     r"2: 'github.api-url' is 'ftp://x', which does not match https?://\S+"),
    ("toolchain.toml", '[s3]\nendpoint-url = ""\n[cache]\nendpoint-url = "x"\n', "4: 'cache.endpoint-url' is 'x'"),
    ("toolchain.toml", "[bild]\nlocked = true\n", "1: unknown key 'bild'; did you mean 'build'?"),
    ("toolchain.toml", "build = 3\n", "1: 'build' must be a table; write it as [build]"),
    ("toolchain.toml", '[package]\nformats = ["sbom", 3]\n',
     "2: every item of 'package.formats' must be a string, not 3"),
    ("toolchain.toml", '[update]\nupgrade-checks = [["migrate"], []]\n',
     "2: 'update.upgrade-checks' holds an empty list; give each command its arguments"),
    ("toolchain.toml", '[update]\n\nupgrade-checks = [["a\\tb"]]\n',
     "3: 'update.upgrade-checks' is 'a\\tb', which does not match [^\\t\\n\\r']+; write each argument without tabs"),
    # targets: a project's targets/TRIPLE.toml, and [targets.TRIPLE] in toolchain.toml
    (f"targets/{LINUX}.toml", '\n[toolchain]\nlinkr = "gcc"\n',
     "3: unknown key 'toolchain.linkr'; did you mean 'linker'?"),
    (f"targets/{LINUX}.toml", '[binary]\nbits = "64"\n', "2: 'binary.bits' must be an integer, not '64'"),
    ("toolchain.toml", f'[targets.{LINUX}.run]\nlinux-x86_64 = "qemu2"\n',
     f"2: 'targets.{LINUX}.run.linux-x86_64' is 'qemu2' (did you mean 'qemu'?)"),
    ("toolchain.toml", f'[targets.{LINUX}.runners]\nlinux-x86 = ["zig"]\n',
     f"2: unknown key 'targets.{LINUX}.runners.linux-x86'; did you mean 'linux-x86_64'?"),
    # profiles
    ("profiles/dist.toml", '[cargo]\nlt0 = "thin"\n', "2: unknown key 'cargo.lt0'; did you mean 'lto'?"),
    ("profiles/dist.toml", "[cargo]\nopt-level = true\n",
     "2: 'cargo.opt-level' must be an integer or a string, not true"),
    ("toolchain.toml", '[profiles.dist.cargo]\n\nstrip = "symbol"\n',
     "3: 'profiles.dist.cargo.strip' is 'symbol' (did you mean 'symbols'?)"),
    # policies
    ("policies/linux.toml", '[rules]\npei = "warn"\n', "2: unknown key 'rules.pei'; did you mean 'pie'?"),
    ("policies/linux.toml", '\n[libraries]\nallowed = "libc.so.6"\n',
     "3: 'libraries.allowed' must be a list, not 'libc.so.6'"),
    ("toolchain.toml", '[policies.linux.windows]\nsubsystm = "windows_gui"\n',
     "2: unknown key 'policies.linux.windows.subsystm'; did you mean 'subsystem'?"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), CASES)
def test_a_bad_key_names_file_line_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, message: str
) -> None:
    monkeypatch.delenv("TOOLCHAIN_CONFIG", raising=False)
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    (tmp_path / "toolchain.toml").touch()  # the catalog folders sit beside it
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value).startswith(f"{path}:{message}"), str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3


def test_every_layer_is_checked_and_blamed(tmp_path: Path) -> None:
    """A typo in the lower layer is reported in that file, though the upper one sets the same table."""
    lower = tmp_path / "lower.toml"
    lower.write_text(DEFAULTS_FILE.read_text().replace("timings = false", "timngs = false"))
    upper = tmp_path / "upper.toml"
    upper.write_text('[build]\nprofile = "size"\n')
    layers = [Layer(lower, load_toml(lower)), Layer(upper, load_toml(upper))]
    line = lower.read_text().splitlines().index("timngs = false") + 1
    with pytest.raises(ConfigError, match=rf"^{lower}:{line}: unknown key 'build.timngs'; did you mean 'timings'\?"):
        decode(SettingsFile, layers)
    # A key the defaults lack is missing from the defaults, whatever the project sets.
    lower.write_text(DEFAULTS_FILE.read_text().replace("timings = false", ""))
    with pytest.raises(ConfigError, match=rf"^{lower}: required key 'build.timings' is missing"):
        decode(SettingsFile, [Layer(lower, load_toml(lower)), Layer(upper, load_toml(upper))])


def test_a_partial_project_layer_merges_over_the_packaged_one(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "dist.toml").write_text('[cargo]\nlto = "fat"\npanic = "abort"\n')
    dist = load_catalog(tmp_path).profile("dist")
    assert dist.settings == (
        ("inherits", "release"), ("lto", "fat"), ("strip", "symbols"), ("codegen-units", 1), ("panic", "abort")
    )  # fmt: skip


def _structs(kind: object) -> set[type[msgspec.Struct]]:
    """Every Struct a model's keys are decoded into."""
    found: set[type[msgspec.Struct]] = set()
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        found.add(kind)
        for field in msgspec.structs.fields(kind):
            found |= _structs(field.type)
    for arg in typing.get_args(kind):
        found |= _structs(arg)
    return found


@pytest.mark.parametrize("model", [SettingsFile, TargetFile, ProfileFile, PolicyFile])
def test_every_table_forbids_unknown_keys_and_is_frozen(model: type[msgspec.Struct]) -> None:
    tables = _structs(model)
    assert len(tables) > 1
    for table in tables:
        config = table.__struct_config__
        assert config.forbid_unknown_fields and config.frozen, table.__name__


def test_the_cli_reports_a_config_error_as_one_line_with_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "toolchain.toml"
    config.write_text('[update]\nkeep = "3"\n')
    result = run_invoke("package", "--out-dir", str(tmp_path), env={"TOOLCHAIN_CONFIG": str(config)})
    assert result.returncode == 3, result.stderr
    assert f"{config}:2: 'update.keep' must be an integer, not '3'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_defaults_assume_nothing_of_the_app_and_the_demo_declares_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real app has --version and nothing else we can count on: the demo's
    migrate/doctor contract lives in its own toolchain.toml, which a checkout
    of the toolkit uses outside any crate (where the demo is the project)."""
    monkeypatch.delenv("TOOLCHAIN_CONFIG", raising=False)
    generic = load_settings(tmp_path)
    assert generic.update.upgrade_checks == (("--version",),)
    assert (generic.update.schema_command, generic.update.seed_commands, generic.smoke.checks) == ((), (), ())
    demo = load_settings(REPO_ROOT / "docs")
    assert demo.sources[-1] == REPO_ROOT / "demo" / "toolchain.toml"
    assert demo.update.upgrade_checks == (("migrate",), ("doctor",))
    assert demo.update.schema_command == ("migrate", "--status") and demo.smoke.checks == (("doctor",),)
    assert demo.manifest() == REPO_ROOT / "demo" / "Cargo.toml"


def test_the_options_layer_puts_the_command_line_over_the_files_once() -> None:
    """config/options.py is the one place the command line meets the settings: a choice left out
    keeps the file's value, a given one wins, and merging the merged settings changes nothing."""
    from toolchain.config.options import merged
    from toolchain.records.build_options import BuildOptions

    files = load_settings()
    files = msgspec.structs.replace(files, build=msgspec.structs.replace(files.build, features=("a",), locked=True))
    kept = merged(files, BuildOptions())
    assert kept.build == files.build and kept.cache == files.cache
    options = BuildOptions(profile="fast", runner="zig", features=("a", "b"), locked=False, timings=True, cache="local")
    once = merged(files, options)
    assert (once.build.profile, once.build.runner, once.build.features) == ("fast", "zig", ("a", "b"))
    assert (once.build.locked, once.build.timings, once.cache.backend) == (False, True, "local")
    assert merged(once, options) == once


def test_an_unknown_cache_is_refused_by_the_options_layer_with_the_fix() -> None:
    from toolchain.config.options import merged
    from toolchain.errors import UsageError
    from toolchain.records.build_options import BuildOptions

    with pytest.raises(UsageError, match=r"unknown compile cache 'locl'; did you mean 'local'") as caught:
        merged(load_settings(), BuildOptions(cache="locl"))
    assert caught.value.hint == "pass --cache none, local or s3"
