"""The WSGI application: routes, authentication, injected faults."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from reconciler.sandbox.jira.base import _STATUS_TEXT, HttpError
from reconciler.sandbox.jira.issues import IssueHandlers
from reconciler.sandbox.jira.projects import ProjectHandlers
from reconciler.sandbox.jira.state import (
    Fault,
    JiraState,
)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class JiraSandbox(ProjectHandlers, IssueHandlers):
    """The WSGI app. ``state`` may be changed between requests by tests (drift, renames, revocations)."""

    def __init__(self, state: JiraState, base_url: str = "") -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.api = "/rest/api/3" if state.cloud else "/rest/api/2"
        r = re.escape(self.api)
        # (method, path regex, handler); path parameters become keyword arguments
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(rf"^{r}/myself$"), self.myself),
            ("GET", re.compile(rf"^{r}/project/search$"), self.project_search),
            ("GET", re.compile(rf"^{r}/project$"), self.project_list),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)$"), self.project_get),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/statuses$"), self.project_statuses),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role$"), self.project_roles),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_get),
            ("POST", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_add),
            ("DELETE", re.compile(rf"^{r}/project/(?P<key>[^/]+)/role/(?P<rid>\d+)$"), self.role_remove),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties$"), self.prop_keys),
            ("GET", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_get),
            ("PUT", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_put),
            ("DELETE", re.compile(rf"^{r}/project/(?P<key>[^/]+)/properties/(?P<prop>[^/]+)$"), self.prop_delete),
            ("GET", re.compile(rf"^{r}/priority/search$"), self.priority_page),
            ("GET", re.compile(rf"^{r}/priority/page$"), self.priority_page),
            ("GET", re.compile(rf"^{r}/resolution/search$"), self.resolution_page),
            ("GET", re.compile(rf"^{r}/resolution/page$"), self.resolution_page),
            ("GET", re.compile(rf"^{r}/mypermissions$"), self.mypermissions),
            ("GET", re.compile(rf"^{r}/user/bulk$"), self.user_bulk),
            ("GET", re.compile(rf"^{r}/user/list$"), self.user_list),
            ("GET", re.compile(rf"^{r}/user/search$"), self.user_search),
            ("GET", re.compile(rf"^{r}/user$"), self.user_get),
            ("GET", re.compile(rf"^{r}/serverInfo$"), self.server_info),
            ("GET", re.compile(rf"^{r}/issue/createmeta/(?P<key>[^/]+)/issuetypes/(?P<type_id>[^/]+)$"),
             self.create_meta),
            ("POST", re.compile(rf"^{r}/search/jql$"), self.search_jql),
            ("POST", re.compile(rf"^{r}/search$"), self.search_dc),
            ("POST", re.compile(rf"^{r}/issue$"), self.issue_create),
            ("GET", re.compile(rf"^{r}/issue/(?P<key>[^/]+)$"), self.issue_get),
            ("DELETE", re.compile(rf"^{r}/issue/(?P<key>[^/]+)$"), self.issue_delete),
            ("GET", re.compile(r"^/rest/webhooks/1\.0/webhook$"), self.webhook_list),
            ("POST", re.compile(r"^/rest/webhooks/1\.0/webhook$"), self.webhook_create),
            ("GET", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_get),
            ("PUT", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_update),
            ("DELETE", re.compile(r"^/rest/webhooks/1\.0/webhook/(?P<wid>\d+)$"), self.webhook_delete),
        ]

    # --- WSGI plumbing -------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO", "")
        query = {k: v for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        host = environ.get("HTTP_HOST") or "sandbox.invalid"
        base = self.base_url or f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        headers: list[tuple[str, str]] = [("Content-Type", "application/json;charset=UTF-8")]
        with self.lock:
            self.state.requests.append((method, path))
            try:
                fault = self._fault(method, path)
                if fault is not None and not fault.after:
                    self._raise_fault(fault, headers)
                self._authenticate(environ)
                for m, pattern, handler in self.routes:
                    match = pattern.match(path)
                    if match and m == method:
                        body = json.loads(raw) if raw else None
                        self._base = base
                        status, payload = handler(query=query, body=body, **match.groupdict())
                        break
                else:
                    if any(p.match(path) for _, p, _ in self.routes):
                        raise HttpError(405, f"{method} is not allowed on {path}")
                    raise HttpError(404, "null for uri: " + path)
                if fault is not None:
                    self._raise_fault(fault, headers)
            except HttpError as exc:
                status, payload = exc.status, {"errorMessages": exc.messages, "errors": exc.errors}
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, {"errorMessages": [f"Bad request: {type(exc).__name__}"], "errors": {}}
        data = b"" if status == 204 or payload is None else json.dumps(payload).encode()
        if status == 204:
            headers = []
        start_response(f"{status} {_STATUS_TEXT.get(status, 'Status')}", headers)
        return [data]

    @staticmethod
    def _raise_fault(fault: Fault, headers: list[tuple[str, str]]) -> None:
        if fault.retry_after is not None:
            headers.append(("Retry-After", fault.retry_after))
        raise HttpError(fault.status, "Rate limit exceeded." if fault.status == 429 else
                        "The server is having a moment.")

    def _fault(self, method: str, path: str) -> Fault | None:
        for f in self.state.faults:
            if f.times > 0 and f.method == method and f.path.search(path):
                f.times -= 1
                return f
        return None

    def _authenticate(self, environ: Environ) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        s = self.state
        if s.cloud:
            want = "Basic " + base64.b64encode(f"{s.users[s.me].email}:{s.secret}".encode()).decode()
        else:
            want = f"Bearer {s.secret}"
        if auth != want:
            raise HttpError(401, "Client must be authenticated to access this resource.")


def transport(state: JiraState, base_url: str = "") -> Any:
    """An httpx transport that serves ``state`` in-process (no socket)."""
    import httpx
    return httpx.WSGITransport(app=JiraSandbox(state, base_url))

