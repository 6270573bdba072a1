"""The CI matrix and workflow, merging per-job build folders, and version
bumps from conventional commits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import make_crate, run_invoke

from toolchain.pipeline.targets import BuildOptions, build
from toolchain.release.publish import release_notes
from toolchain.release.signing import generate
from toolchain.release.version import commit_level, next_version


def test_matrix_covers_the_release_targets() -> None:
    result = run_invoke("ci.matrix", "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["target"]: e for e in json.loads(result.stdout)}
    assert set(entries) == {
        "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "x86_64-apple-darwin",
        "aarch64-apple-darwin", "x86_64-pc-windows-msvc",
    }  # fmt: skip
    assert entries["aarch64-unknown-linux-gnu"] == {
        "target": "aarch64-unknown-linux-gnu", "host": "linux-x86_64", "os": "ubuntu-24.04", "runner": "zig",
    }  # fmt: skip
    assert entries["aarch64-apple-darwin"]["os"] == "macos-15" and entries["aarch64-apple-darwin"]["runner"] == "native"
    # macos-13 was retired on 2025-12-04: a job asking for it never gets a runner.
    assert entries["x86_64-apple-darwin"]["os"] == "macos-15-intel"
    assert entries["x86_64-pc-windows-msvc"]["os"] == "windows-2022"
    assert "macos-13" not in result.stdout
    compact = run_invoke("ci.matrix", "--compact").stdout
    assert "\n" not in compact.strip() and json.loads(compact) == list(json.loads(result.stdout))


def test_runner_labels_are_target_data_a_project_can_change(tmp_path: Path) -> None:
    (tmp_path / "toolchain.toml").write_text('[targets.x86_64-apple-darwin.ci]\ngithub-runs-on = "macos-16-intel"\n')
    result = run_invoke("ci.matrix", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = {e["target"]: e for e in json.loads(result.stdout)}
    assert entries["x86_64-apple-darwin"]["os"] == "macos-16-intel"


def test_workflow_jobs_and_actionlint(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "workflows" / "release.yml"
    assert run_invoke("ci.workflow", "--path", str(path)).returncode == 0
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["tags"] == ["v*"] and "pull_request" in triggers
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "build", "package", "publish"]
    assert jobs["build"]["needs"] == "plan" and jobs["package"]["needs"] == "build"
    assert jobs["publish"]["needs"] == "package"
    assert jobs["build"]["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert jobs["build"]["runs-on"] == "${{ matrix.os }}"
    assert "refs/tags/" in jobs["publish"]["if"]
    assert jobs["publish"]["permissions"] == {"contents": "write", "id-token": "write", "attestations": "write"}
    runs = " ".join(step.get("run", "") for step in jobs["package"]["steps"])
    assert "invoke verify" in runs and "--dry-run" in runs and "invoke package --merge parts" in runs
    lint = subprocess.run(["actionlint", str(path)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_release_workflow_attests_every_artifact_and_a_schedule_renews_the_channel(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "workflows" / "release.yml"
    assert run_invoke("ci.workflow", "--path", str(path)).returncode == 0
    steps = yaml.safe_load(path.read_text())["jobs"]["publish"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    attest = next(i for i, u in enumerate(uses) if u.startswith("actions/attest-build-provenance@"))
    publish = next(i for i, step in enumerate(steps) if "invoke publish" in step.get("run", ""))
    assert attest < publish  # attested before the release is public
    # What the listing step selects from a real sha256.sum: every archive, installer and package.
    listing = next(step["run"] for step in steps[:attest] if "sha256.sum" in step.get("run", ""))
    sums = tmp_path / "dist" / "sha256.sum"
    sums.parent.mkdir()
    names = ["tally-x86_64-unknown-linux-gnu.tar.xz", "tally-x86_64-pc-windows-gnu.zip", "tally-installer.sh",
             "tally-installer.ps1", "tally_0.1.0_amd64.deb", "tally-0.1.0-1.x86_64.rpm", "tally-0.1.0-r0.apk",
             "tally-0.1.0-x86_64.msi", "manifest.json", "latest.json", "provenance.intoto.json",
             "tally-x86_64-unknown-linux-gnu.tar.xz.cdx.json"]  # fmt: skip
    sums.write_text("".join(f"{'0' * 64}  {name}\n" for name in names))
    run = subprocess.run(["bash", "-e", "-c", listing], cwd=tmp_path, env={"RUNNER_TEMP": str(tmp_path),
                         "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    attested = [line.split()[1] for line in (tmp_path / "attest.sum").read_text().splitlines()]
    assert attested == names[:8]
    assert steps[attest]["with"]["subject-checksums"] == "${{ runner.temp }}/attest.sum"
    renew = yaml.safe_load(path.with_name("renew.yml").read_text())
    assert renew[True]["schedule"][0]["cron"] and renew["jobs"]["renew"]["permissions"] == {"contents": "write"}
    assert any("invoke renew" in step.get("run", "") for step in renew["jobs"]["renew"]["steps"])
    lint = subprocess.run(["actionlint", *map(str, path.parent.glob("*.yml"))], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_package_merges_per_target_build_folders(tmp_path: Path) -> None:
    for triple in ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"):
        build(BuildOptions(targets=(triple,), out_dir=tmp_path / "parts" / triple))
    key = generate()
    (tmp_path / "k.key").write_text(key.render())
    (tmp_path / "k.pub").write_text(key.public_key().render())
    result = run_invoke("package", "--merge", str(tmp_path / "parts"), "--out-dir", str(tmp_path / "dist"),
                        "--secret-key", str(tmp_path / "k.key"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    verified = run_invoke("verify", "--path", str(tmp_path / "dist"), "--public-key", str(tmp_path / "k.pub"), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["folder"] == str(tmp_path / "dist")  # --path, not the default folder
    assert (tmp_path / "dist" / "sha256.sum").is_file()  # --out-dir, likewise
    files = json.loads(verified.stdout)["files"]
    assert "tally-x86_64-unknown-linux-gnu.tar.xz" in files and "tally-aarch64-unknown-linux-gnu.tar.xz" in files


@pytest.mark.parametrize(
    ("version", "level", "expected"),
    [("0.3.1", "patch", "0.3.2"), ("0.3.1", "minor", "0.3.2"), ("0.3.1", "major", "0.4.0"),
     ("1.2.3", "patch", "1.2.4"), ("1.2.3", "minor", "1.3.0"), ("1.2.3", "major", "2.0.0")],
)  # fmt: skip
def test_next_version(version: str, level: str, expected: str) -> None:
    assert next_version(version, level) == expected


def test_commit_levels() -> None:
    assert commit_level("feat(cli): add --json", "") == "minor"
    assert commit_level("fix: crash", "") == "patch"
    assert commit_level("feat!: drop the old format", "") == "major"
    assert commit_level("refactor: tidy", "BREAKING CHANGE: config keys renamed") == "major"
    assert commit_level("docs: typo", "") == "none" and commit_level("Update README", "") == "none"


def git(repo: Path, *args: str) -> None:
    env_args = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "-C", str(repo), *env_args, *args], check=True, capture_output=True)


def test_bump_rewrites_version_lock_and_changelog(tmp_path: Path) -> None:
    repo = tmp_path / "app"
    manifest = make_crate(repo, "bumpy")
    subprocess.run(
        ["cargo", "generate-lockfile", "--offline", "--manifest-path", str(manifest)], check=True, capture_output=True
    )
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n## [0.3.1] - 2026-01-01\n\n- First release\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chore: initial")
    git(repo, "tag", "v0.3.1")
    for message in ("fix: handle empty input", "feat: add a --json flag", "docs: explain flags"):
        (repo / "notes.txt").write_text(message)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)
    dry = run_invoke("version.bump", "--manifest-path", str(manifest), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["new"] == "0.3.2"
    assert 'version = "0.3.1"' in manifest.read_text()
    result = run_invoke("version.bump", "--manifest-path", str(manifest))
    assert result.returncode == 0, result.stderr
    assert 'version = "0.3.2"' in manifest.read_text()
    assert 'name = "bumpy"\nversion = "0.3.2"' in (repo / "Cargo.lock").read_text()
    changelog = (repo / "CHANGELOG.md").read_text()
    assert changelog.index("## [0.3.2]") < changelog.index("## [0.3.1]")
    notes = release_notes(repo, "0.3.2")
    assert "Add a --json flag" in notes and "Handle empty input" in notes and "explain flags" not in notes
    shutil.rmtree(repo / ".git")


def test_nothing_to_release(tmp_path: Path) -> None:
    repo = tmp_path / "quiet"
    manifest = make_crate(repo, "quiet")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chore: initial")
    git(repo, "tag", "v0.3.1")
    git(repo, "commit", "-q", "--allow-empty", "-m", "docs: words")
    result = run_invoke("version.bump", "--manifest-path", str(manifest))
    assert result.returncode == 2 and "no feat, fix, perf or breaking commits since v0.3.1" in result.stderr
