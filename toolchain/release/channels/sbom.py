"""A CycloneDX 1.6 JSON SBOM per release artifact, written with
cyclonedx-python-lib: the app (with the artifact's SHA-256) and every crate
its binary is built from for that target (version, license, Cargo.lock
checksum, features, purl), and who depends on whom. The same inputs give the
same bytes: the serial number derives from the artifact's digest and the
timestamp is SOURCE_DATE_EPOCH's."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolchain import __version__
from toolchain.errors import MissingToolError, ReleaseCheckError
from toolchain.release.channels.crates import Crate, Resolve
from toolchain.verify.inspection import AuditedPackage

SBOM_NAMESPACE = uuid.UUID("0b6c9b52-5a43-5d64-9d3e-1f0f3c1d2a70")
ARTIFACT_PROPERTY = "toolchain:artifact"
TARGET_PROPERTY = "toolchain:target"
# On a crate: the binary's own embedded list (cargo-auditable) names it, with this kind (runtime | build).
AUDITABLE_PROPERTY = "toolchain:auditable"


@dataclass(frozen=True)
class SbomSubject:
    """What an SBOM says it describes, read back for `invoke verify`."""

    artifact: str
    sha256: str
    target: str


def _library() -> Any:
    try:
        import cyclonedx  # noqa: F401
    except ImportError as exc:
        raise MissingToolError(
            "cyclonedx-python-lib is not installed (the sbom format needs it)",
            hint="pip install 'cyclonedx-python-lib[validation]' (a dependency of the toolkit's package)",
        ) from exc


def import_libraries() -> None:
    """Import what render_sbom uses (about 0.2 s), e.g. on a thread while cargo compiles."""
    try:
        # An expression, not a lone id: the first expression builds the SPDX tokenizer (about 10 ms).
        _licenses("MIT OR Apache-2.0")
        from cyclonedx.model.bom import Bom  # noqa: F401
        from cyclonedx.output.json import JsonV1Dot6  # noqa: F401
        from packageurl import PackageURL  # noqa: F401
    except ImportError:
        pass  # render_sbom names the fix


def _purl(crate: Crate) -> Any:
    from packageurl import PackageURL

    # Registry crates are crates.io's unless their source says otherwise; path crates have no registry.
    qualifiers = {}
    if crate.source and not crate.source.endswith("github.com/rust-lang/crates.io-index"):
        qualifiers["repository_url"] = crate.source.split("+", 1)[-1]
    return PackageURL(type="cargo", name=crate.name, version=crate.version, qualifiers=qualifiers or None)


def _licenses(expression: str | None) -> list[Any]:
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # before cyclonedx-python-lib 11.x moved it
        from cyclonedx.factory.license import LicenseFactory

    if not expression:
        return []
    # Older crates write "MIT/Apache-2.0", which SPDX spells "MIT OR Apache-2.0".
    return [LicenseFactory().make_from_string(expression.replace("/", " OR "))]


def _component(crate: Crate, kind: str = "library") -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    properties = [Property(name="cdx:rust:crate:feature", value=f) for f in crate.features]
    if crate.proc_macro:
        properties.append(Property(name="toolchain:proc-macro", value="true"))
    return Component(
        name=crate.name,
        version=crate.version,
        type=ComponentType(kind),
        bom_ref=crate.key,
        purl=_purl(crate),
        licenses=_licenses(crate.license),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=crate.checksum)] if crate.checksum else [],
        properties=properties,
    )


def render_sbom(
    resolved: Resolve, artifact: str, artifact_sha256: str, mtime: int, embedded: tuple[AuditedPackage, ...] = ()
) -> str:
    """The SBOM of one artifact as CycloneDX 1.6 JSON text.

    embedded: the dependency list cargo-auditable put in the binaries. Each
    crate it names is marked; one it names that the lock-file resolve does
    not (a build dependency) is added, so the SBOM covers the binary's own
    account of what went into it."""
    _library()
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.output.json import JsonV1Dot6

    app = _component(resolved.root, "application")
    app.hashes = [HashType(alg=HashAlgorithm.SHA_256, content=artifact_sha256)]
    app.properties.update(
        [Property(name=ARTIFACT_PROPERTY, value=artifact), Property(name=TARGET_PROPERTY, value=resolved.target)]
    )
    tool = Component(name="toolchain", version=__version__, type=ComponentType.APPLICATION)
    metadata = BomMetaData(component=app, timestamp=datetime.fromtimestamp(mtime, UTC))
    metadata.tools.components.add(tool)
    components = {c.key: _component(c) for c in resolved.crates}
    for package in sorted(set(embedded), key=lambda p: (p.name, p.version)):
        key = f"{package.name}@{package.version}"
        if key == resolved.root.key:
            continue
        if key not in components:
            source = None if package.source == "local" else package.source
            components[key] = _component(Crate(package.name, package.version, source, None, None, (), False, ()))
        components[key].properties.add(Property(name=AUDITABLE_PROPERTY, value=package.kind))
    if embedded:
        app.properties.add(Property(name=AUDITABLE_PROPERTY, value=f"{len(set(embedded))} packages embedded"))
    refs = {resolved.root.key: app, **components}
    # One entry a crate, built here: Bom.register_dependency scans every entry on each call
    # (0.12 s of 0.30 s on 225 crates).
    dependencies = [
        Dependency(ref=refs[c.key].bom_ref, dependencies=[Dependency(ref=refs[d].bom_ref) for d in c.dependencies])
        for c in (resolved.root, *resolved.crates)
    ]
    bom = Bom(
        serial_number=uuid.uuid5(SBOM_NAMESPACE, f"{artifact}:{artifact_sha256}"),
        metadata=metadata,
        components=components.values(),
        dependencies=dependencies,
    )
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    # Sorted keys: the library keeps set order stable, this keeps the whole text stable.
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def validate_sbom(text: str) -> None:
    """Raise when `text` is not a valid CycloneDX 1.6 JSON document."""
    _library()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise ReleaseCheckError(f"not a valid CycloneDX 1.6 document: {str(error)[:200]}", hint="run `invoke package`")


def sbom_subject(path: Path) -> SbomSubject:
    """The artifact an SBOM file describes (name, SHA-256, target)."""
    try:
        component = json.loads(path.read_text())["metadata"]["component"]
        properties = {p["name"]: p["value"] for p in component.get("properties", ())}
        digest = next(h["content"] for h in component.get("hashes", ()) if h["alg"] == "SHA-256")
        return SbomSubject(properties[ARTIFACT_PROPERTY], digest, properties[TARGET_PROPERTY])
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
        raise ReleaseCheckError(
            f"{path.name} does not name the artifact it describes", hint="run `invoke package`"
        ) from exc
