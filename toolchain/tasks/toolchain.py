"""invoke toolchain.install"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from toolchain.log import log
from toolchain.tasks.base import required, target_list, task


@task(
    help={
        "target": "target triple(s) to provision, comma-separated",
        "offline": "skip rustup; use the distribution's Rust packages",
        "force": "provision even if the target can already be built",
        "json": "print the result as JSON on stdout",
    },
    name="install",
)
def install_task(c: Context, target: str = "", offline: bool = False, force: bool = False, json: bool = False) -> None:
    """Provision the std library and linker a target needs (rustup, else offline)."""
    import contextlib

    from toolchain.compile.context import HERE, CargoContext
    from toolchain.compile.provision import install
    from toolchain.config.settings import load_settings
    from toolchain.errors import ToolchainError

    settings = load_settings()
    context = HERE
    with contextlib.suppress(ToolchainError):  # no crate here: rustup's default toolchain
        context = CargoContext.of(settings.manifest())
    done = [
        install(settings.catalog.target(triple), offline=offline, force=force, context=context)
        for triple in target_list(required(target, "--target"))
    ]
    if json:
        log.json(
            [{"target": d.triple, "route": d.route.name, "detail": d.route.detail, "action": d.action} for d in done]
        )
        return
    log.table(
        "Toolchains",
        ["target", "route", "detail", "action"],
        [[d.triple, d.route.name, d.route.detail, d.action] for d in done],
    )


COLLECTION = Collection("toolchain", install_task)
