"""Saved plans against a real scim2-server: plan --out, apply FILE, stale refusals, show."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.providers.scim.system import LiveSize, choose_strategy, live_size
from reconciler.saved import load_saved_plan
from tests.conftest import ROOT, dump_yaml
from tests.servers import ScimServer

MEMBERS = [{"email": "alice@acme.io", "given_name": "Alice"}, {"email": "bob@acme.io", "given_name": "Bob"}]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def users(scim: ScimServer) -> dict[str, dict[str, Any]]:
    with scim.client() as c:
        return {u["userName"]: u for u in c.get("Users", params={"count": "1000"}).json()["Resources"]}


@pytest.fixture
def applied(scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config converged on the server, then edited: both members get a new given name."""
    monkeypatch.chdir(tmp_path)
    cfg = write_config(scim.base_url, members=MEMBERS, teams=[{"name": "appsec", "members": ["alice@acme.io"]}])
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    edited = [{"email": "alice@acme.io", "given_name": "Alicia"}, {"email": "bob@acme.io", "given_name": "Robert"}]
    (cfg / "members.yaml").write_text(dump_yaml({"members": edited}))
    return cfg


def test_apply_saved_plan_applies_exactly_it_without_asking(scim: ScimServer, applied: Path) -> None:
    res = run("plan", "config", "--out", "plan.json")
    assert res.exit_code == 0, res.output
    doc = json.loads(Path("plan.json").read_text())
    assert doc["kind"] == "reconciler-plan" and doc["config_path"] == "config"
    assert [c["address"] for c in doc["changes"]] == ['scim.platform.user["alice@acme.io"]',
                                                      'scim.platform.user["bob@acme.io"]']
    assert all(c["precondition"]["etag"].startswith('W/"') for c in doc["changes"])  # scim2-server has ETags
    res = run("apply", "plan.json")  # no --auto-approve and no TTY: a saved plan needs no confirmation
    assert res.exit_code == 0, res.output
    assert "Apply complete: 0 created, 2 updated" in res.output
    live = users(scim)
    assert live["alice@acme.io"]["name"]["givenName"] == "Alicia"
    assert live["bob@acme.io"]["name"]["givenName"] == "Robert"
    assert run("plan", "config", "--detailed-exitcode").exit_code == 0


def test_stale_plan_is_refused_whole_when_an_object_changed_on_the_server(scim: ScimServer, applied: Path) -> None:
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    bob = users(scim)["bob@acme.io"]
    with scim.client() as c:  # someone edits bob in the platform's UI after the plan was made
        r = c.patch(f"Users/{bob['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                               "Operations": [{"op": "replace", "path": "title",
                                                               "value": "CISO"}]})
        assert r.status_code in (200, 204)
    res = run("apply", "plan.json", "--audit-log", "audit.jsonl")
    assert res.exit_code == 1
    assert ('plan is stale: scim.platform.user["bob@acme.io"] changed since the plan was made; run plan again'
            in res.stderr)
    assert "Traceback" not in res.output + res.stderr
    live = users(scim)
    assert live["alice@acme.io"]["name"]["givenName"] == "Alice"  # nothing was changed, not even alice
    assert live["bob@acme.io"]["name"]["givenName"] == "Bob"
    events = [json.loads(line) for line in Path("audit.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "apply-refused" and "bob@acme.io" in events[-1]["reason"]
    assert not [e for e in events if e.get("method") in ("PATCH", "PUT", "POST", "DELETE")]


def test_stale_plan_names_deleted_and_created_objects(scim: ScimServer, applied: Path) -> None:
    cfg = applied
    (cfg / "members.yaml").write_text(dump_yaml({"members": [{"email": "alice@acme.io", "given_name": "Al"},
                                                             {"email": "bob@acme.io", "given_name": "Bob"},
                                                             {"email": "carol@acme.io"}]}))
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    with scim.client() as c:
        c.delete(f"Users/{users(scim)['alice@acme.io']['id']}")
        c.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "carol@acme.io"})
    res = run("apply", "plan.json")
    assert res.exit_code == 1
    assert "plan is stale: 2 objects changed since the plan was made" in res.stderr
    assert 'scim.platform.user["alice@acme.io"] was deleted since the plan was made' in res.stderr
    assert 'scim.platform.user["carol@acme.io"] was created on the provider since the plan was made' in res.stderr
    assert set(users(scim)) == {"bob@acme.io", "carol@acme.io"}


def test_plan_from_another_config_is_refused(scim: ScimServer, applied: Path) -> None:
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    (applied / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "appsec", "members": ["bob@acme.io"]}]}))
    res = run("apply", "plan.json")
    assert res.exit_code == 1
    assert "plan is stale: the configuration in config changed since the plan was made" in res.stderr
    assert users(scim)["alice@acme.io"]["name"]["givenName"] == "Alice"


def test_config_override_and_missing_config(scim: ScimServer, applied: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    elsewhere = tmp_path / "job"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # an apply job that runs in another directory
    res = run("apply", "../plan.json")
    assert res.exit_code == 1
    assert "the config config recorded in ../plan.json does not exist here" in res.stderr
    assert "--config DIR" in res.stderr
    res = run("apply", "../plan.json", "--config", "../config")
    assert res.exit_code == 0, res.output + res.stderr
    assert users(scim)["alice@acme.io"]["name"]["givenName"] == "Alicia"


def test_saved_plan_holds_no_secret(scim: ScimServer, applied: Path) -> None:
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    text = Path("plan.json").read_text()
    assert scim.token not in text
    assert "Bearer" not in text


def test_saved_plan_validates_and_show_renders_it(scim: ScimServer, applied: Path) -> None:
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    schema = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(
        json.loads(Path("plan.json").read_text()))
    text = run("show", "plan.json")
    assert text.exit_code == 0 and "~ name.givenName: \"Alice\" -> \"Alicia\"" in text.output
    assert "Plan: 0 to create, 2 to update, 0 to deactivate, 0 to delete." in text.output
    md = run("show", "plan.json", "--format", "markdown")
    assert md.output.startswith("## reconciler plan") and "| ~ update | 2 | 2 |" in md.output
    js = run("show", "plan.json", "--format", "json")
    assert json.loads(js.output)["summary"]["update"] == 2


def test_many_touched_objects_are_checked_with_paged_lists(scim: ScimServer, write_config: Callable[..., Path],
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    emails = [f"user{i:02d}@acme.io" for i in range(12)]
    cfg = write_config(scim.base_url, members=emails, page_size=5)
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    (cfg / "members.yaml").write_text(dump_yaml({"members": [{"email": e, "title": "Eng"} for e in emails]}))
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    saved = load_saved_plan(Path("plan.json"))
    assert live_size(saved.live["platform"]) == LiveSize(users=12, groups=0, page_size=5)
    # 12 GETs, or 3 pages of users + 1 of groups: the lists are cheaper
    assert choose_strategy(12, live_size(saved.live["platform"])) == "list"
    with scim.client() as c:
        u = users(scim)["user07@acme.io"]
        c.put(f"Users/{u['id']}", json={**{k: v for k, v in u.items() if k != "meta"}, "nickName": "seven"})
    res = run("apply", "plan.json", "--audit-log", "audit.jsonl")
    assert res.exit_code == 1
    assert 'plan is stale: scim.platform.user["user07@acme.io"] changed since the plan was made' in res.stderr
    calls = [json.loads(x) for x in Path("audit.jsonl").read_text().splitlines() if '"call"' in x]
    reads = [c for c in calls if c["method"] == "GET" and c["path"].endswith(("/Users", "/Groups"))]
    assert len(reads) == 4 and not [c for c in calls if "/Users/" in c["path"]]


def test_choose_strategy_counts_calls() -> None:
    assert choose_strategy(3, None) == "get"
    assert choose_strategy(3, LiveSize(users=10_000, groups=50, page_size=100)) == "get"  # 3 GETs vs 101 pages
    assert choose_strategy(500, LiveSize(users=10_000, groups=50, page_size=100)) == "list"
    assert choose_strategy(2, LiveSize(users=0, groups=0, page_size=100)) == "get"  # 2 GETs vs 2 empty lists
    # a big page is one call but still reads every object: 5 GETs beat listing 10,000 users
    assert choose_strategy(5, LiveSize(users=10_000, groups=0, page_size=10_000)) == "get"
    assert choose_strategy(150, LiveSize(users=10_000, groups=0, page_size=10_000)) == "list"


def test_an_empty_saved_plan_applies_nothing(scim: ScimServer, write_config: Callable[..., Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = write_config(scim.base_url, members=MEMBERS)
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    assert run("plan", "config", "--out", "plan.json", "--detailed-exitcode").exit_code == 0
    res = run("apply", "plan.json", "--audit-log", "audit.jsonl")
    assert res.exit_code == 0 and "No changes." in res.output
    assert not Path("audit.jsonl").exists()


def test_what_is_not_a_saved_plan(scim: ScimServer, applied: Path) -> None:
    Path("notes.json").write_text('{"hello": 1}')
    res = run("show", "notes.json")
    assert res.exit_code == 1 and "notes.json: not a saved plan (no 'changes' list)" in res.stderr
    Path("future.json").write_text('{"format_version": "3.0", "changes": []}')
    res = run("apply", "future.json")
    assert res.exit_code == 1
    assert "future.json: plan format 3.0 is not readable by this reconciler (reads 2.x)" in res.stderr
    Path("older.json").write_text('{"format_version": "1.0", "changes": []}')
    res = run("apply", "older.json")
    assert res.exit_code == 1
    assert "older.json: plan format 1.0 was made by an older reconciler; run plan again" in res.stderr
    res = run("apply", "config", "--config", "config")
    assert res.exit_code == 1 and "--config is for applying a saved plan" in res.stderr
    assert run("plan", "config", "--out", "plan.json").exit_code == 0
    res = run("apply", "plan.json", "--target", 'scim.platform.user["bob@acme.io"]')
    assert res.exit_code == 1 and "a saved plan is applied whole" in res.stderr
