"""Windows header names in another case, found before cargo.

C and C++ written for MSVC include Windows headers as the Windows SDK spells them
(`<PowrProf.h>`, `<Sddl.h>`, `<WinSock2.h>`). mingw-w64 ships every one in lower
case, and Linux file names are case-sensitive, so a crate's build script stops at
"fatal error: PowrProf.h: No such file or directory" (unrar's os.hpp). The target's
`[toolchain] header-folder` names the folder its C compiler takes them from; the C
and C++ sources of every package of the target's graph that has a build script are
read for what they include, and each name the folder has only in another case gets
a link of that spelling in a folder of the target folder, which the target's C and
C++ compiles search last (`-idirafter`: it holds no name the compiler finds
elsewhere). A build whose sources include no such name is given nothing, and one
whose Cargo.lock holds none of cc, cmake and cxx-build is not read at all."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from toolchain.compile.cargo import Project, Selection, locked_names, reachable, target_metadata
from toolchain.config.settings import Settings
from toolchain.config.targets import Target, c_build_env_names
from toolchain.log import log

SOURCE_SUFFIXES = frozenset({".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".inl", ".rc"})
SKIPPED_FOLDERS = frozenset({"target", ".git", "tests", "test", "docs", "doc", "examples"})
# The crates build scripts compile C and C++ with.
C_BUILDERS = frozenset({"cc", "cmake", "cxx-build"})
INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"\n]+)[>"]', re.MULTILINE)


@functools.cache
def _by_lower_case(folder: Path) -> dict[str, str]:
    """Every header under the folder, by its path in lower case."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            relative = str((Path(root) / name).relative_to(folder))
            found[relative.lower()] = relative
    return found


def _sources(package_folder: Path) -> list[Path]:
    found = []
    for root, folders, files in os.walk(package_folder):
        folders[:] = [f for f in folders if f not in SKIPPED_FOLDERS and not f.startswith(".")]
        found += [Path(root, name) for name in files if Path(name).suffix.lower() in SOURCE_SUFFIXES]
    return found


def misspelled_headers(sources: list[Path], folder: Path) -> dict[str, str]:
    """Included name -> the folder's header of that name in another case, for the names the
    folder lacks as spelled (and the including file's own folder lacks too)."""
    headers = _by_lower_case(folder)
    wanted: dict[str, str] = {}
    for source in sources:
        try:
            text = source.read_bytes()
        except OSError:
            continue
        for match in INCLUDE.finditer(text):
            name = match.group(1).decode(errors="replace").strip()
            if ".." in name or name.startswith("/") or name in wanted:
                continue
            actual = headers.get(name.lower())
            if actual is None or actual == name or (source.parent / name).exists():
                continue
            wanted[name] = actual
    return wanted


def header_links_env(
    target: Target, project: Project, selections: list[Selection], settings: Settings
) -> dict[str, str]:
    """The C and C++ flags that let the graph's sources find the target's headers as they spell them."""
    header_folder = target.toolchain.header_folder
    if not header_folder or not Path(header_folder).is_dir():
        return {}
    if project.lockfile.is_file() and not C_BUILDERS & locked_names(project.lockfile):
        return {}  # cheap first: no crate that compiles C for a build script, no graph to read
    folder = Path(header_folder)
    metadata = target_metadata(project, target.triple, settings)
    packages = {p["id"]: p for p in metadata["packages"]}
    chosen = reachable(metadata, {s.package.name for s in selections}, build_dependencies=False)
    sources = []
    for package_id in sorted(chosen):
        package = packages[package_id]
        if any("custom-build" in t["kind"] for t in package["targets"]):
            sources += _sources(Path(package["manifest_path"]).parent)
    wanted = misspelled_headers(sources, folder)
    if not wanted:
        return {}
    links = project.target_directory / "toolchain-headers" / target.triple
    for name, actual in sorted(wanted.items()):
        link = links / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and link.readlink() == folder / actual):
            temporary = link.with_name(f".{link.name}.{os.getpid()}")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(folder / actual)
            temporary.replace(link)
    log.info(
        f"{target.triple}: {len(wanted)} header(s) included in another case than {folder} has "
        f"({', '.join(sorted(wanted)[:4])}{', ...' if len(wanted) > 4 else ''}): linked in {links}"
    )
    return search_folder_flags(target.triple, links)


def search_folder_flags(triple: str, links: Path) -> dict[str, str]:
    """CFLAGS and CXXFLAGS for the target with the folder searched last, on top of the value
    cc-rs would read (c_build_env_names)."""
    env = {}
    for name in ("CFLAGS", "CXXFLAGS"):
        spellings = c_build_env_names(name, triple)
        current = next((os.environ[s] for s in spellings if s in os.environ), "")
        chosen = spellings[0] if spellings[0] in os.environ else spellings[1]
        env[chosen] = f"{current} -idirafter {links}".strip()
    return env
