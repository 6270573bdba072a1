"""Settings: defaults from the package's data/defaults.toml, overridden by a
project's toolchain.toml (found where invoke runs or in a folder above, or
named by TOOLCHAIN_CONFIG), merged key by key and converted once into
SettingsFile, the one declaration of the keys. Loading the settings also
builds the project's catalog of targets, profiles and policies
(toolchain.toml's [targets.*], [profiles.*] and [policies.*] tables, and the
targets/, profiles/ and policies/ folders beside it)."""

# No `from __future__ import annotations` here: msgspec gets the field types as objects
# instead of strings it would evaluate when the first file is read.
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from toolchain import REPO_ROOT
from toolchain.config import catalog
from toolchain.config.catalog import Catalog
from toolchain.config.schema import Layer, Model, decode, load_toml
from toolchain.config.targets import RunnerName
from toolchain.errors import ConfigError, ProjectError, require_file
from toolchain.records.formats import Format

DEFAULTS_FILE = catalog.packaged("defaults.toml")
PROJECT_FILE_NAME = "toolchain.toml"
# The demo ships with a source checkout of the toolkit (not in the wheel).
DEMO_MANIFEST = REPO_ROOT / "demo" / "Cargo.toml"

# Every key is documented, with its default, in toolchain/data/defaults.toml.
Url = Annotated[str, Meta(pattern=r"^https?://\S+$")]
EnvName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PartSize = Annotated[int, Meta(ge=5 * 1024 * 1024)]  # S3's smallest multipart part
Count = Annotated[int, Meta(ge=0)]
# One argument the installers bake in: no tab (their word separator), line break or quote.
InstallerWord = Annotated[
    str, Meta(pattern=r"^[^\t\n\r']+$", description="write each argument without tabs, line breaks or quotes")
]
InstallerCommand = Annotated[
    tuple[InstallerWord, ...], Meta(min_length=1, description='give each command its arguments, e.g. ["doctor"]')
]


Backend = Literal["none", "local", "s3"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class CacheSettings(Model, frozen=True):
    """The [cache] table."""

    backend: Backend = "none"
    bucket: str = ""
    prefix: str = ""
    endpoint_url: Annotated[str, Meta(pattern=r"^(https?://\S+)?$")] = ""
    region: str = ""
    local_dir: str = msgspec.field(default="", name="dir")  # empty: sccache's own default folder (~/.cache/sccache)

    @property
    def enabled(self) -> bool:
        return self.backend != "none"

    def describe(self) -> str:
        if self.backend == "s3":
            where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
            return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if self.backend == "local":
            return f"local folder {self.local_dir or '~/.cache/sccache'}"
        return "off"

    def store_env(self) -> dict[str, str]:
        """sccache's variables naming the store (no credentials: sccache reads the AWS chain itself)."""
        if self.backend == "s3":
            env = {"SCCACHE_BUCKET": self.bucket}
            if self.prefix:
                env["SCCACHE_S3_KEY_PREFIX"] = self.prefix
            if self.endpoint_url:
                env["SCCACHE_ENDPOINT"] = self.endpoint_url
                # An endpoint without a scheme is https unless it says otherwise.
                env["SCCACHE_S3_USE_SSL"] = "false" if self.endpoint_url.startswith("http://") else "true"
            if self.region:
                env["SCCACHE_REGION"] = self.region
            return env
        if self.backend == "local" and self.local_dir:
            return {"SCCACHE_DIR": self.local_dir}
        return {}


class BuildSettings(Model, frozen=True):
    manifest_path: str
    profile: str
    runner: Literal["auto", RunnerName]
    out_dir: str
    targets: tuple[str, ...]
    features: tuple[str, ...]
    all_features: bool
    no_default_features: bool
    locked: bool
    auditable: bool  # embed the dependency list with cargo-auditable
    timings: bool
    std_cache: bool  # std built from source kept once per machine (toolchain.compile.stdcache)
    std_cache_dir: str


class PackageSettings(Model, frozen=True):
    include: tuple[str, ...]
    formats: tuple[Format, ...]  # the release channels `invoke package` writes


class CrossSettings(Model, frozen=True):
    images: dict[str, str]  # container image per target triple for the cross runner


class SmokeSettings(Model, frozen=True):
    checks: tuple[tuple[str, ...], ...]


class SizeSettings(Model, frozen=True):
    baseline: str
    max_growth_percent: Annotated[float, Meta(ge=0, le=sys.float_info.max)]  # the upper bound refuses inf
    max_growth_bytes: Count


class ReleaseSettings(Model, frozen=True):
    download_url: str


MacSignMode = Literal["auto", "linker", "adhoc", "developer-id"]
MACOS_SIGN_MODES: tuple[str, ...] = get_args(MacSignMode)


class SignSettings(Model, frozen=True):
    secret_key_file: str
    public_key_file: str
    authenticode_cert: str
    authenticode_key: str
    authenticode_password_env: EnvName
    timestamp_url: str
    macos_sign: MacSignMode
    macos_identity: str
    macos_password_env: EnvName
    macos_hardened_runtime: bool
    macos_entitlements: str
    macos_timestamp_url: str


class NotarizeSettings(Model, frozen=True):
    key_file: str
    key_id: str
    issuer_id: str
    api_url: Url


class UpdateSettings(Model, frozen=True):
    data_files: tuple[str, ...]  # as written (the installers bake them); see Settings.update_data_files
    backup_command: tuple[str, ...]
    keep: Count
    schema_command: tuple[str, ...]
    fail_migration_env: Annotated[str, Meta(pattern=r"^[A-Za-z_{}][A-Za-z0-9_{}]*$")]
    seed_commands: tuple[tuple[str, ...], ...]
    upgrade_checks: tuple[InstallerCommand, ...]
    metadata_days: Annotated[int, Meta(ge=1)]
    min_validity: Annotated[int, Meta(ge=0)]

    def __post_init__(self) -> None:
        # Otherwise every freshly packaged channel would be refused by publish.
        if self.metadata_days <= self.min_validity:
            raise ValueError(
                f"metadata-days ({self.metadata_days}) must be more than min-validity ({self.min_validity})"
            )


class GitHubSettings(Model, frozen=True):
    repository: str
    api_url: Url
    uploads_url: Url
    token_env: EnvName
    tag_template: str


class S3Settings(Model, frozen=True):
    bucket: str
    prefix: str
    endpoint_url: str
    region: str
    multipart_threshold: PartSize
    multipart_chunk: PartSize


class ContainerSettings(Model, frozen=True):
    image: str
    base_image: str
    env: tuple[str, ...]
    user: Annotated[str, Meta(pattern=r"^(\d+:\d+)?$")]
    network: Literal["host", "none", "bridge"]
    ca_bundle: str


class SettingsFile(Model, frozen=True):
    """toolchain.toml (and the package's defaults.toml under it)."""

    build: BuildSettings
    package: PackageSettings
    cross: CrossSettings
    smoke: SmokeSettings
    size: SizeSettings
    release: ReleaseSettings
    sign: SignSettings
    notarize: NotarizeSettings
    update: UpdateSettings
    github: GitHubSettings
    s3: S3Settings
    cache: CacheSettings
    container: ContainerSettings


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


class Settings(SettingsFile, frozen=True, kw_only=True):
    """The settings in force: the merged file, and where it was read."""

    base: Path  # relative paths in the settings are taken from here (toolchain.toml's folder, or cwd)
    sources: tuple[Path, ...]  # files the values came from, lowest first
    project_dir: Path | None = None  # where toolchain.toml (or else the crate) is
    cwd: Path = msgspec.field(default_factory=Path.cwd)
    catalog: Catalog = msgspec.field(default_factory=catalog.current)

    def _path(self, value: str) -> Path | None:
        return self.base / value if value else None

    @property
    def manifest_path(self) -> Path | None:
        """[build] manifest-path; None: found from `cwd` when a task needs it (see manifest())."""
        found = self._path(self.build.manifest_path)
        return found.resolve() if found else None

    @property
    def configured_out_dir(self) -> Path | None:
        return self._path(self.build.out_dir)

    @property
    def size_baseline(self) -> Path:
        return self.base / self.size.baseline

    @property
    def secret_key_file(self) -> Path | None:
        return self._path(self.sign.secret_key_file)

    @property
    def public_key_file(self) -> Path | None:
        return self._path(self.sign.public_key_file)

    @property
    def update_data_files(self) -> tuple[Path, ...]:
        """[update] data-files placed on this machine (see expand_data_pattern)."""
        placed = (expand_data_pattern(pattern, os.environ) for pattern in self.update.data_files)
        return tuple(self.base / p for p in placed if p)

    @property
    def authenticode(self) -> AuthenticodeSettings:
        sign = self.sign
        return AuthenticodeSettings(
            cert=self._path(sign.authenticode_cert),
            key=self._path(sign.authenticode_key),
            password_env=sign.authenticode_password_env,
            timestamp_url=sign.timestamp_url,
        )

    @property
    def macos_signing(self) -> MacSigningSettings:
        sign = self.sign
        return MacSigningSettings(
            mode=sign.macos_sign,
            identity=self._path(sign.macos_identity),
            password_env=sign.macos_password_env,
            hardened_runtime=sign.macos_hardened_runtime,
            entitlements=self._path(sign.macos_entitlements),
            timestamp_url=sign.macos_timestamp_url,
        )

    @property
    def notary(self) -> NotarySettings:
        notarize = self.notarize
        return NotarySettings(
            key_file=self._path(notarize.key_file),
            key_id=notarize.key_id,
            issuer_id=notarize.issuer_id,
            api_url=notarize.api_url,
        )

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
CATALOG_TABLES = catalog.KINDS

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
        message = "TOOLCHAIN_CONFIG names {path}, which is {what}"
        return require_file(Path(named), ConfigError, message, hint="point it at a toolchain.toml file, or unset it")
    found = find_upwards(cwd, PROJECT_FILE_NAME)
    if found is None and _demo_fallback(cwd):
        demo_settings = DEMO_MANIFEST.parent / PROJECT_FILE_NAME  # the demo is a project like any other
        return demo_settings if demo_settings.is_file() else None
    return found


def _demo_fallback(cwd: Path) -> bool:
    """Whether `cwd` is in a source checkout of the toolkit, outside any crate: the demo is the project."""
    return (
        DEMO_MANIFEST.is_file() and cwd.resolve().is_relative_to(REPO_ROOT) and find_upwards(cwd, "Cargo.toml") is None
    )


def default_manifest(cwd: Path) -> Path:
    """The Cargo.toml of the current folder or the nearest above it; inside a
    source checkout of the toolkit with none, the bundled demo."""
    found = find_upwards(cwd, "Cargo.toml")
    if found is not None:
        return found.resolve()
    if _demo_fallback(cwd):
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


def settings_folder(manifest_path: Path | None = None, demo: bool = False) -> Path:
    """Where settings discovery starts for a build: the folder of the crate that
    --manifest-path (or --demo) names, so a project brings its own toolchain.toml
    wherever it is built from; else the current folder."""
    if demo:
        return demo_manifest().parent
    if manifest_path is not None:
        return manifest_path.resolve().parent
    return Path.cwd()


def project_settings(manifests: Sequence[Path]) -> Settings:
    """The settings a build of these Cargo.toml files read (a release folder's record names
    them): discovered from the first one's folder when it is on this machine, else from
    the current folder (a record merged from another machine's build)."""
    here = next((m for m in manifests if m.is_file()), None)
    return load_settings(settings_folder(here) if here is not None else None)


def load_settings(cwd: Path | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    layers = [Layer(DEFAULTS_FILE, load_toml(DEFAULTS_FILE))]
    override_path = config_file(cwd)
    base = cwd
    catalog_tables: dict[str, Any] = {}
    if override_path is not None:
        override = load_toml(override_path)
        catalog_tables = {name: override.pop(name) for name in CATALOG_TABLES if name in override}
        layers.append(Layer(override_path, override))
        base = override_path.parent
    document = decode(SettingsFile, layers)
    project_dir = base if override_path is not None else None
    if project_dir is None:
        found = find_upwards(cwd, "Cargo.toml")
        project_dir = found.parent if found is not None else None
    known = catalog.load_catalog(project_dir, catalog_tables, override_path)
    catalog.use(known)
    tables = msgspec.structs.asdict(document)
    tables["package"] = msgspec.structs.replace(
        document.package, formats=tuple(dict.fromkeys(document.package.formats))
    )
    tables["cache"] = _cache_settings(document.cache, base)
    return Settings(
        **tables,
        base=base,
        sources=tuple(layer.path for layer in layers),
        project_dir=project_dir,
        catalog=known,
        cwd=cwd,
    )


def _cache_settings(cache: CacheSettings, base: Path) -> CacheSettings:
    """[cache], with a relative local folder taken from where toolchain.toml is."""
    if cache.local_dir and not Path(cache.local_dir).is_absolute():
        return msgspec.structs.replace(cache, local_dir=str(base / cache.local_dir))
    return cache
