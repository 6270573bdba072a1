"""Release targets: the model of a target document (targets/TRIPLE.toml).
The documents come from toolchain.config.catalog (packaged data merged with a
project's own)."""

# No `from __future__ import annotations` here: msgspec gets the field types as objects
# instead of strings it would evaluate when the first file is read.
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from toolchain.config.schema import Layer, Model, decode, did_you_mean, load_record
from toolchain.errors import ConfigError

Host = Literal["linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-aarch64", "windows-x86_64"]
RunnerName = Literal["native", "zig", "cross", "container"]
HOSTS: tuple[str, ...] = get_args(Host)
if TYPE_CHECKING:
    HostKey = str  # what callers look a host up by
else:
    HostKey = Host  # what msgspec checks the keys against
RUNNER_NAMES: tuple[str, ...] = get_args(RunnerName)
Machine = Literal["x86_64", "aarch64", "universal"]
Version = Annotated[str, Meta(pattern=r"^\d+\.\d+$")]


class BinaryExpectation(Model, frozen=True):
    """[binary]: what every built executable must be."""

    format: Literal["elf", "macho", "pe"]
    machine: Machine
    bits: Literal[32, 64]
    endianness: Literal["little", "big"]
    exe_suffix: Literal["", ".exe"]


class Archive(Model, frozen=True):
    format: Literal["tar.xz", "zip"]


class Compat(Model, frozen=True):
    glibc: Version | None = None  # highest glibc symbol version allowed
    macos: Version | None = None  # minimum macOS version
    windows: str | None = None  # minimum Windows version


class TargetToolchain(Model, frozen=True):
    """[toolchain]: what building the target needs."""

    linker: str | None = None  # C linker the native runner uses from a foreign host
    linker_package: str | None = None  # Debian package that provides the linker
    cxx_compiler: str | None = None  # C++ compiler cc-rs runs for the target's C++ sources (native runner)
    cxx_package: str | None = None  # Debian package that provides it
    # Variables for the target's C build scripts (cc-rs, pkg-config), each set as NAME_<triple> unless
    # the user set NAME in any spelling those crates read.
    build_env: dict[str, str] = {}  # noqa: RUF012 - msgspec copies defaults
    # The folder the target's C compiler takes the OS's headers from, where sources may spell them in
    # another case (windows-gnu: mingw's lower-case names; compile/header_case.py).
    header_folder: str | None = None
    std_package: str | None = None  # Debian package with a prebuilt std for the target
    build_std: bool = False  # the offline route builds std from rust-src
    abi: Literal["gnu", "msvc"] | None = None  # which C runtime ABI
    sdk: Literal["macos"] | None = None  # platform SDK that framework-linking crates need
    # Libraries a crate may link without the SDK (the linker brings them); any other is the SDK's.
    sdk_free_libraries: tuple[str, ...] = ()


class TargetCI(Model, frozen=True):
    github_runs_on: str | None = None  # GitHub Actions runner label of the job that builds it


class TargetFile(Model, frozen=True):
    """A targets/TRIPLE.toml document."""

    triple: Annotated[str, Meta(pattern=r"^[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(-[a-z0-9_]+)?$")]
    description: str
    os: Literal["linux", "macos", "windows"]
    arch: Machine
    binary: BinaryExpectation
    archive: Archive
    runners: dict[HostKey, tuple[str, ...]]  # runner preference per host, first usable wins
    release: bool = False  # one of the release targets built by --all
    substitutes: str | None = None  # built by --all in place of this release target where that cannot be built
    components: tuple[str, ...] = ()  # targets whose binaries are joined into this one
    compat: Compat = Compat()
    toolchain: TargetToolchain = TargetToolchain()
    ci: TargetCI = TargetCI()
    # How a built binary runs on each host (msgspec copies the empty default).
    run: dict[HostKey, Literal["native", "qemu", "wine", "none"]] = {}  # noqa: RUF012


class Target(TargetFile, frozen=True, kw_only=True):
    """A target in force: its document and where its values came from."""

    source: Path
    origins: tuple[str, ...] = ()  # every file (or table) its values came from, lowest first

    def runner_preference(self, host: str) -> tuple[str, ...]:
        return self.runners.get(host, ())


def c_build_env_names(name: str, triple: str) -> tuple[str, str, str, str]:
    """The spellings of a C build variable (CFLAGS, CXXSTDLIB...) that cc-rs and pkg-config read
    for a target, first found wins: NAME_<triple>, NAME_<triple_with_underscores>, TARGET_NAME, NAME."""
    return (f"{name}_{triple}", f"{name}_{triple.replace('-', '_')}", f"TARGET_{name}", name)


def target_from_layers(name: str, layers: list[Layer]) -> Target:
    document = decode(TargetFile, layers)
    source = layers[-1].path
    for host, names in document.runners.items():
        for runner in names:
            if runner not in RUNNER_NAMES:
                raise ConfigError(
                    f"{source}: unknown runner '{runner}' for host {host}; {did_you_mean(runner, RUNNER_NAMES)}",
                    hint="fix the runners table",
                )
    if name != document.triple:
        raise ConfigError(
            f"{source}: '{name}' does not match its triple '{document.triple}'", hint=f"name it {document.triple}"
        )
    return Target(**msgspec.structs.asdict(document), source=source, origins=tuple(la.origin for la in layers))


def load_target_file(path: Path) -> Target:
    """One target file on its own (tests and tools; builds use the catalog)."""
    return load_record(path, target_from_layers)


def host_platform() -> str:
    """This machine as a runner-preference key, e.g. linux-x86_64."""
    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), "unknown")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(machine, machine)
    return f"{system}-{arch}"
