"""Guards before any mutation: refuse a plan that removes too much."""

from __future__ import annotations

from reconciler.errors import UnsafePlanError
from reconciler.plan.model import Change

# Below this many removals the percentage rule does not apply: removing 2 of 5 people is a normal edit.
PERCENT_FLOOR = 5


def check_removals(provider: str, changes: list[Change], managed: int, max_removals: int, max_percent: float,
                   allow: int | None) -> None:
    """Raise UnsafePlanError when a provider's removals exceed the thresholds, unless ``allow`` covers them."""
    removals = sorted((c for c in changes if c.provider == provider and c.action.is_removal), key=lambda c: c.address)
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
