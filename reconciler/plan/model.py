"""The plan as data: Action, AttributeChange, Change, Plan.

Renderers read a Plan and never recompute it; apply executes a Plan and
nothing else. The same inputs give the same Plan (changes are sorted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What apply will do to one object. ``symbol`` is how every renderer shows it."""

    CREATE = "create"
    UPDATE = "update"
    DEACTIVATE = "deactivate"
    DELETE = "delete"
    REPLACE = "replace"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def is_removal(self) -> bool:
        return self in (Action.DEACTIVATE, Action.DELETE)


_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DEACTIVATE: "-", Action.DELETE: "-",
            Action.REPLACE: "-/+"}
# The order actions are listed in the summary line (public API: scripts parse it).
SUMMARY_ORDER = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DEACTIVATE, Action.DELETE)


@dataclass(frozen=True)
class AttributeChange:
    """One attribute's value before and after. Lists are compared as sets where order is meaningless."""

    path: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Precondition:
    """What the live object looked like when the plan was made: apply refuses if it changed."""

    etag: str | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("etag", self.etag), ("digest", self.digest)) if v is not None}


@dataclass
class Change:
    """One object to converge.

    Invariants: CREATE has no ``before``; DELETE has no ``after``; UPDATE and
    DEACTIVATE have both and a non-empty ``diff``. ``id`` is the live object's
    id when it exists. ``refs`` holds the live ids the change needs that were
    known at plan time (group members by email, a manager ...).
    """

    provider: str
    kind: str
    key: str
    action: Action
    address: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    diff: list[AttributeChange] = field(default_factory=list)
    id: str | None = None
    precondition: Precondition | None = None
    refs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # raised, not asserted: a saved plan is read through here, and `python -O` drops asserts
        if self.action is Action.CREATE:
            if self.before is not None or self.after is None:
                raise ValueError(f"{self.address}: a create has an 'after' and no 'before'")
        elif self.action is Action.DELETE:
            if self.after is not None or self.before is None:
                raise ValueError(f"{self.address}: a delete has a 'before' and no 'after'")
        elif self.before is None or self.after is None or not self.diff:
            raise ValueError(f"{self.address}: an {self.action.value} has a 'before', an 'after' and a 'diff'")

    def sort_key(self) -> tuple[str, int, str]:
        return (self.provider, KIND_ORDER.get(self.kind, 99), self.key.lower())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "provider": self.provider,
            "kind": self.kind,
            "key": self.key,
            "action": self.action.value,
            "id": self.id,
            "before": self.before,
            "after": self.after,
            "diff": [d.to_dict() for d in self.diff],
        }
        if self.precondition is not None:
            out["precondition"] = self.precondition.to_dict()
        if self.refs:
            out["refs"] = dict(sorted(self.refs.items()))
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        pre = d.get("precondition")
        return cls(
            provider=d["provider"], kind=d["kind"], key=d["key"], action=Action(d["action"]),
            address=d["address"], before=d.get("before"), after=d.get("after"),
            diff=[AttributeChange(x["path"], x["before"], x["after"]) for x in d.get("diff", [])],
            id=d.get("id"), precondition=Precondition(**pre) if pre else None,
            refs=dict(d.get("refs", {})), notes=list(d.get("notes", [])),
        )


# Within one provider, changes are listed (and applied) teams first, then members.
KIND_ORDER = {"group": 0, "user": 1}


@dataclass
class Plan:
    """Every change for every provider, sorted, plus notes that are not changes."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config_digest: str = ""
    commit: str | None = None
    # Removals the plan knows about but refused to include (protected objects).
    protected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changes.sort(key=Change.sort_key)
        self.notes = sorted(set(self.notes))

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[Action, int]:
        out = {a: 0 for a in SUMMARY_ORDER}
        for c in self.changes:
            out[c.action] += 1
        return out

    def summary(self) -> str:
        """The summary line, e.g. 'Plan: 3 to create, 2 to update, 0 to replace, 1 to deactivate, 0 to delete.'"""
        if not self.changes:
            return "No changes. The live systems match the configuration."
        n = self.counts()
        parts = [f"{n[a]} to {a.value}" for a in SUMMARY_ORDER if a is not Action.REPLACE or n[a]]
        return "Plan: " + ", ".join(parts) + "."
