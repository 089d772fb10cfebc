"""The one executor of every apply: a graph of steps, across every live system, run by one runner.

Each system turns its changes into steps (``Graph``): what must end first (``after``, and the
``depends_on`` of the changes a step reports), and the pool whose size bounds how many of its steps
run at once. A change's step runs with its address set for the audit log, is timed, and a
ReconcilerError becomes a failed Outcome (named in the apply summary) instead of stopping the steps
that do not depend on it; a change whose dependency failed is skipped, and says which (``Ledger``).
"""

from __future__ import annotations

import contextvars
import functools
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.plan.model import Action, Change
from reconciler.providers._http import current_address
from reconciler.secrets import redact
from reconciler.threads import in_slot


@dataclass
class Outcome:
    change: Change
    ok: bool
    error: str | None = None
    duration_ms: float = 0.0


@dataclass
class ApplyResult:
    """Every outcome of one apply, across systems, and the summary line."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, str]:
        return {o.change.address: o.error or "failed" for o in self.outcomes if not o.ok}

    def summary(self) -> str:
        n = {a: 0 for a in Action}
        for o in self.outcomes:
            if o.ok:
                n[o.change.action] += 1
        done = ", ".join(f"{n[a]} {p}" for a, p in ((Action.CREATE, "created"), (Action.UPDATE, "updated"),
                                                     (Action.DEACTIVATE, "deactivated"),
                                                     (Action.DELETE, "deleted")))
        failed = len(self.failures)
        return f"Apply complete: {done}" + (f"; {failed} failed." if failed else ".")


# Set by the first SIGINT/SIGTERM of an apply (see interruptible): no change starts after it; the ones in
# flight finish (each bounded by its request deadline), and every change not started is reported so.
STOP = threading.Event()
NOT_STARTED = "not started: the apply was interrupted"


@contextmanager
def interruptible(on_first: Callable[[], None] | None = None) -> Iterator[None]:
    """Run an apply so that the first SIGINT or SIGTERM stops starting changes (``on_first`` says so),
    and a second ends the process at once (exit 130). Handlers are installed only in the main thread."""
    STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if STOP.is_set():
            os._exit(130)  # the second signal: at once, as asked
        STOP.set()
        if on_first is not None:
            on_first()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        STOP.clear()  # the next apply in this process starts its changes again


class Ledger:
    """What has failed so far in one apply, across every system: a change whose ``depends_on`` names a
    failed change is skipped, and says which, once, here (no applier writes that message itself)."""

    def __init__(self) -> None:
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def record(self, o: Outcome) -> None:
        if not o.ok:
            with self._lock:
                self._failed.add(o.change.address)

    def blocker(self, c: Change) -> str | None:
        with self._lock:
            return next((d for d in c.depends_on if d in self._failed), None)


def skip_message(failed: str) -> str:
    """The one way a change skipped for a failed dependency says so, whichever system skips it."""
    return f"skipped: depends on {failed}, which failed"


def skipped(c: Change, failed: str) -> Outcome:
    return Outcome(c, False, skip_message(failed))


def run_one(c: Change, step: Callable[[Change], Any], ledger: Ledger | None = None) -> Outcome:
    """One change, one outcome: not started after a stop, skipped when a change it depends on failed,
    else the step's success or its ReconcilerError."""
    if STOP.is_set():
        return Outcome(c, False, NOT_STARTED)
    if ledger is not None:
        failed = ledger.blocker(c)
        if failed is not None:
            o = skipped(c, failed)
            ledger.record(o)
            return o
    o = _run(c, step)
    if ledger is not None:
        ledger.record(o)
    return o


def _run(c: Change, step: Callable[[Change], Any]) -> Outcome:
    token = current_address.set(c.address)
    t0 = time.perf_counter()
    try:
        step(c)
        return Outcome(c, True, None, (time.perf_counter() - t0) * 1000)
    except ReconcilerError as exc:
        return Outcome(c, False, redact(str(exc)), (time.perf_counter() - t0) * 1000)
    finally:
        current_address.reset(token)


def _one(c: Change, fn: Callable[[Change], Any], on_done: Callable[[Outcome], None], ledger: Ledger) -> None:
    on_done(run_one(c, fn, ledger))


@dataclass(eq=False)
class Step:
    """One step of an apply: the work of one change, or of a batch (a Bulk request), or nothing (a
    gate that ends when the steps it comes after have ended). ``changes`` are those whose outcome this
    step reports: a change that depends on one of them (``depends_on``) waits for this step."""

    pool: str | None
    work: Callable[[], Any] | None
    changes: tuple[Change, ...] = ()
    after: list[Step] = field(default_factory=list)
    waiting: int = 0
    then: list[Step] = field(default_factory=list)


class Graph:
    """Every step of one apply, across every system, and the one runner that makes them.

    A step starts once every step it comes ``after`` has ended, and every step that reports a change
    its own changes depend on (their ``depends_on``, across systems too); at most a pool's size of a
    pool's steps run at once (a pool per SCIM provider and per tracker connection, sized by its
    ``concurrency``), and steps of different pools at the same time. A ReconcilerError is the failed
    outcome of its change (the step's own work reports it); anything else is a bug: no step starts
    after it, the ones running end, and it is raised. After a stop (``STOP``) no step starts either;
    the apply reports what did not start.
    """

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.ledger = ledger if ledger is not None else Ledger()
        self.steps: list[Step] = []
        self.sizes: dict[str, int] = {}

    def pool(self, name: str, size: int) -> str:
        self.sizes[name] = max(1, size)
        return name

    def add(self, pool: str, work: Callable[[], Any], changes: Iterable[Change] = (),
            after: Iterable[Step | None] = ()) -> Step:
        if pool not in self.sizes:
            raise KeyError(f"no pool {pool!r}")
        s = Step(pool, work, tuple(changes), [a for a in after if a is not None])
        self.steps.append(s)
        return s

    def each(self, pool: str, changes: Iterable[Change], fn: Callable[[Change], Any],
             on_done: Callable[[Outcome], None], after: Iterable[Step | None] = ()) -> list[Step]:
        """A step per change: ``fn`` makes it (run_one: skipped when a dependency failed), ``on_done``
        gets its outcome."""
        gates = [a for a in after if a is not None]
        ledger = self.ledger
        return [self.add(pool, functools.partial(_one, c, fn, on_done, ledger), (c,), gates) for c in changes]

    def gate(self, after: Iterable[Step | None]) -> Step:
        """A step that does nothing and ends when every step of ``after`` has ended."""
        s = Step(None, None, (), [a for a in after if a is not None])
        self.steps.append(s)
        return s

    def wait(self, step: Step, after: Iterable[Step | None]) -> None:
        """``step`` starts only once every step of ``after`` has ended as well: order a system needs that
        is not a dependency (its change is not skipped when one of them fails; ``depends_on`` says that)."""
        step.after.extend(a for a in after if a is not None and a is not step)

    def _link(self) -> None:
        reports = {c.address: s for s in self.steps for c in s.changes}
        for s in self.steps:
            before = {id(a): a for a in s.after}
            for c in s.changes:
                for d in c.depends_on:
                    t = reports.get(d)
                    if t is not None and t is not s:
                        before[id(t)] = t
            s.waiting = len(before)
            for t in before.values():
                t.then.append(s)
        # a loop would leave its steps waiting for ever: find it now (a bug in a system's steps)
        left = {id(s): s.waiting for s in self.steps}
        free = [s for s in self.steps if s.waiting == 0]
        ended = 0
        while free:
            s = free.pop()
            ended += 1
            for n in s.then:
                left[id(n)] -= 1
                if left[id(n)] == 0:
                    free.append(n)
        if ended != len(self.steps):
            raise RuntimeError(f"{len(self.steps) - ended} apply steps wait on each other in a loop")

    def run(self) -> None:
        """Run every step; return when all have ended, or after a stop or a bug once those running end."""
        self._link()
        lock = threading.Lock()
        ready: dict[str, deque[Step]] = {p: deque() for p in self.sizes}
        # what a step fans out (threads.fan_out) shares its pool's slots: the bound holds for requests too
        slots = {p: threading.BoundedSemaphore(n) for p, n in self.sizes.items()}
        wake = {p: threading.Condition(lock) for p in self.sizes}
        settled = threading.Condition(lock)
        state = {"left": len(self.steps), "running": 0}
        broken: list[BaseException] = []
        closed = threading.Event()

        def ended(s: Step) -> None:  # under the lock
            stack = [s]
            while stack:
                x = stack.pop()
                state["left"] -= 1
                for n in x.then:
                    n.waiting -= 1
                    if n.waiting == 0:
                        if n.pool is None:
                            stack.append(n)
                        else:
                            ready[n.pool].append(n)
                            wake[n.pool].notify()
            if state["left"] == 0:
                settled.notify_all()

        def over() -> bool:  # under the lock
            return closed.is_set() or state["left"] == 0 or bool(broken) or STOP.is_set()

        def worker(pool: str) -> None:
            queue = ready[pool]
            while True:
                with lock:
                    while not queue and not over():
                        wake[pool].wait()
                    if over():
                        return
                    s = queue.popleft()
                    state["running"] += 1
                try:
                    assert s.work is not None
                    in_slot(slots[pool], s.work)
                except BaseException as exc:  # a bug: stop starting steps, let the running ones end
                    with lock:
                        broken.append(exc)
                        state["running"] -= 1
                        for c in wake.values():
                            c.notify_all()
                        settled.notify_all()
                    return
                with lock:
                    state["running"] -= 1
                    ended(s)

        with lock:
            for s in [s for s in self.steps if s.waiting == 0]:  # taken before any ends: ended() frees more
                if s.pool is None:
                    ended(s)
                else:
                    ready[s.pool].append(s)
        counts: dict[str, int] = {}
        for s in self.steps:
            if s.pool is not None:
                counts[s.pool] = counts.get(s.pool, 0) + 1
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker, pool),
                                    name=f"apply-{pool}-{i}", daemon=True)
                   for pool, n in counts.items() for i in range(min(n, self.sizes[pool]))]
        for t in threads:
            t.start()
        try:
            with lock:
                while not (state["left"] == 0 or ((broken or STOP.is_set()) and state["running"] == 0)):
                    settled.wait(0.1)  # a stop is a flag a signal handler sets: look at it now and then
        finally:
            with lock:
                closed.set()
                for c in wake.values():
                    c.notify_all()
            for t in threads:
                t.join()
        if broken:
            raise broken[0]
