"""Auditable binaries: cargo-auditable (from crates.io) embeds the crate's
dependency list, compressed JSON in a `.dep-v0` section, so scanners
(cargo audit bin, syft, trivy) can find vulnerable dependencies in a
shipped binary.

cargo-auditable is a cargo subcommand that runs `$CARGO build` with itself
as RUSTC_WORKSPACE_WRAPPER. Pointing $CARGO at cargo-zigbuild (which takes
`build` as zigbuild) makes the zig runner auditable too, for every target
it cross-compiles; build-std routes pass through unchanged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from toolchain.errors import MissingToolError, UsageError

INSTALL_HINT = "cargo install --locked cargo-auditable (its bin folder on PATH), or set [build] auditable = false"
# Where `.ci/run` and the README install it when it is not on PATH.
INSTALL_ROOTS = (Path("/opt/auditable/bin"), Path.home() / ".cargo" / "bin")
# The build commands cargo-auditable can stand in front of, and the word it passes on.
WRAPPABLE = {"cargo": "build", "cargo-zigbuild": "zigbuild"}


def cargo_auditable() -> str:
    found = shutil.which("cargo-auditable")
    if found:
        return found
    for root in INSTALL_ROOTS:
        if os.access(root / "cargo-auditable", os.X_OK):
            return str(root / "cargo-auditable")
    raise MissingToolError(
        "cargo-auditable is not installed, so the build cannot embed its dependency list", hint=INSTALL_HINT
    )


def auditable_command(
    argv: tuple[str, ...], env: dict[str, str], runner: str
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The same build (argument list and extra environment), run through cargo-auditable."""
    program, subcommand, *rest = argv
    if WRAPPABLE.get(Path(program).name) != subcommand:
        raise UsageError(
            f"[build] auditable cannot wrap the {runner} runner's build (its image has no cargo-auditable)",
            hint="build with --runner zig or --runner native, or set [build] auditable = false",
        )
    cargo = shutil.which(program) or program
    return (cargo_auditable(), "auditable", "build", *rest), {**env, "CARGO": cargo}
