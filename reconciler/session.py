"""A Session connects each live system once, makes the Plan, and hands it to apply.

Every system (``reconciler.providers.registry.systems()``) plans through the same contract
(``reconciler.contract``): reading live state is the only I/O planning does, and turning desired and
live state into changes is pure (``providers.scim.plan.plan_provider`` for SCIM).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from reconciler.config.hosts import check_allowed_hosts
from reconciler.config.models import Config
from reconciler.contract import CheckResult
from reconciler.errors import PlanError, ServerError
from reconciler.execute import Ledger
from reconciler.plan.model import Change, Plan, with_dependencies
from reconciler.providers._http import Recorder, last_read
from reconciler.providers.paging import in_parallel
from reconciler.providers.registry import system_for, systems
from reconciler.providers.retry import start_run
from reconciler.secrets import redact


class Session:
    """Connections to every provider of one config. ``transports`` injects a server per provider name
    (the embedded sandbox, tests); ``recorder`` sees every HTTP call (audit log, benchmarks)."""

    def __init__(self, config: Config, *, transports: Mapping[str, httpx.BaseTransport] | None = None,
                 recorder: Recorder | None = None, sleep: Callable[[float], None] | None = None,
                 attempts: int = 5) -> None:
        self.config = config
        self.transports = transports or {}
        # before any secret is resolved: a host outside RECONCILER_ALLOWED_HOSTS gets none of them
        check_allowed_hosts(config, skip=self.transports)
        self.retry_budget = start_run()  # one budget of waits between retries for the whole run
        self.recorder = recorder
        self.sleep = sleep
        self.attempts = attempts
        # Clients the systems open (``scim.platform``, ``jira.acme`` ...; see connection()), closed with the session.
        self.clients: dict[str, Any] = {}
        self._lock = threading.RLock()  # the systems plan at once, each opening its own clients
        # What the systems read at plan time, by provider or connection name (a saved plan records it).
        self.live: dict[str, Any] = {}
        # What the current plan() was asked for, for systems that apply the same guards.
        self.allow_removals: int | None = None
        self.targets: list[str] | None = None
        # What has failed in the current apply (apply_plan makes a new one): changes that depend on a
        # failed change are skipped by the executor, whichever system they belong to.
        self.ledger = Ledger()
        self.base_dir = config.root if Path(config.root).is_dir() else str(Path(config.root).parent)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()
        self.clients.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- plan --------------------------------------------------------------

    def plan(self, *, targets: list[str] | None = None, allow_removals: int | None = None) -> Plan:
        self._require_systems()
        self.allow_removals, self.targets = allow_removals, targets
        if targets:
            for t in targets:
                if system_for(t) is None:
                    raise PlanError(f"--target {t!r} is not an address; write scim.<provider>.user[\"email\"], "
                                    "scim.<provider>.group[\"name\"], or a tracker address as the plan shows it "
                                    "(jira.<connection>.…, redmine.<connection>.…)")
        changes: list[Change] = []
        notes: list[str] = []
        protected: list[str] = []
        # every system reads at once (a SCIM provider and each tracker are different hosts); the parts are
        # joined in apply order, so the plan is the one a sequential read makes
        every = systems()
        parts = in_parallel([partial(self._plan_system, system) for system in every], "plan")
        for system, part in zip(every, parts, strict=True):
            mine = part.changes
            if targets:
                wanted = [t for t in targets if t.startswith(system.prefix)]
                mine = with_dependencies(system.select(mine, wanted, self.config), mine) if wanted else []
            changes += mine
            notes += part.notes
            protected += part.protected
        return Plan(changes=changes, notes=notes, config_digest=self.config.digest,
                    commit=git_commit(self.config.root), protected=sorted(protected))

    def _plan_system(self, system: Any) -> Any:
        with malformed_answers(system.prefix):
            return system.plan(self)

    def connection(self, key: str, make: Callable[[], Any]) -> Any:
        """The client a system keeps under ``key`` (``scim.platform``, ``jira.acme``), made on first use
        and closed with the session."""
        with self._lock:
            if key not in self.clients:
                self.clients[key] = make()
            return self.clients[key]

    def _require_systems(self) -> None:
        if not self.config.providers and not self.config.connections:
            raise PlanError("the config declares no providers; add one under 'providers:' (or a tracker "
                            "under 'connections:')")

    def check(self) -> list[CheckResult]:
        self._require_systems()
        out: list[CheckResult] = []
        for system in systems():
            with malformed_answers(system.prefix):
                out += system.check(self)
        return out


# What reading a malformed answer raises where the reader did not foresee that part of it being wrong.
MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError)


@contextlib.contextmanager
def malformed_answers(prefix: str) -> Iterator[None]:
    """A live system's answer that its reader could not make sense of (a field missing, of the wrong type) is
    one line naming the system, the field or the fault, and the URL last read; never an internal error."""
    box = [""]
    token = last_read.set(box)
    try:
        yield
    except MALFORMED as exc:
        what = f"field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) and exc.args else \
            redact(" ".join(str(exc).split()))[:160] or type(exc).__name__
        raise ServerError(f"{prefix.rstrip('.')}: a server's answer is malformed ({type(exc).__name__}: {what})",
                          "GET" if box[0] else "", box[0]) from None
    finally:
        last_read.reset(token)


def git_commit(path: str) -> str | None:
    """The commit of the repository holding the config, if any (and GITHUB_SHA in Actions)."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "-C", str(Path(path).resolve() if Path(path).is_dir() else
                                               Path(path).resolve().parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
