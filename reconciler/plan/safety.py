"""Guards before any mutation: refuse a plan that removes too much, or removes what is protected.

A removal is judged by its effect, not by the action a planner labelled it with: any change that leaves
an account inactive (SCIM ``active`` false, however spelt) or deleted counts, whatever path got it there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.errors import PlanError, UnsafePlanError
from reconciler.plan.model import Action, Change

# Below this many removals the percentage rule does not apply: removing 2 of 5 people is a normal edit.
PERCENT_FLOOR = 5


def inactive(v: Any) -> bool:
    """SCIM ``active`` read the way a lenient provider would: false, "false", "False", 0, "0", "no", "off"."""
    if isinstance(v, str):
        return v.strip().lower() in ("false", "0", "no", "off", "")
    return v is not None and not v


def removes(c: Change) -> bool:
    """The change ends with the object deleted, or with an account that was active inactive."""
    if c.action is Action.DELETE or c.action is Action.DEACTIVATE:
        return True
    after = c.after or {}
    if c.kind != "user" or "active" not in after or not inactive(after.get("active")):
        return False
    before = c.before or {}
    return c.before is None or not inactive(before.get("active", True))


def check_protected(provider: str, changes: list[Change], protected: Iterable[str]) -> None:
    """Raise PlanError when a change removes (by effect) an object whose key is protected."""
    keys = {k.lower() for k in protected}
    hit = sorted(c.address for c in changes if c.provider == provider and removes(c) and c.key.lower() in keys)
    if hit:
        raise PlanError(f"refusing to plan for provider '{provider}': it would deactivate or delete protected "
                        "objects (protect); remove the protection first", hit)


def check_removals(provider: str, changes: list[Change], managed: int, max_removals: int, max_percent: float,
                   allow: int | None) -> None:
    """Raise UnsafePlanError when a provider's removals exceed the thresholds, unless ``allow`` covers them."""
    removals = sorted((c for c in changes if c.provider == provider and removes(c)), key=lambda c: c.address)
    n = len(removals)
    if n == 0 or (allow is not None and n <= allow):
        return
    base = max(managed, n)
    percent = 100.0 * n / base if base else 0.0
    reasons = []
    if n > max_removals:
        reasons.append(f"over the limit of {max_removals} (max_removals)")
    if n > PERCENT_FLOOR and percent > max_percent:
        reasons.append(f"over the {max_percent:g}% threshold (max_removal_percent)")
    if reasons:
        raise UnsafePlanError(
            f"refusing to plan for provider '{provider}': it would remove (deactivate or delete) {n} of "
            f"{base} managed objects ({percent:.1f}%), {' and '.join(reasons)}; "
            f"pass --allow-removals={n} to proceed",
            [c.address for c in removals[:10]] + ([f"... and {n - 10} more"] if n > 10 else []),
        )
