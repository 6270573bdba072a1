"""Smoke runs: start each built binary where this machine can run it
(natively, aarch64 under qemu-user, Windows under wine) and check that it
prints its version and that its own health check passes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolchain import proc
from toolchain.config.targets import Target, host_platform
from toolchain.errors import MissingToolError, VerificationError
from toolchain.log import log

QEMU_SYSROOTS = {"aarch64": Path("/usr/aarch64-linux-gnu")}
WINE = "/usr/lib/wine/wine64"
# Debian 12's Wine 8 lacks bcryptprimitives.dll, whose ProcessPrng Rust's
# std (1.78+) imports; without it a Rust exe exits 53 before main. This shim
# forwards it to RtlGenRandom (advapi32's SystemFunction036).
PRNG_SHIM_C = r"""
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
"""


@dataclass(frozen=True)
class SmokeCheck:
    args: tuple[str, ...]
    ok: bool
    exit_code: int
    output: str
    expectation: str


@dataclass(frozen=True)
class SmokeResult:
    binary: Path
    how: str  # native | qemu | wine | none
    checks: tuple[SmokeCheck, ...]

    @property
    def ran(self) -> bool:
        return self.how != "none"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolchain"


def wine_prefix() -> Path:
    """A private wine prefix with the ProcessPrng shim installed."""
    prefix = cache_home() / "wine-prefix"
    system32 = prefix / "drive_c" / "windows" / "system32"
    shim = system32 / "bcryptprimitives.dll"
    if shim.is_file():
        return prefix
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        raise MissingToolError(
            "x86_64-w64-mingw32-gcc is needed to build wine's bcryptprimitives shim",
            hint="apt-get install gcc-mingw-w64-x86-64",
        )
    prefix.mkdir(parents=True, exist_ok=True)
    build_dir = cache_home() / "prng-shim"
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "shim.c").write_text(PRNG_SHIM_C)
    dll = build_dir / "bcryptprimitives.dll"
    compile_shim = ["x86_64-w64-mingw32-gcc", "-shared", "-O2", "-o", str(dll), str(build_dir / "shim.c"), "-ladvapi32"]
    proc.run(compile_shim, what="building the bcryptprimitives shim")
    with log.status("creating a wine prefix (first run only, a few seconds)"):
        proc.run([WINE, "wineboot", "--init"], env=_wine_env(prefix), what="wineboot", timeout=300)
    system32.mkdir(parents=True, exist_ok=True)
    shutil.copy(dll, shim)
    return prefix


def _wine_env(prefix: Path) -> dict[str, str]:
    return {"WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml="}


def launcher(target: Target, host: str) -> tuple[str, list[str], dict[str, str]]:
    """How to start a binary of `target` here: (how, argv prefix, env)."""
    how = target.run.get(host, "none")
    if how == "qemu":
        emulator = f"qemu-{target.arch}"
        if shutil.which(emulator) is None:
            raise MissingToolError(f"{emulator} is not installed", hint="apt-get install qemu-user")
        sysroot = QEMU_SYSROOTS.get(target.arch)
        if sysroot is None or not sysroot.is_dir():
            raise MissingToolError(
                f"no {target.arch} C library for {emulator} at {sysroot}",
                hint=f"apt-get install {target.toolchain.linker_package or 'libc6-' + target.arch + '-cross'}",
            )
        # The sysroot's libraries ahead of ld.so's cache: the cache is the build machine's and
        # names Debian's libc6:arm64 when it is installed, another glibc than the sysroot's ld.so
        # (a mix on which the first pthread_create spins for ever). A guest path: under -L.
        search = ":".join(f"/{d}" for d in ("lib", "lib64", "usr/lib") if (sysroot / d).is_dir())
        return how, [emulator, "-L", str(sysroot), "-E", f"LD_LIBRARY_PATH={search or '/lib'}"], {}
    if how == "wine":
        if not Path(WINE).is_file():
            raise MissingToolError("wine64 is not installed", hint="apt-get install wine64")
        return how, [WINE], _wine_env(wine_prefix())
    return how, [], {}


def smoke_binary(
    target: Target, binary: Path, version: str, checks: Sequence[Sequence[str]], host: str | None = None
) -> SmokeResult:
    """Run `binary --version` (must print `version`) and each check (must exit 0)."""
    host = host or host_platform()
    how, prefix, env = launcher(target, host)
    if how == "none":
        log.info(f"{binary.name}: {target.triple} binaries cannot run on a {host} host; verified statically only")
        return SmokeResult(binary, how, ())
    results = []
    runs = [(["--version"], f"prints {version}"), *((list(c), "exits 0") for c in checks)]
    for args, expectation in runs:
        command = f"{binary.name} {' '.join(args)}" + (f" under {Path(prefix[0]).name}" if prefix else "")
        result = proc.run(
            [*prefix, binary, *args], env=env, check=False, timeout=120, error=VerificationError, what=command,
            no_input=True,  # a check that reads its input gets none, never the caller's terminal or CI step's
        )  # fmt: skip
        output = (result.stdout + result.stderr).strip()
        ok = result.returncode == 0 and (version in result.stdout if args == ["--version"] else True)
        results.append(SmokeCheck(tuple(args), ok, result.returncode, output[-2000:], expectation))
        log.info(f"{'ok  ' if ok else 'FAIL'} {binary.name} {' '.join(args)} ({how}): exit {result.returncode}")
    return SmokeResult(binary, how, tuple(results))


def require_ok(results: list[SmokeResult]) -> None:
    for result in results:
        for check in result.checks:
            if not check.ok:
                last = check.output.splitlines()[-1] if check.output else "no output"
                raise VerificationError(
                    f"smoke run failed: {result.binary.name} {' '.join(check.args)} under {result.how} "
                    f"exited {check.exit_code} ({last}), expected it {check.expectation}",
                    hint="run the binary by hand to see why",
                )
