"""The plan as data: Action, AttributeChange, Change, Plan, and each system's typed payload.

Renderers read a Plan and never recompute it; apply executes a Plan and
nothing else. The same inputs give the same Plan (changes are sorted).

The models are frozen pydantic models: a saved plan is read back with
``Plan.model_validate`` (the same checks as a plan made here, and they survive
``python -O``), and ``schemas/plan.schema.json`` is generated from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reconciler.config.base import SharedFieldsSet


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

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def first_error(exc: ValidationError) -> str:
    """One line for a validation error: an invariant's own message, else where and what."""
    e = exc.errors()[0]
    ctx = e.get("ctx") or {}
    if e["type"] == "value_error" and "error" in ctx:
        msg = str(ctx["error"])
    else:
        where = ".".join(str(p) for p in e["loc"])
        msg = f"{where}: {e['msg']}" if where else str(e["msg"])
    return msg + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


class AttributeChange(BaseModel):
    """One attribute's value before and after. Lists are compared as sets where order is meaningless."""

    model_config = _FROZEN
    path: str
    before: Any
    after: Any

    def __init__(self, path: str, before: Any, after: Any) -> None:
        super().__init__(path=path, before=before, after=after)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


class Precondition(BaseModel):
    """What the live object looked like when the plan was made: apply refuses if it changed."""

    model_config = _FROZEN
    etag: str | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("etag", self.etag), ("digest", self.digest)) if v is not None}


# --- what each system's applier needs beyond before/after: live ids known at plan time -----------

class _Payload(BaseModel):
    model_config = _FROZEN


class NoPayload(_Payload):
    type: Literal["none"] = "none"


class ScimIds(_Payload):
    """Live ids the change needs that the plan knew: member key -> SCIM id (a team's members, a manager)."""

    type: Literal["scim"] = "scim"
    ids: dict[str, str] = Field(default_factory=dict)


class JiraProperty(_Payload):
    """An integration's record: the project property it is kept in."""

    type: Literal["jira.integration"] = "jira.integration"
    project: str
    property: str


class JiraTestIssue(_Payload):
    """The activation test issue: found by its label; ``issue_type_id`` to create it with."""

    type: Literal["jira.test_issue"] = "jira.test_issue"
    project: str
    label: str
    issue_type_id: str | None = None


class JiraRole(_Payload):
    """A project role's users: ``members`` maps each wanted actor id to the member it is."""

    type: Literal["jira.project_role"] = "jira.project_role"
    project: str
    role_id: str
    membership: Literal["additive", "authoritative"]
    members: dict[str, str] = Field(default_factory=dict)


class JiraWebhook(_Payload):
    """A webhook; ``integration`` names the removed integration it belonged to, when it goes with it."""

    type: Literal["jira.webhook"] = "jira.webhook"
    integration: str | None = None


class RedmineGroup(_Payload):
    """A group's users: login -> Redmine user id, where known at plan time."""

    type: Literal["redmine.group"] = "redmine.group"
    users: dict[str, str] = Field(default_factory=dict)


class RedmineIntegration(_Payload):
    """An integration's record (a wiki page of its project) and what its activation did there."""

    type: Literal["redmine.integration"] = "redmine.integration"
    project: str | None = None
    project_id: str | None = None
    title: str | None = None
    test_issue: int | None = None
    enabled_tracker: bool = False
    disable_tracker: str | None = None


class RedmineMembership(_Payload):
    """A project membership; ``group_id`` where the group existed at plan time."""

    type: Literal["redmine.membership"] = "redmine.membership"
    project: str | None = None
    group_id: str | None = None


Payload = Annotated[NoPayload | ScimIds | JiraProperty | JiraTestIssue | JiraRole | JiraWebhook | RedmineGroup
                    | RedmineIntegration | RedmineMembership, Field(discriminator="type")]
NO_PAYLOAD = NoPayload()


class Change(SharedFieldsSet):
    """One object to converge.

    Invariants (checked whenever a Change is made or read back): CREATE has no
    ``before``; DELETE has no ``after``; UPDATE and DEACTIVATE have both and a
    non-empty ``diff``; no change depends on itself. ``id`` is the live
    object's id when it exists. ``payload`` holds what the system's applier
    needs that was known at plan time; ``depends_on`` the addresses of the
    changes that must succeed first (if one fails, this one is skipped).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={
        "required": ["address", "provider", "kind", "key", "action", "id", "before", "after", "diff"],
        "allOf": [
            {"if": {"properties": {"action": {"const": "create"}}},
             "then": {"properties": {"before": {"type": "null"}, "after": {"type": "object"}}}},
            {"if": {"properties": {"action": {"const": "delete"}}},
             "then": {"properties": {"after": {"type": "null"}, "before": {"type": "object"}}}},
            {"if": {"properties": {"action": {"enum": ["update", "replace", "deactivate"]}}},
             "then": {"properties": {"before": {"type": "object"}, "after": {"type": "object"},
                                     "diff": {"minItems": 1}}}}]})
    provider: str = Field(description="The SCIM provider's or the tracker connection's name.")
    kind: str = Field(description="The resource kind: user, group, or a tracker's kind.")
    key: str = Field(description="The object's key within its kind (member email, team name ...).")
    action: Action
    address: str = Field(min_length=1, description=(
        'Stable address of the object, its system first, e.g. scim.platform.user["alice@acme.io"].'))
    id: str | None = Field(default=None, description="The live object's id; null for a create.")
    before: dict[str, Any] | None = Field(default=None, description=(
        "The compared attributes as they are live; null for a create."))
    after: dict[str, Any] | None = Field(default=None, description=(
        "The compared attributes as the config wants them; null for a delete."))
    diff: list[AttributeChange] = Field(default_factory=list, description=(
        "The attributes that differ (empty for create and delete)."))
    precondition: Precondition | None = Field(default=None, description=(
        "What the live object looked like when the plan was made; apply of a saved plan refuses if it changed. "
        "etag: the provider's meta.version, where it has ETags. digest: a digest of the live object."))
    payload: Payload = Field(default=NO_PAYLOAD, description=(
        "What the system's applier needs that the plan knew (live ids, the project a record is kept in ...), "
        "typed per system by its 'type'."))
    depends_on: tuple[str, ...] = Field(default=(), description=(
        "Addresses of the changes that must succeed before this one; if one fails, this one is skipped."))
    notes: list[str] = Field(default_factory=list)

    def __init__(self, provider: str, kind: str, key: str, action: Action, address: str, *,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 diff: Iterable[AttributeChange] = (), id: str | None = None,
                 precondition: Precondition | None = None, payload: _Payload = NO_PAYLOAD,
                 depends_on: Iterable[str] = (), notes: Iterable[str] = ()) -> None:
        try:
            super().__init__(provider=provider, kind=kind, key=key, action=action, address=address, before=before,
                             after=after, diff=list(diff), id=id, precondition=precondition, payload=payload,
                             depends_on=tuple(depends_on), notes=list(notes))
        except ValidationError as exc:
            raise ValueError(first_error(exc)) from None

    @model_validator(mode="after")
    def _invariants(self) -> Change:
        # raised, not asserted: a saved plan is read through here, and `python -O` drops asserts
        if self.action is Action.CREATE:
            if self.before is not None or self.after is None:
                raise ValueError(f"{self.address}: a create has an 'after' and no 'before'")
        elif self.action is Action.DELETE:
            if self.after is not None or self.before is None:
                raise ValueError(f"{self.address}: a delete has a 'before' and no 'after'")
        elif self.before is None or self.after is None or not self.diff:
            raise ValueError(f"{self.address}: an {self.action.value} has a 'before', an 'after' and a 'diff'")
        if self.address in self.depends_on:
            raise ValueError(f"{self.address}: a change cannot depend on itself")
        self.share_fields_set()  # every change this code makes is given all its fields: 728 bytes each
        return self

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
        if not isinstance(self.payload, NoPayload):
            out["payload"] = self.payload.model_dump(mode="json")
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# Within one provider, changes are listed (and applied) teams first, then members.
KIND_ORDER = {"group": 0, "user": 1}


class Plan(BaseModel):
    """Every change for every system, sorted, plus notes that are not changes.

    Checked when made and when read back: addresses unique, and every address a change depends on is a
    change of the plan (a ``--target`` plan carries what its changes need)."""

    model_config = _FROZEN
    changes: list[Change] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    config_digest: str = ""
    commit: str | None = None
    # Removals the plan knows about but refused to include (protected objects).
    protected: list[str] = Field(default_factory=list)

    def __init__(self, *, changes: Iterable[Change] = (), notes: Iterable[str] = (), config_digest: str = "",
                 commit: str | None = None, protected: Iterable[str] = ()) -> None:
        try:
            super().__init__(changes=sorted(changes, key=Change.sort_key), notes=sorted(set(notes)),
                             config_digest=config_digest, commit=commit, protected=list(protected))
        except ValidationError as exc:
            raise ValueError(first_error(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        seen: set[str] = set()
        for c in self.changes:
            if c.address in seen:
                raise ValueError(f"{c.address}: two changes at one address")
            seen.add(c.address)
        for c in self.changes:
            missing = [d for d in c.depends_on if d not in seen]
            if missing:
                raise ValueError(f"{c.address}: depends on {', '.join(missing)}, which is not in the plan")
        levels(self.changes)  # no cycle
        return self

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


def with_dependencies(selected: Iterable[Change], every: Iterable[Change]) -> list[Change]:
    """``selected`` and, transitively, every change of ``every`` that one of them depends on (a
    ``--target`` plan carries what its changes need). A selected change stays as selected (a target may
    select part of a change)."""
    by_addr = {c.address: c for c in every}
    out = {c.address: c for c in selected}
    todo = [d for c in out.values() for d in c.depends_on]
    while todo:
        addr = todo.pop()
        if addr in out or addr not in by_addr:
            continue
        out[addr] = by_addr[addr]
        todo += out[addr].depends_on
    return list(out.values())


def levels(changes: Sequence[Change]) -> list[list[Change]]:
    """The changes in waves of dependency order: each after every change of the list it depends on
    (a dependency outside the list is not waited for). Order within a wave is the list's. A cycle is a
    ValueError naming a change on it."""
    by = {c.address: c for c in changes}
    depth: dict[str, int] = {}
    for start in changes:
        stack: list[tuple[Change, bool]] = [(start, False)]
        path: set[str] = set()
        while stack:
            c, done = stack.pop()
            if done:
                path.discard(c.address)
                depth[c.address] = 1 + max((depth[d] for d in c.depends_on if d in by), default=-1)
                continue
            if c.address in depth:
                continue
            path.add(c.address)
            stack.append((c, True))
            for d in c.depends_on:
                if d in path:
                    raise ValueError(f"{c.address}: depends on itself through {d}")
                if d in by and d not in depth:
                    stack.append((by[d], False))
    waves: dict[int, list[Change]] = {}
    for c in changes:
        waves.setdefault(depth[c.address], []).append(c)
    return [waves[k] for k in sorted(waves)]
