"""invoke symbolicate"""

from __future__ import annotations

import sys

from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import out_folder, required, task


@task(
    help={
        "target": "the target triple the crashed binary was built for",
        "address": "an address (0xADDR, BIN+0xOFF, BIN(+0xOFF)); repeat it or separate several with commas;"
        " without any, a pasted backtrace is read from stdin",
        "release-folder": "the release folder holding the debug symbols (manifest.json); default: [build] out-dir",
        "binary": "which binary the bare addresses are of, when the release has several",
        "load-base": "where the binary was loaded (/proc/PID/maps): bare addresses are runtime addresses",
        "file-offset": "bare addresses are offsets into the binary's file",
        "json": "print a versioned JSON document on stdout",
    },
    iterable=["address"],
    name="symbolicate",
)
def symbolicate_task(
    c: Context,
    target: str = "",
    address: list[str] | None = None,
    release_folder: str = "",
    binary: str = "",
    load_base: str = "",
    file_offset: bool = False,
    json: bool = False,
) -> None:
    """Map addresses or a pasted backtrace from a release binary to function, file and line."""
    from toolchain.config.settings import load_settings
    from toolchain.release.symbolicate import SCHEMA, parse_number, symbolicate

    triple = required(target, "--target")
    folder = out_folder(release_folder, load_settings())
    given = [part.strip() for value in address or [] for part in value.split(",") if part.strip()]
    lines = given or sys.stdin.read().splitlines()
    base = parse_number(load_base, "--load-base") if load_base else None
    frames = symbolicate(
        folder, triple, lines, binary=binary or None, load_base=base, file_offset=file_offset, backtrace=not given
    )
    if json:
        log.json({"schema": SCHEMA, "target": triple, "frames": [f.to_dict() for f in frames]})
        return
    rows = []
    for frame in frames:
        if frame.error is not None:
            rows.append([frame.text, f"({frame.error})", ""])
            continue
        if not frame.locations:
            rows.append([frame.text, "(no debug info at this address)", ""])
        for index, loc in enumerate(frame.locations):
            where = f"{loc.file}:{loc.line}" if loc.file and loc.line else (loc.file or "")
            shown = f"{loc.function} (inlined)" if loc.inlined else loc.function
            rows.append([frame.text if index == 0 else "", shown, where])
    log.table(f"Symbolicated with the debug symbols of {triple} in {folder}", ["input", "function", "location"], rows)


TASK = symbolicate_task
