"""Every live system reconciler converges, in the order their changes are applied: the platform's
members and teams first (SCIM), then the trackers that grant those teams roles.

Adding a system is writing its package (``reconciler.contract.LiveSystem``) and listing it in
``SYSTEMS`` (or, from outside the package, ``register(system)``); the session, apply, saved plans and
the CLI reach every system through ``systems()`` only.
"""

from __future__ import annotations

from reconciler.contract import LiveSystem
from reconciler.providers import jira, redmine
from reconciler.providers.scim import system as scim

SYSTEMS: tuple[LiveSystem, ...] = (scim, redmine.planner, jira.planner)

_registered: list[LiveSystem] = list(SYSTEMS)


def systems() -> tuple[LiveSystem, ...]:
    """Every system, in apply order: the built-in ones, then those registered."""
    return tuple(_registered)


def register(system: LiveSystem) -> None:
    """Add a live system after the others. Its ``prefix`` must end with a dot and start no other
    system's addresses (nor be started by one): each change belongs to exactly one system."""
    if not system.prefix.endswith("."):
        raise ValueError(f"a system's prefix ends with a dot: {system.prefix!r}")
    for s in _registered:
        if s.prefix.startswith(system.prefix) or system.prefix.startswith(s.prefix):
            raise ValueError(f"prefix {system.prefix!r} overlaps {s.prefix!r}")
    _registered.append(system)


def unregister(system: LiveSystem) -> None:
    """Remove a system ``register`` added (the built-in ones stay)."""
    if system in SYSTEMS:
        raise ValueError(f"{system.prefix!r} is built in")
    _registered.remove(system)


def system_for(address: str) -> LiveSystem | None:
    """The system whose changes carry this address (by prefix), or None."""
    return next((s for s in _registered if address.startswith(s.prefix)), None)
