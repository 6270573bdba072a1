"""Route choice (where std comes from) on fake sysroots: the same decisions
on any machine, whatever Rust it has installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.compile import routes
from toolchain.config.catalog import load_catalog
from toolchain.errors import MissingToolError

TARGETS = load_catalog()


def fake_rustc(folder: Path, sysroot: Path) -> Path:
    script = folder / "rustc"
    script.write_text(f'#!/bin/sh\n[ "$1" = "--print" ] && echo {sysroot} || echo "rustc 9.9.9 (fake)"\n')
    script.chmod(0o755)
    return script


def with_std(sysroot: Path, *triples: str) -> Path:
    for triple in triples:
        (sysroot / "lib" / "rustlib" / triple / "lib").mkdir(parents=True)
    return sysroot


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No distribution Rust and no std sources unless a test adds them."""
    monkeypatch.setattr(routes, "DISTRO_RUSTC", tmp_path / "distro" / "bin" / "rustc")
    monkeypatch.setattr(routes, "DISTRO_SYSROOT", tmp_path / "distro")
    monkeypatch.setattr(routes, "VENDORED_STD_SOURCES", tmp_path / "distro" / "lib" / "rustlib" / "src" / "vendor")
    routes.forget_sysroots()
    return tmp_path


def test_rustup_toolchain_with_the_target_is_first(machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sysroot = with_std(machine / ".rustup" / "toolchains" / "stable", "aarch64-unknown-linux-gnu")
    monkeypatch.setenv("RUSTC", str(fake_rustc(machine, sysroot)))
    (route,) = routes.candidate_routes(TARGETS.target("aarch64-unknown-linux-gnu"))
    assert route.name == "rustup" and str(sysroot) in route.detail


def test_a_plain_sysroot_is_not_called_rustup(machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sysroot = with_std(machine / "opt" / "rust", "x86_64-unknown-linux-gnu")
    monkeypatch.setenv("RUSTC", str(fake_rustc(machine, sysroot)))
    assert routes.resolve_route(TARGETS.target("x86_64-unknown-linux-gnu")).name == "sysroot"


def test_distribution_std_when_the_default_toolchain_lacks_the_target(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "RUSTC", str(fake_rustc(machine, with_std(machine / ".rustup" / "x", "x86_64-unknown-linux-gnu")))
    )
    (machine / "distro" / "bin").mkdir(parents=True)
    fake_rustc(machine / "distro" / "bin", machine / "distro")
    with_std(machine / "distro", "aarch64-unknown-linux-gnu")
    route = routes.resolve_route(TARGETS.target("aarch64-unknown-linux-gnu"))
    assert (route.name, route.env["RUSTC"]) == ("distro", str(machine / "distro" / "bin" / "rustc"))


def test_build_std_only_for_targets_that_allow_it_and_only_with_sources(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUSTC", str(fake_rustc(machine, machine / "nothing")))
    (machine / "distro" / "bin").mkdir(parents=True)
    fake_rustc(machine / "distro" / "bin", machine / "distro")
    darwin = TARGETS.target("x86_64-apple-darwin")
    with pytest.raises(MissingToolError, match="no Rust standard library for x86_64-apple-darwin") as caught:
        routes.resolve_route(darwin)
    assert "rustup target add x86_64-apple-darwin" in str(caught.value) and "rust-web-src" in str(caught.value)
    routes.VENDORED_STD_SOURCES.mkdir(parents=True)
    route = routes.resolve_route(darwin)
    assert route.name == "build-std" and route.env["RUSTC_BOOTSTRAP"] == "1" and route.trim_paths
    # aarch64 Linux is not a build-std target: its prebuilt std must exist.
    with pytest.raises(MissingToolError, match="libstd-rust-web-dev:arm64"):
        routes.resolve_route(TARGETS.target("aarch64-unknown-linux-gnu"))
