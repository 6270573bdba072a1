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


# The layers, lowest first: a module imports from its own layer and the ones below, never above
# (ARCHITECTURE.md). The floor is the toolkit's own plumbing; records cross every stage.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("toolchain", "errors", "log", "atomic", "digest", "dated", "proc"),
    ("records",),
    ("config",),
    ("compile",),
    ("verify",),
    ("release",),
    ("update",),
    ("report",),
    ("pipeline",),
    ("tasks", "doctor"),
    ("cli",),
)


def _layer(module: str) -> int:
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else parts[0]
    return next(level for level, names in enumerate(LAYERS) if part in names)


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Every import (at any depth of a module, deferred ones too) of a layer above the importer's."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(path, root.parent)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                sources = [_imported_from(path, root.parent, node)]
            elif isinstance(node, ast.Import):
                sources = [alias.name for alias in node.names]
            else:
                continue
            found += [
                f"{importer} imports {source}"
                for source in sources
                if source.startswith("toolchain.") and _layer(source) > _layer(importer)
            ]
    return found


def test_every_layer_imports_only_downward() -> None:
    assert upward_imports() == [], "move the shared part down (records, config), or the caller up"


def test_every_package_has_a_layer() -> None:
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")) or path.name == "data" or path.suffix not in ("", ".py"):
            continue
        _layer(f"toolchain.{path.stem}")  # StopIteration: a new package needs its place in LAYERS


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "toolchain"
    (package / "config").mkdir(parents=True)
    (package / "config" / "a.py").write_text(
        "from toolchain.verify import policy\n\ndef f() -> None:\n    import toolchain.pipeline.targets\n"
    )
    (package / "verify.py").write_text("from toolchain.config import a\n")
    assert upward_imports(package) == [
        "toolchain.config.a imports toolchain.verify",
        "toolchain.config.a imports toolchain.pipeline.targets",
    ]
