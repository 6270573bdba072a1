"""What the new binary runs after the swap on an upgrade: the app's own
declared [update] upgrade-checks, carried in the signed manifest and baked
into the installers, with `APP --version` as the default.

Found by bench/peers.py (2026-11-27): the upgrade path used to run the demo's
`APP migrate` and `APP doctor` on every app, so an app without those commands
(most real apps) could not be installed over; it was rolled back every time.
The app here has only `--version` and a `selftest` that logs its arguments."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_crate, run_invoke, serving
from test_installers import SHELLS, QuietHandler

from toolchain import REPO_ROOT
from toolchain.errors import UpdateError
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.installers import InstallerUpdate
from toolchain.release.signing import SecretKey, generate
from toolchain.update.artifact import LEGACY_UPGRADE_CHECKS, _upgrade_checks
from toolchain.update.updater import update

PLAIN_MAIN = """\
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--version") => println!("plainapp {}", env!("CARGO_PKG_VERSION")),
        Some("selftest") => {
            let home = std::env::var("HOME").expect("HOME");
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(format!("{home}/selftest.log"))
                .expect("log");
            writeln!(log, "{}", args[1..].join("|")).expect("write");
            if std::env::var_os("PLAINAPP_FAIL_SELFTEST").is_some() {
                eprintln!("selftest: the data is broken");
                std::process::exit(3);
            }
        }
        Some(other) => {
            eprintln!("error: unrecognized subcommand '{other}'");
            std::process::exit(2);
        }
    }
}
"""
HOST = "x86_64-unknown-linux-gnu"
# An argument with a space and one that is a glob: each must reach the app as written.
SELFTEST = ("selftest", "--deep mode", "*")


@dataclass(frozen=True)
class Release:
    folder: Path
    key: SecretKey

    @property
    def archive(self) -> Path:
        return self.folder / f"plainapp-{HOST}.tar.xz"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_target_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("plainapp")
    manifest = make_crate(root / "plainapp", "plainapp", main_rs=PLAIN_MAIN)
    (manifest.parent / "LICENSE").write_text("MIT\n")
    out_dir = root / "built"
    build(BuildOptions(manifest_path=manifest, targets=(HOST,), profile="fast", out_dir=out_dir))
    return out_dir


def released(built: Path, folder: Path, checks: tuple[tuple[str, ...], ...] | None) -> Release:
    """The build packaged with the app's declared checks (None: the default)."""
    shutil.copytree(built, folder)
    key = generate()
    update = InstallerUpdate() if checks is None else InstallerUpdate(checks=checks)
    package_release(folder, key, "", folder, update=update)
    return Release(folder, key)


@pytest.fixture(scope="module")
def plain(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Release:
    return released(built, tmp_path_factory.mktemp("default") / "release", None)


@pytest.fixture(scope="module")
def declared(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Release:
    return released(built, tmp_path_factory.mktemp("declared") / "release", (("--version",), SELFTEST))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "tmp").mkdir(parents=True)
    return tmp_path / "home"


@pytest.fixture
def served(plain: Release, declared: Release) -> Iterator[dict[str, str]]:
    with (
        serving(functools.partial(QuietHandler, directory=str(plain.folder))) as plain_url,
        serving(functools.partial(QuietHandler, directory=str(declared.folder))) as declared_url,
    ):
        yield {"plain": plain_url, "declared": declared_url}


def install_env(url: str, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "PLAINAPP_DOWNLOAD_URL": url,
        "PLAINAPP_INSTALL_DIR": str(home / "bin"),
        "PLAINAPP_NO_MODIFY_PATH": "1",
    }


def install(
    release: Release, url: str, home: Path, shell: str = "dash", **extra: str
) -> subprocess.CompletedProcess[str]:
    env = install_env(url, home) | extra
    installer = str(release.folder / "plainapp-installer.sh")
    return subprocess.run(
        [*SHELLS[shell], installer], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_an_app_without_migrate_or_doctor_can_be_installed_over(
    plain: Release, served: dict[str, str], home: Path
) -> None:
    first = install(plain, served["plain"], home)
    assert first.returncode == 0, first.stderr
    again = install(plain, served["plain"], home)
    assert again.returncode == 0, again.stderr
    assert "'plainapp --version' passed" in again.stdout, again.stdout


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_declared_checks_run_in_order_with_their_arguments_as_written(
    declared: Release, served: dict[str, str], home: Path, shell: str
) -> None:
    assert install(declared, served["declared"], home, shell).returncode == 0
    assert not (home / "selftest.log").exists(), "a first install runs no upgrade check"
    (home / "tmp" / "a-file-the-star-would-match").touch()
    again = subprocess.run(
        [*SHELLS[shell], str(declared.folder / "plainapp-installer.sh")],
        env=install_env(served["declared"], home),
        cwd=home / "tmp",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert (home / "selftest.log").read_text() == "--deep mode|*\n"
    assert "'plainapp --version', 'plainapp selftest --deep mode *' passed" in again.stdout, again.stdout


def test_a_failing_declared_check_restores_the_old_binary(
    declared: Release, served: dict[str, str], home: Path
) -> None:
    assert install(declared, served["declared"], home).returncode == 0
    installed = home / "bin" / "plainapp"
    installed.write_bytes(installed.read_bytes() + b"\0")  # tell the old binary from the new one
    before = installed.read_bytes()
    failed = install(declared, served["declared"], home, PLAINAPP_FAIL_SELFTEST="1")
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    failure = "failed ('plainapp selftest --deep mode *' failed); restored"
    assert last.startswith(f"ERROR: upgrade of plainapp from 0.3.1 to 0.3.1 {failure}"), last
    assert "selftest: the data is broken" in failed.stderr
    assert installed.read_bytes() == before


def test_the_signed_manifest_carries_the_checks(plain: Release, declared: Release) -> None:
    assert json.loads((plain.folder / "manifest.json").read_text())["upgrade_checks"] == [["--version"]]
    assert json.loads((declared.folder / "manifest.json").read_text())["upgrade_checks"] == [
        ["--version"],
        list(SELFTEST),
    ]


def _installed(release: Release, tmp_path: Path) -> Path:
    import tarfile

    binary = tmp_path / "bin" / "plainapp"
    binary.parent.mkdir()
    with tarfile.open(release.archive) as tarball:
        member = tarball.extractfile(f"plainapp-{HOST}/plainapp")
        assert member is not None
        binary.write_bytes(member.read())
    binary.chmod(0o755)
    return binary


def test_the_updater_runs_the_checks_the_manifest_names(plain: Release, declared: Release, tmp_path: Path) -> None:
    public = plain.key.public_key().render()
    binary = _installed(plain, tmp_path)
    result = update(binary, str(plain.archive), public, [], env={"HOME": str(tmp_path)})
    assert result.ok and "migrating" in result.steps and "committed" in result.steps
    assert result.output == "plainapp 0.3.1"


def test_the_updater_rolls_back_when_a_declared_check_fails(declared: Release, tmp_path: Path) -> None:
    binary = _installed(declared, tmp_path)
    binary.write_bytes(binary.read_bytes() + b"\0")
    before = binary.read_bytes()
    env = {"HOME": str(tmp_path), "PLAINAPP_FAIL_SELFTEST": "1"}
    with pytest.raises(UpdateError) as caught:
        update(binary, str(declared.archive), declared.key.public_key().render(), [], env=env)
    assert caught.value.message.startswith(
        "`plainapp selftest --deep mode *` failed with exit code 3 after `plainapp --version`: "
        "selftest: the data is broken"
    ), caught.value.message
    assert binary.read_bytes() == before
    assert (tmp_path / "selftest.log").read_text() == "--deep mode|*\n"


def test_a_manifest_from_before_the_setting_keeps_the_old_contract() -> None:
    """Releases packaged before upgrade-checks existed were upgraded with migrate and doctor:
    their apps count on that migration, so the updater keeps running it for them."""
    assert _upgrade_checks({"artifacts": []}) == LEGACY_UPGRADE_CHECKS == (("migrate",), ("doctor",))
    assert _upgrade_checks({"upgrade_checks": [["a", "b"]]}) == (("a", "b"),)
    malformed: object
    for malformed in ([[]], [["a", 3]], "doctor", [[""]]):
        with pytest.raises(UpdateError, match="malformed 'upgrade_checks'"):
            _upgrade_checks({"upgrade_checks": malformed})


@pytest.mark.parametrize("own_settings", [False, True], ids=["defaults", "its-own-toolchain-toml"])
def test_a_crate_named_by_manifest_path_gets_its_own_settings_not_the_demos(
    own_settings: bool, tmp_path: Path, shared_target_dir: Path
) -> None:
    """`invoke build --manifest-path ../app/Cargo.toml` run from a checkout of the
    toolkit used to read the demo's toolchain.toml there (found from the current
    folder): the app's installers got the demo's `migrate`/`doctor` upgrade checks."""
    crate = tmp_path / "elsewhere"
    make_crate(crate, "manifestpathapp", main_rs=PLAIN_MAIN)
    if own_settings:
        (crate / "toolchain.toml").write_text('[update]\nupgrade-checks = [["selftest", "own"]]\n')
    out = tmp_path / "out"
    result = run_invoke(
        "build", "--manifest-path", str(crate / "Cargo.toml"), "--target", HOST, "--profile", "fast",
        "--out-dir", str(out), "--json", cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["upgrade_checks"] == ([["selftest", "own"]] if own_settings else [["--version"]])
    baked = "UPGRADE_CHECKS='selftest\town'" if own_settings else "UPGRADE_CHECKS='--version'"
    assert f"\n{baked}\n" in (out / "manifestpathapp-installer.sh").read_text()


def test_invoke_package_of_a_crates_release_folder_uses_that_crates_settings(
    tmp_path: Path, shared_target_dir: Path
) -> None:
    """`invoke package --out-dir ../app/dist` rewrites the installers and the manifest:
    with the settings of the project the folder's build record names, not those where
    invoke runs (here the checkout, whose demo declares migrate/doctor)."""
    crate = tmp_path / "elsewhere"
    make_crate(crate, "repackagedapp", main_rs=PLAIN_MAIN)
    (crate / "toolchain.toml").write_text('[update]\nupgrade-checks = [["selftest", "own"]]\n')
    out = tmp_path / "out"
    built = run_invoke(
        "build", "--manifest-path", str(crate / "Cargo.toml"), "--target", HOST, "--profile", "fast",
        "--out-dir", str(out), cwd=REPO_ROOT,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (out / "manifest.json").unlink()
    packaged = run_invoke("package", "--out-dir", str(out), cwd=REPO_ROOT)
    assert packaged.returncode == 0, packaged.stderr
    assert json.loads((out / "manifest.json").read_text())["upgrade_checks"] == [["selftest", "own"]]
    assert "\nUPGRADE_CHECKS='selftest\town'\n" in (out / "repackagedapp-installer.sh").read_text()
