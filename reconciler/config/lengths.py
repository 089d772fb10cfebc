"""What a config value may be before it is validated: as long as its field allows, and a credential
reference only where a credential goes.

Checked on the raw YAML, so that a 100,000-character email is refused at its file:line:col without being
matched against a pattern or quoted whole in a message.
"""

from __future__ import annotations

from typing import Any

from reconciler.config.identifiers import FREE_TEXT
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


def too_long(doc: Document, data: Any, path: tuple[str | int, ...] = ()) -> list[Diagnostic]:
    """Every text value and key longer than its field allows, at its position; never quoted whole."""
    out: list[Diagnostic] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, path)]
    while stack:  # iterative: a long list is not a deep recursion
        value, at = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and len(k) > TEXT_LENGTH:
                    out.append(doc.diag(at + (k,), f"key of {len(k):,} characters ('{k[:20]}...'); keys are at "
                                                   f"most {TEXT_LENGTH} characters", key=True))
                    continue
                stack.append((v, at + (k,)))
        elif isinstance(value, list):
            stack.extend((v, at + (i,)) for i, v in enumerate(value))
        elif isinstance(value, str):
            key = next((p for p in reversed(at) if isinstance(p, str)), "")
            limit = limit_for(key)
            if len(value) > limit:
                out.append(doc.diag(at, f"'{key or 'value'}' is {len(value):,} characters ('{value[:20]}...'); "
                                        f"it may be at most {limit:,}"))
    return sorted(out)


def reference_misuse(doc: Document, data: Any, path: tuple[str | int, ...]) -> list[Diagnostic]:
    """${env:...} / ${file:...} belong in credential fields only."""
    out: list[Diagnostic] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += reference_misuse(doc, v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += reference_misuse(doc, v, path + (i,))
    elif isinstance(data, str) and "${" in data:
        last = path[-1] if path else ""
        if last not in CREDENTIAL_FIELDS:
            out.append(doc.diag(path, "secret references are allowed only in credential fields "
                                      f"({', '.join(sorted(CREDENTIAL_FIELDS))})"))
    return out
