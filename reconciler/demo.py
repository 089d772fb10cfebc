"""`reconciler demo`: the bundled quickstart planned and applied against an embedded SCIM server.

The server is scim2-server running inside this process (no socket, no network).
It starts with a little history so the plan shows each kind of change: a
person created by hand earlier (adopted and updated), a member who has left
(deactivated, not deleted) and an account reconciler never managed (left alone).
That history is ``reconciler.sandbox.scim.DEMO_HISTORY``; ``reconciler sandbox scim``
serves the same server on 127.0.0.1:18451, so the printed commands run by hand as printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from reconciler.config.loader import load_config
from reconciler.demo_common import Echo, apply_in_plan_order, comment, shown_path
from reconciler.errors import ApplyError
from reconciler.integrations.demo import run_jira_demo  # the tracker half, against Jira sandboxes
from reconciler.render.text import PlanText, terminal_width, wrap
from reconciler.sandbox.scim import DEMO_HISTORY, DEMO_PORT, DEMO_TOKEN, history_lines, seed_demo, transport
from reconciler.session import Session

TOKEN_VAR = "SCIM_TOKEN"


def example_dir(name: str = "quickstart") -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "examples" / name, here / "_examples" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the bundled example examples/{name} is missing from this installation")


def run_demo(echo: Echo, colour: bool = False) -> None:
    os.environ.setdefault(TOKEN_VAR, DEMO_TOKEN)
    token = os.environ[TOKEN_VAR]
    folder = shown_path(example_dir())
    config = load_config(folder)
    width = terminal_width()
    t, _storage = transport(token)
    with httpx.Client(transport=t, base_url="http://sandbox.invalid/v2/",
                      headers={"Authorization": f"Bearer {token}"}) as http:
        seed_demo(http)
    transports = {p.name: t for p in config.providers}
    notes_shown: set[str] = set()
    renderer = PlanText(colour=colour, width=width, notes_shown=notes_shown)
    comment(echo, f"reconciler demo: {folder.name} ({len(config.members)} members, {len(config.teams)} teams) "
                  "against an embedded scim2-server (no network).", width)
    echo("#\n")
    comment(echo, "The server starts with some history, as a real one has (reconciler/sandbox/scim.py, "
                  "DEMO_HISTORY):", width)
    why_at = max(len(str(body["userName"])) for body, _ in DEMO_HISTORY) + 2
    for line in history_lines():
        for part in wrap(line, width, "#   ", "#   " + " " * why_at):
            echo(part + "\n")
    echo("#\n")
    comment(echo, f"To run these commands yourself: `reconciler sandbox scim` in another shell serves this "
                  f"server, with this history, on 127.0.0.1:{DEMO_PORT} (where {folder} points); then "
                  f"`export {TOKEN_VAR}={DEMO_TOKEN}` and run them as shown.", width)
    echo("\n")
    with Session(config, transports=transports) as session:
        echo(f"$ reconciler plan {folder}\n\n")
        plan = session.plan()
        echo(renderer.render(plan))
        echo(f"\n$ reconciler apply {folder} --auto-approve\n\n")
        apply_in_plan_order(session, plan, echo)
    with Session(config, transports=transports) as session:
        echo(f"\n$ reconciler plan {folder}\n\n")
        again = session.plan()
        echo(renderer.render(again))
    if again.has_changes:
        raise ApplyError({"demo": "the second plan still has changes: the apply did not converge"})
    run_jira_demo(echo, colour, width=width, notes_shown=notes_shown)
