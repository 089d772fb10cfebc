"""SCIM Bulk (RFC 7644 §3.7): requests chunked to the provider's limits, and their answers read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    ProviderError,
    ServerError,
)
from reconciler.secrets import redact

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class Adopted:
    """A create that found its object already there: the live object, to write the desired state onto."""

    resource: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.resource["id"])


# what a Bulk create gives each bulkId: the new id, the object found already there, or the error
BulkResult = str | Adopted | ProviderError


BULK_MAX_OPERATIONS = 1000  # even where a provider allows more: an answer per 1,000 keeps memory flat
BULK_DEFAULT_OPERATIONS = 100  # a provider that supports Bulk but advertises no limit
BULK_DEFAULT_PAYLOAD = 1_048_576
LOST = object()  # Http.request's recover() result: the Bulk answer was lost, do not send it again


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


def bulk_chunks(resource: str, items: Iterable[tuple[str, dict[str, Any]]], max_ops: int, max_bytes: int) \
        -> Iterator[BulkChunk]:
    """Split (bulkId, body) pairs into requests of at most ``max_ops`` operations and ``max_bytes``
    of JSON (an operation larger than the limit goes alone; the server then says what is wrong). Each
    request is made when the one before it is sent: the bodies of 100,000 creates and their JSON are
    never held at once (``items`` may make them as they are asked for)."""
    empty = len(_BULK_HEAD) + len(_BULK_TAIL)
    cur: list[tuple[str, dict[str, Any]]] = []
    ops: list[bytes] = []
    size = empty
    path = f"/{resource}"
    for bid, body in items:
        op = _JSON.encode({"method": "POST", "path": path, "bulkId": bid, "data": body}).encode()
        n = len(op) + (1 if ops else 0)  # and the comma before it
        if cur and (len(cur) >= max_ops or size + n > max_bytes):
            yield BulkChunk(cur, ops)
            cur, ops, size = [], [], empty
            n = len(op)
        cur.append((bid, body))
        ops.append(op)
        size += n
    if cur:
        yield BulkChunk(cur, ops)


def bulk_status(o: dict[str, Any]) -> int:
    s = o.get("status")
    if isinstance(s, dict):  # draft-era servers: {"code": "201"}
        s = s.get("code")
    try:
        return int(str(s).strip()[:3])
    except ValueError:
        return 0


def bulk_id_of(o: dict[str, Any]) -> str | None:
    resp = o.get("response")
    if isinstance(resp, dict) and resp.get("id"):
        return str(resp["id"])
    loc = o.get("location")
    if isinstance(loc, str) and loc.rstrip("/"):
        return loc.rstrip("/").rsplit("/", 1)[-1]
    return None


def bulk_error(o: dict[str, Any], status: int, resource: str, url: str) -> ProviderError:
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
    return cls(what, "POST", url, status or None, detail=redact(redact("; ".join(parts))[:300]))


