"""What a crate links, read from its sources without compiling it: the
`#[link(name = "...", kind = "...")]` attributes of its Rust files (with the
`cfg_attr`/`cfg` predicates that guard them) and the framework lines of its
build script (`cargo:rustc-link-lib=framework=NAME`, `-framework NAME`).

A static scan, so its limits are known: a build script's lines are read as
text (a name built at run time is not seen, and the condition that guards a
line, often a feature read at run time, is not known: such a line is only a
"may link", never a reason to stop); a
dylib named in a module file other than the crate root counts only when its
own predicate names the target (such a module may be compiled for another
OS only: libc's per-OS files). The registry's sources never change, so a
scan is cached by package id and checksum."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolchain.atomic import write_json

SCAN_SCHEMA = 2  # 2: build-script lines are marked as such

# Names that carry target information in a predicate (what a per-OS module would be gated on).
TARGET_KEYS = ("target_os", "target_vendor", "target_family", "unix", "windows")


@dataclass(frozen=True)
class LinkLine:
    """One library a crate's sources ask for, and what guards it."""

    name: str
    kind: str  # "framework" | "dylib" | "static" | ...
    predicates: tuple[str, ...]  # cfg predicates that must all hold (`feature = "x"`, `target_vendor = "apple"`)
    in_root: bool  # in the crate root or the build script (not in a module another OS's cfg may leave out)
    from_build_script: bool = False  # read from a build script's text: its guarding condition is unknown


# --- the scan -----------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BUILD_FRAMEWORK = re.compile(r"rustc-link-lib=framework=([A-Za-z0-9_.+-]+)")
# `-framework NAME` as one string, two list items, or two calls (`.flag("-framework").flag("NAME")`).
_DASH_FRAMEWORK = re.compile(r"""-framework(?:["'\s,=]|\)\s*\.\s*\w+\s*\()+([A-Za-z][A-Za-z0-9_.+-]*)""")


def _strip_comments(text: str) -> str:
    # Strings are kept whole (a URL's `//` is not a comment); comments become blanks, keeping
    # their line breaks (a line number read after this is the file's).
    out, pos = [], 0
    pattern = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|//[^\n]*', re.DOTALL)
    for match in pattern.finditer(text):
        out.append(text[pos : match.start()])
        token = match.group(0)
        out.append(token if token.startswith('"') else " " + "\n" * token.count("\n"))
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _balanced(text: str, start: int, open_: str, close: str) -> int:
    """Index just past the bracket matching text[start] (strings skipped); -1 if unbalanced."""
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == '"':
            match = _STRING.match(text, index)
            index = match.end() if match else index + 1
            continue
        if char == open_:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return -1


def _split_top(args: str) -> list[str]:
    """Split at top-level commas (not inside parentheses or strings)."""
    parts, depth, current, index = [], 0, [], 0
    while index < len(args):
        char = args[index]
        if char == '"':
            match = _STRING.match(args, index)
            end = match.end() if match else index + 1
            current.append(args[index:end])
            index = end
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _link_of(meta: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(name, kind, its own cfg(...) predicates) of a `link(...)` meta item, else None."""
    match = re.match(r"link\s*\((.*)\)\s*$", meta, re.DOTALL)
    if not match:
        return None
    name, kind, predicates = None, "dylib", []
    for part in _split_top(match.group(1)):
        pair = re.match(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"', part)
        if pair and pair.group(1) == "name":
            name = pair.group(2)
        elif pair and pair.group(1) == "kind":
            kind = pair.group(2)
        elif part.startswith("cfg"):
            inner = re.match(r"cfg\s*\((.*)\)\s*$", part, re.DOTALL)
            if inner:
                predicates.append(inner.group(1).strip())
    return (name, kind, tuple(predicates)) if name else None


def scan_rust(text: str, in_root: bool) -> list[LinkLine]:
    """The link attributes of one Rust file."""
    text = _strip_comments(text)
    found: list[LinkLine] = []
    run: list[str] = []  # cfg predicates of the attributes just before (one item's attributes)
    last_end = 0
    for match in re.finditer(r"#!?\s*\[", text):
        start = match.end() - 1
        end = _balanced(text, start, "[", "]")
        if end < 0:
            break
        if text[last_end : match.start()].strip():
            run = []  # something else came between: a new item's attributes
        last_end = end
        body = text[start + 1 : end - 1].strip()
        cfg = re.match(r"cfg\s*\((.*)\)\s*$", body, re.DOTALL)
        if cfg:
            run.append(cfg.group(1).strip())
            continue
        metas: list[tuple[str, tuple[str, ...]]] = []
        cfg_attr = re.match(r"cfg_attr\s*\((.*)\)\s*$", body, re.DOTALL)
        if cfg_attr:
            parts = _split_top(cfg_attr.group(1))
            if len(parts) >= 2:
                metas += [(meta, (parts[0],)) for meta in parts[1:]]
        else:
            metas.append((body, ()))
        for meta, guard in metas:
            link = _link_of(meta)
            if link is not None:
                name, kind, own = link
                found.append(LinkLine(name, kind, (*run, *guard, *own), in_root))
    return found


def scan_build_script(text: str) -> list[LinkLine]:
    """The frameworks a build script's text asks for (read as text: see the module's note)."""
    text = _strip_comments(text)
    names = {m.group(1) for m in _BUILD_FRAMEWORK.finditer(text)} | {m.group(1) for m in _DASH_FRAMEWORK.finditer(text)}
    return [LinkLine(name, "framework", (), True, from_build_script=True) for name in sorted(names)]


_CFG_USE = re.compile(r"\bcfg!\s*\(|#!?\[\s*cfg\s*\(")


def cfg_predicates(text: str) -> list[tuple[str, int]]:
    """Every `cfg!(...)` and `#[cfg(...)]` predicate of a Rust file, with its line number."""
    text = _strip_comments(text)
    found = []
    for match in _CFG_USE.finditer(text):
        opening = match.end() - 1
        end = _balanced(text, opening, "(", ")")
        if end != -1:
            predicate = " ".join(text[opening + 1 : end - 1].split())
            found.append((predicate, text.count("\n", 0, match.start()) + 1))
    return found


def scan_package(package: dict[str, object]) -> list[LinkLine]:
    """Every link line of one `cargo metadata` package: its library's (or binaries')
    Rust files and its build script."""
    found: list[LinkLine] = []
    targets = package.get("targets")
    if not isinstance(targets, list):
        return found
    roots: set[Path] = set()
    folders: set[Path] = set()
    for target in targets:
        kinds = set(target.get("kind", []))
        src = Path(target.get("src_path", ""))
        if "custom-build" in kinds:
            with contextlib.suppress(OSError):
                found += scan_build_script(src.read_text(encoding="utf-8", errors="replace"))
        elif kinds & {"lib", "rlib", "dylib", "staticlib", "cdylib", "bin", "proc-macro"}:
            if "proc-macro" in kinds:
                continue  # runs in the compiler on the build machine, never linked into the binary
            roots.add(src)
            folders.add(src.parent)
    files: set[Path] = set(roots)
    for folder in folders:
        files.update(folder.rglob("*.rs"))
    for path in sorted(files):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "link" in text:
            found += scan_rust(text, path in roots)
    return found


# --- the cache ------------------------------------------------------------------------


def cache_file() -> Path:
    """The machine's scan cache. Not an input of any build (the fresh check leaves it out): an
    entry is of one package at one checksum, so what any build adds says nothing new of another."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toolchain" / "link-scan.json"


class ScanCache:
    """Scans of registry packages, by `id#checksum` (their sources never change)."""

    def __init__(self) -> None:
        self.path = cache_file()
        self.entries: dict[str, list[list[object]]] = {}
        self.changed = False
        try:
            document = json.loads(self.path.read_text())
            if document.get("schema") == SCAN_SCHEMA and isinstance(document.get("packages"), dict):
                self.entries = document["packages"]
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or unreadable: scanned again

    def lines(self, package: dict[str, object], checksum: str | None) -> list[LinkLine]:
        if checksum is None:  # a path or git package: its files may change, scanned each time
            return scan_package(package)
        key = f"{package['id']}#{checksum}"
        cached = self.entries.get(key)
        if cached is not None:
            try:
                return [LinkLine(str(n), str(k), tuple(map(str, p)), bool(r), bool(b)) for n, k, p, r, b in cached]  # type: ignore[call-overload]
            except (TypeError, ValueError):
                pass
        lines = scan_package(package)
        self.entries[key] = [[x.name, x.kind, list(x.predicates), x.in_root, x.from_build_script] for x in lines]
        self.changed = True
        return lines

    def save(self) -> None:
        if self.changed:
            with contextlib.suppress(OSError):  # a cache only: the next build scans again
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_json(self.path, {"schema": SCAN_SCHEMA, "packages": self.entries})


# --- the predicates -------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(\()|(\))|(,)|(=)|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_]*))')


def _tokens(predicate: str) -> list[str] | None:
    """The predicate's words, parentheses, commas, `=` and quoted values; None if unreadable."""
    tokens: list[str] = []
    index = 0
    while index < len(predicate):
        match = _TOKEN.match(predicate, index)
        if not match or match.end() == index:
            if predicate[index:].strip():
                return None
            break
        tokens.append(next(g for g in match.groups() if g is not None))
        index = match.end()
    return tokens


class _Reader:
    """Walks a predicate's tokens; `atom` judges each leaf, `negated` says if it sits under not()."""

    def __init__(self, tokens: list[str], atom: Callable[[str, str | None, bool], bool | None]) -> None:
        self.tokens, self.position, self.atom = tokens, 0, atom

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        self.position += 1
        return self.tokens[self.position - 1]

    def expression(self, negated: bool = False) -> bool | None:
        word = self.take()
        if word in ("all", "any", "not") and self.peek() == "(":
            self.take()
            values = []
            while self.peek() not in (")", None):
                values.append(self.expression(negated != (word == "not")))
                if self.peek() == ",":
                    self.take()
            self.take()
            if word == "not":
                return None if not values or values[0] is None else not values[0]
            if word == "all":
                return False if False in values else (None if None in values else True)
            return True if True in values else (None if None in values else False)
        if self.peek() == "=":
            self.take()
            return self.atom(word, self.take().strip('"'), negated)
        return self.atom(word, None, negated)


def _read(predicate: str, atom: Callable[[str, str | None, bool], bool | None]) -> bool | None:
    tokens = _tokens(predicate)
    if tokens is None:
        return None
    try:
        return _Reader(tokens, atom).expression()
    except IndexError:
        return None


def evaluate(predicate: str, cfg: dict[str, set[str]], bare: set[str], features: set[str]) -> bool | None:
    """A cfg predicate for this target and feature set: True, False, or None when it names
    something not known before compiling (a build script's own cfg)."""

    def atom(word: str, value: str | None, negated: bool) -> bool | None:
        if value is not None:
            if word == "feature":
                return value in features
            return value in cfg[word] if word in cfg else None
        if word in bare:
            return True
        if word in ("unix", "windows") and bare:
            return False  # rustc names the one of the two a target is (a target of neither, neither)
        if word in ("test", "doc", "docsrs", "miri", "debug_assertions"):
            return False if word != "debug_assertions" else None
        return None

    return _read(predicate, atom)


def selects_target(predicate: str, cfg: dict[str, set[str]], bare: set[str]) -> bool:
    """Whether the predicate names this target positively: an OS, vendor or family atom outside
    any not() that holds for it (`target_vendor = "apple"`, `unix`). One that only rules another
    target out (`not(target_vendor = "uwp")`) holds in files compiled for any OS."""
    found = False

    def atom(word: str, value: str | None, negated: bool) -> bool | None:
        nonlocal found
        if word in TARGET_KEYS and not negated:
            holds = (value in cfg.get(word, set())) if value is not None else word in bare
            found = found or holds
        return None

    _read(predicate, atom)
    return found
