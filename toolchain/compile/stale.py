"""The release folder belongs to its build record: files in it that look like
release files but that no entry of the record made (another crate's archives,
a target no longer built, their checksums, signatures and installers) are
stale. They are named at build and package time and removed with --clean,
instead of surfacing later as an unlisted file that blocks the release."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from toolchain.config import catalog
from toolchain.errors import UsageError
from toolchain.log import log
from toolchain.records import formats as channels
from toolchain.records.build_record import RECORD_NAME, BuildRecord

RELEASE_PATTERNS = (
    "*.tar.xz",
    "*.zip",
    "*.sha256",
    "*.minisig",
    "*-installer.sh",
    "*-installer.ps1",
    *(p for p in channels.PATTERNS if p != "*.json"),  # a Scoop manifest is APP.json: too wide a pattern
)
# Written once per folder, whatever was built (release/folder.py and verify/size.py own their contents).
FOLDER_FILES = (
    RECORD_NAME,
    "sha256.sum",
    "manifest.json",
    "provenance.intoto.json",
    "size-history.jsonl",
    "size-report.html",
)


def expected_names(record: BuildRecord) -> set[str]:
    names = set(FOLDER_FILES)
    apps = set()
    for entry in record.targets.values():
        try:
            target = catalog.current().target(entry.target)
        except UsageError:
            target = None  # a target this catalog no longer has: its archives are kept, its channels unknown
        for artifact in entry.debug_artifacts:
            names |= {artifact.path.name, f"{artifact.path.name}.sha256"}
        for artifact in entry.artifacts:
            names |= {artifact.path.name, f"{artifact.path.name}.sha256"}
            apps.add(artifact.package)
            versions = {b.version for b in entry.binaries_of(artifact.package)}
            if target is not None and versions:
                names |= channels.expected_names(
                    artifact.package, min(versions), target.os, target.arch, artifact.path.name
                )
    names |= {f"{app}-installer.{suffix}" for app in apps for suffix in ("sh", "ps1", "sh.sha256", "ps1.sha256")}
    return names | {f"{name}.minisig" for name in names}


def stale_files(out_dir: Path, record: BuildRecord) -> list[Path]:
    if not out_dir.is_dir():
        return []
    expected = expected_names(record)
    return sorted(
        path
        for path in out_dir.iterdir()
        if path.is_file()
        and path.name not in expected
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in RELEASE_PATTERNS)
    )


def report_stale(out_dir: Path, record: BuildRecord, clean: bool) -> list[Path]:
    """Name (or with `clean` remove) the folder's release files no entry of the record made."""
    stale = stale_files(out_dir, record)
    if stale:
        names = ", ".join(p.name for p in stale)
        if clean:
            for path in stale:
                path.unlink(missing_ok=True)
            log.info(f"removed files of other builds from {out_dir}: {names}")
        else:
            log.warn(f"{out_dir} holds files no build in its record made: {names}; --clean removes them")
    return stale
