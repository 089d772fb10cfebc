"""Execute a Plan: every live system turns its changes into steps of one graph, and one runner makes
them (``reconciler.execute.Graph``): what a step needs first, across systems too, ends first; steps of
different providers and connections run at once, each pool bounded by its concurrency; one outcome per
change; a failed change does not stop the independent ones. See ``reconciler.contract``.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.contract import Observer
from reconciler.errors import ApplyError
from reconciler.execute import NOT_STARTED, STOP, ApplyResult, Graph, Ledger, Outcome, interruptible
from reconciler.plan.model import Plan
from reconciler.providers.registry import systems
from reconciler.session import Session

_frozen = 0
_frozen_lock = threading.Lock()


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep what is alive when an apply starts (config, live state, plan) out of the garbage
    collector's full passes until it ends. A full pass walks every tracked object, and an apply that
    creates many objects triggers some: at 10,000 members that was 0.2 s of CPU, 20 µs a member, a
    cost per member that grows with the org. Nothing is lost: the objects go back after the apply."""
    global _frozen
    with _frozen_lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()


def apply_plan(session: Session, plan: Plan, observer: Observer | None = None) -> ApplyResult:
    """Apply every change of a plan; raise ApplyError naming each failure after doing all it could."""
    with _heap_frozen():
        return _apply_plan(session, plan, observer)


def _apply_plan(session: Session, plan: Plan, observer: Observer | None) -> ApplyResult:
    """Every system adds its steps to one graph, and one runner makes them all. Every change ends in
    exactly one outcome: one a system did not report (an action or kind it has no way to apply), or
    whose address no system owns, is a failure that says so, never silence; after a stop, each change
    that did not start says so."""
    result = ApplyResult()
    session.ledger = Ledger()
    graph = Graph(session.ledger)
    slots: dict[str, int] = {}
    lock = threading.Lock()

    def report(o: Outcome) -> None:
        """An outcome, as its step ends; a change reported twice (a team made by one step and completed
        by a later one) keeps its last outcome, in the place of its first."""
        session.ledger.record(o)
        with lock:
            slot = slots.setdefault(o.change.address, len(result.outcomes))
            if slot == len(result.outcomes):
                result.outcomes.append(o)
            else:
                result.outcomes[slot] = o
        if observer is not None:
            observer(o)

    owned: dict[str, str] = {}
    finish: list[Callable[[], None]] = []
    try:
        for system in systems():
            mine = [c for c in plan.changes if c.address.startswith(system.prefix)]
            owned.update((c.address, system.prefix) for c in mine)
            if mine:
                done = system.steps(session, mine, graph, report)
                if done is not None:
                    finish.append(done)
        graph.run()
    finally:
        for f in finish:
            f()
    stopped = STOP.is_set()
    for c in plan.changes:
        if c.address in slots:
            continue
        if c.address not in owned:
            why = "not applied: no live system owns this address"
        elif stopped:
            why = NOT_STARTED
        else:
            why = f"not applied: {owned[c.address].rstrip('.')} has no way to apply a {c.action.value} of a {c.kind}"
        o = Outcome(c, False, why)
        result.outcomes.append(o)
        if observer is not None:
            observer(o)
    return result


def apply_interruptibly(session: Session, plan: Plan, observer: Observer | None, audit: Any,
                        say: Callable[[str], None]) -> ApplyResult:
    """apply_plan where the first SIGINT/SIGTERM stops starting changes: the ones in flight finish, each
    change not started ends "not started", and the audit log gets an ``interrupted`` record saying how
    many ran and how many did not. ``interrupted(result)`` tells the caller (the CLI exits 130)."""
    def first() -> None:
        say("interrupted: finishing the changes in flight and starting no more (again to quit at once)")

    with interruptible(first):
        result = apply_plan(session, plan, observer)
        stopped = STOP.is_set()
    if stopped:
        skipped = sum(1 for o in result.outcomes if o.error == NOT_STARTED)
        audit.write({"event": "interrupted", "ran": len(result.outcomes) - skipped, "not_started": skipped})
    return result


def interrupted(result: ApplyResult) -> bool:
    """Whether this apply was interrupted: some of its changes never started."""
    return any(o.error == NOT_STARTED for o in result.outcomes)


def failures_error(result: ApplyResult) -> ApplyError | None:
    return ApplyError(result.failures) if result.failures else None


def changed_addresses(outcomes: Iterable[Outcome]) -> list[str]:
    return sorted(o.change.address for o in outcomes if o.ok)


__all__ = ["ApplyResult", "Outcome", "apply_plan", "changed_addresses", "failures_error"]
