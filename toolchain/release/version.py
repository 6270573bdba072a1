"""Version bumps from conventional commits (release-plz's role): feat →
minor, fix/perf → patch, breaking → major, one step lower below 1.0; the
crate's version is rewritten and CHANGELOG.md is updated with git-cliff."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from toolchain import proc
from toolchain.errors import MissingToolError, ProjectError, UsageError

LEVELS = ("none", "patch", "minor", "major")
SUBJECT = re.compile(r"^(?P<type>[a-z]+)(\([^)]*\))?(?P<bang>!)?: .+")


@dataclass(frozen=True)
class Bump:
    old: str
    new: str
    level: str
    commits: tuple[str, ...]
    changelog: Path | None


def is_prerelease(version: str) -> bool:
    """SemVer pre-releases (1.2.0-rc.1) become GitHub pre-releases."""
    return "-" in version.split("+", 1)[0]


SemVerKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def semver_key(version: str) -> SemVerKey:
    """SemVer 2.0 precedence as a sort key: a pre-release orders below its
    release, numeric identifiers numerically and below alphanumeric ones, more
    identifiers above fewer; build metadata is ignored. ValueError if not SemVer."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a SemVer version")
    major, minor, patch, pre = match.groups()
    identifiers = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre.split(".")) if pre else ()
    return int(major), int(minor), int(patch), 0 if pre else 1, identifiers


def commit_level(subject: str, body: str) -> str:
    match = SUBJECT.match(subject)
    if not match:
        return "none"
    if match.group("bang") or re.search(r"^BREAKING[ -]CHANGE:", body, re.M):
        return "major"
    return {"feat": "minor", "fix": "patch", "perf": "patch"}.get(match.group("type"), "none")


def next_version(version: str, level: str) -> str:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?", version)
    if not match:
        raise ProjectError(f"version {version!r} is not MAJOR.MINOR.PATCH", hint="fix it in Cargo.toml")
    major, minor, patch = (int(p) for p in match.groups())
    if major == 0 and level != "none":
        level = LEVELS[max(LEVELS.index(level) - 1, 1)]  # below 1.0 one step lower
    if level == "major":
        return f"{major + 1}.0.0"
    if level == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def _git(repo: Path, *args: str) -> str:
    return proc.run(["git", "-C", repo, *args], quiet=True, what=f"git {args[0]}").stdout


def commits_since_tag(repo: Path) -> tuple[str | None, list[tuple[str, str]]]:
    tag = proc.output(["git", "-C", repo, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"])
    span = f"{tag}..HEAD" if tag else "HEAD"
    log = _git(repo, "log", "--format=%s%x1f%b%x1e", span)
    commits = []
    for record in log.split("\x1e"):
        if record.strip():
            subject, _, body = record.strip().partition("\x1f")
            commits.append((subject.strip(), body))
    return tag, commits


def _set_manifest_version(manifest: Path, old: str, new: str) -> None:
    text = manifest.read_text()
    section = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section or not re.search(rf'^version\s*=\s*"{re.escape(old)}"', section.group(1), re.M):
        raise ProjectError(f'{manifest} has no [package] version = "{old}"', hint="set the version in [package]")
    body = re.sub(rf'^(version\s*=\s*)"{re.escape(old)}"', rf'\g<1>"{new}"', section.group(1), count=1, flags=re.M)
    manifest.write_text(text[: section.start(1)] + body + text[section.end(1) :])


def _set_lock_version(lock: Path, name: str, old: str, new: str) -> None:
    if lock.is_file():
        text = lock.read_text()
        pattern = rf'(\[\[package\]\]\nname = "{re.escape(name)}"\nversion = )"{re.escape(old)}"'
        lock.write_text(re.sub(pattern, rf'\g<1>"{new}"', text, count=1))


def set_version(manifest: Path, name: str, old: str, new: str) -> None:
    """Set a single crate's version in its Cargo.toml and Cargo.lock (so --locked builds still work)."""
    _set_manifest_version(manifest, old, new)
    _set_lock_version(manifest.parent / "Cargo.lock", name, old, new)


def bump(manifest: Path, *, dry_run: bool = False) -> Bump:
    from toolchain.compile.cargo import load_project

    project = load_project(manifest)
    if len(project.packages) != 1:
        raise UsageError("version.bump works on a single-package crate", hint="pass --manifest-path of one crate")
    package = project.packages[0]
    repo = Path(_git(package.root, "rev-parse", "--show-toplevel").strip())
    tag, commits = commits_since_tag(repo)
    level = max((commit_level(s, b) for s, b in commits), key=LEVELS.index, default="none")
    if level == "none":
        raise UsageError(
            f"no feat, fix, perf or breaking commits since {tag or 'the first commit'}", hint="nothing to release"
        )
    new = next_version(package.version, level)
    changelog = package.root / "CHANGELOG.md"
    if dry_run:
        return Bump(package.version, new, level, tuple(s for s, _ in commits), None)
    _set_manifest_version(package.manifest_path, package.version, new)
    _set_lock_version(project.lockfile, package.name, package.version, new)
    cliff = shutil.which("git-cliff")
    if cliff is None:
        raise MissingToolError("git-cliff is not installed", hint="pip install git-cliff")
    config = resources.files("toolchain").joinpath("data", "templates", "cliff.toml")
    with resources.as_file(config) as config_path:
        args = [cliff, "--config", str(config_path), "--repository", str(repo), "--tag", f"v{new}", "--unreleased"]
        if changelog.is_file():
            existing = changelog.read_text()
            section = proc.run([*args, "--strip", "header"], quiet=True, what="git-cliff").stdout.strip()
            header, _, rest = existing.partition("\n## ")
            changelog.write_text(
                f"{header.rstrip()}\n\n{section}\n\n## {rest}" if rest else f"{header.rstrip()}\n\n{section}\n"
            )
        else:
            proc.run([*args, "--output", str(changelog)], quiet=True, what="git-cliff")
    return Bump(package.version, new, level, tuple(s for s, _ in commits), changelog)
