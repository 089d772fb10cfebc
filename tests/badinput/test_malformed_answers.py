"""The malformed answers issue 14 names, each through `reconciler plan` against an imposter on 127.0.0.1: one
line saying what was wrong, which URL and which field; never a traceback or "internal error"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.badinput.test_imposter import imposter

SPC = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"], "patch": {"supported": True},
       "bulk": {"supported": False}, "filter": {"supported": True, "maxResults": 100},
       "changePassword": {"supported": False}, "sort": {"supported": False}, "etag": {"supported": False},
       "authenticationSchemes": []}
USER = {"id": "u1", "userName": "alice@acme.io", "active": True, "name": {"givenName": "Alice"}}


def answers(**override: Any) -> Any:
    def call(method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        p = path.split("?")[0]
        for key, value in override.items():
            if p.endswith("/" + key):
                return int(value[0]), value[1]
        if p.endswith("/ServiceProviderConfig"):
            return 200, SPC
        if p.endswith("/oauth/token"):
            return 200, {"access_token": "issued-token-XYZ12345", "expires_in": 3600}
        if p.endswith("/Users"):
            return 200, {"totalResults": 1, "Resources": [USER]}
        return 200, {"totalResults": 0, "Resources": []}
    return call


def plan(tmp_path: Path, url: str, auth: dict[str, Any] | None = None) -> str:
    d = tmp_path / "c"
    d.mkdir(exist_ok=True)
    a = auth or {"type": "bearer", "token": "${env:TOK}"}
    import json
    (d / "c.yaml").write_text(json.dumps({"providers": [{"name": "p", "type": "scim", "base_url": url + "/v2",
                                                         "auth": a}],
                                          "members": [{"email": "alice@acme.io"}]}))
    r = CliRunner().invoke(main, ["plan", str(d)])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "internal error" not in r.output, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOK", "imposter-token-123456")
    monkeypatch.setenv("RECONCILER_RETRY_BUDGET", "0")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("override", "expected"), [
    ({"Users": (200, {"totalResults": "lots", "Resources": [USER]})}, "totalResults is 'lots', not a count"),
    ({"Users": (200, {"totalResults": 1, "Resources": {"id": "u1"}})}, "Users list is not a SCIM ListResponse"),
    ({"Users": (200, {"totalResults": 1, "Resources": [{"userName": "alice@acme.io"}]})}, "field 'id' is missing"),
    ({"ServiceProviderConfig": (200, {**SPC, "schemas": "nope"})},
     "ServiceProviderConfig is not a valid SCIM document"),
    ({"ServiceProviderConfig": (200, [1, 2])}, "ServiceProviderConfig is not a valid SCIM document"),
    ({"Users": (200, "a string")}, "Users list is not a SCIM ListResponse"),
])
def test_a_malformed_scim_answer_is_one_line(tmp_path: Path, override: dict[str, Any], expected: str) -> None:
    with imposter(answers(**override)) as (url, _):
        line = plan(tmp_path, url)
    assert line.startswith("error: ") and expected in line, line
    assert url in line  # which URL


def test_an_oauth_expires_in_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    with imposter(answers(token=(200, {"access_token": "issued-token-XYZ12345", "expires_in": "soon"}))) \
            as (url, _):
        line = plan(tmp_path, url, {"type": "oauth2", "token_url": url + "/oauth/token", "client_id": "c",
                                    "client_secret": "${env:TOK}"})
    assert "the OAuth token endpoint answered with expires_in 'soon', not a number of seconds" in line, line
    assert f"{url}/oauth/token" in line


def test_a_malformed_answer_read_on_a_worker_thread_still_names_a_url(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Jira's reads that do not depend on each other run at once on threads of their own: the line still
    says which server's answers it was reading (the URL last read), as a sequential read's does."""
    import httpx

    from reconciler.sandbox import jira as sandbox
    from tests.badinput.test_imposter import forward

    state = sandbox.new_state("datacenter")
    with httpx.Client(transport=sandbox.transport(state), base_url="http://jira.invalid", trust_env=False) as up:
        real = forward(up)

        def lying(method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
            if path.split("?")[0].endswith("/project/SEC"):
                return 200, ["a list where a project belongs"]
            return real(method, path, headers)

        with imposter(lying) as (url, _):
            d = tmp_path / "j"
            d.mkdir()
            import json
            (d / "c.yaml").write_text(json.dumps({
                "connections": [{"name": "dc", "type": "jira-datacenter", "base_url": url, "timeout": 5,
                                 "token": "${env:JIRA_TOKEN}"}],
                "members": [{"email": "alice@acme.io"}],
                "user_maps": [{"member": "alice@acme.io", "identities": {"dc": "alice"}}],
                "integrations": [{"name": "web", "program": "acme-web", "connection": "dc", "project": "SEC",
                                  "issue_type": "Bug", "priorities": {"high": "High"}}]}))
            monkeypatch.setenv("JIRA_TOKEN", sandbox.DC_TOKEN)
            r = CliRunner().invoke(main, ["plan", str(d)])
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "malformed" in lines[0], r.output
    assert url in lines[0], lines[0]  # which server: the URL last read
