"""Bad input that needs a server to show: a real scim2-server on 127.0.0.1, a closed port, and a
server on 127.0.0.1 that answers every request with 500. Each case: one clear error naming what
failed (file:line:col or the URL), exit 1, no traceback, no "internal error", no secret."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.servers import SCIM_TOKEN, ScimServer

WriteConfig = Callable[..., Path]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_clean_failure(result: Result) -> str:
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert SCIM_TOKEN not in out, out
    return out


def users(scim: ScimServer) -> list[str]:
    with scim.client() as c:
        return [u["userName"] for u in c.get("Users").json().get("Resources", [])]


@pytest.fixture
def cfg(scim: ScimServer, write_config: WriteConfig) -> Path:
    return write_config(scim.base_url, members=["alice@acme.io"], teams=[{"name": "appsec",
                                                                           "members": ["alice@acme.io"]}])


@pytest.fixture
def echoing_500() -> Iterator[str]:
    """A server that fails every request with 500 and echoes the Authorization header in the body,
    as a careless proxy does."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = json.dumps({"detail": f"upstream failed for {self.headers.get('Authorization')}",
                               "status": "500"}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/scim+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2"
    finally:
        server.shutdown()
        server.server_close()


def test_apply_with_an_audit_log_path_that_is_a_folder_changes_nothing(cfg: Path, scim: ScimServer,
                                                                       tmp_path: Path) -> None:
    (tmp_path / "logdir").mkdir()
    out = assert_clean_failure(run("apply", str(cfg), "--auto-approve", "--audit-log", str(tmp_path / "logdir")))
    assert f"error: cannot open the audit log {tmp_path / 'logdir'}: Is a directory; nothing was applied" in out
    assert users(scim) == []


def test_apply_refuses_an_audit_log_that_is_a_symbolic_link(cfg: Path, scim: ScimServer, tmp_path: Path) -> None:
    """A link planted where the log goes would append it elsewhere: not followed (O_NOFOLLOW)."""
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    out = assert_clean_failure(run("apply", str(cfg), "--auto-approve", "--audit-log", str(link)))
    assert f"error: the audit log {link} is a symbolic link; reconciler does not follow one there: nothing was " \
           "applied" in out, out
    assert target.read_text() == ""
    assert users(scim) == []


def test_apply_where_the_default_audit_folder_is_a_file(cfg: Path, scim: ScimServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_AUDIT_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".reconciler").write_text("not a folder")
    out = assert_clean_failure(run("apply", str(cfg), "--auto-approve"))
    assert "error: cannot open the audit log .reconciler/audit.jsonl: File exists (.reconciler); nothing was " \
           "applied; pass --audit-log PATH or set RECONCILER_AUDIT_LOG" in out
    assert users(scim) == []


def test_target_with_a_misspelt_provider(cfg: Path, scim: ScimServer) -> None:
    out = assert_clean_failure(run("plan", str(cfg), "--target", 'scim.platfrm.user["alice@acme.io"]'))
    assert "unknown provider 'platfrm' (did you mean 'platform'?)" in out


def test_check_reports_every_system_when_one_secret_is_missing(cfg: Path, scim: ScimServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracker whose token variable is unset is one FAIL line; the SCIM provider is still checked."""
    monkeypatch.delenv("QA_JIRA_TOKEN", raising=False)
    (cfg / "connections.yaml").write_text(
        "connections:\n  - name: acme-dc\n    type: jira-datacenter\n    base_url: http://127.0.0.1:1\n"
        "    token: ${env:QA_JIRA_TOKEN}\n"
        "integrations:\n  - name: ops\n    program: acme-web\n    connection: acme-dc\n    project: OPS\n"
        "    issue_type: Task\n")
    result = run("check", str(cfg))
    out = assert_clean_failure(result)
    lines = result.stdout.splitlines()
    assert any(line.startswith("platform ") and " authentication " in line and " ok " in line for line in lines), out
    failing = [line for line in lines if line.startswith("acme-dc ")]
    assert len(failing) == 1 and "credentials" in failing[0] and "FAIL" in failing[0]
    # the reference's own place: connections.yaml line 5, column 12
    assert "connections.yaml:5:12: connections.acme-dc.token: environment variable QA_JIRA_TOKEN is not set" \
        in failing[0], failing[0]
    # one column for the marks, however long a step's name is
    columns = {max(line.find(" ok "), line.find(" FAIL ")) for line in lines}
    assert len(columns) == 1, lines


def test_closed_port_names_the_url(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch,
                                   backoff_sleeps: list[float]) -> None:
    monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)
    cfg = write_config("http://127.0.0.1:1/v2", members=["alice@acme.io"])
    out = assert_clean_failure(run("plan", str(cfg)))
    assert "cannot reach platform: connection refused (GET http://127.0.0.1:1/v2/ServiceProviderConfig)" in out
    assert len(backoff_sleeps) == 4, backoff_sleeps  # five attempts, backed off between them (not slept here)


def test_server_error_names_the_url_and_never_the_token(write_config: WriteConfig, echoing_500: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         backoff_sleeps: list[float]) -> None:
    monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)
    cfg = write_config(echoing_500, members=["alice@acme.io"])
    for command in (["plan"], ["check"], ["import", "--provider", "platform", "--out", str(cfg.parent / "imp")]):
        result = run(command[0], str(cfg), *command[1:])
        out = assert_clean_failure(result)
        assert f"GET {echoing_500}/ServiceProviderConfig -> HTTP 500" in out, out
        assert "Bearer ***" in out, out
        assert len(backoff_sleeps) == 4, (command, backoff_sleeps)  # five attempts at ServiceProviderConfig
        backoff_sleeps.clear()


# --- what the docs show, against the Jira sandbox served on a socket --------------------------------

@pytest.fixture
def served_jira_cloud() -> Iterator[dict[str, str]]:
    """`reconciler sandbox jira` on a free port; yields the variables it prints."""
    exe = Path(sys.executable).parent / "reconciler"
    proc = subprocess.Popen([str(exe), "sandbox", "jira", "--flavour", "cloud", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    info: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                info[k] = v
            if line.startswith("("):
                break
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_usermaps_resolve_against_the_sandbox(served_jira_cloud: dict[str, str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/usermaps.md: resolve finds a member's Jira account by email; the sandbox answers user search."""
    monkeypatch.setenv("QA_JIRA_TOKEN", served_jira_cloud["JIRA_API_TOKEN"])
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.yaml").write_text(
        "connections:\n  - name: acme-cloud\n    type: jira-cloud\n"
        f"    site_url: {served_jira_cloud['JIRA_SITE_URL']}\n    email: {served_jira_cloud['JIRA_EMAIL']}\n"
        "    api_token: ${env:QA_JIRA_TOKEN}\n"
        "members:\n  - email: carol@acme.io\n  - email: nobody@acme.io\n")
    result = run("usermaps", "resolve", str(cfg), "--connection", "acme-cloud", "--write")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("+ carol@acme.io") and "found" in line for line in lines), lines
    assert any(line.startswith("- nobody@acme.io") and "not-found" in line for line in lines), lines
    explained = run("usermaps", "explain", str(cfg), "carol@acme.io", "--system", "acme-cloud")
    assert "acme-cloud (jira-cloud): 5b10ac8d82e05b22cc7d4e02" in explained.stdout, explained.output
