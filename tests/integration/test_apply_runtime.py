"""How apply runs its changes, against a real scim2-server on 127.0.0.1: the threads it writes from,
and the garbage collector's view of the heap while it runs."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.execute import Outcome
from reconciler.providers._http import CallRecord
from reconciler.session import Session
from tests.servers import ScimServer


def test_every_phase_writes_from_the_same_few_threads(scim: ScimServer,
                                                      write_config: Callable[..., Path]) -> None:
    members = [f"u{i:02d}@acme.io" for i in range(12)]
    teams = [{"name": f"team-{t}", "members": members[t::3]} for t in range(6)]
    # bulk: never makes three phases of many writes each: new teams, new members, then team members
    config = load_config(write_config(scim.base_url, members=members, teams=teams, bulk="never", concurrency=3))
    writers: dict[str, set[threading.Thread]] = {}
    lock = threading.Lock()

    def record(r: CallRecord) -> None:
        if r.method == "GET":  # the group names apply reads around its creates: not writes
            return
        with lock:
            resource = r.path.split("/v2/", 1)[-1].split("/")[0]
            writers.setdefault(f"{r.method} {resource}", set()).add(threading.current_thread())

    with Session(config, recorder=record) as s:
        plan = s.plan()
        writers.clear()
        assert apply_plan(s, plan).failures == {}
    assert set(writers) == {"POST Groups", "POST Users", "PATCH Groups"}
    threads = set().union(*writers.values())
    assert threading.current_thread() not in threads
    assert len(threads) <= 3  # a pool per phase would have started three threads for each


def test_the_heap_is_frozen_during_an_apply_and_given_back_after(scim: ScimServer,
                                                                 write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(scim.base_url, members=["a@acme.io", "b@acme.io"]))
    frozen_during: list[int] = []
    assert gc.get_freeze_count() == 0
    with Session(config) as s:
        apply_plan(s, s.plan(), observer=lambda o: frozen_during.append(gc.get_freeze_count()))
    assert frozen_during and all(n > 0 for n in frozen_during)
    assert gc.get_freeze_count() == 0

    def broken(o: Outcome) -> None:
        raise RuntimeError("observer bug")

    config = load_config(write_config(scim.base_url, members=["c@acme.io"], folder="other"))
    with Session(config) as s, pytest.raises(RuntimeError, match="observer bug"):
        apply_plan(s, s.plan(), observer=broken)
    assert gc.get_freeze_count() == 0
