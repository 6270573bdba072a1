"""The periodic audit of what was published: every release is downloaded
again (from S3, GitHub Releases or a folder) and checked from scratch with
the configured public key, each kind of check on its own so a failure names
its reason:

- key: every signature was made by the configured key;
- digests: every file matches sha256.sum, and the manifest matches it;
- signatures: every listed file and sha256.sum carry a valid signature;
- provenance: the provenance statement's subjects are the release's files;
- installers: the digests baked into the installers are the archives';
- verify: the whole of `invoke verify` (archive members included)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.digest import sha256_file
from toolchain.errors import ToolchainError, UsageError
from toolchain.log import log
from toolchain.release.folder import MANIFEST_NAME, PROVENANCE_NAME, SUMS_NAME, parse_sums, verify_release
from toolchain.release.github import GitHubClient, download_github
from toolchain.release.s3 import S3Target, download_s3, s3_errors
from toolchain.release.s3 import s3_client as make_s3_client
from toolchain.release.schema import sandbox
from toolchain.release.signing import PublicKey, parse_public_key, verify_file

_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass(frozen=True)
class AuditCheck:
    check: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReleaseAudit:
    release: str  # app@version, or the folder's name
    source: str  # where it was downloaded from
    checks: tuple[AuditCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "source": self.source,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
        }


def _key_id(public: PublicKey) -> str:
    return public.key_id[::-1].hex().upper()


def check_key(folder: Path, public: PublicKey) -> str:
    """Every .minisig in the folder names the configured key."""
    for signature in sorted(folder.glob("*.minisig")):
        lines = signature.read_text(errors="replace").splitlines()
        try:
            blob = base64.b64decode(lines[1], validate=True)
        except (IndexError, ValueError):
            raise UsageError(f"{signature.name} is not a minisign signature") from None
        if blob[2:10] != public.key_id:
            raise UsageError(
                f"{signature.name} was signed by key {blob[2:10][::-1].hex().upper()}, not the configured "
                f"{_key_id(public)}"
            )
    return f"all signatures by {_key_id(public)}"


def check_digests(folder: Path, public: PublicKey) -> str:
    sums = parse_sums(folder / SUMS_NAME)
    for name, digest in sorted(sums.items()):
        path = folder / name
        if not path.is_file():
            raise UsageError(f"{name} is listed in {SUMS_NAME} but was not published")
        if sha256_file(path) != digest:
            raise UsageError(f"{name}: SHA-256 does not match {SUMS_NAME}")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    for artifact in manifest.get("artifacts", []):
        if sums.get(artifact["name"]) != artifact["sha256"]:
            raise UsageError(f"{artifact['name']}: the manifest's SHA-256 does not match {SUMS_NAME}")
    return f"{len(sums)} files match {SUMS_NAME}"


def check_signatures(folder: Path, public: PublicKey) -> str:
    names = [*sorted(parse_sums(folder / SUMS_NAME)), SUMS_NAME]
    for name in names:
        try:
            verify_file(folder / name, folder / f"{name}.minisig", public)
        except ToolchainError as exc:
            raise UsageError(exc.message) from None
    return f"{len(names)} signatures valid"


def check_provenance(folder: Path, public: PublicKey) -> str:
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    statement = json.loads((folder / PROVENANCE_NAME).read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement.get("subject", [])}
    expected = {a["name"]: a["sha256"] for a in manifest.get("artifacts", []) if a["kind"] != "provenance"}
    for name in sorted(set(subjects) | set(expected)):
        if name not in expected:
            raise UsageError(f"provenance names {name}, which the release does not have")
        if subjects.get(name) != expected[name]:
            raise UsageError(f"{name}: the provenance subject's SHA-256 is not the published file's")
    return f"{len(subjects)} subjects match"


def check_installers(folder: Path, public: PublicKey) -> str:
    """Each line of an installer that names an archive carries that archive's digest."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    archives = {a["name"]: a["sha256"] for a in manifest.get("artifacts", []) if a["kind"] == "archive"}
    installers = [a["name"] for a in manifest.get("artifacts", []) if a["kind"] == "installer"]
    baked: set[str] = set()
    for installer in installers:
        for line in (folder / installer).read_text(errors="replace").splitlines():
            named = [a for a in archives if a in line]
            digests = _DIGEST.findall(line)
            if len(named) != 1 or not digests:
                continue
            if any(d != archives[named[0]] for d in digests):
                raise UsageError(f"{installer} bakes a SHA-256 for {named[0]} that is not the published archive's")
            baked.add(named[0])
    missing = sorted(set(archives) - baked)
    if missing:
        raise UsageError(f"no installer bakes the digest of {missing[0]}")
    return f"{len(installers)} installers bake the digests of {len(archives)} archives"


def check_verify(folder: Path, public: PublicKey) -> str:
    return f"{len(verify_release(folder, public.render()))} files verified"


CHECKS: tuple[tuple[str, Callable[[Path, PublicKey], str]], ...] = (
    ("key", check_key),
    ("digests", check_digests),
    ("signatures", check_signatures),
    ("provenance", check_provenance),
    ("installers", check_installers),
    ("verify", check_verify),
)


def audit_folder(folder: Path, public_key_text: str, source: str) -> ReleaseAudit:
    """Every check on one downloaded release folder."""
    public = parse_public_key(public_key_text)
    name = folder.name
    try:
        app = json.loads((folder / MANIFEST_NAME).read_text())["apps"][0]
        name = f"{app['name']}@{app['version']}"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass
    results = []
    for check, function in CHECKS:
        try:
            results.append(AuditCheck(check, True, function(folder, public)))
        except (ToolchainError, OSError, ValueError, KeyError, TypeError) as exc:
            detail = exc.message if isinstance(exc, ToolchainError) else f"unreadable release ({exc})"
            results.append(AuditCheck(check, False, detail))
    return ReleaseAudit(name, source, tuple(results))


# --- where published releases are --------------------------------------------------------


def folder_releases(root: Path) -> list[Path]:
    """A release folder, or every release folder under `root`."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder", hint="pass a release folder or a folder of them")
    found = sorted(p.parent for p in root.rglob(SUMS_NAME))
    if not found:
        raise UsageError(f"no release folder ({SUMS_NAME}) under {root}", hint="pass where the releases are")
    return found


def s3_release_prefixes(client: Any, target: S3Target) -> list[str]:
    """Every {prefix}/{app}/{version} that holds a sha256.sum."""
    found = []
    start = f"{target.prefix}/" if target.prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=start):
        for item in page.get("Contents", []):
            if item["Key"].endswith(f"/{SUMS_NAME}"):
                found.append(item["Key"].rsplit("/", 1)[0])
    return sorted(found)


def audit(
    public_key_text: str,
    *,
    folder: Path | None = None,
    s3: S3Target | None = None,
    s3_client: Any | None = None,
    github: GitHubClient | None = None,
) -> list[ReleaseAudit]:
    """Download every published release from each source given and audit it."""
    parse_public_key(public_key_text)  # a bad key fails before any download
    if folder is None and s3 is None and github is None:
        raise UsageError("nothing to audit", hint="pass --folder, --s3 or --github (or set [s3] / [github])")
    results: list[ReleaseAudit] = []
    if folder is not None:
        for found in folder_releases(folder):
            results.append(audit_folder(found, public_key_text, str(found)))
    with sandbox("toolchain-audit-") as work:
        if s3 is not None:
            client = s3_client or make_s3_client(s3)
            with s3_errors(s3):
                for prefix in s3_release_prefixes(client, s3):
                    local = download_s3(client, s3, prefix, work / "s3" / prefix)
                    results.append(audit_folder(local, public_key_text, s3.url(prefix) + "/"))
        if github is not None:
            for release in github.releases():
                if release.get("draft"):
                    continue  # not published (yet): publish finishes it
                local = download_github(github, release, work / "github" / str(release["id"]))
                source = f"github:{github.repo}@{release['tag_name']}"
                if not (local / SUMS_NAME).is_file():
                    missing = AuditCheck("digests", False, f"no {SUMS_NAME} published")
                    results.append(ReleaseAudit(release["tag_name"], source, (missing,)))
                    continue
                results.append(audit_folder(local, public_key_text, source))
    if not results:
        log.warn("no published release found to audit")
    return results


def summary(results: list[ReleaseAudit]) -> str:
    failed = [r for r in results if not r.ok]
    if not failed:
        return f"{len(results)} release(s) passed the audit"
    first = next(c for c in failed[0].checks if not c.ok)
    where = f"{failed[0].release}: {first.check}: {first.detail}"
    return f"{len(failed)} of {len(results)} release(s) failed the audit; {where}"
