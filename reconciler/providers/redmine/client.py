"""Redmine's REST API for one connection: the API key header, paged reads (``offset`` / ``limit`` /
``total_count``), lookups, writes (a create finds what a first attempt whose answer was lost made), and
``connect``, which builds a client from a connection of the config."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx

from reconciler.errors import (
    AuthError,
    ConflictError,
    ConnectError,
    NotFoundError,
    ProviderError,
    ServerError,
)
from reconciler.providers._http import Found, Http, Recorder, build_client, ca_path, found
from reconciler.providers.paging import Page, read_pages
from reconciler.providers.paths import seg
from reconciler.secrets import redact, resolve

if TYPE_CHECKING:
    from reconciler.integrations.models import RedmineConnection

PREFIX = "redmine."
# Redmine's own cap on `limit` for list calls.
MAX_PAGE = 100
# The identity system user maps name for Redmine logins.
SYSTEM = "redmine"
RECORD_PREFIX = "Reconciler-integration-"
RECORD_TITLE = RECORD_PREFIX + "{name}"
_RECORD_URL = re.compile(r"/projects/(?P<project>[^/]+)/wiki/(?P<title>[^/?#]+)$")


class RedmineApiKey(httpx.Auth):
    """Redmine's REST API key header (kept out of URLs, where ``?key=`` would leak into logs)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["X-Redmine-API-Key"] = self._key
        yield request


class RedmineClient:
    """Redmine's REST API for one connection: paged reads, lookups, writes."""

    def __init__(self, http: Http, name: str, page_size: int = MAX_PAGE) -> None:
        self.http = http
        self.name = name
        self.page_size = max(1, min(page_size, MAX_PAGE))
        self.pages = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, str] | None = None, what: str = "") -> Any:
        body = self.http.get_json(path, params=params or {}, what=what or f"cannot read {path}")
        with self._lock:
            self.pages += 1
        return body

    def list_all(self, path: str, key: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint. Pages with offset/limit until total_count; an endpoint that
        answers without total_count (groups, trackers ...) is not paged and is read in one call."""
        def fetch(offset: int) -> Page:
            q = {"offset": str(offset), "limit": str(self.page_size), **(params or {})}
            body = self.get(path, q, f"cannot list {key.replace('_', ' ')}")
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise ServerError(f"the answer to {path} has no '{key}' list", "GET", self.http._full(path))
            total = body.get("total_count")
            if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
                raise ServerError(f"the answer to {path}: total_count is {str(total)[:40]!r}, not a count", "GET",
                                  self.http._full(path))
            # no total_count: an endpoint that is not paged (groups, trackers ...) answered whole
            return Page([x for x in body[key] if isinstance(x, dict)], total, True if total is None else None)

        out, _ = read_pages(fetch, page_size=self.page_size, url=self.http._full(path),
                            key=lambda x: x.get("id"))
        return out

    def current_user(self) -> dict[str, Any]:
        """Who the API key belongs to; the first call of every session, so its errors say what to fix."""
        try:
            body = self.get("users/current.json", what="cannot read the current user")
        except AuthError as exc:
            hint = ("the API key was refused; check api_key, and that the REST API is enabled "
                    "(Administration > Settings > API)") if exc.status == 401 else \
                "the REST API refused the request; enable it (Administration > Settings > API)"
            raise AuthError(f"redmine connection '{self.name}': {hint}", exc.method, exc.url, exc.status) from None
        except ConnectError as exc:
            reason = exc.message.split(": ", 1)[-1]  # Http says "cannot reach <provider>: <reason>"
            raise ConnectError(f"redmine connection '{self.name}': cannot reach "
                               f"{exc.url.rsplit('/users', 1)[0]}: {reason}", exc.method, exc.url, None,
                               exc.detail) from None
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict):
            raise ServerError(f"redmine connection '{self.name}': users/current.json has no user; is base_url "
                              "a Redmine?", "GET", self.http._full("users/current.json"))
        return user

    # reads
    def users(self) -> list[dict[str, Any]]:
        # status= (empty) lists active, registered and locked users alike
        return self.list_all("users.json", "users", {"status": ""})

    def groups(self) -> list[dict[str, Any]]:
        return self.list_all("groups.json", "groups")

    def group(self, gid: int) -> dict[str, Any]:
        body = self.get(f"groups/{seg(gid)}.json", {"include": "users"}, f"cannot read group {gid}")
        return dict(body["group"])

    def project(self, ident: str) -> dict[str, Any] | None:
        try:
            body = self.get(f"projects/{quote(ident, safe='')}.json", {"include": "trackers,enabled_modules"},
                            f"cannot read project {ident}")
        except NotFoundError:
            return None
        return dict(body["project"])

    def projects(self) -> list[dict[str, Any]]:
        return self.list_all("projects.json", "projects")

    def memberships(self, ident: str) -> list[dict[str, Any]]:
        return self.list_all(f"projects/{quote(ident, safe='')}/memberships.json", "memberships")

    def enumeration(self, path: str, key: str) -> list[dict[str, Any]]:
        return self.list_all(path, key)

    def wiki_page(self, ident: str, title: str) -> dict[str, Any] | None:
        try:
            body = self.get(f"projects/{quote(ident, safe='')}/wiki/{quote(title, safe='')}.json",
                            what=f"cannot read wiki page {title} of project {ident}")
        except NotFoundError:
            return None
        return dict(body["wiki_page"])

    def record_pages(self) -> list[tuple[str, str]]:
        """(project identifier, title) of every record page reconciler wrote, in every project: Redmine's
        search over wiki page titles is one paged call across projects (offset / limit / total_count)."""
        def fetch(offset: int) -> Page:
            body = self.get("search.json", {"q": RECORD_PREFIX, "wiki_pages": "1", "titles_only": "1",
                                            "offset": str(offset), "limit": str(self.page_size)},
                            "cannot search the record pages")
            total = body.get("total_count") if isinstance(body, dict) else None
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                raise ServerError(f"the answer to search.json: total_count is {str(total)[:40]!r}, not a count",
                                  "GET", self.http._full("search.json"))
            return Page([r for r in body.get("results") or [] if isinstance(r, dict)], total)

        # bounded as every list is (paging.read_pages): by the total it gave and a hard cap, a page of
        # nothing new ends it
        results, _ = read_pages(fetch, page_size=self.page_size, url=self.http._full("search.json"),
                                key=lambda r: str(r.get("url", "")))
        out: list[tuple[str, str]] = []
        for r in results:
            m = _RECORD_URL.search(str(r.get("url", "")))
            if r.get("type") == "wiki-page" and m:
                title = unquote(m.group("title"))
                if title.startswith(RECORD_PREFIX):  # the search matches anywhere, in any case
                    out.append((unquote(m.group("project")), title))
        return sorted(set(out))

    def find_user(self, login: str) -> dict[str, Any] | None:
        body = self.get("users.json", {"name": login, "status": ""}, f"cannot search user {login}")
        for u in body.get("users", []):
            if str(u.get("login", "")).lower() == login.lower():
                return dict(u)
        return None

    def find_group(self, name: str) -> dict[str, Any] | None:
        for g in self.groups():
            if g.get("name") == name:
                return g
        return None

    def find_issue(self, project_id: int, subject: str) -> dict[str, Any] | None:
        body = self.get("issues.json", {"project_id": str(project_id), "status_id": "*", "subject": "~" + subject},
                        "cannot search issues")
        for i in body.get("issues", []):
            if i.get("subject") == subject:
                return dict(i)
        return None

    # writes
    def create(self, path: str, body: dict[str, Any], lookup: Callable[[], dict[str, Any] | None],
               what: str) -> dict[str, Any]:
        """POST after a lookup: Redmine answers a duplicate with 422, and a retried create whose first
        answer was lost must find what the first attempt made instead of failing."""
        existing = lookup()
        if existing is not None:
            return existing
        r = self.http.request("POST", path, json=body, what=what, ok=(422,), recover=lambda: found(lookup()))
        if isinstance(r, Found):
            return dict(r.value)
        if r.status_code == 422:
            existing = lookup()
            if existing is not None:
                return existing
            raise _unprocessable(r, what)
        data = r.json() if r.content else None
        if not isinstance(data, dict) or len(data) != 1:
            raise ServerError(f"{what}: the answer has no object", "POST", self.http._full(path), r.status_code)
        return dict(next(iter(data.values())))

    def write(self, method: str, path: str, body: dict[str, Any] | None, what: str,
              ok: tuple[int, ...] = ()) -> None:
        r = self.http.request(method, path, json=body, what=what, ok=(422, *ok))
        if r.status_code == 422:
            raise _unprocessable(r, what)


def _unprocessable(r: httpx.Response, what: str) -> ProviderError:
    try:
        errors = [str(e) for e in r.json().get("errors", [])]
    except (ValueError, AttributeError):
        errors = []
    detail = redact(redact("; ".join(errors))[:300])
    cls = ConflictError if any("already been taken" in e for e in errors) else ServerError
    return cls(what, r.request.method, redact(str(r.request.url.copy_with(query=None))), 422, detail)



def connect(conn: RedmineConnection, *, transport: httpx.BaseTransport | None = None,
            recorder: Recorder | None = None, base_dir: str | None = None,
            sleep: Callable[[float], None] | None = None, attempts: int = 5) -> RedmineClient:
    key = resolve(conn.api_key, f"{conn.locate('api_key')}: connections.{conn.name}.api_key", base_dir)
    client = build_client(conn.base_url, auth=RedmineApiKey(key), timeout=conn.timeout,
                          ca_bundle=ca_path(conn, base_dir),
                          transport=transport, headers={"Accept": "application/json"},
                          max_connections=max(_opt(conn, "concurrency", 4), 4))
    kw: dict[str, Any] = {"recorder": recorder, "attempts": attempts}
    if sleep is not None:
        kw["sleep"] = sleep
    return RedmineClient(Http(client, f"redmine.{conn.name}", **kw), conn.name,
                         _opt(conn, "page_size", MAX_PAGE))


def _opt(conn: Any, name: str, default: Any) -> Any:
    """A connection setting, or its default (settings are optional in YAML)."""
    value = getattr(conn, name, None)
    return default if value is None else value
