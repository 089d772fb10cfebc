"""Small pieces of the SCIM wire protocol: a provider's HTTP auth, reading a list answer (and what a plan
never reads of a listed user), and what a refused member-removal PATCH means.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from reconciler.config.models import ScimProvider
from reconciler.errors import ServerError
from reconciler.providers._http import BasicAuth, BearerToken, OAuth2ClientCredentials, ca_context, ca_path
from reconciler.secrets import resolve


def auth_for(p: ScimProvider, transport: httpx.BaseTransport | None, base_dir: str | None) -> httpx.Auth:
    a = p.auth
    def where(field: str) -> str:  # the error names the file:line:col of the reference
        return f"{p.locate(f'auth.{field}')}: providers.{p.name}.auth.{field}"

    if a.type == "bearer":
        return BearerToken(resolve(a.token, where("token"), base_dir))
    if a.type == "basic":
        token = resolve(a.token, where("token"), base_dir)
        return BasicAuth(a.username, token)
    secret = resolve(a.client_secret, where("client_secret"), base_dir)
    return OAuth2ClientCredentials(a.token_url, a.client_id, secret, a.audience, a.scope,
                                   transport=transport, timeout=p.timeout, client_auth=a.client_auth,
                                   metadata_url=a.metadata_url, where=where("client_auth"),
                                   verify=ca_context(ca_path(p, base_dir)))  # the token request trusts it too


# The scimTypes (RFC 7644 §3.12) by which a 400 says the removal path itself cannot be used; any other
# 400 (a bad value, a read-only attribute ...) is about the request, and the other form would not help.
_FORM_SCIM_TYPES = {"invalidfilter", "invalidpath", "notarget"}


def form_refused(exc: ServerError, alone: bool) -> bool:
    """Whether a refused member-removal PATCH says that this removal form is not supported (501, or a
    400 whose scimType is about the path or filter), so the other form is worth sending. Where the
    PATCH carried attribute operations too, a path error must name the members to be the removal's."""
    if exc.status == 501:
        return True
    if exc.status != 400:
        return False
    detail = exc.detail.lower()
    m = re.search(r"scimtype=(\w+)", detail)
    if m is None:
        about = "filter" in detail or "path" in detail
    else:
        about = m.group(1) in _FORM_SCIM_TYPES
    return about and (alone or "member" in detail)


def listed(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        raise ServerError("the server answered with something that is not JSON", "GET",
                          str(r.request.url.copy_with(query=None)), r.status_code) from None


class Shared:
    """The texts and lists that repeat from one listed object to the next, kept once for a whole read
    (``trim_user``): a user's ``schemas``, an email's ``type``, a short ``meta.version`` (scim2-server's
    are ``W/"3"``). At most ``LIMIT`` of them, so a read whose every value is new keeps no more than that.
    Pages are trimmed on several threads at once; a lost race keeps two copies of one text, never a
    wrong one."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._kept: dict[Any, Any] = {}

    def one(self, v: Any) -> Any:
        kept = self._kept.get(v)
        if kept is not None:
            return kept
        if len(self._kept) < self.LIMIT:
            self._kept[v] = v
        return v

    def seq(self, v: Any) -> Any:
        """A list of texts as one tuple shared by every object that has the same (it is never written)."""
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            return v
        return self.one(tuple(v))


def trimmer(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How one read of a list trims each object of its pages: users with one ``Shared`` for the read."""
    if resource == "Users":
        shared = Shared()
        return lambda r: trim_user(r, shared)
    return trim_group if resource == "Groups" else _as_is


def _as_is(r: dict[str, Any]) -> dict[str, Any]:
    return r


def trim_user(r: dict[str, Any], shared: Shared | None = None) -> dict[str, Any]:
    """What a plan never reads of a listed user, dropped as its page arrives: the groups it is in
    (derived, read-only; the groups say it) and meta but its version (the ETag). Neither is part of a
    user's digest (``attributes.digest``), so preconditions are unchanged; at 100,000 users this is
    about a third of the live state's memory. With ``shared``, what repeats from user to user is kept
    once (``Shared``) and a primary email that is the userName is the userName's own text: the digest
    reads the same values."""
    r.pop("groups", None)
    _keep_meta(r, ("version",))
    if shared is None:
        return r
    if "schemas" in r:
        r["schemas"] = shared.seq(r["schemas"])
    meta = r.get("meta")
    version = meta.get("version") if isinstance(meta, dict) else None
    if isinstance(version, str) and len(version) <= 16:
        meta["version"] = shared.one(version)  # type: ignore[index]
    name, emails = r.get("userName"), r.get("emails")
    for e in emails if isinstance(emails, list) else ():
        if isinstance(e, dict):
            if isinstance(e.get("type"), str):
                e["type"] = shared.one(e["type"])
            if e.get("value") == name and isinstance(name, str):
                e["value"] = name
    return r


def trim_group(r: dict[str, Any]) -> dict[str, Any]:
    """What a plan never reads of a listed group, dropped as its page arrives: of each member all but its
    ``value``, the members kept as one tuple of values (``member_values``; ``$ref``, ``type`` and
    ``display`` are the member's, not the group's, RFC 7643 §4.2: 10,000 groups of 20 hold 200,000
    one-key dicts otherwise), and meta but its version and when it was created (of two groups of one
    name, every apply keeps the one created first: ``apply._oldest``). ``attributes.digest`` reads
    members the same way, so preconditions are the same from a listed group and from a GET of it."""
    if "members" in r:
        r["members"] = member_values(r["members"])
    _keep_meta(r, ("version", "created"))
    return r


def member_values(members: Any) -> tuple[Any, ...]:
    """A group's members as the plan and the digest read them: the ``value`` of each entry that is an
    object (of a GET's list of objects, or a listed group's tuple already made); nothing else is a
    member."""
    if isinstance(members, tuple):
        return members
    if not isinstance(members, list):
        return ()
    return tuple(m.get("value") for m in members if isinstance(m, dict))


def _keep_meta(r: dict[str, Any], keys: tuple[str, ...]) -> None:
    meta = r.get("meta")
    if isinstance(meta, dict) and len(meta) > len(keys):
        r["meta"] = {k: meta[k] for k in keys if k in meta}


def share_ids(users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    """Each group member's id made the user's own string, not one more copy per group it is in."""
    ids = {i: i for i in (u.get("id") for u in users) if isinstance(i, str)}
    for g in groups:
        members = g.get("members")
        if isinstance(members, tuple):
            g["members"] = tuple(ids.get(v, v) if isinstance(v, str) else v for v in members)
