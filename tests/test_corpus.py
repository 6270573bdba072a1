"""Real crates from the registry (tests/corpus: clap derive + serde, a C build
script through the cc crate, a workspace with a feature turned on through
the toolkit), each built by the toolkit for every release target this host
can build (windows-gnu in place of windows-msvc), verified by policy,
packaged, and run where this machine can run it: natively, under qemu and
under wine. macOS binaries are checked statically.

All crates share one target folder, so std built from source for a target
is built once for the whole corpus. The fast profile is used: nothing here
measures size."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import on_ci, run_invoke

from toolchain import REPO_ROOT, proc
from toolchain.config.catalog import load_catalog
from toolchain.pipeline.targets import BuildOptions, BuildReport, TargetResult, build
from toolchain.verify.inspection import inspect_binary
from toolchain.verify.smoke import smoke_binary

pytestmark = pytest.mark.slow

CORPUS = REPO_ROOT / "tests" / "corpus"
ON_LINUX = (
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-gnu",
)


@dataclass(frozen=True)
class Case:
    folder: str
    features: tuple[str, ...]
    checks: dict[str, tuple[list[str], str]]  # binary -> (arguments, expected stdout)


CASES = {
    "cli": Case("cli", (), {"corpus-cli": (["sum", "1", "2", "3", "--json"], '{"sum":6}')}),
    "zstd": Case("zstd", (), {"corpus-zstd": (["selftest"], "ok ")}),
    # C++ through cc-rs: zig's libc++ (Linux, macOS), mingw's libstdc++ linked into the exe (windows-gnu)
    "cpp": Case("cpp", (), {"corpus-cpp": (["selftest"], "ok apple,fig,pear")}),
    "workspace": Case(
        "workspace",
        ("corpus-alpha/loud",),
        {"corpus-alpha": ([], "HELLO FROM ALPHA"), "corpus-beta": ([], "hello from beta")},
    ),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS, root / "crates", ignore=shutil.ignore_patterns("target"))
    return root


@pytest.fixture(scope="module")
def reports(corpus: Path) -> dict[str, BuildReport]:
    built = {}
    table = []
    for name, case in CASES.items():
        started = time.monotonic()
        built[name] = build(
            BuildOptions(
                all_targets=True,
                manifest_path=corpus / "crates" / case.folder / "Cargo.toml",
                profile="fast",
                features=case.features,
                keep_going=True,
                out_dir=corpus / f"dist-{name}",
            )
        )
        table.append({"crate": name, "seconds": round(time.monotonic() - started, 1)})
        for result in built[name].results:
            table.append(
                {"crate": name, "target": result.triple, "ok": result.ok, "seconds": round(result.entry.seconds, 1)}
            )
    print(json.dumps(table, indent=1))  # the README's corpus table is made from this
    return built


def result_for(report: BuildReport, triple: str) -> TargetResult:
    return next(r for r in report.results if r.triple == triple)


@pytest.mark.parametrize("triple", ON_LINUX)
@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_crate_on_target(reports: dict[str, BuildReport], name: str, triple: str) -> None:
    case = CASES[name]
    result = result_for(reports[name], triple)
    assert result.ok, result.entry.error
    target = load_catalog().target(triple)
    assert {b.name for b in result.binaries} == set(case.checks)
    for binary in result.binaries:
        assert binary.info.format == target.binary.format and binary.info.machine == target.binary.machine
        assert not [v for v in binary.verdicts if v.blocking]
    assert len(result.artifacts) == len({b.package for b in result.binaries})
    for artifact in result.artifacts:
        assert artifact.path.is_file() and artifact.path.name.endswith(target.archive.format)
    for binary in result.binaries:
        arguments, expected = case.checks[binary.name]
        smoke = smoke_binary(target, binary.path, binary.version, [arguments])
        if target.os == "macos":
            assert not smoke.ran  # no way to run a Mach-O here: checked statically above
            continue
        assert smoke.ok, smoke
        assert expected in smoke.checks[-1].output, smoke


def test_the_feature_reached_only_the_package_that_has_it(reports: dict[str, BuildReport]) -> None:
    # `--features corpus-alpha/loud` is checked above (upper case); beta, built in the same run, is unaffected.
    result = result_for(reports["workspace"], "x86_64-unknown-linux-gnu")
    assert {a.package for a in result.artifacts} == {"corpus-alpha", "corpus-beta"}


def test_release_binaries_carry_no_build_machine_path(reports: dict[str, BuildReport], corpus: Path) -> None:
    cargo_home = str(Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo"))
    leaks = []
    for report in reports.values():
        for result in report.results:
            for binary in result.binaries:
                data = binary.path.read_bytes()
                for prefix in (cargo_home, str(corpus), "/usr/lib/rustlib/src", str(Path.home())):
                    if prefix.encode() in data:
                        leaks.append(f"{binary.path.name} ({result.triple}) holds {prefix}")
    assert not leaks


def test_framework_crate_without_sdk_stops_before_cargo(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDKROOT", raising=False)
    manifest = corpus / "crates" / "macos-framework" / "Cargo.toml"
    result = run_invoke(
        "build", "--manifest-path", str(manifest), "--target", "x86_64-apple-darwin", "--out-dir", str(corpus / "fw")
    )
    assert result.returncode == 5, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "corpus-macos-fw -> core-foundation -> core-foundation-sys: links CoreFoundation" in line
    assert "SDKROOT" in line
    assert "Compiling" not in result.stderr and "cargo-zigbuild" not in result.stderr


# A stand-in for the part of Apple's SDK this crate links: a text stub
# (.tbd) of CoreFoundation with the symbols core-foundation uses. Real SDKs
# ship the same kind of stubs; zig's linker reads them.
CORE_FOUNDATION_STUB = """--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation'
current-version: 1.0
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ _CFRelease, _CFRetain, _CFStringCreateWithBytes, _CFStringGetBytes,
                       _CFStringGetCStringPtr, _CFStringGetLength, _kCFAllocatorDefault ]
...
"""


def test_framework_crate_with_sdkroot_links_against_that_sdk(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = tmp_path / "MacOSX.sdk"
    framework = sdk / "System" / "Library" / "Frameworks" / "CoreFoundation.framework"
    framework.mkdir(parents=True)
    (framework / "CoreFoundation.tbd").write_text(CORE_FOUNDATION_STUB)
    monkeypatch.setenv("SDKROOT", str(sdk))
    report = build(
        BuildOptions(
            targets=("x86_64-apple-darwin",),
            manifest_path=corpus / "crates" / "macos-framework" / "Cargo.toml",
            profile="fast",
            out_dir=tmp_path / "dist",
        )
    )
    (result,) = report.results
    assert result.ok, result.entry.error
    (binary,) = result.binaries
    assert any("CoreFoundation.framework" in name for name in binary.info.needed_libraries), binary.info


# A stand-in for the part of Apple's SDK that objc2 (ctrlc -> dispatch2 -> objc2) links:
# text stubs (.tbd) of libobjc and of the Foundation framework, where an SDK keeps them.
# No Apple SDK is reachable here; zig's linker reads .tbd stubs as it does a real SDK's.
OBJC_STUB = """--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/usr/lib/libobjc.A.dylib'
current-version: 228
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ _objc_msgSend ]
...
"""
FOUNDATION_STUB = """--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/System/Library/Frameworks/Foundation.framework/Versions/C/Foundation'
current-version: 1.0
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ _NSLog ]
...
"""


def test_ctrlc_with_sdkroot_links_libobjc_and_foundation(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lief

    sdk = tmp_path / "MacOSX.sdk"
    (sdk / "usr" / "lib").mkdir(parents=True)
    (sdk / "usr" / "lib" / "libobjc.tbd").write_text(OBJC_STUB)
    framework = sdk / "System" / "Library" / "Frameworks" / "Foundation.framework"
    framework.mkdir(parents=True)
    (framework / "Foundation.tbd").write_text(FOUNDATION_STUB)
    monkeypatch.setenv("SDKROOT", str(sdk))
    report = build(
        BuildOptions(
            targets=("x86_64-apple-darwin",),
            manifest_path=corpus / "crates" / "ctrlc" / "Cargo.toml",
            profile="fast",
            out_dir=tmp_path / "dist",
        )
    )
    (result,) = report.results
    assert result.ok, result.entry.error
    (binary,) = result.binaries
    fat = lief.MachO.parse(str(binary.path))
    assert fat is not None
    macho = fat.at(0)
    assert macho is not None
    loaded = {
        command.name
        for command in macho.commands
        if command.command == lief.MachO.LoadCommand.TYPE.LOAD_DYLIB and isinstance(command, lief.MachO.DylibCommand)
    }
    assert "/usr/lib/libobjc.A.dylib" in loaded, loaded
    assert any("/Foundation.framework/" in name for name in loaded), loaded


def test_vendored_crate_builds_std_from_source_with_the_network_off(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An air-gapped release machine: the project is vendored (`cargo vendor`,
    # done here while the registry is reachable) and cargo may not use the
    # network. std's crates and the project's come from one merged folder.
    crate = tmp_path / "zstd"
    shutil.copytree(corpus / "crates" / "zstd", crate)
    vendored = proc.run(["cargo", "vendor", "--locked", "--manifest-path", crate / "Cargo.toml", crate / "vendor"])
    (crate / ".cargo").mkdir()
    (crate / ".cargo" / "config.toml").write_text(vendored.stdout)
    assert 'directory = "' in vendored.stdout
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    # Its own target folder: std's crates from another source are another std
    # build, which would otherwise replace the shared one for this target.
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    report = build(
        BuildOptions(
            targets=("x86_64-pc-windows-gnu",),
            manifest_path=crate / "Cargo.toml",
            profile="fast",
            out_dir=tmp_path / "dist",
        )
    )
    (result,) = report.results
    assert result.ok and result.entry.route == "build-std"
    assert "merged" in result.entry.toolchain["route_detail"]  # type: ignore[operator]
    merged = Path(os.environ["CARGO_TARGET_DIR"]) / ".toolchain" / "merged-source"
    names = {p.name for p in merged.iterdir()}
    assert any(n.startswith("std-") for n in names) and any(n.startswith("app-zstd-sys") for n in names)
    (binary,) = result.binaries
    smoke = smoke_binary(load_catalog().target("x86_64-pc-windows-gnu"), binary.path, binary.version, [["selftest"]])
    assert smoke.ok, smoke


def test_two_machines_build_the_same_archive_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two "machines": the crate checked out at two paths, each with its own
    # cargo home (registry sources at different places) and target folder.
    archives = []
    for machine in ("first", "second-machine"):
        root = tmp_path / machine / "checkout" / "corpus-cli"
        shutil.copytree(CORPUS / "cli", root, ignore=shutil.ignore_patterns("target"))
        monkeypatch.setenv("CARGO_HOME", str(tmp_path / machine / "cargo-home"))
        monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / machine / "target"))
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        monkeypatch.setenv("RUSTUP_HOME", os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")))
        report = build(
            BuildOptions(
                targets=("x86_64-unknown-linux-gnu",),
                manifest_path=root / "Cargo.toml",
                profile="fast",
                out_dir=tmp_path / machine / "dist",
            )
        )
        (result,) = report.results
        (artifact,) = result.artifacts
        binary = result.binaries[0].path.read_bytes()
        for prefix in (str(tmp_path / machine), str(Path.home())):
            assert prefix.encode() not in binary, f"{prefix} is in the binary"
        archives.append(artifact.path.read_bytes())
    assert archives[0] == archives[1]


def test_a_sys_crate_that_asks_pkg_config_builds_its_own_c_for_a_zig_target(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libz-sys 1.1.12 asks pkg-config first. For the host's own triple pkg-config answers with
    # this machine's zlib (/usr/include, /usr/lib), which a zig build cannot use: zig compiles
    # and links against its own sysroot (glibc 2.17). git-delta 0.20.1 failed so ('zlib.h' file
    # not found, then `unable to find dynamic system library "z"`). Built like every other
    # target here (no pkg-config answer), libz-sys compiles its bundled zlib.
    if proc.output(["pkg-config", "--exists", "zlib"]) is None:
        assert not on_ci(), "setup installs zlib1g-dev: its zlib.pc is what this test needs"
        pytest.skip("needs the machine's zlib.pc (zlib1g-dev), the answer that misleads the zig build")
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    host = "x86_64-unknown-linux-gnu"
    report = build(
        BuildOptions(
            targets=(host,), manifest_path=corpus / "crates" / "zlib" / "Cargo.toml", profile="fast", out_dir=tmp_path
        )
    )
    (result,) = report.results
    assert result.ok and result.entry.runner == "zig", result
    (binary,) = result.binaries
    assert not [lib for lib in inspect_binary(binary.path).needed_libraries if lib.startswith("libz.")]
    smoke = smoke_binary(load_catalog().target(host), binary.path, "zlib 1.", [[]])
    assert smoke.ok, smoke
