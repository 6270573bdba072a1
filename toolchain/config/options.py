"""The options layer: what the command line asks for (records.build_options.BuildOptions) merged
into the settings files' values, in one place. Everything after it reads the merged settings,
never the options and the settings side by side."""

from __future__ import annotations

import msgspec

from toolchain.config.schema import did_you_mean
from toolchain.config.settings import BACKENDS, Settings
from toolchain.errors import UsageError
from toolchain.records.build_options import BuildOptions


def merged(settings: Settings, options: BuildOptions) -> Settings:
    """The settings with the command line's choices on top (a choice left out keeps the file's).
    Merging twice gives the same settings: the added features are kept once each."""
    if options.cache and options.cache not in BACKENDS:
        raise UsageError(
            f"unknown compile cache '{options.cache}'; {did_you_mean(options.cache, BACKENDS)}",
            hint="pass --cache none, local or s3",
        )
    table = settings.build
    build = msgspec.structs.replace(
        table,
        profile=options.profile or table.profile,
        runner=options.runner or table.runner,
        features=tuple(dict.fromkeys((*table.features, *options.features))),
        all_features=table.all_features if options.all_features is None else options.all_features,
        no_default_features=table.no_default_features if options.no_default_features is None
        else options.no_default_features,
        locked=table.locked if options.locked is None else options.locked,
        timings=table.timings if options.timings is None else options.timings,
    )  # fmt: skip
    cache = msgspec.structs.replace(settings.cache, backend=options.cache) if options.cache else settings.cache
    return msgspec.structs.replace(settings, build=build, cache=cache)
