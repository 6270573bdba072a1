"""A per-user MSI for a Windows target, built with wixl (Debian's msitools):
the binaries in %LOCALAPPDATA%\\APP\\bin with that folder added to the
user's PATH, the license and readme in %LOCALAPPDATA%\\APP. The UpgradeCode
derives from the app's name alone, so every version shares it and a newer
MSI replaces an older one (MajorUpgrade); the product and package codes
derive from the name, version and contents.

wixl 0.101 has no <Environment> element, so the PATH entry is added to the
built database with msibuild (an Environment table row and the two standard
actions that apply it), and wixl writes a random package code and the
current time into the summary stream, which are rewritten here so the same
inputs give the same bytes."""

from __future__ import annotations

import re
import shutil
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from toolchain import proc
from toolchain.digest import sha256_file
from toolchain.errors import MissingToolError, PackagingError
from toolchain.records.formats import FILE_ARCH

MSI_NAMESPACE = uuid.UUID("5d0c1c4e-7b0e-5b53-a1c4-2f6f1d3c9e21")
SUMMARY_STREAM = "\x05SummaryInformation"
PID_REVISION, PID_CREATED, PID_SAVED = 9, 12, 13
FILETIME_EPOCH = 11644473600  # seconds from 1601-01-01 (FILETIME's origin) to 1970-01-01


@dataclass(frozen=True)
class WindowsPackage:
    name: str
    version: str
    arch: str  # x86_64 | aarch64
    manufacturer: str
    description: str
    binaries: tuple[Path, ...]
    docs: tuple[Path, ...]


def upgrade_code(app: str) -> uuid.UUID:
    """The same for every version of an app: what lets a newer MSI find and replace an older one."""
    return uuid.uuid5(MSI_NAMESPACE, f"upgrade:{app}")


def product_version(version: str) -> str:
    """MSI versions are three numbers (255.255.65535 at most); a pre-release shares its release's."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?", version)
    if not match or int(match.group(1)) > 255 or int(match.group(2)) > 255 or int(match.group(3)) > 65535:
        raise PackagingError(
            f"version {version} cannot be an MSI ProductVersion (at most 255.255.65535)",
            hint='remove "msi" from [package] formats',
        )
    return ".".join(match.groups())


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MissingToolError(
            f"{name} is not installed (the msi format needs it)",
            hint='apt-get install wixl msitools, or remove "msi" from [package] formats',
        )
    return found


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", text)


def wxs(package: WindowsPackage) -> str:
    """The WiX source of the package."""
    app = package.name
    digest = "".join(sha256_file(p) for p in (*package.binaries, *package.docs))
    product = uuid.uuid5(MSI_NAMESPACE, f"product:{app}:{package.version}:{package.arch}:{digest}")

    def component(cid: str, directory: str, files: tuple[Path, ...]) -> str:
        guid = uuid.uuid5(MSI_NAMESPACE, f"component:{app}:{cid}")
        key = quoteattr("Software\\" + app)
        # A per-user component's key path is a value under HKCU (Windows' rule for per-user installs).
        lines = [
            f'<Component Id="{cid}" Guid="{guid}">',
            f'  <RegistryValue Root="HKCU" Key={key} Name="{cid}" Type="integer" Value="1" KeyPath="yes"/>',
        ]
        for file in files:
            ident, name, source = quoteattr(_ident(f"{cid}.{file.name}")), quoteattr(file.name), quoteattr(file.name)
            lines.append(f"  <File Id={ident} Name={name} Source={source}/>")
        lines += [f'  <RemoveFolder Id="Remove{directory}" On="uninstall"/>', "</Component>"]
        return "\n".join(lines)

    return f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
<Product Id="{product}" Name={quoteattr(app)} Language="1033" Version="{product_version(package.version)}"
    Manufacturer={quoteattr(package.manufacturer)} UpgradeCode="{upgrade_code(app)}">
<Package InstallerVersion="500" Compressed="yes" InstallScope="perUser"
    Description={quoteattr(f"{app} {package.version}")} Comments={quoteattr(package.description)}/>
<MajorUpgrade DowngradeErrorMessage={quoteattr(f"A newer version of {app} is already installed.")}/>
<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>
<Directory Id="TARGETDIR" Name="SourceDir">
<Directory Id="LocalAppDataFolder">
<Directory Id="APPDIR" Name={quoteattr(app)}>
{component("Docs", "APPDIR", package.docs)}
<Directory Id="BINDIR" Name="bin">
{component("Binaries", "BINDIR", package.binaries)}
</Directory>
</Directory>
</Directory>
</Directory>
<Feature Id="Main" Level="1"><ComponentRef Id="Binaries"/><ComponentRef Id="Docs"/></Feature>
</Product>
</Wix>
"""


# [~] is the variable's current value: the folder is appended on install and
# only it is taken out again on uninstall (=: set, -: remove with the component).
ENVIRONMENT_IDT = (
    "Environment\tName\tValue\tComponent_\ns72\tl255\tL255\ts72\nEnvironment\tEnvironment\n"
    "PathEntry\t=-PATH\t[~];[BINDIR]\tBinaries\n"
)
ENVIRONMENT_ACTIONS = (("RemoveEnvironmentStrings", 3300), ("WriteEnvironmentStrings", 5200))


def _fix_summary(msi: Path, package_code: uuid.UUID, mtime: int) -> None:
    """Rewrite the summary stream's package code and times in place (same sizes)."""
    import olefile

    ole = olefile.OleFileIO(str(msi), write_mode=True)
    try:
        data = bytearray(ole.openstream(SUMMARY_STREAM).read())
        section = struct.unpack_from("<I", data, 44)[0]  # after the 28-byte header and the FMTID
        count = struct.unpack_from("<I", data, section + 4)[0]
        stamp = (mtime + FILETIME_EPOCH) * 10_000_000
        for index in range(count):
            pid, offset = struct.unpack_from("<II", data, section + 8 + 8 * index)
            at = section + offset
            if pid == PID_REVISION:
                size = struct.unpack_from("<I", data, at + 4)[0]
                code = ("{" + str(package_code).upper() + "}").encode().ljust(size, b"\0")
                if len(code) != size:
                    raise PackagingError(f"{msi.name}: unexpected summary stream layout", hint="report this")
                data[at + 8 : at + 8 + size] = code
            elif pid in (PID_CREATED, PID_SAVED):
                struct.pack_into("<Q", data, at + 4, stamp)
        ole.write_stream(SUMMARY_STREAM, bytes(data))
    finally:
        ole.close()


def write_msi(package: WindowsPackage, out: Path, mtime: int, work: Path) -> Path:
    """Build the MSI into `out` (through a temporary name)."""
    wixl, msibuild = _tool("wixl"), _tool("msibuild")
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{package.name}.wxs"
    source.write_text(wxs(package))
    (work / "Environment.idt").write_text(ENVIRONMENT_IDT)
    partial = out.with_name(f".{out.name}.partial")
    arch = FILE_ARCH["msi"][package.arch]
    try:
        # wixl reads File/@Source relative to where it runs (absolute paths it cannot open).
        folders = {p.parent for p in (*package.binaries, *package.docs)}
        if len(folders) != 1:
            raise PackagingError(f"the files of {package.name}'s MSI are not in one folder", hint="report this")
        proc.run(
            [wixl, "--arch", arch, "--output", partial.resolve(), source.resolve()],
            cwd=folders.pop(),
            error=PackagingError,
            what="wixl",
            quiet=True,
        )
        queries: list[str | Path] = []
        for action, sequence in ENVIRONMENT_ACTIONS:
            queries += ["-q", f"INSERT INTO InstallExecuteSequence (Action, Sequence) VALUES ('{action}', {sequence})"]
        proc.run(
            [msibuild, partial, "-i", work / "Environment.idt", *queries],
            error=PackagingError,
            what="msibuild (PATH entry)",
            quiet=True,
        )
        contents = "".join(sha256_file(p) for p in (*package.binaries, *package.docs))
        _fix_summary(partial, uuid.uuid5(MSI_NAMESPACE, f"package:{package.name}:{package.version}:{contents}"), mtime)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out
