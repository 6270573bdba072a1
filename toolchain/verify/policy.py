"""Verification policy: rules from policies/*.toml (one per OS, like
auditwheel's manylinux policies) applied to an inspected binary."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolchain.config.policies import RULES, AllowedLibraries, Policy, listed_libraries
from toolchain.config.schema import did_you_mean
from toolchain.config.targets import Target
from toolchain.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from toolchain.verify.inspection import BinaryInfo


@dataclass(frozen=True)
class MacSignatureExpectation:
    """What the `macos-signature` rule holds every slice to, from [sign] macos-*."""

    signer_sha256: str  # the Developer ID certificate's SHA-256; "" for ad hoc
    hardened_runtime: bool

    def describe(self) -> str:
        kind = f"Developer ID (certificate SHA-256 {self.signer_sha256[:16]}...)" if self.signer_sha256 else "ad hoc"
        return f"{kind}{', hardened runtime' if self.hardened_runtime else ''}, valid on every slice"


STRIPS_SYMBOLS = ("symbols", True)  # cargo's `strip` values that drop the symbol table


@dataclass(frozen=True)
class ProfileInUse:
    """The cargo profile a binary was built with, for the `stripped` rule's advice."""

    name: str
    strip: Any  # its effective `strip` value (None: not set, cargo's default)
    where: str  # where that value is set, or where to set it
    alternative: str | None = None  # another known profile that strips symbols

    def strip_fix(self) -> str:
        if self.strip in STRIPS_SYMBOLS:
            # rustc already stripped: what is left came from somewhere else.
            return (
                f"the {self.name} profile already strips (strip = {_spelled(self.strip)} in {self.where}); "
                "what is left was added after rustc (a link-arg such as -g, or a step that rewrote the binary): "
                "remove that"
            )
        fix = f'set strip = "symbols" for the {self.name} profile ({self.where})'
        return fix + (f", or build with --profile {self.alternative}" if self.alternative else "")


def _spelled(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f'"{value}"'


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    ok: bool
    severity: str
    found: str
    expected: str
    fix: str
    allowed: bool = False  # failed, but overridden with --allow

    @property
    def blocking(self) -> bool:
        return not self.ok and self.severity == "error" and not self.allowed


def _unexpected_libraries(info: BinaryInfo, rules: AllowedLibraries) -> list[str]:
    pe = info.format == "pe"  # DLL names are not case-sensitive; inspection lower-cases them
    known = frozenset().union(*(listed_libraries(name) for name in rules.lists))
    patterns = rules.system + rules.allowed
    libraries = info.imports if pe else info.needed_libraries
    unexpected = []
    for library in libraries:
        name = _resolved(library)
        if name in known or any(fnmatch.fnmatchcase(name.lower() if pe else name, p) for p in patterns):
            continue
        unexpected.append(library)
    return unexpected


def _resolved(library: str) -> str:
    """A load command's path as the loader resolves it: no `..` way out of /usr/lib."""
    return posixpath.normpath(library) if library.startswith("/") else library


def _libraries_fix(unexpected: list[str], rules: AllowedLibraries, source: Path) -> str:
    own = f"add it to [libraries] allowed in your project's policies/{source.name}"
    for pattern, hint in rules.hints.items():
        if any(fnmatch.fnmatchcase(_resolved(library), pattern) for library in unexpected):
            return f"{hint}; if you ship it with the program, {own}"
    return f"link it statically or drop the dependency (a user's machine does not have it); if you ship it, {own}"


def check_allow(rules: tuple[str, ...]) -> None:
    for rule in rules:
        if rule not in RULES:
            raise UsageError(f"unknown rule '{rule}' for --allow; {did_you_mean(rule, RULES)}")


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")) if text else ()


def _machine_verdict(info: BinaryInfo, target: Target, component_machines: tuple[str, ...]) -> tuple[bool, str, str]:
    machines = info.architectures or (info.machine,)
    if target.components:
        wanted = sorted(component_machines)
        return sorted(machines) == wanted, ",".join(machines), ",".join(wanted)
    return all(m == target.binary.machine for m in machines), ",".join(machines), target.binary.machine


def _findings(
    info: BinaryInfo,
    target: Target,
    path: Path,
    policy: Policy,
    component_machines: tuple[str, ...],
    signer: str | None = None,
    macos: MacSignatureExpectation | None = None,
    profile: ProfileInUse | None = None,
) -> dict[str, tuple[bool, str, str, str]]:
    """rule -> (ok, found, expected, fix) for every rule that applies to this format.

    signer: the SHA-256 of the configured Authenticode certificate; the
    `authenticode` rule applies only when one is configured. profile: the
    profile the binary was built with (None when it is not known, e.g. `inspect`)."""
    expected = target.binary
    where = target.source.name
    machine_ok, machine_found, machine_expected = _machine_verdict(info, target, component_machines)
    retarget = f"check --target and the runner ({where})"
    suffix_ok = path.name.endswith(expected.exe_suffix) if expected.exe_suffix else "." not in path.name
    found: dict[str, tuple[bool, str, str, str]] = {
        "format": (info.format == expected.format, info.format, expected.format, retarget),
        "machine": (machine_ok, machine_found, machine_expected, retarget),
        "bits": (info.bits == expected.bits, str(info.bits), str(expected.bits), retarget),
        "endianness": (info.endianness == expected.endianness, info.endianness, expected.endianness, retarget),
        "exe-suffix": (suffix_ok, path.suffix or "(none)", expected.exe_suffix or "(none)", retarget),
        "stripped": (
            info.stripped,
            "stripped" if info.stripped else "left: " + ", ".join(info.leftover_symbols),
            "no symbol table or unmapped debug sections",
            profile.strip_fix() if profile else 'build with a profile that strips (strip = "symbols")',
        ),
    }
    unexpected = _unexpected_libraries(info, policy.libraries)
    found["libraries"] = (
        not unexpected,
        ", ".join(unexpected) if unexpected else "only system libraries",
        f"only libraries every {target.os} system has",
        _libraries_fix(unexpected, policy.libraries, policy.source) if unexpected else "",
    )
    if info.format == "elf":
        floor = target.compat.glibc
        need = info.glibc_required
        found["glibc-floor"] = (
            not floor or _version(need) <= _version(floor),
            f"GLIBC_{need}" if need else "no versioned glibc symbols",
            f"at most GLIBC_{floor}",
            f"build with --runner zig (it pins glibc {floor}) or raise [compat] glibc in {where}",
        )
        found["pie"] = (bool(info.pie), "PIE" if info.pie else "not PIE", "PIE", "link with -pie (Rust's default)")
        found["nx"] = (bool(info.nx), "NX stack" if info.nx else "executable stack", "NX", "drop -z execstack")
        found["relro"] = (info.relro == "full", f"{info.relro} RELRO", "full RELRO", "link with -z relro -z now")
        found["stack-protector"] = (
            bool(info.stack_protector),
            "stack protector" if info.stack_protector else "no stack protector",
            "__stack_chk_fail imported",
            "build with -Z stack-protector=strong (nightly)",
        )
    if info.format == "macho":
        minimum = target.compat.macos
        slices = info.slices or ()
        too_new = [f"{s.machine} {s.macos_min}" for s in slices if _version(s.macos_min) > _version(minimum)]
        found["macos-min"] = (
            not too_new and all(s.macos_min for s in slices) and bool(slices),
            ", ".join(too_new) or ", ".join(f"{s.machine} {s.macos_min or 'no minimum recorded'}" for s in slices),
            f"at most {minimum}",
            f"set MACOSX_DEPLOYMENT_TARGET={minimum} (the zig runner does) or raise [compat] macos in {where}",
        )
        unsigned = [s.machine for s in slices if s.machine == "aarch64" and not s.code_signature]
        broken = [f"{s.machine}: {s.signature.status}" for s in slices if s.signature and s.signature.status != "OK"]
        found["code-signature"] = (
            not unsigned and not broken,
            "; ".join([f"unsigned {', '.join(unsigned)} slice"] * bool(unsigned) + broken) or "arm64 slices signed",
            "a valid code signature on every arm64 slice",
            "rebuild it, or sign it (`rcodesign sign`; the zig runner signs arm64 ad hoc)",
        )
        if macos is not None:
            found["macos-signature"] = _macos_signature_finding(slices, macos)
        found["pie"] = (bool(info.pie), "PIE" if info.pie else "not PIE", "PIE", "link with -pie")
        found["nx"] = (bool(info.nx), "NX" if info.nx else "no NX", "NX", "link without -allow_stack_execute")
    if info.format == "pe":
        found["subsystem"] = (
            info.subsystem == policy.windows.subsystem,
            str(info.subsystem),
            str(policy.windows.subsystem),
            'build a console program (remove #![windows_subsystem = "windows"])',
        )
        found["nx"] = (bool(info.nx), "NX_COMPAT" if info.nx else "no NX_COMPAT", "NX_COMPAT", "link with --nxcompat")
        found["aslr"] = (
            bool(info.aslr),
            "DYNAMIC_BASE" if info.aslr else "no ASLR",
            "DYNAMIC_BASE",
            "link with --dynamicbase",
        )
        found["high-entropy-va"] = (
            bool(info.high_entropy_va),
            "HIGH_ENTROPY_VA" if info.high_entropy_va else "no HIGH_ENTROPY_VA",
            "HIGH_ENTROPY_VA",
            "link with --high-entropy-va",
        )
        if signer is not None:
            found["authenticode"] = _authenticode_finding(info, signer)
    return found


def _macos_signature_finding(slices: Any, expected: MacSignatureExpectation) -> tuple[bool, str, str, str]:
    problems = []
    for piece in slices:
        signature = piece.signature
        if signature is None:
            problems.append(f"{piece.machine}: unsigned")
            continue
        if signature.status != "OK":
            problems.append(f"{piece.machine}: {signature.status}")
        if expected.signer_sha256 and signature.signer_sha256 != expected.signer_sha256:
            by = signature.signer_subject or "ad hoc"
            problems.append(f"{piece.machine}: signed by {by}, not the configured identity")
        if not expected.signer_sha256 and signature.kind != "adhoc":
            problems.append(f"{piece.machine}: {signature.kind} signature, not ad hoc")
        if expected.hardened_runtime and not signature.hardened_runtime:
            problems.append(f"{piece.machine}: no hardened runtime")
    if problems:
        return (False, "; ".join(problems), expected.describe(), "sign it again: [sign] macos-* and a rebuild")
    first = slices[0].signature
    found = f"signed by {first.signer_subject}" if first.signer_subject else "ad hoc"
    return (True, found + (", hardened runtime" if expected.hardened_runtime else ""), expected.describe(), "")


def _authenticode_finding(info: BinaryInfo, signer: str) -> tuple[bool, str, str, str]:
    expected = f"a valid signature by the configured certificate (SHA-256 {signer[:16]}...)"
    signature = info.authenticode
    if signature is None:
        return (False, "no Authenticode signature", expected, "sign it: set [sign] authenticode-cert and rebuild")
    if signature.status != "OK":
        return (
            False,
            f"a signature that does not match the bytes ({signature.status})",
            expected,
            "the file changed after signing: rebuild it from the release, never patch a signed file",
        )
    if signature.signer_sha256 != signer:
        return (
            False,
            f"signed by {signature.signer_subject} (SHA-256 {signature.signer_sha256[:16]}...)",
            expected,
            "sign with the certificate set in [sign] authenticode-cert",
        )
    return (True, f"signed by {signature.signer_subject}", expected, "")


def evaluate(
    info: BinaryInfo,
    target: Target,
    path: Path,
    policy: Policy,
    allow: tuple[str, ...] = (),
    component_machines: tuple[str, ...] = (),
    signer: str | None = None,
    macos: MacSignatureExpectation | None = None,
    profile: ProfileInUse | None = None,
) -> tuple[RuleVerdict, ...]:
    """Every rule of the target's policy that applies to this binary's format.

    signer / macos: what the `authenticode` / `macos-signature` rules expect;
    each applies only when its signing is configured. profile: what the
    binary was built with, so a refusal's advice fits it."""
    verdicts = []
    findings = _findings(info, target, path, policy, component_machines, signer, macos, profile)
    for rule, (ok, found, expected, fix) in findings.items():
        severity = policy.rules.get(rule)
        if severity is None:
            continue
        verdicts.append(RuleVerdict(rule, ok, severity, found, expected, fix, allowed=not ok and rule in allow))
    return tuple(verdicts)


def require(verdicts: tuple[RuleVerdict, ...], target: Target, path: Path, policy: Policy) -> None:
    """Fail on the first blocking verdict, naming policy, rule, finding and fix."""
    for verdict in verdicts:
        if verdict.blocking:
            raise VerificationError(
                f"{path.name} ({target.triple}) breaks rule '{verdict.rule}' of {policy.source}: "
                f"found {verdict.found}, expected {verdict.expected}",
                hint=f"{verdict.fix}; or pass --allow {verdict.rule}; nothing was packaged",
            )


def verdicts_to_dicts(verdicts: tuple[RuleVerdict, ...]) -> list[dict[str, Any]]:
    return [v.__dict__ for v in verdicts]
