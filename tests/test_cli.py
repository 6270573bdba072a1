"""The invoke tasks as a user runs them: help, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import make_crate, run_invoke

from toolchain.pipeline.targets import BuildReport


def test_list_shows_every_task_with_one_line_help() -> None:
    listing = run_invoke("--list")
    assert listing.returncode == 0
    for name in ("build", "doctor", "inspect"):
        assert re.search(rf"^\s+{name}\s+\S", listing.stdout, re.M), listing.stdout


def test_listing_and_help_load_no_library_behind_the_tasks() -> None:
    """Each task imports what it runs in its body: `--list` and `--help` stay quick."""
    heavy = {"lief", "boto3", "botocore", "docker", "matplotlib", "cryptography", "nacl", "rich", "cyclonedx"}
    for args in (["--list"], ["--help"], ["build", "--help"], ["publish", "--help"]):
        result = run_invoke(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert result.returncode == 0, result.stderr
        imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if "import time:" in line}
        assert "invoke" in imported  # the report is there
        assert not {m for m in imported if m.split(".")[0] in heavy}, args
        toolkit = {m for m in imported if m.startswith("toolchain.")}
        assert toolkit <= {"toolchain.errors", "toolchain.log"} | {
            m for m in toolkit if m.startswith("toolchain.tasks")
        }, (
            args,
            sorted(toolkit),
        )


def _task_names() -> list[str]:
    from toolchain.tasks import namespace

    return sorted(namespace.task_names)


def test_help_works_on_every_task_and_every_option_has_text() -> None:
    names = _task_names()
    assert {"build", "update", "toolchain.install", "publish", "verify", "ci.workflow"} <= set(names)
    for name in names:
        result = run_invoke(name, "--help")
        assert result.returncode == 0, f"{name} --help: {result.stderr}"
        assert result.stdout.startswith(f"Usage: inv[oke] [--core-opts] {name}"), f"{name} --help ran the task"
        options = re.findall(r"^\s+(?:-\w, )?(--[\w-]+)(?:=\w+)?\s*(.*)$", result.stdout, re.M)
        for option, text in options:
            assert text.strip(), f"{name} {option} has no help text"


def test_a_required_option_left_out_is_one_line_and_exit_2() -> None:
    result = run_invoke("update", "--binary", "/nonexistent/app")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --artifact is required; pass --artifact (see --help)"]


def test_unknown_target_is_one_line_and_exit_2() -> None:
    result = run_invoke("build", "--target", "aarch64-unknown-linux-gnux")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: unknown target 'aarch64-unknown-linux-gnux'; did you mean 'aarch64-unknown-linux-gnu'?; "
        "`invoke doctor` lists the known targets; a project adds its own in targets/TRIPLE.toml"
    ]


def test_unknown_profile_is_refused() -> None:
    result = run_invoke("build", "--profile", "dits")
    assert result.returncode == 2
    assert "unknown profile 'dits'; did you mean 'dist'?" in result.stderr


def test_bad_manifest_path_exit_code(tmp_path: Path) -> None:
    result = run_invoke("build", "--manifest-path", str(tmp_path / "Cargo.toml"), "--out-dir", str(tmp_path / "o"))
    assert result.returncode == 4
    assert "no Cargo.toml at" in result.stderr
    assert not (tmp_path / "o").exists()


def test_build_json_on_stdout_only(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "c", "jsontool")
    result = run_invoke(
        "build", "--manifest-path", str(manifest), "--profile", "fast", "--out-dir", str(tmp_path / "o"), "--json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "toolchain.build/v1" and document["ok"] is True
    assert document["targets"][0]["artifacts"][0]["path"].endswith("jsontool-x86_64-unknown-linux-gnu.tar.xz")
    # The command trace goes to stderr (after the environment it sets).
    assert re.search(r"^\+ ([^ ]+=[^ ]+ )*(\S*/)?cargo-zigbuild zigbuild ", result.stderr, re.M), result.stderr


def test_plain_progress_and_github_groups(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "c", "grouped")
    args = ("build", "--manifest-path", str(manifest), "--profile", "fast", "--out-dir", str(tmp_path / "o"))
    result = run_invoke(*args, env={"GITHUB_ACTIONS": "true", "CI": "true"})
    assert result.returncode == 0, result.stderr
    assert "::group::build x86_64-unknown-linux-gnu (fast profile)" in result.stderr
    assert "::endgroup::" in result.stderr
    assert "\x1b[" not in result.stderr + result.stdout  # no colour codes in CI
    assert "Build summary" in result.stdout


def test_inspect_path_json(demo_build: BuildReport) -> None:
    binary = demo_build.results[0].binaries[0]
    result = run_invoke("inspect", "--path", str(binary.path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "toolchain.inspect/v1"
    (entry,) = document["binaries"]
    assert (entry["format"], entry["machine"], entry["stripped"]) == ("elf", "x86_64", True)
    assert entry["size"] == binary.path.stat().st_size
    assert entry["sections"][0]["size"] >= entry["sections"][-1]["size"]


def test_inspect_last_build_of_a_target(demo_build: BuildReport) -> None:
    result = run_invoke("inspect", "--target", "x86_64-unknown-linux-gnu", "--out-dir", str(demo_build.out_dir))
    assert result.returncode == 0, result.stderr
    assert "largest sections" in result.stdout and ".text" in result.stdout
    assert re.search(r"machine\s+ok\s+error\s+x86_64\s+x86_64", result.stdout)
    missing = run_invoke("inspect", "--target", "aarch64-apple-darwin", "--out-dir", str(demo_build.out_dir))
    assert missing.returncode == 2
    assert "aarch64-apple-darwin has not been built" in missing.stderr


def test_inspect_refuses_a_non_executable(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = run_invoke("inspect", "--path", str(empty))
    assert result.returncode == 8 and "is empty" in result.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    result = run_invoke("inspect", "--path", str(text))
    assert result.returncode == 8 and "not an executable" in result.stderr


def test_doctor_reports_tools_and_targets_json() -> None:
    result = run_invoke("doctor", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "toolchain.doctor/v1"
    tools = {t["name"]: t for t in document["tools"]}
    assert tools["cargo"]["ok"] and tools["rustc"]["ok"]
    for tool in tools.values():
        assert tool["ok"] or tool["fix"], f"{tool['name']} is missing but has no fix"
    targets = {t["triple"]: t for t in document["targets"]}
    assert targets["x86_64-unknown-linux-gnu"]["buildable"]
    assert len(targets) == 7  # five release targets, windows-gnu, universal2


def test_doctor_exit_code_for_a_target_this_host_cannot_build() -> None:
    result = run_invoke("doctor", "--target", "x86_64-pc-windows-msvc")
    assert result.returncode == 5
    assert "from Linux build x86_64-pc-windows-gnu" in result.stdout
    assert run_invoke("doctor", "--target", "x86_64-unknown-linux-gnu").returncode == 0


def test_every_exit_code_is_defined_once_in_errors_py() -> None:
    import ast

    from toolchain import errors

    codes: dict[int, str] = {}
    for name, value in vars(errors).items():
        code = value.exit_code if isinstance(value, type) and issubclass(value, errors.ToolchainError) else value
        if name.startswith("_") or not isinstance(code, int) or isinstance(code, bool):
            continue
        if isinstance(value, type) and value is errors.ToolchainError:
            continue
        assert code not in codes, f"{name} and {codes[code]} share exit code {code}"
        codes[code] = name
    assert set(range(2, 16)) <= set(codes), "2..15 are the documented error codes"
    # No module defines its own exit code or error class with one.
    package = Path(errors.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "exit_code" for t in node.targets):
                raise AssertionError(f"{path} sets an exit_code: define the error in errors.py")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Exit":
                for keyword in node.keywords:
                    assert not isinstance(keyword.value, ast.Constant), f"{path}: Exit with a bare code"


def test_an_unusable_out_dir_is_one_line_before_cargo_runs(tmp_path: Path) -> None:
    manifest = make_crate(tmp_path / "crate", "longout")
    result = run_invoke("build", "--manifest-path", str(manifest), "--out-dir", str(tmp_path / ("x" * 300)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: the output folder ")
    assert "File name too long" in result.stderr and "Traceback" not in result.stderr
    assert "cargo" not in result.stderr, "refused before the build"


def test_demo_needs_no_migrate_on_first_use_and_survives_a_closed_pipe(demo_build: BuildReport, tmp_path: Path) -> None:
    import subprocess

    tally = str(demo_build.results[0].binaries[0].path)
    env = {"TALLY_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    added = subprocess.run([tally, "add", "apples", "5"], env=env, capture_output=True, text=True, check=False)
    assert added.returncode == 0, added.stderr
    for number in range(300):
        subprocess.run([tally, "add", f"c{number}"], env=env, capture_output=True, check=True)
    piped = subprocess.run(f"{tally} list | head -1", shell=True, env=env, capture_output=True, text=True, check=False)
    assert piped.stdout.count("\n") == 1 and "panicked" not in piped.stderr, piped.stderr
