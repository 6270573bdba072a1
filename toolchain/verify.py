"""Does a built binary fit its target? Pure checks over BinaryInfo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import VerificationError
from toolchain.inspection import BinaryInfo
from toolchain.targets import Target, all_targets


@dataclass(frozen=True)
class Verdict:
    rule: str
    ok: bool
    found: str
    expected: str


def target_verdicts(info: BinaryInfo, target: Target, path: Path) -> tuple[Verdict, ...]:
    """Format, machine, word size, byte order and file suffix against the triple."""
    expected = target.binary
    machines = info.architectures or (info.machine,)
    if target.components:
        # A universal binary holds exactly one slice per component target.
        wanted = sorted(all_targets()[c].binary.machine for c in target.components)
        machine_ok, expected_machine = sorted(machines) == wanted, ",".join(wanted)
    else:
        machine_ok, expected_machine = all(m == expected.machine for m in machines), expected.machine
    return (
        Verdict("format", info.format == expected.format, info.format, expected.format),
        Verdict("machine", machine_ok, ",".join(machines), expected_machine),
        Verdict("bits", info.bits == expected.bits, str(info.bits), str(expected.bits)),
        Verdict("endianness", info.endianness == expected.endianness, info.endianness, expected.endianness),
        Verdict(
            "exe-suffix",
            path.name.endswith(expected.exe_suffix) if expected.exe_suffix else "." not in path.name,
            path.suffix or "(none)",
            expected.exe_suffix or "(none)",
        ),
    )


def require_target_match(info: BinaryInfo, target: Target, path: Path) -> tuple[Verdict, ...]:
    verdicts = target_verdicts(info, target, path)
    for verdict in verdicts:
        if not verdict.ok:
            raise VerificationError(
                f"{path.name} does not match {target.triple}: {verdict.rule} is {verdict.found}, "
                f"expected {verdict.expected} ({target.source.name})",
                hint="check the runner and --target; nothing was packaged",
            )
    return verdicts
