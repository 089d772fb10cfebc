"""The tracker half of `reconciler demo`: examples/full planned and applied against two embedded Jira
sandboxes (Cloud and Data Center) and an embedded SCIM server, then a renamed priority caught at plan time."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from reconciler.config.loader import load_config
from reconciler.demo_common import apply_in_plan_order, comment, shown_path
from reconciler.errors import ApplyError, PlanError
from reconciler.render.text import PlanText, wrap
from reconciler.sandbox import jira as jira_sandbox
from reconciler.sandbox import scim as scim_sandbox
from reconciler.session import Session


def full_example_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "examples" / "full", here / "_examples" / "full"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the bundled example examples/full is missing from this installation")


def run_jira_demo(echo: Callable[[str], None], colour: bool = False, *, width: int | None = None,
                  notes_shown: set[str] | None = None) -> None:
    folder = shown_path(full_example_dir())
    tokens = {"SCIM_TOKEN": "demo-token", "JIRA_CLOUD_TOKEN": jira_sandbox.CLOUD_TOKEN,
              "JIRA_DC_TOKEN": jira_sandbox.DC_TOKEN}
    for name, value in tokens.items():
        os.environ.setdefault(name, value)
    cloud = jira_sandbox.new_state("cloud", page_size=50)
    dc = jira_sandbox.new_state("datacenter", page_size=50)
    cloud.secret, dc.secret = os.environ["JIRA_CLOUD_TOKEN"], os.environ["JIRA_DC_TOKEN"]
    scim_t, _ = scim_sandbox.transport(os.environ["SCIM_TOKEN"])
    transports: dict[str, httpx.BaseTransport] = {
        "platform": scim_t, "acme-cloud": jira_sandbox.transport(cloud), "acme-dc": jira_sandbox.transport(dc)}
    config = load_config(folder)
    renderer = PlanText(colour=colour, width=width, notes_shown=notes_shown)
    echo("\n")
    comment(echo, f"Tracker integrations: {folder.name} ({len(config.integrations)} "
                  "integrations) against embedded Jira Cloud and Jira Data Center sandboxes and an empty "
                  "embedded scim2-server (no network). By hand: `reconciler sandbox scim --empty` and the two "
                  "`reconciler sandbox jira` servers of docs/jira.md.", width)
    echo("\n")
    with Session(config, transports=transports) as session:
        echo(f"$ reconciler plan {folder}\n\n")
        plan = session.plan()
        echo(renderer.render(plan))
        echo(f"\n$ reconciler apply {folder} --auto-approve\n\n")
        apply_in_plan_order(session, plan, echo)
    echo("\n")
    comment(echo, "A Jira admin renames the priority 'High' to 'Urgent'; the scheduled plan catches it before "
                  "the first finding fails to sync:", width)
    echo(f"\n$ reconciler plan {folder}\n\n")
    cloud.rename("priority", "High", "Urgent")
    try:
        with Session(config, transports=transports) as session:
            session.plan()
        raise ApplyError({"demo": "the renamed priority was not caught at plan time"})
    except PlanError as exc:
        for i, line in enumerate(f"error: {exc}".splitlines()):
            lead = line[:len(line) - len(line.lstrip())]
            if i and line.lstrip().startswith("- "):
                lead += "  "  # a list item's continuation lines align with its text
            for part in wrap(line.lstrip(), width, line[:len(line) - len(line.lstrip())], lead):
                echo(part + "\n")
    cloud.rename("priority", "Urgent", "High")
    echo("\n")
    comment(echo, "Renamed back; the live systems match again:", width)
    echo(f"\n$ reconciler plan {folder}\n\n")
    with Session(config, transports=transports) as session:
        again = session.plan()
        echo(renderer.render(again))
    if again.has_changes:
        raise ApplyError({"demo": "the second plan of examples/full still has changes: the apply did not converge"})
