"""HTTP_PROXY / ALL_PROXY never see a request: every client ignores the environment (issue 13, item 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.security.echo import echo_server
from tests.servers import ScimServer


@pytest.mark.parametrize("auth", ["bearer", "oauth2"])
def test_no_request_reaches_a_proxy_from_the_environment(scim: ScimServer, write_config: Callable[..., Path],
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         auth: str) -> None:
    with echo_server(status=502, token="proxied-access-token") as proxy:
        for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy.url)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        a = {"type": "bearer", "token": "${env:SCIM_TOKEN}"} if auth == "bearer" else \
            {"type": "oauth2", "token_url": "http://localhost:1/oauth/token", "client_id": "x",
             "client_secret": "${env:SCIM_TOKEN}"}
        # localhost, not 127.0.0.1: httpx would skip a proxy for an IP literal only by accident of NO_PROXY
        cfg = write_config(scim.base_url.replace("127.0.0.1", "localhost"), members=["alice@acme.io"], auth=a,
                           timeout=2)
        monkeypatch.chdir(tmp_path)
        for args in (["check", str(cfg)], ["plan", str(cfg)],
                     ["apply", str(cfg), "--auto-approve", "--audit-log", str(tmp_path / "a.jsonl")]):
            CliRunner().invoke(main, args, catch_exceptions=False)
        assert proxy.seen == []
