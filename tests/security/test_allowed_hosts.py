"""RECONCILER_ALLOWED_HOSTS: a host outside the allow-list is refused before any secret is resolved
(issue 13, item 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config.hosts import allowed
from tests.security.echo import echo_server
from tests.servers import ScimServer


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def test_a_pull_request_cannot_send_secrets_to_its_own_host(write_config: Callable[..., Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", "the-ci-jobs-secret-token")
    with echo_server() as attacker:
        cfg = write_config(attacker.url + "/v2", members=["alice@acme.io"])
        monkeypatch.setenv("RECONCILER_ALLOWED_HOSTS", "scim.acme.io, 127.0.0.2:8443")
        for cmd in ("check", "plan", "apply"):
            code, out = run(cmd, str(cfg), *(["--auto-approve"] if cmd == "apply" else []))
            assert code == 1
            host = attacker.url.split("//")[1]
            assert "providers.yaml:4:" in out and f"host {host} is not in RECONCILER_ALLOWED_HOSTS" in out, out
        assert attacker.seen == []


def test_refused_before_the_secret_is_resolved(write_config: Callable[..., Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCIM_TOKEN", raising=False)  # resolving it would fail with "is not set"
    cfg = write_config("https://evil.example/scim/v2", members=["alice@acme.io"])
    monkeypatch.setenv("RECONCILER_ALLOWED_HOSTS", "")
    code, out = run("plan", str(cfg))
    assert code == 1 and "host evil.example:443 is not in RECONCILER_ALLOWED_HOSTS (empty)" in out, out
    assert "not set" not in out


def test_an_allowed_host_plans(scim: ScimServer, write_config: Callable[..., Path],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(scim.base_url, members=["alice@acme.io"])
    port = scim.base_url.split(":")[2].split("/")[0]
    monkeypatch.setenv("RECONCILER_ALLOWED_HOSTS", f"scim.acme.io,127.0.0.1:{port}")
    code, out = run("plan", str(cfg))
    assert code == 0 and "1 to create" in out, out
    monkeypatch.setenv("RECONCILER_ALLOWED_HOSTS", "127.0.0.1:1")  # the port matters when given
    assert run("plan", str(cfg))[0] == 1


def test_patterns() -> None:
    assert allowed("https://a.okta.com/scim", ["*.okta.com"])
    assert not allowed("https://okta.com.evil.io/scim", ["*.okta.com"])
    assert allowed("https://Acme.Atlassian.net", ["acme.atlassian.net:443"])
    assert not allowed("https://acme.atlassian.net:8443", ["acme.atlassian.net:443"])
    assert allowed("http://[::1]:8080/v2", ["[::1]:8080"])
