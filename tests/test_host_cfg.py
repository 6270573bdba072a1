"""A build script that tests the build machine (`cfg!(windows)`, `#[cfg(windows)]`) where it
means the target is named with its line when the link fails for it. Before, it was "linking
with `x86_64-w64-mingw32-gcc` failed" (exit 6) and a page of undefined C++ symbols: ouch 0.8.3
for x86_64-pc-windows-gnu, whose unrar-ng-sys 0.7.6 compiles unrar's Windows files only
`#[cfg(windows)]` in build.rs, which is false on the Linux machine that runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import app_using, make_crate, run_invoke

from toolchain.compile.host_cfg import host_tests, undefined_symbols

WINDOWS = "x86_64-pc-windows-gnu"
LINUX = "x86_64-unknown-linux-gnu"

# Like unrar-ng-sys: the shared C calls a Windows-only part when compiled for Windows, and the
# build script keeps the file with that part for Windows, asking the machine it runs on.
BUILD_RS = """use std::{env, path::PathBuf, process::Command};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap();
    let (cc, ar) = match target.as_str() {
        "x86_64-pc-windows-gnu" => ("x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-ar"),
        "aarch64-unknown-linux-gnu" => ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ar"),
        _ => ("cc", "ar"),
    };
    let files = [
        "common",
        #[cfg(PREDICATE)]
        "target_part",
    ];
    let mut objects = Vec::new();
    for name in files {
        let object = out.join(format!("{name}.o"));
        let source = format!("c/{name}.c");
        assert!(Command::new(cc).args(["-c", "-o"]).arg(&object).arg(source).status().unwrap().success());
        objects.push(object);
    }
    assert!(Command::new(ar).arg("rcs").arg(out.join("libtcpart.a")).args(&objects).status().unwrap().success());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=tcpart");
}
"""
COMMON_C = """#if defined(_WIN32) || defined(__aarch64__)
int tc_target_part(void);
int tc_common(void) { return tc_target_part(); }
#else
int tc_common(void) { return 42; }
#endif
"""


def app_with_a_host_testing_build_script(root: Path, predicate: str = "windows") -> Path:
    """app -> parts (a path dependency behind app's feature `rar`) with the build script above,
    keeping the target's own C file behind `#[cfg(predicate)]`."""
    parts = root / "parts"
    make_crate(
        parts, "parts", main_rs=None,
        lib_rs='extern "C" { fn tc_common() -> i32; }\npub fn answer() -> i32 { unsafe { tc_common() } }\n',
    )  # fmt: skip
    (parts / "build.rs").write_text(BUILD_RS.replace("PREDICATE", predicate))
    (parts / "c").mkdir()
    (parts / "c" / "common.c").write_text(COMMON_C)
    (parts / "c" / "target_part.c").write_text("int tc_target_part(void) { return 42; }\n")
    return app_using(root, "parts", feature="rar")


def failed_build(manifest: Path, triple: str, *extra: str) -> tuple[str, str]:
    """`build --profile fast` of the app for the triple, which must fail with exit 6: the
    toolkit's own error line (cargo's come first) and the whole error output."""
    root = manifest.parent.parent
    env = {"CARGO_TARGET_DIR": str(root / "target")}
    args = ("--target", triple, "--out-dir", str(root / "dist"), "--profile", "fast", *extra)
    result = run_invoke("build", *args, cwd=manifest.parent, env=env)
    assert result.returncode == 6, result.stderr[-3000:]
    return [x for x in result.stderr.splitlines() if x.startswith("error:")][-1], result.stderr


def test_the_build_script_line_that_asked_the_build_machine_is_named(tmp_path: Path) -> None:
    manifest = app_with_a_host_testing_build_script(tmp_path)
    line, _ = failed_build(manifest, WINDOWS)
    assert (
        f"{WINDOWS}: parts's build script tests the build machine, not the target: `windows` (build.rs line 13) "
        f"is false on this linux x86_64 machine and true for {WINDOWS}, so the code it built leaves `tc_target_part` "
        "undefined (app -> parts)"
    ) in line, line
    assert (
        f"build {WINDOWS} on a windows x86_64 machine; "
        "or avoid it: app -> parts is optional, behind app's feature 'rar'" in line
    )
    assert line.endswith(
        "read CARGO_CFG_TARGET_OS (and the other CARGO_CFG_* variables cargo sets for the target) in its build script"
    )

    # The same graph for this machine's own target: the script's answer is the target's, the link
    # succeeds, and nothing is said.
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    out = ("--out-dir", str(tmp_path / "dist"), "--profile", "fast", "--allow", "glibc-floor")
    host = run_invoke("build", "--target", LINUX, *out, cwd=manifest.parent, env=env)
    assert host.returncode == 0, host.stderr[-3000:]
    (binary,) = (tmp_path / "target").glob(f"{LINUX}/fast/app")
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "42\n"


def test_zigs_linker_and_an_architecture_predicate_are_read_the_same_way(tmp_path: Path) -> None:
    """aarch64 through cargo-zigbuild (lld's words), the file kept behind the build machine's arch."""
    triple = "aarch64-unknown-linux-gnu"
    manifest = app_with_a_host_testing_build_script(tmp_path, 'target_arch = "aarch64"')
    line, _ = failed_build(manifest, triple, "--runner", "zig")
    assert (
        f'parts\'s build script tests the build machine, not the target: `target_arch = "aarch64"` (build.rs line 13) '
        f"is false on this linux x86_64 machine and true for {triple}, so the code it built leaves `tc_target_part` "
        f"undefined (app -> parts); build {triple} on a linux aarch64 machine;"
    ) in line, line


def test_a_library_a_build_script_asks_for_by_the_build_machines_os_is_not_sent_looking_for(tmp_path: Path) -> None:
    """`cfg!(unix)` holds on Linux, so the script asks for libdl for Windows too: supplying a
    libdl.a is not the fix (the missing-library line would say that), the script is."""
    parts = tmp_path / "parts"
    make_crate(parts, "parts", main_rs=None, lib_rs="pub fn answer() -> i32 { 42 }\n")
    (parts / "build.rs").write_text(
        'fn main() {\n    if cfg!(unix) {\n        println!("cargo:rustc-link-lib=dl");\n    }\n}\n'
    )
    line, _ = failed_build(app_using(tmp_path, "parts"), WINDOWS)
    assert (
        f"parts's build script tests the build machine, not the target: `unix` (build.rs line 2) is true on this "
        f"linux x86_64 machine and false for {WINDOWS}, so it asks the linker for -ldl, which it cannot find for "
        f"{WINDOWS} (app -> parts); build {WINDOWS} on a windows x86_64 machine;"
    ) in line, line


def test_other_link_failures_are_left_to_cargo(tmp_path: Path) -> None:
    """A symbol no build script left out (a plain missing definition) keeps cargo's words."""
    manifest = make_crate(
        tmp_path / "app", "app",
        main_rs='extern "C" { fn tc_nowhere() -> i32; }\nfn main() { println!("{}", unsafe { tc_nowhere() }); }\n',
    )  # fmt: skip
    _, said = failed_build(manifest, WINDOWS)
    assert "tests the build machine" not in said
    assert "failed with exit code 101" in said


def test_every_linkers_wording_names_the_symbols_and_the_crates_using_them() -> None:
    gnu = (
        "/usr/bin/x86_64-w64-mingw32-ld: /t/deps/libunrar_ng_sys-454817975e010aa9.rlib(0934600a39780889-timefn.o):"
        "timefn.cpp:(.text$_ZN7RarTime8GetLocalEP12RarLocalTime+0x32): undefined reference to `WinNT()'\n"
        "/usr/bin/x86_64-w64-mingw32-ld: /t/deps/libunrar_ng_sys-454817975e010aa9.rlib(archive.o):archive.cpp:"
        "(.text+0x1ae): undefined reference to `MarkOfTheWeb::MarkOfTheWeb()'\n"
    )
    found = undefined_symbols(gnu)
    assert found is not None
    assert found.symbols == ("WinNT", "MarkOfTheWeb::MarkOfTheWeb") and found.crates == ("unrar_ng_sys",)
    lld = (
        "ld.lld: error: undefined symbol: tc_windows_part\n>>> referenced by common.c\n"
        ">>>               common.o:(tc_common) in archive /t/deps/libparts-0123456789abcdef.rlib\n"
    )
    found = undefined_symbols(lld)
    assert found is not None and found.symbols == ("tc_windows_part",) and found.crates == ("parts",)
    ld64 = (
        'Undefined symbols for architecture arm64:\n  "_tc_windows_part", referenced from:\n'
        "      _tc_common in libparts-0123456789abcdef.rlib[3](common.o)\n"
    )
    found = undefined_symbols(ld64)
    assert found is not None and found.symbols == ("_tc_windows_part",) and found.crates == ("parts",)
    # An rlib the linker names for another reason is not a user of the symbol.
    assert undefined_symbols("ld: cannot find -lPacket\n/t/libpnet-0123456789abcdef.rlib") is None


LINUX_CFG = ({"target_os": {"linux"}, "target_family": {"unix"}}, {"unix"})
WINDOWS_CFG = ({"target_os": {"windows"}, "target_family": {"windows"}}, {"windows"})


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("if cfg!(windows) { a() }", [("windows", 1, False, True)]),
        ('let x = [\n  #[cfg(target_os = "windows")]\n  "isnt",\n];', [('target_os = "windows"', 2, False, True)]),
        ("if cfg!(all(unix, not(windows))) {}", [("all(unix, not(windows))", 1, True, False)]),
        # Predicates both machines answer alike, or only the features decide, are not the cause.
        ('if cfg!(feature = "rar") {}\nif cfg!(target_pointer_width = "64") {}', []),
        ('// cfg!(windows) in a comment\nlet os = std::env::var("CARGO_CFG_TARGET_OS");', []),
    ],
)
def test_a_predicate_counts_when_the_build_machine_and_the_target_answer_it_differently(
    script: str, expected: list[tuple[str, int, bool, bool]]
) -> None:
    linux = ({**LINUX_CFG[0], "target_pointer_width": {"64"}}, LINUX_CFG[1])
    windows = ({**WINDOWS_CFG[0], "target_pointer_width": {"64"}}, WINDOWS_CFG[1])
    assert host_tests(script, {"rar"}, linux, windows) == expected
