"""The Jira wire client over respx: paging, ID chunking, cursors; and the pure diff of settings."""

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
def test_cloud_priorities_are_read_page_by_page(respx_mock: respx.MockRouter) -> None:
    pages = [{"startAt": 0, "isLast": False, "values": [{"id": "1", "name": "Highest"}, {"id": "2", "name": "High"}]},
             {"startAt": 2, "isLast": True, "values": [{"id": "3", "name": "Low"}]}]
    route = respx_mock.get(f"{CLOUD}/rest/api/3/priority/search").mock(
        side_effect=[httpx.Response(200, json=p) for p in pages])
    assert [p["name"] for p in client(True).priorities()] == ["Highest", "High", "Low"]
    starts = [parse_qs(c.request.url.query.decode())["startAt"] for c in route.calls]
    assert starts == [["0"], ["2"]]


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
def test_datacenter_users_follow_the_cursor(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{DC}/rest/api/2/user/list").mock(side_effect=[
        httpx.Response(200, json={"isLast": False, "nextCursor": "2", "values": [{"name": "Alice"}, {"name": "x"}]}),
        httpx.Response(200, json={"isLast": True, "values": [{"name": "bob", "active": False}]}),
    ])
    found = client(False).users(["alice", "bob", "carol"])
    assert set(found) == {"alice", "bob"}  # usernames match case-insensitively
    assert "cursor" not in parse_qs(route.calls[0].request.url.query.decode())
    assert parse_qs(route.calls[1].request.url.query.decode())["cursor"] == ["2"]


@pytest.mark.parametrize("before,after,expected", [
    ({"a": 1}, {"a": 1}, []),
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, [("a.c", 2, 3)]),
    ({"a": {"b": 1}}, {"a": {}}, [("a", None, {}), ("a.b", 1, None)]),
    ({"labels": ["x"]}, {"labels": ["x", "y"]}, [("labels", ["x"], ["x", "y"])]),
    (None, {"k": 1}, [("k", None, 1)]),
])
def test_diff_values(before: object, after: object, expected: list[tuple[str, object, object]]) -> None:
    assert [(d.path, d.before, d.after) for d in diff_values(before, after)] == expected
