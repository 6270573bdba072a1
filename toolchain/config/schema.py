"""Reading the TOML data files (settings, targets, profiles, policies) into
their typed models.

Each file type is declared once, as msgspec Structs (frozen, unknown keys
forbidden, kebab-case keys). This module parses the TOML, merges the layers
of a document (packaged data, then a project's) and converts the result in
one go; msgspec's first complaint becomes one line naming the file, the line,
the key and what is allowed ("did you mean" for a likely typo). Malformed TOML
is reported with its file and line.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from toolchain.errors import ConfigError

T = TypeVar("T")


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="kebab"):
    """Base of every table of a data file: a key it does not declare is an error."""


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


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest candidate, if one is close enough to be a likely typo."""
    import difflib  # only on an error: loading valid settings does not pay for it

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    near = suggest(word, candidates)
    if near:
        return f"did you mean '{near}'?"
    return "expected one of: " + ", ".join(sorted(candidates))


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]")


def find_line(text: str, key: str) -> int | None:
    """The line a dotted key is set on (its table's header for a table), to point the user at it.

    A key set under its own [table] wins; else the first line that sets a key of that name."""
    parent, _, leaf = key.rpartition(".")
    sets = re.compile(rf'^\s*(?:"{re.escape(leaf)}"|{re.escape(leaf)})\s*=')
    table, first = "", None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = header.group(1).replace('"', "").replace(" ", "")
            if table == key:
                return number
        elif sets.search(line):
            if table == parent:
                return number
            first = first or number
    return first


def merge_documents(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, table by table (a list or a value is replaced whole)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_documents(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Layer:
    """One file's part of a document: the file, what it sets, and the table it
    sits in when that is not the whole file (e.g. [targets.NAME] of toolchain.toml)."""

    path: Path
    document: Mapping[str, Any]
    table: str = ""

    @property
    def origin(self) -> str:
        return f"{self.path} [{self.table}]" if self.table else str(self.path)


def decode(model: type[T], layers: Sequence[Layer]) -> T:
    """The layers merged (the last wins, key by key) and converted to `model` once.

    Every key of every layer ends up in the merged document, so an unknown or
    wrong key in any layer fails here, reported against the topmost layer that
    sets it."""
    document: dict[str, Any] = {}
    for layer in layers:
        document = merge_documents(document, layer.document)
    try:
        return msgspec.convert(document, model)
    except msgspec.ValidationError as exc:
        raise _config_error(str(exc), model, document, layers) from None


def load_record(path: Path, build: Callable[[str, list[Layer]], T]) -> T:
    """One data file on its own, named after its file (tests and tools; builds use the catalog)."""
    return build(path.stem, [Layer(path, load_toml(path))])


# msgspec's messages: "WHAT - at `$.a.b[0]`", or for a dict key "WHAT - at `key` in `$.a`".
_MESSAGE = re.compile(r"^(?P<what>.*?)(?: - at `(?P<at>[^`]*)`(?: in `(?P<parent>[^`]*)`)?)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_TYPE_NAMES = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true/false",
    "array": "a list", "object": "a table",
}  # fmt: skip


def _unwrap(kind: Any) -> Any:
    """The type without Annotated[...] constraints."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    return kind


def _described(kind: Any, fallback: str) -> str:
    """The fix a model's Meta(description=...) gives for a constrained value, else `fallback`."""
    while get_origin(kind) is Annotated:
        for meta in get_args(kind)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
        kind = get_args(kind)[0]
    return fallback


def _choices(kind: Any) -> tuple[Any, ...]:
    """The values a Literal (or a union with Literals and bool) allows; () when it is open."""
    kind = _unwrap(kind)
    if get_origin(kind) is Literal:
        return get_args(kind)
    if get_origin(kind) in (Union, types.UnionType):
        found: list[Any] = []
        for member in get_args(kind):
            member = _unwrap(member)
            if member is msgspec.UnsetType or member is type(None):
                continue
            if member is bool:
                found += [True, False]
            elif get_origin(member) is Literal:
                found += get_args(member)
            else:
                return ()
        return tuple(found)
    return ()


def _field_names(kind: Any) -> tuple[str, ...]:
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return tuple(f.encode_name for f in msgspec.structs.fields(kind))
    return ()


@dataclass
class _Place:
    """Where msgspec's complaint points: the dotted key, its raw value, its declared type."""

    keys: list[str]
    value: Any
    kind: Any
    in_list: bool = False  # the complaint is about one item of a list


def _locate(at: str, model: Any, document: Any) -> _Place:
    place = _Place([], document, model)
    for name, index in _SEGMENT.findall(at.removeprefix("$")):
        kind = _unwrap(place.kind)
        if name:
            fields = {f.encode_name: f.type for f in msgspec.structs.fields(kind)} if _field_names(kind) else {}
            place.keys.append(name)
            place.value = place.value.get(name) if isinstance(place.value, dict) else None
            place.kind = fields.get(name, Any)
        elif index == "...":
            # A dict entry: msgspec does not say which, so find the one that fails.
            value_kind = get_args(kind)[1] if get_args(kind) else Any
            entries = place.value if isinstance(place.value, dict) else {}
            for key, entry in entries.items():
                try:
                    msgspec.convert(entry, value_kind)
                except msgspec.ValidationError:
                    place.keys.append(str(key))
                    place.value = entry
                    break
            place.kind = value_kind
        else:
            args = get_args(kind)
            place.kind = args[0] if args else Any
            items = place.value if isinstance(place.value, list) else []
            place.value = items[int(index)] if int(index) < len(items) else None
            place.in_list = True
    return place


def _has(document: Mapping[str, Any], keys: Sequence[str]) -> bool:
    value: Any = document
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    return True


def _layer_for(layers: Sequence[Layer], keys: Sequence[str], *, lowest: bool = False) -> Layer:
    """The topmost layer that sets the key (the lowest, for a key that is missing)."""
    ordered = list(layers) if lowest else list(reversed(layers))
    return next((layer for layer in ordered if _has(layer.document, keys)), ordered[0])


def _dotted(layer: Layer, keys: Sequence[str]) -> str:
    """A key as the user wrote it (with its [targets.NAME] table when inside toolchain.toml)."""
    return ".".join([layer.table, *keys] if layer.table else keys)


def _where(layer: Layer, keys: Sequence[str]) -> str:
    """FILE:LINE of the key, or FILE when the line cannot be found."""
    try:
        text = layer.path.read_text(encoding="utf-8")
    except OSError:
        return str(layer.path)
    line = find_line(text, _dotted(layer, keys)) if keys else None
    return f"{layer.path}:{line}" if line else str(layer.path)


def _show(value: Any) -> str:
    """A value as TOML spells it (true, not True)."""
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def _type_names(expected: str) -> str:
    names = [name.strip() for name in expected.split("|") if name.strip() != "null"]  # TOML has no null
    return " or ".join(_TYPE_NAMES.get(name, name) for name in names)


def _config_error(message: str, model: Any, document: Mapping[str, Any], layers: Sequence[Layer]) -> ConfigError:
    """msgspec's ValidationError as the project's one-line error with the file, line and fix."""
    match = _MESSAGE.match(message)
    assert match is not None  # the pattern matches any text
    what, at, parent = match.group("what"), match.group("at") or "$", match.group("parent")
    if parent is not None:  # a key of a free-form table that is not allowed, e.g. a host or a rule
        place = _locate(parent, model, document)
        bad = re.search(r"'(.*)'", what)
        keys = [*place.keys, bad.group(1) if bad else what]
        key_kind = get_args(_unwrap(place.kind))
        allowed = [str(c) for c in _choices(key_kind[0])] if key_kind else []  # the keys are strings
        layer = _layer_for(layers, keys)
        return ConfigError(
            f"{_where(layer, keys)}: unknown key '{_dotted(layer, keys)}'; {did_you_mean(keys[-1], allowed)}",
            hint="fix or remove it",
        )
    place = _locate(at, model, document)
    if unknown := re.match(r"Object contains unknown field `(.*)`", what):
        keys = [*place.keys, unknown.group(1)]
        layer = _layer_for(layers, keys)
        return ConfigError(
            f"{_where(layer, keys)}: unknown key '{_dotted(layer, keys)}'; "
            f"{did_you_mean(keys[-1], _field_names(place.kind))}",
            hint="fix or remove it",
        )
    if missing := re.match(r"Object missing required field `(.*)`", what):
        layer = _layer_for(layers, place.keys, lowest=True)
        dotted = _dotted(layer, [*place.keys, missing.group(1)])
        return ConfigError(f"{layer.path}: required key '{dotted}' is missing", hint="add it")
    layer = _layer_for(layers, place.keys)
    where, dotted, value = _where(layer, place.keys), _dotted(layer, place.keys), place.value
    if what.startswith("Expected `object`"):
        return ConfigError(f"{where}: '{dotted}' must be a table", hint=f"write it as [{dotted}]")
    if isinstance(value, float) and not math.isfinite(value):
        return ConfigError(f"{where}: '{dotted}' is {value!r}", hint="use a finite number")
    if what.startswith("Invalid enum value"):
        choices = [str(c) for c in _choices(place.kind)]
        if place.in_list:
            return ConfigError(
                f"{where}: '{dotted}' has {_show(value)}; {did_you_mean(str(value), choices)}", hint="fix or remove it"
            )
        near = suggest(str(value), choices)
        extra = f" (did you mean {near!r}?)" if near else ""
        listed = ", ".join(_show(c) for c in _choices(place.kind))
        return ConfigError(f"{where}: '{dotted}' is {_show(value)}{extra}", hint=f"allowed values: {listed}")
    if bound := re.match(r"Expected `\w+` (>=|>|<=|<) (\S+)$", what):
        side = "below" if bound.group(1).startswith(">") else "above"
        limit = float(bound.group(2))
        return ConfigError(
            f"{where}: '{dotted}' is {_show(value)}, {side} {int(limit) if limit.is_integer() else limit}",
            hint=f"use a {'larger' if side == 'below' else 'smaller'} value",
        )
    if pattern := re.match(r"""Expected `str` matching regex (['"])(.*)\1$""", what):
        shown = pattern.group(2).replace("\\\\", "\\").removeprefix("^").removesuffix("$")
        return ConfigError(
            f"{where}: '{dotted}' is {_show(value)}, which does not match {shown}",
            hint=_described(place.kind, "change the value"),
        )
    if short := re.match(r"Expected `array` of length >= (\d+)$", what):
        return ConfigError(
            f"{where}: '{dotted}' holds an empty list",
            hint=_described(place.kind, f"give it at least {short.group(1)}"),
        )
    if expected := re.match(r"Expected `([^`]*)`, got `[^`]*`", what):
        names = _type_names(expected.group(1))
        if place.in_list:
            return ConfigError(
                f"{where}: every item of '{dotted}' must be {names}, not {_show(value)}", hint="change the value"
            )
        return ConfigError(f"{where}: '{dotted}' must be {names}, not {_show(value)}", hint="change the value")
    return ConfigError(f"{where}: '{dotted}': {what}", hint="change the value")
