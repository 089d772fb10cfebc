"""-v / --log-level debug: every HTTP call on stderr (method, URL, status, time), secrets scrubbed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.servers import SCIM_TOKEN, ScimServer, free_port

pytestmark = pytest.mark.integration
CALL = re.compile(r"^debug: (GET|POST|PUT|PATCH|DELETE) (http://\S+) -> (\d{3}|\w+) \(\d+ ms(, attempt \d)?\) "
                  r"\[platform( .+)?\]$")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def calls(result: Result) -> list[re.Match[str]]:
    lines = [line for line in result.stderr.splitlines() if line.startswith("debug: ")]
    matches = [CALL.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m]


@pytest.mark.parametrize("flags", [("-v",), ("--log-level", "debug")])
def test_plan_shows_every_call(scim: ScimServer, write_config: Callable[..., Path], flags: tuple[str, ...]) -> None:
    cfg = write_config(scim.base_url, members=["alice@acme.io"])
    result = run("plan", str(cfg), *flags)
    assert result.exit_code == 0, result.output
    seen = calls(result)
    urls = [m.group(2) for m in seen]
    assert f"{scim.base_url}/ServiceProviderConfig" in urls
    assert any(u.startswith(f"{scim.base_url}/Users?") for u in urls)  # with its query
    assert all(m.group(3) == "200" for m in seen)
    assert "+ scim.platform.user" in result.stdout  # the plan itself is unchanged, on stdout
    assert SCIM_TOKEN not in result.output


def test_before_the_command_and_for_apply(scim: ScimServer, write_config: Callable[..., Path],
                                          tmp_path: Path) -> None:
    cfg = write_config(scim.base_url, members=["alice@acme.io"])
    result = run("-v", "apply", str(cfg), "--auto-approve", "--audit-log", str(tmp_path / "audit.jsonl"))
    assert result.exit_code == 0, result.output
    assert any(m.group(1) in ("POST", "PATCH") for m in calls(result))


def test_quiet_without_it(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    cfg = write_config(scim.base_url, members=["alice@acme.io"])
    result = run("plan", str(cfg))
    assert result.exit_code == 0 and "debug:" not in result.output


def test_failed_attempts_are_shown_and_secrets_scrubbed(write_config: Callable[..., Path],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        backoff_sleeps: list[float]) -> None:
    monkeypatch.setenv("SCIM_TOKEN", SCIM_TOKEN)
    # a base URL that (carelessly) carries the token: the debug lines must not
    cfg = write_config(f"http://127.0.0.1:{free_port()}/v2/{SCIM_TOKEN}", members=["alice@acme.io"])
    result = run("check", str(cfg), "-v")
    assert result.exit_code == 1
    seen = calls(result)
    assert [m.group(3) for m in seen] == ["ConnectError"] * 5
    assert seen[-1].group(4) == ", attempt 5"
    assert all("/v2/***/ServiceProviderConfig" in m.group(2) for m in seen)
    assert SCIM_TOKEN not in result.output
