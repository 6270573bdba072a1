"""The hermetic build image and containers, through the docker SDK.

The image is built from Dockerfile.build and tagged with a digest of the
Dockerfile and its build arguments, so an unchanged image is not rebuilt.
Containers the toolkit starts are labelled with their run (process id and
host) and always removed, also on Ctrl-C; the stopped containers of a run that
was killed outright (SIGKILL, a lost machine) are removed by the next run."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolchain.atomic import write_atomic
from toolchain.config.catalog import packaged
from toolchain.errors import BuildError, MissingToolError
from toolchain.log import log

DOCKERFILE = packaged("Dockerfile.build")
IMAGE_REPOSITORY = "toolchain-build"
LABEL = "org.toolchain.run"
# dockerd picks its storage driver (overlay2 where the kernel allows it). Never name vfs here:
# it copies the whole image for every container (7 GB and 45 s for the build image's).
ENGINE_FIX = "start it (as root: dockerd --iptables=false --bridge=none &, or systemctl start docker)"


def client() -> Any:
    """A docker SDK client for a reachable engine, or a MissingToolError with the fix."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise MissingToolError("the docker Python SDK is not installed", hint="pip install docker") from exc
    try:
        engine = docker.from_env(timeout=600)
        engine.ping()
    except DockerException as exc:
        raise MissingToolError("no docker engine is reachable", hint=ENGINE_FIX) from exc
    return engine


def engine_problem() -> str | None:
    try:
        client()
    except MissingToolError as exc:
        return str(exc)
    return None


def build_args(base_image: str) -> dict[str, str]:
    return {"BASE_IMAGE": base_image} if base_image else {}


def extra_ca_certificates(configured: str = "") -> bytes:
    """CA certificates the host trusts beyond the public ones (a proxy's), if any."""
    for candidate in (configured, os.environ.get("PIP_CERT", ""), os.environ.get("SSL_CERT_FILE", ""),
                      os.environ.get("REQUESTS_CA_BUNDLE", "")):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def image_tag(base_image: str, ca_certificates: bytes = b"") -> str:
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    for key, value in sorted(build_args(base_image).items()):
        digest.update(f"\0{key}={value}".encode())
    if ca_certificates:
        digest.update(b"\0ca=" + hashlib.sha256(ca_certificates).digest())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def image_exists(engine: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        engine.images.get(tag)
        return True
    except ImageNotFound:
        return False


def build_image(
    base_image: str, *, network: str = "host", force: bool = False, ca_bundle: str = ""
) -> tuple[str, bool]:
    """Build the image unless this Dockerfile + arguments were built already."""
    engine = client()
    certificates = extra_ca_certificates(ca_bundle)
    tag = image_tag(base_image, certificates)
    if image_exists(engine, tag) and not force:
        log.info(f"{tag} is up to date")
        return tag, False
    # A build context of exactly what the image needs: the Dockerfile, and
    # the host's extra CA certificates so pip can reach the index through a proxy.
    context = Path(tempfile.mkdtemp(prefix="toolchain-image-"))
    shutil.copy(DOCKERFILE, context / DOCKERFILE.name)
    (context / "extra-ca-certificates.crt").write_bytes(certificates)
    with log.group(f"image {tag} from {DOCKERFILE.name}"):
        stream = engine.api.build(
            path=str(context),
            dockerfile=DOCKERFILE.name,
            tag=tag,
            buildargs=build_args(base_image),
            network_mode=network,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk and chunk["stream"].strip():
                log.info(chunk["stream"].rstrip())
            if "error" in chunk:
                shutil.rmtree(context, ignore_errors=True)
                raise BuildError(f"building {tag} failed: {chunk['error'].strip()}", hint="see the build log above")
    shutil.rmtree(context, ignore_errors=True)
    return tag, True


@functools.cache
def image_facts(tag: str) -> tuple[tuple[str, str], ...]:
    """The image's route and toolchain versions, read once per image id
    (cached on disk: starting a container is slow on some storage drivers)."""
    image_id = client().images.get(tag).id.split(":")[-1]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolchain" / f"image-{image_id}.json"
    try:
        return tuple((str(k), str(v)) for k, v in json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass  # not read yet for this image
    script = "cat /etc/toolchain-route; rustc --version; cargo --version; python3 -m ziglang version"
    output = run_quick(tag, ["sh", "-c", script])
    facts = tuple(zip(("route", "rustc", "cargo", "zig"), output.strip().splitlines(), strict=False))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(facts))
    return facts


def run_quick(tag: str, command: list[str], user: str | None = None, volumes: dict[str, Any] | None = None) -> str:
    engine = client()
    with started(engine, tag, command, user=user, volumes=volumes or {}, environment={}, network="none") as box:
        status = box.wait()
        output = box.logs(stdout=True, stderr=True).decode(errors="replace")
    if status.get("StatusCode") != 0:
        raise BuildError(f"{' '.join(command)} failed in {tag}: {output.strip()[-300:]}", hint="rebuild the image")
    return str(output)


def run_label() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _run_is_gone(label: str) -> bool:
    """Whether the run that labelled a container is no longer alive on this host (a label
    without a host is an older release's, which only ever ran on a local engine)."""
    pid_text, _, host = label.partition("@")
    if (host and host != socket.gethostname()) or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def remove_stale_containers(engine: Any) -> None:
    """Remove the stopped containers of runs killed before they could (one list call).
    Running ones and those of live runs or other hosts are never touched."""
    stale = engine.containers.list(all=True, filters={"label": LABEL, "status": ["created", "exited", "dead"]})
    for box in stale:
        if _run_is_gone(box.labels.get(LABEL, "")):
            try:
                box.remove(force=True)
                log.info(f"removed container {box.short_id} left by a killed run")
            except Exception as exc:
                log.warn(f"could not remove container {box.short_id} left by a killed run: {exc}")


@contextmanager
def started(
    engine: Any,
    tag: str,
    command: list[str],
    *,
    user: str | None,
    volumes: dict[str, Any],
    environment: dict[str, str],
    network: str,
    working_dir: str = "/project",
) -> Iterator[Any]:
    """A started container that is removed whatever happens (Ctrl-C included)."""
    remove_stale_containers(engine)
    box = engine.containers.create(
        tag,
        command=command,
        user=user,
        volumes=volumes,
        environment=environment,
        network_mode=network,
        working_dir=working_dir,
        labels={LABEL: run_label()},
        detach=True,
    )
    try:
        box.start()
        yield box
    finally:
        try:
            box.remove(force=True)
        except Exception as exc:
            log.warn(f"could not remove container {box.short_id}: {exc}")


def copy_out(box: Any, path: str, destination: Path) -> Path:
    """One file from a (stopped) container to the host, written by this process."""
    stream, _ = box.get_archive(path)
    data = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=data) as archive:
        member = archive.getmembers()[0]
        handle = archive.extractfile(member)
        if handle is None:
            raise BuildError(f"{path} in the build container is not a file", hint="check the build output")
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(destination, handle.read(), 0o755)
    return destination
