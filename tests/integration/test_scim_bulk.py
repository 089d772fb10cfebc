"""SCIM Bulk creates (RFC 7644 §3.7) against a real scim2-server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.apply import apply_plan
from reconciler.config.loader import load_config
from reconciler.providers._http import CallRecord
from reconciler.providers.scim import bulk_chunks, client_for
from reconciler.session import Session
from tests.faultproxy import Fault, fault_proxy
from tests.servers import ScimServer


def _users(scim: ScimServer) -> list[dict[str, Any]]:
    with scim.client() as c:
        body: dict[str, Any] = c.get("Users", params={"count": "1000"}).json()
    return list(body.get("Resources") or [])


def _groups(scim: ScimServer) -> list[dict[str, Any]]:
    with scim.client() as c:
        body: dict[str, Any] = c.get("Groups", params={"count": "1000"}).json()
    return list(body.get("Resources") or [])


def _org(n: int, teams: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    members: list[dict[str, Any]] = [{"email": f"m{i:03d}@acme.io", "given_name": f"M{i}"} for i in range(n)]
    members[1]["manager"] = "m000@acme.io"
    ts = [{"name": f"team-{t}", "members": [f"m{i:03d}@acme.io" for i in range(t, n, teams)]} for t in range(teams)]
    return members, ts


def _calls(records: list[CallRecord], method: str, suffix: str) -> int:
    return sum(1 for r in records if r.method == method and r.path.endswith(suffix))


def test_creates_go_through_bulk_and_converge(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members, teams = _org(30, 3)
    config = load_config(write_config(scim.base_url, members=members, teams=teams))
    records: list[CallRecord] = []
    with Session(config, recorder=records.append) as s:
        plan = s.plan()
        result = apply_plan(s, plan)
    assert result.failures == {}
    # teams in one request; members in two waves: everyone but m001, then m001 (whose manager is
    # created in the first) alone, by a plain POST as one create gains nothing from Bulk; then the new
    # teams' members in one more Bulk request (a PATCH operation per team), not a PATCH request each
    assert _calls(records, "POST", "/Bulk") == 3
    assert sum(1 for r in records if r.method == "PATCH") == 0
    assert [r.address for r in records if r.method == "POST" and r.path.endswith("/Users")] == [
        'scim.platform.user["m001@acme.io"]']
    assert _calls(records, "POST", "/Groups") == 0
    users = _users(scim)
    assert sorted(u["userName"] for u in users) == [m["email"] for m in members]
    by_id = {u["id"]: u["userName"] for u in users}
    manager = next(u for u in users if u["userName"] == "m001@acme.io")
    ent = manager["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]
    assert by_id[ent["value"]] == "m000@acme.io"
    groups = {g["displayName"]: sorted(by_id[x["value"]] for x in g.get("members", [])) for g in _groups(scim)}
    assert groups == {t["name"]: sorted(t["members"]) for t in teams}
    with Session(config) as s:
        assert s.plan().changes == []


def test_requests_are_chunked_to_max_operations(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    members = [f"u{i:02d}@acme.io" for i in range(23)]
    config = load_config(write_config(scim.base_url, members=members))
    records: list[CallRecord] = []
    with Session(config, recorder=records.append) as s:
        plan = s.plan()
        client_for(s, "platform").caps.bulk_max_operations = 5
        result = apply_plan(s, plan)
    assert result.failures == {}
    assert _calls(records, "POST", "/Bulk") == 5  # 5 + 5 + 5 + 5 + 3
    assert len(_users(scim)) == 23


def test_bulk_never_sends_one_request_per_create(scim: ScimServer, write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(scim.base_url, members=["a@acme.io", "b@acme.io", "c@acme.io"],
                                      bulk="never"))
    records: list[CallRecord] = []
    with Session(config, recorder=records.append) as s:
        assert apply_plan(s, s.plan()).failures == {}
    assert _calls(records, "POST", "/Bulk") == 0
    assert _calls(records, "POST", "/Users") == 3


def test_a_failed_operation_is_reported_for_its_change_only(scim: ScimServer,
                                                            write_config: Callable[..., Path]) -> None:
    members: list[Any] = ["a@acme.io", "b@acme.io", {"email": "bad@acme.io", "attributes": {"nickName": 7}},
                          "c@acme.io"]
    config = load_config(write_config(scim.base_url, members=members))
    with Session(config) as s:
        result = apply_plan(s, s.plan())
    assert list(result.failures) == ['scim.platform.user["bad@acme.io"]']
    assert "bulk operation" in result.failures['scim.platform.user["bad@acme.io"]']
    assert "HTTP 400" in result.failures['scim.platform.user["bad@acme.io"]']
    assert sorted(u["userName"] for u in _users(scim)) == ["a@acme.io", "b@acme.io", "c@acme.io"]


def test_a_member_created_since_the_plan_is_adopted_not_duplicated(scim: ScimServer,
                                                                   write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(scim.base_url, members=["a@acme.io", "b@acme.io", "c@acme.io"]))
    with Session(config) as s:
        plan = s.plan()
        with scim.client() as c:  # someone else creates b between plan and apply
            c.post("Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                  "userName": "b@acme.io"}).raise_for_status()
        result = apply_plan(s, plan)
    assert result.failures == {}
    assert sorted(u["userName"] for u in _users(scim)) == ["a@acme.io", "b@acme.io", "c@acme.io"]


def test_a_lost_bulk_answer_is_not_resent_and_makes_no_duplicate(scim: ScimServer,
                                                                 write_config: Callable[..., Path]) -> None:
    teams = [{"name": f"t{i}", "members": []} for i in range(4)]
    members = [f"u{i}@acme.io" for i in range(6)]
    with fault_proxy(scim.base_url, [Fault("lose", path="/Bulk$", methods=("POST",))]) as proxy:
        config = load_config(write_config(proxy.url, members=members, teams=teams))
        with Session(config, sleep=lambda s: None) as s:
            result = apply_plan(s, s.plan())
        assert result.failures == {}
        assert proxy.count("lose") == 2  # the groups' Bulk and the users' Bulk, each sent once
        assert proxy.count(None, "POST", "/Bulk") == 0
    # groups have no unique name on scim2-server: a re-sent request would have made duplicates
    assert sorted(g["displayName"] for g in _groups(scim)) == ["t0", "t1", "t2", "t3"]
    assert sorted(u["userName"] for u in _users(scim)) == members


def test_chunks_respect_the_payload_limit() -> None:
    items = [(f"b{i}", {"userName": "x" * 100}) for i in range(10)]
    chunks = list(bulk_chunks("Users", items, max_ops=1000, max_bytes=600))
    assert sum(len(c.items) for c in chunks) == 10
    assert [bid for c in chunks for bid, _ in c.items] == [f"b{i}" for i in range(10)]
    assert all(len(c.items) <= 3 for c in chunks) and len(chunks) >= 4
    # the size counted is the size sent, and a chunk is as full as the limit lets it be
    assert all(len(c.payload()) <= 600 for c in chunks)
    assert all(len(a.payload()) + len(b.ops[0]) + 1 > 600 for a, b in zip(chunks, chunks[1:], strict=False))
    assert len(list(bulk_chunks("Users", items, max_ops=4, max_bytes=10**6))) == 3
    # an operation larger than the limit still goes, alone
    assert [len(c.items) for c in bulk_chunks("Users", [("big", {"x": "y" * 5000})], 10, 100)] == [1]


def test_a_chunk_sends_the_bulk_request_of_its_items() -> None:
    items = [(f"u{i}", {"userName": f"ü{i}@acme.io", "active": True}) for i in range(3)]
    (chunk,) = list(bulk_chunks("Users", items, max_ops=10, max_bytes=10**6))
    assert json.loads(chunk.payload()) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "POST", "path": "/Users", "bulkId": bid, "data": body} for bid, body in items]}


def test_updates_deactivations_and_removals_go_through_bulk(scim: ScimServer,
                                                            write_config: Callable[..., Path]) -> None:
    """After the creates, the other writes of a phase are Bulk operations too: member updates (PATCH),
    deactivations (PATCH active: false) and team removals (DELETE), and the result converges."""
    members = [{"email": f"m{i:03d}@acme.io", "given_name": f"M{i}"} for i in range(12)]
    teams = [{"name": f"team-{t}", "members": [f"m{t:03d}@acme.io"]} for t in range(4)]
    with Session(load_config(write_config(scim.base_url, members=members, teams=teams))) as s:
        assert apply_plan(s, s.plan()).failures == {}
    changed = [{**m, "given_name": "Renamed"} if i < 6 else m for i, m in enumerate(members[:10])]
    config = load_config(write_config(scim.base_url, members=changed, teams=teams[:1], folder="next"))
    records: list[CallRecord] = []
    with Session(config, recorder=records.append) as s:
        plan = s.plan(allow_removals=10)
        assert sorted(c.action.value for c in plan.changes) == ["deactivate"] * 2 + ["delete"] * 3 + ["update"] * 6
        result = apply_plan(s, plan)
    assert result.failures == {}
    assert sum(1 for r in records if r.method in ("PATCH", "DELETE")) == 0
    assert _calls(records, "POST", "/Bulk") == 3  # updates; team removals; deactivations
    users = {u["userName"]: u for u in _users(scim)}
    assert [users[f"m{i:03d}@acme.io"]["name"]["givenName"] for i in range(7)] == ["Renamed"] * 6 + ["M6"]
    assert [users[f"m{i:03d}@acme.io"].get("active") for i in (10, 11)] == [False, False]
    assert sorted(g["displayName"] for g in _groups(scim)) == ["team-0"]
    with Session(config) as s:
        assert s.plan(allow_removals=10).changes == []


def test_a_lost_answer_to_a_bulk_of_updates_sends_each_alone(scim: ScimServer,
                                                            write_config: Callable[..., Path]) -> None:
    members = [{"email": f"m{i}@acme.io", "given_name": "Old"} for i in range(5)]
    with Session(load_config(write_config(scim.base_url, members=members))) as s:
        assert apply_plan(s, s.plan()).failures == {}
    renamed = [{**m, "given_name": "New"} for m in members]
    with fault_proxy(scim.base_url, [Fault("lose", path="/Bulk$", methods=("POST",))]) as proxy:
        config = load_config(write_config(proxy.url, members=renamed, folder="next"))
        with Session(config, sleep=lambda s: None) as s:
            result = apply_plan(s, s.plan())
        assert result.failures == {}
        # sent once, and made by the server: each member is read (its ETag moved, to what the plan wants)
        assert proxy.count("lose") == 1 and proxy.count(None, "PATCH", "/Users/") == 0
    assert {u["name"]["givenName"] for u in _users(scim)} == {"New"}
