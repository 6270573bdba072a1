"""The documentation site: `mkdocs build --strict` builds it (no broken link, no page
missing from the nav), and its generated pages list every setting of the typed model
and every exit code of errors.py."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from toolchain import REPO_ROOT, errors
from toolchain.config.settings import SettingsFile


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def tables(page: str) -> dict[str, str]:
    """The settings page's sections by table name: the HTML from one `[table]` heading to the next."""
    parts = re.split(r"<h3[^>]*>.*?<code>\[([a-z0-9-]+)\]</code>.*?</h3>", page)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_settings_reference_lists_every_key_of_the_model_under_its_table(site: Path) -> None:
    page = tables((site / "settings" / "index.html").read_text())
    for table in msgspec.structs.fields(SettingsFile):
        assert table.encode_name in page, f"[{table.encode_name}] is missing from the settings reference"
        listed = set(re.findall(r"<td><code>([a-z0-9-]+)</code></td>", page[table.encode_name]))
        keys = {field.encode_name for field in msgspec.structs.fields(table.type)}
        assert keys <= listed, f"[{table.encode_name}] keys missing from the page: {sorted(keys - listed)}"


def test_troubleshooting_lists_every_exit_code(site: Path) -> None:
    page = html.unescape((site / "troubleshooting" / "index.html").read_text())
    codes = set(re.findall(r"<tr>\s*<td>(\d+)</td>", page))
    kinds: list[type[errors.ToolchainError]] = [errors.ToolchainError]
    for kind in kinds:
        kinds += kind.__subclasses__()
        assert str(kind.exit_code) in codes and f"<code>{kind.__name__}</code>" in page, kind.__name__
    assert {str(errors.INTERRUPTED), str(errors.BROKEN_PIPE)} <= codes


def test_the_readme_is_a_users_page_and_links_into_the_docs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "## Quick start" in readme and "git+…" not in readme
    linked = set(re.findall(r"\]\((docs/[a-z0-9-]+\.md)", readme))
    assert linked and all((REPO_ROOT / name).is_file() for name in linked), linked
