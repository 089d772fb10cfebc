"""What the tracker systems (Jira, Redmine) share of the contract: targets by address prefix, and a saved
plan's changes checked by planning the tracker again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.config.checks import did_you_mean
from reconciler.config.models import Config
from reconciler.contract import Check, PlanPart
from reconciler.errors import PlanError
from reconciler.integrations.models import Integration
from reconciler.plan.model import Change

if TYPE_CHECKING:
    from reconciler.session import Session


def integrations_on(config: Config, conn: str) -> list[Integration]:
    """The integrations a tracker connection carries."""
    return [i for i in config.integrations if i.connection == conn]


def select_by_prefix(changes: list[Change], targets: list[str], config: Config) -> list[Change]:
    """A tracker target is one object's address, or a shorter address (``jira.<connection>``) that
    selects everything under it; its connection must be declared."""
    connections = {x.name for x in config.connections}
    wanted: dict[str, Change] = {}
    for t in targets:
        conn = t.split(".")[1].split("[")[0] if "." in t else ""
        if conn not in connections:
            raise PlanError(f"--target {t}: unknown connection '{conn}'" + did_you_mean(conn, connections))
        for c in changes:
            if c.address == t or c.address.startswith(t.rstrip(".") + ".") or c.address.startswith(t + "["):
                wanted[c.address] = c
    return list(wanted.values())


def stale_by_replanning(system: Any, session: Session, changes: list[Change], name: str) -> list[Check]:
    """Plan the tracker again (its paged reads) and compare each saved change with the fresh one at the
    same address: gone (converged meanwhile) or a different live digest is stale."""
    # the saved plan passed the removal guards when it was made (with --allow-removals if it needed to);
    # planning again to compare must not refuse the removals that were reviewed
    removals = sum(1 for c in changes if c.action.is_removal)
    session.allow_removals = max(session.allow_removals or 0, removals)
    part: PlanPart = system.plan(session)
    fresh = {c.address: c for c in part.changes}
    check = Check(name, len(changes), "plan")
    for c in changes:
        now = fresh.get(c.address)
        if now is None:
            check.stale.append((c.address, "no longer needs this change (the tracker changed since the "
                                           "plan was made)"))
        elif now.action is not c.action or _digest_of(now) != _digest_of(c):
            check.stale.append((c.address, "changed since the plan was made"))
    return [check]


def _digest_of(c: Change) -> str | None:
    return c.precondition.digest if c.precondition is not None else None
