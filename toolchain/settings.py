"""Settings: defaults from toolchain/defaults.toml, overridden by a project's
toolchain.toml. Both are checked against one schema."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import REPO_ROOT
from toolchain.schema import Key, Table, load_toml, validate

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
PROJECT_FILE_NAME = "toolchain.toml"
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
            }
        ),
        "package": Table(keys={"include": Key((list,), item_types=(str,))}),
        "size": Table(
            keys={
                "baseline": Key((str,)),
                "max-growth-percent": Key((float, int)),
                "max-growth-bytes": Key((int,)),
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
                "multipart-threshold": Key((int,)),
                "multipart-chunk": Key((int,)),
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
        "update": Table(keys={"data-files": Key((list,), item_types=(str,)), "keep": Key((int,))}),
        "release": Table(keys={"download-url": Key((str,))}),
        "sign": Table(keys={"secret-key-file": Key((str,)), "public-key-file": Key((str,))}),
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


@dataclass(frozen=True)
class Settings:
    manifest_path: Path
    profile: str
    runner: str
    out_dir: Path
    targets: tuple[str, ...]
    include: tuple[str, ...]
    cross_images: dict[str, str]
    smoke_checks: list[list[str]]
    size_baseline: Path
    max_growth_percent: float
    max_growth_bytes: int
    download_url: str
    update_data_files: tuple[Path, ...]
    github: dict[str, str]
    container: dict[str, Any]
    s3: dict[str, Any]
    update_keep: int
    secret_key_file: Path | None
    public_key_file: Path | None
    sources: tuple[Path, ...]  # files the values came from, lowest first


def load_settings(cwd: Path | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    defaults = load_toml(DEFAULTS_FILE)
    validate(defaults, SETTINGS_SCHEMA, DEFAULTS_FILE)
    sources = [DEFAULTS_FILE]
    merged = {table: dict(values) for table, values in defaults.items()}
    override_path = Path(os.environ.get("TOOLCHAIN_CONFIG", cwd / PROJECT_FILE_NAME))
    base = cwd
    if override_path.is_file():
        override = load_toml(override_path)
        validate(override, SETTINGS_SCHEMA, override_path)
        for table, values in override.items():
            merged.setdefault(table, {}).update(values)
        sources.append(override_path)
        base = override_path.parent
    build, package = merged["build"], merged["package"]
    manifest = build["manifest-path"]
    return Settings(
        manifest_path=(base / manifest).resolve() if manifest else DEMO_MANIFEST,
        profile=build["profile"],
        runner=build["runner"],
        out_dir=(base / build["out-dir"]),
        targets=tuple(build["targets"]),
        include=tuple(package["include"]),
        cross_images=dict(merged.get("cross", {}).get("images", {})),
        smoke_checks=[[str(a) for a in check] for check in merged["smoke"]["checks"]],
        size_baseline=base / merged["size"]["baseline"],
        max_growth_percent=float(merged["size"]["max-growth-percent"]),
        max_growth_bytes=int(merged["size"]["max-growth-bytes"]),
        download_url=merged["release"]["download-url"],
        update_data_files=tuple(base / f for f in merged["update"]["data-files"]),
        github=dict(merged["github"]),
        container=dict(merged["container"]),
        s3=dict(merged["s3"]),
        update_keep=int(merged["update"]["keep"]),
        secret_key_file=(base / merged["sign"]["secret-key-file"]) if merged["sign"]["secret-key-file"] else None,
        public_key_file=(base / merged["sign"]["public-key-file"]) if merged["sign"]["public-key-file"] else None,
        sources=tuple(sources),
    )
