"""The native runner: plain `cargo build`, with the target's C linker when
the host is not the target (e.g. aarch64-linux-gnu-gcc, mingw)."""

from __future__ import annotations

import shutil

from toolchain.compile.cargo import cargo_program
from toolchain.compile.runners.base import BuildJob, CargoInvocation, CommandRunner, cargo_build_args, target_build_env
from toolchain.config.targets import Target, host_platform


def _linker_needed(target: Target, host: str) -> bool:
    return f"{target.os}-{target.arch}" != host and target.toolchain.linker is not None


class NativeRunner(CommandRunner):
    name = "native"

    def problem(self, target: Target, host: str) -> str | None:
        if shutil.which(cargo_program()) is None:
            return "cargo is not installed (install rustup, or `apt-get install cargo-web`)"
        host_os = host.split("-", 1)[0]
        if target.os != host_os and not (target.os == "windows" and target.toolchain.linker):
            return f"a {host_os} host cannot link {target.os} binaries natively"
        if target.triple.endswith("-msvc") and host_os != "windows":
            return "MSVC binaries link only on Windows (use x86_64-pc-windows-gnu from Linux)"
        if _linker_needed(target, host) and target.toolchain.linker and shutil.which(target.toolchain.linker) is None:
            package = (
                f" (`apt-get install {target.toolchain.linker_package}`)" if target.toolchain.linker_package else ""
            )
            return f"linker {target.toolchain.linker} is missing{package}"
        return None

    def invocation(self, job: BuildJob) -> CargoInvocation:
        args = [job.route.env.get("CARGO") or cargo_program(), "build", *cargo_build_args(job)]
        if _linker_needed(job.target, host_platform()):
            args += ["--config", f'target.{job.target.triple}.linker="{job.target.toolchain.linker}"']
        return CargoInvocation(tuple(args), {**job.route.env, **target_build_env(job.target)})
