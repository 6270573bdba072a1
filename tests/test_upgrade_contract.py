"""The installer's upgrade over an app that has no `migrate` or `doctor`
subcommand: most real apps. A known defect, found by bench/peers.py on
2026-11-27 (stop 22): the upgrade path runs the demo's `APP migrate` and
`APP doctor` after the swap, so the upgrade of such an app fails and is
rolled back. Marked xfail(strict): the fix (post-swap commands declared
by the app, with `APP --version` as the generic default) turns it into an
unexpected pass, which fails until the marker goes."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest
from conftest import make_crate, serving
from test_installers import QuietHandler

from toolchain.build.pipeline import BuildOptions, build
from toolchain.release.folder import package_release
from toolchain.release.signing import generate

PLAIN_MAIN = """\
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--version") => println!("plainapp {}", env!("CARGO_PKG_VERSION")),
        Some(other) => {
            eprintln!("error: unrecognized subcommand '{other}'");
            std::process::exit(2);
        }
    }
}
"""


@pytest.mark.xfail(strict=True, reason="known defect: the upgrade runs the demo's migrate and doctor on every app")
def test_an_app_without_migrate_or_doctor_can_be_installed_over(tmp_path: Path, shared_target_dir: Path) -> None:
    manifest = make_crate(tmp_path / "plainapp", "plainapp", main_rs=PLAIN_MAIN)
    (manifest.parent / "LICENSE").write_text("MIT\n")
    out_dir = tmp_path / "dist"
    build(BuildOptions(manifest_path=manifest, targets=("x86_64-unknown-linux-gnu",), profile="fast", out_dir=out_dir))
    package_release(out_dir, generate(), "", manifest.parent)
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    with serving(functools.partial(QuietHandler, directory=str(out_dir))) as url:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "PLAINAPP_DOWNLOAD_URL": url,
            "PLAINAPP_INSTALL_DIR": str(home / "bin"),
            "PLAINAPP_NO_MODIFY_PATH": "1",
        }
        installer = str(out_dir / "plainapp-installer.sh")
        first = subprocess.run(["sh", installer], env=env, capture_output=True, text=True, timeout=180, check=False)
        assert first.returncode == 0, first.stderr
        again = subprocess.run(["sh", installer], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert again.returncode == 0, again.stderr
