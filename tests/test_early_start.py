"""cargo started ahead (toolchain/build/early.py): the next identical build starts its
last first cargo command before its own setup; the run that decides the same command
adopts it, anything else stops it and its children. The process part with real shell
commands; the build part with real builds of one small crate through the CLI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke

from toolchain import proc
from toolchain.build import early
from toolchain.errors import ConfigError


@pytest.fixture(autouse=True)
def _nothing_left_ahead() -> object:
    yield None
    proc.stop_ahead()


def gone(pid: int) -> bool:
    """Whether no process has this id (a zombie of ours counts as gone: it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status == "Z"


def test_the_identical_command_is_adopted_not_run_again(tmp_path: Path) -> None:
    script = 'echo ran >> runs; echo "to stdout"; echo "to stderr" >&2; exit 3'
    proc.start_ahead(proc.Launch(("sh", "-c", script), {"EARLY_TEST": "1"}, str(tmp_path)))
    time.sleep(0.2)  # it may well have ended before it is adopted: its output is kept
    result = proc.run(["sh", "-c", script], env={"EARLY_TEST": "1"}, cwd=tmp_path, tee_stderr=True, check=False)
    assert (tmp_path / "runs").read_text() == "ran\n"
    assert (result.stdout, result.stderr, result.returncode) == ("to stdout\n", "to stderr\n", 3)
    assert proc.adopted_at() is not None and proc.adopted_at() is None  # told once
    assert not proc.stop_ahead()  # nothing left to stop


# Sleeps (with a child) only under EARLY_TEST=1, as started ahead; ends at once otherwise.
SLEEPER = 'echo ran >> runs; if [ "$EARLY_TEST" = 1 ]; then sleep 30 & echo $! > child; wait; fi'


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["sh", "-c", "echo other >> runs"], {"EARLY_TEST": "1"}),  # another command
        (["sh", "-c", SLEEPER], {"EARLY_TEST": "2"}),  # the same command in another environment
    ],
)
def test_any_other_command_stops_it_and_its_children_first(
    tmp_path: Path, argv: list[str], env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    proc.start_ahead(proc.Launch(("sh", "-c", SLEEPER), {"EARLY_TEST": "1"}, str(tmp_path)))
    child = child_of(tmp_path)
    proc.run(["true"])  # not a run that shows its output live, as cargo's: leaves it
    assert not gone(child)
    result = proc.run(argv, env=env, cwd=tmp_path, tee_stderr=True, check=False)
    assert result.returncode == 0
    assert gone(child), "the started command's child outlived it"
    assert "stopped sh started ahead: this build runs another command" in capfd.readouterr().err
    assert proc.adopted_at() is None


def child_of(folder: Path) -> int:
    """The pid the started command wrote to `child` (waited for)."""
    path = folder / "child"
    for _ in range(200):
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("the command started ahead did not start its child")


def test_stop_ahead_stops_what_nothing_adopted(tmp_path: Path) -> None:
    proc.start_ahead(proc.Launch(("sh", "-c", SLEEPER), {"EARLY_TEST": "1"}, str(tmp_path)))
    child = child_of(tmp_path)
    assert proc.stop_ahead()
    assert gone(child)


def test_only_a_private_record_naming_cargo_is_started(tmp_path: Path) -> None:
    path = tmp_path / "k.launch.json"
    good = {"schema": early.SCHEMA, "argv": ["cargo-zigbuild", "zigbuild"], "env": {"A": "b"}, "cwd": "/x"}

    def read(document: object, mode: int = 0o600) -> proc.Launch | None:
        path.write_text(json.dumps(document))
        path.chmod(mode)
        return early.remembered(path)

    assert read(good) == proc.Launch(("cargo-zigbuild", "zigbuild"), {"A": "b"}, "/x")
    assert read({**good, "argv": ["/usr/bin/cargo", "build"]}) is not None
    assert read(good, 0o620) is None  # another user could have written it
    assert read(good, 0o602) is None
    assert read({**good, "argv": ["sh", "-c", "cargo build"]}) is None
    assert read({**good, "schema": "other"}) is None
    assert read({**good, "env": {"A": 1}}) is None
    assert read({**good, "argv": []}) is None
    path.write_text("{")
    assert early.remembered(path) is None


# Through the CLI: real builds of one crate. The fresh check is passed with --force.


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crate built once: its Cargo.lock is made, so the next build's cargo command (with
    --locked, from then on) is the one remembered."""
    root = tmp_path_factory.mktemp("early") / "earlyapp"
    make_crate(root, "earlyapp")
    code, first = build(root)
    assert code == 0, first
    return root


def build(root: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = run_invoke(
        "build", "--profile", "fast", "--manifest-path", str(root / "Cargo.toml"), "--out-dir", str(root / "dist"),
        "--force", cwd=root, env={"XDG_CACHE_HOME": str(root.parent / "cache"), **(env or {})},
    )  # fmt: skip
    return done.returncode, done.stderr


def running_for(root: Path) -> list[str]:
    """Command lines of live processes that name this crate's folder (cargo, rustc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root / "Cargo.toml") in line or f"{root}/src" in line:
            found.append(line)
    return found


KEPT = "cargo-zigbuild was started ahead"
STOPPED = "stopped cargo-zigbuild started ahead: this build runs another command"


def test_the_next_identical_build_keeps_the_cargo_it_started_ahead(crate: Path) -> None:
    code, first = build(crate)
    assert code == 0, first
    assert STOPPED in first  # the fixture's cargo ran without --locked: no Cargo.lock yet
    (crate / "src" / "main.rs").write_text('fn main() { println!("second"); }\n')
    code, second = build(crate)
    assert code == 0, second
    assert KEPT in second and "the same command, kept" in second and STOPPED not in second
    assert second.count("Compiling earlyapp") == 1  # its output shown once, as cargo wrote it
    record = json.loads((crate / "dist" / "build-record.json").read_text())
    assert dict(record["targets"]["x86_64-unknown-linux-gnu"]["phases"])["cargo"] > 0


def test_a_setting_that_changes_the_cargo_command_stops_it_and_builds_as_decided(crate: Path) -> None:
    assert build(crate)[0] == 0
    settings = crate / "toolchain.toml"
    settings.write_text("[build]\nlocked = false\n")  # cargo without --locked
    try:
        code, changed = build(crate)
        assert code == 0, changed
        assert STOPPED in changed and KEPT not in changed
        command = next(line for line in changed.splitlines() if line.startswith("+ ") and "zigbuild" in line)
        assert "--locked" not in command
        code, again = build(crate)  # remembered as it is now
        assert code == 0 and KEPT in again
    finally:
        settings.unlink()
    # Another environment is not another command: the one started ahead runs in this one.
    code, other = build(crate, env={"EARLY_TEST_VARIABLE": "set"})
    assert code == 0 and STOPPED in other  # --locked again
    code, other = build(crate, env={"EARLY_TEST_VARIABLE": "other"})
    assert code == 0 and KEPT in other


def test_an_error_before_cargo_stops_it_and_shows_only_the_error(crate: Path) -> None:
    assert build(crate)[0] == 0
    settings = crate / "toolchain.toml"
    settings.write_text("[build]\nrunnr = 'zig'\n")
    try:
        code, failed = build(crate)
    finally:
        settings.unlink()
    assert code == ConfigError.exit_code, failed
    assert "runnr" in failed
    assert not running_for(crate), "the cargo started ahead outlived the build"
    assert "Compiling" not in failed and "Finished" not in failed  # cargo's output was not shown
    assert build(crate)[0] == 0
