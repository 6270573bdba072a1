"""libclang, found before cargo when the crate graph runs bindgen.

bindgen (a build-dependency of many -sys crates: libbzip3-sys in ouch, and the
optional bindings of zstd-sys, aws-lc-sys...) loads libclang on the build
machine. Without it the build script panics once cargo reaches it, minutes in
(151 s for ouch 0.8.3). The search follows clang-sys's: LIBCLANG_PATH alone
when set, else `llvm-config --prefix`, LD_LIBRARY_PATH and the system library
folders. Cheap first: libclang present, or no bindgen in Cargo.lock, ends the
check in milliseconds; only then is the target's graph read for the chain."""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

from toolchain import proc
from toolchain.compile.cargo import Project, Selection, chain_to, locked_names, reachable, target_metadata
from toolchain.config.settings import Settings
from toolchain.config.targets import Target
from toolchain.errors import MissingToolError

# clang-sys's file names and Linux folders (build/common.rs); libclang-cpp is another library.
_NAMES = ("libclang.so", "libclang-*.so", "libclang.so.*", "libclang-*.so.*")
_FOLDERS = ("/usr/local/llvm*/lib*", "/usr/local/lib*/*/*", "/usr/local/lib*/*", "/usr/local/lib*",
            "/usr/lib*/*/*", "/usr/lib*/*", "/usr/lib*")  # fmt: skip


def _holds_libclang(folder: Path) -> bool:
    try:
        names = [entry.name for entry in folder.iterdir()]
    except OSError:
        return False
    return any(
        any(fnmatch.fnmatch(name, pattern) for pattern in _NAMES) and not name.startswith("libclang-cpp")
        for name in names
    )


def libclang_found() -> bool:
    """Whether bindgen would find a libclang on this machine."""
    chosen = os.environ.get("LIBCLANG_PATH")
    if chosen:
        path = Path(chosen)
        return path.is_file() or _holds_libclang(path)
    folders: list[Path] = []
    if shutil.which("llvm-config"):
        prefix = proc.output(["llvm-config", "--prefix"])
        if prefix:
            folders += [Path(prefix) / part for part in ("bin", "lib", "lib64")]
    folders += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    folders += [p for pattern in _FOLDERS for p in sorted(Path("/").glob(pattern.removeprefix("/")))]
    return any(_holds_libclang(folder) for folder in folders)


def require_libclang(target: Target, project: Project, selections: list[Selection], settings: Settings) -> None:
    """Stop before cargo when the graph built for the target runs bindgen and no libclang is found."""
    if project.lockfile.is_file() and "bindgen" not in locked_names(project.lockfile):
        return
    if libclang_found():
        return
    metadata = target_metadata(project, target.triple, settings)
    parent = reachable(metadata, {s.package.name for s in selections}, build_dependencies=True)
    names = {p["id"]: p["name"] for p in metadata["packages"]}
    chains = sorted((chain_to(pid, parent, metadata) for pid in parent if names[pid] == "bindgen"), key=len)
    if not chains:
        return
    shown = "; ".join(" -> ".join(chain) for chain in chains[:3])
    raise MissingToolError(
        f"{target.triple}: the build runs bindgen, which needs libclang on this machine, and none was found: {shown}",
        hint="install it (`apt-get install libclang-dev`), or set LIBCLANG_PATH to the folder that holds libclang.so",
    )
