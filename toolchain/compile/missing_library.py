"""A link that fails because the linker cannot find a library the crate graph asks for
(`cannot find -lPacket`, the Npcap SDK's import library that pnet links on Windows). cargo
says "linking with `x86_64-w64-mingw32-gcc` failed" and leaves the cause in the linker's
output; this says it as the library, the packages that link it (compile/link_needs.py) and
how to hand the linker its folder. Read after the failure only: whether a library is on
this machine for the target is the linker's question, asked once."""

from __future__ import annotations

import re

from toolchain.compile.cargo import Project, Selection
from toolchain.compile.link_needs import link_needs
from toolchain.compile.links import LinkLine, evaluate
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError, ToolchainError

# GNU ld (and mingw's), LLVM's lld, Apple's ld64: the library a `-lNAME` named; lld-link (msvc
# targets): the NAME.lib it could not open; zig's linker (cargo-zigbuild): the system library.
_NOT_FOUND = re.compile(
    r"(?:cannot find -l|unable to find library -l|library not found for -l)([A-Za-z0-9_.+-]+)"
    r"|could not open '([A-Za-z0-9_.+-]+)\.lib'"
    r'|unable to find (?:dynamic |static )?system library "([A-Za-z0-9_.+-]+)"'
)

# What the linker looks for, by the target's OS: the files a user has to supply.
_FILES = {
    "windows": "lib{name}.a or {name}.lib",
    "macos": "lib{name}.dylib, lib{name}.tbd or lib{name}.a",
}
_DEFAULT_FILES = "lib{name}.so or lib{name}.a"


def missing_libraries(stderr: str) -> list[str]:
    """The libraries the linker said it could not find, in the order it said them."""
    return list(
        dict.fromkeys(next(group for group in match.groups() if group) for match in _NOT_FOUND.finditer(stderr))
    )


def explain_missing_library(
    target: Target, project: Project, selections: list[Selection], settings: Settings, stderr: str
) -> ToolchainError | None:
    """A failed build's error output read for a library the linker could not find: the one-line
    error naming it and who links it, or None when the failure is something else."""
    names = missing_libraries(stderr)
    if not names:
        return None

    def verdict(line: LinkLine, features: set[str], cfg: dict[str, set[str]], bare: set[str]) -> bool | None:
        # The linker asked for it, so a line for that name not ruled out for this target is its source.
        if line.name not in names or line.kind == "framework":
            return False
        return all(evaluate(p, cfg, bare, features) is not False for p in line.predicates)

    try:
        needs = link_needs(target, project, selections, settings, verdict, "the libraries the linker lacked", _name)
    except ToolchainError:
        needs = []  # the graph could not be read again: the library alone is still the news
    linked_by = "; ".join(f"{' -> '.join(n.chain)} links {', '.join(n.libraries)}" for n in needs[:3])
    more = f" (and {len(needs) - 3} more)" if len(needs) > 3 else ""
    files = _FILES.get(target.os, _DEFAULT_FILES)
    wanted = ", ".join(files.format(name=name) for name in names)
    optional = sorted({note for n in needs for note in n.optional})
    avoid = f"; or avoid it: {'; '.join(optional)}" if optional else ""
    return MissingToolError(
        f"{target.triple}: the linker cannot find {_listing(names)}" + (f" ({linked_by}{more})" if linked_by else ""),
        hint=f"put {wanted} built for {target.triple} in a folder and pass it to the linker: "
        f'[target.{target.triple}] rustflags = ["-L", "native=FOLDER"] in .cargo/config.toml, '
        f'or RUSTFLAGS="-L native=FOLDER"{avoid}',
    )


def _name(line: LinkLine) -> str:
    return line.name


def _listing(names: list[str]) -> str:
    flags = ", ".join(f"-l{name}" for name in names)
    return f"the librar{'y' if len(names) == 1 else 'ies'} {flags}"
