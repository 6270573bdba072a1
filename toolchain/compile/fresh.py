"""The fresh check: a build whose every input and output is as the last
successful build of the same command left them is not run again; its result
is reported as it was.

After a successful build, a fingerprint is written for the command (the
folder it ran in, its options and the toolkit's version): the environment,
and the state (mtime, ctime, size, inode, or absence) of every file the
result depends on:

- every source file in the dep-info cargo writes beside each binary (the
  local packages' sources, `include_str!` files, build scripts'
  rerun-if-changed paths), Cargo.lock and every member's Cargo.toml, and
  every file under a member with a build script (cargo reruns one that
  names no rerun-if-changed path when any file of its package changes);
- every file the toolkit's own process read during the build (settings
  layers, targets, profiles and policies, keys, templates, the toolkit and
  the libraries it imported) and every folder it listed, caught by an audit
  hook; the toolkit's package files; the places settings and cargo look for
  a file that is absent (toolchain.toml, Cargo.toml, rust-toolchain(.toml),
  .cargo/config(.toml) in each folder above);
- the tools on PATH (cargo, rustc, cargo-zigbuild, zig, xz, git, rustup's
  settings, $CARGO_HOME/config(.toml) and the sysroots' compilers);
- every file of the output folder and the binaries in cargo's target folder;
- the git commit and the tracked files' status (one `git status` call);
- the UTC day, when the output folder holds dated files (latest.json's
  `released` and `expires`): the release folder's stamp says for which day
  they were written (see toolchain/dated.py), and on another day the build
  runs, so the stamp renews them.

The check needs only stat calls and one git call: it imports nothing of the
toolkit beyond this module and proc. Anything it cannot read counts as
changed, never as an error. A file modified after the build began is not
fingerprinted (the build may have read it before the change): the next build
is then a real one, as cargo decides from its own start time.

`run_or_reuse` is the whole check around one command: it prints the stored
result on a hit, else runs the command and fingerprints it when it succeeded.
Saving a fingerprint also prunes the store (unused ones, then all but the
newest): a failure there, as any failure to write, costs only the next
build's speed, never this build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import __version__, proc
from toolchain.dated import utc_day
from toolchain.errors import ToolchainError
from toolchain.log import log

SCHEMA = "toolchain.fresh/v1"
# Variables that differ between two runs of the same command and that no build reads.
VOLATILE_ENV = frozenset({"_", "OLDPWD", "PWD", "SHLVL", "PYTEST_CURRENT_TEST"})
# Names settings, the catalog or cargo look for in each folder upwards; one created later changes the build.
LOOKED_UP = (
    "toolchain.toml",
    "targets",
    "profiles",
    "policies",
    "Cargo.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
    ".cargo/config",
    ".cargo/config.toml",
)
TOOLS = ("cargo", "rustc", "rustup", "cargo-zigbuild", "zig", "xz", "git")
# A member with a build script is walked; past this many files the build is not fingerprinted.
MAX_WALKED = 20000
_UNSEEN = "/proc/", "/sys/", "/dev/"
# A fingerprint (~50 KB) unused this long is of a command no longer run, often in a deleted temporary folder.
UNUSED_FOR_S = 30 * 86400
# At most this many (~10 MB): one per command and folder, so a machine that builds many folders keeps the recent.
KEEP_NEWEST = 200

State = tuple[int, int, int, int] | None  # mtime_ns, ctime_ns, size, inode; None: absent


def store_dir() -> Path:
    """Where the fingerprints live: the user's cache (one small file per command)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolchain" / "fresh"


def command_key(options: dict[str, Any]) -> str:
    """One command: the folder it runs in, its options, and the toolkit (version, place, interpreter)."""
    toolkit = {"version": __version__, "at": str(Path(__file__).parent.parent), "python": sys.executable}
    text = json.dumps({"cwd": str(Path.cwd()), "options": options, "toolkit": toolkit}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def env_digest() -> str:
    """The environment, whole but for VOLATILE_ENV: build scripts' rerun-if-env-changed are in it."""
    items = sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE_ENV)
    return hashlib.sha256("\0".join(f"{k}={v}" for k, v in items).encode(errors="surrogateescape")).hexdigest()


def state(path: str) -> State:
    try:
        st = os.stat(path)  # noqa: PTH116 - a str, no Path object: thousands of these on the fast path
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class Watched:
    """What a successful build's fingerprint watches beside what its process read."""

    workspace_root: Path
    target_directory: Path
    out_dir: Path
    manifests: tuple[Path, ...]  # the workspace's and every member's Cargo.toml
    build_script_roots: tuple[Path, ...]  # members with a build script: walked whole
    binaries: tuple[Path, ...]  # each with cargo's dep-info beside it
    sysroots: tuple[Path, ...]
    day: str | None = None  # the UTC day the output folder's dated files are for (release/folder.stamped_day)


@dataclass(frozen=True)
class FreshResult:
    """One real run of a command: what it prints, and what a fresh hit prints again."""

    ok: bool  # only a successful run is fingerprinted
    document: dict[str, Any]  # the --json document, without "fresh"
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: tuple[str, ...] = ()  # lines logged after the result, by this run only
    watched: Watched | None = None  # None: nothing to fingerprint (the next run is a real one)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    fresh: bool  # the stored result was printed; nothing ran


def run_or_reuse(
    options: Mapping[str, Any], run: Callable[[], FreshResult], *, force: bool = False, json: bool = False
) -> Outcome:
    """The command keyed by `options` (every option that changes what it builds or writes):
    its stored result when nothing it depends on changed since its last success (and not
    `force`), else `run()`'s, fingerprinted when it succeeded. Either is printed: the
    --json document with "fresh" added, or the summary table."""
    key = command_key(dict(options))
    previous = None if force else stored(key)
    if previous is not None:
        touch(key)
        log.info("fresh: nothing changed since this command's last build (--force builds again)")
        _show(previous["report"], previous["title"], previous["columns"], previous["rows"], fresh=True, json=json)
        return Outcome(ok=True, fresh=True)
    started_ns = time.time_ns()
    reads = Reads.start()
    try:
        result = run()
    finally:
        reads.stop()
    _show(result.document, result.title, result.columns, result.rows, fresh=False, json=json)
    for note in result.notes:
        log.info(note)
    if result.ok and result.watched is not None:
        shown = {"report": result.document, "title": result.title, "columns": result.columns, "rows": result.rows}
        why_not = save(key, reads, started_ns, shown, result.watched)
        if why_not:
            log.info(f"the next build runs cargo again: {why_not}")
    return Outcome(ok=result.ok, fresh=False)


def _show(
    document: dict[str, Any],
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    fresh: bool,
    json: bool,
) -> None:
    if json:
        log.json({**document, "fresh": fresh})
    else:
        log.table(title, columns, rows)


def touch(key: str) -> None:
    """Mark a fingerprint used (pruning goes by mtime); a cache: a failure is ignored."""
    with contextlib.suppress(OSError):
        os.utime(store_dir() / f"{key}.json")


def prune(folder: Path, now: float | None = None) -> None:
    """Remove what is older than UNUSED_FOR_S, then all but the KEEP_NEWEST newest, by mtime.
    A file that vanishes or cannot be removed (another build pruning, a read-only folder) is
    left: this is a cache."""
    now = time.time() if now is None else now
    aged: list[tuple[float, str]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    aged.append((entry.stat().st_mtime, entry.path))
                except OSError:
                    continue  # gone since listed, or a dangling link
    except OSError:
        return
    aged.sort(reverse=True)
    for rank, (mtime, path) in enumerate(aged):
        if rank >= KEEP_NEWEST or mtime < now - UNUSED_FOR_S:
            with contextlib.suppress(OSError):
                os.unlink(path)  # noqa: PTH108 - a str from scandir, as the other paths here


def git_state(repo: Path) -> str | None:
    """The commit and every tracked file's status in one call (None outside a repository)."""
    try:
        return proc.output(["git", "-C", repo, "status", "--porcelain=v2", "--branch", "--untracked-files=no"])
    except ToolchainError:
        return None  # no git on PATH: the same answer each time


def stored(key: str) -> dict[str, Any] | None:
    """The previous result of this command if nothing it depends on changed, else None."""
    try:
        document = json.loads((store_dir() / f"{key}.json").read_text(encoding="utf-8"))
        if document.get("schema") != SCHEMA or document.get("env") != env_digest():
            return None
        for path, recorded in document["files"]:
            if state(path) != (tuple(recorded) if recorded is not None else None):
                return None
        if git_state(Path(document["workspace_root"])) != document["git"]:
            return None
        day = document.get("day")
        if day is not None and day != utc_day():
            log.info(f"fresh check: the release folder's dated files (latest.json) are of {day}: building again")
            return None
        result: dict[str, Any] = document["result"]
        return result
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or of another shape: not fresh


class Reads:
    """Every file the process opens for reading and every folder it lists,
    from Python's audit events, while on (audit hooks cannot be removed: one
    is added per process and switched)."""

    _installed: Reads | None = None

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.folders: set[str] = set()
        self.listings: dict[str, frozenset[str]] = {}  # each folder's names when first listed
        self.on = False
        self.env = ""
        self._listing = False

    @classmethod
    def start(cls) -> Reads:
        if cls._installed is None:
            cls._installed = Reads()
            sys.addaudithook(cls._installed._hook)
        reads = cls._installed
        reads.files, reads.folders, reads.listings, reads.on = set(), set(), {}, True
        reads.env = env_digest()  # as the command found it, before the build sets any variable
        return reads

    def stop(self) -> None:
        self.on = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        if event == "open":
            path, _, flags = args
            if isinstance(path, str) and not (flags or 0) & (os.O_WRONLY | os.O_RDWR):
                self.files.add(path)
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], str) and not self._listing:
            folder = os.path.abspath(args[0])  # noqa: PTH100 - a str, as the other inputs
            self.folders.add(folder)
            if folder not in self.listings:
                # What the build saw: a folder it listed that gains only this build's output folders
                # (dist/, target/) still counts as unchanged.
                self._listing = True
                try:
                    self.listings[folder] = frozenset(p.name for p in Path(folder).iterdir())
                except OSError:
                    pass
                finally:
                    self._listing = False


def dep_info_paths(binary: Path) -> list[str] | None:
    """The files cargo's dep-info beside `binary` (or beside the unsigned one, one folder up)
    names; None when there is none or it cannot be read as absolute paths."""
    stem = binary.name.removesuffix(".exe")
    for candidate in (binary.parent / f"{stem}.d", binary.parent.parent / f"{stem}.d"):
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError:
            continue
        paths: list[str] = []
        for line in text.splitlines():
            _, sep, deps = line.partition(": ")
            if not sep:
                continue
            # Make's escaping: "\ " is a space inside a name.
            for part in deps.replace("\\ ", "\0").split():
                path = part.replace("\0", " ")
                if not Path(path).is_absolute():
                    return None  # [build] dep-info-basedir: relative to what, this check does not guess
                paths.append(path)
        return paths
    return None


def _walk(root: Path, skip: set[str], found: list[str]) -> bool:
    """Every file and folder under root, but `skip` and .git; False past MAX_WALKED."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        found.append(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name in (".git", "__pycache__") or entry.path in skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                found.append(entry.path)
        if len(found) > MAX_WALKED:
            return False
    return True


def _gained_only(folder: str, reads: Reads, outputs: set[str]) -> bool:
    """Whether a folder the build listed has since gained only output folders (or folders
    that hold one: the first build of a crate makes dist/ and target/ beside its sources)."""
    before = reads.listings.get(folder)
    if before is None:
        return False
    try:
        now = frozenset(p.name for p in Path(folder).iterdir())
    except OSError:
        return False
    prefix = folder.rstrip(os.sep) + os.sep
    added = [prefix + name for name in now - before]
    return before <= now and all(any(o == p or o.startswith(p + os.sep) for o in outputs) for p in added)


def _upwards(start: Path) -> list[str]:
    return [str(folder / name) for folder in (start, *start.parents) for name in LOOKED_UP]


def _tools() -> list[str]:
    import sysconfig  # here: the fresh check's own path never needs it

    found = []
    # And this interpreter's scripts (the zig runner may run cargo-zigbuild from there).
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), sysconfig.get_path("scripts")]:
        for tool in TOOLS:
            if folder:
                found.append(str(Path(folder) / tool))  # absent ones too: a shim put in front is seen
    for name in ("CARGO_ZIGBUILD_ZIG_COMMAND", "RUSTC", "CARGO"):
        if os.environ.get(name):
            found.append(os.environ[name])
    rustup_home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    found += [str(rustup_home / "settings.toml"), str(cargo_home / "config"), str(cargo_home / "config.toml")]
    return found


def save(key: str, reads: Reads, started_ns: int, result: dict[str, Any], watched: Watched) -> str | None:
    """Write this command's fingerprint and prune the store; None when written, else why
    not (nothing is written)."""
    reads.stop()
    workspace_root, target_directory, out_dir = watched.workspace_root, watched.target_directory, watched.out_dir
    manifests, binaries = watched.manifests, watched.binaries
    from toolchain.compile.links import cache_file  # here: a no-op build never saves

    # what the build writes: cargo's and the release's folders, and the toolkit's own caches
    outputs = {str(target_directory), str(out_dir), str(store_dir()), str(cache_file())}

    def is_output(path: str) -> bool:
        return any(path == o or path.startswith(o + os.sep) for o in outputs)

    inputs = {str(workspace_root / "Cargo.lock"), *map(str, manifests), *_upwards(Path.cwd())}
    inputs |= {*_upwards(workspace_root), *_tools()}
    for manifest in manifests:  # settings are looked up from the built crate's folder too
        inputs.update(_upwards(manifest.parent))
    for sysroot in watched.sysroots:
        inputs |= {str(sysroot / "bin" / "rustc"), str(sysroot / "bin" / "cargo"), str(sysroot / "lib" / "rustlib")}
    for binary in binaries:
        listed = dep_info_paths(binary)
        if listed is None:
            return f"no usable dep-info beside {binary}"
        # A container build's dep-info names the container's paths: nothing here to watch.
        missing = next((path for path in listed if state(path) is None), None)
        if missing is not None:
            return f"{binary.name}'s dep-info names {missing}, which is not here"
        inputs.update(listed)
    walked: list[str] = []
    for root in watched.build_script_roots:
        if not _walk(root, outputs, walked):
            return f"more than {MAX_WALKED} files under {root}"
    inputs.update(walked)
    package = Path(__file__).resolve().parent.parent
    if not _walk(package, set(), walked):
        return f"more than {MAX_WALKED} files under {package}"
    inputs.update(walked)
    inputs |= {p for p in reads.files | reads.folders if not p.startswith(_UNSEEN)}
    inputs = {os.path.abspath(p) for p in inputs}  # noqa: PTH100 - not resolve(): a symlink is watched as named
    inputs = {p for p in inputs if not is_output(p)}
    files: list[tuple[str, State]] = []
    for path in sorted(inputs):
        seen = state(path)
        if seen is None and (path in reads.files or path in reads.folders):
            continue  # read and gone: a temporary file
        if seen is not None and max(seen[0], seen[1]) >= started_ns and not _gained_only(path, reads, outputs):
            return f"{path} changed while the build ran"
        files.append((path, seen))
    produced: list[str] = [str(b) for b in binaries]
    if not _walk(out_dir, set(), produced):
        return f"more than {MAX_WALKED} files under {out_dir}"
    files += [(path, state(path)) for path in sorted(set(produced))]
    document = {
        "schema": SCHEMA,
        "written": time.time(),
        "env": reads.env,
        "workspace_root": str(workspace_root),
        "git": git_state(workspace_root),
        "day": watched.day,
        "files": files,
        "result": result,
    }
    folder = store_dir()
    partial = folder / f".{key}.{os.getpid()}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(document), encoding="utf-8")
        os.replace(partial, folder / f"{key}.json")
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return f"cannot write to {folder} ({exc.strerror or exc})"
    prune(folder)
    return None
