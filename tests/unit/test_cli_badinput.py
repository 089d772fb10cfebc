"""Bad input on the command line, with no live system: every command gives one clear error, exit 1,
no traceback, no "internal error", and never a secret."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.errors import Diagnostic, UnsafePlanError
from reconciler.plan.model import Action, AttributeChange, Change
from reconciler.plan.safety import check_removals
from reconciler.secrets import redact, remember

ROOT = Path(__file__).resolve().parents[2]
CLOSED = "http://127.0.0.1:1/v2"  # nothing listens on port 1: no test here may reach a server


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def assert_clean_failure(result: Result, *secrets: str) -> str:
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out and "internal error" not in out, out
    for s in secrets:
        assert s not in out, out
    return out


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


PROVIDER = f"""
providers:
  - name: platform
    type: scim
    base_url: {CLOSED}
    auth: {{type: bearer, token: "${{env:QA_TOKEN}}"}}
"""


# --- paths given on the command line ---------------------------------------------------------------

def test_missing_path_and_empty_folder_have_no_fake_position(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for command in ("validate", "check", "plan"):
        out = assert_clean_failure(run(command, str(tmp_path / "nope")))
        assert f"error: {tmp_path / 'nope'}: no such file or directory" in out
        assert ":0:0:" not in out
        out = assert_clean_failure(run(command, str(tmp_path / "empty")))
        assert f"error: {tmp_path / 'empty'}: no .yaml or .yml files in this directory" in out


def test_diagnostic_without_position() -> None:
    assert str(Diagnostic("cfg", 0, 0, "no such file or directory")) == "cfg: no such file or directory"
    assert str(Diagnostic("a.yaml", 3, 5, "bad")) == "a.yaml:3:5: bad"


def test_output_path_that_is_a_folder(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", {"m.yaml": "members:\n  - email: alice@acme.io\n"})
    (tmp_path / "out").mkdir()
    out = assert_clean_failure(run("usermaps", "export", str(cfg), "--format", "csv", "--out", str(tmp_path / "out")))
    assert f"error: {tmp_path / 'out'}: Is a directory" in out


def test_audit_log_that_is_a_folder(tmp_path: Path) -> None:
    out = assert_clean_failure(run("audit", "--log", str(tmp_path)))
    assert f"error: {tmp_path}: Is a directory" in out


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8\n", b"just some text\n", b'{"a": 1}\n', b"[1, 2]\n"])
def test_audit_log_that_is_not_one(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(content)
    out = assert_clean_failure(run("audit", "--log", str(log)))
    assert f"{log} is not an audit log: none of its 1 line(s) is a JSON audit event" in out


def test_audit_log_with_a_torn_last_line_is_still_read(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    event = {"time": "2024-05-02T09:14:03+00:00", "actor": "octocat", "commit": "3f2a1b9c8d7e", "event": "change",
             "address": 'scim.platform.user["alice@acme.io"]', "action": "create", "outcome": "ok",
             "attributes": ["userName"]}
    log.write_text(json.dumps(event) + "\n" + '{"time": "2024-05-02T09:1')
    result = run("audit", "--log", str(log))
    assert result.exit_code == 0 and 'scim.platform.user["alice@acme.io"]' in result.output


def test_check_with_no_providers(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", {"m.yaml": "members:\n  - email: alice@acme.io\n"})
    out = assert_clean_failure(run("check", str(cfg)))
    assert "the config declares no providers" in out


# --- secrets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["s3cret-line\nInjected: yes", "s3cret-cr\r", "tab\tbed-s3cret"])
def test_secret_with_a_control_character_is_refused_unprinted(tmp_path: Path, value: str) -> None:
    cfg = write(tmp_path / "cfg", {"p.yaml": PROVIDER})
    for command in ("plan", "check"):
        result = run(command, str(cfg), env={"QA_TOKEN": value})
        out = result.output
        assert result.exit_code == 1 and "Traceback" not in out and "internal error" not in out, out
        assert "environment variable QA_TOKEN holds a line break or another control character" in out
        for part in value.split():
            assert part.strip() not in out or len(part.strip()) < 4, out
        assert repr(value)[1:-1] not in out


def test_secret_file_that_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "token.bin").write_bytes(b"\xff\xfe\x00binary")
    cfg = write(tmp_path / "cfg", {"p.yaml": PROVIDER.replace("${env:QA_TOKEN}", f"${{file:{tmp_path}/token.bin}}")})
    out = assert_clean_failure(run("plan", str(cfg)))
    assert f"secret file {tmp_path}/token.bin is not UTF-8 text" in out


def test_redact_catches_quoted_forms() -> None:
    secret = "qa-s3cret\nwith-break"
    remember(secret)
    assert redact(f"header {secret!r} refused") == "header '***' refused"
    assert redact(json.dumps({"token": secret})) == '{"token": "***"}'


# --- config typos, one per kind --------------------------------------------------------------------

CONNECTION = """
connections:
  - name: acme-cloud
    type: jira-cloud
    site_url: https://acme.atlassian.net
    email: integration@acme.io
    api_token: ${env:JIRA_TOKEN}
"""
INTEGRATION = """
integrations:
  - name: web
    program: acme-web
    connection: acme-cloud
    project: SEC
    issue_type: Bug
    priorities: {critcal: Highest}
    comments: [researcher, triag]
"""


@pytest.mark.parametrize("files, expected", [
    pytest.param({"p.yaml": PROVIDER.replace("type: scim", "type: scimm")},
                 "p.yaml:3:11: invalid value 'scimm' for 'type'; valid choices: 'scim'", id="provider type"),
    pytest.param({"p.yaml": PROVIDER.replace("type: bearer", "type: kerberos")},
                 "p.yaml:5:18: invalid value 'kerberos' for 'type'; valid choices: 'bearer', 'basic', 'oauth2'",
                 id="auth type"),
    pytest.param({"p.yaml": PROVIDER.replace(CLOSED, "http://scim.example.com/v2")},
                 "p.yaml:4:15: 'base_url': 'http://scim.example.com/v2' uses plain http; only https is allowed "
                 "except to loopback", id="provider plain http"),
    pytest.param({"p.yaml": PROVIDER.replace(CLOSED, "127.0.0.1:8080/v2")},
                 "p.yaml:4:15: 'base_url': '127.0.0.1:8080/v2' is not an http(s) URL", id="provider no scheme"),
    pytest.param({"p.yaml": PROVIDER.replace('{type: bearer, token: "${env:QA_TOKEN}"}',
                                             '{type: oauth2, token_url: "ftp://t", client_id: c, '
                                             'client_secret: "${env:X}"}')},
                 "'token_url': 'ftp://t' is not an http(s) URL", id="oauth token url"),
    pytest.param({"m.yaml": "members:\n  - email: a@acme.io\n    employee_number: 1001\n"},
                 "m.yaml:3:22: 'employee_number': expected text, not a number (1001); quote it to make it text: "
                 '"1001"', id="member number for text"),
    pytest.param({"m.yaml": "members:\n  - email: a@acme.io\n    attributes: {nickName: {a: b}}\n"},
                 "m.yaml:3:28: 'nickName': expected text, true/false or a whole number, not a mapping",
                 id="member attribute: one error for a union"),
    pytest.param({"m.yaml": "members:\n  - a@acme.io\n"},
                 "m.yaml:2:5: 'members[0]': expected a mapping (key: value), not text 'a@acme.io'",
                 id="member as a bare email"),
    pytest.param({"c.yaml": CONNECTION.replace("type: jira-cloud", "type: jira-clod")},
                 "c.yaml:3:11: invalid value 'jira-clod' for 'type'; valid choices: 'jira-cloud'",
                 id="connection type"),
    pytest.param({"c.yaml": CONNECTION, "i.yaml": INTEGRATION},
                 "i.yaml:7:18: unknown key 'critcal' in 'priorities' (did you mean 'critical'?); valid keys: 'none'",
                 id="integration severity key"),
    pytest.param({"c.yaml": CONNECTION, "i.yaml": INTEGRATION},
                 "i.yaml:8:28: invalid value 'triag' for 'comments[1]'; valid choices: 'researcher', 'triage'",
                 id="integration list item"),
    pytest.param({"u.yaml": "members:\n  - email: a@acme.io\nuser_maps:\n  - member: a@acme.io\n"
                            "    identities: {jenkins: [1]}\n"},
                 "u.yaml:5:28: 'jenkins[0]': expected text, not a number (1)", id="user map identity"),
    pytest.param({"f.yaml": "members:\n  - email: a@acme.io\nfallback_users:\n  - system: jenkins\n"
                            "    member: a@acme.io\n    project: [SEC]\n"},
                 "f.yaml:6:14: 'project': expected text, not a list", id="fallback user scope"),
])
def test_config_typos(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    cfg = write(tmp_path / "cfg", files)
    out = assert_clean_failure(run("validate", str(cfg)))
    assert expected in out, out
    assert "Input should" not in out and "instance of" not in out, out


# --- safety thresholds -----------------------------------------------------------------------------

def test_refused_removals_are_listed_in_address_order() -> None:
    emails = ["u3", "u8", "u5", "u1", "u9", "u4", "u6"]
    changes = [Change("platform", "user", f"{e}@acme.io", Action.DEACTIVATE, f'scim.platform.user["{e}@acme.io"]',
                      before={"active": True}, after={"active": False},
                      diff=[AttributeChange("active", True, False)]) for e in emails]
    with pytest.raises(UnsafePlanError) as info:
        check_removals("platform", changes, 10, 500, 20.0, None)
    assert info.value.problems == sorted(info.value.problems)


def test_a_union_value_gets_one_error(tmp_path: Path) -> None:
    """identities take text or a list of text: a list holding a number is one problem, not two."""
    cfg = write(tmp_path / "cfg", {"u.yaml": "members:\n  - email: a@acme.io\nuser_maps:\n  - member: a@acme.io\n"
                                             "    identities: {jenkins: [1]}\n"})
    out = assert_clean_failure(run("validate", str(cfg)))
    assert out.count("error: ") == 1 and "1 problem(s) found" in out, out


def test_infinite_and_nan_numbers_are_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", {"p.yaml": PROVIDER + "    timeout: 1e400\n    max_removal_percent: .nan\n"})
    out = assert_clean_failure(run("validate", str(cfg)))
    assert "p.yaml:6:14: 'timeout': Input should be a finite number" in out
    assert "p.yaml:7:26: 'max_removal_percent': Input should be a finite number" in out


def test_a_value_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", {"m.yaml": 'members:\n  - email: "a@acme.io\\nx"\n'})
    out = assert_clean_failure(run("validate", str(cfg)))
    assert "m.yaml:2:12: 'email': 'a@acme.io\\nx' is not a valid email address" in out
    assert out.count("\n") == 2, out  # the problem, then the count


def test_every_problem_of_a_user_map_import_says_error(tmp_path: Path) -> None:
    src = tmp_path / "maps.csv"
    src.write_text("member,system,identity\nnot-an-email,jenkins,al\nalice@acme.io,Jenkins X,al\n")
    result = run("usermaps", "import", str(src), "--format", "csv", "--out", str(tmp_path / "o.yaml"))
    out = assert_clean_failure(result)
    problems = [line for line in out.splitlines() if "maps.csv:" in line]
    assert len(problems) == 2 and all(line.startswith("error: ") for line in problems), out
    assert "2 problem(s) found; nothing was written" in out
    assert not (tmp_path / "o.yaml").exists()


@pytest.mark.parametrize("since", ["99999999999d", "999999d", "99999999999999999999w"])
def test_audit_since_too_far_back(tmp_path: Path, since: str) -> None:
    out = assert_clean_failure(run("audit", "--log", str(tmp_path / "none.jsonl"), "--since", since))
    assert f"--since '{since}' reaches back before year 1" in out
