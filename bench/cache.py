"""How much does the shared compile cache save a clean CI machine?

For one corpus crate (default: tests/corpus/cli, clap derive + serde), per
target: a cold build on a clean machine into an empty S3 bucket, then a warm
build on a second clean machine from that bucket. A "machine" is a fresh copy
of the crate (dependencies vendored), an empty CARGO_HOME and an empty target
folder at fixed paths, as CI runners have; only the bucket survives between
the two. The store is moto's S3 server on 127.0.0.1 unless --endpoint names
another (credentials then come from the AWS chain). Targets: the host's and
one whose std is built from source (build-std). Prints wall seconds, the
warm/cold ratio and the warm build's hit rate. Goal: warm <= 0.5x cold.

    python3 bench/cache.py [--crate cli] [--targets HOST,x86_64-apple-darwin]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain import REPO_ROOT
from toolchain.compile.cache import free_port
from toolchain.config.settings import CacheSettings, load_settings
from toolchain.log import log
from toolchain.pipeline.targets import BuildOptions, build
from toolchain.records.build_record import CacheStats

GOAL = 0.5


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = shutil.which("moto_server") or "moto_server"
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=1)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("moto_server did not start (pip install 'moto[server]')")


def vendored(crate: Path, work: Path) -> Path:
    source = work / "source"
    shutil.copytree(crate, source, ignore=shutil.ignore_patterns("target"))
    config = subprocess.run(
        ["cargo", "vendor", "--locked", "vendor"], cwd=source, capture_output=True, text=True, check=True
    ).stdout
    (source / ".cargo").mkdir()
    (source / ".cargo" / "config.toml").write_text(config)
    return source


def machine_build(source: Path, machine: Path, triple: str, cache: CacheSettings) -> tuple[float, CacheStats]:
    """A build on a clean machine; wall seconds and the cache's statistics."""
    shutil.rmtree(machine, ignore_errors=True)
    shutil.copytree(source, machine / "checkout")
    (machine / "cargo-home").mkdir()
    os.environ["CARGO_HOME"] = str(machine / "cargo-home")
    os.environ["CARGO_TARGET_DIR"] = str(machine / "target")
    settings = msgspec.structs.replace(load_settings(), cache=cache)
    options = BuildOptions(
        targets=(triple,), manifest_path=machine / "checkout" / "Cargo.toml", profile="fast", out_dir=machine / "dist"
    )
    started = time.perf_counter()
    report = build(options, settings)
    seconds = time.perf_counter() - started
    (result,) = report.results
    if not result.ok or result.entry.cache is None:
        raise SystemExit(f"{triple}: build failed: {result.entry.error}")
    return seconds, result.entry.cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crate", default="cli", help="a folder of tests/corpus")
    parser.add_argument("--targets", default="", help="comma-separated; default: the host's and x86_64-apple-darwin")
    parser.add_argument("--endpoint", default="", help="an S3 endpoint to use instead of a local moto server")
    parser.add_argument("--bucket", default="toolchain-bench-cache")
    options = parser.parse_args()
    host = load_settings().catalog.host_triple()
    targets = [t for t in options.targets.split(",") if t] or [host, "x86_64-apple-darwin"]

    log.quiet = True
    moto = None
    endpoint = options.endpoint
    if not endpoint:
        moto, endpoint = start_moto()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ[name] = "testing"
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    rows = []
    try:
        import boto3

        source = vendored(REPO_ROOT / "tests" / "corpus" / options.crate, work)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for index, triple in enumerate(targets):
            bucket = f"{options.bucket}-{index}"
            client.create_bucket(Bucket=bucket)
            cache = CacheSettings("s3", bucket=bucket, prefix="bench", endpoint_url=endpoint, region="us-east-1")
            cold, cold_stats = machine_build(source, work / "machine", triple, cache)
            warm, warm_stats = machine_build(source, work / "machine", triple, cache)
            row = {
                "crate": options.crate,
                "target": triple,
                "cold_s": round(cold, 1),
                "warm_s": round(warm, 1),
                "ratio": round(warm / cold, 2),
                "hit_rate": round(warm_stats.hit_rate, 3),
                "hits": warm_stats.hits,
                "cacheable": warm_stats.cacheable,
                "cold_misses": cold_stats.misses,
                "meets_goal": warm / cold <= GOAL,
            }
            rows.append(row)
            print(
                f"{triple}: cold {cold:.1f} s, warm {warm:.1f} s, ratio {warm / cold:.2f} "
                f"(goal <= {GOAL}), hit rate {warm_stats.hit_rate:.0%} ({warm_stats.hits} of {warm_stats.cacheable})",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
