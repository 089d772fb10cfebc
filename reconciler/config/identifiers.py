"""Text a config may hold, and the SCIM attribute names ``attributes`` may not take.

Names, emails, team names and every other identifier end up in plan lines, PR comments, addresses
and audit records. A line break, a terminal escape, a right-to-left override or a zero-width
character in one can forge a line, hide text or make two different names look the same, so they are
refused at load time with their file:line:col. Free text (a team description, an issue template,
JQL) may hold line breaks and tabs, never the rest.

``attributes`` sets other single-valued SCIM attributes; it may not reach what reconciler manages
itself (userName, externalId, active, emails, groups: each has a field, and ``active`` there
would walk around the removal thresholds and ``protect``), what the provider owns (id, schemas,
meta), or a credential (password: it would be shown in the plan and saved in plan.json).
"""

from __future__ import annotations

import unicodedata

from reconciler.config.checks import CHECKS
from reconciler.config.models import Config
from reconciler.errors import Diagnostic

# Keys whose values are free text: line breaks and tabs are allowed there.
FREE_TEXT = frozenset({"description", "template", "jql", "body", "comment", "comments"})
# Bidirectional overrides and isolates: they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def bad_character(text: str, free: bool = False) -> str | None:
    """A description of the first character ``text`` may not hold, or None."""
    if text.isascii() and (text if not free else text.replace("\n", "").replace("\t", "")).isprintable():
        return None  # printable ASCII (most of any config) holds none of them: no per-character walk
    for ch in text:
        if free and ch in "\n\t":
            continue
        cat = unicodedata.category(ch)
        if ch in _BIDI:
            kind = "a bidirectional override"
        elif cat == "Cc":
            kind = "a line break" if ch in "\n\r\x0b\x0c\x85" else "a control character"
        elif cat in ("Zl", "Zp"):
            kind = "a line break"
        elif cat == "Cf" and not free:
            kind = "an invisible (zero-width or format) character"
        else:
            continue
        name = unicodedata.name(ch, "").lower()
        return f"{kind} (U+{ord(ch):04X}{' ' + name if name else ''})"
    return None


# attribute (lower-case) -> what to write instead
RESERVED_ATTRIBUTES = {
    "username": "the member's 'email' (it is the userName)",
    "externalid": "the member's 'external_id' (reconciler keeps its ownership mark there)",
    "id": "nothing: the provider assigns 'id'",
    "schemas": "nothing: reconciler sets 'schemas'",
    "meta": "nothing: the provider keeps 'meta'",
    "active": "the member's 'active: false' (counted by the removal thresholds and refused with protect: true)",
    "password": "nothing: reconciler manages no credential of a member (it would be shown in the plan)",
    "emails": "the member's 'email' (the primary work email)",
    "groups": "the team's 'members' list",
}
_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user:"


def reserved_attribute(name: str) -> str | None:
    """What to use instead when ``name`` (as ``attributes`` spells it) is a reserved attribute."""
    n = name.strip().lower()
    if n.startswith(_CORE_USER):
        n = n[len(_CORE_USER):]
    head = n.split(".", 1)[0].split("[", 1)[0]
    return RESERVED_ATTRIBUTES.get(head)


def _reserved(config: Config) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for m in config.members:
        for k in m.attributes or {}:
            instead = reserved_attribute(k)
            if instead:
                file, line, col = m.where(f"attributes.{k}", key=True)
                out.append(Diagnostic(file, line, col, f"member '{m.email}': attributes may not set '{k}'; "
                                                       f"use {instead}"))
    return out


CHECKS.append(_reserved)
