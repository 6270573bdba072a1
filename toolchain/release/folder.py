"""The release folder: checksums, manifest, provenance, signatures and
installers around the verified archives (installers.py renders the
installers, provenance.py writes the statement), the merge of per-target
build folders, and the check that proves a folder is complete and
untampered (`invoke verify`, and publish's guardrail)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import __version__
from toolchain.atomic import write_atomic, write_json
from toolchain.config import catalog
from toolchain.dated import day_of
from toolchain.digest import sha256_file
from toolchain.errors import PackagingError, ReleaseCheckError, SignatureError, ToolchainError
from toolchain.log import log
from toolchain.records.build_record import RECORD_NAME, BuildRecord, load_record, save_record
from toolchain.records.formats import SBOM_SUFFIX
from toolchain.release.installers import InstallerUpdate, ReleaseFile, baked_keylist, render_installers
from toolchain.release.keylist import channel_signer, key_id_hex, latest_list, signer_id
from toolchain.release.latest import LATEST_NAME, LatestFile, write_latest
from toolchain.release.package import archive_members, source_date_epoch
from toolchain.release.provenance import SourceState, provenance, source_state
from toolchain.release.schema import ArchiveRef, release_schema_level
from toolchain.release.signing import PublicKey, SecretKey, parse_public_key, sign_file, verify_file

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "toolchain.manifest/v1"
PROVENANCE_NAME = "provenance.intoto.json"
SUMS_NAME = "sha256.sum"
# What the folder's files were made from, and their digests (beside the archives' stamps).
RELEASE_STAMP = Path(".stamps") / "release-folder.json"
# Record fields that change on every build, even a no-op one; the files do not depend on them
# beyond provenance's times, which then keep saying when the unchanged archives were made.
_VOLATILE = ("started", "finished", "seconds", "phases", "cache")
# The artifacts that carry a binary: each gets an SBOM when the sbom format is on.
SBOM_KINDS = ("archive", "deb", "rpm", "apk", "msi")
# The archive of the debug info split off an app's binaries for one target (compile/debuginfo.py).
DEBUG_KIND = "debug-symbols"
# The artifacts whose members the manifest lists (and `invoke verify` checks).
MEMBER_KINDS = ("archive", DEBUG_KIND)
# What a channel key may re-sign (the pointer and the list of digests that names it).
CHANNEL_FILES = frozenset({LATEST_NAME, SUMS_NAME})


@dataclass(frozen=True)
class ReleaseReport:
    folder: Path
    files: tuple[ReleaseFile, ...]
    signed: bool


def _describe(path: Path, kind: str, app: str | None, target: str | None, **extra: Any) -> ReleaseFile:
    return ReleaseFile(path.name, kind, app, target, path.stat().st_size, sha256_file(path), **extra)


def package_release(
    out_dir: Path,
    key: SecretKey | None,
    base_url: str,
    repo: Path,
    *,
    schema_command: tuple[str, ...] = (),
    update: InstallerUpdate | None = None,
    formats: tuple[str, ...] = (),
    metadata_days: int = 30,
    manifests: tuple[Path, ...] = (),
    reuse: bool = False,
    source: SourceState | None = None,
    source_epoch: int | None = None,
) -> ReleaseReport:
    """Write installers, manifest, provenance, latest.json (one app), sha256.sum (and signatures), and
    the release channels `formats` names ([package] formats: SBOMs, packages, manifests).
    Each app's schema level is what `APP *schema_command` reports ([update] schema-command).

    reuse: leave the folder as it is when it was made from the same inputs (the record
    but its times, these arguments, `manifests`, the source state, the day) and its
    files are unchanged since: a no-op build then spends no time here.

    source, source_epoch: the repository's state and SOURCE_DATE_EPOCH when the build
    already asked git for them (else they are asked here)."""
    update = replace(update or InstallerUpdate(), public_key=key.public_key().render() if key else "",
                     keylist=baked_keylist(out_dir))  # fmt: skip
    started = datetime.now(UTC).isoformat(timespec="seconds")
    record = load_record(out_dir)
    state = source or source_state(repo)
    epoch = source_date_epoch(repo) if source_epoch is None else source_epoch
    options = {
        "base_url": base_url,
        "schema_command": list(schema_command),
        "update": dataclasses.asdict(update),
        "formats": list(formats),
        "metadata_days": metadata_days,
    }
    inputs = _inputs(record, state, epoch, options, manifests)
    if reuse:
        kept, why = _unchanged(out_dir, inputs)
        if kept is not None:
            log.info(f"release folder {out_dir} unchanged")
            return ReleaseReport(out_dir, kept, key is not None)
        if why:
            log.info(f"release folder {out_dir} made again: {why}")
    archives: list[ReleaseFile] = []
    members: dict[str, list[dict[str, str | int]]] = {}
    versions: dict[str, str] = {}
    for triple, entry in sorted(record.targets.items()):
        for artifact in entry.artifacts:
            path = out_dir / artifact.path.name
            if not path.is_file():
                raise PackagingError(f"{path.name} is in the build record but not in {out_dir}", hint="rebuild it")
            if sha256_file(path) != artifact.sha256:
                raise PackagingError(f"{path.name} changed since it was built", hint=f"rebuild {triple}")
            # As packaging wrote them (the digest above ties them to this archive); unpacked
            # only for a record from before they were kept.
            written = artifact.members or tuple(archive_members(path))
            members[path.name] = [m.to_dict() for m in written]
            app = artifact.package
            binaries = entry.binaries_of(app)
            versions[app] = binaries[0].version if binaries else ""
            verdicts = tuple(
                {k: v[k] for k in ("rule", "ok", "severity", "allowed", "found", "expected")} | {"binary": b.name}
                for b in binaries
                for v in b.verdicts
            )
            names = tuple(b.path.name for b in binaries)
            # what cargo-auditable embedded, for scanners that read the manifest instead of the binary
            audited = {b.name: list(b.dependencies) for b in binaries if b.dependencies}
            extra = {"dependencies": audited} if audited else {}
            archives.append(_describe(path, "archive", app, triple, binaries=names, verdicts=verdicts, **extra))
    if not archives:
        raise PackagingError(f"no archives to release in {out_dir}", hint="run `invoke build` first")
    # The debug info split off the binaries: listed, hashed, signed and in the provenance like the
    # archives, but no installer, channel or latest.json points at it (users never install it).
    symbols: list[ReleaseFile] = []
    for triple, entry in sorted(record.targets.items()):
        for artifact in entry.debug_artifacts:
            path = out_dir / artifact.path.name
            if not path.is_file():
                raise PackagingError(f"{path.name} is in the build record but not in {out_dir}", hint="rebuild it")
            if sha256_file(path) != artifact.sha256:
                raise PackagingError(f"{path.name} changed since it was built", hint=f"rebuild {triple}")
            members[path.name] = [m.to_dict() for m in artifact.members or archive_members(path)]
            names = tuple(b.path.name for b in entry.binaries_of(artifact.package) if b.debug is not None)
            symbols.append(_describe(path, DEBUG_KIND, artifact.package, triple, binaries=names))
    installers = []
    # Here, not at the top: a no-op build that reuses the folder never loads the channels' libraries.
    from toolchain.release.channels.write import ChannelOptions, write_channels

    with log.group(f"release folder {out_dir}"):
        channels = write_channels(out_dir, record, archives, ChannelOptions(formats, base_url, epoch))
        for app, version in sorted(versions.items()):
            app_archives = [a for a in archives if a.app == app]
            for name, text in render_installers(app, version, app_archives, base_url, update).items():
                path = write_atomic(out_dir / name, text, 0o755 if name.endswith(".sh") else 0o644)
                installer = _describe(path, "installer", app, None)
                write_atomic(out_dir / f"{name}.sha256", f"{installer.sha256}  {name}\n")
                installers.append(installer)
                log.info(f"wrote {path}")
        subjects = archives + symbols + installers + channels
        statement = provenance(record, subjects, started, repo, state)
        prov = _describe(
            write_json(out_dir / PROVENANCE_NAME, statement),
            "provenance",
            None,
            None,
        )
        files = [*archives, *symbols, *installers, *channels, prov]
        levels = {
            app: release_schema_level(
                out_dir,
                app,
                [ArchiveRef(a.name, a.target or "", a.sha256, a.binaries) for a in archives if a.app == app],
                schema_command,
            )
            for app in versions
        }

        manifest = {
            "schema": MANIFEST_SCHEMA,
            "apps": [{"name": a, "version": v, "schema_level": levels[a]} for a, v in sorted(versions.items())],
            "data_files": list(update.installer_patterns()),
            "upgrade_checks": [list(check) for check in update.checks],
            "artifacts": [
                f.to_dict() | ({"members": members[f.name]} if f.kind in MEMBER_KINDS else {}) for f in files
            ],
        }
        write_json(out_dir / MANIFEST_NAME, manifest)
        listed = sorted([f.name for f in files] + [MANIFEST_NAME])
        if len(versions) == 1:  # the channel pointer of a one-app release (publish takes one app per folder)
            ((app, version),) = versions.items()
            pointed = [LatestFile(a.name, a.sha256, a.size, a.target or "", a.binaries) for a in archives]
            write_latest(out_dir, app, version, pointed, metadata_days)
            listed = sorted([*listed, LATEST_NAME])
        sums = "".join(f"{sha256_file(out_dir / name)}  {name}\n" for name in listed)
        write_atomic(out_dir / SUMS_NAME, sums)
        log.info(f"wrote {out_dir / MANIFEST_NAME}, {out_dir / PROVENANCE_NAME}, {out_dir / SUMS_NAME}")
        if key is not None:
            for name in [*listed, SUMS_NAME]:
                sign_file(out_dir / name, key, f"file:{name}")
            log.info(f"signed {len(listed) + 1} files with key {key.key_id[::-1].hex().upper()}")
        else:
            log.warn("no signing key: the release folder is unsigned (see `invoke keygen`); publish will refuse it")
        made = [*listed, SUMS_NAME, *(f"{i.name}.sha256" for i in installers)]
        made += [f"{name}.minisig" for name in [*listed, SUMS_NAME]] if key is not None else []
        outputs = {name: sha256_file(out_dir / name) for name in made}
        (out_dir / RELEASE_STAMP).parent.mkdir(exist_ok=True)
        # The day its dated files (latest.json) were written for: another day makes them again.
        stamp = {"inputs": _digest(inputs), "input_document": inputs, "outputs": outputs, "day": day_of(outputs)}
        write_atomic(out_dir / RELEASE_STAMP, json.dumps(stamp, sort_keys=True, default=str))
    return ReleaseReport(out_dir, tuple(files), key is not None)


def _inputs(
    record: BuildRecord, state: SourceState, epoch: int, options: dict[str, Any], manifests: tuple[Path, ...]
) -> dict[str, Any]:
    """Everything the release folder's files are made from (kept in the stamp as a
    document, so a folder made again can say which of them changed)."""
    known = catalog.current()
    targets = {
        triple: {k: v for k, v in entry.to_dict().items() if k not in _VOLATILE}
        for triple, entry in sorted(record.targets.items())
    }
    document = {
        "toolkit": __version__,
        "targets": targets,
        "target_data": {t: repr(known.target(t)) for t in targets if t in known.targets},
        "source": dataclasses.asdict(state),
        "source_date_epoch": epoch,
        "manifests": {str(m): sha256_file(m) if m.is_file() else None for m in sorted(manifests)},
        **options,
    }
    # Through JSON once: the stamp's copy then compares equal to a new one (tuples, paths).
    loaded: dict[str, Any] = json.loads(json.dumps(document, sort_keys=True, default=str))
    return loaded


def _digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def changed_inputs(before: Any, now: Any, prefix: str = "", depth: int = 3) -> list[str]:
    """The inputs that differ, by dotted name (`targets.TRIPLE.FIELD` at most)."""
    if before == now:
        return []
    if depth == 0 or not (isinstance(before, dict) and isinstance(now, dict)):
        return [prefix or "inputs"]
    found = []
    for name in sorted(before.keys() | now.keys()):
        found += changed_inputs(before.get(name), now.get(name), f"{prefix}.{name}" if prefix else name, depth - 1)
    return found


def _unchanged(out_dir: Path, inputs: dict[str, Any]) -> tuple[tuple[ReleaseFile, ...] | None, str]:
    """The folder's files as its manifest lists them, when they are what `inputs` made; else
    None and why not ("" when there is no stamp to compare with)."""
    try:
        stamp = json.loads((out_dir / RELEASE_STAMP).read_text())
        outputs: dict[str, str] = stamp["outputs"]
        if stamp["inputs"] != _digest(inputs):
            before = stamp.get("input_document")
            named = changed_inputs(before, inputs) if isinstance(before, dict) else []
            return None, (", ".join(named) + " changed") if named else "its inputs changed"
        if MANIFEST_NAME not in outputs:
            return None, "its stamp lists no manifest"
        if stamp.get("day") != day_of(outputs):
            return None, "day changed"
        for name, digest in outputs.items():
            if not (out_dir / name).is_file():
                return None, f"{name} is missing"
            if sha256_file(out_dir / name) != digest:
                return None, f"{name} changed since it was written"
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
        return tuple(
            ReleaseFile(
                a["name"],
                a["kind"],
                a["app"],
                a["target"],
                a["size"],
                a["sha256"],
                tuple(a["binaries"]),
                tuple(a["verdicts"]),
                a.get("dependencies"),
            )
            for a in manifest["artifacts"]
        ), ""
    except FileNotFoundError:
        return None, ""  # never made, or made by a toolkit that kept no stamp
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"its stamp cannot be read ({type(exc).__name__})"  # made afresh


def stamped_day(out_dir: Path) -> str | None:
    """The UTC day the folder's dated files were written for, from its stamp (None: it has
    none, or no stamp): what the fresh check keeps, so that both caches agree on the date."""
    try:
        day = json.loads((out_dir / RELEASE_STAMP).read_text()).get("day")
    except (OSError, ValueError, AttributeError):
        return None
    return day if isinstance(day, str) else None


def merge_parts(parts: Path, out_dir: Path) -> list[str]:
    """Gather per-target build folders (one CI job each) into one release folder."""
    record = BuildRecord()
    records = sorted(parts.glob(f"*/{RECORD_NAME}"))
    if not records:
        raise PackagingError(f"no {RECORD_NAME} under {parts}/*/", hint="download the build jobs' folders there")
    out_dir.mkdir(parents=True, exist_ok=True)
    for record_path in records:
        part = load_record(record_path.parent)
        for triple, entry in part.targets.items():
            if triple in record.targets:
                raise PackagingError(f"{triple} was built twice ({record_path})", hint="keep one build per target")
            for artifact in (*entry.artifacts, *entry.debug_artifacts):
                name = artifact.path.name
                source = record_path.parent / name
                if not source.is_file() or sha256_file(source) != artifact.sha256:
                    raise PackagingError(f"{source} is missing or changed since its build", hint="rebuild that target")
                shutil.copyfile(source, out_dir / name)
                write_atomic(out_dir / f"{name}.sha256", f"{artifact.sha256}  {name}\n")
            record = record.merged([entry])
    save_record(out_dir, record)
    return sorted(record.targets)


def parse_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ReleaseCheckError(f"{path} is missing", hint="run `invoke package`")
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *]([^/\\]+)", line)
        if not match:
            raise ReleaseCheckError(f"{path.name}:{number} is not a sha256sum line", hint="regenerate it")
        entries[match.group(2)] = match.group(1)
    return entries


def _check_members(archive: Path, signed: list[dict[str, Any]] | None) -> None:
    """The archive holds only safe, regular members, exactly the ones the manifest signed."""
    try:
        found = [m.to_dict() for m in archive_members(archive)]
    except PackagingError as exc:
        raise ReleaseCheckError(exc.message, hint=exc.hint) from exc
    if signed is not None and found != signed:
        listed = {m["path"] for m in signed}
        odd = sorted({m["path"] for m in found} ^ listed) or [m["path"] for m in found if m not in signed]
        raise ReleaseCheckError(
            f"{archive.name}: members differ from the signed manifest ({', '.join(map(str, odd[:3]))})",
            hint="use the release's own files",
        )


def check_sboms(folder: Path, sums: dict[str, str], artifacts: list[dict[str, Any]]) -> None:
    """Every SBOM names the artifact it sits beside, with that artifact's digest, and every
    artifact of a release with SBOMs has one."""
    from toolchain.release.channels.sbom import sbom_subject, validate_sbom

    sboms = [a for a in artifacts if a["kind"] == "sbom"]
    for entry in sboms:
        name = entry["name"]
        subject = sbom_subject(folder / name)
        described = name.removesuffix(SBOM_SUFFIX)
        if subject.artifact != described or sums.get(described) != subject.sha256:
            raise ReleaseCheckError(
                f"{name}: its SHA-256 of {described} does not match {SUMS_NAME}",
                hint="run `invoke package` (the SBOM is of another build)",
            )
        try:
            validate_sbom((folder / name).read_text())
        except ReleaseCheckError as exc:
            raise ReleaseCheckError(f"{name}: {exc.message}", hint=exc.hint) from exc
    if sboms:
        described = {a["name"].removesuffix(SBOM_SUFFIX) for a in sboms}
        bare = [a["name"] for a in artifacts if a["kind"] in SBOM_KINDS and a["name"] not in described]
        if bare:
            raise ReleaseCheckError(f"{bare[0]} has no SBOM beside it", hint="run `invoke package`")


def _signer(folder: Path, name: str, release_key: PublicKey, root_text: str) -> PublicKey:
    """The key that must have signed `name`: the release key, or for the channel's files a channel
    key the folder's key lists name (`invoke renew` with the key CI holds, the release key offline)."""
    signature = folder / f"{name}.minisig"
    if name not in CHANNEL_FILES or not signature.is_file() or latest_list(folder) is None:
        return release_key  # verify_file names a signature by another key
    signer = signer_id(signature)
    if signer == release_key.key_id:
        return release_key
    root = parse_public_key(root_text, "--root") if root_text else None
    try:
        return channel_signer(folder, release_key, signer, datetime.now(UTC), root)
    except SignatureError as exc:
        raise SignatureError(
            f"{signature.name} was made by key {key_id_hex(signer)}, not the release key "
            f"{key_id_hex(release_key.key_id)} nor a channel key of the folder's key lists ({exc.message})",
            hint=exc.hint or "verify with the key that signed the release",
        ) from None


def verify_release(folder: Path, public_key_text: str, root_text: str = "") -> list[str]:
    """Check a release folder; return the names checked. Raises on the first bad file.
    The channel's files (latest.json, sha256.sum) may be re-signed by a channel key of the
    folder's key lists, followed from the root `root_text` (else from the release key)."""
    public = parse_public_key(public_key_text)
    sums = parse_sums(folder / SUMS_NAME)
    for required in (MANIFEST_NAME, PROVENANCE_NAME):
        if required not in sums:
            raise ReleaseCheckError(f"{required} is not listed in {SUMS_NAME}", hint="run `invoke package`")
    releasable = {
        p.name
        for p in folder.iterdir()
        if p.is_file() and re.search(r"\.(tar\.xz|zip|sh|ps1|deb|rpm|apk|msi|rb|cdx\.json)$", p.name)
    }
    unlisted = sorted(releasable - set(sums))
    if unlisted:
        raise ReleaseCheckError(
            f"{', '.join(unlisted)} {'is' if len(unlisted) == 1 else 'are'} in the release folder but not in "
            f"{SUMS_NAME}: no build in this folder's record made {'it' if len(unlisted) == 1 else 'them'}",
            hint="remove them (`invoke package --clean` does), or rebuild what they belong to",
        )
    for name, digest in sorted(sums.items()):
        path = folder / name
        if not path.is_file():
            raise ReleaseCheckError(f"{name} is listed in {SUMS_NAME} but missing", hint="rebuild or re-download it")
        if sha256_file(path) != digest:
            raise ReleaseCheckError(f"{name}: SHA-256 does not match {SUMS_NAME}", hint="the file was changed")
        single = folder / f"{name}.sha256"
        if single.is_file() and single.read_text().split()[0] != digest:
            raise ReleaseCheckError(f"{single.name} disagrees with {SUMS_NAME}", hint="run `invoke package`")
    for name in [*sorted(sums), SUMS_NAME]:
        try:
            verify_file(folder / name, folder / f"{name}.minisig", _signer(folder, name, public, root_text))
        except ToolchainError as exc:
            raise ReleaseCheckError(f"{name}: {exc.message}", hint=exc.hint) from exc
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ReleaseCheckError(f"{MANIFEST_NAME} is not a {MANIFEST_SCHEMA} document", hint="run `invoke package`")
    for artifact in manifest["artifacts"]:
        if sums.get(artifact["name"]) != artifact["sha256"]:
            raise ReleaseCheckError(f"{artifact['name']}: manifest digest does not match", hint="run `invoke package`")
        if artifact["kind"] in MEMBER_KINDS:
            _check_members(folder / artifact["name"], artifact.get("members"))
    validation = manifest.get("rollback_validation")
    if validation and sums.get(validation["name"]) != validation["sha256"]:
        raise ReleaseCheckError(f"{validation['name']}: manifest digest does not match", hint="validate again")
    check_sboms(folder, sums, manifest["artifacts"])
    statement = json.loads((folder / PROVENANCE_NAME).read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement.get("subject", [])}
    expected = {a["name"]: a["sha256"] for a in manifest["artifacts"] if a["kind"] != "provenance"}
    for name in sorted(set(subjects) | set(expected)):
        if subjects.get(name) != expected.get(name):
            raise ReleaseCheckError(
                f"{name}: provenance subject does not match the release", hint="run `invoke package`"
            )
    return [*sorted(sums), SUMS_NAME]
