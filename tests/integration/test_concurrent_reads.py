"""Concurrent paged reads against a real scim2-server, through the fault proxy on 127.0.0.1 (real sockets):
the pages after the first are fetched at once, bounded by the provider's concurrency, and the result is
what a sequential read gives; a server that changes during the read is read again, and one that never
holds still is named in the plan."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.config.loader import load_config
from reconciler.providers.scim import client_for
from reconciler.session import Session
from tests.faultproxy import Fault, fault_proxy
from tests.servers import ScimServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PAGE = 10


def seed(scim: ScimServer, users: int, groups: int) -> list[str]:
    """Unmanaged users and groups on the server (created directly); the users' ids in creation order."""
    ids: list[str] = []
    with scim.client() as c:
        for i in range(users):
            r = c.post("Users", json={"schemas": [USER], "userName": f"seed{i:04d}@acme.io"})
            r.raise_for_status()
            ids.append(r.json()["id"])
        for g in range(groups):
            c.post("Groups", json={"schemas": [GROUP], "displayName": f"seed-{g:03d}",
                                   "members": [{"value": ids[g]}]}).raise_for_status()
    return ids


def server_ids(scim: ScimServer, resource: str) -> list[str]:
    with scim.client() as c:
        body = c.get(resource, params={"count": "1000"}).json()
    return [r["id"] for r in body.get("Resources") or []]


def sequential(url: str, token: str, resource: str) -> list[str]:
    """What one page after another gives: the ids in order."""
    out: list[str] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        while True:
            body = c.get(f"{url}/{resource}", params={"startIndex": str(len(out) + 1), "count": str(PAGE)}).json()
            items = body.get("Resources") or []
            out += [r["id"] for r in items]
            if not items or len(out) >= body["totalResults"]:
                return out


def delete_user(scim: ScimServer, rid: str) -> None:
    with scim.client() as c:
        c.delete(f"Users/{rid}").raise_for_status()


def test_pages_are_read_at_once_within_the_concurrency_and_give_the_sequential_result(
        scim: ScimServer, write_config: Callable[..., Path]) -> None:
    seed(scim, 95, 25)
    # a delay on every list page: pages overlap only if they are asked for at once
    with fault_proxy(scim.base_url, [Fault("delay", seconds=0.15, methods=("GET",), path=r"/(Users|Groups)\?")]) \
            as proxy:
        cfg = write_config(proxy.url, page_size=PAGE, concurrency=4)
        with Session(load_config(cfg)) as s:
            live = client_for(s, "platform").read()
        assert 1 < proxy.max_in_flight <= 4
        assert proxy.count(method="GET", path="/Users?") == 10
        assert proxy.count(method="GET", path="/Groups?") == 3
    assert [u["id"] for u in live.users] == sequential(scim.base_url, scim.token, "Users")
    assert [g["id"] for g in live.groups] == sequential(scim.base_url, scim.token, "Groups")
    assert live.changed == []


@pytest.mark.parametrize("change", ["delete", "create"])
def test_a_server_changing_during_the_read_is_read_again(
        scim: ScimServer, write_config: Callable[..., Path], change: str) -> None:
    seed(scim, 60, 0)
    in_order = server_ids(scim, "Users")  # as the server pages them (scim2-server sorts by id)
    done = threading.Event()

    def meanwhile(method: str, path: str) -> None:
        # once, after the server answered the first page: an object of that page goes (the later pages shift
        # down by one, and a sequential read misses one object), or one comes in
        if done.is_set():
            return
        done.set()
        if change == "delete":
            delete_user(scim, in_order[3])
        else:
            with scim.client() as c:
                c.post("Users", json={"schemas": [USER], "userName": "late@acme.io"}).raise_for_status()

    first_page = Fault("then", methods=("GET",), path=r"/Users\?.*startIndex=1(&|$)", then=meanwhile, times=1)
    slow_rest = Fault("delay", seconds=0.2, methods=("GET",), path=r"/Users\?")
    with fault_proxy(scim.base_url, [first_page, slow_rest]) as proxy:
        cfg = write_config(proxy.url, page_size=PAGE, concurrency=3)
        with Session(load_config(cfg)) as s:
            live = client_for(s, "platform").read()
        reads = proxy.count(method="GET", path="/Users?startIndex=1&")
    assert done.is_set()
    assert sorted(u["id"] for u in live.users) == sorted(server_ids(scim, "Users"))
    assert reads == 2, "the list changed under the first read: it is read once more"
    assert live.changed == []


def test_a_server_that_never_holds_still_is_named_in_the_plan(
        scim: ScimServer, write_config: Callable[..., Path]) -> None:
    ids = seed(scim, 40, 0)
    gone = iter(ids)

    def meanwhile(method: str, path: str) -> None:
        delete_user(scim, next(gone))  # every read: one user goes after the first page is answered

    faults = [Fault("then", methods=("GET",), path=r"/Users\?.*startIndex=1(&|$)", then=meanwhile),
              Fault("delay", seconds=0.2, methods=("GET",), path=r"/Users\?")]
    with fault_proxy(scim.base_url, faults) as proxy:
        cfg = write_config(proxy.url, members=["kept@acme.io"], page_size=PAGE, concurrency=4)
        with Session(load_config(cfg)) as s:
            plan = s.plan()
        assert proxy.count(method="GET", path="/Users?startIndex=1&") == 3
    notes = [n for n in plan.notes if "changed while it was read" in n]
    assert len(notes) == 1 and re.search(r"provider 'platform': /Users changed while it was read \(3 reads", notes[0])
    assert [c.address for c in plan.changes] == ['scim.platform.user["kept@acme.io"]']


def test_a_server_that_answers_every_offset_with_the_first_page_gives_that_page_once(
        scim: ScimServer, write_config: Callable[..., Path]) -> None:
    seed(scim, 35, 0)

    def first_page_always(path: str, body: Any) -> Any:
        return body if "startIndex=1&" in path or not isinstance(body, dict) else {**body, "Resources": first}

    with scim.client() as c:
        first = c.get("Users", params={"startIndex": "1", "count": str(PAGE)}).json()["Resources"]
    with fault_proxy(scim.base_url, [Fault("rewrite", methods=("GET",), path=r"/Users\?",
                                           rewrite_for=first_page_always)]) as proxy:
        cfg = write_config(proxy.url, page_size=PAGE, concurrency=4)
        with Session(load_config(cfg)) as s:
            live = client_for(s, "platform").read()
        asked = proxy.count(method="GET", path="/Users?")
    assert [u["id"] for u in live.users] == [u["id"] for u in first]
    assert live.changed == []
    assert asked == 1 + 3  # the first page, then the three others its total promises, at once


@pytest.mark.parametrize("page_size", [PAGE, None])
def test_schemas_are_read_beside_the_lists(scim: ScimServer, write_config: Callable[..., Path],
                                           page_size: int | None) -> None:
    """/Schemas and /ResourceTypes do not wait for the list pages (with or without a page size of the
    provider's own), and the plan is the same."""
    seed(scim, 30, 5)
    spans: list[tuple[str, float, float]] = []  # (resource, start, end) of each call

    class Spans(httpx.BaseTransport):
        inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            start = time.monotonic()
            what = request.url.path.rsplit("/", 1)[-1]
            if what in ("Schemas", "ResourceTypes", "Users", "Groups"):
                time.sleep(0.1)  # calls made at once overlap here; calls made one after another never do
            r = self.inner.handle_request(request)
            r.read()
            spans.append((what, start, time.monotonic()))
            return r

    options = {"page_size": page_size} if page_size else {}
    cfg = write_config(scim.base_url, concurrency=2, **options)
    with Session(load_config(cfg), transports={"platform": Spans()}) as s:
        beside = s.plan()
    with Session(load_config(cfg)) as s:
        alone = s.plan()
    assert [c.address for c in beside.changes] == [c.address for c in alone.changes]
    schemas = [sp for sp in spans if sp[0] == "Schemas"]
    lists = [sp for sp in spans if sp[0] in ("Users", "Groups")]
    assert len(schemas) == 1 and lists
    assert any(a < schemas[0][2] and schemas[0][1] < b for _, a, b in lists)
