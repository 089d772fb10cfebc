"""The contract every live system implements (SCIM providers, Jira, Redmine), and what the steps share.

A live system takes part in every command the same way: ``plan`` reads its live state (all of its I/O)
and turns desired and live state into changes whose addresses start with its ``prefix``; ``steps``
turns one plan's changes of this system into steps of the apply's one graph (what each needs first,
which pool bounds it), each reporting one outcome per change; ``check`` is the "Test
connection" of each of its connections; ``stale`` re-reads what a saved plan's changes touch and names
each one that moved since. The session, apply, saved plans and the CLI go through this contract only;
``reconciler.providers.registry.systems()`` lists the systems, in the order their changes are applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.plan.model import Change

if TYPE_CHECKING:
    from reconciler.config.models import Config
    from reconciler.execute import Graph, Outcome
    from reconciler.session import Session

Observer = Callable[["Outcome"], None]


@dataclass
class CheckResult:
    """``reconciler check`` for one connection: each step (name, passed, what it found)."""

    provider: str
    ok: bool
    steps: list[tuple[str, bool, str]] = field(default_factory=list)


@dataclass
class SystemPlan:
    """One system's part of a plan."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)


@dataclass
class Check:
    """What re-reading a saved plan's changes of one provider or connection found: how it re-read them
    ("list", "get", or "plan" again), and each change whose object moved since."""

    provider: str
    touched: int
    strategy: str
    stale: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)


class PlanPart(Protocol):
    changes: list[Change]
    notes: list[str]
    protected: list[str]


class LiveSystem(Protocol):
    """One kind of live system. Its changes carry addresses that start with ``prefix`` (``scim.``)."""

    prefix: str

    def plan(self, session: Session) -> PlanPart: ...

    def steps(self, session: Session, changes: list[Change], graph: Graph,
              report: Observer) -> Callable[[], None] | None:
        """Add the steps that make this plan's ``changes`` of this system to ``graph`` (connecting its
        clients now, no write yet); each change's outcome goes to ``report`` as its step ends. The
        callable returned, if any, runs once the graph has run (to close what it opened)."""
        ...

    def check(self, session: Session) -> list[CheckResult]: ...

    def select(self, changes: list[Change], targets: list[str], config: Config) -> list[Change]:
        """The changes ``targets`` (addresses with this system's prefix) ask for, and what they need."""
        ...

    def stale(self, session: Session, changes: list[Change], facts: dict[str, Any]) -> list[Check]:
        """Re-read what a saved plan's changes touch; ``facts`` is what this plan recorded at plan time
        (``Session.live``)."""
        ...
