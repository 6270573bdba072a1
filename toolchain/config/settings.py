"""Settings: defaults from the package's data/defaults.toml, overridden by a
project's toolchain.toml (found where invoke runs or in a folder above, or
named by TOOLCHAIN_CONFIG). Both are checked against one schema. Loading the
settings also builds the project's catalog of targets, profiles and policies
(toolchain.toml's [targets.*], [profiles.*] and [policies.*] tables, and the
targets/, profiles/ and policies/ folders beside it)."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain import REPO_ROOT
from toolchain.build.cache import BACKENDS, CacheSettings
from toolchain.config import catalog
from toolchain.config.schema import Key, Table, load_toml, validate
from toolchain.errors import ConfigError, ProjectError
from toolchain.release.channels.formats import FORMATS

MACOS_SIGN_MODES = ("auto", "linker", "adhoc", "developer-id")

DEFAULTS_FILE = catalog.packaged("defaults.toml")
PROJECT_FILE_NAME = "toolchain.toml"
# The demo ships with a source checkout of the toolkit (not in the wheel).
DEMO_MANIFEST = REPO_ROOT / "demo" / "Cargo.toml"

SETTINGS_SCHEMA = Table(
    keys={
        "build": Table(
            keys={
                "manifest-path": Key((str,)),
                "profile": Key((str,)),
                "runner": Key((str,), choices=("auto", "native", "zig", "cross", "container")),
                "out-dir": Key((str,)),
                "targets": Key((list,), item_types=(str,)),
                "features": Key((list,), item_types=(str,)),
                "all-features": Key((bool,)),
                "no-default-features": Key((bool,)),
                "locked": Key((bool,)),
                "auditable": Key((bool,)),
                "timings": Key((bool,)),
            }
        ),
        "package": Table(
            keys={
                "include": Key((list,), item_types=(str,)),
                "formats": Key((list,), item_types=(str,), item_choices=FORMATS),
            }
        ),
        "size": Table(
            keys={
                "baseline": Key((str,)),
                "max-growth-percent": Key((float, int), minimum=0),
                "max-growth-bytes": Key((int,), minimum=0),
            }
        ),
        "github": Table(
            keys={
                "repository": Key((str,)),
                "api-url": Key((str,), pattern=r"https?://\S+"),
                "uploads-url": Key((str,), pattern=r"https?://\S+"),
                "token-env": Key((str,), pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
                "tag-template": Key((str,)),
            }
        ),
        "s3": Table(
            keys={
                "bucket": Key((str,)),
                "prefix": Key((str,)),
                "endpoint-url": Key((str,)),
                "region": Key((str,)),
                "multipart-threshold": Key((int,), minimum=5 * 1024 * 1024),
                "multipart-chunk": Key((int,), minimum=5 * 1024 * 1024),
            }
        ),
        "cache": Table(
            keys={
                "backend": Key((str,), choices=BACKENDS),
                "dir": Key((str,)),
                "bucket": Key((str,)),
                "prefix": Key((str,)),
                "endpoint-url": Key((str,), pattern=r"(https?://\S+)?"),
                "region": Key((str,)),
            }
        ),
        "container": Table(
            keys={
                "image": Key((str,)),
                "base-image": Key((str,)),
                "env": Key((list,), item_types=(str,)),
                "user": Key((str,), pattern=r"(\d+:\d+)?"),
                "network": Key((str,), choices=("host", "none", "bridge")),
                "ca-bundle": Key((str,)),
            }
        ),
        "update": Table(
            keys={
                "data-files": Key((list,), item_types=(str,)),
                "backup-command": Key((list,), item_types=(str,)),
                "keep": Key((int,), minimum=0),
                "schema-command": Key((list,), item_types=(str,)),
                "fail-migration-env": Key((str,), pattern=r"[A-Za-z_{}][A-Za-z0-9_{}]*"),
                "seed-commands": Key((list,), item_types=(list,)),
                "metadata-days": Key((int,), minimum=1),
            }
        ),
        "release": Table(keys={"download-url": Key((str,))}),
        "sign": Table(
            keys={
                "secret-key-file": Key((str,)),
                "public-key-file": Key((str,)),
                "authenticode-cert": Key((str,)),
                "authenticode-key": Key((str,)),
                "authenticode-password-env": Key((str,), pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
                "timestamp-url": Key((str,)),
                "macos-sign": Key((str,), choices=MACOS_SIGN_MODES),
                "macos-identity": Key((str,)),
                "macos-password-env": Key((str,), pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
                "macos-hardened-runtime": Key((bool,)),
                "macos-entitlements": Key((str,)),
                "macos-timestamp-url": Key((str,)),
            }
        ),
        "notarize": Table(
            keys={
                "key-file": Key((str,)),
                "key-id": Key((str,)),
                "issuer-id": Key((str,)),
                "api-url": Key((str,), pattern=r"https?://\S+"),
            }
        ),
        "smoke": Table(keys={"checks": Key((list,), item_types=(list,))}),
        "cross": Table(
            keys={
                "images": Table(
                    values=Key((str,)),
                    doc="container image per target triple for the cross runner",
                ),
            }
        ),
    }
)


P12_BASE64_ENV = "TOOLCHAIN_AUTHENTICODE_P12_BASE64"
MACOS_P12_BASE64_ENV = "TOOLCHAIN_MACOS_P12_BASE64"
NOTARY_KEY_ENV = "TOOLCHAIN_NOTARY_KEY"  # the .p8 key's text, in CI


@dataclass(frozen=True)
class AuthenticodeSettings:
    """[sign] authenticode-* keys, resolved against the project folder."""

    cert: Path | None  # a PKCS#12 file, or a PEM certificate (chain)
    key: Path | None  # the PEM private key, when cert is PEM
    password_env: str  # the variable holding the PKCS#12 or key password
    timestamp_url: str  # RFC 3161; empty = no timestamp

    @property
    def configured(self) -> bool:
        return self.cert is not None or bool(os.environ.get(P12_BASE64_ENV))


@dataclass(frozen=True)
class MacSigningSettings:
    """[sign] macos-* keys: how Mach-O binaries are signed (with rcodesign)."""

    mode: str = "auto"  # auto | linker | adhoc | developer-id
    identity: Path | None = None  # a PKCS#12 with a Developer ID Application certificate and key
    password_env: str = "TOOLCHAIN_MACOS_P12_PASSWORD"
    hardened_runtime: bool = True
    entitlements: Path | None = None
    timestamp_url: str = ""  # RFC 3161; notarization needs one (Apple's: http://timestamp.apple.com/ts01)

    @property
    def has_identity(self) -> bool:
        return self.identity is not None or bool(os.environ.get(MACOS_P12_BASE64_ENV))

    @property
    def effective_mode(self) -> str:
        """What happens: `auto` is developer-id with an identity, else the linker's ad hoc signature."""
        if self.mode == "auto":
            return "developer-id" if self.has_identity else "linker"
        return self.mode

    @property
    def signs(self) -> bool:
        """Whether rcodesign re-signs the binaries (the linker's signature is kept otherwise)."""
        return self.effective_mode != "linker"


@dataclass(frozen=True)
class NotarySettings:
    """[notarize]: the App Store Connect API key the notary service takes."""

    key_file: Path | None = None  # the .p8 private key (or its text in $TOOLCHAIN_NOTARY_KEY)
    key_id: str = ""
    issuer_id: str = ""
    api_url: str = "https://appstoreconnect.apple.com/notary/v2"


@dataclass(frozen=True)
class Settings:
    manifest_path: Path | None  # None: found from `cwd` when a task needs it (see manifest())
    profile: str
    runner: str
    configured_out_dir: Path | None  # [build] out-dir when a project sets it
    targets: tuple[str, ...]
    include: tuple[str, ...]
    cross_images: dict[str, str]
    smoke_checks: list[list[str]]
    size_baseline: Path
    max_growth_percent: float
    max_growth_bytes: int
    download_url: str
    update_data_files: tuple[Path, ...]  # the patterns placed on this machine (see expand_data_pattern)
    github: dict[str, str]
    container: dict[str, Any]
    s3: dict[str, Any]
    update_keep: int
    update_metadata_days: int
    secret_key_file: Path | None
    public_key_file: Path | None
    sources: tuple[Path, ...]  # files the values came from, lowest first
    features: tuple[str, ...] = ()
    update_data_patterns: tuple[str, ...] = ()  # [update] data-files as written (the installers bake them)
    update_backup_command: tuple[str, ...] = ()
    all_features: bool = False
    no_default_features: bool = False
    locked: bool = True
    auditable: bool = False  # embed the dependency list with cargo-auditable
    cache: CacheSettings = field(default_factory=CacheSettings)
    timings: bool = False
    schema_command: tuple[str, ...] = ("migrate", "--status")
    fail_migration_env: str = "{APP}_FAIL_MIGRATION"
    seed_commands: tuple[tuple[str, ...], ...] = ()
    project_dir: Path | None = None  # where toolchain.toml (or else the crate) is
    formats: tuple[str, ...] = ()  # [package] formats: the release channels `invoke package` writes
    catalog: catalog.Catalog = field(default_factory=catalog.current)
    cwd: Path = field(default_factory=Path.cwd)
    authenticode: AuthenticodeSettings = field(
        default_factory=lambda: AuthenticodeSettings(None, None, "TOOLCHAIN_AUTHENTICODE_PASSWORD", "")
    )
    macos_signing: MacSigningSettings = field(default_factory=MacSigningSettings)
    notary: NotarySettings = field(default_factory=NotarySettings)

    @property
    def out_dir(self) -> Path:
        """The release folder: [build] out-dir, else dist/ beside the project's Cargo.toml."""
        try:
            return self.out_dir_for(None)
        except ProjectError:
            return self.cwd / "dist"  # a task that needs no crate (verify a downloaded folder...)

    def out_dir_for(self, manifest: Path | None) -> Path:
        """The release folder of the project whose Cargo.toml is `manifest` (default: this one's)."""
        if self.configured_out_dir is not None:
            return self.configured_out_dir
        return (manifest or self.manifest()).parent / "dist"

    def manifest(self, demo: bool = False) -> Path:
        """The Cargo.toml to build: the demo's, the configured one, or cargo's nearest."""
        if demo:
            return demo_manifest()
        return self.manifest_path or default_manifest(self.cwd)


# Tables of toolchain.toml that override the catalog's data, not settings.
CATALOG_TABLES = ("targets", "profiles", "policies")

# [update] data-files may start with a place that differs per user and system.
_DATA_PLACE = re.compile(r"(~|\$\{?HOME\}?|\$\{?XDG_DATA_HOME\}?|%LOCALAPPDATA%)(?=[/\\])")


def installer_data_pattern(pattern: str) -> str | None:
    """The pattern as the installers read it (~/, $HOME/, $XDG_DATA_HOME/, %LOCALAPPDATA%\\ or
    an absolute path); None for a relative path, which has no place on a user's machine."""
    match = _DATA_PLACE.match(pattern)
    if match:
        place = match.group(1).replace("{", "").replace("}", "")
        return place + pattern[match.end() :]
    if pattern.startswith("/") or re.match(r"[A-Za-z]:[/\\]", pattern):
        return pattern
    return None


def expand_data_pattern(pattern: str, env: os._Environ[str] | dict[str, str]) -> str | None:
    """A data-file pattern placed on this (POSIX) machine, the way the shell installer places it;
    None for a Windows-only one. Relative patterns stay relative (to the project)."""
    canonical = installer_data_pattern(pattern)
    if canonical is None:
        return pattern
    home = env.get("HOME", "")
    place, _, rest = canonical.partition("/") if not canonical.startswith("%") else (canonical, "", "")
    if place in ("~", "$HOME"):
        return f"{home}/{rest}" if home else None
    if place == "$XDG_DATA_HOME":
        xdg = env.get("XDG_DATA_HOME", "")
        if xdg.startswith("/"):
            return f"{xdg}/{rest}"
        return f"{home}/.local/share/{rest}" if home else None
    return canonical if canonical.startswith("/") else None


def find_upwards(start: Path, name: str) -> Path | None:
    """`name` in `start` or the nearest folder above it, as cargo finds Cargo.toml."""
    for folder in (start, *start.parents):
        if (folder / name).is_file():
            return folder / name
    return None


def config_file(cwd: Path) -> Path | None:
    named = os.environ.get("TOOLCHAIN_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "missing"
            raise ConfigError(
                f"TOOLCHAIN_CONFIG names {path}, which is {what}",
                hint="point it at a toolchain.toml file, or unset it",
            )
        return path
    return find_upwards(cwd, PROJECT_FILE_NAME)


def default_manifest(cwd: Path) -> Path:
    """The Cargo.toml of the current folder or the nearest above it; inside a
    source checkout of the toolkit with none, the bundled demo."""
    found = find_upwards(cwd, "Cargo.toml")
    if found is not None:
        return found.resolve()
    if DEMO_MANIFEST.is_file() and cwd.resolve().is_relative_to(REPO_ROOT):
        return DEMO_MANIFEST
    raise ProjectError(
        f"no Cargo.toml in {cwd} or any folder above it",
        hint="run in your crate's folder, pass --manifest-path, or set [build] manifest-path in toolchain.toml",
    )


def demo_manifest() -> Path:
    if not DEMO_MANIFEST.is_file():
        raise ProjectError(
            "the demo app ships with a source checkout of the toolkit, not with the installed package",
            hint="run from a checkout of the toolkit's repository, or point --manifest-path at your crate",
        )
    return DEMO_MANIFEST


def load_settings(cwd: Path | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    defaults = load_toml(DEFAULTS_FILE)
    validate(defaults, SETTINGS_SCHEMA, DEFAULTS_FILE)
    sources = [DEFAULTS_FILE]
    merged = {table: dict(values) for table, values in defaults.items()}
    override_path = config_file(cwd)
    base = cwd
    catalog_tables: dict[str, Any] = {}
    if override_path is not None:
        override = load_toml(override_path)
        catalog_tables = {name: override.pop(name) for name in CATALOG_TABLES if name in override}
        validate(override, SETTINGS_SCHEMA, override_path)
        for table, values in override.items():
            merged.setdefault(table, {}).update(values)
        sources.append(override_path)
        base = override_path.parent
    build, package, sign = merged["build"], merged["package"], merged["sign"]
    manifest = build["manifest-path"]
    manifest_path = (base / manifest).resolve() if manifest else None
    project_dir = base if override_path is not None else None
    if project_dir is None:
        found = find_upwards(cwd, "Cargo.toml")
        project_dir = found.parent if found is not None else None
    known = catalog.load_catalog(project_dir, catalog_tables, override_path)
    catalog.use(known)
    return Settings(
        manifest_path=manifest_path,
        profile=build["profile"],
        runner=build["runner"],
        configured_out_dir=(base / build["out-dir"]) if build["out-dir"] else None,
        targets=tuple(build["targets"]),
        include=tuple(package["include"]),
        cross_images=dict(merged.get("cross", {}).get("images", {})),
        smoke_checks=[[str(a) for a in check] for check in merged["smoke"]["checks"]],
        size_baseline=base / merged["size"]["baseline"],
        max_growth_percent=float(merged["size"]["max-growth-percent"]),
        max_growth_bytes=int(merged["size"]["max-growth-bytes"]),
        download_url=merged["release"]["download-url"],
        update_data_files=tuple(
            base / p for p in (expand_data_pattern(f, os.environ) for f in merged["update"]["data-files"]) if p
        ),
        update_data_patterns=tuple(merged["update"]["data-files"]),
        update_backup_command=tuple(merged["update"]["backup-command"]),
        github=dict(merged["github"]),
        container=dict(merged["container"]),
        s3=dict(merged["s3"]),
        update_keep=int(merged["update"]["keep"]),
        update_metadata_days=int(merged["update"]["metadata-days"]),
        secret_key_file=(base / merged["sign"]["secret-key-file"]) if merged["sign"]["secret-key-file"] else None,
        public_key_file=(base / merged["sign"]["public-key-file"]) if merged["sign"]["public-key-file"] else None,
        sources=tuple(sources),
        features=tuple(build["features"]),
        timings=bool(build["timings"]),
        all_features=bool(build["all-features"]),
        no_default_features=bool(build["no-default-features"]),
        locked=bool(build["locked"]),
        auditable=bool(build["auditable"]),
        cache=_cache_settings(merged["cache"], base),
        schema_command=tuple(str(a) for a in merged["update"]["schema-command"]),
        fail_migration_env=str(merged["update"]["fail-migration-env"]),
        seed_commands=tuple(tuple(str(a) for a in c) for c in merged["update"]["seed-commands"]),
        project_dir=project_dir,
        formats=tuple(dict.fromkeys(package["formats"])),
        catalog=known,
        cwd=cwd,
        authenticode=AuthenticodeSettings(
            cert=(base / sign["authenticode-cert"]) if sign["authenticode-cert"] else None,
            key=(base / sign["authenticode-key"]) if sign["authenticode-key"] else None,
            password_env=sign["authenticode-password-env"],
            timestamp_url=sign["timestamp-url"],
        ),
        macos_signing=MacSigningSettings(
            mode=sign["macos-sign"],
            identity=(base / sign["macos-identity"]) if sign["macos-identity"] else None,
            password_env=sign["macos-password-env"],
            hardened_runtime=bool(sign["macos-hardened-runtime"]),
            entitlements=(base / sign["macos-entitlements"]) if sign["macos-entitlements"] else None,
            timestamp_url=sign["macos-timestamp-url"],
        ),
        notary=NotarySettings(
            key_file=(base / merged["notarize"]["key-file"]) if merged["notarize"]["key-file"] else None,
            key_id=merged["notarize"]["key-id"],
            issuer_id=merged["notarize"]["issuer-id"],
            api_url=merged["notarize"]["api-url"],
        ),
    )


def _cache_settings(table: dict[str, Any], base: Path) -> CacheSettings:
    """[cache], with a relative local folder taken from where toolchain.toml is."""
    found = CacheSettings.from_table(table)
    if found.local_dir and not Path(found.local_dir).is_absolute():
        return dataclasses.replace(found, local_dir=str(base / found.local_dir))
    return found
