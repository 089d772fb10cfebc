"""Load a config directory (or one file) into a validated, cross-checked Config.

Every problem is reported as ``file:line:col: message``, all of them at once,
with the valid choices or a "did you mean".
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

import reconciler.config.identifiers  # noqa: F401  (registers the reserved-attribute check)
import reconciler.integrations.checks  # noqa: F401  (registers the connection and integration checks)
import reconciler.usermaps.checks  # noqa: F401  (registers the user map and fallback user checks)
from reconciler.config.base import Item, Origin
from reconciler.config.checks import CHECKS, did_you_mean
from reconciler.config.lengths import scan_text
from reconciler.config.models import Config, ConfigFile
from reconciler.config.partial import Dropped, keep_valid
from reconciler.config.yamlpos import Document, parse, read
from reconciler.errors import ConfigError, Diagnostic
from reconciler.secrets import CREDENTIAL_FIELDS

SUFFIXES = (".yaml", ".yml")



def config_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        if root.exists():  # a FIFO or a device: never opened (a FIFO would block, a device never end)
            raise ConfigError([Diagnostic(str(root), 0, 0, "not a regular file or a directory; a config is a "
                                                           "YAML file or a directory of them")])
        raise ConfigError([Diagnostic(str(root), 0, 0, "no such file or directory")])
    files = _yaml_files(root)
    if not files:
        raise ConfigError([Diagnostic(str(root), 0, 0, "no .yaml or .yml files in this directory")])
    return files


def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_config(path: str | Path, overrides: Mapping[Path, bytes] | None = None) -> Config:
    """Load the config at ``path``. ``overrides`` (file path -> bytes) stands for files as they would be
    written: a file on disk is read from it instead, a new file is added. ``import`` uses it to check that
    what it would write loads before it writes anything."""
    root = Path(path)
    extra = {p.resolve(): data for p, data in (overrides or {}).items()}
    if extra:
        on_disk = [root] if root.is_file() else _yaml_files(root) if root.is_dir() else []
        known = {f.resolve() for f in on_disk}
        files = sorted([*on_disk, *(p for p in (overrides or {}) if p.resolve() not in known)])
        base = root if root.is_dir() or not root.exists() else root.parent
    else:
        files = config_files(root)
        base = root if root.is_dir() else root.parent
    problems: list[Diagnostic] = []
    parsed: list[tuple[Document, ConfigFile]] = []
    docs: list[Document] = []
    digest = hashlib.sha256()
    for f in files:
        display = _display(f)
        written = extra.get(f.resolve())
        try:
            raw = read(f, display) if written is None else written  # read once: the digest is of what was parsed
            doc = parse(raw, display)
        except ConfigError as exc:
            problems.extend(exc.diagnostics)
            continue
        digest.update(str(f.relative_to(base)).encode() + b"\0" + raw + b"\0")
        if doc.data is None:
            continue  # an empty file (or only comments) declares nothing
        if not isinstance(doc.data, dict):
            problems.append(doc.diag((), "a config file must be a mapping of kinds "
                                         f"({', '.join(ConfigFile.model_fields)})"))
            continue
        docs.append(doc)
    # Validation may depend on other files: an integration's project is spelled as its connection's
    # tracker spells projects (Jira key SEC, Redmine identifier sec), and the connection may be elsewhere.
    context = {"connection_types": _connection_types(docs)}
    unreadable = bool(problems)  # a file that is not YAML: what it declares is unknown
    dropped = Dropped()  # the keys of items that failed validation; the other items are kept and cross-checked
    for doc in docs:
        scan = scan_text(doc, doc.data)
        if scan.long:  # not validated further: a message of the validation would quote the value
            problems.extend(scan.long)
            unreadable = True
            continue
        problems.extend(scan.misuse)
        unsafe = scan.unsafe
        index: dict[str, list[int]] | None = None
        try:
            model = ConfigFile.model_validate(doc.data, context=context)
        except ValidationError as exc:
            found = translate(exc, doc, ConfigFile)
            problems.extend(found)  # a value refused already is not reported twice
            problems.extend(u for u in unsafe if (u.line, u.column) not in {(d.line, d.column) for d in found})
            kept = keep_valid(doc.data, exc, lambda d: ConfigFile.model_validate(d, context=context),
                              ConfigFile.model_fields, dropped)
            if kept is None:
                continue
            model, index = kept
        else:
            problems.extend(unsafe)
        _attach_origins(model, doc, index)
        parsed.append((doc, model))
        doc.release()  # the items keep their origins; the file's data and positions go now, not at the end
    if unreadable:
        raise ConfigError(problems)

    # the cross-checks run on what parsed, in the same pass, less what only a dropped item explains
    config = Config.merge(str(root), [_display(f) for f in files], digest.hexdigest(), [m for _, m in parsed])
    problems.extend(dropped.filter(cross_check(config)))
    for check in CHECKS:
        problems.extend(dropped.filter(check(config)))
    if problems:
        raise ConfigError(problems)
    return config


def _connection_types(docs: list[Document]) -> dict[str, str]:
    """Connection name -> type, read from the raw YAML of every file (before validation)."""
    out: dict[str, str] = {}
    for doc in docs:
        conns = doc.data.get("connections") if isinstance(doc.data, dict) else None
        for c in conns if isinstance(conns, list) else []:
            if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("type"), str):
                out.setdefault(c["name"], c["type"])
    return out


def _display(f: Path) -> str:
    try:
        return str(f.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(f)


def _diag(item: Item, field: str | None, message: str, *, key: bool = False,
          refers: tuple[str, str] | None = None) -> Diagnostic:
    file, line, col = item.where(field, key=key)
    return Diagnostic(file, line, col, message, refers)


def cross_check(config: Config) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    out += _unique(config.providers, lambda p: p.name, "provider", "name")
    out += _unique(config.members, lambda m: m.key, "member", "email")
    out += _unique(config.teams, lambda t: t.name, "team", "name")
    provider_names = {p.name for p in config.providers}
    emails = {m.key: m for m in config.members}
    for m in config.members:
        if m.manager is not None:
            if m.manager.lower() not in emails:
                out.append(_diag(m, "manager", f"member '{m.email}' names unknown manager '{m.manager}'"
                                 + did_you_mean(m.manager.lower(), emails), refers=("members", m.manager)))
            elif m.manager.lower() == m.key:
                out.append(_diag(m, "manager", f"member '{m.email}' cannot be their own manager"))
        for p in m.providers or []:
            if p not in provider_names:
                out.append(_diag(m, "providers", f"member '{m.email}' names unknown provider '{p}'"
                                 + did_you_mean(p, provider_names), refers=("providers", p)))
    out += _manager_cycles(config.members)
    out += _previous_names(config.teams)
    for t in config.teams:
        seen: set[str] = set()
        for i, e in enumerate(t.members):
            if e.lower() not in emails:
                file, line, col = t._origin.where(f"members[{i}]") if t._origin else ("<config>", 0, 0)
                out.append(Diagnostic(file, line, col, f"team '{t.name}' lists unknown member '{e}'"
                                      + did_you_mean(e.lower(), emails), ("members", e)))
            elif e.lower() in seen:
                file, line, col = t._origin.where(f"members[{i}]") if t._origin else ("<config>", 0, 0)
                out.append(Diagnostic(file, line, col, f"team '{t.name}' lists member '{e}' twice"))
            seen.add(e.lower())
        for p in t.providers or []:
            if p not in provider_names:
                out.append(_diag(t, "providers", f"team '{t.name}' names unknown provider '{p}'"
                                 + did_you_mean(p, provider_names), refers=("providers", p)))
    return out


def _manager_cycles(members: list[Any]) -> list[Diagnostic]:
    """Members who manage each other, directly or round a longer chain: no order of creates can give
    each of them a manager that already exists, so the config is refused here, naming every member of
    the cycle with its place. Linear: each member's chain is walked once."""
    by_key = {m.key: m for m in members}
    state: dict[str, int] = {}  # 1: on the chain being walked, 2: done
    out: list[Diagnostic] = []
    for start in members:
        chain: list[Any] = []
        m: Any = start
        while m is not None and state.get(m.key) is None:
            state[m.key] = 1
            chain.append(m)
            nxt = m.manager.lower() if m.manager else None
            m = by_key.get(nxt) if nxt and nxt != m.key else None
        if m is not None and state.get(m.key) == 1:  # the walk came back onto itself: a cycle
            cycle = chain[chain.index(m):]
            ring = " -> ".join(x.key for x in [*cycle, cycle[0]])
            places = ", ".join("{}:{}:{}".format(*x.where("manager")) for x in cycle)
            out.append(_diag(cycle[0], "manager", f"members manage each other in a cycle ({ring}): each needs "
                             f"the other created first; managers at {places}"))
        for x in chain:
            state[x.key] = 2
    return out


def _previous_names(teams: list[Any]) -> list[Diagnostic]:
    """``previously:`` names an old name of this team only: not a team's current name, not claimed twice."""
    current = {t.name for t in teams}
    claimed: dict[str, Any] = {}
    out: list[Diagnostic] = []
    for t in teams:
        for i, old in enumerate(t.previously):
            f = f"previously[{i}]"
            if old in current:
                out.append(_diag(t, f, f"team '{t.name}' lists '{old}' under previously, which is the name of a "
                                 "declared team; a team renamed from it cannot also keep it"))
            elif old in claimed and claimed[old] is not t:
                fl, line, col = claimed[old].where("name")
                out.append(_diag(t, f, f"team '{t.name}' and team '{claimed[old].name}' ({fl}:{line}:{col}) both "
                                 f"list '{old}' under previously; one group cannot become two teams"))
            else:
                claimed[old] = t
    return out


def _unique(items: list[Any], key: Callable[[Any], str], kind: str, field: str) -> list[Diagnostic]:
    first: dict[str, Any] = {}
    out = []
    for it in items:
        k = key(it)
        if k in first:
            f, line, col = first[k].where(field)
            out.append(_diag(it, field, f"{kind} '{k}' is declared twice; first at {f}:{line}:{col}"))
        else:
            first[k] = it
    return out


# --- positions -------------------------------------------------------------

def _attach_origins(model: ConfigFile, doc: Document, index: dict[str, list[int]] | None = None) -> None:
    """``index``: per kind, the position in the YAML list of each item of the model (items were dropped).
    Items that declare the same fields share one set of them (``SharedFieldsSet``)."""
    for kind in type(model).model_fields:
        at = (index or {}).get(kind)
        for n, item in enumerate(getattr(model, kind)):
            i = at[n] if at is not None else n
            if isinstance(item, Item):
                line, col = doc.position((kind, i))
                item._origin = Origin(doc.file, line, col, doc.items.get((kind, i)))
                item.share_fields_set()


# --- pydantic errors -> located diagnostics ---------------------------------

def translate(exc: ValidationError, doc: Document, root: type[BaseModel]) -> list[Diagnostic]:
    out = []
    wrong_type: dict[tuple[str | int, ...], list[str]] = {}  # one value failing every member of a union
    paths: set[tuple[str | int, ...]] = set()
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        path, model = _data_path(doc.data, loc, root)
        paths.add(path)
        etype = err["type"]
        last = path[-1] if path else ""
        if etype == "extra_forbidden":
            valid = list(model.model_fields) if model else []
            hint = did_you_mean(str(last), valid)
            if not hint.startswith(" (did") and valid:
                hint = f"; valid keys: {', '.join(valid)}"
            out.append(doc.diag(path, f"unknown key '{last}'{hint}", key=True))
        elif etype == "missing":
            out.append(doc.diag(path[:-1], f"missing required key '{loc[-1]}'"))
        elif etype == "literal_error" and loc[-1] == "[key]":
            # a mapping whose keys are a fixed set (severity -> priority ...): the key is wrong, not the value
            expected = err.get("ctx", {}).get("expected", "")
            choices = [c.strip(" '") for c in expected.replace(" or ", ", ").split(",")]
            hint = did_you_mean(str(last), choices)
            if not hint.startswith(" (did"):
                hint = ""
            out.append(doc.diag(path, f"unknown key '{last}' in '{_field_name(path[:-1])}'{hint}; valid keys: "
                                      f"{expected}", key=True))
        elif etype in ("union_tag_invalid", "literal_error"):
            ctx = err.get("ctx", {})
            expected = ctx.get("expected_tags") or ctx.get("expected") or ""
            if etype == "union_tag_invalid":  # the path ends at the item; point at its tag
                tag = str(ctx.get("discriminator", "type")).strip("'")
                if isinstance(_value_at(doc.data, path), dict):
                    path = (*path, tag)
            got = ctx.get("tag") or _value_at(doc.data, path)
            shown = f" '{got}'" if isinstance(got, (str, int, float)) and not isinstance(got, bool) else ""
            out.append(doc.diag(path, f"invalid value{shown} for '{_field_name(path) or loc[-1]}'; "
                                      f"valid choices: {expected}"))
        elif etype == "union_tag_not_found":
            ctx = err.get("ctx", {})
            out.append(doc.diag(path, f"missing required key '{ctx.get('discriminator', 'type').strip(chr(39))}'"))
        elif etype == "string_pattern_mismatch" and last in CREDENTIAL_FIELDS:
            out.append(doc.diag(path, f"'{last}' must be a secret reference such as ${{env:NAME}} or "
                                      "${file:PATH}; secrets never live in YAML"))
        elif etype == "string_pattern_mismatch":
            pattern = err.get("ctx", {}).get("pattern", "")
            out.append(doc.diag(path, f"'{last}' must match {pattern} (lower-case letters, digits, - and _)"))
        elif etype in _TYPE_NAMES:
            wrong_type.setdefault(path, []).append(_TYPE_NAMES[etype])
        elif etype in ("model_type", "model_attributes_type", "dict_type"):
            out.append(doc.diag(path, f"{_where(path)}: expected a mapping (key: value), not "
                                      f"{_describe(_value_at(doc.data, path))}"))
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            out.append(doc.diag(path, f"{_where(path)}: {msg}"))
    # every proper prefix of a failing path, so the test below is one look-up (a scan of every path per
    # failing value was quadratic: 40,000 wrong roles took two minutes)
    inner = {q[:n] for q in paths for n in range(len(q))} if wrong_type else set()
    for path, names in wrong_type.items():
        if path in inner:
            continue  # a union (text or a list of text): the error inside the list says more
        value = _value_at(doc.data, path)
        wanted = list(dict.fromkeys(names))
        want = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
        hint = ""
        if names == ["text"] and isinstance(value, (bool, int, float)):
            hint = f"; quote it to make it text: \"{_yaml_scalar(value)}\""
        out.append(doc.diag(path, f"{_where(path)}: expected {want}, not "
                                  f"{_describe(value)}{hint}"))
    return out


# pydantic's error type for a value of the wrong type -> what the config wanted, in YAML words
_TYPE_NAMES = {"string_type": "text", "bool_type": "true/false", "bool_parsing": "true/false",
               "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
               "float_type": "a number", "float_parsing": "a number", "list_type": "a list"}


def _where(path: tuple[str | int, ...]) -> str:
    name = _field_name(path)
    return f"'{name}'" if name else "file"


def _field_name(path: tuple[str | int, ...]) -> str:
    """The key a value belongs to; for a list item, the list's key and the item's index."""
    if not path:
        return ""
    if isinstance(path[-1], int):
        parent = next((p for p in reversed(path) if isinstance(p, str)), "")
        return f"{parent}[{path[-1]}]" if parent else f"item {path[-1]}"
    return str(path[-1])


def _yaml_scalar(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"true/false ({_yaml_scalar(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text '{shown}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _value_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _data_path(data: Any, loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[tuple[str | int, ...],
                                                                                   type[BaseModel] | None]:
    """Follow a pydantic error location through the data, skipping union tags; return the data path
    and the model class that owns the last element."""
    path: list[str | int] = []
    node = data
    model: type[BaseModel] | None = root
    owner: type[BaseModel] | None = root
    tp: Any = root
    for part in loc:
        if isinstance(node, dict) and part in node:
            owner = model
            path.append(part)
            node = node[part]
            tp = _field_type(model, part) if model else None
            model = _model_of(tp, node)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
            tp = _item_type(tp)
            model = _model_of(tp, node)
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and owner is not None:
            # an unknown key, a missing key, or a union tag; the first two end the path
            if model is not None and part not in model.model_fields and not _is_tag(tp, part):
                owner = model
                path.append(part)
                break
            if model is not None and part in model.model_fields:
                path.append(part)
                owner = model
                break
        else:
            continue
    return tuple(path), owner


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(tp):
            out += _unwrap(a)
        return out
    return [tp]


def _field_type(model: type[BaseModel], name: str) -> Any:
    f = model.model_fields.get(name)
    return f.annotation if f else None


def _item_type(tp: Any) -> Any:
    for t in _unwrap(tp):
        if typing.get_origin(t) in (list, tuple, set):
            return typing.get_args(t)[0]
    return None


def _model_of(tp: Any, node: Any) -> type[BaseModel] | None:
    candidates = [t for t in _unwrap(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(candidates) == 1:
        return candidates[0]
    if isinstance(node, dict) and "type" in node:
        for c in candidates:
            f = c.model_fields.get("type")
            if f is not None and node["type"] in typing.get_args(f.annotation):
                return c
    return None


def _is_tag(tp: Any, part: str) -> bool:
    for t in _unwrap(tp):
        if isinstance(t, type) and issubclass(t, BaseModel):
            f = t.model_fields.get("type")
            if f is not None and part in typing.get_args(f.annotation):
                return True
    return False

