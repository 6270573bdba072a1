"""The one cargo context of a project: every cargo and rustc command for it
(metadata, build, version and sysroot probes, the SBOM's queries) runs in the
folder of the Cargo.toml being built.

cargo reads `.cargo/config.toml` (source replacement, net.offline, rustflags)
from its working folder upward, not from `--manifest-path`'s folder, and
rustup reads `rust-toolchain.toml` the same way; `cargo -C DIR` is still
unstable (cargo 1.95). Run from the project's folder, a command sees the same
sources and toolchain as the build, whichever folder the toolkit was started in.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import proc
from toolchain.errors import MissingToolError, ProjectError, ToolchainError


@dataclass(frozen=True)
class CargoContext:
    """Where a project's cargo and rustc commands run. folder None: the process's own
    working folder (a task with no project, such as `doctor`)."""

    folder: Path | None = None

    @classmethod
    def of(cls, manifest_path: Path) -> CargoContext:
        """The context of the crate or workspace whose Cargo.toml (or folder) this is."""
        manifest_path = manifest_path.resolve()
        return cls(manifest_path if manifest_path.is_dir() else manifest_path.parent)

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        explain: Callable[[str], ToolchainError | None] | None = None,
        **kwargs: Any,
    ) -> proc.Result:
        """proc.run in this context's folder (the same keywords, no cwd of its own). A
        failure because rustup lacks the toolchain the folder pins says so, with the fix.
        explain: the caller's reading of a failure's error output, asked first (what only
        the caller knows, such as the target), None where it has nothing to say."""
        if "cwd" in kwargs:
            raise TypeError("a cargo context runs in its own folder")
        check = kwargs.pop("check", True)
        result = proc.run(argv, cwd=self.folder, check=False, **kwargs)
        if check and result.returncode != 0:
            explained = explain(result.stderr) if explain is not None else None
            if explained is not None:
                raise explained
            missing = _MISSING_TOOLCHAIN.search(result.stderr)
            if missing:
                raise self._missing_toolchain(missing.group(1))
            stale = _LOCK_BEHIND.search(result.stderr)
            if stale:
                raise ProjectError(
                    f"{stale.group(1)} does not match Cargo.toml (a release is built from the lock file as "
                    "committed: --locked)",
                    hint="update it with `cargo update --workspace` and commit it, or build with --no-locked",
                )
            refused = _RUST_VERSION_REFUSED.search(result.stderr)
            if refused:
                # one line per unit (a package's library, binary, build script): each package once
                needs = list(dict.fromkeys((n[1], n[2], n[3]) for n in _NEEDS.finditer(refused.group(2))))
                hold_back = "or, where it is a dependency, hold it back: `cargo update NAME@VERSION --precise OLDER`"
                raise too_old_error(f"rustc {refused.group(1)}", needs, hold_back=hold_back)
            kept = {k: kwargs[k] for k in ("error", "what", "tee_stderr") if k in kwargs}
            proc.require_success(result, **kept)
        return result

    def _missing_toolchain(self, name: str) -> MissingToolError:
        """The pin rustup could not satisfy: the environment's, else the nearest toolchain file's."""
        fix = "or set RUSTUP_TOOLCHAIN to an installed toolchain to build with that one instead"
        if os.environ.get("RUSTUP_TOOLCHAIN"):
            return MissingToolError(
                f"RUSTUP_TOOLCHAIN asks for Rust {name}, which rustup has not installed",
                hint=f"run `rustup toolchain install {name}`, or unset RUSTUP_TOOLCHAIN",
            )
        start = (self.folder or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            for file_name in ("rust-toolchain.toml", "rust-toolchain"):
                pin = folder / file_name
                if pin.is_file():
                    channel = _pinned_channel(pin) or name
                    return MissingToolError(
                        f"{pin} pins Rust {channel}, which rustup has not installed",
                        hint=f"run `rustup toolchain install {channel}` (or `rustup toolchain install` in "
                        f"{folder}), {fix}",
                    )
        return MissingToolError(
            f"rustup has no toolchain {name} installed", hint=f"run `rustup toolchain install {name}`, {fix}"
        )

    def output(self, argv: Sequence[str | Path], *, timeout: float | None = None) -> str | None:
        """What a command prints, stripped, when it succeeds; None when it fails (unlogged)."""
        result = self.run(argv, check=False, quiet=True, timeout=timeout)
        return result.stdout.strip() if result.returncode == 0 else None

    def rustc_sysroot(self, rustc: str) -> Path | None:
        # One probe per rustc and folder: a second asker waits for the first's answer.
        with _probe_lock:
            return _sysroot(self, rustc)

    def rustc_version(self, rustc: str) -> str | None:
        return _version(self, rustc)


HERE = CargoContext()

# rustup's proxy, when the toolchain a folder pins is not installed (and not installed on first use).
_MISSING_TOOLCHAIN = re.compile(r"toolchain '([^']+)' is not installed")


# cargo, when the lock file would have to change under --locked (which the toolkit adds)
_LOCK_BEHIND = re.compile(r"cannot update the lock file (.+?) because --locked was passed")

# cargo's refusal of a package whose rust-version is newer than the compiler (any route).
_RUST_VERSION_REFUSED = re.compile(
    r"rustc (\S+) is not supported by the following packages?:\n((?:[ \t]+\S+@\S+ requires rustc \S+\n?)+)"
)
_NEEDS = re.compile(r"[ \t]+(\S+)@(\S+) requires rustc (\S+)")


def too_old_error(compiler: str, needs: Sequence[tuple[str, str, str]], *, hold_back: str | None) -> MissingToolError:
    """The one wording of "this rustc is older than the graph needs". compiler: what to call
    it ("rustc 1.95.0"); needs: (package, or its chain joined by ' -> ', version,
    rust-version); hold_back: the `cargo update` hint's wording, None for none."""
    shown = "; ".join(f"{package} {version} needs rustc {rust_version}" for package, version, rust_version in needs[:3])
    more = f" (and {len(needs) - 3} more)" if len(needs) > 3 else ""
    hint = "build with a newer Rust (point RUSTC at one, or `rustup update`)"
    return MissingToolError(
        f"{compiler} is older than the crate graph needs: {shown}{more}",
        hint=f"{hint}, {hold_back}" if hold_back else hint,
    )


def _pinned_channel(pin: Path) -> str | None:
    """The channel a rust-toolchain.toml (or a legacy one-line rust-toolchain file) names."""
    try:
        text = pin.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        channel = tomllib.loads(text).get("toolchain", {}).get("channel")
    except tomllib.TOMLDecodeError:
        channel = text.strip() or None  # the legacy format: just the name
    return channel if isinstance(channel, str) else None


_probe_lock = threading.Lock()

# Every sysroot asked for in this process: the fresh check watches their compilers.
SYSROOTS: set[Path] = set()


@functools.cache
def _sysroot(context: CargoContext, rustc: str) -> Path | None:
    sysroot = context.output([rustc, "--print", "sysroot"])
    if sysroot is None:
        return None
    SYSROOTS.add(Path(sysroot))
    return Path(sysroot)


@functools.cache
def _version(context: CargoContext, rustc: str) -> str | None:
    return context.output([rustc, "--version"])


def forget_sysroots() -> None:
    """Ask again next time (a toolchain was just installed)."""
    _sysroot.cache_clear()
    _version.cache_clear()
