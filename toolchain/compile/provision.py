"""Provision what a target needs: `rustup target add` where rustup can
download, else the offline route from the distribution's packages."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from toolchain import proc
from toolchain.compile.context import HERE, CargoContext
from toolchain.compile.routes import Route, candidate_routes, forget_sysroots, resolve_route
from toolchain.config.targets import Target, host_platform
from toolchain.errors import MissingToolError
from toolchain.log import log

DISTRO_RUST = ("rustc-web", "cargo-web")


@dataclass(frozen=True)
class Provisioned:
    triple: str
    route: Route
    action: str  # what was done: "already present", "rustup target add", "apt-get install ..."


def offline_packages(target: Target) -> list[str]:
    packages = list(DISTRO_RUST)
    if target.toolchain.std_package:
        packages.append(target.toolchain.std_package)
    elif target.toolchain.build_std:
        packages.append("rust-web-src")
    if f"{target.os}-{target.arch}" != host_platform():
        packages += [p for p in (target.toolchain.linker_package, target.toolchain.cxx_package) if p]
    return packages


def install(target: Target, *, offline: bool = False, force: bool = False, context: CargoContext = HERE) -> Provisioned:
    """context: the project's (its rust-toolchain.toml names the toolchain rustup adds the target to)."""
    if target.components:
        raise MissingToolError(
            f"{target.triple} is made of {', '.join(target.components)}",
            hint="install each of those targets",
        )
    if candidate_routes(target, context=context) and not force:
        route = resolve_route(target, context=context)
        log.info(f"{target.triple}: already buildable through the {route.name} route ({route.detail})")
        return Provisioned(target.triple, route, "already present")
    if not offline and shutil.which("rustup") and not target.toolchain.build_std:
        result = context.run(["rustup", "target", "add", target.triple], check=False, timeout=600)
        if result.returncode == 0:
            forget_sysroots()
            return Provisioned(target.triple, resolve_route(target, context=context), "rustup target add")
        log.warn(f"rustup could not download the {target.triple} std; falling back to the offline route")
    packages = offline_packages(target)
    command = ["apt-get", "install", "-y", *packages]
    if os.geteuid() != 0:
        raise MissingToolError(
            f"the offline route for {target.triple} needs distribution packages",
            hint=f"run as root: {' '.join(command)}",
        )
    foreign = {p.split(":", 1)[1] for p in packages if ":" in p}
    for arch in sorted(foreign):
        proc.run(["dpkg", "--add-architecture", arch], what="dpkg --add-architecture")
    if foreign:
        proc.run(["apt-get", "update", "-qq"], what="apt-get update", timeout=900)
    proc.run(command, env={"DEBIAN_FRONTEND": "noninteractive"}, what="apt-get install", timeout=1800)
    forget_sysroots()
    return Provisioned(target.triple, resolve_route(target, context=context), " ".join(command))
