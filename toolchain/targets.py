"""Release targets, loaded from targets/*.toml and validated."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import REPO_ROOT
from toolchain.errors import ConfigError, UsageError
from toolchain.schema import Key, Table, did_you_mean, load_toml, validate

TARGETS_DIR = REPO_ROOT / "targets"

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
            }
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

    def runner_preference(self, host: str) -> tuple[str, ...]:
        return self.runners.get(host, ())


def _build(document: dict[str, Any], path: Path) -> Target:
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
    if path.stem != document["triple"]:
        raise ConfigError(
            f"{path}: file name does not match triple '{document['triple']}'",
            hint=f"rename it to {document['triple']}.toml",
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
    )


def load_target_file(path: Path) -> Target:
    document = load_toml(path)
    validate(document, TARGET_SCHEMA, path)
    return _build(document, path)


@functools.cache
def all_targets(directory: Path = TARGETS_DIR) -> dict[str, Target]:
    targets = {}
    for path in sorted(directory.glob("*.toml")):
        target = load_target_file(path)
        targets[target.triple] = target
    for target in targets.values():
        for other in (*target.components, *([target.substitutes] if target.substitutes else [])):
            if other not in targets:
                raise ConfigError(
                    f"{target.source}: names unknown target '{other}'; {did_you_mean(other, list(targets))}",
                    hint="fix components/substitutes",
                )
    return targets


def get_target(triple: str) -> Target:
    targets = all_targets()
    if triple in targets:
        return targets[triple]
    raise UsageError(
        f"unknown target '{triple}'; {did_you_mean(triple, list(targets))}",
        hint="`invoke doctor` lists the known targets",
    )


def host_platform() -> str:
    """This machine as a runner-preference key, e.g. linux-x86_64."""
    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), "unknown")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(machine, machine)
    return f"{system}-{arch}"


def host_triple() -> str:
    """The release target that matches this machine."""
    host = host_platform()
    for target in all_targets().values():
        if f"{target.os}-{target.arch}" == host and target.run.get(host) == "native" and target.release:
            return target.triple
    raise UsageError(f"this host ({host}) is not one of the release targets", hint="pass --target")
