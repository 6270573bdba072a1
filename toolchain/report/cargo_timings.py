"""Cargo's own timings page (`cargo build --timings`), kept per target: cargo
writes it into the shared target folder, where the next target's build
would bury it."""

from __future__ import annotations

import shutil
from pathlib import Path

CARGO_TIMINGS_DIR = "cargo-timings"


def keep_cargo_timings(target_dir: Path, triple: str, since: float, out_dir: Path) -> list[Path]:
    """Copy the timings pages cargo wrote for this target's build (those newer
    than `since`) into the output folder, named after the target."""
    made = sorted(
        (p for p in (target_dir / CARGO_TIMINGS_DIR).glob("cargo-timing-*.html") if p.stat().st_mtime >= since),
        key=lambda p: p.stat().st_mtime,
    )
    folder = out_dir / CARGO_TIMINGS_DIR
    kept = []
    for number, page in enumerate(made, start=1):
        folder.mkdir(parents=True, exist_ok=True)
        # A universal target runs cargo once per component: number them.
        name = f"{triple}.html" if len(made) == 1 else f"{triple}-{number}.html"
        shutil.copyfile(page, folder / name)
        kept.append(folder / name)
    return kept
