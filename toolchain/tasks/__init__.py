"""The invoke Collection, built from the task modules of this package (each
made with toolchain.tasks.base.task). `namespace` is what the `toolchain`
command runs and what a project's own tasks.py imports."""

from __future__ import annotations

from invoke.collection import Collection


def build_namespace() -> Collection:
    from toolchain.tasks import (
        audit,
        build,
        channel,
        ci,
        doctor,
        image,
        inspect,
        notarize,
        package,
        publish,
        signing,
        size,
        smoke,
        stdcache,
        symbolicate,
        toolchain,
        update,
        validate_rollback,
        version,
    )

    namespace = Collection()
    for module in (audit, build, doctor, inspect, notarize, size, smoke, symbolicate):
        namespace.add_task(module.TASK)
    groups = (package, update, publish, validate_rollback, channel, signing)
    for task in (task for group in groups for task in group.TASKS):
        namespace.add_task(task)
    namespace.add_collection(toolchain.COLLECTION)
    namespace.add_collection(ci.COLLECTION)
    namespace.add_collection(version.COLLECTION)
    namespace.add_collection(image.COLLECTION)
    namespace.add_collection(stdcache.COLLECTION)
    return namespace


# The collection a project's own tasks.py imports (`from toolchain.tasks import namespace`).
namespace = build_namespace()
