"""Known tokens, every command, every output: no token appears anywhere reconciler writes.

Runs each command through the CLI against the real scim2-server (directly, and behind a proxy
whose error answers echo the credentials back, as careless servers do), then scans stdout,
stderr, the saved plan, the audit log and every file written.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.faultproxy import Fault, fault_proxy
from tests.servers import SCIM_TOKEN, ScimServer, free_port

WRONG_TOKEN = "wrong-token-Zq81xP"
FILE_TOKEN = "file-token-Kp55vR"
SECRETS = [SCIM_TOKEN, WRONG_TOKEN, FILE_TOKEN, base64.b64encode(f"svc:{FILE_TOKEN}".encode()).decode()]


class Transcript:
    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def run(self, args: list[str], expect: tuple[int, ...]) -> Result:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        out = result.output + (result.stderr if result.stderr_bytes is not None else "")
        self.texts.append((" ".join(args), out))
        assert result.exit_code in expect, (args, result.exit_code, out)
        assert "Traceback" not in out and "internal error" not in out, out
        return result

    def add_files(self, *roots: Path) -> None:
        for root in roots:
            for f in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
                self.texts.append((str(f), f.read_bytes().decode("utf-8", "replace")))

    def assert_clean(self) -> None:
        assert len(self.texts) >= 10
        for where, text in self.texts:
            for s in SECRETS:
                assert s not in text, f"a secret appears in {where}"


@pytest.fixture
def env(scim: ScimServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("WRONG_TOKEN", WRONG_TOKEN)
    monkeypatch.chdir(tmp_path)
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(FILE_TOKEN + "\n")
    return secret_file


def test_no_command_prints_or_writes_a_token(scim: ScimServer, env: Path, write_config: Callable[..., Path],
                                             tmp_path: Path) -> None:
    members: list[Any] = [{"email": "alice@acme.io", "given_name": "Alice", "title": SCIM_TOKEN[:6]},
                          "bob@acme.io"]
    teams = [{"name": "appsec", "members": ["alice@acme.io", "bob@acme.io"]}]
    cfg = write_config(scim.base_url, members=members, teams=teams)
    audit = tmp_path / "audit.jsonl"
    plan_file = tmp_path / "plan.json"
    t = Transcript()
    t.run(["validate", str(cfg)], (0,))
    for fmt in ("text", "markdown", "json"):
        t.run(["plan", str(cfg), "--format", fmt, "--no-color"], (0,))
    t.run(["plan", str(cfg), "--detailed-exitcode", "--out", str(plan_file)], (2,))
    t.run(["show", str(plan_file)], (0,))
    t.run(["apply", str(plan_file), "--auto-approve", "--audit-log", str(audit)], (0,))
    t.run(["apply", str(cfg), "--auto-approve", "--audit-log", str(audit)], (0,))
    t.run(["check", str(cfg)], (0,))
    t.run(["import", str(cfg), "--provider", "platform", "--out", str(tmp_path / "imported")], (0,))
    t.run(["audit", "--log", str(audit)], (0,))
    t.run(["demo", "--no-color"], (0,))

    # failing cases: a wrong token, a token from a file refused, an unreachable server
    wrong = write_config(scim.base_url, members=members, folder="wrong",
                         auth={"type": "bearer", "token": "${env:WRONG_TOKEN}"})
    basic = write_config(scim.base_url, members=members, folder="basic",
                         auth={"type": "basic", "username": "svc", "token": f"${{file:{env}}}"})
    gone = write_config(f"http://127.0.0.1:{free_port()}/v2", members=members, folder="gone", timeout=0.5)
    for bad in (wrong, basic):
        t.run(["plan", str(bad)], (1,))
        t.run(["apply", str(bad), "--auto-approve", "--audit-log", str(audit)], (1,))
        t.run(["check", str(bad)], (1,))
    t.run(["plan", str(gone)], (1,))  # retried with backoff before it gives up: once is enough

    # a server whose errors echo the request's credentials back
    echo = {"detail": f"bad request from Bearer {SCIM_TOKEN} (Authorization: Bearer {SCIM_TOKEN})",
            "scimType": SCIM_TOKEN}
    faults = [Fault("status", status=400, methods=("POST", "PATCH"), body=echo),
              Fault("status", status=400, methods=("GET",), path="/Groups", body=echo, times=1)]
    with fault_proxy(scim.base_url, faults) as proxy:
        leaky = write_config(proxy.url, members=[*members, "carol@acme.io"], teams=teams, folder="leaky",
                             bulk="never")
        t.run(["plan", str(leaky)], (1,))  # the list of groups fails
        t.run(["apply", str(leaky), "--auto-approve", "--audit-log", str(audit)], (1,))  # the create fails
        assert proxy.count("status") >= 2

    t.add_files(plan_file, audit, tmp_path / "imported", tmp_path / ".reconciler" if
                (tmp_path / ".reconciler").exists() else audit)
    joined = "\n".join(text for _, text in t.texts)
    assert "carol@acme.io" in joined and "HTTP 400" in joined  # the failing apply did report its failure
    assert "***" in joined  # and the echoed token was redacted, not dropped along with the message
    t.assert_clean()
