"""The SCIM client against the quirks of real providers, faked at the transport with respx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from reconciler.config.models import ScimProvider
from reconciler.errors import AuthError, ConnectError, ServerError
from reconciler.execute import ApplyResult, Graph
from reconciler.plan.model import Action, AttributeChange, Change
from reconciler.providers.scim import PATCH_OP, USER, ScimClient, connect, user_body, user_ops
from reconciler.providers.scim.apply import ScimApplier
from reconciler.secrets import redact

BASE = "https://scim.example.test/v2"
TOKEN_URL = "https://login.example.test/oauth2/token"


def provider(**kw: Any) -> ScimProvider:
    return ScimProvider.model_validate({"name": "platform", "type": "scim", "base_url": BASE,
                                        "auth": {"type": "bearer", "token": "${env:SCIM_TOKEN}"}, **kw})


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> Iterator[ScimClient]:
    monkeypatch.setenv("SCIM_TOKEN", "unit-token-1234")
    c = connect(provider(), sleep=sleeps.append)
    yield c
    c.close()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        yield router


def listing(resources: list[dict[str, Any]], total: int, start: int = 1) -> httpx.Response:
    return httpx.Response(200, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                                     "totalResults": total, "startIndex": start, "itemsPerPage": len(resources),
                                     "Resources": resources})


def u(i: int) -> dict[str, Any]:
    return {"id": str(i), "userName": f"user{i}@acme.io"}


# --- PATCH, PUT, ETags ------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [httpx.Response(204), httpx.Response(200, json={"id": "1", "userName": "a"})],
                         ids=["204 no body", "200 with the resource"])
def test_patch_accepts_204_and_200(client: ScimClient, api: respx.MockRouter, answer: httpx.Response) -> None:
    route = api.patch("/Users/1").mock(return_value=answer)
    client.patch("Users", "1", [{"op": "replace", "path": "title", "value": "x"}])
    body = json.loads(route.calls.last.request.content)
    assert body == {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    assert route.calls.last.request.headers["Content-Type"] == "application/scim+json"
    assert route.calls.last.request.headers["Authorization"] == "Bearer unit-token-1234"


@pytest.mark.parametrize("etag_supported, sent", [(True, 'W/"3"'), (False, None)])
def test_if_match_only_where_etags_are_supported(client: ScimClient, api: respx.MockRouter, etag_supported: bool,
                                                 sent: str | None) -> None:
    client.caps.etag = etag_supported
    route = api.patch("/Users/1").mock(return_value=httpx.Response(204))
    client.patch("Users", "1", [], etag='W/"3"')
    assert route.calls.last.request.headers.get("If-Match") == sent


def test_provider_without_patch_gets_put(client: ScimClient, api: respx.MockRouter) -> None:
    client.caps.patch = False
    live = {"schemas": [USER], "id": "1", "userName": "alice@acme.io", "active": True, "nickName": "kept",
            "name": {"givenName": "Al", "familyName": "Archer"}, "meta": {"version": "1"}}
    api.get("/Users/1").mock(return_value=httpx.Response(200, json=live))
    put = api.put("/Users/1").mock(return_value=httpx.Response(200, json=live))
    after = {"userName": "alice@acme.io", "emails": "alice@acme.io", "active": True,
             "externalId": "reconciler:alice@acme.io", "name.givenName": "Alice"}
    change = Change("platform", "user", "alice@acme.io", Action.UPDATE, 'scim.platform.user["alice@acme.io"]',
                    before={**after, "name.givenName": "Al"}, after=after,
                    diff=[AttributeChange("name.givenName", "Al", "Alice")], id="1")
    result = ApplyResult()
    graph = Graph()
    ScimApplier(client, result.outcomes.append).steps(graph, [change])
    graph.run()
    assert result.failures == {}
    sent = json.loads(put.calls.last.request.content)
    assert "id" not in sent and "meta" not in sent
    assert sent["name"] == {"givenName": "Alice", "familyName": "Archer"}  # the rest of the live object kept
    assert sent["nickName"] == "kept" and sent["externalId"] == "reconciler:alice@acme.io"


# --- creates -------------------------------------------------------------------------------------

def test_create_201_with_empty_body_and_no_location_looks_the_user_up(client: ScimClient,
                                                                       api: respx.MockRouter) -> None:
    api.post("/Users").mock(return_value=httpx.Response(201))
    search = api.get("/Users", params={"filter": 'userName eq "alice@acme.io"'}).mock(
        return_value=listing([{"id": "u-9", "userName": "alice@acme.io"}], 1))
    res = client.create("Users", {"userName": "alice@acme.io"}, lambda: client.find_user("alice@acme.io"))
    assert res["id"] == "u-9" and search.call_count == 1


def test_dropped_connection_on_create_then_lookup_finds_it(client: ScimClient, api: respx.MockRouter,
                                                           sleeps: list[float]) -> None:
    post = api.post("/Users").mock(side_effect=httpx.RemoteProtocolError("Server disconnected"))
    api.get("/Users").mock(return_value=listing([{"id": "u-1", "userName": "alice@acme.io"}], 1))
    res = client.create("Users", {"userName": "alice@acme.io"}, lambda: client.find_user("alice@acme.io"))
    assert res["id"] == "u-1"
    assert post.call_count == 1, "the create was sent again: a duplicate on a real server"
    assert len(sleeps) == 1


def test_create_409_returns_the_existing_object(client: ScimClient, api: respx.MockRouter) -> None:
    api.post("/Users").mock(return_value=httpx.Response(409, json={"detail": "exists", "scimType": "uniqueness"}))
    api.get("/Users").mock(return_value=listing([{"id": "u-1", "userName": "alice@acme.io"}], 1))
    assert client.create("Users", {"userName": "alice@acme.io"},
                         lambda: client.find_user("alice@acme.io"))["id"] == "u-1"


# --- reads ----------------------------------------------------------------------------------------

def test_paging_stops_on_total_results(client: ScimClient, api: respx.MockRouter) -> None:
    client.caps.max_results = 2

    def page(request: httpx.Request) -> httpx.Response:
        q = parse_qs(request.url.query.decode())
        start, count = int(q["startIndex"][0]), int(q["count"][0])
        return listing([u(i) for i in range(start, min(start + count, 6))], 5, start)

    route = api.get("/Users").mock(side_effect=page)
    users, pages = client.list_all("Users")
    assert [x["id"] for x in users] == ["1", "2", "3", "4", "5"]
    assert pages == route.call_count == 3


def test_server_returning_page_one_past_the_end(client: ScimClient, api: respx.MockRouter) -> None:
    """A provider that ignores a startIndex past the end (and overstates totalResults) answers page 1 again."""
    client.caps.max_results = 2

    def page(request: httpx.Request) -> httpx.Response:
        start = int(parse_qs(request.url.query.decode())["startIndex"][0])
        if start > 3:
            start = 1
        return listing([u(i) for i in range(start, min(start + 2, 4))], 10, start)

    route = api.get("/Users").mock(side_effect=page)
    users, _ = client.list_all("Users")
    assert [x["id"] for x in users] == ["1", "2", "3"]
    # the pages its total promises are asked for at once (10 at 2 a page: 5), and no more
    assert route.call_count == 5


def test_server_capping_the_page_size(client: ScimClient, api: respx.MockRouter) -> None:
    client.caps.max_results = 100

    def page(request: httpx.Request) -> httpx.Response:
        start = int(parse_qs(request.url.query.decode())["startIndex"][0])
        return listing([u(i) for i in range(start, min(start + 3, 8))], 7, start)  # 3 per page, whatever we ask

    api.get("/Users").mock(side_effect=page)
    users, pages = client.list_all("Users")
    assert [x["id"] for x in users] == [str(i) for i in range(1, 8)] and pages == 3


def test_group_names_keep_when_each_group_was_made(client: ScimClient, api: respx.MockRouter) -> None:
    """Of two groups of one name every apply keeps the one made first: the listing that tells the names
    keeps meta.created, else each apply would fall back to the ids and two applies could keep one each."""
    made = [{"id": "b", "displayName": "leads", "meta": {"created": "2026-12-04T02:13:01.1Z", "version": 'W/"1"',
                                                         "location": "https://x/Groups/b"}},
            {"id": "a", "displayName": "leads", "meta": {"created": "2026-12-04T02:13:01.2Z", "version": 'W/"1"',
                                                         "location": "https://x/Groups/a"}}]
    api.get("/Groups").mock(return_value=listing(made, 2))
    from reconciler.providers.scim.apply import _oldest
    names = client.group_names()
    assert [g["meta"].get("created") for g in names["leads"]] == ["2026-12-04T02:13:01.1Z", "2026-12-04T02:13:01.2Z"]
    assert _oldest(names["leads"])["id"] == "b"  # type: ignore[index]


@pytest.mark.parametrize("answer", [
    [{"id": "2", "userName": "bob@acme.io"}, {"id": "1", "userName": "ALICE@acme.io"}],  # filter ignored
    [],  # a case-sensitive filter that misses
], ids=["filter ignored", "case-sensitive filter"])
def test_lookup_matches_user_name_case_insensitively(client: ScimClient, api: respx.MockRouter,
                                                     answer: list[dict[str, Any]]) -> None:
    api.get("/Users").mock(return_value=listing(answer, len(answer)))
    found = client.find_user("alice@acme.io")
    assert (found or {}).get("id") == ("1" if answer else None)


def test_discovery(client: ScimClient, api: respx.MockRouter) -> None:
    api.get("/ServiceProviderConfig").mock(return_value=httpx.Response(200, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": False}, "bulk": {"supported": True, "maxOperations": 50, "maxPayloadSize": 1000},
        "filter": {"supported": True, "maxResults": 250}, "changePassword": {"supported": False},
        "sort": {"supported": False}, "etag": {"supported": True}, "authenticationSchemes": []}))
    caps = client.discover()
    assert (caps.patch, caps.bulk, caps.bulk_max_operations, caps.etag, caps.max_results) == (False, True, 50,
                                                                                              True, 250)
    assert client.page_size() == 250


def test_no_service_provider_config_assumes_defaults(client: ScimClient, api: respx.MockRouter) -> None:
    api.get("/ServiceProviderConfig").mock(return_value=httpx.Response(404))
    caps = client.discover()
    assert caps.patch and not caps.discovered and "assumed" in caps.describe()


# --- group membership -----------------------------------------------------------------------------

def test_member_removal_falls_back_to_the_value_list(client: ScimClient, api: respx.MockRouter) -> None:
    bodies: list[dict[str, Any]] = []

    def patch(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if any("[" in op.get("path", "") for op in body["Operations"]):
            return httpx.Response(400, json={"detail": "unsupported path", "scimType": "invalidPath"})
        return httpx.Response(204)

    api.patch("/Groups/g").mock(side_effect=patch)
    client.patch_members("g", ["u3"], ["u1"], [])
    assert bodies[0]["Operations"] == [{"op": "add", "path": "members", "value": [{"value": "u3"}]},
                                       {"op": "remove", "path": 'members[value eq "u1"]'}]
    assert bodies[1]["Operations"] == [{"op": "add", "path": "members", "value": [{"value": "u3"}]},
                                       {"op": "remove", "path": "members", "value": [{"value": "u1"}]}]
    client.patch_members("g", [], ["u2"], [])  # the provider's preference is remembered
    assert bodies[2]["Operations"] == [{"op": "remove", "path": "members", "value": [{"value": "u2"}]}]
    assert len(bodies) == 3


def test_member_removal_other_errors_are_not_retried_in_another_form(client: ScimClient,
                                                                     api: respx.MockRouter) -> None:
    route = api.patch("/Groups/g").mock(return_value=httpx.Response(403))
    with pytest.raises(AuthError):
        client.patch_members("g", [], ["u1"], [])
    assert route.call_count == 1


# --- retries -------------------------------------------------------------------------------------

def test_429_honours_retry_after(client: ScimClient, api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/Users/1").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"id": "1"}),
    ])
    assert client.get("Users", "1") == {"id": "1"}
    assert sleeps == [7.0, 2.0] and route.call_count == 3


def test_503_then_success(client: ScimClient, api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.patch("/Users/1").mock(side_effect=[httpx.Response(503), httpx.Response(204)])
    client.patch("Users", "1", [])
    assert route.call_count == 2 and len(sleeps) == 1 and 0 < sleeps[0] <= 0.5


def test_persistent_500_is_one_clear_error(client: ScimClient, api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get("/Users").mock(return_value=httpx.Response(500, json={"detail": "database is down"}))
    with pytest.raises(ServerError) as info:
        client.list_all("Users")
    text = str(info.value)
    assert "\n" not in text and "HTTP 500" in text and "database is down" in text
    assert len(sleeps) == 4  # five attempts


def test_unreachable_after_retries(client: ScimClient, api: respx.MockRouter, sleeps: list[float]) -> None:
    api.get("/Users").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(ConnectError, match="cannot reach platform: connection refused"):
        client.list_all("Users")
    assert len(sleeps) == 4


def test_4xx_is_not_retried(client: ScimClient, api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.patch("/Users/1").mock(return_value=httpx.Response(400, json={"detail": "bad op"}))
    with pytest.raises(ServerError, match="bad op"):
        client.patch("Users", "1", [])
    assert route.call_count == 1 and sleeps == []


# --- OAuth 2.0 client credentials ---------------------------------------------------------------

@pytest.fixture
def oauth_client(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> Iterator[ScimClient]:
    monkeypatch.setenv("CLIENT_SECRET", "client-secret-5678")
    p = provider(auth={"type": "oauth2", "token_url": TOKEN_URL, "client_id": "reconciler",
                       "client_secret": "${env:CLIENT_SECRET}", "audience": "https://scim.example.test",
                       "scope": "scim.write"})
    c = connect(p, sleep=sleeps.append)
    yield c
    c.close()


def test_oauth2_token_fetched_once_cached_and_refreshed_after_401(oauth_client: ScimClient) -> None:
    issued: list[str] = []

    def token(request: httpx.Request) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        return httpx.Response(200, json={"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600})

    with respx.mock(assert_all_called=True) as router:
        token_route = router.post(TOKEN_URL).mock(side_effect=token)
        seen: list[str] = []

        def users(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers["Authorization"])
            if len(seen) == 3:  # the server revoked the first token
                return httpx.Response(401)
            return httpx.Response(200, json={"id": "1"})

        router.get(f"{BASE}/Users/1").mock(side_effect=users)
        for _ in range(3):
            assert oauth_client.get("Users", "1") == {"id": "1"}
    assert seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert token_route.call_count == 2
    # client_secret_basic by default (RFC 6749 §2.3.1): the credentials in the header, not the body
    request = token_route.calls[0].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"reconciler:client-secret-5678").decode()
    form = parse_qs(request.content.decode())
    assert form == {"grant_type": ["client_credentials"], "audience": ["https://scim.example.test"],
                    "scope": ["scim.write"]}


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_oauth2_client_auth_methods(monkeypatch: pytest.MonkeyPatch, sleeps: list[float], client_auth: str) -> None:
    # a secret with characters that RFC 6749 §2.3.1 form-encodes before the base64
    monkeypatch.setenv("CLIENT_SECRET", "s3cret:+/ %=x")
    p = provider(auth={"type": "oauth2", "token_url": TOKEN_URL, "client_id": "svc id",
                       "client_secret": "${env:CLIENT_SECRET}", "client_auth": client_auth})
    c = connect(p, sleep=sleeps.append)
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "tok-abcdefgh"}))
        router.get(f"{BASE}/Users/1").mock(return_value=httpx.Response(200, json={"id": "1"}))
        assert c.get("Users", "1") == {"id": "1"}
    c.close()
    request = route.calls[0].request
    form = parse_qs(request.content.decode())
    if client_auth == "client_secret_basic":
        pair = base64.b64decode(request.headers["Authorization"].removeprefix("Basic ")).decode()
        assert pair == "svc%20id:s3cret%3A%2B%2F%20%25%3Dx"
        assert form == {"grant_type": ["client_credentials"]}
        assert redact(request.headers["Authorization"]) == "Basic ***"
    else:
        assert "Authorization" not in request.headers
        assert form == {"grant_type": ["client_credentials"], "client_id": ["svc id"],
                        "client_secret": ["s3cret:+/ %=x"]}
        assert redact(request.content.decode()) == "grant_type=client_credentials&client_id=svc+id&client_secret=***"


def test_oauth2_refused_credentials(oauth_client: ScimClient) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
        with pytest.raises(AuthError) as info:
            oauth_client.get("Users", "1")
    assert "refused the client credentials" in str(info.value) and "invalid_client" in str(info.value)
    assert "client-secret-5678" not in str(info.value)


# --- payloads ------------------------------------------------------------------------------------

def test_user_payloads_for_extra_attributes() -> None:
    after = {"userName": "a@acme.io", "emails": "a@acme.io", "active": True, "externalId": "reconciler:a@acme.io",
             "nickName": "ali", "name.middleName": "B",
             "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "42"}
    body = user_body(after, {})
    assert body["nickName"] == "ali" and body["name"] == {"middleName": "B"}
    assert body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {"costCenter": "42"}
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in body["schemas"]
    ops = user_ops([AttributeChange("nickName", "al", "ali"), AttributeChange("title", "x", None)], {})
    assert ops == [{"op": "replace", "path": "nickName", "value": "ali"}, {"op": "remove", "path": "title"}]


def test_a_server_that_cannot_take_count_is_read_without_it(client: ScimClient, api: respx.MockRouter,
                                                            sleeps: list[float]) -> None:
    """Canaille 0.3.6 answers 500 to ?count=N: the first list call's 500 is answered at once by the same call
    without count (no retries, no waits), every later call leaves count out, and paging by the server's own
    page size (3 here) still ends on the total."""
    people = [{"id": str(i), "userName": f"u{i}@acme.io"} for i in range(7)]
    seen: list[dict[str, str]] = []

    def users(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        seen.append(q)
        if "count" in q:
            return httpx.Response(500, text="A server error occurred.")
        start = int(q.get("startIndex", "1"))
        return listing(people[start - 1:start + 2], len(people), start)

    api.get("/Users").mock(side_effect=users)
    found, pages = client.list_all("Users")
    assert [u["id"] for u in found] == [str(i) for i in range(7)] and pages == 3
    assert "count" in seen[0] and all("count" not in q for q in seen[1:]) and len(seen) == 4
    assert sleeps == []
    assert client.get_list("Users", {"startIndex": "1", "count": "1"})["totalResults"] == 7  # count not sent
    assert "count" not in seen[-1]


@pytest.mark.parametrize("status", [403, 500, 501])
def test_a_provider_whose_schemas_fail_is_planned_as_declared_with_a_note(client: ScimClient, api: respx.MockRouter,
                                                                         status: int) -> None:
    route = api.get("/Schemas").mock(return_value=httpx.Response(status))
    assert client.schema() is None and client.schema() is None
    assert client.caps.schema_note == f"/Schemas cannot be read (HTTP {status})"
    assert route.call_count == (5 if status == 500 else 1)  # read once (a 500 retried as any call is)


def test_a_401_on_schemas_is_an_authentication_error(client: ScimClient, api: respx.MockRouter) -> None:
    api.get("/Schemas").mock(return_value=httpx.Response(401))
    with pytest.raises(AuthError):
        client.schema()


def test_a_listed_user_keeps_what_a_plan_reads_and_its_digest() -> None:
    import copy

    from reconciler.providers.scim.attributes import digest, live_user, precondition
    from reconciler.providers.scim.client import Capabilities
    from reconciler.providers.scim.wire import trim_user

    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "u1", "userName": "a@acme.io",
            "name": {"givenName": "A"}, "emails": [{"value": "a@acme.io", "primary": True}], "active": True,
            "groups": [{"value": "g1", "$ref": "https://x/Groups/g1", "display": "appsec"}],
            "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z", "version": 'W/"3"',
                     "location": "https://x/Users/u1"}}
    trimmed = trim_user(copy.deepcopy(user))
    assert "groups" not in trimmed and trimmed["meta"] == {"version": 'W/"3"'}
    assert digest(trimmed) == digest(user)
    assert live_user(trimmed, {}) == live_user(user, {})
    for caps in (Capabilities(etag=True), Capabilities(etag=False)):
        assert precondition(trimmed, caps) == precondition(user, caps)
    no_version = trim_user({"id": "u2", "meta": {"created": "x", "location": "y"}})
    assert no_version["meta"] == {}


def test_listed_users_share_what_repeats_and_keep_their_digests() -> None:
    """One read's users keep one copy of what repeats (schemas, an email's type, a short version) and a
    primary email that is the userName is its text; digests, live values and preconditions are those of
    the users as they came. The texts kept are bounded."""
    import copy
    import json

    from reconciler.providers.scim.attributes import digest, live_user, precondition
    from reconciler.providers.scim.client import ENTERPRISE, Capabilities
    from reconciler.providers.scim.wire import Shared, trimmer

    page = json.loads(json.dumps([
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE], "id": f"u{i}",
         "userName": f"user{i}@acme.io", "emails": [{"value": f"user{i}@acme.io", "type": "work", "primary": True},
                                                    {"value": f"other{i}@acme.io", "type": "home"}],
         "meta": {"version": 'W/"3"' if i else "W/" + "x" * 40, "created": "2026-01-01T00:00:00Z"},
         ENTERPRISE: {"department": "Dept"}} for i in range(3)]))
    before = copy.deepcopy(page)
    trim = trimmer("Users")
    got = [trim(u) for u in page]
    assert got[1]["schemas"] is got[2]["schemas"] and list(got[1]["schemas"]) == before[1]["schemas"]
    assert got[1]["emails"][0]["type"] is got[2]["emails"][0]["type"]
    assert got[1]["meta"]["version"] is got[2]["meta"]["version"]
    assert got[1]["emails"][0]["value"] is got[1]["userName"]
    assert got[1]["emails"][1]["value"] == "other1@acme.io"
    for mine, theirs in zip(got, before, strict=True):
        assert digest(mine) == digest(theirs) and live_user(mine, {}) == live_user(theirs, {})
        for caps in (Capabilities(etag=True), Capabilities(etag=False)):
            assert precondition(mine, caps) == precondition(theirs, caps)
    shared = Shared()
    for i in range(Shared.LIMIT + 10):
        shared.one(f"v{i}")
    assert len(shared._kept) == Shared.LIMIT
    assert shared.seq(["a", 1]) == ["a", 1]  # not texts: left as it is


def test_a_listed_group_keeps_its_members_values_and_its_digest() -> None:
    """A group's members are kept by value; its digest is the same from a page (trimmed) and from a GET,
    and a change of membership still changes it."""
    import copy

    from reconciler.providers.scim.attributes import digest, live_group
    from reconciler.providers.scim.wire import share_ids, trim_group

    group: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "appsec",
        "members": [{"value": "u1", "$ref": "https://x/Users/u1", "display": "A", "type": "User"},
                    {"value": "u2", "$ref": "https://x/Users/u2"}],
        "meta": {"resourceType": "Group", "version": 'W/"7"', "location": "https://x/Groups/g1",
                 "created": "2026-12-04T02:13:01.378829Z"}}
    trimmed = trim_group(copy.deepcopy(group))
    assert trimmed["members"] == ("u1", "u2")
    # the version is the ETag; when it was made decides which of two groups of one name every apply keeps
    assert trimmed["meta"] == {"version": 'W/"7"', "created": "2026-12-04T02:13:01.378829Z"}
    assert digest(trimmed) == digest(group)
    p = provider()
    names = {"u1": "a@acme.io", "u2": "b@acme.io"}
    assert live_group(trimmed, names, p) == live_group(group, names, p)
    assert digest({**group, "members": group["members"][:1]}) != digest(group)
    users = [{"id": "".join(["u", "1"])}]
    odd = trim_group({"members": [{"value": ["not", "an", "id"]}, "odd", {"display": "no value"}]})
    assert odd["members"] == (["not", "an", "id"], None)  # "odd" is no member; a value-less one is id:None
    share_ids(users, [trimmed, odd, {"members": None}])
    assert trimmed["members"][0] is users[0]["id"]
    # what is not a member is none from a page and from a GET alike
    junk = {**group, "members": [*group["members"], "odd", 7]}
    assert digest(trim_group(copy.deepcopy(junk))) == digest(junk) == digest(group)
    assert live_group(trim_group(copy.deepcopy(junk)), names, p) == live_group(junk, names, p)


def test_an_answer_read_is_freed_without_the_garbage_collector() -> None:
    """A streamed httpx response and its stream refer to each other; the client breaks that cycle once
    the body is read, so a page's bytes go when the caller drops the answer, not at a full gc pass."""
    import gc
    import weakref

    from reconciler.providers._http import Http

    client = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(200, json={"a": "x" * 1000})),
                          base_url="http://127.0.0.1:1")
    http = Http(client, "p", sleep=lambda s: None)
    gc.disable()
    try:
        r = http.request("GET", "Users", what="list")
        assert r.json() == {"a": "x" * 1000}
        gone = weakref.ref(r)
        del r
        assert gone() is None
    finally:
        gc.enable()
