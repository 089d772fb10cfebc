"""Retries bounded for a whole run: how long a server asks to wait (Retry-After), the backoff otherwise, and
the one budget of waiting every HTTP client of a run draws from."""

from __future__ import annotations

import math
import os
import random
import threading
import time

import httpx

from reconciler.errors import ProviderError

# Seconds a whole run may spend waiting between retries (Retry-After and backoff), across every system.
DEFAULT_RETRY_BUDGET = 300.0
RETRY_BUDGET_ENV = "RECONCILER_RETRY_BUDGET"


class RetryBudget:
    """The seconds left to wait between retries in this run; every ``Http`` of a run draws from one."""

    def __init__(self, seconds: float) -> None:
        self.total = self.left = seconds
        self._lock = threading.Lock()

    def take(self, seconds: float) -> bool:
        """Spend ``seconds`` if that many are left; False (nothing spent) if not."""
        with self._lock:
            if seconds > self.left:
                return False
            self.left -= seconds
            return True


def budget_from_env() -> RetryBudget:
    raw = os.environ.get(RETRY_BUDGET_ENV, "").strip()
    if not raw:
        return RetryBudget(DEFAULT_RETRY_BUDGET)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ProviderError(f"{RETRY_BUDGET_ENV} must be a number of seconds (0 or more), not {raw[:40]!r}")
    return RetryBudget(seconds)


_run_budget: RetryBudget | None = None


def start_run() -> RetryBudget:
    """A new retry budget for the run that starts (a session); the ``Http`` clients it opens share it."""
    global _run_budget
    _run_budget = budget_from_env()
    return _run_budget


def run_budget() -> RetryBudget:
    return _run_budget if _run_budget is not None else start_run()


def retry_after(r: httpx.Response | None) -> float | None:
    """The seconds a Retry-After header asks for (a number or an HTTP date); None when there is none or it
    is not one (``nan``, text): then the backoff applies. ``inf`` and huge values are returned as they are,
    for the budget to refuse."""
    ra = r.headers.get("Retry-After", "").strip() if r is not None else ""
    if not ra:
        return None
    try:
        seconds = float(ra)
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            seconds = parsedate_to_datetime(ra).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


def retry_delay(r: httpx.Response | None, attempt: int, base: float, cap: float) -> float:
    """Retry-After when the server gives it (not capped: the run's budget bounds it), else exponential
    backoff with jitter, capped at ``cap``."""
    asked = retry_after(r)
    if asked is not None:
        return asked
    return min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)


def seconds(x: float) -> str:
    return "forever" if math.isinf(x) else f"{x:,.0f} s" if x >= 10 else f"{x:.1f} s"
