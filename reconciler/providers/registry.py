"""Every live system reconciler converges, in the order their changes are applied: the platform's
members and teams first (SCIM), then the trackers that grant those teams roles.

Adding a system is writing its package (``reconciler.contract.LiveSystem``) and listing it here;
the session, apply, saved plans and the CLI reach it through this tuple only.
"""

from __future__ import annotations

from reconciler.contract import LiveSystem
from reconciler.providers import jira, redmine
from reconciler.providers.scim import system as scim

SYSTEMS: tuple[LiveSystem, ...] = (scim, redmine.planner, jira.planner)


def system_for(address: str) -> LiveSystem | None:
    """The system whose changes carry this address (by prefix), or None."""
    return next((s for s in SYSTEMS if address.startswith(s.prefix)), None)
