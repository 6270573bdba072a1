"""The binary policy's data model: policies/OS.toml (the toolkit's and a project's layers) and
the library lists they name. Loaded with the settings; verify/policy.py evaluates a binary
against it."""

# No `from __future__ import annotations` here: msgspec gets the field types as objects
# instead of strings it would evaluate when the first policy is read.
import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import msgspec

from toolchain.config.schema import Layer, Model, decode, load_record
from toolchain.errors import ConfigError

Severity = Literal["error", "warn", "report"]
Rule = Literal[
    "format", "machine", "bits", "endianness", "exe-suffix", "stripped",
    "glibc-floor", "libraries", "pie", "nx", "relro", "stack-protector",
    "macos-min", "code-signature", "macos-signature", "subsystem", "aslr", "high-entropy-va", "authenticode",
]  # fmt: skip
SEVERITIES: tuple[str, ...] = get_args(Severity)
RULES: tuple[str, ...] = get_args(Rule)
if TYPE_CHECKING:
    RuleKey = str  # what callers look a rule up by
else:
    RuleKey = Rule  # what msgspec checks the keys against


class AllowedLibraries(Model, frozen=True):
    """[libraries]: what a binary may link. The toolkit's policies fill `lists`
    and `system` from the OS's real library set; a project adds `allowed`."""

    lists: tuple[str, ...] = ()  # files of library names in the toolkit's data/policies/, one a line
    system: tuple[str, ...] = ()  # fnmatch patterns of what the OS ships, beside the lists
    allowed: tuple[str, ...] = ()  # the project's own additions (fnmatch patterns)
    hints: dict[str, str] = msgspec.field(default_factory=dict)  # pattern -> how to do without such a library


class WindowsRules(Model, frozen=True):
    subsystem: Literal["windows_cui", "windows_gui"] | None = None


class PolicyFile(Model, frozen=True):
    """A policies/OS.toml document."""

    description: str
    os: Literal["linux", "macos", "windows"]
    rules: dict[RuleKey, Severity]  # rule -> severity
    libraries: AllowedLibraries = AllowedLibraries()
    windows: WindowsRules = WindowsRules()


class Policy(PolicyFile, frozen=True, kw_only=True):
    """A policy in force: its document and where its values came from."""

    name: str
    source: Path
    origins: tuple[str, ...] = ()  # every file (or table) its values came from, lowest first


def policy_from_layers(name: str, layers: list[Layer]) -> Policy:
    document = decode(PolicyFile, layers)
    for listed in document.libraries.lists:
        if not list_file(listed).is_file():
            known = sorted(p.name for p in list_file("").iterdir() if p.suffix == ".txt")
            raise ConfigError(
                f"policy '{name}' ({layers[-1].origin}) names the library list '{listed}', "
                "which the toolkit does not have",
                hint=f"[libraries] lists takes {', '.join(known)}; add your own names to [libraries] allowed",
            )
    return Policy(
        **msgspec.structs.asdict(document),
        name=name,
        source=layers[-1].path,
        origins=tuple(layer.origin for layer in layers),
    )


def load_policy_file(path: Path) -> Policy:
    """One policy file on its own (tests and tools; builds use the catalog)."""
    return load_record(path, policy_from_layers)


def list_file(name: str) -> Path:
    # Not catalog.packaged: the catalog imports this module.
    return Path(str(resources.files("toolchain").joinpath("data", "policies", name)))


@functools.cache
def listed_libraries(name: str) -> frozenset[str]:
    """The names in one of the toolkit's library lists (`#` starts a comment)."""
    lines = list_file(name).read_text(encoding="utf-8").splitlines()
    return frozenset(line.split("#", 1)[0].strip() for line in lines) - {""}
