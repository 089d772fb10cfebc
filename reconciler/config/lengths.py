"""What a config value may be before it is validated: as long as its field allows, and a credential
reference only where a credential goes.

Checked on the raw YAML, so that a 100,000-character email is refused at its file:line:col without being
matched against a pattern or quoted whole in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.config.identifiers import FREE_TEXT, bad_character
from reconciler.config.yamlpos import Document
from reconciler.errors import Diagnostic
from reconciler.secrets import CREDENTIAL_FIELDS

EMAIL_LENGTH = 254  # RFC 5321: a path is at most 256 octets, angle brackets included
URL_LENGTH = 2048
FREE_TEXT_LENGTH = 10_000
TEXT_LENGTH = 256  # names, titles, departments, identities, keys: every other text value
EMAIL_FIELDS = frozenset({"email", "manager", "members", "owners", "fallback_user"})
URL_FIELDS = frozenset({"base_url", "url", "token_url", "site_url", "details_url"})
REFERENCE_LENGTH = 4096  # ${file:PATH}: a path


def limit_for(key: str) -> int:
    if key in FREE_TEXT:
        return FREE_TEXT_LENGTH
    if key in URL_FIELDS:
        return URL_LENGTH
    if key in CREDENTIAL_FIELDS or key == "ca_bundle":
        return REFERENCE_LENGTH
    if key in EMAIL_FIELDS:
        return EMAIL_LENGTH
    return TEXT_LENGTH


@dataclass
class Scan:
    """What one walk over a parsed file found: text longer than its field allows (``long``: nothing else
    is checked then, a later message would quote it), credential references outside credential fields
    (``misuse``), and characters no identifier may hold (``unsafe``)."""

    long: list[Diagnostic] = field(default_factory=list)
    misuse: list[Diagnostic] = field(default_factory=list)
    unsafe: list[Diagnostic] = field(default_factory=list)


def scan_text(doc: Document, data: Any) -> Scan:
    """Every key and text value of a parsed file, checked in one walk (iterative: a long list is not a
    deep recursion). A value's path is made only for a mapping or list to walk into, or for a finding
    (a file of 100,000 members holds a million texts); the findings are in the order of the file."""
    out = Scan()

    def text(value: str, at: tuple[str | int, ...], last: str | int, key: str) -> None:
        """One text value, the ``last`` part of its path under ``at``, of the nearest ``key``."""
        limit = limit_for(key)
        if len(value) > limit:
            out.long.append(doc.diag((*at, last), f"'{key or 'value'}' is {len(value):,} characters "
                                                  f"('{value[:20]}...'); it may be at most {limit:,}"))
            return
        if "${" in value and last not in CREDENTIAL_FIELDS:
            out.misuse.append(doc.diag((*at, last), "secret references are allowed only in credential fields "
                                                    f"({', '.join(sorted(CREDENTIAL_FIELDS))})"))
        bad = bad_character(value, free=key in FREE_TEXT)
        if bad:
            what = f"'{key}'" if key else "value"
            out.unsafe.append(doc.diag((*at, last), f"{what} holds {bad}; names and identifiers are one line of "
                                                    "visible text (they are shown in plans, pull-request comments "
                                                    "and the audit log)"))

    stack: list[tuple[Any, tuple[str | int, ...], str]] = [(data, (), "")]  # value, path, its nearest key
    while stack:
        value, at, key = stack.pop()
        children: list[tuple[Any, tuple[str | int, ...], str]] = []
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str):
                    if len(k) > TEXT_LENGTH:
                        out.long.append(doc.diag(at + (k,), f"key of {len(k):,} characters ('{k[:20]}...'); keys "
                                                            f"are at most {TEXT_LENGTH} characters", key=True))
                        continue
                    bad = bad_character(k)
                    if bad:
                        out.unsafe.append(doc.diag(at + (k,), f"key holds {bad}; names and identifiers are one "
                                                              "line of visible text", key=True))
                near = k if isinstance(k, str) else key
                if isinstance(v, str):
                    text(v, at, k, near)
                elif isinstance(v, (dict, list)):
                    children.append((v, at + (k,), near))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, str):
                    text(v, at, i, key)
                elif isinstance(v, (dict, list)):
                    children.append((v, at + (i,), key))
        elif isinstance(value, str):  # a file that is one text
            text(value, (), "", key)
        stack.extend(reversed(children))
    out.long.sort()
    out.misuse.sort()
    out.unsafe.sort()
    return out
