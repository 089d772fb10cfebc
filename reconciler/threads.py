"""One thread pool for the whole program: each job runs in a copy of the context of the thread that
submitted it, so what a context variable says there (the change being applied, for the audit log; where
a plan's reads record the URL they read last) holds in the job too."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Pool(ThreadPoolExecutor):
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        run: Callable[..., Any] = contextvars.copy_context().run
        return super().submit(run, fn, *args, **kwargs)
