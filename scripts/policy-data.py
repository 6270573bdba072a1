#!/usr/bin/env python3
"""Regenerate the library lists the `libraries` policy rule reads
(policies/*.txt at the repository root, shipped as toolchain/data/policies), each from its real source, with a header
saying where it came from.

  scripts/policy-data.py windows   # every DLL windows-sys / windows-targets can link (crates.io)
  scripts/policy-data.py linux     # the sonames Debian's glibc and libgcc packages declare (dpkg)
  scripts/policy-data.py all

`windows` downloads the pinned .crate files from static.crates.io, checks
each against the checksum in the crates.io index, and reads the DLL names
out of the sources (`link!("x.dll" ...)`) and the import libraries
(windows_x86_64_gnu's libwindows.*.a). `linux` reads the shlibs files of the
installed libc6 (amd64 and arm64) and libgcc-s1 packages.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "policies"

# Several major versions: crates in the wild pin any of them, and each names a few more DLLs.
WINDOWS_CRATES = (
    ("windows-sys", "0.48.0"),
    ("windows-sys", "0.52.0"),
    ("windows-sys", "0.59.0"),
    ("windows-sys", "0.60.2"),
    ("windows-sys", "0.61.2"),
    ("windows-targets", "0.48.5"),
    ("windows-targets", "0.52.6"),
    ("windows-targets", "0.53.5"),
    ("windows-link", "0.2.1"),
    ("windows_x86_64_gnu", "0.48.5"),  # windows-targets' import library for windows-gnu
    ("windows_x86_64_gnu", "0.52.6"),
    ("windows_x86_64_gnu", "0.53.1"),
)
LINK_MACRO = re.compile(r'link\s*!\s*\(\s*"([^"]+)"')  # windows_targets::link!("x.dll" "system" fn ...)
IMPORT_LIB_NAME = re.compile(rb"([A-Za-z0-9_.\-]+\.(?:dll|drv|cpl|ocx|ax))\0", re.IGNORECASE)  # .idata$7 strings
# Kernel-mode images (the Wdk modules link them): a user-mode program cannot import them.
KERNEL_MODE = re.compile(r"\.(sys|exe)$")

LINUX_PACKAGES = ("libc6:amd64", "libc6:arm64", "libc6-arm64-cross", "libgcc-s1:amd64", "libgcc-s1:arm64")


def _index_checksum(name: str, version: str) -> str:
    """The sha256 crates.io's index records for this release."""
    prefix = (
        f"{len(name)}/{name}"
        if len(name) <= 2
        else (f"3/{name[0]}/{name}" if len(name) == 3 else f"{name[:2]}/{name[2:4]}/{name}")
    )
    with urllib.request.urlopen(f"https://index.crates.io/{prefix.lower()}", timeout=60) as response:
        for line in response.read().decode().splitlines():
            entry = json.loads(line)
            if entry["vers"] == version:
                return str(entry["cksum"])
    raise SystemExit(f"error: {name} {version} is not in the crates.io index")


def _crate(name: str, version: str) -> tuple[bytes, str]:
    url = f"https://static.crates.io/crates/{name}/{name}-{version}.crate"
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    expected = _index_checksum(name, version)
    if digest != expected:
        raise SystemExit(f"error: {url} has sha256 {digest}, the index says {expected}")
    return data, digest


def _dll_names(crate: bytes) -> set[str]:
    names: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(crate), mode="r:gz") as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            data = handle.read()
            if member.name.endswith(".rs"):
                names |= {n.lower() for n in LINK_MACRO.findall(data.decode("utf-8", "replace"))}
            elif member.name.endswith((".a", ".lib")):
                names |= {n.decode().lower() for n in IMPORT_LIB_NAME.findall(data)}
    return {n for n in names if not KERNEL_MODE.search(n)}


def windows() -> Path:
    names: set[str] = set()
    provenance = []
    for name, version in WINDOWS_CRATES:
        data, digest = _crate(name, version)
        found = _dll_names(data)
        names |= found
        what = f"{len(found)} names" if found else "the link! macro, no names"
        provenance.append(f"#   {name} {version}  sha256 {digest}  ({what})")
        print(f"{name} {version}: {len(found)} DLL names", file=sys.stderr)
    header = [
        "# DLLs that ship with Windows: every name the windows-sys and windows-targets crates",
        '# can link (their `link!("NAME" ...)` lines and windows-targets\' import libraries),',
        "# lower case, one a line. Kernel-mode images (*.sys, *.exe) are left out.",
        "# Read by the `libraries` rule of policies/windows.toml (its [libraries] lists);",
        "# api-ms-win-* / ext-ms-* API sets are matched by pattern there.",
        "# Made by scripts/policy-data.py windows from these .crate files (static.crates.io,",
        "# each checked against the crates.io index's checksum):",
        *provenance,
    ]
    return _write(OUT / "windows-system-dlls.txt", header, names)


def _shlibs(package: str) -> tuple[str, list[str]]:
    """The package's version and the sonames its shlibs file declares."""
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True
    ).stdout
    admin = subprocess.run(["dpkg-query", "--control-path", package, "shlibs"], capture_output=True, text=True)
    path = admin.stdout.strip() or f"/var/lib/dpkg/info/{package}.shlibs"
    sonames = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith("udeb:"):
            library, major = fields[0], fields[1]
            sonames.append(f"{library}.so.{major}")
    return version, sonames


def linux() -> Path:
    names: set[str] = set()
    provenance = []
    for package in LINUX_PACKAGES:
        version, sonames = _shlibs(package)
        names |= set(sonames)
        provenance.append(f"#   {package} {version}  ({len(sonames)} sonames)")
    header = [
        "# Shared libraries every glibc system has: the sonames glibc installs (libc, libm,",
        "# libpthread, the dynamic loader, ...) and libgcc_s.so.1, which glibc itself loads for",
        "# thread cancellation and backtraces (and Rust's std links for unwinding). One a line.",
        "# Which glibc release a binary needs is the glibc-floor rule's job (versioned symbols).",
        "# Made by scripts/policy-data.py linux from the shlibs files (the sonames a Debian",
        "# package declares it provides) of these installed Debian 12 packages:",
        *provenance,
    ]
    return _write(OUT / "linux-system-libraries.txt", header, names)


def _write(path: Path, header: list[str], names: set[str]) -> Path:
    path.write_text("\n".join([*header, *sorted(names)]) + "\n")
    print(f"wrote {path} ({len(names)} names)", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("windows", "linux", "all"))
    which = parser.parse_args().which
    if which in ("windows", "all"):
        windows()
    if which in ("linux", "all"):
        linux()


if __name__ == "__main__":
    main()
