"""SCIM 2.0 provider: discover, read live state with paged lists, plan, and apply changes.

Reading is one ServiceProviderConfig call plus paged ``/Users`` and ``/Groups``
lists (never a GET per object). What reconciler creates or adopts carries its
mark in ``externalId`` (RFC 7643 §3.1: the provisioning client's identifier):
``<ownership_prefix><external_id or email>``. That mark is how a member deleted
from the YAML is recognised as "was managed, now removed" without a state file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from scim2_models import ServiceProviderConfig

from reconciler.config.models import Config, Member, ScimProvider, Team
from reconciler.config.secrets import redact, resolve
from reconciler.errors import (
    AuthError,
    ConflictError,
    ConnectError,
    NotFoundError,
    PlanError,
    ProviderError,
    ReconcilerError,
    ServerError,
)
from reconciler.plan.model import Action, AttributeChange, Change, Precondition
from reconciler.providers._http import (
    BearerToken,
    Http,
    OAuth2ClientCredentials,
    Recorder,
    build_client,
    raise_for_status,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_JSON = "application/scim+json"

# member field -> plan attribute key; enterprise attributes are keyed "enterprise:<name>"
_ENT_FIELDS = {"department": "department", "employee_number": "employeeNumber", "cost_center": "costCenter",
               "organization": "organization", "division": "division"}
_SIMPLE_FIELDS = {"given_name": "name.givenName", "family_name": "name.familyName",
                  "display_name": "displayName", "title": "title"}


@dataclass
class Capabilities:
    """What discovery says the provider supports (defaults when it has no ServiceProviderConfig)."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    etag: bool = False
    filter: bool = True
    max_results: int | None = None
    discovered: bool = False
    schemas: dict[str, set[str]] | None = None  # URN -> attribute names (read only when needed)

    def describe(self) -> str:
        bits = [f"patch={'yes' if self.patch else 'no'}",
                f"bulk={'yes (max ' + str(self.bulk_max_operations) + ' ops)' if self.bulk else 'no'}",
                f"etag={'yes' if self.etag else 'no'}", f"filter={'yes' if self.filter else 'no'}",
                f"maxResults={self.max_results or 'unset'}"]
        return ", ".join(bits) + ("" if self.discovered else " (no ServiceProviderConfig; assumed)")


@dataclass
class LiveState:
    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0


def _auth(p: ScimProvider, transport: httpx.BaseTransport | None, base_dir: str | None) -> httpx.Auth:
    a = p.auth
    def where(field: str) -> str:  # the error names the file:line:col of the reference
        return f"{p.locate(f'auth.{field}')}: providers.{p.name}.auth.{field}"

    if a.type == "bearer":
        return BearerToken(resolve(a.token, where("token"), base_dir))
    if a.type == "basic":
        token = resolve(a.token, where("token"), base_dir)
        return httpx.BasicAuth(a.username, token)
    secret = resolve(a.client_secret, where("client_secret"), base_dir)
    return OAuth2ClientCredentials(a.token_url, a.client_id, secret, a.audience, a.scope,
                                   transport=transport, timeout=p.timeout)


def connect(p: ScimProvider, *, transport: httpx.BaseTransport | None = None, recorder: Recorder | None = None,
            base_dir: str | None = None, sleep: Callable[[float], None] | None = None,
            attempts: int = 5) -> ScimClient:
    """Build a client for a configured provider (``transport`` lets tests and the sandbox inject a server)."""
    auth = _auth(p, transport, base_dir)
    client = build_client(p.base_url, auth=auth, timeout=p.timeout, ca_bundle=p.ca_bundle, transport=transport,
                          headers={"Accept": SCIM_JSON}, max_connections=max(p.concurrency, 4))
    kw: dict[str, Any] = {"recorder": recorder, "attempts": attempts}
    if sleep is not None:
        kw["sleep"] = sleep
    return ScimClient(Http(client, p.name, **kw), p)


class ScimClient:
    """The SCIM wire protocol for one provider: discovery, paged reads, writes."""

    def __init__(self, http: Http, provider: ScimProvider) -> None:
        self.http = http
        self.provider = provider
        self.caps = Capabilities()
        self._member_remove_form = "filter"  # switches to "value" when a provider rejects the filter path
        self._folds_case: bool | None = None  # does `userName eq` ignore case here? (see filters_fold_case)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # --- discovery ---------------------------------------------------------

    def discover(self) -> Capabilities:
        try:
            body = self.http.get_json("ServiceProviderConfig", what="cannot read ServiceProviderConfig")
        except NotFoundError:
            self.caps = Capabilities()
            return self.caps
        try:
            spc = ServiceProviderConfig.model_validate(body)
        except Exception as exc:  # a malformed document: use what we can, say so
            raise ServerError("ServiceProviderConfig is not a valid SCIM document", "GET",
                              self.http._full("ServiceProviderConfig"), 200, detail=str(exc)[:200]) from None
        bulk = spc.bulk
        self.caps = Capabilities(
            patch=bool(spc.patch and spc.patch.supported),
            bulk=bool(bulk and bulk.supported),
            bulk_max_operations=int((bulk.max_operations if bulk else 0) or 0),
            bulk_max_payload=int((bulk.max_payload_size if bulk else 0) or 0),
            etag=bool(spc.etag and spc.etag.supported),
            filter=bool(spc.filter and spc.filter.supported),
            max_results=int(spc.filter.max_results) if spc.filter and spc.filter.max_results else None,
            discovered=True,
        )
        return self.caps

    def schemas(self) -> dict[str, set[str]]:
        if self.caps.schemas is None:
            out: dict[str, set[str]] = {}
            try:
                body = self.http.get_json("Schemas", what="cannot read Schemas")
                for s in body.get("Resources", []) if isinstance(body, dict) else []:
                    out[str(s.get("id"))] = {str(a.get("name")) for a in s.get("attributes", []) or []}
            except NotFoundError:
                pass
            self.caps.schemas = out
        return self.caps.schemas

    # --- reads -------------------------------------------------------------

    def page_size(self) -> int:
        return self.provider.page_size or self.caps.max_results or 100

    def list_all(self, resource: str, *, params: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Every resource of a type, by paged list calls. Stops on totalResults, on an empty page, and
        on a page that repeats ids already seen (servers that return page 1 for a startIndex past the end)."""
        count = self.page_size()
        start = 1
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        pages = 0
        total: int | None = None
        while True:
            q = {"startIndex": str(start), "count": str(count), **(params or {})}
            body = self.http.get_json(resource, params=q, what=f"cannot list {resource}")
            pages += 1
            if not isinstance(body, dict):
                raise ServerError(f"{resource} list is not a SCIM ListResponse", "GET", self.http._full(resource))
            items = body.get("Resources") or []
            if total is None:
                total = int(body.get("totalResults", len(items)))
            fresh = [r for r in items if str(r.get("id")) not in seen]
            for r in fresh:
                seen.add(str(r.get("id")))
            out.extend(fresh)
            if not fresh or len(out) >= total:
                break
            start += len(items)
        return out, pages

    def read(self) -> LiveState:
        users, p1 = self.list_all("Users")
        groups, p2 = self.list_all("Groups")
        return LiveState(users, groups, p1 + p2)

    def find_user(self, user_name: str) -> dict[str, Any] | None:
        """The user of this userName in any case (RFC 7643: userName is case-insensitive). On a provider
        whose filter compares case-sensitively a miss is confirmed by a paged read of every user."""
        found = self._find("Users", f'userName eq "{_quote(user_name)}"',
                           lambda r: str(r.get("userName", "")).lower() == user_name.lower())
        if found is None and not self.filters_fold_case():
            return self.scan_user(user_name)
        return found

    def filters_fold_case(self) -> bool:
        """Whether ``userName eq`` matches in any case here, found once: a user the provider holds is
        looked up by its name in the other case. A provider with no user (or no name with letters)
        cannot hold an account that differs only in case from another: it passes."""
        if self._folds_case is None:
            body = self.http.get_json("Users", params={"startIndex": "1", "count": "1",
                                                       "attributes": "userName"},
                                      what="cannot list Users")
            items = body.get("Resources") if isinstance(body, dict) else None
            first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else None
            name = str(first.get("userName") or "") if first else ""
            if not first or name.swapcase() == name:
                return True  # nothing to learn from yet: ask again next time
            other = self._find("Users", f'userName eq "{_quote(name.swapcase())}"',
                               lambda r: str(r.get("id")) == str(first.get("id")))
            with self._lock:
                self._folds_case = other is not None
        return self._folds_case

    def find_group(self, name: str) -> dict[str, Any] | None:
        return self._find("Groups", f'displayName eq "{_quote(name)}"', lambda r: r.get("displayName") == name)

    def scan_user(self, user_name: str) -> dict[str, Any] | None:
        """The user whose userName is ``user_name`` in any case, by a paged read of every user: for a
        provider whose filters compare case-sensitively (RFC 7643 makes userName case-insensitive) and
        so answer 409 to a create that a filter lookup cannot explain. Bounded by the list itself."""
        users, _ = self.list_all("Users", params={"attributes": "userName,externalId"})
        want = user_name.lower()
        hit = next((u for u in users if str(u.get("userName", "")).lower() == want), None)
        return self.get("Users", str(hit["id"])) if hit is not None and hit.get("id") else None

    def group_names(self) -> dict[str, list[dict[str, Any]]]:
        """Every group by displayName (id and meta only): a few list pages, whatever the members."""
        groups, _ = self.list_all("Groups", params={"attributes": "displayName,externalId,meta"})
        out: dict[str, list[dict[str, Any]]] = {}
        for g in groups:
            out.setdefault(str(g.get("displayName")), []).append(g)
        return out

    def _find(self, resource: str, flt: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        body = self.http.get_json(resource, params={"filter": flt}, what=f"cannot search {resource}")
        for r in (body or {}).get("Resources", []) or []:
            if match(r):
                return dict(r)
        # a provider whose filter is case-sensitive or ignored: the match() above guards either way
        return None

    # --- writes ------------------------------------------------------------

    def _headers(self, etag: str | None) -> dict[str, str]:
        h = {"Content-Type": SCIM_JSON}
        if etag and self.caps.etag:
            h["If-Match"] = etag
        return h

    def create(self, resource: str, body: dict[str, Any], lookup: Callable[[], dict[str, Any] | None]) \
            -> dict[str, Any]:
        return self.create_or_adopt(resource, body, lookup)[0]

    def create_or_adopt(self, resource: str, body: dict[str, Any], lookup: Callable[[], dict[str, Any] | None]) \
            -> tuple[dict[str, Any], bool]:
        """POST; before any retry, look the object up so a create whose answer was lost is not repeated.
        Returns the object and whether it already existed (then it holds what someone else wrote, and the
        caller writes the desired attributes onto it).

        A 409 (the object exists: made by hand or by another apply since the plan, or by an earlier
        attempt whose answer was lost) returns the existing object; a 201 without a body (or without an
        id) is answered by a lookup too."""
        what = f"cannot create {resource[:-1].lower()} {body.get('userName') or body.get('displayName') or ''}"
        r = self.http.request("POST", resource, json=body, headers=self._headers(None), ok=(409,),
                              what=what.strip(), recover=lambda: _wrap(lookup()))
        if isinstance(r, _Found):
            return r.resource, True
        if r.status_code == 409:
            found = lookup()
            if found is None and resource == "Users":
                found = self.scan_user(str(body.get("userName", "")))
            if found is not None:
                return found, True
            raise_for_status(r, what.strip() + ": it exists but cannot be found by its name")
        data = _json(r)
        if not isinstance(data, dict) or "id" not in data:
            found = lookup()  # a server that answers 201 with no body
            if found is None:
                raise ServerError(f"created {resource[:-1].lower()} but the server returned no id", "POST",
                                  self.http._full(resource), r.status_code)
            return found, False
        return data, False

    def patch(self, resource: str, rid: str, ops: list[dict[str, Any]], etag: str | None = None) -> None:
        body = {"schemas": [PATCH_OP], "Operations": ops}
        self.http.request("PATCH", f"{resource}/{rid}", json=body, headers=self._headers(etag),
                          what=f"cannot update {resource[:-1].lower()} {rid}")

    def put(self, resource: str, rid: str, body: dict[str, Any], etag: str | None = None) -> None:
        self.http.request("PUT", f"{resource}/{rid}", json=body, headers=self._headers(etag),
                          what=f"cannot replace {resource[:-1].lower()} {rid}")

    def delete(self, resource: str, rid: str, etag: str | None = None) -> None:
        self.http.request("DELETE", f"{resource}/{rid}", headers=self._headers(etag), ok=(404,),
                          what=f"cannot delete {resource[:-1].lower()} {rid}")

    def get(self, resource: str, rid: str) -> dict[str, Any] | None:
        try:
            return dict(self.http.get_json(f"{resource}/{rid}", what=f"cannot read {resource[:-1].lower()}"))
        except NotFoundError:
            return None

    def set_members(self, gid: str, members: list[str], extra_ops: list[dict[str, Any]],
                    etag: str | None = None) -> None:
        """One PATCH that replaces the whole member list (and the attribute ops): one operation whatever
        the size of the change, and it also drops a member the provider holds twice."""
        op: dict[str, Any] = ({"op": "replace", "path": "members", "value": [{"value": i} for i in members]}
                              if members else {"op": "remove", "path": "members"})
        self.patch("Groups", gid, [*extra_ops, op], etag)

    def patch_members(self, gid: str, add: list[str], remove: list[str], extra_ops: list[dict[str, Any]],
                      etag: str | None = None) -> None:
        """Attribute ops, member adds and removes, in PATCHes of at most MEMBER_REMOVALS_PER_PATCH
        removals (servers spend seconds per hundred removal operations; one PATCH of thousands outlives
        any timeout). Only the first carries ``If-Match``: the later ones follow our own write. Removal
        uses the RFC 7644 filter path ``members[value eq "id"]``; a provider that rejects it gets the
        value-list form instead."""
        first = True
        for i in range(0, max(1, len(remove)), MEMBER_REMOVALS_PER_PATCH):
            part = remove[i:i + MEMBER_REMOVALS_PER_PATCH]
            self._patch_members(gid, add if first else [], part, extra_ops if first else [],
                                etag if first else None)
            first = False

    def _patch_members(self, gid: str, add: list[str], remove: list[str], extra_ops: list[dict[str, Any]],
                       etag: str | None) -> None:
        ops = list(extra_ops)
        if add:
            ops.append({"op": "add", "path": "members", "value": [{"value": i} for i in add]})
        if remove and self._member_remove_form == "filter":
            attempt = ops + [{"op": "remove", "path": f'members[value eq "{i}"]'} for i in remove]
            try:
                self.patch("Groups", gid, attempt, etag)
                return
            except ServerError as exc:
                if exc.status not in (400, 501):
                    raise
                with self._lock:
                    self._member_remove_form = "value"
        if remove:
            ops.append({"op": "remove", "path": "members", "value": [{"value": i} for i in remove]})
        if ops:
            self.patch("Groups", gid, ops, etag)

    # --- SCIM Bulk (RFC 7644 §3.7) ------------------------------------------------------------

    def bulk_limits(self) -> tuple[int, int]:
        """(operations, bytes) that one Bulk request may carry: the advertised limits, with a margin
        on the payload for the envelope."""
        ops = self.caps.bulk_max_operations or BULK_DEFAULT_OPERATIONS
        size = self.caps.bulk_max_payload or BULK_DEFAULT_PAYLOAD
        return max(1, min(ops, BULK_MAX_OPERATIONS)), max(1024, int(size * 0.95) - 256)

    def bulk_create(self, resource: str, items: list[tuple[str, dict[str, Any]]],
                    on_chunk: Callable[[dict[str, BulkResult]], None] | None = None) \
            -> dict[str, BulkResult]:
        """Create many resources with ``POST /Bulk``, chunked to the provider's limits.

        ``items`` are (bulkId, body) pairs; the answer maps every bulkId to the new id, or to the error
        of that one operation. A Bulk request whose answer is lost (timeout, dropped connection, 5xx,
        429) is never sent again: its objects are looked up and only the missing ones are created,
        one by one, so a lost answer never makes a duplicate. ``on_chunk`` sees each chunk's results.
        """
        out: dict[str, BulkResult] = {}
        max_ops, max_bytes = self.bulk_limits()
        for chunk in bulk_chunks(resource, items, max_ops, max_bytes):
            done = self._bulk_chunk(resource, chunk)
            out.update(done)
            if on_chunk is not None:
                on_chunk(done)
        return out

    def lookup(self, resource: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The live object a create body would make, found by its unique name (or None)."""
        if resource == "Users":
            return self.find_user(str(body["userName"]))
        return self.find_group(str(body["displayName"]))

    def _bulk_chunk(self, resource: str, bulk: BulkChunk) -> dict[str, BulkResult]:
        chunk = bulk.items
        try:
            # the bytes that sized the chunk are the bytes sent: each operation is serialised once
            r = self.http.request("POST", "Bulk", content=bulk.payload(), headers=self._headers(None),
                                  what=f"bulk create of {len(chunk)} {resource.lower()} failed",
                                  recover=lambda: _LOST)
        except (AuthError, ConnectError) as exc:
            return {bid: exc for bid, _ in chunk}
        except ProviderError:
            # the request as a whole was refused (too large, malformed for this server ...): one by one
            return self._one_by_one(resource, chunk)
        if r is _LOST:
            return self._one_by_one(resource, chunk)
        body = _json(r)
        answered: dict[str, dict[str, Any]] = {}
        for o in (body.get("Operations") or []) if isinstance(body, dict) else []:
            if isinstance(o, dict) and o.get("bulkId") is not None:
                answered[str(o["bulkId"])] = o
        out: dict[str, BulkResult] = {}
        rest: list[tuple[str, dict[str, Any]]] = []
        for bid, data in chunk:
            o = answered.get(bid)
            status = _bulk_status(o) if o is not None else 0
            if o is None:
                rest.append((bid, data))  # not processed (failOnErrors reached, or a partial answer)
            elif 200 <= status < 300:
                rid = _bulk_id_of(o)
                if rid is None:
                    rest.append((bid, data))
                else:
                    out[bid] = rid
            elif status == 409 and (found := self.lookup(resource, data)) is not None:
                out[bid] = Adopted(found)  # already there (by hand, another apply, an interrupted run)
            else:
                out[bid] = _bulk_error(o, status, resource, self.http._full("Bulk"))
        if rest:
            out.update(self._one_by_one(resource, rest))
        return out

    def _one_by_one(self, resource: str, chunk: list[tuple[str, dict[str, Any]]]) \
            -> dict[str, BulkResult]:
        def one(item: tuple[str, dict[str, Any]]) -> tuple[str, BulkResult]:
            bid, data = item
            try:
                found = self.lookup(resource, data)
                if found is not None:
                    return bid, Adopted(found)
                res, existed = self.create_or_adopt(resource, data, lambda: self.lookup(resource, data))
                return bid, Adopted(res) if existed else str(res["id"])
            except ProviderError as exc:
                return bid, exc

        workers = max(1, min(self.provider.concurrency, len(chunk)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"bulk-{self.provider.name}") as pool:
            return dict(pool.map(one, chunk))


@dataclass
class _Found:
    resource: dict[str, Any]


@dataclass
class Adopted:
    """A create that found its object already there: the live object, to write the desired state onto."""

    resource: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.resource["id"])


# what a Bulk create gives each bulkId: the new id, the object found already there, or the error
BulkResult = str | Adopted | ProviderError


def _wrap(found: dict[str, Any] | None) -> _Found | None:
    return _Found(found) if found is not None else None


def _json(r: httpx.Response) -> Any:
    if not r.content:
        return None
    try:
        return r.json()
    except ValueError:
        return None


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


# --- SCIM Bulk helpers --------------------------------------------------------------------------

# Member removals sent in one PATCH (one operation each); a larger cut goes in several PATCHes, or as one
# replace of the whole member list where that is smaller (see apply.py).
MEMBER_REMOVALS_PER_PATCH = 50
BULK_MAX_OPERATIONS = 1000  # even where a provider allows more: an answer per 1,000 keeps memory flat
BULK_DEFAULT_OPERATIONS = 100  # a provider that supports Bulk but advertises no limit
BULK_DEFAULT_PAYLOAD = 1_048_576
_LOST = object()  # Http.request's recover() result: the Bulk answer was lost, do not send it again


# What httpx sends for ``json=``: compact, UTF-8, no NaN. One encoder serves every thread.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_BULK_HEAD = b'{"schemas":["' + BULK_REQUEST.encode() + b'"],"Operations":['
_BULK_TAIL = b"]}"


@dataclass
class BulkChunk:
    """One ``POST /Bulk``: the (bulkId, body) pairs it creates, and each operation as JSON bytes.

    The operations are serialised once: the bytes that size the chunk are the bytes sent."""

    items: list[tuple[str, dict[str, Any]]]
    ops: list[bytes]

    def payload(self) -> bytes:
        return _BULK_HEAD + b",".join(self.ops) + _BULK_TAIL


def bulk_chunks(resource: str, items: list[tuple[str, dict[str, Any]]], max_ops: int, max_bytes: int) \
        -> list[BulkChunk]:
    """Split (bulkId, body) pairs into requests of at most ``max_ops`` operations and ``max_bytes``
    of JSON (an operation larger than the limit goes alone; the server then says what is wrong)."""
    chunks: list[BulkChunk] = []
    empty = len(_BULK_HEAD) + len(_BULK_TAIL)
    cur: list[tuple[str, dict[str, Any]]] = []
    ops: list[bytes] = []
    size = empty
    path = f"/{resource}"
    for bid, body in items:
        op = _JSON.encode({"method": "POST", "path": path, "bulkId": bid, "data": body}).encode()
        n = len(op) + (1 if ops else 0)  # and the comma before it
        if cur and (len(cur) >= max_ops or size + n > max_bytes):
            chunks.append(BulkChunk(cur, ops))
            cur, ops, size = [], [], empty
            n = len(op)
        cur.append((bid, body))
        ops.append(op)
        size += n
    if cur:
        chunks.append(BulkChunk(cur, ops))
    return chunks


def _bulk_status(o: dict[str, Any]) -> int:
    s = o.get("status")
    if isinstance(s, dict):  # draft-era servers: {"code": "201"}
        s = s.get("code")
    try:
        return int(str(s).strip()[:3])
    except ValueError:
        return 0


def _bulk_id_of(o: dict[str, Any]) -> str | None:
    resp = o.get("response")
    if isinstance(resp, dict) and resp.get("id"):
        return str(resp["id"])
    loc = o.get("location")
    if isinstance(loc, str) and loc.rstrip("/"):
        return loc.rstrip("/").rsplit("/", 1)[-1]
    return None


def _bulk_error(o: dict[str, Any], status: int, resource: str, url: str) -> ProviderError:
    resp = o.get("response") if isinstance(o.get("response"), dict) else {}
    assert isinstance(resp, dict)
    parts = [str(resp[k]) for k in ("detail",) if resp.get(k)]
    if resp.get("scimType"):
        parts.append(f"scimType={resp['scimType']}")
    what = f"cannot create {resource[:-1].lower()} (bulk operation {o.get('bulkId')})"
    cls: type[ProviderError] = ServerError
    if status in (409, 412):
        cls = ConflictError
    elif status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NotFoundError
    return cls(what, "POST", url, status or None, detail=redact("; ".join(parts)[:300]))


# --- normalisation: live SCIM resources and config items -> comparable attributes ---------------

def _get(res: dict[str, Any], dotted: str) -> Any:
    cur: Any = res
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _primary_email(res: dict[str, Any]) -> str | None:
    emails = res.get("emails") or []
    if not emails:
        return None
    for e in emails:
        if isinstance(e, dict) and e.get("primary"):
            return str(e.get("value"))
    first = emails[0]
    return str(first.get("value")) if isinstance(first, dict) else None


def _live_attr(res: dict[str, Any], key: str) -> Any:
    """A live value by the name a config's ``attributes`` uses: ``nickName``, ``name.middleName`` or a full
    URN path such as ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter``."""
    if key.startswith("urn:"):
        urn, attr = key.rsplit(":", 1)
        ext = res.get(urn)
        return _get(ext, attr) if isinstance(ext, dict) else None
    return _get(res, key)


def live_user(res: dict[str, Any], usernames: dict[str, str], extra: Iterable[str] = ()) -> dict[str, Any]:
    """The attributes reconciler can manage, as the plan shows them; ``extra`` names the other attributes
    the config declares (a member's ``attributes``)."""
    ent = res.get(ENTERPRISE) or {}
    out: dict[str, Any] = {
        "userName": res.get("userName"),
        "emails": _primary_email(res),
        "active": res.get("active", True) if res.get("active") is not None else True,
        "externalId": res.get("externalId"),
        "roles": sorted(str(r.get("value")) for r in res.get("roles") or [] if isinstance(r, dict)),
    }
    for attr in _SIMPLE_FIELDS.values():
        out[attr] = _get(res, attr)
    for attr in _ENT_FIELDS.values():
        out[f"enterprise:{attr}"] = ent.get(attr)
    mgr = ent.get("manager")
    mid = mgr.get("value") if isinstance(mgr, dict) else None
    out["enterprise:manager"] = usernames.get(str(mid), f"id:{mid}") if mid else None
    for key in extra:
        if key not in out:
            out[key] = _live_attr(res, key)
    return out


def desired_user(m: Member, p: ScimProvider) -> dict[str, Any]:
    """Only what the config declares is managed (unset is not empty)."""
    out: dict[str, Any] = {
        "userName": m.email,
        "emails": m.email,
        "active": m.active,
        "externalId": p.ownership_prefix + (m.external_id or m.email.lower()),
    }
    declared = m.model_fields_set
    for f, attr in _SIMPLE_FIELDS.items():
        if f in declared:
            out[attr] = getattr(m, f)
    for f, attr in _ENT_FIELDS.items():
        if f in declared:
            out[f"enterprise:{attr}"] = getattr(m, f)
    if "roles" in declared:
        out["roles"] = sorted(m.roles or [])
    if "manager" in declared:
        out["enterprise:manager"] = m.manager.lower() if m.manager else None
    for k, v in (m.attributes or {}).items():
        out[k] = v
    return out


def live_group(res: dict[str, Any], usernames: dict[str, str], p: ScimProvider) -> dict[str, Any]:
    out: dict[str, Any] = {
        "displayName": res.get("displayName"),
        "externalId": res.get("externalId"),
        "members": sorted(usernames.get(str(m.get("value")), f"id:{m.get('value')}")
                          for m in res.get("members") or [] if isinstance(m, dict)),
    }
    ts = p.team_schema
    if ts is not None:
        ext = res.get(ts.urn) or {}
        if ts.description:
            out["description"] = ext.get(ts.description)
        if ts.roles:
            out["permissions.roles"] = sorted(_values(ext.get(ts.roles)))
        if ts.collections:
            out["permissions.collections"] = sorted(_values(ext.get(ts.collections)))
    return out


def _values(v: Any) -> list[str]:
    if not v:
        return []
    if isinstance(v, list):
        return [str(x.get("value")) if isinstance(x, dict) else str(x) for x in v]
    return [str(v)]


def desired_group(t: Team, p: ScimProvider, managed_ext: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "displayName": t.name,
        "externalId": p.ownership_prefix + t.name,
        "members": sorted(e.lower() for e in t.members),
    }
    if "description" in managed_ext and "description" in t.model_fields_set:
        out["description"] = t.description
    if t.permissions is not None:
        if "roles" in managed_ext:
            out["permissions.roles"] = sorted(t.permissions.roles)
        if "collections" in managed_ext:
            out["permissions.collections"] = sorted(t.permissions.collections)
    return out


def _same(key: str, want: Any, have: Any) -> bool:
    if key in ("userName", "emails") and isinstance(want, str) and isinstance(have, str):
        return want.lower() == have.lower()
    return bool(want == have)


def attribute_diff(want: dict[str, Any], have: dict[str, Any]) -> list[AttributeChange]:
    return [AttributeChange(k, have.get(k), v) for k, v in want.items() if not _same(k, v, have.get(k))]


def digest(res: dict[str, Any]) -> str:
    """A digest of a live object, for preconditions where the provider has no ETags."""
    # meta changes with every write; a user's groups is derived (read-only, RFC 7643 §4.1.2) and changes
    # when a group it is in changes or goes, which is no change to the user itself
    clean = {k: v for k, v in res.items() if k not in ("meta", "groups")}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:32]


def precondition(res: dict[str, Any], caps: Capabilities) -> Precondition:
    version = (res.get("meta") or {}).get("version")
    return Precondition(etag=str(version) if version and caps.etag else None, digest=digest(res))


def address(provider: str, kind: str, key: str) -> str:
    return f'scim.{provider}.{kind}["{key}"]'


# --- planning -------------------------------------------------------------

@dataclass
class ProviderPlan:
    changes: list[Change]
    notes: list[str]
    protected: list[str]
    managed: int  # objects the provider holds that reconciler manages (the base of the removal percentage)


def plan_provider(config: Config, p: ScimProvider, live: LiveState, caps: Capabilities,
                  schemas: dict[str, set[str]] | None = None) -> ProviderPlan:
    """Pure: desired (config) + live (read) -> changes. No I/O."""
    notes: list[str] = []
    changes: list[Change] = []
    protected: list[str] = []
    prefix = p.ownership_prefix
    protect = {x.lower() for x in p.protect}

    by_name: dict[str, dict[str, Any]] = {}
    by_ext: dict[str, dict[str, Any]] = {}
    for u in live.users:
        by_name.setdefault(str(u.get("userName", "")).lower(), u)
        if u.get("externalId"):
            by_ext.setdefault(str(u["externalId"]), u)

    members = config.members_for(p.name)
    # members a team on this provider may hold: provisioned here and existing (or about to)
    holdable = {m.key for m in members}
    matched: dict[str, Member] = {}  # provider user id -> the member that matched it
    found: list[tuple[Member, dict[str, Any], dict[str, Any] | None]] = []  # (member, desired, live or None)
    for m in members:
        want = desired_user(m, p)
        res = by_name.get(m.key) or by_ext.get(want["externalId"])
        if res is not None and str(res.get("id")) in matched:
            # two members would update one account in turn, each undoing the other: refuse
            other = matched[str(res.get("id"))]
            how = "userName" if by_name.get(m.key) is res else f"externalId {want['externalId']}"
            raise PlanError(f"{m.locate('email')}: member {m.key} matches the provider's user "
                            f"{res.get('userName')} (id {res.get('id')}) by {how}, which member {other.key} "
                            f"({other.locate('email')}) already matches; give one of them another external_id "
                            "or remove it")
        if res is not None:
            matched[str(res.get("id"))] = m
        found.append((m, want, res))

    # a live user is named by the member that matched it (so a member whose email changed, matched by
    # externalId, keeps their teams and reports under the new name), else by its own userName
    usernames = {str(u.get("id")): str(u.get("userName", "")).lower() for u in live.users}
    usernames.update({uid: m.key for uid, m in matched.items()})
    ids = {name: uid for uid, name in usernames.items()}  # the live id behind each name the plan shows

    for m, want, res in found:
        addr = address(p.name, "user", m.key)
        if res is None:
            if not m.active:
                # declared inactive and absent: creating a disabled account serves nobody
                notes.append(f"{addr}: declared inactive and not on the provider; not created")
                holdable.discard(m.key)
                continue
            changes.append(Change(p.name, "user", m.key, Action.CREATE, addr, after=want,
                                  refs=_refs_user(want, ids)))
            continue
        have = live_user(res, usernames, want)
        diff = attribute_diff(want, have)
        if not diff:
            continue
        action = Action.UPDATE
        if [d.path for d in diff] == ["active"] or (have.get("active") and want["active"] is False):
            action = Action.DEACTIVATE if want["active"] is False else Action.UPDATE
        if action is Action.DEACTIVATE and m.protect:
            raise PlanError(f"{addr} is protected (protect: true) but the config deactivates it; "
                            "remove protect first")
        changes.append(Change(p.name, "user", m.key, action, addr, before={k: have.get(k) for k in want},
                              after=want, diff=diff, id=str(res["id"]),
                              precondition=precondition(res, caps),
                              refs=_refs_user(want, ids)))

    managed = sum(1 for u in live.users if str(u.get("externalId") or "").startswith(prefix)) if prefix else 0
    for u in live.users:
        uid = str(u.get("id"))
        if uid in matched:
            continue
        ext = str(u.get("externalId") or "")
        owned = bool(prefix) and ext.startswith(prefix)
        if not (owned or p.authoritative):
            continue
        name = str(u.get("userName", "")).lower()
        addr = address(p.name, "user", name)
        have = live_user(u, usernames)
        if name in protect:
            protected.append(addr)
            continue
        if p.removal == "delete":
            changes.append(Change(p.name, "user", name, Action.DELETE, addr, before=have, id=uid,
                                  precondition=precondition(u, caps)))
        elif have.get("active"):
            after = dict(have, active=False)
            changes.append(Change(p.name, "user", name, Action.DEACTIVATE, addr, before=have, after=after,
                                  diff=[AttributeChange("active", True, False)], id=uid,
                                  precondition=precondition(u, caps)))

    # teams
    managed_ext: set[str] = set()
    ts = p.team_schema
    wants_perm = any(t.permissions is not None for t in config.teams_for(p.name))
    wants_desc = any("description" in t.model_fields_set for t in config.teams_for(p.name))
    if ts is not None and schemas is not None:
        attrs = schemas.get(ts.urn)
        if attrs is None:
            notes.append(f"scim.{p.name}: team_schema {ts.urn} is not advertised by /Schemas; "
                         "team description and permissions are not managed on this provider")
        else:
            for f in ("description", "roles", "collections"):
                a = getattr(ts, f)
                if a and a in attrs:
                    managed_ext.add(f)
                elif a:
                    notes.append(f"scim.{p.name}: attribute {a} is not in {ts.urn}; team {f} not managed")
    if ts is None and wants_perm:
        notes.append(f"scim.{p.name}: team permissions (roles, collections) are not managed on this provider: "
                     "core SCIM Groups cannot express them (declare team_schema where the provider has an "
                     "extension)")
    if wants_desc and "description" not in managed_ext and (ts is None or not ts.description):
        notes.append(f"scim.{p.name}: team descriptions are not managed on this provider: core SCIM Groups "
                     "have no description attribute")

    groups_by_name: dict[str, dict[str, Any]] = {}
    for g in live.groups:
        groups_by_name.setdefault(str(g.get("displayName")), g)
    matched_groups: set[str] = set()
    teams = config.teams_for(p.name)
    current_names = {t.name for t in teams}
    for t in teams:
        want = desired_group(t, p, managed_ext)
        res = groups_by_name.get(t.name)
        if res is None:
            # renamed (previously: [old]): the old group is renamed in place, keeping its id
            res = next((groups_by_name[o] for o in t.previously
                        if o in groups_by_name and o not in current_names
                        and str(groups_by_name[o].get("id")) not in matched_groups), None)
        addr = address(p.name, "group", t.name)
        left_out = [e for e in want["members"] if e not in holdable]
        if left_out:
            want["members"] = [e for e in want["members"] if e in holdable]
            notes.append(f"{addr}: {', '.join(left_out)} not added: not provisioned to this provider "
                         "(declared inactive and absent, or restricted to other providers)")
        if res is None:
            changes.append(Change(p.name, "group", t.name, Action.CREATE, addr, after=want,
                                  refs={e: ids[e] for e in want["members"] if e in ids}))
            continue
        matched_groups.add(str(res.get("id")))
        have = live_group(res, usernames, p)
        diff = attribute_diff(want, have)
        if diff:
            refs = {e: ids[e] for e in set(want["members"]) | set(have["members"]) if e in ids}
            refs.update({e: e[3:] for e in have["members"] if e.startswith("id:")})
            notes_here = [f"{e} is a member twice on the provider; the duplicate entry is removed"
                          for e in _twice(have["members"])]
            if have["displayName"] != t.name:
                notes_here.append(f"renamed from {have['displayName']} (previously), keeping id {res['id']}")
            changes.append(Change(p.name, "group", t.name, Action.UPDATE, addr,
                                  before={k: have.get(k) for k in want}, after=want, diff=diff,
                                  id=str(res["id"]), precondition=precondition(res, caps), refs=refs,
                                  notes=notes_here))
    managed += sum(1 for g in live.groups if prefix and str(g.get("externalId") or "").startswith(prefix))
    for g in live.groups:
        gid = str(g.get("id"))
        if gid in matched_groups:
            continue
        owned = bool(prefix) and str(g.get("externalId") or "").startswith(prefix)
        if not (owned or p.authoritative):
            continue
        name = str(g.get("displayName"))
        addr = address(p.name, "group", name)
        if name.lower() in protect:
            protected.append(addr)
            continue
        changes.append(Change(p.name, "group", name, Action.DELETE, addr, before=live_group(g, usernames, p),
                              id=gid, precondition=precondition(g, caps)))
    if p.authoritative:
        managed = len(live.users) + len(live.groups)
    return ProviderPlan(changes, notes, protected, managed)


def _twice(names: list[str]) -> list[str]:
    """Names listed more than once (a group that holds one member twice), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for n in names:
        if n in seen and n not in out:
            out.append(n)
        seen.add(n)
    return out


def _refs_user(want: dict[str, Any], ids: dict[str, str]) -> dict[str, str]:
    """The live id of the member's manager where the manager exists already (a new member under an
    existing, unchanged manager needs it: no other change of the plan carries it)."""
    mgr = want.get("enterprise:manager")
    if mgr and mgr in ids:
        return {mgr: ids[mgr]}
    return {}


# --- payloads ---------------------------------------------------------------

def user_body(after: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "userName": after["userName"], "active": after["active"],
                            "externalId": after["externalId"],
                            "emails": [{"value": after["emails"], "type": "work", "primary": True}]}
    # one pass over the attributes (this runs once per member created)
    name: dict[str, Any] = {}
    ent: dict[str, Any] = {}
    rest: list[tuple[str, Any]] = []
    for k, v in after.items():
        if v is None or k in _KNOWN_KEYS:
            continue
        if k.startswith("name."):
            name[k[5:]] = v
        elif k.startswith("enterprise:"):
            attr = k[11:]
            if attr == "manager":
                if v not in refs:
                    raise ReconcilerError(f"manager {v} has no id on the provider (not created)")
                ent["manager"] = {"value": refs[v]}
            else:
                ent[attr] = v
        else:
            rest.append((k, v))
    if name:
        body["name"] = name
    for k in ("displayName", "title"):
        if after.get(k) is not None:
            body[k] = after[k]
    if after.get("roles"):
        body["roles"] = [{"value": r} for r in after["roles"]]
    if ent:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = ent
    for k, v in rest:
        if k.startswith("urn:"):
            urn, attr = k.rsplit(":", 1)
            body.setdefault(urn, {})[attr] = v
            if urn not in body["schemas"]:
                body["schemas"].append(urn)
        else:
            body[k] = v
    return body


_KNOWN_KEYS = {"userName", "active", "externalId", "emails", "displayName", "title", "roles"}


def user_ops(diff: Iterable[AttributeChange], refs: dict[str, str]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for d in diff:
        k, v = d.path, d.after
        if k == "emails":
            ops.append({"op": "replace", "path": "emails", "value": [{"value": v, "type": "work", "primary": True}]})
        elif k == "roles":
            ops.append({"op": "replace", "path": "roles", "value": [{"value": r} for r in v or []]})
        elif k.startswith("enterprise:"):
            attr = k.split(":", 1)[1]
            path = f"{ENTERPRISE}:{attr}"
            if attr == "manager":
                if v is None:
                    ops.append({"op": "remove", "path": path})
                elif v not in refs:
                    raise ReconcilerError(f"manager {v} has no id on the provider (not created)")
                else:
                    ops.append({"op": "replace", "path": path, "value": {"value": refs[v]}})
            elif v is None:
                ops.append({"op": "remove", "path": path})
            else:
                ops.append({"op": "replace", "path": path, "value": v})
        elif v is None:
            ops.append({"op": "remove", "path": k})
        else:
            ops.append({"op": "replace", "path": k, "value": v})
    return ops


def group_ext(after: dict[str, Any], p: ScimProvider) -> dict[str, Any]:
    ts = p.team_schema
    if ts is None:
        return {}
    ext: dict[str, Any] = {}
    if "description" in after and ts.description:
        ext[ts.description] = after["description"]
    if "permissions.roles" in after and ts.roles:
        ext[ts.roles] = [{"value": r} for r in after["permissions.roles"]]
    if "permissions.collections" in after and ts.collections:
        ext[ts.collections] = [{"value": c} for c in after["permissions.collections"]]
    return ext


def group_attr_ops(diff: Iterable[AttributeChange], p: ScimProvider) -> list[dict[str, Any]]:
    ops = []
    ts = p.team_schema
    for d in diff:
        if d.path == "members":
            continue
        if d.path in ("displayName", "externalId"):
            ops.append({"op": "replace", "path": d.path, "value": d.after})
        elif ts is not None:
            attr = {"description": ts.description, "permissions.roles": ts.roles,
                    "permissions.collections": ts.collections}.get(d.path)
            if attr:
                value = d.after if d.path == "description" else [{"value": x} for x in d.after or []]
                ops.append({"op": "replace", "path": f"{ts.urn}:{attr}", "value": value})
    return ops


def apply_user_ops_to(resource: dict[str, Any], after: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    """For providers without PATCH: the full resource to PUT, the live one with the desired values."""
    body = {k: v for k, v in resource.items() if k not in ("meta", "id")}
    fresh = user_body(after, refs)
    for k, v in fresh.items():
        if k == "schemas":
            body["schemas"] = sorted(set(body.get("schemas", [])) | set(v))
        elif isinstance(v, dict) and isinstance(body.get(k), dict):
            body[k] = {**body[k], **v}
        else:
            body[k] = v
    return body


__all__ = ["Capabilities", "ConflictError", "LiveState", "ProviderError", "ScimClient", "connect",
           "plan_provider", "user_body", "user_ops"]
