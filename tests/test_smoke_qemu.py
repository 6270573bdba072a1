"""aarch64 binaries run under qemu-user with the sysroot's own C library, whole.

qemu's `-L /usr/aarch64-linux-gnu` gives the guest that folder's ld.so, but ld.so then reads
the build machine's /etc/ld.so.cache, which names /lib/aarch64-linux-gnu/libc.so.6 when
Debian's libc6:arm64 is installed (scripts/setup.sh installs it, through
libstd-rust-web-dev:arm64). That libc (2.36-9+deb12u14 here) is not the sysroot's ld.so's
(2.36-8cross1): their shared state differs, and the first pthread_create spins for ever in
its stack-cache walk. The smoke runs of ouch 0.8.3, git-delta 0.20.1 and watchexec-cli 2.8.0
for aarch64 "did not finish within 120 s"; a binary without threads ran."""

from __future__ import annotations

from pathlib import Path

from conftest import make_crate, run_invoke

from toolchain.config.catalog import load_catalog
from toolchain.config.targets import host_platform
from toolchain.verify.smoke import smoke_binary

ARM = "aarch64-unknown-linux-gnu"
MAIN_RS = """use std::io::BufRead;

fn main() {
    match std::env::args().nth(1).as_deref() {
        // The version comes back from a thread: pthread_create is what hung.
        Some("--version") => {
            let line = std::thread::spawn(|| format!("threads {}", env!("CARGO_PKG_VERSION"))).join().unwrap();
            println!("{line}");
        }
        // The shared objects this process mapped, as the emulator opened them.
        Some("libraries") => {
            let maps = std::fs::File::open("/proc/self/maps").unwrap();
            for line in std::io::BufReader::new(maps).lines() {
                let line = line.unwrap();
                if let Some(path) = line.split_whitespace().nth(5).filter(|p| p.contains(".so")) {
                    println!("{path}");
                }
            }
        }
        _ => {}
    }
}
"""


def test_a_threaded_aarch64_binary_runs_under_qemu_with_one_c_library(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "threads", "threads", main_rs=MAIN_RS)
    out = tmp_path / "dist"
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    built = run_invoke(
        "build", "--target", ARM, "--profile", "fast", "--out-dir", str(out), cwd=manifest.parent, env=env
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (binary,) = (tmp_path / "target").glob(f"{ARM}/fast/threads")

    result = smoke_binary(load_catalog().target(ARM), binary, "0.3.1", [["libraries"]], host_platform())
    assert result.how == "qemu" and result.ok, result.checks
    assert result.checks[0].output == "threads 0.3.1"
    mapped = {Path(p) for p in result.checks[1].output.split()}
    (loader,) = [p for p in mapped if p.name.startswith("ld-linux-aarch64")]
    (libc,) = [p for p in mapped if p.name == "libc.so.6"]
    assert libc.parent == loader.parent, mapped  # one glibc, not the sysroot's ld.so with another's libc


READS_INPUT_RS = """use std::io::Read;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--version") => println!("reader {}", env!("CARGO_PKG_VERSION")),
        // A health check that reads its input to the end, as a filter does.
        Some("self-test") => {
            let mut all = String::new();
            std::io::stdin().read_to_string(&mut all).unwrap();
            println!("read {} bytes", all.len());
        }
        _ => {}
    }
}
"""


def test_a_smoke_check_never_waits_on_the_callers_input(tmp_path: Path) -> None:
    """`smoke` from a shell or a CI step whose input stays open: a check that reads its input
    gets none and goes on (before, it waited for the caller's input until the 120 s timeout)."""
    import subprocess
    import sys

    from toolchain import REPO_ROOT

    manifest = make_crate(tmp_path / "reader", "reader", main_rs=READS_INPUT_RS)
    (manifest.parent / "toolchain.toml").write_text('[smoke]\nchecks = [["self-test"]]\n')
    out = tmp_path / "dist"
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    built = run_invoke(
        "build", "--target", ARM, "--profile", "fast", "--out-dir", str(out), cwd=manifest.parent, env=env
    )
    assert built.returncode == 0, built.stderr[-3000:]
    command = [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), "smoke", "--target", ARM]
    log = tmp_path / "smoke.log"
    with (
        log.open("w") as output,
        subprocess.Popen(
            [*command, "--out-dir", str(out)], cwd=manifest.parent, stdin=subprocess.PIPE, stdout=output, stderr=output
        ) as smoke,
    ):  # the input stays open and empty until the run is over, as a terminal's would
        try:
            smoke.wait(timeout=300)
        finally:
            smoke.kill()
    said = log.read_text()
    assert smoke.returncode == 0, said[-3000:]
    assert "ok   reader self-test (qemu)" in said, said[-3000:]
