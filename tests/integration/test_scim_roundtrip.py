"""plan -> apply -> plan against a real scim2-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.plan.model import Action
from reconciler.session import Session
from tests.servers import ScimServer


def test_plan_apply_plan_converges(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    cfg_dir = write_config(
        scim.base_url,
        members=[{"email": "alice@acme.io", "given_name": "Alice", "department": "AppSec"},
                 {"email": "bob@acme.io", "manager": "alice@acme.io"}],
        teams=[{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}],
    )
    config = load_config(cfg_dir)
    with Session(config) as s:
        plan = s.plan()
        assert [(c.address, c.action) for c in plan.changes] == [
            ('scim.platform.group["appsec"]', Action.CREATE),
            ('scim.platform.user["alice@acme.io"]', Action.CREATE),
            ('scim.platform.user["bob@acme.io"]', Action.CREATE),
        ]
        result = apply_plan(s, plan)
        assert result.failures == {}
    with Session(config) as s:
        again = s.plan()
    assert again.changes == [], [c.address for c in again.changes]
    with scim.client() as c:
        group: dict[str, Any] = c.get("Groups").json()["Resources"][0]
        assert len(group["members"]) == 2
