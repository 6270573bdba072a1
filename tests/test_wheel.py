"""The toolkit as a user gets it: the wheel built from this checkout,
installed into a fresh virtual environment outside the checkout, used as
the `toolchain` command in a crate in a temporary folder (no tasks.py),
with a project-local policy override. build → verify → package → installer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_crate
from test_installers import serve

from toolchain import REPO_ROOT

pytestmark = pytest.mark.slow


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: building in place would write build/ and *.egg-info into the checkout.
    source = root / "source"
    # As the checkout holds it: toolchain/data/ links to the data at the repository root.
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "toolchain", source / "toolchain", ignore=ignore, symlinks=True)
    for folder in ("profiles", "targets", "policies"):
        shutil.copytree(REPO_ROOT / folder, source / folder)
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "Dockerfile.build"):
        shutil.copy(REPO_ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", root / "wheels", source], cwd=root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "wheels").glob("toolchain-*.whl")
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True)
    python = root / "venv" / "bin" / "python"
    # Dependencies from the package index (pip's cache makes this quick); the zig extra for the zig runner.
    installed = run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[zig]"], root)
    assert installed.returncode == 0, installed.stderr
    return root / "venv"


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user-crate") / "greeter"
    make_crate(root, "greeter")
    (root / "src" / "main.rs").write_text('fn main() { println!("greeter {}", env!("CARGO_PKG_VERSION")); }\n')
    return root


def environment(venv: Path, crate: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TOOLCHAIN_CONFIG", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["CARGO_TARGET_DIR"] = str(crate.parent / "target")
    env["CI"] = "true"
    return env


@pytest.fixture(scope="module")
def released(venv: Path, crate: Path) -> Iterator[Path]:
    env = environment(venv, crate)
    # The installed package, not this checkout, is what runs.
    where = run([venv / "bin" / "python", "-c", "import toolchain; print(toolchain.__file__)"], crate, env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    key = run(["toolchain", "keygen", "--out-dir", crate.parent / "keys"], crate, env)
    assert key.returncode == 0, key.stderr
    (crate / "toolchain.toml").write_text(f'[sign]\nsecret-key-file = "{crate.parent / "keys" / "minisign.key"}"\n')
    yield crate / "dist"


def test_console_command_lists_tasks_outside_the_checkout(venv: Path, crate: Path) -> None:
    listed = run(["toolchain", "--list"], crate, environment(venv, crate))
    assert listed.returncode == 0, listed.stderr
    for name in ("build", "doctor", "inspect", "package", "verify", "update"):
        assert f"  {name}" in listed.stdout


def test_project_policy_override_is_applied_and_shown(venv: Path, crate: Path, released: Path) -> None:
    env = environment(venv, crate)
    # A project-local policy that forbids every shared library (it empties the toolkit's
    # system list and allows one name no binary links): the build must fail by it.
    (crate / "policies").mkdir(exist_ok=True)
    (crate / "policies" / "linux.toml").write_text('[libraries]\nlists = []\nallowed = ["libdoesnotexist.so"]\n')
    doctor = run(["toolchain", "doctor", "--json"], crate, env)
    data = {(d["kind"], d["name"]): d["origins"] for d in json.loads(doctor.stdout)["data"]}
    assert data[("policy", "linux")][-1] == str(crate / "policies" / "linux.toml")
    assert "site-packages/toolchain/data/policies/linux.toml" in data[("policy", "linux")][0]
    refused = run(["toolchain", "build"], crate, env)
    assert refused.returncode == 7, refused.stderr
    assert f"breaks rule 'libraries' of {crate / 'policies' / 'linux.toml'}" in refused.stderr
    # The override relaxed again to the libraries a glibc binary needs: it builds.
    (crate / "policies" / "linux.toml").write_text(
        '[libraries]\nlists = []\nallowed = ["libc.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "ld-*"]'
    )
    built = run(["toolchain", "build", "--json"], crate, env)
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert report["ok"] and report["out_dir"] == str(released)
    assert report["targets"][0]["binaries"][0]["package"] == "greeter"


def test_verify_and_the_installer_work_on_the_release(venv: Path, crate: Path, released: Path) -> None:
    env = environment(venv, crate)
    # The release folder is made by the build in the test above (module order).
    assert (released / "sha256.sum").is_file(), "the build of the policy-override test did not finish"
    verified = run(
        ["toolchain", "verify", "--path", released, "--public-key", crate.parent / "keys" / "minisign.pub"], crate, env
    )
    assert verified.returncode == 0, verified.stderr
    home = crate.parent / "home"
    home.mkdir()
    for url in serve(released):
        installed = subprocess.run(
            ["sh", str(released / "greeter-installer.sh"), "--no-modify-path"],
            env={"PATH": os.environ["PATH"], "HOME": str(home), "GREETER_DOWNLOAD_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
    ran = subprocess.run([home / ".local" / "bin" / "greeter"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "greeter 0.3.1"
