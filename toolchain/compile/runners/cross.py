"""The cross runner: `cross build` runs cargo in a per-target container image
(needs the cross CLI, rustup and a container engine). The image per target
comes from toolchain.toml ([cross] images), else $CROSS_TARGET_<TRIPLE>_IMAGE,
else the project's Cross.toml, else cross's own ghcr.io/cross-rs image.

Two kinds of image:
- one that brings its own Rust (scripts/make-cross-image.sh makes one from a
  Debian base with Debian's Rust and arm64 std): cross runs
  `sh -c "PATH=$PATH:/rust/bin cargo build ..."`, so the image's cargo and
  rustc build, and the host toolchain only answers cross's own checks;
  route "cross-image".
- cross's own images (a C toolchain, no Rust): cross mounts the host
  toolchain's sysroot at /rust, so that toolchain must have the target's std
  (a rustup toolchain: Debian's /usr is not relocatable); route "cross-host".

The toolkit never lets cross touch rustup. cross 0.2.5 reads
`rustup toolchain list` and runs `rustup toolchain add` for a toolchain it
does not find there; rustup 1.28+ prints the active one as
"NAME (active, default)", which cross does not recognise (cross-rs/cross#1678),
so every run would re-install (online: update) the active toolchain, and
offline it fails. cross therefore runs with a private RUSTUP_HOME (under the
project's target folder) holding one linked toolchain, the host sysroot,
listed plainly; CROSS_CUSTOM_TOOLCHAIN=1 skips cross's `rustup target add`
(the route has already made sure std is there)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import tomllib
from pathlib import Path, PurePosixPath

from toolchain import proc
from toolchain.compile.cargo import Project
from toolchain.compile.container import ENGINE_FIX
from toolchain.compile.routes import DISTRO_RUSTC, Route, candidate_routes, default_rustc, rustc_sysroot
from toolchain.compile.runners.base import BuildJob, CargoInvocation, CommandRunner, cargo_build_args
from toolchain.config.settings import Settings, load_settings
from toolchain.config.targets import Target
from toolchain.errors import BuildError

# Where cross mounts the target folder inside the container.
CONTAINER_TARGET = PurePosixPath("/target")
IMAGE_FIX = (
    "build a local one (`scripts/make-cross-image.sh {triple} IMAGE`) and name it in toolchain.toml [cross] images"
)


def image_variable(triple: str) -> str:
    """cross's per-target image override variable."""
    return f"CROSS_TARGET_{triple.upper().replace('-', '_')}_IMAGE"


def engine() -> str | None:
    """The container engine cross will use (its own rule: CROSS_CONTAINER_ENGINE, docker, podman)."""
    return os.environ.get("CROSS_CONTAINER_ENGINE") or shutil.which("docker") or shutil.which("podman")


@functools.cache
def cross_version() -> str | None:
    """cross's version. Even `cross --version` goes through cross's toolchain
    check inside a cargo project (and so may run `rustup toolchain add`): it
    runs in an empty folder, with an empty RUSTUP_HOME and no rustup on PATH."""
    program = shutil.which("cross")
    if program is None:
        return None
    rustc = host_toolchain_for_image()
    with tempfile.TemporaryDirectory(prefix="toolchain-cross-") as empty:
        env = {
            "RUSTUP_HOME": empty,
            "RUSTUP_TOOLCHAIN": "",
            "PATH": os.pathsep.join([str(Path(program).parent), "/usr/bin", "/bin"]),
            "RUSTC": str(rustc / "bin" / "rustc") if rustc else str(DISTRO_RUSTC),
        }
        result = proc.run([program, "--version"], env=env, cwd=Path(empty), check=False, quiet=True, timeout=120)
    match = re.search(r"^cross (\S+)", result.stdout, re.MULTILINE)
    return match.group(1) if match else None


def cross_toml_image(triple: str, root: Path | None) -> str | None:
    """`[target.TRIPLE] image` from the project's Cross.toml (or $CROSS_CONFIG)."""
    path = Path(os.environ["CROSS_CONFIG"]) if os.environ.get("CROSS_CONFIG") else root and root / "Cross.toml"
    if path is None or not path.is_file():
        return None
    try:
        image = tomllib.loads(path.read_text()).get("target", {}).get(triple, {}).get("image")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if isinstance(image, dict):
        image = image.get("name")
    return image if isinstance(image, str) and image else None


def configured_image(triple: str, settings: Settings, root: Path | None) -> str | None:
    return settings.cross.images.get(triple) or os.environ.get(image_variable(triple)) or cross_toml_image(triple, root)


def image_for(triple: str, settings: Settings, root: Path | None) -> tuple[str, bool]:
    """(image, configured): the configured image, else the one cross pulls by default."""
    image = configured_image(triple, settings, root)
    if image:
        return image, True
    return f"ghcr.io/cross-rs/{triple}:{cross_version() or 'main'}", False


def engine_problem(program: str) -> str | None:
    result = proc.run([program, "version", "--format", "{{.Server.Version}}"], check=False, quiet=True, timeout=60)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return (
        f"cross's container engine ({program}) is not reachable ({lines[-1] if lines else 'no answer'}); {ENGINE_FIX}"
    )


def image_id(program: str, image: str) -> str | None:
    found = proc.output([program, "image", "inspect", "--format", "{{.Id}}", image], timeout=60)
    if found is None:
        return None
    return found.split(":")[-1] or None


@functools.cache
def registry_reachable(image: str) -> bool:
    """Whether the registry an image would be pulled from answers (any HTTP reply counts)."""
    import urllib.error
    import urllib.request  # here: http and ssl are not loaded for every build

    first = image.split("/", 1)[0]
    host = first if "/" in image and ("." in first or ":" in first or first == "localhost") else "registry-1.docker.io"
    try:
        urllib.request.urlopen(f"https://{host}/v2/", timeout=5)
    except urllib.error.HTTPError:
        return True  # 401: the registry is there and wants a token
    except (OSError, ValueError):
        return False
    return True


@functools.cache
def image_toolchain(program: str, identifier: str, image: str) -> tuple[tuple[str, str], ...]:
    """rustc and cargo versions of an image that brings its own Rust (none for
    cross's own images). Read once per image id; cached on disk, because
    starting a container costs seconds (a minute with docker's vfs storage driver)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolchain" / f"cross-{identifier}.json"
    try:
        return tuple((str(k), str(v)) for k, v in json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass  # not read yet for this image
    script = (
        "command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1 && rustc --version && cargo --version"
    )
    result = proc.run(
        [program, "run", "--rm", "--network", "none", image, "sh", "-c", f"{script}; true"],
        check=False,
        quiet=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise BuildError(f"cannot start the cross image {image}: {result.stderr.strip()[-300:]}", hint="rebuild it")
    facts = tuple(zip(("rustc", "cargo"), result.stdout.strip().splitlines(), strict=False))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(facts))
    return facts


def host_toolchain_for_image() -> Path | None:
    """The sysroot cross checks on the host when the image brings its own Rust:
    Debian's /usr when it is there (the same Rust as Debian-based images), else
    the default rustc's."""
    for rustc in (str(DISTRO_RUSTC), default_rustc()):
        if shutil.which(rustc) or Path(rustc).is_file():
            sysroot = rustc_sysroot(rustc)
            if sysroot is not None and (sysroot / "bin" / "cargo").is_file():
                return sysroot
    return None


def host_toolchain_with_std(target: Target) -> Path | None:
    """A relocatable host sysroot with the target's std, for cross to mount at /rust."""
    for route in candidate_routes(target):
        if route.name in ("rustup", "sysroot"):
            sysroot = rustc_sysroot(route.rustc)
            if sysroot is not None and (sysroot / "bin" / "cargo").is_file():
                return sysroot
    return None


def _settings_root() -> Path | None:
    try:
        return load_settings().manifest().parent
    except Exception:
        return None  # no project here: Cross.toml is simply not read


class CrossRunner(CommandRunner):
    # cargo runs in cross's images, which have no sccache and cannot reach the host's server.
    uses_compile_cache = False
    name = "cross"
    remaps_host_paths = False

    def problem(self, target: Target, host: str) -> str | None:
        if target.os == "macos":
            return "cross has no macOS images (use the zig runner)"
        if target.triple.endswith("-msvc"):
            return "cross has no MSVC images (build on Windows, or use x86_64-pc-windows-gnu)"
        if shutil.which("cross") is None:
            return "the cross CLI is not installed (`cargo install cross --locked`, from crates.io; about 2.5 min)"
        if shutil.which("rustup") is None:
            return "cross needs rustup on the host (it reads `rustup toolchain list`)"
        program = engine()
        if program is None:
            return "cross needs a container engine (`apt-get install docker.io`, or podman)"
        problem = engine_problem(program)
        if problem:
            return problem
        image, configured = image_for(target.triple, load_settings(), _settings_root())
        identifier = image_id(program, image)
        if identifier is None:
            if not registry_reachable(image):
                where = "the configured image" if configured else "no image is configured and cross's default"
                return (
                    f"{where} {image} is not in the local engine and its registry cannot be reached: "
                    + IMAGE_FIX.format(triple=target.triple)
                )
            if host_toolchain_with_std(target) is None:
                return (
                    f"{image} is not pulled yet, so whether it brings its own Rust is unknown, and no host "
                    f"toolchain has std for {target.triple} to mount into it: `{program} pull {image}` first"
                )
            return None  # pulled by the engine on first use
        if image_toolchain(program, identifier, image):
            if host_toolchain_for_image() is None:
                return "cross needs a Rust toolchain on the host for its own checks (Debian's rustc-web, or rustup)"
            return None
        if host_toolchain_with_std(target) is None:
            return (
                f"{image} has no Rust: cross mounts the host toolchain, and no rustup toolchain here has std for "
                f"{target.triple} (`rustup target add {target.triple}` needs static.rust-lang.org); use an image "
                f"with its own Rust: " + IMAGE_FIX.format(triple=target.triple)
            )
        return None

    def route(self, target: Target, project: Project) -> Route:
        program = engine() or "docker"
        image, _ = image_for(target.triple, load_settings(), project.workspace_root)
        identifier = image_id(program, image)
        facts = image_toolchain(program, identifier, image) if identifier else ()
        extra = (("cross", f"cross {cross_version()}"), ("image", image))
        if facts:
            checks = host_toolchain_for_image() or Path("/usr")
            return Route(
                "cross-image",
                str(checks / "bin" / "rustc"),
                detail=f"Rust inside {image} (cross's host checks: {checks})",
                versions=(*facts, *extra),
            )
        mounted = host_toolchain_with_std(target)
        if mounted is None:
            hint = IMAGE_FIX.format(triple=target.triple)
            raise BuildError(f"no host toolchain with std for {target.triple} for cross to mount", hint=hint)
        return Route("cross-host", str(mounted / "bin" / "rustc"), detail=f"std from {mounted}, mounted into {image}")

    def invocation(self, job: BuildJob) -> CargoInvocation:
        args = cargo_build_args(job)
        # cross mounts the workspace at /project and runs there: the manifest
        # path must be relative (cargo runs in the workspace root on both sides).
        manifest = job.project.manifest_path
        if manifest.is_relative_to(job.project.workspace_root):
            args[args.index("--manifest-path") + 1] = manifest.relative_to(job.project.workspace_root).as_posix()
        env = {}
        image = job.settings.cross.images.get(job.target.triple)
        if image:
            env[image_variable(job.target.triple)] = image
        if job.route.name in ("cross-image", "cross-host"):
            # Its own target folder: the container's toolchain differs from the host runners'.
            args += ["--target-dir", str(self.target_dir(job))]
            env.update(self.host_environment(job))
        return CargoInvocation(("cross", "build", *args), env)

    @staticmethod
    def target_dir(job: BuildJob) -> Path:
        return job.project.target_directory / "cross"

    @staticmethod
    def host_dir(job: BuildJob) -> Path:
        return job.project.target_directory / "cross-host"

    def host_environment(self, job: BuildJob) -> dict[str, str]:
        """cross's view of the host: one plainly listed rustup toolchain (the
        route's sysroot), its cargo and rustc first on PATH, no rustup changes."""
        home = self.host_dir(job)
        return {
            "CROSS_CUSTOM_TOOLCHAIN": "1",
            "RUSTC": job.route.rustc,
            "RUSTUP_HOME": str(home / "rustup"),
            "RUSTUP_TOOLCHAIN": "",  # an override would be listed "(active)"
            "PATH": f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def prepare_host(self, job: BuildJob) -> None:
        sysroot = Path(job.route.rustc).parent.parent
        home = self.host_dir(job)
        links = {
            home / "rustup" / "toolchains" / sysroot.name: sysroot,
            home / "bin" / "cargo": sysroot / "bin" / "cargo",
            home / "bin" / "rustc": sysroot / "bin" / "rustc",
        }
        for link, destination in links.items():
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() and link.readlink() == destination:
                continue
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(destination)
        for other in (home / "rustup" / "toolchains").iterdir():
            if other.name != sysroot.name:
                other.unlink()  # only one toolchain: the one cross will ask about

    def build(self, job: BuildJob) -> dict[str, Path]:
        if job.route.name in ("cross-image", "cross-host"):
            self.prepare_host(job)
        found = super().build(job)
        # cargo ran in the container: its paths start with /target, cross's
        # mount of --target-dir (of the project's target folder without it).
        own = job.route.name in ("cross-image", "cross-host")
        host_target = self.target_dir(job) if own else job.project.target_directory
        mapped = {}
        for name, path in found.items():
            posix = PurePosixPath(path.as_posix())
            if not posix.is_relative_to(CONTAINER_TARGET):
                raise BuildError(
                    f"cross built {name} with cargo on the host, not in the container ({path})",
                    hint="cross falls back to the host when it cannot use the image; see its [cross] lines above",
                )
            mapped[name] = host_target / posix.relative_to(CONTAINER_TARGET)
        return mapped
