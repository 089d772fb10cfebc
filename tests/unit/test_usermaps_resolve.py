"""``reconciler usermaps resolve``: Jira user search by email (respx, bodies shaped as in Atlassian's OpenAPI
descriptions and checked against them), strict judgement of the answers, and --write keeping comments."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.config.loader import load_config
from reconciler.usermaps import identities_for
from reconciler.usermaps.lookup import LOOKUPS_AT_ONCE, resolve_missing
from tests.contract.specs import SpecError, spec_document

FIXTURES = Path(__file__).parent.parent / "fixtures" / "usermaps" / "resolve"
# the files the Jira contract tests use, carried in tests/contract/specs/
CLOUD_SPEC = "cloud"
DC_SPEC = "datacenter"
CLOUD = "https://acme.atlassian.net"
DC = "https://jira.acme.io"


def _spec(name: str) -> dict[str, Any]:
    try:
        return spec_document(name)
    except SpecError as exc:
        pytest.fail(str(exc), pytrace=False)


def conforms(spec: str, schema: str, body: Any) -> None:
    """Validate a fake response item against the named component schema of the official spec."""
    doc = _spec(spec)
    jsonschema.validate(body, {"components": doc["components"], "$ref": f"#/components/schemas/{schema}"})


def cloud_user(account_id: str, name: str, email: str | None, *, active: bool = True,
               account_type: str = "atlassian") -> dict[str, Any]:
    avatar = "https://avatar-management--avatars.server-location.prod.public.atl-paas.net/initials/XX-3.png"
    u: dict[str, Any] = {
        "accountId": account_id, "accountType": account_type, "active": active,
        "avatarUrls": {k: f"{avatar}?size={k[:2]}" for k in ("16x16", "24x24", "32x32", "48x48")},
        "displayName": name, "key": "", "name": "",
        "self": f"{CLOUD}/rest/api/3/user?accountId={account_id}", "timeZone": "Europe/Berlin",
    }
    if email is not None:  # privacy settings hide the email: the key is absent
        u["emailAddress"] = email
    return u


def dc_user(name: str, email: str | None, *, active: bool = True) -> dict[str, Any]:
    u: dict[str, Any] = {
        "self": f"{DC}/rest/api/2/user?username={name}", "key": f"JIRAUSER{abs(hash(name)) % 100000}",
        "name": name, "displayName": name.title(), "active": active, "deleted": False,
        "timeZone": "Europe/Berlin", "locale": "en_GB",
        "avatarUrls": {"48x48": f"{DC}/secure/useravatar?size=large&ownerId={name}"},
    }
    if email is not None:
        u["emailAddress"] = email
    return u


# What Jira Cloud answers to query=EMAIL (prefix match on display name and email).
CLOUD_ANSWERS: dict[str, list[dict[str, Any]]] = {
    "bob@acme.io": [cloud_user("5b10ac8d82e05b22cc7d4ef6", "Bob Jones", "bob@acme.io")],
    "carol@acme.io": [cloud_user("712020:7a3c2f1e-0d9b-4c8e-9f6a-1b2c3d4e5f60", "Carol White", "carol@acme.io"),
                      cloud_user("557058:0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "Jira Automation", None,
                                 account_type="app")],
    "erin@acme.io": [cloud_user("5b10a2844c20165700ede21g", "Erin", None)],
    "frank@acme.io": [cloud_user("5b10ac8d82e05b22cc7d4e01", "Frank Old", "frank@acme.io"),
                      cloud_user("5b10ac8d82e05b22cc7d4e02", "Frank New", "frank@acme.io")],
    "gina@acme.io": [cloud_user("5b10ac8d82e05b22cc7d4e03", "Gina Other", "gina@acme.io.example")],
    "hank@acme.io": [cloud_user("5b10ac8d82e05b22cc7d4e04", "Hank", "hank@acme.io", active=False)],
    "ivan@acme.io": [cloud_user("5b10ac8d82e05b22cc7d4ef5", "Ivan (alias of Alice)", "ivan@acme.io")],
}


DC_ANSWERS: dict[str, list[dict[str, Any]]] = {
    "bob@acme.io": [dc_user("bjones", "bob@acme.io")],
    "carol@acme.io": [dc_user("cwhite", "Carol@Acme.io"), dc_user("carol.w", "carol.w@acme.io")],
    "frank@acme.io": [dc_user("frank", "frank@acme.io"), dc_user("frank2", "frank@acme.io")],
}


def test_fake_bodies_match_the_official_openapi_descriptions() -> None:
    for users in CLOUD_ANSWERS.values():
        for u in users:
            conforms(CLOUD_SPEC, "User", u)
    for users in DC_ANSWERS.values():
        for u in users:
            conforms(DC_SPEC, "UserBean", u)
    with pytest.raises(jsonschema.ValidationError):  # the check has teeth
        conforms(CLOUD_SPEC, "User", {"accountId": "x", "active": "yes"})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_CLOUD_TOKEN", "cloud-secret-token-123")
    monkeypatch.setenv("JIRA_DC_TOKEN", "dc-secret-token-456")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "c"
    shutil.copytree(FIXTURES, d, ignore=shutil.ignore_patterns("*.golden.yaml"))
    return d


@pytest.fixture
def cloud() -> Iterator[respx.Router]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"].startswith("Basic ")
        q = request.url.params["query"]
        seen.append(q)
        return httpx.Response(200, json=CLOUD_ANSWERS.get(q, []))

    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        router.get(f"{CLOUD}/rest/api/3/user/search").mock(side_effect=answer)
        router.seen = seen  # type: ignore[attr-defined]
        yield router


def test_cloud_lookups_are_judged_strictly(env: None, config_dir: Path, cloud: respx.Router) -> None:
    results = {r.member: r for r in resolve_missing(load_config(config_dir), "cloud")}
    got = {m: (r.status, r.identity) for m, r in results.items()}
    assert got == {
        "bob@acme.io": ("found", "5b10ac8d82e05b22cc7d4ef6"),
        # the app account that matched the prefix is not a person
        "carol@acme.io": ("found", "712020:7a3c2f1e-0d9b-4c8e-9f6a-1b2c3d4e5f60"),
        "dave@acme.io": ("deactivated-member", None),
        "erin@acme.io": ("hidden", None),
        "frank@acme.io": ("ambiguous", None),
        "gina@acme.io": ("not-found", None),
        "hank@acme.io": ("inactive", None),
        "ivan@acme.io": ("claimed", None),
    }
    assert "5b10ac8d82e05b22cc7d4e01" in results["frank@acme.io"].detail
    assert "5b10ac8d82e05b22cc7d4e02" in results["frank@acme.io"].detail
    assert "privacy" in results["erin@acme.io"].detail and "5b10a2844c20165700ede21g" in results["erin@acme.io"].detail
    assert "alice@acme.io" in results["ivan@acme.io"].detail
    # alice is mapped already and dave is deactivated: neither is searched for
    assert sorted(cloud.seen) == sorted(set(CLOUD_ANSWERS) - {"alice@acme.io"})  # type: ignore[attr-defined]


def test_searches_run_a_few_at_once_and_report_in_config_order(env: None, config_dir: Path) -> None:
    """The first LOOKUPS_AT_ONCE searches wait for each other at a barrier: it breaks (and the test fails)
    unless that many are in flight together; no more than that are ever in flight."""
    lock = threading.Lock()
    barrier = threading.Barrier(LOOKUPS_AT_ONCE, timeout=30)
    calls = in_flight = most = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls, in_flight, most
        with lock:
            calls += 1
            first = calls <= LOOKUPS_AT_ONCE
            in_flight += 1
            most = max(most, in_flight)
        if first:
            barrier.wait()
        with lock:
            in_flight -= 1
        return httpx.Response(200, json=CLOUD_ANSWERS.get(request.url.params["query"], []))

    config = load_config(config_dir)
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{CLOUD}/rest/api/3/user/search").mock(side_effect=answer)
        reported: list[str] = []
        results = resolve_missing(config, "cloud", progress=lambda r: reported.append(r.member))
    assert most == LOOKUPS_AT_ONCE
    declared = [m.email for m in config.members if m.email != "alice@acme.io"]  # alice is mapped already
    assert reported == [r.member for r in results] == declared


def test_write_keeps_comments_order_and_formatting(env: None, config_dir: Path, cloud: respx.Router) -> None:
    r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), "--connection", "cloud", "--write"])
    assert r.exit_code == 0, r.output
    assert "9 member(s)" not in r.output
    assert "8 member(s) looked up in cloud: 1 ambiguous, 1 claimed, 1 deactivated-member, 2 found, 1 hidden, " \
           "1 inactive, 1 not-found." in r.output
    assert "wrote 2 identities to" in r.output
    assert "cloud-secret-token-123" not in r.output
    written = (config_dir / "usermaps.yaml").read_text()
    golden = (FIXTURES / "usermaps.golden.yaml").read_text()
    assert written == golden
    c = load_config(config_dir)
    assert identities_for(c, "bob@acme.io", "cloud") == ["5b10ac8d82e05b22cc7d4ef6"]
    assert identities_for(c, "carol@acme.io", "cloud") == ["712020:7a3c2f1e-0d9b-4c8e-9f6a-1b2c3d4e5f60"]


def test_without_write_nothing_changes(env: None, config_dir: Path, cloud: respx.Router) -> None:
    before = (config_dir / "usermaps.yaml").read_bytes()
    r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), "--connection", "cloud"])
    assert r.exit_code == 0, r.output
    assert "run again with --write" in r.output
    assert (config_dir / "usermaps.yaml").read_bytes() == before


def test_write_creates_a_file_when_the_config_has_no_user_maps(env: None, config_dir: Path,
                                                               cloud: respx.Router) -> None:
    (config_dir / "usermaps.yaml").unlink()
    CLOUD_ANSWERS["alice@acme.io"] = [cloud_user("5b10ac8d82e05b22cc7d4ef5", "Alice", "alice@acme.io")]
    try:
        r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), "--connection", "cloud", "--write"])
    finally:
        del CLOUD_ANSWERS["alice@acme.io"]
    assert r.exit_code == 0, r.output
    # with no map for alice, the search finds her account ID for both alice and ivan: neither gets it
    assert "5b10ac8d82e05b22cc7d4ef5 was found for alice@acme.io and ivan@acme.io" in r.output
    c = load_config(config_dir)
    assert identities_for(c, "alice@acme.io", "cloud") == []
    assert identities_for(c, "ivan@acme.io", "cloud") == []
    assert (config_dir / "user_maps.yaml").read_text() == (
        "user_maps:\n"
        "  - member: bob@acme.io\n    identities:\n      cloud: 5b10ac8d82e05b22cc7d4ef6\n"
        "  - member: carol@acme.io\n    identities:\n      cloud: 712020:7a3c2f1e-0d9b-4c8e-9f6a-1b2c3d4e5f60\n")


def test_data_center_search_uses_username_and_maps_the_name(env: None, config_dir: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer dc-secret-token-456"
        return httpx.Response(200, json=DC_ANSWERS.get(request.url.params["username"], []))

    with respx.mock(assert_all_called=True) as router:
        router.get(f"{DC}/rest/api/2/user/search").mock(side_effect=answer)
        results = {r.member: (r.status, r.identity) for r in resolve_missing(load_config(config_dir), "dc")}
    assert results["bob@acme.io"] == ("found", "bjones")
    assert results["carol@acme.io"] == ("found", "cwhite")
    assert results["frank@acme.io"] == ("ambiguous", None)
    assert results["gina@acme.io"] == ("not-found", None)
    # alice has no dc identity either, so she is looked up too
    assert results["alice@acme.io"] == ("not-found", None)


@pytest.mark.parametrize(("args", "message"), [
    (["--connection", "nope"], "unknown connection 'nope'; Jira connections in this config: cloud, dc"),
    (["--connection", "tracker"], "connection 'tracker' is a redmine connection; resolve looks accounts up in "
                                  "Jira only"),
])
def test_bad_connection(env: None, config_dir: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), *args])
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output


def test_refused_credentials_are_a_clear_error(env: None, config_dir: Path) -> None:
    with respx.mock() as router:
        router.get(f"{CLOUD}/rest/api/3/user/search").mock(
            return_value=httpx.Response(401, json={"errorMessages": ["Client must be authenticated"]}))
        r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), "--connection", "cloud"])
    assert r.exit_code == 1
    assert "authentication failed" in r.output and "Client must be authenticated" in r.output
    assert "cloud-secret-token-123" not in r.output and "Traceback" not in r.output


def test_missing_token_names_the_field(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIRA_CLOUD_TOKEN", raising=False)
    r = CliRunner().invoke(main, ["usermaps", "resolve", str(config_dir), "--connection", "cloud"])
    assert r.exit_code == 1
    # at the reference (members.yaml line 22, column 16), named as every other error names it
    assert (f"error: {config_dir / 'members.yaml'}:22:16: connections.cloud.api_token: "
            "environment variable JIRA_CLOUD_TOKEN is not set") in r.output
