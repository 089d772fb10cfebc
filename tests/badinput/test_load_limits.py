"""Values that validated and failed later, or were echoed whole: URLs checked fully at load time (scheme, host,
port, white space), length limits on every text value, numbers of thousands of digits; each refused at
file:line:col in one line, through `reconciler validate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main


def validate(tmp_path: Path, text: str) -> tuple[int, str]:
    d = tmp_path / "c"
    d.mkdir(exist_ok=True)
    (d / "c.yaml").write_text(text)
    r = CliRunner().invoke(main, ["validate", str(d)], catch_exceptions=False)
    assert "Traceback" not in r.output and "internal error" not in r.output, r.output
    return r.exit_code, r.output


SCIM = 'providers:\n  - name: p\n    type: scim\n    base_url: {url}\n    auth: {{type: bearer, token: "${{env:T}}"}}\n'
REDMINE = ('connections:\n  - name: r\n    type: redmine\n    base_url: {url}\n'
           '    api_key: "${{env:T}}"\n')


@pytest.mark.parametrize("template", [SCIM, REDMINE], ids=["scim", "redmine"])
@pytest.mark.parametrize(("url", "expected"), [
    ('"https://scim.acme.io/v2\\n"', "holds white space or a control character (a trailing line break?)"),
    ('"https://scim.acme.io /v2"', "holds white space"),
    ("https://scim.acme.io:99999/v2", "has a port outside 1-65535"),
    ("https://scim.acme.io:0/v2", "has port 0"),
    ("https:///x", "is not an http(s) URL with a host"),
    ("ftp://scim.acme.io/v2", "not an http(s) URL"),
])
def test_a_url_is_checked_whole_at_load_time(tmp_path: Path, template: str, url: str, expected: str) -> None:
    code, out = validate(tmp_path, template.format(url=url))
    assert code == 1
    assert "c.yaml:4:15: " in out and expected in out, out


def test_a_100000_character_email_is_refused_without_being_echoed(tmp_path: Path) -> None:
    email = "a" * 100_000 + "@acme.io"
    code, out = validate(tmp_path, f"members:\n  - email: {email}\n")
    assert code == 1
    assert "c.yaml:2:12: 'email' is 100,008 characters ('aaaaaaaaaaaaaaaaaaaa...'); it may be at most 254" in out, out
    assert len(out) < 500


@pytest.mark.parametrize(("field", "limit"), [("given_name", 256), ("department", 256), ("title", 256)])
def test_text_fields_have_a_length_limit(tmp_path: Path, field: str, limit: int) -> None:
    code, out = validate(tmp_path, f"members:\n  - email: a@acme.io\n    {field}: {'x' * (limit + 1)}\n")
    assert code == 1
    assert f"c.yaml:3:{len(field) + 7}: '{field}' is {limit + 1:,} characters" in out and f"at most {limit}" in out, out


def test_a_team_member_and_a_description_have_their_own_limits(tmp_path: Path) -> None:
    ok = "x" * 5000
    code, out = validate(tmp_path, f"teams:\n  - name: t\n    description: {ok}\n    members: [{'b' * 300}@acme.io]\n")
    assert code == 1
    assert "'description'" not in out  # free text may be long
    assert "c.yaml:4:15: 'members' is 308 characters" in out and "at most 254" in out, out


@pytest.mark.parametrize("where", ["given_name", "timeout"])
def test_a_5000_digit_number_is_not_echoed_whole(tmp_path: Path, where: str) -> None:
    digits = "9" * 5000
    text = (f"members:\n  - email: a@acme.io\n    given_name: {digits}\n" if where == "given_name" else
            SCIM.format(url="https://scim.acme.io/v2") + f"    timeout: {digits}\n")
    code, out = validate(tmp_path, text)
    assert code == 1
    assert "a number of 5,000 characters (999999999999...); numbers in config files are at most 40 characters" \
        in out, out
    assert digits[:100] not in out
