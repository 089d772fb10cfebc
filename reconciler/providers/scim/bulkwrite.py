"""SCIM Bulk (RFC 7644 §3.7): the creates of users and new teams' groups (``create``), and the writes
after them (member updates and deactivations, the members of new teams, and removals), in few
requests where the provider offers Bulk.

Each change becomes one operation (PATCH or DELETE, with ``version`` carrying the ETag the plan saw);
the operations go in requests chunked to the provider's limits, at most ``concurrency`` requests at
once (the phase's changes do not depend on each other). Every one of these writes may be sent again
without harm (a PATCH that replaces or adds, a DELETE of what may be gone), so an operation the answer
does not cover, a request refused whole, or one whose answer is lost, is sent again on its own, as the
applier would have sent it without Bulk.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import AuthError, ConflictError, ConnectError, NotFoundError, ProviderError, ReconcilerError
from reconciler.execute import Outcome, skip_message
from reconciler.plan.model import Change
from reconciler.providers._http import Found, current_address, current_addresses
from reconciler.providers.paths import seg
from reconciler.providers.scim import attributes as scim
from reconciler.providers.scim.bulk import _JSON, LOST, Adopted, BulkChunk, BulkResult, bulk_status
from reconciler.providers.scim.client import PATCH_OP
from reconciler.secrets import redact
from reconciler.threads import fan_out

if TYPE_CHECKING:
    from reconciler.providers.scim.apply import ScimApplier


@dataclass
class Write:
    """One change's write: ``alone`` makes it as a request of its own."""

    change: Change
    method: str  # PATCH or DELETE
    path: str  # Users/<id>, Groups/<id>
    ops: list[dict[str, Any]] | None
    version: str | None
    alone: Callable[[Change], Any]

    def operation(self, bid: str) -> dict[str, Any]:
        op: dict[str, Any] = {"method": self.method, "path": "/" + self.path, "bulkId": bid}
        if self.ops is not None:
            op["data"] = {"schemas": [PATCH_OP], "Operations": self.ops}
        if self.version:
            op["version"] = self.version
        return op


def run(applier: ScimApplier, changes: list[Change], prepare: Callable[[Change], Write | None]) -> None:
    """Make ``changes`` through Bulk, each reported as it ends; ``prepare`` gives a change's write (None:
    nothing to send), or raises a ReconcilerError that fails that change alone."""
    t0 = time.perf_counter()
    writes: list[Write] = []
    for c in changes:
        token = current_address.set(c.address)
        try:
            blocked = applier._blocked_by(c)
            if blocked:
                raise ReconcilerError(skip_message(blocked))
            applier._check_fresh(c)
            w = prepare(c)
        except ReconcilerError as exc:
            applier._fail(c, str(exc), t0)
            continue
        finally:
            current_address.reset(token)
        if w is None:
            applier._done(Outcome(c, True, None, (time.perf_counter() - t0) * 1000))
        else:
            writes.append(w)
    if not writes:
        return
    client = applier.client
    max_ops, max_bytes = client.bulk_limits()
    pairs = [(f"w{i}", w.operation(f"w{i}")) for i, w in enumerate(writes)]
    by_bid = {f"w{i}": w for i, w in enumerate(writes)}
    chunks = _chunks(pairs, max_ops, max_bytes)

    def one_chunk(chunk: BulkChunk) -> None:
        token = current_address.set(f"scim.{client.provider.name}.bulk")
        carried = current_addresses.set(tuple(by_bid[bid].change.address for bid, _ in chunk.items))
        try:
            results, lost = _send(applier, chunk)
        finally:
            current_addresses.reset(carried)
            current_address.reset(token)
        for bid, _ in chunk.items:
            w = by_bid[bid]
            res = results.get(bid, LOST)
            if res is LOST:
                res = _after_lost(applier, w) if lost else _alone(w)
            if isinstance(res, ReconcilerError):
                applier._fail(w.change, str(res), t0)
            else:
                applier._done(Outcome(w.change, True, None, (time.perf_counter() - t0) * 1000))

    # at most the provider's concurrency in flight, this step's and the other steps' requests together
    fan_out([functools.partial(one_chunk, ch) for ch in chunks], min(client.provider.concurrency, len(chunks)),
            f"bulk-{client.provider.name}")


def _alone(w: Write) -> ReconcilerError | None:
    token = current_address.set(w.change.address)
    try:
        w.alone(w.change)
        return None
    except ReconcilerError as exc:
        return exc
    finally:
        current_address.reset(token)


def _after_lost(applier: ScimApplier, w: Write) -> ReconcilerError | None:
    """A write whose Bulk answer was lost: the server may have made it. Without an ETag it is sent again
    alone (it is safe to repeat); with one, the object is read: the version the plan saw means it was not
    made (sent alone), the desired state means it was; anything else changed since the plan."""
    if w.version is None:
        return _alone(w)
    c = w.change
    resource, _, rid = w.path.partition("/")
    try:
        live = applier.client.get(resource, c.id or rid)
    except ReconcilerError as exc:
        return exc
    if live is None:
        return None if w.method == "DELETE" else ReconcilerError(f"{c.address} was deleted since the plan was made")
    if str((live.get("meta") or {}).get("version")) == w.version:
        return _alone(w)
    if w.method == "PATCH" and c.kind == "user" and c.after is not None:
        names = {v: k for k, v in applier.ids.items()}
        have = scim.live_user(live, names, c.after)
        if not [d for d in scim.attribute_diff(c.after, have) if d.path != "userName"]:
            return None  # the lost Bulk made it
    return ReconcilerError(f"{c.address} changed on the provider since the plan was made (another apply "
                           "running?); nothing was written to it; plan again")


def _chunks(pairs: list[tuple[str, dict[str, Any]]], max_ops: int, max_bytes: int) -> list[BulkChunk]:
    chunks: list[BulkChunk] = []
    cur: list[tuple[str, dict[str, Any]]] = []
    ops: list[bytes] = []
    size = 64
    for bid, op in pairs:
        data = _JSON.encode(op).encode()
        if cur and (len(cur) >= max_ops or size + len(data) + 1 > max_bytes):
            chunks.append(BulkChunk(cur, ops))
            cur, ops, size = [], [], 64
        cur.append((bid, op))
        ops.append(data)
        size += len(data) + 1
    if cur:
        chunks.append(BulkChunk(cur, ops))
    return chunks


def _send(applier: ScimApplier, chunk: BulkChunk) -> tuple[dict[str, Any], bool]:
    """bulkId -> None (done) or a ProviderError (that operation failed); a bulkId left out goes alone.
    The flag: the answer was lost (the server may have made every operation)."""
    client = applier.client
    url = client.http._full("Bulk")
    try:
        r = client.http.request("POST", "Bulk", content=chunk.payload(), headers=client._headers(None),
                                what=f"bulk write of {len(chunk.items)} operation(s) failed",
                                recover=lambda: Found(LOST))
    except (AuthError, ConnectError) as exc:
        return {bid: exc for bid, _ in chunk.items}, False
    except ProviderError:
        return {}, False  # refused whole (too large, not understood here): each goes alone
    if isinstance(r, Found):
        return {}, True
    try:
        body = r.json() if r.content else None
    except ValueError:
        body = None
    out: dict[str, Any] = {}
    sent = dict(chunk.items)
    for o in (body.get("Operations") or []) if isinstance(body, dict) else []:
        if not isinstance(o, dict) or str(o.get("bulkId")) not in sent:
            continue
        bid = str(o["bulkId"])
        status = bulk_status(o)
        method = sent[bid]["method"]
        if 200 <= status < 300 or (status == 404 and method == "DELETE"):
            out[bid] = None
        elif status in (404, 409, 412, 401, 403):
            resp = o.get("response") if isinstance(o.get("response"), dict) else {}
            detail = redact(str((resp or {}).get("detail") or ""))[:300]
            cls: type[ProviderError] = (ConflictError if status in (409, 412) else
                                        AuthError if status in (401, 403) else NotFoundError)
            what = f"cannot {'update' if method == 'PATCH' else 'delete'} {sent[bid]['path'].lstrip('/')}"
            out[bid] = cls(what, method, url, status, detail=detail)
        # any other answer (5xx, 429, none): the operation goes alone, with the applier's retries
    return out, False


# --- each kind of change as a Bulk operation ------------------------------------------------------

def _etag(c: Change) -> str | None:
    return c.precondition.etag if c.precondition else None


def user_patch(applier: ScimApplier, alone: Callable[[Change], Any]) -> Callable[[Change], Write]:
    """A member's update or deactivation: its PATCH (a provider without PATCH gets no Bulk here)."""
    def prepare(c: Change) -> Write:
        assert c.id is not None
        return Write(c, "PATCH", f"Users/{seg(c.id)}", scim.user_ops(c.diff, applier.ids), _etag(c), alone)
    return prepare


def delete(resource: str, alone: Callable[[Change], Any]) -> Callable[[Change], Write]:
    def prepare(c: Change) -> Write:
        assert c.id is not None
        return Write(c, "DELETE", f"{resource}/{seg(c.id)}", None, _etag(c), alone)
    return prepare


def new_group_members(applier: ScimApplier, created: dict[str, str]) -> Callable[[Change], Write | None]:
    """A new team's members created since its group was (``ScimApplier.new_group_adds``), added by one PATCH."""
    def prepare(c: Change) -> Write | None:
        gid = created[c.key]
        add = applier.new_group_adds(c)
        if not add:
            return None
        ops = [{"op": "add", "path": "members", "value": [{"value": i} for i in add]}]
        return Write(c, "PATCH", f"Groups/{seg(gid)}", ops, None,
                     lambda _: applier.client.patch_members(gid, add, [], []))
    return prepare


def create(applier: ScimApplier, creates: list[Change], resource: str, created: dict[str, str] | None,
           adopted: set[str] | None = None) -> None:
    """Create in Bulk requests users (``created`` None: their ids go to ``applier.ids`` and each is
    reported) or new groups (ids into ``created``, names found already there into ``adopted``; only
    failures are reported, as a later step completes them)."""
    t0 = time.perf_counter()
    by_bid: dict[str, Change] = {}
    carries: dict[str, str] = {}  # bulkId -> the change's address, for the audit log of each request
    refs = applier.ids  # read, never copied: the ids of the members made so far

    def items() -> Iterator[tuple[str, dict[str, Any]]]:
        """Each create's body, made as the Bulk request that carries it is: 100,000 bodies are never held
        at once (``bulk.bulk_chunks``)."""
        for i, c in enumerate(creates):
            blocked = applier._blocked_by(c)
            try:
                if blocked:
                    raise ReconcilerError(skip_message(blocked))
                assert c.after is not None
                body = applier._group_body(c) if created is not None else \
                    scim.user_body(c.after, refs, applier._meta())
            except ReconcilerError as exc:
                applier._fail(c, str(exc), t0)
                continue
            bid = f"{resource[0].lower()}{i}"
            by_bid[bid] = c
            carries[bid] = c.address
            yield bid, body

    def chunk_done(done: dict[str, BulkResult]) -> None:
        for bid, res in done.items():
            # an operation's bookkeeping goes with its answer: 100,000 of them are never held to the end
            c = by_bid.pop(bid)
            carries.pop(bid, None)
            if isinstance(res, ProviderError):
                applier._fail(c, str(res), t0)
                continue
            rid = res.id if isinstance(res, Adopted) else res
            with applier._lock:
                if created is None:
                    applier.ids[c.key] = rid
                else:
                    created[c.key] = rid
                    if isinstance(res, Adopted) and adopted is not None:
                        adopted.add(c.key)
            if created is None:
                token = current_address.set(c.address)
                try:
                    if isinstance(res, Adopted):
                        applier._converge_adopted_user(c, res.resource)
                except ReconcilerError as exc:
                    applier._fail(c, str(exc), t0)
                    continue
                finally:
                    current_address.reset(token)
                applier._done(Outcome(c, True, None, (time.perf_counter() - t0) * 1000))

    token = current_address.set(f"scim.{applier.p.name}.bulk")
    try:
        applier.client.bulk_create(resource, items(), on_chunk=chunk_done, carries=carries)
    finally:
        current_address.reset(token)
