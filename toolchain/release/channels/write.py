"""The release channels of a release folder, from its verified archives:
.deb, .rpm and .apk per Linux archive, an MSI per Windows archive, a
Homebrew formula and a Scoop manifest per app, and a CycloneDX SBOM per
artifact. Everything a format needs from the project is checked before
anything is written, so a missing field leaves nothing half-made."""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolchain.atomic import write_atomic
from toolchain.config import catalog
from toolchain.config.targets import Target
from toolchain.digest import sha256_file
from toolchain.errors import ConfigError, PackagingError, ProjectError
from toolchain.log import log
from toolchain.records import formats as names
from toolchain.records.build_record import BuildRecord, TargetEntry
from toolchain.release.channels.crates import AppInfo, Resolve, resolve
from toolchain.release.channels.manifests import ManifestApp, ManifestArchive, homebrew_formula, scoop_manifest
from toolchain.release.channels.msi import WindowsPackage, write_msi
from toolchain.release.channels.nfpm import LinuxPackage, write_package
from toolchain.release.channels.sbom import render_sbom
from toolchain.release.installers import ReleaseFile
from toolchain.verify.inspection import AuditedPackage

LICENSE_NAME = re.compile(r"(LICEN[CS]E|COPYING|UNLICENSE)([-._].*)?", re.IGNORECASE)
README_NAME = re.compile(r"README([-._].*)?", re.IGNORECASE)


@dataclass(frozen=True)
class ChannelOptions:
    formats: tuple[str, ...]
    base_url: str  # [release] download-url
    mtime: int  # SOURCE_DATE_EPOCH (or the last commit's time)


@dataclass(frozen=True)
class _Planned:
    archive: ReleaseFile
    target: Target
    entry: TargetEntry
    resolved: Resolve
    packages: tuple[str, ...]  # the package formats made from this archive
    files: Path | None  # the archive unpacked, when packages are made from it


def _target_triples(target: Target) -> list[str]:
    # A universal macOS binary joins its components' builds: its crates are theirs.
    return list(target.components) if target.components else [target.triple]


def _resolve(entry: TargetEntry, app: str, target: Target) -> Resolve:
    if entry.manifest_path is None:
        raise PackagingError(f"the build record of {target.triple} names no Cargo.toml", hint="rebuild it")
    parts = [resolve(entry.manifest_path, app, triple, entry) for triple in _target_triples(target)]
    crates = {c.key: c for part in parts for c in part.crates}
    first = parts[0]
    return Resolve(first.app, first.root, tuple(crates[k] for k in sorted(crates)), target.triple)


def _missing(app: AppInfo, field: str, fix: str, formats: Sequence[str]) -> ProjectError:
    return ProjectError(
        f"{app.name}: {app.manifest_path} has no {field}, which the {', '.join(formats)} format"
        f"{'s need' if len(formats) > 1 else ' needs'}",
        hint=f"add {fix}, or remove {', '.join(formats)} from [package] formats",
    )


def _require(app: AppInfo, fmts: Sequence[str], *, maintainer: bool = False, homepage: bool = False) -> None:
    if not fmts:
        return
    if not app.description:
        raise _missing(app, "description", 'description = "..." to [package]', fmts)
    if not app.license and any(f != "msi" for f in fmts):
        raise _missing(app, "license", 'license = "SPDX expression" to [package]', fmts)
    if maintainer and not app.maintainer:
        raise _missing(app, "authors (the maintainer)", 'authors = ["Name <email>"] to [package]', fmts)
    if homepage and not (app.homepage or app.repository):
        raise _missing(app, "homepage or repository", 'homepage = "https://..." to [package]', fmts)


def _extract(archive: Path, into: Path, mtime: int) -> Path:
    """Unpack an archive of the release (its members were checked when it was made) into one
    folder, every file dated `mtime` (the MSI's cabinet keeps file times)."""
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if not info.is_dir():
                    target = into / Path(info.filename).name
                    target.write_bytes(zipped.read(info))
    else:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    source = tar.extractfile(member)
                    if source is not None:
                        (into / Path(member.name).name).write_bytes(source.read())
    for path in into.iterdir():
        os.utime(path, (mtime, mtime))
    return into


def _describe(path: Path, kind: str, app: str | None, target: str | None) -> ReleaseFile:
    return ReleaseFile(path.name, kind, app, target, path.stat().st_size, sha256_file(path))


def _top(name: str) -> str:
    return name.removesuffix(".tar.xz").removesuffix(".zip")


def write_channels(
    out_dir: Path, record: BuildRecord, archives: list[ReleaseFile], options: ChannelOptions
) -> list[ReleaseFile]:
    """Write every channel file `options.formats` asks for; return them as the manifest lists them."""
    if not options.formats:
        return []
    with tempfile.TemporaryDirectory(prefix="toolchain-channels-") as scratch:
        planned = _plan(out_dir, record, archives, options, Path(scratch))
        written: list[ReleaseFile] = []
        for index, plan in enumerate(planned):
            written += _write_target(out_dir, plan, options, Path(scratch) / f"work-{index}")
        manifest_fmts: list[str] = [f for f in ("homebrew", "scoop") if f in options.formats]
        if manifest_fmts:
            written += _write_manifests(out_dir, planned, options, manifest_fmts)
    return written


def _plan(
    out_dir: Path, record: BuildRecord, archives: list[ReleaseFile], options: ChannelOptions, scratch: Path
) -> list[_Planned]:
    """What to make from each archive, with every project field each format needs checked:
    a missing one stops the run before any file is written."""
    fmts = options.formats
    planned: list[_Planned] = []
    seen: dict[str, str] = {}
    for archive in archives:
        if archive.app is None or archive.target is None:
            continue
        target = catalog.current().target(archive.target)
        entry = record.targets[archive.target]
        resolved = _resolve(entry, archive.app, target)
        app = resolved.app
        packages: list[str] = []
        if target.os == "linux" and target.arch in names.NFPM_ARCH:
            packages = [f for f in names.LINUX_PACKAGES if f in fmts]
        elif target.os == "windows" and target.arch in names.FILE_ARCH["msi"] and "msi" in fmts:
            packages = ["msi"]
        _require(app, packages, maintainer=True)
        files = None
        if packages:
            files = _extract(out_dir / archive.name, scratch / f"files-{len(planned)}", options.mtime)
            if [f for f in packages if f != "msi"] and not any(LICENSE_NAME.fullmatch(p.name) for p in files.iterdir()):
                raise PackagingError(
                    f"{archive.name} holds no license file, which Linux packages install",
                    hint="add a LICENSE file beside Cargo.toml (or license-file in Cargo.toml) and rebuild",
                )
        for fmt in packages:
            name = names.file_name(fmt, app.name, app.version, target.arch)
            if name in seen:
                raise PackagingError(
                    f"{seen[name]} and {target.triple} both make {name}",
                    hint=f"release one of them per folder, or remove {fmt} from [package] formats",
                )
            seen[name] = target.triple
        planned.append(_Planned(archive, target, entry, resolved, tuple(packages), files))
    manifest_fmts: list[str] = [f for f in ("homebrew", "scoop") if f in fmts]
    if manifest_fmts and planned:
        if not options.base_url:
            raise ConfigError(
                f"[release] download-url is empty, and the {' and '.join(manifest_fmts)} manifests need the "
                "archives' URLs",
                hint=f"set it (or --download-url), or remove {', '.join(manifest_fmts)} from [package] formats",
            )
        for plan in planned:
            _require(plan.resolved.app, manifest_fmts, homepage=True)
    return planned


def _write_target(out_dir: Path, plan: _Planned, options: ChannelOptions, work: Path) -> list[ReleaseFile]:
    app, target = plan.resolved.app, plan.target
    artifacts: list[ReleaseFile] = []
    if plan.files is not None:
        binaries = tuple(plan.files / b for b in plan.archive.binaries)
        docs = sorted(p for p in plan.files.iterdir() if p not in binaries)
        licenses = tuple(p for p in docs if LICENSE_NAME.fullmatch(p.name))
        readme = next((p for p in docs if README_NAME.fullmatch(p.name)), None)
        maintainer, description = app.maintainer or "", app.description or ""  # both checked by _plan
        for fmt in plan.packages:
            out = out_dir / names.file_name(fmt, app.name, app.version, target.arch)
            if fmt == "msi":
                manufacturer = re.sub(r"\s*<[^>]*>", "", maintainer).strip() or maintainer
                docs_msi = tuple(p for p in (*licenses, readme) if p is not None)
                package_msi = WindowsPackage(
                    app.name, app.version, target.arch, manufacturer, description, binaries, docs_msi
                )
                write_msi(package_msi, out, options.mtime, work / fmt)
            else:
                package = LinuxPackage(
                    name=app.name,
                    version=app.version,
                    arch=target.arch,
                    maintainer=maintainer,
                    description=description,
                    license=app.license or "",
                    homepage=app.homepage or app.repository,
                    glibc=target.compat.glibc,
                    binaries=binaries,
                    licenses=licenses,
                    readme=readme,
                )
                write_package(package, fmt, out, options.mtime, work / fmt)
            artifacts.append(_describe(out, fmt, app.name, target.triple))
            log.info(f"wrote {out}")
    sboms = []
    embedded = tuple(
        AuditedPackage(d["name"], d["version"], d.get("source", "crates.io"), d.get("kind", "runtime"))
        for b in plan.entry.binaries
        if b.package == app.name
        for d in b.dependencies
    )
    if names.SBOM in options.formats:
        for artifact in (plan.archive, *artifacts):
            text = render_sbom(plan.resolved, artifact.name, artifact.sha256, options.mtime, embedded)
            path = write_atomic(out_dir / names.sbom_name(artifact.name), text)
            sboms.append(_describe(path, "sbom", app.name, target.triple))
        log.info(f"wrote {len(sboms)} SBOMs for {target.triple} ({len(plan.resolved.crates)} crates)")
    return artifacts + sboms


def _write_manifests(
    out_dir: Path, planned: list[_Planned], options: ChannelOptions, fmts: list[str]
) -> list[ReleaseFile]:
    written = []
    for app_name in sorted({p.resolved.app.name for p in planned}):
        plans = [p for p in planned if p.resolved.app.name == app_name]
        info = plans[0].resolved.app
        app = ManifestApp(
            info.name, info.version, info.description or "", info.homepage or info.repository or "", info.license
        )
        archives = [
            ManifestArchive(
                p.archive.name, p.archive.sha256, p.target.os, p.target.arch, _top(p.archive.name), p.archive.binaries
            )
            for p in plans
        ]
        documents = {
            "homebrew": homebrew_formula(app, archives, options.base_url),
            "scoop": scoop_manifest(app, archives, options.base_url),
        }
        for fmt in fmts:
            text = documents[fmt]
            if text is None:
                log.info(f"no {fmt} manifest for {app_name}: no archive of its platforms in this release")
                continue
            path = write_atomic(out_dir / names.manifest_names(app_name)[fmt], text)
            written.append(_describe(path, fmt, app_name, None))
            log.info(f"wrote {path}")
    return written
