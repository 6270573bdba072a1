"""A build script that tests the build machine where it means the target. A build script is
compiled for and run on the build machine, so its `cfg!(windows)` or `#[cfg(target_os = ...)]`
answers for that machine, not for the target cargo builds (cargo hands it the target's as
CARGO_CFG_TARGET_OS and friends). Cross-built from Linux, such a script leaves out the files
it keeps for Windows, and the link fails far from the cause: unrar-ng-sys 0.7.6 (ouch 0.8.3's
RAR support) compiles unrar's isnt.cpp and motw.cpp only `#[cfg(windows)]`, and the link of
x86_64-pc-windows-gnu stops at "undefined reference to `WinNT()'". cargo says "linking with
`x86_64-w64-mingw32-gcc` failed"; this names the package, the line and the way out.

The other way round, a script that asks for a library when `cfg!(unix)` holds asks for it on
Linux for Windows too, and the linker cannot find it there (it is not a library to supply).

Read after a link fails only: the packages whose objects use the undefined symbols (the rlibs
the linker names) or whose build script asks for the library the linker could not find, and a
predicate in that build script that holds for one of the build machine and the target but not
for the other."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.compile.cargo import Project, Selection, reachable, target_metadata
from toolchain.compile.link_needs import chain_to, rustc_cfg
from toolchain.compile.links import cfg_predicates, evaluate
from toolchain.compile.missing_library import missing_libraries
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import BuildError, ToolchainError

# An rlib in a linker's message: lib<crate name>-<16 hex digits of cargo's metadata hash>.rlib
_RLIB = re.compile(r"\blib([A-Za-z0-9_]+)-[0-9a-f]{16}\.rlib\b")
# The undefined symbol as GNU ld (and mingw's), lld and zig, and Apple's ld64 word it.
_SYMBOL = re.compile(
    "undefined reference to [`'\u2018]([^'\u2019\n]+)['\u2019]"
    r"|undefined symbol: *([^\n]+)"
    r'|^\s*"([^"\n]+)", referenced from:',
    re.MULTILINE,
)
# Lines that say where an undefined symbol is used (lld's and zig's come after the symbol's line).
_USE_LINE = re.compile(r"undefined|referenced|^\s*>>>|^\s+\S+ in lib", re.IGNORECASE)


@dataclass(frozen=True)
class Undefined:
    """What a failed link left undefined, and the crates whose objects ask for it."""

    symbols: tuple[str, ...]
    crates: tuple[str, ...]  # library names as rustc writes them (underscores)


@dataclass(frozen=True)
class HostTest:
    """A build script's predicate that answers differently on the build machine and for the target."""

    package: str
    machine: str  # the build machine's OS and architecture, as rustc names them ("linux x86_64")
    script: Path
    lines: tuple[int, ...]  # every line of the script with this predicate
    predicate: str
    on_host: bool
    for_target: bool


def undefined_symbols(stderr: str) -> Undefined | None:
    """The symbols a link left undefined and the rlibs that use them; None for another failure."""
    # A C++ symbol as the linker demangles it, without its parameter list: `MarkOfTheWeb::MarkOfTheWeb`.
    symbols = [next(g for g in m.groups() if g).strip().split("(", 1)[0] for m in _SYMBOL.finditer(stderr)]
    if not symbols:
        return None
    crates = [m.group(1) for line in stderr.splitlines() if _USE_LINE.search(line) for m in _RLIB.finditer(line)]
    return Undefined(tuple(dict.fromkeys(symbols)), tuple(dict.fromkeys(crates)))


RustcCfg = tuple[dict[str, set[str]], set[str]]  # link_needs.rustc_cfg's answer: pairs and bare names


def host_tests(
    script_text: str, features: set[str], host: RustcCfg, target: RustcCfg
) -> list[tuple[str, int, bool, bool]]:
    """The build script's predicates that hold on the build machine and not for the target, or
    the other way round: (predicate, line, on the machine, for the target)."""
    found = []
    for predicate, line in cfg_predicates(script_text):
        on_host = evaluate(predicate, *host, features)
        for_target = evaluate(predicate, *target, features)
        if on_host is not None and for_target is not None and on_host != for_target:
            found.append((predicate, line, on_host, for_target))
    return found


def explain_host_cfg(
    target: Target, project: Project, selections: list[Selection], settings: Settings, stderr: str
) -> ToolchainError | None:
    """A failed link read for what a build script that tests the build machine's cfg (where the
    target's differs) left out or put in: the symbols it left undefined in its own crate's
    objects, or a library it asked the linker for that the target lacks. The one-line error
    naming it, or None."""
    undefined = undefined_symbols(stderr)
    libraries = missing_libraries(stderr)
    if (undefined is None or not undefined.crates) and not libraries:
        return None
    try:
        metadata = target_metadata(project, target.triple, settings)
    except ToolchainError:
        return None  # the graph could not be read again: cargo's words stand
    host, wanted = rustc_cfg(project, None), rustc_cfg(project, target.triple)
    if not host[1] or not wanted[1]:
        return None  # rustc could not say either side
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in (metadata.get("resolve") or {}).get("nodes", [])}
    # (package id, what the script's choice did): users of the undefined symbols first, then
    # every script that asks for a library the linker did not find.
    suspects: list[tuple[str, str]] = []
    if undefined is not None and undefined.crates:
        by_crate = {_crate_name(p): pid for pid, p in packages.items() if _crate_name(p)}
        symbols = ", ".join(f"`{s}`" for s in undefined.symbols[:3]) + (
            " and more" if len(undefined.symbols) > 3 else ""
        )
        effect = f"so the code it built leaves {symbols} undefined"
        suspects += [(by_crate[c], effect) for c in undefined.crates if c in by_crate]
    scripts = {pid: _script_text(p) for pid, p in packages.items()}  # "" for a package without one
    for pid, text in scripts.items():
        asked = [name for name in libraries if _asks_for(text, name)]
        if asked:
            flags = ", ".join(f"-l{name}" for name in asked)
            suspects.append((pid, f"so it asks the linker for {flags}, which it cannot find for {target.triple}"))
    for pid, effect in suspects:
        script, text = _build_script(packages[pid]), scripts[pid]
        if script is None or not text:
            continue
        tests = host_tests(text, set(nodes.get(pid, {}).get("features", [])), host, wanted)
        if not tests:
            continue
        predicate, _, on_host, for_target = tests[0]
        lines = tuple(line for p, line, _, _ in tests if p == predicate)
        machine = " ".join(min(host[0].get(key, set()), default="") for key in ("target_os", "target_arch")).strip()
        test = HostTest(packages[pid]["name"], machine, script, lines, predicate, on_host, for_target)
        parent = reachable(metadata, {s.package.name for s in selections}, build_dependencies=False)
        need = chain_to(pid, parent, packages) if pid in parent else None
        chain, optional = (need.chain, need.optional) if need else ((test.package,), ())
        return _error(target, test, effect, chain, optional)
    return None


def _asks_for(script_text: str, library: str) -> bool:
    """Whether a build script's text asks the linker for this library (`rustc-link-lib=[KIND=]NAME`
    or `-lNAME` in `rustc-flags`)."""
    name = re.escape(library)
    return bool(re.search(rf"rustc-link-lib=(?:[\w:+,-]+=)?{name}\b|-l{name}\b", script_text))


def _error(
    target: Target, test: HostTest, effect: str, chain: tuple[str, ...], optional: tuple[str, ...]
) -> BuildError:
    via = f" ({' -> '.join(chain)})" if len(chain) > 1 else ""
    avoid = f"; or avoid it: {'; '.join(optional)}" if optional else ""
    shown = [str(n) for n in test.lines[:4]]
    numbers = f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 else shown[0]
    where = f"{test.script.name} line{'s' if len(shown) > 1 else ''} {numbers}"
    return BuildError(
        f"{target.triple}: {test.package}'s build script tests the build machine, not the target: "
        f"`{test.predicate}` ({where}) is {str(test.on_host).lower()} on this {test.machine or 'build'} machine "
        f"and {str(test.for_target).lower()} for {target.triple}, {effect}{via}",
        hint=f"build {target.triple} on a {target.os} {target.arch} machine{avoid}; the crate's own fix is to read "
        "CARGO_CFG_TARGET_OS (and the other CARGO_CFG_* variables cargo sets for the target) in its build script",
    )


def _crate_name(package: dict[str, Any]) -> str | None:
    for item in package.get("targets", []):
        if set(item.get("kind", [])) & {"lib", "rlib", "staticlib", "dylib"}:
            return str(item["name"]).replace("-", "_")
    return None


def _script_text(package: dict[str, Any]) -> str:
    script = _build_script(package)
    try:
        return script.read_text(encoding="utf-8", errors="replace") if script else ""
    except OSError:
        return ""


def _build_script(package: dict[str, Any]) -> Path | None:
    for item in package.get("targets", []):
        if "custom-build" in item.get("kind", []):
            return Path(item["src_path"])
    return None
