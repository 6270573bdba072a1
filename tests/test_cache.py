"""The shared compile cache (sccache) against a real S3 endpoint: moto's
server on 127.0.0.1. Two clean "machines" are simulated on one host, one
after the other, with the same paths (as CI runners have) and nothing kept
between them but the bucket: a fresh checkout, an empty CARGO_HOME and an
empty target folder each. The second machine must take at least 90% of the
cacheable dependency compilations from the cache, and build the same bytes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import make_crate, run_invoke

from toolchain import REPO_ROOT
from toolchain.compile.cache import (
    check_reachable,
    container_env,
    container_script,
    free_port,
    redacted,
)
from toolchain.compile.cargo import load_project, select
from toolchain.compile.routes import Route
from toolchain.compile.runners import BuildJob
from toolchain.compile.runners.container import CACHE_STATS, ContainerRunner
from toolchain.config.settings import CacheSettings, load_settings
from toolchain.errors import ConfigError
from toolchain.pipeline.targets import BuildOptions, BuildReport, build
from toolchain.records.build_record import CacheStats, load_record

CORPUS_CLI = REPO_ROOT / "tests" / "corpus" / "cli"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
LIB = 'pub fn greet() -> String { format!("hello {}", 6 * 7) }\n'
MAIN = 'fn main() { println!("{}", small::greet()); }\n'


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> tuple[Any, str]:
    import boto3

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = "cache-" + request.node.name.lower().replace("_", "-")[:40]
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    return client, name


def s3_cache(endpoint: str, bucket: str) -> CacheSettings:
    return CacheSettings(backend="s3", bucket=bucket, prefix="ci", endpoint_url=endpoint, region="us-east-1")


def fresh_machine(root: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean machine at fixed paths: a new checkout, an empty CARGO_HOME and target folder."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root / "checkout", ignore=shutil.ignore_patterns("target"))
    (root / "cargo-home").mkdir()
    monkeypatch.setenv("CARGO_HOME", str(root / "cargo-home"))
    monkeypatch.setenv("CARGO_TARGET_DIR", str(root / "target"))
    return root / "checkout" / "Cargo.toml"


def build_on(manifest: Path, cache: CacheSettings, profile: str, out_dir: Path) -> BuildReport:
    settings = msgspec.structs.replace(load_settings(), cache=cache)
    return build(BuildOptions(manifest_path=manifest, profile=profile, out_dir=out_dir), settings)


def digest(report: BuildReport) -> str:
    (result,) = report.results
    assert result.ok, result.entry.error
    return result.binaries[0].sha256


@pytest.fixture(scope="module")
def vendored_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus CLI crate with its registry dependencies vendored (`cargo vendor`,
    from the registry or this user's cargo cache), so a machine with an empty
    CARGO_HOME builds it without a download."""
    root = tmp_path_factory.mktemp("vendored") / "cli"
    shutil.copytree(CORPUS_CLI, root, ignore=shutil.ignore_patterns("target"))
    config = subprocess.run(
        ["cargo", "vendor", "--locked", "vendor"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    (root / ".cargo").mkdir()
    (root / ".cargo" / "config.toml").write_text(config)
    return root


@pytest.mark.slow
def test_second_machine_takes_dependencies_from_s3_and_builds_the_same_bytes(
    vendored_cli: Path, bucket: tuple[Any, str], s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, name = bucket
    cache = s3_cache(s3_endpoint, name)
    machine = tmp_path / "machine"

    first = build_on(fresh_machine(machine, vendored_cli, monkeypatch), cache, "fast", tmp_path / "dist-1")
    cold = first.results[0].entry.cache
    assert cold is not None and cold.fallback is None
    assert cold.hits == 0 and cold.misses >= 10, cold  # every dependency library compiled and stored

    second = build_on(fresh_machine(machine, vendored_cli, monkeypatch), cache, "fast", tmp_path / "dist-2")
    warm = second.results[0].entry.cache
    assert warm is not None and warm.errors == 0
    assert warm.cacheable == cold.cacheable
    assert warm.hit_rate >= 0.9, warm
    # The cache never changes outputs: the same binary as a build without it.
    plain = build_on(fresh_machine(machine, vendored_cli, monkeypatch), CacheSettings(), "fast", tmp_path / "dist-3")
    assert digest(first) == digest(second) == digest(plain)
    assert plain.results[0].entry.cache is None

    # The hits stay in the build record and go into --json.
    entry = load_record(tmp_path / "dist-2").entry("x86_64-unknown-linux-gnu")
    assert entry is not None and entry.cache == warm
    assert second.to_dict()["targets"][0]["cache"]["hits"] == warm.hits


def small_crate(root: Path) -> Path:
    """A crate whose library is one cacheable compilation (the release profile is not incremental)."""
    return make_crate(root, "small", main_rs=MAIN, lib_rs=LIB)


def test_unreachable_store_falls_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    report = build_on(small_crate(tmp_path / "crate"), s3_cache(dead, "nowhere"), "release", tmp_path / "dist")
    stats = report.results[0].entry.cache
    assert report.ok and stats is not None and stats.fallback is not None
    warnings = [line for line in capfd.readouterr().err.splitlines() if "compile cache" in line]
    assert len(warnings) == 1 and "compiling without it" in warnings[0], warnings
    assert "testing" not in warnings[0]  # credentials never printed


def test_garbage_in_the_store_falls_back_and_changes_nothing(
    bucket: tuple[Any, str], s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    client, name = bucket
    cache = s3_cache(s3_endpoint, name)
    manifest = small_crate(tmp_path / "crate")
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    first = build_on(manifest, cache, "release", tmp_path / "dist-1")
    assert first.results[0].entry.cache is not None and first.results[0].entry.cache.misses >= 1
    stored = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="ci/").get("Contents", [])]
    entries = [key for key in stored if not key.endswith(".sccache_check")]
    assert entries
    for key in entries:
        client.put_object(Bucket=name, Key=key, Body=b"\x00garbage, not a cache entry" * 7)
    capfd.readouterr()
    shutil.rmtree(tmp_path / "target")  # the same paths, nothing built: every crate asks the store
    second = build_on(manifest, cache, "release", tmp_path / "dist-2")
    stats = second.results[0].entry.cache
    assert second.ok and stats is not None and stats.hits == 0 and stats.errors >= 1, stats
    assert digest(first) == digest(second)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "compile cache" in line]
    assert len(warnings) == 1 and "store errors" in warnings[0], warnings


def test_local_backend_and_the_summary_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crate = small_crate(tmp_path / "crate").parent
    (crate / "toolchain.toml").write_text(f'[cache]\nbackend = "local"\ndir = "{tmp_path / "store"}"\n')
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target"), "NO_COLOR": "1"}
    cold = run_invoke("build", "--profile", "release", "--no-package", cwd=crate, env=env)
    assert cold.returncode == 0, cold.stderr
    assert "0 hit / 1 miss / 0 err" in cold.stdout, cold.stdout
    shutil.rmtree(tmp_path / "target")
    warm = run_invoke("build", "--profile", "release", "--no-package", "--json", cwd=crate, env=env)
    assert warm.returncode == 0, warm.stderr
    stats = json.loads(warm.stdout)["targets"][0]["cache"]
    assert (stats["hits"], stats["misses"], stats["backend"]) == (1, 0, "local"), stats
    off = run_invoke("build", "--profile", "release", "--no-package", "--json", "--cache", "none", cwd=crate, env=env)
    assert json.loads(off.stdout)["targets"][0]["cache"] is None


def test_bad_backend_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crate = small_crate(tmp_path / "crate").parent
    (crate / "toolchain.toml").write_text('[cache]\nbackend = "s4"\n')
    monkeypatch.setenv("TOOLCHAIN_CONFIG", str(crate / "toolchain.toml"))
    with pytest.raises(
        ConfigError, match=r"toolchain.toml:2: 'cache.backend' is 's4'; allowed values: 'none', 'local', 's3'"
    ):
        load_settings(crate)
    monkeypatch.delenv("TOOLCHAIN_CONFIG")
    (crate / "toolchain.toml").unlink()
    result = run_invoke("build", "--cache", "sccache", cwd=crate)
    assert result.returncode == 2 and "unknown compile cache 'sccache'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_the_cache(bucket: tuple[Any, str], s3_endpoint: str, tmp_path: Path) -> None:
    _, name = bucket
    good = check_reachable(s3_cache(s3_endpoint, name))
    assert good.ok and good.fix is None
    missing = check_reachable(s3_cache(s3_endpoint, "no-such-bucket"))
    assert not missing.ok and missing.fix and "bucket" in missing.fix
    dead = check_reachable(s3_cache(f"http://127.0.0.1:{free_port()}", name), timeout=1)
    assert not dead.ok and dead.fix and "endpoint-url" in dead.fix
    (tmp_path / "toolchain.toml").write_text(
        f'[cache]\nbackend = "s3"\nbucket = "{name}"\nendpoint-url = "http://127.0.0.1:{free_port()}"\n'
    )
    shown = run_invoke("doctor", "--json", cwd=tmp_path, env=CREDENTIALS)
    report = json.loads(shown.stdout)["cache"]
    assert report["backend"] == "s3" and report["reachable"] is False and "endpoint-url" in report["fix"]
    assert "testing" not in shown.stdout + shown.stderr


def test_container_builds_get_the_store_by_name_never_in_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    cache = s3_cache("http://127.0.0.1:9000", "team-cache")
    env = container_env(cache)
    assert env["SCCACHE_BUCKET"] == "team-cache" and env["SCCACHE_ENDPOINT"] == "http://127.0.0.1:9000"
    assert env["AWS_SECRET_ACCESS_KEY"] == "testing"  # from the host's environment at run time
    assert redacted(env)["AWS_SECRET_ACCESS_KEY"] == "***"
    assert container_env(CacheSettings()) == {}
    dockerfile = (REPO_ROOT / "Dockerfile.build").read_text()
    assert "SCCACHE_BUCKET" not in dockerfile and "AWS_" not in dockerfile


def test_stats_from_sccache_json() -> None:
    document = {
        "stats": {
            "cache_hits": {"counts": {"Rust": 17}},
            "cache_misses": {"counts": {"Rust": 1}},
            "cache_errors": {"counts": {"Rust": 2}},
            "cache_write_errors": 1,
            "requests_not_cacheable": 12,
        }
    }
    stats = CacheStats.from_sccache("s3", document)
    assert (stats.hits, stats.misses, stats.errors, stats.not_cacheable) == (17, 1, 3, 12)
    assert CacheStats.from_dict(stats.to_dict()) == stats
    assert os.environ.get("SCCACHE_SERVER_PORT") is None  # sessions never leak into this process


def test_ci_workflow_turns_the_cache_on_naming_secrets(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "release.yml"
    assert run_invoke("ci.workflow", "--path", str(path)).returncode == 0
    steps = yaml.safe_load(path.read_text())["jobs"]["build"]["steps"]
    (step,) = [s for s in steps if "invoke build" in s.get("run", "")]
    assert "--cache s3" in step["run"]
    assert step["env"]["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.SCCACHE_AWS_SECRET_ACCESS_KEY }}"
    assert any(re.search(r"pip install -e \"\.\[[^\]]*\bcache\b", s.get("run", "")) for s in steps)
    lint = subprocess.run(["actionlint", str(path)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_container_command_runs_its_own_server_and_leaves_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's command, run for real here under dash with the host's
    sccache and cargo (no engine needed): its own server, the stats file, cargo's exit status."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    manifest = small_crate(tmp_path / "crate")
    project = load_project(manifest)
    settings = msgspec.structs.replace(load_settings(), cache=s3_cache("http://127.0.0.1:9000", "team-cache"))
    job = BuildJob(
        project, tuple(select(project, None, [])), settings.catalog.target("x86_64-unknown-linux-gnu"),
        settings.catalog.profile("release"), False, Route("container-distro", "/usr/bin/rustc"), settings,
        cache_env={"RUSTC_WRAPPER": "sccache"},
    )  # fmt: skip
    runner = ContainerRunner()
    command = runner.command(job)
    assert command[:2] == ["sh", "-c"] and CACHE_STATS in command[2]
    env = runner.environment(job)
    assert env["SCCACHE_BUCKET"] == "team-cache" and env["AWS_ACCESS_KEY_ID"] == "testing"
    assert "SCCACHE_BUCKET" not in runner.environment(replace(job, cache_env={}))  # cache off: nothing passed

    stats = tmp_path / "stats.json"
    script = container_script(["cargo", "build", "--release", "--manifest-path", str(manifest)], str(stats))
    local = {"SCCACHE_DIR": str(tmp_path / "store"), "SCCACHE_SERVER_PORT": str(free_port())}
    run_env = {**os.environ, **local, "CARGO_TARGET_DIR": str(tmp_path / "target")}
    done = subprocess.run(["dash", *script[1:]], env=run_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert CacheStats.from_sccache("local", json.loads(stats.read_text())).misses == 1
    failing = container_script(["false"], str(stats))
    assert subprocess.run(["dash", *failing[1:]], env=run_env, capture_output=True, check=False).returncode == 1


def test_build_minus_h_is_still_help() -> None:
    # invoke would give --cache the short flag -h (c, a and e are taken): -h must stay help.
    shown = run_invoke("build", "-h")
    assert shown.returncode == 0 and "--cache=STRING" in shown.stdout, shown.stderr
