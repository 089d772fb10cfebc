"""The one lost-create recovery of every system: ``Http.request(..., recover=)`` calls ``recover`` before
each retry of a request that is not idempotent; a ``Found`` it returns (what the lost attempt made) is
returned instead of a response, so a retried create never makes a duplicate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    """What a lost attempt turned out to have done: the object a create made, or a sentinel the caller
    gave (a Bulk answer that was lost)."""

    value: Any


def found(value: Any | None) -> Found | None:
    """``recover``'s answer for a lookup: the object a lost create made, or None (not made: retry)."""
    return Found(value) if value is not None else None
