"""Safe YAML loading that remembers the file, line and column of every key and value.

ruamel.yaml's round-trip loader keeps positions (``CommentedMap.lc``) and never
constructs Python objects from tags; on top of it this module refuses what a
config file has no use for and an attacker does: tags, container aliases
(billion laughs), very deep nesting, huge files and bytes that are not UTF-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.errors import ConfigError, Diagnostic

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000

PathKey = tuple[str | int, ...]
# The YAML 1.2 core schema: what a config file may tag explicitly. Everything else under
# tag:yaml.org,2002: (python/object, binary, set, omap ...) is refused like any other tag.
CORE_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class Document:
    """A parsed YAML file: plain data plus the positions of its values and keys (1-based)."""

    def __init__(self, file: str, data: Any, values: dict[PathKey, tuple[int, int]],
                 keys: dict[PathKey, tuple[int, int]]) -> None:
        self.file, self.data, self.values, self.keys = file, data, values, keys

    def position(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Position of the value (or key) at ``path``, else of the nearest enclosing node."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if key and p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))

    def diag(self, path: PathKey, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.position(path, key=key)
        return Diagnostic(self.file, line, col, message)


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.allow_duplicate_keys = False
    return y


def load(path: Path, display: str) -> Document:
    """Parse one file; raise ConfigError with a located Diagnostic on any problem."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Diagnostic(display, 1, 1, f"file is {size:,} bytes; config files may be at most "
                                                         f"{MAX_FILE_BYTES:,} bytes")])
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Diagnostic(display, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    return parse(raw, display)


def parse(raw: bytes, display: str) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError([Diagnostic(display, line, col, f"byte 0x{raw[exc.start]:02x} is not valid UTF-8; "
                                                          "config files must be UTF-8")]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        node = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in str(exc):
            problem = "duplicate key " + str(exc).split("duplicate key", 1)[1].split("\n")[0].strip()
        raise ConfigError([Diagnostic(display, line, col, f"invalid YAML: {problem}")]) from None
    except (YAMLError, RecursionError) as exc:
        message = "nesting is too deep" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise ConfigError([Diagnostic(display, 1, 1, f"invalid YAML: {message}")]) from None
    walker = _Walker(display)
    data = walker.walk(node, (), 0, (1, 1))
    if walker.problems:
        raise ConfigError(walker.problems)
    return Document(display, data, walker.values, walker.keys)


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[PathKey, tuple[int, int]] = {}
        self.keys: dict[PathKey, tuple[int, int]] = {}
        self.problems: list[Diagnostic] = []
        self.seen: set[int] = set()
        self.count = 0

    def _fail(self, pos: tuple[int, int], message: str) -> None:
        self.problems.append(Diagnostic(self.file, pos[0], pos[1], message))

    def walk(self, node: Any, path: PathKey, depth: int, pos: tuple[int, int]) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self._fail(pos, f"file has more than {MAX_NODES:,} values")
            return None
        if depth > MAX_DEPTH:
            self._fail(pos, f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        self.values[path] = pos
        tag = getattr(node, "tag", None)
        tag_value = getattr(tag, "value", None) if tag is not None else None
        if tag_value and str(tag_value) not in CORE_TAGS:
            shown = str(tag_value).replace("tag:yaml.org,2002:", "!!", 1)
            self._fail(pos, f"YAML tag {shown} is not allowed in config files")
            return None
        if isinstance(node, (CommentedMap, CommentedSeq)):
            if id(node) in self.seen:
                self._fail(pos, "YAML aliases of mappings or lists are not allowed in config files")
                return None
            self.seen.add(id(node))
        if isinstance(node, CommentedMap):
            out: dict[str, Any] = {}
            for k in node:
                kpos = _pos(node.lc.key(k)) if _has(node, k) else pos
                vpos = _pos(node.lc.value(k)) if _has(node, k) else pos
                if not isinstance(k, str):
                    self._fail(kpos, f"keys must be strings, not {type(k).__name__} {k!r}")
                    continue
                self.keys[path + (k,)] = kpos
                out[k] = self.walk(node[k], path + (k,), depth + 1, vpos)
            return out
        if isinstance(node, CommentedSeq):
            items = []
            for i, v in enumerate(node):
                try:
                    ipos = _pos(node.lc.item(i))
                except (KeyError, TypeError):
                    ipos = pos
                items.append(self.walk(v, path + (i,), depth + 1, ipos))
            return items
        if node is None or isinstance(node, (bool, int, float)):
            return node
        if isinstance(node, str):
            return str(node)
        if isinstance(node, TaggedScalar) and isinstance(node.value, str):
            return node.value  # an explicit !!str
        # dates, timestamps, tagged scalars: configs only hold text, numbers and booleans
        self._fail(pos, f"values of type {type(node).__name__} are not allowed here; quote it to make it text")
        return None


def _has(node: CommentedMap, key: Any) -> bool:
    try:
        node.lc.key(key)
        return True
    except (KeyError, TypeError):
        return False


def _pos(lc: Any) -> tuple[int, int]:
    return int(lc[0]) + 1, int(lc[1]) + 1
