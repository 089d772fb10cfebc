"""Running the changes of a plan, one step at a time: what every provider's applier shares.

A step runs with its change's address set for the audit log, is timed, and a
ReconcilerError becomes a failed Outcome (named in the apply summary) instead
of stopping the steps that do not depend on it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.plan.model import Action, Change
from reconciler.providers._http import current_address
from reconciler.secrets import redact
from reconciler.threads import Pool


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


def skipped(c: Change, failed: str) -> Outcome:
    return Outcome(c, False, f"skipped: depends on {failed}, which failed")


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


class Workers:
    """At most ``size`` steps at once, on threads started once and shared by every phase of an apply.

    A pool per phase starts its threads again each time, which costs more than a phase of a few
    changes takes; and a future per change costs more than the lock a worker takes to pick its next
    change. A phase of one change (or ``size`` 1) runs in the calling thread.
    """

    def __init__(self, size: int, name: str, ledger: Ledger | None = None) -> None:
        self.size = max(1, size)
        self.name = name
        self.ledger = ledger
        self._pool: Pool | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self, changes: list[Change], step: Callable[[Change], Any], on_done: Callable[[Outcome], None]) -> None:
        """Run ``step`` on every change; ``on_done`` sees each outcome as it ends. An exception that is
        not a ReconcilerError (a bug) stops the changes not yet started and is raised here."""
        n = min(self.size, len(changes))
        if n <= 1:
            for c in changes:
                on_done(run_one(c, step, self.ledger))
            return
        if self._pool is None:
            self._pool = Pool(max_workers=self.size, thread_name_prefix=self.name)
        pending: Iterator[Change] = iter(changes)
        lock = threading.Lock()
        broken = threading.Event()

        def drain() -> None:
            while not broken.is_set():
                with lock:
                    c = next(pending, None)
                if c is None:
                    return
                try:
                    on_done(run_one(c, step, self.ledger))
                except BaseException:
                    broken.set()
                    raise

        futures: list[Future[None]] = [self._pool.submit(drain) for _ in range(n)]
        wait(futures)  # every worker has stopped before this phase ends, even when one broke
        for f in futures:
            f.result()


def run_changes(changes: list[Change], step: Callable[[Change], Any], *, workers: int, name: str,
                on_done: Callable[[Outcome], None], ledger: Ledger | None = None) -> None:
    """Run ``step`` on every change, at most ``workers`` at once; ``on_done`` sees each outcome as it ends."""
    with Workers(workers, name, ledger) as w:
        w.run(changes, step, on_done)
