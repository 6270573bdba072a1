"""Verification policy: every rule made to fail by a real binary built here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_crate, run_invoke

from toolchain.config.catalog import load_catalog, packaged
from toolchain.config.policies import RULES, listed_libraries, load_policy_file
from toolchain.errors import ConfigError, UsageError, VerificationError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.verify.inspection import crate_of_symbol, inspect_binary
from toolchain.verify.policy import ProfileInUse, evaluate, require

LINUX = load_catalog().target("x86_64-unknown-linux-gnu")
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


def cc(tmp_path: Path, name: str, *args: str, source: str = HELLO_C, compiler: str = "gcc") -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run([compiler, "-o", out, src, *args], check=True, capture_output=True)
    return out


def failing(path: Path, triple: str, allow: tuple[str, ...] = ()) -> dict[str, str]:
    target = load_catalog().target(triple)
    policy = load_catalog().policy_for(target)
    return {v.rule: v.found for v in evaluate(inspect_binary(path), target, path, policy, allow) if not v.ok}


@pytest.mark.parametrize("path", sorted(packaged("policies").glob("*.toml")), ids=lambda p: p.name)
def test_every_policy_file_is_valid(path: Path) -> None:
    policy = load_policy_file(path)
    assert set(policy.rules) <= set(RULES)
    assert {"format", "machine", "stripped", "libraries"} <= set(policy.rules)


def test_the_release_build_passes_every_error_rule(demo_build: BuildReport) -> None:
    binary = demo_build.results[0].binaries[0]
    assert not [v for v in binary.verdicts if v.blocking]
    rules = {v.rule for v in binary.verdicts}
    assert {"glibc-floor", "stripped", "libraries", "pie", "nx", "relro", "stack-protector"} <= rules


def test_inspect_json_has_every_rules_verdict(demo_build: BuildReport) -> None:
    path = demo_build.results[0].binaries[0].path
    result = run_invoke("inspect", "--path", str(path), "--target", "x86_64-unknown-linux-gnu", "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["binaries"]
    assert entry["policy"] == "linux.toml"
    verdicts = {v["rule"]: v for v in entry["verdicts"]}
    assert verdicts["glibc-floor"]["ok"] and verdicts["glibc-floor"]["severity"] == "error"
    assert verdicts["stack-protector"]["severity"] == "report"


def test_unstripped_binary_says_what_is_left(tmp_path: Path) -> None:
    found = failing(cc(tmp_path, "debug", "-g"), LINUX.triple)
    assert "stripped" in found and ".symtab" in found["stripped"] and ".debug_info" in found["stripped"]


def test_newer_glibc_than_the_floor(tmp_path: Path) -> None:
    # Debian 12's gcc links __libc_start_main@GLIBC_2.34: far above 2.17.
    binary = cc(tmp_path, "newglibc", "-s")
    found = failing(binary, LINUX.triple)
    assert found["glibc-floor"] == "GLIBC_2.34"
    target = load_catalog().target(LINUX.triple)
    with pytest.raises(VerificationError) as caught:
        policy = load_catalog().policy_for(target)
        require(evaluate(inspect_binary(binary), target, binary, policy), target, binary, policy)
    message = str(caught.value)
    policy_file = packaged("policies", "linux.toml")
    assert f"breaks rule 'glibc-floor' of {policy_file}: found GLIBC_2.34, expected at most GLIBC_2.17" in message
    assert "--runner zig" in message


def test_wrong_architecture(tmp_path: Path) -> None:
    binary = cc(tmp_path, "arm", "-s", compiler="aarch64-linux-gnu-gcc")
    assert failing(binary, LINUX.triple)["machine"] == "aarch64"
    assert "machine" not in failing(binary, "aarch64-unknown-linux-gnu")


def test_unexpected_library(tmp_path: Path) -> None:
    lib = tmp_path / "libextra.so"
    (tmp_path / "extra.c").write_text("int extra(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", lib, tmp_path / "extra.c"], check=True)
    source = "int extra(void);\nint main(void) { return extra(); }\n"
    binary = cc(tmp_path, "linked", "-s", f"-L{tmp_path}", "-lextra", source=source)
    assert failing(binary, LINUX.triple)["libraries"] == "libextra.so"


def test_executable_stack_and_partial_relro(tmp_path: Path) -> None:
    binary = cc(tmp_path, "weak", "-s", "-z", "execstack", "-z", "norelro", "-no-pie")
    found = failing(binary, LINUX.triple)
    assert found["nx"] == "executable stack" and found["pie"] == "not PIE" and found["relro"] == "none RELRO"


def zig_cc(tmp_path: Path, name: str, target: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text("int main(void) { return 0; }\n")
    out = tmp_path / name
    command = [sys.executable, "-m", "ziglang", "cc", "-target", target, "-s", "-o", str(out), str(src)]
    subprocess.run(command, check=True, capture_output=True)
    return out


def test_macos_minimum_too_new(tmp_path: Path) -> None:
    binary = zig_cc(tmp_path, "mac13", "x86_64-macos.13.0")
    assert failing(binary, "x86_64-apple-darwin")["macos-min"] == "x86_64 13.0"
    assert "macos-min" not in failing(zig_cc(tmp_path, "mac1012", "x86_64-macos.10.12"), "x86_64-apple-darwin")


def test_arm64_macho_without_a_signature(tmp_path: Path) -> None:
    signed = zig_cc(tmp_path, "arm", "aarch64-macos.11.0")
    assert "code-signature" not in failing(signed, "aarch64-apple-darwin")
    # Remove the signature (tests may use LIEF directly to make a bad input).
    import lief

    fat = lief.MachO.parse(str(signed))
    assert fat is not None
    binary = fat.at(0)
    assert binary is not None
    binary.remove_signature()
    unsigned = tmp_path / "arm-unsigned"
    binary.write(str(unsigned))
    assert failing(unsigned, "aarch64-apple-darwin")["code-signature"] == "unsigned aarch64 slice"


def test_windows_gui_subsystem_and_unexpected_dll(tmp_path: Path) -> None:
    source = '#include <windows.h>\nint main(void) { MessageBoxA(0, "x", "y", 0); return 0; }\n'
    gui = tmp_path / "gui.exe"
    (tmp_path / "gui.c").write_text(source)
    subprocess.run(["x86_64-w64-mingw32-gcc", "-s", "-mwindows", "-o", gui, tmp_path / "gui.c"], check=True)
    found = failing(gui, "x86_64-pc-windows-gnu")
    assert found["subsystem"] == "windows_gui"
    assert "libraries" not in found, "user32.dll ships with Windows"


def test_allow_overrides_one_rule_and_is_recorded(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "c", "nativeglibc")
    options = BuildOptions(manifest_path=manifest, runner="native", out_dir=tmp_path / "out")
    with pytest.raises(VerificationError, match="breaks rule 'glibc-floor'"):
        build(options)
    assert not list((tmp_path / "out").glob("*.tar.xz")), "nothing is packaged after a violation"
    report = build(
        BuildOptions(manifest_path=manifest, runner="native", out_dir=tmp_path / "out", allow=("glibc-floor",))
    )
    assert report.results[0].entry.allowed_rules == ("glibc-floor",)
    record = json.loads((tmp_path / "out" / "build-record.json").read_text())
    assert record["targets"]["x86_64-unknown-linux-gnu"]["allowed_rules"] == ["glibc-floor"]


def test_violation_on_the_command_line_is_one_line_exit_7(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "c", "cliglibc")
    result = run_invoke(
        "build", "--manifest-path", str(manifest), "--runner", "native", "--out-dir", str(tmp_path / "o")
    )
    assert result.returncode == 7
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"breaks rule 'glibc-floor' of {packaged('policies', 'linux.toml')}" in line
    assert "--allow glibc-floor" in line


def test_unknown_allow_rule() -> None:
    with pytest.raises(UsageError, match="did you mean 'glibc-floor'"):
        build(BuildOptions(allow=("glibc-flor",)))


def test_crate_of_symbol() -> None:
    assert crate_of_symbol("_ZN4core3fmt5write17h0123456789abcdefE") == "core"
    assert crate_of_symbol("_ZN5tally6doctor17h0123456789abcdefE") == "tally"
    assert crate_of_symbol("_RNvCs1234_5tally4main") == "tally"
    assert crate_of_symbol("memcpy") is None


def test_inspect_with_target_exits_7_when_the_binary_breaks_the_policy(tmp_path: Path) -> None:
    binary = cc(tmp_path, "arm", "-s", compiler="aarch64-linux-gnu-gcc")
    result = run_invoke("inspect", "--path", str(binary), "--target", "x86_64-unknown-linux-gnu", "--json")
    assert result.returncode == 7, result.stderr
    assert json.loads(result.stdout)["binaries"][0]["verdicts"], "the report is still printed"
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "breaks rule 'machine' of linux.toml for x86_64-unknown-linux-gnu: found aarch64" in line
    plain = run_invoke("inspect", "--path", str(binary))
    assert plain.returncode == 0, "without --target there is no policy to break"


def _sectioned(tmp_path: Path, name: str, section: str, *flags: str) -> Path:
    """A stripped gcc build with one extra section of that name (allocated: it holds a variable)."""
    source = f'__attribute__((used, section("{section}"))) static const char kept[] = "gdb script";\n' + HELLO_C
    return cc(tmp_path, name, *flags, source=source)


def test_an_allocated_debug_named_section_is_part_of_the_program(tmp_path: Path) -> None:
    # rustc's .debug_gdb_scripts is such a section: `strip` keeps it, so the rule does too.
    info = inspect_binary(_sectioned(tmp_path, "gdbscripts", ".debug_gdb_scripts", "-s"))
    assert info.stripped, info.leftover_symbols
    # Unmapped DWARF and the symbol table are what stripping removes.
    info = inspect_binary(_sectioned(tmp_path, "unstripped", ".debug_gdb_scripts", "-g"))
    assert ".symtab" in info.leftover_symbols and ".debug_info" in info.leftover_symbols
    assert ".debug_gdb_scripts" not in info.leftover_symbols
    # An unmapped DWARF section alone (no symbol table) still counts, in either spelling.
    stripped = _sectioned(tmp_path, "stripped", ".debug_gdb_scripts", "-s")
    (tmp_path / "dwarf").write_bytes(b"\0" * 16)
    for name in (".debug_line", ".zdebug_line"):
        out = tmp_path / f"with{name}"
        subprocess.run(["objcopy", f"--add-section={name}={tmp_path / 'dwarf'}", stripped, out], check=True)
        assert inspect_binary(out).leftover_symbols == (name,)


def test_the_stripped_advice_fits_the_profile_that_ran(tmp_path: Path) -> None:
    binary = cc(tmp_path, "debug", "-g")
    target = load_catalog().target(LINUX.triple)
    policy = load_catalog().policy_for(target)

    def advice(profile: ProfileInUse | None) -> str:
        (verdict,) = [
            v
            for v in evaluate(inspect_binary(binary), target, binary, policy, profile=profile)
            if not v.ok and v.rule == "stripped"
        ]
        return verdict.fix

    stripping = ProfileInUse("dist", "symbols", "/p/dist.toml", alternative="size")
    assert "already strips" in advice(stripping) and "--profile" not in advice(stripping)
    where = "[profile.release] in /p/Cargo.toml"
    keeping = ProfileInUse("release", None, where, alternative="dist")
    assert advice(keeping) == f'set strip = "symbols" for the release profile ({where}), or build with --profile dist'
    alone = ProfileInUse("mine", "debuginfo", "/p/toolchain.toml")
    assert "--profile" not in advice(alone) and "for the mine profile" in advice(alone)


def test_the_windows_dll_list_is_read_from_windows_sys_with_its_provenance() -> None:
    path = packaged("policies", "windows-system-dlls.txt")
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert "scripts/policy-data.py" in text
    for crate in ("windows-sys 0.48.0", "windows-sys 0.52.0", "windows-sys 0.59.0", "windows-sys 0.61.2"):
        assert re.search(rf"{crate}  sha256 [0-9a-f]{{64}}", text), crate
    assert re.search(r"windows_x86_64_gnu \S+  sha256 [0-9a-f]{64}", text), "windows-targets' import library"
    names = listed_libraries("windows-system-dlls.txt")
    assert len(names) > 300
    assert {"kernel32.dll", "combase.dll", "user32.dll", "ws2_32.dll", "bcryptprimitives.dll", "winspool.drv"} <= names
    assert not names & {"libwinpthread-1.dll", "libgcc_s_seh-1.dll", "vcruntime140.dll", "ntoskrnl.exe"}
    assert all(name == name.lower() for name in names)


def test_the_glibc_list_is_read_from_debian_packages_with_its_provenance() -> None:
    path = packaged("policies", "linux-system-libraries.txt")
    assert re.search(r"#   libc6:amd64 2\.\d+", path.read_text())
    names = listed_libraries("linux-system-libraries.txt")
    assert {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"} <= names
    assert not names & {"libstdc++.so.6", "libssl.so.3", "libz.so.1"}


PTHREAD_C = "#include <pthread.h>\nstatic void *run(void *a) { return a; }\n" + (
    "int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); return pthread_join(t, 0); }\n"
)


def test_mingw_runtime_dlls_are_refused_and_system_dlls_pass(tmp_path: Path) -> None:
    mingw = "x86_64-w64-mingw32-gcc"
    threads = cc(tmp_path, "threads.exe", "-s", "-pthread", source=PTHREAD_C, compiler=mingw)
    assert "libwinpthread-1.dll" in inspect_binary(threads).imports
    found = failing(threads, "x86_64-pc-windows-gnu")
    assert found["libraries"] == "libwinpthread-1.dll"
    (verdict,) = [v for v in _verdicts(threads, "x86_64-pc-windows-gnu") if v.rule == "libraries"]
    assert "link it statically (-C link-arg=-static)" in verdict.fix
    # Linked statically, only system DLLs are left (whatever mingw's CRT imports, api-ms-win-crt-* included).
    static = cc(tmp_path, "static.exe", "-s", "-static", "-pthread", source=PTHREAD_C, compiler=mingw)
    assert "libraries" not in failing(static, "x86_64-pc-windows-gnu")
    assert "kernel32.dll" in inspect_binary(static).imports


def _verdicts(path: Path, triple: str) -> tuple[Any, ...]:
    target = load_catalog().target(triple)
    return evaluate(inspect_binary(path), target, path, load_catalog().policy_for(target))


def test_macos_libraries_are_judged_by_the_path_the_load_command_names(tmp_path: Path) -> None:
    import lief

    plain = zig_cc(tmp_path, "mac", "x86_64-macos.10.12")
    assert inspect_binary(plain).needed_libraries == ("/usr/lib/libSystem.B.dylib",)
    system = [
        "/usr/lib/libobjc.A.dylib",
        "/usr/lib/libc++.1.dylib",
        "/usr/lib/libz.1.dylib",
        "/usr/lib/libiconv.2.dylib",
        "/usr/lib/swift/libswiftCore.dylib",
        "/System/Library/Frameworks/Foundation.framework/Versions/C/Foundation",
        "/System/Library/Frameworks/Security.framework/Versions/A/Security",
    ]
    foreign = {
        "@rpath/libfoo.dylib": "run-path",
        "@executable_path/libbar.dylib": "run-path",
        "libbare.dylib": "link it statically",
        "/usr/local/lib/libssl.3.dylib": "Homebrew",
        "/opt/homebrew/lib/libzstd.1.dylib": "Homebrew",
        "/usr/lib/../local/lib/libsneaky.dylib": "Homebrew",
        "/System/Library/PrivateFrameworks/Foo.framework/Foo": "private framework",
    }

    def linking(name: str, libraries: list[str]) -> Path:
        fat = lief.MachO.parse(str(plain))
        assert fat is not None
        binary = fat.at(0)
        assert binary is not None
        for library in libraries:
            binary.add_library(library)
        out = tmp_path / name
        binary.write(str(out))
        return out

    good = linking("system", system)
    assert set(system) <= set(inspect_binary(good).needed_libraries)
    assert "libraries" not in failing(good, "x86_64-apple-darwin")
    for index, (library, advice) in enumerate(foreign.items()):
        bad = linking(f"foreign{index}", [library])
        assert failing(bad, "x86_64-apple-darwin")["libraries"] == library
        (verdict,) = [v for v in _verdicts(bad, "x86_64-apple-darwin") if v.rule == "libraries"]
        assert advice in verdict.fix, (library, verdict.fix)


def test_a_policy_naming_a_list_the_toolkit_lacks_is_a_config_error(tmp_path: Path) -> None:
    policy = tmp_path / "linux.toml"
    policy.write_text(packaged("policies", "linux.toml").read_text().replace("linux-system-libraries.txt", "glibc.txt"))
    with pytest.raises(ConfigError, match="names the library list 'glibc.txt'.*linux-system-libraries.txt"):
        load_policy_file(policy)


def test_glibc_libraries_pass_and_the_cxx_runtime_is_refused(tmp_path: Path) -> None:
    # libresolv is glibc's (the old hand-kept list refused it); libstdc++ is not part of glibc.
    resolver = "#include <resolv.h>\nint main(void) { return res_init(); }\n"
    binary = cc(tmp_path, "resolver", "-s", "-Wl,--no-as-needed", "-lresolv", "-lanl", source=resolver)
    assert {"libresolv.so.2", "libanl.so.1"} <= set(inspect_binary(binary).needed_libraries)
    assert "libraries" not in failing(binary, LINUX.triple)
    cxx = "#include <iostream>\nint main() { std::cout << 1; return 0; }\n"
    binary = cc(tmp_path, "cxx", "-s", "-x", "c++", source=cxx, compiler="g++")
    assert failing(binary, LINUX.triple)["libraries"] == "libstdc++.so.6"
    (verdict,) = [v for v in _verdicts(binary, LINUX.triple) if v.rule == "libraries"]
    assert "-static-libstdc++" in verdict.fix
