"""A small schema for the TOML data files (targets, profiles, settings).

Unknown keys are rejected with a "did you mean" suggestion, wrong types and
values name the file, the line and the allowed values, and malformed TOML is
reported with its file and line.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import ConfigError


@dataclass(frozen=True)
class Key:
    """One key of a table: its accepted types, whether it must be there,
    and (optionally) the only values it may take or a pattern it must match."""

    types: tuple[type, ...]
    required: bool = False
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    item_types: tuple[type, ...] | None = None  # for lists
    item_choices: tuple[Any, ...] | None = None  # for lists: the only values an item may take
    doc: str = ""
    minimum: float | None = None  # for numbers


@dataclass(frozen=True)
class Table:
    """A TOML table with known keys; `values` describes every entry of a
    table whose keys are free-form but must match `key_pattern`."""

    keys: Mapping[str, Key | Table] = field(default_factory=dict)
    required: bool = False
    values: Key | None = None
    key_choices: tuple[str, ...] | None = None
    doc: str = ""


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; malformed TOML is a ConfigError with file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})", hint="save it as UTF-8") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _decode_position(exc)
        reason = str(exc).split(" (at ")[0]
        raise ConfigError(f"{path}{where}: malformed TOML: {reason}", hint="fix the syntax on that line") from exc


def _decode_position(exc: tomllib.TOMLDecodeError) -> str:
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return f":{lineno}"
    match = re.search(r"at line (\d+)", str(exc))
    return f":{match.group(1)}" if match else ""


def suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The nearest candidate, if one is close enough to be a likely typo."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    near = suggest(word, candidates)
    if near:
        return f"did you mean '{near}'?"
    return "expected one of: " + ", ".join(sorted(candidates))


def validate(
    document: Mapping[str, Any], schema: Table, path: Path, *, prefix: str = "", partial: bool = False
) -> None:
    """Check a parsed document against its schema; raise on the first fault.

    `partial` checks an override layer: every key it sets must be known and
    well-typed, but required keys may come from the layer below it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    _validate_table(document, schema, path, text, prefix=prefix, partial=partial)


def _where(path: Path, text: str, key: str) -> str:
    line = find_line(text, key)
    return f"{path}:{line}" if line else str(path)


def find_line(text: str, key: str) -> int | None:
    """The line a key is set on, to point the user at it."""
    leaf = key.rsplit(".", 1)[-1]
    pattern = re.compile(rf'^\s*(?:"{re.escape(leaf)}"|{re.escape(leaf)})\s*=|^\s*\[\[?\s*{re.escape(key)}\s*\]')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return None


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_value(value: Any, spec: Key, path: Path, text: str, dotted: str) -> None:
    def at() -> str:
        # Looked up only for an error: scanning the file for every key of every
        # valid document was most of the cost of loading the settings.
        return _where(path, text, dotted)

    # bool is a subclass of int in Python; TOML keeps them apart, so do we.
    ok_type = any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in spec.types)
    if not ok_type:
        raise ConfigError(
            f"{at()}: '{dotted}' must be {_type_names(spec.types)}, not {value!r}",
            hint="change the value",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{at()}: '{dotted}' is {value!r}", hint="use a finite number")
    if spec.minimum is not None and isinstance(value, int | float) and value < spec.minimum:
        raise ConfigError(f"{at()}: '{dotted}' is {value!r}, below {spec.minimum:g}", hint="use a larger value")
    if spec.choices is not None and value not in spec.choices:
        choices = ", ".join(repr(c) for c in spec.choices)
        near = suggest(str(value), [str(c) for c in spec.choices])
        extra = f" (did you mean {near!r}?)" if near else ""
        raise ConfigError(f"{at()}: '{dotted}' is {value!r}{extra}", hint=f"allowed values: {choices}")
    if spec.pattern is not None and isinstance(value, str) and not re.fullmatch(spec.pattern, value):
        raise ConfigError(
            f"{at()}: '{dotted}' is {value!r}, which does not match {spec.pattern}",
            hint="change the value",
        )
    if isinstance(value, list) and spec.item_types is not None:
        for item in value:
            if not isinstance(item, spec.item_types) or isinstance(item, bool):
                raise ConfigError(
                    f"{at()}: every item of '{dotted}' must be {_type_names(spec.item_types)}, not {item!r}",
                    hint="change the value",
                )
            if spec.item_choices is not None and item not in spec.item_choices:
                raise ConfigError(
                    f"{at()}: '{dotted}' has {item!r}; {did_you_mean(str(item), [str(c) for c in spec.item_choices])}",
                    hint="fix or remove it",
                )


def _validate_table(
    document: Mapping[str, Any], schema: Table, path: Path, text: str, prefix: str, partial: bool = False
) -> None:
    for name, value in document.items():
        dotted = f"{prefix}{name}"
        if schema.values is not None:
            if schema.key_choices is not None and name not in schema.key_choices:
                raise ConfigError(
                    f"{_where(path, text, dotted)}: unknown key '{dotted}'; {did_you_mean(name, schema.key_choices)}",
                    hint="fix or remove it",
                )
            _check_value(value, schema.values, path, text, dotted)
            continue
        spec = schema.keys.get(name)
        if spec is None:
            raise ConfigError(
                f"{_where(path, text, dotted)}: unknown key '{dotted}'; {did_you_mean(name, list(schema.keys))}",
                hint="fix or remove it",
            )
        if isinstance(spec, Table):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{_where(path, text, dotted)}: '{dotted}' must be a table",
                    hint=f"write it as [{dotted}]",
                )
            _validate_table(value, spec, path, text, prefix=f"{dotted}.", partial=partial)
        else:
            _check_value(value, spec, path, text, dotted)
    for name, spec in schema.keys.items():
        if spec.required and name not in document and not partial:
            raise ConfigError(f"{path}: required key '{prefix}{name}' is missing", hint="add it")
