"""A saved plan cannot be edited into doing something else (issue 13, item 1), on a real scim2-server.

`apply plan.json` plans again from the config on disk and the live state, and applies only changes
that plan makes, for the addresses the file lists. Each test edits a real plan file the way an
attacker with write access to the CI artifact would, and checks that apply refuses it whole (exit 1)
and that nothing on the server changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.conftest import dump_yaml
from tests.servers import ScimServer

pytestmark = pytest.mark.integration
PEOPLE = [f"p{i:02d}@acme.io" for i in range(12)]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def server(scim: ScimServer) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    with scim.client() as c:
        users = {u["userName"]: u for u in c.get("Users", params={"count": "1000"}).json()["Resources"]}
        groups = c.get("Groups", params={"count": "1000"}).json().get("Resources") or []
    names = {u["id"]: n for n, u in users.items()}
    return users, {g["displayName"]: sorted(names.get(m["value"], m["value"]) for m in g.get("members") or [])
                   for g in groups}


@pytest.fixture
def planned(scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """Twelve members and a team converged; then the config renames one member's given name and the
    saved plan of that (one update) is written to plan.json."""
    monkeypatch.chdir(tmp_path)
    cfg = write_config(scim.base_url, members=PEOPLE, teams=[{"name": "leads", "members": PEOPLE[:2]}])
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    edited = [{"email": e, "given_name": "Zed"} if e == PEOPLE[0] else {"email": e} for e in PEOPLE]
    (cfg / "members.yaml").write_text(dump_yaml({"members": edited}))
    res = run("plan", "config", "--out", "plan.json")
    assert res.exit_code == 0, res.output
    return Path("plan.json")


def edit(path: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def refused(scim: ScimServer, path: Path, *, why: str) -> None:
    before = server(scim)
    res = run("apply", str(path))
    assert res.exit_code == 1, res.output
    assert "plan is stale" in res.output and why in res.output, res.output
    assert "Apply complete" not in res.output
    assert server(scim) == before, "a refused plan changed the server"


def test_deletes_added_to_a_saved_plan_are_refused(scim: ScimServer, planned: Path) -> None:
    users, _ = server(scim)

    def add_deletes(doc: dict[str, Any]) -> None:
        template = doc["changes"][0]
        for e in PEOPLE[1:11]:  # ten deletes of real users, threshold and all
            # no precondition: the attacker cannot know the live ETags, and a change without one was
            # not re-read before this fix
            doc["changes"].append({**template, "address": f'scim.platform.user["{e}"]', "key": e,
                                   "action": "delete", "id": users[e]["id"], "after": None, "diff": [],
                                   "precondition": None})

    edit(planned, add_deletes)
    refused(scim, planned, why="is not a change the configuration makes now")


def test_an_edited_target_id_is_refused(scim: ScimServer, planned: Path) -> None:
    users, _ = server(scim)

    def retarget(doc: dict[str, Any]) -> None:
        doc["changes"][0]["id"] = users[PEOPLE[5]]["id"]  # the reviewed update, aimed at someone else
        doc["changes"][0]["precondition"] = None

    edit(planned, retarget)
    refused(scim, planned, why="does not match what the configuration makes now")


def test_an_edited_desired_state_is_refused(scim: ScimServer, planned: Path) -> None:
    def deactivate(doc: dict[str, Any]) -> None:
        c = doc["changes"][0]
        c["after"]["active"] = False
        c["diff"].append({"path": "active", "before": True, "after": False})

    edit(planned, deactivate)
    refused(scim, planned, why="does not match what the configuration makes now")


def test_edited_refs_cannot_put_someone_in_a_team(scim: ScimServer, write_config: Callable[..., Path],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ids a change carries (its payload: which live user a team member is) come from the plan made at
    apply time, not from the file: a file that maps the new member to another account changes nothing
    but what was reviewed."""
    monkeypatch.chdir(tmp_path)
    cfg = write_config(scim.base_url, members=PEOPLE, teams=[{"name": "leads", "members": PEOPLE[:2]}])
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    (cfg / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "leads", "members": PEOPLE[:3]}]}))
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    users, _ = server(scim)
    edit(Path("plan.json"), lambda doc: doc["changes"][0]["payload"]["ids"].update({PEOPLE[2]: users[PEOPLE[9]]["id"]}))
    res = run("apply", "plan.json")
    assert res.exit_code == 0, res.output
    _, groups = server(scim)
    assert groups["leads"] == sorted(PEOPLE[:3])  # p02 joined, as reviewed; p09 did not


def test_an_untouched_saved_plan_still_applies(scim: ScimServer, planned: Path) -> None:
    res = run("apply", str(planned))
    assert res.exit_code == 0, res.output
    assert "Planned again from the configuration: the 1 change(s)" in res.output
    users, _ = server(scim)
    assert users[PEOPLE[0]]["name"]["givenName"] == "Zed"


def test_a_saved_plan_with_tracker_changes_applies_and_an_edited_one_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/full (SCIM, Jira Cloud and Data Center) planned, saved, checked and applied through the
    same path as `apply plan.json`; then a saved plan whose role change grants someone else is refused."""
    from reconciler.apply import apply_plan
    from reconciler.config.loader import load_config
    from reconciler.errors import StalePlanError
    from reconciler.sandbox import scim as scim_sandbox
    from reconciler.sandbox.jira import CLOUD_TOKEN, DC_TOKEN, new_state, transport
    from reconciler.saved import check_preconditions, load_saved_plan, verify, write_saved_plan
    from reconciler.session import Session

    example = Path(__file__).resolve().parents[2] / "examples" / "full"
    monkeypatch.setenv("SCIM_TOKEN", "example-token")
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", CLOUD_TOKEN)
    monkeypatch.setenv("JIRA_DC_TOKEN", DC_TOKEN)
    scim_t, _ = scim_sandbox.transport("example-token")
    transports = {"platform": scim_t, "acme-cloud": transport(new_state("cloud")),
                  "acme-dc": transport(new_state("datacenter"))}
    config = load_config(example)
    path = tmp_path / "plan.json"
    with Session(config, transports=transports) as s:
        write_saved_plan(path, s.plan(), example, s)
    saved = load_saved_plan(path)
    assert any(c.address.startswith("jira.") for c in saved.plan.changes)

    role = next(c for c in saved.plan.changes if "project_role" in c.address)
    edited = tmp_path / "edited.json"
    doc = json.loads(path.read_text())
    for c in doc["changes"]:
        if c["address"] == role.address:
            c["after"] = {**c["after"], "users": [*(c["after"].get("users") or []), "mallory"]}
    edited.write_text(json.dumps(doc))
    with Session(config, transports=transports) as s, pytest.raises(StalePlanError, match=re.escape(role.address)):
        bad = load_saved_plan(edited)
        check_preconditions(s, bad)
        verify(s, bad)

    with Session(config, transports=transports) as s:
        check_preconditions(s, saved)
        planned = verify(s, saved)
        assert [c.address for c in planned.changes] == [c.address for c in saved.plan.changes]
        assert apply_plan(s, planned).failures == {}
    with Session(config, transports=transports) as s:
        assert s.plan().changes == []
