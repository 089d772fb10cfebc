"""Live data made safe to show: what a server or a config holds can never forge a plan line.

``visible`` escapes every character that is not plain visible text (line breaks, terminal escapes,
bidirectional overrides, zero-width and other format characters) as ``\\uXXXX``, so one value stays
on one line and reads as what it is. ``markdown`` also turns each markup character into an
HTML character reference where Markdown or HTML would read it as markup (no emphasis, link, table cell,
tag or closing code span), in inline text, inside ``<code>`` and in HTML blocks alike.
JSON output is data and stays untouched.
"""

from __future__ import annotations

import unicodedata

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
# What Markdown or HTML reads as markup: tags and entities, emphasis and strikethrough, code spans, links and
# images, escapes, table cells, math. Addresses keep their dots, @, quotes, colons and slashes readable.
# Brackets stay (addresses read scim.p.user["a@b"]): without "(" no inline link or image can follow them.
_MARKUP = frozenset("&<>`*_()\\~|!$")


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _ESCAPED_CATEGORIES


def visible(text: str) -> str:
    """``text`` with every control, format, separator and unassigned character escaped as ``\\uXXXX``."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def markdown(text: str) -> str:
    """``text`` as Markdown/HTML that renders exactly as the characters it holds."""
    return "".join(f"&#{ord(ch)};" if ch in _MARKUP else ch for ch in visible(text))
