"""The cross runner: `cross build` runs cargo in a per-target container
image (needs the cross CLI and a container engine). Cross.toml in the
project is read by cross itself; an image can be overridden per target in
toolchain.toml ([cross] images)."""

from __future__ import annotations

import shutil

from toolchain.cargo import Project
from toolchain.routes import Route
from toolchain.runners import BuildJob, CargoInvocation, CommandRunner, cargo_build_args
from toolchain.targets import Target


def image_variable(triple: str) -> str:
    """cross's per-target image override variable."""
    return f"CROSS_TARGET_{triple.upper().replace('-', '_')}_IMAGE"


class CrossRunner(CommandRunner):
    name = "cross"
    remaps_host_paths = False

    def problem(self, target: Target, host: str) -> str | None:
        if target.os == "macos":
            return "cross has no macOS images (use the zig runner)"
        if target.triple.endswith("-msvc"):
            return "cross has no MSVC images (build on Windows, or use x86_64-pc-windows-gnu)"
        if shutil.which("cross") is None:
            return "the cross CLI is not installed (`cargo install cross`, needs network)"
        if shutil.which("docker") is None and shutil.which("podman") is None:
            return "cross needs a container engine (`apt-get install docker.io`)"
        return None

    def route(self, target: Target, project: Project) -> Route:
        return Route("cross-image", "rustc", detail="the toolchain inside the cross image")

    def invocation(self, job: BuildJob) -> CargoInvocation:
        args = ["cross", "build", *cargo_build_args(job)]
        env = {}
        image = job.settings.cross_images.get(job.target.triple)
        if image:
            env[image_variable(job.target.triple)] = image
        # The image brings its own rustc and std: the host's route does not apply.
        return CargoInvocation(tuple(args), env)
