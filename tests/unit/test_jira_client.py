"""The Jira wire client over respx: paging, ID chunking, lookups; and the pure diff of settings."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest
import respx

from reconciler.integrations.models import JiraCloudConnection, JiraDataCenterConnection
from reconciler.providers._http import Http, build_client
from reconciler.providers.jira import USER_CHUNK, JiraClient, diff_values

CLOUD = "https://acme.atlassian.net"
DC = "https://jira.acme.io"


def client(cloud: bool) -> JiraClient:
    conn: JiraCloudConnection | JiraDataCenterConnection
    if cloud:
        conn = JiraCloudConnection(name="c", type="jira-cloud", site_url=CLOUD, email="i@acme.io",
                                   api_token="${env:X}")
    else:
        conn = JiraDataCenterConnection(name="d", type="jira-datacenter", base_url=DC, token="${env:X}")
    return JiraClient(Http(build_client(conn.url, auth=None, timeout=5), conn.name, sleep=lambda s: None), conn)


@respx.mock(assert_all_called=True)
def test_cloud_resolutions_are_read_page_by_page(respx_mock: respx.MockRouter) -> None:
    pages = [{"startAt": 0, "isLast": False, "values": [{"id": "1", "name": "Done"}, {"id": "2", "name": "Fixed"}]},
             {"startAt": 2, "isLast": True, "values": [{"id": "3", "name": "Duplicate"}]}]
    route = respx_mock.get(f"{CLOUD}/rest/api/3/resolution/search").mock(
        side_effect=[httpx.Response(200, json=p) for p in pages])
    assert [p["name"] for p in client(True).resolutions()] == ["Done", "Fixed", "Duplicate"]
    starts = [parse_qs(c.request.url.query.decode())["startAt"] for c in route.calls]
    assert starts == [["0"], ["2"]]


@pytest.mark.parametrize("cloud,key", [(True, "fields"), (True, "results"), (False, "values")])
@respx.mock(assert_all_called=True)
def test_the_create_screen_is_read_page_by_page_under_either_key(respx_mock: respx.MockRouter, cloud: bool,
                                                                 key: str) -> None:
    base = f"{CLOUD}/rest/api/3" if cloud else f"{DC}/rest/api/2"
    pages = [{"startAt": 0, "maxResults": 2, "total": 3, key: [{"fieldId": "summary"}, {"fieldId": "labels"}]},
             {"startAt": 2, "maxResults": 2, "total": 3, key: [{"fieldId": "priority"}]}]
    respx_mock.get(f"{base}/issue/createmeta/SEC/issuetypes/10004").mock(
        side_effect=[httpx.Response(200, json=p) for p in pages])
    assert [f["fieldId"] for f in client(cloud).create_fields("SEC", "10004")] == ["summary", "labels", "priority"]


@respx.mock(assert_all_called=True)
def test_cloud_accounts_are_looked_up_in_chunks(respx_mock: respx.MockRouter) -> None:
    ids = [f"acc-{n:03d}" for n in range(USER_CHUNK + 10)]

    def answer(request: httpx.Request) -> httpx.Response:
        asked = parse_qs(request.url.query.decode())["accountId"]
        return httpx.Response(200, json={"isLast": True, "values": [{"accountId": a, "active": True}
                                                                    for a in asked if a != "acc-005"]})
    route = respx_mock.get(f"{CLOUD}/rest/api/3/user/bulk").mock(side_effect=answer)
    found = client(True).users(ids)
    assert len(route.calls) == 2
    assert len(found) == len(ids) - 1 and "acc-005" not in found


@respx.mock(assert_all_called=True)
def test_datacenter_users_are_looked_up_one_by_one_never_listed(respx_mock: respx.MockRouter) -> None:
    """/user/list exists only from Data Center 10.3 and lists every user: each mapped user is looked up by
    username instead, several at once, so requests follow the config, not the size of the instance."""
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        name = parse_qs(request.url.query.decode())["username"][0]
        seen.append(name)
        if name == "carol":
            return httpx.Response(404, json={"errorMessages": ["The user named 'carol' does not exist"]})
        return httpx.Response(200, json={"name": name, "key": f"JIRAUSER1{len(name)}", "active": name != "bob"})
    route = respx_mock.get(f"{DC}/rest/api/2/user").mock(side_effect=answer)
    c = client(False)
    found = c.users(["alice", "bob", "carol", "alice"])
    assert set(found) == {"alice", "bob"} and found["bob"]["active"] is False
    assert sorted(seen) == ["alice", "bob", "carol"] and len(route.calls) == 3
    assert c.user_keys == {"JIRAUSER15": "alice", "JIRAUSER13": "bob"}
    assert c.username_of("JIRAUSER15") == "alice" and c.username_of("dave") == "dave"


@pytest.mark.parametrize("before,after,expected", [
    ({"a": 1}, {"a": 1}, []),
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, [("a.c", 2, 3)]),
    ({"a": {"b": 1}}, {"a": {}}, [("a", None, {}), ("a.b", 1, None)]),
    ({"labels": ["x"]}, {"labels": ["x", "y"]}, [("labels", ["x"], ["x", "y"])]),
    (None, {"k": 1}, [("k", None, 1)]),
])
def test_diff_values(before: object, after: object, expected: list[tuple[str, object, object]]) -> None:
    assert [(d.path, d.before, d.after) for d in diff_values(before, after)] == expected
