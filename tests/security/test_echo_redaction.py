"""No secret leaves in any form: servers on 127.0.0.1 echo the credentials of every request back (raw,
base64 of the whole header, the URL-encoded OAuth form, JSON-escaped) into 401 and 500 bodies, for every
auth type, and every command's output, the saved plan, the audit log and `reconciler audit` are scanned
for every form of every secret (issue 13, item 2)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.conftest import dump_yaml
from tests.security.echo import echo_server
from tests.servers import ScimServer

# every secret holds + / = so that its URL-encoded form differs from it
SECRETS = {
    "SCIM_BEARER": "bearer+Tok/en=Secret99",
    "SCIM_BASIC": "basic+Tok/en=Secret42",
    "OAUTH_SECRET": "client+Sec/ret=Value77",
    "JIRA_TOKEN": "jira+Cloud/Tok=en31xx",
    "JIRA_PAT": "jira+DC/Pat=Token64xx",
    "REDMINE_KEY": "redmine+Key/Api=0123456789",
}
ACCESS_TOKEN = "access+Tok/en=Issued55"
BASIC_USER, JIRA_EMAIL = "svc-user", "bot@acme.io"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def forms() -> dict[str, str]:
    """Every form of every secret that must never be written, by what it is."""
    out: dict[str, str] = {}
    for name, s in [*SECRETS.items(), ("ACCESS_TOKEN", ACCESS_TOKEN)]:
        out |= {f"{name}": s, f"{name} url-encoded": quote(s, safe=""), f"{name} form-encoded": quote_plus(s),
                f"{name} base64": b64(s), f"{name} JSON": json.dumps(s)[1:-1]}
    for name, user, s in [("basic", BASIC_USER, SECRETS["SCIM_BASIC"]), ("jira cloud", JIRA_EMAIL,
                                                                        SECRETS["JIRA_TOKEN"])]:
        pair = b64(f"{user}:{s}")
        out |= {f"{name} base64(user:token)": pair, f"{name} base64 of the header": b64(f"Basic {pair}")}
    # OAuth client_secret_basic (the default): id and secret form-encoded (RFC 6749 §2.3.1), then base64
    pair = b64(f"reconciler:{quote(SECRETS['OAUTH_SECRET'], safe='')}")
    out |= {"oauth client_secret_basic base64(id:secret)": pair,
            "oauth client_secret_basic base64 of the header": b64(f"Basic {pair}")}
    for name in ("SCIM_BEARER", "JIRA_PAT"):
        out[f"{name} base64 of the header"] = b64(f"Bearer {SECRETS[name]}")
    out["access token base64 of the header"] = b64(f"Bearer {ACCESS_TOKEN}")
    return out


class Transcript:
    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def run(self, *args: str) -> str:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        out = r.output + (r.stderr if r.stderr_bytes is not None else "")
        assert "Traceback" not in out, out
        self.texts.append((" ".join(args), out))
        return out

    def add(self, path: Path) -> None:
        if path.exists():
            self.texts.append((str(path), path.read_text(errors="replace")))

    def leaks(self) -> list[str]:
        return sorted({f"{what} in {where}" for where, text in self.texts for what, f in forms().items()
                       if f in text})


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)


def scim_config(d: Path, base_url: str, auth: dict[str, Any]) -> Path:
    d.mkdir()
    (d / "providers.yaml").write_text(dump_yaml({"providers": [
        {"name": "platform", "type": "scim", "base_url": base_url, "auth": auth, "bulk": "never", "timeout": 5}]}))
    (d / "members.yaml").write_text(dump_yaml({"members": [{"email": "alice@acme.io"}, {"email": "bob@acme.io"}]}))
    (d / "teams.yaml").write_text(dump_yaml({"teams": [{"name": "appsec", "members": ["alice@acme.io"]}]}))
    return d


def scim_auths(url: str) -> dict[str, dict[str, Any]]:
    return {"bearer": {"type": "bearer", "token": "${env:SCIM_BEARER}"},
            "basic": {"type": "basic", "username": BASIC_USER, "token": "${env:SCIM_BASIC}"},
            "oauth2": {"type": "oauth2", "token_url": f"{url}/oauth/token", "client_id": "reconciler",
                       "client_secret": "${env:OAUTH_SECRET}"}}


@pytest.mark.parametrize("auth", ["bearer", "basic", "oauth2"])
@pytest.mark.parametrize("status", [401, 500])
def test_scim_every_command_and_file(scim: ScimServer, secrets_env: None, tmp_path: Path, auth: str,
                                     status: int) -> None:
    t = Transcript()
    audit = tmp_path / "audit.jsonl"
    plan_file = tmp_path / "plan.json"
    upstream = scim.base_url.rsplit("/v2", 1)[0]
    writes = lambda m, p: m != "GET"  # noqa: E731  (reads reach scim2-server; writes are echoed)
    # 1. a server that echoes every request (discovery included): check, plan and apply fail on it
    with echo_server(status=status, token=ACCESS_TOKEN) as e:
        cfg = scim_config(tmp_path / "echo", e.url + "/v2", scim_auths(e.url)[auth])
        t.run("check", str(cfg))
        for fmt in ("text", "markdown", "json"):
            t.run("plan", str(cfg), "--format", fmt, "--no-color")
        t.run("apply", str(cfg), "--auto-approve", "--audit-log", str(audit))
        for cmd in ("check", "plan"):  # -v: every HTTP call on stderr, with its URL
            t.run("-v", cmd, str(cfg))
        assert e.echoed > 0
    # 2. reads reach the real server, writes are echoed: a saved plan is made, and apply fails writing
    with echo_server(upstream=upstream, upstream_auth=f"Bearer {scim.token}", status=status, echo=writes,
                     token=ACCESS_TOKEN) as e:
        cfg = scim_config(tmp_path / "writes", e.url + "/v2", scim_auths(e.url)[auth])
        t.run("plan", str(cfg), "--out", str(plan_file))
        t.run("show", str(plan_file))
        t.run("apply", str(plan_file), "--audit-log", str(audit))
        t.run("apply", str(cfg), "--auto-approve", "--audit-log", str(audit))
        assert e.echoed > 0
    # 3. the OAuth token endpoint itself echoes the client secret (its URL-encoded form body)
    if auth == "oauth2":
        with echo_server(status=status) as e:
            cfg = scim_config(tmp_path / "token", e.url + "/v2", scim_auths(e.url)[auth])
            t.run("check", str(cfg))
            t.run("plan", str(cfg))
    t.add(plan_file)
    t.add(audit)
    for extra in ([], ["--calls"], ["--json"]):
        t.run("audit", "--log", str(audit), *extra)
    joined = "\n".join(x for _, x in t.texts)
    assert "***" in joined and f"HTTP {status}" in joined  # the echo was reported, redacted
    assert '"event": "change"' in audit.read_text()  # the failed writes are in the audit log
    assert t.leaks() == []


JIRA_INTEGRATION = {"name": "web", "program": "acme-web", "project": "SEC", "issue_type": "Bug"}


@pytest.mark.parametrize("kind", ["jira-cloud", "jira-datacenter", "redmine"])
@pytest.mark.parametrize("status", [401, 500])  # reconciler names Redmine's 401 without its body
def test_trackers_every_command(secrets_env: None, tmp_path: Path, kind: str, status: int) -> None:
    t = Transcript()
    audit = tmp_path / "audit.jsonl"
    with echo_server(status=status) as e:
        conn: dict[str, Any] = {"name": "tracker", "type": kind, "timeout": 5}
        if kind == "jira-cloud":
            conn |= {"site_url": e.url, "email": JIRA_EMAIL, "api_token": "${env:JIRA_TOKEN}"}
        elif kind == "jira-datacenter":
            conn |= {"base_url": e.url, "token": "${env:JIRA_PAT}"}
        else:
            conn |= {"base_url": e.url, "api_key": "${env:REDMINE_KEY}"}
        project = "SEC" if kind.startswith("jira") else "sec"
        d = tmp_path / "cfg"
        d.mkdir()
        (d / "config.yaml").write_text(dump_yaml({
            "connections": [conn],
            "integrations": [{**JIRA_INTEGRATION, "connection": "tracker", "project": project}]}))
        t.run("check", str(d))
        for fmt in ("text", "markdown", "json"):
            t.run("plan", str(d), "--format", fmt, "--no-color")
        t.run("apply", str(d), "--auto-approve", "--audit-log", str(audit))
        t.run("--log-level", "debug", "plan", str(d))
        assert e.echoed > 0
    t.add(audit)
    joined = "\n".join(x for _, x in t.texts)
    assert "***" in joined or (kind == "redmine" and status == 401)
    assert t.leaks() == []
