"""Small pieces of the SCIM wire protocol: a provider's HTTP auth, reading a list answer (and what a plan
never reads of a listed user), and what a refused member-removal PATCH means.
"""

from __future__ import annotations

import re
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


def trim_user(r: dict[str, Any]) -> dict[str, Any]:
    """What a plan never reads of a listed user, dropped as its page arrives: the groups it is in
    (derived, read-only; the groups say it) and meta but its version (the ETag). Neither is part of a
    user's digest (``attributes.digest``), so preconditions are unchanged; at 100,000 users this is
    about a third of the live state's memory."""
    r.pop("groups", None)
    _keep_meta(r, ("version",))
    return r


def trim_group(r: dict[str, Any]) -> dict[str, Any]:
    """What a plan never reads of a listed group, dropped as its page arrives: of each member all but its
    ``value`` (``$ref``, ``type`` and ``display`` are the member's, not the group's; RFC 7643 §4.2) and
    meta but its version and when it was created (of two groups of one name, every apply keeps the one
    created first: ``apply._oldest``). ``attributes.digest`` reads members the same way, so preconditions
    are the same from a listed group and from a GET of it."""
    members = r.get("members")
    if isinstance(members, list):
        r["members"] = by_value(members)
    _keep_meta(r, ("version", "created"))
    return r


def by_value(members: list[Any]) -> list[Any]:
    """A group's members as the plan and the digest read them: each by its ``value`` alone."""
    return [{"value": m.get("value")} if isinstance(m, dict) else m for m in members]


def _keep_meta(r: dict[str, Any], keys: tuple[str, ...]) -> None:
    meta = r.get("meta")
    if isinstance(meta, dict) and len(meta) > len(keys):
        r["meta"] = {k: meta[k] for k in keys if k in meta}


def share_ids(users: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    """Each group member's id made the user's own string, not one more copy per group it is in."""
    ids = {i: i for i in (u.get("id") for u in users) if isinstance(i, str)}
    for g in groups:
        members = g.get("members")
        for m in members if isinstance(members, list) else []:
            v = m.get("value") if isinstance(m, dict) else None
            if isinstance(v, str) and v in ids:
                m["value"] = ids[v]
