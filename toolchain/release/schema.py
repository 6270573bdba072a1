"""The schema level an app reports for itself (`APP migrate --status` by
default, or the project's [update] schema-command), read from a release's
own archive so the manifest records what was actually built.

Every run of the app happens in a sandbox: HOME, the XDG folders, Windows'
app-data folders, the temp folder and every `{APP}_*` variable already in
the environment point into a throwaway folder, so no run reads or writes a
user's real data."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolchain import proc
from toolchain.config import catalog
from toolchain.config.targets import host_platform
from toolchain.errors import ReleaseCheckError, ToolchainError
from toolchain.log import log
from toolchain.release.installers import env_prefix
from toolchain.verify.smoke import launcher

_LEVEL = re.compile(r"\d+")


def sandbox_env(app: str, home: Path) -> dict[str, str]:
    """Variables that keep a run of the app inside `home`."""
    env = {
        "HOME": str(home),
        "USERPROFILE": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LOCALAPPDATA": str(home / "AppData" / "Local"),
        "APPDATA": str(home / "AppData" / "Roaming"),
        "TMPDIR": str(home / "tmp"),
    }
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    # An app variable from the caller's shell (TALLY_HOME, TALLY_DB...) could
    # name real data: each is pointed at a fresh path in the sandbox instead.
    prefix = env_prefix(app) + "_"
    for name in os.environ:
        if name.startswith(prefix):
            env[name] = str(home / "app-env" / name)
    return env


@dataclass(frozen=True)
class ArchiveRef:
    """One archive of the release as the manifest lists it."""

    name: str
    target: str
    sha256: str
    binaries: tuple[str, ...]

    @property
    def top(self) -> str:
        return self.name.removesuffix(".tar.xz").removesuffix(".zip")


def extract_member(archive: Path, member: str, out: Path) -> Path:
    """One file out of a release archive (tar.xz or zip), made executable."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink)
        else:
            with tarfile.open(archive, "r:xz") as tarball:
                handle = tarball.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                with handle, out.open("wb") as sink:
                    shutil.copyfileobj(handle, sink)
    except (KeyError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise ReleaseCheckError(f"cannot take {member} out of {archive.name}: {exc}", hint="re-package it") from None
    out.chmod(0o755)
    return out


def runnable_first(archives: Sequence[ArchiveRef]) -> list[tuple[ArchiveRef, str]]:
    """The archives this machine can run, natively first, then under qemu or wine."""
    known, host = catalog.current(), host_platform()
    found = []
    for archive in archives:
        if archive.target in known.targets:
            how = known.target(archive.target).run.get(host, "none")
            if how != "none":
                found.append((archive, how))
    return sorted(found, key=lambda item: (item[1] != "native", item[0].target != known.host_triple()))


@contextmanager
def sandbox(prefix: str = "toolchain-app-") -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_level(output: str) -> int | None:
    """The level is the last word of the output, when it is a whole number."""
    words = output.split()
    return int(words[-1]) if words and _LEVEL.fullmatch(words[-1]) else None


def report_level(binary: Path, app: str, command: Sequence[str], target: str) -> int | None:
    """Run `binary COMMAND` in a sandbox (under qemu or wine when it is foreign)."""
    _, prefix, env = launcher(catalog.current().target(target), host_platform())
    with sandbox() as home:
        result = proc.run([*prefix, binary, *command], env={**env, **sandbox_env(app, home)}, check=False, timeout=120)
    if result.returncode != 0:
        log.warn(f"`{app} {' '.join(command)}` exited {result.returncode}: no schema level recorded")
        return None
    level = parse_level(result.stdout)
    if level is None:
        log.warn(f"`{app} {' '.join(command)}` did not end its output with a whole number: no schema level recorded")
    return level


def release_schema_level(folder: Path, app: str, archives: Sequence[ArchiveRef], command: Sequence[str]) -> int | None:
    """The app's schema level from the first archive this machine can run
    (foreign targets carry the same source, so the host build's level stands
    for them); None when there is no command or nothing here can run it."""
    if not command:
        return None
    choices = runnable_first(archives)
    if not choices:
        log.warn(f"no archive of {app} runs on this machine: no schema level recorded")
        return None
    archive, _ = choices[0]
    name = archive.binaries[0] if archive.binaries else app
    with sandbox("toolchain-schema-") as work:
        binary = extract_member(folder / archive.name, f"{archive.top}/{name}", work / name)
        try:
            return report_level(binary, app, command, archive.target)
        except ToolchainError as exc:
            log.warn(f"cannot run {name} for its schema level ({exc.message}): none recorded")
            return None
