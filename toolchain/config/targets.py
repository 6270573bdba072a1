"""Release targets: the schema of a target document and the record built
from it. The documents come from toolchain.config.catalog (packaged data merged
with a project's own)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.config.schema import Key, Table, did_you_mean, load_toml, validate
from toolchain.errors import ConfigError

HOSTS = ("linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-aarch64", "windows-x86_64")
RUNNER_NAMES = ("native", "zig", "cross", "container")
GLIBC_PATTERN = r"\d+\.\d+"
MACOS_PATTERN = r"\d+\.\d+"

TARGET_SCHEMA = Table(
    keys={
        "triple": Key((str,), required=True, pattern=r"[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(-[a-z0-9_]+)?"),
        "description": Key((str,), required=True),
        "os": Key((str,), required=True, choices=("linux", "macos", "windows")),
        "arch": Key((str,), required=True, choices=("x86_64", "aarch64", "universal")),
        "release": Key((bool,), doc="one of the release targets built by --all"),
        "substitutes": Key((str,), doc="built by --all in place of this release target where that cannot be built"),
        "components": Key((list,), item_types=(str,), doc="targets whose binaries are joined into this one"),
        "binary": Table(
            required=True,
            keys={
                "format": Key((str,), required=True, choices=("elf", "macho", "pe")),
                "machine": Key((str,), required=True, choices=("x86_64", "aarch64", "universal")),
                "bits": Key((int,), required=True, choices=(32, 64)),
                "endianness": Key((str,), required=True, choices=("little", "big")),
                "exe-suffix": Key((str,), required=True, choices=("", ".exe")),
            },
        ),
        "archive": Table(
            required=True,
            keys={"format": Key((str,), required=True, choices=("tar.xz", "zip"))},
        ),
        "compat": Table(
            keys={
                "glibc": Key((str,), pattern=GLIBC_PATTERN, doc="highest glibc symbol version allowed"),
                "macos": Key((str,), pattern=MACOS_PATTERN, doc="minimum macOS version"),
                "windows": Key((str,), doc="minimum Windows version"),
            }
        ),
        "runners": Table(
            required=True,
            key_choices=HOSTS,
            values=Key((list,), item_types=(str,)),
            doc="runner preference per host, first usable wins",
        ),
        "toolchain": Table(
            keys={
                "linker": Key((str,), doc="C linker the native runner uses from a foreign host"),
                "linker-package": Key((str,), doc="Debian package that provides the linker"),
                "std-package": Key((str,), doc="Debian package with a prebuilt std for the target"),
                "build-std": Key((bool,), doc="offline route builds std from rust-src"),
                "abi": Key((str,), choices=("gnu", "msvc"), doc="which C runtime ABI"),
                "sdk": Key((str,), choices=("macos",), doc="platform SDK that framework-linking crates need"),
                "sdk-crates": Key(
                    (list,), item_types=(str,), doc="crates that link the SDK's frameworks (checked before cargo)"
                ),
            }
        ),
        "ci": Table(
            keys={"github-runs-on": Key((str,), doc="GitHub Actions runner label of the job that builds it")},
        ),
        "run": Table(
            key_choices=HOSTS,
            values=Key((str,), choices=("native", "qemu", "wine", "none")),
            doc="how a built binary can be run on each host",
        ),
    }
)


@dataclass(frozen=True)
class BinaryExpectation:
    format: str
    machine: str
    bits: int
    endianness: str
    exe_suffix: str


@dataclass(frozen=True)
class Target:
    triple: str
    description: str
    os: str
    arch: str
    release: bool
    binary: BinaryExpectation
    archive_format: str
    glibc: str | None
    macos: str | None
    runners: dict[str, tuple[str, ...]]
    linker: str | None
    linker_package: str | None
    std_package: str | None
    build_std: bool
    run: dict[str, str]
    source: Path
    substitutes: str | None = None
    components: tuple[str, ...] = ()
    sdk: str | None = None
    sdk_crates: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()  # every file (or table) its values came from, lowest first
    github_runs_on: str | None = None

    def runner_preference(self, host: str) -> tuple[str, ...]:
        return self.runners.get(host, ())


def target_from_document(
    record_name: str, document: dict[str, Any], path: Path, origins: tuple[str, ...] = ()
) -> Target:
    binary = document["binary"]
    compat = document.get("compat", {})
    tools = document.get("toolchain", {})
    for host, names in document["runners"].items():
        for name in names:
            if name not in RUNNER_NAMES:
                raise ConfigError(
                    f"{path}: unknown runner '{name}' for host {host}; {did_you_mean(name, RUNNER_NAMES)}",
                    hint="fix the runners table",
                )
    if record_name != document["triple"]:
        raise ConfigError(
            f"{path}: '{record_name}' does not match its triple '{document['triple']}'",
            hint=f"name it {document['triple']}",
        )
    return Target(
        triple=document["triple"],
        description=document["description"],
        os=document["os"],
        arch=document["arch"],
        release=document.get("release", False),
        binary=BinaryExpectation(
            format=binary["format"],
            machine=binary["machine"],
            bits=binary["bits"],
            endianness=binary["endianness"],
            exe_suffix=binary["exe-suffix"],
        ),
        archive_format=document["archive"]["format"],
        glibc=compat.get("glibc"),
        macos=compat.get("macos"),
        runners={host: tuple(names) for host, names in document["runners"].items()},
        linker=tools.get("linker"),
        linker_package=tools.get("linker-package"),
        std_package=tools.get("std-package"),
        build_std=tools.get("build-std", False),
        run=dict(document.get("run", {})),
        source=path,
        substitutes=document.get("substitutes"),
        components=tuple(document.get("components", ())),
        sdk=tools.get("sdk"),
        sdk_crates=tuple(tools.get("sdk-crates", ())),
        origins=origins or (str(path),),
        github_runs_on=document.get("ci", {}).get("github-runs-on"),
    )


def load_target_file(path: Path) -> Target:
    """One target file on its own (tests and tools; builds use the catalog)."""
    document = load_toml(path)
    validate(document, TARGET_SCHEMA, path)
    return target_from_document(path.stem, document, path)


def host_platform() -> str:
    """This machine as a runner-preference key, e.g. linux-x86_64."""
    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), "unknown")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(machine, machine)
    return f"{system}-{arch}"
