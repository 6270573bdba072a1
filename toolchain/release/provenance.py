"""Provenance of a release: an in-toto Statement v1 with a SLSA provenance
v1 predicate over the release's files, from the build record and the
source checkout."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import __version__, proc
from toolchain.records.build_record import BuildRecord
from toolchain.release.installers import ReleaseFile

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:toolchain:rust-release:v1"


def _git(repo: Path, *args: str) -> str | None:
    return proc.output(["git", "-C", repo, *args])


@dataclass(frozen=True)
class SourceState:
    """Where the release's source and builder stand: what provenance says of them."""

    commit: str | None
    dirty: bool
    remote: str | None
    builder: str


def source_state(repo: Path) -> SourceState:
    builder = os.environ.get("TOOLCHAIN_BUILDER_ID")
    if not builder and os.environ.get("GITHUB_ACTIONS") == "true":
        builder = (
            f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ.get('GITHUB_REPOSITORY', '')}"
            f"/actions/runs/{os.environ.get('GITHUB_RUN_ID', '')}"
        )
    return SourceState(
        commit=_git(repo, "rev-parse", "HEAD"),
        dirty=bool(_git(repo, "status", "--porcelain", "--untracked-files=no")),
        remote=_git(repo, "config", "--get", "remote.origin.url"),
        builder=builder or f"urn:toolchain:builder:{socket.gethostname()}",
    )


def provenance(
    record: BuildRecord, subjects: list[ReleaseFile], started: str, repo: Path, state: SourceState | None = None
) -> dict[str, Any]:
    """An in-toto Statement v1 with a SLSA provenance v1 predicate."""
    targets = record.targets
    state = state or source_state(repo)
    commit, dirty, remote = state.commit, state.dirty, state.remote
    locks = {e.cargo_lock_sha256 for e in targets.values() if e.cargo_lock_sha256}
    dependencies: list[dict[str, Any]] = []
    if commit:
        dependencies.append({"uri": f"git+{remote or repo}", "digest": {"gitCommit": commit}})
    dependencies += [{"name": "Cargo.lock", "digest": {"sha256": lock}} for lock in sorted(locks)]
    finished = [e.finished for e in targets.values() if e.finished]
    built_started = [e.started for e in targets.values() if e.started]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.name, "digest": {"sha256": s.sha256}} for s in subjects],
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "profiles": sorted({e.profile for e in targets.values() if e.profile}),
                    "targets": sorted(targets),
                    "source": {"commit": commit, "dirty": dirty},
                },
                "internalParameters": {
                    triple: {
                        "runner": e.runner,
                        "route": e.route,
                        "toolchain": e.toolchain,
                        "allowed_rules": list(e.allowed_rules),
                        "profile_settings": list(e.profile_settings),
                    }
                    for triple, e in sorted(targets.items())
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": state.builder},
                "metadata": {
                    "invocationId": f"toolchain-{__version__}-{started}",
                    "startedOn": min(built_started, default=started),
                    "finishedOn": max(finished, default=started),
                },
            },
        },
    }
