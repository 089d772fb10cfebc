"""The Jira sandbox served on 127.0.0.1 (a real socket), as `reconciler sandbox jira` and
`python -m reconciler.sandbox.jira` serve it, with reconciler pointed at it like at any Jira."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.session import Session


def serve(args: list[str]) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    info: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first lines describe the sandbox, then it serves
            if "=" in line:
                k, v = line.strip().split("=", 1)
                info[k] = v
            if line.startswith("("):
                break
        assert info, "the sandbox printed no URL"
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def served_cloud() -> Iterator[dict[str, str]]:
    yield from serve([sys.executable, "-m", "reconciler.sandbox.jira", "--flavour", "cloud", "--port", "0"])


@pytest.fixture
def served_dc() -> Iterator[dict[str, str]]:
    exe = Path(sys.executable).parent / "reconciler"
    yield from serve([str(exe), "sandbox", "jira", "--flavour", "datacenter", "--port", "0"])


def write(folder: Path, connection: dict[str, str], ident: str) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text(json.dumps({
        "connections": [connection],
        "members": [{"email": "alice@acme.io"}],
        "teams": [{"name": "appsec", "members": ["alice@acme.io"]}],
        "user_maps": [{"member": "alice@acme.io", "identities": {connection["name"]: ident}}],
        "integrations": [{"name": "web", "program": "acme-web", "connection": connection["name"], "project": "SEC",
                          "issue_type": "Bug", "priorities": {"high": "High"}, "team_roles": {"appsec": "Developers"},
                          "webhook": {"url": "https://platform.acme.io/hooks/jira"}}],
    }))
    return folder


def round_trip(folder: Path) -> None:
    config = load_config(folder)
    with Session(config) as s:
        plan = s.plan()
        assert len(plan.changes) == 4
        assert not apply_plan(s, plan).failures
    with Session(config) as s:
        assert not s.plan().has_changes


def test_cloud_sandbox_on_loopback(served_cloud: dict[str, str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = served_cloud["JIRA_SITE_URL"]
    assert url.startswith("http://127.0.0.1:")
    monkeypatch.setenv("JIRA_API_TOKEN", served_cloud["JIRA_API_TOKEN"])
    folder = write(tmp_path / "c", {"name": "sandbox", "type": "jira-cloud", "site_url": url,
                                     "email": served_cloud["JIRA_EMAIL"], "api_token": "${env:JIRA_API_TOKEN}"},
                   "5b10ac8d82e05b22cc7d4e00")
    round_trip(folder)
    # any Jira client sees the result
    r = httpx.get(f"{url}/rest/api/3/project/SEC/properties/reconciler.integration.web",
                  auth=(served_cloud["JIRA_EMAIL"], served_cloud["JIRA_API_TOKEN"]))
    assert r.status_code == 200 and r.json()["value"]["priorities"]["high"]["name"] == "High"


def test_datacenter_sandbox_from_the_cli(served_dc: dict[str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = served_dc["JIRA_BASE_URL"]
    monkeypatch.setenv("JIRA_TOKEN", served_dc["JIRA_TOKEN"])
    folder = write(tmp_path / "c", {"name": "dc", "type": "jira-datacenter", "base_url": url,
                                     "token": "${env:JIRA_TOKEN}"}, "alice")
    round_trip(folder)
    r = httpx.get(f"{url}/rest/webhooks/1.0/webhook", headers={"Authorization": f"Bearer {served_dc['JIRA_TOKEN']}"})
    assert [w["name"] for w in r.json()] == ["reconciler web"]


# --- a team moved to another project role (issue 11, case 10), over a socket, every call contract-checked ---

@pytest.fixture(params=["cloud", "datacenter"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    for info in serve([sys.executable, "-m", "reconciler.sandbox.jira", "--flavour", request.param, "--port", "0"]):
        yield request.param, info


def test_a_team_moved_to_another_role_is_revoked_from_the_old_one(served: tuple[str, dict[str, str]],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.contract.jira_spec import ContractTransport
    flavour, info = served
    if flavour == "cloud":
        url, ident, api = info["JIRA_SITE_URL"], "5b10ac8d82e05b22cc7d4e00", "rest/api/3"
        monkeypatch.setenv("JIRA_API_TOKEN", info["JIRA_API_TOKEN"])
        conn = {"name": "sandbox", "type": "jira-cloud", "site_url": url, "email": info["JIRA_EMAIL"],
                "api_token": "${env:JIRA_API_TOKEN}"}
        auth: dict[str, Any] = {"auth": (info["JIRA_EMAIL"], info["JIRA_API_TOKEN"])}
    else:
        url, ident, api = info["JIRA_BASE_URL"], "alice", "rest/api/2"
        monkeypatch.setenv("JIRA_TOKEN", info["JIRA_TOKEN"])
        conn = {"name": "sandbox", "type": "jira-datacenter", "base_url": url, "token": "${env:JIRA_TOKEN}"}
        auth = {"headers": {"Authorization": f"Bearer {info['JIRA_TOKEN']}"}}
    checked = ContractTransport(httpx.HTTPTransport(), flavour)

    def holders(role: str) -> list[str]:
        roles = httpx.get(f"{url}/{api}/project/SEC/role", **auth).json()
        actors = httpx.get(roles[role], **auth).json()["actors"]
        return sorted(str((a.get("actorUser") or {}).get("accountId") if flavour == "cloud" else a["name"])
                      for a in actors if a.get("type") == "atlassian-user-role-actor")

    def converge(team_roles: dict[str, str] | None) -> Any:
        integ = [{"name": "web", "program": "acme-web", "connection": "sandbox", "project": "SEC",
                  "issue_type": "Bug", "team_roles": team_roles}] if team_roles is not None else []
        folder = tmp_path / "c"
        folder.mkdir(exist_ok=True)
        (folder / "config.yaml").write_text(json.dumps({
            "connections": [{**conn, "scan_projects": ["SEC"]}],
            "members": [{"email": "alice@acme.io"}],
            "teams": [{"name": "appsec", "members": ["alice@acme.io"]}],
            "user_maps": [{"member": "alice@acme.io", "identities": {"sandbox": ident}}],
            "integrations": integ}))
        with Session(load_config(folder), transports={"sandbox": checked}) as s:
            plan = s.plan()
            assert not apply_plan(s, plan).failures
        with Session(load_config(folder), transports={"sandbox": checked}) as s:
            assert not s.plan().has_changes
        return plan

    converge({"appsec": "Developers"})
    assert holders("Developers") == [ident]
    moved = converge({"appsec": "Administrators"})
    assert 'jira.sandbox.project_role["SEC/Developers"]' in {c.address for c in moved.changes}
    assert holders("Developers") == [] and holders("Administrators") == [ident]
    converge(None)  # every integration removed: nobody keeps a role reconciler granted
    assert holders("Developers") == [] and holders("Administrators") == []
    assert not checked.violations
