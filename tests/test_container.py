"""The container runner on a real docker engine: the build image made from
Dockerfile.build on a local Debian base (no registry is reachable here, so
the base comes from debootstrap: scripts/make-base-image.sh), and the demo
built inside it for the host and for aarch64, as a non-root user.

Without an engine these tests are skipped with the reason, except under CI,
where the engine must be there (.ci/run starts it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_crate, on_ci, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile import container

BASE = "local/bookworm:base"
BUILD_USER = "1000:1000"
ENGINE_PROBLEM = container.engine_problem()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE_PROBLEM is not None and not on_ci(), reason=f"docker: {ENGINE_PROBLEM}"),
]


@pytest.fixture(scope="module")
def base() -> str:
    """The debootstrap base (about 200 MB): for tests where any image will do."""
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "make-base-image.sh"), BASE], check=True)
    return BASE


@pytest.fixture(scope="module")
def image(base: str) -> str:
    tag, _ = container.build_image(base)
    return tag


@pytest.fixture(autouse=True)
def no_target_volume_left() -> Iterator[None]:
    """The named target volumes a test's builds made (one per project folder, and a test's
    folder is new every run) are removed after it: they would pile up run after run."""
    if ENGINE_PROBLEM is not None:
        yield
        return
    engine = container.client()
    before = {volume.name for volume in engine.volumes.list(filters={"name": "toolchain-target-"})}
    yield
    for volume in engine.volumes.list(filters={"name": "toolchain-target-"}):
        if volume.name not in before:
            with contextlib.suppress(Exception):
                volume.remove(force=True)


def project(tmp_path: Path, name: str = "tally") -> tuple[Path, dict[str, str]]:
    """A copy of the demo owned by the build user, with its own toolchain.toml."""
    root = tmp_path / name
    shutil.copytree(REPO_ROOT / "demo", root, ignore=shutil.ignore_patterns("target", "Cargo.lock"))
    config = tmp_path / "toolchain.toml"
    config.write_text(
        f'[build]\nmanifest-path = "{root / "Cargo.toml"}"\nout-dir = "{tmp_path / "dist"}"\nrunner = "container"\n'
        f'[container]\nbase-image = "{BASE}"\nuser = "{BUILD_USER}"\n'
    )
    uid, gid = (int(part) for part in BUILD_USER.split(":"))
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid)
    return root, {"TOOLCHAIN_CONFIG": str(config)}


def leftover_containers() -> list[str]:
    engine = container.client()
    return [box.id for box in engine.containers.list(all=True, filters={"label": container.LABEL})]


def dead_pid() -> int:
    """A process id that no process has now (a run killed before it could remove its container)."""
    pid = os.getpid() + 100_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_a_killed_runs_containers_are_removed_by_the_next_run(base: str) -> None:
    """A run killed with SIGKILL (or a machine that lost power) cannot remove its
    containers; the next run on this machine removes the stopped ones whose run is
    gone, and leaves alone the ones of a live run and of other machines. On the small
    base image: under docker's vfs driver every container is a full copy of its image."""
    image = base
    engine = container.client()
    gone = engine.containers.create(image, command=["true"], labels={container.LABEL: str(dead_pid())})
    elsewhere = engine.containers.create(
        image, command=["true"], labels={container.LABEL: f"{dead_pid()}@another-host"}
    )
    alive = engine.containers.create(image, command=["true"], labels={container.LABEL: str(os.getpid())})
    try:
        container.run_quick(image, ["true"])
        left = {box.id for box in engine.containers.list(all=True, filters={"label": container.LABEL})}
        assert gone.id not in left, "a dead run's container was left behind"
        assert {elsewhere.id, alive.id} <= left
    finally:
        for box in (gone, elsewhere, alive):
            with contextlib.suppress(Exception):
                box.remove(force=True)


def test_image_is_not_rebuilt_when_unchanged(image: str) -> None:
    result = run_invoke("image.build", "--base-image", BASE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"schema": "toolchain.image/v1", "image": image, "built": False}


@pytest.mark.parametrize(
    ("triple", "machine"), [("x86_64-unknown-linux-gnu", "x86_64"), ("aarch64-unknown-linux-gnu", "aarch64")]
)
def test_build_inside_the_image(image: str, tmp_path: Path, triple: str, machine: str) -> None:
    root, env = project(tmp_path)
    result = run_invoke("build", "--target", triple, "--json", env=env)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["targets"]
    assert entry["runner"] == "container" and entry["route"] == "container-distro"
    assert entry["toolchain"]["rustc"].startswith("rustc 1.96")
    (binary,) = entry["binaries"]
    assert (binary["format"], binary["machine"], binary["stripped"]) == ("elf", machine, True)
    assert all(v["ok"] or v["severity"] != "error" for v in binary["verdicts"])
    assert (tmp_path / "dist" / f"tally-{triple}.tar.xz").is_file()
    # The container wrote Cargo.lock (removed before the build) as the build
    # user; what the host side wrote belongs to the calling user.
    assert (root / "Cargo.lock").stat().st_uid == 1000
    outside_target = [p for p in [root, *root.rglob("*")] if "target" not in p.relative_to(root).parts]
    assert {p.stat().st_uid for p in outside_target} == {1000}, "nothing in the project is owned by another user"
    assert Path(binary["path"]).stat().st_uid == os.getuid()
    assert leftover_containers() == []
    if machine == "x86_64":
        out = subprocess.run([binary["path"], "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "tally 0.1.0"
        # The named target volume keeps the build: nothing is compiled again.
        again = run_invoke("build", "--target", triple, env=env)
        assert again.returncode == 0 and "Compiling tally" not in again.stderr


def test_the_container_build_compiles_through_its_own_sccache(image: str, tmp_path: Path) -> None:
    """[cache] reaches a container build: the image's sccache wraps rustc
    there, and its statistics come back into the build record."""
    _, env = project(tmp_path, "cached")
    config = Path(env["TOOLCHAIN_CONFIG"])
    config.write_text(config.read_text() + '[cache]\nbackend = "local"\n')
    result = run_invoke("build", "--json", env=env)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["targets"]
    stats = entry["cache"]
    assert stats is not None, "no statistics: the container did not run sccache"
    assert stats["misses"] + stats["hits"] > 0, stats
    assert stats["errors"] == 0 and stats["fallback"] is None, stats
    assert leftover_containers() == []


def test_failing_build_in_the_container(image: str, tmp_path: Path) -> None:
    _, env = project(tmp_path)
    broken = make_crate(tmp_path / "broken", "broken", main_rs='fn main() { let x: u32 = "no"; }\n')
    for path in [broken.parent, *broken.parent.rglob("*")]:
        os.chown(path, 1000, 1000)
    result = run_invoke("build", "--manifest-path", str(broken), env=env)
    assert result.returncode == 6
    assert "failed in the container" in result.stderr and "error[E0308]" in result.stderr
    assert leftover_containers() == []


def test_missing_image_names_the_fix(image: str, tmp_path: Path) -> None:
    _, env = project(tmp_path)
    config = Path(env["TOOLCHAIN_CONFIG"])
    config.write_text(config.read_text().replace(f'base-image = "{BASE}"', 'base-image = "local/not-built:yet"'))
    result = run_invoke("build", env=env)
    assert result.returncode == 5
    assert "is missing (run `invoke image.build`)" in result.stderr


def test_unreachable_engine_names_the_fix(tmp_path: Path) -> None:
    _, env = project(tmp_path)
    env["DOCKER_HOST"] = f"unix://{tmp_path / 'no-engine.sock'}"
    result = run_invoke("build", env=env)
    assert result.returncode == 5
    assert "no docker engine is reachable" in result.stderr and "dockerd" in result.stderr
    doctor = run_invoke("doctor", "--json", env=env)
    tools = {t["name"]: t for t in json.loads(doctor.stdout)["tools"]}
    assert not tools["docker engine"]["ok"] and "dockerd" in tools["docker engine"]["fix"]


def test_the_engine_hint_leaves_the_storage_driver_to_dockerd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runners' hint starts dockerd without naming vfs, which copies the whole image for
    every container (7 GB and 45 s for the build image's): dockerd picks overlay2 where it can."""
    from toolchain.compile.runners import cross

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    problem = cross.engine_problem("docker")
    assert problem is not None and "is not reachable" in problem, problem
    for hint in (problem, container.ENGINE_FIX):
        assert "dockerd --iptables=false --bridge=none &" in hint and "vfs" not in hint, hint
