"""One removal gate computed from effect, on the real scim2-server: a change that leaves an account
inactive counts toward the thresholds and is refused for a protected member, whatever path got it there
(issue 13, item 4). The loader refuses `attributes: {active: ...}` (test_load_refusals.py); these tests
build that config past the loader, as any other path to the same effect would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import PlanError, UnsafePlanError
from reconciler.plan.model import Action, AttributeChange, Change
from reconciler.plan.safety import check_removals, removes
from reconciler.session import Session
from tests.servers import ScimServer

EMAILS = [f"user{i:02d}@acme.io" for i in range(12)]


def seeded(scim: ScimServer, write_config: Callable[..., Path]) -> Path:
    cfg = write_config(scim.base_url, members=EMAILS)
    with Session(load_config(cfg)) as s:
        assert not apply_plan(s, s.plan()).failures
    return cfg


def test_active_false_through_attributes_counts_as_removals(scim: ScimServer,
                                                            write_config: Callable[..., Path]) -> None:
    config = load_config(seeded(scim, write_config))
    for m in config.members[:10]:
        m.attributes = {"active": "false"}
    with Session(config) as s, pytest.raises(UnsafePlanError) as e:
        s.plan()
    assert "it would remove (deactivate or delete) 10 of 12 managed objects" in str(e.value)
    with Session(config) as s:  # let through: planned and shown as what it is
        p = s.plan(allow_removals=10)
    assert p.counts()[Action.DEACTIVATE] == 10 and p.counts()[Action.UPDATE] == 0


def test_protect_blocks_deactivation_through_attributes(scim: ScimServer,
                                                        write_config: Callable[..., Path]) -> None:
    config = load_config(seeded(scim, write_config))
    config.members[0].protect = True
    config.members[0].attributes = {"active": False}
    with Session(config) as s, pytest.raises(PlanError) as e:
        s.plan(targets=['scim.platform.user["user00@acme.io"]'], allow_removals=12)
    assert "protect" in str(e.value) and "user00@acme.io" in str(e.value)


def test_the_gate_reads_the_effect_not_the_label() -> None:
    changes = [Change("p", "user", f"u{i}", Action.UPDATE, f"u{i}", before={"active": True},
                      after={"active": "False"}, diff=[AttributeChange("active", True, "False")], id=str(i))
               for i in range(10)]
    assert all(removes(c) for c in changes)
    with pytest.raises(UnsafePlanError):
        check_removals("p", changes, 12, 500, 20.0, None)
    kept = Change("p", "user", "k", Action.UPDATE, "k", before={"active": False, "title": "a"},
                  after={"active": False, "title": "b"}, diff=[AttributeChange("title", "a", "b")], id="k")
    assert not removes(kept)  # already inactive: nothing is removed
