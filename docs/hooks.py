"""mkdocs hook: the pages that are generated, so they cannot drift from the code.

- `<!-- generated: settings -->` in settings.md becomes the settings reference: every
  table and key of the typed model (toolchain/config/settings.py: SettingsFile), its type
  from the model, its default and description from the packaged defaults.toml (the
  comment block above each key there).
- `<!-- generated: exit-codes -->` in troubleshooting.md becomes one row per exit code,
  from the error classes of toolchain/errors.py and its plain exit codes.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from toolchain import errors
from toolchain.config.settings import DEFAULTS_FILE, SettingsFile

SETTINGS_MARK = "<!-- generated: settings -->"
EXIT_MARK = "<!-- generated: exit-codes -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, settings_reference())
    if EXIT_MARK in markdown:
        markdown = markdown.replace(EXIT_MARK, exit_codes())
    return markdown


def _type_name(info: mi.Type) -> str:
    if isinstance(info, mi.StrType):
        return "string" + (f" matching `{info.pattern}`" if info.pattern else "")
    if isinstance(info, mi.BoolType):
        return "boolean"
    if isinstance(info, mi.IntType | mi.FloatType):
        bounds = [f">= {info.ge}" if info.ge is not None else "", f"<= {info.le}" if info.le is not None else ""]
        if isinstance(info, mi.IntType) and info.ge is None and info.gt is not None:
            bounds[0] = f"> {info.gt}"
        kind = "integer" if isinstance(info, mi.IntType) else "number"
        shown = [b for b in bounds if b and "e+308" not in b]
        return kind + (f" ({', '.join(shown)})" if shown else "")
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(f"`{v}`" for v in info.values)
    if isinstance(info, mi.VarTupleType | mi.ListType):
        return f"list of {_type_name(info.item_type)}"
    if isinstance(info, mi.DictType):
        return f"table of {_type_name(info.value_type)}"
    if isinstance(info, mi.UnionType):
        return " or ".join(_type_name(t) for t in info.types)
    return type(info).__name__.removesuffix("Type").lower()


def defaults_comments(text: str) -> dict[tuple[str, str], str]:
    """(table, key) -> the comment block above the key in defaults.toml; keys that follow
    one block without a blank line share it."""
    found: dict[tuple[str, str], str] = {}
    table, block, shared = "", [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if match := re.fullmatch(r"\[([a-z0-9-]+)\]", stripped):
            table, block, shared = match.group(1), [], ""
        elif stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
        elif not stripped:
            block, shared = [], ""
        elif match := re.match(r"([a-z0-9-]+)\s*=", stripped):
            if block:
                shared, block = " ".join(block), []
            found[(table, match.group(1))] = shared
    return found


def settings_reference() -> str:
    text = DEFAULTS_FILE.read_text(encoding="utf-8")
    defaults = tomllib.loads(text)
    comments = defaults_comments(text)
    root = mi.type_info(SettingsFile)
    assert isinstance(root, mi.StructType)
    out = []
    for table in root.fields:
        section = table.type
        assert isinstance(section, mi.StructType)
        doc = (section.cls.__doc__ or "").strip()
        out.append(f"### `[{table.encode_name}]`\n")
        if doc and not doc.startswith(section.cls.__name__):
            out.append(f"{doc}\n")
        out.append("| key | type | default | what it does |\n| --- | --- | --- | --- |")
        for field in section.fields:
            key = field.encode_name
            if key in defaults.get(table.encode_name, {}):
                default: Any = defaults[table.encode_name][key]
            elif field.default is not msgspec.NODEFAULT:
                default = field.default
            else:
                default = None
            shown = "-" if default is None else f"`{json.dumps(default)}`"
            what = comments.get((table.encode_name, key), "").replace("|", "\\|")
            out.append(f"| `{key}` | {_type_name(field.type)} | {shown} | {what} |")
        out.append("")
    return "\n".join(out)


def exit_codes() -> str:
    rows: list[tuple[int, str, str]] = []

    def walk(cls: type[errors.ToolchainError]) -> None:
        for sub in cls.__subclasses__():
            doc = (sub.__doc__ or "").strip().splitlines()[0]
            rows.append((sub.exit_code, f"`{sub.__name__}`", doc))
            walk(sub)

    rows.append((errors.ToolchainError.exit_code, "`ToolchainError`", "an unforeseen error (the line names the file)"))
    walk(errors.ToolchainError)
    source = Path(errors.__file__).read_text(encoding="utf-8")
    for name, value, comment in re.findall(r"(?m)^([A-Z_]+) = (\d+)\s*#\s*(.*)$", source):
        rows.append((int(value), f"`{name}`", comment))
    table = ["| exit code | kind | meaning |", "| --- | --- | --- |"]
    table += [f"| {code} | {name} | {what} |" for code, name, what in sorted(rows)]
    return "\n".join(table) + "\n"
