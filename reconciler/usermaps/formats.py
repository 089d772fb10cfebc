"""Moving user maps in and out: OpenText Connect XML, CSV, JSON, and the YAML that ``import`` writes.

Every format reads into and writes from ``PortableMap``. Connect XML is read
with defusedxml (DTDs with entities and external references are refused) and
every problem is reported with its line and column in the source file.
Documents written in the shape ``export`` writes come back byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.saxutils import escape
from xml.sax.xmlreader import Locator

import defusedxml.sax
from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.config.base import NAME_PATTERN, check_email
from reconciler.config.checks import did_you_mean
from reconciler.config.models import Config
from reconciler.config.yamlout import safe_for_reading
from reconciler.errors import Diagnostic, ReconcilerError
from reconciler.usermaps.checks import identity_problem
from reconciler.usermaps.resolve import system_type, user_maps

FORMATS_OUT = ("connect-xml", "csv", "json")
FORMATS_IN = ("connect-xml", "csv", "json")
JSON_FORMAT_VERSION = 1
CSV_HEADER = ("member", "system", "identity")
DATA_SOURCE_TYPE = "DataSource"
MAX_INPUT_BYTES = 20 * 1024 * 1024
_NAME = re.compile(NAME_PATTERN)


class MapFileError(ReconcilerError):
    """A user-map file (XML, CSV, JSON) cannot be imported; ``diagnostics`` locates every problem."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        lines = [str(d) for d in self.diagnostics]
        # the CLI prints "error: " before the first line; every problem gets it, as config problems do
        super().__init__("\nerror: ".join(lines) + f"\n{len(lines)} problem(s) found; nothing was written")


@dataclass
class PortableMap:
    """One user map as the file formats see it: the member, an optional label, identities by system."""

    member: str
    identities: dict[str, list[str]] = field(default_factory=dict)
    label: str | None = None
    line: int = 0
    column: int = 0
    # where each identity was read: (system, identity) -> (line, column)
    at: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def from_config(config: Config) -> list[PortableMap]:
    return [PortableMap(um.member, {s: um.ids(s) for s in um.identities}, um.label) for um in user_maps(config)]


# --- data-source names <-> systems ------------------------------------------------------------------------

def parse_sources(pairs: Iterable[str]) -> dict[str, str]:
    """``--source 'Jira DataSource=cloud'`` options -> {data source: system}."""
    out: dict[str, str] = {}
    for p in pairs:
        source, sep, system = p.rpartition("=")
        source, system = source.strip(), system.strip()
        if not sep or not source or not system:
            raise ReconcilerError(f"--source {p!r}: write DATA_SOURCE=SYSTEM, for example 'Jira DataSource=jira-prod'")
        if not _NAME.match(system):
            raise ReconcilerError(f"--source {p!r}: system '{system}' must match {NAME_PATTERN}")
        if source in out and out[source] != system:
            raise ReconcilerError(f"--source: data source '{source}' is mapped to both '{out[source]}' and '{system}'")
        out[source] = system
    systems = list(out.values())
    for s in set(systems):
        if systems.count(s) > 1:
            raise ReconcilerError(f"--source: system '{s}' is named by more than one data source")
    return out


# --- checks shared by every import format ----------------------------------------------------------------

def check_imported(maps: list[PortableMap], file: str, config: Config | None) -> list[Diagnostic]:
    """Duplicate claims and members (always); unknown members and identity shapes (with a config)."""
    out: list[Diagnostic] = []
    members = {m.key: m for m in config.members} if config is not None else None
    first_member: dict[str, PortableMap] = {}
    claims: dict[tuple[str, str], tuple[PortableMap, tuple[int, int]]] = {}
    for pm in maps:
        key = pm.member.lower()
        if key in first_member:
            other = first_member[key]
            out.append(Diagnostic(file, pm.line, pm.column, f"member '{pm.member}' has a second user map; the "
                                                            f"first is at line {other.line}"))
        else:
            first_member[key] = pm
        if members is not None and key not in members:
            out.append(Diagnostic(file, pm.line, pm.column, f"user map for unknown member '{pm.member}'"
                                  + did_you_mean(key, members)))
        for system, ids in pm.identities.items():
            kind = system_type(config, system) if config is not None else None
            for ident in ids:
                line, col = pm.at.get((system, ident), (pm.line, pm.column))
                problem = identity_problem(kind, ident)
                if problem:
                    out.append(Diagnostic(file, line, col, f"{kind or system} identity '{ident}' of "
                                                           f"'{pm.member}' {problem}"))
                claim = (system, ident.casefold())
                if claim in claims:
                    other, (oline, _) = claims[claim]
                    who = "the same member" if other is pm else f"'{other.member}'"
                    out.append(Diagnostic(file, line, col, f"{system} identity '{ident}' of '{pm.member}' is "
                                                           f"already claimed by {who} at line {oline}; an "
                                                           "identity belongs to one member only"))
                else:
                    claims[claim] = (pm, (line, col))
    return out


# --- Connect XML ------------------------------------------------------------------------------------------

class _ConnectHandler(ContentHandler):
    """Collects UserMaps/UserMap/{name, User/{type, value, name}} with the line of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.locator: Locator | None = None
        self.stack: list[str] = []
        self.text: list[str] = []
        self.maps: list[dict[str, Any]] = []
        self.user: dict[str, Any] | None = None
        self.seen_root = False

    def setDocumentLocator(self, locator: Locator) -> None:  # noqa: N802
        self.locator = locator

    def _pos(self) -> tuple[int, int]:
        if self.locator is None:
            return (0, 0)
        return (self.locator.getLineNumber() or 0, (self.locator.getColumnNumber() or 0) + 1)

    def startElement(self, name: str, attrs: Any) -> None:  # noqa: N802  (SAX API)
        self.stack.append(name)
        self.text = []
        path = self.stack
        if name == "UserMaps":
            self.seen_root = True
        if path[-2:] == ["UserMaps", "UserMap"]:
            self.maps.append({"pos": self._pos(), "name": None, "users": []})
        elif path[-3:] == ["UserMaps", "UserMap", "User"]:
            self.user = {"pos": self._pos()}
            self.maps[-1]["users"].append(self.user)
        elif path[-4:-1] == ["UserMaps", "UserMap", "User"] and self.user is not None:
            self.user[name + "_pos"] = self._pos()
        elif path[-3:] == ["UserMaps", "UserMap", "name"]:
            self.maps[-1]["name_pos"] = self._pos()

    def characters(self, content: str) -> None:
        self.text.append(content)

    def endElement(self, name: str) -> None:  # noqa: N802  (SAX API)
        value = "".join(self.text).strip()
        self.text = []
        path = self.stack
        if path[-4:-1] == ["UserMaps", "UserMap", "User"] and self.user is not None \
                and name in ("type", "value", "name"):
            self.user[name] = value
        elif path[-3:] == ["UserMaps", "UserMap", "name"]:
            self.maps[-1]["name"] = value
        elif path[-3:] == ["UserMaps", "UserMap", "User"]:
            self.user = None
        self.stack.pop()


def _d(file: str, pos: tuple[int, int], message: str) -> Diagnostic:
    return Diagnostic(file, pos[0], pos[1], message)


def read_connect_xml(raw: bytes, file: str, sources: dict[str, str], member_source: str | None = None,
                     config: Config | None = None) -> list[PortableMap]:
    """Parse a Connect user-maps export. ``sources`` maps data-source names to systems; a data source
    not named there must itself be a valid system name. ``member_source`` names the data source whose
    user name is the member's email; without it, the UserMap's name must be that email."""
    if len(raw) > MAX_INPUT_BYTES:
        raise MapFileError([Diagnostic(file, 1, 1, f"file is {len(raw):,} bytes; at most {MAX_INPUT_BYTES:,}")])
    handler = _ConnectHandler()
    try:
        # a DTD may only be harmless (no entities, no external subset); defusedxml refuses the rest
        defusedxml.sax.parseString(raw, handler, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as exc:
        what = (f"external entity '{exc.name}' ({exc.sysid}): it would make the importer read a file or URL"
                if exc.sysid else f"entity '{exc.name}': entities can expand without bound (billion laughs)")
        raise MapFileError([Diagnostic(file, _line(handler), 1, f"XML entity declarations are refused; {what}")]) \
            from None
    except ExternalReferenceForbidden:
        raise MapFileError([Diagnostic(file, _line(handler), 1, "XML external references are refused: the "
                                       "file may not make the importer read other files or URLs")]) from None
    except (DTDForbidden, DefusedXmlException) as exc:
        raise MapFileError([Diagnostic(file, _line(handler), 1, f"refused unsafe XML: {exc}")]) from None
    except SAXParseException as exc:
        raise MapFileError([Diagnostic(file, exc.getLineNumber() or 1, (exc.getColumnNumber() or 0) + 1,
                                       f"invalid XML: {exc.getMessage()}")]) from None
    if not handler.seen_root:
        raise MapFileError([Diagnostic(file, 1, 1, "no <UserMaps> element; this is not a Connect user-maps export")])
    out: list[PortableMap] = []
    problems: list[Diagnostic] = []
    for m in handler.maps:
        line, col = m.get("name_pos", m["pos"])
        name = m["name"]
        member: str | None = None
        label: str | None = None
        pm = PortableMap("", line=line, column=col)
        for u in m["users"]:
            uline, ucol = u.get("name_pos", u["pos"])
            utype, source, uname = u.get("type"), u.get("value"), u.get("name")
            if utype != DATA_SOURCE_TYPE:
                problems.append(_d(file, u.get("type_pos", u["pos"]),
                                           f"User type '{utype or ''}' is not supported; valid: {DATA_SOURCE_TYPE}"))
                continue
            if not source:
                problems.append(_d(file, u["pos"], "User has no <value> (data source)"))
                continue
            if not uname:
                problems.append(_d(file, u["pos"], f"User in data source '{source}' has no <name>"))
                continue
            if member_source is not None and source == member_source:
                if member is not None:
                    problems.append(Diagnostic(file, uline, ucol, f"user map '{name}' names two members in data "
                                                                  f"source '{member_source}'"))
                member = uname
                continue
            system = sources.get(source) or (source if _NAME.match(source) else None)
            if system is None:
                known = sorted(set(sources) | ({member_source} if member_source else set()))
                valid = f"; mapped data sources: {', '.join(known)}" if known else ""
                problems.append(_d(file, u.get("value_pos", u["pos"]),
                                           f"unknown data source '{source}'; map it to a system with --source "
                                           f"'{source}=SYSTEM'{valid}"))
                continue
            pm.identities.setdefault(system, []).append(uname)
            pm.at.setdefault((system, uname), (uline, ucol))
        if member is None:
            if member_source is not None:
                problems.append(_d(file, m["pos"], f"user map '{name or ''}' has no user in the member "
                                                            f"data source '{member_source}'"))
                continue
            member = name
        else:
            label = name if name and name.lower() != member.lower() else None
        try:
            check_email(member or "")
        except ValueError:
            hint = "" if member_source else " (pass --member-source DATA_SOURCE when the map names are labels)"
            problems.append(Diagnostic(file, line, col, f"member '{member or ''}' is not an email address{hint}"))
            continue
        assert member is not None
        pm.member, pm.label = member, label
        if not pm.identities:
            problems.append(_d(file, m["pos"], f"user map of '{member}' lists no identity"))
            continue
        out.append(pm)
    problems += check_imported(out, file, config)
    if problems:
        raise MapFileError(problems)
    return out


def _line(handler: _ConnectHandler) -> int:
    line = handler.locator.getLineNumber() if handler.locator is not None else None
    return line or 1


def write_connect_xml(maps: list[PortableMap], sources: dict[str, str], member_source: str | None = None) -> str:
    """The Connect user-maps document: <UserMaps>, one <UserMap> per member, 3-space indent like Connect."""
    by_system = {system: source for source, system in sources.items()}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<UserMaps>"]
    for pm in maps:
        if pm.label is not None and member_source is None:
            raise ReconcilerError(f"the user map of {pm.member} has the label '{pm.label}'; pass --member-source "
                                  "DATA_SOURCE so that the member's email is exported too")
        lines += ["   <UserMap>", f"      <name>{escape(pm.label or pm.member)}</name>"]
        rows: list[tuple[str, str]] = [(member_source, pm.member)] if member_source is not None else []
        rows += [(by_system.get(system, system), ident) for system, ids in pm.identities.items() for ident in ids]
        for source, ident in rows:
            lines += ["      <User>", f"         <type>{DATA_SOURCE_TYPE}</type>",
                      f"         <value>{escape(source)}</value>", f"         <name>{escape(ident)}</name>",
                      "      </User>"]
        lines.append("   </UserMap>")
    lines.append("</UserMaps>")
    return "\n".join(lines) + "\n"


# --- CSV --------------------------------------------------------------------------------------------------

# A cell starting with one of these is a formula to a spreadsheet that opens the file (CSV injection):
# written with a leading apostrophe, which read_csv takes off again.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell_out(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def _cell_in(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA) else value


def write_csv(maps: list[PortableMap]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for pm in maps:
        for system, ids in pm.identities.items():
            for ident in ids:
                w.writerow((_cell_out(pm.member), _cell_out(system), _cell_out(ident)))
    return buf.getvalue()


def read_csv(raw: bytes, file: str, config: Config | None = None) -> list[PortableMap]:
    """member,system,identity rows (a header row first); one map per member, in order of first appearance."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MapFileError([Diagnostic(file, raw[: exc.start].count(b"\n") + 1, 1, "not UTF-8")]) from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != CSV_HEADER:
        raise MapFileError([Diagnostic(file, 1, 1, f"the first row must be the header {','.join(CSV_HEADER)}")])
    problems: list[Diagnostic] = []
    maps: dict[str, PortableMap] = {}
    seen: set[tuple[str, str, str]] = set()  # (member, system, identity casefolded): a set, not a scan per row
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 3:
            problems.append(Diagnostic(file, n, 1, f"expected 3 columns ({','.join(CSV_HEADER)}), found {len(row)}"))
            continue
        member, system, ident = (_cell_in(c.strip()) for c in row)
        try:
            check_email(member)
        except ValueError as exc:
            problems.append(Diagnostic(file, n, 1, str(exc)))
            continue
        if not _NAME.match(system):
            problems.append(Diagnostic(file, n, 2, f"system '{system}' must match {NAME_PATTERN}"))
            continue
        if not ident:
            problems.append(Diagnostic(file, n, 3, "empty identity"))
            continue
        pm = maps.get(member.lower())
        if pm is None:
            pm = maps[member.lower()] = PortableMap(member, line=n, column=1)
        ids = pm.identities.setdefault(system, [])
        k = (member.lower(), system, ident.casefold())
        if k in seen:
            problems.append(Diagnostic(file, n, 3, f"{system} identity '{ident}' of '{member}' is listed twice"))
            continue
        seen.add(k)
        ids.append(ident)
        pm.at[(system, ident)] = (n, 3)
    out = list(maps.values())
    problems += check_imported(out, file, config)
    if problems:
        raise MapFileError(problems)
    return out


# --- JSON -------------------------------------------------------------------------------------------------

def write_json(maps: list[PortableMap]) -> str:
    doc = {"format_version": JSON_FORMAT_VERSION,
           "user_maps": [{"member": pm.member, **({"label": pm.label} if pm.label else {}),
                          "identities": pm.identities} for pm in maps]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def read_json(raw: bytes, file: str, config: Config | None = None) -> list[PortableMap]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", 1)
        raise MapFileError([Diagnostic(file, line, getattr(exc, "colno", 1), f"invalid JSON: {exc}")]) from None
    if not isinstance(doc, dict) or doc.get("format_version") != JSON_FORMAT_VERSION \
            or not isinstance(doc.get("user_maps"), list):
        raise MapFileError([Diagnostic(file, 1, 1, f"expected an object with format_version "
                                                   f"{JSON_FORMAT_VERSION} and a user_maps list")])
    problems: list[Diagnostic] = []
    out: list[PortableMap] = []
    for i, m in enumerate(doc["user_maps"]):
        ok = isinstance(m, dict) and isinstance(m.get("member"), str) and isinstance(m.get("identities"), dict) \
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in m["identities"].values())
        if not ok:
            problems.append(Diagnostic(file, 1, 1, f"user_maps[{i}] must have member (text) and identities "
                                                   "(system -> list of text)"))
            continue
        out.append(PortableMap(m["member"], {str(k): list(v) for k, v in m["identities"].items()},
                               m.get("label")))
    problems += check_imported(out, file, config)
    if problems:
        raise MapFileError(problems)
    return out


# --- YAML written by import ------------------------------------------------------------------------------

def write_yaml(maps: list[PortableMap]) -> str:
    """A config file with one ``user_maps:`` kind; one identity is a scalar, several a flow list."""
    items = CommentedSeq()
    for pm in maps:
        entry = CommentedMap()
        entry["member"] = pm.member
        if pm.label:
            entry["label"] = pm.label
        idents = CommentedMap()
        for system, ids in pm.identities.items():
            if len(ids) == 1:
                idents[system] = ids[0]
            else:
                seq = CommentedSeq(ids)
                seq.fa.set_flow_style()
                idents[system] = seq
        entry["identities"] = idents
        items.append(entry)
    root = CommentedMap()
    root["user_maps"] = items
    y = YAML(typ="rt", pure=True)
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    buf = io.StringIO()
    y.dump(safe_for_reading(root), buf)
    return buf.getvalue()


Reader = Callable[..., list[PortableMap]]
