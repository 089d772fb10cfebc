"""Where servers differ, over real sockets: the member-removal form, and a 400 that is not about it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config.models import ScimProvider
from reconciler.errors import ServerError
from reconciler.providers.scim.client import connect
from tests.servers import ScimServer

pytestmark = pytest.mark.integration
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_a_400_about_something_else_does_not_switch_the_removal_form(scim: ScimServer, tmp_path: Path) -> None:
    """scim2-server takes removals only as members[value eq "id"] (400 to the value-list form). A PATCH
    refused for another reason (a bad attribute value, scimType invalidValue) is that error, once: it is
    not sent again in the other form, and later removals still use the form the server takes."""
    with scim.client() as h:
        ids = [h.post("Users", json={"schemas": [USER], "userName": f"u{i}@acme.io"}).json()["id"] for i in range(3)]
        gid = h.post("Groups", json={"schemas": [GROUP], "displayName": "g",
                                     "members": [{"value": i} for i in ids]}).json()["id"]
    p = ScimProvider.model_validate({"name": "platform", "type": "scim", "base_url": scim.base_url,
                                     "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}})
    client = connect(p)
    sent: list[str] = []
    client.http.recorder = lambda call: sent.append(f"{call.method} {call.status}")
    try:
        client.discover()
        bad = [{"op": "replace", "path": "displayName", "value": 123}]
        with pytest.raises(ServerError, match="invalidValue"):
            client.patch_members(gid, [], [ids[0]], bad)
        assert sent[-1:] == ["PATCH 400"] and sent.count("PATCH 400") == 1  # not retried in the other form
        client.patch_members(gid, [], [ids[1]], [])
        assert sent[-1] in ("PATCH 200", "PATCH 204")
        members = {m["value"] for m in client.get("Groups", gid)["members"]}  # type: ignore[index]
        assert members == {ids[0], ids[2]}
    finally:
        client.close()


def test_an_attribute_the_server_does_not_store_is_a_plan_error_at_its_place(scim: ScimServer,
                                                                             write_config: Callable[..., Path]) -> None:
    """Declared in a member's attributes (the config insists) and absent from scim2-server's /Schemas:
    the plan fails naming the file:line:col, instead of an apply that fails on the server's 400."""
    cfg = write_config(scim.base_url, members=["ok@acme.io", {"email": "bad@acme.io",
                                                              "attributes": {"noSuchAttribute": "x"}}])
    r = CliRunner().invoke(main, ["plan", str(cfg)])
    assert r.exit_code == 1
    assert re.search(re.escape(str(cfg / "members.yaml")) + r":\d+:\d+: member bad@acme.io: attribute noSuchAttribute "
                     r"cannot be stored by provider platform \(not in /Schemas\)", r.stderr), r.stderr
