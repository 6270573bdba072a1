"""The package's walls: a module's `_private` names are its own.

Read from the source with ast (nothing is imported), so the test is as cheap as ruff."""

from __future__ import annotations

import ast
from pathlib import Path

from toolchain import REPO_ROOT

PACKAGE = REPO_ROOT / "toolchain"


def _module_name(path: Path, top: Path) -> str:
    parts = path.relative_to(top).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_from(path: Path, top: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = _module_name(path, top).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(root: Path = PACKAGE) -> list[str]:
    """Every `from toolchain.X import _name` whose module is not the importer itself."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(path, root.parent)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported_from(path, root.parent, node)
            if not source.startswith("toolchain") or source == importer:
                continue
            found += [
                f"{importer} imports {source}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == [], "give the name a public face in its module, or move the code that needs it"


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    package = tmp_path / "toolchain"
    package.mkdir()
    (package / "a.py").write_text("def _hidden() -> None: ...\n")
    (package / "b.py").write_text("from toolchain.a import _hidden\nfrom .a import _hidden as again\n")
    (package / "c.py").write_text("from toolchain.c import _self_is_fine\nfrom toolchain.a import public\n")
    assert private_imports(package) == ["toolchain.b imports toolchain.a._hidden"] * 2
