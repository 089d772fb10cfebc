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
from array import array
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


def pack(line: int, column: int) -> int:
    """A position as one int (a tuple of two costs three objects: 100,000 members hold millions)."""
    return line << 32 | column


def dotted(parts: PathKey) -> str:
    """A path inside an item as one name: ``attributes.nickName``, ``members[3]``."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


class Nested:
    """The positions inside one item: ``layout`` (dotted name -> index; one dict shared by the items of a
    file with the same names) and ``positions``, an array of ``pack``ed positions, a value's at
    ``2 * index`` and its key's after it (0: none)."""

    __slots__ = ("layout", "positions")

    def __init__(self, layout: dict[str, int], positions: array[int]) -> None:
        self.layout, self.positions = layout, positions

    def at(self, name: str, key: bool) -> int:
        i = self.layout.get(name)
        return self.positions[2 * i + key] if i is not None else 0


class Document:
    """A parsed YAML file: plain data plus the positions of its values and keys (1-based, ``pack``ed).

    Positions of paths of one or two parts (``("members", 3)``) are in ``values`` and ``keys``; those
    inside such an item are in ``items``, one compact ``Nested`` per item, which the item's ``Origin``
    keeps: a file of 100,000 members holds a million positions, and one tuple each would be hundreds
    of megabytes."""

    def __init__(self, file: str, data: Any, values: dict[PathKey, int], keys: dict[PathKey, int],
                 items: dict[PathKey, Nested]) -> None:
        self.file, self.data, self.values, self.keys, self.items = file, data, values, keys, items

    def release(self) -> None:
        """Drop the data and the positions (what a loaded config keeps is in its items' origins). Positions
        asked for afterwards are the file's."""
        self.data, self.values, self.keys, self.items = None, {}, {}, {}

    def position(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Position of the value (or key) at ``path``, else of the nearest enclosing node."""
        p = tuple(path)
        while p:
            at = self._at(p, key) or (self._at(p, False) if key else 0)
            if at:
                return at >> 32, at & 0xFFFFFFFF
            p = p[:-1]
        at = self.values.get((), 0)
        return (at >> 32, at & 0xFFFFFFFF) if at else (1, 1)

    def _at(self, p: PathKey, key: bool) -> int:
        if len(p) <= 2:
            return (self.keys if key else self.values).get(p, 0)
        nested = self.items.get(p[:2])
        return nested.at(dotted(p[2:]), key) if nested is not None else 0

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
    data, values, keys, items, problems = _compose(text, display)
    if problems:
        raise ConfigError(problems)
    return Document(display, data, values, keys, items)


_RESOLVER = yaml.resolver.Resolver()
# First characters of a plain scalar for which the resolver has no implicit type (bool, null, int, float,
# timestamp, merge, value all start otherwise): such a scalar is text, with no regular expression tried.
_TEXT_START = frozenset(c for c in string.ascii_letters if c not in _RESOLVER.yaml_implicit_resolvers)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Frame:
    """A mapping or list being read. Positions are ``pack``ed. Inside an item (a path of two parts or more),
    ``slot`` is the item's positions being built and ``prefix`` the frame's dotted name within the item
    ('' for the item itself): its children's positions go there without looking the item up again."""

    __slots__ = ("container", "path", "key", "key_pos", "pos", "slot", "prefix")

    def __init__(self, container: Any, path: PathKey, pos: int) -> None:
        self.container, self.path, self.pos = container, path, pos
        self.key: Any = _NO_KEY
        self.key_pos = pos
        self.slot: tuple[dict[str, int], array[int]] | None = None
        self.prefix = ""


_NO_KEY = object()
_FIRST = pack(1, 1)
_QUOTED = frozenset(("'", '"', "|", ">"))  # scalar styles that are text whatever they hold
_SKIP = object()  # a scalar already reported as refused
_SKIPPED: PathKey = ("\0skipped",)


def _compose(text: str, file: str) -> tuple[Any, dict[PathKey, int], dict[PathKey, int], dict[PathKey, Nested],
                                           list[Diagnostic]]:
    """Build plain data and positions from libyaml's event stream, iteratively.

    Events, not a node tree: no recursion (deep nesting cannot exhaust the stack), no
    constructor (tags never become objects), and aliases are seen as such (billion laughs
    cannot expand). libyaml's C parser makes this about ten times faster than a pure-Python
    round-trip load, which matters for configs of tens of thousands of members.
    """
    values: dict[PathKey, int] = {}
    keys: dict[PathKey, int] = {}
    items: dict[PathKey, Nested] = {}
    # the item being read (or several, when an item is refused midway): dotted name -> index, positions
    building: dict[PathKey, tuple[dict[str, int], array[int]]] = {}
    layouts: dict[tuple[str, ...], dict[str, int]] = {}
    problems: list[Diagnostic] = []
    stack: list[_Frame] = []
    root: Any = None
    documents = 0
    anchors: dict[str, Any] = {}
    strings: dict[str, str] = {}
    count = 0

    def fail(pos: int, message: str) -> None:
        problems.append(Diagnostic(file, pos >> 32, pos & 0xFFFFFFFF, message))

    def record(path: PathKey, pos: int, key: bool) -> None:
        if len(path) <= 2:
            (keys if key else values)[path] = pos
            return
        index, positions = building.get(path[:2]) or building.setdefault(path[:2], ({}, array("Q")))
        name = dotted(path[2:])
        i = index.get(name)
        if i is None:
            i = index[name] = len(index)
            positions.extend((0, 0))
        positions[2 * i + key] = pos

    def key_line(path: PathKey, default: int) -> int:
        if len(path) <= 2:
            at = keys.get(path, 0)
        else:
            index, positions = building.get(path[:2], ({}, array("Q")))
            i = index.get(dotted(path[2:]))
            at = positions[2 * i + 1] if i is not None else 0
        return at >> 32 if at else default

    def finish(item: PathKey) -> None:
        """An item read whole: its positions become one compact ``Nested``, its names a shared layout."""
        index, positions = building.pop(item, ({}, array("Q")))
        if index:
            names = tuple(index)
            layout = layouts.get(names)
            if layout is None:
                layout = layouts[names] = index
            items[item] = Nested(layout, positions)

    def place(value: Any, pos: int) -> PathKey | None:
        """Put a finished value into its parent; return its path (None when it was a mapping key)."""
        nonlocal root
        if value is _SKIP and (not stack or isinstance(stack[-1].container, list) or stack[-1].key is not _NO_KEY):
            if stack and isinstance(stack[-1].container, dict):
                stack[-1].key = _NO_KEY
            return _SKIPPED
        if not stack:
            root = value
            record((), pos, False)
            return ()
        top = stack[-1]
        if isinstance(top.container, list):
            path = top.path + (len(top.container),)
            top.container.append(value)
            record(path, pos, False)
            return path
        if top.key is _NO_KEY:
            if value is _SKIP:
                top.key = None
            elif not isinstance(value, str):
                fail(pos, f"keys must be strings, not {type(value).__name__} {value!r}")
                top.key = None
            elif value in top.container:
                fail(pos, f'invalid YAML: duplicate key "{value}" (first at line '
                          f'{key_line(top.path + (value,), top.pos >> 32)})')
                top.key = None
            else:
                top.key, top.key_pos = value, pos
            return None
        key, top.key = top.key, _NO_KEY
        if key is None:
            return _SKIPPED
        path = top.path + (key,)
        top.container[key] = value
        record(path, pos, False)
        record(path, top.key_pos, True)
        return path

    try:
        for event in yaml.parse(text, Loader=_Loader):
            mark = event.start_mark
            pos = (mark.line + 1) << 32 | (mark.column + 1) if mark is not None else _FIRST  # pack(), inline
            count += 1
            if count > MAX_NODES:
                fail(pos, f"file has more than {MAX_NODES:,} values")
                break
            if isinstance(event, yaml.ScalarEvent):  # most events: the common cases without a call each
                tag = event.tag
                text_value = event.value
                if tag is None and (event.style in _QUOTED or text_value[:1] in _TEXT_START):
                    value = strings.setdefault(text_value, text_value)  # one string per text (keys, emails)
                else:
                    if tag and tag not in CORE_TAGS and tag != "!":
                        fail(pos, f"YAML tag {_short(tag)} is not allowed in config files")
                        break
                    value = _scalar(event, pos, fail)
                    if type(value) is str:
                        value = strings.setdefault(value, value)
                if event.anchor:
                    anchors[event.anchor] = value
                top = stack[-1] if stack else None
                if top is not None and value is not _SKIP:
                    holder = top.container
                    slot = top.slot
                    if type(holder) is dict:
                        key = top.key
                        if key is _NO_KEY:
                            if type(value) is str and value not in holder:  # a key, not yet seen
                                top.key, top.key_pos = value, pos
                                continue
                        elif key is not None and slot is not None:  # a value inside an item
                            top.key = _NO_KEY
                            holder[key] = value
                            index, positions = slot
                            name = f"{top.prefix}.{key}" if top.prefix else key
                            i = index.get(name)
                            if i is None:
                                i = index[name] = len(index)
                                positions.extend((pos, top.key_pos))
                            else:
                                positions[2 * i], positions[2 * i + 1] = pos, top.key_pos
                            continue
                    elif slot is not None:  # an entry of a list inside an item
                        index, positions = slot
                        name = f"{top.prefix}[{len(holder)}]"
                        holder.append(value)
                        i = index.get(name)
                        if i is None:
                            i = index[name] = len(index)
                            positions.extend((pos, 0))
                        else:
                            positions[2 * i] = pos
                        continue
                place(value, pos)
                continue
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
                if len(path) >= 2 and path is not _SKIPPED:
                    item = path[:2]
                    frame.slot = building.get(item) or building.setdefault(item, ({}, array("Q")))
                    frame.prefix = dotted(path[2:]) if len(path) > 2 else ""
                stack.append(frame)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                done = stack.pop()
                if len(done.path) == 2:
                    finish(done.path)
            elif isinstance(event, yaml.AliasEvent):
                # every alias is refused: of a mapping or list it is a billion-laughs bomb, and of a scalar
                # one megabyte of text named 5,000 times is five gigabytes once the config is read
                target = anchors.get(event.anchor or "")
                what = "mappings or lists" if isinstance(target, (dict, list)) else "values"
                fail(pos, f"YAML aliases of {what} are not allowed in config files; write the value where it "
                          f"is used (*{event.anchor})")
                break
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        problems.append(Diagnostic(file, line, col, f"invalid YAML: {problem}"))
    except yaml.YAMLError as exc:
        problems.append(Diagnostic(file, 1, 1, f"invalid YAML: {str(exc).splitlines()[0]}"))
    for item in list(building):
        finish(item)
    return root, values, keys, items, problems


def _short(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _scalar(event: Any, pos: int, fail: Callable[[int, str], None]) -> Any:
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
