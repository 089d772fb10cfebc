"""Running the changes of a plan, one step at a time: what every provider's applier shares.

A step runs with its change's address set for the audit log, is timed, and a
ReconcilerError becomes a failed Outcome (named in the apply summary) instead
of stopping the steps that do not depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reconciler.config.secrets import redact
from reconciler.errors import ReconcilerError
from reconciler.plan.model import Change
from reconciler.providers._http import current_address


@dataclass
class Outcome:
    change: Change
    ok: bool
    error: str | None = None
    duration_ms: float = 0.0


def run_one(c: Change, step: Callable[[Change], Any]) -> Outcome:
    token = current_address.set(c.address)
    t0 = time.perf_counter()
    try:
        step(c)
        return Outcome(c, True, None, (time.perf_counter() - t0) * 1000)
    except ReconcilerError as exc:
        return Outcome(c, False, redact(str(exc)), (time.perf_counter() - t0) * 1000)
    finally:
        current_address.reset(token)


def run_changes(changes: list[Change], step: Callable[[Change], Any], *, workers: int, name: str,
                on_done: Callable[[Outcome], None]) -> None:
    """Run ``step`` on every change, at most ``workers`` at once; ``on_done`` sees each outcome as it ends."""
    if not changes:
        return

    def one(c: Change) -> None:
        on_done(run_one(c, step))

    workers = min(workers, len(changes))
    if workers <= 1:
        for c in changes:
            one(c)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        list(pool.map(one, changes))
