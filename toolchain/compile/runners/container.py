"""The container runner: the same build inside the pinned build image
(Dockerfile.build), through the docker SDK. The project is mounted; cargo's
registry and target folders live in named volumes so repeated builds are
incremental; the build runs as the calling user's uid:gid; environment is
passed through by an explicit list; the binaries are copied out and then
verified and packaged on the host like any other runner's."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path, PurePosixPath

from toolchain.compile import cache, container
from toolchain.compile.cargo import Project, cargo_program
from toolchain.compile.routes import Route, build_std_args
from toolchain.compile.runners.base import BuildJob, CargoInvocation, parse_executables
from toolchain.compile.runners.native import NativeRunner
from toolchain.compile.runners.zig import ZigRunner
from toolchain.config.settings import Settings, load_settings
from toolchain.config.targets import Target
from toolchain.errors import BuildError, MissingToolError
from toolchain.log import log
from toolchain.proc import first_error_line

PROJECT = PurePosixPath("/project")
CARGO_HOME = "/cargo"
TARGET_DIR = "/target"
CACHE_STATS = f"{TARGET_DIR}/.toolchain-sccache-stats.json"
VENDORED_STD = Path("/usr/lib/rustlib/src/rust/library/vendor")


def _tag(configured: Settings | None = None) -> str:
    # problem() and route() are asked before a job exists: they read the settings in force.
    settings = (configured or load_settings()).container
    if settings.image:
        return settings.image
    certificates = container.extra_ca_certificates(settings.ca_bundle)
    return container.image_tag(settings.base_image, certificates)


def _user(settings: Settings) -> str:
    configured = settings.container.user
    if configured:
        return configured
    return f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else "1000:1000"


class ContainerRunner:
    name = "container"
    remaps_host_paths = False  # the container sees the project at its own paths

    def problem(self, target: Target, host: str) -> str | None:
        if target.triple.endswith("-msvc"):
            return "the build image has no MSVC toolchain (build on Windows, or use x86_64-pc-windows-gnu)"
        problem = container.engine_problem()
        if problem:
            return problem
        tag = _tag()
        if not container.image_exists(container.client(), tag):
            return f"the build image {tag} is missing (run `invoke image.build`)"
        return None

    def route(self, target: Target, project: Project) -> Route:
        facts = dict(container.image_facts(_tag()))
        versions = tuple((k, v) for k, v in facts.items() if k != "route")
        if facts.get("route") == "rustup":
            return Route("container-rustup", "rustc", detail=f"rustup std inside {_tag()}", versions=versions)
        env = {"RUSTC": "/usr/bin/rustc"}
        if target.toolchain.build_std:
            return Route(
                "container-build-std", "/usr/bin/rustc", {**env, "RUSTC_BOOTSTRAP": "1"},
                build_std_args(VENDORED_STD), f"std built from source inside {_tag()}", versions,
            )  # fmt: skip
        return Route(
            "container-distro", "/usr/bin/rustc", env, detail=f"distribution std inside {_tag()}", versions=versions
        )

    def inner_invocation(self, job: BuildJob) -> CargoInvocation:
        """The zig runner's command (the native one's for Windows: mingw), with
        paths as the container sees them: the same arguments as on a host."""
        relative = job.project.manifest_path.relative_to(job.project.workspace_root)
        inner = dataclasses.replace(job.project, manifest_path=Path(str(PROJECT / relative.as_posix())))
        inner_job = dataclasses.replace(job, project=inner)
        runner = NativeRunner() if job.target.os == "windows" else ZigRunner(on_host=False)
        invocation = runner.invocation(inner_job)
        argv = list(invocation.argv)
        if argv[0] == cargo_program():
            argv[0] = "cargo"  # the image's cargo, whatever CARGO says on the host
        return CargoInvocation(tuple(argv), invocation.env)

    def command(self, job: BuildJob) -> list[str]:
        """The build command inside the container (inside its own sccache server when the cache is on)."""
        argv = list(self.inner_invocation(job).argv)
        if job.cache_env:
            return cache.container_script(argv, CACHE_STATS)
        return argv

    def environment(self, job: BuildJob) -> dict[str, str]:
        settings = job.settings.container
        env = {name: os.environ[name] for name in settings.env if name in os.environ}
        env.update(self.inner_invocation(job).env)
        if job.cache_env:
            # The store's settings and the host's AWS credentials, by name at run time: never in the image.
            env.update(cache.container_env(job.settings.cache))
        # zig's and cargo-zigbuild's caches go into the cargo volume too: warm on the next run.
        env.update(
            {
                "CARGO_HOME": CARGO_HOME,
                "CARGO_TARGET_DIR": TARGET_DIR,
                "HOME": "/home/any",
                "XDG_CACHE_HOME": f"{CARGO_HOME}/cache",
            }
        )
        return env

    def build(self, job: BuildJob) -> dict[str, Path]:
        engine = container.client()
        tag = _tag(job.settings)
        settings = job.settings.container
        root = job.project.workspace_root
        volume_key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        volumes = {
            str(root): {"bind": str(PROJECT), "mode": "rw"},
            "toolchain-cargo-home": {"bind": CARGO_HOME, "mode": "rw"},
            f"toolchain-target-{volume_key}": {"bind": TARGET_DIR, "mode": "rw"},
        }
        user = _user(job.settings)
        # A new named volume starts as a copy of the image's folder (mode 1777),
        # so any build user can write to it without a chown step.
        command = self.command(job)
        env = self.environment(job)
        log.command(["docker", "run", "--user", user, tag, *command], cache.redacted(env))
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        out_dir = job.project.target_directory / "container" / job.target.triple / job.profile.dir_name()
        with container.started(
            engine,
            tag,
            command,
            user=user,
            volumes=volumes,
            environment=env,
            network=settings.network,
        ) as box:
            for out, err in box.attach(stdout=True, stderr=True, stream=True, demux=True, logs=True):
                if out:
                    stdout.append(out)
                if err:
                    stderr.append(err)
                    if not log.quiet:
                        sys.stderr.write(err.decode(errors="replace"))
                        sys.stderr.flush()
            status = box.wait()
            if status.get("StatusCode") != 0:
                text = b"".join(stderr).decode(errors="replace")
                first = first_error_line(text)
                code = status.get("StatusCode")
                raise BuildError(
                    f"cargo build for {job.target.triple} failed in the container with exit code {code}"
                    + (f": {first}" if first else ""),
                    hint="see its output above",
                )
            stats_file = job.cache_env.get(cache.STATS_FILE_VARIABLE)
            if stats_file:
                container.copy_out(box, CACHE_STATS, Path(stats_file))
            inside = parse_executables(b"".join(stdout).decode(errors="replace"))
            found = {}
            for name, path in inside.items():
                found[name] = container.copy_out(box, str(path), out_dir / path.name)
        if not found:
            raise MissingToolError("the container build produced no executable", hint="check --package/--bin")
        return found
