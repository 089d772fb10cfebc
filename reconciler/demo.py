"""`reconciler demo`: the bundled quickstart planned and applied against an embedded SCIM server.

The server is scim2-server running inside this process (no socket, no network).
It starts with a little history so the plan shows each kind of change: a
person created by hand earlier (adopted and updated), a member who has left
(deactivated, not deleted) and an account reconciler never managed (left alone).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.errors import ApplyError
from reconciler.render.text import PlanText
from reconciler.sandbox.scim import transport
from reconciler.session import Session

TOKEN_VAR = "SCIM_TOKEN"


def example_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "examples" / "quickstart", here / "_examples" / "quickstart"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the bundled example examples/quickstart is missing from this installation")


def seed(http: httpx.Client) -> None:
    user = "urn:ietf:params:scim:schemas:core:2.0:User"
    for body in (
        {"userName": "bob@acme.io", "name": {"givenName": "Robert", "familyName": "Baker"}, "active": True,
         "emails": [{"value": "bob@acme.io", "type": "work", "primary": True}]},
        {"userName": "erin@acme.io", "externalId": "reconciler:erin@acme.io", "active": True,
         "name": {"givenName": "Erin", "familyName": "Evans"},
         "emails": [{"value": "erin@acme.io", "type": "work", "primary": True}]},
        {"userName": "ops-robot@acme.io", "active": True},
    ):
        http.post("Users", json={"schemas": [user], **body}).raise_for_status()


def run_demo(echo: Callable[[str], None], colour: bool = False) -> None:
    os.environ.setdefault(TOKEN_VAR, "demo-token")
    token = os.environ[TOKEN_VAR]
    folder = example_dir()
    config = load_config(folder)
    t, _storage = transport(token)
    with httpx.Client(transport=t, base_url="http://sandbox.invalid/v2/",
                      headers={"Authorization": f"Bearer {token}"}) as http:
        seed(http)
    transports = {p.name: t for p in config.providers}
    renderer = PlanText(colour=colour)
    echo(f"# reconciler demo: {folder.name} ({len(config.members)} members, {len(config.teams)} teams) against "
         "an embedded scim2-server (no network)\n\n")
    with Session(config, transports=transports) as session:
        echo("$ reconciler plan examples/quickstart\n\n")
        plan = session.plan()
        echo(renderer.render(plan))
        echo("\n$ reconciler apply examples/quickstart --auto-approve\n\n")
        result = apply_plan(session, plan, observer=lambda o: echo(
            f"{o.change.address}: {o.change.action.value} {'done' if o.ok else 'FAILED: ' + str(o.error)}\n"))
        echo(result.summary() + "\n")
        if result.failures:
            raise ApplyError(result.failures)
    with Session(config, transports=transports) as session:
        echo("\n$ reconciler plan examples/quickstart\n\n")
        again = session.plan()
        echo(renderer.render(again))
    if again.has_changes:
        raise ApplyError({"demo": "the second plan still has changes: the apply did not converge"})
    from reconciler.integrations.demo import run_jira_demo  # the tracker half, against Jira sandboxes
    run_jira_demo(echo, colour)
