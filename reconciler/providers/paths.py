"""A value from a live system (an id, a key) as one segment of a URL path: percent-encoded whole, so an id
such as ``../Groups/admins`` or ``x?attributes=`` can neither climb the path nor start a query."""

from __future__ import annotations

from urllib.parse import quote


def seg(value: object) -> str:
    return quote(str(value), safe="")
