"""CI for a release: the build matrix from the target data, and a GitHub
Actions workflow (plan → build per target → package/sign/verify → publish
on tags; a dry run with a throwaway key on pull requests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolchain.config.catalog import Catalog
from toolchain.config.targets import Target
from toolchain.errors import ConfigError


@dataclass(frozen=True)
class MatrixEntry:
    target: str
    host: str
    os: str  # GitHub runner label
    runner: str  # the toolkit's runner

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "host": self.host, "os": self.os, "runner": self.runner}


def build_host(target: Target) -> str:
    """Where CI builds a target: Linux targets on x86_64 Linux (zig pins the
    glibc floor); the others on a host that runs them, so they can be smoke-run."""
    if target.os == "linux" and "linux-x86_64" in target.runners:
        return "linux-x86_64"
    for host, how in target.run.items():
        if how == "native" and host in target.runners:
            return host
    return next(iter(target.runners))


def matrix(known: Catalog) -> list[MatrixEntry]:
    entries = []
    for target in sorted(known.targets.values(), key=lambda t: t.triple):
        if not target.release:
            continue
        host = build_host(target)
        if not target.ci.github_runs_on:
            raise ConfigError(
                f"{target.source}: release target {target.triple} names no CI runner",
                hint='add [ci] github-runs-on = "LABEL" (the GitHub Actions runner that builds it)',
            )
        entries.append(MatrixEntry(target.triple, host, target.ci.github_runs_on, target.runners[host][0]))
    return entries


WORKFLOW = """\
# Written by `invoke ci.workflow`: edit the toolkit's data, not this file.
name: release

on:
  push:
    tags: ["v*"]
  pull_request:

permissions:
  contents: read

jobs:
  plan:
    runs-on: ubuntu-24.04
    outputs:
      matrix: ${{ steps.matrix.outputs.matrix }}
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - run: python -m pip install -e .
      - id: matrix
        run: echo "matrix=$(invoke ci.matrix --json --compact)" >> "$GITHUB_OUTPUT"

  build:
    needs: plan
    strategy:
      fail-fast: false
      matrix:
        include: ${{ fromJSON(needs.plan.outputs.matrix) }}
    runs-on: ${{ matrix.os }}
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - run: python -m pip install -e ".[zig,cache,report]"
      - run: invoke toolchain.install --target "${{ matrix.target }}"
      # The shared compile cache: sccache on the bucket named in toolchain.toml's
      # [cache] (bucket, prefix, endpoint-url, region). Without the secrets (a
      # fork's pull request) the build warns once and compiles without it.
      - name: Build (compile cache on S3)
        run: >-
          invoke build --target "${{ matrix.target }}" --runner "${{ matrix.runner }}"
          --out-dir "parts/${{ matrix.target }}" --cache s3 --timings
        env:
          AWS_ACCESS_KEY_ID: ${{ secrets.SCCACHE_AWS_ACCESS_KEY_ID }}
          AWS_SECRET_ACCESS_KEY: ${{ secrets.SCCACHE_AWS_SECRET_ACCESS_KEY }}
      - run: invoke smoke --target "${{ matrix.target }}" --out-dir "parts/${{ matrix.target }}"
      - uses: actions/upload-artifact@v6
        with:
          name: build-${{ matrix.target }}
          path: parts/${{ matrix.target }}
      - name: Build timings (the phase chart and cargo's own timings page)
        uses: actions/upload-artifact@v6
        with:
          name: timings-${{ matrix.target }}
          path: |
            parts/${{ matrix.target }}/build-timings.html
            parts/${{ matrix.target }}/cargo-timings/

  package:
    needs: build
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - run: python -m pip install -e .
      - uses: actions/download-artifact@v7
        with:
          pattern: build-*
          path: parts
      - name: Throwaway signing key (pull requests cannot read the release key)
        if: github.event_name == 'pull_request'
        run: |
          invoke keygen --out-dir "$RUNNER_TEMP/keys"
          echo "TOOLCHAIN_SECRET_KEY_FILE=$RUNNER_TEMP/keys/minisign.key" >> "$GITHUB_ENV"
          echo "PUBLIC_KEY=$RUNNER_TEMP/keys/minisign.pub" >> "$GITHUB_ENV"
      - name: Release signing key
        if: github.event_name != 'pull_request'
        run: echo "PUBLIC_KEY=minisign.pub" >> "$GITHUB_ENV"
      - run: invoke package --merge parts --out-dir dist
        env:
          TOOLCHAIN_SECRET_KEY: ${{ secrets.TOOLCHAIN_SECRET_KEY }}
      - run: invoke verify dist --public-key "$PUBLIC_KEY"
      - run: invoke publish --out-dir dist --public-key "$PUBLIC_KEY" --github --dry-run
      - uses: actions/upload-artifact@v6
        with:
          name: release
          path: dist

  publish:
    needs: package
    if: startsWith(github.ref, 'refs/tags/')
    runs-on: ubuntu-24.04
    permissions:
      contents: write
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - run: python -m pip install -e .
      - uses: actions/download-artifact@v7
        with:
          name: release
          path: dist
      - run: invoke publish --out-dir dist --public-key minisign.pub --github
        env:
          GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}
"""

AUDIT_WORKFLOW_NAME = "audit.yml"

# Beside the release workflow, not in it: a schedule there would run the
# whole release pipeline. Secrets are named here; their values stay in GitHub.
AUDIT_WORKFLOW = """\
# Written by `invoke ci.workflow`: edit the toolkit's data, not this file.
name: audit

on:
  schedule:
    - cron: "23 4 * * *"
  workflow_dispatch:

permissions:
  contents: read

jobs:
  audit:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - run: python -m pip install -e . boto3
      - name: Re-download and re-verify every published release
        run: invoke audit --public-key minisign.pub --json > audit.json
        env:
          GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}
          AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
          AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
      - uses: actions/upload-artifact@v6
        if: always()
        with:
          name: audit
          path: audit.json
"""
