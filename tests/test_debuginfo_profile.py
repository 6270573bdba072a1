"""Which builds keep debug info, from the profiles as cargo merges them
(toolchain/compile/debuginfo.py): the toolkit's profile, the project's
[profile.release] it inherits, a project's own profile, cargo's defaults."""

from __future__ import annotations

from typing import Any

import pytest

from toolchain.compile.debuginfo import effective_debug, keeps_debug, strips_symbols
from toolchain.config.catalog import load_catalog


def dist_debug(release: dict[str, Any], skip: frozenset[str] = frozenset()) -> Any:
    return effective_debug(load_catalog().profile("dist"), {"release": release}, True, skip)


@pytest.mark.parametrize(
    ("release", "kept"),
    [
        ({"debug": 1}, True),  # ripgrep's: dist inherits it
        ({"debug": "line-tables-only"}, True),
        ({"debug": True}, True),
        ({"debug": "limited"}, True),
        ({"debug": 0}, False),
        ({"debug": False}, False),
        ({"debug": "none"}, False),
        ({}, False),  # cargo's release default
    ],
)
def test_the_dist_profile_keeps_what_release_sets(release: dict[str, Any], kept: bool) -> None:
    assert keeps_debug(dist_debug(release)) is kept


def test_a_projects_own_profile_follows_its_inherits_chain() -> None:
    profiles: dict[str, dict[str, Any]] = {
        "release": {"debug": 2},
        "ship": {"inherits": "release"},
        "tiny": {"inherits": "ship", "debug": 0},
    }
    catalog = load_catalog()
    dist = catalog.profile("dist")
    own = type(dist)("ship", "", (), None)
    assert keeps_debug(effective_debug(own, profiles, False, frozenset()))
    tiny = type(dist)("tiny", "", (), None)
    assert not keeps_debug(effective_debug(tiny, profiles, False, frozenset()))
    dev = type(dist)("dev", "", (), None)
    assert keeps_debug(effective_debug(dev, {}, False, frozenset()))  # cargo's dev default: full


def test_the_split_copy_is_stripped_as_far_as_the_profile_asks() -> None:
    dist = load_catalog().profile("dist")  # strip = "symbols"
    assert strips_symbols(dist, {"release": {"debug": 1}}, True)
    release = type(dist)("release", "", (), None)
    assert not strips_symbols(release, {"release": {"debug": 1}}, False)
    assert strips_symbols(release, {"release": {"debug": 1, "strip": True}}, False)
