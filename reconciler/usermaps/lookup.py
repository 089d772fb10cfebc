"""Find members' Jira accounts by email (user search), for ``reconciler usermaps resolve``.

Jira Cloud: GET /rest/api/3/user/search?query=EMAIL gives accountId, active and
emailAddress, which the user's privacy setting may hide. Jira Data Center:
GET /rest/api/2/user/search?username=EMAIL gives name (the username) and key.
Only an exact, visible email match on one active account counts as found;
two accounts, a hidden email or an inactive account are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from reconciler.config.models import Config, Member
from reconciler.errors import ReconcilerError
from reconciler.providers._http import BearerToken, Http, build_client, ca_path
from reconciler.secrets import resolve
from reconciler.threads import Pool
from reconciler.usermaps.resolve import connections, identities_for, mapped_identities

Status = Literal["found", "ambiguous", "hidden", "inactive", "not-found", "claimed", "deactivated-member"]
JIRA_TYPES = ("jira-cloud", "jira-datacenter")
PAGE = 50
LOOKUPS_AT_ONCE = 4


@dataclass(frozen=True)
class Lookup:
    """What the user search said about one member; ``identity`` is set only when ``status`` is found."""

    member: str
    status: Status
    identity: str | None
    detail: str


def jira_connection(config: Config, name: str) -> Any:
    conns = connections(config)
    for c in conns:
        if getattr(c, "name", None) == name:
            if getattr(c, "type", None) not in JIRA_TYPES:
                raise ReconcilerError(f"connection '{name}' is a {c.type} connection; resolve looks accounts up "
                                      f"in Jira only ({', '.join(JIRA_TYPES)})")
            return c
    jira = sorted(str(c.name) for c in conns if getattr(c, "type", None) in JIRA_TYPES)
    valid = f"; Jira connections in this config: {', '.join(jira)}" if jira else "; the config declares none"
    raise ReconcilerError(f"unknown connection '{name}'{valid}")


def jira_http(config: Config, conn: Any, transport: httpx.BaseTransport | None = None) -> Http:
    """An Http for a Jira connection: basic auth (email + API token) on Cloud, a bearer PAT on Data Center."""
    root = Path(config.root)
    base_dir = str(root if root.is_dir() else root.parent)
    auth: httpx.Auth
    if conn.type == "jira-cloud":
        token = resolve(conn.api_token, f"{conn.locate('api_token')}: connections.{conn.name}.api_token", base_dir)
        auth = httpx.BasicAuth(conn.email, token)
    else:
        auth = BearerToken(resolve(conn.token, f"{conn.locate('token')}: connections.{conn.name}.token", base_dir))
    client = build_client(conn.url, auth=auth, timeout=conn.timeout, ca_bundle=ca_path(conn, base_dir),
                          transport=transport, headers={"Accept": "application/json"})
    return Http(client, f"jira.{conn.name}")


def search(http: Http, kind: str, member: Member) -> Lookup:
    """One user search for the member's email, judged strictly (see the module docstring)."""
    email = member.email
    if kind == "jira-cloud":
        users = http.get_json("rest/api/3/user/search", params={"query": email, "maxResults": PAGE},
                              what=f"Jira user search for {email} failed")
        id_field = "accountId"
        # app and customer accounts cannot be assigned issues
        users = [u for u in _list(users) if u.get("accountType") in (None, "atlassian")]
    else:
        users = http.get_json("rest/api/2/user/search", params={"username": email, "maxResults": PAGE},
                              what=f"Jira user search for {email} failed")
        id_field = "name"
        users = [u for u in _list(users) if not u.get("deleted")]
    exact = [u for u in users if str(u.get("emailAddress") or "").casefold() == email.casefold()]
    hidden = [u for u in users if not u.get("emailAddress")]
    if len(exact) > 1:
        ids = ", ".join(str(u.get(id_field)) for u in exact)
        return Lookup(email, "ambiguous", None, f"{len(exact)} accounts have this email ({ids}); "
                                                "map the right one by hand")
    if len(exact) == 1:
        u = exact[0]
        ident = str(u.get(id_field) or "")
        if not ident:
            return Lookup(email, "not-found", None, f"the matching account has no {id_field}")
        if u.get("active") is False:
            return Lookup(email, "inactive", None, f"account {ident} has this email but is inactive")
        return Lookup(email, "found", ident, f"{id_field} {ident}" + (f" ({u['displayName']})"
                                                                      if u.get("displayName") else ""))
    if hidden:
        ids = ", ".join(f"{u.get(id_field)} ({u.get('displayName', '?')})" for u in hidden)
        return Lookup(email, "hidden", None, f"{len(hidden)} account(s) match but hide their email by privacy "
                                             f"setting: {ids}; confirm by hand and add the account to the map")
    return Lookup(email, "not-found", None, "no account has this email")


def _list(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return [u for u in body if isinstance(u, dict)]
    if isinstance(body, dict) and isinstance(body.get("values"), list):
        return [u for u in body["values"] if isinstance(u, dict)]
    if isinstance(body, dict) and body:  # some Data Center versions answer one object for one match
        return [body]
    return []


def resolve_missing(config: Config, connection: str, *, http: Http | None = None,
                    progress: Callable[[Lookup], None] | None = None) -> list[Lookup]:
    """Look up every member that has no identity in ``connection``; deactivated members are skipped."""
    conn = jira_connection(config, connection)
    owned = {k.casefold(): v for k, v in mapped_identities(config, conn.name).items()}
    todo = [m for m in config.members if not identities_for(config, m.email, conn.name)]
    out: list[Lookup] = []
    if not todo:
        return out
    own_http = http is None
    h = http or jira_http(config, conn)

    def one(m: Member) -> Lookup:
        if not m.active:
            return Lookup(m.email, "deactivated-member", None, "member is deactivated (active: false); not looked up")
        r = search(h, conn.type, m)
        if r.identity is not None and r.identity.casefold() in owned:
            r = Lookup(m.email, "claimed", None, f"{r.identity} is already mapped to {owned[r.identity.casefold()]}")
        return r

    # a few searches at once (Jira rate-limits; Http retries a 429 after its Retry-After), reported in
    # config order; the first error stops the searches not yet started
    pool = Pool(max_workers=min(LOOKUPS_AT_ONCE, len(todo)), thread_name_prefix="usermaps-resolve")
    try:
        for r in pool.map(one, todo):
            out.append(r)
            if progress is not None:
                progress(r)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if own_http:
            h.close()
    # one account found for two members in this run: neither gets it
    finders: dict[str, list[str]] = {}
    for r in out:
        if r.identity is not None:
            finders.setdefault(r.identity.casefold(), []).append(r.member)
    return [Lookup(r.member, "claimed", None, f"{r.identity} was found for {' and '.join(finders[key])}; "
                                              "map it by hand")
            if r.identity is not None and len(finders[key := r.identity.casefold()]) > 1 else r for r in out]
