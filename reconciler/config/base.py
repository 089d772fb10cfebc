"""The base of every desired-state model: names, emails, URLs, and where each item was declared.

Kept apart from ``models.py`` so that the integration and user-map models can build on it while
``models.py`` gathers them all into one config file model.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from reconciler.config.yamlpos import Nested

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]

# RFC 5322 is far wider; this is what SCIM providers and trackers accept in practice.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")


def lower(text: str) -> str:
    """``text`` in lower case: the text itself where it already is (as emails usually are), not a copy of it
    for every member, team member and change that names it."""
    return text if text.islower() else text.lower()


def check_email(value: str) -> str:
    if len(value) > 254:  # RFC 5321; never quoted whole
        raise ValueError(f"an email address is at most 254 characters, not {len(value):,} ('{value[:20]}...')")
    # fullmatch: re's $ also matches before a final line break, which let "alice@acme.io\n" through
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"'{value}' is not a valid email address")
    return value


def refuse_userinfo(value: str) -> None:
    """A URL never carries a credential (``https://svc:pw@host``): it would be sent, printed and saved with
    the URL. The message does not quote the URL, whose part before @ is the credential."""
    try:
        parts = urlsplit(value)
        userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        userinfo = "@" in value
    if userinfo:
        raise ValueError("a URL must not hold a user name or password before the host (user:password@host); "
                         "credentials go in the auth settings as ${env:NAME} or ${file:PATH}")


def check_url_shape(value: str) -> None:
    """No credential, no white space or control character anywhere (a trailing line break), an http(s)
    scheme, a host, a port in 1-65535: what the HTTP client would otherwise refuse only when it connects."""
    refuse_userinfo(value)
    shown = value if len(value) <= 80 else value[:77] + "..."
    if len(value) > 2048:
        raise ValueError(f"a URL is at most 2,048 characters, not {len(value):,} ('{shown}')")
    if _SPACE.search(value):
        raise ValueError(f"'{shown}' holds white space or a control character (a trailing line break?); a URL "
                         "is one word")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"'{shown}' has a port outside 1-65535 or an invalid host") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{shown}' is not an http(s) URL with a host; write https://host/path")
    if port == 0:
        raise ValueError(f"'{shown}' has port 0; a port is 1-65535")


_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def check_http_url(value: str) -> str:
    """An http(s) URL with a host; plain http only to loopback (the rule the HTTP client enforces again)."""
    check_url_shape(value)
    parts = urlsplit(value)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ValueError(f"'{value}' uses plain http; only https is allowed except to loopback "
                         "(127.0.0.1, localhost, ::1)")
    return value


def is_loopback(host: str) -> bool:
    """The one loopback rule (plain http is allowed only there): localhost, 127.0.0.0/8, ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Origin:
    """Where an item was declared: file, line and column, and the positions inside it (``yamlpos.Nested``:
    compact, as 100,000 members hold one each)."""

    __slots__ = ("file", "line", "column", "nested")

    def __init__(self, file: str, line: int, column: int, nested: Nested | None) -> None:
        self.file, self.line, self.column, self.nested = file, line, column, nested

    def where(self, field: str | None = None, *, key: bool = False) -> tuple[str, int, int]:
        pos = self.nested.at(field, key) if field is not None and self.nested is not None else 0
        if pos:
            return self.file, pos >> 32, pos & 0xFFFFFFFF
        return self.file, self.line, self.column


_FIELD_SETS: dict[frozenset[str], frozenset[str]] = {}


class SharedFieldsSet(BaseModel):
    """A model of which there are 100,000 (members, the changes of a plan) keeps the set of fields it was
    given (``model_fields_set``) as one frozen set shared with every object given the same fields:
    pydantic makes one per object, 200 to 700 bytes each. ``share_fields_set`` is called once an object
    is made; a copy (``model_copy(update=...)``, which adds to it) and an object assigned a field
    (``member.protect = True``) get a set of their own."""

    def __setattr__(self, name: str, value: Any) -> None:
        given: Any = self.__pydantic_fields_set__  # declared a set; shared, it is a frozenset
        if isinstance(given, frozenset):
            object.__setattr__(self, "__pydantic_fields_set__", set(given))
        super().__setattr__(name, value)

    def share_fields_set(self) -> None:
        given = frozenset(self.__pydantic_fields_set__)
        object.__setattr__(self, "__pydantic_fields_set__", _FIELD_SETS.setdefault(given, given))

    def __copy__(self) -> Any:
        m = super().__copy__()
        object.__setattr__(m, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        return m

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        m = super().__deepcopy__(memo)
        object.__setattr__(m, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        return m


class Model(BaseModel):
    # no inf/nan: 'timeout: 1e400' or 'max_removal_percent: .nan' is a mistake, not a setting
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=False,
                              allow_inf_nan=False)


class Item(Model, SharedFieldsSet):
    """A declared object that remembers where in which file it was declared."""

    _origin: Origin | None = PrivateAttr(default=None)

    def where(self, field: str | None = None, *, key: bool = False) -> tuple[str, int, int]:
        if self._origin is None:
            return ("<config>", 0, 0)
        return self._origin.where(field, key=key)

    def locate(self, field: str | None = None) -> str:
        """``file:line:col`` of a field's value (of the item without a field), to start an error with."""
        f, line, col = self.where(field)
        return f"{f}:{line}:{col}"
