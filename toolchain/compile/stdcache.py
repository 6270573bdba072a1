"""std built from source once per machine, kept in one cache every project shares.

A target without a prebuilt std (macOS, windows-gnu here) is built with the
build-std route. Built inside each project's target folder, std is compiled again
for every project and every clean target folder (1.5-6 minutes on 2 cores). This
module builds it once per key, xargo-style: a small probe crate is built with
`-Zbuild-std` and the same profile, flags, runner and rustc, its std rlibs are put
into a sysroot folder (lib/rustlib/TRIPLE/lib), and the project's own build gets
`--sysroot=THAT` in its rustflags instead of `-Zbuild-std`. With `--target` cargo
hands rustflags to the target's crates only, so build scripts and proc macros still
use the host's own std.

The key is every input that changes std's code: `rustc -vV` (version and commit),
std's lock file, the target, the std crates, the runner, the profile as cargo sees it
(the project's [profile.*] tables and the command line's), path trimming, the
target's rustflags and the environment variables std's build reads. Each entry has
a manifest (the key's inputs, each file's size and sha256), checked before use: an
entry with a missing or changed file is rebuilt, with one line saying why.

Concurrency: one lock file per key (fcntl). A build holds it shared while its cargo
runs (prune skips an entry in use); the one that builds std holds it exclusively,
builds into a temporary folder and publishes it with a rename, so a reader never
sees half an entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from toolchain import proc
from toolchain.compile.cargo import Package, Project, Selection
from toolchain.compile.routes import BUILD_STD, VENDORED_STD_SOURCES, build_std_args
from toolchain.compile.rustflags import SEPARATOR, user_rustflags
from toolchain.errors import BuildError
from toolchain.log import log

if TYPE_CHECKING:
    from toolchain.compile.runners.base import BuildJob, CommandRunner

KEY_FORMAT = 2  # 2: std holds object code beside bitcode (the probe's cdylib)
MANIFEST = "manifest.json"
PROBE = "toolchain-std-probe"
# Environment variables std's own build reads (its build scripts, the linker's view of the OS).
STD_ENV = ("MACOSX_DEPLOYMENT_TARGET", "IPHONEOS_DEPLOYMENT_TARGET", "CFLAGS", "CC", "AR", "RUSTC_BOOTSTRAP")


def cache_root(configured: str = "") -> Path:
    """[build] std-cache-dir, else $XDG_CACHE_HOME/toolchain/std (~/.cache when unset)."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolchain" / "std"


def uses_cache(job: BuildJob) -> bool:
    return job.route.name == "build-std" and job.settings.build.std_cache


@functools.cache
def _rustc_verbose_version(rustc: str) -> str:
    version = proc.output([rustc, "-vV"])
    if version is None:
        raise BuildError(f"`{rustc} -vV` failed", hint="check that the build-std route's rustc runs")
    return version


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _std_lock_digest() -> str:
    lock = VENDORED_STD_SOURCES.parent / "Cargo.lock"
    return _file_sha256(lock) if lock.is_file() else "none"


def key_inputs(job: BuildJob, runner_name: str, env: dict[str, str], flags: list[str]) -> dict[str, Any]:
    """Everything that changes the code of the std built for this job."""
    triple = job.target.triple
    suffix = triple.replace("-", "_").replace(".", "_")
    names = (*STD_ENV, f"CFLAGS_{suffix}", f"CC_{suffix}", f"CARGO_TARGET_{suffix.upper()}_LINKER")
    merged = {**os.environ, **env}
    return {
        "format": KEY_FORMAT,
        "rustc": _rustc_verbose_version(job.route.rustc),
        "std-lock": _std_lock_digest(),
        "target": triple,
        "std-crates": list(BUILD_STD),
        "runner": runner_name,
        "profile": job.profile.name,
        "profile-args": job.profile.config_args(job.skip_keys) if job.define_profile else [],
        "manifest-profiles": job.project.manifest_profiles,
        "trim-paths": job.route.trim_paths,
        "rustflags": flags,
        "env": {name: merged[name] for name in names if name in merged},
    }


def entry_name(inputs: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return f"{inputs['target']}-{digest[:20]}"


@dataclass(frozen=True)
class Entry:
    path: Path
    inputs: dict[str, Any]

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def libdir(self) -> Path:
        return self.path / "lib" / "rustlib" / str(self.inputs["target"]) / "lib"


def problem(entry: Path, inputs: dict[str, Any] | None = None) -> str | None:
    """Why this entry cannot be used (None: it is whole and what the key says)."""
    manifest_path = entry / MANIFEST
    if not entry.is_dir():
        return "not built yet"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
        stored_inputs = manifest["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MANIFEST} is missing or unreadable (an interrupted build?)"
    if inputs is not None and json.dumps(stored_inputs, sort_keys=True, default=str) != json.dumps(
        inputs, sort_keys=True, default=str
    ):
        return "its manifest was written for other inputs"
    on_disk = {str(p.relative_to(entry)) for p in (entry / "lib").rglob("*") if p.is_file()}
    for name in sorted(set(files) - on_disk):
        return f"{name} is missing"
    for name in sorted(on_disk - set(files)):
        return f"{name} is not in its manifest"
    for name, facts in sorted(files.items()):
        path = entry / name
        if path.stat().st_size != facts["size"] or _file_sha256(path) != facts["sha256"]:
            return f"{name} does not match its manifest's digest (changed after it was built)"
    return None


def _lock(path: Path, mode: int, blocking: bool = True) -> IO[bytes] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+b")
    try:
        fcntl.flock(handle, mode | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def cached_sysroot(job: BuildJob, runner: CommandRunner, env: dict[str, str]) -> Iterator[Path]:
    """The sysroot holding std for this job, built first if the cache has no whole entry
    for its key; held (shared lock) until the caller's cargo is done."""
    flags = user_rustflags(job.project.workspace_root, job.target.triple)
    inputs = key_inputs(job, runner.name, env, flags)
    root = cache_root(job.settings.build.std_cache_dir)
    entry = Entry(root / entry_name(inputs), inputs)
    handle = _lock(entry.lock_path, fcntl.LOCK_SH)
    assert handle is not None
    try:
        why = problem(entry.path, inputs)
        if why is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            if not _try_exclusive(handle):
                log.info(f"std for {job.target.triple}: waiting for another build of it ({entry.lock_path})")
                fcntl.flock(handle, fcntl.LOCK_EX)
            why = problem(entry.path, inputs)  # another process may have built it meanwhile
            if why is not None:
                if entry.path.exists():
                    log.warn(f"std cache entry {entry.path.name} is rebuilt: {why}")
                _build_entry(job, runner, entry, flags)
            fcntl.flock(handle, fcntl.LOCK_SH)  # a downgrade: prune waits until cargo is done
        else:
            log.info(f"std for {job.target.triple}: from the machine's cache ({entry.path})")
        # Last use, for prune, on the lock file beside the entry: a build watches the sysroot it
        # read, so a mark inside the entry would make every build's next one run cargo again.
        os.utime(entry.lock_path)
        yield entry.path
    finally:
        handle.close()


def _try_exclusive(handle: IO[bytes]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def without_build_std(job: BuildJob) -> BuildJob:
    """The job with std from the sysroot: no -Zbuild-std on cargo's command line."""
    args = tuple(a for a in job.route.cargo_args if a not in BUILD_STD)
    return dataclasses.replace(job, route=dataclasses.replace(job.route, cargo_args=args))


def sysroot_rustflags(job: BuildJob, sysroot: Path, encoded: str | None = None) -> str:
    """The build's rustflags (already encoded ones, else the user's) with the cached std's sysroot."""
    if encoded is not None:
        flags = [f for f in encoded.split(SEPARATOR) if f]
    else:
        flags = user_rustflags(job.project.context.folder or job.project.workspace_root, job.target.triple)
    return SEPARATOR.join([*flags, f"--sysroot={sysroot}"])


def _toml(value: Any) -> str:
    """A cargo profile value as TOML (inline tables for nested ones); the toolkit has no
    TOML writer and these values are strings, numbers, booleans and tables of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _probe_crate(folder: Path, profiles: dict[str, dict[str, Any]]) -> Path:
    (folder / "src").mkdir(parents=True)
    # With LTO, cargo builds std as bitcode only when every crate is linked by LTO; a library
    # that is also a cdylib (some dependencies are) is linked by the plain linker and needs std's
    # object code. The probe has one, so the cached std holds both and serves every graph.
    (folder / "src" / "lib.rs").write_text("pub fn probe() {}\n", encoding="utf-8")
    crate = PROBE.replace("-", "_")
    (folder / "src" / "main.rs").write_text(f"fn main() {{ {crate}::probe() }}\n", encoding="utf-8")
    lines = [
        "[package]",
        f'name = "{PROBE}"',
        'version = "0.0.0"',
        'edition = "2021"',
        "",
        "[lib]",
        'crate-type = ["cdylib", "rlib"]',
        "",
        "[workspace]",
        "",
        "[profile]",
        *(f"{json.dumps(name)} = {_toml(table)}" for name, table in profiles.items()),
    ]
    manifest = folder / "Cargo.toml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _build_entry(job: BuildJob, runner: CommandRunner, entry: Entry, flags: list[str]) -> None:
    """Build std with the job's settings into a temporary folder, then publish it."""
    started = time.monotonic()
    triple = job.target.triple
    temporary = entry.path.with_name(f".building-{entry.path.name}-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        manifest_path = _probe_crate(temporary / "probe", job.project.manifest_profiles)
        target_dir = temporary / "target"
        package = Package(PROBE, "0.0.0", manifest_path, (PROBE,), (), None)
        probe = Project(
            manifest_path=manifest_path,
            workspace_root=manifest_path.parent,
            target_directory=target_dir,
            packages=(package,),
            manifest_profiles=job.project.manifest_profiles,
        )
        # std's own crates come from its vendored folder whatever the project's sources are.
        route = dataclasses.replace(job.route, cargo_args=build_std_args(), merge=None)
        probe_job = dataclasses.replace(
            job,
            project=probe,
            selections=(Selection(package, (PROBE,)),),
            route=route,
            features=(),
            all_features=False,
            no_default_features=False,
            locked=False,
            cache_env={},
            timings=False,
        )
        invocation = runner.invocation(probe_job)
        env = {
            **invocation.env,
            "CARGO_TARGET_DIR": str(target_dir),
            "CARGO_ENCODED_RUSTFLAGS": SEPARATOR.join(flags),
        }
        log.info(f"std for {triple}: building it once for this machine's cache ({entry.path})")
        proc.run(
            invocation.argv,
            env=env,
            cwd=manifest_path.parent,
            tee_stderr=True,
            error=BuildError,
            what=f"std for {triple}",
        )
        deps = target_dir / triple / job.profile.dir_name() / "deps"
        staged = Entry(temporary / "entry", entry.inputs)
        staged.libdir.mkdir(parents=True)
        probe_prefix = "lib" + PROBE.replace("-", "_") + "-"
        for rlib in sorted(deps.glob("lib*.rlib")):
            if not rlib.name.startswith(probe_prefix):
                shutil.copy2(rlib, staged.libdir / rlib.name)
        files = {
            str(p.relative_to(staged.path)): {"size": p.stat().st_size, "sha256": _file_sha256(p)}
            for p in sorted(staged.libdir.iterdir())
        }
        if not any(name.rsplit("/", 1)[-1].startswith("libstd-") for name in files):
            raise BuildError(f"the std build for {triple} left no libstd rlib in {deps}", hint="report this as a bug")
        manifest = {"inputs": entry.inputs, "files": files, "seconds": round(time.monotonic() - started, 1)}
        (staged.path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        _publish(staged.path, entry.path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    log.info(f"std for {triple}: cached in {time.monotonic() - started:.0f} s")


def _publish(staged: Path, final: Path) -> None:
    """Rename into place; a broken entry there is moved aside first (rename cannot replace a folder)."""
    if final.exists():
        aside = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    staged.rename(final)


@dataclass(frozen=True)
class EntryInfo:
    name: str
    target: str
    size: int
    last_used: float
    problem: str | None


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def entries(root: Path, check: bool = False) -> list[EntryInfo]:
    """The cache's entries (check: also verify each one's files, reading them all)."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        manifest = path / MANIFEST
        try:
            target = str(json.loads(manifest.read_text(encoding="utf-8"))["inputs"]["target"])
            lock = path.with_name(path.name + ".lock")
            last_used = max(manifest.stat().st_mtime, lock.stat().st_mtime if lock.exists() else 0.0)
        except (OSError, ValueError, KeyError, TypeError):
            target, last_used = "?", path.stat().st_mtime
        why = problem(path) if check else None
        found.append(EntryInfo(path.name, target, _tree_size(path), last_used, why))
    return found


@dataclass(frozen=True)
class Pruned:
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    in_use: tuple[str, ...]
    freed: int


def prune(root: Path, older_than_days: float | None, everything: bool = False) -> Pruned:
    """Remove entries unused for that many days (or all), broken ones and leftovers of
    interrupted builds; an entry a build holds is left alone."""
    removed, kept, in_use, freed = [], [], [], 0
    now = time.time()
    for info in entries(root):
        path = root / info.name
        stale = older_than_days is not None and now - info.last_used > older_than_days * 86400
        if not (everything or stale or problem(path) is not None):
            kept.append(info.name)
            continue
        handle = _lock(path.with_name(path.name + ".lock"), fcntl.LOCK_EX, blocking=False)
        if handle is None:
            in_use.append(info.name)
            continue
        try:
            shutil.rmtree(path)
        finally:
            handle.close()  # the lock file stays: a build may have it open already
        removed.append(info.name)
        freed += info.size
    if root.is_dir():
        for leftover in root.glob(".old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in root.glob(".building-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
    return Pruned(tuple(removed), tuple(kept), tuple(in_use), freed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
