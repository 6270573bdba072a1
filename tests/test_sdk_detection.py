"""Whether a macOS build needs Apple's SDK, read from the crate graph before
cargo: what each package links (its `#[link]` attributes with their cfg
predicates, its build script's framework lines), for the target's graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_invoke

from toolchain import REPO_ROOT
from toolchain.compile.cargo import load_project, select
from toolchain.compile.links import LinkLine, evaluate, scan_build_script, scan_rust
from toolchain.compile.runners.zig import missing_sdk_header
from toolchain.compile.sdk import sdk_needs
from toolchain.config.settings import load_settings

CORPUS = REPO_ROOT / "tests" / "corpus"
MAC = "x86_64-apple-darwin"
APPLE_CFG = {"target_os": {"macos"}, "target_vendor": {"apple"}, "target_family": {"unix"}}


def test_link_attributes_with_their_guards() -> None:
    text = """
// #[link(name = "commented", kind = "framework")]
/* #[link(name = "blocked")] */
#[cfg_attr(not(feature = "objfw"), link(name = "objc", kind = "dylib"))]
#[cfg_attr(feature = "objfw", link(name = "objfw-rt", kind = "dylib"))]
extern "C" {}

#[cfg(target_os = "linux")]
#[link(name = "rt")]
extern "C" {}

const URL: &str = "https://example.com"; #[link(name = "Security", kind = "framework")] extern "C" {}
"""
    lines = scan_rust(text, in_root=True)
    assert [(x.name, x.kind, x.predicates) for x in lines] == [
        ("objc", "dylib", ('not(feature = "objfw")',)),
        ("objfw-rt", "dylib", ('feature = "objfw"',)),
        ("rt", "dylib", ('target_os = "linux"',)),
        ("Security", "framework", ()),
    ]
    assert all(x.in_root for x in lines)


def test_build_script_framework_lines() -> None:
    script = """
fn main() {
    // println!("cargo:rustc-link-lib=framework=Commented");
    println!("cargo:rustc-link-lib=framework=CoreAudio");
    println!("cargo::rustc-link-lib=framework=AudioUnit");
    cc::Build::new().flag("-framework").flag("Metal");
}
"""
    assert [x.name for x in scan_build_script(script)] == ["AudioUnit", "CoreAudio", "Metal"]
    assert all(x.kind == "framework" for x in scan_build_script(script))


@pytest.mark.parametrize(
    ("predicate", "features", "expected"),
    [
        ('target_vendor = "apple"', set(), True),
        ('target_os = "linux"', set(), False),
        ('not(feature = "objfw")', set(), True),
        ('not(feature = "objfw")', {"objfw"}, False),
        ('all(unix, not(target_os = "macos"))', set(), False),
        ('any(target_os = "ios", target_os = "macos")', set(), True),
        ("objc2_custom_cfg", set(), None),  # a build script's own cfg: not known before compiling
        ('all(target_vendor = "apple", objc2_custom_cfg)', set(), None),
        ('any(target_vendor = "apple", objc2_custom_cfg)', set(), True),
    ],
)
def test_predicates_for_a_macos_target(predicate: str, features: set[str], expected: bool | None) -> None:
    assert evaluate(predicate, APPLE_CFG, {"unix"}, features) is expected


def test_a_per_os_module_dylib_counts_only_when_its_guard_names_the_target() -> None:
    # libc's per-OS files name their libraries with no guard of their own (the `mod` line has it).
    line = LinkLine("util", "dylib", (), in_root=False)
    from toolchain.compile.sdk import _needs_sdk  # the rule itself, on one line
    from toolchain.config.catalog import load_catalog

    target = load_catalog().target(MAC)
    assert not _needs_sdk(line, target, set(), APPLE_CFG, {"unix"})
    assert _needs_sdk(LinkLine("objc", "dylib", (), in_root=True), target, set(), APPLE_CFG, {"unix"})
    assert not _needs_sdk(LinkLine("System", "dylib", (), in_root=True), target, set(), APPLE_CFG, {"unix"})
    guarded = LinkLine("objc", "dylib", ('target_vendor = "apple"',), in_root=False)
    assert _needs_sdk(guarded, target, set(), APPLE_CFG, {"unix"})
    # getrandom 0.2's windows.rs (ouch, xh): `#[cfg(not(target_vendor = "uwp"))] #[link(name =
    # "advapi32")]`, a file lib.rs compiles only for Windows. A guard that holds on macOS only by
    # ruling out another target does not put the file in a macOS build.
    # unrar-ng-sys (ouch): `#[cfg_attr(target_os = "macos", link(name = "c++"))]`: zig links its own libc++.
    assert not _needs_sdk(LinkLine("c++", "dylib", ('target_os = "macos"',), True), target, set(), APPLE_CFG, {"unix"})
    ruled_out = LinkLine("advapi32", "dylib", ('not(target_vendor = "uwp")',), in_root=False)
    assert not _needs_sdk(ruled_out, target, set(), APPLE_CFG, {"unix"})
    either = LinkLine("objc", "dylib", ('any(target_os = "ios", all(unix, not(target_os = "linux")))',), in_root=False)
    assert _needs_sdk(either, target, set(), APPLE_CFG, {"unix"})


@pytest.mark.slow
def test_ctrlc_graph_stops_before_cargo_naming_the_chain_and_sdkroot(tmp_path: Path) -> None:
    # ctrlc 3.5 (Cargo.lock committed) -> dispatch2 -> objc2, which links libobjc and Foundation.
    crate = tmp_path / "ctrlc"
    shutil.copytree(CORPUS / "ctrlc", crate, ignore=shutil.ignore_patterns("target"))
    env = {"SDKROOT": "", "CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = run_invoke("build", "--target", MAC, "--out-dir", str(tmp_path / "dist"), cwd=crate, env=env)
    assert result.returncode == 5, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "corpus-ctrlc -> ctrlc -> dispatch2 -> objc2: links libobjc, Foundation" in line
    assert "SDKROOT=" in line
    assert "dispatch2 -> objc2 is optional, behind dispatch2's feature 'objc2' (on by default)" in line
    assert "Compiling" not in result.stderr and "cargo-zigbuild" not in result.stderr
    assert not (tmp_path / "target" / MAC).exists()


@pytest.mark.slow
def test_graphs_without_apple_links_need_no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    # clap, serde, anyhow, libc...: nothing only the SDK has (libc's per-OS files name util, rt...).
    # And ctrlc's graph for Linux holds no dispatch2 at all.
    settings = load_settings(CORPUS / "cli")
    catalog = settings.catalog
    for folder, triple in (("cli", MAC), ("cli", "aarch64-apple-darwin"), ("zstd", MAC)):
        project = load_project(CORPUS / folder / "Cargo.toml")
        assert sdk_needs(catalog.target(triple), project, select(project, None, []), settings) == []
    project = load_project(CORPUS / "ctrlc" / "Cargo.toml")
    needs = sdk_needs(catalog.target(MAC), project, select(project, None, []), settings)
    assert [(n.chain[-1], n.libraries, n.certain) for n in needs] == [("objc2", ("libobjc", "Foundation"), True)]


@pytest.mark.slow
def test_a_build_scripts_framework_line_is_a_maybe_never_a_stop() -> None:
    # The demo: rusqlite -> libsqlite3-sys, whose build script names CoreFoundation and Security for
    # its sqlcipher features (read at run time): the demo links without the SDK, so nothing stops it.
    settings = load_settings(REPO_ROOT / "demo")
    project = load_project(REPO_ROOT / "demo" / "Cargo.toml")
    for triple in (MAC, "aarch64-apple-darwin"):
        needs = sdk_needs(settings.catalog.target(triple), project, select(project, None, []), settings)
        assert [n for n in needs if n.certain] == []
        assert [(n.chain[-1], n.libraries) for n in needs] == [("libsqlite3-sys", ("CoreFoundation", "Security"))]


@pytest.mark.slow
def test_registry_scans_are_cached_by_id_and_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolchain.compile import links

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache-yet"))
    settings = load_settings(CORPUS / "ctrlc")
    target = settings.catalog.target(MAC)
    project = load_project(CORPUS / "ctrlc" / "Cargo.toml")
    first = sdk_needs(target, project, select(project, None, []), settings)
    cached = links.ScanCache().entries
    assert any(key.startswith("registry+") and "#objc2@0.6.5#" in key for key in cached), sorted(cached)
    scanned: list[str] = []
    real = links.scan_package

    def counting(package: dict[str, object]) -> list[LinkLine]:
        scanned.append(str(package["name"]))
        return real(package)

    monkeypatch.setattr(links, "scan_package", counting)
    assert sdk_needs(target, project, select(project, None, []), settings) == first
    assert scanned == ["corpus-ctrlc"]  # the path package only: registry sources never change


@pytest.mark.slow
def test_a_c_header_only_the_sdk_has_stops_naming_it_and_sdkroot(tmp_path: Path, shared_target_dir: Path) -> None:
    # jemalloc's shape (difftastic): a build script's C includes <sys/syscall.h>, which zig has
    # for Linux and the BSDs and not for macOS. cargo fails in the build script; the toolkit says
    # it is the SDK (exit 5), where before it was a failed build (exit 6) with the cause buried.
    crate = tmp_path / "syscalls"
    shutil.copytree(CORPUS / "cpp", crate, ignore=shutil.ignore_patterns("target", "src", "build.rs"))
    (crate / "src").mkdir()
    (crate / "src" / "syscalls.c").write_text(
        "#ifdef __APPLE__\n#include <sys/syscall.h>\n#endif\nint corpus_syscalls(void) { return 1; }\n"
    )
    (crate / "build.rs").write_text('fn main() { cc::Build::new().file("src/syscalls.c").compile("syscalls"); }\n')
    (crate / "src" / "main.rs").write_text(
        'extern "C" { fn corpus_syscalls() -> i32; }\nfn main() { println!("{}", unsafe { corpus_syscalls() }); }\n'
    )
    env = {"SDKROOT": "", "CARGO_TARGET_DIR": str(shared_target_dir)}
    args = ("build", "--profile", "fast", "--out-dir", str(tmp_path / "dist"))
    result = run_invoke(*args, "--target", MAC, cwd=crate, env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")][-1]  # cargo's come first
    assert f"{MAC} needs the macOS SDK" in line
    assert "corpus-cpp's C sources include <sys/syscall.h>, a system header that zig has" in line
    assert "SDKROOT=" in line


def test_a_header_no_system_has_or_an_sdkroot_leaves_cargos_words(monkeypatch: pytest.MonkeyPatch) -> None:
    mac = load_settings().catalog.target(MAC)
    syscall = "x.c:1:10: fatal error: 'sys/syscall.h' file not found\n"
    monkeypatch.delenv("SDKROOT", raising=False)
    assert missing_sdk_header(mac, syscall) is not None
    # a library's own header (no system's set in zig has it): the crate's C needs that library
    assert missing_sdk_header(mac, "x.c:1:10: fatal error: 'gmp.h' file not found\n") is None
    # a header zig has for macOS too: not the SDK's to blame
    assert missing_sdk_header(mac, "x.c:1:10: fatal error: 'stdio.h' file not found\n") is None
    # gcc's wording, for a target with no SDK: Linux's headers are all there
    linux = load_settings().catalog.target("x86_64-unknown-linux-gnu")
    assert missing_sdk_header(linux, "x.c:1:10: fatal error: sys/syscall.h: No such file or directory\n") is None
    monkeypatch.setenv("SDKROOT", "/sdk/MacOSX14.sdk")  # with an SDK the failure is the build's own
    assert missing_sdk_header(mac, syscall) is None
