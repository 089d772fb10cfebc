"""reconciler.execute: the one graph runner every apply goes through, whatever the systems."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.errors import ReconcilerError
from reconciler.execute import STOP, Graph, Outcome, Step
from reconciler.plan.model import Action, Change
from reconciler.providers._http import current_address


def _changes(n: int, system: str = "scim.p") -> list[Change]:
    return [Change("p", "user", f"u{i}@acme.io", Action.CREATE, f'{system}.user["u{i}@acme.io"]', after={})
            for i in range(n)]


def test_every_change_runs_once_with_its_address_set() -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def step(c: Change) -> None:
        with lock:
            seen.append((c.key, current_address.get()))

    outcomes: list[Outcome] = []
    g = Graph()
    g.each(g.pool("p", 8), _changes(50), step, outcomes.append)
    g.run()
    assert sorted(seen) == sorted((c.key, c.address) for c in _changes(50))
    assert len(outcomes) == 50 and all(o.ok for o in outcomes)
    assert current_address.get() == ""


def test_a_pool_runs_its_size_at_once_and_no_more() -> None:
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
    g = Graph()
    g.each(g.pool("p", 4), _changes(12), step, outcomes.append)
    g.run()
    assert [o.error for o in outcomes if not o.ok] == []
    assert most == 4


def test_steps_of_different_pools_run_at_the_same_time() -> None:
    """Two systems (two pools of size 1) are not applied one after the other: each step waits for the
    other to have started, which only works if they run at once."""
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[Outcome] = []
    g = Graph()
    g.each(g.pool("scim.p", 1), _changes(1), lambda c: barrier.wait(), outcomes.append)
    g.each(g.pool("jira.j", 1), _changes(1, "jira.j"), lambda c: barrier.wait(), outcomes.append)
    g.run()
    assert [o.ok for o in outcomes] == [True, True]


def test_a_step_starts_after_the_steps_it_comes_after_have_ended() -> None:
    order: list[str] = []
    lock = threading.Lock()

    def note(name: str, pause: float = 0.0) -> None:
        time.sleep(pause)
        with lock:
            order.append(name)

    g = Graph()
    pool = g.pool("p", 4)
    first = [g.add(pool, lambda i=i: note(f"a{i}", 0.05)) for i in range(3)]  # type: ignore[misc]
    gate = g.gate(first)
    g.add(pool, lambda: note("b"), after=[gate])
    g.run()
    assert order[-1] == "b" and sorted(order[:3]) == ["a0", "a1", "a2"]


def test_a_reconciler_error_fails_its_change_only() -> None:
    def step(c: Change) -> None:
        if c.key == "u3@acme.io":
            raise ReconcilerError("no such team, token=abc")

    outcomes: list[Outcome] = []
    g = Graph()
    g.each(g.pool("p", 3), _changes(6), step, outcomes.append)
    g.run()
    failed = [o for o in outcomes if not o.ok]
    assert [o.change.key for o in failed] == ["u3@acme.io"]
    assert failed[0].error is not None and "no such team" in failed[0].error
    assert len(outcomes) == 6


def test_a_bug_stops_the_steps_not_started_and_is_raised() -> None:
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

    g = Graph()
    g.each(g.pool("p", 2), _changes(200), step, lambda o: None)
    with pytest.raises(RuntimeError, match="bug"):
        g.run()
    assert "u0@acme.io" in started
    assert len(started) < 200


def test_after_a_stop_no_step_starts() -> None:
    started: list[str] = []

    def step(c: Change) -> None:
        started.append(c.key)
        STOP.set()

    g = Graph()
    g.each(g.pool("p", 1), _changes(20), step, lambda o: None)
    try:
        g.run()
    finally:
        STOP.clear()
    assert started == ["u0@acme.io"]


def test_depends_on_orders_the_steps_and_a_failure_skips_what_needs_it() -> None:
    """No phases: the graph orders b after a and c after b from their ``depends_on`` alone (listed in
    reverse, on a pool that could run them all at once); a change whose dependency failed is skipped,
    and one that depends on a skipped one is skipped in turn; independent ones still run."""
    a, b, c, d = (Change("p", "user", k, Action.CREATE, f'scim.p.user["{k}"]', after={}, depends_on=deps)
                  for k, deps in (("a", ()), ("b", ('scim.p.user["a"]',)), ("c", ('scim.p.user["b"]',)),
                                  ("d", ())))
    ran: list[str] = []

    def step(x: Change) -> None:
        time.sleep(0.02)
        ran.append(x.key)
        if x.key == "a":
            raise ReconcilerError("refused")

    outcomes: list[Outcome] = []
    g = Graph()
    g.each(g.pool("p", 4), [c, b, d, a], step, outcomes.append)
    g.run()
    by = {o.change.key: o for o in outcomes}
    assert sorted(ran) == ["a", "d"]
    assert by["b"].error == 'skipped: depends on scim.p.user["a"], which failed'
    assert by["c"].error == 'skipped: depends on scim.p.user["b"], which failed'
    assert by["d"].ok and not by["a"].ok
    assert [o.change.key for o in outcomes].index("c") > [o.change.key for o in outcomes].index("b")


def test_depends_on_orders_steps_across_pools() -> None:
    """A change of one system that depends on a change of another waits for it."""
    made = Change("p", "user", "a", Action.CREATE, 'scim.p.user["a"]', after={})
    order: list[str] = []

    def slow(c: Change) -> None:
        time.sleep(0.05)
        order.append(c.address)

    g = Graph()
    g.each(g.pool("scim.p", 1), [made], slow, lambda o: None)
    later = Change("j", "user", "b", Action.CREATE, 'jira.j.user["b"]', after={}, depends_on=['scim.p.user["a"]'])
    g.each(g.pool("jira.j", 1), [later], lambda c: order.append(c.address), lambda o: None)
    g.run()
    assert order == ['scim.p.user["a"]', 'jira.j.user["b"]']


def test_steps_that_wait_on_each_other_are_a_bug_found_before_anything_runs() -> None:
    ran: list[str] = []
    g = Graph()
    pool = g.pool("p", 2)
    x = g.add(pool, lambda: ran.append("x"))
    y = g.add(pool, lambda: ran.append("y"), after=[x])
    x.after.append(y)
    assert isinstance(y, Step)
    with pytest.raises(RuntimeError, match="2 apply steps wait on each other in a loop"):
        g.run()
    assert ran == []


def test_a_change_cannot_depend_on_itself_nor_a_plan_on_what_it_lacks() -> None:
    from reconciler.plan.model import Plan
    with pytest.raises(ValueError, match="cannot depend on itself"):
        Change("p", "user", "a", Action.CREATE, "x", after={}, depends_on=["x"])
    lonely = Change("p", "user", "a", Action.CREATE, "x", after={}, depends_on=["y"])
    with pytest.raises(ValueError, match="x: depends on y, which is not in the plan"):
        Plan(changes=[lonely])


def test_gates_free_at_the_start_end_once_and_free_what_follows_once() -> None:
    # a gate with nothing before it, a gate after it, a step after both: each ends once, the run ends
    seen: list[str] = []
    g = Graph()
    pool = g.pool("p", 2)
    first = g.gate([])
    second = g.gate([first])
    g.each(pool, _changes(3), lambda c: seen.append(c.key), lambda o: None, [second, first])
    g.gate([])  # a gate that nothing follows
    done = threading.Event()

    def run() -> None:
        g.run()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert done.wait(30), "the run never ended"
    assert sorted(seen) == ["u0@acme.io", "u1@acme.io", "u2@acme.io"]


def test_what_a_step_fans_out_shares_its_pools_bound() -> None:
    """A step that sends several requests at once (a SCIM Bulk step's chunks, through threads.fan_out)
    lends its slot to them: with the pool's other steps, never more than the pool's size in flight."""
    from reconciler.threads import fan_out

    lock = threading.Lock()
    running = 0
    most = 0
    pair = threading.Barrier(2, timeout=30)  # two at once must be possible, or it breaks and the test fails

    def request(together: bool = False) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if together:
            pair.wait()
        time.sleep(0.02)
        with lock:
            running -= 1

    def bulk(c: Change) -> None:
        fan_out([lambda: request(True), lambda: request(True), request, request, request, request], 4, "t")

    outcomes: list[Outcome] = []
    g = Graph()
    pool = g.pool("p", 2)
    g.each(pool, _changes(1), bulk, outcomes.append)
    g.each(pool, _changes(6, "scim.q"), lambda c: request(), outcomes.append)
    g.run()
    assert [o.error for o in outcomes if not o.ok] == []
    assert most == 2
    # outside an apply step it is a plain bounded pool
    assert fan_out([lambda: 1, lambda: 2, lambda: 3], 2, "t") == [1, 2, 3]
