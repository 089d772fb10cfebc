"""depends_on against a real scim2-server: a --target plan carries every change its targets need,
however deep, and a saved plan whose dependencies were cut or looped is refused whole."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.session import Session
from tests.integration.test_cli_core import run
from tests.servers import ScimServer

CHAIN = [{"email": "a@acme.io"}, {"email": "b@acme.io", "manager": "a@acme.io"},
         {"email": "c@acme.io", "manager": "b@acme.io"}, {"email": "d@acme.io", "manager": "c@acme.io"}]


def test_a_target_brings_its_chain_of_new_managers(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    cfg = load_config(write_config(scim.base_url, members=CHAIN))
    with Session(cfg) as s:
        plan = s.plan(targets=['scim.platform.user["d@acme.io"]'])
        assert sorted(c.key for c in plan.changes) == ["a@acme.io", "b@acme.io", "c@acme.io", "d@acme.io"]
        by = {c.key: c for c in plan.changes}
        assert by["d@acme.io"].depends_on == ('scim.platform.user["c@acme.io"]',)
        assert by["a@acme.io"].depends_on == ()
        result = apply_plan(s, plan)
        assert not result.failures, result.failures
    with Session(cfg) as s:
        assert not s.plan().has_changes


def test_a_saved_plan_with_a_dependency_cut_or_looped_is_refused(
        scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(scim.base_url, members=CHAIN)
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    doc = json.loads(Path("plan.json").read_text())
    cut = dict(doc, changes=[c for c in doc["changes"] if c["key"] != "b@acme.io"])
    Path("cut.json").write_text(json.dumps(cut))
    res = run("apply", "cut.json", "--auto-approve")
    assert res.exit_code == 1
    assert ('the saved plan is malformed (scim.platform.user["c@acme.io"]: depends on '
            'scim.platform.user["b@acme.io"], which is not in the plan)') in res.stderr
    loop = json.loads(Path("plan.json").read_text())
    first = next(c for c in loop["changes"] if c["key"] == "a@acme.io")
    first["depends_on"] = ['scim.platform.user["d@acme.io"]']
    Path("loop.json").write_text(json.dumps(loop))
    res = run("apply", "loop.json", "--auto-approve")
    assert res.exit_code == 1 and "depends on itself through" in res.stderr
    with scim.client() as c:  # refused whole: nothing was written
        assert c.get("Users").json()["totalResults"] == 0
