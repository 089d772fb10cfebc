"""What parsed, when some of a config did not: the items that validate, and the keys of those that did not.

A config file with a structural error in one item (a typo in a key, a wrong type) still declares its
other items. The loader keeps those, so that the cross-checks (unknown members, teams, providers ...)
run in the same pass and every mistake is reported at once. An item that failed validation is dropped;
its key, read from its raw YAML, is remembered, so that a cross-check error whose only cause is the
dropped item ("team 'appsec' lists unknown member 'bob@acme.io'" where bob's item had a typo) is not
reported on top of the error that dropped it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError

from reconciler.errors import Diagnostic

# the key field of each kind, as cross-check errors refer to it (see Diagnostic.refers)
KEY_FIELDS = {"members": "email", "teams": "name", "providers": "name", "connections": "name",
              "integrations": "name", "user_maps": "member"}
CASELESS = {"members", "user_maps"}  # emails: matched whatever their case

T = TypeVar("T")


def normal_key(kind: str, key: str) -> str:
    return key.lower() if kind in CASELESS else key


class Dropped:
    """The keys of the items that failed validation, per kind."""

    def __init__(self) -> None:
        self.keys: dict[str, set[str]] = {}

    def add(self, kind: str, raw: Any) -> None:
        """Remember the key of one dropped raw item (a mapping from the YAML; anything else has no key)."""
        field = KEY_FIELDS.get(kind)
        if field and isinstance(raw, dict) and isinstance(raw.get(field), str):
            self.keys.setdefault(kind, set()).add(normal_key(kind, raw[field]))

    def add_all(self, kind: str, raw: Any) -> None:
        """Every item under a kind that could not be used as a whole (a mapping where a list belongs ...)."""
        for item in raw if isinstance(raw, list) else [raw]:
            self.add(kind, item)

    def explains(self, d: Diagnostic) -> bool:
        """Whether ``d`` is only the consequence of a dropped item: it is about the absence of a declaration
        whose item was declared but failed validation."""
        if d.refers is None:
            return False
        kind, key = d.refers
        return normal_key(kind, key) in self.keys.get(kind, set())

    def filter(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        return [d for d in diagnostics if not self.explains(d)]


def keep_valid(data: dict[str, Any], exc: ValidationError, validate: Callable[[dict[str, Any]], T],
               kinds: Iterable[str], dropped: Dropped) -> tuple[T, dict[str, list[int]]] | None:
    """Validate ``data`` without the items ``exc`` found wrong. Returns the model of what is left and, per
    kind, the index in ``data`` of each item kept (for positions), or None when even that fails; every
    dropped item's key goes to ``dropped``."""
    kinds = list(kinds)
    bad_items: dict[str, set[int]] = {}
    bad_kinds: set[str] = set()
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        if not loc or not isinstance(loc[0], str):
            bad_kinds.update(data)
            continue
        kind = loc[0]
        if len(loc) > 1 and isinstance(loc[1], int) and isinstance(data.get(kind), list):
            bad_items.setdefault(kind, set()).add(loc[1])
        else:
            bad_kinds.add(kind)
    pruned: dict[str, Any] = {}
    index: dict[str, list[int]] = {}
    for kind, value in data.items():
        # an unknown kind ('memebrs:') most likely holds the items of the kind it is a typo of
        as_kind = kind if kind in kinds else next(iter(difflib.get_close_matches(kind, kinds, n=1)), kind)
        if kind in bad_kinds:
            dropped.add_all(as_kind, value)
            continue
        if isinstance(value, list) and kind in bad_items:
            index[kind] = [i for i in range(len(value)) if i not in bad_items[kind]]
            for i in sorted(bad_items[kind]):
                dropped.add(kind, value[i])
            pruned[kind] = [value[i] for i in index[kind]]
        else:
            pruned[kind] = value
    try:
        return validate(pruned), index
    except ValidationError:
        for kind, value in data.items():  # not expected (items validate on their own): drop the whole file
            dropped.add_all(kind, value)
        return None
