"""SCIM 2.0 wire protocol for one provider: discovery, paged reads, lookups, writes, Bulk.

Reading is one ServiceProviderConfig call plus paged ``/Users`` and ``/Groups``
lists (never a GET per object), and ``/Schemas`` with ``/ResourceTypes`` once (``scim/schema.py``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError
from scim2_models import ServiceProviderConfig

from reconciler.config.models import ScimProvider
from reconciler.errors import (
    AuthError,
    ConnectError,
    NotFoundError,
    ProviderError,
    ServerError,
)
from reconciler.providers._http import (
    Found,
    Http,
    Recorder,
    build_client,
    ca_path,
    current_addresses,
    found,
    raise_for_status,
)
from reconciler.providers.paging import Listing, Page, read_concurrent
from reconciler.providers.paths import seg
from reconciler.providers.scim.bulk import (
    BULK_DEFAULT_OPERATIONS,
    BULK_DEFAULT_PAYLOAD,
    BULK_MAX_OPERATIONS,
    LOST,
    Adopted,
    BulkChunk,
    BulkResult,
    bulk_chunks,
    bulk_error,
    bulk_id_of,
    bulk_status,
)
from reconciler.providers.scim.schema import Attr, ProviderSchema, parse_resource_types, parse_schemas
from reconciler.providers.scim.schema import Capabilities as Capabilities
from reconciler.providers.scim.wire import auth_for, form_refused, listed, share_ids, trimmer
from reconciler.threads import Pool, fan_out

if TYPE_CHECKING:
    from reconciler.session import Session

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_JSON = "application/scim+json"
# Member removals sent in one PATCH (one operation each); a larger cut goes in several PATCHes, or as one
# replace of the whole member list where that is smaller (see apply.py).
MEMBER_REMOVALS_PER_PATCH = 50


@dataclass
class LiveState:
    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    # the resources that changed while they were read, in every read (``paging.read_concurrent``)
    changed: list[str] = field(default_factory=list)


def connect(p: ScimProvider, *, transport: httpx.BaseTransport | None = None, recorder: Recorder | None = None,
            base_dir: str | None = None, sleep: Callable[[float], None] | None = None,
            attempts: int = 5) -> ScimClient:
    """Build a client for a configured provider (``transport`` lets tests and the sandbox inject a server)."""
    auth = auth_for(p, transport, base_dir)
    client = build_client(p.base_url, auth=auth, timeout=p.timeout, ca_bundle=ca_path(p, base_dir), transport=transport,
                          headers={"Accept": SCIM_JSON}, max_connections=max(p.concurrency, 4))
    kw: dict[str, Any] = {"recorder": recorder, "attempts": attempts}
    if sleep is not None:
        kw["sleep"] = sleep
    return ScimClient(Http(client, p.name, **kw), p)


def client_for(session: Session, name: str) -> ScimClient:
    """The session's client of one SCIM provider, connected on first use and closed with the session."""
    def make() -> ScimClient:
        p = session.config.provider(name)
        return connect(p, transport=session.transports.get(name), recorder=session.recorder,
                       base_dir=session.base_dir, sleep=session.sleep, attempts=session.attempts)
    client: ScimClient = session.connection("scim." + name, make)
    return client


class ScimClient:
    """The SCIM wire protocol for one provider: discovery, paged reads, writes."""

    def __init__(self, http: Http, provider: ScimProvider) -> None:
        self.http = http
        self.provider = provider
        self.caps = Capabilities()
        self._member_remove_form = "filter"  # switches to "value" when a provider rejects the filter path
        self._folds_case: bool | None = None  # does `userName eq` ignore case here? (see filters_fold_case)
        self._count_ok: bool | None = None  # does a list call take `count` here? (see get_list)
        self._lock = threading.Lock()
        # list pages in flight at once, Users and Groups together: the provider's concurrency
        self._reads = threading.BoundedSemaphore(max(1, provider.concurrency))

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
        except Exception as exc:  # a malformed document: say which field
            first = exc.errors()[0] if isinstance(exc, ValidationError) and exc.errors() else None
            detail = (f"{'.'.join(str(x) for x in first['loc']) or 'the document'}: {first['msg']}" if first
                      else str(exc))
            raise ServerError("ServiceProviderConfig is not a valid SCIM document", "GET",
                              self.http._full("ServiceProviderConfig"), 200, detail=detail[:200]) from None
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
        self.schema()
        return self.caps.schemas or {}

    def schema(self) -> ProviderSchema | None:
        """``/Schemas`` and ``/ResourceTypes``, read once (None where the provider serves no usable schemas:
        then everything is sent as declared, and ``caps.schema_note`` says why where it is not a 404)."""
        if self.caps.schemas is None:
            parsed: dict[str, dict[str, Attr]] = {}
            try:
                parsed = parse_schemas(self.http.get_json("Schemas", what="cannot read Schemas"))
            except NotFoundError:
                pass
            except (ServerError, AuthError) as exc:
                if isinstance(exc, AuthError) and exc.status != 403:
                    raise
                self.caps.schema_note = f"/Schemas cannot be read (HTTP {exc.status})"
            types = None
            if parsed:
                try:
                    types = parse_resource_types(self.http.get_json("ResourceTypes", what="cannot read ResourceTypes"))
                except (NotFoundError, ServerError):
                    pass  # every extension /Schemas advertises is then taken as usable
            self.caps.schemas = {urn: {a.name for a in attrs.values()} for urn, attrs in parsed.items()}
            self.caps.schema = ProviderSchema(parsed, types) if parsed else None
        return self.caps.schema

    # --- reads -------------------------------------------------------------

    def page_size(self) -> int:
        return self.provider.page_size or self.caps.max_results or 100

    def list_all(self, resource: str, *, params: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Every resource of a type, by paged list calls, and the pages read (see ``listing``)."""
        got = self.listing(resource, params=params)
        return got.items, got.pages

    def listing(self, resource: str, *, params: dict[str, str] | None = None) -> Listing:
        """Every resource of a type by paged list calls, after the first page the others at once, at most
        the provider's ``concurrency`` in flight: ``paging.read_concurrent`` (bounded, deduplicated)."""
        count = self.page_size()
        url, trim = self.http._full(resource), trimmer(resource)

        def fetch(offset: int) -> Page:
            q = {"startIndex": str(offset + 1), "count": str(count), **(params or {})}
            with self._reads:
                body = self.get_list(resource, q)
            items = body.get("Resources") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(items if items is not None else [], list):
                raise ServerError(f"{resource} list is not a SCIM ListResponse", "GET", url)
            found = [trim(r) for r in items or [] if isinstance(r, dict)]
            total = body.get("totalResults", len(found))
            if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                raise ServerError(f"{resource} list: totalResults is {str(total)[:40]!r}, not a count", "GET", url)
            return Page(found, total)

        return read_concurrent(fetch, page_size=count, url=url, workers=self.provider.concurrency)

    def get_list(self, resource: str, q: dict[str, str]) -> Any:
        """One list call. A server that answers 500 to ``count`` (Canaille 0.3.6 compares the query
        string with an int) is read without it: found on the first list call, whose 500 is not retried
        but answered by the same call without ``count`` (retried as usual); the page size is then the
        server's own (paging still ends on the total, bounded)."""
        what = f"cannot list {resource}"
        if self._count_ok is False:
            q = {k: v for k, v in q.items() if k != "count"}
        elif self._count_ok is None and "count" in q:
            r = self.http.request("GET", resource, params=q, what=what, ok=(500,))
            if r.status_code != 500:
                self._count_ok = True
                return listed(r)
            # the same without count, retried as any call is: a server that fails it too fails the read
            body = self.http.get_json(resource, params={k: v for k, v in q.items() if k != "count"}, what=what)
            self._count_ok = False  # count is what the server cannot take
            return body
        return self.http.get_json(resource, params=q, what=what)

    def read(self) -> LiveState:
        with Pool(max_workers=2, thread_name_prefix=f"read-{self.provider.name}") as pool:
            users_f = pool.submit(self.listing, "Users")
            groups_f = pool.submit(self.listing, "Groups")
            users, groups = users_f.result(), groups_f.result()
        changed = [name for name, got in (("Users", users), ("Groups", groups)) if got.changed]
        share_ids(users.items, groups.items)
        return LiveState(users.items, groups.items, users.pages + groups.pages, changed)

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
            body = self.get_list("Users", {"startIndex": "1", "count": "1", "attributes": "userName"})
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
                              what=what.strip(), recover=lambda: found(lookup()))
        if isinstance(r, Found):
            return r.value, True
        if r.status_code == 409:
            existing = lookup()
            if existing is None and resource == "Users":
                existing = self.scan_user(str(body.get("userName", "")))
            if existing is not None:
                return existing, True
            raise_for_status(r, what.strip() + ": it exists but cannot be existing by its name")
        data = _json(r)
        if not isinstance(data, dict) or "id" not in data:
            existing = lookup()  # a server that answers 201 with no body
            if existing is None:
                raise ServerError(f"created {resource[:-1].lower()} but the server returned no id", "POST",
                                  self.http._full(resource), r.status_code)
            return existing, False
        return data, False

    def patch(self, resource: str, rid: str, ops: list[dict[str, Any]], etag: str | None = None) -> None:
        body = {"schemas": [PATCH_OP], "Operations": ops}
        self.http.request("PATCH", f"{resource}/{seg(rid)}", json=body, headers=self._headers(etag),
                          what=f"cannot update {resource[:-1].lower()} {rid}")

    def put(self, resource: str, rid: str, body: dict[str, Any], etag: str | None = None) -> None:
        self.http.request("PUT", f"{resource}/{seg(rid)}", json=body, headers=self._headers(etag),
                          what=f"cannot replace {resource[:-1].lower()} {rid}")

    def delete(self, resource: str, rid: str, etag: str | None = None) -> None:
        self.http.request("DELETE", f"{resource}/{seg(rid)}", headers=self._headers(etag), ok=(404,),
                          what=f"cannot delete {resource[:-1].lower()} {rid}")

    def get(self, resource: str, rid: str) -> dict[str, Any] | None:
        try:
            return dict(self.http.get_json(f"{resource}/{seg(rid)}", what=f"cannot read {resource[:-1].lower()}"))
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
                if not form_refused(exc, alone=not extra_ops):
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

    def bulk_create(self, resource: str, items: Iterable[tuple[str, dict[str, Any]]],
                    on_chunk: Callable[[dict[str, BulkResult]], None] | None = None,
                    carries: dict[str, str] | None = None) -> dict[str, BulkResult]:
        """Create many resources with ``POST /Bulk``, chunked to the provider's limits.

        ``items`` are (bulkId, body) pairs; the answer maps every bulkId to the new id, or to the error
        of that one operation. A Bulk request whose answer is lost (timeout, dropped connection, 5xx,
        429) is never sent again: its objects are looked up and only the missing ones are created,
        one by one, so a lost answer never makes a duplicate. ``on_chunk`` sees each chunk's results (then
        the answer keeps none); ``carries`` (bulkId -> address, read per request) names them for the audit log.
        """
        out: dict[str, BulkResult] = {}
        max_ops, max_bytes, known = *self.bulk_limits(), carries or {}
        for chunk in bulk_chunks(resource, items, max_ops, max_bytes):
            token = current_addresses.set(tuple(known[b] for b, _ in chunk.items if b in known))
            try:
                done = self._bulk_chunk(resource, chunk)
            finally:
                current_addresses.reset(token)
            if on_chunk is None:
                out.update(done)
            else:
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
                                  recover=lambda: Found(LOST))
        except (AuthError, ConnectError) as exc:
            return {bid: exc for bid, _ in chunk}
        except ProviderError:
            # the request as a whole was refused (too large, malformed for this server ...): one by one
            return self._one_by_one(resource, chunk)
        if isinstance(r, Found):  # the answer was lost: each alone, each checked first
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
            status = bulk_status(o) if o is not None else 0
            if o is None:
                rest.append((bid, data))  # not processed (failOnErrors reached, or a partial answer)
            elif 200 <= status < 300:
                rid = bulk_id_of(o)
                if rid is None:
                    rest.append((bid, data))
                else:
                    out[bid] = rid
            elif status == 409 and (found := self.lookup(resource, data)) is not None:
                out[bid] = Adopted(found)  # already there (by hand, another apply, an interrupted run)
            else:
                out[bid] = bulk_error(o, status, resource, self.http._full("Bulk"))
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

        return dict(fan_out([functools.partial(one, item) for item in chunk],
                            min(self.provider.concurrency, len(chunk)), f"bulk-{self.provider.name}"))



def _json(r: httpx.Response) -> Any:
    if not r.content:
        return None
    try:
        return r.json()
    except ValueError:
        return None


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
