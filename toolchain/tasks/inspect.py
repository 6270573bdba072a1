"""invoke inspect"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.context import Context

from toolchain.errors import VerificationError
from toolchain.log import log
from toolchain.tasks.base import out_folder, task


@task(
    help={
        "path": "the executable to inspect (ELF, Mach-O or PE)",
        "target": "inspect the binaries of the last build of this target (and check them against it)",
        "out-dir": "where the last build wrote its record; default: dist",
        "json": "print a versioned JSON document on stdout",
    },
    name="inspect",
)
def inspect_task(c: Context, path: str = "", target: str = "", out_dir: str = "", json: bool = False) -> None:
    """Show format, architecture, stripping, size and largest sections of a binary."""
    from toolchain.config.settings import load_settings
    from toolchain.release import authenticode, codesign
    from toolchain.verify.inspect_report import inspect_paths, paths_from_last_build

    settings = load_settings()
    paths = [Path(path)] if path else paths_from_last_build(out_folder(out_dir, settings), target)
    signer = None
    if target and settings.authenticode.configured:
        with authenticode.identity(settings.authenticode) as ident:
            signer = ident.signer_sha256 if ident else None
    macos = None
    if target and settings.macos_signing.signs:
        with codesign.identity(settings.macos_signing) as mac_ident:
            macos = codesign.expectation(settings.macos_signing, mac_ident)
    report = inspect_paths(paths, target or None, signer, macos)
    if json:
        log.json(report)
    else:
        _print(report)
    blocking = [
        (binary["path"], v)
        for binary in report["binaries"]
        for v in binary.get("verdicts", [])
        if not v["ok"] and v["severity"] == "error" and not v["allowed"]
    ]
    if blocking:
        path, verdict = blocking[0]
        raise VerificationError(
            f"{Path(path).name} breaks rule '{verdict['rule']}' of {report['binaries'][0]['policy']} for "
            f"{report['target']}: found {verdict['found']}, expected {verdict['expected']}",
            hint=f"{verdict['fix']} ({len(blocking)} blocking verdict(s) in all)",
        )


def _print(report: dict[str, Any]) -> None:
    for binary in report["binaries"]:
        log.table(
            f"{binary['path']}",
            ["property", "value"],
            [
                ["format", binary["format"]],
                ["architecture", ", ".join(binary["architectures"]) or binary["machine"]],
                ["bits", binary["bits"]],
                ["stripped", "yes" if binary["stripped"] else f"no ({', '.join(binary['leftover_symbols'])})"],
                ["size", f"{binary['size']} bytes"],
                ["sha256", binary["sha256"]],
            ]
            + ([["authenticode", _signature(binary["authenticode"])]] if binary.get("format") == "pe" else [])
            + [[f"code signature ({s['machine']})", _mac_signature(s["signature"])] for s in binary["slices"]]
            + [["dependencies", _dependencies(binary["dependencies"])]]
            + [[k, binary[k]] for k in ("glibc_required", "macos_min", "subsystem", "relro") if binary.get(k)],
        )
        log.table("largest sections", ["section", "bytes"], [[s["name"], s["size"]] for s in binary["sections"]])
        if binary.get("verdicts"):
            log.table(
                f"rules of {binary['policy']} for {report['target']}",
                ["rule", "verdict", "severity", "found", "expected"],
                [
                    [v["rule"], "ok" if v["ok"] else "FAIL", v["severity"], v["found"], v["expected"]]
                    for v in binary["verdicts"]
                ],
            )


def _dependencies(packages: list[dict[str, str]]) -> str:
    if not packages:
        return "none embedded (build with [build] auditable = true)"
    shown = ", ".join(f"{p['name']} {p['version']}" for p in packages[:6])
    return f"{len(packages)} packages (cargo-auditable): {shown}{', ...' if len(packages) > 6 else ''}"


def _signature(signature: dict[str, str] | None) -> str:
    if not signature:
        return "unsigned"
    return f"{signature['status']}, signed by {signature['signer_subject']}"


def _mac_signature(signature: dict[str, Any] | None) -> str:
    if not signature:
        return "unsigned"
    who = f"Developer ID: {signature['signer_subject']}" if signature["signer_subject"] else signature["kind"]
    extras = [name.replace("_", " ") for name in ("hardened_runtime", "timestamped") if signature[name]]
    return ", ".join([signature["status"], who, *extras])


TASK = inspect_task
