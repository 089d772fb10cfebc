"""The Redmine provider end to end against a REAL Redmine on 127.0.0.1.

The Redmine comes from REDMINE_URL / REDMINE_API_KEY when exported (scripts/test.sh and CI run
scripts/redmine-up.sh first); otherwise the session fixture runs scripts/redmine-up.sh itself, which
needs root. If Redmine cannot be started every test here fails with the reason: none is skipped.
Each test starts from an empty Redmine (no projects, groups or users but the admin).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner

from reconciler.apply import apply_plan
from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.errors import AuthError, ConnectError, PlanError, UnsafePlanError
from reconciler.plan.model import Action, Plan
from reconciler.session import Session
from tests.conftest import dump_yaml
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Redmine:
    url: str
    key: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url.rstrip("/") + "/", timeout=60,
                            headers={"X-Redmine-API-Key": self.key, "Accept": "application/json"})


def _start() -> Redmine:
    url, key = os.environ.get("REDMINE_URL"), os.environ.get("REDMINE_API_KEY")
    if not url or not key:
        if os.geteuid() != 0:
            pytest.fail("the Redmine tests need a Redmine: export REDMINE_URL and REDMINE_API_KEY "
                        "(eval \"$(sudo bash scripts/redmine-up.sh)\"), or run the tests as root so that the "
                        "fixture can run scripts/redmine-up.sh itself")
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "redmine-up.sh")], capture_output=True, text=True,
                              timeout=1800, check=False)
        if proc.returncode != 0:
            pytest.fail(f"scripts/redmine-up.sh failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        url, key = env.get("REDMINE_URL"), env.get("REDMINE_API_KEY")
        if not url or not key:
            pytest.fail(f"scripts/redmine-up.sh printed no REDMINE_URL / REDMINE_API_KEY:\n{proc.stdout[-2000:]}")
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        pytest.fail(f"REDMINE_URL={url}: these tests empty the Redmine they run against, so only a Redmine on "
                    "loopback is accepted")
    server = Redmine(url, key)
    with server.api() as c:
        try:
            r = c.get("users/current.json")
        except httpx.HTTPError as exc:
            pytest.fail(f"Redmine at {url} does not answer: {exc}")
        if r.status_code != 200 or not r.json()["user"].get("admin"):
            pytest.fail(f"Redmine at {url} refused the admin API key (HTTP {r.status_code})")
    return server


@pytest.fixture(scope="session")
def redmine_server() -> Redmine:
    return _start()


@pytest.fixture(scope="module")
def redmine_lock(redmine_server: Redmine) -> Iterator[None]:
    """One test run at a time per Redmine: these tests empty it, and parallel runs share it."""
    state = Path(os.environ.get("PEERS_HOME") or Path(tempfile.gettempdir()) / "reconciler-peers") / "redmine"
    state.mkdir(parents=True, exist_ok=True)
    port = urlsplit(redmine_server.url).port or 80
    with open(state / f"tests-{port}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ids(c: httpx.Client, kind: str, *names: str) -> list[int]:
    """Ids of trackers or roles by name (ids differ between installations)."""
    items = {x["name"]: x["id"] for x in c.get(f"{kind}.json").json()[kind]}
    return [int(items[n]) for n in names]


def _reset(server: Redmine) -> None:
    with server.api() as c:
        me = c.get("users/current.json").json()["user"]["id"]
        for p in c.get("projects.json", params={"limit": "100"}).json()["projects"]:
            if p.get("parent") is None:  # children go with their parent
                assert c.delete(f"projects/{p['id']}.json").status_code in (204, 404)
        for g in c.get("groups.json").json()["groups"]:
            assert c.delete(f"groups/{g['id']}.json").status_code in (204, 404)
        while True:
            users = [u for u in c.get("users.json", params={"status": "", "limit": "100"}).json()["users"]
                     if u["id"] != me]
            if not users:
                break
            for u in users:
                assert c.delete(f"users/{u['id']}.json").status_code in (204, 404)
        r = c.post("projects.json", json={"project": {"name": "Security findings", "identifier": "sec",
                                                      "tracker_ids": ids(c, "trackers", "Feature", "Support")}})
        assert r.status_code == 201, r.text


@pytest.fixture
def redmine(redmine_server: Redmine, redmine_lock: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redmine]:
    """The shared real Redmine, emptied but for project 'sec' (trackers Feature and Support, not Bug)."""
    _reset(redmine_server)
    monkeypatch.setenv("REDMINE_API_KEY", redmine_server.key)
    yield redmine_server


MEMBERS = [{"email": "alice@acme.io", "given_name": "Alice", "family_name": "Archer"},
           {"email": "bob@acme.io", "given_name": "Bob", "family_name": "Baker"},
           {"email": "carol@acme.io", "given_name": "Carol", "family_name": "Cole"},
           {"email": "dan@acme.io"}]
USER_MAPS = [{"member": "alice@acme.io", "identities": {"tracker": "alice"}},
             {"member": "bob@acme.io", "identities": {"tracker": "bob.baker"}},
             {"member": "carol@acme.io", "identities": {"tracker": "carol"}}]
INTEGRATION = {"name": "sec-findings", "program": "acme-bounty", "connection": "tracker", "project": "sec",
               "issue_type": "Bug", "priorities": {"high": "High", "critical": "Urgent"},
               "statuses": {"triage": "New", "accepted": "In Progress", "closed": "Closed"},
               "team_roles": {"appsec": "Developer", "leads": "Manager"}, "role_membership": "authoritative"}


def write(tmp_path: Path, url: str, *, members: list[dict[str, Any]] | None = None,
          teams: list[dict[str, Any]] | None = None, user_maps: list[dict[str, Any]] | None = None,
          integrations: list[dict[str, Any]] | None = None, **conn: Any) -> Path:
    d = tmp_path / "config"
    d.mkdir(exist_ok=True)
    connection = {"name": "tracker", "type": "redmine", "base_url": url, "api_key": "${env:REDMINE_API_KEY}",
                  **conn}
    (d / "connections.yaml").write_text(dump_yaml({"connections": [connection]}))
    (d / "members.yaml").write_text(dump_yaml({"members": MEMBERS if members is None else members}))
    default_teams = [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io", "dan@acme.io"]},
                     {"name": "leads", "members": ["carol@acme.io"]}]
    (d / "teams.yaml").write_text(dump_yaml({"teams": default_teams if teams is None else teams}))
    (d / "user-maps.yaml").write_text(dump_yaml({"user_maps": USER_MAPS if user_maps is None else user_maps}))
    ints = [INTEGRATION] if integrations is None else integrations
    (d / "integrations.yaml").write_text(dump_yaml({"integrations": ints}) if ints else "# none\n")
    return d


def plan(cfg: Path, **kw: Any) -> Plan:
    with Session(load_config(cfg)) as s:
        return s.plan(**kw)


def converge(cfg: Path, **kw: Any) -> Plan:
    """plan, apply (no failures allowed); return the plan that was applied."""
    with Session(load_config(cfg)) as s:
        p = s.plan(**kw)
        result = apply_plan(s, p)
    assert result.failures == {}
    return p


def changes(p: Plan) -> list[tuple[str, Action]]:
    return [(c.address, c.action) for c in p.changes]


def group(c: httpx.Client, name: str) -> dict[str, Any]:
    g = next(g for g in c.get("groups.json").json()["groups"] if g["name"] == name)
    return dict(c.get(f"groups/{g['id']}.json", params={"include": "users"}).json()["group"])


def logins(c: httpx.Client, g: dict[str, Any]) -> list[str]:
    out = []
    for u in g.get("users", []):
        out.append(c.get(f"users/{u['id']}.json").json()["user"]["login"])
    return sorted(out)


def memberships(c: httpx.Client, project: str = "sec") -> dict[str, list[str]]:
    out = {}
    for m in c.get(f"projects/{project}/memberships.json").json()["memberships"]:
        who = m["group"]["name"] if "group" in m else "user:" + m["user"]["name"]
        out[who] = sorted(r["name"] for r in m["roles"] if not r.get("inherited"))
    return {k: v for k, v in out.items() if v}


# --- convergence ------------------------------------------------------------------------

def test_plan_apply_plan_converges(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url)
    first = plan(cfg)
    assert changes(first) == [
        ('redmine.tracker.group["appsec"]', Action.CREATE),
        ('redmine.tracker.group["leads"]', Action.CREATE),
        ('redmine.tracker.user["alice"]', Action.CREATE),
        ('redmine.tracker.user["bob.baker"]', Action.CREATE),
        ('redmine.tracker.user["carol"]', Action.CREATE),
        ('redmine.tracker.integration["sec-findings"]', Action.CREATE),
        ('redmine.tracker.membership["sec/appsec"]', Action.CREATE),
        ('redmine.tracker.membership["sec/leads"]', Action.CREATE),
    ]
    by = {c.address: c for c in first.changes}
    assert by['redmine.tracker.group["appsec"]'].after == {"name": "appsec", "users": ["alice", "bob.baker"]}
    # dan has no Redmine login: left out, and the plan says so
    assert any("dan@acme.io" in n and 'group["appsec"]' in n for n in first.notes), first.notes

    converge(cfg)
    again = plan(cfg)
    assert again.changes == [], changes(again)

    with redmine.api() as c:
        assert logins(c, group(c, "appsec")) == ["alice", "bob.baker"]
        assert logins(c, group(c, "leads")) == ["carol"]
        alice = c.get("users.json", params={"name": "alice"}).json()["users"][0]
        assert (alice["firstname"], alice["lastname"], alice["mail"]) == ("Alice", "Archer", "alice@acme.io")
        assert memberships(c) == {"appsec": ["Developer"], "leads": ["Manager"]}
        project = c.get("projects/sec.json", params={"include": "trackers"}).json()["project"]
        assert "Bug" in [t["name"] for t in project["trackers"]]
        issues = c.get("issues.json", params={"project_id": "sec", "status_id": "*"}).json()["issues"]
        assert [(i["subject"], i["tracker"]["name"]) for i in issues] == [
            ("reconciler activation test: sec-findings", "Bug")]
        page = c.get("projects/sec/wiki/Reconciler-integration-sec-findings.json").json()["wiki_page"]
        assert '"critical": "Urgent"' in page["text"] and f'"test_issue": {issues[0]["id"]}' in page["text"]


def test_drift_made_in_redmine_is_planned_back(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url)
    converge(cfg)
    with redmine.api() as c:
        appsec = group(c, "appsec")
        bob = next(u for u in appsec["users"] if u["name"] == "Bob Baker")
        assert c.delete(f"groups/{appsec['id']}/users/{bob['id']}.json").status_code == 204
        r = c.post("users.json", json={"user": {"login": "mallory", "firstname": "Mal", "lastname": "Lory",
                                                "mail": "mallory@evil.test", "generate_password": True}})
        assert r.status_code == 201, r.text
        mallory = r.json()["user"]["id"]
        assert c.post(f"groups/{appsec['id']}/users.json", json={"user_id": mallory}).status_code == 204
        m = next(m for m in c.get("projects/sec/memberships.json").json()["memberships"]
                 if m.get("group", {}).get("name") == "leads")
        reporter = {"membership": {"role_ids": ids(c, "roles", "Reporter")}}
        assert c.put(f"memberships/{m['id']}.json", json=reporter).status_code == 204
        # a user granted Developer by hand: authoritative role membership takes it away
        r = c.post("users.json", json={"user": {"login": "trent", "firstname": "Trent", "lastname": "T",
                                                "mail": "trent@acme.io", "generate_password": True}})
        trent = r.json()["user"]["id"]
        r = c.post("projects/sec/memberships.json",
                   json={"membership": {"user_id": trent, "role_ids": ids(c, "roles", "Developer")}})
        assert r.status_code == 201, r.text
        two = {"project": {"tracker_ids": ids(c, "trackers", "Feature", "Support")}}
        assert c.put("projects/sec.json", json=two).status_code == 204
        page = c.get("projects/sec/wiki/Reconciler-integration-sec-findings.json").json()["wiki_page"]
        text = page["text"].replace('"critical": "Urgent"', '"critical": "Low"')
        assert c.put("projects/sec/wiki/Reconciler-integration-sec-findings.json",
                     json={"wiki_page": {"text": text}}).status_code == 204

    drift = plan(cfg)
    by = {c.address: c for c in drift.changes}
    assert changes(drift) == [
        ('redmine.tracker.group["appsec"]', Action.UPDATE),
        ('redmine.tracker.integration["sec-findings"]', Action.UPDATE),
        ('redmine.tracker.membership["sec/leads"]', Action.UPDATE),
        ('redmine.tracker.membership["sec/user:trent"]', Action.DELETE),
    ]
    g = by['redmine.tracker.group["appsec"]']
    assert [(d.path, d.before, d.after) for d in g.diff] == [("users", ["alice", "mallory"], ["alice", "bob.baker"])]
    i = by['redmine.tracker.integration["sec-findings"]']
    assert sorted((d.path, str(d.before), str(d.after)) for d in i.diff) == [
        ("priorities", "{'critical': 'Low', 'high': 'High'}", "{'critical': 'Urgent', 'high': 'High'}"),
        ("tracker_enabled", "False", "True"),
    ]
    assert [(d.path, d.before, d.after) for d in by['redmine.tracker.membership["sec/leads"]'].diff] == [
        ("roles", ["Reporter"], ["Manager"])]

    converge(cfg)
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert logins(c, group(c, "appsec")) == ["alice", "bob.baker"]
        assert memberships(c) == {"appsec": ["Developer"], "leads": ["Manager"]}
        issues = c.get("issues.json", params={"project_id": "sec", "status_id": "*"}).json()["issues"]
        assert len(issues) == 1  # the activation test issue is created once, not on every update


def test_additive_membership_leaves_other_users_and_roles(redmine: Redmine, tmp_path: Path) -> None:
    additive = dict(INTEGRATION, role_membership="additive")
    cfg = write(tmp_path, redmine.url, membership="additive", integrations=[additive])
    converge(cfg)
    with redmine.api() as c:
        appsec = group(c, "appsec")
        r = c.post("users.json", json={"user": {"login": "erin", "firstname": "Erin", "lastname": "E",
                                                "mail": "erin@acme.io", "generate_password": True}})
        erin = r.json()["user"]["id"]
        assert c.post(f"groups/{appsec['id']}/users.json", json={"user_id": erin}).status_code == 204
        r = c.post("users.json", json={"user": {"login": "frank", "firstname": "Frank", "lastname": "F",
                                                "mail": "frank@acme.io", "generate_password": True}})
        frank = r.json()["user"]["id"]
        developer = {"membership": {"user_id": frank, "role_ids": ids(c, "roles", "Developer")}}
        assert c.post("projects/sec/memberships.json", json=developer).status_code == 201
        m = next(m for m in c.get("projects/sec/memberships.json").json()["memberships"]
                 if m.get("group", {}).get("name") == "appsec")
        reporter = {"membership": {"role_ids": ids(c, "roles", "Reporter")}}
        assert c.put(f"memberships/{m['id']}.json", json=reporter).status_code == 204
    p = plan(cfg)
    assert changes(p) == [('redmine.tracker.membership["sec/appsec"]', Action.UPDATE)]
    assert [(d.before, d.after) for d in p.changes[0].diff] == [(["Reporter"], ["Developer", "Reporter"])]
    converge(cfg)
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert logins(c, group(c, "appsec")) == ["alice", "bob.baker", "erin"]
        assert memberships(c) == {"appsec": ["Developer", "Reporter"], "leads": ["Manager"],
                                  "user:Frank F": ["Developer"]}


def test_authoritative_groups_removal_threshold_and_protect(redmine: Redmine, tmp_path: Path) -> None:
    with redmine.api() as c:
        for n in range(8):
            assert c.post("groups.json", json={"group": {"name": f"old-{n}"}}).status_code == 201
    cfg = write(tmp_path, redmine.url, authoritative=True, protect=["old-0"], integrations=[],
                teams=[{"name": "appsec", "members": ["alice@acme.io"]}])
    with pytest.raises(UnsafePlanError) as exc:
        plan(cfg)
    assert "would remove (deactivate or delete) 7 of 8 managed objects (87.5%)" in str(exc.value)
    assert "pass --allow-removals=7 to proceed" in str(exc.value)
    p = converge(cfg, allow_removals=7)
    assert sorted(c.key for c in p.changes if c.action is Action.DELETE) == [f"old-{n}" for n in range(1, 8)]
    assert p.protected == ['redmine.tracker.group["old-0"]']
    with redmine.api() as c:
        assert sorted(g["name"] for g in c.get("groups.json").json()["groups"]) == ["appsec", "old-0"]
    assert plan(cfg).changes == []


def test_delete_test_issue_and_a_login_taken_since_the_plan(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url, integrations=[dict(INTEGRATION, delete_test_issue=True)])
    with Session(load_config(cfg)) as s:
        p = s.plan()
        # between plan and apply someone creates carol by hand: apply adopts her instead of failing on 422
        with redmine.api() as c:
            r = c.post("users.json", json={"user": {"login": "carol", "firstname": "Carol", "lastname": "Cole",
                                                    "mail": "carol@acme.io", "generate_password": True}})
            assert r.status_code == 201
        result = apply_plan(s, p)
    assert result.failures == {}
    assert plan(cfg).changes == []
    with redmine.api() as c:
        assert [u["login"] for u in c.get("users.json", params={"name": "carol"}).json()["users"]] == ["carol"]
        assert logins(c, group(c, "leads")) == ["carol"]
        assert c.get("issues.json", params={"project_id": "sec", "status_id": "*"}).json()["issues"] == []
        page = c.get("projects/sec/wiki/Reconciler-integration-sec-findings.json").json()["wiki_page"]
        assert '"deleted": true' in page["text"]


# --- errors ------------------------------------------------------------------------------

def test_wrong_names_fail_the_plan_with_the_valid_values(redmine: Redmine, tmp_path: Path) -> None:
    wrong = dict(INTEGRATION, issue_type="Bugz", priorities={"high": "Hot"}, statuses={"triage": "Triaged"},
                 team_roles={"appsec": "Dev"})
    other = dict(INTEGRATION, name="web", project="web-app", team_roles={})
    cfg = write(tmp_path, redmine.url, integrations=[wrong, other])
    with pytest.raises(PlanError) as exc:
        plan(cfg)
    text = str(exc.value)
    assert text.startswith("cannot plan Redmine connection 'tracker':")
    assert "issue_type 'Bugz' is not a Redmine tracker; valid trackers: Bug, Feature, Support" in text
    assert "priorities.high 'Hot' is not an active Redmine priority; valid priorities: High, Immediate, Low, " \
           "Normal, Urgent" in text
    assert "statuses.triage 'Triaged' is not a Redmine issue status; valid statuses: Closed, Feedback, " \
           "In Progress, New, Rejected, Resolved" in text
    assert "team_roles.appsec 'Dev' is not a Redmine role; valid roles: Developer, Manager, Reporter" in text
    assert "project 'web-app' does not exist on Redmine 'tracker' (or the API key cannot see it); valid " \
           "projects: sec" in text
    # each problem starts with where its value is: file:line:col of the wrong issue type, then the integration
    lines = (cfg / "integrations.yaml").read_text().splitlines()
    row = next(n for n, line in enumerate(lines, 1) if "issue_type: Bugz" in line)
    col = lines[row - 1].index("Bugz") + 1
    assert f"integrations.yaml:{row}:{col}: integration 'sec-findings': issue_type 'Bugz'" in text
    # the CLI: the same message, exit 1, no traceback
    result = CliRunner().invoke(main, ["plan", str(cfg)])
    assert result.exit_code == 1
    assert "valid trackers: Bug, Feature, Support" in result.output and "Traceback" not in result.output


def test_unmapped_members_error_when_asked(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url, unmapped_members="error", integrations=[])
    with pytest.raises(PlanError) as exc:
        plan(cfg)
    assert "1 member(s) have no 'tracker' login in user_maps and are left out of the group: dan@acme.io" \
           in str(exc.value)


def test_unreachable_server_gives_a_clear_error(redmine: Redmine, tmp_path: Path,
                                                backoff_sleeps: list[float]) -> None:
    cfg = write(tmp_path, f"http://127.0.0.1:{free_port()}", integrations=[])
    with Session(load_config(cfg), attempts=2, sleep=lambda s: None) as s, pytest.raises(ConnectError) as exc:
        s.plan()
    assert str(exc.value).startswith("redmine connection 'tracker': cannot reach http://127.0.0.1:")
    assert "connection refused" in str(exc.value)
    result = CliRunner().invoke(main, ["plan", str(cfg)])
    assert result.exit_code == 1
    assert "cannot reach" in result.output and "Traceback" not in result.output
    assert len(backoff_sleeps) == 4  # the CLI's five attempts waited on the injected clock


def test_bad_api_key_gives_a_clear_error(redmine: Redmine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, redmine.url, integrations=[])
    monkeypatch.setenv("REDMINE_API_KEY", "0" * 40)
    with pytest.raises(AuthError) as exc:
        plan(cfg)
    assert str(exc.value).startswith("redmine connection 'tracker': the API key was refused; check api_key")
    assert "HTTP 401" in str(exc.value)
    result = CliRunner().invoke(main, ["plan", str(cfg)])
    assert result.exit_code == 1 and "the API key was refused" in result.output
    assert "0" * 40 not in result.output


def test_cli_plan_apply_and_check(redmine: Redmine, tmp_path: Path) -> None:
    cfg = write(tmp_path, redmine.url)
    runner = CliRunner()
    r = runner.invoke(main, ["plan", str(cfg), "--detailed-exitcode"])
    assert r.exit_code == 2, r.output
    assert '+ redmine.tracker.membership["sec/appsec"]' in r.output
    r = runner.invoke(main, ["apply", str(cfg), "--auto-approve", "--audit-log", str(tmp_path / "audit.jsonl")])
    assert r.exit_code == 0, r.output
    assert redmine.key not in r.output and redmine.key not in (tmp_path / "audit.jsonl").read_text()
    r = runner.invoke(main, ["plan", str(cfg), "--detailed-exitcode"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["check", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "redmine.tracker" in r.output

