"""Paging that a hostile server cannot keep going: imposter servers on 127.0.0.1 (real sockets) that answer
every page with fresh ids under a huge total, or repeat a page forever, and a total that is not a count."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.config.models import ScimProvider
from reconciler.errors import ServerError
from reconciler.providers import paging
from reconciler.providers.paging import Page, read_pages
from reconciler.providers.scim import connect

Answer = Callable[[str, dict[str, str]], dict[str, Any]]


@contextmanager
def imposter(answer: Answer) -> Iterator[tuple[str, list[str]]]:
    """A JSON server on 127.0.0.1 answering every GET with ``answer(path, query)``; yields its URL and the
    paths it was asked for. Bounded: it stops with the test."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            asked.append(self.path)
            body = json.dumps(answer(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/scim+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2", asked
    finally:
        server.shutdown()
        server.server_close()


def provider(url: str) -> ScimProvider:
    return ScimProvider.model_validate({"name": "p", "type": "scim", "base_url": url, "page_size": 10,
                                        "auth": {"type": "bearer", "token": "${env:IMPOSTER_TOKEN}"}})


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPOSTER_TOKEN", "imposter-token-123456")


def test_fresh_ids_under_a_huge_total_stop_at_the_hard_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 25)
    n = iter(range(10**9))

    def endless(path: str, q: dict[str, str]) -> dict[str, Any]:
        return {"totalResults": 10**12, "Resources": [{"id": str(next(n))} for _ in range(10)]}

    with imposter(endless) as (url, asked):
        client = connect(provider(url), attempts=1)
        with pytest.raises(ServerError, match=r"the list never ends: 25 pages read .*it said 1000000000000 in all") \
                as err:
            client.list_all("Users")
        client.close()
    assert len(asked) == 25
    assert f"{url}/Users" in str(err.value) and "\n" not in str(err.value)


def test_more_pages_than_the_first_total_needs_is_an_error() -> None:
    n = iter(range(10**9))

    def growing(path: str, q: dict[str, str]) -> dict[str, Any]:  # says 30, keeps giving
        return {"totalResults": 30 if q.get("startIndex") == "1" else 10**6,
                "Resources": [{"id": str(next(n))} for _ in range(10)]}

    with imposter(growing) as (url, asked):
        client = connect(provider(url), attempts=1)
        with pytest.raises(ServerError, match="the list never ends: 4 pages read"):
            client.list_all("Users")
        client.close()
    assert len(asked) == 4  # 30 at 10 a page needs 3; one more is allowed, then it stops


def test_a_repeated_page_ends_the_read() -> None:
    def same(path: str, q: dict[str, str]) -> dict[str, Any]:
        return {"totalResults": 10**6, "Resources": [{"id": str(i)} for i in range(10)]}

    with imposter(same) as (url, asked):
        client = connect(provider(url), attempts=1)
        users, pages = client.list_all("Users")
        client.close()
    assert len(users) == 10 and pages == 2 and len(asked) == 2


@pytest.mark.parametrize("total", ["lots", -1, True, 1.5])
def test_a_total_that_is_not_a_count_is_one_line_naming_the_url(total: Any) -> None:
    with imposter(lambda p, q: {"totalResults": total, "Resources": []}) as (url, _):
        client = connect(provider(url), attempts=1)
        with pytest.raises(ServerError, match="totalResults is .* not a count") as err:
            client.list_all("Groups")
        client.close()
    assert f"{url}/Groups" in str(err.value)


def test_jira_style_pages_that_never_say_last_end_on_repetition() -> None:
    calls: list[int] = []

    def fetch(offset: int) -> Page:
        calls.append(offset)
        return Page([{"id": i} for i in range(50)], None, False)  # isLast: false, forever, the same page

    items, pages = read_pages(fetch, page_size=50, url="http://127.0.0.1/x")
    assert len(items) == 50 and pages == 2 and calls == [0, 50]


def test_pages_shorter_than_the_first_midway_are_read_again_one_after_another() -> None:
    """A server whose later pages are smaller than its first (a page size of its own): the offsets a
    concurrent read computed from the first page skip objects, so the list is read again sequentially."""
    objects = [{"id": str(i)} for i in range(25)]

    def fetch(offset: int) -> Page:
        size = 10 if offset == 0 else 5
        return Page(objects[offset:offset + size], len(objects))

    got = paging.read_concurrent(fetch, page_size=10, url="http://127.0.0.1/x", workers=4)
    assert [o["id"] for o in got.items] == [o["id"] for o in objects] and not got.changed


def test_redmine_record_search_with_fresh_results_under_a_huge_total_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redmine's search for record pages pages the same way as every list: bounded by the total it gave
    (pages <= total / page size + 1) and by the hard cap, in one line naming the URL."""
    from reconciler.integrations.models import RedmineConnection
    from reconciler.providers.redmine import connect as redmine_connect

    monkeypatch.setattr(paging, "MAX_PAGES", 25)
    n = iter(range(10**9))

    def endless(path: str, q: dict[str, str]) -> dict[str, Any]:
        return {"total_count": 10**12, "results": [
            {"type": "wiki-page", "url": f"/projects/p{next(n)}/wiki/Reconciler_integration_x"} for _ in range(25)]}

    monkeypatch.setenv("REDMINE_KEY", "k" * 40)
    with imposter(endless) as (url, asked):
        conn = RedmineConnection.model_validate({"name": "r", "type": "redmine", "base_url": url,
                                                 "api_key": "${env:REDMINE_KEY}"})
        client = redmine_connect(conn, attempts=1)
        with pytest.raises(ServerError, match="the list never ends: 25 pages read") as err:
            client.record_pages()
        client.close()
    assert len(asked) == 25
    assert "search.json" in str(err.value) and "\n" not in str(err.value)
