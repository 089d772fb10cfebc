"""Safe YAML loading that remembers the file, line and column of every key and value.

Configs are read from libyaml's event stream (PyYAML's C parser): every event
carries its position, nothing is ever constructed from a tag, and the events
are assembled without recursion. On top of that this module refuses what a
config file has no use for and an attacker does: tags, aliases (billion
laughs, and a huge scalar named thousands of times), very deep nesting, duplicate keys, huge files and bytes that
are not UTF-8. (ruamel.yaml stays the tool for editing YAML in place, where
comments must survive: usermaps resolve --write, import.)
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import ConfigError, Diagnostic
from reconciler.files import FileRefused, read_limited

# 100,000 members written one per entry are 11-17 MB (bench/): the limit leaves room for twice that
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000
MAX_NUMBER_CHARS = 40
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

PathKey = tuple[str | int, ...]
# The YAML 1.2 core schema: what a config file may tag explicitly. Everything else under
# tag:yaml.org,2002: (python/object, binary, set, omap ...) is refused like any other tag.
CORE_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class Document:
    """A parsed YAML file: plain data plus the positions of its values and keys (1-based)."""

    def __init__(self, file: str, data: Any, values: dict[PathKey, tuple[int, int]],
                 keys: dict[PathKey, tuple[int, int]]) -> None:
        self.file, self.data, self.values, self.keys = file, data, values, keys

    def release(self) -> None:
        """Drop the data and the positions (what a loaded config keeps is in its items' origins): at
        100,000 members they are hundreds of megabytes. Positions asked for afterwards are the file's."""
        self.data, self.values, self.keys = None, {}, {}

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


def load(path: Path, display: str) -> Document:
    """Parse one file; raise ConfigError with a located Diagnostic on any problem."""
    return parse(read(path, display), display)


def read(path: Path, display: str) -> bytes:
    """The bytes of one config file: a regular file of at most MAX_FILE_BYTES, else a located ConfigError."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Diagnostic(display, 1, 1, f"file is {size:,} bytes; config files may be at most "
                                                         f"{MAX_FILE_BYTES:,} bytes")])
        raw = read_limited(path, MAX_FILE_BYTES)  # streamed: a file that grows past the limit is refused
    except FileRefused as exc:
        raise ConfigError([Diagnostic(display, 1, 1, f"file {exc}")]) from None
    except OSError as exc:
        raise ConfigError([Diagnostic(display, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    return raw


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
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        # the YAML parser takes seconds to fail on thousands of nested brackets: refuse first
        raise ConfigError([Diagnostic(display, *too_deep, f"nesting is deeper than {MAX_DEPTH} levels")])
    data, values, keys, problems = _compose(text, display)
    if problems:
        raise ConfigError(problems)
    return Document(display, data, values, keys)


_RESOLVER = yaml.resolver.Resolver()
# First characters of a plain scalar for which the resolver has no implicit type (bool, null, int, float,
# timestamp, merge, value all start otherwise): such a scalar is text, with no regular expression tried.
_TEXT_START = frozenset(c for c in string.ascii_letters if c not in _RESOLVER.yaml_implicit_resolvers)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Frame:
    __slots__ = ("container", "path", "key", "key_pos", "pos")

    def __init__(self, container: Any, path: PathKey, pos: tuple[int, int]) -> None:
        self.container, self.path, self.pos = container, path, pos
        self.key: Any = _NO_KEY
        self.key_pos = pos


_NO_KEY = object()
_SKIP = object()  # a scalar already reported as refused
_SKIPPED: PathKey = ("\0skipped",)


def _compose(text: str, file: str) -> tuple[Any, dict[PathKey, tuple[int, int]], dict[PathKey, tuple[int, int]],
                                           list[Diagnostic]]:
    """Build plain data and positions from libyaml's event stream, iteratively.

    Events, not a node tree: no recursion (deep nesting cannot exhaust the stack), no
    constructor (tags never become objects), and aliases are seen as such (billion laughs
    cannot expand). libyaml's C parser makes this about ten times faster than a pure-Python
    round-trip load, which matters for configs of tens of thousands of members.
    """
    values: dict[PathKey, tuple[int, int]] = {}
    keys: dict[PathKey, tuple[int, int]] = {}
    problems: list[Diagnostic] = []
    stack: list[_Frame] = []
    root: Any = None
    documents = 0
    anchors: dict[str, Any] = {}
    count = 0

    def fail(pos: tuple[int, int], message: str) -> None:
        problems.append(Diagnostic(file, pos[0], pos[1], message))

    def place(value: Any, pos: tuple[int, int]) -> PathKey | None:
        """Put a finished value into its parent; return its path (None when it was a mapping key)."""
        nonlocal root
        if value is _SKIP and (not stack or isinstance(stack[-1].container, list) or stack[-1].key is not _NO_KEY):
            if stack and isinstance(stack[-1].container, dict):
                stack[-1].key = _NO_KEY
            return _SKIPPED
        if not stack:
            root = value
            values[()] = pos
            return ()
        top = stack[-1]
        if isinstance(top.container, list):
            path = top.path + (len(top.container),)
            top.container.append(value)
            values[path] = pos
            return path
        if top.key is _NO_KEY:
            if value is _SKIP:
                top.key = None
            elif not isinstance(value, str):
                fail(pos, f"keys must be strings, not {type(value).__name__} {value!r}")
                top.key = None
            elif value in top.container:
                first = keys.get(top.path + (value,), top.pos)
                fail(pos, f'invalid YAML: duplicate key "{value}" (first at line {first[0]})')
                top.key = None
            else:
                top.key, top.key_pos = value, pos
            return None
        key, top.key = top.key, _NO_KEY
        if key is None:
            return _SKIPPED
        path = top.path + (key,)
        top.container[key] = value
        values[path] = pos
        keys[path] = top.key_pos
        return path

    try:
        for event in yaml.parse(text, Loader=_Loader):
            mark = event.start_mark
            pos = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            count += 1
            if count > MAX_NODES:
                fail(pos, f"file has more than {MAX_NODES:,} values")
                break
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    fail(pos, "a config file holds one YAML document; split the others into their own files")
                    break
                continue
            tag = getattr(event, "tag", None)
            if tag and tag not in CORE_TAGS and tag != "!":
                fail(pos, f"YAML tag {_short(tag)} is not allowed in config files")
                break
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    fail(pos, f"nesting is deeper than {MAX_DEPTH} levels")
                    break
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                if event.anchor:
                    anchors[event.anchor] = container
                parent_path = stack[-1].path if stack else ()
                frame = _Frame(container, parent_path, pos)
                # the path is known once the container is placed; placing an empty container first
                # keeps key order and positions right
                path = place(container, pos)
                if path is None:
                    fail(pos, "a mapping or list cannot be a key")
                    break
                frame.path = path  # _SKIPPED for the value of a refused key: assembled, then dropped
                stack.append(frame)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
            elif isinstance(event, yaml.AliasEvent):
                # every alias is refused: of a mapping or list it is a billion-laughs bomb, and of a scalar
                # one megabyte of text named 5,000 times is five gigabytes once the config is read
                target = anchors.get(event.anchor or "")
                what = "mappings or lists" if isinstance(target, (dict, list)) else "values"
                fail(pos, f"YAML aliases of {what} are not allowed in config files; write the value where it "
                          f"is used (*{event.anchor})")
                break
            elif isinstance(event, yaml.ScalarEvent):
                value = _scalar(event, pos, fail)
                if event.anchor:
                    anchors[event.anchor] = value
                place(value, pos)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        problems.append(Diagnostic(file, line, col, f"invalid YAML: {problem}"))
    except yaml.YAMLError as exc:
        problems.append(Diagnostic(file, 1, 1, f"invalid YAML: {str(exc).splitlines()[0]}"))
    return root, values, keys, problems


def _short(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _scalar(event: Any, pos: tuple[int, int], fail: Callable[[tuple[int, int], str], None]) -> Any:
    if event.tag in (None, "!"):
        if event.tag == "!" or event.style in ("'", '"', "|", ">"):
            return event.value
        if event.value[:1] in _TEXT_START:
            return event.value  # no implicit type starts with this character: text, as resolve() would say
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    else:
        tag = event.tag
    if tag == "tag:yaml.org,2002:str":
        return event.value
    if tag == "tag:yaml.org,2002:merge":
        fail(pos, "merge keys (<<) are not allowed in config files; write the keys out")
        return _SKIP
    if tag not in CORE_TAGS:
        # dates, timestamps ...: configs only hold text, numbers and booleans
        kind = tag.rsplit(":", 1)[-1]
        if kind == "timestamp" and len(event.value) <= 10:
            kind = "date"
        fail(pos, f"values of type {kind} are not allowed here; quote it to make it text")
        return _SKIP
    if tag in (_INT, _FLOAT) and len(event.value) > MAX_NUMBER_CHARS:
        # never quoted whole (nor turned into a number of thousands of digits)
        fail(pos, f"a number of {len(event.value):,} characters ({event.value[:12]}...); numbers in config files "
                  f"are at most {MAX_NUMBER_CHARS} characters")
        return _SKIP
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return _CONSTRUCTOR.construct_object(node)
    except (yaml.YAMLError, ValueError):
        shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
        fail(pos, f"'{shown}' is not a valid {tag.rsplit(':', 1)[-1]}")
        return _SKIP


_FLOW = re.compile(r"[\[\]{}\n#'\"]")


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """The line and column where ``[`` / ``{`` nesting first passes MAX_DEPTH, else None. A quick
    scan, not a parser: it skips comments and quoted text and may miss depth, never invent it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth, line, line_start, i = 0, 1, 0, 0
    while (m := _FLOW.search(text, i)) is not None:
        ch, i = m.group(), m.end()
        if ch == "\n":
            line, line_start = line + 1, i
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, i - line_start
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "#" and (i == 1 or text[i - 2] in " \t\n"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif ch in "'\"" and (i == 1 or text[i - 2] in " \t\n[{,:"):
            end = text.find(ch, i)  # a quoted scalar; "" and '' escapes only end it early, never late
            if end < 0:
                return None
            line += text.count("\n", i, end)
            if "\n" in text[i:end]:
                line_start = text.rfind("\n", i, end) + 1
            i = end + 1
    return None
