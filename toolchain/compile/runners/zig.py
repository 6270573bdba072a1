"""The zig runner: cargo-zigbuild links with `zig cc`, so one Linux host
links glibc targets at a chosen glibc floor and macOS targets with no SDK.
zig itself comes from the ziglang wheel; the runner hands cargo-zigbuild the
binary, which it would otherwise run through `python3 -m ziglang` each time."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from pathlib import Path

from toolchain import proc
from toolchain.compile.runners.base import BuildJob, CargoInvocation, CommandRunner, cargo_build_args, target_build_env
from toolchain.compile.sdk import SDK_HINT, SDK_NAMES
from toolchain.config.targets import Target
from toolchain.errors import BuildError, MissingToolError, ToolchainError
from toolchain.log import log


def zig_available() -> bool:
    return shutil.which("zig") is not None or importlib.util.find_spec("ziglang") is not None


@functools.cache
def zig_program() -> str | None:
    """The zig executable itself: the ziglang wheel's (this Python's) first, as
    cargo-zigbuild prefers `python3 -m ziglang`, else `zig` on PATH."""
    spec = importlib.util.find_spec("ziglang")
    if spec is not None and spec.origin is not None:
        program = Path(spec.origin).parent / ("zig.exe" if sys.platform == "win32" else "zig")
        if program.is_file():
            return str(program)
    return shutil.which("zig")


class ZigRunner(CommandRunner):
    name = "zig"

    def __init__(self, on_host: bool = True) -> None:
        # False inside a container: the image finds its own zig.
        self.on_host = on_host

    def problem(self, target: Target, host: str) -> str | None:
        if shutil.which("cargo-zigbuild") is None:
            return "cargo-zigbuild is not installed (`pip install cargo-zigbuild`)"
        if not zig_available():
            return "zig is not installed (`pip install ziglang`)"
        if target.os == "windows":
            # zig's MinGW libc lacks ssp_nonshared, which Rust's windows-gnu
            # std links; MSVC needs Microsoft's libraries.
            return "zig cannot link Windows targets here (use the native runner with mingw)"
        return None

    def build(self, job: BuildJob) -> dict[str, Path]:
        # zig's linker keeps the local symbols of C objects (a cc build
        # script's `static` functions) that rustc's strip leaves alone on a
        # non-macOS host. `llvm-strip -x` drops them and redoes an arm64
        # binary's ad hoc signature, as Apple's strip does.
        executables = super().build(job)
        if job.target.os != "macos" or not strips_symbols(job) or job.split_debug:
            return executables
        program = llvm_strip()
        if program is None:
            log.warn("llvm-strip not found: local symbols of C code stay in the Mach-O (apt-get install llvm)")
            return executables
        for path in executables.values():
            proc.run([program, "-x", path], error=BuildError, what=f"llvm-strip {path.name}")
        return executables

    def explain_failure(self, job: BuildJob, stderr: str) -> ToolchainError | None:
        header = missing_sdk_header(job.target, stderr) if self.on_host else None
        return header or super().explain_failure(job, stderr)

    def invocation(self, job: BuildJob) -> CargoInvocation:
        program_name = cargo_zigbuild_program() if self.on_host else "cargo-zigbuild"
        args = [program_name, "zigbuild", *cargo_build_args(job)]
        target = job.target
        env = dict(job.route.env)
        program = zig_program() if self.on_host else None
        if program is not None and "CARGO_ZIGBUILD_ZIG_COMMAND" not in os.environ:
            # cargo-zigbuild otherwise runs `python3 -m ziglang` for every version
            # probe and every compiler and linker call: four interpreter starts
            # (about 0.3 s) on a no-op build alone. It trusts this variable.
            env["CARGO_ZIGBUILD_ZIG_COMMAND"] = program
        if target.os == "linux" and target.compat.glibc:
            # `TRIPLE.2.17` pins the glibc symbol versions the binary may need.
            index = args.index("--target") + 1
            args[index] = f"{target.triple}.{target.compat.glibc}"
        if target.os == "macos" and target.compat.macos:
            # Without it zig stamps its own (newest) macOS into the binary.
            env["MACOSX_DEPLOYMENT_TARGET"] = target.compat.macos
        env.update(no_machine_pkg_config(target.triple))
        env.update(target_build_env(target))
        return CargoInvocation(tuple(args), env)


PKG_CONFIG_SEARCH = ("PKG_CONFIG_LIBDIR", "PKG_CONFIG_PATH", "PKG_CONFIG_SYSROOT_DIR")


def no_machine_pkg_config(triple: str) -> dict[str, str]:
    """pkg-config answers for the machine's own triple with the machine's libraries (/usr/include,
    /usr/lib), which a zig build can neither include nor link: zig builds against its own sysroot.
    An empty search path for the target makes a -sys crate build its bundled C instead, as it
    does for every cross target; one that has none fails saying pkg-config did not find it. A
    search path the user set for pkg-config (any spelling the pkg-config crate reads) is kept."""
    spellings = [triple, triple.replace("-", "_")]
    names = [f"{base}_{suffix}" for base in PKG_CONFIG_SEARCH for suffix in spellings]
    names += [f"{kind}_{base}" for base in PKG_CONFIG_SEARCH for kind in ("HOST", "TARGET")] + list(PKG_CONFIG_SEARCH)
    if any(name in os.environ for name in names):
        return {}
    return {f"PKG_CONFIG_LIBDIR_{triple.replace('-', '_')}": ""}


def cargo_zigbuild_program() -> str:
    """`cargo-zigbuild`, found on PATH by the build; or the one beside this interpreter when
    PATH's is pyenv's shim for it. The shim runs `pyenv exec` (bash and about twenty
    processes, 0.2-0.3 s) on every build to find the script of pyenv's selected Python,
    while the zig this runner hands it is this interpreter's ziglang."""
    found = shutil.which("cargo-zigbuild")
    beside = Path(sysconfig.get_path("scripts")) / "cargo-zigbuild"
    if found is not None and is_pyenv_shim(Path(found)) and os.access(beside, os.X_OK):
        return str(beside)
    return "cargo-zigbuild"


def is_pyenv_shim(path: Path) -> bool:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    return path.parent == root / "shims"


def llvm_strip() -> str | None:
    """The newest of the distribution's llvm-strips (Debian's rustc-web brings
    LLVM 22; arm64 signatures are redone from LLVM 15 on), else one on PATH."""
    candidates = sorted(
        Path("/usr/lib").glob("llvm-*/bin/llvm-strip"),
        key=lambda p: int(p.parts[3][5:] if p.parts[3][5:].isdigit() else 0),
    )
    return str(candidates[-1]) if candidates else shutil.which("llvm-strip")


def strips_symbols(job: BuildJob) -> bool:
    return dict(job.profile.settings).get("strip") in ("symbols", True) and "strip" not in job.skip_keys


# clang's (zig cc's) and gcc's words for an #include the compiler did not find, and cargo's for
# the build script that ran it.
_HEADER_NOT_FOUND = re.compile(r"fatal error: '?([\w./+-]+\.h(?:pp)?)'?(?: file not found|: No such file or directory)")
_BUILD_SCRIPT_FAILED = re.compile(r"failed to run custom build command for `(\S+) v")
# zig's header folders for macOS: any-macos-any (zig <= 0.15), any-darwin-any, x86_64-macos-none...
ZIG_MACOS_FOLDER_MARKS = ("-macos-", "-darwin-")


def missing_sdk_header(target: Target, stderr: str) -> MissingToolError | None:
    """A failed build whose C compile stopped at a system header zig has for other systems
    and lacks for this one (jemalloc's <sys/syscall.h> for macOS): the target's SDK is what
    it needs, said as such (exit 5, SDKROOT) instead of as a failed build. None otherwise:
    with SDKROOT set, for a header no system of zig's has (a library's own, such as gmp.h),
    or when zig's headers cannot be read."""
    if target.toolchain.sdk != "macos" or os.environ.get("SDKROOT"):
        return None
    found = _HEADER_NOT_FOUND.search(stderr)
    include_root = zig_include_root()
    if found is None or include_root is None:
        return None
    header = found.group(1)
    folders = [f for f in include_root.iterdir() if f.is_dir()]
    macos = [f for f in folders if any(mark in f"-{f.name}-" for mark in ZIG_MACOS_FOLDER_MARKS)]
    others = [f for f in folders if f not in macos]
    if any((f / header).is_file() for f in macos) or not any((f / header).is_file() for f in others):
        return None
    package = _BUILD_SCRIPT_FAILED.search(stderr)
    who = f"{package.group(1)}'s C sources include" if package else "a C source includes"
    return MissingToolError(
        f"{target.triple} needs {SDK_NAMES['macos']}: {who} <{header}>, a system header that zig has "
        "for other systems and not for macOS (the SDK holds macOS's own)",
        hint=SDK_HINT,
    )


def zig_include_root() -> Path | None:
    """zig's folder of C library headers, one subfolder per system (any-darwin-any,
    generic-glibc...): the ziglang wheel's, else that of the zig on PATH."""
    program = zig_program()
    if program is None:
        return None
    beside = Path(program).parent / "lib" / "libc" / "include"
    if beside.is_dir():
        return beside
    listed = re.search(r'lib_dir"?\s*[:=]\s*"([^"]+)"', proc.output([program, "env"], timeout=30) or "")
    root = Path(listed.group(1)) / "libc" / "include" if listed else None
    return root if root is not None and root.is_dir() else None
