"""One thread pool for the whole program: each job runs in a copy of the context of the thread that
submitted it, so what a context variable says there (the change being applied, for the audit log; where
a plan's reads record the URL they read last) holds in the job too.

An apply step holds one of its pool's slots while it runs (``in_slot``); a step that sends several
requests at once (a SCIM Bulk step's chunks) does so through ``fan_out``, which lends the step's slot
and makes each job hold one: the pool's bound is the bound on requests in flight, whatever the steps do."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Pool(ThreadPoolExecutor):
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        run: Callable[..., Any] = contextvars.copy_context().run
        return super().submit(run, fn, *args, **kwargs)


# The slots of the apply pool the current step runs in (None outside an apply step).
_slots: contextvars.ContextVar[threading.Semaphore | None] = contextvars.ContextVar("slots", default=None)


def in_slot(slots: threading.Semaphore, fn: Callable[[], T]) -> T:
    """Run ``fn`` holding one of ``slots``, and let what it fans out take its slots from the same."""
    with slots:
        token = _slots.set(slots)
        try:
            return fn()
        finally:
            _slots.reset(token)


def fan_out(jobs: list[Callable[[], T]], workers: int, name: str) -> list[T]:
    """Every job, at most ``workers`` at once, their results in order. Inside an apply step, the step's
    slot is lent to the jobs while they run and each job holds a slot of the step's pool: the jobs and
    the pool's other steps together never exceed the pool's size."""
    slots = _slots.get()
    if slots is None:
        with Pool(max_workers=max(1, workers), thread_name_prefix=name) as pool:
            return [f.result() for f in [pool.submit(j) for j in jobs]]

    def bounded(job: Callable[[], T]) -> T:
        with slots:
            return job()

    slots.release()
    try:
        with Pool(max_workers=max(1, workers), thread_name_prefix=name) as pool:
            return [f.result() for f in [pool.submit(bounded, j) for j in jobs]]
    finally:
        slots.acquire()

