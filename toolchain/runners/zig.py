"""The zig runner: cargo-zigbuild links with `zig cc`, so one Linux host
links glibc targets at a chosen glibc floor and macOS targets with no SDK.
zig itself comes from the ziglang wheel (cargo-zigbuild finds it through
`python -m ziglang`)."""

from __future__ import annotations

import importlib.util
import shutil

from toolchain.runners import BuildJob, CargoInvocation, CommandRunner, cargo_build_args
from toolchain.targets import Target


def zig_available() -> bool:
    return shutil.which("zig") is not None or importlib.util.find_spec("ziglang") is not None


class ZigRunner(CommandRunner):
    name = "zig"

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

    def invocation(self, job: BuildJob) -> CargoInvocation:
        args = ["cargo-zigbuild", "zigbuild", *cargo_build_args(job)]
        target = job.target
        env = dict(job.route.env)
        if target.os == "linux" and target.glibc:
            # `TRIPLE.2.17` pins the glibc symbol versions the binary may need.
            index = args.index("--target") + 1
            args[index] = f"{target.triple}.{target.glibc}"
        if target.os == "macos" and target.macos:
            # Without it zig stamps its own (newest) macOS into the binary.
            env["MACOSX_DEPLOYMENT_TARGET"] = target.macos
        return CargoInvocation(tuple(args), env)
