"""A link that fails for a library the linker cannot find is said as that library, the
chain of packages that links it, and how to hand the linker its folder (exit 5). Before,
it was "linking with `cc` failed" (exit 6) with the cause in the linker's output: bandwhich
0.23.1 for x86_64-pc-windows-gnu, whose pnet_datalink links the Npcap SDK's Packet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import app_using, make_crate, run_invoke

from toolchain.compile.missing_library import missing_libraries

LIBRARY = "tcmissing"


def app_linking_a_library_through_a_dependency(root: Path) -> Path:
    """app -> capture (a path dependency) whose sources ask for lib{LIBRARY} on every target,
    and for another library on no target this test builds."""
    capture = root / "capture"
    make_crate(
        capture, "capture", main_rs=None,
        lib_rs=(
            f'#[link(name = "{LIBRARY}")]\nextern "C" {{ fn tc_missing_answer() -> i32; }}\n'
            '#[cfg(target_os = "haiku")]\n#[link(name = "haikuonly")]\nextern "C" {}\n'
            "pub fn answer() -> i32 { unsafe { tc_missing_answer() } }\n"
        ),
    )  # fmt: skip
    return app_using(root, "capture", feature="pcap")


@pytest.mark.parametrize(
    ("triple", "runner"), [("x86_64-unknown-linux-gnu", "native"), ("aarch64-unknown-linux-gnu", "zig")]
)
def test_a_library_the_linker_cannot_find_is_named_with_who_links_it(tmp_path: Path, triple: str, runner: str) -> None:
    """GNU ld (the host's cc) and zig's linker word it differently; both are read."""
    manifest = app_linking_a_library_through_a_dependency(tmp_path)
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    args = ("build", "--target", triple, "--runner", runner, "--profile", "fast", "--out-dir", str(tmp_path / "dist"))
    result = run_invoke(*args, cwd=manifest.parent, env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")][-1]  # cargo's come first
    assert f"{triple}: the linker cannot find the library -l{LIBRARY} (app -> capture links {LIBRARY})" in line, line
    assert "haikuonly" not in line
    assert f"lib{LIBRARY}.so or lib{LIBRARY}.a built for {triple}" in line, line
    assert f'[target.{triple}] rustflags = ["-L", "native=FOLDER"]' in line, line
    assert line.endswith("or avoid it: app -> capture is optional, behind app's feature 'pcap' (on by default)"), line

    if triple == "x86_64-unknown-linux-gnu":
        # The hint is the fix: the library in a folder, that folder on the link search path.
        folder = tmp_path / "lib"
        folder.mkdir()
        source = tmp_path / "answer.c"
        source.write_text("int tc_missing_answer(void) { return 42; }\n")
        subprocess.run(["cc", "-c", "-o", folder / "answer.o", source], check=True)
        subprocess.run(["ar", "rcs", folder / f"lib{LIBRARY}.a", folder / "answer.o"], check=True)
        # (the native runner links this host's glibc, newer than the target's floor)
        fixed = run_invoke(
            *args, "--allow", "glibc-floor", cwd=manifest.parent, env={**env, "RUSTFLAGS": f"-L native={folder}"}
        )
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        (binary,) = (tmp_path / "target").glob(f"{triple}/fast/app")
        assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "42\n"


def test_every_linkers_wording_is_read_and_other_failures_are_left_to_cargo() -> None:
    # GNU ld 2.40 (mingw's too), LLVM lld, Apple's ld64, lld-link: as they print it.
    assert missing_libraries("/usr/bin/x86_64-w64-mingw32-ld: cannot find -lPacket: No such file or directory") == [
        "Packet"
    ]
    assert missing_libraries(
        "ld.lld: error: unable to find library -lpcap\nld.lld: error: unable to find library -lz"
    ) == [
        "pcap",
        "z",
    ]
    assert missing_libraries("ld: library not found for -lssl\nclang: error: linker command failed") == ["ssl"]
    assert missing_libraries("lld-link: error: could not open 'Packet.lib': no such file or directory") == ["Packet"]
    assert missing_libraries('error: unable to find dynamic system library "pcap" using strategy no_fallback') == [
        "pcap"
    ]
    assert missing_libraries("cannot find -lPacket\ncannot find -lPacket") == ["Packet"]
    assert missing_libraries("undefined reference to `WinNT'\ncollect2: error: ld returned 1 exit status") == []
