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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import proc


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

    def run(self, argv: Sequence[str | Path], **kwargs: Any) -> proc.Result:
        """proc.run in this context's folder (the same keywords, no cwd of its own)."""
        if "cwd" in kwargs:
            raise TypeError("a cargo context runs in its own folder")
        return proc.run(argv, cwd=self.folder, **kwargs)

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
