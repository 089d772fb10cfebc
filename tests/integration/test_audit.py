"""The audit log of apply (real scim2-server; respx only to make a server echo the token) and its queries."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from reconciler.audit import parse_since
from reconciler.cli import main
from reconciler.errors import ReconcilerError
from tests.conftest import dump_yaml
from tests.servers import ScimServer

CALL_FIELDS = {"time", "actor", "commit", "plan_digest", "event", "provider", "address", "action", "method", "path",
               "status", "duration_ms", "attempt", "outcome", "carries"}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_call_is_logged_with_who_what_and_which_commit(scim: ScimServer, write_config: Callable[..., Path],
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    log = tmp_path / "logs" / "audit.jsonl"
    monkeypatch.setenv("RECONCILER_AUDIT_LOG", str(log))
    cfg = write_config(scim.base_url, members=["alice@acme.io", "bob@acme.io"],
                       teams=[{"name": "appsec", "members": ["bob@acme.io"]}])
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0
    (cfg / "members.yaml").write_text(dump_yaml({"members": [{"email": "alice@acme.io", "title": "Lead"},
                                                             {"email": "bob@acme.io"}]}))
    (cfg / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "appsec",
                                                         "members": ["alice@acme.io", "bob@acme.io"]}]}))
    assert run("apply", str(cfg), "--auto-approve").exit_code == 0

    events = lines(log)
    calls = [e for e in events if e["event"] == "call"]
    assert calls and all(set(e) == CALL_FIELDS for e in calls)
    assert {e["actor"] for e in events} == {"octocat"}
    assert {e["commit"] for e in events} == {"0123456789abcdef0123456789abcdef01234567"}
    assert all(len(e["plan_digest"]) == 64 for e in events)
    patch = [e for e in calls if e["method"] == "PATCH" and e["address"] == 'scim.platform.user["alice@acme.io"]']
    assert len(patch) == 1 and patch[0]["status"] == 204 and patch[0]["action"] == "update"
    assert patch[0]["path"].startswith("/v2/Users/") and patch[0]["outcome"] == "ok"
    assert isinstance(patch[0]["duration_ms"], float)
    assert [e["event"] for e in events if e["event"].startswith("apply")] == ["apply-start", "apply-end"] * 2

    res = run("audit", "--member", "alice@acme.io")
    assert res.exit_code == 0
    out = res.output.splitlines()
    assert len(out) == 3, res.output  # created, promoted, joined appsec
    assert all("octocat  0123456789ab" in line for line in out)
    assert 'create  scim.platform.user["alice@acme.io"]  ok' in out[0]
    assert any('update  scim.platform.user["alice@acme.io"]  ok  (title)' in line for line in out)
    assert any('update  scim.platform.group["appsec"]  ok  (members: +alice@acme.io)' in line for line in out)
    bob = run("audit", "--member", "BOB@acme.io", "--json").output.splitlines()
    assert [json.loads(x)["action"] for x in bob] == ["create", "create"]  # bob, and appsec created with him
    assert run("audit", "--address", 'scim.platform.group["appsec"]', "--calls").output.count(" POST ") == 1
    future = run("audit", "--member", "alice@acme.io", "--since", "2999-01-01")
    assert future.stdout == "" and "No matching changes" in future.stderr


def test_no_token_in_the_log_even_when_the_server_echoes_it(write_config: Callable[..., Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    token = "audit-secret-0c7e1f9b"
    monkeypatch.setenv("SCIM_TOKEN", token)
    base = "http://127.0.0.1:9/v2"
    cfg = write_config(base, members=[{"email": "alice@acme.io", "title": "Lead"}, "bob@acme.io"])
    alice = {"id": "u1", "userName": "alice@acme.io", "externalId": "reconciler:alice@acme.io", "active": True,
             "title": "Eng", "emails": [{"value": "alice@acme.io", "primary": True}]}

    def echo(request: httpx.Request, status: int) -> httpx.Response:
        return httpx.Response(status, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                            "status": str(status),
                                            "detail": f"refused {request.headers['Authorization']} ({token})"})

    log = tmp_path / "audit.jsonl"
    with respx.mock(base_url=base, assert_all_called=True) as router:
        router.get("/ServiceProviderConfig").mock(return_value=httpx.Response(404))
        router.get("/Schemas").mock(return_value=httpx.Response(404))
        router.get("/Users").mock(return_value=httpx.Response(200, json={"totalResults": 1, "Resources": [alice]}))
        router.get("/Groups").mock(return_value=httpx.Response(200, json={"totalResults": 0, "Resources": []}))
        router.get("/Users/u1").mock(return_value=httpx.Response(200, json=alice))  # re-read before writing
        router.patch("/Users/u1").mock(side_effect=lambda r: echo(r, 400))
        router.post("/Users").mock(side_effect=lambda r: echo(r, 403))
        res = run("apply", str(cfg), "--auto-approve", "--audit-log", str(log))
    assert res.exit_code == 1
    assert "2 change(s) failed" in res.stderr
    text = log.read_text()
    assert "refused Bearer ***" in text  # the error is there, the token is not
    assert token not in text and token not in res.output + res.stderr
    outcomes = [e["outcome"] for e in lines(log) if e["event"] == "change"]
    assert len(outcomes) == 2 and all(o.startswith("error: ") for o in outcomes)


def test_since_accepts_durations_and_dates() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2024, 5, 10, 10, 30, tzinfo=UTC)
    assert parse_since("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ReconcilerError, match="write a duration"):
        parse_since("last tuesday")


def test_audit_without_a_log_is_a_clear_error(tmp_path: Path) -> None:
    res = run("audit", "--log", str(tmp_path / "none.jsonl"))
    assert res.exit_code == 1 and "error: no audit log at" in res.stderr
