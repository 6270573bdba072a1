"""The data the toolkit works from: targets, profiles and policies.

The package ships them (toolchain/data/, read with importlib.resources). A
project adds or overrides any of them with its own targets/, profiles/ or
policies/ folder beside its toolchain.toml, or with [targets.NAME],
[profiles.NAME] and [policies.NAME] tables in toolchain.toml. Layers merge
key by key (a list is replaced whole), the project's last, and the merged
document is converted to its model once: an unknown or wrong key in any
layer is reported against the file that sets it. Each record keeps the files it came from, for `doctor`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from toolchain.config.policies import Policy, policy_from_layers
from toolchain.config.profiles import CARGO_BUILTIN_PROFILES, Profile, profile_from_layers
from toolchain.config.schema import Layer, did_you_mean, load_toml
from toolchain.config.targets import Target, host_platform, target_from_layers
from toolchain.errors import ConfigError, UsageError

KINDS = ("targets", "profiles", "policies")
T = TypeVar("T")


def packaged(*parts: str) -> Path:
    """A file or folder of the package's data (installed as plain files)."""
    return Path(str(resources.files("toolchain").joinpath("data", *parts)))


def _layers(
    kind: str, project_dir: Path | None, tables: Mapping[str, Any], config_file: Path | None
) -> dict[str, list[Layer]]:
    layers: dict[str, list[Layer]] = {}
    for entry in sorted(resources.files("toolchain").joinpath("data", kind).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            path = packaged(kind, entry.name)
            layers.setdefault(path.stem, []).append(Layer(path, load_toml(path)))
    if project_dir is not None and (project_dir / kind).is_dir():
        for path in sorted((project_dir / kind).glob("*.toml")):
            layers.setdefault(path.stem, []).append(Layer(path, load_toml(path)))
    for name, table in tables.items():
        assert config_file is not None
        if not isinstance(table, dict):
            raise ConfigError(f"{config_file}: '{kind}.{name}' must be a table", hint=f"write it as [{kind}.{name}]")
        layers.setdefault(name, []).append(Layer(config_file, table, f"{kind}.{name}"))
    return layers


def _merged(
    kind: str,
    build: Callable[[str, list[Layer]], T],
    project_dir: Path | None,
    tables: Mapping[str, Any],
    config_file: Path | None,
) -> dict[str, T]:
    """Every record of a kind, each from its layers merged key by key and converted once."""
    return {name: build(name, stack) for name, stack in _layers(kind, project_dir, tables, config_file).items()}


@dataclass(frozen=True)
class Catalog:
    """Every target, profile and policy in force for one project."""

    targets: dict[str, Target]
    profiles: dict[str, Profile]
    policies: dict[str, Policy]
    project_dir: Path | None = None

    def target(self, triple: str) -> Target:
        if triple in self.targets:
            return self.targets[triple]
        raise UsageError(
            f"unknown target '{triple}'; {did_you_mean(triple, list(self.targets))}",
            hint="`invoke doctor` lists the known targets; a project adds its own in targets/TRIPLE.toml",
        )

    def profile(self, name: str) -> Profile:
        if name in self.profiles:
            return self.profiles[name]
        raise UsageError(
            f"unknown profile '{name}'; {did_you_mean(name, list(self.profiles))}",
            hint="a project adds its own in profiles/NAME.toml or [profiles.NAME] in toolchain.toml",
        )

    def policy_for(self, target: Target) -> Policy:
        for policy in self.policies.values():
            if policy.os == target.os:
                return policy
        raise UsageError(f"no policy for {target.os} binaries", hint=f"add policies/{target.os}.toml to the project")

    def component_machines(self, target: Target) -> tuple[str, ...]:
        return tuple(sorted(self.target(c).binary.machine for c in target.components))

    def host_triple(self) -> str:
        """The release target that matches this machine."""
        host = host_platform()
        for target in self.targets.values():
            if f"{target.os}-{target.arch}" == host and target.run.get(host) == "native" and target.release:
                return target.triple
        raise UsageError(f"this host ({host}) is not one of the release targets", hint="pass --target")


def load_catalog(
    project_dir: Path | None = None, config: Mapping[str, Any] | None = None, config_file: Path | None = None
) -> Catalog:
    """The packaged data with a project's folders and toolchain.toml tables over it."""
    config = config or {}
    targets = _merged("targets", target_from_layers, project_dir, config.get("targets", {}), config_file)
    for target in targets.values():
        for other in (*target.components, *([target.substitutes] if target.substitutes else [])):
            if other not in targets:
                raise ConfigError(
                    f"{target.source}: names unknown target '{other}'; {did_you_mean(other, list(targets))}",
                    hint="fix components/substitutes",
                )
    profiles = {name: Profile(name, f"cargo's built-in {name} profile", (), None) for name in CARGO_BUILTIN_PROFILES}
    profiles.update(_merged("profiles", profile_from_layers, project_dir, config.get("profiles", {}), config_file))
    policies = _merged("policies", policy_from_layers, project_dir, config.get("policies", {}), config_file)
    return Catalog(targets, profiles, policies, project_dir)


_current: Catalog | None = None


def use(catalog: Catalog) -> None:
    """Make `catalog` the one in force (load_settings calls this once)."""
    global _current
    _current = catalog


def current() -> Catalog:
    """The catalog in force: the project's once settings are loaded, else the packaged data."""
    global _current
    if _current is None:
        _current = load_catalog()
    return _current
