"""The `inspect` result as a versioned JSON document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolchain.config import catalog
from toolchain.digest import sha256_file
from toolchain.errors import UsageError
from toolchain.records.build_record import load_record
from toolchain.verify.inspection import inspect_binary
from toolchain.verify.policy import MacSignatureExpectation, evaluate, verdicts_to_dicts

INSPECT_SCHEMA = "toolchain.inspect/v1"


def paths_from_last_build(out_dir: Path, triple: str) -> list[Path]:
    if not triple:
        raise UsageError("nothing to inspect", hint="pass a PATH or --target T (a target built before)")
    return [path for path, _ in built_binaries(out_dir, triple)]


def built_binaries(out_dir: Path, triple: str) -> list[tuple[Path, str]]:
    """(path, crate version) of each binary the last build of `triple` made."""
    target = catalog.current().target(triple)
    record = load_record(out_dir)
    entry = record.entry(target.triple)
    if not entry:
        built = ", ".join(sorted(record.targets)) or "none"
        raise UsageError(
            f"{target.triple} has not been built into {out_dir} (built: {built})",
            hint=f"run `invoke build --target {target.triple}` first",
        )
    return [(b.path, b.version) for b in entry.binaries]


def inspect_paths(
    paths: list[Path], triple: str | None, signer: str | None = None, macos: MacSignatureExpectation | None = None
) -> dict[str, Any]:
    """signer: the configured Authenticode certificate's SHA-256 (the `authenticode` rule's expectation);
    macos: the `macos-signature` rule's expectation."""
    known = catalog.current()
    target = known.target(triple) if triple else None
    binaries = []
    for path in paths:
        info = inspect_binary(path)
        document = info.to_dict()
        document["path"] = str(path)
        document["sha256"] = sha256_file(path)
        if target is not None:
            policy = known.policy_for(target)
            document["policy"] = policy.source.name
            verdicts = evaluate(
                info,
                target,
                path,
                policy,
                component_machines=known.component_machines(target),
                signer=signer,
                macos=macos,
            )
            document["verdicts"] = verdicts_to_dicts(verdicts)
        binaries.append(document)
    return {"schema": INSPECT_SCHEMA, "target": target.triple if target else None, "binaries": binaries}
