"""invoke image.build"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import task


@task(
    help={
        "base-image": "BASE_IMAGE for Dockerfile.build (else [container] base-image; else its default)",
        "force": "rebuild even if an image for this Dockerfile and these arguments exists",
        "json": "print the result as JSON on stdout",
    },
    name="build",
)
def image_build_task(c: Context, base_image: str = "", force: bool = False, json: bool = False) -> None:
    """Build the hermetic build image from Dockerfile.build (skipped when unchanged)."""
    from toolchain.compile.container import build_image
    from toolchain.config.settings import load_settings

    settings = load_settings().container
    tag, built = build_image(
        base_image or settings.base_image,
        network="host",
        force=force,
        ca_bundle=settings.ca_bundle,
    )
    if json:
        log.json({"schema": "toolchain.image/v1", "image": tag, "built": built})
    else:
        log.info(f"{'built' if built else 'unchanged'}: {tag}")


COLLECTION = Collection("image", image_build_task)
