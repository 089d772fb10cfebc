"""importer.build on resources a server may hold but one config cannot (servers that, unlike scim2-server,
accept two userNames that differ only in case)."""

from __future__ import annotations

import pytest

from reconciler.config.models import ScimProvider
from reconciler.errors import ReconcilerError
from reconciler.importer import build

PROVIDER = ScimProvider.model_validate({"name": "platform", "type": "scim", "base_url": "https://scim.example.com",
                                        "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}})


def test_usernames_equal_ignoring_case_are_refused_naming_both_ids() -> None:
    users = [{"id": "u-1", "userName": "Alice@acme.io"}, {"id": "u-2", "userName": "alice@acme.io"},
             {"id": "u-3", "userName": "bob@acme.io"}]
    groups = [{"id": "g-1", "displayName": "ops"}, {"id": "g-2", "displayName": "ops"},
              {"id": "g-3", "displayName": "ops"}]
    with pytest.raises(ReconcilerError) as err:
        build(PROVIDER, users, groups)
    text = str(err.value)
    assert "nothing was written" in text
    assert "2 users have the userName 'alice@acme.io' (ignoring case): 'Alice@acme.io' (id u-1), " \
           "'alice@acme.io' (id u-2)" in text
    assert "3 groups are named 'ops' (ids g-1, g-2, g-3)" in text
    assert "bob" not in text


def test_distinct_names_import() -> None:
    out = build(PROVIDER, [{"id": "u-1", "userName": "alice@acme.io"}],
                [{"id": "g-1", "displayName": "ops"}, {"id": "g-2", "displayName": "Ops"}])
    assert [m["email"] for m in out.members] == ["alice@acme.io"]
    assert [t["name"] for t in out.teams] == ["Ops", "ops"]
