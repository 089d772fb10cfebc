"""reconciler.execute: the worker threads every applier runs its changes on."""

from __future__ import annotations

import threading

import pytest

from reconciler.errors import ReconcilerError
from reconciler.execute import Ledger, Outcome, Workers, run_changes
from reconciler.plan.model import Action, Change
from reconciler.providers._http import current_address


def _changes(n: int) -> list[Change]:
    return [Change("p", "user", f"u{i}@acme.io", Action.CREATE, f'scim.p.user["u{i}@acme.io"]', after={})
            for i in range(n)]


def test_every_change_runs_once_with_its_address_set() -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def step(c: Change) -> None:
        with lock:
            seen.append((c.key, current_address.get()))

    outcomes: list[Outcome] = []
    run_changes(_changes(50), step, workers=8, name="t", on_done=outcomes.append)
    assert sorted(seen) == sorted((c.key, c.address) for c in _changes(50))
    assert len(outcomes) == 50 and all(o.ok for o in outcomes)
    assert current_address.get() == ""


def test_size_changes_run_at_once_and_no_more() -> None:
    barrier = threading.Barrier(4, timeout=30)  # breaks (and the test fails) unless 4 run together
    running = 0
    most = 0
    lock = threading.Lock()

    def step(c: Change) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        barrier.wait()
        with lock:
            running -= 1

    outcomes: list[Outcome] = []
    with Workers(4, "t") as w:
        w.run(_changes(12), step, outcomes.append)
    assert [o.error for o in outcomes if not o.ok] == []
    assert most == 4


def test_the_threads_are_started_once_for_every_phase() -> None:
    threads: set[threading.Thread] = set()
    lock = threading.Lock()

    def step(c: Change) -> None:
        with lock:
            threads.add(threading.current_thread())

    with Workers(3, "t") as w:
        for _ in range(5):
            w.run(_changes(9), step, lambda o: None)
    assert threading.main_thread() not in threads
    assert 1 <= len(threads) <= 3  # a pool per phase would have started up to 15


def test_a_single_change_runs_in_the_calling_thread() -> None:
    where: list[threading.Thread] = []
    with Workers(8, "t") as w:
        w.run(_changes(1), lambda c: where.append(threading.current_thread()), lambda o: None)
    assert where == [threading.current_thread()]


def test_a_reconciler_error_fails_its_change_only() -> None:
    def step(c: Change) -> None:
        if c.key == "u3@acme.io":
            raise ReconcilerError("no such team, token=abc")

    outcomes: list[Outcome] = []
    run_changes(_changes(6), step, workers=3, name="t", on_done=outcomes.append)
    failed = [o for o in outcomes if not o.ok]
    assert [o.change.key for o in failed] == ["u3@acme.io"]
    assert failed[0].error is not None and "no such team" in failed[0].error
    assert len(outcomes) == 6


def test_a_bug_stops_the_changes_not_started_and_is_raised() -> None:
    started: list[str] = []
    lock = threading.Lock()
    failing = threading.Event()

    def step(c: Change) -> None:
        with lock:
            started.append(c.key)
        if c.key == "u0@acme.io":
            failing.set()
            raise RuntimeError("bug")
        failing.wait(30)  # the other worker is busy until the bug happens

    with pytest.raises(RuntimeError, match="bug"):
        with Workers(2, "t") as w:
            w.run(_changes(200), step, lambda o: None)
    assert "u0@acme.io" in started
    assert len(started) < 200


def test_a_change_whose_dependency_failed_is_skipped_and_says_which() -> None:
    """The executor, not each applier, skips what depends on a failure; independent changes still run,
    and a change that depends on one that was skipped is skipped in turn."""
    a, b, c, d = (Change("p", "user", k, Action.CREATE, f'scim.p.user["{k}"]', after={}, depends_on=deps)
                  for k, deps in (("a", ()), ("b", ('scim.p.user["a"]',)), ("c", ('scim.p.user["b"]',)),
                                  ("d", ())))
    ran: list[str] = []

    def step(x: Change) -> None:
        ran.append(x.key)
        if x.key == "a":
            raise ReconcilerError("refused")

    ledger = Ledger()
    outcomes: list[Outcome] = []
    for phase in ([a, d], [b], [c]):
        run_changes(phase, step, workers=2, name="t", on_done=outcomes.append, ledger=ledger)
    by = {o.change.key: o for o in outcomes}
    assert sorted(ran) == ["a", "d"]
    assert by["b"].error == 'skipped: depends on scim.p.user["a"], which failed'
    assert by["c"].error == 'skipped: depends on scim.p.user["b"], which failed'
    assert by["d"].ok and not by["a"].ok


def test_a_change_cannot_depend_on_itself_nor_a_plan_on_what_it_lacks() -> None:
    from reconciler.plan.model import Plan
    with pytest.raises(ValueError, match="cannot depend on itself"):
        Change("p", "user", "a", Action.CREATE, "x", after={}, depends_on=["x"])
    lonely = Change("p", "user", "a", Action.CREATE, "x", after={}, depends_on=["y"])
    with pytest.raises(ValueError, match="x: depends on y, which is not in the plan"):
        Plan(changes=[lonely])
