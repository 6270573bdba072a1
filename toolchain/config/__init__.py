"""Configuration: the TOML schema, settings (defaults.toml + a project's
toolchain.toml), and the catalog of targets, profiles and policies merged
from the package's data and a project's own."""
