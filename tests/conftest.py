"""Shared fixtures: real cargo builds of real crates, made in tmp folders.

Tests write only into temporary folders: each test process works in its own
copy of the demo app (the current folder, so the toolkit's default manifest
is that copy's Cargo.toml), never in the repository's demo/."""

from __future__ import annotations

import atexit
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from toolchain import REPO_ROOT
from toolchain.log import env_flag
from toolchain.pipeline.targets import BuildOptions, BuildReport, build

DEMO_COPY = Path(tempfile.mkdtemp(prefix="toolchain-tests-demo-")) / "demo"
shutil.copytree(REPO_ROOT / "demo", DEMO_COPY, ignore=shutil.ignore_patterns("target"))
# Removed when the process exits (each xdist worker and the controller make one): the
# builds in it grow it to 60-200 MB, and a machine that runs the suite often keeps none.
atexit.register(shutil.rmtree, DEMO_COPY.parent, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def in_the_demo_copy() -> Iterator[None]:
    """Every test runs in the copy (after collection, which needs the repository's folder)."""
    previous = Path.cwd()
    os.chdir(DEMO_COPY)
    yield
    os.chdir(previous)


def demo_contract() -> dict[str, Any]:
    """package_release's arguments for what the demo declares in its own toolchain.toml:
    its schema report and its upgrade checks (`tally migrate`, `tally doctor`)."""
    from toolchain.config.settings import load_settings
    from toolchain.release.installers import InstallerUpdate

    update = load_settings(DEMO_COPY).update
    return {"schema_command": update.schema_command, "update": InstallerUpdate.from_settings(update)}


def on_ci() -> bool:
    """Whether the suite runs in CI, read as the toolkit reads `CI` (log.env_flag): there a
    missing tool fails its tests instead of skipping them."""
    return env_flag("CI")


HELLO_MAIN = 'fn main() { println!("hello {}", env!("CARGO_PKG_VERSION")); }\n'


def make_crate(
    root: Path,
    name: str,
    *,
    main_rs: str | None = HELLO_MAIN,
    lib_rs: str | None = None,
    manifest_extra: str = "",
    bins: dict[str, str] | None = None,
) -> Path:
    """Write a small zero-dependency crate and return its Cargo.toml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "src").mkdir(exist_ok=True)
    manifest = f'[package]\nname = "{name}"\nversion = "0.3.1"\nedition = "2021"\n\n[dependencies]\n{manifest_extra}\n'
    if main_rs is not None:
        (root / "src" / "main.rs").write_text(main_rs)
    if lib_rs is not None:
        (root / "src" / "lib.rs").write_text(lib_rs)
    for bin_name, source in (bins or {}).items():
        (root / "src" / "bin").mkdir(exist_ok=True)
        (root / "src" / "bin" / f"{bin_name}.rs").write_text(source)
    (root / "Cargo.toml").write_text(manifest)
    return root / "Cargo.toml"


def app_using(root: Path, dependency: str, feature: str | None = None) -> Path:
    """root/app, whose main prints `dependency::answer()` from the path crate root/DEPENDENCY;
    with `feature`, the dependency is optional behind that feature of app's, on by default."""
    optional = ", optional = true" if feature else ""
    manifest = make_crate(
        root / "app", "app",
        main_rs=f'fn main() {{ println!("{{}}", {dependency}::answer()); }}\n',
        manifest_extra=f'{dependency} = {{ path = "../{dependency}"{optional} }}',
    )  # fmt: skip
    if feature:
        manifest.write_text(
            manifest.read_text() + f'\n[features]\ndefault = ["{feature}"]\n{feature} = ["dep:{dependency}"]\n'
        )
    return manifest


def run_invoke(
    *args: str, cwd: Path = DEMO_COPY, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, the way a user does."""
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )


# What a build logs when it made the release folder again only because the UTC date turned
# since the last one (latest.json's dates follow the day): a test that expects the folder
# kept runs its build once more, which then keeps it.
DAY_TURNED = "made again: day changed"


def host_build(manifest: Path, out_dir: Path) -> tuple[str, list[str], list[str]]:
    """`build --profile fast --json` of this host's target in the crate's folder, as a user runs
    it: its log, the binaries the report names, and the file names its archive holds."""
    import json
    import tarfile

    result = run_invoke(
        "build", "--target", "x86_64-unknown-linux-gnu", "--profile", "fast", "--out-dir", str(out_dir), "--json",
        cwd=manifest.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (target,) = json.loads(result.stdout)["targets"]
    (archive,) = out_dir.glob("*.tar.xz")
    with tarfile.open(archive) as opened:
        members = sorted(Path(name).name for name in opened.getnames() if "/" in name)
    return result.stderr, sorted(b["name"] for b in target["binaries"]), members


def unless_the_day_turned(run: Callable[[], subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    """run(), and once more if its release folder was made again only for a new UTC day."""
    first = run()
    return run() if DAY_TURNED in first.stderr else first


# One target folder for the slow cross-target tests (the demo for every target
# and the real-crate corpus): std built from source for a target is built
# once for all of them. Only crates with distinct package names go here: two
# copies of one crate would overwrite each other's binaries.
SHARED_TARGET = Path(tempfile.gettempdir()) / f"toolchain-tests-{os.getuid()}" / "target"


@contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 with this handler, for the duration: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shared_target_dir() -> Iterator[Path]:
    saved = os.environ.get("CARGO_TARGET_DIR")
    os.environ["CARGO_TARGET_DIR"] = str(SHARED_TARGET)
    yield SHARED_TARGET
    if saved is None:
        os.environ.pop("CARGO_TARGET_DIR", None)
    else:
        os.environ["CARGO_TARGET_DIR"] = saved


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildReport]:
    """The bundled demo built once per test session with the dist profile."""
    out_dir = tmp_path_factory.mktemp("dist")
    yield build(BuildOptions(out_dir=out_dir))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server: a real HTTP S3 endpoint on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    moto = shutil.which("moto_server") or "moto_server"
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """Real tmpfs mounts of a given size (root only), unmounted afterwards: a disk that fills up."""
    mounted: list[Path] = []

    def mount(name: str, size: int) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            # Mounting needs root; CI runs as root, so there it must work.
            assert not on_ci(), f"cannot mount a tmpfs: {done.stderr.strip()}"
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
