"""The build pipeline for one or more targets: cargo → inspect → verify →
package, ending in one summary and a build record in the output folder."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.compile import cache
from toolchain.compile.cargo import Project, Selection, cargo_program, load_project, select
from toolchain.compile.context import CargoContext
from toolchain.compile.routes import Route, ask_sysroot_ahead
from toolchain.compile.target import Compiled, compile_target, profile_is_defined_by_toolkit, toolchain_versions
from toolchain.config.options import merged
from toolchain.config.profiles import Profile, SettingSource, effective_settings
from toolchain.config.settings import Settings, load_settings, settings_folder
from toolchain.config.targets import Target, host_platform
from toolchain.digest import sha256_file
from toolchain.errors import BuildError, PackagingError, ToolchainError, UsageError
from toolchain.log import Held, Progress, log
from toolchain.records.build_options import (
    BuildOptions as BuildOptions,  # its home is light: the fresh check keys on it
)
from toolchain.records.build_record import (
    ArtifactEntry,
    BinaryEntry,
    BuildRecord,
    CacheStats,
    DebugFile,
    TargetEntry,
    load_record,
    load_record_or_empty,
    save_record,
)
from toolchain.records.formats import SBOM
from toolchain.verify.policy import STRIPS_SYMBOLS, ProfileInUse, check_allow

if TYPE_CHECKING:
    from toolchain.compile.debuginfo import SplitBinary
    from toolchain.release.package import ArchiveEntry, Artifact
    from toolchain.release.provenance import SourceState
    from toolchain.verify.inspection import BinaryInfo
    from toolchain.verify.policy import MacSignatureExpectation, RuleVerdict

# What verifying and packaging need, imported here only when used: the warm-up thread loads
# them while cargo compiles, so they cost the path before cargo nothing.
AFTER_CARGO = (
    "toolchain.compile.fat",
    "toolchain.compile.stale",
    "toolchain.release.folder",
    "toolchain.release.package",
    "toolchain.verify.cache",
    "toolchain.verify.size",
)

REPORT_SCHEMA = "toolchain.build/v1"
EXTRA_DOC_NAMES = ("CHANGELOG.md", "CHANGELOG")


@dataclass(frozen=True)
class BuiltBinary:
    package: str
    version: str
    name: str
    path: Path
    sha256: str
    info: BinaryInfo
    verdicts: tuple[RuleVerdict, ...]
    debug: SplitBinary | None = None  # its debug info, split off (compile/debuginfo.py)

    def entry(self) -> BinaryEntry:
        """This binary as the build record keeps it."""
        return BinaryEntry(
            package=self.package,
            version=self.version,
            name=self.name,
            path=self.path,
            sha256=self.sha256,
            size=self.info.size,
            format=self.info.format,
            machine=self.info.machine,
            stripped=self.info.stripped,
            sections={sec.name: sec.size for sec in self.info.sections},
            verdicts=tuple(dict(v.__dict__) for v in self.verdicts),
            dependencies=tuple(dict(d.__dict__) for d in self.info.dependencies),
            debug=DebugFile.of(self.debug) if self.debug else None,
        )


@dataclass(frozen=True)
class TargetResult:
    """One target's build: its build record entry, and the typed objects
    behind the plain values the entry keeps (the inspection and verdicts of
    each binary, the archives, where each profile setting came from)."""

    entry: TargetEntry
    binaries: tuple[BuiltBinary, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    profile_settings: tuple[SettingSource, ...] = ()

    @property
    def triple(self) -> str:
        return self.entry.target

    @property
    def ok(self) -> bool:
        return self.entry.ok


@dataclass(frozen=True)
class BuildReport:
    profile: str
    out_dir: Path
    results: tuple[TargetResult, ...]
    record_path: Path | None = None
    workspace_root: Path | None = None  # the project's (git information for provenance)
    manifests: tuple[Path, ...] = ()  # the workspace's and its packages' Cargo.toml (the release folder reads them)
    project: Project | None = None  # what was built (the fresh check's fingerprint reads its folders)
    # Asked while cargo compiled, for the release folder (so it asks git nothing again).
    source_state: SourceState | None = None
    source_epoch: int | None = None
    settings: Settings | None = None  # merged with the command line's choices: what the build used

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "ok": self.ok,
            "profile": self.profile,
            "out_dir": str(self.out_dir),
            "record": str(self.record_path) if self.record_path else None,
            "targets": [r.entry.to_dict() for r in self.results],
        }


def resolve_targets(options: BuildOptions, settings: Settings) -> list[Target]:
    catalog = settings.catalog
    if options.all_targets:
        host = host_platform()
        known = catalog.targets.values()
        chosen = [t for t in known if t.release and t.runner_preference(host)]
        # A release target this host cannot build is replaced by its stand-in
        # (windows-msvc by windows-gnu on Linux), if the data names one.
        for missing in (t for t in known if t.release and not t.runner_preference(host)):
            chosen += [t for t in known if t.substitutes == missing.triple and t.runner_preference(host)]
        return chosen
    triples = list(options.targets) or list(settings.build.targets) or [catalog.host_triple()]
    return [catalog.target(t) for t in triples]


def build(options: BuildOptions, settings: Settings | None = None) -> BuildReport:
    """Build, verify and package every requested target. `settings`: the settings files' values
    (loaded when None); the command line's choices are merged into them here, once."""
    settings = merged(settings or load_settings(settings_folder(options.manifest_path, options.demo)), options)
    if settings.build.timings:
        from toolchain.report.charts import require_matplotlib

        require_matplotlib()  # before the build, not after minutes of it
    check_allow(options.allow)
    profile = settings.catalog.profile(settings.build.profile)
    targets = resolve_targets(options, settings)
    # rustc's sysroot (the std route) is asked on a thread while cargo metadata runs: one wait, not two.
    manifest = options.manifest_path or settings.manifest(demo=options.demo)
    ask_sysroot_ahead(CargoContext.of(manifest))
    project = load_project(manifest)
    selections = select(project, options.package, list(options.binaries), settings.build)
    out_dir = usable_out_dir(options.out_dir or settings.out_dir_for(project.manifest_path))
    if settings.authenticode.configured and any(t.os == "windows" for t in targets):
        from toolchain.release import authenticode

        with authenticode.identity(settings.authenticode):
            pass  # a wrong password or an expired certificate stops the build before cargo runs
    if settings.macos_signing.signs and any(t.os == "macos" for t in targets):
        from toolchain.release import codesign

        codesign.rcodesign()  # likewise a missing rcodesign
        with codesign.identity(settings.macos_signing):
            pass
    plan = Plan(project, selections, profile, settings, options, out_dir)
    results = build_targets(plan, targets)
    record_path = None
    source = None
    if any(r.ok for r in results):
        from toolchain.compile.stale import report_stale
        from toolchain.verify.size import append_history

        record_path = write_record(out_dir, project, profile, results, settings)
        report_stale(out_dir, load_record(out_dir), options.clean)
        source = plan.source_state
        commit = (source.commit, source.dirty)
        append_history(out_dir, project.workspace_root, profile.name, [r.entry for r in results if r.ok], commit)
    manifests = tuple(sorted({project.workspace_root / "Cargo.toml", *(p.manifest_path for p in project.packages)}))
    epoch = plan.source_epoch if record_path is not None and options.package_artifacts else None
    return BuildReport(
        profile.name, out_dir, tuple(results), record_path, project.workspace_root, manifests, project, source, epoch,
        settings,
    )  # fmt: skip


def usable_out_dir(path: Path) -> Path:
    """The output folder, tried now: a name the filesystem refuses, or a folder
    that cannot be written, is found before cargo runs. Nothing is left behind."""
    made: list[Path] = []
    try:
        path = path.resolve()
        for folder in reversed([path, *path.parents]):
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
        probe = path / f".toolchain-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
        raise UsageError(
            f"the output folder {shown} cannot be used: {exc.strerror}", hint="pass a shorter or writable --out-dir"
        ) from exc
    finally:
        for folder in reversed(made):
            folder.rmdir()
    return path


@dataclass(frozen=True)
class Plan:
    """What every target of one build shares."""

    project: Project
    selections: list[Selection]
    profile: Profile
    settings: Settings
    options: BuildOptions
    out_dir: Path

    # Asked once per build, not once per target: each is a subprocess (git, cargo, rustc).
    @functools.cached_property
    def source_epoch(self) -> int:
        from toolchain.release.package import source_date_epoch

        return source_date_epoch(self.project.workspace_root)

    @functools.cached_property
    def source_state(self) -> SourceState:
        from toolchain.release.provenance import source_state

        return source_state(self.project.workspace_root)

    @functools.cached_property
    def cargo_version(self) -> str | None:
        return self.project.context.output([cargo_program(), "--version"]) or None


@dataclass(frozen=True)
class CargoStage:
    """One target after its cargo build, waiting to be verified and packaged."""

    target: Target
    compiled: Compiled
    started: float  # time.monotonic() when its cargo build began
    started_on: str
    phases: tuple[tuple[str, float], ...]
    cache: CacheStats | None = None  # the compile cache's hits and misses for this build


@dataclass
class _Finishing:
    """A target handed to the worker: its future and the lines it held back."""

    index: int
    future: Future[TargetResult | ToolchainError | None]
    held: Held


def build_targets(plan: Plan, targets: list[Target]) -> list[TargetResult]:
    """Every target's result, in the order asked for.

    cargo builds one target at a time (it uses every core); the verify and
    package stages of target N run on one worker thread while cargo builds
    target N+1. The worker's log lines are held and printed as one block by
    this thread between cargo builds. Without --keep-going the first failure,
    in target order, is raised once the worker's running stage has ended."""
    stop_at_failure = not plan.options.keep_going or len(targets) == 1
    results: list[TargetResult | None] = [None] * len(targets)
    failures: list[tuple[int, ToolchainError]] = []
    waiting: deque[_Finishing] = deque()
    stop = threading.Event()  # set on a failure or Ctrl-C: the worker starts nothing new
    begun = [0.0] * len(targets)

    def fail(index: int, exc: ToolchainError) -> None:
        progress.update(index, "failed")
        failures.append((index, exc))
        if not stop_at_failure:
            log.error(f"{targets[index].triple}: {exc}")
            seconds = time.monotonic() - begun[index]
            results[index] = TargetResult(TargetEntry(targets[index].triple, False, seconds, error=str(exc)))

    def collect(block: bool) -> None:
        """Print the held lines of the worker's finished targets, in order, and take their results."""
        while waiting and (block or waiting[0].future.done()):
            item = waiting[0]
            outcome = item.future.result()  # interrupted, the item stays for collect_rest
            waiting.popleft()
            item.held.replay()
            if isinstance(outcome, ToolchainError):
                fail(item.index, outcome)
            elif outcome is not None:
                results[item.index] = outcome
        if failures and stop_at_failure:
            stop.set()
            for item in waiting:
                item.future.cancel()
            collect_rest()
            raise min(failures, key=lambda f: f[0])[1]

    def collect_rest() -> None:
        # A stage already running ends (its files are written atomically); its lines are shown.
        while waiting:
            item = waiting.popleft()
            if not item.future.cancelled():
                item.future.exception()
            item.held.replay()

    sboms = plan.options.package_artifacts and SBOM in plan.settings.package.formats
    asked_ahead = threading.Event()

    def on_compiling() -> None:
        warm_up_inspection(sboms)
        if not asked_ahead.is_set():
            asked_ahead.set()
            # What every target's record and archive need, asked while cargo compiles, not after it.
            threading.Thread(target=_ask_plan, args=(plan,), name="toolchain-plan", daemon=True).start()
            if sboms:
                _ask_ahead(plan, targets)

    with (
        log.progress([t.triple for t in targets], show=len(targets) > 1, on_compiling=on_compiling) as progress,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolchain-finish") as pool,
    ):
        try:
            for index, target in enumerate(targets):
                begun[index] = time.monotonic()
                progress.update(index, "building")
                try:
                    stage = cargo_stage(plan, target)
                except ToolchainError as exc:
                    collect(block=True)  # an earlier target's failure comes first
                    fail(index, exc)
                    collect(block=True)
                    continue
                collect(block=False)  # an earlier failure stops the build before this target is handed over
                held = Held()
                future = pool.submit(_finish_held, held, stop, stop_at_failure, progress, index, stage, plan)
                waiting.append(_Finishing(index, future, held))
            collect(block=True)
        except BaseException:
            stop.set()
            for item in waiting:
                item.future.cancel()
            collect_rest()
            raise
    return [r for r in results if r is not None]


def _finish_held(
    held: Held,
    stop: threading.Event,
    stop_at_failure: bool,
    progress: Progress,
    index: int,
    stage: CargoStage,
    plan: Plan,
) -> TargetResult | ToolchainError | None:
    """The worker's part: verify and package one target with its log lines held."""
    if stop.is_set():
        return None
    with log.held(held):
        try:
            return finish_target(plan, stage, progress, index)
        except ToolchainError as exc:
            if stop_at_failure:
                stop.set()  # the targets queued behind this one are not started
            return exc


_warmed = threading.Event()
_warming: list[threading.Thread] = []


def warm_up_inspection(release_channels: bool = False) -> None:
    """Import LIEF on a thread while cargo compiles (the import takes about a
    second), and the release folder's channel writers and CycloneDX when it
    gets SBOMs (about 0.2 s more). Called when cargo starts compiling: a no-op
    cargo run, whose binary's inspection is cached, never pays for it."""
    if not _warmed.is_set():
        _warmed.set()
        thread = threading.Thread(target=_warm_up, args=(release_channels,), name="toolchain-warm-up")
        thread.start()
        _warming.append(thread)


def warmed_up() -> None:
    """Wait for the warm-up thread. The process waits for it at exit anyway; a build that ends
    without freeing its objects waits first, so that LIEF is whole when told to keep quiet."""
    for thread in _warming:
        thread.join()


def _warm_up(release_channels: bool) -> None:
    import importlib

    for module in AFTER_CARGO:
        importlib.import_module(module)
    from toolchain.verify.inspection import import_lief

    import_lief()
    if release_channels:
        from toolchain.release.channels import sbom, write  # noqa: F401

        sbom.import_libraries()


def _ask_plan(plan: Plan) -> None:
    """Fill the plan's cached answers (cargo's version, the archives' timestamp, the
    source's state); a failure here is left for whoever asks again to report."""
    try:
        plan.cargo_version  # noqa: B018 - a cached property, read to fill it
        if plan.options.package_artifacts:
            plan.source_epoch  # noqa: B018
            plan.source_state  # noqa: B018
    except (ToolchainError, OSError):
        pass


def _ask_ahead(plan: Plan, targets: list[Target]) -> None:
    """The SBOMs' dependency queries (one `cargo metadata` per triple), run while cargo compiles."""
    from toolchain.release.channels import crates

    build_table = plan.settings.build
    triples = [c for t in targets for c in (t.components or (t.triple,))]
    project = plan.project
    crates.prefetch(
        project.manifest_path,
        project.lockfile,
        triples,
        build_table.features,
        build_table.all_features,
        build_table.no_default_features,
    )


def cargo_stage(plan: Plan, target: Target) -> CargoStage:
    """Build one target with cargo (this thread; cargo uses every core)."""
    started = time.monotonic()
    started_on = datetime.now(UTC).isoformat(timespec="seconds")
    wall = time.time()
    project, settings = plan.project, plan.settings
    with cache.session(settings.cache, target.triple) as compile_cache:
        compiled = compile_target(
            project, plan.selections, target, plan.profile, settings, plan.options.force_profile, compile_cache.env
        )
    if settings.build.timings:
        from toolchain.report.cargo_timings import keep_cargo_timings

        keep_cargo_timings(project.target_directory, target.triple, wall, plan.out_dir)
    spent = time.monotonic() - started
    phases = (("prepare", compiled.prepare_seconds), ("cargo", spent - compiled.prepare_seconds))
    return CargoStage(target, compiled, started, started_on, phases, compile_cache.stats)


def finish_target(plan: Plan, stage: CargoStage, progress: Progress | None = None, index: int = 0) -> TargetResult:
    """Verify and package one built target."""
    target, compiled = stage.target, stage.compiled
    phases = list(stage.phases)
    if progress is not None:
        progress.update(index, "verifying")
    mark = time.monotonic()
    executables, splits = dict(compiled.executables), {}
    if compiled.split_debug:
        splits = split_debug_info(target, executables, compiled.strip_symbols)
        executables.update({name: split.stripped for name, split in splits.items()})
        phases.append(("split-debug", time.monotonic() - mark))
        mark = time.monotonic()
    binaries = check_binaries(plan, target, executables)
    phases.append(("verify", time.monotonic() - mark))
    if signs(target, plan.settings):
        mark = time.monotonic()
        binaries = sign_binaries(plan, target, binaries)
        phases.append(("sign", time.monotonic() - mark))
    binaries = [replace(b, debug=splits.get(b.name)) for b in binaries]
    artifacts: list[Artifact] = []
    symbols: list[Artifact] = []
    if plan.options.package_artifacts:
        if progress is not None:
            progress.update(index, "packaging")
        mark = time.monotonic()
        artifacts = package_target(plan, target, binaries)
        symbols = package_debug_info(plan, target, binaries)
        phases.append(("package", time.monotonic() - mark))
    entry = TargetEntry(
        target=target.triple,
        ok=True,
        seconds=time.monotonic() - stage.started,
        runner=compiled.runner,
        runner_reason=compiled.runner_reason,
        route=compiled.route.name,
        profile_source=compiled.profile_source,
        profile_settings=tuple(dict(s.__dict__) for s in compiled.profile_settings),
        toolchain=with_cargo(
            compiled.versions.result()
            if compiled.versions
            else toolchain_versions(compiled.route, plan.project.context),
            compiled.route,
            plan,
        ),
        allowed_rules=tuple(sorted({v.rule for b in binaries for v in b.verdicts if v.allowed})),
        started=stage.started_on,
        phases=tuple(phases),
        cache=stage.cache,
        binaries=tuple(b.entry() for b in binaries),
        artifacts=tuple(
            ArtifactEntry(a.package, a.path, a.sha256, a.size, a.checksum_path, a.members) for a in artifacts
        ),
        debug_artifacts=tuple(
            ArtifactEntry(a.package, a.path, a.sha256, a.size, a.checksum_path, a.members) for a in symbols
        ),
    )
    result = TargetResult(entry, tuple(binaries), tuple(artifacts), compiled.profile_settings)
    if progress is not None:
        progress.update(index, "done")
    return result


def signs(target: Target, settings: Settings) -> bool:
    """Whether the target's binaries get a platform signature after the policy checks."""
    if target.os == "windows":
        return settings.authenticode.configured
    return target.os == "macos" and settings.macos_signing.signs


def sign_binaries(plan: Plan, target: Target, binaries: list[BuiltBinary]) -> list[BuiltBinary]:
    """Sign copies of binaries that passed the policy (Authenticode on
    Windows, rcodesign on macOS), then hold the signed copies to it again,
    the `authenticode` or `macos-signature` rule included."""
    from toolchain.release import authenticode, codesign

    settings = plan.settings
    epoch = plan.source_epoch
    signed: dict[str, Path] = {}
    with log.group(f"sign {target.triple}"):
        if target.os == "windows":
            with authenticode.identity(settings.authenticode) as ident:
                assert ident is not None
                for binary in binaries:
                    destination = binary.path.parent / "authenticode" / binary.path.name
                    authenticode.sign_pe(binary.path, destination, ident, binary.package, epoch)
                    log.info(f"{binary.path.name}: signed by {ident.subject}")
                    signed[binary.name] = destination
            return check_binaries(plan, target, signed, signer=ident.signer_sha256)
        with codesign.identity(settings.macos_signing) as mac_ident:
            for binary in binaries:
                destination = binary.path.parent / "codesign" / binary.path.name
                codesign.sign_macho(binary.path, destination, settings.macos_signing, mac_ident, binary.name, epoch)
                log.info(f"{binary.path.name}: signed {mac_ident.subject if mac_ident else 'ad hoc'}")
                signed[binary.name] = destination
            expected = codesign.expectation(settings.macos_signing, mac_ident)
        return check_binaries(plan, target, signed, macos=expected)


def profile_in_use(plan: Plan) -> ProfileInUse:
    """The profile's effective `strip` and where it is set, as cargo resolves it."""
    profile, project = plan.profile, plan.project
    manifest = project.workspace_root / "Cargo.toml"
    define, _ = profile_is_defined_by_toolkit(profile, project, plan.options.force_profile)
    strip: Any = None
    if define:
        release = project.manifest_profiles.get("release", {})
        _, sources = effective_settings(profile, release, manifest, plan.options.force_profile)
        setting = next((s for s in sources if s.key == "strip"), None)
        strip, where = (setting.value, setting.source) if setting else (None, str(profile.source))
    else:
        name: str | None = profile.name
        where = f"[profile.{profile.name}] in {manifest}"
        for _ in range(len(project.manifest_profiles) + 1):  # follow `inherits`, which cargo forbids to loop
            table = project.manifest_profiles.get(name or "", {})
            if "strip" in table or name is None:
                strip = table.get("strip")
                break
            name = table.get("inherits")
    catalog = plan.settings.catalog
    stripping = sorted(
        p.name
        for p in catalog.profiles.values()
        if p.name != profile.name and dict(p.settings).get("strip") in STRIPS_SYMBOLS
    )
    default = plan.settings.build.profile
    alternative = default if default in stripping else next(iter(stripping), None)
    return ProfileInUse(profile.name, strip, where, alternative)


def check_binaries(
    plan: Plan,
    target: Target,
    executables: dict[str, Path],
    signer: str | None = None,
    macos: MacSignatureExpectation | None = None,
) -> list[BuiltBinary]:
    """Inspect each binary (cached by digest) and hold it to the target's policy."""
    from toolchain.verify.cache import inspect_cached
    from toolchain.verify.policy import evaluate, require

    cache_dir = plan.project.target_directory / ".toolchain"
    owner = {b: s.package for s in plan.selections for b in s.binaries}
    built = []
    allow = plan.options.allow
    policy = plan.settings.catalog.policy_for(target)
    machines = plan.settings.catalog.component_machines(target)
    profile = profile_in_use(plan)
    with log.group(f"verify {target.triple} ({policy.source.name})"):
        for name, path in sorted(executables.items()):
            digest = sha256_file(path)
            info = inspect_cached(path, digest, cache_dir)
            verdicts = evaluate(info, target, path, policy, allow, machines, signer, macos, profile)
            for verdict in verdicts:
                if not verdict.ok and (verdict.allowed or verdict.severity == "warn"):
                    why = "allowed with --allow" if verdict.allowed else "warning"
                    log.warn(f"{path.name}: rule '{verdict.rule}' ({why}): found {verdict.found}")
            require(verdicts, target, path, policy)
            log.info(
                f"{path.name}: {info.format} {'+'.join(info.architectures) or info.machine} {info.bits}-bit, "
                f"{'stripped' if info.stripped else 'not stripped'}, {info.size} bytes"
            )
            package = owner[name]
            built.append(BuiltBinary(package.name, package.version, name, path, digest, info, verdicts))
    return built


def archive_entries(
    selection: Selection, binaries: list[BuiltBinary], target: Target, project: Project, settings: Settings
) -> list[ArchiveEntry]:
    from toolchain.release.package import ArchiveEntry

    package = selection.package
    entries = [ArchiveEntry(b.path.name, b.path, executable=True) for b in binaries if b.package == package.name]
    docs: list[Path] = [*package.license_files]
    if package.readme:
        docs.append(package.readme)
    for root in (package.root, project.workspace_root):
        for name in EXTRA_DOC_NAMES:
            if (root / name).is_file():
                docs.append(root / name)
                break
        else:
            continue
        break
    for extra in settings.package.include:
        path = package.root / extra
        if not path.is_file():
            raise BuildError(f"include file {path} does not exist", hint="fix [package] include in toolchain.toml")
        docs.append(path)
    seen = {e.name for e in entries}
    for doc in docs:
        if doc.name not in seen and doc.is_file():
            entries.append(ArchiveEntry(doc.name, doc, executable=False))
            seen.add(doc.name)
    return entries


def check_members(selection: Selection, entries: list[ArchiveEntry], target: Target, archive: str) -> None:
    """An archive's executables are exactly its package's binaries as cargo reported them:
    never one missing, nor another package's."""
    expected = sorted(f"{b}{target.binary.exe_suffix}" for b in selection.binaries)
    members = sorted(e.name for e in entries if e.executable)
    if members != expected:
        raise PackagingError(
            f"{archive} would hold {', '.join(members) or 'no binary'}, "
            f"but cargo built {', '.join(expected)} for {selection.package.name}",
            hint="build one package at a time with --package (two packages may have binaries of one name)",
        )


def package_target(plan: Plan, target: Target, binaries: list[BuiltBinary]) -> list[Artifact]:
    from toolchain.release.package import archive_name, write_archive

    project = plan.project
    mtime = plan.source_epoch
    artifacts = []
    with log.group(f"package {target.triple}"):
        for selection in plan.selections:
            name = archive_name(selection.package.name, target.triple, target.archive.format)
            entries = archive_entries(selection, binaries, target, project, plan.settings)
            check_members(selection, entries, target, name)
            artifact = write_archive(selection.package.name, entries, plan.out_dir, name, mtime)
            log.info(f"{'unchanged' if artifact.reused else 'wrote'} {artifact.path} ({artifact.size} bytes)")
            artifacts.append(artifact)
    return artifacts


def split_debug_info(target: Target, executables: dict[str, Path], strip_symbols: bool) -> dict[str, SplitBinary]:
    """Each binary's debug info split off; the binaries that carry none are left as they are."""
    from toolchain.compile.debuginfo import split_binary

    splits = {}
    with log.group(f"split debug info {target.triple}"):
        for name, path in sorted(executables.items()):
            split = split_binary(path, strip_symbols)
            if split is None:
                log.info(f"{path.name}: no debug info to split")
                continue
            shown = f", build-id {split.build_id}" if split.build_id else ""
            log.info(f"{path.name}: debug info in {split.debug} ({split.kind}{shown})")
            splits[name] = split
    return splits


def package_debug_info(plan: Plan, target: Target, binaries: list[BuiltBinary]) -> list[Artifact]:
    """One debug archive per package whose binaries kept debug info, beside (never inside) its archive."""
    from toolchain.release.package import DEBUG_LEVEL, ArchiveEntry, debug_archive_name, write_archive

    artifacts = []
    for selection in plan.selections:
        entries = [
            ArchiveEntry(name, path, executable=False)
            for b in binaries
            if b.package == selection.package.name and b.debug is not None
            for name, path in b.debug.debug_files()
        ]
        if not entries:
            continue
        name = debug_archive_name(selection.package.name, target.triple, target.archive.format)
        artifact = write_archive(selection.package.name, entries, plan.out_dir, name, plan.source_epoch, DEBUG_LEVEL)
        log.info(f"{'unchanged' if artifact.reused else 'wrote'} {artifact.path} ({artifact.size} bytes)")
        artifacts.append(artifact)
    return artifacts


def with_cargo(versions: dict[str, str | None], route: Route, plan: Plan) -> dict[str, str | None]:
    """The versions with the build's one `cargo --version` (a route that names its own keeps it)."""
    return versions if route.versions or "cargo" in versions else {"cargo": plan.cargo_version, **versions}


def write_record(
    out_dir: Path, project: Project, profile: Profile, results: list[TargetResult], settings: Settings | None = None
) -> Path:
    """Merge this build's targets into the output folder's record (atomically).
    Entries of another project's build are dropped: a folder is one project's release."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    lock_digest = sha256_file(project.lockfile) if project.lockfile.is_file() else None
    entries = [
        replace(
            result.entry,
            finished=now,
            profile=profile.name,
            manifest_path=project.manifest_path,
            cargo_lock_sha256=lock_digest,
            features=settings.build.features if settings else (),
            all_features=settings.build.all_features if settings else False,
            no_default_features=settings.build.no_default_features if settings else False,
        )
        for result in results
        if result.ok
    ]
    previous = load_record_or_empty(out_dir)
    foreign = sorted(t for t, e in previous.targets.items() if e.manifest_path != project.manifest_path)
    if foreign:
        log.warn(f"{out_dir} held a build of another project ({', '.join(foreign)}): dropped from its record")
    kept = BuildRecord({t: e for t, e in previous.targets.items() if t not in foreign})
    return save_record(out_dir, kept.merged(entries))
