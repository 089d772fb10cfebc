"""What a config may not hold, refused at load time at file:line:col without printing a secret: short
secrets, credentials in URLs, control/bidi/zero-width characters in identifiers, reserved attributes
(issue 13, items 2, 4 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main


def write(d: Path, text: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / "c.yaml").write_text(text)
    return d


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


PROVIDER = """providers:
  - name: platform
    type: scim
    base_url: {url}
    auth: {{type: bearer, token: "${{env:TOK}}"}}
"""


@pytest.mark.parametrize("secret", ["x", "abc", "1234567"])
def test_a_short_secret_is_refused_at_resolve_time_and_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      secret: str) -> None:
    monkeypatch.setenv("TOK", secret)
    cfg = write(tmp_path / "c", PROVIDER.format(url="http://127.0.0.1:1/v2") + "members: [{email: a@acme.io}]\n")
    code, out = run("plan", str(cfg))
    assert code == 1
    assert f"c.yaml:5:33: providers.platform.auth.token: environment variable TOK holds a secret of {len(secret)} " \
           "characters; a credential is at least 8 characters" in out, out
    assert "connection refused" not in out  # nothing was sent


@pytest.mark.parametrize("url", ["http://svc:pw-Secret1@127.0.0.1:8080/v2", "https://svc@scim.acme.io/v2",
                                 "https://:pw-Secret1@scim.acme.io/v2"])
def test_userinfo_in_a_url_is_refused_at_load_time(tmp_path: Path, url: str) -> None:
    code, out = run("validate", str(write(tmp_path / "c", PROVIDER.format(url=url))))
    assert code == 1 and "c.yaml:4:15:" in out and "must not hold a user name or password" in out, out
    assert "pw-Secret1" not in out


def test_userinfo_in_tracker_and_token_urls(tmp_path: Path) -> None:
    text = """connections:
  - {name: j, type: jira-datacenter, base_url: "https://u:pw-Secret1@jira.acme.io", token: "${env:T}"}
  - {name: r, type: redmine, base_url: "http://u:pw-Secret1@127.0.0.1:3000", api_key: "${env:T}"}
providers:
  - name: platform
    type: scim
    base_url: https://scim.acme.io/v2
    auth: {type: oauth2, token_url: "https://id:pw-Secret1@login.acme.io/token", client_id: x,
           client_secret: "${env:T}"}
"""
    code, out = run("validate", str(write(tmp_path / "c", text)))
    assert code == 1 and out.count("must not hold a user name or password") == 3, out
    assert "pw-Secret1" not in out


@pytest.mark.parametrize("name, shown", [
    ('evil\\"]\\n  - scim.platform.user[\\"ceo@acme.io', "line break (U+000A)"),
    ("app\\u202esec", "bidirectional override (U+202E"),
    ("app\\u200bsec", "n invisible (zero-width or format) character (U+200B"),
    ("red\\x1b[31m", "control character (U+001B"),
])
def test_identifiers_with_hidden_characters_are_refused(tmp_path: Path, name: str, shown: str) -> None:
    text = f'members:\n  - email: a@acme.io\nteams:\n  - name: "{name}"\n    members: [a@acme.io]\n'
    code, out = run("validate", str(write(tmp_path / "c", text)))
    assert code == 1 and "c.yaml:4:11: 'name' holds a" + ("" if shown.startswith("n ") else " ") + shown in out, out
    assert len(out.strip().splitlines()) == 2  # the problem and the count: nothing forged a line


def test_an_email_with_a_trailing_line_break_is_refused(tmp_path: Path) -> None:
    code, out = run("validate", str(write(tmp_path / "c", 'members:\n  - email: "a@acme.io\\n"\n')))
    assert code == 1 and "c.yaml:2:12:" in out, out


def test_a_description_may_hold_line_breaks_but_no_bidi_override(tmp_path: Path) -> None:
    ok = 'teams:\n  - name: appsec\n    description: "line one\\nline two"\n'
    assert run("validate", str(write(tmp_path / "a", ok)))[0] == 0
    bad = 'teams:\n  - name: appsec\n    description: "line one\\u202e"\n'
    code, out = run("validate", str(write(tmp_path / "b", bad)))
    assert code == 1 and "c.yaml:3:18: 'description' holds a bidirectional override" in out, out


@pytest.mark.parametrize("attr, instead", [
    ("active", "active: false"), ("userName", "'email'"), ("externalId", "'external_id'"), ("id", "assigns"),
    ("schemas", "schemas"), ("meta", "meta"), ("password", "no credential"), ("emails", "'email'"),
    ("groups", "'members'"), ("Active", "active: false"), ("name.middleName", None),
    ("urn:ietf:params:scim:schemas:core:2.0:User:active", "active: false"),
])
def test_reserved_attributes_are_refused(tmp_path: Path, attr: str, instead: str | None) -> None:
    text = f'members:\n  - email: a@acme.io\n    attributes:\n      "{attr}": "false"\n'
    code, out = run("validate", str(write(tmp_path / "c", text)))
    if instead is None:
        assert code == 0, out
        return
    assert code == 1 and f"c.yaml:4:7: member 'a@acme.io': attributes may not set '{attr}'; use" in out, out
    assert instead in out
