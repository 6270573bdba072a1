"""std built from source once per machine (toolchain.compile.stdcache), with real builds:
windows-gnu's std built by cargo -Zbuild-std into the cache, then reused through
--sysroot by other projects and clean target folders; the exe runs under wine.

One target and tiny crates keep the cost at two std builds (about 1.5 min of CPU each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_crate

from toolchain import REPO_ROOT
from toolchain.compile.stdcache import MANIFEST, entries, problem, prune
from toolchain.config.catalog import load_catalog
from toolchain.verify.smoke import smoke_binary

WINDOWS = "x86_64-pc-windows-gnu"
# The `toolchain` command of this checkout, as a user runs it.
TOOLCHAIN = [
    sys.executable,
    "-c",
    "import sys; from toolchain.cli import program; program.run(['toolchain', *sys.argv[1:]])",
]
MAIN = """fn main() {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        return;
    }
    let words: Vec<String> = std::env::args().skip(1).collect();
    println!("{} words", words.len());
}
"""

pytestmark = pytest.mark.skipif(
    not Path("/usr/lib/rustlib/src/rust/library/vendor").is_dir(), reason="needs rust-web-src (std's sources)"
)


def _build(
    crate: Path, cache: Path, target_dir: Path, out: Path, force: bool = True, profile: str = "fast"
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(cache),
        "CARGO_TARGET_DIR": str(target_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    argv = ["nice", "-n", "10", *TOOLCHAIN, "build", "--target", WINDOWS, "--profile", profile]
    argv += ["--manifest-path", str(crate), "--out-dir", str(out), *(["--force"] if force else [])]
    return subprocess.Popen(
        argv, cwd=crate.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def std_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("xdg-cache") / "toolchain" / "std"


@pytest.fixture(scope="module")
def two_at_once(std_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two projects built at the same time into an empty cache."""
    work = tmp_path_factory.mktemp("projects")
    crates = [make_crate(work / name, name, main_rs=MAIN) for name in ("first", "second")]
    cache = std_root.parent.parent
    started = [_build(c, cache, work / f"target-{c.parent.name}", work / f"dist-{c.parent.name}") for c in crates]
    return work, [_finish(p) for p in started]


def test_two_concurrent_builds_make_one_entry(std_root: Path, two_at_once: tuple[Path, list[str]]) -> None:
    _, outputs = two_at_once
    built = [o for o in outputs if "building it once for this machine's cache" in o]
    assert len(built) == 1, outputs  # one built std, the other waited for it
    assert sum("Compiling std v" in o for o in outputs) == 1
    (entry,) = entries(std_root, check=True)
    assert entry.target == WINDOWS and entry.problem is None and entry.size > 10_000_000
    assert not [p for p in std_root.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_clean_target_folder_reuses_the_entry_and_the_exe_runs(
    std_root: Path, two_at_once: tuple[Path, list[str]]
) -> None:
    work, _ = two_at_once
    (before,) = entries(std_root)
    output = _finish(_build(work / "first" / "Cargo.toml", std_root.parent.parent, work / "clean", work / "dist-3"))
    assert "from the machine's cache" in output
    assert "Compiling std v" not in output and "Compiling core v" not in output
    assert "Compiling first v" in output  # the project itself was compiled, into the clean folder
    assert [e.name for e in entries(std_root)] == [before.name]
    exe = work / "clean" / WINDOWS / "fast" / "first.exe"
    result = smoke_binary(load_catalog().target(WINDOWS), exe, "first 0.3.1", [["a", "b"]])
    assert result.ok, result


def test_a_corrupt_entry_is_rebuilt_saying_why(std_root: Path, two_at_once: tuple[Path, list[str]]) -> None:
    work, _ = two_at_once
    (entry,) = entries(std_root)
    manifest = json.loads((std_root / entry.name / MANIFEST).read_text())
    changed = next(name for name in manifest["files"] if "libstd-" in name)
    rlib = std_root / entry.name / changed
    data = bytearray(rlib.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rlib.write_bytes(data)
    assert problem(std_root / entry.name) is not None
    output = _finish(_build(work / "second" / "Cargo.toml", std_root.parent.parent, work / "clean-2", work / "dist-4"))
    why = [line for line in output.splitlines() if "is rebuilt" in line]
    assert why == [
        f"warning: std cache entry {entry.name} is rebuilt: {changed} does not match its manifest's digest "
        "(changed after it was built)"
    ]
    (after,) = entries(std_root, check=True)
    assert after.name == entry.name and after.problem is None


def test_prune_removes_unused_and_broken_entries_but_not_one_in_use(tmp_path: Path) -> None:
    import fcntl

    def entry(name: str, age_days: float, whole: bool = True) -> Path:
        folder = tmp_path / name
        lib = folder / "lib" / "rustlib" / WINDOWS / "lib"
        lib.mkdir(parents=True)
        (lib / "libstd-x.rlib").write_bytes(b"rlib")
        import hashlib

        digest = hashlib.sha256(b"rlib").hexdigest()
        files = {f"lib/rustlib/{WINDOWS}/lib/libstd-x.rlib": {"size": 4 if whole else 5, "sha256": digest}}
        (folder / MANIFEST).write_text(json.dumps({"inputs": {"target": WINDOWS}, "files": files}))
        lock = folder.with_name(name + ".lock")  # its last use is marked on the lock file beside it
        lock.touch()
        then = time.time() - age_days * 86400
        for path in (folder / MANIFEST, lock):
            os.utime(path, (then, then))
        return folder

    entry("recent", 1)
    entry("old", 40)
    entry("broken", 1, whole=False)
    held = entry("old-in-use", 40)
    with (held.parent / (held.name + ".lock")).open("a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # a build using it
        result = prune(tmp_path, older_than_days=30)
    assert sorted(result.removed) == ["broken", "old"]
    assert result.kept == ("recent",) and result.in_use == ("old-in-use",)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["old-in-use", "recent"]


def test_doctor_shows_the_cache_and_prune_has_help(std_root: Path, two_at_once: tuple[Path, list[str]]) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(std_root.parent.parent), "PYTHONPATH": str(REPO_ROOT)}
    doctor = subprocess.run(
        [*TOOLCHAIN, "doctor", "--json", "--target", "x86_64-unknown-linux-gnu"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    shown = json.loads(doctor.stdout)["std_cache"]
    (entry,) = entries(std_root)
    assert shown["root"] == str(std_root) and shown["size"] == entry.size
    assert [e["name"] for e in shown["entries"]] == [entry.name]
    helped = subprocess.run([*TOOLCHAIN, "cache.prune-std", "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "--older-than-days" in helped.stdout


def test_a_build_through_the_cache_is_fresh_the_next_time(std_root: Path, two_at_once: tuple[Path, list[str]]) -> None:
    # Using an entry must not look like a change to what the build read (the sysroot is one of
    # its inputs): the build after the one that settled skips cargo.
    work, _ = two_at_once
    crate = work / "second" / "Cargo.toml"
    target_dir, out = work / "target-second", work / "dist-fresh"

    outputs = [_finish(_build(crate, std_root.parent.parent, target_dir, out, force=False)) for _ in range(3)]
    assert "fresh: nothing changed" in outputs[-1], outputs[-1][-2000:]
    assert not any("changed while the build ran" in o for o in outputs[1:]), outputs


def test_a_dependency_that_is_also_a_cdylib_links_against_the_cached_std(tmp_path: Path) -> None:
    # With LTO, cargo builds std as bitcode only when every crate of the graph is linked by
    # LTO; a dependency with crate-type cdylib is linked by the plain linker and needs std's
    # object code too. The cached std serves every graph, so it holds both.
    plugin = make_crate(
        tmp_path / "plugin", "plugin", main_rs=None, lib_rs="pub fn add(a: u32, b: u32) -> u32 { a + b }\n"
    )
    plugin.write_text(plugin.read_text() + '[lib]\ncrate-type = ["cdylib", "rlib"]\n')
    main_rs = MAIN.replace("fn main() {", "fn main() {\n    assert_eq!(plugin::add(2, 3), 5);")
    crate = make_crate(tmp_path / "app", "app", main_rs=main_rs, manifest_extra='plugin = { path = "../plugin" }')
    # Thin LTO at opt-level 0 keeps std's build short while cargo still asks for LTO.
    crate.write_text(crate.read_text() + '[profile.release]\nopt-level = 0\nlto = "thin"\nstrip = "symbols"\n')
    output = _finish(_build(crate, tmp_path / "cache", tmp_path / "target", tmp_path / "dist", profile="release"))
    assert "from the machine's cache" in output or "building it once" in output, output[-2000:]
    exe = tmp_path / "target" / WINDOWS / "release" / "app.exe"
    result = smoke_binary(load_catalog().target(WINDOWS), exe, "app 0.3.1", [["a"]])
    assert result.ok, result
